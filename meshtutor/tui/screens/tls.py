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
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Collapsible, Footer, Header, Static

from meshtutor.tui.plain import plain
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

# The one-way handshake curl has with an ingress, for predictions on real clusters.
PREDICTED_ONE_WAY = [
    ("curl → ingress", "ClientHello", "TLS 1.3, SNI of the URL's host, ALPN h2, http/1.1"),
    ("ingress → curl", "ServerHello", "key share, cipher"),
    ("ingress → curl", "EncryptedExtensions", "ALPN chosen"),
    ("ingress → curl", "Certificate", "the public certificate from a kubernetes.io/tls Secret"),
    ("ingress → curl", "CertificateVerify", "proof it holds the key"),
    ("ingress → curl", "Finished", ""),
    ("curl → ingress", "Finished", "no Certificate before it: curl shows no certificate"),
]

#: From this many columns on, the two hops of an outside probe are drawn side by side.
SIDE_BY_SIDE = 140
NO_CLIENT_CERTIFICATE = "curl shows no certificate, so no CertificateVerify either"


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


def sequence_table(
    trace: Any,
    *,
    client: str = "client",
    server: str = "server",
    width: int | None = 8,
    no_client_certificate: str | None = None,
) -> Table:
    """One row per TLS message, client on the left, server on the right.

    ``no_client_certificate``, for one-way TLS, adds a row where mutual TLS would have the
    client's Certificate and CertificateVerify, saying why there are none. ``width=None``
    makes the client and server columns as narrow as their labels (for half a screen).
    """
    table = Table(show_edge=False, box=None, padding=(0, 1))
    table.add_column(plain(client), justify="center", width=width or max(len(client), len(server)))
    table.add_column("", width=5 if width else 3)
    table.add_column(plain(server), justify="center", width=width or max(len(client), len(server)))
    table.add_column("message")
    # Half a screen is too narrow for a long SNI: fold it rather than cut it.
    table.add_column("what it carries", overflow="ellipsis" if width else "fold")
    gap_shown = False
    for message in trace.messages:
        if message.name == "ChangeCipherSpec":
            continue
        if (
            no_client_certificate
            and not gap_shown
            and not trace.mutual
            and message.sender == "client"
            and message.name == "Finished"
        ):
            gap_shown = True
            table.add_row(
                Text("○", style="dim"),
                Text("  ✕" if width else "─✕", style="dim"),
                "",
                Text("(no Certificate)", style="bold yellow"),
                Text(no_client_certificate, style="yellow"),
            )
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
            plain(message.detail),  # server names and certificate names, as recorded
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


# --- outside probes: the edge hop and the hop into the mesh --------------------------------


def _short(name: str | None, default: str) -> str:
    """A column label for a pod: ``gateway``, ``nginx`` or the deployment's name."""
    if not name:
        return default
    first = name.split(".")[0]
    if "ingressgateway" in first:
        return "gateway"
    if "nginx" in first:
        return "nginx"
    return first if len(first) <= 12 else first[:11] + "…"


def _who(via: str | None) -> str:
    """The ingress in a sentence: ``the gateway``, ``ingress-nginx``."""
    short = _short(via, "ingress")
    return {"gateway": "the gateway", "nginx": "ingress-nginx", "ingress": "the ingress"}.get(
        short, short
    )


def _why(result: Any) -> str | None:
    """The policy engine's reason: its last step before "curl prints …"."""
    return next(
        (
            s.text
            for s in reversed(result.prediction.explanation)
            if not s.text.startswith("curl prints")
        ),
        None,
    )


def _version_line(trace: Any) -> Text:
    return Text.assemble(
        (f"{trace.version or 'TLS'} · {trace.cipher or '?'} · ALPN {trace.alpn or '-'}\n", "bold"),
        ("SNI ", "dim"),
        f"{trace.sni or '-'}",
    )


