"""Istio PeerAuthentication: what a server sidecar accepts (reference §2, §1.3, §9).

Topology: the Istio "Authentication Policy" task (httpbin + sleep in foo and bar with
sidecars, in legacy without), or the "Mutual TLS Migration" task (legacy has only sleep).
httpbin's Service listens on 8000 and forwards to container port 8080.
"""

from __future__ import annotations

import pytest
from topologies import (
    Delete,
    apply_manifest,
    apply_yaml,
    case,
    expect,
    istio_authn_policy,
    istio_cluster,
    istio_mtls_migration,
    namespace_yaml,
    probe,
    run_case,
    run_setup,
    spiffe,
)

from meshtutor.errors import ManifestError

# --------------------------------------------------------------------------- snippets

MESH_STRICT = """
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata:
      name: default
      namespace: istio-system
    spec:
      mtls:
        mode: STRICT
"""
MESH_PERMISSIVE = MESH_STRICT.replace("STRICT", "PERMISSIVE")
MESH_DISABLE = MESH_STRICT.replace("STRICT", "DISABLE")
MESH_UNSET = MESH_STRICT.replace("STRICT", "UNSET")

NS_FOO_STRICT = """
    apiVersion: security.istio.io/v1beta1
    kind: PeerAuthentication
    metadata:
      name: default
      namespace: foo
    spec:
      mtls:
        mode: STRICT
"""
NS_FOO_PERMISSIVE = NS_FOO_STRICT.replace("STRICT", "PERMISSIVE")
NS_FOO_UNSET = NS_FOO_STRICT.replace("STRICT", "UNSET")
NS_FOO_DISABLE = NS_FOO_STRICT.replace("STRICT", "DISABLE")
NS_BAR_STRICT = NS_FOO_STRICT.replace("namespace: foo", "namespace: bar")


def workload_pa(namespace: str, name: str, mode: str, app: str = "httpbin", extra: str = "") -> str:
    return f"""
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata:
      name: {name}
      namespace: {namespace}
    spec:
      selector:
        matchLabels:
          app: {app}
      mtls:
        mode: {mode}
{extra}"""


def port_level(port: int, mode: str) -> str:
    return f"""      portLevelMtls:
        {port}:
          mode: {mode}
"""


BAR_HTTPBIN_STRICT = workload_pa("bar", "httpbin", "STRICT")
BAR_HTTPBIN_STRICT_8080_DISABLE = workload_pa(
    "bar", "httpbin", "STRICT", extra=port_level(8080, "DISABLE")
)
FOO_OVERWRITE_DISABLE = workload_pa("foo", "overwrite-example", "DISABLE")

PERMISSIVE_DEFAULT = ("PERMISSIVE",)
NO_SIDECAR = ("no sidecar|without a sidecar",)


# --------------------------------------------------------------------------- task matrices
# ref §2 + istio.io tasks/security/authentication/authn-policy (current, curl/sleep samples):
# the doc prints these matrices; sleep.X to httpbin.Y, 000 lines carry exit code 56.

