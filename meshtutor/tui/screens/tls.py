"""Certificate chains and TLS handshakes, drawn for a learner."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Collapsible, Footer, Header, Static

from meshtutor.tui.screens.dialogs import ShowsWorkerErrors

MTLS_ONLY = {"CertificateRequest"}

# The messages of a TLS 1.3 mutual handshake, for predictions on real clusters.
PREDICTED_MUTUAL = [
    ("client → server", "ClientHello", "TLS 1.3, SNI, ALPN istio / transport.l5d.io"),
    ("server → client", "ServerHello", "key share, cipher"),
    ("server → client", "EncryptedExtensions", "ALPN chosen"),
    ("server → client", "CertificateRequest", "mTLS: the server asks for a certificate"),
    ("server → client", "Certificate", "the server's workload certificate"),
    ("server → client", "CertificateVerify", "proof it holds the key"),
    ("server → client", "Finished", ""),
    ("client → server", "Certificate", "mTLS: the client's workload certificate"),
    ("client → server", "CertificateVerify", "mTLS: proof it holds the key"),
    ("client → server", "Finished", ""),
]


class CertificateScreen(ShowsWorkerErrors, Screen[None]):
    """The chain a workload's sidecar presents: root → [issuer] → leaf, with validity bars."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("1", "advance(1)", "+1 h"),
        Binding("2", "advance(24)", "+24 h"),
        Binding("3", "advance(8766)", "+1 y"),
    ]

    def __init__(self, session: Any, namespace: str, name: str) -> None:
        super().__init__()
        self.session = session
        self.namespace = namespace
        self.workload = name

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="certs"):
            yield Static(id="cert-heading")
            yield Static(id="cert-tree")
            with Collapsible(
                title="PEM (what `istioctl proxy-config secret` decodes)", collapsed=True
            ):
                yield Static(id="cert-pem")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"certificates of {self.namespace}/{self.workload}"
        self.refresh_chain()

    @work(exclusive=True, exit_on_error=False)
    async def refresh_chain(self, hours: int = 0) -> None:
        runner = self.session.runner
        backend = runner.backend
        rotated = 0
        if hours:
            rotated = await self.session.run(backend.advance_clock(timedelta(hours=hours)))
        info = await self.session.run(backend.certificate(self.namespace, self.workload))
        heading = self.query_one("#cert-heading", Static)
        if info is None:
            heading.update(
                Text(
                    f"{self.namespace}/{self.workload} has no sidecar, so it has no "
                    "mesh certificate: it sends and accepts plaintext only."
                )
            )
            return
        from meshtutor.pki.cli import chain_tree

        clock = backend.sandbox.ca.clock.now()
        lines = [
            Text(f"identity  {info.identity}", style="bold"),
            Text(
                f"mesh clock {clock:%Y-%m-%d %H:%M} UTC · rotated {info.rotations} time(s) · "
                f"next rotation {info.renew_at:%Y-%m-%d %H:%M} UTC"
            ),
        ]
        if hours:
            lines.append(
                Text(
                    f"moved the clock +{hours} h: {rotated} certificate rotation(s) "
                    "across the mesh",
                    style="cyan",
                )
            )
        if info.rotation_error:
            lines.append(Text(f"rotation stopped: {info.rotation_error}", style="bold red"))
        verification = info.chain.verification
        if verification is not None:
            # An accepted chain's message already starts with "trusted: ".
            mark = "✔" if verification.ok else f"✘ {verification.reason.value}:"
            lines.append(
                Text(f"{mark} {verification.message}", style="green" if verification.ok else "red")
            )
        heading.update(Group(*lines))
        self.query_one("#cert-tree", Static).update(chain_tree(info.chain, mesh=backend.mesh))
        self.query_one("#cert-pem", Static).update(Text(info.chain.pem))

    def action_advance(self, hours: int) -> None:
        self.refresh_chain(hours)


def sequence_table(trace: Any) -> Table:
    """One row per TLS message, client on the left, server on the right."""
    table = Table(show_edge=False, box=None, padding=(0, 1))
    table.add_column("client", justify="center", width=8)
    table.add_column("", width=5)
    table.add_column("server", justify="center", width=8)
    table.add_column("message")
    table.add_column("what it carries")
    for message in trace.messages:
        if message.name == "ChangeCipherSpec":
            continue
        arrow = "──▶" if message.sender == "client" else "◀──"
        name = Text(message.name, style="bold")
        if message.mtls_specific:
            name.append("  mTLS", style="bold magenta")
        if message.name.startswith("Alert"):
            name.stylize("red")
        table.add_row(
            "●" if message.sender == "client" else "",
            arrow,
            "●" if message.sender == "server" else "",
            name,
            message.detail,
        )
    return table