def _server_certificate(trace: Any) -> Text | None:
    """Subject, issuer, names and validity of the certificate the server presented."""
    if not trace.server_certificates:
        return None
    from cryptography import x509

    from meshtutor.pki.inspection import describe_certificate

    try:
        cert = x509.load_der_x509_certificate(trace.server_certificates[0])
    except ValueError:
        return None
    info = describe_certificate(cert, at=cert.not_valid_before_utc)
    text = Text()
    text.append("server certificate\n", style="bold")
    rows = [
        ("subject", info.subject),
        ("issuer", info.issuer),
        ("names", ", ".join(str(san) for san in info.sans) or "-"),
        ("valid", f"{info.not_before:%Y-%m-%d} → {info.not_after:%Y-%m-%d}"),
    ]
    if len(trace.server_certificates) > 1:
        rows.append(("chain", f"{len(trace.server_certificates)} certificates, leaf first"))
    for label, value in rows:
        text.append(f"  {label:<8}", style="dim")
        text.append(f"{value}\n")
    text.rstrip()
    return text


def _curl_trust(probe: Any) -> Text:
    if probe.insecure:
        return Text("curl -k: curl did not check the certificate at all", style="yellow")
    store = f"--cacert {probe.cacert}" if probe.cacert else "the system CA store"
    return Text(f"curl checked it against {store} and trusted it", style="green")


def _predicted_table(rows: list[tuple[str, str, str]]) -> Table:
    table = Table(show_edge=False, box=None, padding=(0, 1))
    for column in ("", "message", "what it carries"):
        table.add_column(column)
    for sender, name, detail in rows:
        table.add_row(sender, Text(name, style="bold"), detail)
    return table


def edge_hop(result: Any) -> Any:
    """curl → ingress: one-way TLS (or plain HTTP), as the gateway recorded it."""
    r = result
    p = r.prediction
    via = p.via or "the ingress"
    title = Text(f"at the edge: curl → {via}", style="bold underline")
    trace = r.edge_handshake
    if trace is not None:
        verdict = (
            Text(
                "mutual TLS: curl presented a certificate too",
                style="green",
            )
            if trace.mutual
            else Text.assemble(
                ("one-way TLS", "bold yellow"),
                (f": {_who(p.via)} proved its name; ", "yellow"),
                ("curl shows no certificate", "bold yellow"),
            )
        )
        parts: list[Any] = [title, _version_line(trace), verdict]
        if trace.error:
            parts.append(Text(f"error: {trace.error}", style="red"))
        if r.edge_handshake_error:
            parts.append(Text(f"error: {r.edge_handshake_error}", style="red"))
        certificate = _server_certificate(trace)
        if certificate is not None:
            parts += [Text(""), certificate]
        if trace.completed:
            parts.append(_curl_trust(r.probe))
        parts += [
            Text(""),
            sequence_table(
                trace,
                client="curl",
                server=_short(p.via, "ingress"),
                width=None,
                no_client_certificate=NO_CLIENT_CERTIFICATE,
            ),
        ]
        return Group(*parts)
    if p.edge_tls:
        return Group(
            title,
            Text.assemble(
                ("one-way TLS", "bold yellow"),
                (" (PREDICTION, not a recording): ", "yellow"),
                ("curl shows no certificate", "bold yellow"),
            ),
            Text(""),
            _predicted_table(PREDICTED_ONE_WAY),
        )
    if r.edge_handshake_error:
        return Group(title, Text(f"TLS handshake failed: {r.edge_handshake_error}", style="red"))
    return Group(
        title,
        Text(
            f"no TLS at the edge: curl sent plain HTTP to {via}; anyone on the way can read "
            "and change it",
            style="bold red",
        ),
    )


