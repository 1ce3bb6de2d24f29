"""Pieces shared by the commands that take manifests and probes (explain, sandbox probe)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from meshtutor.errors import ProbeSpecError, printable
from meshtutor.inputfiles import read_text
from meshtutor.model import Resource, UnmodelledResource, load_file
from meshtutor.model.yamlnodes import parse_documents, yaml_problem
from meshtutor.policy import Cluster, Outcome, Probe

F = TypeVar("F", bound=Callable[..., Any])

MESH_OPTION = click.option(
    "--mesh",
    type=click.Choice(["istio", "linkerd"]),
    default="istio",
    show_default=True,
    help="The mesh installed in the cluster.",
)
FILES_OPTION = click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Manifest file with topology and policies; repeat it, files apply in the order given.",
)
NAMESPACE_OPTION = click.option(
    "-n",
    "--namespace",
    default=None,
    help="Namespace for documents that name none (like kubectl apply -n).",
)
PROBES_OPTION = click.option(
    "--probes",
    "probes_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML file with a list of probes (from, container, method, url, headers, timeout).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def load_manifests(files: Sequence[Path], namespace: str | None) -> list[list[Resource]]:
    """Load every file completely before anything is applied, so a bad file changes nothing."""
    return [load_file(path, default_namespace=namespace) for path in files]


def build_cluster(mesh: str, batches: Sequence[Sequence[Resource]]) -> Cluster:
    cluster = Cluster(mesh)  # type: ignore[arg-type]
    for batch in batches:
        cluster.apply(batch)
    unmodelled = [r for batch in batches for r in batch if isinstance(r, UnmodelledResource)]
    for resource in unmodelled:
        click.echo(
            printable(  # kind and name are whatever the file says
                f"note: {resource.origin.source}: {resource.kind} "
                f"{resource.namespace + '/' if resource.namespace else ''}{resource.name} "
                "is not simulated and has no effect here"
            ),
            err=True,
        )
    return cluster


def read_probes(args: Sequence[str], probes_file: Path | None) -> list[tuple[Probe, str | None]]:
    """The probes of the command line, then of the probe file, each with the ``file:line``
    it came from (``None`` for an argument: its errors quote it already)."""
    probes: list[tuple[Probe, str | None]] = [(Probe.parse(arg), None) for arg in args]
    if probes_file is not None:
        source = str(probes_file)
        text = read_text(probes_file)  # InputFileError already names the file and line
        try:
            docs = [doc for _, doc in parse_documents(text) if doc is not None]
        except yaml.YAMLError as exc:
            line, problem = yaml_problem(exc)
            raise ProbeSpecError(f"{source}{f':{line}' if line else ''}: {problem}") from None
        if len(docs) != 1 or not isinstance(docs[0], list) or not docs[0]:
            raise ProbeSpecError(
                f"{source}: expected a YAML list of probes, each with from and url"
            )
        entries = docs[0]
        for index, entry in enumerate(entries):
            line = entries.item_lines[index] if hasattr(entries, "item_lines") else index + 1
            probes.append((Probe.from_entry(entry, f"{source}:{line}"), f"{source}:{line}"))
    if not probes:
        raise click.UsageError(
            "give at least one PROBE (NAMESPACE/DEPLOYMENT[:CONTAINER]=URL or outside=URL) or "
            "--probes FILE"
        )
    return probes


@contextmanager
def probe_from(where: str | None) -> Iterator[None]:
    """Prefix the errors of a probe from a probe file (no workload, a missing --cacert) with
    the file and line it came from."""
    try:
        yield
    except ProbeSpecError as exc:
        if where is None:
            raise
        raise ProbeSpecError(f"{where}: {exc}") from None


def destination_label(probe: Probe) -> str:
    """``httpbin.bar`` for ``http://httpbin.bar:8000/ip`` from anywhere, as Istio's docs print."""
    host = probe.parsed_url.host
    parts = host.split(".")
    if probe.outside:
        return host
    if len(parts) == 1:
        return f"{host}.{probe.source_namespace}"
    if len(parts) >= 2 and (len(parts) == 2 or parts[2] == "svc"):
        return f"{parts[0]}.{parts[1]}"
    return host


def source_label(probe: Probe, container: str | None) -> str:
    if probe.outside:
        return "outside (your machine)"
    label = f"{probe.source_deployment}.{probe.source_namespace}"
    return f"{label} ({container})" if container else label


