"""KubeBackend and traffic from outside the cluster, against the loopback API stand-in.

``install`` only checks that a cluster component is there (and never writes); outside probes run
the local ``curl`` against the external address the API reports for the Service the URL leads
to: a load balancer address, else a node's InternalIP and the node port. The "cluster" here is
a real HTTP server on 127.0.0.1, which the fake API names as that address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer
from kube_helpers import https_gateway

from meshtutor.backends.kube import Journal, KubeBackend, KubeError
from meshtutor.errors import ClusterStateError, ProbeSpecError
from meshtutor.model import load_file
from meshtutor.policy import Probe

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ROOT / "manifests/components"
WRITES = ("POST", "PUT", "PATCH", "DELETE")

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def backend(kubeconfig: Path) -> KubeBackend:
    return KubeBackend("istio", kubeconfig=str(kubeconfig), context=CONTEXT)


def run_with(kubeconfig: Path, action: Any) -> Any:
    """Start a backend, await ``action(kube)``, stop it."""
    kube = backend(kubeconfig)

    async def main() -> Any:
        await kube.start()
        try:
            return await action(kube)
        finally:
            await kube.stop()

    return asyncio.run(main())


def writes(fake: FakeAPIServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.method in WRITES]


# --- the stand-in for what answers at the external address ------------------------------------


@dataclass
class Answering:
    port: int
    hosts: list[str] = field(default_factory=list)


def _serve(port: int) -> Iterator[Answering]:
    answering = Answering(port)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answering.hosts.append(self.headers.get("Host", ""))
            body = json.dumps({"headers": {"Host": [self.headers.get("Host", "")]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    answering.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield answering
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def web() -> Iterator[Answering]:
    """An HTTP server on 127.0.0.1 (an ephemeral port) answering 200."""
    yield from _serve(0)


@pytest.fixture
def web_on_node_port() -> Iterator[Answering]:
    """An HTTP server on 127.0.0.1 on a port in the NodePort range (30000-32767)."""
    ports = random.sample(range(30000, 32768), 40)
    for port in ports:
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
            break
    else:
        pytest.skip("no free port in the NodePort range 30000-32767 on 127.0.0.1")
    yield from _serve(port)


# --- cluster objects --------------------------------------------------------------------------


def add_web(fake: FakeAPIServer) -> None:
    """A plain (uninjected) Deployment web in namespace demo."""
    fake.add_namespace("demo")
    fake.put_object(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "mccutchen/go-httpbin",
                                "ports": [{"containerPort": 8080}],
                            }
                        ]
                    },
                },
            },
        }
    )


def external_service(
    fake: FakeAPIServer,
    kind: str,
    port: int,
    *,
    node_port: int | None = None,
    ingress: list[dict[str, str]] | None = None,
    name: str = "web-external",
) -> None:
    spec_port: dict[str, Any] = {"name": "http", "port": port, "targetPort": 8080}
    if node_port is not None:
        spec_port["nodePort"] = node_port
    fake.put_object(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"type": kind, "selector": {"app": "web"}, "ports": [spec_port]},
            "status": {"loadBalancer": {"ingress": ingress} if ingress else {}},
        }
    )


def add_node(fake: FakeAPIServer, address: str = "127.0.0.1") -> None:
    fake.put_object(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "meshtutor-test-control-plane"},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": address},
                    {"type": "Hostname", "address": "meshtutor-test-control-plane"},
                ]
            },
        }
    )


def put_component(fake: FakeAPIServer, name: str, **service_status: Any) -> None:
    """The component's objects as its installer would have made them."""
    for doc in load_file(COMPONENTS / f"{name}.yaml"):
        if doc.kind == "Namespace":
            fake.add_namespace(doc.name)
            continue
        body = json.loads(json.dumps(doc.raw, default=str))
        body.setdefault("metadata", {})["namespace"] = doc.namespace
        if doc.kind == "Service" and service_status:
            body["status"] = service_status
        if doc.kind == "IngressClass":
            body["metadata"].pop("namespace")
        fake.put_object(body)