def inner_hop(result: Any) -> Any:
    """ingress → destination: the ingress's own connection into the mesh."""
    r = result
    p = r.prediction
    via = p.via or "the ingress"
    destination = p.destination_pod or "the backend"
    title = Text(f"inside the mesh: {via} → {destination}", style="bold underline")
    trace = r.handshake
    if trace is not None:
        verdict = Text(
            "mutual TLS: both sides proved who they are"
            if trace.mutual
            else "one-way TLS: only the server proved who it is",
            style="green" if trace.mutual else "yellow",
        )
        parts: list[Any] = [title, _version_line(trace), verdict]
        if trace.error:
            parts.append(Text(f"error: {trace.error}", style="red"))
        if r.client_identity or r.server_identity:
            identities = Table.grid(padding=(0, 1, 0, 0))
            identities.add_column(style="dim", no_wrap=True)
            identities.add_column(overflow="fold")
            identities.add_row("client", plain(r.client_identity or "-"))
            identities.add_row("server", plain(r.server_identity or "-"))
            parts.append(identities)
        parts += [
            Text(""),
            sequence_table(
                trace,
                client=_short(p.via, "ingress"),
                server=_short(destination, "server"),
                width=None,
            ),
        ]
        return Group(*parts)
    if r.handshake_error:
        return Group(
            title, Text(f"the ingress's TLS handshake failed: {r.handshake_error}", style="red")
        )
    if r.prober == "exec" and p.mtls:
        return Group(
            title,
            Text("mutual TLS (PREDICTION, not a recording)", style="bold yellow"),
            Text(f"client {p.client_identity}\nserver {p.server_identity}"),
            Text(""),
            _predicted_table(PREDICTED_MUTUAL),
        )
    if r.mtls:
        return Group(
            title,
            Text(
                "mutual TLS, but its handshake was not recorded (the ingress reused an "
                "earlier connection)",
                style="green",
            ),
        )
    if r.exit_code or not p.destination_pod:
        return Group(
            title,
            Text(
                f"no connection into the mesh: the request stopped at {via} "
                f"(curl printed {r.http_code}"
                + (f", exit {r.exit_code}" if r.exit_code else "")
                + ")",
                style="yellow",
            ),
        )
    return Group(
        title,
        Text(f"no TLS: {via} sent the request on to {destination} in plain text", style="red"),
    )


def _flow_table(client: str, server: str, rows: list[tuple[str, str, str, Any]]) -> Table:
    table = Table(show_edge=False, box=None, padding=(0, 1))
    table.add_column(plain(client), justify="center")
    table.add_column("")
    table.add_column(plain(server), justify="center")
    table.add_column("")
    for left, arrow, right, text in rows:
        table.add_row(left, arrow, right, text)
    return table


def edge_failure(result: Any) -> Any | None:
    """What happened instead of a handshake, for an outside probe that failed at the edge
    (60 untrusted certificate, 35 handshake failed, 56 connection reset)."""
    r = result
    if not r.probe.outside or r.exit_code not in (35, 56, 60):
        return None
    p = r.prediction
    via = p.via
    who = _short(via, "sidecar")
    why = _why(r)
    sni = r.probe.parsed_url.host
    if r.exit_code == 60:
        heading = Text(
            f"The TLS handshake stopped at the edge: curl does not trust the certificate "
            f"{via or 'the server'} presented. Nothing reached the mesh.",
            style="bold",
        )
        flow = _flow_table(
            "curl",
            who,
            [
                ("●", "──▶", "", Text.assemble(("ClientHello  ", "bold"), f"SNI {sni}")),
                (
                    "",
                    "◀──",
                    "●",
                    Text.assemble(
                        ("ServerHello … Certificate  ", "bold"), "the server's certificate chain"
                    ),
                ),
                (
                    "●",
                    "──✕",
                    "",
                    Text("Alert: curl rejects the chain and ends the handshake", style="bold red"),
                ),
            ],
        )
        advice = Text(
            "Give curl the CA that issued the certificate (--cacert FILE). -k skips the check: "
            "for tests only, it would also accept an attacker's certificate.",
            style="dim",
        )
    elif r.exit_code == 35:
        heading = Text(
            f"The TLS handshake at the edge failed: {via or 'the server'} did not answer "
            "curl's ClientHello with a ServerHello. No certificate, no request, nothing "
            "reached the mesh.",
            style="bold",
        )
        flow = _flow_table(
            "curl",
            who,
            [
                ("●", "──▶", "", Text.assemble(("ClientHello  ", "bold"), f"SNI {sni}")),
                (
                    "",
                    "◀─✕",
                    "●",
                    Text("connection closed where a ServerHello would come", style="bold red"),
                ),
            ],
        )
        advice = None
    elif via:
        heading = Text(
            f"The connection to {via} was reset during or right after the TLS handshake "
            "at the edge: nothing reached the mesh.",
            style="bold",
        )
        flow = _flow_table(
            "curl",
            who,
            [
                ("●", "──▶", "", Text.assemble(("ClientHello  ", "bold"), f"SNI {sni}")),
                ("", "◀─✕", "●", Text("RST: connection reset", style="bold red")),
            ],
        )
        advice = None
    else:
        destination = p.destination_pod or "the pod"
        heading = Text(
            f"No TLS handshake: curl on your machine has no sidecar and no mesh certificate. "
            f"It reached {destination}'s sidecar directly, without an ingress, and sent plain "
            "text; that sidecar accepts mutual TLS only (STRICT).",
            style="bold",
        )
        flow = _flow_table(
            "curl",
            who,
            [
                ("●", "──▶", "", "TCP connect (the Service's external address, kube-proxy)"),
                ("●", "──▶", "", "GET / HTTP/1.1   in plain text: no ClientHello"),
                (
                    "",
                    "◀─✕",
                    "●",
                    Text("RST: connection reset, where a ServerHello would come", style="bold red"),
                ),
            ],
        )
        advice = Text(
            "Clients outside the mesh come in through an ingress gateway: it ends their "
            "one-way TLS at the edge and opens mutual TLS into the mesh.",
            style="dim",
        )
    parts: list[Any] = [heading, Text(""), flow, Text("")]
    if why:
        parts.append(Text.assemble(("why: ", "dim"), why))
    parts.append(Text(f"curl prints {r.http_code} and exits with {r.exit_code}: {r.stderr or '-'}"))
    if advice is not None:
        parts.append(advice)
    return Group(*parts)


