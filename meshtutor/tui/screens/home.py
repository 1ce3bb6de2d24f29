"""Home: the curriculum with progress per lesson."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from meshtutor.tui.plain import plain

if TYPE_CHECKING:
    from meshtutor.tui.app import MeshtutorApp


COLUMNS = ("#", "lesson", "mesh", "min", "progress", "quiz")


class HomeScreen(Screen[None]):
    @property
    def _app(self) -> MeshtutorApp:
        return cast("MeshtutorApp", self.app)

    BINDINGS = [
        Binding("enter", "open", "Open", show=True),
        Binding("r", "resume", "Resume"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, lessons: list[Any], progress: Any, backend_label: str) -> None:
        super().__init__()
        self.lessons = lessons
        self.progress = progress
        self.backend_label = backend_label

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="home"):
            yield Static(id="intro")
            yield DataTable(id="lessons", cursor_type="row", zebra_stripes=True)
            yield Static(id="summary")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "meshtutor"
        self.sub_title = f"backend: {self.backend_label}"
        self.query_one("#intro", Static).update(
            Text.assemble(
                (
                    "Learn service-mesh security with real manifests, real TLS and real curl.\n",
                    "bold",
                ),
                ("enter opens a lesson · r resumes where you left off · ? lists every key", "dim"),
            )
        )
        table = self.query_one("#lessons", DataTable)
        table.add_columns(*COLUMNS)
        self.refresh_rows()
        table.focus()

    def on_screen_resume(self) -> None:
        self.refresh_rows()

    def refresh_rows(self) -> None:
        table = self.query_one("#lessons", DataTable)
        cursor = table.cursor_row
        table.clear()
        rows = []
        done = 0
        for lesson in self.lessons:
            state = self.progress.lesson(lesson.id) if self.progress else None
            status = state.status if state else "new"
            if status == "done":
                done += 1
                badge = Text("✔ done", style="green")
            elif status == "in-progress":
                badge = Text(
                    f"▶ {len(state.steps_done)}/{len(lesson.steps)} steps",  # type: ignore[union-attr]
                    style="yellow",
                )
            else:
                badge = Text("· new", style="dim")
            quiz = f"{state.quiz_best * 100:.0f}%" if state and state.quiz_best is not None else "-"
            rows.append(
                [f"{lesson.order:02d}", lesson.title, lesson.mesh, str(lesson.minutes), badge, quiz]
            )
        room = self._title_room(rows)
        for lesson, row in zip(self.lessons, rows, strict=True):
            title = row[1]
            if len(title) > room:
                row[1] = title[: room - 1].rstrip() + "…"
            row[1] = plain(row[1])  # a DataTable reads a str cell as markup
            table.add_row(*row, key=lesson.id)
        if self.lessons:
            table.move_cursor(row=min(cursor, len(self.lessons) - 1))
        self.query_one("#summary", Static).update(
            Text(f"{done}/{len(self.lessons)} lessons done", style="dim")
        )

    def _title_room(self, rows: list[list[Any]]) -> int:
        """How wide the title column may be for every column to fit on screen (80 columns
        do not hold the longest titles next to the progress)."""
        table = self.query_one("#lessons", DataTable)
        width = table.size.width or self.app.size.width - 4
        others = sum(
            max([len(COLUMNS[i])] + [len(str(row[i])) for row in rows]) + 2
            for i in range(len(COLUMNS))
            if i != 1
        )
        return max(20, width - others - 2)

    def _lesson_at_cursor(self) -> Any:
        table = self.query_one("#lessons", DataTable)
        if not self.lessons:
            return None
        return self.lessons[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        lesson = self._lesson_at_cursor()
        if lesson is not None:
            self._app.open_lesson(lesson)

    def action_resume(self) -> None:
        target = next(
            (
                lesson
                for lesson in self.lessons
                if self.progress and self.progress.lesson(lesson.id).status == "in-progress"
            ),
            None,
        )
        target = target or next(
            (
                lesson
                for lesson in self.lessons
                if not self.progress or self.progress.lesson(lesson.id).status != "done"
            ),
            None,
        )
        if target is None:
            self.notify("every lesson is done: pick one to review")
            return
        self._app.open_lesson(target)
