"""Every shipped lesson, replayed on the sandbox, agrees with the prediction (issue 13, item 16).

Each lesson's own probes (step actions, expectations, solutions, quiz questions) run for real
after the lesson's topology and steps, and each observation (HTTP code, curl exit code, mutual
TLS) must equal the policy engine's prediction. Three lessons also get the "wide" probes,
every pod (and istio-proxy container) to every Service port plus curl from outside: the
corners where the two disagreed (a pod calling its own Service, the gateway's status port,
Linkerd's loopback and ingress-nginx). The full sweep, every lesson with its matrices and
wide probes, is ``bench/prediction_sweep.py``.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from lesson_sweep import SweepReport, lessons_by_id, sweep

from meshtutor.lessons.loader import load_lessons

pytestmark = pytest.mark.skipif(
    subprocess.run(["sh", "-c", "command -v curl"], capture_output=True).returncode != 0,
    reason="curl is not installed",
)

LESSON_IDS = [lesson.id for lesson in load_lessons()]
WIDE = ["tls-vs-mtls", "ingress-gateway-strict", "linkerd-nginx-zero-trust"]


def _sweep(lesson_id: str, *, wide: bool) -> SweepReport:
    return asyncio.run(sweep(lessons_by_id([lesson_id]), wide=wide))


@pytest.mark.parametrize("lesson_id", LESSON_IDS)
def test_lesson_probes_match_the_prediction(lesson_id: str) -> None:
    report = _sweep(lesson_id, wide=False)
    assert report.lessons == 1 and report.probes > 0
    assert not report.mismatches, "\n".join(report.mismatches[:5])


@pytest.mark.parametrize("lesson_id", WIDE)
def test_every_pod_to_every_port_matches_the_prediction(lesson_id: str) -> None:
    report = _sweep(lesson_id, wide=True)
    assert report.probes > 50
    assert not report.mismatches, "\n".join(report.mismatches[:5])