def two_hops(result: Any) -> bool:
    """An outside probe that went through an ingress: a hop at the edge, one into the mesh."""
    r = result
    if not r.probe.outside:
        return False
    p = r.prediction
    if r.edge_handshake is not None:
        return True
    if r.exit_code in (35, 56, 60):
        return False
    return bool(p.edge_tls) or (bool(p.via) and r.exit_code == 0)


def hops_heading(result: Any) -> Any:
    r = result
    p = r.prediction
    via = p.via or "the ingress"
    edge = "one-way TLS" if r.edge_handshake is not None or p.edge_tls else "plain HTTP (no TLS)"
    inside = "mutual TLS" if r.mtls or (r.handshake is not None and r.handshake.mutual) else None
    lines: list[Any] = [
        Text(
            f"curl (outside) → {via} → {p.destination_pod or '?'}: "
            "two connections, each with its own TLS",
            style="bold",
        ),
        Text(
            f"{via} ends curl's connection ({edge}) and opens a new one into the mesh"
            + (f" ({inside}, with its own mesh identity)" if inside else "")
            + f". curl printed {r.http_code}"
            + (f" (exit {r.exit_code})" if r.exit_code else "")
            + "."
        ),
    ]
    failure = edge_failure(r)
    if failure is not None:
        lines += [Text(""), failure]
    return Group(*lines)


class HandshakeScreen(Screen[None]):
    """A probe's TLS handshake as a sequence diagram, or what happened instead of one."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    # An outside probe's two hops: side by side on wide terminals, stacked below SIDE_BY_SIDE.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (SIDE_BY_SIDE, "-wide")]
    DEFAULT_CSS = """
    HandshakeScreen #hops { layout: horizontal; height: auto; }
    HandshakeScreen.-narrow #hops { layout: vertical; }
    HandshakeScreen #hops { margin-top: 1; }
    HandshakeScreen .hop { width: 1fr; height: auto; border: round $primary; padding: 0 1; }
    HandshakeScreen.-wide #edge-hop { margin-right: 1; }
    HandshakeScreen.-narrow #inner-hop { margin-top: 1; }
    """

    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="handshake"):
            if two_hops(self.result):
                yield Static(hops_heading(self.result), id="hops-heading")
                with Container(id="hops"):
                    with Vertical(id="edge-hop", classes="hop"):
                        yield Static(edge_hop(self.result))
                    with Vertical(id="inner-hop", classes="hop"):
                        yield Static(inner_hop(self.result))
            else:
                yield Static(self._body())
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"TLS handshake: {self.result.probe.describe()}"

    def _body(self) -> Any:
        r = self.result
        failure = edge_failure(r)
        if failure is not None:
            return failure
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


__all__ = [
    "CertificateScreen",
    "HandshakeScreen",
    "Horizontal",
    "edge_failure",
    "edge_hop",
    "inner_hop",
    "two_hops",
]
