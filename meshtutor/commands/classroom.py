"""``meshtutor classroom``: run a workshop server (attendees join, the instructor watches)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import sys
from pathlib import Path

import click

from meshtutor.errors import MeshtutorError

# Kept here (not imported) so `classroom --help` loads nothing heavy; a test checks they match.
PLATFORM_CHOICES = ("linux-aarch64", "linux-x86_64", "macos-arm64", "macos-x86_64", "windows-amd64")
PYTHON_CHOICES = ("3.11", "3.12", "3.13")


@click.group("classroom")
def classroom() -> None:
    """Run a workshop: attendees join with a code, the instructor sees the room live."""


def _lan_address() -> str:
    """The address other machines on the LAN reach this one at. Connecting a UDP socket sends
    nothing; it only asks the kernel which interface would route there (works offline too)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        address = str(s.getsockname()[0])
        if not address.startswith("0."):
            return address
    return socket.gethostname()


def _own_addresses(host: str) -> tuple[str, ...]:
    """The addresses ``host`` names on this machine (none for a wildcard): with --web, the
    browsers' apps connect to the classroom from there."""
    if host in ("", "0.0.0.0", "::"):
        return ()
    with contextlib.suppress(OSError, UnicodeError):
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        return tuple(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in found))
    return ()


def _trust(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    from meshtutor.classroom.limits import parse_trust

    try:
        return tuple(parse_trust(value) for value in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@classroom.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 for the room's LAN.",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free port).",
)
@click.option("--title", default=None, help="The room's title, shown to attendees and on the page.")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the classroom database (default: the meshtutor data directory). "
    "The same directory resumes the same room: join code, token and results. An existing "
    "directory keeps its mode; a new one is created owner-only.",
)
@click.option(
    "--wheelhouse",
    "wheels",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of wheels to serve as a package index at /simple/ (default: DATA/wheelhouse, "
    "as `classroom wheelhouse` builds it).",
)
@click.option(
    "--trust",
    multiple=True,
    callback=_trust,
    metavar="CIDR",
    help="An address or network whose clients are exempt from the per-address limits (not "
    "from the totals): a room that reaches the server through one NAT address, e.g. a "
    "server on a cloud VM. Repeatable.",
)
@click.option(
    "--web", is_flag=True, help="Also serve the app to browser attendees (textual-serve)."
)
@click.option(
    "--web-sessions",
    # Each runs the whole app with its sandbox here, ~70 MiB: 20 is ~1.4 GiB on a laptop.
    default=20,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="With --web: browser attendees at once (each runs the app here, ~70 MiB).",
)
def serve(
    host: str,
    port: int,
    title: str | None,
    data: Path | None,
    wheels: Path | None,
    trust: tuple[str, ...],
    web: bool,
    web_sessions: int,
) -> None:
    """Start a classroom server and print how to join it."""
    if title is not None and not (1 <= len(title.strip()) <= 80 and title.isprintable()):
        raise click.UsageError("--title must be 1 to 80 printable characters")
    from meshtutor.classroom import wheelhouse
    from meshtutor.classroom.files import check_tree
    from meshtutor.classroom.limits import LOOPBACK
    from meshtutor.classroom.protocol import display_join_code
    from meshtutor.classroom.server import ServerConfig, start_server
    from meshtutor.classroom.store import StoreError, secure_dir
    from meshtutor.paths import data_dir

    folder = data if data is not None else data_dir() / "classroom"
    try:
        secure_dir(folder)
    except OSError as exc:
        raise MeshtutorError(f"cannot use --data {folder}: {exc.strerror or exc}") from None
    # What the server reads there must be this user's own (--data may be a shared 1777
    # directory); the database is checked as it opens, --web's folder as --web starts.
    check_tree(wheels if wheels is not None else folder / wheelhouse.FOLDER)
    public = host if not host.startswith("0.0.0.0") and host not in ("", "::") else _lan_address()
    # --web runs each browser attendee's app on this machine, joining from loopback or from
    # the address the server listens on: those are exempt from the per-address limits (the
    # session cap bounds them; each browser's own address took its join on the web port).
    own = (*LOOPBACK, *_own_addresses(host)) if web else ()
    config = ServerConfig(
        data=folder,
        title=title.strip() if title else None,
        public_host=public,
        wheelhouse=wheels,
        trusted=trust,
        apps_from=own,
        web_sessions=web_sessions if web else 0,
    )
    public = f"[{public}]" if ":" in public else public

    async def main() -> None:
        try:
            server = await start_server(config, host, port)
        except OSError as exc:
            raise MeshtutorError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port "
                "or stop what uses it"
            ) from None
        except StoreError as exc:
            raise MeshtutorError(str(exc)) from None
        # Before anything is printed: whoever reads "Press Ctrl+C" may press it at once.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        meta = server.classroom.meta
        join_url = server.join_url
        web_runner = None
        web_port = server.port + 1
        if web:
            try:
                from meshtutor.tui.web_server import WebConfig, start_web
            except ImportError as exc:
                await server.close()
                raise MeshtutorError(f"--web needs textual-serve: {exc}") from None
            web_config = WebConfig(
                # The browsers' app processes run here: they join through this machine's
                # own address for the server (loopback for a wildcard).
                app_url=server.url,
                data=config.data,
                host=host,
                port=web_port,
                public_url=f"http://{public}:{web_port}",
                title=meta.title,
                sessions=web_sessions,
                homes=config.max_attendees,
            )
            try:
                web_runner = await start_web(web_config, server.classroom)
            except (OSError, MeshtutorError) as exc:
                await server.close()
                raise MeshtutorError(f"--web on port {web_port}: {exc}") from None
        echo = click.echo
        echo(f"meshtutor classroom {meta.title!r} is running.")
        echo(f"  Attendees join:    meshtutor --join {join_url} --name 'Your Name'")
        echo(f"                     (a browser at {join_url} shows how)")
        echo(f"  Join code:         {display_join_code(meta.join_code)}")
        install = server.classroom.install_commands()
        if install:
            for i, command in enumerate(install):
                echo(f"  {'Install:' if i == 0 else '':<19}{command}")
        else:
            echo(
                f"  Install:           no wheelhouse in {server.classroom.wheelhouse}: attendees "
                "cannot install meshtutor from here (build one: meshtutor classroom wheelhouse)"
            )
        if web_runner is not None:
            echo(
                f"  Browser attendees: {server.classroom.browser_url} "
                f"(nothing to install; {web_sessions} at once)"
            )
        echo(f"  Instructor page:   {server.url}/#token={meta.instructor_token}")
        echo(f"  Instructor token:  {meta.instructor_token}")
        echo(f"  Data:              {config.data / 'classroom.sqlite'}")
        if not _is_loopback(host):
            echo(
                f"warning: listening on {host}: everyone on this network can reach the "
                "classroom (joining needs the code, the instructor's pages the token); use it "
                "on the room's LAN only",
                err=True,
            )
        else:
            echo("  Only this machine can connect; use --host 0.0.0.0 for the room's LAN.")
        echo("Press Ctrl+C to stop.")
        sys.stdout.flush()
        try:
            await stop.wait()
        finally:
            if web_runner is not None:
                await web_runner.stop()  # every browser's app ends with the server
            await server.close()
        echo(f"Classroom stopped; everything is kept in {config.data}.")

    asyncio.run(main())


