"""What kubectl prints when something is wrong, against ``meshtutor sandbox serve``: each
message is the one a real cluster gives (the sources are cited per test), and hostile input
never changes the sandbox or stops the server."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_api import ROOT, ServedSandboxThread

BOUTIQUE = ROOT / "manifests/online-boutique/demo.yaml"
STRICT = ROOT / "manifests/online-boutique/strict-namespace.yaml"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, kubectl: str) -> Iterator[ServedSandboxThread]:
    sandbox = ServedSandboxThread(
        tmp_path_factory.mktemp("serve"), files=[BOUTIQUE], kubectl=kubectl
    ).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _pod(served: ServedSandboxThread, app: str) -> str:
    got = served.kubectl(
        "get", "pod", "-l", f"app={app}", "-n", "demo", "-o", "jsonpath={.items[0].metadata.name}"
    )
    return got.stdout


def test_unknown_field_is_the_strict_decoding_error(served: ServedSandboxThread) -> None:
    """kubectl asks for ``fieldValidation=Strict`` (its default ``--validate=strict``); the API
    server answers 400 with apimachinery's strict decoding error."""
    bad = STRICT.read_text().replace("mode:", "mdoe:")
    applied = served.kubectl("apply", "-f", "-", input=bad)
    assert applied.returncode == 1
    assert applied.stderr == (
        'Error from server (BadRequest): error when creating "STDIN": PeerAuthentication in '
        'version "v1" cannot be handled as a PeerAuthentication: strict decoding error: '
        'unknown field "spec.mtls.mdoe"\n'
    )


def test_invalid_value_names_the_field(served: ServedSandboxThread) -> None:
    bad = STRICT.read_text().replace("STRICT", "STRICTT")
    applied = served.kubectl("apply", "-f", "-", input=bad)
    assert applied.returncode == 1
    assert applied.stderr.startswith(
        'The PeerAuthentication "default" is invalid: spec.mtls.mode: Invalid value: '
    )
    assert "STRICTT" in applied.stderr
    assert served.kubectl("get", "pa", "-A", "-o", "name").stdout == ""


def test_unknown_resource_type_on_a_linkerd_cluster(tmp_path: Path, kubectl: str) -> None:
    """Istio's CRDs are not installed in a Linkerd cluster, so kubectl's discovery has no
    such resource (k8s.io/kubectl/pkg/cmd/get: ``the server doesn't have a resource type``)."""
    linkerd = ServedSandboxThread(tmp_path, mesh="linkerd", kubectl=kubectl).start()
    try:
        got = linkerd.kubectl("get", "peerauthentications", "-A")
        assert got.returncode == 1
        assert (
            got.stderr == 'error: the server doesn\'t have a resource type "peerauthentications"\n'
        )
        applied = linkerd.kubectl("apply", "-f", str(STRICT))
        assert applied.returncode == 1
        assert (
            'no matches for kind "PeerAuthentication" in version "security.istio.io/v1"'
            in applied.stderr
        )
        servers = linkerd.kubectl("get", "servers.policy.linkerd.io", "-A")
        assert servers.returncode == 0, servers.stderr
    finally:
        linkerd.stop()


def test_terminating_namespace_refuses_new_content(tmp_path: Path, kubectl: str) -> None:
    """NamespaceLifecycle admission (plugin/pkg/admission/namespace/lifecycle): nothing can be
    created in a namespace that is being deleted; it shows Terminating until it is gone."""
    served = ServedSandboxThread(tmp_path, files=[BOUTIQUE], kubectl=kubectl).start()
    try:
        deleted = served.kubectl("delete", "namespace", "demo", "--wait=false")
        assert deleted.stdout == 'namespace "demo" deleted\n'
        status = served.kubectl("get", "ns", "demo", "-o", "jsonpath={.status.phase}")
        assert status.stdout == "Terminating"
        applied = served.kubectl("apply", "-f", str(STRICT))
        assert applied.stderr == (
            f'Error from server (Forbidden): error when creating "{STRICT}": '
            'peerauthentications.security.istio.io "default" is forbidden: unable to create '
            "new content in namespace demo because it is being terminated\n"
        )
        waited = served.kubectl("wait", "--for=delete", "namespace/demo", "--timeout=20s")
        assert waited.returncode == 0, waited.stderr
        assert (
            served.kubectl("get", "pods", "-n", "demo").stderr
            == "No resources found in demo namespace.\n"
        )
    finally:
        served.stop()


