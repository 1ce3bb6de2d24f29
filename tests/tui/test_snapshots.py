"""Every screen, as the learner sees it at 80×24 and at 120×40.

The app runs on the frozen fixture lessons, a manual clock and a seeded CA, so certificates,
pod IPs and probe results are the same on every run. Update the baselines with
``pytest tests/tui --snapshot-update`` and look at the SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, TextArea
from tui_helpers import (
    FRONTEND,
    MTLS_SOURCE,
    PLAINTEXT_SOURCE,
    cell_text,
    make_app,
    select_cell,
    wait_for,
    wait_for_text,
)

from meshtutor.lessons.progress import Progress
from meshtutor.tui.screens.dialogs import HelpScreen, ProbeDetailScreen
from meshtutor.tui.screens.home import HomeScreen
from meshtutor.tui.screens.lesson import LessonScreen
from meshtutor.tui.screens.quiz import QuizScreen
from meshtutor.tui.screens.tls import CertificateScreen, HandshakeScreen
from meshtutor.tui.widgets import ProbeMatrix, WorkloadTable

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]

Setup = Callable[[Progress], None]
RunBefore = Callable[[Pilot[Any]], Awaitable[None]]


async def settled(pilot: Pilot[Any]) -> None:
    """Wait until no worker is running (the sandbox thread has answered everything) and every
    table has laid itself out: a DataTable sizes its columns on idle, after rows are added, so
    a picture taken before that shows cut labels (a timing-dependent snapshot)."""
    app = pilot.app
    await wait_for(
        pilot,
        lambda: not any(w.is_running for w in app.workers),
        what="the workers to finish",
    )

    def tables_laid_out() -> bool:
        return not any(
            table._require_update_dimensions or table._updated_cells
            for table in app.screen.query(DataTable)
        )

    await wait_for(pilot, tables_laid_out, what="the tables to size their columns")
    await pilot.pause()


async def on_home(pilot: Pilot[Any]) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HomeScreen), what="the home screen")
    await settled(pilot)


async def open_lesson(pilot: Pilot[Any]) -> ProbeMatrix:
    """Enter on the first lesson; wait for its matrix (the text may not all fit at 80×24)."""
    await on_home(pilot)
    await pilot.press("enter")
    screen = await wait_for(
        pilot, lambda: isinstance(pilot.app.screen, LessonScreen) and pilot.app.screen
    )
    matrix: ProbeMatrix = screen.query_one(ProbeMatrix)
    await wait_for(pilot, lambda: matrix.row_count, what="the probe matrix")
    await settled(pilot)
    return matrix


async def run_step(pilot: Pilot[Any]) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, LessonScreen)
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.passed, what="the step to pass")
    await settled(pilot)


async def after_strict(pilot: Pilot[Any]) -> ProbeMatrix:
    """Lesson open, step 1 passed, step 2 (STRICT) run: the matrix shows 000 (56)."""
    matrix = await open_lesson(pilot)
    await run_step(pilot)
    await pilot.press("n")
    await settled(pilot)
    await run_step(pilot)
    assert (cell_text(matrix, PLAINTEXT_SOURCE, FRONTEND) or "").startswith("000 (56)")
    return matrix


def quiz_ready(progress: Progress) -> None:
    """Both steps done: opening the lesson goes straight to its quiz."""
    for step in ("baseline", "strict"):
        progress.at_step("strict-demo", step)
        progress.step_result("strict-demo", step, "passed")


def some_progress(progress: Progress) -> None:
    """One lesson in progress, one done with a quiz score, one new."""
    progress.at_step("strict-demo", "baseline")
    progress.step_result("strict-demo", "baseline", "passed")
    progress.at_step("strict-demo", "strict")
    progress.at_step("auto-mtls", "auto")
    progress.step_result("auto-mtls", "auto", "passed")
    for question, correct in (("who", True), ("which", True), ("predict", False)):
        progress.quiz_answer("auto-mtls", 1, question, "x", correct, 1.0 if correct else 0.0)
    progress.finish("auto-mtls")


async def home(pilot: Pilot[Any]) -> None:
    await on_home(pilot)
    await wait_for_text(pilot, "1/3 lessons done", "▶ 1/2 steps", "67%")


async def help_screen(pilot: Pilot[Any]) -> None:
    await on_home(pilot)
    await pilot.press("question_mark")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))


async def lesson(pilot: Pilot[Any]) -> None:
    await after_strict(pilot)


async def probe_detail(pilot: Pilot[Any]) -> None:
    matrix = await after_strict(pilot)
    await select_cell(pilot, matrix, PLAINTEXT_SOURCE, FRONTEND)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ProbeDetailScreen))


async def handshake(pilot: Pilot[Any]) -> None:
    matrix = await open_lesson(pilot)
    await select_cell(pilot, matrix, MTLS_SOURCE, FRONTEND)
    await pilot.press("t")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HandshakeScreen))


async def certificates(pilot: Pilot[Any]) -> None:
    await open_lesson(pilot)
    workloads = pilot.app.screen.query_one(WorkloadTable)
    workloads.focus()
    await pilot.press(*["down"] * workloads.get_row_index("demo/frontend"))
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CertificateScreen))
    await settled(pilot)
    await pilot.press("2")
    await wait_for_text(pilot, "moved the clock +24 h")
    await settled(pilot)


async def quiz_choice(pilot: Pilot[Any]) -> None:
    await on_home(pilot)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, QuizScreen))
    await wait_for_text(pilot, "question 1/3")
    await settled(pilot)


async def quiz_manifest(pilot: Pilot[Any]) -> None:
    await quiz_choice(pilot)
    for _question in ("choice", "predict"):
        await pilot.press("enter", "ctrl+s")  # the first option, whatever it is
        await wait_for(pilot, lambda: pilot.app.screen.answered, what="the answer graded")
        await settled(pilot)
        await pilot.press("n")
        await settled(pilot)
    await wait_for_text(pilot, "question 3/3")
    editor = pilot.app.screen.query_one(TextArea)
    editor.cursor_blink = False  # a blinking cursor would make the picture flicker
    await settled(pilot)


SCREENS: list[tuple[str, Setup | None, RunBefore]] = [
    ("home", some_progress, home),
    ("help", None, help_screen),
    ("lesson", None, lesson),
    ("probe_detail", None, probe_detail),
    ("certificates", None, certificates),
    ("handshake", None, handshake),
    ("quiz_choice", quiz_ready, quiz_choice),
    ("quiz_manifest", quiz_ready, quiz_manifest),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "setup, run_before", [pytest.param(s, r, id=name) for name, s, r in SCREENS]
)
def test_screen(
    snap_compare: Any,
    tmp_path: Path,
    size: tuple[int, int],
    setup: Setup | None,
    run_before: RunBefore,
) -> None:
    app = make_app(tmp_path / "progress.sqlite")
    if setup is not None:
        setup(app.progress)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
