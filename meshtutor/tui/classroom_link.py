"""The app as a classroom attendee (``meshtutor --join URL``).

``ClassroomLink`` forwards what the lesson runner reports (its observer hook) to
``ClassroomClient.record()``, which only writes the local outbox: the client's own background
tasks, on the app's event loop, deliver it when the server answers. Nothing here waits on the
network in a UI handler. Pushes from the instructor (go to a lesson, a hint, a live quiz) come
back through the client's ``on_push`` and are shown by the app. Everything a push carries is
shown as plain text (``plain()``; notifications are plain in the app): it comes from the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, RadioButton, RadioSet, SelectionList, Static

from meshtutor.tui.plain import plain

if TYPE_CHECKING:
    from meshtutor.classroom.client import ClassroomClient
    from meshtutor.lessons.runner import LessonRunner
    from meshtutor.tui.app import MeshtutorApp

_log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds between refreshes of the header's classroom state


class LiveQuizScreen(ModalScreen[None]):
    """A live quiz question pushed by the instructor: pick, submit, and the answer is sent."""

    DEFAULT_CSS = """
    LiveQuizScreen { align: center middle; }
    LiveQuizScreen > Vertical {
        width: 80%; max-width: 90; height: auto; max-height: 90%;
        border: thick $accent; background: $surface; padding: 1 2;
    }
    LiveQuizScreen #live-answer { height: auto; max-height: 16; margin: 1 0; }
    """
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit"),
        Binding("escape", "dismiss_quiz", "Later"),
    ]

    def __init__(self, link: ClassroomLink, push: dict[str, Any]) -> None:
        super().__init__()
        self.link = link
        self.push = push
        self.quiz_id = int(push["quiz"])
        self.sent = False

    @property
    def labels(self) -> list[str]:
        if self.push.get("type") == "predict":
            return [str(c) for c in self.push.get("choices") or []]
        return [str(o) for o in self.push.get("options") or []]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(plain("live quiz from the instructor", style="bold"), id="live-head")
            yield Static(plain(self.push.get("text", "")), id="live-question")
            if self.push.get("type") == "multiple":
                yield SelectionList[int](
                    *[(plain(label), i) for i, label in enumerate(self.labels)], id="live-answer"
                )
            else:
                yield RadioSet(
                    *[RadioButton(plain(label)) for label in self.labels], id="live-answer"
                )
            yield Button("Send (ctrl+s)", id="live-submit", variant="primary")
            yield Static(id="live-feedback")

    def on_mount(self) -> None:
        self.query_one("#live-answer").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "live-submit":
            self.action_submit()

    def answer(self) -> Any:
        """The answer as the server takes it, or None when nothing is picked."""
        kind = self.push.get("type")
        if kind == "multiple":
            picked = sorted(self.query_one("#live-answer", SelectionList).selected)
            return picked or None
        index = self.query_one("#live-answer", RadioSet).pressed_index
        if index < 0:
            return None
        return self.labels[index] if kind == "predict" else [index]

    @work(exclusive=True, exit_on_error=False)
    async def action_submit(self) -> None:
        from meshtutor.classroom.client import ClassroomError

        if self.sent:
            return
        answer = self.answer()
        if answer is None:
            self.notify("pick an answer first")
            return
        feedback = self.query_one("#live-feedback", Static)
        feedback.update(plain("sending…", style="dim"))
        try:
            await self.link.client.answer_quiz(self.quiz_id, answer)
        except ClassroomError as exc:
            feedback.update(plain(f"not sent: {exc}", style="red"))
            return
        self.sent = True
        self.app.notify("your answer was sent", title="live quiz")
        self.dismiss(None)

    def action_dismiss_quiz(self) -> None:
        self.dismiss(None)


class ClassroomLink:
    """The running app's side of a classroom: progress out, pushes in."""

    def __init__(self, app: MeshtutorApp, client: ClassroomClient) -> None:
        self.app = app
        self.client = client
        self.status = "classroom: connecting"
        self.error: str | None = None
        self._closed = False

    # --- progress out -----------------------------------------------------------------------

    def attach(self, runner: LessonRunner) -> None:
        """Report this runner's progress; the first time, also where the learner is now (the
        runner may have been started, and warmed, before the link saw it)."""
        if self.observe in runner.observers:
            return
        runner.observers.append(self.observe)
        runner.announce()

    def observe(self, kind: str, event: dict[str, Any]) -> None:
        """A runner observer: queue the event in the client's outbox (local SQLite, no
        network; safe from the sandbox thread)."""
        if self._closed:
            return
        try:
            self.client.record(kind, event["lesson"], event.get("step"), event.get("detail"))
        except ValueError as exc:  # e.g. a lesson id the protocol refuses: report, go on
            _log.warning("classroom event %s not recorded: %s", kind, exc)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.client.on_push = self.on_push
        self.app.run_worker(self._run(), name="classroom", group="classroom", exit_on_error=False)
        self.app.set_interval(STATUS_EVERY, self.refresh_status, name="classroom status")
        self.refresh_status()

    async def _run(self) -> None:
        from meshtutor.classroom.client import ClassroomError, ClassroomOffline

        try:
            try:
                await self.client.join()
                self.app.notify(f"joined the classroom as {self.client.name}", title="classroom")
            except ClassroomOffline:
                self.app.notify(
                    "the classroom cannot be reached: your progress is kept and sent later",
                    title="classroom",
                    severity="warning",
                )
            except ClassroomError as exc:
                self.error = str(exc)
                self.app.notify(str(exc), title="classroom", severity="error", timeout=20)
            await self.client.start()
            self.refresh_status()
            await asyncio.Event().wait()  # until the app exits and cancels this worker
        finally:
            await self.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await self.client.close()

    def status_text(self) -> str:
        if self._closed:
            return "classroom: closed"
        try:
            queued = self.client.pending()
        except Exception:  # the outbox is closing
            queued = 0
        state = "connected" if self.client.online else "offline"
        if self.client.token is None and not self.client.online:
            state = "joining" if self.error is None else "not joined"
        text = f"classroom: {state}"
        if queued:
            text += f", {queued} event{'s' if queued != 1 else ''} queued"
        return text

    def refresh_status(self) -> None:
        self.status = self.status_text()
        self.app.show_classroom_status(self.status)

    # --- pushes in --------------------------------------------------------------------------

    async def on_push(self, push: dict[str, Any]) -> None:
        kind = push.get("kind")
        if kind == "hint":
            self.app.notify(str(push.get("text", "")), title="from the instructor", timeout=30)
        elif kind == "lesson":
            await self._go_to_lesson(str(push.get("lesson")), str(push.get("title", "")))
        elif kind == "quiz":
            self._close_quiz(None)
            await self.app.push_screen(LiveQuizScreen(self, push))
        elif kind == "quiz_closed" and self._close_quiz(int(push.get("quiz", 0))):
            self.app.notify("the instructor closed the quiz", title="live quiz")
        self.refresh_status()

    def _close_quiz(self, quiz: int | None) -> bool:
        """Dismiss the live quiz (``quiz`` or any) if it is on screen."""
        closed = False
        for screen in list(self.app.screen_stack):
            if (
                isinstance(screen, LiveQuizScreen)
                and quiz in (None, screen.quiz_id)
                and screen is self.app.screen
            ):
                screen.dismiss(None)
                closed = True
        return closed

    async def _go_to_lesson(self, lesson_id: str, title: str) -> None:
        from meshtutor.tui.screens.lesson import LessonScreen

        lesson = next((x for x in self.app.lessons if x.id == lesson_id), None)
        if lesson is None:
            self.app.notify(
                f"the instructor opened lesson {title or lesson_id}, which this meshtutor "
                "does not have",
                title="from the instructor",
                severity="warning",
            )
            return
        current = self.app.screen
        if isinstance(current, LessonScreen) and current.lesson.id == lesson.id:
            return
        self.app.notify(f"the instructor opened: {lesson.title}", title="from the instructor")
        # Back to the lesson list first, so "back" from the new lesson goes there.
        while len(self.app.screen_stack) > 2:
            await self.app.pop_screen()
        self.app.open_lesson(lesson)
