"""The ``meshtutor`` command line.

Subcommands live in their own modules and are imported only when invoked, so ``meshtutor
--help`` and shell completion stay fast (Textual, cryptography and the kubernetes client are
heavy imports).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from meshtutor import __version__
from meshtutor.errors import MeshtutorError

# name -> "module:attribute" of a click command, imported on first use.
_LAZY_COMMANDS: dict[str, str] = {
    "explain": "meshtutor.commands.explain:explain",
    "certs": "meshtutor.pki.cli:certs",
    "tls-secret": "meshtutor.pki.edge_cli:tls_secret",
    "sandbox": "meshtutor.commands.sandbox:sandbox",
    "lessons": "meshtutor.commands.lessons:lessons_command",
    "lesson": "meshtutor.commands.lessons:lesson_group",
    "run": "meshtutor.commands.lessons:run_command",
    "quiz": "meshtutor.commands.lessons:quiz_command",
    "progress": "meshtutor.commands.lessons:progress_group",
    "doctor": "meshtutor.commands.doctor:doctor",
    "reset": "meshtutor.commands.cluster:reset",
    "classroom": "meshtutor.commands.classroom:classroom",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@click.group(cls=_LazyGroup, invoke_without_command=True)
@click.version_option(__version__, prog_name="meshtutor")
@click.option(
    "--backend",
    type=click.Choice(["sandbox", "kube"]),
    default=None,
    help="sandbox (default) or kube: a real local cluster.",
)
@click.option(
    "--context", default=None, help="kubeconfig context of a real cluster (implies --backend kube)."
)
@click.option("--kubeconfig", default=None, help="kubeconfig file.")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Accept a context whose API server is not on this machine.",
)
@click.option(
    "--adopt",
    is_flag=True,
    help="Take over objects that exist and are not meshtutor's (backed up; `meshtutor reset` "
    "puts them back).",
)
@click.option(
    "--join",
    "join",
    default=None,
    metavar="URL",
    help="Take part in a classroom: the join URL the instructor's server prints.",
)
@click.option("--name", default=None, help="Your name in the classroom (default: your user name).")
@click.pass_context
def cli(
    ctx: click.Context,
    backend: str | None,
    context: str | None,
    kubeconfig: str | None,
    allow_remote: bool,
    adopt: bool,
    join: str | None,
    name: str | None,
) -> None:
    """Learn service-mesh security with real manifests, real TLS and real curl.

    With no command, opens the app (on a terminal)."""
    if ctx.invoked_subcommand is None:
        if name is not None and join is None:
            raise click.UsageError("--name goes with --join URL")
        if not sys.stdout.isatty() or not sys.stdin.isatty():
            click.echo(ctx.get_help())
            return
        from meshtutor.tui.app import run_app

        kube = backend == "kube" or bool(context or kubeconfig)
        if adopt and not kube:
            raise click.UsageError("--adopt is for a real cluster: add --context")
        if kube:
            from meshtutor.backends.kubeclient import check_local, resolve_target

            target = resolve_target(kubeconfig, context)
            check_local(target, allow_remote)
            label = f"cluster {target.context}"
        else:
            label = "sandbox (embedded mesh)"
        run_app(
            backend=backend,
            context=context,
            kubeconfig=kubeconfig,
            allow_remote=allow_remote,
            adopt=adopt,
            label=label,
            join=join,
            name=name,
        )


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user mistakes print one line and exit 2, never a traceback."""
    try:
        return cli.main(args=argv, prog_name="meshtutor", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MeshtutorError as exc:
        click.echo(f"meshtutor: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
