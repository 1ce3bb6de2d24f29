"""``meshtutor classroom serve --web``: the app for browser attendees, through textual-serve.

A browser becomes an attendee in three steps, and only the last one costs a process:

1. ``GET /`` without a seat cookie: a small form asks for a name and the join code (prefilled
   from ``?code=``, which the printed link carries). The web port must not be a way around the
   join code, so a few wrong codes from one address lock it out for a minute.
2. ``POST /join``: the name is checked as the classroom checks it; the answer sets a seat
   cookie holding a random browser id and the name, signed with a key kept in the room's data
   directory (valid across a restart of the same room, and for no other room).
3. The app page (textual-serve's own) opens its websocket, which starts ``python -m
   meshtutor.tui.web_attendee JOIN_URL NAME`` with ``MESHTUTOR_HOME`` set to
   ``DATA/web/<browser id>``. The classroom client keeps its outbox and attendee token there, so
   a reload is the same attendee with the same progress, never a new guest. A browser has one
   app at a time: a reload (or a second tab) ends the previous one first, as both would share
   that directory.

At most ``sessions`` apps run at once (each is the whole app with its own sandbox, ~70 MiB):
past that a page load gets a page saying so, and a websocket is refused before any process
starts.

The apps never outlive the server. Each is exec'd without a shell (one process, not two) in a
process group of its own; ending a session sends the group SIGTERM (Textual's web driver exits
on it) and SIGKILL after ``GRACE`` seconds, and shutting down ends every session at once. A
server killed with SIGKILL runs none of this: then ``web_attendee.die_with_parent`` ends each
app.

textual-serve's ``Server`` and ``AppService`` are subclassed. The hooks used are private
(``_open_app_process``, ``_build_environment``, ``_process_messages``, ``_process``, ``_stdin``,
``_task``, ``_download_manager``), so its version is pinned in pyproject.toml, and
tests/classroom/test_web_attendee.py drives the real server with a websocket client.

Offline: textual-serve serves its JavaScript (xterm.js and its glue, one bundled textual.js)
and CSS itself, from its package; the only outside asset is a Google Fonts stylesheet for Roboto
Mono, which without internet fails to load, and the browser then uses a local monospace font.
So the app works with no internet; only the typeface differs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import html
import os
import re
import secrets
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from meshtutor.classroom.protocol import PayloadError, normalize_join_code, validate_name
from meshtutor.errors import MeshtutorError
from meshtutor.tui.web_attendee import PARENT_ENV

GRACE = 1.0  # seconds an app has to exit after SIGTERM before its group is killed
SEAT_COOKIE = "meshtutor_seat"
SEAT_DAYS = 7  # a workshop lasts a day or two
WRONG_CODES = 5  # wrong join codes from one address …
WRONG_CODE_WINDOW = 60.0  # … within this many seconds lock it out until they are older
_BROWSER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16)


@dataclass(frozen=True)
class WebConfig:
    """What ``start_web`` needs. ``join_url`` is the loopback URL the apps join through,
    ``public_url`` the address browsers reach this server at."""

    join_url: str
    join_code: str
    data: Path  # the room's data directory: DATA/web holds the browsers' homes and the key
    host: str
    port: int
    public_url: str
    title: str
    sessions: int  # apps at once (``--web-sessions``)


# --- seats: who a browser is ---------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SeatKey:
    """Signs seat cookies (browser id and name) with a key kept in ``folder``."""

    def __init__(self, folder: Path) -> None:
        path = folder / "seat.key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            self._key = path.read_bytes()
        else:
            self._key = secrets.token_bytes(32)
            with os.fdopen(fd, "wb") as out:
                out.write(self._key)
        if len(self._key) != 32:
            raise MeshtutorError(f"{path}: not a seat key (32 bytes expected); delete it")

    def _mac(self, browser: str, name: str) -> str:
        message = f"{browser}\n{name}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def seal(self, browser: str, name: str) -> str:
        return f"{browser}.{_b64(name.encode())}.{self._mac(browser, name)}"

    def open(self, cookie: str | None) -> tuple[str, str] | None:
        """(browser id, name) from a cookie this key signed, else None."""
        parts = (cookie or "").split(".")
        if len(parts) != 3 or not _BROWSER_ID.match(parts[0]):
            return None
        try:
            name = _unb64(parts[1]).decode()
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(parts[2], self._mac(parts[0], name)):
            return None
        return parts[0], name


class CodeGuard:
    """Wrong join codes per client address: ``WRONG_CODES`` within ``WRONG_CODE_WINDOW``
    seconds lock the address out until they are older (guessing a 6-character code from
    31 letters at 5 a minute would take centuries)."""

    def __init__(self) -> None:
        self._wrong: dict[str, list[float]] = {}

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self._wrong.get(address, ()) if now - t < WRONG_CODE_WINDOW]
        if times:
            self._wrong[address] = times
        else:
            self._wrong.pop(address, None)
        return times

    def locked(self, address: str) -> bool:
        return len(self._recent(address, time.monotonic())) >= WRONG_CODES

    def wrong(self, address: str) -> None:
        now = time.monotonic()
        if len(self._wrong) > 10_000:  # bounded: forget every address with nothing recent
            for key in list(self._wrong):
                self._recent(key, now)
        self._wrong.setdefault(address, []).append(now)


# --- one browser's app -------------------------------------------------------------------


class AttendeeProcess(AppService):
    """One browser's app: exec'd in its own process group with the browser's own home."""

    def __init__(self, argv: list[str], home: Path, **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv
        self.home = home
        self._ending: asyncio.Future[None] | None = None

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        environment = self._build_environment(width=width, height=height)
        environment["MESHTUTOR_HOME"] = str(self.home)
        environment[PARENT_ENV] = str(os.getpid())
        self.home.mkdir(mode=0o700, exist_ok=True)
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            start_new_session=True,  # a process group of its own, ended as one
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    def _signal_group(self, signum: int) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signum)

    async def end(self) -> None:
        """SIGTERM to the app's group, SIGKILL after ``GRACE``; returns once it is gone.
        Safe to call more than once, from more than one task."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._end())
        await asyncio.shield(self._ending)

    async def _end(self) -> None:
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), GRACE)
        # The group as well: what the app started (curl probes) goes with it.
        self._signal_group(signal.SIGKILL)
        await process.wait()
        if self._task is not None:
            await self._task  # reads the app's output to its end


@dataclass
class Session:
    service: AttendeeProcess
    websocket: web.WebSocketResponse

    async def end(self) -> None:
        await self.service.end()
        if self.websocket.prepared:
            await self.websocket.close()


# --- the server ----------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> web.Response:
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ background: #0c181f; color: #eee; font: 16px/1.5 menlo, monospace; margin: 0;
  display: flex; min-height: 100vh; align-items: center; justify-content: center; }}
main {{ background: #12232d; padding: 2em 2.5em; max-width: 34em; }}
h1 {{ font-size: 1.2em; margin-top: 0; }}
label {{ display: block; margin-top: 1em; }}
input {{ font: inherit; width: 100%; box-sizing: border-box; padding: .4em; margin-top: .3em; }}
button, a.button {{ font: inherit; margin-top: 1.5em; padding: .6em 2em; border: none;
  background: #5e0ba7; color: #fff; cursor: pointer; text-decoration: none;
  display: inline-block; }}
.error {{ color: #ff8a80; }}
</style></head>
<body><main>{body}</main></body></html>"""
    return web.Response(text=document, status=status, content_type="text/html")