@classroom.command("wheelhouse")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="The classroom's --data directory (its wheelhouse/ folder is FOLDER's default).",
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    type=click.Choice(["all", "none", *sorted(PLATFORM_CHOICES)]),
    default=("all",),
    show_default=True,
    help="Attendees' platforms to fetch wheels for, besides this machine's (repeatable).",
)
@click.option(
    "--python",
    "pythons",
    multiple=True,
    default=PYTHON_CHOICES,
    show_default=True,
    help="Attendees' Python versions (X.Y, repeatable).",
)
@click.option(
    "--no-deps",
    is_flag=True,
    help="Only meshtutor's own wheel (attendees then fetch the dependencies from the internet).",
)
def wheelhouse(
    folder: Path | None,
    data: Path | None,
    platforms: tuple[str, ...],
    pythons: tuple[str, ...],
    no_deps: bool,
) -> None:
    """Prepare, with internet, the packages `classroom serve` offers attendees: meshtutor's
    wheel and its dependencies as wheels, so the room installs meshtutor without internet."""
    import re

    from meshtutor.classroom import wheelhouse as wh
    from meshtutor.classroom.files import check_private
    from meshtutor.classroom.store import secure_dir
    from meshtutor.paths import data_dir

    for version in pythons:
        if not re.fullmatch(r"3\.\d{1,2}", version):
            raise click.BadParameter(
                f"{version!r} is not a Python version like 3.12", param_hint="--python"
            )
    chosen = sorted(wh.PLATFORMS) if "all" in platforms else [p for p in platforms if p != "none"]
    if folder is None:
        base = data if data is not None else data_dir() / "classroom"
        try:
            secure_dir(base)  # the classroom's own directory: created owner-only
        except OSError as exc:
            raise MeshtutorError(f"cannot use --data {base}: {exc.strerror or exc}") from None
        folder = base / wh.FOLDER
    check_private(folder)  # another user's folder would be served to attendees as ours
    click.echo(f"Building the wheelhouse in {folder} (this needs internet) …")
    index = wh.build(
        folder, wh.targets(chosen, pythons), dependencies=not no_deps, report=click.echo
    )
    if index.missing:
        click.echo(f"Dependencies not in it: {', '.join(index.missing)}", err=True)
    click.echo("`meshtutor classroom serve` serves it at /simple/ and shows attendees the command.")


@classroom.command("dashboard")
@click.argument("url")
@click.option(
    "--token",
    envvar="MESHTUTOR_INSTRUCTOR_TOKEN",
    default=None,
    help="The instructor token `classroom serve` printed (or #token=… in URL).",
)
@click.option(
    "--stuck",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 24 * 60),
    help="Minutes without progress after which an attendee counts as stuck.",
)
@click.option(
    "--export-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where exports go (default: the current directory).",
)
def dashboard(url: str, token: str | None, stuck: float, export_dir: Path | None) -> None:
    """The instructor's live view of a classroom in the terminal."""
    from meshtutor.tui.dashboard import run_dashboard

    run_dashboard(url, token, stuck, export_dir)
