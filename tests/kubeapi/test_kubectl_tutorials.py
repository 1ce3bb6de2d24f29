"""The mesh tutorials' own kubectl commands, typed against ``meshtutor sandbox serve``.

Google's "Anthos Service Mesh by example: mTLS" tutorial runs, in the Online Boutique's
``demo`` namespace (here ``manifests/online-boutique/demo.yaml``)::

    kubectl exec $(kubectl get pod -l app=productcatalogservice -n demo \
        -o jsonpath={.items..metadata.name}) -c istio-proxy -n demo -- \
        curl http://frontend:80/ -o /dev/null -s -w '%{http_code}\\n'

and prints ``200`` with PERMISSIVE mTLS, then ``000`` and ``command terminated with exit code
56`` once a namespace-wide STRICT PeerAuthentication is applied: istio-proxy's own curl
bypasses the sidecar (uid 1337 is excluded from capture) so it speaks plaintext, and the
frontend's sidecar, now STRICT, resets the connection (curl exit 56, "Failure in receiving
network data"). Deleting the policy prints ``peerauthentication.security.istio.io
"namespace-policy" deleted`` and the probe is back to 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_api import ROOT, ServedSandboxThread, deleted

BOUTIQUE = ROOT / "manifests/online-boutique/demo.yaml"

NAMESPACE_STRICT = """\
apiVersion: "security.istio.io/v1beta1"
kind: "PeerAuthentication"
metadata:
  name: "namespace-policy"
spec:
  mtls:
    mode: STRICT