def _size(value: str | None, default: int) -> int:
    """A terminal dimension from the query string, within what a screen can hold."""
    try:
        return min(max(int(value or default), 10), 1000)
    except ValueError:
        return default


class WebClassroom(Server):
    """textual-serve's server, seating browsers: a name form, a cap, one app per browser."""

    def __init__(self, config: WebConfig) -> None:
        super().__init__(
            f"{sys.executable} -m meshtutor.tui.web_attendee",
            host=config.host,
            port=config.port,
            title=config.title,
            public_url=config.public_url,
        )
        self.config = config
        self.homes = config.data / "web"
        self.homes.mkdir(mode=0o700, exist_ok=True)
        self.key = SeatKey(self.homes)
        self.guard = CodeGuard()
        self.sessions: dict[str, Session] = {}  # browser id → its running app
        self.closing = False

    async def make_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024)
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        app.add_routes(
            [
                web.get("/", self.handle_index, name="index"),
                web.post("/join", self.handle_join, name="join"),
                web.get("/ws", self.handle_websocket, name="websocket"),
                web.get("/download/{key}", self.handle_download, name="download"),
                web.static("/static", self.statics_path, name="static"),
            ]
        )
        return app

    def _seat(self, request: web.Request) -> tuple[str, str] | None:
        return self.key.open(request.cookies.get(SEAT_COOKIE))

    def _full(self, seat: tuple[str, str] | None) -> bool:
        if self.closing:
            return True
        has_one = seat is not None and seat[0] in self.sessions  # a reload keeps its seat
        return not has_one and len(self.sessions) >= self.config.sessions

    # --- pages ---

    def _full_page(self) -> web.Response:
        return _page(
            "meshtutor: no free browser seat",
            f"<h1>All {self.config.sessions} browser seats are taken</h1>"
            "<p>This classroom runs the app for browsers on the instructor's machine, which has "
            "room for that many at once. Try again in a few minutes, or ask the instructor how "
            "to join from a terminal (<code>meshtutor --join</code>).</p>"
            '<a class="button" href="/">Try again</a>',
            status=503,
        )

    def _form(self, *, name: str = "", code: str = "", error: str = "") -> str:
        title = html.escape(self.config.title)
        problem = f'<p class="error">{html.escape(error)}</p>' if error else ""
        return (
            f"<h1>{title}</h1><p>Join the classroom from this browser, with nothing to install. "
            "Your progress stays with this browser, also after a reload.</p>"
            f'{problem}<form method="post" action="/join">'
            '<label>Your name, as the instructor will see it<input name="name" maxlength="40" '
            f'required autofocus value="{html.escape(name)}"></label>'
            '<label>Join code, from the instructor\'s screen<input name="code" '
            f'maxlength="16" required autocomplete="off" value="{html.escape(code)}"></label>'
            '<button type="submit">Join</button></form>'
        )

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        seat = self._seat(request)
        if self._full(seat):
            return self._full_page()
        if seat is None:
            form = self._form(code=request.query.get("code", "")[:16])
            return _page(self.config.title, form)
        page: web.StreamResponse = await Server.handle_index(self, request)
        return page

    async def handle_join(self, request: web.Request) -> web.StreamResponse:
        address = request.remote or "?"
        form = await request.post()
        name, code = str(form.get("name", "")), str(form.get("code", ""))
        if self.guard.locked(address):
            body = self._form(name=name, error="Too many wrong codes: wait a minute.")
            return _page(self.config.title, body, status=429)
        wanted = self.config.join_code.encode()
        if not hmac.compare_digest(normalize_join_code(code).encode(), wanted):
            self.guard.wrong(address)
            body = self._form(name=name, error="That is not this classroom's join code.")
            return _page(self.config.title, body, status=403)
        try:
            name = validate_name(name)
        except PayloadError as exc:
            body = self._form(name=name, code=code, error=f"Your {exc.message}.")
            return _page(self.config.title, body, status=400)
        seat = self._seat(request)
        browser = seat[0] if seat is not None else secrets.token_urlsafe(16)
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            SEAT_COOKIE,
            self.key.seal(browser, name),
            max_age=SEAT_DAYS * 86400,
            httponly=True,
            samesite="Lax",
        )
        return response

    # --- the app's websocket ---

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        seat = self._seat(request)
        if seat is None:
            raise web.HTTPForbidden(text="choose a name first: reload the page")
        if self._full(seat):  # refused before any process starts
            raise web.HTTPServiceUnavailable(text="no free browser seat")
        browser, name = seat
        websocket = web.WebSocketResponse(heartbeat=15, timeout=2, max_msg_size=256 * 1024)
        argv = [sys.executable, "-m", "meshtutor.tui.web_attendee", self.config.join_url, name]
        service = AttendeeProcess(
            argv,
            self.homes / browser,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=websocket.close,
            download_manager=self.download_manager,
        )
        session = Session(service, websocket)
        previous = self.sessions.get(browser)
        self.sessions[browser] = session  # before any await: the seat is taken now
        try:
            if previous is not None:  # a reload or another tab: one app per home
                await previous.end()
            await websocket.prepare(request)
            width = _size(request.query.get("width"), 80)
            height = _size(request.query.get("height"), 24)
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except (ValueError, TypeError, KeyError, AssertionError, ConnectionError):
            pass  # not textual-serve's protocol, or the browser went away: end the session
        finally:
            if self.sessions.get(browser) is session:
                del self.sessions[browser]
            await session.end()
        return websocket

    async def close(self) -> None:
        """Refuse new sessions and end every running one, all at once."""
        self.closing = True
        await asyncio.gather(*(s.end() for s in list(self.sessions.values())))


class WebAttendees:
    """The running ``--web`` server: ``stop()`` ends every app and closes the port."""

    def __init__(self, server: WebClassroom, runner: web.AppRunner) -> None:
        self.server = server
        self.runner = runner

    async def stop(self) -> None:
        await self.server.close()
        await self.runner.cleanup()


async def start_web(config: WebConfig) -> WebAttendees:
    """Serve the attendee app to browsers on ``config.host:config.port``."""
    server = WebClassroom(config)
    app = await server.make_app()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError:
        await runner.cleanup()
        raise
    return WebAttendees(server, runner)
