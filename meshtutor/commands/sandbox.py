"""``meshtutor sandbox``: boot the embedded mesh from manifests and send real traffic through it."""

from __future__ import annotations

import asyncio
import shlex
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from meshtutor.commands.common import (
    FILES_OPTION,
    JSON_OPTION,
    MESH_OPTION,
    NAMESPACE_OPTION,
    PROBES_OPTION,
    destination_label,
    load_manifests,
    print_json,
    probe_from,
    read_probes,
    source_label,
)
from meshtutor.errors import MeshtutorError
from meshtutor.inputfiles import check_output_file


@click.group()
def sandbox() -> None:
    """Run the embedded sandbox mesh: real TLS, real certificates, real curl."""


def _wrap(line: str, prefix: str) -> str:
    return textwrap.fill(
        line,
        width=100,
        initial_indent=prefix,
        subsequent_indent=" " * len(prefix),
        break_on_hyphens=False,
        break_long_words=False,
    )


def _print_result(result: Any, *, handshake: bool) -> None:
    cluster_probe = result.probe
    line = (
        f"{source_label(cluster_probe, cluster_probe.container)} to "
        f"{destination_label(cluster_probe)}: {result.http_code}"
    )
    if result.exit_code:
        line += f" (curl exit code {result.exit_code})"
    if result.prediction.edge_tls and result.exit_code == 0:
        line += "  [TLS at the edge]"
    if result.mtls:
        via = result.prediction.via
        line += f"  [mutual TLS behind {via}]" if via else "  [mutual TLS]"
    click.echo(line)
    if cluster_probe.outside:
        click.echo(f"  $ {result.command}")
    if result.stderr:
        click.echo(f"  {result.stderr}")
    if not result.matches_prediction:
        p = result.prediction
        click.echo(
            f"  ! the policy engine predicted {p.http_code}"
            + (f" (exit code {p.exit_code})" if p.exit_code else "")
            + f", mutual TLS {'yes' if p.mtls else 'no'}: please report this mismatch"
        )
    for number, text in enumerate(result.prediction.explanation_lines, start=1):
        click.echo(_wrap(text, f"  {number}. "))
    if handshake:
        if result.edge_handshake is not None:
            click.echo(
                "  TLS handshake at the edge (curl → the ingress; one-way: curl shows no certificate):"
            )
            for text in result.edge_handshake.summary_lines():
                click.echo(f"    {text}")
        if result.handshake is not None:
            click.echo(
                "  TLS handshake inside the mesh (client proxy's view):"
                if cluster_probe.outside
                else "  TLS handshake (client sidecar's view):"
            )
            for text in result.handshake.summary_lines():
                click.echo(f"    {text}")
        elif result.handshake_error:
            click.echo(f"  TLS handshake failed: {result.handshake_error}")
        else:
            click.echo("  no TLS handshake between sidecars on this path")


@sandbox.command("probe")
@FILES_OPTION
@click.argument("probe_args", metavar="[PROBE]...", nargs=-1)
@PROBES_OPTION
@MESH_OPTION
@NAMESPACE_OPTION
@JSON_OPTION
@click.option("--handshake", is_flag=True, help="Show the TLS handshake of each probe.")
@click.option(
    "--keylog",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write TLS key-log lines (NSS format, for Wireshark) to this file.",
)
def probe_command(
    files: Sequence[Path],
    probe_args: Sequence[str],
    probes_file: Path | None,
    mesh: str,
    namespace: str | None,
    as_json: bool,
    handshake: bool,
    keylog: Path | None,
) -> None:
    """Boot a sandbox from the files (applied in order), run each PROBE for real, and compare
    what curl printed with the policy engine's prediction.

    PROBE is NAMESPACE/DEPLOYMENT[:CONTAINER]=URL or outside=URL, as for
    `meshtutor explain`.

    Exit status: 0 when every observation matches the prediction, 1 when any probe's
    observation (HTTP code, curl exit code or mutual TLS) differs from it, as diff(1) does;
    2 for bad input.
    """
    if not files:
        raise click.UsageError("give at least one manifest with -f FILE")
    if keylog is not None:
        # Checked before the sandbox boots; enable_keylog opens with O_NOFOLLOW as well.
        check_output_file(keylog, "TLS key log")
    batches = load_manifests(files, namespace)
    probes = read_probes(probe_args, probes_file)
    results = asyncio.run(_run(mesh, batches, probes, keylog))
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        for index, result in enumerate(results):
            if index:
                click.echo()
            _print_result(result, handshake=handshake)
    mismatches = [r for r in results if not r.matches_prediction]
    if mismatches:
        # A disagreement is a finding (a model bug on the sandbox, a teaching moment on a real
        # cluster), so scripts and CI must see it in the status, in text and JSON mode alike.
        count = len(mismatches)
        click.echo(
            f"meshtutor: {count} probe{'s differ' if count > 1 else ' differs'} from the "
            "prediction",
            err=True,
        )
        sys.exit(1)