AUTHN_STAGES: dict[str, tuple] = {
    # stage: (snippets applied in order, expected matrix, deciding PA per server namespace)
    "initial": (
        (),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.foo to httpbin.legacy: 200
        sleep.bar to httpbin.foo: 200
        sleep.bar to httpbin.bar: 200
        sleep.bar to httpbin.legacy: 200
        sleep.legacy to httpbin.foo: 200
        sleep.legacy to httpbin.bar: 200
        sleep.legacy to httpbin.legacy: 200
    """,
        {},
    ),
    "mesh-strict": (
        (MESH_STRICT,),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.foo to httpbin.legacy: 200
        sleep.bar to httpbin.foo: 200
        sleep.bar to httpbin.bar: 200
        sleep.bar to httpbin.legacy: 200
        sleep.legacy to httpbin.foo: 000/56
        sleep.legacy to httpbin.bar: 000/56
        sleep.legacy to httpbin.legacy: 200
    """,
        {
            "foo": "PeerAuthentication istio-system/default",
            "bar": "PeerAuthentication istio-system/default",
        },
    ),
    "namespace-foo-strict": (
        (NS_FOO_STRICT,),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.foo to httpbin.legacy: 200
        sleep.bar to httpbin.foo: 200
        sleep.bar to httpbin.bar: 200
        sleep.bar to httpbin.legacy: 200
        sleep.legacy to httpbin.foo: 000/56
        sleep.legacy to httpbin.bar: 200
        sleep.legacy to httpbin.legacy: 200
    """,
        {"foo": "PeerAuthentication foo/default"},
    ),
    "workload-bar-strict": (
        (NS_FOO_STRICT, BAR_HTTPBIN_STRICT),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.foo to httpbin.legacy: 200
        sleep.bar to httpbin.foo: 200
        sleep.bar to httpbin.bar: 200
        sleep.bar to httpbin.legacy: 200
        sleep.legacy to httpbin.foo: 000/56
        sleep.legacy to httpbin.bar: 000/56
        sleep.legacy to httpbin.legacy: 200
    """,
        {"foo": "PeerAuthentication foo/default", "bar": "PeerAuthentication bar/httpbin"},
    ),
    # the doc re-applies bar/httpbin with portLevelMtls {8080: DISABLE} (an update in place)
    "workload-bar-port-8080-disable": (
        (NS_FOO_STRICT, BAR_HTTPBIN_STRICT, BAR_HTTPBIN_STRICT_8080_DISABLE),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.foo to httpbin.legacy: 200
        sleep.bar to httpbin.foo: 200
        sleep.bar to httpbin.bar: 200
        sleep.bar to httpbin.legacy: 200
        sleep.legacy to httpbin.foo: 000/56
        sleep.legacy to httpbin.bar: 200
        sleep.legacy to httpbin.legacy: 200
    """,
        {"foo": "PeerAuthentication foo/default", "bar": "PeerAuthentication bar/httpbin"},
    ),
    "policy-precedence-overwrite-example": (
        (NS_FOO_STRICT, BAR_HTTPBIN_STRICT, BAR_HTTPBIN_STRICT_8080_DISABLE, FOO_OVERWRITE_DISABLE),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.bar to httpbin.foo: 200
        sleep.legacy to httpbin.foo: 200
        sleep.legacy to httpbin.bar: 200
        sleep.legacy to httpbin.legacy: 200
    """,
        {
            "foo": "PeerAuthentication foo/overwrite-example",
            "bar": "PeerAuthentication bar/httpbin",
        },
    ),
}

# Servers whose effective mode on port 8080 is DISABLE in a stage: auto mTLS honours it and
# sidecar clients send plaintext (ref §3 "Auto mTLS honours the server's PA", §9.4).
PLAINTEXT_SERVERS = {
    "workload-bar-port-8080-disable": {"bar"},
    "policy-precedence-overwrite-example": {"foo", "bar"},
}
SIDECAR_NAMESPACES = {"foo", "bar"}


def matrix_cases(stages: dict[str, tuple], plaintext: dict[str, set[str]]) -> list[object]:
    """One case per line of a task's printed matrix (``sleep.X to httpbin.Y: CODE``)."""
    cases = []
    for stage, (setup, table, deciders) in stages.items():
        for line in table.strip().splitlines():
            pair, result = (part.strip() for part in line.split(":"))
            client, _, server = pair.split(" ")
            src = client.removeprefix("sleep.")
            dst = server.removeprefix("httpbin.")
            both_sidecars = src in SIDECAR_NAMESPACES and dst in SIDECAR_NAMESPACES
            secure = both_sidecars and dst not in plaintext.get(stage, set())
            kwargs: dict[str, object] = {"mtls": secure}
            if secure:
                kwargs["client"] = spiffe(src, "sleep")
                kwargs["server"] = spiffe(dst, "httpbin")
            else:
                kwargs["client"] = None
            if dst not in SIDECAR_NAMESPACES:
                kwargs["words"] = NO_SIDECAR
            elif dst in deciders:
                kwargs["named"] = (deciders[dst],)
            else:
                kwargs["words"] = PERMISSIVE_DEFAULT
            cases.append(
                case(
                    f"{stage}:{pair}",
                    setup,
                    f"{src}/sleep=http://httpbin.{dst}:8000/ip",
                    result,
                    **kwargs,
                )
            )
    return cases


