"""Kubernetes NetworkPolicy, alone and underneath a mesh (reference §7).

Mesh-free topology (no namespace injected, see ``topologies.netpol_cluster``):
demo (purpose=demo): httpbin, sleep, curl; partner (team=partner): sleep, curl;
outsider (team=outsider): sleep. A dropped connection is "000", exit 28: the probe's 5 s
timeout expires first, even through a client sidecar (Envoy's connect timeout is 10 s).
"""

from __future__ import annotations

import pytest
from topologies import (
    Delete,
    case,
    istio_authn_policy,
    linkerd_foo_bar_legacy,
    netpol_cluster,
    run_case,
)


def netpol(name: str, spec: str, namespace: str = "demo") -> str:
    return f"""
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata:
      name: {name}
      namespace: {namespace}
    spec:
{spec}"""


def to_httpbin(source: str, ns: str = "demo") -> str:
    return f"{source}=http://httpbin.{ns}:8000/ip"


DEMO_SLEEP = to_httpbin("demo/sleep")
DEMO_CURL = to_httpbin("demo/curl")
PARTNER_SLEEP = to_httpbin("partner/sleep")
PARTNER_CURL = to_httpbin("partner/curl")
OUTSIDER_SLEEP = to_httpbin("outsider/sleep")
DROP = "000/28"

HTTPBIN_SELECTOR = """      podSelector:
        matchLabels:
          app: httpbin
"""
ALLOW_SLEEP = netpol(
    "allow-sleep",
    HTTPBIN_SELECTOR
    + """      ingress:
      - from:
        - podSelector:
            matchLabels:
              app: sleep
""",
)
ALLOW_CURL = netpol(
    "allow-curl",
    HTTPBIN_SELECTOR
    + """      ingress:
      - from:
        - podSelector:
            matchLabels:
              app: curl
""",
)
DENY_ALL = netpol(
    "deny-all",
    """      podSelector: {}
      policyTypes:
      - Ingress
""",
)
EMPTY_INGRESS = netpol("no-ingress", HTTPBIN_SELECTOR + "      ingress: []\n")
ALLOW_ALL = netpol("allow-all", HTTPBIN_SELECTOR + "      ingress:\n      - {}\n")
SAME_NAMESPACE = netpol(
    "same-namespace",
    HTTPBIN_SELECTOR
    + """      ingress:
      - from:
        - podSelector: {}
""",
)
PARTNER_NAMESPACE = netpol(
    "allow-partner",
    HTTPBIN_SELECTOR
    + """      ingress:
      - from:
        - namespaceSelector:
            matchLabels:
              team: partner
""",
)
PARTNER_AND_SLEEP = netpol(
    "partner-sleep",
    HTTPBIN_SELECTOR
    + """      ingress:
      - from:
        - namespaceSelector:
            matchLabels:
              team: partner
          podSelector:
            matchLabels:
              app: sleep
""",
)
PARTNER_OR_SLEEP = netpol(
    "partner-or-sleep",
    HTTPBIN_SELECTOR
    + """      ingress:
      - from:
        - namespaceSelector:
            matchLabels:
              team: partner
        - podSelector:
            matchLabels:
              app: sleep
""",
)


def sleep_on_port(name: str, port: int) -> str:
    return netpol(
        name,
        HTTPBIN_SELECTOR
        + f"""      ingress:
      - from:
        - podSelector:
            matchLabels:
              app: sleep
        ports:
        - protocol: TCP
          port: {port}
""",
    )


# nothing configured at all: the explanation only needs to say why traffic flows
NOT_ISOLATED = ("NetworkPolicy|no sidecar",)
# policies exist but none isolates httpbin for ingress: that is what must be explained
NOT_SELECTED = ("NetworkPolicy",)

