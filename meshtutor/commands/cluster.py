"""``meshtutor reset``: undo what meshtutor did on a real cluster, from its journal."""

from __future__ import annotations

import asyncio

import click

from meshtutor.backends.kube import Journal, KubeBackend
from meshtutor.backends.kubeclient import REQUEST_TIMEOUT, check_local, resolve_target
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
    if dry_run:
        target = resolve_target(kubeconfig, context)
        check_local(target, allow_remote)
        entries = list(reversed(Journal(target.context).entries()))
        for entry in entries:
            where = f"{entry['namespace']}/" if entry.get("namespace") else ""
            verb = "restore" if entry.get("adopted") else "delete"
            click.echo(f"would {verb} {entry['kind']} {where}{entry['name']}")
        click.echo(f"{len(entries)} object(s) in meshtutor's journal for {target.context}")
        return
    backend = KubeBackend(
        context=context,
        kubeconfig=kubeconfig,
        allow_remote=allow_remote,
        request_timeout=request_timeout,
    )

    async def run() -> list[str]:
        await backend.start()
        try:
            return await backend.reset()
        finally:
            await backend.stop()

    lines = asyncio.run(run())
    for line in lines:
        click.echo(line)
    assert backend.target is not None
    click.echo(f"meshtutor's journal for {backend.target.context} is empty")
