"""``meshtutor certs``: mint the chain a workload would present, and show it.

Only click is imported at module level: ``meshtutor`` imports this module to find the command,
and cryptography and rich cost tens of milliseconds each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import RenderableType
    from rich.text import Text

    from meshtutor.pki.inspection import CertChain, CertificateInfo, CredentialInfo


class _OneLineUsageErrors(click.Command):
    """Usage errors print one line (``Error: Invalid value for '--mesh': ...``), exit 2.

    Click prints the usage banner when an error carries its context; dropping the context
    keeps the message alone, which is what meshtutor does for every user mistake.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.ctx = None
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.ctx = None
            raise


_HELP = """Show the certificate chain a workload would present, as a tree.

NAMESPACE/SERVICEACCOUNT is the workload's identity (e.g. foo/sleep). A throwaway CA for the
mesh issues it, exactly as istiod (root → workload) or Linkerd (trust anchor → identity
issuer → proxy) would. --at shows the state later: +1h, +24h (rotated?), +1y (expired?).

With --file, inspect a chain from a real cluster instead: PEM, base64 of PEM (Envoy's
inlineBytes), DER, or the JSON of `istioctl proxy-config secret POD -o json`.
"""


@click.command("certs", cls=_OneLineUsageErrors, help=_HELP)
@click.argument("workload", metavar="NAMESPACE/SERVICEACCOUNT", required=False)
@click.option(
    "--mesh",
    type=click.Choice(["istio", "linkerd"]),
    default="istio",
    show_default=True,
    help="Which mesh issues the certificates.",
)
@click.option(
    "--key-type",
    type=click.Choice(["ecdsa", "rsa"]),
    default="ecdsa",
    show_default=True,
    help="ECDSA P-256 (Linkerd, and meshtutor's default) or RSA 2048 (Istio's default).",
)
@click.option("--trust-domain", default="cluster.local", show_default=True)
@click.option(
    "--intermediate", is_flag=True, help="Istio: a plug-in CA (root → intermediate → workload)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a tree.")
@click.option("--pem", "as_pem", is_flag=True, help="Print the chain, leaf to root, as PEM.")
@click.option("--at", "at_text", metavar="TIME", help="+1h, +24h, +7d, +1y, or an ISO 8601 time.")
@click.option(
    "--write-key",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Also write the workload's private key to FILE (mode 0600).",
)
@click.option(
    "--file",
    "-f",
    "from_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Inspect certificates from FILE ('-' for stdin) instead of minting.",
)
def certs(
    workload: str | None,
    mesh: str,
    key_type: str,
    trust_domain: str,
    intermediate: bool,
    as_json: bool,
    as_pem: bool,
    at_text: str | None,
    write_key: str | None,
    from_file: str | None,
) -> None:
    from meshtutor.errors import PKIError
    from meshtutor.pki.clock import ManualClock, parse_time

    if as_json and as_pem:
        raise click.BadParameter("choose one of --json and --pem", param_hint="'--json'")
    if from_file is not None and write_key:
        raise click.BadParameter(
            "a file holds no private key to write; drop --write-key or --file",
            param_hint="'--write-key'",
        )
    clock = ManualClock()
    start = clock.now()
    try:
        at = parse_time(at_text, now=start) if at_text else start
    except PKIError as exc:
        raise click.BadParameter(str(exc), param_hint="'--at'") from None

    if from_file is not None:
        chain = _chain_from_file(from_file, workload, at, mesh, trust_domain)
        _show(chain, chain, as_json=as_json, as_pem=as_pem, heading=None, mesh=None)
        return

    from meshtutor.pki.ca import MeshCA, write_private_key
    from meshtutor.pki.identity import WorkloadIdentity
    from meshtutor.pki.inspection import describe_credential

    if not workload:
        raise click.BadParameter(
            "expected NAMESPACE/SERVICEACCOUNT, e.g. foo/sleep (or --file FILE)",
            param_hint="'NAMESPACE/SERVICEACCOUNT'",
        )
    try:
        identity = WorkloadIdentity.parse(workload, mesh=mesh, trust_domain=trust_domain)
    except PKIError as exc:
        raise click.BadParameter(str(exc), param_hint="'NAMESPACE/SERVICEACCOUNT'") from None
    if identity.mesh.value != mesh or identity.trust_domain != trust_domain:
        # A full SPIFFE ID or Linkerd name brings its own mesh and trust domain.
        mesh, trust_domain = identity.mesh.value, identity.trust_domain
    ca = MeshCA.create(
        mesh, trust_domain=trust_domain, key_type=key_type, clock=clock, intermediate=intermediate
    )
    credential = ca.credential(identity.namespace, identity.service_account)
    if at > start:
        clock.set(at)
        credential.refresh()
    info = describe_credential(credential, at=at)
    if write_key:
        write_private_key(write_key, credential.private_key)
        click.echo(f"private key of {identity.name} written to {write_key} (mode 0600)", err=True)
    heading = _heading(info, ca.key_type.label, intermediate, start, at, at_text)
    _show(info, info.chain, as_json=as_json, as_pem=as_pem, heading=heading, mesh=mesh)


