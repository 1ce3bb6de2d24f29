"""``meshtutor classroom dashboard URL --token T``: the instructor's view of a classroom in the
terminal (Textual).

The room is fetched from the server's instructor API (``GET /api/room``) by a worker every two
seconds, never on the UI's own path; every action (push a lesson or a hint, start or close a
live quiz, export) is an HTTP call in a worker too. Cells say their state with a glyph AND a
word (``✔ passed``, ``✘ failed``, ``▶ working``, ``· not started``), never with colour alone.
Every string the server sends (names, failure messages, titles, quiz text) is shown through
``plain()``: attendees choose their names and messages, and markup in them must stay text.

``x`` on the selected row removes that attendee (``DELETE /api/attendees/{id}``, as the page's
✕ button does) after a dialog that names them; the grid keeps its cursor on the same attendee
across refreshes, so the row the instructor chose is the one the dialog asks about. ``n``
makes a new join code (``POST /api/join-code``, as the page's button does) after a dialog:
a removed attendee who knows the old code cannot rejoin with it.

The classroom package stays free of Textual: the little HTTP client lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Footer,
    Header,
    Input,
    Select,
    Static,
)

from meshtutor.errors import MeshtutorError
from meshtutor.tui.plain import PlainTextApp, clean, plain

REFRESH_SECONDS = 2.0
TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)

# state → (glyph, word, style); the style only repeats what glyph and word already say.
STATES: dict[str, tuple[str, str, str]] = {
    "passed": ("✔", "passed", "green"),
    "failed": ("✘", "failed", "bold red"),
    "started": ("▶", "working", "yellow"),
    "todo": ("·", "not started", "dim"),
}


class DashboardError(MeshtutorError):
    """The classroom server cannot be reached or refused the instructor token."""


def normalise_url(url: str) -> str:
    """``host:port`` or a full URL (a pasted instructor link with ``#token=`` included) → the
    server's base URL."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DashboardError(f"not a classroom URL: {url!r} (expected http://HOST:PORT)")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise DashboardError(f"not a classroom URL: {url!r} (bad port)") from None
    return f"{parts.scheme}://{parts.netloc}"


def token_from_url(url: str) -> str | None:
    fragment = urlsplit(url.strip()).fragment
    if fragment.startswith("token="):
        return fragment[len("token=") :] or None
    return None


class RoomClient:
    """The instructor's side of the classroom HTTP API."""

    def __init__(self, url: str, token: str) -> None:
        self.url = normalise_url(url)
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                self.url,
                timeout=TIMEOUT,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, **params: Any
    ) -> Any:
        http = await self._http()
        query = {k: str(v) for k, v in params.items() if v is not None}
        try:
            async with http.request(method, path, json=body, params=query) as response:
                if response.status == 401:
                    raise DashboardError(
                        f"{self.url} refused the instructor token (401): the token is wrong; "
                        "copy it from what `meshtutor classroom serve` printed"
                    )
                if response.content_type == "application/json":
                    data = await response.json()
                else:
                    data = await response.text()
                if response.status >= 400:
                    message = data.get("error") if isinstance(data, dict) else None
                    raise DashboardError(
                        f"{method} {path}: HTTP {response.status}"
                        + (f": {message}" if message else "")
                    )
                return data
        except aiohttp.ClientConnectorError as exc:
            raise DashboardError(
                f"cannot reach the classroom at {self.url}: {exc.os_error.strerror or exc}"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DashboardError(
                f"the classroom at {self.url} did not answer: {exc or type(exc).__name__}"
            ) from None

    async def lessons(self) -> list[dict[str, Any]]:
        data = await self.request("GET", "/api/lessons")
        if not isinstance(data, dict) or "lessons" not in data:
            raise DashboardError(f"{self.url} is not a meshtutor classroom server")
        return list(data["lessons"])

    async def room(self, lesson: str | None, stuck: float | None) -> dict[str, Any]:
        return dict(await self.request("GET", "/api/room", lesson=lesson, stuck=stuck))

    async def push_lesson(self, lesson: str) -> dict[str, Any]:
        return dict(await self.request("POST", "/api/push/lesson", {"lesson": lesson}))

    async def push_hint(self, text: str, lesson: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        if lesson:
            body["lesson"] = lesson
        return dict(await self.request("POST", "/api/push/hint", body))

    async def new_join_code(self) -> dict[str, Any]:
        """The old code stops working; attendees already in keep their tokens."""
        return dict(await self.request("POST", "/api/join-code", {}))

    async def remove_attendee(self, attendee: str) -> dict[str, Any]:
        """Their token stops working and their seat frees; their results stay in the exports."""
        return dict(await self.request("DELETE", f"/api/attendees/{attendee}"))

    async def quiz_start(self, lesson: str, question: str) -> dict[str, Any]:
        body = {"lesson": lesson, "question": question}
        return dict(await self.request("POST", "/api/quiz/start", body))

    async def quiz_close(self) -> dict[str, Any]:
        return dict(await self.request("POST", "/api/quiz/close", {}))

    async def quiz_results(self, quiz: int) -> dict[str, Any]:
        return dict(await self.request("GET", f"/api/quiz/{quiz}/results"))

    async def export(self, folder: Path) -> list[Path]:
        """Write ``classroom-export.json`` and ``classroom-export.csv`` into ``folder``."""
        data = await self.request("GET", "/api/export.json")
        csv_text = await self.request("GET", "/api/export.csv")
        folder.mkdir(parents=True, exist_ok=True)
        json_path = folder / "classroom-export.json"
        csv_path = folder / "classroom-export.csv"
        text = data if isinstance(data, str) else json.dumps(data, indent=2, ensure_ascii=False)
        await asyncio.to_thread(json_path.write_text, text, "utf-8")
        await asyncio.to_thread(csv_path.write_text, str(csv_text), "utf-8")
        return [json_path, csv_path]


async def check_server(url: str, token: str) -> list[dict[str, Any]]:
    """Fail fast, before the screen is taken over: the URL answers and the token is right."""
    client = RoomClient(url, token)
    try:
        return await client.lessons()
    finally:
        await client.close()


def cell_text(cell: Mapping[str, Any]) -> Text:
    glyph, word, style = STATES.get(str(cell.get("state")), ("?", str(cell.get("state")), ""))
    label = f"{glyph} {word}"
    attempts = int(cell.get("attempts") or 0)
    hints = int(cell.get("hints") or 0)
    if attempts:
        label += f" {attempts}×"
    if hints:
        label += f" {hints}h"
    return plain(label, style=style)


def last_failure(attendee: Mapping[str, Any]) -> Text:
    """What blocks the attendee now: the failure message of the current step, else of the
    latest step still failing (a failure since fixed by a pass is not shown)."""
    cells: Mapping[str, Any] = attendee.get("cells") or {}
    step = str(attendee.get("step") or "")
    ordered = [cells[step]] if step in cells else []
    ordered += [c for c in reversed(list(cells.values())) if c not in ordered]
    for cell in ordered:
        if cell.get("state") == "passed":
            continue
        if cell.get("last_failure"):
            message = str(cell["last_failure"]).splitlines()[0]
            return plain(message if len(message) <= 60 else message[:59] + "…")
    return Text("")


def histogram_text(results: Mapping[str, Any]) -> Text:
    quiz = results.get("quiz") or {}
    out = Text()
    state = "OPEN" if quiz.get("state") == "open" else "closed"
    out.append(f"Quiz #{clean(quiz.get('id'))} ({state}): ", style="bold")
    out.append(f"{clean(quiz.get('text', ''))}\n")
    out.append(f"{results.get('answered', 0)} of {results.get('attendees', 0)} answered\n")
    bars = results.get("histogram") or []
    top = max([int(b["count"]) for b in bars] + [1])
    for bar in bars:
        count = int(bar["count"])
        mark = "✔ right" if bar.get("correct") and state == "closed" else "       "
        label = clean(bar["label"])[:28].ljust(28)
        out.append(f"{mark} {label} {'█' * round(20 * count / top):<20} {count}\n")
    board = results.get("leaderboard") or []
    if board:
        out.append("Leaderboard\n", style="bold")
        for rank, row in enumerate(board[:10], 1):
            out.append(
                f"{rank:>2}. {clean(row['name'])[:20]:<20} {row['score']:>5} pts  "
                f"{row['correct']}/{row['answered']} right  {row['seconds']} s\n"
            )
    return out


class ConfirmScreen(ModalScreen[bool]):
    """Asks ``question`` (plain text): dismissed with True to go ahead. Cancel has the focus,
    so an Enter meant for the grid does nothing. Widget ids start with ``prefix``."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 70; max-width: 100%; height: auto;
        border: round $error; background: $panel; padding: 1 2; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmScreen Button { margin-right: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("escape,n", "answer(False)", "Cancel"),
    ]

    def __init__(self, question: Text, confirm: str, prefix: str) -> None:
        super().__init__()
        self.question = question
        self.confirm = confirm
        self.prefix = prefix

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id=f"{self.prefix}-question")
            with Horizontal():
                yield Button(f"{self.confirm} (y)", id=f"{self.prefix}-confirm", variant="error")
                yield Button("Cancel (esc)", id=f"{self.prefix}-cancel")

    def on_mount(self) -> None:
        self.query_one(f"#{self.prefix}-cancel", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == f"{self.prefix}-confirm")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class RemoveAttendeeScreen(ConfirmScreen):
    """Asks "Remove NAME from the room?" (the name as typed, never markup)."""

    def __init__(self, name: str) -> None:
        question = Text("Remove ")
        question.append_text(plain(name, style="bold"))
        question.append(
            " from the room?\nTheir token stops working and their seat frees; what they "
            "recorded stays in the exports."
        )
        super().__init__(question, "Remove", "remove")
        self.attendee_name = name


def _shown_code(room: Mapping[str, Any]) -> str:
    """The room's join code as the projector and the page show it (ABCD-EFGH)."""
    from meshtutor.classroom.protocol import display_join_code

    code = room.get("join_code")
    return display_join_code(code) if isinstance(code, str) and code else "?"


class NewJoinCodeScreen(ConfirmScreen):
    """Asks before making a new join code."""

    def __init__(self, code: str) -> None:
        super().__init__(
            plain(
                f"Make a new join code?\nThe current one ({code}) stops working at once, so "
                "a removed attendee cannot rejoin with it; attendees already in stay in."
            ),
            "New code",
            "code",
        )


class DashboardApp(PlainTextApp[None]):
    """The room, live: attendees × steps of a lesson, and the instructor's actions."""

    TITLE = "meshtutor classroom"
    CSS = """
    #bar, #actions { height: auto; }
    #bar > *, #actions > * { margin: 0 1 0 0; }
    #lesson { width: 64; }
    #question { width: 50; }
    #hint { width: 1fr; }
    #stuck-min { width: 10; }
    #status { height: auto; padding: 0 1; }
    #room { height: 1fr; }
    #quiz { height: auto; max-height: 20; padding: 0 1; border-top: solid $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh_room", "Refresh"),
        Binding("s", "toggle_stuck", "Stuck filter"),
        Binding("e", "export", "Export"),
        Binding("x,delete", "remove_attendee", "Remove attendee"),
        Binding("n", "new_join_code", "New join code"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        url: str,
        token: str,
        *,
        stuck_minutes: float = 5.0,
        export_dir: Path | None = None,
        lessons: list[dict[str, Any]] | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        super().__init__()
        self.client = RoomClient(url, token)
        self.stuck_minutes = stuck_minutes
        self.export_dir = export_dir or Path.cwd()
        self.lessons: list[dict[str, Any]] = lessons or []
        self.refresh_seconds = refresh_seconds
        self.lesson: str | None = None
        self.room: dict[str, Any] = {}
        self.results: dict[str, Any] | None = None
        self._columns: tuple[str, ...] = ()
        self.sub_title = self.client.url
        self.grid: Screen[Any] = Screen(id="_default")

    def get_default_screen(self) -> Screen[Any]:
        # App.query_one looks at the top screen: with the removal dialog open, the workers
        # refreshing the grid would find none of its widgets there.
        return self.grid

    # --- layout -----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            with Horizontal(id="bar"):
                yield Select[str]([], prompt="lesson", id="lesson", allow_blank=True)
                yield Checkbox(f"stuck > {self.stuck_minutes:g} min", id="stuck")
                yield Button("Push lesson to all", id="push-lesson")
                yield Button("Export JSON+CSV", id="export")
            yield Static("connecting…", id="status")
            yield DataTable(id="room", zebra_stripes=True, cursor_type="row")
            with Horizontal(id="actions"):
                yield Input(placeholder="hint for everyone…", id="hint", max_length=2000)
                yield Button("Push hint", id="push-hint")
                yield Select[str]([], prompt="live quiz question", id="question")
                yield Button("Start quiz", id="quiz-start", variant="primary")
                yield Button("Close quiz", id="quiz-close", variant="warning")
            yield Static("no live quiz yet", id="quiz")
        yield Footer()

    async def on_mount(self) -> None:
        if not self.lessons:
            self.load_lessons()
        else:
            self._fill_lessons()
        self.set_interval(self.refresh_seconds, self.action_refresh_room)
        self.action_refresh_room()

    async def on_unmount(self) -> None:
        await self.client.close()

    # --- data -------------------------------------------------------------------------

    @work(exclusive=True, group="lessons")
    async def load_lessons(self) -> None:
        try:
            self.lessons = await self.client.lessons()
        except DashboardError as exc:
            self._status(str(exc), error=True)
            return
        with contextlib.suppress(NoMatches):
            self._fill_lessons()

    def _fill_lessons(self) -> None:
        select = self.grid.query_one("#lesson", Select)
        options = [
            (plain(f"{x.get('order', '')}. {x['title']}"[:50]), x["id"]) for x in self.lessons
        ]
        select.set_options(options)
        if self.lesson is None and self.lessons:
            self.lesson = str(self.room.get("lesson", {}).get("id") or "") or None
        if self.lesson:
            select.value = self.lesson
        self._fill_questions()

    def _fill_questions(self) -> None:
        lesson = next((x for x in self.lessons if x["id"] == self.lesson), None)
        questions = [q for q in (lesson or {}).get("quiz", []) if q.get("live")]
        select = self.grid.query_one("#question", Select)
        select.set_options(
            [(plain(f"{q['id']}: {q['question'][:40]}"), q["id"]) for q in questions]
        )

    def action_refresh_room(self) -> None:
        self.fetch_room()

    @work(exclusive=True, group="room")
    async def fetch_room(self) -> None:
        try:
            filtered = self.grid.query_one("#stuck", Checkbox).value
        except NoMatches:  # the timer fired as the app was closing: its widgets are gone
            return
        stuck = self.stuck_minutes if filtered else None
        try:
            room = await self.client.room(self.lesson, stuck)
        except DashboardError as exc:
            self._status(str(exc), error=True)
            return
        with contextlib.suppress(NoMatches):  # the answer came in as the app was closing
            self.show_room(room)

    def show_room(self, room: dict[str, Any]) -> None:
        self.room = room
        lesson = room.get("lesson") or {}
        if self.lesson is None and lesson.get("id"):
            self.lesson = str(lesson["id"])
            select = self.grid.query_one("#lesson", Select)
            if self.lessons:
                select.value = self.lesson
                self._fill_questions()
        steps = [str(s["id"]) for s in lesson.get("steps", [])]
        titles = [str(s.get("title") or s["id"]) for s in lesson.get("steps", [])]
        table = self.grid.query_one("#room", DataTable)
        # The grid is rebuilt at every update, which puts the cursor on the first row: keep it
        # on the attendee it was on (the one ``x`` would remove), else on the same row number
        # (the next attendee, when the selected one left), and keep the view where it was.
        selected, cursor_row = self._selected_key(), table.cursor_row
        scroll_x, scroll_y = table.scroll_x, table.scroll_y
        columns = ("attendee", "online", *steps, "last failure", "idle (min)")
        if columns != self._columns:
            table.clear(columns=True)
            table.add_column("attendee", key="attendee")
            table.add_column("online", key="online")
            for i, (step, title) in enumerate(zip(steps, titles, strict=True), 1):
                table.add_column(plain(f"{i}. {title[:14]}"), key=f"step:{step}")
            table.add_column("last failure", key="last failure")
            table.add_column("idle (min)", key="idle")
            self._columns = columns
        else:
            table.clear()
        stuck = room.get("stuck")
        for attendee in room.get("attendees", []):
            cells = attendee.get("cells") or {}
            idle = float(attendee.get("minutes_since_progress") or 0.0)
            is_stuck = attendee.get("lesson_status") != "done" and idle > self.stuck_minutes
            name = plain(attendee["name"])
            if is_stuck:
                name.append(" ⚠ stuck", style="bold red")
            table.add_row(
                name,
                "● yes" if attendee.get("online") else "○ no",
                *(cell_text(cells.get(step, {"state": "todo"})) for step in steps),
                last_failure(attendee),
                f"{idle:.1f}",
                key=str(attendee["id"]),
            )
        if table.row_count:
            row = cursor_row
            if selected is not None and selected in table.rows:
                row = table.get_row_index(selected)
            table.move_cursor(row=min(row, table.row_count - 1), scroll=False)
        table.scroll_to(scroll_x, scroll_y, animate=False)
        shown = len(room.get("attendees", []))
        filt = f", {shown} stuck > {stuck:g} min" if stuck is not None else ""
        self._status(
            f"{room.get('title') or 'classroom'} · join code {_shown_code(room)} · "
            f"{room.get('online', 0)}/{room.get('total', 0)} online{filt} · lesson "
            f"{lesson.get('title', '—')} · cells: glyph + word, N× attempts, Nh hints"
        )
        quiz = room.get("quiz")
        if quiz:
            self.show_results(quiz)

    def _selected_key(self) -> str | None:
        """The id of the attendee on the grid's cursor row, if the grid has rows."""
        table = self.grid.query_one("#room", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return str(key) if key is not None else None

    def show_results(self, results: dict[str, Any]) -> None:
        self.results = results
        self.grid.query_one("#quiz", Static).update(histogram_text(results))

    def _status(self, message: str, *, error: bool = False) -> None:
        try:
            status = self.grid.query_one("#status", Static)
        except NoMatches:  # closing
            return
        status.update(plain(("error: " if error else "") + message, style="red" if error else ""))

    # --- actions ----------------------------------------------------------------------

    @on(Select.Changed, "#lesson")
    def lesson_changed(self, event: Select.Changed) -> None:
        value = event.value
        if isinstance(value, str) and value != self.lesson:
            self.lesson = value
            self._fill_questions()
            self.fetch_room()

    @on(Checkbox.Changed, "#stuck")
    def stuck_changed(self) -> None:
        self.fetch_room()

    def action_toggle_stuck(self) -> None:
        box = self.grid.query_one("#stuck", Checkbox)
        box.value = not box.value

    @on(Button.Pressed, "#push-lesson")
    def _push_lesson(self) -> None:
        if self.lesson:
            self.run_action_call("push lesson", self.client.push_lesson(self.lesson))

    @on(Button.Pressed, "#push-hint")
    @on(Input.Submitted, "#hint")
    def _push_hint(self) -> None:
        box = self.grid.query_one("#hint", Input)
        text = box.value.strip()
        if not text:
            self.notify("type the hint first", severity="warning")
            return
        box.value = ""
        self.run_action_call("push hint", self.client.push_hint(text, self.lesson))

    @on(Button.Pressed, "#quiz-start")
    def _quiz_start(self) -> None:
        question = self.grid.query_one("#question", Select).value
        if not self.lesson or not isinstance(question, str):
            self.notify("pick a live quiz question first", severity="warning")
            return
        self.run_action_call("start quiz", self.client.quiz_start(self.lesson, question))

    @on(Button.Pressed, "#quiz-close")
    def _quiz_close(self) -> None:
        self.run_action_call("close quiz", self.client.quiz_close())

    @on(Button.Pressed, "#export")
    def _export(self) -> None:
        self.action_export()

    def action_export(self) -> None:
        self.run_action_call("export", self.client.export(self.export_dir))

    def action_remove_attendee(self) -> None:
        # The id and name are taken now: the grid refreshes while the dialog is open.
        key = self._selected_key()
        attendee = next(
            (a for a in self.room.get("attendees", []) if str(a.get("id")) == key), None
        )
        if key is None or attendee is None:
            self.notify("no attendee selected", severity="warning")
            return
        name = str(attendee.get("name", key))

        def answered(remove: bool | None) -> None:
            if remove:
                self.run_action_call(
                    f"remove {name}",
                    self.client.remove_attendee(key),
                    done=f"{name} was removed from the room",
                )

        self.push_screen(RemoveAttendeeScreen(name), answered)

    def action_new_join_code(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.run_action_call("new join code", self.client.new_join_code())

        self.push_screen(NewJoinCodeScreen(clean(_shown_code(self.room))), answered)

    @work(group="actions")
    async def run_action_call(self, what: str, call: Any, done: str | None = None) -> None:
        try:
            result = await call
        except DashboardError as exc:
            self.notify(f"{what}: {exc}", severity="error", timeout=8)
            # A refusal often means the room changed under the instructor (an attendee the
            # page removed first is a 404): show the room as it is now.
            self.fetch_room()
            return
        if what == "export":
            self.notify("exported " + ", ".join(str(p) for p in result))
        elif what == "new join code":
            self.notify(
                f"new join code {clean(result.get('shown'))}: the old one no longer works",
                timeout=10,
            )
        elif what == "close quiz":
            with contextlib.suppress(NoMatches):
                self.show_results(result)
            self.notify("quiz closed")
        else:
            self.notify(done or f"{what}: done")
        self.fetch_room()


def run_dashboard(
    url: str, token: str | None, stuck: float, export_dir: Path | None = None
) -> None:
    """Check the server and token first (one-line errors, exit 2), then run the app."""
    token = token or token_from_url(url)
    if not token:
        raise DashboardError("the instructor token is missing: pass --token T")
    lessons = asyncio.run(check_server(url, token))
    app = DashboardApp(url, token, stuck_minutes=stuck, export_dir=export_dir, lessons=lessons)
    app.run_or_exit()
