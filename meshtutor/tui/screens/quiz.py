"""The quiz: choice questions, predict-the-probe and write-the-manifest."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    Footer,
    Header,
    RadioButton,
    RadioSet,
    SelectionList,
    Static,
    TextArea,
)

from meshtutor.tui.plain import plain
from meshtutor.tui.screens.dialogs import ShowsWorkerErrors


class QuizScreen(ShowsWorkerErrors, Screen[None]):
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit"),
        Binding("n", "next_question", "Next"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, session: Any, lesson: Any) -> None:
        super().__init__()
        self.session = session
        self.lesson = lesson
        self.index = 0
        self.answered = False
        self.base_sub_title: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="quiz"):
            yield Static(id="question")
            yield VerticalScroll(id="answer-area")
            yield Button("Submit (ctrl+s)", id="submit", variant="primary")
            yield Static(id="feedback")
        yield Footer()

    async def on_mount(self) -> None:
        self.title = f"quiz: {self.lesson.title}"
        await self.show_question()

    @property
    def question(self) -> Any:
        return self.lesson.quiz[self.index]

    async def show_question(self) -> None:
        q = self.question
        self.answered = False
        self.base_sub_title = f"question {self.index + 1}/{len(self.lesson.quiz)}"
        sub_title_for = getattr(self.app, "sub_title_for", None)
        self.sub_title = (
            sub_title_for(self.base_sub_title) if sub_title_for else self.base_sub_title
        )
        kind = {
            "choice": "pick one",
            "multiple": "pick every right answer (space to select)",
            "predict": "predict what curl prints; the probe then runs for real",
            "manifest": "write YAML; it is applied to a scratch sandbox and checked",
        }[q.type]
        text = Text.assemble((f"{self.index + 1}. {q.question}\n", "bold"), (kind, "dim"))
        if q.type == "predict":
            text.append(f"\n\n$ {q.probe.describe()}", style="cyan")
        self.query_one("#question", Static).update(text)
        area = self.query_one("#answer-area", VerticalScroll)
        # The previous answer widget has the same id: it must be gone before the next mounts.
        await area.remove_children()
        if q.type == "choice":
            await area.mount(
                RadioSet(*[RadioButton(plain(o.text)) for o in q.options], id="answer")
            )
        elif q.type == "multiple":
            await area.mount(
                SelectionList[int](
                    *[(plain(o.text), i) for i, o in enumerate(q.options)], id="answer"
                )
            )
        elif q.type == "predict":
            await area.mount(RadioSet(*[RadioButton(plain(c)) for c in q.choices], id="answer"))
        else:
            editor = TextArea.code_editor(q.starter or "", language="yaml", id="answer")
            await area.mount(editor)
        self.query_one("#feedback", Static).update("")
        self.call_after_refresh(self._focus_answer)

    def _focus_answer(self) -> None:
        for widget in self.query("#answer"):
            widget.focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()

    @work(exclusive=True, exit_on_error=False)
    async def action_submit(self) -> None:
        if self.answered:
            self.action_next_question()
            return
        q = self.question
        runner = self.session.runner
        feedback = self.query_one("#feedback", Static)
        if q.type in ("choice", "predict"):
            radio = self.query_one("#answer", RadioSet)
            if radio.pressed_index < 0:
                self.notify("pick an answer first")
                return
            picked = radio.pressed_index
        if q.type == "choice":
            grade = runner.answer_choice(q, [picked])
        elif q.type == "multiple":
            grade = runner.answer_choice(q, list(self.query_one("#answer", SelectionList).selected))
        elif q.type == "predict":
            feedback.update(Text("running the probe for real…", style="dim"))
            grade, _result = await self.session.run(runner.answer_prediction(q, q.choices[picked]))
        else:
            feedback.update(Text("applying your YAML to a scratch sandbox…", style="dim"))
            text = self.query_one("#answer", TextArea).text
            grade, _ = await self.session.run(runner.answer_manifest(q, text))
        self.answered = True
        head = Text(
            "✔ correct" if grade.correct else "✘ not quite",
            style="bold green" if grade.correct else "bold red",
        )
        body = Text("\n".join(grade.feedback))
        last = self.index + 1 >= len(self.lesson.quiz)
        tail = Text(
            "\n\npress n for " + ("your score" if last else "the next question"), style="dim"
        )
        feedback.update(Text.assemble(head, "\n", body, tail))
        # Out of the YAML editor, which would take the "n" as text; and the verdict in view,
        # below an editor that fills a 24-line terminal.
        self.query_one("#submit", Button).focus()
        self.call_after_refresh(feedback.scroll_visible, animate=False)

    @work(exclusive=True, exit_on_error=False)
    async def action_next_question(self) -> None:
        if not self.answered:
            self.notify("answer first (ctrl+s)")
            return
        if self.index + 1 < len(self.lesson.quiz):
            self.index += 1
            await self.show_question()
            return
        score = self.session.runner.finish()
        self.query_one("#question", Static).update(
            Text(f"Lesson complete. Quiz score: {score * 100:.0f}%", style="bold")
        )
        await self.query_one("#answer-area", VerticalScroll).remove_children()
        self.query_one("#feedback", Static).update(
            Text("escape returns to the lessons", style="dim")
        )
        await self.session.close_lesson()

    def action_back(self) -> None:
        self.app.pop_screen()
