"""The progress database under MESHTUTOR_HOME when it is damaged, or written by many processes.

A damaged file (pages that fail SQLite's checks, or tables with the right names and the wrong
columns) is moved aside, kept whole under a name with the time, and a new database started,
by every command and by the app, with one line saying where the old file is. What cannot be
opened or moved ends the command with exit code 2 and one line, leaving the file alone.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from meshtutor.lessons.loader import find_lesson, load_lessons
from meshtutor.lessons.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
PAGE = 4096  # SQLite's default page size


def meshtutor(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshtutor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "MESHTUTOR_HOME": str(home)},
    )


def real_progress(path: Path) -> None:
    """A learner's database: every lesson's steps passed, hints, three quiz attempts each."""
    progress = Progress(path)
    for lesson in load_lessons():
        for step in lesson.steps:
            progress.at_step(lesson.id, step.id)
            progress.step_result(lesson.id, step.id, "passed")
            progress.hint_used(lesson.id, step.id, 1)
        for attempt in (1, 2, 3):
            for question in lesson.quiz:
                progress.quiz_answer(lesson.id, attempt, question.id, "my answer " * 20, True, 1.0)
    progress.close()  # the last connection checkpoints the WAL into the file


def garble_middle_pages(path: Path) -> bytes:
    """Overwrite the records of the middle third of the pages with random bytes, leaving the
    header, the schema page and each page's own header alone: SQLite opens the file and counts
    rows, and fails only when a query reads a record."""
    data = bytearray(path.read_bytes())
    pages = len(data) // PAGE
    assert pages >= 12, "the database should span many pages"
    rng = random.Random(13)
    for page in range(pages // 3, 2 * pages // 3):
        start = page * PAGE
        data[start + 200 : start + 3000] = rng.randbytes(2800)
    path.write_bytes(bytes(data))
    return bytes(data)


def wrong_columns(path: Path) -> bytes:
    """A database with meshtutor's table names, one of them with other columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE lessons (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO lessons (name) VALUES ('tls-vs-mtls')")
        db.execute("PRAGMA user_version=1")
        db.commit()
    return path.read_bytes()


def one_aside(home: Path) -> Path:
    asides = sorted(home.glob("progress.sqlite.corrupt-*"))
    assert len(asides) == 1, asides
    assert asides[0].name[len("progress.sqlite.corrupt-") :][8] == "T"  # 20261203T101500Z
    return asides[0]


def assert_fresh(home: Path) -> None:
    with closing(sqlite3.connect(home / "progress.sqlite")) as db:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM lessons").fetchone()[0] in (0, 1)


COMMANDS = {
    "progress": (["progress", "--json"], ""),
    "lessons": (["lessons", "--json"], ""),
    "reset": (["progress", "reset", "--yes"], ""),
    "run": (["run", "tls-vs-mtls"], "q\n"),
    "quiz": (["quiz", "certificates-identity"], "1\n"),
}


@pytest.mark.parametrize("damage", [garble_middle_pages, wrong_columns])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_moves_a_damaged_database_aside(
    tmp_path: Path, command: str, damage: object
) -> None:
    home = tmp_path / "home"
    db = home / "progress.sqlite"
    if damage is garble_middle_pages:
        real_progress(db)
    bad = damage(db)  # type: ignore[operator]

    args, stdin = COMMANDS[command]
    out = meshtutor(home, *args, stdin=stdin)

    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    aside = one_aside(home)
    assert aside.read_bytes() == bad  # kept whole
    notices = [line for line in out.stderr.splitlines() if "progress database" in line]
    assert notices == [
        f"meshtutor: the progress database {db} could not be read "
        + notices[0].split("could not be read ", 1)[1]
    ]
    assert notices[0].endswith(f"; it was moved to {aside} and a new one started")
    assert_fresh(home)
    # The next command finds a sound database and says nothing.
    again = meshtutor(home, "progress", "--json")
    assert again.returncode == 0 and again.stderr == ""


def test_the_notice_says_what_was_wrong(tmp_path: Path) -> None:
    wrong_columns(tmp_path / "progress.sqlite")
    progress = Progress(tmp_path / "progress.sqlite")
    assert progress.notice is not None
    assert "(table lessons has columns (id, name), not (lesson_id, status," in progress.notice
    garbled = tmp_path / "other" / "progress.sqlite"
    real_progress(garbled)
    garble_middle_pages(garbled)
    progress = Progress(garbled)
    assert progress.notice is not None and "(page check: " in progress.notice
    assert progress.lesson("tls-vs-mtls").status == "new"  # a fresh start


