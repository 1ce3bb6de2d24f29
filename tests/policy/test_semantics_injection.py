"""Sidecar / proxy injection, decided at pod creation (reference §1.1, §6 "Injection").

Whether a pod has a proxy is observed through probes: with automatic mTLS, a hop is mutual
TLS only when both pods have one, and only a pod with a proxy has an identity. The fixed
other end is foo/sleep or httpbin.foo from the foo/bar/legacy topology (foo injected).

Istio's rules (istio.io setup/additional-setup/sidecar-injection, "Controlling the injection
policy"): namespace label istio-injection=enabled|disabled, pod label
sidecar.istio.io/inject="true"|"false"; if either is disabled the pod is not injected, else
if either is enabled it is, else not. Linkerd: annotation linkerd.io/inject on the namespace
or the pod template; "disabled" on the pod opts out. Relabelling does nothing to running pods
until they are re-created (rollout restart).
"""

from __future__ import annotations

import pytest
from topologies import (
    Restart,
    case,
    httpbin_yaml,
    istio_authn_policy,
    l5d,
    linkerd_foo_bar_legacy,
    namespace_yaml,
    run_case,
    sleep_yaml,
    spiffe,
)

ENABLED = {"istio-injection": "enabled"}
DISABLED = {"istio-injection": "disabled"}
POD_TRUE = {"sidecar.istio.io/inject": "true"}
POD_FALSE = {"sidecar.istio.io/inject": "false"}
# The namespace label decides -> "Namespace inj" is named. A pod-template label decides ->
# the Deployment or its pod-template label is named. The other end (foo) always has a
# sidecar, so these words cannot come from its line.
BY_NAMESPACE = ("Namespace inj",)
BY_POD = ("Deployment inj/httpbin|sidecar.istio.io/inject",)
BY_CLIENT_POD = ("Deployment inj/sleep|sidecar.istio.io/inject",)
NO_LABEL = ("no sidecar|without a sidecar",)
NO_CLIENT_SIDECAR = NO_LABEL
FOO_TO_INJ = "foo/sleep=http://httpbin.inj:8000/ip"
INJ_TO_FOO = "inj/sleep=http://httpbin.foo:8000/ip"


def server_in_inj(
    ns_labels: dict[str, str],
    pod_labels: dict[str, str],
    injected: bool,
    words: tuple[str, ...],
    case_id: str,
) -> object:
    named = tuple(w for w in words if w.startswith("Namespace ") and "|" not in w)
    return case(
        case_id,
        (namespace_yaml("inj", labels=ns_labels), httpbin_yaml("inj", pod_labels=pod_labels)),
        FOO_TO_INJ,
        "200",
        named=named,
        words=tuple(w for w in words if w not in named),
        mtls=injected,
        server=spiffe("inj", "httpbin") if injected else None,
        client=spiffe("foo", "sleep") if injected else None,
    )


def client_in_inj(
    ns_labels: dict[str, str],
    pod_labels: dict[str, str],
    injected: bool,
    words: tuple[str, ...],
    case_id: str,
) -> object:
    named = tuple(w for w in words if w.startswith("Namespace ") and "|" not in w)
    return case(
        case_id,
        (namespace_yaml("inj", labels=ns_labels), sleep_yaml("inj", pod_labels=pod_labels)),
        INJ_TO_FOO,
        "200",
        named=named,
        words=tuple(w for w in words if w not in named),
        mtls=injected,
        client=spiffe("inj", "sleep") if injected else None,
    )


# --------------------------------------------------------------------------- Istio at creation
# ref §1.1 + sidecar-injection "Controlling the injection policy" table and logic

