"""The classroom server: attendees report progress, the instructor watches and runs quizzes.

    attendee  POST /api/join ─► id + token        instructor (Bearer instructor token)
              POST /api/events (batch, idempotent)   GET  /api/room[?lesson=&stuck=]  (+ /stream, SSE)
              GET  /api/pushes?since=N[&wait=s]      POST /api/push/lesson, /api/push/hint
              GET  /ws/attendee (pushes, live)       POST /api/quiz/start, /api/quiz/close
              POST /api/quiz/{id}/answer             GET  /api/quiz/{id}/results, /answers
              GET  /api/attendees/{own id}/events    GET  /api/export.csv, /api/export.json
                   (?after=ID&limit=N, paged)        DELETE /api/attendees/{id} (remove one)
                                                     POST /api/join-code (a new join code)
    public    GET /healthz, /api/info, / (the instructor's page), /j/{code} (how to join),
              /simple/ and /wheels/ (meshtutor's wheelhouse as a package index, read-only)

Nothing a stranger on the venue's network sends gets far: limits per client address on join
codes, joins and connections (``limits.py``), a total below the descriptor limit, tokens
checked before a websocket is upgraded, every body parsed as strict JSON of bounded size.

Durability lives in ``store.py`` (an answer is sent only after the commit). The server keeps
in memory only what it can rebuild from the database at start: tokens, pushes, the open quiz.
Each attendee has its own token bucket, so a flooding client gets 429 and nobody else slows.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import csv
import hashlib
import hmac
import io
import json
import logging
import math
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from meshtutor import __version__
from meshtutor.classroom import wheelhouse
from meshtutor.classroom.limits import (
    REFUSED_WAITING,
    Clock,
    ConnectionGuard,
    JoinGuard,
    JoinLimits,
    Refused,
    TokenBucket,
    Trusted,
    address_key,
)
from meshtutor.classroom.protocol import (
    MAX_BODY,
    EventIn,
    PayloadError,
    display_join_code,
    new_join_code,
    new_token,
    parse_events,
    parse_int,
    parse_json,
    parse_object,
    parse_slug,
    parse_targets,
    parse_text,
    validate_name,
)
from meshtutor.classroom.store import (
    AttendeeRecord,
    ClassroomStore,
    OverBudget,
    Push,
    QuizRecord,
)
from meshtutor.lessons.model import Lesson, Question

_log = logging.getLogger("meshtutor.classroom")

LIVE_QUIZ_TYPES = ("choice", "multiple", "predict")
ONLINE_SECONDS = 30.0  # an attendee heard from this recently shows as online
STREAM_INTERVAL = 0.5  # seconds: room updates to the instructor are coalesced to this pace
SEEN_FLUSH_SECONDS = 10.0
BODY_SECONDS = 10.0  # a request body must arrive within this
KEEPALIVE_SECONDS = 30.0  # an idle connection (or one that never sends a request) closes
FD_RESERVE = 64  # descriptors kept for SQLite, threads and the listeners, beyond connections
# What one --web browser session costs this process: the app's three pipes, a pidfd to learn
# of its exit, and while it starts the child's ends of the pipes and the exec-error pipe.
FDS_PER_WEB_SESSION = 9
BACKLOG = 128  # the listen backlog, at most: also what asyncio accepts at one wake-up …
ACCEPT_TURNS = 3  # … in each of the loop turns before the guard sees those connections
LISTEN_QUEUE = 1024  # connections the kernel queues for accepting (no descriptor each)
# Bytes of events one attendee may have stored (details as JSON, ids and names). Going
# through all 15 shipped lessons failing every step ten times with the longest failure
# message (1,000 characters), using every hint and answering each quiz question three times
# stores 0.94 MB; 4 MiB is four such learners. Past it, events are refused (413, which the
# client sets aside), so one token cannot fill the disk: 500 seats hold 2 GiB at most.
EVENT_BUDGET = 4 * 1024 * 1024
EVENT_ROW_BYTES = 64  # what a stored event costs beyond its text (times, ids, the index)
EVENTS_PAGE = 200  # events per page of GET /api/attendees/{id}/events …
EVENTS_PAGE_MAX = 1000  # … and at most, with ?limit=
SOCKET_RETRY_SECONDS = 5  # Retry-After when a live connection is refused over a cap
TOKEN_PROTOCOL = "meshtutor.token."


@dataclass
class ServerConfig:
    """How a classroom runs. ``data`` is the directory of its database."""

    data: Path
    title: str | None = None
    rate: float = 20.0  # events per second per attendee …
    burst: float = 40.0  # … with this many at once
    max_attendees: int = 500
    lessons: Sequence[Lesson] | None = None  # default: the curriculum
    # The address attendees reach the server at, for the join page and the printed URLs
    # (default: the listening address; 127.0.0.1 for a wildcard). Never the request's Host
    # header, which whoever sends the request chooses.
    public_host: str | None = None
    sockets_per_attendee: int = 4  # live pushes (websocket or long poll) one attendee holds
    max_sockets: int | None = None  # websockets in all; default twice max_attendees
    join: JoinLimits = field(default_factory=JoinLimits)
    connections_per_address: int = 32
    max_connections: int | None = None  # default 3 per seat + 100, below the fd limit
    # Addresses and networks (CIDR) exempt from the per-address limits, not from the totals.
    trusted: tuple[str, ...] = ()
    # This machine's addresses --web's apps join from: exempt on the classroom's port only
    # (a browser on the web port from one of them is limited like any other).
    apps_from: tuple[str, ...] = ()
    wheelhouse: Path | None = (
        None  # the package index served at /simple/ (default: data/wheelhouse)
    )
    web_sessions: int = 0  # --web's browser sessions at most: each costs descriptors here
    event_budget: int = EVENT_BUDGET  # bytes of events stored per attendee
    clock: Clock = time.monotonic  # the join limits' clock (tests move one by hand)

    @property
    def total_sockets(self) -> int:
        return self.max_sockets if self.max_sockets is not None else 2 * self.max_attendees


def token_hash(token: str) -> str:
    # Tokens are 192 random bits, so a plain hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


_ERRORS: dict[int, type[web.HTTPException]] = {
    cls.status_code: cls
    for cls in (
        web.HTTPBadRequest,
        web.HTTPUnauthorized,
        web.HTTPForbidden,
        web.HTTPNotFound,
        web.HTTPRequestTimeout,
        web.HTTPConflict,
        web.HTTPUnsupportedMediaType,
        web.HTTPTooManyRequests,
        web.HTTPInternalServerError,
        web.HTTPServiceUnavailable,
    )
}


def _error(status: int, message: str, **extra: Any) -> web.HTTPException:
    """An HTTP error whose body is ``{"error": message, **extra}``."""
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    body = json.dumps({"error": message, **extra}, ensure_ascii=False)
    if status == 413:
        return web.HTTPRequestEntityTooLarge(MAX_BODY, text=body, content_type="application/json")
    cls = _ERRORS.get(status, web.HTTPBadRequest)
    return cls(text=body, content_type="application/json", headers=headers)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error is JSON ``{"error": ...}``, including aiohttp's own (404, 405, 413)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        message = f"request body larger than {MAX_BODY} bytes" if exc.status == 413 else exc.reason
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return web.Response(
            status=exc.status,
            text=json.dumps({"error": message}),
            content_type="application/json",
            headers=headers,
        )


async def _over_address_cap(connections: ConnectionGuard) -> web.Response:
    """429 on a provisional connection whose request is not the instructor's; it closes."""
    response = web.Response(
        status=429,
        text=json.dumps({"error": await connections.refused_request()}),
        content_type="application/json",
        headers={"Retry-After": str(SOCKET_RETRY_SECONDS)},
    )
    response.force_close()
    return response


