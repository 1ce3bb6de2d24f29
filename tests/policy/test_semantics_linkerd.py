"""Linkerd: automatic mTLS, default inbound policy, Server / HTTPRoute / AuthorizationPolicy,
MeshTLSAuthentication, NetworkAuthentication, legacy ServerAuthorization (reference §6, §9.9,
§9.10).

Topology: foo and bar carry ``linkerd.io/inject: enabled`` (httpbin + sleep meshed), legacy
does not (httpbin + sleep unmeshed). httpbin's Service port is 8000, its pod port 8080; a
Server names the *pod* port. Policies protect httpbin in bar unless noted.
"""

from __future__ import annotations

import pytest
from topologies import (
    LINKERD_INJECT,
    Case,
    Delete,
    Restart,
    case,
    httpbin_yaml,
    l5d,
    linkerd_foo_bar_legacy,
    namespace_yaml,
    run_case,
)

FOO_TO_BAR = "foo/sleep=http://httpbin.bar:8000/ip"
BAR_TO_BAR = "bar/sleep=http://httpbin.bar:8000/ip"
LEGACY_TO_BAR = "legacy/sleep=http://httpbin.bar:8000/ip"
POLICY_ANNOTATION = "config.linkerd.io/default-inbound-policy"


def server(
    name: str = "httpbin",
    *,
    port: int | str = 8080,
    app: str = "httpbin",
    namespace: str = "bar",
    access_policy: str | None = None,
    api: str = "policy.linkerd.io/v1beta3",
    labels: str = "",
) -> str:
    access = f"\n      accessPolicy: {access_policy}" if access_policy else ""
    return f"""
    apiVersion: {api}
    kind: Server
    metadata:
      name: {name}
      namespace: {namespace}{labels}
    spec:
      podSelector:
        matchLabels:
          app: {app}
      port: {port}{access}
"""


def authz(
    name: str,
    target_kind: str,
    target_name: str,
    *auth_refs: tuple[str, str],
    namespace: str = "bar",
) -> str:
    group = "" if target_kind == "Namespace" else "\n        group: policy.linkerd.io"
    refs = "".join(
        f"\n      - name: {ref_name}\n        kind: {kind}"
        + ("" if kind == "ServiceAccount" else "\n        group: policy.linkerd.io")
        for kind, ref_name in auth_refs
    )
    return f"""
    apiVersion: policy.linkerd.io/v1alpha1
    kind: AuthorizationPolicy
    metadata:
      name: {name}
      namespace: {namespace}
    spec:
      targetRef:{group}
        kind: {target_kind}
        name: {target_name}
      requiredAuthenticationRefs:{refs}
"""


def mesh_tls(name: str, body: str, namespace: str = "bar") -> str:
    return f"""
    apiVersion: policy.linkerd.io/v1alpha1
    kind: MeshTLSAuthentication
    metadata:
      name: {name}
      namespace: {namespace}
    spec:
{body}"""


FOO_SLEEP_ONLY = mesh_tls(
    "foo-sleep",
    f"""      identities:
      - "{l5d("foo", "sleep")}"
""",
)
ANY_MESHED = mesh_tls("any-meshed", '      identities: ["*"]\n')
ANY_NETWORK = """
    apiVersion: policy.linkerd.io/v1alpha1
    kind: NetworkAuthentication
    metadata:
      name: anywhere
      namespace: bar
    spec:
      networks:
      - cidr: 0.0.0.0/0
      - cidr: ::/0
"""
SERVER = server()
ALLOW_FOO_SLEEP = (
    SERVER,
    FOO_SLEEP_ONLY,
    authz("foo-sleep", "Server", "httpbin", ("MeshTLSAuthentication", "foo-sleep")),
)
DEFAULT = ("all-unauthenticated",)

# --------------------------------------------------------------------------- automatic mTLS
# ref §6 "Automatic mTLS" and "Identity": meshed pairs get mTLS with no configuration;
# unmeshed sources or destinations talk plaintext, accepted by default.

