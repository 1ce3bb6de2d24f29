"""Istio AuthorizationPolicy, enforced by the server sidecar (reference §4, §9).

Topology: the Istio "Authentication Policy" task (httpbin + sleep in foo and bar with
sidecars, in legacy without). Unless noted, policies select httpbin in foo. Clients:
foo/sleep and bar/sleep speak mTLS (auto mTLS); legacy/sleep and any istio-proxy container
speak plaintext, so their principal and namespace are empty.
"""

from __future__ import annotations

import textwrap

import pytest
from topologies import (
    RBAC_DENIED,
    apply_yaml,
    case,
    explanation,
    httpbin_yaml,
    istio_authn_policy,
    probe,
    run_case,
    spiffe,
)


def ap(
    name: str,
    spec: str,
    *,
    namespace: str = "foo",
    api: str = "security.istio.io/v1",
    annotations: dict[str, str] | None = None,
) -> str:
    """An AuthorizationPolicy whose ``spec`` is given as (indented) YAML text."""
    meta = f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
    if annotations:
        meta += "  annotations:\n" + "".join(f'    {k}: "{v}"\n' for k, v in annotations.items())
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"apiVersion: {api}\nkind: AuthorizationPolicy\n{meta}spec:\n{body}\n"


V1BETA1 = "security.istio.io/v1beta1"
HTTPBIN = """
    selector:
      matchLabels:
        app: httpbin
"""
FOO_TO_FOO = "foo/sleep=http://httpbin.foo:8000/ip"
BAR_TO_FOO = "bar/sleep=http://httpbin.foo:8000/ip"
LEGACY_TO_FOO = "legacy/sleep=http://httpbin.foo:8000/ip"
PROXY_TO_FOO = "foo/sleep:istio-proxy=http://httpbin.foo:8000/ip"
DENIED = {"body": RBAC_DENIED}


def to_foo(path: str, source: str = "foo") -> str:
    return f"{source}/sleep=http://httpbin.foo:8000{path}"


ALLOW_NOTHING = ap("allow-nothing", "{}")
ALLOW_ALL = ap("allow-all", HTTPBIN + "    action: ALLOW\n    rules:\n    - {}\n")
DENY_ALL = ap("deny-all", HTTPBIN + "    action: DENY\n    rules:\n    - {}\n", api=V1BETA1)


def allow_from(name: str, field: str, values: str, *, action: str = "ALLOW") -> str:
    return ap(
        name,
        HTTPBIN
        + f"""
    action: {action}
    rules:
    - from:
      - source:
          {field}: {values}
""",
    )


def allow_to(name: str, field: str, values: str, *, action: str = "ALLOW") -> str:
    return ap(
        name,
        HTTPBIN
        + f"""
    action: {action}
    rules:
    - to:
      - operation:
          {field}: {values}
""",
    )


# --------------------------------------------------------------------------- actions
# ref §4 "Evaluation order" (CUSTOM deny > DENY > no ALLOW -> allow > ALLOW match > deny),
# "Empty rules semantics", dry-run annotation; AUDIT never changes the decision.