# --------------------------------------------------------------------------- NetworkPolicy alone
# ref §7: pods are non-isolated until selected; the union of the selecting policies' ingress
# rules is all that is allowed; podSelector {} = every pod of the namespace; in one `from`
# element namespaceSelector AND podSelector, as separate elements OR; ports are container
# ports; `ingress: []` (or Ingress type with no rules) denies all.

ALONE = [
    case("no-policy-allows-all", (), OUTSIDER_SLEEP, "200", words=NOT_ISOLATED, mtls=False),
    case(
        "policy-selecting-other-pods-does-not-isolate",
        netpol(
            "only-sleep-pods",
            """      podSelector:
        matchLabels:
          app: sleep
      policyTypes:
      - Ingress
""",
        ),
        OUTSIDER_SLEEP,
        "200",
        words=NOT_SELECTED,
    ),
    case(
        "policy-in-other-namespace-does-not-select",
        netpol("deny-httpbin", HTTPBIN_SELECTOR + "      ingress: []\n", namespace="partner"),
        DEMO_SLEEP,
        "200",
        words=NOT_SELECTED,
    ),
    case(
        "egress-only-policy-does-not-isolate-ingress",
        netpol("egress-only", HTTPBIN_SELECTOR + "      policyTypes:\n      - Egress\n"),
        OUTSIDER_SLEEP,
        "200",
        words=NOT_SELECTED,
    ),
    case(
        "pod-selector-allows-a",
        ALLOW_SLEEP,
        DEMO_SLEEP,
        "200",
        named=("NetworkPolicy demo/allow-sleep",),
        mtls=False,
    ),
    case(
        "pod-selector-drops-c",
        ALLOW_SLEEP,
        DEMO_CURL,
        DROP,
        named=("NetworkPolicy demo/allow-sleep",),
    ),
    case(
        "pod-selector-is-same-namespace-only",
        ALLOW_SLEEP,
        PARTNER_SLEEP,
        DROP,
        named=("NetworkPolicy demo/allow-sleep",),
    ),
    case(
        "default-deny-all-ingress",
        DENY_ALL,
        DEMO_SLEEP,
        DROP,
        named=("NetworkPolicy demo/deny-all",),
    ),
    case(
        "empty-ingress-list-denies-all",
        EMPTY_INGRESS,
        DEMO_SLEEP,
        DROP,
        named=("NetworkPolicy demo/no-ingress",),
    ),
    case(
        "empty-ingress-rule-allows-all",
        ALLOW_ALL,
        OUTSIDER_SLEEP,
        "200",
        named=("NetworkPolicy demo/allow-all",),
    ),
    case(
        "union-deny-all-plus-allow-sleep",
        (DENY_ALL, ALLOW_SLEEP),
        DEMO_SLEEP,
        "200",
        named=("NetworkPolicy demo/allow-sleep",),
    ),
    case(
        "union-deny-all-plus-allow-sleep-still-drops-curl",
        (DENY_ALL, ALLOW_SLEEP),
        DEMO_CURL,
        DROP,
        named=("NetworkPolicy demo/deny-all",),
    ),
    case(
        "union-of-two-allows",
        (ALLOW_SLEEP, ALLOW_CURL),
        DEMO_CURL,
        "200",
        named=("NetworkPolicy demo/allow-curl",),
    ),
    case(
        "empty-pod-selector-in-from-means-this-namespace",
        SAME_NAMESPACE,
        DEMO_CURL,
        "200",
        named=("NetworkPolicy demo/same-namespace",),
    ),
    case(
        "empty-pod-selector-in-from-excludes-other-namespaces",
        SAME_NAMESPACE,
        PARTNER_SLEEP,
        DROP,
        named=("NetworkPolicy demo/same-namespace",),
    ),
    case(
        "namespace-selector-allows-labelled-namespace",
        PARTNER_NAMESPACE,
        PARTNER_CURL,
        "200",
        named=("NetworkPolicy demo/allow-partner",),
    ),
    case(
        "namespace-selector-drops-other-namespace",
        PARTNER_NAMESPACE,
        OUTSIDER_SLEEP,
        DROP,
        named=("NetworkPolicy demo/allow-partner",),
    ),
    case(
        "namespace-selector-does-not-include-own-namespace",
        PARTNER_NAMESPACE,
        DEMO_SLEEP,
        DROP,
        named=("NetworkPolicy demo/allow-partner",),
    ),
    case(
        "and-selector-both-match",
        PARTNER_AND_SLEEP,
        PARTNER_SLEEP,
        "200",
        named=("NetworkPolicy demo/partner-sleep",),
    ),
    case(
        "and-selector-pod-fails",
        PARTNER_AND_SLEEP,
        PARTNER_CURL,
        DROP,
        named=("NetworkPolicy demo/partner-sleep",),
    ),
    case(
        "and-selector-namespace-fails",
        PARTNER_AND_SLEEP,
        DEMO_SLEEP,
        DROP,
        named=("NetworkPolicy demo/partner-sleep",),
    ),
    case(
        "or-selector-namespace-alone",
        PARTNER_OR_SLEEP,
        PARTNER_CURL,
        "200",
        named=("NetworkPolicy demo/partner-or-sleep",),
    ),
    case(
        "or-selector-pod-alone",
        PARTNER_OR_SLEEP,
        DEMO_SLEEP,
        "200",
        named=("NetworkPolicy demo/partner-or-sleep",),
    ),
    case(
        "or-selector-pod-selector-stays-in-policy-namespace",
        PARTNER_OR_SLEEP,
        OUTSIDER_SLEEP,
        DROP,
        named=("NetworkPolicy demo/partner-or-sleep",),
    ),
    case(
        "ports-container-port-8080-allows",
        sleep_on_port("sleep-8080", 8080),
        DEMO_SLEEP,
        "200",
        named=("NetworkPolicy demo/sleep-8080",),
    ),
    case(
        "ports-service-port-8000-does-not-match",
        sleep_on_port("sleep-8000", 8000),
        DEMO_SLEEP,
        DROP,
        named=("NetworkPolicy demo/sleep-8000",),
    ),
    case(
        "deleting-the-policy-restores-traffic",
        (DENY_ALL, Delete(DENY_ALL)),
        DEMO_SLEEP,
        "200",
        words=NOT_ISOLATED,
    ),
]


