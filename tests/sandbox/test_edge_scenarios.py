"""Traffic from outside, for real: the issue's two scenarios through `meshtutor sandbox probe
--json` (a real process, real curl, real TLS), plus the edge cases of gateway and ingress
routing, each observed in the sandbox and compared with the prediction.

1. Online Boutique: frontend-external (LoadBalancer) and istio-ingressgateway both answer 200;
   after a STRICT PeerAuthentication on frontend the LoadBalancer path is reset (000, exit 56)
   while the gateway path stays 200, over mutual TLS from the gateway's identity.
2. Linkerd + ingress-nginx: nginx → web is plaintext until the controller itself is meshed;
   then mutual TLS even to pod addresses; service-upstream sends it to the Service instead;
   a policy allowing only the controller's identity keeps the edge open and the rest closed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshtutor.model import load_file, load_yaml
from meshtutor.policy import Probe
from meshtutor.sandbox.mesh import Sandbox
from meshtutor.sandbox.probe import run_probe

ROOT = Path(__file__).resolve().parents[2]
M = ROOT / "manifests"
GATEWAY = M / "components/istio-ingressgateway.yaml"
NGINX = M / "components/ingress-nginx.yaml"
BOUTIQUE = M / "online-boutique"
SHOP = M / "lessons/linkerd-ingress"
GATEWAY_IDENTITY = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
NGINX_IDENTITY = "ingress-nginx.ingress-nginx.serviceaccount.identity.linkerd.cluster.local"

pytestmark = pytest.mark.skipif(
    subprocess.run(["sh", "-c", "command -v curl"], capture_output=True).returncode != 0,
    reason="curl is not installed",
)


def sandbox_probe(
    files: list[Path], probes: list[str], mesh: str = "istio"
) -> list[dict[str, Any]]:
    args = [sys.executable, "-m", "meshtutor", "sandbox", "probe", "--json", "--mesh", mesh]
    for f in files:
        args += ["-f", str(f)]
    result = subprocess.run([*args, *probes], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "differ from the prediction" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    assert all(item["matches_prediction"] for item in data), data
    return data


def codes(data: list[dict[str, Any]]) -> list[tuple[str, int, bool]]:
    return [(d["http_code"], d["exit_code"], d["mtls"]) for d in data]


def test_online_boutique_loadbalancer_vs_gateway_under_strict() -> None:
    base = [
        GATEWAY,
        BOUTIQUE / "demo.yaml",
        BOUTIQUE / "frontend-external.yaml",
        BOUTIQUE / "frontend-gateway.yaml",
    ]
    probes = [
        "outside=http://frontend-external.demo/",
        "outside=http://istio-ingressgateway.istio-system/",
    ]
    before = sandbox_probe(base, probes)
    assert codes(before) == [("200", 0, False), ("200", 0, True)]
    assert before[1]["client_identity"] == GATEWAY_IDENTITY
    assert before[1]["via"] == "istio-ingressgateway.istio-system"
    assert (
        before[0]["from"] == "outside"
        and "--resolve frontend-external.demo:80:" in before[0]["command"]
    )

    after = sandbox_probe([*base, BOUTIQUE / "strict-frontend.yaml"], probes)
    assert codes(after) == [("000", 56, False), ("200", 0, True)]
    assert "Connection reset by peer" in after[0]["stderr"]
    assert any("STRICT" in line for line in after[0]["explanation"])
    assert after[1]["server_identity"] == "spiffe://cluster.local/ns/demo/sa/frontend"


def test_edge_tls_one_way_outside_mutual_inside() -> None:
    files = [
        GATEWAY,
        BOUTIQUE / "demo.yaml",
        BOUTIQUE / "strict-frontend.yaml",
        M / "lessons/ingress-gateway/https-gateway.yaml",
    ]
    url = "outside=https://shop.example.com/"
    no_secret = sandbox_probe(files, [url])
    assert codes(no_secret) == [("000", 35, False)]
    with_secret = [*files, M / "edge/shop-tls-istio.yaml"]
    data = sandbox_probe(
        with_secret,
        [
            url,
            f"{url} -k",
            f"{url} --cacert edge/public-ca.pem",
            "outside=http://shop.example.com/",
        ],
    )
    assert codes(data) == [
        ("000", 60, False),
        ("200", 0, True),
        ("200", 0, True),
        ("000", 7, False),
    ]
    assert "unable to get local issuer certificate" in data[0]["stderr"]
    trusted = data[2]
    assert trusted["edge_tls"] is True
    edge = trusted["edge_handshake"]
    inside = trusted["handshake"]
    assert edge["sni"] == "shop.example.com" and not edge["mutual"]
    assert inside["mutual"] and inside["sni"].startswith("outbound_.80_._.frontend.demo")


def _annotated(doc: Any, annotations: dict[str, str], *, template: bool) -> list[Any]:
    raw = json.loads(json.dumps(doc.raw))
    meta = raw["spec"]["template"]["metadata"] if template else raw["metadata"]
    meta.setdefault("annotations", {}).update(annotations)
    return load_yaml(yaml.safe_dump(raw))


def test_linkerd_nginx_every_hop(tmp_path: Path) -> None:
    """The Linkerd + NGINX scenario step by step, each state as its own manifest set."""
    ingress = load_file(SHOP / "ingress.yaml")[0]
    nginx = next(d for d in load_file(NGINX) if d.kind == "Deployment")
    web = next(
        d for d in load_file(SHOP / "shop.yaml") if d.kind == "Deployment" and d.name == "web"
    )
    inject = {"linkerd.io/inject": "enabled"}

    def write(name: str, docs: list[Any]) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump_all([d.raw for d in docs]))
        return path

    meshed_web = write("web.yaml", _annotated(web, inject, template=True))
    meshed_nginx = write("nginx.yaml", _annotated(nginx, inject, template=True))
    upstream = write(
        "upstream.yaml",
        _annotated(
            ingress, {"nginx.ingress.kubernetes.io/service-upstream": "true"}, template=False
        ),
    )
    base = [NGINX, SHOP / "shop.yaml", SHOP / "ingress.yaml"]
    probe = "outside=http://shop.example.com/headers"
    assert codes(sandbox_probe(base, [probe], "linkerd")) == [("200", 0, False)]
    assert codes(sandbox_probe([*base, meshed_web], [probe], "linkerd")) == [("200", 0, False)]
    data = sandbox_probe([*base, meshed_web, meshed_nginx], [probe], "linkerd")
    assert codes(data) == [("200", 0, True)]
    assert data[0]["client_identity"] == NGINX_IDENTITY
    assert any("pod address" in line for line in data[0]["explanation"])
    data = sandbox_probe([*base, meshed_web, meshed_nginx, upstream], [probe], "linkerd")
    assert codes(data) == [("200", 0, True)]
    assert any("service-upstream" in line for line in data[0]["explanation"])
    # web's httpbin echoes what it received: Linkerd's l5d-client-id names the controller.
    assert NGINX_IDENTITY in json.dumps(data)


# --- edge cases, observed in one sandbox each and compared with the prediction ---------------


def _observe(
    mesh: str, files: list[Path], extra: str, probes: list[str | Probe]
) -> list[tuple[str, int, bool]]:
    async def main() -> list[tuple[str, int, bool]]:
        async with Sandbox(mesh) as sb:  # type: ignore[arg-type]
            for f in files:
                await sb.apply(load_file(f))
            if extra:
                await sb.apply(load_yaml(extra))
            out = []
            for text in probes:
                probe = Probe.parse(text) if isinstance(text, str) else text
                result = await run_probe(sb, probe)
                assert result.matches_prediction, (
                    text,
                    (result.http_code, result.exit_code, result.mtls),
                    result.prediction.explanation_lines,
                )
                out.append((result.http_code, result.exit_code, result.mtls))
            return out

    return asyncio.run(main())


GATEWAY_CASES = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop.example.com", "old.example.com"]
  - port: {number: 80, name: http-redirect, protocol: HTTP}
    hosts: ["secure.example.com"]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: demo}
spec:
  hosts: ["shop.example.com"]
  gateways: ["istio-system/gw"]
  http:
  - match: [{uri: {prefix: /static}}]
    directResponse: {status: 418}
  - match: [{uri: {prefix: /missing}}]
    route: [{destination: {host: nothing-here}}]
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: frontend, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: old, namespace: demo}
spec:
  hosts: ["old.example.com"]
  gateways: ["gw"]          # means demo/gw, which does not exist: the classic 404
  http:
  - route: [{destination: {host: frontend}}]
"""


