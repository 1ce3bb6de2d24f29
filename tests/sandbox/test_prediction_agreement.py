"""Prediction and observation agree on the corners of shipped manifests (issue 13, item 16).

Each case runs ``meshtutor sandbox probe --json`` as a learner would (a real process, real curl,
real TLS) and checks what curl printed, whether the hop was mutual TLS, the prediction, and
the explanation step that names who answered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
M = ROOT / "manifests"
SAMPLES = M / "samples"
GATEWAY = M / "components/istio-ingressgateway.yaml"
DEMO = M / "online-boutique/demo.yaml"

pytestmark = pytest.mark.skipif(
    subprocess.run(["sh", "-c", "command -v curl"], capture_output=True).returncode != 0,
    reason="curl is not installed",
)


def sandbox_probe(args: list[str], *probes: str) -> tuple[int, list[dict[str, Any]], str]:
    out = subprocess.run(
        [sys.executable, "-m", "meshtutor", "sandbox", "probe", "--json", *args, *probes],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout), out.stderr


def outcome(item: dict[str, Any]) -> tuple[str, int, bool]:
    return item["http_code"], item["exit_code"], item["mtls"]


def predicted(item: dict[str, Any]) -> tuple[str, int, bool]:
    return item["predicted_http_code"], item["predicted_exit_code"], item["predicted_mtls"]


def explanation(item: dict[str, Any]) -> list[str]:
    return [step["text"] if isinstance(step, dict) else step for step in item["explanation"]]


def test_pod_calling_its_own_service_goes_through_both_of_its_sidecars() -> None:
    """foo/sleep calls Service foo/sleep, whose only endpoint is itself, on port 80 where
    nothing listens. Istio sends a sidecar's connection to its own pod address back into the
    pod's inbound listener ("Redirect app calls back to itself via Envoy when using the service
    VIP e.g. appN => Envoy (client) => Envoy (server) => appN": istio/istio
    tools/istio-iptables/pkg/capture/run.go, the ``-o lo ! -d 127.0.0.1 --uid-owner 1337 -j
    ISTIO_IN_REDIRECT`` rule). The client side picks auto mTLS as for any endpoint whose pod has
    ``security.istio.io/tlsMode: istio`` (the injection template sets it;
    pilot/pkg/xds/endpoints/mtls_checker.go), so the hop is mutual TLS; the server side then
    cannot connect to the application and answers 503 itself, over that mutual TLS
    connection, and the client sidecar passes it on."""
    code, (item,), stderr = sandbox_probe(
        ["-f", str(SAMPLES / "namespaces.yaml"), "-n", "foo", "-f", str(SAMPLES / "sleep.yaml")],
        "foo/sleep=http://sleep.foo:80/",
    )
    assert code == 0, stderr
    assert outcome(item) == ("503", 0, True)
    assert predicted(item) == outcome(item)
    assert item["matches_prediction"] is True
    lines = explanation(item)
    assert any("back into its own inbound" in line for line in lines), lines
    assert any(
        "sidecar of sleep.foo" in line and "answers 503 over the mutual TLS" in line
        for line in lines
    ), lines


GATEWAY_ARGS = ["-f", str(GATEWAY), "-f", str(DEMO)]
STATUS = "http://istio-ingressgateway.istio-system:15021"


def test_ingress_gateway_status_port_from_a_sidecar() -> None:
    """Port 15021 of the ingress gateway is Envoy's status listener, which every Istio proxy
    has from its bootstrap (istio/istio tools/packaging/common/envoy_bootstrap.json: listener
    ``0.0.0.0_15021``, one route, prefix ``/healthz/ready`` to the ``agent`` cluster, so any
    other path has no route and Envoy answers 404). The gateway pod carries no
    ``security.istio.io/tlsMode`` label (manifests/charts/gateways/istio-ingress/templates/
    deployment.yaml and the ``gateway`` injection template set none; only the sidecar
    injection template does), so a client sidecar's auto mTLS sends plaintext to it
    (pilot/pkg/xds/endpoints/mtls_checker.go: no ``istio`` tlsMode, no mTLS)."""
    code, items, stderr = sandbox_probe(
        GATEWAY_ARGS,
        f"demo/frontend={STATUS}/",
        f"demo/frontend={STATUS}/healthz/ready",
        f"demo/frontend:istio-proxy={STATUS}/",
        f"outside={STATUS}/healthz/ready",
    )
    assert code == 0, stderr
    assert [outcome(i) for i in items] == [
        ("404", 0, False),
        ("200", 0, False),
        ("404", 0, False),
        ("200", 0, False),
    ]
    assert all(predicted(i) == outcome(i) and i["matches_prediction"] for i in items), items
    lines = explanation(items[0])
    assert any("status port" in line and "/healthz/ready" in line for line in lines), lines
    assert any("no security.istio.io/tlsMode label" in line for line in lines), lines


def test_ingress_gateway_port_without_a_server_refuses() -> None:
    """Without a Gateway on 443 the gateway's Envoy has no listener on container port 8443
    (istiod builds gateway listeners from Gateway servers only): a curl that bypasses the
    client's sidecar (its istio-proxy container) is refused, exit 7. A captured curl reaches
    its own sidecar first; Service port 443 is named ``https``, which Istio proxies as TCP, not
    HTTP (istio/istio pkg/config/protocol/instance.go ``IsTCP``: TCP, HTTPS, TLS, ...), so
    when the sidecar's upstream connect is refused it closes curl's connection without an
    HTTP answer: exit 52, where an HTTP port (80, ``http2``) would get Envoy's 503."""
    code, items, stderr = sandbox_probe(
        GATEWAY_ARGS,
        "demo/frontend:istio-proxy=http://istio-ingressgateway.istio-system:443/",
        "demo/frontend=http://istio-ingressgateway.istio-system:443/",
        "demo/frontend=http://istio-ingressgateway.istio-system:80/",
    )
    assert code == 0, stderr
    assert [outcome(i) for i in items] == [
        ("000", 7, False),
        ("000", 52, False),
        ("503", 0, False),
    ]
    assert all(predicted(i) == outcome(i) for i in items), items


