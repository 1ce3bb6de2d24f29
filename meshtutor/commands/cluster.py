"""``meshtutor reset``: undo what meshtutor did on a real cluster, from its journal."""

from __future__ import annotations

import asyncio

import click

from meshtutor.backends.kube import KubeBackend
from meshtutor.backends.kubeclient import REQUEST_TIMEOUT
from meshtutor.commands.common import cluster_options


@click.command("reset")
@cluster_options(REQUEST_TIMEOUT)
@click.option("--dry-run", is_flag=True, help="Say what would be undone, and change nothing.")
def reset(
    context: str | None,
    kubeconfig: str | None,
    allow_remote: bool,
    request_timeout: float,
    dry_run: bool,
) -> None:
    """Undo what meshtutor did on a real cluster: delete every object it created and put back
    every object it adopted (--adopt) as it was, newest first, and nothing else."""
    backend = KubeBackend(
        context=context,
        kubeconfig=kubeconfig,
        allow_remote=allow_remote,
        request_timeout=request_timeout,
    )

    async def run() -> list[str]:
        await backend.start()
        try:
            return _planned(backend) if dry_run else await backend.reset()
        finally:
            await backend.stop()

    lines = asyncio.run(run())
    for line in lines:
        click.echo(line)
    if dry_run:
        return
    assert backend.journal is not None
    left = len(backend.journal.here())
    context_name = backend.journal.context
    if left:
        click.echo(f"{left} object(s) left in meshtutor's journal for {context_name} (see above)")
    else:
        click.echo(f"meshtutor's journal for {context_name} is empty")


def _planned(backend: KubeBackend) -> list[str]:
    """What reset would do, read from the journal (the cluster only says which entries are
    its own)."""
    assert backend.journal is not None
    entries = list(reversed(backend.journal.here()))
    lines = []
    for entry in entries:
        where = f"{entry['namespace']}/" if entry.get("namespace") else ""
        verb = "restore" if entry.get("adopted") else "delete"
        lines.append(f"would {verb} {entry['kind']} {where}{entry['name']}")
    elsewhere = len(backend.journal.elsewhere())
    if elsewhere:
        lines.append(
            f"would set aside {elsewhere} entr{'y' if elsewhere == 1 else 'ies'} of another "
            "cluster that had this context's name, and act on none"
        )
    lines.append(f"{len(entries)} object(s) in meshtutor's journal for {backend.journal.context}")
    return lines
