"""Istio auto mTLS and DestinationRule TLS: what a client sidecar sends (reference §3, §9).

Topology: the Istio "Authentication Policy" task (httpbin + sleep in foo and bar with
sidecars, in legacy without). httpbin's Service port is 8000, its container port 8080.
"""

from __future__ import annotations

import pytest
from topologies import (
    ENVOY_503_PREFIX,
    Delete,
    case,
    httpbin_yaml,
    istio_authn_policy,
    run_case,
    spiffe,
)

API_VERSIONS = (
    "networking.istio.io/v1alpha3",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1",
)


def dr(
    namespace: str,
    name: str,
    host: str,
    mode: str | None,
    *,
    api: str = "networking.istio.io/v1",
    export_to: str | None = None,
    extra: str = "",
) -> str:
    """A DestinationRule; ``mode=None`` writes a trafficPolicy without a tls block."""
    export = f'\n      exportTo: ["{export_to}"]' if export_to else ""
    tls = (
        f"\n        tls:\n          mode: {mode}"
        if mode
        else "\n        loadBalancer:\n          simple: ROUND_ROBIN"
    )
    return f"""
    apiVersion: {api}
    kind: DestinationRule
    metadata:
      name: {name}
      namespace: {namespace}
    spec:
      host: "{host}"{export}
      trafficPolicy:{tls}
{extra}"""


def pa(namespace: str, mode: str) -> str:
    return f"""
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata:
      name: default
      namespace: {namespace}
    spec:
      mtls:
        mode: {mode}
"""


def port_settings(*entries: tuple[int, str]) -> str:
    lines = ["        portLevelSettings:"]
    for port, mode in entries:
        lines += [
            "        - port:",
            f"            number: {port}",
            "          tls:",
            f"            mode: {mode}",
        ]
    return "\n".join(lines) + "\n"


BAR = "httpbin.bar.svc.cluster.local"
FOO = "httpbin.foo.svc.cluster.local"
LEGACY = "httpbin.legacy.svc.cluster.local"
BAR_STRICT = pa("bar", "STRICT")
FOO_STRICT = pa("foo", "STRICT")
FOO_DISABLE = pa("foo", "DISABLE")
FOO_TO_BAR = "foo/sleep=http://httpbin.bar:8000/ip"
BAR_TO_BAR = "bar/sleep=http://httpbin.bar:8000/ip"
FOO_TO_LEGACY = "foo/sleep=http://httpbin.legacy:8000/ip"
E503 = {"body_prefix": ENVOY_503_PREFIX, "mtls": False}
AUTO = ("auto",)

# --------------------------------------------------------------------------- auto mTLS
# ref §3 "Auto mTLS": per endpoint (does the destination pod have a sidecar?), and it
# honours the server's PA DISABLE (§9.4).

AUTO_MTLS = [
    case(
        "sidecar-to-sidecar-is-mtls",
        (),
        FOO_TO_BAR,
        "200",
        words=AUTO,
        mtls=True,
        client=spiffe("foo", "sleep"),
        server=spiffe("bar", "httpbin"),
    ),
    case(
        "sidecar-to-no-sidecar-is-plaintext",
        (),
        FOO_TO_LEGACY,
        "200",
        words=("no sidecar|without a sidecar",),
        mtls=False,
        client=None,
        server=None,
    ),
    case(
        "auto-mtls-satisfies-strict",
        BAR_STRICT,
        FOO_TO_BAR,
        "200",
        words=AUTO,
        named=("PeerAuthentication bar/default",),
        mtls=True,
    ),
    # the endpoint decides, not the namespace: an opted-out pod in injected foo
    case(
        "opted-out-endpoint-in-injected-namespace-gets-plaintext",
        httpbin_yaml("foo", "httpbin-plain", pod_labels={"sidecar.istio.io/inject": "false"}),
        "bar/sleep=http://httpbin-plain.foo:8000/ip",
        "200",
        words=("no sidecar|without a sidecar",),
        mtls=False,
        server=None,
    ),
    case(
        "auto-mtls-honours-server-namespace-disable",
        FOO_DISABLE,
        "bar/sleep=http://httpbin.foo:8000/ip",
        "200",
        named=("PeerAuthentication foo/default",),
        mtls=False,
        client=None,
        server=None,
    ),
]


