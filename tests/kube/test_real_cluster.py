"""The curriculum against a real cluster, when one is configured.

Set MESHTUTOR_TEST_CONTEXT to a kubeconfig context of a local cluster with Istio (or Linkerd)
installed; see "Real clusters" in the README. Lessons that fast-forward the clock only run on
the sandbox and are skipped here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshtutor.lessons.loader import load_lessons

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = os.environ.get("MESHTUTOR_TEST_CONTEXT")
MESH = os.environ.get("MESHTUTOR_TEST_MESH", "istio")

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not CONTEXT,
        reason="set MESHTUTOR_TEST_CONTEXT to run against a real "
        "cluster (see README: Real clusters)",
    ),
]


def _runnable() -> list[str]:
    return [
        lesson.id
        for lesson in load_lessons()
        if lesson.mesh == MESH
        and not any(action.kind == "clock" for step in lesson.steps for action in step.actions)
    ]


def test_doctor_passes() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshtutor",
            "doctor",
            "--context",
            str(CONTEXT),
            "--mesh",
            MESH,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    checks = json.loads(out.stdout)
    assert out.returncode == 0, [c for c in checks if c["status"] == "fail"]


@pytest.mark.parametrize("lesson", _runnable())
def test_lesson_on_the_cluster(lesson: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshtutor",
            "run",
            lesson,
            "--auto",
            "--json",
            "--context",
            str(CONTEXT),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
        env={**os.environ, "MESHTUTOR_HOME": str(tmp_path)},
    )
    (report,) = json.loads(out.stdout)
    assert report["passed"], report["problems"]
