"""The app's own widgets: the workload list and the probe matrix. Names and URLs come from
manifests, probe files or a real cluster: cells and labels go through ``plain()``, since a
``DataTable`` reads a ``str`` as markup."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from meshtutor.tui.plain import plain

LOCK = "🔒"
EXIT_WORDS = {
    6: "no DNS",
    7: "refused",
    28: "timeout",
    35: "TLS fail",
    52: "empty",
    56: "reset",
    60: "untrusted",
}


def status_word(result: Any) -> tuple[str, bool]:
    """A glyph and a word for a probe result, so colour is never the only signal."""
    if result.exit_code:
        return f"✘ {EXIT_WORDS.get(result.exit_code, 'failed')}", False
    code = int(result.http_code)
    if 200 <= code < 300:
        return "✔ ok", True
    if code == 403:
        return "✘ denied", False
    if code == 404:
        return "✘ no route", False
    return "✘ error", False


def result_cell(result: Any, *, ok_style: str = "green", bad_style: str = "red") -> Text:
    code = result.http_code + (f" ({result.exit_code})" if result.exit_code else "")
    word, ok = status_word(result)
    text = Text(f"{code} ", style="bold")
    text.append(LOCK if result.mtls else "  ")
    text.append(f" {word}", style=ok_style if ok else bad_style)
    if not result.matches_prediction:
        text.append(" ⚠", style="bold yellow")
    return text


def short_source(source: str, width: int = 22) -> str:
    """``productcatalogservice.demo ⇢proxy`` style labels that leave room for the results:
    the deployment is cut with an ellipsis, the namespace and container stay readable.
    ``outside`` (curl on the learner's machine) has neither namespace nor container."""
    if source == "outside":
        return "outside (your machine)" if width >= 22 else "outside"
    namespace, _, rest = source.partition("/")
    deployment, _, container = rest.partition(":")
    tail = f".{namespace}" + (
        " ⇢proxy" if container.endswith("-proxy") else f" ({container})" if container else ""
    )
    room = max(4, width - len(tail))
    if len(deployment) > room:
        deployment = deployment[: room - 1] + "…"
    return deployment + tail


class WorkloadTable(DataTable[Any]):
    """Workloads with their sidecar, identity and inbound mTLS mode."""

    DEFAULT_CSS = "WorkloadTable { height: auto; max-height: 12; }"

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns("workload", "sidecar", "inbound")

    def show(self, rows: list[list[str]]) -> None:
        self.clear()
        for workload, sidecar, _identity, modes in rows:
            badge = "⬢ " + sidecar if sidecar != "-" else "○ none"
            short = modes.replace(
                "no sidecar: plaintext only, no policy enforced", "plaintext only"
            )
            self.add_row(plain(workload), plain(badge), plain(short), key=workload)


class ProbeMatrix(DataTable[Any]):
    """Sources (rows) × destinations (columns); each cell a real probe's result."""

    DEFAULT_CSS = "ProbeMatrix { height: auto; }"

    class CellChosen(Message):
        def __init__(self, result: Any) -> None:
            super().__init__()
            self.result = result

    def on_mount(self) -> None:
        self.cursor_type = "cell"
        self._results: dict[tuple[int, int], Any] = {}

    def show(
        self,
        sources: list[str],
        urls: list[str],
        results: list[Any],
        ok_style: str = "green",
        bad_style: str = "red",
    ) -> None:
        self.clear(columns=True)
        self._results = {}
        self.add_column("from \\ to", key="from")
        for url in urls:
            self.add_column(plain(url.split("//", 1)[-1].split("/", 1)[0]), key=url)
        it = iter(results)
        for row, source in enumerate(sources):
            cells = []
            for col in range(len(urls)):
                result = next(it)
                self._results[(row, col + 1)] = result
                cells.append(result_cell(result, ok_style=ok_style, bad_style=bad_style))
            self.add_row(plain(short_source(source)), *cells, key=source)

    def result_at(self, row: int, column: int) -> Any:
        return self._results.get((row, column))

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        result = self.result_at(event.coordinate.row, event.coordinate.column)
        if result is not None:
            event.stop()
            self.post_message(self.CellChosen(result))

    @property
    def selected(self) -> Any:
        return self.result_at(self.cursor_coordinate.row, self.cursor_coordinate.column)
