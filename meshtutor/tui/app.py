"""``meshtutor`` with no arguments: the Textual app."""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.theme import Theme

from meshtutor.tui.plain import PlainTextApp, escape
from meshtutor.tui.session import Session

if TYPE_CHECKING:
    from meshtutor.classroom.client import ClassroomClient
    from meshtutor.tui.classroom_link import ClassroomLink

THEMES = [
    # Blue and orange instead of green and red: tells ok from failed with any colour vision.
    Theme(
        name="meshtutor-colorblind",
        primary="#0072B2",
        secondary="#56B4E9",
        accent="#E69F00",
        success="#0072B2",
        error="#D55E00",
        warning="#E69F00",
        foreground="#EDEDED",
        background="#151515",
        surface="#202020",
        panel="#2A2A2A",
        dark=True,
    ),
    Theme(
        name="meshtutor-high-contrast",
        primary="#FFFF00",
        secondary="#00FFFF",
        accent="#FF00FF",
        success="#00FF00",
        error="#FF5555",
        warning="#FFFF00",
        foreground="#FFFFFF",
        background="#000000",
        surface="#000000",
        panel="#111111",
        dark=True,
    ),
]


class LessonCommands(Provider):
    """Command palette entries: open any lesson."""

    async def discover(self) -> Hits:
        app: MeshtutorApp = self.app  # type: ignore[assignment]
        for lesson in app.lessons:
            # The palette reads prompts and help as markup; lesson files are text.
            yield DiscoveryHit(
                escape(f"Open lesson {lesson.order:02d}: {lesson.title}"),
                partial(app.open_lesson, lesson),
                help=escape(lesson.summary),
            )

    async def search(self, query: str) -> Hits:
        app: MeshtutorApp = self.app  # type: ignore[assignment]
        matcher = self.matcher(query)
        for lesson in app.lessons:
            name = escape(f"Open lesson {lesson.order:02d}: {lesson.title}")
            score = matcher.match(name)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(name),
                    partial(app.open_lesson, lesson),
                    help=escape(lesson.summary),
                )