def _chain_from_file(
    path: str, workload: str | None, at: datetime, mesh: str, trust_domain: str
) -> CertChain:
    from meshtutor.inputfiles import read_bytes
    from meshtutor.pki.identity import WorkloadIdentity
    from meshtutor.pki.inspection import describe_chain, load_certificates, load_envoy_secrets
    from meshtutor.pki.verify import verify_chain

    data = read_bytes(path, stdin=True)  # bounded: `certs -f /dev/zero` must not read forever
    source = "<stdin>" if path == "-" else path
    if data.lstrip()[:1] == b"{":
        secrets = load_envoy_secrets(data, source=source)
        chain, roots = list(secrets.chain), list(secrets.roots)
    else:
        chain, roots = load_certificates(data, source=source), []
    verification = None
    if roots:
        expected = None
        if workload:
            identity = WorkloadIdentity.parse(workload, mesh=mesh, trust_domain=trust_domain)
            expected = identity.name
        verification = verify_chain(chain, roots, at=at, expected_identity=expected)
    return describe_chain(chain, at=at, roots=roots, verification=verification)


def _heading(
    info: CredentialInfo,
    key_label: str,
    intermediate: bool,
    start: datetime,
    at: datetime,
    at_text: str | None,
) -> list[str]:
    from meshtutor.pki.clock import format_relative, format_time

    mesh = "Istio" if info.mesh == "istio" else "Linkerd"
    layout = " (plug-in CA)" if intermediate else ""
    when = f"at {format_time(at)}"
    if at_text and at != start:
        when += f" ({at_text.strip()} from now)"
    lines = [f"{info.workload} in a throwaway {mesh}{layout} mesh, {key_label}, {when}"]
    if info.rotations:
        times = "time" if info.rotations == 1 else "times"
        rotated = f"rotated {info.rotations} {times}, last at {format_time(info.rotated_at or at)}"
    else:
        rotated = "not rotated yet"
    lines.append(
        f"identity {info.identity}: {rotated}; next rotation {format_relative(info.renew_at, at)}"
    )
    if info.rotation_error:
        lines.append(f"rotation stopped: {info.rotation_error}")
    return lines


def _show(
    data: CredentialInfo | CertChain,
    chain: CertChain,
    *,
    as_json: bool,
    as_pem: bool,
    heading: list[str] | None,
    mesh: str | None,
) -> None:
    if as_pem:
        click.echo(chain.pem, nl=False)
        return
    if as_json:
        import json

        click.echo(json.dumps(data.to_dict(), indent=2))
        return
    from rich.console import Console

    console = Console(highlight=False)
    for line in heading or []:
        console.print(line, markup=False)
    verification = chain.verification
    if verification is not None:
        if verification.ok:
            console.print(f"✓ {verification.message}", style="green", markup=False)
        else:
            text = f"✗ {verification.reason.value}: {verification.message}"
            console.print(text, style="red", markup=False)
    console.print(chain_tree(chain, mesh=mesh))