@pytest.mark.parametrize("c", matrix_cases(AUTHN_STAGES, PLAINTEXT_SERVERS))
def test_authentication_policy_task_matrix(c):
    # ref §2 scopes/precedence/portLevelMtls; istio.io authn-policy task matrices
    run_case(istio_authn_policy, c)


# ref §2, §9.13 + istio.io tasks/security/authentication/mtls-migration (index.md, test.sh):
# foo then mesh locked down while legacy (no sidecar) still calls; cleanup deletes both PAs.
MIGRATION_STAGES: dict[str, tuple] = {
    "initial": (
        (),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.bar to httpbin.foo: 200
        sleep.bar to httpbin.bar: 200
        sleep.legacy to httpbin.foo: 200
        sleep.legacy to httpbin.bar: 200
    """,
        {},
    ),
    "lock-down-namespace-foo": (
        (NS_FOO_STRICT,),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.bar to httpbin.foo: 200
        sleep.bar to httpbin.bar: 200
        sleep.legacy to httpbin.foo: 000/56
        sleep.legacy to httpbin.bar: 200
    """,
        {"foo": "PeerAuthentication foo/default"},
    ),
    "lock-down-entire-mesh": (
        (NS_FOO_STRICT, MESH_STRICT),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.bar to httpbin.foo: 200
        sleep.bar to httpbin.bar: 200
        sleep.legacy to httpbin.foo: 000/56
        sleep.legacy to httpbin.bar: 000/56
    """,
        {"foo": "PeerAuthentication foo/default", "bar": "PeerAuthentication istio-system/default"},
    ),
    "clean-up": (
        (NS_FOO_STRICT, MESH_STRICT, Delete(NS_FOO_STRICT), Delete(MESH_STRICT)),
        """
        sleep.foo to httpbin.foo: 200
        sleep.foo to httpbin.bar: 200
        sleep.bar to httpbin.foo: 200
        sleep.bar to httpbin.bar: 200
        sleep.legacy to httpbin.foo: 200
        sleep.legacy to httpbin.bar: 200
    """,
        {},
    ),
}


@pytest.mark.parametrize("c", matrix_cases(MIGRATION_STAGES, {}))
def test_mutual_tls_migration_task_matrix(c):
    run_case(istio_mtls_migration, c)


# --------------------------------------------------------------------------- precedence
# ref §2 "Scopes" and "Precedence": workload > namespace > mesh, UNSET inherits, mesh UNSET
# = PERMISSIVE; the name of a namespace-wide PA is not significant.

LEGACY_TO_FOO = "legacy/sleep=http://httpbin.foo:8000/ip"
LEGACY_TO_BAR = "legacy/sleep=http://httpbin.bar:8000/ip"

PRECEDENCE = [
    case(
        "nothing-configured-is-permissive",
        (),
        LEGACY_TO_FOO,
        "200",
        words=PERMISSIVE_DEFAULT,
        mtls=False,
        client=None,
        server=None,
    ),
    case(
        "mesh-strict-rejects-plaintext",
        MESH_STRICT,
        LEGACY_TO_FOO,
        "000/56",
        named=("PeerAuthentication istio-system/default",),
        mtls=False,
    ),
    case(
        "mesh-permissive-explicit",
        MESH_PERMISSIVE,
        LEGACY_TO_FOO,
        "200",
        named=("PeerAuthentication istio-system/default",),
        mtls=False,
    ),
    case("mesh-unset-means-permissive", MESH_UNSET, LEGACY_TO_FOO, "200", words=PERMISSIVE_DEFAULT),
    case(
        "namespace-permissive-overrides-mesh-strict",
        (MESH_STRICT, NS_FOO_PERMISSIVE),
        LEGACY_TO_FOO,
        "200",
        named=("PeerAuthentication foo/default",),
    ),
    case(
        "mesh-strict-still-applies-to-other-namespace",
        (MESH_STRICT, NS_FOO_PERMISSIVE),
        LEGACY_TO_BAR,
        "000/56",
        named=("PeerAuthentication istio-system/default",),
    ),
    case(
        "namespace-unset-inherits-mesh-strict",
        (MESH_STRICT, NS_FOO_UNSET),
        LEGACY_TO_FOO,
        "000/56",
        named=("PeerAuthentication istio-system/default",),
    ),
    case(
        "namespace-strict-overrides-mesh-disable",
        (MESH_DISABLE, NS_FOO_STRICT),
        LEGACY_TO_FOO,
        "000/56",
        named=("PeerAuthentication foo/default",),
    ),
    case(
        "namespace-strict-leaves-other-namespace",
        NS_FOO_STRICT,
        LEGACY_TO_BAR,
        "200",
        words=PERMISSIVE_DEFAULT,
    ),
    case(
        "workload-permissive-overrides-namespace-strict",
        (NS_FOO_STRICT, workload_pa("foo", "httpbin", "PERMISSIVE")),
        LEGACY_TO_FOO,
        "200",
        named=("PeerAuthentication foo/httpbin",),
    ),
    case(
        "workload-unset-inherits-namespace-strict",
        (NS_FOO_STRICT, workload_pa("foo", "httpbin", "UNSET")),
        LEGACY_TO_FOO,
        "000/56",
        named=("PeerAuthentication foo/default",),
    ),
    case(
        "workload-disable-overrides-mesh-strict",
        (MESH_STRICT, workload_pa("foo", "httpbin", "DISABLE")),
        LEGACY_TO_FOO,
        "200",
        named=("PeerAuthentication foo/httpbin",),
    ),
    case(
        "workload-strict-selector-matches-nothing",
        workload_pa("foo", "nobody", "STRICT", app="no-such-app"),
        LEGACY_TO_FOO,
        "200",
        words=PERMISSIVE_DEFAULT,
    ),
    case(
        "workload-selector-only-matches-own-namespace",
        workload_pa("bar", "httpbin", "STRICT"),
        LEGACY_TO_FOO,
        "200",
        words=PERMISSIVE_DEFAULT,
    ),
    case(
        "namespace-pa-name-is-not-significant",
        NS_FOO_STRICT.replace("name: default", "name: lock-down"),
        LEGACY_TO_FOO,
        "000/56",
        named=("PeerAuthentication foo/lock-down",),
    ),
    case(
        "pa-changes-apply-live-update-in-place",
        (NS_FOO_STRICT, NS_FOO_PERMISSIVE),
        LEGACY_TO_FOO,
        "200",
        named=("PeerAuthentication foo/default",),
    ),
    case(
        "deleting-pa-restores-default",
        (NS_FOO_STRICT, Delete(NS_FOO_STRICT)),
        LEGACY_TO_FOO,
        "200",
        words=PERMISSIVE_DEFAULT,
    ),
    # sidecar to sidecar under STRICT: mutual TLS with both SPIFFE identities
    case(
        "strict-accepts-sidecar-mtls",
        NS_FOO_STRICT,
        "bar/sleep=http://httpbin.foo:8000/headers",
        "200",
        named=("PeerAuthentication foo/default",),
        mtls=True,
        client=spiffe("bar", "sleep"),
        server=spiffe("foo", "httpbin"),
    ),
]


@pytest.mark.parametrize("c", PRECEDENCE)
def test_precedence(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- root namespace
# ref §2 "A PA with a selector placed in the root namespace is ignored", §9.2; the root
# namespace is meshConfig.rootNamespace (default istio-system).

ROOT_SELECTOR_STRICT = workload_pa("istio-system", "httpbin-everywhere", "STRICT")
ROOT_SELECTOR_DISABLE = workload_pa("istio-system", "httpbin-everywhere", "DISABLE")

ROOT_NAMESPACE = [
    case(
        "root-pa-with-selector-is-ignored",
        ROOT_SELECTOR_STRICT,
        LEGACY_TO_FOO,
        "200",
        words=PERMISSIVE_DEFAULT,
    ),
    case(
        "root-pa-with-selector-ignored-in-every-namespace",
        ROOT_SELECTOR_STRICT,
        LEGACY_TO_BAR,
        "200",
        words=PERMISSIVE_DEFAULT,
    ),
    case(
        "root-pa-with-selector-does-not-relax-mesh-strict",
        (MESH_STRICT, ROOT_SELECTOR_DISABLE),
        LEGACY_TO_FOO,
        "000/56",
        named=("PeerAuthentication istio-system/default",),
    ),
]


@pytest.mark.parametrize("c", ROOT_NAMESPACE)
def test_root_namespace(c):
    run_case(istio_authn_policy, c)


@pytest.mark.parametrize(
    ("pa_namespace", "result", "named"),
    [
        # ref §2 Scopes: mesh-wide = root namespace = meshConfig.rootNamespace
        pytest.param(
            "istio-config",
            "000/56",
            "PeerAuthentication istio-config/default",
            id="custom-root-namespace-pa-is-mesh-wide",
        ),
        pytest.param(
            "istio-system",
            "200",
            None,
            id="istio-system-is-just-a-namespace-when-root-is-elsewhere",
        ),
    ],
)
def test_custom_root_namespace(pa_namespace, result, named):
    cluster = istio_cluster({"rootNamespace": "istio-config"})
    apply_yaml(cluster, namespace_yaml("istio-config"))
    apply_manifest(cluster, "samples/namespaces.yaml")
    for ns in ("foo", "legacy"):
        apply_manifest(cluster, "samples/httpbin.yaml", ns)
        apply_manifest(cluster, "samples/sleep.yaml", ns)
    run_setup(cluster, [MESH_STRICT.replace("istio-system", pa_namespace)])
    out = probe(cluster, LEGACY_TO_FOO)
    if named:
        expect(out, result, named=(named,))
    else:
        expect(out, result, words=PERMISSIVE_DEFAULT)


# --------------------------------------------------------------------------- duplicates
# ref §2 Precedence, §9.3: several mesh-level / namespace-level (or matching workload) PAs:
# the OLDEST (creation order) wins, whatever the names sort like.

DUPLICATES = [
    case(
        "namespace-duplicates-oldest-strict-wins",
        (
            NS_FOO_STRICT.replace("name: default", "name: zz-strict"),
            NS_FOO_PERMISSIVE.replace("name: default", "name: aa-permissive"),
        ),
        LEGACY_TO_FOO,
        "000/56",
        named=("PeerAuthentication foo/zz-strict",),
    ),
    case(
        "namespace-duplicates-oldest-permissive-wins",
        (
            NS_FOO_PERMISSIVE.replace("name: default", "name: zz-permissive"),
            NS_FOO_STRICT.replace("name: default", "name: aa-strict"),
        ),
        LEGACY_TO_FOO,
        "200",
        named=("PeerAuthentication foo/zz-permissive",),
    ),
    case(
        "mesh-duplicates-oldest-strict-wins",
        (
            MESH_STRICT.replace("name: default", "name: zz-strict"),
            MESH_PERMISSIVE.replace("name: default", "name: aa-permissive"),
        ),
        LEGACY_TO_BAR,
        "000/56",
        named=("PeerAuthentication istio-system/zz-strict",),
    ),
    case(
        "mesh-duplicates-oldest-permissive-wins",
        (
            MESH_PERMISSIVE.replace("name: default", "name: zz-permissive"),
            MESH_STRICT.replace("name: default", "name: aa-strict"),
        ),
        LEGACY_TO_BAR,
        "200",
        named=("PeerAuthentication istio-system/zz-permissive",),
    ),
    case(
        "workload-duplicates-oldest-wins",
        (
            workload_pa("foo", "zz-strict", "STRICT"),
            workload_pa("foo", "aa-permissive", "PERMISSIVE"),
        ),
        LEGACY_TO_FOO,
        "000/56",
        named=("PeerAuthentication foo/zz-strict",),
    ),
    case(
        "deleting-the-oldest-lets-the-next-oldest-decide",
        (
            NS_FOO_STRICT.replace("name: default", "name: zz-strict"),
            NS_FOO_PERMISSIVE.replace("name: default", "name: aa-permissive"),
            Delete(NS_FOO_STRICT.replace("name: default", "name: zz-strict")),
        ),
        LEGACY_TO_FOO,
        "200",
        named=("PeerAuthentication foo/aa-permissive",),
    ),
    case(
        "duplicates-in-one-file-keep-document-order",
        (
            NS_FOO_STRICT.replace("name: default", "name: zz-strict")
            + "---\n"
            + NS_FOO_PERMISSIVE.replace("name: default", "name: aa-permissive"),
        ),
        LEGACY_TO_FOO,
        "000/56",
        named=("PeerAuthentication foo/zz-strict",),
    ),
]


@pytest.mark.parametrize("c", DUPLICATES)
def test_oldest_duplicate_wins(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- portLevelMtls
# ref §2 portLevelMtls, §9.1: keys are the *container* port (8080), not the Service port
# (8000); a per-port UNSET inherits the composed workload mode; auto mTLS honours a
# port-level DISABLE (§3).

PORT_LEVEL = [
    case(
        "port-8080-disable-admits-plaintext",
        BAR_HTTPBIN_STRICT_8080_DISABLE,
        LEGACY_TO_BAR,
        "200",
        named=("PeerAuthentication bar/httpbin",),
        mtls=False,
    ),
    case(
        "service-port-8000-key-does-not-match",
        workload_pa("bar", "httpbin", "STRICT", extra=port_level(8000, "DISABLE")),
        LEGACY_TO_BAR,
        "000/56",
        named=("PeerAuthentication bar/httpbin",),
    ),
    case(
        "port-8080-strict-on-permissive-workload",
        workload_pa("bar", "httpbin", "PERMISSIVE", extra=port_level(8080, "STRICT")),
        LEGACY_TO_BAR,
        "000/56",
        named=("PeerAuthentication bar/httpbin",),
    ),
    case(
        "port-8000-strict-key-ignored",
        workload_pa("bar", "httpbin", "PERMISSIVE", extra=port_level(8000, "STRICT")),
        LEGACY_TO_BAR,
        "200",
        named=("PeerAuthentication bar/httpbin",),
    ),
    case(
        "port-unset-inherits-workload-permissive",
        (
            NS_BAR_STRICT,
            workload_pa("bar", "httpbin", "PERMISSIVE", extra=port_level(8080, "UNSET")),
        ),
        LEGACY_TO_BAR,
        "200",
        named=("PeerAuthentication bar/httpbin",),
    ),
    case(
        "port-disable-under-namespace-strict",
        (NS_BAR_STRICT, workload_pa("bar", "httpbin", "UNSET", extra=port_level(8080, "DISABLE"))),
        LEGACY_TO_BAR,
        "200",
        named=("PeerAuthentication bar/httpbin",),
    ),
    case(
        "sidecar-client-sends-plaintext-to-port-level-disable",
        BAR_HTTPBIN_STRICT_8080_DISABLE,
        "foo/sleep=http://httpbin.bar:8000/ip",
        "200",
        named=("PeerAuthentication bar/httpbin",),
        mtls=False,
        client=None,
        server=None,
    ),
]


@pytest.mark.parametrize("c", PORT_LEVEL)
def test_port_level_mtls(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- no sidecar, DISABLE
# ref §1.5, §2 "PA only affects inbound at sidecars"; §3 auto mTLS honours DISABLE.

NO_SIDECAR_AND_DISABLE = [
    case(
        "no-sidecar-server-ignores-namespace-strict",
        NS_FOO_STRICT.replace("namespace: foo", "namespace: legacy"),
        "legacy/sleep=http://httpbin.legacy:8000/ip",
        "200",
        words=NO_SIDECAR,
        mtls=False,
    ),
    case(
        "no-sidecar-server-ignores-workload-strict",
        workload_pa("legacy", "httpbin", "STRICT"),
        "bar/sleep=http://httpbin.legacy:8000/ip",
        "200",
        words=NO_SIDECAR,
        mtls=False,
        server=None,
    ),
    case(
        "mesh-strict-sidecar-client-to-no-sidecar-server",
        MESH_STRICT,
        "foo/sleep=http://httpbin.legacy:8000/ip",
        "200",
        words=NO_SIDECAR,
        mtls=False,
    ),
    case(
        "namespace-disable-sidecar-client-sends-plaintext",
        NS_FOO_DISABLE,
        "bar/sleep=http://httpbin.foo:8000/ip",
        "200",
        named=("PeerAuthentication foo/default",),
        mtls=False,
        client=None,
        server=None,
    ),
    case(
        "namespace-disable-admits-plaintext-client",
        NS_FOO_DISABLE,
        LEGACY_TO_FOO,
        "200",
        named=("PeerAuthentication foo/default",),
        mtls=False,
    ),
    case(
        "mesh-disable-sidecars-talk-plaintext",
        MESH_DISABLE,
        "foo/sleep=http://httpbin.bar:8000/ip",
        "200",
        named=("PeerAuthentication istio-system/default",),
        mtls=False,
        client=None,
    ),
]


@pytest.mark.parametrize("c", NO_SIDECAR_AND_DISABLE)
def test_no_sidecar_and_disable(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- istio-proxy curl
# ref §1.3-1.4, §9.8: curl run as uid 1337 in the istio-proxy container bypasses its own
# sidecar: plaintext, no client identity; judged by the server's PA.

ISTIO_PROXY = [
    case(
        "istio-proxy-container-to-strict",
        NS_BAR_STRICT,
        "foo/sleep:istio-proxy=http://httpbin.bar:8000/ip",
        "000/56",
        named=("PeerAuthentication bar/default",),
        mtls=False,
        client=None,
    ),
    case(
        "istio-proxy-container-to-permissive",
        (),
        "foo/sleep:istio-proxy=http://httpbin.bar:8000/ip",
        "200",
        words=PERMISSIVE_DEFAULT,
        mtls=False,
        client=None,
        server=None,
    ),
    case(
        "istio-proxy-container-to-mesh-strict",
        MESH_STRICT,
        "bar/sleep:istio-proxy=http://httpbin.bar:8000/ip",
        "000/56",
        named=("PeerAuthentication istio-system/default",),
    ),
    case(
        "app-container-same-pod-gets-mtls",
        NS_BAR_STRICT,
        "foo/sleep:sleep=http://httpbin.bar:8000/ip",
        "200",
        named=("PeerAuthentication bar/default",),
        mtls=True,
        client=spiffe("foo", "sleep"),
    ),
]


@pytest.mark.parametrize("c", ISTIO_PROXY)
def test_istio_proxy_container(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- invalid
# ref §2 Modes; portLevelMtls "requires selector" (CRD validation).


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(MESH_STRICT.replace("STRICT", "STRICTER"), id="unknown-mode"),
        pytest.param(
            NS_FOO_STRICT + port_level(8080, "DISABLE"), id="port-level-mtls-without-selector"
        ),
    ],
)
def test_invalid_peer_authentication(text):
    cluster = istio_authn_policy()
    with pytest.raises(ManifestError):
        apply_yaml(cluster, text)