AUTOMATIC = [
    case(
        "meshed-to-meshed-is-mtls",
        (),
        FOO_TO_BAR,
        "200",
        words=DEFAULT,
        mtls=True,
        client=l5d("foo", "sleep"),
        server=l5d("bar", "httpbin"),
    ),
    case(
        "same-namespace-meshed-is-mtls",
        (),
        BAR_TO_BAR,
        "200",
        words=DEFAULT,
        mtls=True,
        client=l5d("bar", "sleep"),
        server=l5d("bar", "httpbin"),
    ),
    case(
        "unmeshed-client-plaintext-accepted-by-default",
        (),
        LEGACY_TO_BAR,
        "200",
        words=DEFAULT,
        mtls=False,
        client=None,
        server=None,
    ),
    case(
        "meshed-client-to-unmeshed-server-is-plaintext",
        (),
        "foo/sleep=http://httpbin.legacy:8000/ip",
        "200",
        words=("not meshed|unmeshed",),
        mtls=False,
        client=None,
        server=None,
    ),
    case(
        "unmeshed-pair-is-plaintext",
        (),
        "legacy/sleep=http://httpbin.legacy:8000/ip",
        "200",
        words=("not meshed|unmeshed",),
        mtls=False,
    ),
]


@pytest.mark.parametrize("c", AUTOMATIC)
def test_automatic_mtls(c):
    run_case(linkerd_foo_bar_legacy, c)


# --------------------------------------------------------------------------- default policy
# ref §6 "Default inbound policy": annotation config.linkerd.io/default-inbound-policy on the
# namespace (or pod template), read when the proxy starts. Denied HTTP -> 403.


def bar_policy(value: str):
    return lambda: linkerd_foo_bar_legacy({"bar": {POLICY_ANNOTATION: value}})


DEFAULT_POLICIES = [
    # (policy, probe, result, mtls)
    ("all-unauthenticated", LEGACY_TO_BAR, "200", False),
    ("all-authenticated", LEGACY_TO_BAR, "403", False),
    ("all-authenticated", FOO_TO_BAR, "200", True),
    ("cluster-authenticated", LEGACY_TO_BAR, "403", False),
    ("cluster-authenticated", FOO_TO_BAR, "200", True),
    ("deny", FOO_TO_BAR, "403", None),
    ("deny", LEGACY_TO_BAR, "403", None),
    ("audit", LEGACY_TO_BAR, "200", False),
]


@pytest.mark.parametrize(
    ("policy", "spec", "result", "mtls"),
    [pytest.param(*row, id=f"{row[0]}:{row[1].split('/')[0]}") for row in DEFAULT_POLICIES],
)
def test_namespace_default_inbound_policy(policy, spec, result, mtls):
    c = Case((), spec, result, named=("Namespace bar",), words=(policy,), mtls=mtls)
    run_case(bar_policy(policy), c)


BAZ = namespace_yaml("baz", annotations=LINKERD_INJECT)

ANNOTATION_TIMING = [
    case(
        "pod-template-annotation-sets-default",
        (BAZ, httpbin_yaml("baz", pod_annotations={POLICY_ANNOTATION: "deny"})),
        "foo/sleep=http://httpbin.baz:8000/ip",
        "403",
        named=("Deployment baz/httpbin",),
        words=("deny",),
    ),
    case(
        "namespace-annotation-after-pod-start-changes-nothing",
        namespace_yaml("bar", annotations={**LINKERD_INJECT, POLICY_ANNOTATION: "deny"}),
        LEGACY_TO_BAR,
        "200",
        words=DEFAULT,
    ),
    case(
        "namespace-annotation-applies-after-restart",
        (
            namespace_yaml("bar", annotations={**LINKERD_INJECT, POLICY_ANNOTATION: "deny"}),
            Restart("bar", "httpbin"),
        ),
        LEGACY_TO_BAR,
        "403",
        named=("Namespace bar",),
        words=("deny",),
    ),
]


@pytest.mark.parametrize("c", ANNOTATION_TIMING)
def test_default_policy_is_read_at_pod_start(c):
    run_case(linkerd_foo_bar_legacy, c)


# --------------------------------------------------------------------------- Server
# ref §6 "Fine-grained policy", §9.9: a Server alone denies its port (accessPolicy defaults
# to deny); it selects a port of the pod spec (8080), by number or name; policy CRDs apply
# live.