POLICY = M / "lessons/linkerd-policy"


def test_linkerd_pod_calling_its_own_service_skips_its_inbound_proxy() -> None:
    """A Server with no authorization locks httpbin's port 8080 for every client (403), yet
    httpbin calling its own Service gets through, in plaintext: linkerd2-proxy marks an
    endpoint among its own addresses ``is_local`` and uses no TLS (``NoClientTls::Loopback``)
    and no transport-header port (linkerd/linkerd2-proxy linkerd/app/outbound/src/http/
    concrete.rs), so it connects straight to the application; proxy-init leaves the proxy's
    own connections alone (ignore-proxy-uid, linkerd.io reference/iptables.md) and a
    connection made inside the pod never passes PREROUTING, so the inbound proxy, where the
    Server is enforced, is not on the path."""
    code, items, stderr = sandbox_probe(
        [
            "--mesh",
            "linkerd",
            "-f",
            str(POLICY / "namespaces.yaml"),
            "-n",
            "store",
            "-f",
            str(SAMPLES / "httpbin.yaml"),
            "-n",
            "store",
            "-f",
            str(SAMPLES / "curl.yaml"),
            "-f",
            str(POLICY / "server.yaml"),
        ],
        "store/curl=http://httpbin.store:8000/headers",
        "store/httpbin=http://httpbin.store:8000/headers",
    )
    assert code == 0, stderr
    assert [outcome(i) for i in items] == [("403", 0, True), ("200", 0, False)]
    assert all(predicted(i) == outcome(i) for i in items), items
    assert any("itself" in line for line in explanation(items[1]))


NGINX = M / "components/ingress-nginx.yaml"
SHOP = M / "lessons/linkerd-ingress"


