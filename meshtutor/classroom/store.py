"""The classroom's durable state: one SQLite file (WAL) with a single writer thread.

Every write goes through the writer, which takes all the jobs waiting in its queue, runs them
in one transaction (each inside its own savepoint, so one bad job does not undo the others),
commits with ``synchronous=FULL`` and only then resolves the jobs' futures. The server answers
an HTTP request after its future resolves, so anything it ever acknowledged is on disk: a
restarted or killed server loses nothing it accepted. Grouping the commits is what keeps 200
attendees × 1 event/s cheap: one fsync per batch of requests instead of one per request.

Reads run on worker threads with their own connections; WAL lets them proceed while the
writer commits.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from meshtutor.classroom.files import DataDirError, check_private
from meshtutor.classroom.protocol import EventIn, new_join_code, new_token

T = TypeVar("T")

SCHEMA_VERSION = 2  # 2: attendees.removed_at
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attendees (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    joined_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    lesson TEXT,                        -- where the attendee is, as of its latest event
    step TEXT,
    position_at REAL,
    last_progress_at REAL NOT NULL,     -- latest lesson start, step passed or lesson done
    removed_at REAL                     -- the instructor removed them (their events stay)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    attendee INTEGER NOT NULL REFERENCES attendees(id),
    client_event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    lesson TEXT NOT NULL,
    step TEXT,
    detail TEXT NOT NULL,               -- JSON
    client_at REAL,
    at REAL NOT NULL,
    UNIQUE (attendee, client_event_id)
);
CREATE TABLE IF NOT EXISTS steps (
    attendee INTEGER NOT NULL,
    lesson TEXT NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,                -- started | failed | passed
    attempts INTEGER NOT NULL DEFAULT 0,
    hints INTEGER NOT NULL DEFAULT 0,
    last_failure TEXT,
    last_failure_at REAL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (attendee, lesson, step)
);
CREATE TABLE IF NOT EXISTS lessons (
    attendee INTEGER NOT NULL,
    lesson TEXT NOT NULL,
    status TEXT NOT NULL,               -- started | done
    started_at REAL NOT NULL,
    done_at REAL,
    PRIMARY KEY (attendee, lesson)
);
CREATE TABLE IF NOT EXISTS self_quiz (
    attendee INTEGER NOT NULL,
    lesson TEXT NOT NULL,
    question TEXT NOT NULL,
    answers INTEGER NOT NULL,
    best_score REAL NOT NULL,
    PRIMARY KEY (attendee, lesson, question)
);
CREATE TABLE IF NOT EXISTS pushes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target INTEGER,                     -- NULL: everyone
    kind TEXT NOT NULL,                 -- lesson | hint | quiz | quiz_closed
    payload TEXT NOT NULL,              -- JSON
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS quizzes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lesson TEXT NOT NULL,
    question TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,                -- open | closed
    correct TEXT NOT NULL,              -- JSON: option indexes, or the predict choice
    started_at REAL NOT NULL,
    closed_at REAL
);
CREATE TABLE IF NOT EXISTS quiz_answers (
    quiz INTEGER NOT NULL REFERENCES quizzes(id),
    attendee INTEGER NOT NULL REFERENCES attendees(id),
    answer TEXT NOT NULL,               -- JSON
    correct INTEGER NOT NULL,
    score REAL NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (quiz, attendee)
);
"""
_TABLES = (
    "meta",
    "attendees",
    "events",
    "steps",
    "lessons",
    "self_quiz",
    "pushes",
    "quizzes",
    "quiz_answers",
)


class StoreError(Exception):
    """The database cannot be used (unknown schema, unreadable file)."""


class OverBudget(Exception):
    """``add_events``: the event at ``index`` would take its attendee past its budget; none
    of the batch was stored."""

    def __init__(self, index: int) -> None:
        super().__init__(f"events[{index}] is over the budget")
        self.index = index


@dataclass(frozen=True)
class RoomMeta:
    """What identifies a classroom across restarts: the same join code and instructor token
    keep working, so attendees and the instructor's page reconnect without new credentials."""

    room_id: str
    title: str
    join_code: str
    instructor_token: str
    current_lesson: str | None