def test_gateway_routing_edge_cases() -> None:
    observed = _observe(
        "istio",
        [GATEWAY, BOUTIQUE / "demo.yaml"],
        GATEWAY_CASES,
        [
            "outside=http://shop.example.com/",
            "outside=http://shop.example.com/static/logo.png",
            "outside=http://shop.example.com/missing",
            "outside=http://old.example.com/",
            "outside=http://secure.example.com/",
            "outside=http://istio-ingressgateway.istio-system:15021/",
            "outside=http://frontend.demo/",
        ],
    )
    assert observed == [
        ("200", 0, True),
        ("418", 0, False),
        ("503", 0, False),
        ("404", 0, False),
        ("301", 0, False),
        # Envoy's status listener (from its bootstrap, no Gateway needed) has no route for /
        ("404", 0, False),
        ("000", 6, False),
    ]


INGRESS_CASES = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: exact, namespace: shop}
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /gone, pathType: Prefix, backend: {service: {name: nobody, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other-class, namespace: shop}
spec:
  ingressClassName: traefik
  rules:
  - host: traefik.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-nowhere, namespace: shop}
spec:
  podSelector: {matchLabels: {app: catalog}}
  policyTypes: [Ingress]
"""


def test_ingress_nginx_edge_cases() -> None:
    observed = _observe(
        "linkerd",
        [NGINX, SHOP / "shop.yaml", SHOP / "ingress.yaml"],
        INGRESS_CASES,
        [
            "outside=http://shop.example.com/get",
            "outside=http://shop.example.com/catalogue",  # Prefix /catalog: not /catalogue
            "outside=http://shop.example.com/gone",
            "outside=http://traefik.example.com/",
            "outside=https://shop.example.com/get",
            "outside=https://shop.example.com/get -k",
        ],
    )
    assert observed == [
        ("200", 0, False),
        ("404", 0, False),  # web's httpbin has no /catalogue
        ("503", 0, False),
        ("000", 6, False),
        ("000", 60, False),  # the controller's self-signed fake certificate
        ("200", 0, False),
    ]


def test_networkpolicy_sees_the_outside_client() -> None:
    """A default-deny ingress policy drops the load balancer's traffic to frontend; an ipBlock
    for the world lets it in again (pod and namespace selectors never match it)."""
    deny = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: demo}
spec:
  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {}}]
"""
    world = (
        deny
        + """
  - from: [{ipBlock: {cidr: 0.0.0.0/0}}]
"""
    )
    files = [BOUTIQUE / "demo.yaml", BOUTIQUE / "frontend-external.yaml"]
    quick = Probe.from_outside("http://frontend-external.demo/", timeout=1)
    assert _observe("istio", files, deny, [quick]) == [("000", 28, False)]
    assert _observe("istio", files, world, [quick]) == [("200", 0, False)]


def test_gateway_answers_itself_over_https() -> None:
    """The gateway's own answers (404 with no route, a direct response) reach curl over TLS."""
    gateway_only = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls-only, namespace: demo}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-example-com-tls}
"""
    observed = _observe(
        "istio",
        [GATEWAY, BOUTIQUE / "demo.yaml", M / "edge/shop-tls-istio.yaml"],
        gateway_only,
        [
            "outside=https://shop.example.com/ --cacert edge/public-ca.pem",
            "outside=http://shop.example.com/",
        ],
    )
    assert observed == [("404", 0, False), ("000", 7, False)]
