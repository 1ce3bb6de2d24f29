"""The whole curriculum runs unattended on the sandbox: `meshtutor run --all --auto`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_lesson_passes_on_the_sandbox(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "meshtutor", "run", "--all", "--auto", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "MESHTUTOR_HOME": str(tmp_path)},
    )
    reports = json.loads(out.stdout)
    failed = {r["lesson"]: r["problems"] for r in reports if not r["passed"]}
    assert not failed, failed
    assert out.returncode == 0, out.stderr
    assert len(reports) >= 12
    for report in reports:
        assert report["steps_passed"] == len(report["steps"])
        assert report["quiz_correct"] == len(report["quiz"]) >= 3


def test_lessons_list(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "meshtutor", "lessons", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "MESHTUTOR_HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["number"] for r in rows] == sorted(r["number"] for r in rows)
    assert all(r["status"] == "new" for r in rows)