async def _run(
    mesh: str,
    batches: Sequence[Sequence[Any]],
    probes: Sequence[tuple[Any, str | None]],
    keylog: Path | None,
) -> list[Any]:
    from meshtutor.policy.predict import predict
    from meshtutor.sandbox.mesh import Sandbox
    from meshtutor.sandbox.probe import resolve_cacert, run_probes

    async with Sandbox(mesh, keylog=str(keylog) if keylog else None) as sb:  # type: ignore[arg-type]
        for batch in batches:
            await sb.apply(batch)
        for probe, where in probes:
            with probe_from(where):
                predict(sb.cluster, probe)  # bad probes fail here, before any traffic
                if probe.cacert:
                    # So does a missing --cacert: found by curl's run, it cancelled the other
                    # probes while they started curl, and asyncio.run never returned.
                    resolve_cacert(probe.cacert)
        return await run_probes(sb, [probe for probe, _ in probes])


SHELL_HELP = """\
commands:
  apply FILE [-n NS]      apply a manifest (like kubectl apply -f)
  delete FILE [-n NS]     delete what a manifest names
  restart NS/DEPLOY       kubectl rollout restart: a new pod, injection decided again
  probe PROBE             run a probe, e.g. probe foo/sleep=http://httpbin.bar:8000/ip
                          or probe outside=https://shop.example.com/ --cacert edge/public-ca.pem
  explain PROBE           the prediction only, no traffic
  handshake PROBE         run a probe and show its TLS handshake
  certs NS/DEPLOY         the certificate chain the workload's sidecar presents
  clock +24h              fast-forward the mesh clock (certificates rotate and expire)
  workloads               pods, sidecars, identities, addresses
  services                services, types and EXTERNAL-IP (what outside=URL probes reach)
  help, quit"""


@sandbox.command("shell")
@FILES_OPTION
@MESH_OPTION
@NAMESPACE_OPTION
def shell_command(files: Sequence[Path], mesh: str, namespace: str | None) -> None:
    """An interactive prompt on a running sandbox (type help)."""
    batches = load_manifests(files, namespace)
    asyncio.run(_shell(mesh, batches))


async def _shell(mesh: str, batches: Sequence[Sequence[Any]]) -> None:
    from meshtutor.pki import ManualClock
    from meshtutor.sandbox.mesh import Sandbox

    loop = asyncio.get_running_loop()
    async with Sandbox(mesh, clock=ManualClock()) as sb:  # type: ignore[arg-type]
        for batch in batches:
            await sb.apply(batch)
        click.echo(f"meshtutor sandbox ({mesh}), {len(sb.cluster.pods())} pods. Type help.")
        while True:
            try:
                line = await loop.run_in_executor(None, input, "sandbox> ")
            except (EOFError, KeyboardInterrupt):
                click.echo()
                break
            try:
                words = shlex.split(line)
            except ValueError as exc:  # an unbalanced quote: the shell goes on, as bash does
                click.echo(f"error: {exc}; type help")
                continue
            if not words:
                continue
            if words[0] in ("quit", "exit", "q"):
                break
            try:
                await _shell_command(sb, words)
            except MeshtutorError as exc:
                click.echo(f"error: {exc}")
            except IndexError:
                click.echo(f"error: {words[0]} needs an argument; type help")
            except ValueError as exc:
                click.echo(f"error: {exc}; type help")


def _node_port(service: Any, port: Any) -> int:
    from meshtutor.policy.edge import node_port

    return node_port(service, port)


