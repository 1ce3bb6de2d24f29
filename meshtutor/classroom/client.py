"""The attendee's side of a classroom: join, report progress, receive pushes.

Venue Wi-Fi drops, laptops sleep and servers restart, so nothing here assumes the network:

- ``record()`` writes each event to a local SQLite outbox first (it never touches the
  network), with a client id the server uses to drop duplicates;
- a background task (``start()``) sends the outbox in batches whenever the server answers,
  backing off while it does not, and deletes an event only after the server acknowledged it;
- the attendee token is kept beside the outbox, so a restarted app rejoins as the same
  attendee instead of appearing twice in the instructor's grid.

Pure asyncio + aiohttp; no UI. ``on_push`` is called for each lesson push, hint and live quiz.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from meshtutor.classroom.protocol import (
    JOIN_ALPHABET,
    MAX_BODY,
    PayloadError,
    normalize_join_code,
    parse_event,
    validate_name,
)
from meshtutor.errors import MeshtutorError

_log = logging.getLogger(__name__)

PushHandler = Callable[[dict[str, Any]], Awaitable[None] | None]

BATCH = 20  # events per request: half the server's burst, so a backlog drains at full rate
RETRY_MIN = 0.25  # seconds before the first retry after a failure …
RETRY_MAX = 5.0  # … doubling up to this, so a returning server is noticed within seconds
POLL_WAIT = 20.0  # seconds a push long-poll waits on the server

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identity (
    server TEXT PRIMARY KEY,            -- the server's base URL
    room TEXT NOT NULL,
    attendee INTEGER NOT NULL,
    name TEXT NOT NULL,
    token TEXT NOT NULL,
    code TEXT NOT NULL,
    since INTEGER NOT NULL DEFAULT 0    -- the last push received
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    server TEXT NOT NULL,
    client_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,                -- JSON, as sent
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    client_id TEXT PRIMARY KEY,
    server TEXT NOT NULL,
    event TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""


class ClassroomError(MeshtutorError):
    """The classroom cannot be joined (wrong code, bad URL, full room)."""


class ClassroomOffline(ClassroomError):
    """The server cannot be reached now; queued events wait for it."""


class ClassroomRemoved(ClassroomError):
    """The instructor removed this attendee from the room: the client stops (it does not
    join again as someone new); queued events stay in the outbox."""


def _check_removed(status: int, body: dict[str, Any], base: str) -> None:
    if status == 403 and body.get("removed") is True:
        raise ClassroomRemoved(f"{base}: {body.get('error')}")


def parse_join_url(url: str, code: str | None = None) -> tuple[str, str | None]:
    """``http://host:port/j/CODE`` (as ``classroom serve`` prints it) → (base URL, code).
    A URL without the code needs ``code``."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClassroomError(f"{url!r} is not a classroom URL; expected http://HOST:PORT/j/CODE")
    base = f"{parts.scheme}://{parts.netloc}"
    segments = [s for s in parts.path.split("/") if s]
    found = segments[1] if len(segments) == 2 and segments[0] == "j" else None
    wanted = code if code is not None else found
    if wanted is not None:
        wanted = normalize_join_code(wanted)
        if not wanted or any(c not in JOIN_ALPHABET for c in wanted):
            raise ClassroomError(f"{wanted!r} is not a join code (letters and digits)")
    return base, wanted