"""


@pytest.fixture(scope="module")
def boutique(
    tmp_path_factory: pytest.TempPathFactory, kubectl: str
) -> Iterator[ServedSandboxThread]:
    served = ServedSandboxThread(
        tmp_path_factory.mktemp("serve"), files=[BOUTIQUE], kubectl=kubectl
    ).start()
    try:
        yield served
    finally:
        served.stop()


def _probe(served: ServedSandboxThread) -> tuple[str, str, int]:
    pod = served.kubectl(
        "get",
        "pod",
        "-l",
        "app=productcatalogservice",
        "-n",
        "demo",
        "-o",
        "jsonpath={.items..metadata.name}",
    )
    assert pod.returncode == 0, pod.stderr
    run = served.kubectl(
        "exec",
        pod.stdout.strip(),
        "-c",
        "istio-proxy",
        "-n",
        "demo",
        "--",
        "curl",
        "http://frontend:80/",
        "-o",
        "/dev/null",
        "-s",
        "-w",
        "%{http_code}\n",
    )
    return run.stdout, run.stderr, run.returncode


def test_asm_mtls_tutorial_namespace_policy(boutique: ServedSandboxThread) -> None:
    assert _probe(boutique)[0] == "200\n"

    applied = boutique.kubectl("apply", "-n", "demo", "-f", "-", input=NAMESPACE_STRICT)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == "peerauthentication.security.istio.io/namespace-policy created\n"

    out, err, code = _probe(boutique)
    assert out == "000\n"
    assert err == "command terminated with exit code 56\n"
    assert code == 56

    gone = boutique.kubectl("delete", "peerauthentication", "-n", "demo", "namespace-policy")
    assert deleted(gone.stdout, "peerauthentication.security.istio.io", "namespace-policy", "demo")
    assert _probe(boutique)[0] == "200\n"


def test_get_peerauthentication_prints_mode(boutique: ServedSandboxThread) -> None:
    boutique.kubectl("apply", "-n", "demo", "-f", "-", input=NAMESPACE_STRICT)
    try:
        got = boutique.kubectl("get", "peerauthentication", "--all-namespaces")
        assert got.returncode == 0, got.stderr
        header, row = got.stdout.splitlines()[:2]
        assert header.split() == ["NAMESPACE", "NAME", "MODE", "AGE"]
        assert row.split()[:3] == ["demo", "namespace-policy", "STRICT"]
    finally:
        boutique.kubectl("delete", "peerauthentication", "-n", "demo", "namespace-policy")


def test_pods_show_the_sidecar(boutique: ServedSandboxThread) -> None:
    got = boutique.kubectl("get", "pods", "-n", "demo")
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = [line.split() for line in lines[1:]]
    assert {r[0].rsplit("-", 2)[0] for r in rows} == {"frontend", "productcatalogservice"}
    assert all(r[1:4] == ["2/2", "Running", "0"] for r in rows), rows


def test_unknown_kind_is_refused(boutique: ServedSandboxThread) -> None:
    bad = NAMESPACE_STRICT.replace("PeerAuthentication", "PeerAuthentications")
    applied = boutique.kubectl("apply", "-n", "demo", "-f", "-", input=bad)
    assert applied.returncode == 1
    assert (
        'no matches for kind "PeerAuthentications" in version "security.istio.io/v1beta1"'
        in applied.stderr
    )


def test_unknown_resource_type(boutique: ServedSandboxThread) -> None:
    got = boutique.kubectl("get", "serverauthorizations")
    assert got.returncode == 1
    assert got.stderr.strip().endswith(
        'the server doesn\'t have a resource type "serverauthorizations"'
    )


def test_not_found(boutique: ServedSandboxThread) -> None:
    got = boutique.kubectl("get", "deployment", "nope", "-n", "demo")
    assert got.returncode == 1
    assert got.stderr == 'Error from server (NotFound): deployments.apps "nope" not found\n'


def test_invalid_mode_names_the_field(boutique: ServedSandboxThread) -> None:
    bad = NAMESPACE_STRICT.replace("STRICT", "STRICTT")
    applied = boutique.kubectl("apply", "-n", "demo", "-f", "-", input=bad)
    assert applied.returncode == 1
    assert "spec.mtls.mode" in applied.stderr
    assert "STRICTT" in applied.stderr
    listed = boutique.kubectl("get", "peerauthentication", "-A", "-o", "name")
    assert listed.stdout == ""


def test_namespace_label_then_rollout_restart_injects(tmp_path: Path, kubectl: str) -> None:
    """Injection is decided when a pod is created: labelling the namespace changes nothing
    until ``kubectl rollout restart`` makes new pods (Istio's "Sidecar injection" docs)."""
    served = ServedSandboxThread(tmp_path, kubectl=kubectl).start()
    try:
        served.kubectl("create", "namespace", "shop")
        served.kubectl(
            "create", "deployment", "web", "--image=docker.io/kennethreitz/httpbin", "-n", "shop"
        )
        waited = served.kubectl(
            "wait", "--for=condition=Available", "deployment/web", "-n", "shop", "--timeout=20s"
        )
        assert waited.returncode == 0, waited.stderr
        assert _ready(served) == "1/1"
        labelled = served.kubectl("label", "namespace", "shop", "istio-injection=enabled")
        assert labelled.stdout == "namespace/shop labeled\n"
        assert _ready(served) == "1/1"
        restarted = served.kubectl("rollout", "restart", "deployment/web", "-n", "shop")
        assert restarted.stdout == "deployment.apps/web restarted\n"
        status = served.kubectl(
            "rollout", "status", "deployment/web", "-n", "shop", "--timeout=20s"
        )
        assert status.returncode == 0, status.stderr
        assert 'deployment "web" successfully rolled out' in status.stdout
        assert _ready(served, wait_single=True) == "2/2"
    finally:
        served.stop()


def _ready(served: ServedSandboxThread, *, wait_single: bool = False) -> str:
    import time

    for _ in range(50):
        got = served.kubectl("get", "pods", "-n", "shop", "--no-headers")
        rows = [line.split() for line in got.stdout.splitlines()]
        running = [r for r in rows if r[2] == "Running"]
        if len(running) == 1 and (not wait_single or len(rows) == 1):
            return running[0][1]
        time.sleep(0.2)
    raise AssertionError(got.stdout)


WORKLOAD_STRICT = """\
apiVersion: "security.istio.io/v1beta1"
kind: "PeerAuthentication"
metadata:
  name: "frontend"
  namespace: "demo"
spec:
  selector:
    matchLabels:
      app: frontend
  mtls:
    mode: STRICT
"""

FRONTEND_DR = """\
apiVersion: "networking.istio.io/v1alpha3"
kind: "DestinationRule"
metadata:
  name: "frontend"
spec:
  host: "frontend.demo.svc.cluster.local"
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
"""

MESH_WIDE = """\
apiVersion: "security.istio.io/v1beta1"
kind: "PeerAuthentication"
metadata:
  name: "mesh-wide"
  namespace: "istio-system"
spec:
  mtls:
    mode: STRICT
"""


def test_asm_mtls_tutorial_workload_and_mesh_wide(boutique: ServedSandboxThread) -> None:
    """The tutorial's second and third parts: a workload policy (with the DestinationRule it
    pairs with), then mesh-wide STRICT in the root namespace."""
    applied = boutique.kubectl("apply", "-f", "-", input=WORKLOAD_STRICT)
    assert applied.stdout == "peerauthentication.security.istio.io/frontend created\n"
    applied = boutique.kubectl("apply", "-n", "demo", "-f", "-", input=FRONTEND_DR)
    assert applied.stdout == "destinationrule.networking.istio.io/frontend created\n"
    assert _probe(boutique) == ("000\n", "command terminated with exit code 56\n", 56)
    boutique.kubectl("delete", "peerauthentication", "-n", "demo", "frontend")
    boutique.kubectl("delete", "destinationrule", "-n", "demo", "frontend")
    assert _probe(boutique)[0] == "200\n"

    applied = boutique.kubectl("apply", "-f", "-", input=MESH_WIDE)
    assert applied.stdout == "peerauthentication.security.istio.io/mesh-wide created\n"
    try:
        assert _probe(boutique) == ("000\n", "command terminated with exit code 56\n", 56)
    finally:
        gone = boutique.kubectl("delete", "peerauthentication", "-n", "istio-system", "mesh-wide")
        assert deleted(
            gone.stdout, "peerauthentication.security.istio.io", "mesh-wide", "istio-system"
        )


SAMPLES = ROOT / "manifests/samples"
# Istio's "Mutual TLS Migration" task, its verification loop as printed there (the task's
# client is samples/curl; older versions call it sleep).
MATRIX_LOOP = (
    'for from in "foo" "bar" "legacy"; do for to in "foo" "bar"; do '
    'kubectl exec "$(kubectl get pod -l app=curl -n ${from} -o jsonpath={.items..metadata.name})" '
    "-c curl -n ${from} -- curl http://httpbin.${to}:8000/ip -s -o /dev/null "
    '-w "curl.${from} to httpbin.${to}: %{http_code}\\n"; done; done'
)


def test_istio_mutual_tls_migration_task(tmp_path: Path, kubectl: str) -> None:
    served = ServedSandboxThread(tmp_path, kubectl=kubectl).start()
    try:
        for ns in ("foo", "bar", "legacy"):
            assert served.kubectl("create", "ns", ns).stdout == f"namespace/{ns} created\n"
        for ns in ("foo", "bar"):
            labelled = served.kubectl("label", "namespace", ns, "istio-injection=enabled")
            assert labelled.stdout == f"namespace/{ns} labeled\n"
        for ns in ("foo", "bar", "legacy"):
            for sample in ("httpbin.yaml", "curl.yaml"):
                applied = served.kubectl("apply", "-f", str(SAMPLES / sample), "-n", ns)
                assert applied.returncode == 0, applied.stderr
        for ns in ("foo", "bar", "legacy"):
            waited = served.kubectl(
                "wait", "--for=condition=Ready", "pod", "--all", "-n", ns, "--timeout=20s"
            )
            assert waited.returncode == 0, waited.stderr

        loop = served.shell(MATRIX_LOOP)
        assert loop.stdout.splitlines() == [
            f"curl.{src} to httpbin.{dst}: 200"
            for src in ("foo", "bar", "legacy")
            for dst in ("foo", "bar")
        ]

        strict = served.kubectl(
            "apply",
            "-n",
            "foo",
            "-f",
            "-",
            input="apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            'metadata:\n  name: "default"\nspec:\n  mtls:\n    mode: STRICT\n',
        )
        assert strict.stdout == "peerauthentication.security.istio.io/default created\n"
        loop = served.shell(MATRIX_LOOP)
        assert "curl.legacy to httpbin.foo: 000" in loop.stdout.splitlines()
        assert "curl.legacy to httpbin.bar: 200" in loop.stdout.splitlines()
        assert loop.stderr == "command terminated with exit code 56\n"
    finally:
        served.stop()


def test_linkerd_namespace_injection_with_rollout_restart(tmp_path: Path, kubectl: str) -> None:
    """Linkerd's "Adding your services to Linkerd": annotate the namespace, then restart the
    deployments; only new pods get the proxy (linkerd.io docs, automatic proxy injection)."""
    served = ServedSandboxThread(tmp_path, mesh="linkerd", kubectl=kubectl).start()
    try:
        served.kubectl("create", "ns", "store")
        for sample in ("httpbin.yaml", "curl.yaml"):
            served.kubectl("apply", "-n", "store", "-f", str(SAMPLES / sample))
        annotated = served.kubectl("annotate", "ns", "store", "linkerd.io/inject=enabled")
        assert annotated.stdout == "namespace/store annotated\n"
        got = served.kubectl("get", "pods", "-n", "store", "--no-headers")
        assert {line.split()[1] for line in got.stdout.splitlines()} == {"1/1"}
        restarted = served.kubectl("rollout", "restart", "deploy", "-n", "store")
        assert sorted(restarted.stdout.splitlines()) == [
            "deployment.apps/curl restarted",
            "deployment.apps/httpbin restarted",
        ]
        for name in ("curl", "httpbin"):
            status = served.kubectl(
                "rollout", "status", f"deploy/{name}", "-n", "store", "--timeout=20s"
            )
            assert status.returncode == 0, status.stderr
        containers = served.kubectl(
            "get",
            "pods",
            "-n",
            "store",
            "-l",
            "app=httpbin",
            "-o",
            "jsonpath={.items[*].spec.containers[*].name}",
        )
        assert containers.stdout.split()[0] == "linkerd-proxy"
        curl = served.kubectl(
            "exec",
            "-n",
            "store",
            "deploy/curl",
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://httpbin:8000/ip",
        )
        assert curl.stdout == "200", curl.stderr
    finally:
        served.stop()