# --- install: check, never write --------------------------------------------------------------


class TestInstall:
    def test_an_installed_component_passes_and_nothing_is_written(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        put_component(
            fake_apiserver,
            "ingress-nginx",
            loadBalancer={"ingress": [{"ip": "172.18.255.200"}]},
        )
        fake_apiserver.clear_requests()
        docs = load_file(COMPONENTS / "ingress-nginx.yaml")
        lines = run_with(kubeconfig_path, lambda kube: kube.install("ingress-nginx", docs))
        assert lines == [
            "ingress-nginx is installed (deployment ingress-nginx/ingress-nginx-controller, "
            "1/1 ready; service ingress-nginx-controller: LoadBalancer 172.18.255.200)"
        ]
        assert writes(fake_apiserver) == []
        assert Journal(CONTEXT).entries() == []

    def test_an_istio_gateway_without_a_load_balancer_address(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        put_component(fake_apiserver, "istio-ingressgateway")
        lines = run_with(kubeconfig_path, lambda kube: kube.install("istio-ingressgateway", []))
        assert lines == [
            "istio-ingressgateway is installed (deployment istio-system/istio-ingressgateway, "
            "1/1 ready; service istio-ingressgateway: LoadBalancer, no load balancer address "
            "yet)"
        ]

    @pytest.mark.parametrize(
        "name, says",
        [
            ("istio-ingressgateway", "install it with `istioctl install --set profile=default -y`"),
            (
                "ingress-nginx",
                "kind's provider manifest, `kubectl apply -f https://raw.githubusercontent.com/"
                "kubernetes/ingress-nginx/main/deploy/static/provider/kind/deploy.yaml` "
                "(elsewhere: `helm install ingress-nginx",
            ),
        ],
    )
    def test_a_missing_component_says_how_to_install_it_and_writes_nothing(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path, name: str, says: str
    ) -> None:
        fake_apiserver.clear_requests()
        docs = load_file(COMPONENTS / f"{name}.yaml")
        with pytest.raises(ClusterStateError) as caught:
            run_with(kubeconfig_path, lambda kube: kube.install(name, docs))
        message = str(caught.value)
        assert "is not installed in this cluster" in message
        assert "meshtutor does not install cluster components" in message
        assert says in message
        assert "\n" not in message
        assert writes(fake_apiserver) == []
        assert Journal(CONTEXT).entries() == []

    def test_a_service_without_its_deployment_is_not_enough(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        put_component(fake_apiserver, "ingress-nginx")
        fake_apiserver.remove_object(
            "apps/v1", "Deployment", "ingress-nginx-controller", "ingress-nginx"
        )
        with pytest.raises(
            ClusterStateError, match=r"no deployment ingress-nginx/ingress-nginx-controller\)"
        ):
            run_with(kubeconfig_path, lambda kube: kube.install("ingress-nginx", []))
        assert writes(fake_apiserver) == []

    def test_a_component_that_is_not_ready(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        put_component(fake_apiserver, "istio-ingressgateway")
        fake_apiserver.set_rollout("istio-system", "istio-ingressgateway", False)
        with pytest.raises(ClusterStateError, match=r"installed but not ready .*0/1 available"):
            run_with(kubeconfig_path, lambda kube: kube.install("istio-ingressgateway", []))
        assert writes(fake_apiserver) == []


# --- outside probes -----------------------------------------------------------------------------


@needs_curl
class TestOutsideProbes:
    def test_a_load_balancer_address(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path, web: Answering
    ) -> None:
        add_web(fake_apiserver)
        external_service(fake_apiserver, "LoadBalancer", web.port, ingress=[{"ip": "127.0.0.1"}])
        probe = Probe.parse(f"outside=http://web-external.demo:{web.port}/headers")
        result = run_with(kubeconfig_path, lambda kube: kube.probe(probe))
        assert (result.http_code, result.exit_code, result.prober) == ("200", 0, "curl")
        assert web.hosts == [f"web-external.demo:{web.port}"]
        assert '"Host"' in result.body
        assert f"--resolve web-external.demo:{web.port}:127.0.0.1" in result.command
        assert result.command.startswith("curl -q -s -S -w ")
        assert "\n" not in result.command
        assert result.command.endswith(
            f"http://web-external.demo:{web.port}/headers  # via LoadBalancer 127.0.0.1"
        )
        # The prediction comes from the objects read back: an uninjected pod answers.
        assert result.prediction.http_code == "200"
        assert result.matches_prediction
        assert writes(fake_apiserver) == []

    def test_a_node_port_on_the_node_address(
        self,
        fake_apiserver: FakeAPIServer,
        kubeconfig_path: Path,
        web_on_node_port: Answering,
    ) -> None:
        port = web_on_node_port.port
        add_web(fake_apiserver)
        add_node(fake_apiserver)
        external_service(fake_apiserver, "NodePort", 80, node_port=port)
        probe = Probe.parse(f"outside=http://web-external.demo:{port}/")
        result = run_with(kubeconfig_path, lambda kube: kube.probe(probe))
        assert (result.http_code, result.exit_code) == ("200", 0)
        assert f"--resolve web-external.demo:{port}:127.0.0.1" in result.command
        assert result.command.endswith(f"  # via node 127.0.0.1:{port}")

    def test_a_load_balancer_still_pending_falls_back_to_a_node(
        self,
        fake_apiserver: FakeAPIServer,
        kubeconfig_path: Path,
        web_on_node_port: Answering,
    ) -> None:
        port = web_on_node_port.port
        add_web(fake_apiserver)
        add_node(fake_apiserver)
        external_service(fake_apiserver, "LoadBalancer", 80, node_port=port)
        probe = Probe.parse("outside=http://web-external.demo/")
        result = run_with(kubeconfig_path, lambda kube: kube.probe(probe))
        assert (result.http_code, result.exit_code) == ("200", 0)
        assert web_on_node_port.hosts == ["web-external.demo"]
        assert f"--connect-to web-external.demo:80:127.0.0.1:{port}" in result.command
        assert result.command.endswith(f"  # via node 127.0.0.1:{port}")

    def test_a_public_host_name_a_gateway_serves(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path, web: Answering
    ) -> None:
        # The gateway lives in istio-system: read back although it is a system namespace.
        put_component(fake_apiserver, "istio-ingressgateway")
        service = fake_apiserver.get_object("v1", "Service", "istio-ingressgateway", "istio-system")
        assert service is not None
        service["spec"]["ports"][1]["port"] = web.port
        service["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
        fake_apiserver.put_object(service)
        fake_apiserver.put_object(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "Gateway",
                "metadata": {"name": "shop", "namespace": "istio-system"},
                "spec": {
                    "selector": {"istio": "ingressgateway"},
                    "servers": [
                        {
                            "port": {"number": 8080, "name": "http", "protocol": "HTTP"},
                            "hosts": ["shop.example.com"],
                        }
                    ],
                },
            }
        )
        probe = Probe.parse(f"outside=http://shop.example.com:{web.port}/")
        result = run_with(kubeconfig_path, lambda kube: kube.probe(probe))
        assert (result.http_code, result.exit_code) == ("200", 0)
        assert web.hosts == [f"shop.example.com:{web.port}"]
        assert f"--resolve shop.example.com:{web.port}:127.0.0.1" in result.command
        assert result.command.endswith("  # via LoadBalancer 127.0.0.1")

    def test_no_external_address_says_how_to_port_forward(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        # A LoadBalancer without an address, and no node port on a node meshtutor can see.
        add_web(fake_apiserver)
        external_service(fake_apiserver, "LoadBalancer", 80)
        probe = Probe.parse("outside=http://web-external.demo/")
        with pytest.raises(ProbeSpecError) as caught:
            run_with(kubeconfig_path, lambda kube: kube.probe(probe))
        message = str(caught.value)
        assert "Service demo/web-external has no external address" in message
        assert "`kubectl port-forward -n demo svc/web-external 8080:80`" in message
        assert "curl -H 'Host: web-external.demo' http://127.0.0.1:8080/" in message

    def test_a_name_that_leads_nowhere_fails_like_dns(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        add_web(fake_apiserver)
        probe = Probe.parse("outside=http://nowhere.example.com/")
        result = run_with(kubeconfig_path, lambda kube: kube.probe(probe))
        assert (result.http_code, result.exit_code) == ("000", 6)
        assert (result.prediction.http_code, result.prediction.exit_code) == ("000", 6)
        assert "nowhere.example.com" in result.stderr and ".invalid" not in result.stderr
        assert "http://nowhere.example.com.invalid/" in result.command

    def test_a_missing_cacert_file(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        add_web(fake_apiserver)
        external_service(fake_apiserver, "LoadBalancer", 443, ingress=[{"ip": "127.0.0.1"}])
        probe = Probe.parse("outside=https://web-external.demo/ --cacert no/such/ca.pem")
        with pytest.raises(ProbeSpecError, match=r"--cacert no/such/ca.pem: no such file"):
            run_with(kubeconfig_path, lambda kube: kube.probe(probe))


def test_without_curl_outside_probes_say_so(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_web(fake_apiserver)
    external_service(fake_apiserver, "LoadBalancer", 80, ingress=[{"ip": "127.0.0.1"}])
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    probe = Probe.parse("outside=http://web-external.demo/")
    with pytest.raises(KubeError, match=r"no curl on PATH"):
        run_with(kubeconfig_path, lambda kube: kube.probe(probe))


def test_read_back_keeps_certificates_without_their_keys(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    import base64

    from meshtutor.model.edge import Secret

    put_component(fake_apiserver, "istio-ingressgateway")

    def secret(name: str, kind: str, data: dict[str, bytes]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "istio-system"},
            "type": kind,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }

    fake_apiserver.put_object(
        secret("shop-cert", "kubernetes.io/tls", {"tls.crt": b"CHAIN", "tls.key": b"KEY"})
    )
    fake_apiserver.put_object(secret("db-password", "Opaque", {"password": b"hunter2"}))
    # A Gateway names the certificate (test_secret_reads.py).
    fake_apiserver.put_object(
        https_gateway("shop", "istio-system", "shop-cert", "shop.example.com")
    )

    async def read(kube: KubeBackend) -> Any:
        return await asyncio.to_thread(lambda: kube.cluster)

    cluster = run_with(kubeconfig_path, read)
    secrets = list(cluster.objects(Secret))
    assert [(s.namespace, s.name) for s in secrets] == [("istio-system", "shop-cert")]
    assert secrets[0].data == {"tls.crt": b"CHAIN", "tls.key": b""}
    assert fake_apiserver.requests_to(r"/api/v1/secrets$", "GET") == []  # no Secret listed


def test_doctor_warns_about_missing_ingress_components(
    fake_apiserver: FakeAPIServer, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    put_component(fake_apiserver, "istio-ingressgateway")
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
    config = fake_apiserver.kubeconfig(tmp_path / "config", context_name=CONTEXT)
    out = subprocess.run(
        [sys.executable, "-m", "meshtutor", "doctor", "--kubeconfig", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "MESHTUTOR_HOME": str(tmp_path / "home")},
    )
    assert "Traceback" not in out.stderr, out.stderr
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["istio-ingressgateway"]["status"] == "ok"
    nginx = checks["ingress-nginx"]
    assert nginx["status"] == "warn" and not nginx["required"]
    assert "ingress-nginx/ingress-nginx-controller is missing" in nginx["detail"]
    assert nginx["detail"].endswith("needed by lesson 15")
    assert nginx["fix"].endswith("deploy/static/provider/kind/deploy.yaml")
    assert out.returncode == 0, checks
