"""The app for browser attendees (``meshtutor classroom serve --web``), through textual-serve.

textual-serve starts one process per browser session: ``python -m meshtutor.tui.web_attendee
JOIN_URL``. Each is its own attendee (a generated guest name, its own client outbox in a
temporary directory) with its own sandbox, and runs the normal app joined to the classroom.

Offline: textual-serve serves its JavaScript (xterm.js and its glue, one bundled textual.js)
and CSS itself, from its package; the only outside asset is a Google Fonts stylesheet for Roboto
Mono, which without internet fails to load, and the browser then uses a local monospace font
(the package also holds Roboto Mono font files, but its page does not reference them). So the
app works with no internet; only the typeface differs. A reloaded page starts a new app process
and joins as a new guest.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
import tempfile
from typing import Any


def command(join_url: str) -> str:
    """The shell command textual-serve runs for each browser session."""
    return f"{shlex.quote(sys.executable)} -m meshtutor.tui.web_attendee {shlex.quote(join_url)}"


async def start_web(join_url: str, host: str, port: int, public_url: str) -> Any:
    """Serve the attendee app to browsers on ``host:port``; returns the aiohttp runner (its
    ``cleanup()`` stops it). Needs textual-serve (``pip install textual-serve``)."""
    from aiohttp import web

    try:
        from textual_serve.server import Server
    except ImportError:
        from meshtutor.errors import MeshtutorError

        raise MeshtutorError("--web needs textual-serve: pip install textual-serve") from None

    server = Server(
        command(join_url), host=host, port=port, title="meshtutor", public_url=public_url
    )
    app = await server._make_app()  # textual-serve's own app, in this event loop
    app.on_startup.remove(server.on_startup)  # its banner: the classroom prints its own
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m meshtutor.tui.web_attendee JOIN_URL")
    from meshtutor.tui.app import run_app

    # Each browser session is a separate learner: its own progress and classroom identity,
    # gone when the session ends (a reloaded page joins as a new guest).
    with tempfile.TemporaryDirectory(prefix="meshtutor-web-") as home:
        os.environ["MESHTUTOR_HOME"] = home
        run_app(join=args[0], name=f"guest-{secrets.token_hex(2)}")


if __name__ == "__main__":
    main()