def one_way_vs_mutual(trace: Any) -> Table:
    """The same handshake as one-way TLS would have it, next to the mutual one."""
    table = Table(title="one-way TLS  vs  mutual TLS", show_edge=False)
    table.add_column("one-way TLS (a browser to a website)")
    table.add_column("mutual TLS (sidecar to sidecar)")
    for message in trace.messages:
        if message.name == "ChangeCipherSpec" or message.name.startswith("NewSession"):
            continue
        who = "client → server" if message.sender == "client" else "server → client"
        label = f"{who}  {message.name}"
        if message.mtls_specific:
            table.add_row(Text("—", style="dim"), Text(label + "  (only in mTLS)", style="magenta"))
        else:
            table.add_row(label, label)
    return table


class HandshakeScreen(Screen[None]):
    """A probe's TLS handshake as a sequence diagram, or what happened instead of one."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="handshake"):
            yield Static(self._body())
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"TLS handshake: {self.result.probe.describe()}"

    def _body(self) -> Any:
        r = self.result
        trace = r.handshake
        if trace is not None:
            summary = Text.assemble(
                (
                    f"{trace.version or 'TLS'} · {trace.cipher or '?'} · ALPN {trace.alpn or '-'}\n",
                    "bold",
                ),
                ("SNI ", "dim"),
                f"{trace.sni or '-'}\n",
                ("result: ", "dim"),
                (
                    "mutual TLS: both sides proved who they are"
                    if trace.mutual
                    else "one-way TLS: only the server proved who it is",
                    "green" if trace.mutual else "yellow",
                ),
            )
            if trace.error:
                summary.append(f"\nerror: {trace.error}", style="red")
            parts: list[Any] = [summary, Text(""), sequence_table(trace)]
            if trace.mutual:
                parts += [Text(""), one_way_vs_mutual(trace)]
            return Group(*parts)
        if r.handshake_error:
            return Text(
                f"The client sidecar's TLS handshake failed: {r.handshake_error}", style="red"
            )
        if r.exit_code == 56:
            table = Table(show_edge=False, box=None)
            table.add_column("client", justify="center")
            table.add_column("")
            table.add_column("server", justify="center")
            table.add_column("")
            table.add_row(
                "●", "──▶", "", "TCP connect (accepted: iptables sends it to the sidecar)"
            )
            table.add_row("●", "──▶", "", "GET / HTTP/1.1   in plain text: no ClientHello")
            table.add_row(
                "",
                "◀─✕",
                "●",
                Text("RST: connection reset, where a ServerHello would come", style="bold red"),
            )
            return Group(
                Text(
                    "No TLS handshake: the client sent plain text and the server's "
                    "sidecar accepts mutual TLS only (STRICT).",
                    style="bold",
                ),
                Text(""),
                table,
                Text(
                    "\ncurl prints 000 and exits with 56: Recv failure: Connection reset by peer."
                ),
            )
        if r.prober == "exec":
            p = r.prediction
            if not p.mtls:
                return Text(
                    "Real cluster: handshakes are not recorded, and the policy engine "
                    "predicts no mutual TLS on this hop (plain text)."
                )
            table = Table(show_edge=False, box=None, padding=(0, 1))
            for column in ("", "message", "what it carries"):
                table.add_column(column)
            for sender, name, detail in PREDICTED_MUTUAL:
                table.add_row(sender, Text(name, style="bold"), detail)
            return Group(
                Text(
                    "PREDICTION, not a recording: on a real cluster meshtutor cannot see "
                    "inside the proxies' handshake. The policy engine predicts mutual TLS:",
                    style="bold yellow",
                ),
                Text(f"client {p.client_identity}\nserver {p.server_identity}"),
                Text(""),
                table,
                Text(
                    f"\nobserved: curl printed {r.http_code}"
                    + (f" (exit {r.exit_code})" if r.exit_code else "")
                ),
            )
        if r.mtls:
            return Text(
                "This hop was mutual TLS but its handshake was not recorded (it reused "
                "an earlier connection)."
            )
        return Text(
            "No TLS on this hop: the request travelled in plain text. "
            + (
                "Run a probe between two sidecars to see a handshake."
                if not r.exit_code
                else r.stderr
            )
        )


__all__ = ["CertificateScreen", "HandshakeScreen", "Horizontal"]
