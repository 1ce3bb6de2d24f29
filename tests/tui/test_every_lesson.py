"""Every step of every shipped lesson opens in the app: no error dialog, no error notification,
and each step that applies a manifest shows it with its diff against the sandbox.

One app session per lesson, walked as a learner who skips every step would walk it (s, then n):
the sandbox is real, because the diff preview compares with what the cluster holds.
"""

from __future__ import annotations

import asyncio
import io
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Static
from tui_helpers import screen_text, seeded_backend, wait_for

from meshtutor.lessons.loader import load_lessons
from meshtutor.lessons.model import Lesson
from meshtutor.lessons.progress import Progress
from meshtutor.tui.app import MeshtutorApp
from meshtutor.tui.screens.dialogs import ErrorScreen
from meshtutor.tui.screens.lesson import LessonScreen
from meshtutor.tui.screens.quiz import QuizScreen
from meshtutor.tui.session import Session

SIZE = (120, 40)
LESSONS = load_lessons()


def _text(renderable: Any) -> str:
    """A renderable as the plain text a terminal as wide as the app would show."""
    console = Console(width=SIZE[0], file=io.StringIO())
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def _problems(app: MeshtutorApp, said: list[tuple[str, str]]) -> list[str]:
    problems = [
        f"error dialog: {screen.title_text}: {screen.message}"
        for screen in app.screen_stack
        if isinstance(screen, ErrorScreen)
    ]
    problems += [f"{severity} notification: {message}" for severity, message in said]
    return problems


def _shown(app: MeshtutorApp, said: list[tuple[str, str]], widget: str) -> str:
    """The text of a widget of the lesson screen, once sure no error has shown."""
    problems = _problems(app, said)
    assert not problems, problems
    return _text(app.screen.query_one(widget, Static).content)


def _titled(app: MeshtutorApp, said: list[tuple[str, str]], title: str) -> bool:
    return title in _shown(app, said, "#step-title")


def _complete_preview(
    app: MeshtutorApp, said: list[tuple[str, str]], names: list[str]
) -> str | None:
    text = _shown(app, said, "#manifest")
    complete = all(f"manifests/{name}" in text for name in names)
    return text if complete and "diff against the cluster:" in text else None


def _idle(app: MeshtutorApp, screen: Any) -> bool:
    return all(worker.node is not screen for worker in app.workers)


def _verdict(results: str) -> str | None:
    return results if "✔ step passed" in results or "✘ not yet" in results else None


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.id for lesson in LESSONS])
def test_every_step_opens_and_previews_its_manifests(lesson: Lesson, tmp_path: Path) -> None:
    asyncio.run(_walk(lesson, tmp_path / "progress.sqlite"))


async def _walk(lesson: Lesson, db: Path) -> None:
    progress = Progress(db)
    session = Session(progress=progress, backend_factory=seeded_backend)
    app = MeshtutorApp(lessons=[lesson], progress=progress, session=session, warm=False)
    said: list[tuple[str, str]] = []
    notify = app.notify

    def recording(message: str, *args: Any, **kwargs: Any) -> None:
        severity = kwargs.get("severity", "information")
        if severity != "information":
            said.append((severity, str(message)))
        notify(message, *args, **kwargs)

    app.notify = recording  # type: ignore[method-assign]

    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: lesson.title in screen_text(app), what="the lesson list")
        await pilot.press("enter")
        screen = await wait_for(
            pilot, lambda: isinstance(app.screen, LessonScreen) and app.screen, what="the lesson"
        )
        total = len(lesson.steps)
        for number, step in enumerate(lesson.steps, start=1):
            title = f"step {number}/{total} · {step.title}"
            await wait_for(pilot, partial(_titled, app, said, title), what=title)
            names = [a.args["name"] for a in step.actions if a.kind == "apply"]
            if names:
                # The preview is drawn after the title: wait for every manifest and its diff.
                text = await wait_for(
                    pilot,
                    partial(_complete_preview, app, said, names),
                    what=f"the preview of {title}",
                )
                assert text.count("diff against the cluster:") == len(names)
            # Skip the step (s), as a learner in a hurry would, then go on (n); each key once
            # the screen's work is done (a key starts work that cancels the running one).
            await wait_for(pilot, partial(_idle, app, screen), what=f"{title} drawn")
            await pilot.press("s")
            results = await wait_for(
                pilot,
                lambda: _verdict(_shown(app, said, "#results")),
                timeout=30,
                what=f"{title} skipped",
            )
            assert "✔ step passed" in results, f"{title}: skipping did not pass:\n{results}"
            # The matrix is redrawn after the skip, with real probes.
            await wait_for(pilot, partial(_idle, app, screen), what="the matrix", timeout=30)
            await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, QuizScreen), what="the quiz")
        assert not _problems(app, said), _problems(app, said)