ACTIONS = [
    case("no-policy-allows", (), FOO_TO_FOO, "200", words=("PERMISSIVE",), mtls=True),
    case(
        "spec-empty-is-allow-nothing",
        ALLOW_NOTHING,
        FOO_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-nothing",),
        mtls=True,
        client=spiffe("foo", "sleep"),
        **DENIED,
    ),
    case(
        "allow-nothing-also-denies-plaintext",
        ALLOW_NOTHING,
        LEGACY_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-nothing",),
        mtls=False,
        **DENIED,
    ),
    case(
        "allow-without-rules-matches-nothing",
        ap("no-rules", HTTPBIN + "    action: ALLOW\n"),
        BAR_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/no-rules",),
        **DENIED,
    ),
    case(
        "allow-empty-rule-is-allow-all",
        ALLOW_ALL,
        LEGACY_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-all",),
    ),
    case(
        "deny-empty-rule-is-deny-all",
        DENY_ALL,
        FOO_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/deny-all",),
        **DENIED,
    ),
    case(
        "deny-without-rules-never-matches",
        ap("deny-nothing", HTTPBIN + "    action: DENY\n"),
        FOO_TO_FOO,
        "200",
        words=("PERMISSIVE|AuthorizationPolicy foo/deny-nothing",),
    ),
    case(
        "deny-beats-allow",
        (ALLOW_ALL, DENY_ALL),
        BAR_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/deny-all",),
        **DENIED,
    ),
    case(
        "audit-never-changes-the-decision",
        ap("audit-all", HTTPBIN + "    action: AUDIT\n    rules:\n    - {}\n"),
        FOO_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/audit-all",),
    ),
    case(
        "audit-does-not-rescue-allow-nothing",
        (ALLOW_NOTHING, ap("audit-all", HTTPBIN + "    action: AUDIT\n    rules:\n    - {}\n")),
        FOO_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-nothing",),
        **DENIED,
    ),
    case(
        "dry-run-deny-all-is-not-enforced",
        ap(
            "deny-all",
            HTTPBIN + "    action: DENY\n    rules:\n    - {}\n",
            annotations={"istio.io/dry-run": "true"},
        ),
        FOO_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/deny-all",),
    ),
    case(
        "dry-run-allow-nothing-is-not-enforced",
        ap("allow-nothing", "{}", annotations={"istio.io/dry-run": "true"}),
        LEGACY_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-nothing",),
    ),
    case(
        "custom-policy-not-matching-the-request-has-no-effect",
        ap(
            "ext-authz",
            HTTPBIN
            + """
    action: CUSTOM
    provider:
      name: my-ext-authz
    rules:
    - to:
      - operation:
          paths: ["/admin/*"]
""",
        ),
        FOO_TO_FOO,
        "200",
        words=("PERMISSIVE|CUSTOM",),
    ),
]


@pytest.mark.parametrize("c", ACTIONS)
def test_actions(c):
    run_case(istio_authn_policy, c)


def test_custom_policy_matching_the_request_is_noted():
    # ref §4 step 1: a matching CUSTOM policy defers to an external authorizer the engine
    # cannot run; the outcome is not asserted, only that the policy is called out.
    cluster = istio_authn_policy()
    apply_yaml(
        cluster,
        ap(
            "ext-authz",
            HTTPBIN
            + """
    action: CUSTOM
    provider:
      name: my-ext-authz
    rules:
    - to:
      - operation:
          paths: ["/ip"]
""",
        ),
    )
    out = probe(cluster, FOO_TO_FOO)
    text = explanation(out) + "\n" + "\n".join(getattr(out, "notes", ()))
    assert "AuthorizationPolicy foo/ext-authz" in text, text


# --------------------------------------------------------------------------- scope
# ref §4 "Scope": metadata.namespace + selector; no selector = whole namespace; root
# namespace applies everywhere and its selector matches in every namespace (§9.2);
# enforced only by a server sidecar.

SCOPE = [
    case(
        "no-selector-covers-the-namespace",
        ap("deny-all-foo", "action: DENY\nrules:\n- {}\n"),
        FOO_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/deny-all-foo",),
        **DENIED,
    ),
    case(
        "policy-stays-in-its-namespace",
        ap("deny-all-foo", "action: DENY\nrules:\n- {}\n"),
        "foo/sleep=http://httpbin.bar:8000/ip",
        "200",
        words=("PERMISSIVE",),
    ),
    case(
        "selector-matching-nothing-has-no-effect",
        ap("deny-other", "selector: {matchLabels: {app: other}}\naction: DENY\nrules:\n- {}\n"),
        FOO_TO_FOO,
        "200",
        words=("PERMISSIVE",),
    ),
    case(
        "no-sidecar-server-does-not-enforce",
        ap("deny-all-legacy", "action: DENY\nrules:\n- {}\n", namespace="legacy"),
        "foo/sleep=http://httpbin.legacy:8000/ip",
        "200",
        words=("no sidecar|without a sidecar",),
    ),
    case(
        "root-namespace-selector-applies-in-foo",
        ap(
            "deny-httpbin",
            HTTPBIN + "    action: DENY\n    rules:\n    - {}\n",
            namespace="istio-system",
        ),
        BAR_TO_FOO,
        "403",
        named=("AuthorizationPolicy istio-system/deny-httpbin",),
        **DENIED,
    ),
    case(
        "root-namespace-selector-applies-in-bar",
        ap(
            "deny-httpbin",
            HTTPBIN + "    action: DENY\n    rules:\n    - {}\n",
            namespace="istio-system",
            api=V1BETA1,
        ),
        "foo/sleep=http://httpbin.bar:8000/ip",
        "403",
        named=("AuthorizationPolicy istio-system/deny-httpbin",),
        **DENIED,
    ),
    case(
        "root-namespace-allow-nothing-covers-every-sidecar",
        ap("allow-nothing", "{}", namespace="istio-system"),
        "bar/sleep=http://httpbin.bar:8000/ip",
        "403",
        named=("AuthorizationPolicy istio-system/allow-nothing",),
        **DENIED,
    ),
    case(
        "root-namespace-policy-not-enforced-without-sidecar",
        ap("allow-nothing", "{}", namespace="istio-system"),
        "foo/sleep=http://httpbin.legacy:8000/ip",
        "200",
        words=("no sidecar|without a sidecar",),
    ),
]


