"""Learner progress in SQLite, under the user data directory (``MESHTUTOR_HOME`` overrides).

Every change is committed at once (WAL journal), so a crash mid-step loses nothing already
done. A database that cannot be read is moved aside with a message, never a crash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class Progress:
    """Open (creating if needed) the progress database. ``notice`` holds a message when a
    damaged database was moved aside."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or data_dir() / "progress.sqlite"
        self.notice: str | None = None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.unlink()
            self.notice = (
                f"the progress database {self.path} could not be read ({exc}); it "
                f"was moved to {aside} and a new one started"
            )
            self._db = self._open()

    def _open(self) -> _LockedConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The app reads progress on its UI thread and writes it from the sandbox's thread; one
        # connection, serialised by a lock, keeps that safe.
        db = _LockedConnection(
            sqlite3.connect(self.path, isolation_level=None, timeout=5, check_same_thread=False)
        )
        db.execute("PRAGMA journal_mode=WAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            db.close()
            raise sqlite3.DatabaseError(f"unknown schema version {version}")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # Reading every table proves the file is a sound database, not only its header.
        for table in ("lessons", "steps", "hints", "quiz_attempts"):
            db.execute(f"SELECT count(*) FROM {table}").fetchone()
        return db

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

    def next_quiz_attempt(self, lesson_id: str) -> int:
        row = self._db.execute(
            "SELECT MAX(attempt) FROM quiz_attempts WHERE lesson_id = ?", (lesson_id,)
        ).fetchone()
        return int(row[0] or 0) + 1

    def quiz_answer(
        self,
        lesson_id: str,
        attempt: int,
        question_id: str,
        answer: Any,
        correct: bool,
        score: float,
    ) -> None:
        self._db.execute(
            "INSERT INTO quiz_attempts (lesson_id, attempt, question_id, answer, correct, score, "
            "at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (lesson_id, attempt, question_id, json.dumps(answer), int(correct), score, time.time()),
        )

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