_ROLE_NAMES = {
    None: {"root": "Root CA", "intermediate": "Intermediate CA", "leaf": "Certificate"},
    "istio": {"root": "Root CA", "intermediate": "Intermediate CA", "leaf": "Workload"},
    "linkerd": {"root": "Trust anchor", "intermediate": "Identity issuer", "leaf": "Proxy"},
}


def chain_tree(chain: CertChain, *, mesh: str | None = None) -> RenderableType:
    """The chain root first, each certificate nested under its issuer, in the spirit of
    ``step certificate inspect``, with a bar for the lifetime left."""
    from rich.tree import Tree

    names = _ROLE_NAMES.get(mesh, _ROLE_NAMES[None])
    ordered = list(reversed(chain.certificates))
    top = Tree(_title(ordered[0], names), guide_style="dim")
    node = top
    for index, cert in enumerate(ordered):
        for label, value in _fields(cert):
            node.add(_field(label, value))
        if index + 1 < len(ordered):
            node = node.add(_title(ordered[index + 1], names))
    return top


def _title(cert: CertificateInfo, names: dict[str, str]) -> Text:
    from rich.text import Text

    title = Text(names[cert.role], style="bold")
    title.append(f"  {cert.subject}", style="cyan")
    if cert.self_signed:
        title.append("  (self-signed)", style="dim")
    return title


def _field(label: str, value: str | Text) -> Text:
    from rich.text import Text

    line = Text(f"{label}: ", style="dim")
    line.append(value if isinstance(value, Text) else Text(value))
    return line


def _fields(cert: CertificateInfo) -> list[tuple[str, str | Text]]:
    from rich.text import Text

    fields: list[tuple[str, str | Text]] = []
    if not cert.self_signed:
        fields.append(("Issuer", cert.issuer))
    fields.append(("Serial", str(cert.serial)))  # decimal, as istioctl prints it
    for san in cert.sans:
        text = Text(str(san), style="bold green" if san.spiffe else "")
        if san.spiffe:
            text.append("  ← SPIFFE ID", style="green")
        fields.append(("SAN", text))
    fields.append(("Validity", _validity(cert)))
    fields.append(("Key", f"{cert.key_algorithm}, signed {cert.signature_algorithm}"))
    constraints = f"CA:{'TRUE' if cert.is_ca else 'FALSE'}"
    if cert.path_length is not None:
        constraints += f", pathlen:{cert.path_length}"
    usage = [constraints, ", ".join(cert.key_usage) or "no key usage"]
    if cert.extended_key_usage:
        usage.append(", ".join(cert.extended_key_usage))
    fields.append(("Usage", " · ".join(usage)))
    fields.append(("SHA-256", cert.fingerprint_sha256.replace(":", "").lower()))
    return fields


def _validity(cert: CertificateInfo) -> Text:
    from rich.text import Text

    from meshtutor.pki.clock import format_duration, format_relative, format_time

    width = 20
    fraction = cert.remaining_fraction
    filled = round(fraction * width)
    if cert.status == "expired":
        style, note = "red", f"expired {format_relative(cert.not_after, cert.at)}"
    elif cert.status == "not yet valid":
        style, note = "yellow", f"starts {format_relative(cert.not_before, cert.at)}"
    else:
        style = "green" if fraction > 0.5 else "yellow" if fraction > 0.2 else "red"
        note = f"{fraction:.0%} of {format_duration(cert.lifetime)} left"
    text = Text(f"{format_time(cert.not_before)} → {format_time(cert.not_after)}  ")
    text.append("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    text.append(f" {note}", style=style)
    return text