async def _shell_command(sb: Any, words: list[str]) -> None:

    from meshtutor.model import load_file
    from meshtutor.policy import Probe, predict
    from meshtutor.sandbox.probe import run_probe

    command, args = words[0], words[1:]
    if command == "help":
        click.echo(SHELL_HELP)
    elif command in ("apply", "delete"):
        namespace = args[args.index("-n") + 1] if "-n" in args else None
        docs = load_file(args[0], default_namespace=namespace)
        if command == "apply":
            report = await sb.apply(docs)
            for text in report.lines:
                click.echo(text)
        else:
            for text in await sb.delete(docs):
                click.echo(text)
    elif command == "restart":
        ns, _, name = args[0].partition("/")
        await sb.restart(ns, name)
        click.echo(f"deployment.apps/{name} restarted")
    elif command in ("probe", "handshake"):
        result = await run_probe(sb, Probe.parse(" ".join(args)))
        _print_result(result, handshake=command == "handshake")
    elif command == "explain":
        outcome = predict(sb.cluster, Probe.parse(" ".join(args)))
        click.echo(
            f"predicted: {outcome.http_code}"
            + (f" (curl exit code {outcome.exit_code})" if outcome.exit_code else "")
        )
        for number, text in enumerate(outcome.explanation_lines, start=1):
            click.echo(_wrap(text, f"  {number}. "))
    elif command == "certs":
        ns, _, name = args[0].partition("/")
        pod = sb.cluster.pod_for(ns, name)
        if pod is None:
            raise ValueError(f"no workload {args[0]}")
        runtime = sb.runtime(pod)
        if runtime.credential is None:
            click.echo(f"{pod.display} has no sidecar, so it has no mesh certificate")
            return
        from rich.console import Console

        from meshtutor.pki import describe_credential
        from meshtutor.pki.cli import chain_tree

        info = describe_credential(runtime.credential)
        click.echo(
            f"{info.identity}: rotated {info.rotations} time(s); next rotation at "
            f"{info.renew_at:%Y-%m-%d %H:%M} UTC"
        )
        Console(highlight=False).print(chain_tree(info.chain, mesh=sb.mesh))
    elif command == "clock":
        from meshtutor.pki import parse_offset

        delta = parse_offset(args[0])
        rotated = sb.advance_clock(delta)
        click.echo(
            f"mesh clock is now {sb.ca.clock.now():%Y-%m-%d %H:%M} UTC; "
            f"{rotated} certificate rotation(s)"
        )
    elif command == "services":
        for service in sb.cluster.services():
            external = sb.external.address(service) if service.external else "<none>"
            ports = ",".join(
                f"{p.port}" + (f":{_node_port(service, p)}" if service.external else "")
                for p in service.ports
            )
            click.echo(
                f"{service.namespace}/{service.name:<28} {service.type:<13} {external:<14} {ports}"
            )
    elif command == "workloads":
        from meshtutor.policy.predict import identity_of

        for pod in sb.cluster.pods():
            sidecar = pod.sidecar or "no sidecar"
            click.echo(
                f"{pod.namespace}/{pod.deployment:<24} {pod.ip:<14} {sidecar:<10} "
                f"{identity_of(sb.cluster, pod) or '-'}"
            )
    else:
        raise ValueError(f"unknown command {command!r}")


@sandbox.command("serve")
@FILES_OPTION
@MESH_OPTION
@NAMESPACE_OPTION
@click.option(
    "--kubeconfig",
    "kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the context `meshtutor` into this kubeconfig (merged: other contexts stay). "
    "Default: a file of its own in meshtutor's data folder.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the API on 127.0.0.1 (0: any free port).",
)
def serve_command(
    files: Sequence[Path], mesh: str, namespace: str | None, kubeconfig: Path | None, port: int
) -> None:
    """Boot a sandbox from the files and serve its Kubernetes API on 127.0.0.1, so that
    kubectl (and any Kubernetes client) drives it. Runs until Ctrl-C.

    The API is HTTPS with a certificate authority and a client certificate of its own, like
    kind's; the kubeconfig line to paste is printed at start.
    """
    batches = load_manifests(files, namespace)
    from meshtutor.kubeapi.kubeconfig import check_kubeconfig_path, default_kubeconfig_path

    path = kubeconfig or default_kubeconfig_path()
    check_kubeconfig_path(path)
    asyncio.run(_serve(mesh, batches, path, port))


async def _serve(mesh: str, batches: Sequence[Sequence[Any]], kubeconfig: Path, port: int) -> None:
    import signal

    from meshtutor.kubeapi.kubeconfig import (
        default_credentials_dir,
        issue_credentials,
        write_kubeconfig,
    )
    from meshtutor.kubeapi.service import start_sandbox_api

    credentials = issue_credentials(default_credentials_dir())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    served = await start_sandbox_api(mesh, batches, credentials, port=port)
    try:
        update = write_kubeconfig(kubeconfig, served.api.url, credentials, context="meshtutor")
        pods = len(served.sandbox.cluster.pods())
        click.echo(
            f"meshtutor sandbox ({mesh}): {pods} pod{'s' if pods != 1 else ''}, "
            f"Kubernetes API at {served.api.url}"
        )
        click.echo(f"kubeconfig: {kubeconfig} (context meshtutor)")
        for note in update.notes():
            click.echo(f"  {note}")
        click.echo("In another terminal:")
        click.echo(f"  export KUBECONFIG={shlex.quote(str(kubeconfig))}")
        click.echo("  kubectl get pods -A")
        click.echo("Ctrl-C stops the sandbox.", nl=True)
        await stop.wait()
    finally:
        await served.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    click.echo("sandbox stopped")