def test_server_side_apply_conflict(served: ServedSandboxThread) -> None:
    """Two field managers setting one field: 409 with structured-merge-diff's conflict list,
    which kubectl prints with its advice (k8s.io/kubectl/pkg/cmd/apply: applyConflictError)."""
    first = served.kubectl("apply", "--server-side", "-f", str(STRICT))
    assert first.stdout == "peerauthentication.security.istio.io/default serverside-applied\n"
    try:
        other = STRICT.read_text().replace("STRICT", "PERMISSIVE")
        second = served.kubectl(
            "apply", "--server-side", "--field-manager=other", "-f", "-", input=other
        )
        assert second.returncode == 1
        assert second.stderr.startswith(
            'error: Apply failed with 1 conflict: conflict with "kubectl": .spec.mtls.mode\n'
        )
        forced = served.kubectl(
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
            input=other,
        )
        assert forced.returncode == 0, forced.stderr
        mode = served.kubectl(
            "get", "pa", "default", "-n", "demo", "-o", "jsonpath={.spec.mtls.mode}"
        )
        assert mode.stdout == "PERMISSIVE"
    finally:
        served.kubectl("delete", "-f", str(STRICT))


def test_server_dry_run_stores_nothing(served: ServedSandboxThread) -> None:
    applied = served.kubectl("apply", "--dry-run=server", "-f", str(STRICT))
    assert (
        applied.stdout == "peerauthentication.security.istio.io/default created (server dry run)\n"
    )
    assert served.kubectl("get", "pa", "-A", "-o", "name").stdout == ""