SERVERS = [
    case(
        "server-alone-denies-meshed-client",
        SERVER,
        FOO_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
        mtls=True,
        client=l5d("foo", "sleep"),
    ),
    case(
        "server-alone-denies-unmeshed-client",
        server(api="policy.linkerd.io/v1beta1"),
        LEGACY_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "server-on-service-port-selects-nothing",
        server(port=8000),
        FOO_TO_BAR,
        "200",
        words=DEFAULT,
    ),
    case(
        "server-for-other-pods-has-no-effect", server(app="other"), FOO_TO_BAR, "200", words=DEFAULT
    ),
    case(
        "server-in-other-namespace-has-no-effect",
        server(namespace="foo"),
        FOO_TO_BAR,
        "200",
        words=DEFAULT,
    ),
    case(
        "server-access-policy-audit-allows",
        server(access_policy="audit"),
        LEGACY_TO_BAR,
        "200",
        named=("Server bar/httpbin",),
    ),
    case(
        "server-access-policy-all-unauthenticated-allows",
        server(access_policy="all-unauthenticated"),
        LEGACY_TO_BAR,
        "200",
        named=("Server bar/httpbin",),
    ),
    case(
        "server-access-policy-all-authenticated-denies-unmeshed",
        server(access_policy="all-authenticated"),
        LEGACY_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "server-access-policy-all-authenticated-allows-meshed",
        server(access_policy="all-authenticated"),
        FOO_TO_BAR,
        "200",
        named=("Server bar/httpbin",),
        mtls=True,
    ),
    case(
        "deleting-the-server-restores-the-default",
        (SERVER, Delete(SERVER)),
        FOO_TO_BAR,
        "200",
        words=DEFAULT,
    ),
]


@pytest.mark.parametrize("c", SERVERS)
def test_server(c):
    run_case(linkerd_foo_bar_legacy, c)


# --------------------------------------------------------------------------- AuthorizationPolicy
# ref §6: AuthorizationPolicy targets a Server / HTTPRoute / Namespace; all
# requiredAuthenticationRefs must match; MeshTLSAuthentication identities (exact, "*",
# "*.ns..." prefix) or identityRefs; a ServiceAccount can be referenced directly;
# NetworkAuthentication by CIDR also admits unmeshed clients.

FOO_SLEEP_NAMED = (
    "Server bar/httpbin",
    "AuthorizationPolicy bar/foo-sleep",
    "MeshTLSAuthentication bar/foo-sleep",
)
SA_REFS = mesh_tls(
    "sleep-sa",
    """      identityRefs:
      - kind: ServiceAccount
        name: sleep
""",
)
FOO_SA_REFS = mesh_tls(
    "foo-sleep-sa",
    """      identityRefs:
      - kind: ServiceAccount
        name: sleep
        namespace: foo
""",
)
FOO_PREFIX = mesh_tls(
    "foo-any", '      identities: ["*.foo.serviceaccount.identity.linkerd.cluster.local"]\n'
)