class MeshtutorApp(PlainTextApp[None]):
    CSS_PATH = "app.tcss"
    TITLE = "meshtutor"
    COMMANDS = App.COMMANDS | {LessonCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+t", "cycle_theme", "Theme", show=False),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        *,
        lessons: list[Any] | None = None,
        progress: Any = None,
        session: Session | None = None,
        warm: bool = True,
        backend_label: str = "sandbox (embedded mesh)",
        classroom: ClassroomClient | None = None,
    ) -> None:
        super().__init__()
        from meshtutor.lessons.loader import load_lessons

        self.lessons = lessons if lessons is not None else load_lessons()
        self.progress = progress
        self.session = session or Session(progress=progress)
        self._warm = warm
        self.backend_label = backend_label
        self.classroom: ClassroomLink | None = None
        # Screen → (its own sub-title, the one shown with the classroom's state).
        self._sub_titles: weakref.WeakKeyDictionary[Screen[Any], tuple[str, str]] = (
            weakref.WeakKeyDictionary()
        )
        if classroom is not None:
            from meshtutor.tui.classroom_link import ClassroomLink

            self.classroom = ClassroomLink(self, classroom)
        for theme in THEMES:
            self.register_theme(theme)

    def on_mount(self) -> None:
        from meshtutor.tui.screens.home import HomeScreen

        self.push_screen(HomeScreen(self.lessons, self.progress, self.backend_label))
        if self.classroom is not None:
            self.classroom.start()
        if self._warm and self.lessons:
            warming = self.session.warm(self._resume_target())
            ready_file = os.environ.get("MESHTUTOR_READY_FILE")
            if warming is not None and ready_file:
                # For bench/startup.py: when the warm sandbox can be probed, on the clock that
                # every process shares (CLOCK_MONOTONIC).
                warming.add_done_callback(partial(_stamp, Path(ready_file)))

    def _resume_target(self) -> Any:
        if self.progress is not None:
            for lesson in self.lessons:
                if self.progress.lesson(lesson.id).status == "in-progress":
                    return lesson
            for lesson in self.lessons:
                if self.progress.lesson(lesson.id).status != "done":
                    return lesson
        return self.lessons[0]

    def open_lesson(self, lesson: Any) -> None:
        from meshtutor.tui.screens.lesson import LessonScreen

        self.push_screen(LessonScreen(self.session, lesson))

    def attach_runner(self, runner: Any) -> None:
        """A lesson's runner is ready: report its progress to the classroom, if joined."""
        if self.classroom is not None:
            self.classroom.attach(runner)

    def sub_title_for(self, text: str) -> str:
        """A screen's sub-title, with the classroom's state when joined."""
        if self.classroom is None:
            return text
        return f"{text} · {self.classroom.status}" if text else self.classroom.status

    def show_classroom_status(self, status: str) -> None:
        """Put the classroom's state after each screen's own sub-title."""
        self.sub_title = status
        for screen in self.screen_stack:
            if hasattr(screen, "base_sub_title"):  # the lesson and quiz screens
                base = screen.base_sub_title or ""
            else:  # a screen that sets its sub-title itself (the lesson list)
                current = screen.sub_title or ""
                seen = self._sub_titles.get(screen)
                base = seen[0] if seen is not None and seen[1] == current else current
            text = self.sub_title_for(base)
            screen.sub_title = text
            if not hasattr(screen, "base_sub_title"):
                self._sub_titles[screen] = (base, text)

    def quiz_screen(self, lesson: Any) -> Screen[None]:
        from meshtutor.tui.screens.quiz import QuizScreen

        return QuizScreen(self.session, lesson)

    def action_help(self) -> None:
        from meshtutor.tui.screens.dialogs import HelpScreen

        self.push_screen(HelpScreen())

    def action_cycle_theme(self) -> None:
        names = ["textual-dark", "textual-light", "meshtutor-colorblind", "meshtutor-high-contrast"]
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"theme: {self.theme}")

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help: keys", "Every key meshtutor knows", self.action_help)
        yield SystemCommand(
            "Colour-blind-safe theme",
            "Blue and orange instead of green and red",
            partial(setattr, self, "theme", "meshtutor-colorblind"),
        )
        yield SystemCommand(
            "High-contrast theme",
            "Yellow on black",
            partial(setattr, self, "theme", "meshtutor-high-contrast"),
        )
        for binding in getattr(screen, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description:
                yield SystemCommand(
                    binding.description,
                    f"key {binding.key}",
                    partial(screen.run_action, binding.action),
                )

    async def on_unmount(self) -> None:
        if self.classroom is not None:
            await self.classroom.close()
        self.session.shutdown()


def _stamp(path: Path, _done: Any) -> None:
    path.write_text(f"{time.monotonic()}\n")


def run_app(
    *,
    backend: str | None = None,
    context: str | None = None,
    kubeconfig: str | None = None,
    allow_remote: bool = False,
    adopt: bool = False,
    label: str = "sandbox (embedded mesh)",
    join: str | None = None,
    name: str | None = None,
) -> None:
    from meshtutor.commands.common import backend_factory
    from meshtutor.lessons.progress import Progress

    progress = Progress()
    factory = backend_factory(backend, context, kubeconfig, allow_remote, adopt=adopt)
    session = Session(progress=progress, backend_factory=factory)
    client = None
    if join is not None:
        import getpass

        from meshtutor.classroom.client import ClassroomClient

        if name is None:
            try:
                name = getpass.getuser()
            except (OSError, KeyError):  # no user name in this environment
                name = "attendee"
        client = ClassroomClient(join, name)
    app = MeshtutorApp(
        classroom=client,
        progress=progress,
        session=session,
        backend_label=label,
        warm=factory.__name__ == "default_backend",
    )
    if progress.notice:
        app.call_later(app.notify, progress.notice, severity="warning", timeout=20)
    app.run_or_exit()
