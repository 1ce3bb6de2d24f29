"""ClassroomClient against a real server on loopback, with its own real SQLite outbox."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from classroom_helpers import LESSON, STEPS, Room, room, run_async

from meshtutor.classroom.client import ClassroomClient, ClassroomError, parse_join_url


def client(r: Room, state: Path, name: str = "Ada", **kwargs: Any) -> ClassroomClient:
    code = r.server.classroom.meta.join_code
    return ClassroomClient(f"{r.url}/j/{code}", name, state=state, **kwargs)


async def until(predicate: Any, seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_join_urls() -> None:
    assert parse_join_url("http://10.0.0.5:8765/j/abc234") == ("http://10.0.0.5:8765", "ABC234")
    assert parse_join_url("10.0.0.5:8765/j/ABC-234") == ("http://10.0.0.5:8765", "ABC234")
    assert parse_join_url("http://10.0.0.5:8765", "xyz789") == ("http://10.0.0.5:8765", "XYZ789")
    assert parse_join_url("http://host:1/") == ("http://host:1", None)
    with pytest.raises(ClassroomError, match="not a classroom URL"):
        parse_join_url("ftp://host/j/ABC234")
    with pytest.raises(ClassroomError, match="not a join code"):
        parse_join_url("http://host/j/AB0O1I")


def test_bad_names_and_events_fail_at_once(tmp_path: Path) -> None:
    with pytest.raises(ClassroomError, match="--name: name must not be empty"):
        ClassroomClient("http://127.0.0.1:9/j/ABC234", "  ", state=tmp_path / "c.sqlite")
    c = ClassroomClient("http://127.0.0.1:9/j/ABC234", "Ada", state=tmp_path / "c.sqlite")
    with pytest.raises(ValueError, match="kind must be one of"):
        c.record("step_exploded", LESSON.id, STEPS[0])
    with pytest.raises(ValueError, match="step must be an id"):
        c.record("step_passed", LESSON.id)
    assert c.pending() == 0
    asyncio.run(c.close())


@run_async
async def test_a_restarted_app_rejoins_as_the_same_attendee(data: Path, tmp_path: Path) -> None:
    state = tmp_path / "client.sqlite"
    async with room(data) as r:
        async with client(r, state) as first:
            attendee = await first.join()
        async with client(r, state) as again:
            assert await again.join() == attendee
        assert r.count("attendees") == 1
        async with client(r, state, name="Someone Else") as other:
            assert await other.join() != attendee
        assert r.count("attendees") == 2


@run_async
async def test_queued_events_are_delivered_once(data: Path, tmp_path: Path) -> None:
    async with room(data) as r, client(r, tmp_path / "c.sqlite") as c:
        ids = [
            c.record("lesson_started", LESSON.id),
            c.record("step_started", LESSON.id, STEPS[0]),
            c.record("step_failed", LESSON.id, STEPS[0], {"message": "got 503"}),
        ]
        assert c.pending() == 3  # nothing is sent before flush or start
        # The server got the first event but its answer was lost: it comes again, once.
        await c.join()
        status, _ = await r.call(
            "POST",
            "/api/events",
            {"Authorization": f"Bearer {c.token}"},
            json={"events": [{"id": ids[0], "kind": "lesson_started", "lesson": LESSON.id}]},
        )
        assert status == 200
        assert await c.flush() == 3
        assert c.pending() == 0
        assert r.count("events") == 3
        assert r.count("events", f"client_event_id = '{ids[2]}'") == 1


@run_async
async def test_an_event_the_server_refuses_is_set_aside(data: Path, tmp_path: Path) -> None:
    async with room(data) as r, client(r, tmp_path / "c.sqlite") as c:
        c.record("step_started", LESSON.id, STEPS[0])
        c.record("step_started", "a-lesson-this-server-lacks", "s1")
        c.record("step_passed", LESSON.id, STEPS[0])
        await c.flush()
        assert c.pending() == 0
        assert r.count("events") == 2
        db = sqlite3.connect(tmp_path / "c.sqlite")
        reasons = [row[0] for row in db.execute("SELECT reason FROM rejected")]
        db.close()
        assert reasons == ["events[1]: unknown lesson 'a-lesson-this-server-lacks'"]


@run_async
async def test_a_backlog_drains_through_the_rate_limit(data: Path, tmp_path: Path) -> None:
    async with room(data, rate=60.0, burst=40.0) as r, client(r, tmp_path / "c.sqlite") as c:
        for i in range(100):
            c.record("hint_used", LESSON.id, STEPS[i % len(STEPS)])
        assert await c.flush() == 100
        assert r.count("events") == 100


@run_async
async def test_pushes_and_live_quiz_through_the_client(data: Path, tmp_path: Path) -> None:
    state = tmp_path / "c.sqlite"
    received: list[dict[str, Any]] = []
    async with room(data) as r:
        async with client(r, state, on_push=received.append) as c:
            await c.start()
            await until(lambda: c.online)
            await r.call("POST", "/api/push/lesson", r.instructor, json={"lesson": LESSON.id})
            choice = next(q for q in LESSON.quiz if q.type == "choice")
            _, started = await r.call(
                "POST",
                "/api/quiz/start",
                r.instructor,
                json={"lesson": LESSON.id, "question": choice.id},
            )
            await until(lambda: len(received) == 2)
            assert [p["kind"] for p in received] == ["lesson", "quiz"]
            quiz = received[1]
            assert await c.answer_quiz(quiz["quiz"], [0]) == {"accepted": True, "duplicate": False}
            with pytest.raises(ClassroomError, match="answers are final"):
                await c.answer_quiz(quiz["quiz"], [1])
            assert started["quiz"] == quiz["quiz"]
        # A restarted app does not see the same pushes again, only new ones.
        async with client(r, state) as again:
            await r.call("POST", "/api/push/hint", r.instructor, json={"text": "new"})
            assert [p["kind"] for p in await again.poll_pushes()] == ["hint"]


@run_async
async def test_a_new_room_at_the_same_address_is_joined_afresh(data: Path, tmp_path: Path) -> None:
    state = tmp_path / "c.sqlite"
    async with room(data) as r:
        port = r.server.port
        code = r.server.classroom.meta.join_code
        async with client(r, state) as c:
            await c.join()
            c.record("step_started", LESSON.id, STEPS[0])
            await c.flush()
    # The instructor starts over with another --data directory on the same port; the join
    # code in the URL is the old room's, so the client cannot join it…
    async with room(tmp_path / "other", port=port) as r2:
        url = f"{r2.url}/j/{code}"
        async with ClassroomClient(url, "Ada", state=state) as c:
            c.record("step_passed", LESSON.id, STEPS[0])
            with pytest.raises(ClassroomError, match="wrong join code"):
                await c.flush()
            assert c.pending() == 1
        # …until it has the new room's code; nothing queued is lost.
        async with client(r2, state) as c:
            assert await c.flush() == 1
            assert r2.count("events") == 1 and r2.count("attendees") == 1
