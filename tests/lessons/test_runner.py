"""The lesson runner, quizzes and progress, with real sandboxes and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from meshtutor.lessons.loader import load_lesson
from meshtutor.lessons.progress import Progress
from meshtutor.lessons.runner import LessonRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_validate import GOOD

ROOT = Path(__file__).resolve().parents[2]

NAMESPACE_ANSWER = textwrap.dedent("""\
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: default, namespace: demo}
    spec: {mtls: {mode: STRICT}}
""")
WORKLOAD_ANSWER = textwrap.dedent("""\
    apiVersion: security.istio.io/v1beta1
    kind: PeerAuthentication
    metadata: {name: frontend-only, namespace: demo}
    spec:
      selector:
        matchLabels: {app: frontend}
      mtls: {mode: STRICT}
""")
WRONG_ANSWER = NAMESPACE_ANSWER.replace("STRICT", "PERMISSIVE")


@pytest.fixture
def lesson_path(tmp_path: Path) -> Path:
    path = tmp_path / "01-strict-demo.yaml"
    path.write_text(GOOD)
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


class TestManifestQuestions:
    def _grade(self, lesson_path: Path, answer: str):  # type: ignore[no-untyped-def]
        lesson = load_lesson(lesson_path)
        question = next(q for q in lesson.quiz if q.type == "manifest")

        async def main():  # type: ignore[no-untyped-def]
            runner = LessonRunner(lesson)
            return await runner.answer_manifest(question, answer)

        return asyncio.run(main())

    def test_the_authors_answer_passes(self, lesson_path: Path) -> None:
        grade, _check = self._grade(lesson_path, NAMESPACE_ANSWER)
        assert grade.correct and grade.score == 1.0

    def test_a_different_correct_answer_passes(self, lesson_path: Path) -> None:
        """A workload-level policy instead of the author's namespace-level one."""
        grade, check = self._grade(lesson_path, WORKLOAD_ANSWER)
        assert grade.correct
        assert check is not None and all(r.result and r.result.prober for r in check.results)

    def test_a_wrong_answer_fails_with_the_probe_explained(self, lesson_path: Path) -> None:
        grade, _check = self._grade(lesson_path, WRONG_ANSWER)
        assert not grade.correct and grade.score == 0.0
        text = "\n".join(grade.feedback)
        assert (
            "✘ demo/productcatalogservice:istio-proxy=http://frontend:80/: expected 000 (exit 56), got 200"
            in text
        )
        assert "PeerAuthentication demo/default" in text  # the culprit, from the explanation
        assert "✔ demo/productcatalogservice=http://frontend:80/ prints 200, mutual TLS" in text

    def test_yaml_that_does_not_load_is_a_wrong_answer_not_a_crash(self, lesson_path: Path) -> None:
        grade, check = self._grade(lesson_path, "kind: PeerAuthentication\nspec: [\n")
        assert not grade.correct and check is None
        assert "your YAML does not load" in grade.feedback[0]


class TestQuiz:
    def test_predict_is_graded_by_running_the_probe(self, lesson_path: Path) -> None:
        lesson = load_lesson(lesson_path)
        question = next(q for q in lesson.quiz if q.type == "predict")

        async def main():  # type: ignore[no-untyped-def]
            runner = LessonRunner(lesson)
            right = await runner.answer_prediction(question, "000 (56)")
            wrong = await runner.answer_prediction(question, "200")
            return right, wrong

        (right, result), (wrong, _) = asyncio.run(main())
        assert right.correct and not wrong.correct
        assert right.actual == "000 (56)" and result.prober == "curl" and result.exit_code == 56
        assert "you predicted 200" in wrong.feedback[0]

    def test_choice_scores(self, lesson_path: Path) -> None:
        lesson = load_lesson(lesson_path)
        runner = LessonRunner(lesson)
        question = lesson.quiz[0]
        assert runner.answer_choice(question, [1]).correct
        wrong = runner.answer_choice(question, [0])
        assert not wrong.correct and any("client container bypasses" in f for f in wrong.feedback)


