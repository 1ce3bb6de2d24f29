"""Traffic from outside the cluster, on the handshake screen: curl on the learner's machine
reaches the frontend through Istio's ingress gateway, so there are two TLS connections: one-way
TLS at the edge (curl → gateway, the public certificate from a kubernetes.io/tls Secret) and
mutual TLS inside the mesh (gateway → frontend's sidecar).

The probes run for real in a seeded sandbox on a manual clock: the edge certificate is the
committed demo one (valid 2026-01-01 to 2035-12-30), the mesh identities are fixed, and the
screen shows no timings, ports or mesh certificate dates, so the pictures are stable. Update
the baselines with ``pytest tests/tui/test_edge_snapshot.py --snapshot-update``.
"""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_helpers import SEED, START, make_app, screen_text, wait_for, wait_for_text

from meshtutor.backends.base import ProbeResult
from meshtutor.model.loader import load_file
from meshtutor.paths import manifests_dir
from meshtutor.pki import ManualClock
from meshtutor.policy.probe import Probe
from meshtutor.sandbox.mesh import Sandbox
from meshtutor.sandbox.probe import curl_path, run_probe
from meshtutor.tui.screens.home import HomeScreen
from meshtutor.tui.screens.tls import HandshakeScreen

pytestmark = pytest.mark.skipif(
    curl_path() is None, reason="the edge handshake is curl's: it needs curl installed"
)

GATEWAY = [
    "components/istio-ingressgateway.yaml",
    "online-boutique/demo.yaml",
    "online-boutique/strict-frontend.yaml",
    "lessons/ingress-gateway/https-gateway.yaml",
]
SECRET = "edge/shop-tls-istio.yaml"
HTTPS = "outside=https://shop.example.com/ --cacert edge/public-ca.pem"

#: name → (manifests applied in order, the probe)
CASES: dict[str, tuple[tuple[str, ...], str]] = {
    "https": ((*GATEWAY, SECRET), HTTPS),
    # no --cacert: the stand-in public CA is in no system store
    "untrusted": ((*GATEWAY, SECRET), "outside=https://shop.example.com/"),
    # credentialName names a Secret that does not exist: Envoy resets the handshake
    "no-secret": (tuple(GATEWAY), HTTPS),
    # a LoadBalancer Service straight to the STRICT frontend, no ingress
    "direct-strict": (
        (*GATEWAY, "online-boutique/frontend-external.yaml"),
        "outside=http://frontend-external.demo/",
    ),
}


@cache
def outside_result(case: str) -> ProbeResult:
    """One real probe in a fresh seeded sandbox (the result is plain, frozen data)."""
    files, probe = CASES[case]

    async def run() -> ProbeResult:
        async with Sandbox("istio", clock=ManualClock(START), seed=SEED) as sb:
            for name in files:
                await sb.apply(load_file(manifests_dir() / name))
            return await run_probe(sb, Probe.parse(probe))

    return asyncio.run(run())


def show(result: ProbeResult) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), what="the home screen")
        await wait_for(pilot, lambda: not any(w.is_running for w in app.workers))
        await app.push_screen(HandshakeScreen(result))
        await wait_for_text(pilot, "inside the mesh")

    return run_before


def test_the_outside_probe_went_through_the_gateway_with_two_handshakes() -> None:
    r = outside_result("https")
    assert (r.http_code, r.exit_code, r.mtls) == ("200", 0, True)
    assert r.matches_prediction
    assert r.prediction.edge_tls and r.prediction.via == "istio-ingressgateway.istio-system"
    assert r.edge_handshake is not None and not r.edge_handshake.mutual
    assert r.handshake is not None and r.handshake.mutual


