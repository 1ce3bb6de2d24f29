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