POLICIES = [
    case(
        "identity-listed-is-allowed",
        ALLOW_FOO_SLEEP,
        FOO_TO_BAR,
        "200",
        named=FOO_SLEEP_NAMED,
        mtls=True,
        client=l5d("foo", "sleep"),
        server=l5d("bar", "httpbin"),
    ),
    case(
        "identity-not-listed-is-denied",
        ALLOW_FOO_SLEEP,
        BAR_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "unmeshed-client-has-no-identity",
        ALLOW_FOO_SLEEP,
        LEGACY_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
        mtls=False,
    ),
    case(
        "identity-refs-default-to-own-namespace",
        (SERVER, SA_REFS, authz("sa", "Server", "httpbin", ("MeshTLSAuthentication", "sleep-sa"))),
        BAR_TO_BAR,
        "200",
        named=("AuthorizationPolicy bar/sa", "MeshTLSAuthentication bar/sleep-sa"),
    ),
    case(
        "identity-refs-own-namespace-excludes-foo",
        (SERVER, SA_REFS, authz("sa", "Server", "httpbin", ("MeshTLSAuthentication", "sleep-sa"))),
        FOO_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "identity-refs-with-namespace",
        (
            SERVER,
            FOO_SA_REFS,
            authz("sa", "Server", "httpbin", ("MeshTLSAuthentication", "foo-sleep-sa")),
        ),
        FOO_TO_BAR,
        "200",
        named=("MeshTLSAuthentication bar/foo-sleep-sa",),
    ),
    case(
        "star-identity-allows-any-meshed",
        (
            SERVER,
            ANY_MESHED,
            authz("meshed", "Server", "httpbin", ("MeshTLSAuthentication", "any-meshed")),
        ),
        BAR_TO_BAR,
        "200",
        named=("MeshTLSAuthentication bar/any-meshed",),
        mtls=True,
    ),
    case(
        "star-identity-denies-unmeshed",
        (
            SERVER,
            ANY_MESHED,
            authz("meshed", "Server", "httpbin", ("MeshTLSAuthentication", "any-meshed")),
        ),
        LEGACY_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "identity-prefix-matches-namespace",
        (
            SERVER,
            FOO_PREFIX,
            authz("foo-any", "Server", "httpbin", ("MeshTLSAuthentication", "foo-any")),
        ),
        FOO_TO_BAR,
        "200",
        named=("MeshTLSAuthentication bar/foo-any",),
    ),
    case(
        "identity-prefix-excludes-other-namespace",
        (
            SERVER,
            FOO_PREFIX,
            authz("foo-any", "Server", "httpbin", ("MeshTLSAuthentication", "foo-any")),
        ),
        BAR_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "service-account-referenced-directly",
        (SERVER, authz("bar-sleep", "Server", "httpbin", ("ServiceAccount", "sleep"))),
        BAR_TO_BAR,
        "200",
        named=("AuthorizationPolicy bar/bar-sleep",),
    ),
    case(
        "service-account-referenced-directly-excludes-others",
        (SERVER, authz("bar-sleep", "Server", "httpbin", ("ServiceAccount", "sleep"))),
        FOO_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "network-authentication-admits-unmeshed",
        (
            SERVER,
            ANY_NETWORK,
            authz("net", "Server", "httpbin", ("NetworkAuthentication", "anywhere")),
        ),
        LEGACY_TO_BAR,
        "200",
        named=("NetworkAuthentication bar/anywhere",),
        mtls=False,
    ),
    case(
        "network-authentication-admits-meshed",
        (
            SERVER,
            ANY_NETWORK,
            authz("net", "Server", "httpbin", ("NetworkAuthentication", "anywhere")),
        ),
        FOO_TO_BAR,
        "200",
        named=("AuthorizationPolicy bar/net",),
        mtls=True,
    ),
    case(
        "all-required-authentications-must-match-unmeshed-fails",
        (
            SERVER,
            ANY_NETWORK,
            ANY_MESHED,
            authz(
                "both",
                "Server",
                "httpbin",
                ("NetworkAuthentication", "anywhere"),
                ("MeshTLSAuthentication", "any-meshed"),
            ),
        ),
        LEGACY_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "all-required-authentications-must-match-meshed-passes",
        (
            SERVER,
            ANY_NETWORK,
            ANY_MESHED,
            authz(
                "both",
                "Server",
                "httpbin",
                ("NetworkAuthentication", "anywhere"),
                ("MeshTLSAuthentication", "any-meshed"),
            ),
        ),
        FOO_TO_BAR,
        "200",
        named=("AuthorizationPolicy bar/both",),
    ),
    case(
        "namespace-target-covers-its-servers",
        (
            SERVER,
            ANY_MESHED,
            authz("ns-wide", "Namespace", "bar", ("MeshTLSAuthentication", "any-meshed")),
        ),
        FOO_TO_BAR,
        "200",
        named=("AuthorizationPolicy bar/ns-wide",),
    ),
    case(
        "namespace-target-still-denies-unmatched",
        (
            SERVER,
            ANY_MESHED,
            authz("ns-wide", "Namespace", "bar", ("MeshTLSAuthentication", "any-meshed")),
        ),
        LEGACY_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "policy-for-another-server-does-not-authorize",
        (
            SERVER,
            server("other", app="other"),
            ANY_MESHED,
            authz("other", "Server", "other", ("MeshTLSAuthentication", "any-meshed")),
        ),
        FOO_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
]


@pytest.mark.parametrize("c", POLICIES)
def test_authorization_policy(c):
    run_case(linkerd_foo_bar_legacy, c)


# --------------------------------------------------------------------------- HTTPRoute
# ref §6, §9.9 + linkerd configuring-per-route-policy: once an HTTPRoute is attached to a
# Server, a request matching no route gets 404; a matched route with no satisfied policy 403.


def route(
    name: str, path: str, *, method: str | None = None, api: str = "policy.linkerd.io/v1beta3"
) -> str:
    group = "policy.linkerd.io"
    match_method = f"\n          method: {method}" if method else ""
    return f"""
    apiVersion: {api}
    kind: HTTPRoute
    metadata:
      name: {name}
      namespace: bar
    spec:
      parentRefs:
      - name: httpbin
        kind: Server
        group: {group}
      rules:
      - matches:
        - path:
            value: "{path}"
            type: PathPrefix{match_method}
"""


IP_ROUTE = (
    SERVER,
    route("ip-route", "/ip"),
    ANY_MESHED,
    authz("ip", "HTTPRoute", "ip-route", ("MeshTLSAuthentication", "any-meshed")),
)

ROUTES = [
    case(
        "matched-route-authorized",
        IP_ROUTE,
        FOO_TO_BAR,
        "200",
        named=("HTTPRoute bar/ip-route", "AuthorizationPolicy bar/ip"),
        mtls=True,
    ),
    case(
        "no-route-matches-is-404",
        IP_ROUTE,
        "foo/sleep=http://httpbin.bar:8000/headers",
        "404",
        named=("Server bar/httpbin",),
    ),
    case(
        "matched-route-unauthorized-is-403",
        IP_ROUTE,
        LEGACY_TO_BAR,
        "403",
        named=("HTTPRoute bar/ip-route",),
    ),
    case(
        "route-without-policy-is-403",
        (SERVER, route("ip-route", "/ip", api="policy.linkerd.io/v1beta1")),
        FOO_TO_BAR,
        "403",
        named=("HTTPRoute bar/ip-route",),
    ),
    case(
        "route-method-mismatch-is-404",
        (
            SERVER,
            route("get-anything", "/anything", method="GET"),
            ANY_MESHED,
            authz("get", "HTTPRoute", "get-anything", ("MeshTLSAuthentication", "any-meshed")),
        ),
        "foo/sleep=http://httpbin.bar:8000/anything",
        "404",
        method="POST",
        named=("Server bar/httpbin",),
    ),
    case(
        "route-method-match-is-200",
        (
            SERVER,
            route("get-anything", "/anything", method="GET"),
            ANY_MESHED,
            authz("get", "HTTPRoute", "get-anything", ("MeshTLSAuthentication", "any-meshed")),
        ),
        "foo/sleep=http://httpbin.bar:8000/anything",
        "200",
        named=("HTTPRoute bar/get-anything",),
    ),
    case(
        "gateway-api-httproute-works-the-same",
        (
            SERVER,
            route("ip-route", "/ip", api="gateway.networking.k8s.io/v1"),
            ANY_MESHED,
            authz("ip", "HTTPRoute", "ip-route", ("MeshTLSAuthentication", "any-meshed")),
        ),
        "foo/sleep=http://httpbin.bar:8000/headers",
        "404",
        named=("Server bar/httpbin",),
    ),
]


@pytest.mark.parametrize("c", ROUTES)
def test_http_route(c):
    run_case(linkerd_foo_bar_legacy, c)


# --------------------------------------------------------------------------- ServerAuthorization
# ref §6 "legacy ServerAuthorization" + linkerd reference/authorization-policy examples.


def server_authz(name: str, client: str, server_ref: str = "name: httpbin") -> str:
    return f"""
    apiVersion: policy.linkerd.io/v1beta1
    kind: ServerAuthorization
    metadata:
      name: {name}
      namespace: bar
    spec:
      server:
        {server_ref}
      client:
{client}"""


FOO_SLEEP_SA = server_authz(
    "foo-sleep",
    """        meshTLS:
          serviceAccounts:
          - name: sleep
            namespace: foo
""",
)
UNAUTHENTICATED = server_authz(
    "public",
    """        unauthenticated: true
        networks:
        - cidr: 0.0.0.0/0
        - cidr: ::/0
""",
)
ANY_IDENTITY = server_authz(
    "meshed",
    """        meshTLS:
          identities: ["*"]
""",
)
LABELLED_SERVER = server(labels="\n      labels:\n        tier: api")
BY_SELECTOR = server_authz(
    "by-selector",
    """        meshTLS:
          identities: ["*"]
""",
    server_ref="selector:\n          matchLabels:\n            tier: api",
)

LEGACY_AUTHZ = [
    case(
        "service-account-allowed",
        (SERVER, FOO_SLEEP_SA),
        FOO_TO_BAR,
        "200",
        named=("ServerAuthorization bar/foo-sleep",),
        mtls=True,
    ),
    case(
        "service-account-other-denied",
        (SERVER, FOO_SLEEP_SA),
        BAR_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "unauthenticated-true-admits-unmeshed",
        (SERVER, UNAUTHENTICATED),
        LEGACY_TO_BAR,
        "200",
        named=("ServerAuthorization bar/public",),
        mtls=False,
    ),
    case(
        "identities-star-admits-meshed",
        (SERVER, ANY_IDENTITY),
        FOO_TO_BAR,
        "200",
        named=("ServerAuthorization bar/meshed",),
    ),
    case(
        "identities-star-denies-unmeshed",
        (SERVER, ANY_IDENTITY),
        LEGACY_TO_BAR,
        "403",
        named=("Server bar/httpbin",),
    ),
    case(
        "server-selected-by-label",
        (LABELLED_SERVER, BY_SELECTOR),
        FOO_TO_BAR,
        "200",
        named=("ServerAuthorization bar/by-selector",),
    ),
]


@pytest.mark.parametrize("c", LEGACY_AUTHZ)
def test_server_authorization(c):
    run_case(linkerd_foo_bar_legacy, c)
