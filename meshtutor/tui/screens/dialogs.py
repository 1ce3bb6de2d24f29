"""Small modal screens: help, errors, probe details."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]Everywhere[/b]
  ?        this help              ctrl+p   command palette
  q        back / quit            ctrl+t   change theme

[b]Lesson list[/b]
  enter    open the lesson        r        resume where you left off

[b]Lesson[/b]
  enter    run the step's actions, then check
  h        next hint ("hint 1/3") s        skip: apply the solution
  n        next step (after a pass)  x     reset this step
  m        re-run the probe matrix  p      show / hide the mesh panel
  c        certificates of the selected workload
  t        TLS handshake of the selected matrix cell
  y        copy the shown command (OSC 52)
  enter on a matrix cell: why did this probe end like this?

[b]Certificates[/b]
  1 / 2 / 3   fast-forward the sandbox clock +1 h / +24 h / +1 y

[b]Quiz[/b]
  enter    answer   ctrl+s submit your YAML   n next question
"""


class ShowsWorkerErrors:
    """Screens whose workers fail show the error in a dialog (never a traceback)."""

    def on_worker_state_changed(self, event: Any) -> None:
        from textual.worker import WorkerState

        if event.state == WorkerState.ERROR:
            from meshtutor.errors import MeshtutorError

            error = event.worker.error
            # meshtutor's own errors say what to do (a cluster that does not answer, an object
            # that is not meshtutor's to change): shown as they are, like the CLI prints them.
            dialog = (
                ErrorScreen("meshtutor stopped", str(error))
                if isinstance(error, MeshtutorError)
                else ErrorScreen("Something went wrong", f"{type(error).__name__}: {error}")
            )
            self.app.push_screen(dialog)  # type: ignore[attr-defined]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 76; max-width: 100%; height: auto; max-height: 90%;
        border: round $primary; background: $panel; padding: 1 1 1 2; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("[b]meshtutor keys[/b]\n\n" + HELP)

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss()


class ErrorScreen(ModalScreen[None]):
    """Errors as a dialog, never a traceback on the terminal."""

    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close")]
    DEFAULT_CSS = """
    ErrorScreen { align: center middle; }
    ErrorScreen > Vertical { width: 70; max-width: 100%; height: auto; border: round $error;
        background: $panel; padding: 1 2; }
    """

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.title_text, style="bold"))
            yield Static(Text(self.message))
            yield Static(Text("press enter to close", style="dim"))

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss()


def explanation_table(result: Any) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right", style="dim")
    table.add_column()
    for number, step in enumerate(result.prediction.explanation, start=1):
        text = Text(step.text)
        if step.resource is not None:
            text.stylize("bold", 0, len(step.text))
            text = Text.assemble(
                text,
                Text(
                    f"\n   ↳ {step.resource}" + (f" · {step.field}" if step.field else ""),
                    style="cyan",
                ),
            )
        table.add_row(f"{number}.", text)
    return table


class ProbeDetailScreen(ModalScreen[None]):
    """Why did this probe end like this: the culprit, prediction vs observation, curl line."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close"), Binding("y", "copy", "Copy curl")]
    DEFAULT_CSS = """
    ProbeDetailScreen { align: center middle; }
    ProbeDetailScreen > VerticalScroll { width: 100; max-width: 100%; height: 90%;
        border: round $primary; background: $panel; padding: 0 1; }
    """

    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        r = self.result
        p = r.prediction
        culprit = p.decided_by or next(
            (s.resource for s in reversed(p.explanation) if s.resource), None
        )
        head = Text.assemble(
            (f"{r.probe.describe()}\n", "bold"),
            ("observed   ", "dim"),
            f"{r.http_code}" + (f" (curl exit {r.exit_code})" if r.exit_code else ""),
            ("  mutual TLS " + ("yes 🔒" if r.mtls else "no")),
            ("\npredicted  ", "dim"),
            f"{p.http_code}" + (f" (curl exit {p.exit_code})" if p.exit_code else ""),
            ("  mutual TLS " + ("yes" if p.mtls else "no")),
            (
                "   ✔ the same" if r.matches_prediction else "   ⚠ they differ: please report it",
                "green" if r.matches_prediction else "bold yellow",
            ),
        )
        with VerticalScroll():
            yield Static(head)
            if culprit is not None:
                yield Static(Text.assemble(("decided by  ", "dim"), (str(culprit), "bold cyan")))
            if r.client_identity or r.server_identity:
                yield Static(
                    Text(f"client {r.client_identity or '-'}\nserver {r.server_identity or '-'}")
                )
            yield Static(Text("\nwhy, hop by hop", style="bold underline"))
            yield Static(explanation_table(r))
            yield Static(Text("\nthe same probe on a real cluster", style="bold underline"))
            yield Static(Text(r.command, style="cyan"))
            if r.stderr:
                yield Static(Text(r.stderr, style="red"))
            if r.body:
                yield Static(Text("\nresponse body", style="bold underline"))
                yield Static(Text(r.body[:1500]))

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.result.command)
        self.notify(
            "copied the curl line" if self.result.probe.outside else "copied the kubectl exec line"
        )

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss()