ISTIO_AT_CREATION = [
    server_in_inj(ENABLED, {}, True, BY_NAMESPACE, "namespace-enabled-injects"),
    server_in_inj({}, {}, False, NO_LABEL, "no-label-anywhere-no-sidecar"),
    server_in_inj(DISABLED, {}, False, BY_NAMESPACE, "namespace-disabled-no-sidecar"),
    server_in_inj(ENABLED, POD_FALSE, False, BY_POD, "pod-false-opts-out-of-enabled-namespace"),
    server_in_inj({}, POD_TRUE, True, BY_POD, "pod-true-opts-in-unlabelled-namespace"),
    server_in_inj(DISABLED, POD_TRUE, False, BY_NAMESPACE, "namespace-disabled-overrides-pod-true"),
    server_in_inj(
        ENABLED, POD_TRUE, True, ("Namespace inj|sidecar.istio.io/inject",), "both-enabled-injects"
    ),
    server_in_inj({}, POD_FALSE, False, NO_LABEL, "pod-false-in-unlabelled-namespace"),
    client_in_inj(ENABLED, {}, True, BY_NAMESPACE, "client-namespace-enabled-gets-identity"),
    client_in_inj({}, {}, False, NO_CLIENT_SIDECAR, "client-without-sidecar-has-no-identity"),
    client_in_inj(ENABLED, POD_FALSE, False, BY_CLIENT_POD, "client-pod-false-has-no-identity"),
    client_in_inj({}, POD_TRUE, True, BY_CLIENT_POD, "client-pod-true-gets-identity"),
    client_in_inj(
        DISABLED, POD_TRUE, False, BY_NAMESPACE, "client-namespace-disabled-beats-pod-true"
    ),
    # Istio's injector reads only Istio labels
    case(
        "linkerd-annotation-means-nothing-to-istio",
        (namespace_yaml("inj", annotations={"linkerd.io/inject": "enabled"}), httpbin_yaml("inj")),
        FOO_TO_INJ,
        "200",
        words=NO_LABEL,
        mtls=False,
        server=None,
    ),
]


