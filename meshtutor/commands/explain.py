"""``meshtutor explain``: the policy engine's prediction, without running any traffic."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import click

from meshtutor.commands.common import (
    FILES_OPTION,
    JSON_OPTION,
    MESH_OPTION,
    NAMESPACE_OPTION,
    PROBES_OPTION,
    build_cluster,
    headline,
    load_manifests,
    outcome_dict,
    print_json,
    probe_from,
    read_probes,
)
from meshtutor.policy import predict


@click.command()
@FILES_OPTION
@click.argument("probe_args", metavar="[PROBE]...", nargs=-1)
@PROBES_OPTION
@MESH_OPTION
@NAMESPACE_OPTION
@JSON_OPTION
def explain(
    files: Sequence[Path],
    probe_args: Sequence[str],
    probes_file: Path | None,
    mesh: str,
    namespace: str | None,
    as_json: bool,
) -> None:
    """Predict what curl would print for each PROBE, and explain why.

    PROBE is NAMESPACE/DEPLOYMENT[:CONTAINER]=URL, for example
    'foo/sleep=http://httpbin.bar:8000/ip' or
    'demo/productcatalogservice:istio-proxy=http://frontend:80/'.
    A short host such as http://httpbin:8000 resolves in the source's namespace.
    'outside=URL' is curl on your own machine, outside the cluster: the URL names a
    LoadBalancer/NodePort Service (http://frontend-external.demo/) or a host a Gateway or
    Ingress serves (https://shop.example.com/); curl's -k or --cacert FILE may follow.
    """
    if not files:
        raise click.UsageError("give at least one manifest with -f FILE")
    batches = load_manifests(files, namespace)
    probes = read_probes(probe_args, probes_file)
    cluster = build_cluster(mesh, batches)
    results = []
    for probe, where in probes:
        with probe_from(where):
            results.append((probe, predict(cluster, probe)))
    if as_json:
        print_json([outcome_dict(cluster, probe, outcome) for probe, outcome in results])
        return
    for index, (probe, outcome) in enumerate(results):
        if index:
            click.echo()
        click.echo(headline(cluster, probe, outcome))
        for number, line in enumerate(outcome.explanation_lines, start=1):
            click.echo(
                textwrap.fill(
                    line,
                    width=100,
                    initial_indent=f"  {number}. ",
                    subsequent_indent="     ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