@pytest.mark.parametrize("c", SCOPE)
def test_scope(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- sources
# ref §4 "Principals", "mTLS dependency", §9.6: principals / namespaces come from the peer
# certificate; plaintext has empty ones (a positive match fails, a negative match succeeds).

ALLOW_FOO_SLEEP = allow_from("allow-foo-sleep", "principals", '["cluster.local/ns/foo/sa/sleep"]')
ALLOW_NS_BAR = allow_from("allow-bar", "namespaces", '["bar"]')

SOURCES = [
    case(
        "principal-allows-matching-mtls-client",
        ALLOW_FOO_SLEEP,
        FOO_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-foo-sleep",),
        mtls=True,
        client=spiffe("foo", "sleep"),
    ),
    case(
        "principal-denies-other-mtls-client",
        ALLOW_FOO_SLEEP,
        BAR_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-foo-sleep",),
        mtls=True,
        **DENIED,
    ),
    case(
        "principal-denies-plaintext-client",
        ALLOW_FOO_SLEEP,
        LEGACY_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-foo-sleep",),
        mtls=False,
        **DENIED,
    ),
    case(
        "principal-denies-istio-proxy-curl-of-that-very-pod",
        ALLOW_FOO_SLEEP,
        PROXY_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-foo-sleep",),
        mtls=False,
        client=None,
        **DENIED,
    ),
    case(
        "namespaces-allows-that-namespace",
        ALLOW_NS_BAR,
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-bar",),
    ),
    case(
        "namespaces-denies-other-namespace",
        ALLOW_NS_BAR,
        FOO_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-bar",),
        **DENIED,
    ),
    case(
        "service-accounts-field-allows",
        allow_from("allow-sa", "serviceAccounts", '["bar/sleep"]'),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-sa",),
    ),
    case(
        "service-accounts-field-denies-other-sa",
        allow_from("allow-sa", "serviceAccounts", '["bar/sleep"]'),
        FOO_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-sa",),
        **DENIED,
    ),
    case(
        "deny-namespaces-does-not-stop-plaintext-from-it",
        allow_from("deny-legacy", "namespaces", '["legacy"]', action="DENY"),
        LEGACY_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/deny-legacy",),
        mtls=False,
    ),
    case(
        "deny-namespaces-stops-mtls-from-it",
        allow_from("deny-bar", "namespaces", '["bar"]', action="DENY"),
        BAR_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/deny-bar",),
        **DENIED,
    ),
    case(
        "allow-not-namespaces-lets-plaintext-in",
        allow_from("not-legacy", "notNamespaces", '["legacy"]'),
        LEGACY_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/not-legacy",),
        mtls=False,
    ),
    case(
        "allow-not-namespaces-excludes-mtls-from-it",
        allow_from("not-foo", "notNamespaces", '["foo"]'),
        FOO_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/not-foo",),
        **DENIED,
    ),
    case(
        "allow-not-namespaces-admits-other-mtls",
        allow_from("not-foo", "notNamespaces", '["foo"]'),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/not-foo",),
    ),
    case(
        "namespaces-star-requires-mtls",
        allow_from("mtls-only", "namespaces", '["*"]'),
        LEGACY_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/mtls-only",),
        **DENIED,
    ),
    case(
        "namespaces-star-admits-any-mtls",
        allow_from("mtls-only", "namespaces", '["*"]'),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/mtls-only",),
    ),
    case(
        "deny-not-namespaces-star-rejects-plaintext",
        allow_from("require-mtls", "notNamespaces", '["*"]', action="DENY"),
        LEGACY_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/require-mtls",),
        **DENIED,
    ),
    case(
        "deny-not-namespaces-star-passes-mtls",
        allow_from("require-mtls", "notNamespaces", '["*"]', action="DENY"),
        FOO_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/require-mtls",),
    ),
    case(
        "principals-presence-requires-an-identity",
        allow_from("any-principal", "principals", '["*"]'),
        LEGACY_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/any-principal",),
        **DENIED,
    ),
    case(
        "principals-prefix-match",
        allow_from("bar-principals", "principals", '["cluster.local/ns/bar/*"]'),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/bar-principals",),
    ),
    case(
        "principals-prefix-excludes-other-namespace",
        allow_from("bar-principals", "principals", '["cluster.local/ns/bar/*"]'),
        FOO_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/bar-principals",),
        **DENIED,
    ),
    case(
        "principals-suffix-match",
        allow_from("any-sleep", "principals", '["*/sa/sleep"]'),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/any-sleep",),
    ),
    case(
        "literal-other-trust-domain-does-not-match",
        allow_from("other-td", "principals", '["other-td/ns/bar/sa/sleep"]'),
        BAR_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/other-td",),
        **DENIED,
    ),
    case(
        "two-allow-policies-are-a-union",
        (ALLOW_FOO_SLEEP, ALLOW_NS_BAR),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-bar",),
    ),
    case(
        "union-still-denies-plaintext",
        (ALLOW_FOO_SLEEP, ALLOW_NS_BAR),
        LEGACY_TO_FOO,
        "403",
        words=("AuthorizationPolicy foo/allow-foo-sleep|AuthorizationPolicy foo/allow-bar",),
        **DENIED,
    ),
]


@pytest.mark.parametrize("c", SOURCES)
def test_sources(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- operations
# ref §4 "Rule matching" (fields ANDed, rules ORed) and "String matching" (exact, prefix,
# suffix, presence, {*} / {**} path templates, not* fields, when conditions).

ALLOW_PATH_IP = allow_to("allow-ip", "paths", '["/ip"]')
ALLOW_GET = allow_to("allow-get", "methods", '["GET"]')
FROM_FOO_TO_IP = ap(
    "foo-ip",
    HTTPBIN
    + """
    rules:
    - from:
      - source:
          namespaces: ["foo"]
      to:
      - operation:
          paths: ["/ip"]
""",
)
FROM_FOO_OR_TO_HEADERS = ap(
    "foo-or-headers",
    HTTPBIN
    + """
    rules:
    - from:
      - source:
          namespaces: ["foo"]
    - to:
      - operation:
          paths: ["/headers"]
""",
)
WHEN_ALICE = ap(
    "alice-only",
    HTTPBIN
    + """
    rules:
    - when:
      - key: request.headers[x-user]
        values: ["alice"]
""",
)
WHEN_NOT_BOB = ap(
    "not-bob",
    HTTPBIN
    + """
    rules:
    - when:
      - key: request.headers[x-user]
        notValues: ["bob"]
""",
)


def allowed(name: str) -> dict[str, tuple[str, ...]]:
    return {"named": (f"AuthorizationPolicy foo/{name}",)}


OPERATIONS = [
    case("exact-path-allows", ALLOW_PATH_IP, to_foo("/ip"), "200", **allowed("allow-ip")),
    case(
        "exact-path-denies-other",
        ALLOW_PATH_IP,
        to_foo("/headers"),
        "403",
        **allowed("allow-ip"),
        **DENIED,
    ),
    case(
        "prefix-path-allows",
        allow_to("allow-status", "paths", '["/status/*"]'),
        to_foo("/status/418"),
        "418",
        **allowed("allow-status"),
    ),
    case(
        "prefix-path-denies-other",
        allow_to("allow-status", "paths", '["/status/*"]'),
        to_foo("/ip"),
        "403",
        **allowed("allow-status"),
        **DENIED,
    ),
    case(
        "suffix-path-allows",
        allow_to("allow-ip-suffix", "paths", '["*/ip"]'),
        to_foo("/anything/ip"),
        "200",
        **allowed("allow-ip-suffix"),
    ),
    case(
        "suffix-path-denies-other",
        allow_to("allow-ip-suffix", "paths", '["*/ip"]'),
        to_foo("/headers"),
        "403",
        **allowed("allow-ip-suffix"),
        **DENIED,
    ),
    case(
        "template-single-segment-matches-one",
        allow_to("one-seg", "paths", '["/anything/{*}"]'),
        to_foo("/anything/one"),
        "200",
        **allowed("one-seg"),
    ),
    case(
        "template-single-segment-rejects-two",
        allow_to("one-seg", "paths", '["/anything/{*}"]'),
        to_foo("/anything/one/two"),
        "403",
        **allowed("one-seg"),
        **DENIED,
    ),
    case(
        "template-multi-segment-matches-two",
        allow_to("many-seg", "paths", '["/anything/{**}"]'),
        to_foo("/anything/one/two"),
        "200",
        **allowed("many-seg"),
    ),
    case(
        "template-multi-segment-rejects-other-prefix",
        allow_to("many-seg", "paths", '["/anything/{**}"]'),
        to_foo("/ip"),
        "403",
        **allowed("many-seg"),
        **DENIED,
    ),
    case("methods-allows-get", ALLOW_GET, to_foo("/anything"), "200", **allowed("allow-get")),
    case(
        "methods-denies-post",
        ALLOW_GET,
        to_foo("/anything"),
        "403",
        method="POST",
        **allowed("allow-get"),
        **DENIED,
    ),
    case(
        "deny-not-methods-denies-post",
        allow_to("only-get", "notMethods", '["GET"]', action="DENY"),
        to_foo("/anything"),
        "403",
        method="POST",
        **allowed("only-get"),
        **DENIED,
    ),
    case(
        "deny-not-methods-passes-get",
        allow_to("only-get", "notMethods", '["GET"]', action="DENY"),
        to_foo("/anything"),
        "200",
        **allowed("only-get"),
    ),
    case(
        "allow-not-paths-allows-other",
        allow_to("not-headers", "notPaths", '["/headers"]'),
        to_foo("/ip"),
        "200",
        **allowed("not-headers"),
    ),
    case(
        "allow-not-paths-denies-listed",
        allow_to("not-headers", "notPaths", '["/headers"]'),
        to_foo("/headers"),
        "403",
        **allowed("not-headers"),
        **DENIED,
    ),
    case(
        "deny-path-only-hits-that-path",
        allow_to("deny-headers", "paths", '["/headers"]', action="DENY"),
        to_foo("/headers"),
        "403",
        **allowed("deny-headers"),
        **DENIED,
    ),
    case(
        "deny-path-leaves-other-paths",
        allow_to("deny-headers", "paths", '["/headers"]', action="DENY"),
        to_foo("/ip"),
        "200",
        words=("PERMISSIVE|AuthorizationPolicy foo/deny-headers",),
    ),
    case(
        "from-and-to-in-one-rule-both-match",
        FROM_FOO_TO_IP,
        to_foo("/ip"),
        "200",
        **allowed("foo-ip"),
    ),
    case(
        "from-and-to-in-one-rule-path-fails",
        FROM_FOO_TO_IP,
        to_foo("/headers"),
        "403",
        **allowed("foo-ip"),
        **DENIED,
    ),
    case(
        "from-and-to-in-one-rule-source-fails",
        FROM_FOO_TO_IP,
        to_foo("/ip", "bar"),
        "403",
        **allowed("foo-ip"),
        **DENIED,
    ),
    case(
        "separate-from-and-to-rules-are-ored",
        FROM_FOO_OR_TO_HEADERS,
        to_foo("/headers", "bar"),
        "200",
        **allowed("foo-or-headers"),
    ),
    case(
        "separate-rules-neither-matches",
        FROM_FOO_OR_TO_HEADERS,
        to_foo("/ip", "bar"),
        "403",
        **allowed("foo-or-headers"),
        **DENIED,
    ),
    case(
        "when-header-value-matches",
        WHEN_ALICE,
        FOO_TO_FOO,
        "200",
        headers={"x-user": "alice"},
        **allowed("alice-only"),
    ),
    case(
        "when-header-value-differs",
        WHEN_ALICE,
        FOO_TO_FOO,
        "403",
        headers={"x-user": "bob"},
        **allowed("alice-only"),
        **DENIED,
    ),
    case("when-header-absent", WHEN_ALICE, FOO_TO_FOO, "403", **allowed("alice-only"), **DENIED),
    case(
        "when-not-values-excludes",
        WHEN_NOT_BOB,
        FOO_TO_FOO,
        "403",
        headers={"x-user": "bob"},
        **allowed("not-bob"),
        **DENIED,
    ),
    case(
        "when-not-values-admits-other",
        WHEN_NOT_BOB,
        FOO_TO_FOO,
        "200",
        headers={"x-user": "alice"},
        **allowed("not-bob"),
    ),
    # ref §4 "ports", §9.1: the workload (container) port 8080, not the Service port 8000
    case(
        "ports-container-port-matches",
        allow_to("port-8080", "ports", '["8080"]'),
        FOO_TO_FOO,
        "200",
        **allowed("port-8080"),
    ),
    case(
        "ports-service-port-does-not-match",
        allow_to("port-8000", "ports", '["8000"]'),
        FOO_TO_FOO,
        "403",
        **allowed("port-8000"),
        **DENIED,
    ),
    case(
        "deny-ports-container-port",
        allow_to("deny-8080", "ports", '["8080"]', action="DENY"),
        FOO_TO_FOO,
        "403",
        **allowed("deny-8080"),
        **DENIED,
    ),
]


@pytest.mark.parametrize("c", OPERATIONS)
def test_operations(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- TCP ports
# ref §4 "HTTP-only fields on TCP ports", §9.7: protocol from the Service port name (tcp*) or
# appProtocol; in DENY such fields match everything, in ALLOW the rule is dead. A denied TCP
# connection is closed by the server proxy: curl "000", exit 52.

TCP_SERVICE = httpbin_yaml(
    "foo", "httpbin-tcp", service_ports=[{"name": "tcp", "port": 9000, "targetPort": 8080}]
)
APP_PROTOCOL_SERVICE = httpbin_yaml(
    "foo",
    "httpbin-opaque",
    service_ports=[{"name": "echo", "port": 9000, "targetPort": 8080, "appProtocol": "tcp"}],
)
FOO_TO_TCP = "foo/sleep=http://httpbin-tcp.foo:9000/ip"
BAR_TO_TCP = "bar/sleep=http://httpbin-tcp.foo:9000/ip"


def tcp_ap(name: str, rules: str, *, action: str = "ALLOW", app: str = "httpbin-tcp") -> str:
    return ap(
        name,
        f"""
    selector:
      matchLabels:
        app: {app}
    action: {action}
    rules:
{textwrap.indent(textwrap.dedent(rules).strip(chr(10)), "    ")}
""",
    )


DENY_GET = """
- to:
  - operation:
      methods: ["GET"]
"""
FROM_FOO_SLEEP = """
- from:
  - source:
      principals: ["cluster.local/ns/foo/sa/sleep"]
"""
FROM_FOO_SLEEP_GET = (
    FROM_FOO_SLEEP
    + """
  to:
  - operation:
      methods: ["GET"]
"""
)

TCP = [
    case(
        "tcp-port-without-policy-passes",
        TCP_SERVICE,
        FOO_TO_TCP,
        "200",
        words=("PERMISSIVE",),
        mtls=True,
    ),
    case(
        "deny-http-only-field-on-tcp-denies-everything",
        (TCP_SERVICE, tcp_ap("deny-get", DENY_GET, action="DENY")),
        FOO_TO_TCP,
        "000/52",
        named=("AuthorizationPolicy foo/deny-get",),
    ),
    case(
        "same-deny-on-http-port-only-hits-get",
        tcp_ap("deny-get", DENY_GET, action="DENY", app="httpbin"),
        to_foo("/anything"),
        "200",
        method="POST",
        words=("PERMISSIVE|AuthorizationPolicy foo/deny-get",),
    ),
    case(
        "allow-http-only-field-on-tcp-is-a-dead-rule",
        (TCP_SERVICE, tcp_ap("allow-get", DENY_GET)),
        FOO_TO_TCP,
        "000/52",
        named=("AuthorizationPolicy foo/allow-get",),
    ),
    case(
        "allow-principal-on-tcp-works",
        (TCP_SERVICE, tcp_ap("allow-foo-sleep", FROM_FOO_SLEEP)),
        FOO_TO_TCP,
        "200",
        named=("AuthorizationPolicy foo/allow-foo-sleep",),
        mtls=True,
    ),
    case(
        "allow-principal-on-tcp-denies-others",
        (TCP_SERVICE, tcp_ap("allow-foo-sleep", FROM_FOO_SLEEP)),
        BAR_TO_TCP,
        "000/52",
        named=("AuthorizationPolicy foo/allow-foo-sleep",),
    ),
    case(
        "allow-principal-plus-method-on-tcp-is-dead",
        (TCP_SERVICE, tcp_ap("foo-sleep-get", FROM_FOO_SLEEP_GET)),
        FOO_TO_TCP,
        "000/52",
        named=("AuthorizationPolicy foo/foo-sleep-get",),
    ),
    case(
        "deny-namespace-on-tcp-hits-that-namespace",
        (
            TCP_SERVICE,
            tcp_ap("deny-bar", "- from:\n  - source:\n      namespaces: [bar]\n", action="DENY"),
        ),
        BAR_TO_TCP,
        "000/52",
        named=("AuthorizationPolicy foo/deny-bar",),
    ),
    case(
        "deny-namespace-on-tcp-passes-others",
        (
            TCP_SERVICE,
            tcp_ap("deny-bar", "- from:\n  - source:\n      namespaces: [bar]\n", action="DENY"),
        ),
        FOO_TO_TCP,
        "200",
        named=("AuthorizationPolicy foo/deny-bar",),
        mtls=True,
    ),
    case(
        "app-protocol-tcp-deny-paths-denies-everything",
        (
            APP_PROTOCOL_SERVICE,
            tcp_ap(
                "deny-admin",
                "- to:\n  - operation:\n      paths: [/admin]\n",
                action="DENY",
                app="httpbin-opaque",
            ),
        ),
        "foo/sleep=http://httpbin-opaque.foo:9000/ip",
        "000/52",
        named=("AuthorizationPolicy foo/deny-admin",),
    ),
    case(
        "allow-nothing-on-tcp-closes-the-connection",
        (TCP_SERVICE, ap("allow-nothing", "selector:\n  matchLabels:\n    app: httpbin-tcp\n")),
        FOO_TO_TCP,
        "000/52",
        named=("AuthorizationPolicy foo/allow-nothing",),
    ),
]


@pytest.mark.parametrize("c", TCP)
def test_tcp_ports(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- trust domain
# ref §4 "Principals" + istio.io authz-td-migration: in a policy, cluster.local stands for
# the mesh's trust domain and its aliases; the mesh's own domain and an alias match too; any
# other literal domain only matches itself. Identities use the mesh trust domain.


def td(name: str, principal: str) -> str:
    return allow_from(name, "principals", f'["{principal}"]')


TRUST_DOMAIN = [
    case(
        "cluster-local-in-policy-means-current-domain",
        td("allow-bar-sleep", "cluster.local/ns/bar/sa/sleep"),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-bar-sleep",),
        mtls=True,
        client=spiffe("bar", "sleep", "new-td"),
        server=spiffe("foo", "httpbin", "new-td"),
    ),
    case(
        "current-domain-literal-matches",
        td("allow-bar-sleep", "new-td/ns/bar/sa/sleep"),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-bar-sleep",),
    ),
    case(
        "old-domain-without-alias-does-not-match",
        td("allow-bar-sleep", "old-td/ns/bar/sa/sleep"),
        BAR_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-bar-sleep",),
        **DENIED,
    ),
]
TRUST_DOMAIN_ALIASES = [
    case(
        "alias-domain-literal-matches",
        td("allow-bar-sleep", "old-td/ns/bar/sa/sleep"),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-bar-sleep",),
        client=spiffe("bar", "sleep", "new-td"),
    ),
    case(
        "cluster-local-still-matches-with-aliases",
        td("allow-bar-sleep", "cluster.local/ns/bar/sa/sleep"),
        BAR_TO_FOO,
        "200",
        named=("AuthorizationPolicy foo/allow-bar-sleep",),
    ),
    case(
        "unrelated-domain-does-not-match-with-aliases",
        td("allow-bar-sleep", "other-td/ns/bar/sa/sleep"),
        BAR_TO_FOO,
        "403",
        named=("AuthorizationPolicy foo/allow-bar-sleep",),
        **DENIED,
    ),
]


@pytest.mark.parametrize("c", TRUST_DOMAIN)
def test_trust_domain(c):
    run_case(lambda: istio_authn_policy({"trustDomain": "new-td"}), c)


@pytest.mark.parametrize("c", TRUST_DOMAIN_ALIASES)
def test_trust_domain_aliases(c):
    run_case(
        lambda: istio_authn_policy({"trustDomain": "new-td", "trustDomainAliases": ["old-td"]}),
        c,
    )