@pytest.mark.parametrize("c", ALONE)
def test_network_policy(c):
    run_case(netpol_cluster, c)


# --------------------------------------------------------------------------- with a mesh
# ref §7 "NetworkPolicy is evaluated on pod IPs/ports underneath the mesh" (container ports
# still), conventions: a drop is 000/28 even through a client sidecar; both the
# NetworkPolicy and the mesh policy must allow.

BAR_SAME_NAMESPACE_SLEEP = netpol(
    "allow-sleep",
    HTTPBIN_SELECTOR
    + """      ingress:
      - from:
        - podSelector:
            matchLabels:
              app: sleep
""",
    namespace="bar",
)
BAR_FROM_INJECTED_NAMESPACES = netpol(
    "from-injected",
    HTTPBIN_SELECTOR
    + """      ingress:
      - from:
        - namespaceSelector:
            matchLabels:
              istio-injection: enabled
""",
    namespace="bar",
)
BAR_DENY_ALL = DENY_ALL.replace("namespace: demo", "namespace: bar")
AP_DENY_BAR = """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata:
      name: deny-bar
      namespace: bar
    spec:
      action: DENY
      rules:
      - from:
        - source:
            namespaces: ["bar"]
"""
AP_ALLOW_FOO = """
    apiVersion: security.istio.io/v1beta1
    kind: AuthorizationPolicy
    metadata:
      name: allow-foo
      namespace: bar
    spec:
      rules:
      - from:
        - source:
            namespaces: ["foo"]
"""
FOO_TO_BAR = "foo/sleep=http://httpbin.bar:8000/ip"
BAR_TO_BAR = "bar/sleep=http://httpbin.bar:8000/ip"