def test_the_app_moves_a_damaged_database_aside(tmp_path: Path) -> None:
    """``meshtutor`` in a real terminal: the notification, then the lesson list."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    sys.path.insert(0, str(ROOT / "tests"))
    from test_tmux_smoke import Tmux

    home = tmp_path / "home"
    real_progress(home / "progress.sqlite")
    bad = garble_middle_pages(home / "progress.sqlite")
    tmux = Tmux(tmp_path / "tmux.sock")
    try:
        tmux.start_meshtutor(home, width=160)
        screen = tmux.wait_for(lambda s: "lessons done" in s, "lesson list")
        text = " ".join(screen.split())
        assert "could not be read" in text and "a new one started" in text, screen
        assert f"0/{len(load_lessons())} lessons done" in text  # a fresh start
        tmux("send-keys", "-t", tmux.session, "q")
        screen = tmux.wait_for(lambda s: "meshtutor exited with status" in s, "exit", timeout=15)
        assert "meshtutor exited with status 0" in screen
    finally:
        tmux.kill()
    assert one_aside(home).read_bytes() == bad
    assert_fresh(home)


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """A folder whose entries cannot be renamed, even by root (chattr +i), else by mode."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("root without chattr: no way to make a folder unwritable")
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_a_damaged_database_that_cannot_be_moved_exits_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    garbage = b"\x00garbage" * 512
    (home / "progress.sqlite").write_bytes(garbage)
    with unwritable(home):
        out = meshtutor(home, "progress")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"meshtutor: the progress database {home / 'progress.sqlite'}")
    assert "could not be moved aside" in out.stderr and "MESHTUTOR_HOME" in out.stderr
    assert (home / "progress.sqlite").read_bytes() == garbage
    assert sorted(p.name for p in home.iterdir()) == ["progress.sqlite"]


@pytest.mark.parametrize("where", ["home is a file", "database is a folder"])
def test_a_database_that_cannot_be_opened_exits_2(tmp_path: Path, where: str) -> None:
    home = tmp_path / "home"
    if where == "home is a file":
        home.write_text("not a folder")
    else:
        (home / "progress.sqlite").mkdir(parents=True)
    out = meshtutor(home, "lessons")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith(
        f"meshtutor: cannot create MESHTUTOR_HOME {home}: "
        if where == "home is a file"
        else f"meshtutor: cannot open the progress database {home / 'progress.sqlite'}: "
    )
    assert "MESHTUTOR_HOME" in out.stderr
    assert not list(tmp_path.rglob("*.corrupt-*"))


def test_a_newer_meshtutors_database_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "progress.sqlite"
    real_progress(db)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA user_version=2")
    before = db.read_bytes()
    out = meshtutor(tmp_path, "progress")
    assert out.returncode == 2
    assert "written by a newer meshtutor (schema version 2)" in out.stderr
    assert out.stderr.count("\n") == 1
    assert db.read_bytes() == before and not list(tmp_path.glob("*.corrupt-*"))


# --- attempts numbered by concurrent quizzes ---------------------------------------------------


def _take_quiz(path: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    import asyncio

    from meshtutor.lessons.runner import LessonRunner

    lesson = find_lesson("certificates-identity")
    choices = [q for q in lesson.quiz if q.type == "choice"][:2]
    runner = LessonRunner(lesson, progress=Progress(Path(path)))
    barrier.wait()  # every process answers its first question at the same moment
    for question in choices:
        runner.answer_choice(question, [0])
    asyncio.run(runner.stop())


def test_concurrent_quizzes_get_distinct_attempt_numbers(tmp_path: Path) -> None:
    """Twelve processes take the same quiz at once: twelve attempts, two answers each."""
    path = tmp_path / "progress.sqlite"
    Progress(path).close()
    count = 12
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    workers = [context.Process(target=_take_quiz, args=(str(path), barrier)) for _ in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0] * count
    with closing(sqlite3.connect(path)) as db:
        attempts = db.execute(
            "SELECT attempt, count(*) FROM quiz_attempts GROUP BY attempt ORDER BY attempt"
        ).fetchall()
    assert attempts == [(n, 2) for n in range(1, count + 1)]
    state = Progress(path).lesson("certificates-identity")
    assert state.quiz_attempts == count