class _Local:
    """The client's SQLite file: identity per server and the outbox. Statements are
    serialised by a lock, so ``record()`` may be called from any thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch(mode=0o600)  # it holds attendee tokens
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives the app crashing (what matters for a laptop); only a
            # power cut could lose the last events, which FULL would cost an fsync each for.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ClassroomClient:
    """An attendee of the classroom at ``url`` (as printed by ``classroom serve``).

    ``state`` is the client's SQLite file (default: ``classroom.sqlite`` in the meshtutor
    data directory); ``code`` the join code when ``url`` does not carry it.
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        code: str | None = None,
        state: Path | None = None,
        on_push: PushHandler | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base, self.code = parse_join_url(url, code)
        try:
            self.name = validate_name(name)
        except PayloadError as exc:
            raise ClassroomError(f"--name: {exc.message}") from None
        if state is None:
            from meshtutor.paths import data_dir

            state = data_dir() / "classroom.sqlite"
        self._local = _Local(state)
        self.on_push = on_push
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._join_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.online = False
        self.attendee: int | None = None
        self.token: str | None = None
        self.since = 0
        row = self._identity()
        if row is not None:
            self.attendee, self.token, self.since = row[0], row[1], row[2]

    # --- identity -------------------------------------------------------------------------

    def _identity(self) -> tuple[int, str, int] | None:
        rows = self._local.execute(
            "SELECT attendee, token, since FROM identity WHERE server = ? AND name = ?",
            (self.base, self.name),
        )
        return (int(rows[0][0]), str(rows[0][1]), int(rows[0][2])) if rows else None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                self.base, timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def join(self) -> int:
        """Join the room, or confirm the saved identity still holds (a restarted app stays
        the same attendee). Returns the attendee id; raises ``ClassroomOffline`` when the
        server cannot be reached and ``ClassroomError`` when it refuses."""
        if self._join_lock is None:
            self._join_lock = asyncio.Lock()
        async with self._join_lock:
            return await self._join()

    async def _join(self) -> int:
        http = await self._http()
        try:
            if self.token is not None:
                async with http.get("/api/me", headers=self._auth()) as response:
                    if response.status == 200:
                        self.online = True
                        assert self.attendee is not None
                        return self.attendee
                    _check_removed(response.status, await _json_body(response), self.base)
                    if response.status != 401:
                        raise ClassroomOffline(f"{self.base} answered {response.status}")
                # 401: the server forgot us (a new room in the same place): join afresh.
            if self.code is None:
                raise ClassroomError(
                    f"joining {self.base} needs the join code: use the URL with /j/CODE"
                )
            payload = {"code": self.code, "name": self.name}
            async with http.post("/api/join", json=payload) as response:
                body = await _json_body(response)
                if response.status != 200:
                    raise ClassroomError(f"{self.base} refused to join: {body.get('error')}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.online = False
            raise ClassroomOffline(f"cannot reach the classroom at {self.base}: {exc}") from None
        self.attendee, self.token, self.since = int(body["attendee"]), str(body["token"]), 0
        self._local.execute(
            "INSERT INTO identity (server, room, attendee, name, token, code, since) "
            "VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT(server) DO UPDATE SET room = "
            "excluded.room, attendee = excluded.attendee, name = excluded.name, "
            "token = excluded.token, code = excluded.code, since = 0",
            (self.base, body["room"], self.attendee, self.name, self.token, self.code),
        )
        self.online = True
        return self.attendee

    # --- progress -------------------------------------------------------------------------

    def record(
        self,
        kind: str,
        lesson: str,
        step: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> str:
        """Queue one progress event and return its client id. Never blocks on the network;
        the background sender delivers it. Raises ``ValueError`` for an invalid event."""
        client_id = uuid.uuid4().hex
        event = parse_event(
            {
                "id": client_id,
                "kind": kind,
                "lesson": lesson,
                "step": step,
                "detail": detail or {},
                "at": time.time(),
            }
        )
        self._local.execute(
            "INSERT INTO outbox (server, client_id, event, created_at) VALUES (?, ?, ?, ?)",
            (self.base, client_id, json.dumps(event.to_json()), time.time()),
        )
        if self._loop is not None:  # record() may run on another thread (a UI worker)
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._wake.set)
        return client_id

    def pending(self) -> int:
        """Events recorded but not yet acknowledged by the server."""
        rows = self._local.execute("SELECT count(*) FROM outbox WHERE server = ?", (self.base,))
        return int(rows[0][0])

    async def flush(self) -> int:
        """Send every queued event now. Returns how many the server acknowledged; raises
        ``ClassroomOffline`` (events stay queued) when it cannot be reached."""
        delivered = 0
        while True:
            rows = self._local.execute(
                "SELECT seq, event FROM outbox WHERE server = ? ORDER BY seq LIMIT ?",
                (self.base, BATCH),
            )
            if not rows:
                return delivered
            delivered += await self._send([(int(seq), json.loads(text)) for seq, text in rows])

    async def _send(self, batch: list[tuple[int, dict[str, Any]]]) -> int:
        if self.token is None:
            await self.join()
        # Keep each request under the server's body limit (details can be a few KiB).
        while len(json.dumps({"events": [e for _, e in batch]}).encode()) > MAX_BODY - 256:
            batch = batch[: max(1, len(batch) // 2)]
        http = await self._http()
        try:
            async with http.post(
                "/api/events", json={"events": [e for _, e in batch]}, headers=self._auth()
            ) as response:
                body = await _json_body(response)
                status = response.status
                retry_after = response.headers.get("Retry-After", "1")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.online = False
            raise ClassroomOffline(f"cannot reach the classroom at {self.base}: {exc}") from None
        self.online = True
        _check_removed(status, body, self.base)
        if status == 200:
            self._delete([seq for seq, _ in batch])
            return len(batch)
        if status == 401:
            self.token = None  # the server no longer knows us: join again, then re-send
            await self.join()
            return 0
        if status == 429:
            await asyncio.sleep(min(10.0, float(retry_after or 1)))
            return 0
        if status in (400, 413):
            # The server will never take this event: keep it aside (for a bug report) rather
            # than retrying forever and blocking everything queued after it.
            index = body.get("index")
            bad = batch[index] if isinstance(index, int) and 0 <= index < len(batch) else batch[0]
            self._local.execute(
                "INSERT OR REPLACE INTO rejected (client_id, server, event, reason, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (bad[1]["id"], self.base, json.dumps(bad[1]), str(body.get("error")), time.time()),
            )
            self._delete([bad[0]])
            return 0
        raise ClassroomOffline(f"{self.base} answered {status}: {body.get('error')}")

    def _delete(self, seqs: list[int]) -> None:
        marks = ",".join("?" * len(seqs))
        self._local.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", tuple(seqs))

    # --- pushes and live quizzes ----------------------------------------------------------

    async def poll_pushes(self, wait: float = 0.0) -> list[dict[str, Any]]:
        """Pushes addressed to everyone or to this attendee since the last call (waiting up to
        ``wait`` seconds for one). Each is delivered once, also across restarts."""
        if self.token is None:
            await self.join()
        http = await self._http()
        try:
            async with http.get(
                "/api/pushes",
                params={"since": str(self.since), "wait": str(wait)},
                headers=self._auth(),
                timeout=aiohttp.ClientTimeout(total=wait + self._timeout),
            ) as response:
                body = await _json_body(response)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.online = False
            raise ClassroomOffline(f"cannot reach the classroom at {self.base}: {exc}") from None
        self.online = True
        _check_removed(status, body, self.base)
        if status == 401:
            self.token = None
            await self.join()
            return []
        if status != 200:
            raise ClassroomOffline(f"{self.base} answered {status}: {body.get('error')}")
        pushes: list[dict[str, Any]] = body["pushes"]
        if pushes:
            self.since = int(body["next"])
            self._local.execute(
                "UPDATE identity SET since = ? WHERE server = ?", (self.since, self.base)
            )
        return pushes

    async def answer_quiz(self, quiz: int, answer: Any) -> dict[str, Any]:
        """Answer a live quiz: option indexes (choice, multiple) or the predicted output."""
        if self.token is None:
            await self.join()
        http = await self._http()
        try:
            async with http.post(
                f"/api/quiz/{quiz}/answer", json={"answer": answer}, headers=self._auth()
            ) as response:
                body = await _json_body(response)
                if response.status != 200:
                    raise ClassroomError(f"the answer was refused: {body.get('error')}")
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ClassroomOffline(f"cannot reach the classroom at {self.base}: {exc}") from None

    # --- running in the background --------------------------------------------------------

    async def start(self) -> None:
        """Run the sender and the push listener until ``close()``; they survive the server
        going away and coming back."""
        if not self._tasks:
            self._loop = asyncio.get_running_loop()
            self._tasks = [
                asyncio.create_task(self._deliver_forever(), name="classroom-sender"),
                asyncio.create_task(self._listen_forever(), name="classroom-pushes"),
            ]

    async def _deliver_forever(self) -> None:
        delay = RETRY_MIN
        while True:
            self._wake.clear()
            try:
                await self.flush()
                delay = RETRY_MIN
                await self._wake.wait()
            except ClassroomRemoved:
                return
            except ClassroomOffline:
                await asyncio.sleep(delay)  # new events do not end the back-off
                delay = min(RETRY_MAX, delay * 2)
            except ClassroomError:
                await asyncio.sleep(RETRY_MAX)  # e.g. a wrong code: nothing to do but wait

    async def _listen_forever(self) -> None:
        delay = RETRY_MIN
        while True:
            try:
                pushes = await self.poll_pushes(wait=POLL_WAIT)
                delay = RETRY_MIN
            except ClassroomRemoved:
                return
            except ClassroomError:
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            for push in pushes:
                if self.on_push is not None:
                    try:
                        result = self.on_push(push)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        # A failing handler must not stop the pushes that follow.
                        _log.exception("the classroom push handler failed on %r", push)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._local.close()

    async def __aenter__(self) -> ClassroomClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _json_body(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {"error": f"HTTP {response.status}"}
    return body if isinstance(body, dict) else {"error": f"HTTP {response.status}"}