class TestSteps:
    def test_walk_check_hint_skip_and_reset(self, lesson_path: Path, home: Path) -> None:
        lesson = load_lesson(lesson_path)

        async def main() -> None:
            progress = Progress()
            runner = LessonRunner(lesson, progress=progress)
            await runner.start()
            try:
                assert (await runner.check()).passed  # baseline holds before any action
                runner.advance()
                failing = await runner.check()  # STRICT not applied yet
                assert not failing.passed
                assert "expected 000 (exit 56), got 200" in failing.summary
                assert runner.hint() is None  # this step has no hints
                results = await runner.act()
                assert results[0].lines == ["peerauthentication/default created"]
                assert (await runner.check()).passed
                await runner.reset_step()  # back to the state before step 2
                assert not (await runner.check()).passed
            finally:
                await runner.stop()

        asyncio.run(main())

    def test_progress_survives_a_restart(self, lesson_path: Path, home: Path) -> None:
        lesson = load_lesson(lesson_path)

        async def first() -> None:
            runner = LessonRunner(lesson, progress=Progress())
            await runner.start()
            await runner.act()
            assert (await runner.check()).passed
            runner.advance()
            runner.hint()
            await runner.stop()

        async def second() -> tuple[int, bool]:
            runner = LessonRunner(lesson, progress=Progress())
            await runner.start()
            try:
                return runner.index, (await runner.check()).passed
            finally:
                await runner.stop()

        asyncio.run(first())
        index, passed = asyncio.run(second())
        assert index == 1 and not passed  # resumed at step 2, whose action is not done yet
        state = Progress().lesson(lesson.id)
        assert state.status == "in-progress" and state.steps_done == ["baseline"]
        assert state.current_step == "strict"

    def test_progress_survives_a_crash_mid_step(self, lesson_path: Path, home: Path) -> None:
        script = textwrap.dedent(f"""
            import asyncio, os
            from meshtutor.lessons.loader import load_lesson
            from meshtutor.lessons.progress import Progress
            from meshtutor.lessons.runner import LessonRunner
            async def main():
                runner = LessonRunner(load_lesson({str(lesson_path)!r}), progress=Progress())
                await runner.start()
                await runner.act(); await runner.check(); runner.advance()
                await runner.act()  # half-way through step 2
                os._exit(9)         # no cleanup, no stop: a crash
            asyncio.run(main())
        """)
        out = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 9, out.stderr
        state = Progress().lesson("strict-demo")
        assert state.steps_done == ["baseline"] and state.current_step == "strict"


class TestProgressDatabase:
    def test_quiz_attempts_and_reset(self, home: Path) -> None:
        progress = Progress()
        attempt = progress.quiz_answer("x", None, "q1", [1], True, 1.0)
        assert progress.quiz_answer("x", attempt, "q2", "200", False, 0.0) == attempt == 1
        assert progress.quiz_answer("x", None, "q1", [1], True, 1.0) == 2
        state = progress.lesson("x")
        assert (state.quiz_attempts, state.quiz_best) == (2, 1.0)
        assert [h["answer"] for h in progress.quiz_history("x")] == [[1], "200", [1]]
        progress.start("y", "s1")
        assert progress.reset("x") == 0 and progress.lesson("x").quiz_attempts == 0
        assert progress.reset() == 1 and progress.lesson("y").status == "new"

    def test_a_corrupt_database_is_moved_aside(self, home: Path) -> None:
        home.mkdir(parents=True)
        (home / "progress.sqlite").write_bytes(b"this is not a database" * 100)
        progress = Progress()
        assert progress.notice and "moved to" in progress.notice
        assert list(home.glob("progress.sqlite.corrupt-*"))
        progress.start("x", "a")  # the new database works
        assert progress.lesson("x").status == "in-progress"

    def test_cli_on_a_corrupt_database(self, home: Path) -> None:
        home.mkdir(parents=True)
        (home / "progress.sqlite").write_bytes(b"\x00garbage" * 512)
        out = subprocess.run(
            [sys.executable, "-m", "meshtutor", "progress", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "MESHTUTOR_HOME": str(home)},
        )
        assert out.returncode == 0, out.stderr
        assert "could not be read" in out.stderr and "Traceback" not in out.stderr
        assert isinstance(json.loads(out.stdout), list)

    def test_cli_reset_asks_unless_yes(self, home: Path) -> None:
        env = {**os.environ, "MESHTUTOR_HOME": str(home)}
        Progress().start("namespace-strict", "baseline")
        refused = subprocess.run(
            [sys.executable, "-m", "meshtutor", "progress", "reset"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        assert refused.returncode == 2 and "without --yes" in refused.stderr
        done = subprocess.run(
            [sys.executable, "-m", "meshtutor", "progress", "reset", "--yes"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=env,
        )
        assert done.returncode == 0 and "1 lesson(s) had progress" in done.stdout
        assert (
            sqlite3.connect(home / "progress.sqlite")
            .execute("SELECT count(*) FROM lessons")
            .fetchone()[0]
            == 0
        )
