"""The lesson screen: prose and actions on the left, the live mesh on the right."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown, Static

from meshtutor.tui.screens.dialogs import ShowsWorkerErrors
from meshtutor.tui.widgets import ProbeMatrix, WorkloadTable


def _results_renderable(results: list[Any], check: Any, mesh: str) -> Any:
    from meshtutor.commands.render import action_result, check_result

    # The manifest itself is already shown above, with its diff.
    parts: list[Any] = [action_result(r, mesh=mesh, manifest=False) for r in results]
    if check is not None:
        parts.append(check_result(check))
    return Group(*parts) if parts else Text("")


def _diff(current: str | None, new: str) -> Text:
    """What applying ``new`` changes, as a unified diff against what the cluster holds."""
    import difflib

    if current is None:
        return Text("new object(s): nothing like this is in the cluster yet", style="dim")
    lines = list(
        difflib.unified_diff(
            current.splitlines(), new.splitlines(), "in the cluster", "to apply", lineterm="", n=1
        )
    )
    if not lines:
        return Text("unchanged: the cluster already holds exactly this", style="dim")
    text = Text()
    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
        text.append(line + "\n", style=style)
    return text


if TYPE_CHECKING:
    from meshtutor.tui.app import MeshtutorApp


class LessonScreen(ShowsWorkerErrors, Screen[None]):
    @property
    def _app(self) -> MeshtutorApp:
        return cast("MeshtutorApp", self.app)

    # Under 100 columns the mesh panel goes below the lesson (app.tcss, "-narrow").
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    BINDINGS = [
        Binding("enter", "run_step", "Run", priority=False),
        Binding("h", "hint", "Hint"),
        Binding("s", "skip", "Skip"),
        Binding("n", "next_step", "Next"),
        Binding("x", "reset_step", "Reset"),
        Binding("m", "refresh_matrix", "Matrix"),
        Binding("c", "certificates", "Certs"),
        Binding("t", "handshake", "Handshake"),
        Binding("p", "toggle_mesh", "Mesh", show=False),
        Binding("y", "copy_command", "Copy", show=False),
        Binding("escape,q", "back", "Back"),
    ]

    def __init__(self, session: Any, lesson: Any) -> None:
        super().__init__()
        self.session = session
        self.lesson = lesson
        self.passed = False
        self.last_command = ""
        self.matrix_spec: Any = None
        self.base_sub_title: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="content"):
            yield Static(id="step-title")
            yield Markdown(id="prose")
            yield Static(id="actions")
            yield Static(id="manifest")
            yield Static(id="results")
        with Vertical(id="mesh"):
            yield Static("workloads", classes="panel-title")
            yield WorkloadTable(id="workloads")
            yield Static("probe matrix  (enter on a cell: why?)", classes="panel-title")
            yield ProbeMatrix(id="matrix")
            yield Static(id="mesh-note")
        yield Footer()

    def on_mount(self) -> None:
        self.title = self.lesson.title
        self.query_one("#step-title", Static).update(Text("starting the sandbox…", style="dim"))
        self.start()

    # --- work ------------------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="lesson")
    async def start(self) -> None:
        runner = await self.session.open(self.lesson)
        self._app.attach_runner(runner)
        if runner.state == "quiz":
            self.app.push_screen(self._app.quiz_screen(self.lesson))
        await self.show_step()
        await self.refresh_mesh()

    async def show_step(self) -> None:
        runner = self.session.runner
        number, total = runner.step_number
        step = runner.step
        self.passed = False
        self.base_sub_title = f"step {number}/{total}: {step.title}"
        self.sub_title = self._app.sub_title_for(self.base_sub_title)
        self.query_one("#step-title", Static).update(
            Text(f"step {number}/{total} · {step.title}", style="bold")
        )
        await self.query_one("#prose", Markdown).update(step.prose)
        actions = [a.describe() for a in step.actions]
        self.last_command = actions[0] if actions else ""
        listing: Any
        if actions:
            # A grid, so that a command too long for the pane wraps under itself, not under "$".
            commands = Table.grid(padding=(0, 1, 0, 0))
            commands.add_column(no_wrap=True)
            commands.add_column(overflow="fold")
            for command in actions:
                commands.add_row(" $", Text(command, style="cyan"))
            listing = Group(Text("enter runs:", style="dim"), commands)
        else:
            listing = Text(
                "this step has no actions of its own: do what it asks, then press "
                "enter to check (s applies the solution)",
                style="dim",
            )
        self.query_one("#actions", Static).update(listing)
        await self._preview(step)
        self.query_one("#results", Static).update("")

    async def _preview(self, step: Any) -> None:
        applies = [a for a in step.actions if a.kind == "apply"]
        widget = self.query_one("#manifest", Static)
        if not applies:
            widget.update("")
            return
        parts: list[Any] = []
        for action in applies:
            text = action.args["path"].read_text(encoding="utf-8")
            current, new = await self.session.run(_current_yaml(self.session.runner, action))
            parts += [
                Text(f"manifests/{action.args['name']}", style="bold"),
                Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"),
                Text("diff against the cluster:", style="dim"),
                _diff(current, new),
            ]
        widget.update(Group(*parts))

    async def refresh_mesh(self) -> None:
        from meshtutor.backends.sandbox import mtls_status_table
        from meshtutor.tui.session import lesson_matrix

        runner = self.session.runner
        cluster = runner.backend.cluster
        _headers, rows = mtls_status_table(cluster)
        self.query_one(WorkloadTable).show(rows)
        spec = self.matrix_spec or lesson_matrix(self.lesson, cluster)
        probes = spec.probes()
        note = self.query_one("#mesh-note", Static)
        if not probes:
            note.update(Text("no client workload or service to probe yet", style="dim"))
            self.query_one(ProbeMatrix).clear(columns=True)
            return
        note.update(Text(f"running {len(probes)} curl probes…", style="dim"))
        results = await self.session.run(runner.backend.probes(probes))
        theme = self.app.current_theme
        self.query_one(ProbeMatrix).show(
            list(spec.sources),
            list(spec.urls),
            results,
            ok_style=theme.success or "green",
            bad_style=theme.error or "red",
        )
        mismatches = sum(not r.matches_prediction for r in results)
        note.update(
            Text(
                f"🔒 = mutual TLS · {len(results)} real curl probes"
                + (f" · ⚠ {mismatches} differ from the prediction" if mismatches else ""),
                style="dim",
            )
        )

    @work(exclusive=True, exit_on_error=False, group="lesson")
    async def action_run_step(self) -> None:
        runner = self.session.runner
        if runner is None:
            return
        if self.passed:
            await self._advance()
            return
        self.query_one("#results", Static).update(Text("running…", style="dim"))
        results = await self.session.run(runner.act())
        for result in results:
            if result.matrix is not None:
                from meshtutor.tui.session import MatrixSpec

                self.matrix_spec = MatrixSpec(tuple(result.matrix[0]), tuple(result.matrix[1]))
        check = await self.session.run(runner.check())
        await self._preview(runner.step)  # the diff now shows what the cluster holds
        self._show_results(results, check)
        await self.refresh_mesh()

    def _show_results(self, results: list[Any], check: Any) -> None:
        self.passed = bool(check and check.passed)
        widget = self.query_one("#results", Static)
        body = _results_renderable(results, check, self.lesson.mesh)
        # The verdict goes first: the results below it can be taller than the screen, and
        # scrolling to them must not hide whether the step passed.
        verdict = Text(
            "✔ step passed: press n (or enter) for the next step\n"
            if self.passed
            else "✘ not yet: h for a hint, s to skip (done for you), x to reset the step\n",
            style="bold green" if self.passed else "bold red",
        )
        widget.update(Group(verdict, body))
        self.query_one("#content", VerticalScroll).scroll_to_widget(widget)

    @work(exclusive=True, exit_on_error=False, group="lesson")
    async def action_skip(self) -> None:
        runner = self.session.runner
        results, check = await self.session.run(runner.skip())
        await self._preview(runner.step)  # the diff now shows what the cluster holds
        self._show_results(results, check)
        await self.refresh_mesh()

    def action_hint(self) -> None:
        runner = self.session.runner
        hint = runner.hint() if runner else None
        if hint is None:
            self.notify("no hints for this step")
        else:
            self.notify(hint[0], title=f"hint {hint[1]}/{hint[2]}", timeout=15)

    @work(exclusive=True, exit_on_error=False, group="lesson")
    async def action_next_step(self) -> None:
        if not self.passed:
            self.notify("check the step first (enter), or skip it (s)")
            return
        await self._advance()

    async def _advance(self) -> None:
        runner = self.session.runner
        if runner.advance():
            await self.show_step()
        else:
            self.app.push_screen(self._app.quiz_screen(self.lesson))

    @work(exclusive=True, exit_on_error=False, group="lesson")
    async def action_reset_step(self) -> None:
        await self.session.run(self.session.runner.reset_step())
        await self.show_step()
        await self.refresh_mesh()
        self.notify("step reset")

    @work(exclusive=True, exit_on_error=False, group="mesh")
    async def action_refresh_matrix(self) -> None:
        await self.refresh_mesh()

    def on_probe_matrix_cell_chosen(self, event: ProbeMatrix.CellChosen) -> None:
        from meshtutor.tui.screens.dialogs import ProbeDetailScreen

        self.app.push_screen(ProbeDetailScreen(event.result))

    def _selected_workload(self) -> tuple[str, str] | None:
        table = self.query_one(WorkloadTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        ns, _, name = str(key).partition("/")
        return ns, name

    def action_certificates(self) -> None:
        from meshtutor.tui.screens.tls import CertificateScreen

        chosen = self._selected_workload()
        if chosen is None:
            self.notify("no workload yet")
            return
        self.app.push_screen(CertificateScreen(self.session, *chosen))

    def action_handshake(self) -> None:
        from meshtutor.tui.screens.tls import HandshakeScreen

        result = self.query_one(ProbeMatrix).selected
        if result is None:
            self.notify("select a probe in the matrix first (m runs it)")
            return
        self.app.push_screen(HandshakeScreen(result))

    def action_toggle_mesh(self) -> None:
        mesh = self.query_one("#mesh")
        mesh.display = not mesh.display

    def action_copy_command(self) -> None:
        if self.last_command:
            self.app.copy_to_clipboard(self.last_command)
            self.notify(f"copied: {self.last_command}")

    async def action_back(self) -> None:
        self.app.pop_screen()


async def _current_yaml(runner: Any, action: Any) -> tuple[str | None, str]:
    """What an apply action would change: the cluster's copies of the objects it names (None
    if none exists) and the objects to apply, both as normalised YAML so that comments and
    formatting do not show up as changes."""
    import yaml

    from meshtutor.model.loader import load_file

    docs = load_file(action.args["path"], default_namespace=action.args.get("namespace"))
    found = []
    cluster = runner.backend.cluster
    for doc in docs:
        live = next((r for r in cluster if r.ref == doc.ref), None)
        if live is not None:
            found.append(yaml.safe_dump(live.raw, sort_keys=False).rstrip())
    new = "\n---\n".join(yaml.safe_dump(d.raw, sort_keys=False).rstrip() for d in docs)
    return ("\n---\n".join(found) if found else None), new