@pytest.mark.parametrize("c", AUTO_MTLS)
def test_auto_mtls(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- explicit tls
# ref §3 "Explicit DR trafficPolicy.tls overrides auto mTLS completely" + "Mismatch
# outcomes" table; §9.5 a DR without tls leaves auto mTLS in charge.

EXPLICIT_TLS = [
    case(
        "disable-to-strict-is-503",
        (BAR_STRICT, dr("bar", "httpbin", BAR, "DISABLE")),
        FOO_TO_BAR,
        "503",
        named=("DestinationRule bar/httpbin", "PeerAuthentication bar/default"),
        **E503,
    ),
    case(
        "disable-to-permissive-is-plaintext-200",
        dr("bar", "httpbin", BAR, "DISABLE", api=API_VERSIONS[0]),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule bar/httpbin",),
        mtls=False,
        client=None,
    ),
    case(
        "istio-mutual-to-no-sidecar-is-503",
        dr("legacy", "httpbin", LEGACY, "ISTIO_MUTUAL"),
        FOO_TO_LEGACY,
        "503",
        named=("DestinationRule legacy/httpbin",),
        **E503,
    ),
    case(
        "istio-mutual-to-pa-disable-is-503",
        (FOO_DISABLE, dr("foo", "httpbin", FOO, "ISTIO_MUTUAL", api=API_VERSIONS[1])),
        "bar/sleep=http://httpbin.foo:8000/ip",
        "503",
        named=("DestinationRule foo/httpbin", "PeerAuthentication foo/default"),
        **E503,
    ),
    case(
        "istio-mutual-to-strict-is-mtls",
        (BAR_STRICT, dr("bar", "httpbin", BAR, "ISTIO_MUTUAL")),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule bar/httpbin",),
        mtls=True,
        client=spiffe("foo", "sleep"),
        server=spiffe("bar", "httpbin"),
    ),
    case(
        "istio-mutual-to-permissive-is-mtls",
        dr("bar", "httpbin", BAR, "ISTIO_MUTUAL", api=API_VERSIONS[0]),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule bar/httpbin",),
        mtls=True,
    ),
    # SIMPLE = TLS origination without a client certificate: neither a plain-HTTP app nor a
    # STRICT sidecar completes it, so Envoy answers 503 (ref §3 SIMPLE; §2 STRICT needs a
    # client cert).
    case(
        "simple-tls-to-plain-http-app-is-503",
        dr("legacy", "httpbin", LEGACY, "SIMPLE"),
        FOO_TO_LEGACY,
        "503",
        named=("DestinationRule legacy/httpbin",),
        **E503,
    ),
    case(
        "simple-tls-to-strict-sidecar-is-503",
        (BAR_STRICT, dr("bar", "httpbin", BAR, "SIMPLE")),
        FOO_TO_BAR,
        "503",
        named=("DestinationRule bar/httpbin",),
        **E503,
    ),
    case(
        "dr-without-tls-keeps-auto-mtls-to-strict",
        (BAR_STRICT, dr("bar", "httpbin", BAR, None)),
        FOO_TO_BAR,
        "200",
        words=AUTO,
        mtls=True,
    ),
    case(
        "dr-without-tls-keeps-auto-plaintext-to-no-sidecar",
        dr("legacy", "httpbin", LEGACY, None, api=API_VERSIONS[1]),
        FOO_TO_LEGACY,
        "200",
        words=("no sidecar|without a sidecar",),
        mtls=False,
    ),
    # subset traffic policies only apply when a VirtualService routes to the subset
    case(
        "subset-tls-without-virtualservice-is-ignored",
        (
            BAR_STRICT,
            """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata:
      name: httpbin-subsets
      namespace: bar
    spec:
      host: httpbin.bar.svc.cluster.local
      subsets:
      - name: v1
        labels:
          version: v1
        trafficPolicy:
          tls:
            mode: DISABLE
""",
        ),
        FOO_TO_BAR,
        "200",
        words=AUTO,
        mtls=True,
    ),
    case(
        "dr-tls-update-applies-live",
        (
            BAR_STRICT,
            dr("bar", "httpbin", BAR, "DISABLE"),
            dr("bar", "httpbin", BAR, "ISTIO_MUTUAL"),
        ),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule bar/httpbin",),
        mtls=True,
    ),
    case(
        "deleting-the-dr-restores-auto-mtls",
        (
            BAR_STRICT,
            dr("bar", "httpbin", BAR, "DISABLE"),
            Delete(dr("bar", "httpbin", BAR, "DISABLE")),
        ),
        FOO_TO_BAR,
        "200",
        words=AUTO,
        mtls=True,
    ),
]


@pytest.mark.parametrize("c", EXPLICIT_TLS)
def test_explicit_tls(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- portLevelSettings
# ref §3 portLevelSettings, §9.1: matched against the *Service* port (8000), the opposite of
# PA portLevelMtls.

PORT_LEVEL = [
    case(
        "port-8000-disable-overrides-top-level-istio-mutual",
        (
            BAR_STRICT,
            dr("bar", "httpbin", BAR, "ISTIO_MUTUAL", extra=port_settings((8000, "DISABLE"))),
        ),
        FOO_TO_BAR,
        "503",
        named=("DestinationRule bar/httpbin",),
        **E503,
    ),
    case(
        "container-port-8080-entry-does-not-match",
        (
            BAR_STRICT,
            dr("bar", "httpbin", BAR, "ISTIO_MUTUAL", extra=port_settings((8080, "DISABLE"))),
        ),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule bar/httpbin",),
        mtls=True,
    ),
    case(
        "port-8000-istio-mutual-overrides-top-level-disable",
        (
            BAR_STRICT,
            dr("bar", "httpbin", BAR, "DISABLE", extra=port_settings((8000, "ISTIO_MUTUAL"))),
        ),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule bar/httpbin",),
        mtls=True,
    ),
    case(
        "container-port-8080-istio-mutual-leaves-top-level-disable",
        (
            BAR_STRICT,
            dr(
                "bar",
                "httpbin",
                BAR,
                "DISABLE",
                api=API_VERSIONS[0],
                extra=port_settings((8080, "ISTIO_MUTUAL")),
            ),
        ),
        FOO_TO_BAR,
        "503",
        named=("DestinationRule bar/httpbin",),
        **E503,
    ),
    # authn-policy (old): DISABLE at top, ISTIO_MUTUAL only on port 1234 -> 8000 plaintext
    case(
        "other-port-entry-leaves-8000-plaintext",
        dr("legacy", "httpbin", LEGACY, "DISABLE", extra=port_settings((1234, "ISTIO_MUTUAL"))),
        FOO_TO_LEGACY,
        "200",
        named=("DestinationRule legacy/httpbin",),
        mtls=False,
    ),
]


@pytest.mark.parametrize("c", PORT_LEVEL)
def test_port_level_settings(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- which DR applies
# ref §3 "Which DR applies": client namespace, then server namespace (if exported to the
# client), then the root namespace; a DR elsewhere is never consulted.

LOOKUP = [
    case(
        "client-namespace-dr-beats-server-namespace-dr",
        (
            BAR_STRICT,
            dr("foo", "httpbin-bar", BAR, "DISABLE"),
            dr("bar", "httpbin", BAR, "ISTIO_MUTUAL"),
        ),
        FOO_TO_BAR,
        "503",
        named=("DestinationRule foo/httpbin-bar",),
        **E503,
    ),
    case(
        "server-namespace-client-uses-its-own-dr",
        (
            BAR_STRICT,
            dr("foo", "httpbin-bar", BAR, "DISABLE"),
            dr("bar", "httpbin", BAR, "ISTIO_MUTUAL"),
        ),
        BAR_TO_BAR,
        "200",
        named=("DestinationRule bar/httpbin",),
        mtls=True,
    ),
    case(
        "client-namespace-dr-for-another-host-does-not-shadow",
        (
            BAR_STRICT,
            dr("foo", "httpbin-legacy", LEGACY, "ISTIO_MUTUAL"),
            dr("bar", "httpbin", BAR, "DISABLE"),
        ),
        FOO_TO_BAR,
        "503",
        named=("DestinationRule bar/httpbin",),
        **E503,
    ),
    case(
        "server-dr-exported-dot-is-invisible-to-other-namespaces",
        (BAR_STRICT, dr("bar", "httpbin", BAR, "DISABLE", export_to=".")),
        FOO_TO_BAR,
        "200",
        words=AUTO,
        mtls=True,
    ),
    case(
        "server-dr-exported-dot-applies-in-own-namespace",
        (BAR_STRICT, dr("bar", "httpbin", BAR, "DISABLE", export_to=".")),
        BAR_TO_BAR,
        "503",
        named=("DestinationRule bar/httpbin",),
        **E503,
    ),
    case(
        "server-dr-exported-star-applies-everywhere",
        (BAR_STRICT, dr("bar", "httpbin", BAR, "DISABLE", export_to="*")),
        FOO_TO_BAR,
        "503",
        named=("DestinationRule bar/httpbin",),
        **E503,
    ),
    # authn-policy @f3e6069: global *.local ISTIO_MUTUAL breaks httpbin.legacy (503) until a
    # DR in the server's namespace (preferred over the root one) disables TLS.
    case(
        "root-namespace-dr-applies-when-nothing-closer",
        dr("istio-system", "default", "*.local", "ISTIO_MUTUAL", api=API_VERSIONS[0]),
        FOO_TO_LEGACY,
        "503",
        named=("DestinationRule istio-system/default",),
        **E503,
    ),
    case(
        "server-namespace-dr-preferred-over-root",
        (
            dr("istio-system", "default", "*.local", "ISTIO_MUTUAL", api=API_VERSIONS[0]),
            dr("legacy", "httpbin-legacy", LEGACY, "DISABLE", api=API_VERSIONS[0]),
        ),
        FOO_TO_LEGACY,
        "200",
        named=("DestinationRule legacy/httpbin-legacy",),
        mtls=False,
    ),
    case(
        "root-namespace-dr-istio-mutual-to-strict",
        (BAR_STRICT, dr("istio-system", "default", "*.local", "ISTIO_MUTUAL")),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule istio-system/default",),
        mtls=True,
    ),
    case(
        "client-namespace-dr-preferred-over-root",
        (
            BAR_STRICT,
            dr("istio-system", "default", "*.local", "DISABLE"),
            dr("foo", "httpbin-bar", BAR, "ISTIO_MUTUAL"),
        ),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule foo/httpbin-bar",),
        mtls=True,
    ),
    case(
        "root-dr-exported-dot-stays-in-root",
        dr("istio-system", "default", "*.local", "ISTIO_MUTUAL", export_to="."),
        FOO_TO_LEGACY,
        "200",
        words=("no sidecar|without a sidecar",),
        mtls=False,
    ),
    case(
        "dr-in-unrelated-namespace-is-ignored",
        (BAR_STRICT, dr("legacy", "httpbin-bar", BAR, "DISABLE")),
        FOO_TO_BAR,
        "200",
        words=AUTO,
        mtls=True,
    ),
]


@pytest.mark.parametrize("c", LOOKUP)
def test_which_destination_rule_applies(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- host matching
# ref §3 "Host matching": a short host is qualified with the DR's *own* namespace; the most
# specific host match wins.

HOSTS = [
    case(
        "short-host-in-foo-does-not-match-httpbin-bar",
        (BAR_STRICT, dr("foo", "httpbin", "httpbin", "DISABLE")),
        FOO_TO_BAR,
        "200",
        words=AUTO,
        mtls=True,
    ),
    case(
        "short-host-in-foo-means-httpbin-foo",
        (FOO_STRICT, dr("foo", "httpbin", "httpbin", "DISABLE")),
        "foo/sleep=http://httpbin.foo:8000/ip",
        "503",
        named=("DestinationRule foo/httpbin",),
        **E503,
    ),
    case(
        "short-host-in-server-namespace-applies-to-other-clients",
        (FOO_STRICT, dr("foo", "httpbin", "httpbin", "DISABLE", api=API_VERSIONS[1])),
        "bar/sleep=http://httpbin.foo:8000/ip",
        "503",
        named=("DestinationRule foo/httpbin",),
        **E503,
    ),
    case(
        "short-host-in-legacy-means-httpbin-legacy",
        dr("legacy", "httpbin", "httpbin", "ISTIO_MUTUAL"),
        FOO_TO_LEGACY,
        "503",
        named=("DestinationRule legacy/httpbin",),
        **E503,
    ),
    case(
        "exact-host-beats-star-local",
        (
            dr("foo", "all", "*.local", "ISTIO_MUTUAL"),
            dr("foo", "httpbin-legacy", LEGACY, "DISABLE"),
        ),
        FOO_TO_LEGACY,
        "200",
        named=("DestinationRule foo/httpbin-legacy",),
        mtls=False,
    ),
    case(
        "exact-host-beats-namespace-wildcard",
        (
            BAR_STRICT,
            dr("foo", "bar-all", "*.bar.svc.cluster.local", "DISABLE"),
            dr("foo", "httpbin-bar", BAR, "ISTIO_MUTUAL"),
        ),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule foo/httpbin-bar",),
        mtls=True,
    ),
    case(
        "namespace-wildcard-alone-applies",
        (
            BAR_STRICT,
            dr("foo", "bar-all", "*.bar.svc.cluster.local", "DISABLE", api=API_VERSIONS[1]),
        ),
        FOO_TO_BAR,
        "503",
        named=("DestinationRule foo/bar-all",),
        **E503,
    ),
]


@pytest.mark.parametrize("c", HOSTS)
def test_host_matching(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- who is not a client
# ref §1.4, §1.5, §9.8: the istio-proxy container (uid 1337) and pods without a sidecar
# never use DestinationRules.

NOT_CAPTURED = [
    case(
        "istio-proxy-container-ignores-istio-mutual-dr",
        dr("legacy", "httpbin", LEGACY, "ISTIO_MUTUAL"),
        "foo/sleep:istio-proxy=http://httpbin.legacy:8000/ip",
        "200",
        words=("istio-proxy",),
        mtls=False,
        client=None,
    ),
    case(
        "istio-proxy-container-to-strict-is-reset-not-503",
        (BAR_STRICT, dr("bar", "httpbin", BAR, "DISABLE")),
        "foo/sleep:istio-proxy=http://httpbin.bar:8000/ip",
        "000/56",
        named=("PeerAuthentication bar/default",),
        mtls=False,
    ),
    case(
        "no-sidecar-client-ignores-its-namespace-dr",
        dr("legacy", "httpbin-foo", FOO, "ISTIO_MUTUAL"),
        "legacy/sleep=http://httpbin.foo:8000/ip",
        "200",
        words=("PERMISSIVE",),
        mtls=False,
        client=None,
    ),
]


@pytest.mark.parametrize("c", NOT_CAPTURED)
def test_uncaptured_clients_ignore_destination_rules(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- enableAutoMtls
# ref §3 Mismatch outcomes ("auto mTLS off, no DR -> 503"), network-issues page (a DR without
# tls means plaintext only when auto mTLS is disabled). Mesh settings: ConfigMap
# istio-system/istio, key mesh.

AUTO_OFF_WORDS = ("enableAutoMtls|ConfigMap istio-system/istio",)
AUTO_OFF = [
    case(
        "auto-off-no-dr-to-strict-is-503",
        BAR_STRICT,
        FOO_TO_BAR,
        "503",
        named=("PeerAuthentication bar/default",),
        words=AUTO_OFF_WORDS,
        **E503,
    ),
    case(
        "auto-off-no-dr-to-permissive-is-plaintext",
        (),
        FOO_TO_BAR,
        "200",
        words=AUTO_OFF_WORDS,
        mtls=False,
        client=None,
    ),
    case(
        "auto-off-istio-mutual-dr-to-strict",
        (BAR_STRICT, dr("bar", "httpbin", BAR, "ISTIO_MUTUAL")),
        FOO_TO_BAR,
        "200",
        named=("DestinationRule bar/httpbin",),
        mtls=True,
    ),
    case(
        "auto-off-dr-without-tls-to-strict-is-503",
        (BAR_STRICT, dr("bar", "httpbin", BAR, None)),
        FOO_TO_BAR,
        "503",
        named=("PeerAuthentication bar/default",),
        **E503,
    ),
]


@pytest.mark.parametrize("c", AUTO_OFF)
def test_enable_auto_mtls_false(c):
    run_case(lambda: istio_authn_policy({"enableAutoMtls": False}), c)
