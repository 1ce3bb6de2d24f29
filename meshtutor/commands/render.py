"""Rich renderings of lesson results for the terminal runner (the Textual app has its own)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

LOCK = "🔒"


def outcome_cell(result: Any) -> Text:
    """``200 🔒 ✔`` — a glyph and a word, never colour alone."""
    code = result.http_code + (f" ({result.exit_code})" if result.exit_code else "")
    ok = result.exit_code == 0 and result.http_code.startswith("2")
    text = Text(code, style="green" if ok else "red")
    if result.mtls:
        text.append(f" {LOCK}")
    return text


def probe_table(results: list[Any]) -> Table:
    table = Table(show_edge=False, pad_edge=False, expand=False)
    for header in ("from", "to", "result", "mTLS", "why"):
        table.add_column(header, overflow="fold")
    for r in results:
        why = next((s.text for s in reversed(r.prediction.explanation) if s.resource), "")
        if not r.matches_prediction:
            why = f"! differs from the prediction {r.prediction.http_code}: " + why
        options = (" -k" if r.probe.insecure else "") + (
            f" --cacert {r.probe.cacert}" if r.probe.cacert else ""
        )
        table.add_row(
            r.probe.source + (f":{r.container}" if r.probe.container else ""),
            r.probe.url + options,
            outcome_cell(r),
            "yes" if r.mtls else "no",
            why,
        )
    return table


def matrix_table(sources: list[str], urls: list[str], results: list[Any]) -> Table:
    table = Table(show_edge=False, title="curl matrix (🔒 = mutual TLS)")
    table.add_column("from \\ to")
    for url in urls:
        table.add_column(url.split("//", 1)[-1])
    it = iter(results)
    for source in sources:
        table.add_row(source, *[outcome_cell(next(it)) for _ in urls])
    return table


def plain_table(headers: list[str], rows: list[list[str]]) -> Table:
    table = Table(show_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def action_result(result: Any, *, mesh: str, manifest: bool = True) -> RenderableType:
    parts: list[RenderableType] = [Text(f"$ {result.command}", style="bold cyan")]
    if manifest and result.manifest:
        parts.append(
            Syntax(result.manifest.rstrip(), "yaml", theme="ansi_dark", background_color="default")
        )
    parts.extend(Text(line) for line in result.lines)
    if result.matrix is not None:
        parts.append(matrix_table(result.matrix[0], result.matrix[1], result.probes))
    elif result.probes:
        parts.append(probe_table(result.probes))
        for probe in result.probes:
            body = probe.body.strip()
            if body and not probe.http_code.startswith("2"):
                first = body.splitlines()[0][:100]
                parts.append(
                    Text(f"  {probe.probe.source} got {probe.http_code}: {first}", style="dim")
                )
        for probe in result.probes:
            if result.action.kind == "handshake":
                if probe.edge_handshake is not None:
                    parts.append(
                        Text(
                            "at the edge, curl → "
                            f"{probe.prediction.via or 'the ingress'} (one-way TLS: curl shows "
                            "no certificate):",
                            style="bold",
                        )
                    )
                    parts.append(Text("\n".join(probe.edge_handshake.summary_lines())))
                    if probe.handshake is not None:
                        parts.append(
                            Text(
                                f"inside the mesh, {probe.prediction.via} → "
                                f"{probe.prediction.destination_pod} (mutual TLS):",
                                style="bold",
                            )
                        )
                if probe.handshake is not None:
                    parts.append(Text("\n".join(probe.handshake.summary_lines())))
                else:
                    parts.append(
                        Text(
                            probe.handshake_error
                            or "no TLS handshake between sidecars on this path"
                        )
                    )
    if result.certificate is not None:
        from meshtutor.pki.cli import chain_tree

        info = result.certificate
        parts.append(Text(f"{info.identity}: rotated {info.rotations} time(s)"))
        parts.append(chain_tree(info.chain, mesh=mesh))
    if result.table is not None:
        parts.append(plain_table(*result.table))
    return Group(*parts)


def check_result(check: Any) -> RenderableType:
    lines: list[RenderableType] = []
    for r in check.results:
        if r.passed:
            lines.append(Text(f"✔ {r.expectation.describe()}", style="green"))
        else:
            lines.append(Text(f"✘ {r.problem}", style="red"))
            for culprit in r.culprit:
                lines.append(Text(f"    because: {culprit}"))
    title = "check passed" if check.passed else "not yet"
    return Panel(Group(*lines), title=title, border_style="green" if check.passed else "red")


def prose(text: str) -> Markdown:
    return Markdown(text)


def console() -> Console:
    return Console(highlight=False)
