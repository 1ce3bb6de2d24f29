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
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
M = ROOT / "manifests"
SAMPLES = M / "samples"
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
