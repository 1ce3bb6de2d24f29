"""Skipping a step leaves the cluster as doing it would, so skipping never ends a lesson.

lessons/FORMAT.md: a step's actions run when the learner presses "run"; its ``solution`` (if
any) makes ``expect`` hold when the actions alone do not. A step without a solution is one
whose actions are the whole job (certificates-identity step 2 applies ``toolbox``), so
skipping it must still run them, or the next step finds no ``foo/toolbox`` (issue 13).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from meshtutor.lessons.loader import find_lesson, load_lessons
from meshtutor.lessons.model import Lesson
from meshtutor.lessons.progress import Progress
from meshtutor.lessons.runner import LessonRunner

ROOT = Path(__file__).resolve().parents[2]
LESSONS = load_lessons()


def test_run_certificates_identity_skipping_step_2(tmp_path: Path) -> None:
    """The learner runs step 1, skips step 2 (which has no solution), and carries on."""
    out = subprocess.run(
        [sys.executable, "-m", "meshtutor", "run", "certificates-identity"],
        input="\ns\n\nq\n",  # run step 1, skip step 2, run step 3, quit
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "MESHTUTOR_HOME": str(tmp_path), "COLUMNS": "100"},
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "no workload" not in out.stdout + out.stderr
    step2 = out.stdout.split("step 2/4")[1].split("step 3/4")[0]
    assert "kubectl apply -f manifests/lessons/certificates-identity/toolbox.yaml" in step2
    assert "deployment/toolbox created" in step2 and "check passed" in step2
    step3 = out.stdout.split("step 3/4")[1]
    assert "check passed" in step3  # the step after the skipped one works
    assert "progress saved" in out.stdout
    with sqlite3.connect(tmp_path / "progress.sqlite") as db:
        steps = dict(db.execute("SELECT step_id, status FROM steps").fetchall())
    assert steps == {"spiffe-id": "passed", "service-account": "skipped", "rotation": "passed"}


def test_checking_before_the_step_ran_reports_the_missing_workload() -> None:
    """A check whose probe starts from a workload that is not there yet fails, naming it;
    it does not end the lesson."""
    lesson = find_lesson("certificates-identity")

    async def main() -> None:
        runner = LessonRunner(lesson)
        await runner.start(resume=False)
        try:
            runner.advance()  # step 2, toolbox not applied yet
            check = await runner.check()
            assert not check.passed
            problems = [r.problem for r in check.results if not r.passed]
            assert any("no running pod foo/toolbox" in (p or "") for p in problems), problems
            assert any("no workload foo/toolbox" in (p or "") for p in problems), problems
        finally:
            await runner.stop()

    asyncio.run(main())


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.id for lesson in LESSONS])
def test_skipping_every_step_passes_every_step(lesson: Lesson, tmp_path: Path) -> None:
    """A learner who presses s at every step of any lesson reaches the quiz, every step
    recorded as skipped."""

    async def main() -> None:
        progress = Progress(tmp_path / "progress.sqlite")
        runner = LessonRunner(lesson, progress=progress)
        await runner.start(resume=False)
        try:
            while runner.state == "step":
                _, check = await runner.skip()
                assert check.passed, f"{runner.step.id}: {check.summary}"
                runner.advance()
        finally:
            await runner.stop()
        assert progress.lesson(lesson.id).steps_done == [s.id for s in lesson.steps]

    asyncio.run(main())