def connection_middleware(connections: ConnectionGuard) -> Any:
    """The connection tracking of another port of the classroom (``--web``'s): busy or idle,
    and a provisional connection refused (the instructor has nothing there)."""

    @web.middleware
    async def track(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        protocol = request.protocol
        try:
            if connections.busy(protocol):
                return await _over_address_cap(connections)
            return await handler(request)
        finally:
            connections.idle(protocol)

    return track


def _json(data: Any, status: int = 200) -> web.Response:
    # allow_nan=False: NaN and Infinity are not JSON; an answer must never contain them.
    return web.Response(
        text=json.dumps(data, ensure_ascii=False, allow_nan=False),
        status=status,
        content_type="application/json",
    )


def _stored(text: str) -> Any:
    """JSON the server wrote itself. Rooms recorded before NaN was refused on input may hold
    it: it reads back as null, so the exports stay valid JSON."""
    return json.loads(text, parse_constant=lambda _name: None)


@dataclass
class _RoomCache:
    version: int
    at: float
    body: dict[str, Any] = field(default_factory=dict)


class Classroom:
    """The server's state and request handlers (one per running server)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = ClassroomStore(config.data / "classroom.sqlite", title=config.title)
        self.meta = self.store.meta
        if config.lessons is None:
            from meshtutor.lessons.loader import load_lessons

            lessons: Sequence[Lesson] = load_lessons()
        else:
            lessons = config.lessons
        self.lessons: dict[str, Lesson] = {lesson.id: lesson for lesson in lessons}
        self.known: dict[str, list[str]] = {
            lesson.id: [s.id for s in lesson.steps] for lesson in lessons
        }
        self.current_lesson = self.meta.current_lesson
        self.by_token: dict[str, AttendeeRecord] = {}
        self.by_id: dict[int, AttendeeRecord] = {}
        self.pushes: list[Push] = []
        self._push_texts: dict[int, str] = {}
        self.quiz: QuizRecord | None = None  # the open live quiz
        self.latest_quiz: int | None = None  # the last one started, shown until the next
        self.last_seen: dict[int, float] = {}
        self._unsaved_seen: dict[int, float] = {}
        self._buckets: dict[int, TokenBucket] = {}
        self.removed: dict[str, AttendeeRecord] = {}  # token hash → a removed attendee
        self._seating = 0  # joins accepted, their attendee row not yet committed
        self.stored: dict[int, int] = {}  # bytes of events stored, per attendee
        self.trusted = Trusted(config.trusted)
        here = Trusted((*config.trusted, *config.apps_from))
        # One guard of each kind for every port (--web's too): the limits are per client.
        self.joins = JoinGuard(config.join, here, config.clock)
        self.connections = _connection_guard(config, here)
        self.accept_errors = AcceptErrorLog()
        self.wheelhouse = config.wheelhouse or config.data / wheelhouse.FOLDER
        self.index = wheelhouse.Index({})
        self._index_stamp: wheelhouse.Stamp | None = None
        self._index_lock = asyncio.Lock()
        self.web_url: str | None = None  # --web's address for browsers, once it listens
        self._sockets: dict[int, set[web.WebSocketResponse]] = {}
        self._open_sockets = 0
        self._polls: dict[int, int] = {}  # long polls waiting, per attendee
        self._streams: set[web.StreamResponse] = set()
        self._push_waiters: set[asyncio.Future[None]] = set()
        self._room_signal = asyncio.Event()
        self.room_version = 0
        self._room_cache: dict[tuple[str, float | None], _RoomCache] = {}
        self._answers_cache: dict[int, tuple[int, dict[str, Any]]] = {}
        self._correct_cache: dict[tuple[str, str], Any] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.base_url = "http://127.0.0.1"  # start_server sets the real one once it listens

    # --- lifecycle ------------------------------------------------------------------------

    async def startup(self, app: web.Application) -> None:
        self.store.start()
        attendees = await self.store.read(ClassroomStore.attendees)
        for record in attendees:
            if record.removed_at is not None:
                self.removed[record.token_hash] = record
                continue
            self.by_token[record.token_hash] = record
            self.by_id[record.id] = record
        self.pushes = await self.store.read(ClassroomStore.pushes)
        self.stored = await self.store.read(_stored_bytes)
        quizzes = await self.store.read(ClassroomStore.quizzes)
        self.quiz = next((q for q in reversed(quizzes) if q.state == "open"), None)
        self.latest_quiz = quizzes[-1].id if quizzes else None
        await self._fresh_index()
        self._tasks.append(asyncio.create_task(self._flush_seen_forever()))

    async def shutdown(self, app: web.Application) -> None:
        self._closing = True
        self._changed()
        self._wake_pollers()
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close(code=1001, message=b"server shutting down")

    async def cleanup(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush_seen()
        await asyncio.to_thread(self.store.close)

    async def _flush_seen_forever(self) -> None:
        while True:
            await asyncio.sleep(SEEN_FLUSH_SECONDS)
            await self._flush_seen()

    async def _flush_seen(self) -> None:
        # last_seen changes on every request; writing it each time would double the writes
        # for nothing, so it is saved in batches (losing a few seconds of it is harmless).
        if self._unsaved_seen:
            seen, self._unsaved_seen = self._unsaved_seen, {}
            await self.store.touch(seen)

    def _changed(self) -> None:
        self.room_version += 1
        # Each waiter holds the Event of its round; a fresh one serves the next round, so no
        # waiter can clear a signal another has not seen yet.
        signal, self._room_signal = self._room_signal, asyncio.Event()
        signal.set()

    # --- auth -----------------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def _is_instructor(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.meta.instructor_token.encode())

    def instructor(self, request: web.Request) -> None:
        """401 without the instructor token, 403 for an attendee's token."""
        token = self._bearer(request)
        if token is None:
            raise _error(401, "this needs the instructor token (Authorization: Bearer …)")
        if self._is_instructor(token):
            return
        if token_hash(token) in self.by_token:
            raise _error(403, "attendees cannot use instructor endpoints")
        raise _error(401, "wrong instructor token")

    def attendee(self, request: web.Request, token: str | None = None) -> AttendeeRecord:
        token = token if token is not None else self._bearer(request)
        if token is None:
            raise _error(401, "this needs an attendee token (Authorization: Bearer …)")
        digest = token_hash(token)
        record = self.by_token.get(digest)
        if record is None:
            if self._is_instructor(token):
                raise _error(403, "the instructor is not an attendee")
            if digest in self.removed:
                # Not 401: a client told "join again" would come straight back as a new
                # attendee; this tells it to stop.
                raise _error(403, "the instructor removed you from this room", removed=True)
            raise _error(401, "unknown attendee token: join again")
        now = time.time()
        self.last_seen[record.id] = now
        self._unsaved_seen[record.id] = now
        return record

    def _limit(self, attendee: int, cost: int) -> None:
        bucket = self._buckets.get(attendee)
        if bucket is None:
            bucket = self._buckets[attendee] = TokenBucket(self.config.rate, self.config.burst)
        wait = bucket.take(cost)
        if wait:
            raise _error(
                429,
                f"too many requests: at most {self.config.rate:g} events a second",
                retry_after=max(1, int(wait + 0.999)),
            )

    async def _body(self, request: web.Request, *, optional: bool = False) -> Mapping[str, Any]:
        """The request's JSON object. ``optional``: an empty body (with any type) is ``{}``."""
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise _error(413, f"request body larger than {MAX_BODY} bytes")
        if optional and request.content_length == 0:
            return {}
        # A browser sends text/plain across origins without asking first (no CORS
        # preflight); application/json it must ask for, and this server never allows it.
        if request.content_type != "application/json":
            raise _error(415, "the body must be JSON sent as Content-Type: application/json")
        try:
            # aiohttp enforces client_max_size while reading; the deadline stops a client
            # that holds a request open by sending its body a byte at a time.
            async with asyncio.timeout(BODY_SECONDS):
                raw = await request.read()
        except TimeoutError:
            raise _error(408, f"the body did not arrive within {BODY_SECONDS:g} s") from None
        if optional and not raw.strip():
            return {}
        try:
            return parse_object(parse_json(raw))
        except PayloadError as exc:
            raise _error(400, exc.message) from None

    @web.middleware
    async def track_connections(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Tell the connection guard which connections are busy (only idle ones are closed
        to make room at the connection limit) and which are the instructor's (they never
        count against their address, and may use the address's reserve)."""
        protocol = request.protocol
        provisional = self.connections.busy(protocol)
        try:
            token = self._bearer(request)
            if token is not None and self._is_instructor(token):
                self.connections.instructor(protocol)
            elif provisional:
                if request.method == "GET" and request.path == "/":
                    # The instructor's page itself (its token stays in the URL fragment):
                    # served, then the connection closes.
                    page = await handler(request)
                    page.force_close()
                    return page
                return await _over_address_cap(self.connections)
            return await handler(request)
        finally:
            self.connections.idle(protocol)

    # --- public ---------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def info(self, request: web.Request) -> web.Response:
        return _json({"title": self.meta.title, "room": self.meta.room_id, "version": __version__})

    async def page(self, request: web.Request) -> web.Response:
        return _html(_asset("instructor.html"), title=self.meta.title)

    @property
    def join_url(self) -> str:
        return f"{self.base_url}/j/{self.meta.join_code}"

    @property
    def browser_url(self) -> str | None:
        """``--web``'s link for browsers, with the current join code (None without --web)."""
        if self.web_url is None:
            return None
        return f"{self.web_url}/?code={display_join_code(self.meta.join_code)}"

    async def _code_matches(self, request: web.Request, code: str) -> bool:
        """Compare a join code, under the address's guess limit (``/api/join``, the join
        page and --web's form answer the same question, so they share the limit)."""
        try:
            return self.joins.matches(address_key(request.remote), code, self.meta.join_code)
        except Refused as exc:
            await self.refuse_join(exc)
        return False

    async def refuse_join(self, refused: Refused) -> None:
        """429, after a pause: a flooding client waits for each refusal instead of making the
        server answer thousands a second (a person who meets a limit barely notices)."""
        await asyncio.sleep(self.config.join.refusal_pause)
        raise _error(429, refused.message, retry_after=refused.retry_after)

    async def new_join_code(self, request: web.Request) -> web.Response:
        """``POST /api/join-code``: a fresh join code, for when a removed attendee would
        rejoin with the old one. Attendees already in keep their tokens; the old code stops
        working at once (saved before the answer, so a restart keeps the new one)."""
        self.instructor(request)
        code = new_join_code()
        while code == self.meta.join_code:
            code = new_join_code()
        await self.store.set_meta("join_code", code)
        self.meta = replace(self.meta, join_code=code)
        _log.warning("the instructor made a new join code; the old one no longer works")
        self._changed()
        return _json(
            {
                "join_code": code,
                "shown": display_join_code(code),
                "join_url": self.join_url,
                "browser_url": self.browser_url,
            }
        )

    async def join_page(self, request: web.Request) -> web.Response:
        good = await self._code_matches(request, request.match_info["code"])
        index = await self._fresh_index()
        commands = self.install_commands(index)
        if index.has_meshtutor and not index.missing:
            covered = index.covered() or "this server's own platform"
            note = (
                f"Install meshtutor from this classroom (no internet needed; wheels for {covered}):"
            )
        elif index.has_meshtutor:
            note = (
                "This classroom serves meshtutor but not its dependencies: with internet, "
                "install them from the public index first, then meshtutor from here:"
            )
        else:
            note = (
                "This classroom serves no wheelhouse, and meshtutor is not on the public "
                "package index: ask the instructor how to install it (the instructor prepares "
                "one with `meshtutor classroom wheelhouse`)."
            )
        browser = self.browser_url if good else None
        return _html(
            _asset("join.html"),
            title=self.meta.title,
            url=self.join_url if good else "",
            problem="" if good else "This join code is not the room's: check the projector.",
            install_note=note,
            install="\n".join(commands),
            browser_note="Or, with nothing to install, in a browser:" if browser else "",
            browser=browser or "",
        )

    def install_commands(self, index: wheelhouse.Index | None = None) -> list[str]:
        """How attendees install meshtutor from this server ([] without a wheelhouse)."""
        host = self.base_url.split("://", 1)[1].rsplit(":", 1)[0]
        return wheelhouse.install_commands(index or self.index, self.base_url, host)

    # --- the package index (read-only) -------------------------------------------------------

    async def _fresh_index(self) -> wheelhouse.Index:
        """The wheelhouse as it is now: read again when a file in it changed (the instructor
        may build it while the server runs), hashing only the files that changed. One
        request at a time looks: pip clients arriving together wait for one scan."""
        async with self._index_lock:
            stamp = await asyncio.to_thread(wheelhouse.stamp, self.wheelhouse)
            if stamp != self._index_stamp:
                self.index = await asyncio.to_thread(wheelhouse.scan, self.wheelhouse, self.index)
                self._index_stamp = stamp
        return self.index

    async def simple_root(self, request: web.Request) -> web.Response:
        index = await self._fresh_index()
        return web.Response(text=wheelhouse.root_page(index), content_type="text/html")

    async def simple_project(self, request: web.Request) -> web.Response:
        name = request.match_info["project"]
        project = wheelhouse.normalize(name)
        if name != project or not request.path.endswith("/"):
            raise web.HTTPMovedPermanently(f"/simple/{project}/")
        index = await self._fresh_index()
        if project not in index.projects:
            raise _error(404, f"this classroom's wheelhouse has no {project!r}")
        return web.Response(text=wheelhouse.project_page(index, project), content_type="text/html")

    async def wheel_file(self, request: web.Request) -> web.FileResponse:
        # Only names the index lists: never a path built from the request.
        found = (await self._fresh_index()).files.get(request.match_info["filename"])
        if found is None:
            raise _error(404, "no such file in this classroom's wheelhouse")
        return web.FileResponse(found.path, headers={"Content-Type": "application/octet-stream"})

    # --- attendees ------------------------------------------------------------------------

    async def join(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            name = validate_name(body.get("name"))
            code = body.get("code")
            if not isinstance(code, str):
                raise PayloadError("code must be the room's join code (a string)")
        except PayloadError as exc:
            raise _error(400, exc.message) from None
        if not await self._code_matches(request, code):
            raise _error(403, "wrong join code")
        # Seats being written count as taken: joins arriving together must not overfill.
        if len(self.by_id) + self._seating >= self.config.max_attendees:
            raise _error(409, f"the room is full ({self.config.max_attendees} attendees)")
        try:
            self.joins.seat(address_key(request.remote))
        except Refused as exc:
            await self.refuse_join(exc)
        token = new_token()
        self._seating += 1
        try:
            record = await self.store.add_attendee(name, token_hash(token))
        finally:
            self._seating -= 1
        self.by_token[record.token_hash] = record
        self.by_id[record.id] = record
        self.last_seen[record.id] = record.joined_at
        self._changed()
        return _json(
            {
                "attendee": record.id,
                "name": record.name,
                "token": token,
                "room": self.meta.room_id,
                "title": self.meta.title,
                "lesson": self.current_lesson,
            }
        )

    async def me(self, request: web.Request) -> web.Response:
        record = self.attendee(request)
        return _json(
            {
                "attendee": record.id,
                "name": record.name,
                "room": self.meta.room_id,
                "title": self.meta.title,
                "lesson": self.current_lesson,
                "quiz": self.quiz.id if self.quiz else None,
            }
        )

    async def events(self, request: web.Request) -> web.Response:
        record = self.attendee(request)
        self._limit(record.id, 1)
        body = await self._body(request)
        try:
            events = parse_events(body, self.known)
        except PayloadError as exc:
            raise _error(400, exc.message, index=exc.index) from None
        if len(events) > 1:
            self._limit(record.id, len(events) - 1)
        # Past its budget an attendee's events are refused with 413 naming the first that
        # does not fit (the client sets that one aside and sends the rest, which meet the
        # same answer). Duplicates cost nothing, so the store decides, in the batch's commit.
        left = self.config.event_budget - self.stored.get(record.id, 0)
        try:
            accepted, duplicates, stored = await self.store.add_events(
                record.id, events, event_bytes, left
            )
        except OverBudget as exc:
            raise _error(
                413,
                f"events[{exc.index}]: this attendee has stored its "
                f"{self.config.event_budget // 1024} KiB of events; no more are kept",
                index=exc.index,
            ) from None
        self.stored[record.id] = self.stored.get(record.id, 0) + stored
        if accepted:
            self._changed()
        return _json({"accepted": accepted, "duplicates": duplicates})

    def _pushes_for(self, attendee: int, since: int) -> list[Push]:
        start = bisect.bisect_right(self.pushes, since, key=lambda p: p.id)
        return [p for p in self.pushes[start:] if p.target is None or p.target == attendee]

    def _push_json(self, push: Push) -> str:
        # A push to everyone is sent to every attendee at the same moment: serialise it once.
        text = self._push_texts.get(push.id)
        if text is None:
            text = self._push_texts[push.id] = json.dumps(push.to_json(), ensure_ascii=False)
        return text

    async def poll_pushes(self, request: web.Request) -> web.Response:
        record = self.attendee(request)
        self._limit(record.id, 1)
        if self._polls.get(record.id, 0) >= self.config.sockets_per_attendee:
            raise _error(
                429,
                f"at most {self.config.sockets_per_attendee} waiting polls per attendee",
                retry_after=SOCKET_RETRY_SECONDS,
            )
        self._polls[record.id] = self._polls.get(record.id, 0) + 1
        try:
            return await self._poll(request, record)
        finally:
            self._polls[record.id] -= 1
            if not self._polls[record.id]:
                del self._polls[record.id]

    async def _poll(self, request: web.Request, record: AttendeeRecord) -> web.Response:
        since = _since(request.query.get("since", "0"))
        try:
            wait = float(request.query.get("wait", "0"))
        except ValueError:
            wait = math.nan
        if math.isnan(wait):
            raise _error(400, "wait must be a number of seconds")
        wait = min(30.0, max(0.0, wait))
        found = self._pushes_for(record.id, since)
        deadline = time.monotonic() + wait
        # Long poll: hold the request until something is pushed, so a client learns of a
        # push at once without polling often.
        while (
            not found
            and not self._closing
            and record.id in self.by_id
            and (left := deadline - time.monotonic()) > 0
        ):
            waiter = asyncio.get_running_loop().create_future()
            self._push_waiters.add(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await waiter
            finally:
                self._push_waiters.discard(waiter)
            found = self._pushes_for(record.id, since)
        pushes = ",".join(self._push_json(p) for p in found)
        return web.Response(
            text=f'{{"pushes": [{pushes}], "next": {found[-1].id if found else since}}}',
            content_type="application/json",
        )

    async def attendee_socket(self, request: web.Request) -> web.WebSocketResponse:
        """Pushes over a websocket. The token is checked before the upgrade, so an anonymous
        socket costs nothing: in the Authorization header, or (browsers cannot set headers on
        a websocket) as the subprotocol ``meshtutor.token.<token>`` offered with
        ``meshtutor``, which the server selects."""
        since = _since(request.query.get("since", "0"))
        record = self.attendee(request, self._bearer(request) or _protocol_token(request))
        self._limit(record.id, 1)
        mine = self._sockets.setdefault(record.id, set())
        if len(mine) >= self.config.sockets_per_attendee:
            raise _error(
                429,
                f"at most {self.config.sockets_per_attendee} live connections per attendee: "
                "close one first",
                retry_after=SOCKET_RETRY_SECONDS,
            )
        if self._open_sockets >= self.config.total_sockets:
            raise _error(
                503,
                "the classroom has all the live connections it takes; use /api/pushes",
                retry_after=SOCKET_RETRY_SECONDS,
            )
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_BODY, protocols=("meshtutor",))
        mine.add(ws)  # counted before the upgrade, so concurrent upgrades cannot pass the cap
        self._open_sockets += 1
        try:
            await ws.prepare(request)
            await ws.send_json({"type": "hello", "attendee": record.id})
            for push in self._pushes_for(record.id, since):
                await ws.send_str(f'{{"type": "push", "push": {self._push_json(push)}}}')
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str("pong")
                now = time.time()
                self.last_seen[record.id] = now
                self._unsaved_seen[record.id] = now  # saved with the next batch
        finally:
            self._open_sockets -= 1
            mine.discard(ws)
            if not mine and self._sockets.get(record.id) is mine:
                del self._sockets[record.id]
        return ws

    async def answer(self, request: web.Request) -> web.Response:
        record = self.attendee(request)
        self._limit(record.id, 1)
        quiz_id = _id(request.match_info["quiz"], "quiz")
        body = await self._body(request)
        quiz = self.quiz
        if quiz is None or quiz.id != quiz_id:
            known = await self.store.read(ClassroomStore.quizzes)
            if not any(q.id == quiz_id for q in known):
                raise _error(404, f"no quiz {quiz_id}")
            raise _error(409, f"quiz {quiz_id} is closed")
        question = self._question(quiz.lesson, quiz.question)
        try:
            answer, correct, score = _grade(question, quiz.correct, body.get("answer"))
        except PayloadError as exc:
            raise _error(400, exc.message) from None
        status = await self.store.add_answer(quiz.id, record.id, answer, correct, score)
        if status == "closed":
            raise _error(409, f"quiz {quiz_id} is closed")
        if status == "different":
            raise _error(409, "you already answered this question; answers are final")
        if status == "stored":
            self._changed()
        return _json({"accepted": True, "duplicate": status == "same"})

    # --- instructor -----------------------------------------------------------------------

    def _lesson(self, value: object) -> Lesson:
        try:
            lesson_id = parse_slug(value, "lesson")
        except PayloadError as exc:
            raise _error(400, exc.message) from None
        lesson = self.lessons.get(lesson_id)
        if lesson is None:
            raise _error(400, f"unknown lesson {lesson_id!r}")
        return lesson

    def _question(self, lesson_id: str, question_id: str) -> Question:
        lesson = self.lessons[lesson_id]
        return next(q for q in lesson.quiz if q.id == question_id)

    def _room_lesson(self, request: web.Request) -> Lesson | None:
        wanted = request.query.get("lesson")
        if wanted:
            return self._lesson(wanted)
        if self.current_lesson in self.lessons:
            return self.lessons[self.current_lesson]
        return next(iter(self.lessons.values()), None)

    async def lessons_list(self, request: web.Request) -> web.Response:
        self.instructor(request)
        return _json({"lessons": [_lesson_json(lesson) for lesson in self.lessons.values()]})

    async def room(self, request: web.Request) -> web.Response:
        self.instructor(request)
        lesson = self._room_lesson(request)
        stuck = _float_query(request, "stuck")
        return _json(await self.room_snapshot(lesson, stuck))

    async def room_snapshot(self, lesson: Lesson | None, stuck: float | None) -> dict[str, Any]:
        """The grid for one lesson, computed once per change however many pages watch it."""
        key = (lesson.id if lesson else "", stuck)
        cached = self._room_cache.get(key)
        now = time.time()
        # Minutes since progress move with the clock, so even an idle room refreshes.
        if cached and cached.version == self.room_version and now - cached.at < 5.0:
            return cached.body
        version = self.room_version
        rows = await self.store.read(lambda db: _room_rows(db, lesson.id if lesson else None))
        body = self._build_room(lesson, rows, stuck, now)
        body["quiz"] = await self._results(self.latest_quiz) if self.latest_quiz else None
        if len(self._room_cache) > 64:  # one entry per lesson × stuck filter in use
            self._room_cache.clear()
        self._room_cache[key] = _RoomCache(version, now, body)
        return body

    def _build_room(
        self, lesson: Lesson | None, rows: _RoomRows, stuck: float | None, now: float
    ) -> dict[str, Any]:
        steps = [s.id for s in lesson.steps] if lesson else []
        attendees = []
        for aid, name, joined_at, current, step, last_progress in rows.attendees:
            minutes = max(0.0, (now - last_progress) / 60.0)
            status = rows.lessons.get(aid)
            done = status == "done"
            cells = {}
            for step_id in steps:
                cell = rows.steps.get((aid, step_id))
                if cell is None:
                    cells[step_id] = {
                        "state": "todo",
                        "attempts": 0,
                        "hints": 0,
                        "last_failure": None,
                    }
                else:
                    state, attempts, hints, failure = cell
                    cells[step_id] = {
                        "state": state,
                        "attempts": attempts,
                        "hints": hints,
                        "last_failure": failure,
                    }
            if stuck is not None and (done or minutes <= stuck):
                continue
            seen = self.last_seen.get(aid, joined_at)
            attendees.append(
                {
                    "id": aid,
                    "name": name,
                    "online": bool(self._sockets.get(aid)) or now - seen < ONLINE_SECONDS,
                    "lesson": current,
                    "step": step,
                    "lesson_status": status or "todo",
                    "minutes_since_progress": round(minutes, 1),
                    "passed": sum(1 for c in cells.values() if c["state"] == "passed"),
                    "quiz": rows.quiz.get(aid, {"answered": 0, "score": 0.0}),
                    "cells": cells,
                }
            )
        return {
            "title": self.meta.title,
            "join_code": self.meta.join_code,
            "join_url": self.join_url,
            "browser_url": self.browser_url,
            "version": self.room_version,
            "generated_at": now,
            "current_lesson": self.current_lesson,
            "lesson": _lesson_json(lesson, with_quiz=False) if lesson else None,
            "stuck": stuck,
            "total": len(rows.attendees),
            "online": sum(
                1
                for aid in self.by_id
                if self._sockets.get(aid) or now - self.last_seen.get(aid, 0) < ONLINE_SECONDS
            ),
            "attendees": attendees,
        }

    async def room_stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``room`` with the whole grid whenever it changed (at most every
        half second) and every few seconds anyway, so "minutes since progress" keeps moving."""
        self.instructor(request)
        lesson = self._room_lesson(request)
        stuck = _float_query(request, "stuck")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        self._streams.add(response)
        try:
            sent = -1
            last = 0.0
            while not self._closing:
                signal = self._room_signal
                if sent != self.room_version or time.monotonic() - last > 10.0:
                    sent = self.room_version
                    last = time.monotonic()
                    body = await self.room_snapshot(lesson, stuck)
                    data = json.dumps(body, ensure_ascii=False)
                    await response.write(f"event: room\ndata: {data}\n\n".encode())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(10.0):
                        await signal.wait()
                await asyncio.sleep(STREAM_INTERVAL)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(response)
        return response

    async def _publish(
        self, targets: list[int] | None, kind: str, payload: dict[str, Any]
    ) -> list[Push]:
        if targets is None:
            pushes = [await self.store.add_push(None, kind, payload)]
        else:
            unknown = [t for t in targets if t not in self.by_id]
            if unknown:
                raise _error(400, f"unknown attendee {unknown[0]}")
            pushes = await self.store.add_pushes(targets, kind, payload)
        self.pushes.extend(pushes)
        self._wake_pollers()
        for push in pushes:
            owners = self._sockets.keys() if push.target is None else [push.target]
            message = f'{{"type": "push", "push": {self._push_json(push)}}}'
            for owner in list(owners):
                for ws in list(self._sockets.get(owner, ())):
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_str(message)
        return pushes

    def _wake_pollers(self) -> None:
        """Answer the waiting long polls."""
        waiters, self._push_waiters = self._push_waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def push_lesson(self, request: web.Request) -> web.Response:
        self.instructor(request)
        body = await self._body(request)
        lesson = self._lesson(body.get("lesson"))
        try:
            targets = parse_targets(body.get("to"))
        except PayloadError as exc:
            raise _error(400, exc.message) from None
        pushes = await self._publish(
            targets, "lesson", {"lesson": lesson.id, "title": lesson.title}
        )
        if targets is None:
            self.current_lesson = lesson.id
            await self.store.set_meta("current_lesson", lesson.id)
        self._changed()
        return _json({"pushes": [p.id for p in pushes]})

    async def push_hint(self, request: web.Request) -> web.Response:
        self.instructor(request)
        body = await self._body(request)
        try:
            text = parse_text(body.get("text"), "text")
            targets = parse_targets(body.get("to"))
        except PayloadError as exc:
            raise _error(400, exc.message) from None
        payload: dict[str, Any] = {"text": text}
        if body.get("lesson") is not None:
            lesson = self._lesson(body.get("lesson"))
            payload["lesson"] = lesson.id
            if body.get("step") is not None:
                step = body.get("step")
                if step not in self.known[lesson.id]:
                    raise _error(400, f"lesson {lesson.id!r} has no step {step!r}")
                payload["step"] = step
        pushes = await self._publish(targets, "hint", payload)
        return _json({"pushes": [p.id for p in pushes]})

    async def quiz_start(self, request: web.Request) -> web.Response:
        self.instructor(request)
        body = await self._body(request)
        lesson = self._lesson(body.get("lesson"))
        try:
            question_id = parse_slug(body.get("question"), "question")
        except PayloadError as exc:
            raise _error(400, exc.message) from None
        question = next((q for q in lesson.quiz if q.id == question_id), None)
        if question is None:
            raise _error(400, f"lesson {lesson.id!r} has no question {question_id!r}")
        if question.type not in LIVE_QUIZ_TYPES:
            raise _error(
                400,
                f"question {question_id!r} is a {question.type} question; a live quiz takes "
                "choice, multiple or predict questions",
            )
        correct = await self._correct(lesson, question)
        previous = self.quiz
        quiz = await self.store.open_quiz(lesson.id, question.id, question.type, correct)
        self.quiz = quiz
        self.latest_quiz = quiz.id
        if previous is not None:
            await self._publish(
                None, "quiz_closed", {"quiz": previous.id, "correct": previous.correct}
            )
        await self._publish(None, "quiz", _quiz_push(quiz, question))
        self._changed()
        return _json({"quiz": quiz.id, "question": _quiz_push(quiz, question)})

    async def _correct(self, lesson: Lesson, question: Question) -> Any:
        if question.type != "predict":
            return [i for i, o in enumerate(question.options) if o.correct]
        key = (lesson.id, question.id)
        if key not in self._correct_cache:
            # The right prediction is what the policy engine predicts on the lesson's topology
            # plus the question's setup, as `meshtutor lesson validate` checks it.
            self._correct_cache[key] = await asyncio.to_thread(_predict, lesson, question)
        return self._correct_cache[key]

    async def quiz_close(self, request: web.Request) -> web.Response:
        self.instructor(request)
        body = await self._body(request, optional=True)
        quiz = self.quiz
        wanted = body.get("quiz")
        if wanted is not None:
            wanted = _id(wanted, "quiz", text=False)
        if quiz is None or (wanted is not None and wanted != quiz.id):
            raise _error(409, "no such quiz is open")
        await self.store.close_quiz(quiz.id)
        self.quiz = None
        await self._publish(None, "quiz_closed", {"quiz": quiz.id, "correct": quiz.correct})
        self._changed()
        return _json(await self._results(quiz.id))

    async def quiz_list(self, request: web.Request) -> web.Response:
        self.instructor(request)
        quizzes = await self.store.read(ClassroomStore.quizzes)
        return _json(
            {"quizzes": [_quiz_json(q, self._question(q.lesson, q.question)) for q in quizzes]}
        )

    async def quiz_results(self, request: web.Request) -> web.Response:
        self.instructor(request)
        return _json(await self._results(_id(request.match_info["quiz"], "quiz")))

    async def quiz_answers(self, request: web.Request) -> web.Response:
        self.instructor(request)
        quiz_id = _id(request.match_info["quiz"], "quiz")
        rows = await self.store.read(lambda db: _answer_rows(db, quiz_id))
        return _json(
            {
                "quiz": quiz_id,
                "answers": [
                    {
                        "attendee": aid,
                        "name": name,
                        "answer": _stored(answer),
                        "correct": bool(correct),
                        "score": score,
                        "seconds": round(seconds, 3),
                    }
                    for aid, name, answer, correct, score, seconds in rows
                ],
            }
        )

    async def _results(self, quiz_id: int) -> dict[str, Any]:
        def job(db: sqlite3.Connection) -> tuple[QuizRecord | None, list[Any], list[Any]]:
            quiz = next((q for q in ClassroomStore.quizzes(db) if q.id == quiz_id), None)
            return quiz, _answer_rows(db, quiz_id), _leaderboard_rows(db)

        quiz, answers, board = await self.store.read(job)
        if quiz is None:
            raise _error(404, f"no quiz {quiz_id}")
        question = self._question(quiz.lesson, quiz.question)
        labels = (
            list(question.choices)
            if question.type == "predict"
            else [o.text for o in question.options]
        )
        counts = dict.fromkeys(range(len(labels)), 0)
        for _aid, _name, answer, _correct, _score, _seconds in answers:
            value = json.loads(answer)
            picks = [labels.index(value)] if isinstance(value, str) else value
            for pick in picks:
                counts[pick] += 1
        if isinstance(quiz.correct, list):
            correct = quiz.correct
        else:
            correct = [labels.index(quiz.correct)] if quiz.correct in labels else []
        fastest = sorted((a for a in answers if a[3]), key=lambda a: a[5])[:10]
        return {
            "quiz": _quiz_json(quiz, question),
            "answered": len(answers),
            "attendees": len(self.by_id),
            "histogram": [
                {"label": label, "count": counts[i], "correct": i in correct}
                for i, label in enumerate(labels)
            ],
            "fastest": [
                {"attendee": a[0], "name": a[1], "seconds": round(a[5], 2)} for a in fastest
            ],
            "leaderboard": [
                {
                    "attendee": aid,
                    "name": name,
                    "score": round(score, 3),
                    "correct": right,
                    "answered": answered,
                    "seconds": round(seconds, 2),
                }
                for aid, name, score, right, answered, seconds in board[:20]
            ],
        }

    async def attendee_events(self, request: web.Request) -> web.Response:
        """An attendee may read its own events (at its request rate); the instructor anyone's.
        Paged: ``?after=ID`` (the last event id already read) and ``?limit=N`` (default
        ``EVENTS_PAGE``); ``next`` is the ``after`` of the next page, null at the end."""
        target = _id(request.match_info["attendee"], "attendee")
        token = self._bearer(request)
        if token is None or not self._is_instructor(token):
            record = self.attendee(request)
            if record.id != target:
                raise _error(403, "attendees can read only their own events")
            self._limit(record.id, 1)
        after = _query_int(request, "after", 0, minimum=0)
        limit = min(_query_int(request, "limit", EVENTS_PAGE), EVENTS_PAGE_MAX)
        rows = await self.store.read(lambda db: _event_rows(db, target, after, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return _json(
            {
                "attendee": target,
                "events": [_event_json(r) for r in rows],
                "next": rows[-1][0] if more else None,
            }
        )

    async def remove_attendee(self, request: web.Request) -> web.Response:
        """``DELETE /api/attendees/{id}``: the attendee's token stops working, their live
        connections close and their seat frees; what they recorded stays in the exports."""
        self.instructor(request)
        target = _id(request.match_info["attendee"], "attendee")
        record = self.by_id.get(target)
        if record is None or not await self.store.remove_attendee(target):
            raise _error(404, f"no attendee {target} in the room")
        del self.by_id[target]
        del self.by_token[record.token_hash]
        self.removed[record.token_hash] = record
        self._buckets.pop(target, None)
        self.last_seen.pop(target, None)
        for ws in list(self._sockets.get(target, ())):
            await ws.close(code=4403, message=b"removed by the instructor")
        self._wake_pollers()
        self._changed()
        return _json({"removed": target, "name": record.name})

    async def export_json(self, request: web.Request) -> web.Response:
        self.instructor(request)
        data = await self.store.read(_export)
        data["room"] = {
            "title": self.meta.title,
            "room": self.meta.room_id,
            "exported_at": time.time(),
            "lessons": [_lesson_json(lesson, with_quiz=False) for lesson in self.lessons.values()],
        }
        response = _json(data)
        response.headers["Content-Disposition"] = 'attachment; filename="classroom.json"'
        return response

    async def export_csv(self, request: web.Request) -> web.Response:
        """``?table=progress`` (default: attendee × lesson × step), ``events`` or ``quiz``."""
        self.instructor(request)
        table = request.query.get("table", "progress")
        if table not in ("progress", "events", "quiz"):
            raise _error(400, "table must be progress, events or quiz")
        data = await self.store.read(_export)
        out = io.StringIO()
        writer = csv.writer(out)
        if table == "progress":
            columns = [
                "attendee",
                "name",
                "lesson",
                "step",
                "state",
                "attempts",
                "hints",
                "last_failure",
                "updated_at",
            ]
            rows = data["progress"]
        elif table == "events":
            columns = [
                "id",
                "attendee",
                "name",
                "client_event_id",
                "kind",
                "lesson",
                "step",
                "detail",
                "client_at",
                "at",
            ]
            rows = data["events"]
        else:
            columns = [
                "quiz",
                "lesson",
                "question",
                "attendee",
                "name",
                "answer",
                "correct",
                "score",
                "seconds",
            ]
            rows = [
                {**a, "quiz": q["id"], "lesson": q["lesson"], "question": q["question"]}
                for q in data["quizzes"]
                for a in q["answers"]
            ]
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="classroom-{table}.csv"'},
        )


# --- helpers ----------------------------------------------------------------------------------


def _id(value: object, what: str, *, text: bool = True) -> int:
    """An id from the path (``text``) or a JSON body: 400 unless an integer SQLite can hold."""
    try:
        return parse_int(value, what, text=text)
    except PayloadError as exc:
        raise _error(400, exc.message) from None


def _protocol_token(request: web.Request) -> str | None:
    """The token a browser offers as a websocket subprotocol (``meshtutor.token.<token>``)."""
    for header in request.headers.getall("Sec-WebSocket-Protocol", ()):
        for offered in header.split(","):
            offered = offered.strip()
            if offered.startswith(TOKEN_PROTOCOL) and len(offered) > len(TOKEN_PROTOCOL):
                return offered[len(TOKEN_PROTOCOL) :]
    return None


def _query_int(request: web.Request, name: str, default: int, *, minimum: int = 1) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    try:
        return parse_int(value, name, minimum=minimum, text=True)
    except PayloadError as exc:
        raise _error(400, exc.message) from None


def _since(value: object) -> int:
    """The last push a client has (0: none yet)."""
    try:
        return parse_int(value, "since", minimum=0, text=True)
    except PayloadError as exc:
        raise _error(400, exc.message) from None


def _float_query(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        raise _error(400, f"{name} must be a number") from None
    if not math.isfinite(number):
        raise _error(400, f"{name} must be a number")
    if number < 0:
        raise _error(400, f"{name} must not be negative")
    return number


def _csv_cell(value: Any) -> Any:
    # A spreadsheet runs a cell starting with = + - @ as a formula; names come from attendees.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _asset(name: str) -> str:
    return resources.files("meshtutor.classroom").joinpath("static", name).read_text("utf-8")


def _html(template: str, **values: str) -> web.Response:
    """Serve one of the page templates with a fresh CSP nonce: only its own inline script and
    style run, so a hostile attendee name can never become code."""
    import html

    nonce = secrets.token_urlsafe(16)
    text = template.replace("{{nonce}}", nonce)
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value))
    return web.Response(
        text=text,
        content_type="text/html",
        headers={
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def _lesson_json(lesson: Lesson, *, with_quiz: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": lesson.id,
        "title": lesson.title,
        "order": lesson.order,
        "steps": [{"id": s.id, "title": s.title} for s in lesson.steps],
    }
    if with_quiz:
        data["quiz"] = [
            {
                "id": q.id,
                "type": q.type,
                "question": q.question,
                "live": q.type in LIVE_QUIZ_TYPES,
                "options": [o.text for o in q.options],
                "choices": list(q.choices),
            }
            for q in lesson.quiz
        ]
    return data


def _quiz_push(quiz: QuizRecord, question: Question) -> dict[str, Any]:
    """What attendees see of a live question: never which answer is right."""
    return {
        "quiz": quiz.id,
        "lesson": quiz.lesson,
        "question": question.id,
        "type": question.type,
        "text": question.question,
        "options": [o.text for o in question.options],
        "choices": list(question.choices),
    }


def _quiz_json(quiz: QuizRecord, question: Question) -> dict[str, Any]:
    return {
        **_quiz_push(quiz, question),
        "id": quiz.id,
        "state": quiz.state,
        "correct": quiz.correct,
        "started_at": quiz.started_at,
        "closed_at": quiz.closed_at,
        "explanation": question.explanation,
    }


def _grade(question: Question, correct: Any, value: object) -> tuple[Any, bool, float]:
    """Check an attendee's live answer and grade it: option indexes for choice and multiple
    (partial credit as in the self-paced quiz), the printed code for predict."""
    if question.type == "predict":
        if not isinstance(value, str) or value not in question.choices:
            raise PayloadError(f"answer must be one of {list(question.choices)}")
        right = value == correct
        return value, right, 1.0 if right else 0.0
    picks = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(picks, list)
        or not picks
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in picks)
        or not all(0 <= p < len(question.options) for p in picks)
        or len(set(picks)) != len(picks)
    ):
        raise PayloadError(
            f"answer must be a list of option indexes from 0 to {len(question.options) - 1}"
        )
    if question.type == "choice" and len(picks) != 1:
        raise PayloadError("this question takes exactly one option")
    from meshtutor.lessons.quiz import grade_choice

    grade = grade_choice(question, picks)
    return sorted(picks), grade.correct, grade.score


def _predict(lesson: Lesson, question: Question) -> str:
    from meshtutor.lessons.loader import apply_action_to_cluster
    from meshtutor.lessons.quiz import predict_choice
    from meshtutor.policy.cluster import Cluster

    cluster = Cluster(lesson.mesh)
    for action in (*lesson.topology, *question.setup):
        apply_action_to_cluster(cluster, action)
    return predict_choice(cluster, question)


@dataclass
class _RoomRows:
    attendees: list[tuple[int, str, float, str | None, str | None, float]]
    steps: dict[tuple[int, str], tuple[str, int, int, str | None]]
    lessons: dict[int, str]
    quiz: dict[int, dict[str, Any]]


def _room_rows(db: sqlite3.Connection, lesson: str | None) -> _RoomRows:
    attendees = db.execute(
        "SELECT id, name, joined_at, lesson, step, last_progress_at FROM attendees "
        "WHERE removed_at IS NULL ORDER BY name, id"
    ).fetchall()
    steps = {
        (aid, step): (state, attempts, hints, failure)
        for aid, step, state, attempts, hints, failure in db.execute(
            "SELECT attendee, step, state, attempts, hints, last_failure FROM steps WHERE lesson = ?",
            (lesson,),
        )
    }
    lessons = dict(
        db.execute("SELECT attendee, status FROM lessons WHERE lesson = ?", (lesson,)).fetchall()
    )
    quiz = {
        aid: {"answered": n, "score": round(score, 2)}
        for aid, n, score in db.execute(
            "SELECT attendee, count(*), sum(best_score) FROM self_quiz WHERE lesson = ? "
            "GROUP BY attendee",
            (lesson,),
        )
    }
    return _RoomRows(attendees, steps, lessons, quiz)


def _answer_rows(db: sqlite3.Connection, quiz: int) -> list[Any]:
    return db.execute(
        "SELECT a.attendee, t.name, a.answer, a.correct, a.score, a.at - q.started_at "
        "FROM quiz_answers a JOIN attendees t ON t.id = a.attendee "
        "JOIN quizzes q ON q.id = a.quiz WHERE a.quiz = ? ORDER BY a.at",
        (quiz,),
    ).fetchall()


def _leaderboard_rows(db: sqlite3.Connection) -> list[Any]:
    """Everyone's live-quiz total this session: score, then the fewest seconds to answer
    correctly (a tie goes to the quicker attendee)."""
    return db.execute(
        "SELECT a.attendee, t.name, sum(a.score) AS score, sum(a.correct), count(*), "
        "sum(CASE WHEN a.correct THEN a.at - q.started_at ELSE 0 END) AS secs "
        "FROM quiz_answers a JOIN attendees t ON t.id = a.attendee "
        "JOIN quizzes q ON q.id = a.quiz WHERE t.removed_at IS NULL "
        "GROUP BY a.attendee ORDER BY score DESC, secs ASC"
    ).fetchall()


def _event_rows(db: sqlite3.Connection, attendee: int, after: int, limit: int) -> list[Any]:
    return db.execute(
        "SELECT e.id, e.attendee, t.name, e.client_event_id, e.kind, e.lesson, e.step, e.detail, "
        "e.client_at, e.at FROM events e JOIN attendees t ON t.id = e.attendee "
        "WHERE e.attendee = ? AND e.id > ? ORDER BY e.id LIMIT ?",
        (attendee, after, limit),
    ).fetchall()


def event_bytes(event: EventIn) -> int:
    """What storing ``event`` costs against its attendee's budget (``_stored_bytes`` counts
    the same from the database)."""
    detail = json.dumps(dict(event.detail), ensure_ascii=False)
    texts = (detail, event.client_id, event.kind, event.lesson, event.step or "")
    return sum(len(t.encode()) for t in texts) + EVENT_ROW_BYTES


def _stored_bytes(db: sqlite3.Connection) -> dict[int, int]:
    """Bytes of events each attendee has stored, as ``event_bytes`` counts them."""
    return {
        attendee: int(total)
        for attendee, total in db.execute(
            "SELECT attendee, sum(length(CAST(detail AS BLOB)) + "
            "length(CAST(client_event_id AS BLOB)) + length(CAST(kind AS BLOB)) + "
            "length(CAST(lesson AS BLOB)) + coalesce(length(CAST(step AS BLOB)), 0) + ?) "
            "FROM events GROUP BY attendee",
            (EVENT_ROW_BYTES,),
        )
    }


def _event_json(row: Sequence[Any]) -> dict[str, Any]:
    eid, attendee, name, client_id, kind, lesson, step, detail, client_at, at = row
    return {
        "id": eid,
        "attendee": attendee,
        "name": name,
        "client_event_id": client_id,
        "kind": kind,
        "lesson": lesson,
        "step": step,
        "detail": _stored(detail),
        "client_at": client_at,
        "at": at,
    }


def _export(db: sqlite3.Connection) -> dict[str, Any]:
    """Everything a room produced, for ``/api/export.json`` and the CSV tables. One read
    transaction, so the parts agree with each other."""
    db.execute("BEGIN")
    try:
        attendees = [
            {
                "id": aid,
                "name": name,
                "joined_at": joined,
                "last_seen": seen,
                "lesson": lesson,
                "step": step,
                "last_progress_at": progress,
                "removed_at": removed,
            }
            for aid, name, joined, seen, lesson, step, progress, removed in db.execute(
                "SELECT id, name, joined_at, last_seen, lesson, step, last_progress_at, "
                "removed_at FROM attendees ORDER BY id"
            )
        ]
        progress = [
            dict(
                zip(
                    (
                        "attendee",
                        "name",
                        "lesson",
                        "step",
                        "state",
                        "attempts",
                        "hints",
                        "last_failure",
                        "updated_at",
                    ),
                    row,
                    strict=True,
                )
            )
            for row in db.execute(
                "SELECT s.attendee, t.name, s.lesson, s.step, s.state, s.attempts, s.hints, "
                "s.last_failure, s.updated_at FROM steps s JOIN attendees t ON t.id = s.attendee "
                "ORDER BY s.attendee, s.lesson, s.step"
            )
        ]
        lessons = [
            dict(zip(("attendee", "lesson", "status", "started_at", "done_at"), row, strict=True))
            for row in db.execute(
                "SELECT attendee, lesson, status, started_at, done_at FROM lessons "
                "ORDER BY attendee, lesson"
            )
        ]
        self_quiz = [
            dict(zip(("attendee", "lesson", "question", "answers", "best_score"), row, strict=True))
            for row in db.execute(
                "SELECT attendee, lesson, question, answers, best_score FROM self_quiz "
                "ORDER BY attendee, lesson, question"
            )
        ]
        events = [
            _event_json(row)
            for row in db.execute(
                "SELECT e.id, e.attendee, t.name, e.client_event_id, e.kind, e.lesson, e.step, "
                "e.detail, e.client_at, e.at FROM events e JOIN attendees t ON t.id = e.attendee "
                "ORDER BY e.id"
            )
        ]
        quizzes = []
        for quiz in ClassroomStore.quizzes(db):
            answers = [
                {
                    "attendee": aid,
                    "name": name,
                    "answer": _stored(answer),
                    "correct": bool(correct),
                    "score": score,
                    "seconds": round(seconds, 3),
                }
                for aid, name, answer, correct, score, seconds in _answer_rows(db, quiz.id)
            ]
            quizzes.append(
                {
                    "id": quiz.id,
                    "lesson": quiz.lesson,
                    "question": quiz.question,
                    "type": quiz.type,
                    "state": quiz.state,
                    "correct": quiz.correct,
                    "started_at": quiz.started_at,
                    "closed_at": quiz.closed_at,
                    "answers": answers,
                }
            )
        pushes = [p.to_json() | {"target": p.target} for p in ClassroomStore.pushes(db)]
    finally:
        db.execute("COMMIT")
    return {
        "attendees": attendees,
        "progress": progress,
        "lessons": lessons,
        "self_quiz": self_quiz,
        "events": events,
        "quizzes": quizzes,
        "pushes": pushes,
    }


# --- descriptors --------------------------------------------------------------------------------


def _connection_guard(config: ServerConfig, trusted: Trusted) -> ConnectionGuard:
    """Connections fit the descriptors this process may open, after what the rest costs:
    ``FD_RESERVE``, the refused connections waiting for their answer, and the connections
    accepted but not yet seen by the guard (asyncio accepts up to the listen backlog at each
    wake-up of a listener and the guard sees them a few loop turns later, so the backlog,
    ``guard.backlog``, is sized to the budget too). --web's browser sessions take their
    pipes' descriptors from the same total while they run (``guard.reserve``), and the web
    port's connections count in it."""
    total = config.max_connections or 3 * config.max_attendees + 100
    sessions = FDS_PER_WEB_SESSION * config.web_sessions
    ports = 2 if config.web_sessions else 1
    wanted = total + sessions + REFUSED_WAITING + FD_RESERVE + ports * ACCEPT_TURNS * BACKLOG
    limit = raise_fd_limit(wanted)
    budget = limit - FD_RESERVE
    backlog = max(8, min(BACKLOG, budget // 16))
    budget -= ports * ACCEPT_TURNS * backlog
    waiting = max(1, min(REFUSED_WAITING, budget // 3))
    share = max(16 + FDS_PER_WEB_SESSION * min(1, config.web_sessions), budget - waiting)
    guard = ConnectionGuard(
        min(total + sessions, share), config.connections_per_address, trusted, waiting
    )
    guard.backlog = backlog
    if guard.total < total + sessions:
        _log.warning(
            "the open-files limit (%d) leaves room for %d connections and browser sessions' "
            "pipes, not the %d this room may need: raise it (ulimit -n)%s",
            limit,
            guard.total,
            total + sessions,
            " or lower --web-sessions" if sessions else "",
        )
    return guard


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files toward ``wanted`` (never above the hard
    limit; 1024 is a common soft default, too few for 500 attendees). Returns the soft limit
    in force afterwards."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # macOS refuses more than its kern.maxfilesperproc
            pass
    return soft


class AcceptErrorLog:
    """Out of descriptors, asyncio reports every failed ``accept()`` through the loop's
    exception handler: up to the listen backlog each loop turn, each with a traceback (42 MB
    of log in 15 s). This handler turns them into one line, then one summary a minute while
    it lasts; every other error goes to the handler that was there before."""

    MESSAGE = "socket.accept() out of system resource"
    EVERY = 60.0

    def __init__(self) -> None:
        self.count = 0  # accept errors since the start
        self._unreported = 0
        self._reported_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self)

    def uninstall(self) -> None:
        if self._loop is not None and self._loop.get_exception_handler() is self:
            self._loop.set_exception_handler(self._previous)
        self._loop = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.count += 1
        self._unreported += 1
        now = time.monotonic()
        if self._reported_at is None or now - self._reported_at >= self.EVERY:
            exc = context.get("exception")
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if self._reported_at is None:
                summary = "further failures are summed up once a minute"
            else:
                summary = f"{self._unreported} accepts failed in the last minute"
            _log.error(
                "cannot accept connections (%s); they wait in the listen backlog (%s). "
                "Raise the open-files limit (ulimit -n) or lower the number of attendees",
                reason,
                summary,
            )
            self._reported_at = now
            self._unreported = 0


# --- the application --------------------------------------------------------------------------


def create_app(config: ServerConfig) -> web.Application:
    """The aiohttp application of one classroom; its database opens on startup."""
    classroom = Classroom(config)
    app = web.Application(
        client_max_size=MAX_BODY, middlewares=[classroom.track_connections, _json_errors]
    )
    app[CLASSROOM] = classroom
    app.on_startup.append(classroom.startup)
    app.on_shutdown.append(classroom.shutdown)
    app.on_cleanup.append(classroom.cleanup)
    c = classroom
    app.router.add_get("/", c.page)
    app.router.add_get("/healthz", c.healthz)
    app.router.add_get("/j/{code}", c.join_page)
    app.router.add_get("/api/info", c.info)
    app.router.add_post("/api/join", c.join)
    app.router.add_post("/api/join-code", c.new_join_code)
    app.router.add_get("/api/me", c.me)
    app.router.add_post("/api/events", c.events)
    app.router.add_get("/api/pushes", c.poll_pushes)
    app.router.add_get("/ws/attendee", c.attendee_socket)
    app.router.add_get("/api/attendees/{attendee}/events", c.attendee_events)
    app.router.add_delete("/api/attendees/{attendee}", c.remove_attendee)
    app.router.add_get("/api/lessons", c.lessons_list)
    app.router.add_get("/api/room", c.room)
    app.router.add_get("/api/room/stream", c.room_stream)
    app.router.add_post("/api/push/lesson", c.push_lesson)
    app.router.add_post("/api/push/hint", c.push_hint)
    app.router.add_post("/api/quiz/start", c.quiz_start)
    app.router.add_post("/api/quiz/close", c.quiz_close)
    app.router.add_get("/api/quizzes", c.quiz_list)
    app.router.add_get("/api/quiz/{quiz}/results", c.quiz_results)
    app.router.add_get("/api/quiz/{quiz}/answers", c.quiz_answers)
    app.router.add_post("/api/quiz/{quiz}/answer", c.answer)
    app.router.add_get("/api/export.json", c.export_json)
    app.router.add_get("/api/export.csv", c.export_csv)
    app.router.add_get("/simple/", c.simple_root)
    app.router.add_get("/simple/{project}", c.simple_project)
    app.router.add_get("/simple/{project}/", c.simple_project)
    app.router.add_get("/wheels/{filename}", c.wheel_file)
    return app


CLASSROOM = web.AppKey("classroom", Classroom)


@dataclass
class RunningServer:
    """A classroom listening on a socket; ``url`` is its base URL."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def classroom(self) -> Classroom:
        return self.runner.app[CLASSROOM]

    @property
    def url(self) -> str:
        """Where this machine reaches the server (loopback for a wildcard address)."""
        return _http_url(
            "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host, self.port
        )

    @property
    def join_url(self) -> str:
        return self.classroom.join_url

    async def close(self) -> None:
        try:
            await self.runner.cleanup()
        finally:
            self.classroom.accept_errors.uninstall()


async def start_server(
    config: ServerConfig, host: str = "127.0.0.1", port: int = 8765
) -> RunningServer:
    """Start a classroom on ``host:port`` (port 0: any free port) and return once it listens."""
    runner = web.AppRunner(
        create_app(config),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1.0,
        # aiohttp's default (an hour) would let idle connections pile up; attendees' clients
        # reconnect at once when a kept-alive connection has been closed.
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    await runner.setup()
    classroom = runner.app[CLASSROOM]
    assert runner.server is not None
    classroom.connections.attach(runner.server)
    classroom.accept_errors.install(asyncio.get_running_loop())
    site = web.TCPSite(runner, host, port, backlog=classroom.connections.backlog)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        classroom.accept_errors.uninstall()
        raise
    sockets = listening_sockets(site)
    bound = sockets[0].getsockname()[1] if sockets else port  # the real port when port is 0
    running = RunningServer(runner, host, int(bound))
    running.classroom.base_url = (
        _http_url(config.public_host, running.port) if config.public_host else running.url
    )
    return running


def listening_sockets(site: web.TCPSite) -> list[Any]:
    """The site's listening sockets, after deepening their kernel queue to ``LISTEN_QUEUE``:
    asyncio uses one number for the listen backlog and for the connections it accepts at one
    wake-up, which the descriptor budget keeps small; the queue, which costs no descriptor,
    is set here again so that a burst of connections waits in it instead of being dropped."""
    sockets = list(getattr(site._server, "sockets", None) or [])
    for listening in sockets:
        with contextlib.suppress(OSError):
            twin = socket.socket(fileno=os.dup(listening.fileno()))
            try:
                twin.listen(LISTEN_QUEUE)  # the same socket: only this duplicate's fd closes
            finally:
                twin.close()
    return sockets


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
