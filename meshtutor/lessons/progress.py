"""Learner progress in SQLite, under the user data directory (``MESHTUTOR_HOME`` overrides).

Every change is committed at once (WAL journal), so a crash mid-step loses nothing already
done. A damaged database is moved aside (kept) with a one-line message, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from meshtutor.errors import MeshtutorError
from meshtutor.paths import data_dir

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS lessons (
    lesson_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,              -- in-progress | done
    current_step TEXT,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS steps (
    lesson_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    status TEXT NOT NULL,              -- passed | skipped | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    hints_used INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (lesson_id, step_id)
);
CREATE TABLE IF NOT EXISTS hints (
    lesson_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    hints_used INTEGER NOT NULL,
    PRIMARY KEY (lesson_id, step_id)
);
CREATE TABLE IF NOT EXISTS quiz_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lesson_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    question_id TEXT NOT NULL,
    answer TEXT NOT NULL,              -- JSON
    correct INTEGER NOT NULL,
    score REAL NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass
class LessonProgress:
    lesson_id: str
    status: str = "new"  # new | in-progress | done
    current_step: str | None = None
    steps_done: list[str] = field(default_factory=list)
    hints_used: int = 0
    quiz_best: float | None = None  # best attempt score, 0..1
    quiz_attempts: int = 0
    updated_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lesson": self.lesson_id,
            "status": self.status,
            "current_step": self.current_step,
            "steps_done": self.steps_done,
            "hints_used": self.hints_used,
            "quiz_best": self.quiz_best,
            "quiz_attempts": self.quiz_attempts,
        }


class _LockedConnection:
    """A sqlite3 connection whose statements run one at a time, from any thread."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._lock = threading.Lock()

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> _Rows:
        with self._lock:
            return _Rows(self._db.execute(sql, args).fetchall())

    def executescript(self, sql: str) -> None:
        with self._lock:
            self._db.executescript(sql)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Rows(list[Any]):
    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list[Any]:
        return list(self)


class _Damaged(Exception):
    """The file is a database, but not one meshtutor can trust (``str()`` says why)."""


class _Newer(Exception):
    """The file is a progress database of a newer meshtutor (``str()`` says what to do)."""


def _is_damage(exc: sqlite3.Error | _Damaged) -> bool:
    """Whether SQLite says the file itself is bad, as opposed to a problem with opening it
    (permissions, a full disk, another process holding the lock), which moving the file aside
    would not cure and could cost the learner a good database."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    # SQLITE_CORRUPT (and its extended codes) and SQLITE_NOTADB: "database disk image is
    # malformed", "file is not a database" (https://sqlite.org/rescode.html).
    return isinstance(exc, _Damaged) or name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no detail"
    return line if len(line) <= limit else line[: limit - 1] + "…"


@cache
def _expected_columns() -> dict[str, list[tuple[str, str, int, int]]]:
    """Each table of ``_SCHEMA`` with its columns as ``PRAGMA table_info`` lists them, read from
    the schema itself so that the check can never drift from it."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(_SCHEMA)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        return {t: _columns(db, t) for t in tables if t != "sqlite_sequence"}


def _columns(db: Any, table: str) -> list[tuple[str, str, int, int]]:
    # (name, declared type, NOT NULL, position in the primary key)
    rows = db.execute(f"PRAGMA table_info({table})").fetchall()
    return [
        (name, str(kind).upper(), int(notnull), int(pk)) for _, name, kind, notnull, _, pk in rows
    ]