def outcome_dict(cluster: Cluster, probe: Probe, outcome: Outcome) -> dict[str, Any]:
    pod = cluster.pod_for(probe.source_namespace, probe.source_deployment)
    container = probe.container or (pod.default_container if pod else None)
    return {
        "from": probe.source,
        "container": container,
        "method": probe.method,
        "url": probe.url,
        "http_code": outcome.http_code,
        "exit_code": outcome.exit_code,
        "mtls": outcome.mtls,
        "client_identity": outcome.client_identity,
        "server_identity": outcome.server_identity,
        "destination": outcome.destination_pod,
        "body": outcome.body,
        "stderr": outcome.stderr,
        "decided_by": str(outcome.decided_by) if outcome.decided_by else None,
        "explanation": outcome.explanation_lines,
        **({"edge_tls": outcome.edge_tls, "via": outcome.via} if probe.outside else {}),
    }


def headline(cluster: Cluster, probe: Probe, outcome: Outcome) -> str:
    """``sleep.foo to httpbin.bar: 200``, the style of Istio's task outputs."""
    container = probe.container
    line = f"{source_label(probe, container)} to {destination_label(probe)}: {outcome.http_code}"
    if outcome.exit_code:
        line += f" (curl exit code {outcome.exit_code})"
    if outcome.edge_tls:
        line += "  [TLS at the edge]"
    if outcome.mtls:
        line += "  [mutual TLS]" if not outcome.via else f"  [mutual TLS behind {outcome.via}]"
    return line


def print_json(items: list[dict[str, Any]]) -> None:
    json.dump(items, sys.stdout, indent=2)
    sys.stdout.write("\n")


ALLOW_REMOTE_HELP = (
    "Accept a context whose API server is not on this machine (meshtutor decides on the "
    "server's address: loopback, or the container address of a kind, k3d or minikube cluster)."
)
ADOPT_HELP = (
    "Take over objects that exist and are not meshtutor's (meshtutor refuses to change them "
    "otherwise): each is backed up first, and `meshtutor reset` puts it back as it was."
)
REQUEST_TIMEOUT_HELP = "Seconds to wait for the API server to connect and for each answer."


def cluster_options(request_timeout: float, *, kube_backend: bool = False) -> Callable[[F], F]:
    """``--context``, ``--kubeconfig``, ``--allow-remote`` and ``--request-timeout`` (default
    ``request_timeout`` seconds): which real cluster, and how long to wait for it. With
    ``kube_backend``, also ``--backend`` and ``--adopt``, for the commands that run lessons."""
    options = [
        click.option(
            "--context",
            default=None,
            help="kubeconfig context of a real cluster"
            + (" (implies --backend kube)." if kube_backend else " (default: the current one)."),
        ),
        click.option(
            "--kubeconfig",
            default=None,
            help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).",
        ),
        click.option("--allow-remote", is_flag=True, help=ALLOW_REMOTE_HELP),
        click.option(
            "--request-timeout",
            type=click.FloatRange(min=0.1, max=3600),
            default=request_timeout,
            show_default=True,
            metavar="SECONDS",
            help=REQUEST_TIMEOUT_HELP,
        ),
    ]
    if kube_backend:
        options.insert(
            0,
            click.option(
                "--backend",
                type=click.Choice(["sandbox", "kube"]),
                default=None,
                help="sandbox (default) or kube: a real local cluster.",
            ),
        )
        options.append(click.option("--adopt", is_flag=True, help=ADOPT_HELP))

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def kube_options(func: Any) -> Any:
    """``--backend``, ``--context``, ``--kubeconfig``, ``--allow-remote``, ``--request-timeout``
    and ``--adopt``."""
    from meshtutor.backends.kubeclient import REQUEST_TIMEOUT

    return cluster_options(REQUEST_TIMEOUT, kube_backend=True)(func)


def backend_factory(
    backend: str | None,
    context: str | None,
    kubeconfig: str | None,
    allow_remote: bool,
    *,
    adopt: bool = False,
    request_timeout: float | None = None,
    lesson: str | None = None,
    dry_run: bool = False,
    progress: Any = None,
) -> Any:
    """A factory ``mesh -> Backend`` for the lesson runner and the app."""
    if backend == "kube" or context or kubeconfig:
        from meshtutor.backends.kube import KubeBackend
        from meshtutor.backends.kubeclient import REQUEST_TIMEOUT

        def make_kube(mesh: str) -> Any:
            return KubeBackend(
                mesh,  # type: ignore[arg-type]
                context=context,
                kubeconfig=kubeconfig,
                allow_remote=allow_remote,
                adopt=adopt,
                lesson=lesson,
                dry_run=dry_run,
                request_timeout=request_timeout or REQUEST_TIMEOUT,
                progress=progress,
            )

        return make_kube
    from meshtutor.lessons.runner import default_backend

    return default_backend