@pytest.mark.parametrize(
    "size", [pytest.param((160, 50), id="160x50"), pytest.param((100, 66), id="100x66")]
)
def test_outside_https_handshake(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """160 columns: the two hops side by side; 100: stacked, the edge above."""
    app = make_app(tmp_path / "progress.sqlite")
    assert snap_compare(app, terminal_size=size, run_before=show(outside_result("https")))


async def _screen_of(result: ProbeResult, tmp_path: Path, size: tuple[int, int]) -> str:
    app = make_app(tmp_path / "progress.sqlite")
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), what="the home screen")
        await app.push_screen(HandshakeScreen(result))
        await wait_for(pilot, lambda: isinstance(app.screen, HandshakeScreen))
        await pilot.pause()
        return screen_text(app)


def _line_with(screen: str, text: str) -> str:
    return next(line for line in screen.splitlines() if text in line)


def test_a_learner_sees_one_way_at_the_edge_and_mutual_inside(tmp_path: Path) -> None:
    screen = asyncio.run(_screen_of(outside_result("https"), tmp_path, (160, 50)))
    # Side by side: the edge on the left, the mesh on the right of the same line.
    titles = _line_with(screen, "at the edge: curl → istio-ingressgateway.istio-system")
    assert "inside the mesh: istio-ingressgateway.istio-system → frontend.demo" in titles
    assert titles.index("at the edge") < titles.index("inside the mesh")
    verdict = _line_with(screen, "one-way TLS: the gateway proved its name")
    assert "curl shows no certificate" in verdict
    assert "mutual TLS: both sides proved who they are" in _line_with(screen, "mutual TLS: both")
    # The edge: the gateway's public certificate, trusted with --cacert; no client certificate.
    assert "CN=shop.example.com" in screen
    assert "CN=meshtutor Stand-in Issuing CA R1,O=meshtutor demo" in screen
    assert "2026-01-01 → 2035-12-30" in screen
    assert "curl checked it against --cacert edge/public-ca.pem and trusted it" in screen
    assert "(no Certificate)" in screen
    # Inside: the client's Certificate and CertificateVerify are what mTLS adds.
    assert "Certificate  mTLS" in screen
    assert "spiffe://cluster.local/ns/demo/sa/frontend" in screen
    assert "SNI shop.example.com" in screen
    assert "SNI outbound_.80_._.frontend.demo.svc.cluster.local" in screen


def test_a_narrow_terminal_stacks_the_two_hops(tmp_path: Path) -> None:
    screen = asyncio.run(_screen_of(outside_result("https"), tmp_path, (100, 66)))
    lines = screen.splitlines()
    edge = next(i for i, line in enumerate(lines) if "at the edge: curl →" in line)
    inside = next(i for i, line in enumerate(lines) if "inside the mesh:" in line)
    assert inside > edge
    assert "inside the mesh" not in lines[edge]
    assert "curl shows no certificate" in screen


@pytest.mark.parametrize(
    "case, exit_code, sentences",
    [
        (
            "untrusted",
            60,
            [
                "curl does not trust the certificate",
                "Nothing reached the mesh",
                "unable to get local issuer certificate",
                "--cacert FILE",
            ],
        ),
        (
            "no-secret",
            35,
            [
                "The TLS handshake at the edge failed",
                "did not answer curl's ClientHello with a ServerHello",
                "there is no Secret istio-system/shop-example-com-tls",
            ],
        ),
        (
            "direct-strict",
            56,
            [
                "No TLS handshake: curl on your machine has no sidecar",
                "accepts mutual TLS only (STRICT)",
                "Connection reset by peer",
                "come in through an ingress gateway",
            ],
        ),
    ],
)
def test_an_outside_probe_that_failed_at_the_edge_says_why(
    tmp_path: Path, case: str, exit_code: int, sentences: list[str]
) -> None:
    result = outside_result(case)
    assert result.exit_code == exit_code and result.matches_prediction
    screen = asyncio.run(_screen_of(result, tmp_path, (160, 40)))
    flat = " ".join(screen.split())  # sentences may wrap
    for sentence in sentences:
        assert sentence in flat, (sentence, screen)
    assert "inside the mesh" not in screen
