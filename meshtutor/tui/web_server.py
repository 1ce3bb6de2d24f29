"""``meshtutor classroom serve --web``: the app for browser attendees, through textual-serve.

A browser becomes an attendee in three steps, and only the last one costs a process:

1. ``GET /`` without a seat cookie: a small form asks for a name and the join code (prefilled
   from ``?code=``, which the printed link carries).
2. ``POST /join``: the code is compared under the classroom's own ``JoinGuard``, the very
   object ``/api/join`` uses, so wrong codes count per real client address on both ports.
   A browser without a seat is a new attendee: it takes one of its address's joins there too
   (the apps themselves join from this machine, which the classroom trusts). The name is
   checked as the classroom checks it; the answer sets a seat cookie holding a random browser
   id, the name and when it was issued, signed with a key kept in the room's data directory
   (valid for ``SEAT_DAYS`` across restarts of the same room, and for no other room).
3. The app page (textual-serve's own) opens its websocket, which starts ``python -m
   meshtutor.tui.web_attendee JOIN_URL NAME`` with ``MESHTUTOR_HOME`` set to
   ``DATA/web/<browser id>``. The classroom client keeps its outbox and attendee token there, so
   a reload is the same attendee with the same progress, never a new guest. A browser has one
   app at a time: a reload (or a second tab) ends the previous one first, as both would share
   that directory. ``JOIN_URL`` carries the room's join code as it is when the app starts (the
   instructor may make a new one; an app with a token keeps it).

At most ``sessions`` apps run at once (each is the whole app with its own sandbox, ~70 MiB):
past that a page load gets a page saying so, and a websocket is refused before any process
starts. At most ``homes`` browsers are kept (one per seat of the room), so looping on new
browser ids cannot fill the disk. The port's connections are under the classroom's own
``ConnectionGuard`` (per address, in total, idle ones closed first).

The apps never outlive the server. Each is exec'd without a shell (one process, not two) in a
process group of its own; ending a session sends the group SIGTERM (Textual's web driver exits
on it) and SIGKILL after ``GRACE`` seconds, and shutting down ends every session at once. The
server reaps each app itself (``_Child``), after its last signal to the group: until then the
exited app is a zombie whose id still names its group, so the signal cannot reach a process
group that reused the id. A server killed with SIGKILL runs none of this: then
``web_attendee.die_with_parent`` ends each app.

textual-serve's ``Server`` and ``AppService`` are subclassed. The hooks used are private
(``_open_app_process``, ``_build_environment``, ``_process_messages``, ``_process``, ``_stdin``,
``_task``, ``_download_manager``), so its version is pinned in pyproject.toml, and
tests/classroom/test_web_attendee.py drives the real server with a websocket client. The
browser's messages are read here, not by textual-serve, so each is checked (a resize is
clamped as the initial size is).

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
import logging
import math
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from meshtutor.classroom.files import DataDirError, check_private, check_tree, private_dir
from meshtutor.classroom.limits import Refused, address_key
from meshtutor.classroom.protocol import PayloadError, parse_json, validate_name
from meshtutor.classroom.server import (
    FDS_PER_WEB_SESSION,
    Classroom,
    connection_middleware,
    listening_sockets,
)
from meshtutor.errors import MeshtutorError
from meshtutor.tui.web_attendee import PARENT_ENV

_log = logging.getLogger("meshtutor.classroom")

GRACE = 1.0  # seconds an app has to exit after SIGTERM before its group is killed
SEAT_COOKIE = "meshtutor_seat"
SEAT_DAYS = 7  # a seat cookie is accepted this long after it was issued (a workshop week)
CLOCK_SKEW = 300.0  # seconds a cookie may claim to come from the future (a restored clock)
MAX_MESSAGE = 256 * 1024  # bytes of one websocket message from a browser
_BROWSER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16)
_ISSUED = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class WebConfig:
    """What ``start_web`` needs. ``app_url`` is where the apps reach the classroom (this
    machine's own address for it), ``public_url`` the address browsers reach this server at."""

    app_url: str
    data: Path  # the room's data directory: DATA/web holds the browsers' homes and the key
    host: str
    port: int
    public_url: str
    title: str
    sessions: int  # apps at once (``--web-sessions``)
    homes: int  # browsers kept at most (the room's seats)


# --- seats: who a browser is ---------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SeatKey:
    """Signs seat cookies (browser id, name, issue time) with a key kept in ``folder``.

    The key file appears whole or not at all: it is written under a temporary name and
    linked into place, so a crash leaves no empty key (an empty one, which an older
    meshtutor's crash could leave, signed nothing and is replaced). ``clock`` is the
    wall clock (seconds), for tests."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        path = folder / "seat.key"
        check_private(path)
        key = self._read(path)
        if not key:
            self._create(path, replace_empty=key is not None)
            check_private(path)
            key = self._read(path) or b""
        if len(key) != 32:
            raise MeshtutorError(f"{path}: not a seat key (32 bytes expected); delete it")
        self._key = key

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    @staticmethod
    def _create(path: Path, *, replace_empty: bool) -> None:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
                out.flush()
                os.fsync(out.fileno())
            if replace_empty:
                os.replace(temporary, path)
            else:
                # link, not rename: a key another server made meanwhile is kept, and read.
                with contextlib.suppress(FileExistsError):
                    os.link(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def _mac(self, browser: str, name: str, issued: str) -> str:
        message = f"{browser}\n{name}\n{issued}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def seal(self, browser: str, name: str) -> str:
        issued = str(int(self.clock()))
        return f"{browser}.{_b64(name.encode())}.{issued}.{self._mac(browser, name, issued)}"

    def open(self, cookie: str | None) -> tuple[str, str] | None:
        """(browser id, name) from a cookie this key signed less than ``SEAT_DAYS`` ago,
        else None."""
        parts = (cookie or "").split(".")
        if len(parts) != 4 or not _BROWSER_ID.match(parts[0]) or not _ISSUED.match(parts[2]):
            return None
        try:
            name = _unb64(parts[1]).decode()
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(parts[3], self._mac(parts[0], name, parts[2])):
            return None
        age = self.clock() - int(parts[2])
        if not -CLOCK_SKEW <= age <= SEAT_DAYS * 86400:
            return None
        return parts[0], name


class _Trouble:
    """One log line per kind of trouble, then at most one a minute with a count: a browser
    looping on broken sessions costs the log almost nothing."""

    EVERY = 60.0

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def report(self, kind: str, message: str) -> None:
        now = time.monotonic()
        last, skipped = self._last.get(kind, (-math.inf, 0))
        if now - last < self.EVERY:
            self._last[kind] = (last, skipped + 1)
            return
        more = f" ({skipped} more since the last report)" if skipped else ""
        _log.warning("--web: %s%s", message, more)
        self._last[kind] = (now, 0)


# --- one browser's app -------------------------------------------------------------------


class _Child:
    """An app process that this server reaps itself, unlike asyncio's subprocesses (whose
    watcher reaps the moment a child exits): its exit is seen without reaping it (a pidfd
    becoming readable, or ``waitid`` with ``WNOWAIT``), so the process group can still be
    signalled safely after the leader exited, and ``reap`` comes last. ``stdout``,
    ``stderr`` and ``stdin`` are asyncio streams, as textual-serve's ``AppService.run``
    reads them."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.returncode: int | None = None
        self.stdout = asyncio.StreamReader(limit=2**16)
        self.stderr = asyncio.StreamReader(limit=2**16)
        self.stdin: asyncio.StreamWriter | None = None
        self._exited = asyncio.Event()
        self._pidfd: int | None = None
        self._poller: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, argv: list[str], environment: dict[str, str]) -> _Child:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            start_new_session=True,  # a process group of its own, ended as one
        )
        child = cls(popen)
        loop = asyncio.get_running_loop()
        assert popen.stdin and popen.stdout and popen.stderr
        for reader, pipe in ((child.stdout, popen.stdout), (child.stderr, popen.stderr)):
            await loop.connect_read_pipe(_reading(reader), pipe)
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, popen.stdin
        )
        child.stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        child._watch(loop)
        return child

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)  # Linux 5.3+: readable once it exits
        except (AttributeError, OSError):
            self._poller = asyncio.ensure_future(self._poll())
        else:
            loop.add_reader(self._pidfd, self._exited.set)

    async def _poll(self) -> None:
        while not self._exited.is_set():
            try:
                found = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                gone = found is not None
            except (AttributeError, ChildProcessError):  # no waitid: reaping is the only way
                gone = self.popen.poll() is not None
            if gone:
                self._exited.set()
                return
            await asyncio.sleep(0.1)

    async def exited(self) -> None:
        """Until the app has exited (a zombie, not yet reaped)."""
        await self._exited.wait()

    def signal_group(self, signum: int) -> None:
        """Signal the app's process group. Safe until ``reap``: the leader's id still names
        the group, exited or not."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)

    def reap(self) -> int:
        """Collect the exited app (after ``exited``) and release what watched it."""
        if self._pidfd is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._poller is not None:
            self._poller.cancel()
        self.returncode = self.popen.wait()
        return self.returncode


def _reading(reader: asyncio.StreamReader) -> Callable[[], asyncio.StreamReaderProtocol]:
    return lambda: asyncio.StreamReaderProtocol(reader)


class AttendeeProcess(AppService):
    """One browser's app: exec'd in its own process group with the browser's own home."""

    def __init__(self, argv: list[str], home: Path, **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv
        self.home = home
        self.child: _Child | None = None
        self._ending: asyncio.Future[None] | None = None

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        environment = self._build_environment(width=width, height=height)
        environment["MESHTUTOR_HOME"] = str(self.home)
        environment[PARENT_ENV] = str(os.getpid())
        self.child = child = await _Child.start(self.argv, environment)
        # AppService.run reads only .stdout and .stderr of its "process".
        self._process = child  # type: ignore[assignment]
        self._stdin = child.stdin
        return child

    async def set_terminal_size(self, width: int, height: int) -> None:
        await super().set_terminal_size(_size(width, 80), _size(height, 24))

    async def end(self) -> None:
        """SIGTERM to the app's group, SIGKILL after ``GRACE``; returns once it is gone.
        Safe to call more than once, from more than one task."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._end())
        await asyncio.shield(self._ending)

    async def _end(self) -> None:
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        child = self.child
        if child is None:
            return
        self.child = None
        if not child._exited.is_set():
            child.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.exited(), GRACE)
        # The group as well: what the app started (curl probes) goes with it. Before the
        # reap: the leader, running or a zombie, keeps its group's id from being reused.
        child.signal_group(signal.SIGKILL)
        await child.exited()
        child.reap()
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


def _html_page(title: str, body: str, status: int) -> web.Response:
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


def _page(title: str, body: str, status: int = 200, retry_after: int | None = None) -> web.Response:
    response = _html_page(title, body, status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _size(value: object, default: int) -> int:
    """A terminal dimension (from the query string or a resize message), within what a
    screen can hold: a browser may send anything, and textual-serve passes it on as is."""
    if isinstance(value, bool):
        return default
    if isinstance(value, str):
        try:
            value = int(value) if len(value) <= 12 else default
        except ValueError:
            return default
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if not isinstance(value, int):
        return default
    return min(max(value, 10), 1000)


_MALFORMED = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    AssertionError,
    RecursionError,
    PayloadError,
)


class WebClassroom(Server):
    """textual-serve's server, seating browsers: a name form, a cap, one app per browser."""

    def __init__(self, config: WebConfig, classroom: Classroom) -> None:
        super().__init__(
            f"{sys.executable} -m meshtutor.tui.web_attendee",
            host=config.host,
            port=config.port,
            title=config.title,
            public_url=config.public_url,
        )
        self.config = config
        self.classroom = classroom
        self.homes = private_dir(config.data / "web")
        check_tree(self.homes)  # the key and every browser's home: this user's own
        self.key = SeatKey(self.homes)
        self.known = {p.name for p in self.homes.iterdir() if _BROWSER_ID.match(p.name)}
        self.sessions: dict[str, Session] = {}  # browser id → its running app
        self.trouble = _Trouble()
        self.closing = False

    @property
    def join_url(self) -> str:
        """Where an app starting now joins: the room's join code as it is now."""
        return f"{self.config.app_url}/j/{self.classroom.meta.join_code}"

    async def make_app(self) -> web.Application:
        app = web.Application(
            client_max_size=16 * 1024,
            middlewares=[connection_middleware(self.classroom.connections)],
        )
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

    def _no_home_left(self, browser: str | None) -> bool:
        return browser not in self.known and len(self.known) >= self.config.homes

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

    def _homes_page(self) -> web.Response:
        return _page(
            "meshtutor: no more browser attendees",
            f"<h1>This classroom has taken its {self.config.homes} browser attendees</h1>"
            "<p>Ask the instructor how to join from a terminal "
            "(<code>meshtutor --join</code>).</p>",
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

    async def _refused(self, refused: Refused, name: str) -> web.Response:
        # As the classroom answers a refused join: after a pause, so a loop pays for it.
        await asyncio.sleep(self.classroom.config.join.refusal_pause)
        body = self._form(name=name, error=refused.message[:1].upper() + refused.message[1:] + ".")
        return _page(self.config.title, body, status=429, retry_after=refused.retry_after)

    async def handle_join(self, request: web.Request) -> web.StreamResponse:
        key = address_key(request.remote)
        # What the form sends, and only that: a multipart body could carry files, and a
        # malformed one (or bytes that are not UTF-8) made aiohttp raise: a 500 and a traceback.
        if request.content_type != "application/x-www-form-urlencoded":
            return _page(self.config.title, self._form(error="Send the form."), status=415)
        try:
            form = await request.post()
        except ValueError:
            return _page(self.config.title, self._form(error="Send the form."), status=400)
        name, code = str(form.get("name", "")), str(form.get("code", ""))
        joins, trusted = self.classroom.joins, self.classroom.trusted  # --trust only
        try:
            right = joins.matches(key, code, self.classroom.meta.join_code, trusted)
        except Refused as exc:
            return await self._refused(exc, name)
        if not right:
            body = self._form(name=name, error="That is not this classroom's join code.")
            return _page(self.config.title, body, status=403)
        try:
            name = validate_name(name)
        except PayloadError as exc:
            body = self._form(name=name, code=code, error=f"Your {exc.message}.")
            return _page(self.config.title, body, status=400)
        seat = self._seat(request)
        if seat is not None:
            browser = seat[0]  # the same browser, maybe renamed: the same attendee
        else:
            # A new browser is a new attendee, joined later by its app from this machine:
            # the browser's own address takes the join now.
            if self._no_home_left(None):
                return self._homes_page()
            try:
                joins.seat(key, trusted)
            except Refused as exc:
                return await self._refused(exc, name)
            browser = secrets.token_urlsafe(16)
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

    async def _process_messages(
        self, websocket: web.WebSocketResponse, app_service: AppService
    ) -> None:
        """textual.js's messages (``["stdin", text]``, ``["resize", {width, height}]``,
        ``["ping", data]``, ``["blur"]``, ``["focus"]``), each checked: anything else ends
        the session (``ValueError``)."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            envelope = parse_json(message.data, "a message")
            if not isinstance(envelope, list) or not envelope:
                raise ValueError("a message is not a list")
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await app_service.send_bytes(data.encode("utf-8", "replace"))
            elif kind == "resize" and isinstance(data, dict):
                await app_service.set_terminal_size(
                    _size(data.get("width"), 80), _size(data.get("height"), 24)
                )
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await app_service.blur()
            elif kind == "focus":
                await app_service.focus()
            else:
                raise ValueError(f"unknown message {str(kind)[:20]!r}")

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        seat = self._seat(request)
        if seat is None:
            raise web.HTTPForbidden(text="choose a name first: reload the page")
        if self._full(seat):  # refused before any process starts
            raise web.HTTPServiceUnavailable(text="no free browser seat")
        browser, name = seat
        if self._no_home_left(browser):
            raise web.HTTPServiceUnavailable(text="no more browser attendees in this room")
        try:
            home = private_dir(self.homes / browser)
        except (OSError, DataDirError) as exc:
            self.trouble.report("home", f"a browser's home cannot be used: {exc}")
            raise web.HTTPServiceUnavailable(text="this browser's folder cannot be used") from None
        self.known.add(browser)
        websocket = web.WebSocketResponse(heartbeat=15, timeout=2, max_msg_size=MAX_MESSAGE)
        argv = [sys.executable, "-m", "meshtutor.tui.web_attendee", self.join_url, name]
        service = AttendeeProcess(
            argv,
            home,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=websocket.close,
            download_manager=self.download_manager,
        )
        session = Session(service, websocket)
        previous = self.sessions.get(browser)
        self.sessions[browser] = session  # before any await: the seat is taken now
        connections = self.classroom.connections
        reserved = False
        try:
            if previous is not None:  # a reload or another tab: one app per home
                await previous.end()
            # The app's pipes are descriptors of this process: taken from the connections'.
            reserved = connections.reserve(FDS_PER_WEB_SESSION)
            if not reserved:
                self.trouble.report("descriptors", "no descriptors left for another app")
                raise web.HTTPServiceUnavailable(text="no free browser seat")
            await websocket.prepare(request)
            width = _size(request.query.get("width"), 80)
            height = _size(request.query.get("height"), 24)
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except ConnectionError:
            pass  # the browser went away
        except OSError as exc:  # from the spawn: out of descriptors or processes
            self.trouble.report("spawn", f"cannot start an app: {exc.strerror or exc}")
        except _MALFORMED as exc:
            self.trouble.report(
                "protocol",
                f"a browser sent what textual-serve's protocol is not ({type(exc).__name__}: "
                f"{str(exc)[:80]}); its session ended",
            )
        finally:
            if self.sessions.get(browser) is session:
                del self.sessions[browser]
            await session.end()
            if reserved:
                connections.release(FDS_PER_WEB_SESSION)
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


async def start_web(config: WebConfig, classroom: Classroom) -> WebAttendees:
    """Serve the attendee app to browsers on ``config.host:config.port``, under the
    classroom's own join and connection limits."""
    server = WebClassroom(config, classroom)
    app = await server.make_app()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0, keepalive_timeout=30.0)
    await runner.setup()
    assert runner.server is not None
    classroom.connections.attach(runner.server)
    try:
        backlog = classroom.connections.backlog
        site = web.TCPSite(runner, config.host, config.port, backlog=backlog)
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    listening_sockets(site)
    classroom.web_url = config.public_url
    return WebAttendees(server, runner)