@pytest.mark.parametrize("c", ISTIO_AT_CREATION)
def test_istio_injection_at_pod_creation(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- Istio relabel
# ref §1.1 "Injection happens only at pod creation: labelling a namespace does nothing to
# running pods; pods must be re-created"; §9.10 Istio policies themselves apply live.

LEGACY_ENABLED = namespace_yaml("legacy", labels=ENABLED)
FOO_UNLABELLED = namespace_yaml("foo")
MESH_STRICT = """
    apiVersion: security.istio.io/v1beta1
    kind: PeerAuthentication
    metadata:
      name: default
      namespace: istio-system
    spec:
      mtls:
        mode: STRICT
"""

ISTIO_RELABEL = [
    case(
        "label-without-restart-does-nothing-client",
        LEGACY_ENABLED,
        "legacy/sleep=http://httpbin.foo:8000/ip",
        "200",
        words=NO_CLIENT_SIDECAR,
        mtls=False,
        client=None,
    ),
    case(
        "label-then-restart-injects-client",
        (LEGACY_ENABLED, Restart("legacy", "sleep")),
        "legacy/sleep=http://httpbin.foo:8000/ip",
        "200",
        named=("Namespace legacy",),
        mtls=True,
        client=spiffe("legacy", "sleep"),
    ),
    case(
        "restarting-the-client-leaves-the-server-uninjected",
        (LEGACY_ENABLED, Restart("legacy", "sleep")),
        "foo/sleep=http://httpbin.legacy:8000/ip",
        "200",
        words=NO_LABEL,
        mtls=False,
        server=None,
    ),
    case(
        "label-then-restart-injects-server",
        (LEGACY_ENABLED, Restart("legacy", "httpbin")),
        "foo/sleep=http://httpbin.legacy:8000/ip",
        "200",
        named=("Namespace legacy",),
        mtls=True,
        server=spiffe("legacy", "httpbin"),
    ),
    case(
        "restart-without-label-change-changes-nothing",
        Restart("legacy", "sleep"),
        "legacy/sleep=http://httpbin.foo:8000/ip",
        "200",
        words=("PERMISSIVE",),
        mtls=False,
        client=None,
    ),
    case(
        "removing-the-label-keeps-running-sidecars",
        FOO_UNLABELLED,
        "foo/sleep=http://httpbin.bar:8000/ip",
        "200",
        words=("auto",),
        mtls=True,
        client=spiffe("foo", "sleep"),
    ),
    case(
        "removing-the-label-then-restart-drops-the-sidecar",
        (FOO_UNLABELLED, Restart("foo", "sleep")),
        "foo/sleep=http://httpbin.bar:8000/ip",
        "200",
        words=NO_CLIENT_SIDECAR,
        mtls=False,
        client=None,
    ),
    case(
        "disabled-label-then-restart-drops-server-sidecar",
        (namespace_yaml("foo", labels=DISABLED), Restart("foo", "httpbin")),
        "bar/sleep=http://httpbin.foo:8000/ip",
        "200",
        named=("Namespace foo",),
        mtls=False,
        server=None,
    ),
    # once legacy/sleep has a sidecar, mesh-wide STRICT no longer locks it out
    case(
        "injected-after-restart-passes-mesh-strict",
        (LEGACY_ENABLED, Restart("legacy", "sleep"), MESH_STRICT),
        "legacy/sleep=http://httpbin.foo:8000/ip",
        "200",
        named=("PeerAuthentication istio-system/default",),
        mtls=True,
    ),
    case(
        "not-restarted-is-still-locked-out-by-mesh-strict",
        (LEGACY_ENABLED, MESH_STRICT),
        "legacy/sleep=http://httpbin.foo:8000/ip",
        "000/56",
        named=("PeerAuthentication istio-system/default",),
        mtls=False,
    ),
]


@pytest.mark.parametrize("c", ISTIO_RELABEL)
def test_istio_relabel_needs_restart(c):
    run_case(istio_authn_policy, c)


# --------------------------------------------------------------------------- Linkerd
# ref §6 "Injection": linkerd.io/inject: enabled on the namespace or pod template;
# "disabled" on the pod opts out; existing pods need `kubectl rollout restart`.

L5D = {"linkerd.io/inject": "enabled"}
L5D_OFF = {"linkerd.io/inject": "disabled"}


def linkerd_server(
    ns_annotations: dict[str, str],
    pod_annotations: dict[str, str],
    meshed: bool,
    words: tuple[str, ...],
    case_id: str,
    ns_labels: dict[str, str] | None = None,
) -> object:
    named = tuple(w for w in words if w.startswith("Namespace ") and "|" not in w)
    return case(
        case_id,
        (
            namespace_yaml("inj", labels=ns_labels, annotations=ns_annotations),
            httpbin_yaml("inj", pod_annotations=pod_annotations),
        ),
        FOO_TO_INJ,
        "200",
        named=named,
        words=tuple(w for w in words if w not in named),
        mtls=meshed,
        server=l5d("inj", "httpbin") if meshed else None,
        client=l5d("foo", "sleep") if meshed else None,
    )


L5D_BY_NAMESPACE = ("Namespace inj",)
# foo's line already mentions linkerd.io/inject, so ask for the Deployment or its template
L5D_BY_POD = ("Deployment inj/httpbin|pod template",)
UNMESHED = ("not meshed|unmeshed",)

LINKERD = [
    linkerd_server(L5D, {}, True, L5D_BY_NAMESPACE, "namespace-annotation-meshes"),
    linkerd_server({}, {}, False, UNMESHED, "no-annotation-unmeshed"),
    linkerd_server(L5D, L5D_OFF, False, L5D_BY_POD, "pod-disabled-opts-out"),
    linkerd_server({}, L5D, True, L5D_BY_POD, "pod-template-annotation-meshes"),
    linkerd_server(
        {}, {}, False, UNMESHED, "istio-label-means-nothing-to-linkerd", ns_labels=ENABLED
    ),
    case(
        "annotation-without-restart-does-nothing",
        namespace_yaml("legacy", annotations=L5D),
        "legacy/sleep=http://httpbin.foo:8000/ip",
        "200",
        words=UNMESHED,
        mtls=False,
        client=None,
    ),
    case(
        "annotation-then-restart-meshes",
        (namespace_yaml("legacy", annotations=L5D), Restart("legacy", "sleep")),
        "legacy/sleep=http://httpbin.foo:8000/ip",
        "200",
        named=("Namespace legacy",),
        mtls=True,
        client=l5d("legacy", "sleep"),
        server=l5d("foo", "httpbin"),
    ),
    case(
        "removing-annotation-keeps-running-proxy",
        namespace_yaml("foo"),
        "foo/sleep=http://httpbin.bar:8000/ip",
        "200",
        words=("all-unauthenticated",),
        mtls=True,
        client=l5d("foo", "sleep"),
    ),
    case(
        "removing-annotation-then-restart-unmeshes",
        (namespace_yaml("foo"), Restart("foo", "sleep")),
        "foo/sleep=http://httpbin.bar:8000/ip",
        "200",
        words=UNMESHED,
        mtls=False,
        client=None,
    ),
]


@pytest.mark.parametrize("c", LINKERD)
def test_linkerd_injection(c):
    run_case(linkerd_foo_bar_legacy, c)