class Progress:
    """Open (creating if needed) the progress database.

    A damaged file (one SQLite cannot read, whose pages fail ``PRAGMA quick_check``, or whose
    tables are not the ones meshtutor writes) is moved aside, kept under a name with the time
    (``progress.sqlite.corrupt-20261203T101500Z``), and a new database is started; ``notice``
    then says so in one line. Nothing is lost: the old file is still there to inspect or
    recover. When the file cannot be opened at all, or cannot be moved aside, ``Progress()``
    raises ``MeshtutorError`` (the CLI's one-line message and exit code 2) rather than run
    without saving what the learner does.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or data_dir() / "progress.sqlite"
        self.notice: str | None = None
        try:
            self._db = self._open()
        except _Newer as exc:
            raise MeshtutorError(f"cannot use the progress database {self.path}: {exc}") from None
        except (sqlite3.Error, _Damaged) as exc:
            if not _is_damage(exc):
                raise self._cannot_open(exc) from None
            reason = _first_line(str(exc))
            aside = self._move_aside(reason)
            self.notice = (
                f"the progress database {self.path} could not be read ({reason}); it was "
                + (f"moved to {aside}" if aside else "moved aside by another meshtutor")
                + " and a new one started"
            )
            try:
                self._db = self._open()
            except (sqlite3.Error, _Damaged) as again:
                raise self._cannot_open(again) from None
        except OSError as exc:  # the folder cannot be created
            raise self._cannot_open(exc) from None

    def _cannot_open(self, exc: BaseException) -> MeshtutorError:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        name = getattr(exc, "sqlite_errorname", "") or ""
        advice = (
            "another program holds it locked; close it and try again"
            if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
            else "check that you can write there, or set MESHTUTOR_HOME to a folder you can"
        )
        return MeshtutorError(
            f"cannot open the progress database {self.path}: {_first_line(detail)}; {advice}"
        )

    def _move_aside(self, reason: str) -> Path | None:
        """Rename the damaged file (and its WAL, which may hold its last writes) to a name with
        the time; None if another process moved it first."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        number = 1
        while aside.exists():
            number += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{number}")
        try:
            self.path.replace(aside)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MeshtutorError(
                f"the progress database {self.path} could not be read ({reason}) and could not "
                f"be moved aside ({exc.strerror}); move it away yourself, or set "
                "MESHTUTOR_HOME to another folder"
            ) from None
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            # SQLite reads "NAME-wal" beside "NAME": moved together, the old file opens whole.
            with contextlib.suppress(FileNotFoundError):
                side.replace(aside.with_name(aside.name + suffix))
        return aside

    def _open(self) -> _LockedConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The app reads progress on its UI thread and writes it from the sandbox's thread; one
        # connection, serialised by a lock, keeps that safe.
        db = _LockedConnection(
            sqlite3.connect(self.path, isolation_level=None, timeout=5, check_same_thread=False)
        )
        try:
            self._check(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _check(db: _LockedConnection) -> None:
        """Raise ``_Damaged`` unless the file is a sound database with meshtutor's tables (or
        none yet). Costs one read of the file: a progress database is tens of kilobytes."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            # Sound, only newer than this meshtutor: moving it aside would hide the learner's
            # progress from the newer meshtutor they go back to.
            raise _Newer(
                f"it was written by a newer meshtutor (schema version {version}); upgrade "
                "meshtutor, or set MESHTUTOR_HOME to another folder"
            )
        if version < 0:
            raise _Damaged(f"unknown schema version {version}")
        # quick_check reads every page and checks the b-trees and records, without the index
        # cross-checks of integrity_check (https://sqlite.org/pragma.html#pragma_quick_check).
        problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise _Damaged(
                f"page check: {_first_line(str(problem).replace('*** in database main ***', ''))}"
            )
        expected = _expected_columns()
        found = dict(db.execute("SELECT name, type FROM sqlite_schema").fetchall())
        for table, columns in expected.items():
            if table not in found:
                continue  # created below
            if found[table] != "table":
                raise _Damaged(f"{table} is a {found[table]}, not a table")
            actual = _columns(db, table)
            if actual != columns:
                raise _Damaged(
                    f"table {table} has columns ({', '.join(c[0] for c in actual)}), not "
                    f"({', '.join(c[0] for c in columns)})"
                )

    def close(self) -> None:
        self._db.close()

    # --- writing --------------------------------------------------------------------------

    def start(self, lesson_id: str, step_id: str | None) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO lessons (lesson_id, status, current_step, started_at, updated_at) "
            "VALUES (?, 'in-progress', ?, ?, ?) ON CONFLICT(lesson_id) DO UPDATE SET "
            "current_step = COALESCE(excluded.current_step, current_step), updated_at = ?",
            (lesson_id, step_id, now, now, now),
        )

    def at_step(self, lesson_id: str, step_id: str) -> None:
        self.start(lesson_id, step_id)

    def step_result(self, lesson_id: str, step_id: str, status: str) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO steps (lesson_id, step_id, status, attempts, updated_at) "
            "VALUES (?, ?, ?, 1, ?) ON CONFLICT(lesson_id, step_id) DO UPDATE SET "
            "status = CASE WHEN steps.status IN ('passed', 'skipped') AND excluded.status = "
            "'failed' THEN steps.status ELSE excluded.status END, "
            "attempts = steps.attempts + 1, updated_at = excluded.updated_at",
            (lesson_id, step_id, status, now),
        )

    def hint_used(self, lesson_id: str, step_id: str, count: int) -> None:
        self._db.execute(
            "INSERT INTO hints (lesson_id, step_id, hints_used) VALUES (?, ?, ?) "
            "ON CONFLICT(lesson_id, step_id) DO UPDATE SET hints_used = "
            "MAX(hints.hints_used, excluded.hints_used)",
            (lesson_id, step_id, count),
        )

    def hints_for(self, lesson_id: str, step_id: str) -> int:
        row = self._db.execute(
            "SELECT hints_used FROM hints WHERE lesson_id = ? AND step_id = ?", (lesson_id, step_id)
        ).fetchone()
        return int(row[0]) if row else 0

    def quiz_answer(
        self,
        lesson_id: str,
        attempt: int | None,
        question_id: str,
        answer: Any,
        correct: bool,
        score: float,
    ) -> int:
        """Store one answer of a quiz attempt and return the attempt's number. ``attempt``
        None starts a new attempt: its number is allocated by the same statement that stores
        its first answer, so quizzes taken at once (two terminals, the app and ``meshtutor
        quiz``) never share a number."""
        values = (question_id, json.dumps(answer), int(correct), score, time.time())
        if attempt is not None:
            self._db.execute(
                "INSERT INTO quiz_attempts (lesson_id, attempt, question_id, answer, correct, "
                "score, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (lesson_id, attempt, *values),
            )
            return attempt
        # One statement is one transaction: SQLite takes the write lock before the SELECT
        # reads MAX, so no other writer can take the same number in between (a separate
        # SELECT then INSERT stored 12 concurrent quizzes as 11 attempts).
        row = self._db.execute(
            "INSERT INTO quiz_attempts (lesson_id, attempt, question_id, answer, correct, "
            "score, at) SELECT ?, COALESCE(MAX(attempt), 0) + 1, ?, ?, ?, ?, ? "
            "FROM quiz_attempts WHERE lesson_id = ? RETURNING attempt",
            (lesson_id, *values, lesson_id),
        ).fetchone()
        return int(row[0])

    def finish(self, lesson_id: str) -> None:
        now = time.time()
        self.start(lesson_id, None)
        self._db.execute(
            "UPDATE lessons SET status = 'done', finished_at = ?, updated_at = ? "
            "WHERE lesson_id = ?",
            (now, now, lesson_id),
        )

    def reset(self, lesson_id: str | None = None) -> int:
        """Forget one lesson's progress, or everything; returns how many lessons were reset."""
        where, args = ("WHERE lesson_id = ?", (lesson_id,)) if lesson_id else ("", ())
        count = self._db.execute(f"SELECT count(*) FROM lessons {where}", args).fetchone()[0]
        for table in ("lessons", "steps", "hints", "quiz_attempts"):
            self._db.execute(f"DELETE FROM {table} {where}", args)
        return int(count)

    # --- reading --------------------------------------------------------------------------

    def lesson(self, lesson_id: str) -> LessonProgress:
        row = self._db.execute(
            "SELECT status, current_step, updated_at FROM lessons WHERE lesson_id = ?", (lesson_id,)
        ).fetchone()
        result = LessonProgress(lesson_id)
        if row:
            result.status, result.current_step, result.updated_at = row
        result.steps_done = [
            r[0]
            for r in self._db.execute(
                "SELECT step_id FROM steps WHERE lesson_id = ? AND status IN ('passed', 'skipped') "
                "ORDER BY updated_at",
                (lesson_id,),
            )
        ]
        result.hints_used = int(
            self._db.execute(
                "SELECT COALESCE(SUM(hints_used), 0) FROM hints WHERE lesson_id = ?", (lesson_id,)
            ).fetchone()[0]
        )
        scores = self._db.execute(
            "SELECT attempt, AVG(score) FROM quiz_attempts WHERE lesson_id = ? GROUP BY attempt",
            (lesson_id,),
        ).fetchall()
        if scores:
            result.quiz_attempts = len(scores)
            result.quiz_best = max(s for _, s in scores)
        return result

    def quiz_history(self, lesson_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT attempt, question_id, answer, correct, score, at FROM quiz_attempts "
            "WHERE lesson_id = ? ORDER BY id",
            (lesson_id,),
        ).fetchall()
        return [
            {
                "attempt": a,
                "question": q,
                "answer": json.loads(ans),
                "correct": bool(c),
                "score": s,
                "at": at,
            }
            for a, q, ans, c, s, at in rows
        ]