WITH_ISTIO = [
    case(
        "allowed-pod-gets-mtls-through",
        BAR_SAME_NAMESPACE_SLEEP,
        BAR_TO_BAR,
        "200",
        named=("NetworkPolicy bar/allow-sleep",),
        mtls=True,
    ),
    case(
        "dropped-behind-client-sidecar-still-times-out",
        BAR_SAME_NAMESPACE_SLEEP,
        FOO_TO_BAR,
        DROP,
        named=("NetworkPolicy bar/allow-sleep",),
    ),
    case(
        "istio-proxy-container-is-dropped-too",
        BAR_DENY_ALL,
        "foo/sleep:istio-proxy=http://httpbin.bar:8000/ip",
        DROP,
        named=("NetworkPolicy bar/deny-all",),
    ),
    case(
        "netpol-allows-but-authorization-denies",
        (BAR_SAME_NAMESPACE_SLEEP, AP_DENY_BAR),
        BAR_TO_BAR,
        "403",
        named=("AuthorizationPolicy bar/deny-bar",),
        body="RBAC: access denied",
    ),
    case(
        "authorization-allows-but-netpol-drops",
        (BAR_SAME_NAMESPACE_SLEEP, AP_ALLOW_FOO),
        FOO_TO_BAR,
        DROP,
        named=("NetworkPolicy bar/allow-sleep",),
    ),
    case(
        "both-allow",
        (BAR_FROM_INJECTED_NAMESPACES, AP_ALLOW_FOO),
        FOO_TO_BAR,
        "200",
        named=("NetworkPolicy bar/from-injected", "AuthorizationPolicy bar/allow-foo"),
        mtls=True,
    ),
    case(
        "namespace-label-selects-legacy-out",
        (BAR_FROM_INJECTED_NAMESPACES, AP_ALLOW_FOO),
        "legacy/sleep=http://httpbin.bar:8000/ip",
        DROP,
        named=("NetworkPolicy bar/from-injected",),
    ),
    case(
        "netpol-passes-authorization-denies-other-namespace",
        (BAR_FROM_INJECTED_NAMESPACES, AP_ALLOW_FOO),
        BAR_TO_BAR,
        "403",
        named=("AuthorizationPolicy bar/allow-foo",),
        body="RBAC: access denied",
    ),
    case(
        "container-port-8080-under-sidecars",
        sleep_on_port("sleep-8080", 8080).replace("namespace: demo", "namespace: bar"),
        BAR_TO_BAR,
        "200",
        named=("NetworkPolicy bar/sleep-8080",),
        mtls=True,
    ),
    case(
        "service-port-8000-under-sidecars-does-not-match",
        sleep_on_port("sleep-8000", 8000).replace("namespace: demo", "namespace: bar"),
        BAR_TO_BAR,
        DROP,
        named=("NetworkPolicy bar/sleep-8000",),
    ),
]


@pytest.mark.parametrize("c", WITH_ISTIO)
def test_network_policy_with_istio(c):
    run_case(istio_authn_policy, c)


# A *meshed* Linkerd client behind a dropping NetworkPolicy is left out on purpose: the
# reference only describes Envoy's behaviour (§7, [inferred]); the unmeshed client is plain curl.
WITH_LINKERD = [
    case(
        "linkerd-unmeshed-client-dropped",
        BAR_DENY_ALL,
        "legacy/sleep=http://httpbin.bar:8000/ip",
        DROP,
        named=("NetworkPolicy bar/deny-all",),
    ),
    case(
        "linkerd-allowed-pod-gets-mtls",
        BAR_SAME_NAMESPACE_SLEEP,
        BAR_TO_BAR,
        "200",
        named=("NetworkPolicy bar/allow-sleep",),
        mtls=True,
    ),
]


@pytest.mark.parametrize("c", WITH_LINKERD)
def test_network_policy_with_linkerd(c):
    run_case(linkerd_foo_bar_legacy, c)
