"""The sandbox's Kubernetes API (DESIGN §9): the protocol a real ``kubectl`` and the official
client speak, served for the embedded mesh. Nothing below this package knows HTTP.

- ``resources``: the API groups and resource types served (built-in, Istio, Linkerd, Gateway
  API), with the merge and ownership schema of the built-in kinds.
- ``protocol``: pure functions of the protocol (patches, selectors, managed fields and
  server-side apply, ``Status`` errors, discovery documents, the default ``Table``).
- ``core``: ``APICore``, the transport-free, synchronous API server (store + request handling).
"""
