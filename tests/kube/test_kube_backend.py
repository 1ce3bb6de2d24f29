"""KubeBackend against the loopback stand-in for the Kubernetes API protocol.

The stand-in (``apiserver.FakeAPIServer``) only speaks the protocol: it stores what is applied
and answers exec with whatever a test registers. These tests check the requests the backend
makes (server-side apply, field manager, labels, journal, exec of curl) and how it reads the
answers (exit codes from the status channel, 403/404/409, refused connections, timeouts).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer, FakeAPIServerFactory

from meshtutor.backends.kube import MANAGED_BY, Journal, KubeBackend, KubeError
from meshtutor.model import load_file
from meshtutor.policy import Probe

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "manifests/online-boutique/demo.yaml"
STRICT = ROOT / "manifests/online-boutique/strict-namespace.yaml"
PROXY_PROBE = Probe("demo", "productcatalogservice", "http://frontend:80/", container="istio-proxy")
MARK = "\n__meshtutor_http_code__="


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def backend(kubeconfig: Path, **options: Any) -> KubeBackend:
    return KubeBackend("istio", kubeconfig=str(kubeconfig), context=CONTEXT, **options)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def start_pods(fake: FakeAPIServer) -> None:
    for name in ("frontend", "productcatalogservice"):
        fake.add_pod(
            "demo", f"{name}-7d4b9c-x2x9z", owner=name, containers=["server", "istio-proxy"]
        )


def curl_answers(
    fake: FakeAPIServer, code: str, exit_code: int, stderr: str = "", body: str = ""
) -> None:
    fake.on_exec(
        ("demo", None, None),
        lambda command: ((body + MARK + code).encode(), stderr.encode(), exit_code),
    )


class TestApply:
    def test_server_side_apply_with_field_manager_labels_and_journal(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        kube = backend(kubeconfig_path, lesson="namespace-strict")

        async def main() -> Any:
            await kube.start()
            try:
                return await kube.apply(load_file(DEMO))
            finally:
                await kube.stop()

        report = run(main())
        assert report.lines[0] == "namespace/demo created"
        posts = [r for r in fake_apiserver.requests if r.method == "POST"]
        assert len(posts) == 7  # created with POST: an object someone else made is a 409
        for request in posts:
            assert request.param("fieldManager") == "meshtutor"
            labels = request.body["metadata"]["labels"]
            assert labels[MANAGED_BY] == "meshtutor"
            assert labels["meshtutor.dev/lesson"] == "namespace-strict"
        stored = fake_apiserver.get_object("apps/v1", "Deployment", "frontend", "demo")
        assert stored is not None and stored["spec"]["template"]["metadata"]["labels"] == {
            "app": "frontend"
        }
        journal = Journal(CONTEXT).entries()
        assert [(e["kind"], e["name"]) for e in journal][:2] == [
            ("Namespace", "demo"),
            ("ServiceAccount", "frontend"),
        ]
        assert all(e["uid"] for e in journal)
        # Applying again updates in place, with server-side apply; the journal does not grow.
        fake_apiserver.clear_requests()
        assert run(main()).lines[0] == "namespace/demo serverside-applied"
        patches = [r for r in fake_apiserver.requests if r.method == "PATCH"]
        assert len(patches) == 7
        for request in patches:
            assert request.content_type == "application/apply-patch+yaml"
            assert request.param("fieldManager") == "meshtutor"
            assert request.param("force") == "true"
            assert request.body["metadata"]["resourceVersion"]  # the version meshtutor read
            assert request.body["metadata"]["labels"][MANAGED_BY] == "meshtutor"
        assert len(Journal(CONTEXT).entries()) == 7

    def test_dry_run_changes_nothing(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        kube = backend(kubeconfig_path, dry_run=True)

        async def main() -> Any:
            await kube.start()
            try:
                return await kube.apply(load_file(DEMO))
            finally:
                await kube.stop()

        report = run(main())
        assert report.lines[0] == "namespace/demo created (server dry run)"
        assert report.lines[1] == (
            "serviceaccount/frontend would be created (in namespace demo, new in this dry run)"
        )
        assert all(r.param("dryRun") == "All" for r in fake_apiserver.requests if r.method != "GET")
        assert fake_apiserver.get_object("v1", "Namespace", "demo") is None
        assert Journal(CONTEXT).entries() == []

    @pytest.mark.parametrize(
        "status, message",
        [
            (403, r"403 Forbidden; your user lacks the permission"),
            (404, r"not found \(404\)"),
            (422, r"answered 422"),
        ],
    )
    def test_api_errors_become_one_line_messages(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path, status: int, message: str
    ) -> None:
        kube = backend(kubeconfig_path)
        fake_apiserver.fail_next("POST", r"/serviceaccounts$", status)

        async def main() -> None:
            await kube.start()
            try:
                await kube.apply(load_file(DEMO))
            finally:
                await kube.stop()

        with pytest.raises(KubeError, match=rf"cannot apply ServiceAccount frontend: .*{message}"):
            run(main())

    def test_a_mesh_kind_the_cluster_lacks(
        self, fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
    ) -> None:
        fake = fake_apiserver_factory(crd_groups=())
        config = fake.kubeconfig(tmp_path / "kubeconfig", context_name=CONTEXT)
        kube = backend(config)

        async def main() -> None:
            await kube.start()
            try:
                await kube.apply(load_file(STRICT))
            finally:
                await kube.stop()

        with pytest.raises(
            KubeError, match=r"does not know PeerAuthentication .*is Istio installed"
        ):
            run(main())


class TestProbes:
    def test_exit_code_56_from_the_status_channel(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        curl_answers(fake_apiserver, "000", 56, "curl: (56) Recv failure: Connection reset by peer")
        kube = backend(kubeconfig_path)

        async def main() -> Any:
            await kube.start()
            try:
                await kube.apply(load_file(DEMO))
                await kube.apply(load_file(STRICT))
                start_pods(fake_apiserver)
                return await kube.probe(PROXY_PROBE)
            finally:
                await kube.stop()

        result = run(main())
        assert (result.http_code, result.exit_code, result.prober) == ("000", 56, "exec")
        assert result.stderr == "curl: (56) Recv failure: Connection reset by peer"
        # The prediction comes from the objects read back from the API: STRICT is there.
        assert (result.prediction.http_code, result.prediction.exit_code) == ("000", 56)
        assert result.matches_prediction
        (call,) = fake_apiserver.execs
        assert call.request.namespace == "demo" and call.request.container == "istio-proxy"
        assert call.request.pod.startswith("productcatalogservice-")
        command = list(call.request.command)
        assert command[0] == "curl" and command[-1] == "http://frontend:80/"
        assert "--max-time" in command

    def test_a_disagreement_with_the_model_is_marked(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        # The cluster answers 200 although a STRICT policy is applied: the model disagrees.
        curl_answers(fake_apiserver, "200", 0)
        kube = backend(kubeconfig_path)

        async def main() -> Any:
            await kube.start()
            try:
                await kube.apply(load_file(DEMO) + load_file(STRICT))
                start_pods(fake_apiserver)
                return await kube.probe(PROXY_PROBE)
            finally:
                await kube.stop()

        result = run(main())
        assert result.http_code == "200" and not result.matches_prediction

    def test_mtls_seen_in_the_echoed_headers(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        body = json.dumps(
            {
                "headers": {
                    "X-Forwarded-Client-Cert": [
                        'By=spiffe://cluster.local/ns/demo/sa/frontend;Hash=ab;Subject="";'
                        "URI=spiffe://cluster.local/ns/demo/sa/productcatalogservice"
                    ]
                }
            }
        )
        curl_answers(fake_apiserver, "200", 0, body=body)
        kube = backend(kubeconfig_path)

        async def main() -> Any:
            await kube.start()
            try:
                await kube.apply(load_file(DEMO))
                start_pods(fake_apiserver)
                return await kube.probe(
                    Probe("demo", "productcatalogservice", "http://frontend:80/headers")
                )
            finally:
                await kube.stop()

        result = run(main())
        assert result.mtls
        assert result.client_identity == "spiffe://cluster.local/ns/demo/sa/productcatalogservice"
        assert result.server_identity == "spiffe://cluster.local/ns/demo/sa/frontend"


class TestConnection:
    def test_connection_refused(self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path) -> None:
        fake_apiserver.stop()
        kube = backend(kubeconfig_path)

        async def main() -> None:
            await kube.start()
            try:
                await kube.apply(load_file(DEMO))
            finally:
                await kube.stop()

        with pytest.raises(KubeError, match=r"refuses connections; is the cluster running"):
            run(main())

    def test_timeout(self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path) -> None:
        kube = backend(kubeconfig_path, request_timeout=0.5)
        fake_apiserver.delay_next(r"/namespaces/demo/serviceaccounts", 3.0, times=None)

        async def main() -> None:
            await kube.start()
            try:
                await kube.apply(load_file(DEMO))
            finally:
                await kube.stop()

        with pytest.raises(KubeError, match=r"did not answer in 0.5 s"):
            run(main())


class TestRestartAndReset:
    def test_restart_patches_the_template_and_waits(
        self, fake_apiserver_factory: Any, tmp_path: Path
    ) -> None:
        fake = fake_apiserver_factory(rollout_delay=0.3)
        config = fake.kubeconfig(tmp_path / "kubeconfig", context_name=CONTEXT)
        lines: list[str] = []
        kube = backend(config, progress=lines.append)

        async def main() -> None:
            await kube.start()
            try:
                await kube.apply(load_file(DEMO))
                await kube.restart("demo", "frontend")
            finally:
                await kube.stop()

        run(main())
        (patch,) = [
            r
            for r in fake.requests
            if r.method == "PATCH" and r.content_type == "application/strategic-merge-patch+json"
        ]
        annotations = patch.body["spec"]["template"]["metadata"]["annotations"]
        assert "kubectl.kubernetes.io/restartedAt" in annotations
        assert lines and lines[-1].endswith("1 available")

    def test_reset_after_an_interrupted_lesson_removes_exactly_what_meshtutor_made(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        fake_apiserver.add_namespace("team-a")  # somebody else's: must survive the reset
        fake_apiserver.put_object(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "keep-me", "namespace": "team-a"},
            }
        )
        # The lesson is interrupted: the API fails on the Deployment (after the journal was
        # written for it).
        fake_apiserver.fail_next("POST", r"/deployments$", 500)
        kube = backend(kubeconfig_path)

        async def interrupted() -> None:
            await kube.start()
            try:
                await kube.apply(load_file(DEMO))
            finally:
                await kube.stop()

        with pytest.raises(KubeError):
            run(interrupted())
        assert fake_apiserver.get_object("v1", "Namespace", "demo") is not None
        assert len(Journal(CONTEXT).entries()) == 3  # namespace, account, the failed deployment

        fresh = backend(kubeconfig_path)  # a new process after the crash

        async def reset() -> None:
            await fresh.start()
            try:
                await fresh.reset()
            finally:
                await fresh.stop()

        run(reset())
        assert fake_apiserver.get_object("v1", "Namespace", "demo") is None
        assert fake_apiserver.get_object("v1", "ServiceAccount", "frontend", "demo") is None
        assert fake_apiserver.get_object("v1", "ServiceAccount", "keep-me", "team-a") is not None
        assert fake_apiserver.get_object("v1", "Namespace", "team-a") is not None
        assert Journal(CONTEXT).entries() == []
        deleted = {r.path for r in fake_apiserver.requests if r.method == "DELETE"}
        assert all("team-a" not in path for path in deleted)


class TestDoctor:
    def doctor(self, config: Path, *args: str) -> tuple[int, dict[str, Any]]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "meshtutor",
                "doctor",
                "--kubeconfig",
                str(config),
                "--json",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "MESHTUTOR_HOME": str(config.parent / "home")},
        )
        assert "Traceback" not in out.stderr, out.stderr
        return out.returncode, {c["name"]: c for c in json.loads(out.stdout)}

    def test_a_cluster_without_a_mesh(self, fake_apiserver_factory: Any, tmp_path: Path) -> None:
        fake = fake_apiserver_factory(crd_groups=())
        code, checks = self.doctor(
            fake.kubeconfig(tmp_path / "config", context_name=CONTEXT), "--mesh", "istio"
        )
        assert code == 1
        assert checks["API reachable"]["status"] == "ok"
        assert checks["API reachable"]["detail"] == "Kubernetes v1.31.0"
        assert checks["istio CRDs"]["status"] == "fail"
        assert "istioctl install" in checks["istio CRDs"]["fix"]

    def test_a_ready_istio_cluster(self, fake_apiserver: FakeAPIServer, tmp_path: Path) -> None:
        fake_apiserver.add_namespace("istio-system")
        fake_apiserver.put_object(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "istiod", "namespace": "istio-system"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "istiod"}},
                    "template": {
                        "metadata": {"labels": {"app": "istiod"}},
                        "spec": {"containers": [{"name": "discovery", "image": "istio/pilot"}]},
                    },
                },
            }
        )
        code, checks = self.doctor(
            fake_apiserver.kubeconfig(tmp_path / "config", context_name=CONTEXT), "--mesh", "istio"
        )
        assert checks["istio control plane"]["status"] == "ok", checks
        assert checks["RBAC"]["status"] == "ok"
        assert code == 0, checks


class TestExecFailures:
    def _probe(self, fake: FakeAPIServer, config: Path) -> Any:
        kube = backend(config)

        async def main() -> Any:
            await kube.start()
            try:
                await kube.apply(load_file(DEMO))
                start_pods(fake)
                return await kube.probe(PROXY_PROBE)
            finally:
                await kube.stop()

        return run(main())

    def test_a_dropped_exec_is_an_error_not_a_success(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        def node_gone(command: Any) -> Any:
            raise ConnectionError("node went away")

        fake_apiserver.on_exec(("demo", None, None), node_gone)
        with pytest.raises(
            KubeError,
            match=r"exec in demo/productcatalogservice-\S+ (was cut off|ended without an exit status)",
        ):
            self._probe(fake_apiserver, kubeconfig_path)

    def test_exec_forbidden(self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path) -> None:
        fake_apiserver.deny("create", "pods", subresource="exec")
        with pytest.raises(KubeError, match=r"cannot exec in demo/\S+: .*forbidden"):
            self._probe(fake_apiserver, kubeconfig_path)