def test_patch_scale_and_watch(served: ServedSandboxThread) -> None:
    """JSON, merge and strategic patches, the scale subresource, and a watch that sees the
    pods come and go."""
    watch = subprocess.Popen(
        [
            served.kubectl_binary or "kubectl",
            "get",
            "pods",
            "-n",
            "demo",
            "-l",
            "app=frontend",
            "-w",
            "--no-headers",
            "--request-timeout=20s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=served.env(),
    )
    try:
        patched = served.kubectl(
            "patch",
            "deployment",
            "frontend",
            "-n",
            "demo",
            "--type=json",
            "-p",
            '[{"op":"replace","path":"/spec/replicas","value":0}]',
        )
        assert patched.stdout == "deployment.apps/frontend patched\n"
        _wait_for(
            lambda: (
                served.kubectl(
                    "get", "pods", "-n", "demo", "-l", "app=frontend", "-o", "name"
                ).stdout
                == ""
            )
        )
        scaled = served.kubectl("scale", "deployment", "frontend", "-n", "demo", "--replicas=1")
        assert scaled.stdout == "deployment.apps/frontend scaled\n"
        status = served.kubectl(
            "rollout", "status", "deployment/frontend", "-n", "demo", "--timeout=20s"
        )
        assert status.returncode == 0, status.stderr
        merged = served.kubectl(
            "patch",
            "deployment",
            "frontend",
            "-n",
            "demo",
            "--type=merge",
            "-p",
            '{"metadata":{"labels":{"tier":"web"}}}',
        )
        assert merged.stdout == "deployment.apps/frontend patched\n"
        unchanged = served.kubectl(
            "patch",
            "deployment",
            "frontend",
            "-n",
            "demo",
            "-p",
            '{"metadata":{"labels":{"tier":"web"}}}',
        )
        assert unchanged.stdout == "deployment.apps/frontend patched (no change)\n"
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    lines = [line.split() for line in out.splitlines()]
    names = {line[0] for line in lines}
    assert len(names) >= 2, out  # the first pod, then its replacement after the scale
    assert any(line[2] == "Terminating" for line in lines), out
    assert lines[-1][1:3] == ["2/2", "Running"], out


def test_exec_into_a_container_that_does_not_exist(served: ServedSandboxThread) -> None:
    pod = _pod(served, "productcatalogservice")
    run = served.kubectl("exec", pod, "-c", "nope", "-n", "demo", "--", "true")
    assert run.returncode == 1
    # kubectl 1.34 and later check the name themselves before asking the server
    assert run.stderr in (
        f"Error from server (BadRequest): container nope is not valid for pod {pod}\n",
        f"error: container nope is not valid for pod {pod} out of: server, istio-proxy, istio-init (init)\n",
    )


def test_logs_show_the_sidecar_access_log(served: ServedSandboxThread) -> None:
    pod = _pod(served, "productcatalogservice")
    run = served.kubectl(
        "exec",
        pod,
        "-n",
        "demo",
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://frontend:80/",
    )
    assert run.stdout == "200", run.stderr
    logs = served.kubectl("logs", pod, "-c", "istio-proxy", "-n", "demo", "--tail=1")
    assert logs.returncode == 0, logs.stderr
    assert '"GET / HTTP/1.1" 200 - via_upstream' in logs.stdout
    assert "outbound|80||frontend.demo.svc.cluster.local" in logs.stdout


# --- hostile input, over HTTPS with the kubeconfig's client certificate ------------------


def _client(served: ServedSandboxThread, *, certificate: bool = True) -> tuple[str, ssl.SSLContext]:
    import base64

    import yaml

    config = yaml.safe_load(served.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    if certificate:
        cert = served.tmp / "client.crt"
        key = served.tmp / "client.key"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        key.chmod(0o600)
        ctx.load_cert_chain(cert, key)
    return cluster["server"], ctx


def _request(
    served: ServedSandboxThread,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/json",
    *,
    certificate: bool = True,
) -> tuple[int, dict[str, Any]]:
    server, ctx = _client(served, certificate=certificate)
    req = urllib.request.Request(
        server + path, data=body or None, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _state(served: ServedSandboxThread) -> str:
    return served.kubectl("get", "all,pa,dr,ns", "-A", "-o", "name").stdout


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "code", "reason"),
    [
        (
            "POST",
            "/apis/security.istio.io/v1/namespaces/demo/peerauthentications",
            b"{not json",
            "application/json",
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/apis/security.istio.io/v1/namespaces/demo/peerauthentications",
            b"[]",
            "application/json",
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/demo/deployments/frontend",
            b"spec: [unclosed",
            "application/apply-patch+yaml",
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/demo/deployments/frontend",
            b"{}",
            "text/plain",
            415,
            "UnsupportedMediaType",
        ),
        (
            "POST",
            "/apis/security.istio.io/v1/namespaces/demo/peerauthenticationz",
            b"{}",
            "application/json",
            404,
            "NotFound",
        ),
        (
            "POST",
            "/apis/security.istio.io/v1/namespaces/demo/peerauthentications",
            b"x" * (4 * 1024 * 1024),
            "application/json",
            413,
            "RequestEntityTooLarge",
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "bad-yaml-apply",
        "unknown-patch-type",
        "unknown-resource",
        "4MiB-body",
    ],
)
def test_hostile_bodies_get_a_status_and_change_nothing(
    served: ServedSandboxThread,
    method: str,
    path: str,
    body: bytes,
    content_type: str,
    code: int,
    reason: str,
) -> None:
    before = _state(served)
    status, answer = _request(served, method, path, body, content_type)
    assert (status, answer["kind"], answer["code"], answer["reason"]) == (
        code,
        "Status",
        code,
        reason,
    )
    assert _state(served) == before
    assert served.kubectl("get", "pods", "-n", "demo").returncode == 0  # still serving


def test_no_client_certificate_is_401(served: ServedSandboxThread) -> None:
    status, answer = _request(served, "GET", "/api/v1/namespaces", certificate=False)
    assert (status, answer["reason"]) == (401, "Unauthorized")


def _wait_for(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