def _meshed(path: Path, tmp_path: Path) -> Path:
    """The manifest with its Namespaces annotated ``linkerd.io/inject: enabled``."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Namespace":
            doc["metadata"].setdefault("annotations", {})["linkerd.io/inject"] = "enabled"
    out = tmp_path / path.name
    out.write_text(yaml.safe_dump_all(docs))
    return out


def test_meshed_client_to_meshed_ingress_nginx_is_mutual_tls(tmp_path: Path) -> None:
    """A meshed pod calling the meshed ingress-nginx controller's Service: both Linkerd
    proxies are on the path, so the hop is mutual TLS (linkerd.io features/automatic-mtls:
    meshed to meshed, always), and nginx's own 404 (no Ingress) comes back over it. The
    controller calling its own Service skips its inbound proxy (as above): plaintext."""
    code, items, stderr = sandbox_probe(
        [
            "--mesh",
            "linkerd",
            "-f",
            str(_meshed(NGINX, tmp_path)),
            "-f",
            str(_meshed(SHOP / "shop.yaml", tmp_path)),
        ],
        "shop/web=http://ingress-nginx-controller.ingress-nginx:80/",
        "ingress-nginx/ingress-nginx-controller=http://ingress-nginx-controller.ingress-nginx:80/",
    )
    assert code == 0, stderr
    assert [outcome(i) for i in items] == [("404", 0, True), ("404", 0, False)]
    assert all(predicted(i) == outcome(i) for i in items), items


# --- the exit status of `meshtutor sandbox probe` ------------------------------------------------


def _disagreeing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shipped manifest agrees now, so a disagreement is made by wrapping the
    prediction the command compares against (the sandbox's traffic stays real)."""
    import meshtutor.sandbox.probe as sandbox_probe_module

    real = sandbox_probe_module.predict

    def wrong(*args: Any, **kwargs: Any) -> Any:
        outcome = real(*args, **kwargs)
        return replace(outcome, http_code="418")

    monkeypatch.setattr(sandbox_probe_module, "predict", wrong)


PROBE_ARGS = [
    "sandbox",
    "probe",
    "-f",
    str(DEMO),
    "demo/productcatalogservice=http://frontend:80/",
    "demo/frontend=http://productcatalogservice:3550/",
]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_probe_exits_1_when_an_observation_differs(
    monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    from meshtutor.cli import cli

    _disagreeing(monkeypatch)
    args = PROBE_ARGS + (["--json"] if as_json else [])
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "meshtutor: 2 probes differ from the prediction" in result.stderr
    if as_json:
        items = json.loads(result.stdout)
        assert [i["matches_prediction"] for i in items] == [False, False]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_probe_exits_0_when_every_observation_matches(as_json: bool) -> None:
    from meshtutor.cli import cli

    args = PROBE_ARGS + (["--json"] if as_json else [])
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "differ" not in result.stderr


def test_probe_help_documents_the_exit_status() -> None:
    from meshtutor.cli import cli

    result = CliRunner().invoke(cli, ["sandbox", "probe", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Exit status: 0 when every observation matches the prediction, 1 when" in text


def test_tls_through_meshed_ingress_nginx_is_authorized_per_connection(tmp_path: Path) -> None:
    """curl's own TLS is no HTTP to a Linkerd proxy: it passes through as opaque TCP and is
    authorized once, for the connection, "denied at the TCP level, i.e. by refusing the
    connection" (linkerd.io features/server-policy.md). With a Server on nginx's port 443 and
    no authorization, plain HTTP to that port gets the proxy's 403 and TLS is refused (curl
    exit 35); without it, a meshed pod's https:// reaches nginx, whose 404 comes back over
    the pods' mutual TLS (the prediction once failed with a traceback here)."""
    deny = tmp_path / "deny.yaml"
    deny.write_text(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\n"
        "metadata: {name: nginx-https, namespace: ingress-nginx}\n"
        "spec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: ingress-nginx}}\n"
        "  port: 443\n"
    )
    base = [
        "--mesh",
        "linkerd",
        "-f",
        str(_meshed(NGINX, tmp_path)),
        "-f",
        str(_meshed(SHOP / "shop.yaml", tmp_path)),
    ]
    nginx = "ingress-nginx-controller.ingress-nginx:443/"
    code, items, stderr = sandbox_probe(base, f"shop/web=https://{nginx} -k")
    assert code == 0, stderr
    assert [outcome(i) for i in items] == [("404", 0, True)]
    code, items, stderr = sandbox_probe(
        [*base, "-f", str(deny)],
        f"outside=https://{nginx} -k",
        f"outside=http://{nginx}",
        f"shop/web=http://{nginx}",
        f"shop/web=https://{nginx} -k",
    )
    assert code == 0, stderr
    assert [outcome(i) for i in items] == [
        ("000", 35, False),
        ("403", 0, False),
        ("403", 0, True),
        ("000", 35, False),
    ]
    assert all(predicted(i) == outcome(i) for i in items), items