@dataclass(frozen=True)
class AttendeeRecord:
    id: int
    name: str
    token_hash: str
    joined_at: float
    removed_at: float | None = None


@dataclass(frozen=True)
class Push:
    id: int
    target: int | None
    kind: str
    payload: dict[str, Any] = field(hash=False)
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "at": self.at, **self.payload}


@dataclass(frozen=True)
class QuizRecord:
    id: int
    lesson: str
    question: str
    type: str
    state: str
    correct: Any
    started_at: float
    closed_at: float | None


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=30000")
    return db


class _Writer(threading.Thread):
    """The only connection that writes. Jobs queued while a transaction commits form the next
    group; a job's future resolves after the COMMIT that contains it."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="classroom-sqlite-writer", daemon=True)
        self._path = path
        self._queue: queue.SimpleQueue[
            tuple[Callable[[sqlite3.Connection], Any], Future[Any]] | None
        ]
        self._queue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start_and_wait(self) -> None:
        self.start()
        self._ready.wait()
        if self._error is not None:
            raise StoreError(str(self._error))

    def submit(self, job: Callable[[sqlite3.Connection], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((job, future))
        return future

    def stop(self) -> None:
        self._queue.put(None)
        self.join()

    def run(self) -> None:
        try:
            db = _connect(self._path)
            db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            group = [item]
            # Everything that arrived meanwhile shares this transaction and its fsync.
            while len(group) < 500:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
            self._run_group(db, group)
        db.close()

    @staticmethod
    def _run_group(
        db: sqlite3.Connection,
        group: list[tuple[Callable[[sqlite3.Connection], Any], Future[Any]]],
    ) -> None:
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for job, future in group:
                db.execute("SAVEPOINT job")
                try:
                    value = job(db)
                except Exception as exc:
                    db.execute("ROLLBACK TO job")
                    db.execute("RELEASE job")
                    results.append((future, None, exc))
                else:
                    db.execute("RELEASE job")
                    results.append((future, value, None))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            results = [(future, None, exc) for _, future in group]
        for future, value, error in results:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)


class ClassroomStore:
    """Open (creating if needed) the classroom database at ``path``.

    ``title`` renames the room when given. Call ``start()`` before any write and ``close()``
    at the end; the writer drains its queue before closing.
    """

    def __init__(self, path: Path, *, title: str | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # In a shared directory (1777) another user could have put the file there first,
        # with an instructor token of their choosing, or its -wal with rows of theirs.
        for part in ("", "-wal", "-shm", "-journal"):
            try:
                check_private(path.with_name(path.name + part))
            except DataDirError as exc:
                raise StoreError(str(exc)) from None
        # The file holds the instructor token: readable by its owner only.
        if not path.exists():
            path.touch(mode=0o600)
        try:
            db = _connect(path)
            db.execute("PRAGMA journal_mode=WAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, SCHEMA_VERSION):
                raise StoreError(
                    f"{path} has classroom schema version {version}, this meshtutor knows "
                    f"{SCHEMA_VERSION}; use another --data directory"
                )
            db.executescript(_SCHEMA)
            if version == 1:  # a room from before removals: its table lacks the column
                db.execute("ALTER TABLE attendees ADD COLUMN removed_at REAL")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            for table in _TABLES:
                db.execute(f"SELECT count(*) FROM {table}").fetchone()
            self.meta = self._init_meta(db, title)
            db.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a usable classroom database: {exc}") from None
        self._writer = _Writer(path)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._started = False

    @staticmethod
    def _init_meta(db: sqlite3.Connection, title: str | None) -> RoomMeta:
        values = dict(db.execute("SELECT key, value FROM meta").fetchall())
        defaults = {
            "room_id": new_token()[:12],
            "title": "meshtutor classroom",
            "join_code": new_join_code(),
            "instructor_token": new_token(),
        }
        if title:
            values["title"] = title
        for key, value in defaults.items():
            values.setdefault(key, value)
        db.execute("BEGIN")
        for key, value in values.items():
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        db.execute("COMMIT")
        return RoomMeta(
            room_id=values["room_id"],
            title=values["title"],
            join_code=values["join_code"],
            instructor_token=values["instructor_token"],
            current_lesson=values.get("current_lesson"),
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if not self._started:
            self._writer.start_and_wait()
            self._started = True

    def close(self) -> None:
        if self._started:
            self._writer.stop()
            self._started = False
        with self._readers_lock:
            for db in self._readers:
                db.close()
            self._readers.clear()
        self._local = threading.local()

    # --- plumbing -------------------------------------------------------------------------

    async def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` on the writer; returns once the transaction that ran it is committed."""
        return await asyncio.wrap_future(self._writer.submit(job))

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = _connect(self.path)
            db.execute("PRAGMA query_only=ON")
            self._local.db = db
            with self._readers_lock:
                self._readers.append(db)
        return db

    def read_sync(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return job(self._reader())

    async def read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``job`` on a worker thread (never on the event loop)."""
        return await asyncio.to_thread(self.read_sync, job)

    # --- writes ---------------------------------------------------------------------------

    async def set_meta(self, key: str, value: str) -> None:
        def job(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self.write(job)

    async def add_attendee(self, name: str, token_hash: str) -> AttendeeRecord:
        now = time.time()

        def job(db: sqlite3.Connection) -> AttendeeRecord:
            cur = db.execute(
                "INSERT INTO attendees (name, token_hash, joined_at, last_seen, "
                "last_progress_at) VALUES (?, ?, ?, ?, ?)",
                (name, token_hash, now, now, now),
            )
            assert cur.lastrowid is not None
            return AttendeeRecord(cur.lastrowid, name, token_hash, now)

        return await self.write(job)

    async def remove_attendee(self, attendee: int) -> bool:
        """Mark an attendee removed (their token stops working; their events, progress and
        answers stay for the exports). False when there is no such attendee in the room."""
        now = time.time()

        def job(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE attendees SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
                (now, attendee),
            )
            return cur.rowcount == 1

        return await self.write(job)

    async def add_events(
        self,
        attendee: int,
        events: Sequence[EventIn],
        cost: Callable[[EventIn], int] = lambda _event: 0,
        budget: float = float("inf"),
    ) -> tuple[int, int, int]:
        """Store a batch of events and fold them into the progress tables. Returns (accepted,
        duplicates, cost of the accepted): an event whose client id this attendee already
        sent is ignored, and costs nothing. ``OverBudget`` (nothing stored) when the new
        events would cost more than ``budget``."""
        now = time.time()

        def job(db: sqlite3.Connection) -> tuple[int, int, int]:
            accepted = stored = 0
            for index, event in enumerate(events):
                cur = db.execute(
                    "INSERT OR IGNORE INTO events (attendee, client_event_id, kind, lesson, "
                    "step, detail, client_at, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        attendee,
                        event.client_id,
                        event.kind,
                        event.lesson,
                        event.step,
                        json.dumps(dict(event.detail), ensure_ascii=False),
                        event.at,
                        now,
                    ),
                )
                if cur.rowcount:
                    accepted += 1
                    stored += cost(event)
                    if stored > budget:  # the job's savepoint undoes the batch
                        raise OverBudget(index)
                    _fold(db, attendee, event, now)
            return accepted, len(events) - accepted, stored

        return await self.write(job)

    async def touch(self, seen: dict[int, float]) -> None:
        """Record when attendees were last heard from (batched by the server, not per request)."""
        rows = list(seen.items())

        def job(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE attendees SET last_seen = MAX(last_seen, ?) WHERE id = ?",
                [(at, attendee) for attendee, at in rows],
            )

        await self.write(job)

    async def add_push(self, target: int | None, kind: str, payload: dict[str, Any]) -> Push:
        now = time.time()
        text = json.dumps(payload, ensure_ascii=False)

        def job(db: sqlite3.Connection) -> Push:
            cur = db.execute(
                "INSERT INTO pushes (target, kind, payload, at) VALUES (?, ?, ?, ?)",
                (target, kind, text, now),
            )
            assert cur.lastrowid is not None
            return Push(cur.lastrowid, target, kind, payload, now)

        return await self.write(job)

    async def add_pushes(
        self, targets: Iterable[int | None], kind: str, payload: dict[str, Any]
    ) -> list[Push]:
        now = time.time()
        text = json.dumps(payload, ensure_ascii=False)
        wanted = list(targets)

        def job(db: sqlite3.Connection) -> list[Push]:
            out = []
            for target in wanted:
                cur = db.execute(
                    "INSERT INTO pushes (target, kind, payload, at) VALUES (?, ?, ?, ?)",
                    (target, kind, text, now),
                )
                assert cur.lastrowid is not None
                out.append(Push(cur.lastrowid, target, kind, payload, now))
            return out

        return await self.write(job)

    async def open_quiz(self, lesson: str, question: str, qtype: str, correct: Any) -> QuizRecord:
        """Start a live quiz; one at a time, so an open one is closed first."""
        now = time.time()

        def job(db: sqlite3.Connection) -> QuizRecord:
            db.execute(
                "UPDATE quizzes SET state = 'closed', closed_at = ? WHERE state = 'open'", (now,)
            )
            cur = db.execute(
                "INSERT INTO quizzes (lesson, question, type, state, correct, started_at) "
                "VALUES (?, ?, ?, 'open', ?, ?)",
                (lesson, question, qtype, json.dumps(correct), now),
            )
            assert cur.lastrowid is not None
            return QuizRecord(cur.lastrowid, lesson, question, qtype, "open", correct, now, None)

        return await self.write(job)

    async def close_quiz(self, quiz: int) -> None:
        now = time.time()

        def job(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE quizzes SET state = 'closed', closed_at = ? WHERE id = ? AND state = 'open'",
                (now, quiz),
            )

        await self.write(job)

    async def add_answer(
        self, quiz: int, attendee: int, answer: Any, correct: bool, score: float
    ) -> str:
        """Store a live-quiz answer. Answers are final: the same answer again is accepted as a
        re-send ("same"), a different one is refused ("different"), a closed quiz "closed"."""
        now = time.time()
        text = json.dumps(answer)

        def job(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT state FROM quizzes WHERE id = ?", (quiz,)).fetchone()
            if row is None or row[0] != "open":
                return "closed"
            old = db.execute(
                "SELECT answer FROM quiz_answers WHERE quiz = ? AND attendee = ?", (quiz, attendee)
            ).fetchone()
            if old is not None:
                return "same" if old[0] == text else "different"
            db.execute(
                "INSERT INTO quiz_answers (quiz, attendee, answer, correct, score, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (quiz, attendee, text, int(correct), score, now),
            )
            return "stored"

        return await self.write(job)

    # --- reads (run with ``read``) ----------------------------------------------------------

    @staticmethod
    def attendees(db: sqlite3.Connection) -> list[AttendeeRecord]:
        return [
            AttendeeRecord(*row)
            for row in db.execute(
                "SELECT id, name, token_hash, joined_at, removed_at FROM attendees ORDER BY id"
            )
        ]

    @staticmethod
    def pushes(db: sqlite3.Connection) -> list[Push]:
        return [
            Push(pid, target, kind, json.loads(payload), at)
            for pid, target, kind, payload, at in db.execute(
                "SELECT id, target, kind, payload, at FROM pushes ORDER BY id"
            )
        ]

    @staticmethod
    def quizzes(db: sqlite3.Connection) -> list[QuizRecord]:
        return [
            QuizRecord(qid, lesson, question, qtype, state, json.loads(correct), started, closed)
            for qid, lesson, question, qtype, state, correct, started, closed in db.execute(
                "SELECT id, lesson, question, type, state, correct, started_at, closed_at "
                "FROM quizzes ORDER BY id"
            )
        ]

    @staticmethod
    def count(db: sqlite3.Connection, table: str) -> int:
        assert table in _TABLES
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _fold(db: sqlite3.Connection, attendee: int, event: EventIn, now: float) -> None:
    """Update the progress tables for one new event. Events can arrive late and out of order
    (an attendee offline for a while re-sends its queue), so every update is order-proof: a
    passed step stays passed, times only move forward, the position follows the newest event."""
    at = min(event.at, now) if event.at is not None else now
    lesson, step, kind = event.lesson, event.step, event.kind
    db.execute(
        "INSERT INTO lessons (attendee, lesson, status, started_at) VALUES (?, ?, 'started', ?) "
        "ON CONFLICT DO UPDATE SET started_at = MIN(started_at, excluded.started_at)",
        (attendee, lesson, at),
    )
    db.execute(
        "UPDATE attendees SET lesson = ?, step = ?, position_at = ? "
        "WHERE id = ? AND COALESCE(position_at, 0) <= ?",
        (lesson, step, at, attendee, at),
    )
    if kind in ("step_passed", "lesson_started", "lesson_done"):
        db.execute(
            "UPDATE attendees SET last_progress_at = MAX(last_progress_at, ?) WHERE id = ?",
            (at, attendee),
        )
    detail = event.detail
    if kind == "lesson_done":
        db.execute(
            "UPDATE lessons SET status = 'done', done_at = MAX(COALESCE(done_at, 0), ?) "
            "WHERE attendee = ? AND lesson = ?",
            (at, attendee, lesson),
        )
    elif kind == "quiz_answer":
        score = float(detail.get("score", 1.0 if detail.get("correct") else 0.0))
        db.execute(
            "INSERT INTO self_quiz (attendee, lesson, question, answers, best_score) "
            "VALUES (?, ?, ?, 1, ?) ON CONFLICT DO UPDATE SET answers = answers + 1, "
            "best_score = MAX(best_score, excluded.best_score)",
            (attendee, lesson, detail["question"], score),
        )
    elif kind == "step_started" or (kind == "hint_used" and "count" not in detail):
        hints = 1 if kind == "hint_used" else 0
        db.execute(
            "INSERT INTO steps (attendee, lesson, step, state, hints, updated_at) "
            "VALUES (?, ?, ?, 'started', ?, ?) ON CONFLICT DO UPDATE SET "
            "hints = hints + excluded.hints, updated_at = MAX(updated_at, excluded.updated_at)",
            (attendee, lesson, step, hints, at),
        )
    elif kind == "hint_used":
        db.execute(
            "INSERT INTO steps (attendee, lesson, step, state, hints, updated_at) "
            "VALUES (?, ?, ?, 'started', ?, ?) ON CONFLICT DO UPDATE SET "
            "hints = MAX(hints, excluded.hints), updated_at = MAX(updated_at, excluded.updated_at)",
            (attendee, lesson, step, int(detail["count"]), at),
        )
    elif kind == "step_passed":
        db.execute(
            "INSERT INTO steps (attendee, lesson, step, state, attempts, updated_at) "
            "VALUES (?, ?, ?, 'passed', 1, ?) ON CONFLICT DO UPDATE SET state = 'passed', "
            "attempts = attempts + 1, updated_at = MAX(updated_at, excluded.updated_at)",
            (attendee, lesson, step, at),
        )
    elif kind == "step_failed":
        message = detail.get("message")
        db.execute(
            "INSERT INTO steps (attendee, lesson, step, state, attempts, last_failure, "
            "last_failure_at, updated_at) VALUES (?, ?, ?, 'failed', 1, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET "
            "state = CASE WHEN state = 'passed' THEN 'passed' ELSE 'failed' END, "
            "attempts = attempts + 1, "
            "last_failure = CASE WHEN excluded.last_failure_at >= COALESCE(last_failure_at, 0) "
            "THEN COALESCE(excluded.last_failure, last_failure) ELSE last_failure END, "
            "last_failure_at = MAX(COALESCE(last_failure_at, 0), excluded.last_failure_at), "
            "updated_at = MAX(updated_at, excluded.updated_at)",
            (attendee, lesson, step, message, at, at),
        )


def secure_dir(path: Path) -> None:
    """Create ``path`` readable by its owner only (it holds the instructor token). A directory
    that exists is the user's: its mode is left alone (a shared 1777 directory keeps its
    sticky bit); the database file in it is created 0600 whatever the directory allows."""
    if not path.is_dir():
        # mkdir's mode is filtered by the umask, which can only remove bits: never wider.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
