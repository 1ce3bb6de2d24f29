"""The classroom server over real HTTP and websockets on loopback, with a real SQLite file."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import aiohttp
from classroom_helpers import LESSON, LESSONS, STEPS, event, room, run_async

CHOICE = next(q for q in LESSON.quiz if q.type == "choice")
MULTIPLE = next(q for q in LESSON.quiz if q.type == "multiple")
PREDICT = next(q for q in LESSON.quiz if q.type == "predict")
MANIFEST = next(q for q in LESSON.quiz if q.type == "manifest")


@run_async
async def test_health_info_and_pages_need_no_token(data: Path) -> None:
    async with room(data) as r:
        assert await r.call("GET", "/healthz") == (200, {"status": "ok"})
        status, info = await r.call("GET", "/api/info")
        assert status == 200 and "token" not in json.dumps(info)
        async with r.http.get("/") as response:
            page = await response.text()
            csp = response.headers["Content-Security-Policy"]
        assert response.status == 200 and "<table" in page
        # Self-contained: no CDN, no external script or stylesheet; only nonce'd inline code.
        assert "<script src" not in page and "https://" not in page
        assert "script-src 'nonce-" in csp and "connect-src 'self'" in csp
        code = r.server.classroom.meta.join_code
        status, text = await r.call("GET", f"/j/{code.lower()}")
        assert status == 200 and f"/j/{code}" in text


@run_async
async def test_join_names_and_codes(data: Path) -> None:
    async with room(data) as r:
        code = r.server.classroom.meta.join_code
        assert len(code) == 8 and not set(code) & set("01OIL")
        status, body = await r.call("POST", "/api/join", json={"code": code, "name": "  Ada  "})
        assert status == 200 and body["name"] == "Ada" and body["token"]
        status, body = await r.call(
            "POST", "/api/join", json={"code": f"{code[:3]}-{code[3:]}".lower(), "name": "Zoë"}
        )
        assert status == 200 and body["name"] == "Zoë"
        for name in ["", "   ", "x" * 41, "bad\nname", "tab\there", 42, None]:
            status, body = await r.call("POST", "/api/join", json={"code": code, "name": name})
            assert status == 400, name
            assert "name" in body["error"]
        status, body = await r.call("POST", "/api/join", json={"code": "ZZZZZZ", "name": "Eve"})
        assert status == 403 and body == {"error": "wrong join code"}
        assert r.count("attendees") == 2


@run_async
async def test_progress_events_fill_the_grid(data: Path) -> None:
    async with room(data) as r:
        ada, ada_auth = await r.join("Ada")
        bob, _ = await r.join("Bob")
        events = [
            {"id": "1", "kind": "lesson_started", "lesson": LESSON.id},
            event(2, "step_started"),
            event(3, "step_failed", message="expected 200, got 503"),
            event(4, "hint_used"),
            event(5, "hint_used"),
            event(6, "step_failed", message="expected 200, got 000 (56)"),
            event(7, "step_passed"),
            event(8, "step_started", step=STEPS[1]),
        ]
        status, body = await r.call("POST", "/api/events", ada_auth, json={"events": events})
        assert (status, body) == (200, {"accepted": 8, "duplicates": 0})
        status, grid = await r.call("GET", f"/api/room?lesson={LESSON.id}", r.instructor)
        assert status == 200
        assert [s["id"] for s in grid["lesson"]["steps"]] == STEPS
        rows = {a["name"]: a for a in grid["attendees"]}
        first = rows["Ada"]["cells"][STEPS[0]]
        assert first == {
            "state": "passed",
            "attempts": 3,
            "hints": 2,
            "last_failure": "expected 200, got 000 (56)",
        }
        assert rows["Ada"]["cells"][STEPS[1]]["state"] == "started"
        assert rows["Ada"]["step"] == STEPS[1] and rows["Ada"]["online"]
        assert rows["Bob"]["cells"][STEPS[0]]["state"] == "todo"
        assert {a["id"] for a in grid["attendees"]} == {ada, bob}
        # A late, out-of-order failure does not undo a pass.
        await r.call("POST", "/api/events", ada_auth, json={"events": [event(9, "step_failed")]})
        _, grid = await r.call("GET", "/api/room", r.instructor)
        ada_row = next(a for a in grid["attendees"] if a["name"] == "Ada")
        assert ada_row["cells"][STEPS[0]]["state"] == "passed"


@run_async
async def test_stuck_filter(data: Path) -> None:
    async with room(data) as r:
        _, ada_auth = await r.join("Ada")
        await r.join("Bob")
        # Both joined ten minutes ago and have not passed a step since.
        db = sqlite3.connect(data / "classroom.sqlite")
        db.execute("UPDATE attendees SET last_progress_at = ?", (time.time() - 10 * 60,))
        db.commit()
        db.close()
        r.server.classroom._changed()
        _, grid = await r.call("GET", "/api/room?stuck=5", r.instructor)
        assert sorted(a["name"] for a in grid["attendees"]) == ["Ada", "Bob"]
        assert all(a["minutes_since_progress"] > 5 for a in grid["attendees"])
        await r.call("POST", "/api/events", ada_auth, json={"events": [event(2, "step_passed")]})
        _, grid = await r.call("GET", "/api/room?stuck=5", r.instructor)
        assert [a["name"] for a in grid["attendees"]] == ["Bob"]
        assert grid["total"] == 2
        status, body = await r.call("GET", "/api/room?stuck=soon", r.instructor)
        assert status == 400 and "stuck" in body["error"]


@run_async
async def test_events_are_idempotent_by_client_id(data: Path) -> None:
    async with room(data) as r:
        _, auth = await r.join("Ada")
        batch = {"events": [event(1), event(2, "step_passed")]}
        assert await r.call("POST", "/api/events", auth, json=batch) == (
            200,
            {"accepted": 2, "duplicates": 0},
        )
        # The answer was lost, the client re-sends with the same ids plus a new one.
        batch["events"].append(event(3, "hint_used"))
        assert await r.call("POST", "/api/events", auth, json=batch) == (
            200,
            {"accepted": 1, "duplicates": 2},
        )
        assert r.count("events") == 3
        _, grid = await r.call("GET", "/api/room", r.instructor)
        assert grid["attendees"][0]["cells"][STEPS[0]]["attempts"] == 1
        # Client ids are per attendee: another attendee may use the same ones.
        _, other = await r.join("Bob")
        _, body = await r.call("POST", "/api/events", other, json=batch)
        assert body == {"accepted": 3, "duplicates": 0}


@run_async
async def test_malformed_payloads_get_400_and_store_nothing(data: Path) -> None:
    async with room(data) as r:
        _, auth = await r.join("Ada")
        bad_bodies = [
            b"not json",
            b"[1, 2]",
            b'{"events": "lots"}',
            b'{"events": []}',
            json.dumps({"events": [event(i) for i in range(41)]}).encode(),
        ]
        for body in bad_bodies:
            status, answer = await r.call(
                "POST", "/api/events", {**auth, "Content-Type": "application/json"}, data=body
            )
            assert status == 400, body
            assert answer["error"]
        bad_events = [
            {**event(1), "kind": "step_exploded"},
            {**event(1), "lesson": "no-such-lesson"},
            {**event(1), "step": "no-such-step"},
            {**event(1), "step": None},
            {**event(1), "id": ""},
            {**event(1), "id": "x" * 65},
            {**event(1), "at": "yesterday"},
            {**event(1), "detail": "text"},
            {**event(1), "detail": {"message": "m" * 3000}},
            {**event(1), "extra": 1},
            {**event(1, "hint_used"), "detail": {"count": 0}},
            {"id": "q", "kind": "quiz_answer", "lesson": LESSON.id, "detail": {"score": 2}},
        ]
        for bad in bad_events:
            # The bad event is third in its batch: nothing of the batch is stored.
            batch = {"events": [event("a"), event("b", "step_passed"), bad]}
            status, answer = await r.call("POST", "/api/events", auth, json=batch)
            assert status == 400, bad
            assert answer["index"] == 2 and answer["error"].startswith("events[2]")
        status, answer = await r.call(
            "POST", "/api/events", auth, json={"events": [event(1), event(1)]}
        )
        assert status == 400 and "twice" in answer["error"]
        assert r.count("events") == 0 and r.count("steps") == 0


@run_async
async def test_oversized_bodies_get_413_and_store_nothing(data: Path) -> None:
    async with room(data) as r:
        _, auth = await r.join("Ada")
        big = {"events": [event(i, message="x" * 400) for i in range(40)]}
        assert len(json.dumps(big)) > 16 * 1024
        status, answer = await r.call("POST", "/api/events", auth, json=big)
        assert status == 413 and "16384" in answer["error"]

        async def chunks() -> object:  # no Content-Length: the limit holds while reading
            for _ in range(20):
                yield b" " * 1024

        json_type = {**auth, "Content-Type": "application/json"}
        status, answer = await r.call("POST", "/api/events", json_type, data=chunks())
        assert status == 413
        code = r.server.classroom.meta.join_code
        status, _ = await r.call(
            "POST", "/api/join", json={"code": code, "name": "Eve", "pad": "x" * 20000}
        )
        assert status == 413
        assert r.count("events") == 0 and r.count("attendees") == 1


@run_async
async def test_instructor_endpoints_need_the_instructor_token(data: Path) -> None:
    async with room(data) as r:
        _, attendee = await r.join("Ada")
        wrong = {"Authorization": "Bearer not-the-token"}
        calls = [
            ("GET", "/api/room", None),
            ("GET", "/api/room/stream", None),
            ("GET", "/api/lessons", None),
            ("POST", "/api/push/lesson", {"lesson": LESSON.id}),
            ("POST", "/api/push/hint", {"text": "look at the port"}),
            ("POST", "/api/quiz/start", {"lesson": LESSON.id, "question": CHOICE.id}),
            ("POST", "/api/quiz/close", {}),
            ("GET", "/api/quizzes", None),
            ("GET", "/api/quiz/1/results", None),
            ("GET", "/api/quiz/1/answers", None),
            ("GET", "/api/export.csv", None),
            ("GET", "/api/export.json", None),
        ]
        for method, path, body in calls:
            for headers in (None, wrong, {"Authorization": "Basic abc"}):
                status, answer = await r.call(method, path, headers, json=body)
                assert status == 401, (path, headers)
                assert "error" in answer
            status, answer = await r.call(method, path, attendee, json=body)
            assert status == 403, path
        assert r.count("pushes") == 0 and r.count("quizzes") == 0
        # The instructor is not an attendee either.
        status, _ = await r.call("POST", "/api/events", r.instructor, json={"events": [event(1)]})
        assert status == 403
        status, _ = await r.call("POST", "/api/events", wrong, json={"events": [event(1)]})
        assert status == 401


@run_async
async def test_pushes_reach_everyone_or_only_their_target(data: Path) -> None:
    async with room(data) as r:
        ada, ada_auth = await r.join("Ada")
        _, bob_auth = await r.join("Bob")
        status, _ = await r.call(
            "POST", "/api/push/lesson", r.instructor, json={"lesson": LESSON.id}
        )
        assert status == 200
        status, _ = await r.call(
            "POST",
            "/api/push/hint",
            r.instructor,
            json={"text": "Check the port", "lesson": LESSON.id, "step": STEPS[0], "to": [ada]},
        )
        assert status == 200
        _, mine = await r.call("GET", "/api/pushes?since=0", ada_auth)
        _, bobs = await r.call("GET", "/api/pushes?since=0", bob_auth)
        assert [p["kind"] for p in mine["pushes"]] == ["lesson", "hint"]
        assert mine["pushes"][1]["text"] == "Check the port"
        assert [p["kind"] for p in bobs["pushes"]] == ["lesson"]
        assert bobs["pushes"][0]["lesson"] == LESSON.id
        _, later = await r.call("GET", f"/api/pushes?since={mine['next']}", ada_auth)
        assert later == {"pushes": [], "next": mine["next"]}
        _, grid = await r.call("GET", "/api/room", r.instructor)
        assert grid["current_lesson"] == LESSON.id
        for body in (
            {"lesson": "nope"},
            {"text": ""},
            {"text": "x", "to": [999]},
            {"text": "x", "to": "everyone"},
            {"text": "x", "lesson": LESSON.id, "step": "nope"},
        ):
            path = (
                "/api/push/lesson" if "lesson" in body and "text" not in body else "/api/push/hint"
            )
            status, _ = await r.call("POST", path, r.instructor, json=body)
            assert status == 400, body
        assert r.count("pushes") == 2

        # A long poll returns as soon as something is pushed.
        async def push_soon() -> None:
            await asyncio.sleep(0.2)
            await r.call("POST", "/api/push/hint", r.instructor, json={"text": "now"})

        task = asyncio.create_task(push_soon())
        loop = asyncio.get_running_loop()
        start = loop.time()
        _, polled = await r.call("GET", f"/api/pushes?since={mine['next']}&wait=10", bob_auth)
        await task
        assert [p["text"] for p in polled["pushes"]] == ["now"]
        assert loop.time() - start < 2


@run_async
async def test_websocket_pushes(data: Path) -> None:
    async with room(data) as r:
        ada, ada_auth = await r.join("Ada")
        bob, bob_auth = await r.join("Bob")
        bob_token = bob_auth["Authorization"][7:]
        async with (
            r.http.ws_connect("/ws/attendee", headers=ada_auth) as ada_ws,
            # A browser cannot set headers: the token comes as a subprotocol it offers.
            r.http.ws_connect(
                "/ws/attendee?since=0", protocols=("meshtutor", f"meshtutor.token.{bob_token}")
            ) as bob_ws,
        ):
            assert bob_ws.protocol == "meshtutor"  # the token is never echoed back
            assert (await ada_ws.receive_json(timeout=5))["attendee"] == ada
            assert (await bob_ws.receive_json(timeout=5))["attendee"] == bob
            await r.call(
                "POST", "/api/push/hint", r.instructor, json={"text": "Bob only", "to": [bob]}
            )
            await r.call("POST", "/api/push/lesson", r.instructor, json={"lesson": LESSON.id})
            got_bob = [await bob_ws.receive_json(timeout=5) for _ in range(2)]
            got_ada = await ada_ws.receive_json(timeout=5)
            assert [m["push"]["kind"] for m in got_bob] == ["hint", "lesson"]
            assert got_ada["push"]["kind"] == "lesson"
        # Without a valid token there is no upgrade at all: a JSON 401.
        for headers, protocols in (
            ({}, ()),
            ({"Authorization": "Bearer guess"}, ()),
            ({}, ("meshtutor", "meshtutor.token.guess")),
        ):
            try:
                async with r.http.ws_connect("/ws/attendee", headers=headers, protocols=protocols):
                    raise AssertionError("upgraded without a token")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 401
        async with r.http.get("/ws/attendee", headers={"Authorization": "Bearer guess"}) as resp:
            assert resp.status == 401 and (await resp.json())["error"]


@run_async
async def test_live_quiz_round_trip(data: Path) -> None:
    async with room(data) as r:
        people = [await r.join(name) for name in ("Ada", "Bob", "Cy")]
        right = next(i for i, o in enumerate(CHOICE.options) if o.correct)
        wrong = next(i for i, o in enumerate(CHOICE.options) if not o.correct)
        status, started = await r.call(
            "POST",
            "/api/quiz/start",
            r.instructor,
            json={"lesson": LESSON.id, "question": CHOICE.id},
        )
        assert status == 200
        quiz = started["quiz"]
        # Attendees get the question, never the key.
        _, pushes = await r.call("GET", "/api/pushes?since=0", people[0][1])
        question = pushes["pushes"][-1]
        assert question["kind"] == "quiz" and question["quiz"] == quiz
        assert question["options"] == [o.text for o in CHOICE.options]
        assert "correct" not in json.dumps(question)
        answers = [[right], right, [wrong]]
        for (_, auth), answer in zip(people, answers, strict=True):
            status, body = await r.call(
                "POST", f"/api/quiz/{quiz}/answer", auth, json={"answer": answer}
            )
            assert status == 200 and body == {"accepted": True, "duplicate": False}
        # Re-sending the same answer is fine; changing it is not; nonsense is a 400.
        assert (
            await r.call("POST", f"/api/quiz/{quiz}/answer", people[0][1], json={"answer": [right]})
        )[1]["duplicate"]
        status, _ = await r.call(
            "POST", f"/api/quiz/{quiz}/answer", people[0][1], json={"answer": [wrong]}
        )
        assert status == 409
        for bad in ([right, wrong], [99], "200", [True], None):
            status, _ = await r.call(
                "POST", f"/api/quiz/{quiz}/answer", people[1][1], json={"answer": bad}
            )
            assert status in (400, 409), bad
        # Nobody but the instructor sees the answers.
        status, _ = await r.call("GET", f"/api/quiz/{quiz}/answers", people[2][1])
        assert status == 403
        status, _ = await r.call("GET", f"/api/quiz/{quiz}/results", people[2][1])
        assert status == 403
        status, results = await r.call("POST", "/api/quiz/close", r.instructor, json={})
        assert status == 200 and results["quiz"]["state"] == "closed"
        histogram = {h["label"]: h for h in results["histogram"]}
        assert histogram[CHOICE.options[right].text] == {
            "label": CHOICE.options[right].text,
            "count": 2,
            "correct": True,
        }
        assert histogram[CHOICE.options[wrong].text]["count"] == 1
        assert results["answered"] == 2 + 1 and results["attendees"] == 3
        assert [row["name"] for row in results["leaderboard"]][:2] == ["Ada", "Bob"]
        assert results["leaderboard"][-1] == {
            **results["leaderboard"][-1],
            "name": "Cy",
            "score": 0,
        }
        _, pushes = await r.call("GET", f"/api/pushes?since={question['id']}", people[0][1])
        assert pushes["pushes"][0] == {
            **pushes["pushes"][0],
            "kind": "quiz_closed",
            "correct": [right],
        }
        status, _ = await r.call(
            "POST", f"/api/quiz/{quiz}/answer", people[2][1], json={"answer": [right]}
        )
        assert status == 409
        assert await r.call("GET", f"/api/quiz/{quiz}/results", r.instructor) == (200, results)

        # A predict question: the key is what the policy engine predicts.
        _, started = await r.call(
            "POST",
            "/api/quiz/start",
            r.instructor,
            json={"lesson": LESSON.id, "question": PREDICT.id},
        )
        status, _ = await r.call(
            "POST", f"/api/quiz/{started['quiz']}/answer", people[0][1], json={"answer": "banana"}
        )
        assert status == 400
        status, _ = await r.call(
            "POST",
            f"/api/quiz/{started['quiz']}/answer",
            people[0][1],
            json={"answer": PREDICT.choices[0]},
        )
        assert status == 200
        _, results = await r.call("GET", f"/api/quiz/{started['quiz']}/results", r.instructor)
        assert sum(h["correct"] for h in results["histogram"]) == 1
        assert results["quiz"]["correct"] in PREDICT.choices
        # The multiple-choice question gives partial credit.
        _, started = await r.call(
            "POST",
            "/api/quiz/start",
            r.instructor,
            json={"lesson": LESSON.id, "question": MULTIPLE.id},
        )
        status, _ = await r.call(
            "POST",
            f"/api/quiz/{started['quiz'] - 1}/answer",
            people[1][1],
            json={"answer": PREDICT.choices[0]},
        )
        assert status == 409  # starting a quiz closed the previous one
        status, body = await r.call(
            "POST",
            "/api/quiz/start",
            r.instructor,
            json={"lesson": LESSON.id, "question": MANIFEST.id},
        )
        assert status == 400 and "manifest" in body["error"]
        _, listed = await r.call("GET", "/api/quizzes", r.instructor)
        assert [q["state"] for q in listed["quizzes"]] == ["closed", "closed", "open"]


@run_async
async def test_attendees_read_only_their_own_events(data: Path) -> None:
    async with room(data) as r:
        ada, ada_auth = await r.join("Ada")
        bob, bob_auth = await r.join("Bob")
        await r.call("POST", "/api/events", bob_auth, json={"events": [event(1, message="secret")]})
        status, own = await r.call("GET", f"/api/attendees/{ada}/events", ada_auth)
        assert status == 200 and own["events"] == []
        status, _ = await r.call("GET", f"/api/attendees/{bob}/events", ada_auth)
        assert status == 403
        status, theirs = await r.call("GET", f"/api/attendees/{bob}/events", r.instructor)
        assert status == 200 and len(theirs["events"]) == 1
        status, _ = await r.call("GET", f"/api/attendees/{bob}/events")
        assert status == 401


@run_async
async def test_rate_limit_hits_the_flooder_only(data: Path) -> None:
    # Everyone here connects from 127.0.0.1: the per-address connection cap must not be
    # what refuses the flooder's 100 parallel connections (the event rate limit must).
    async with room(data, rate=20.0, burst=40.0, connections_per_address=500) as r:
        _, flooder = await r.join("Flood")
        _, calm = await r.join("Calm")

        async def send(auth: dict[str, str], n: int | str) -> tuple[int, str | None]:
            async with r.http.post(
                "/api/events", headers=auth, json={"events": [event(n)]}
            ) as resp:
                return resp.status, resp.headers.get("Retry-After")

        flood = [
            status for status, _ in await asyncio.gather(*(send(flooder, i) for i in range(120)))
        ]
        calm_statuses = [(await send(calm, i))[0] for i in range(10)]
        assert flood.count(429) >= 60 and flood.count(200) >= 40
        assert calm_statuses == [200] * 10
        # Only what was answered 200 was stored.
        assert r.count("events", "attendee = 1") == flood.count(200)
        # A big batch costs one token per event.
        await asyncio.sleep(2.1)  # the bucket refills (40 tokens at 20/s)
        batch = {"events": [event(f"b{i}") for i in range(40)]}
        assert (await r.call("POST", "/api/events", flooder, json=batch))[0] == 200
        after = [await send(flooder, f"c{i}") for i in range(5)]
        refused = [retry for status, retry in after if status == 429]
        assert refused and all(retry is not None and int(retry) >= 1 for retry in refused)


@run_async
async def test_exports(data: Path) -> None:
    async with room(data) as r:
        _, ada = await r.join("=cmd|' /C calc'!A0")  # a spreadsheet formula as a name
        await r.call(
            "POST",
            "/api/events",
            ada,
            json={"events": [event(1), event(2, "step_failed", message="got 503")]},
        )
        _, started = await r.call(
            "POST",
            "/api/quiz/start",
            r.instructor,
            json={"lesson": LESSON.id, "question": CHOICE.id},
        )
        await r.call("POST", f"/api/quiz/{started['quiz']}/answer", ada, json={"answer": [0]})
        status, exported = await r.call("GET", "/api/export.json", r.instructor)
        assert status == 200
        assert len(exported["events"]) == 2 and exported["events"][1]["detail"] == {
            "message": "got 503"
        }
        assert exported["progress"][0]["state"] == "failed"
        assert exported["quizzes"][0]["answers"][0]["answer"] == [0]
        assert exported["room"]["lessons"][0]["id"] == LESSONS[0].id
        for table, rows in (("progress", 1), ("events", 2), ("quiz", 1)):
            async with r.http.get(f"/api/export.csv?table={table}", headers=r.instructor) as resp:
                assert resp.status == 200 and resp.content_type == "text/csv"
                parsed = list(csv.DictReader(io.StringIO(await resp.text())))
            assert len(parsed) == rows, table
            assert parsed[0]["name"].startswith("'=")  # never a live formula
        _, progress = await r.call("GET", "/api/export.csv", r.instructor)
        assert "got 503" in progress
        status, _ = await r.call("GET", "/api/export.csv?table=secrets", r.instructor)
        assert status == 400


@run_async
async def test_room_stream_sends_updates(data: Path) -> None:
    async with room(data) as r:
        _, ada = await r.join("Ada")
        async with r.http.get("/api/room/stream", headers=r.instructor) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")

            async def next_room() -> dict[str, object]:
                lines = []
                while True:
                    line = (await stream.content.readline()).decode().rstrip("\n")
                    if not line:
                        break
                    lines.append(line)
                assert lines[0] == "event: room"
                return json.loads(lines[1].removeprefix("data: "))

            first = await asyncio.wait_for(next_room(), 5)
            assert [a["name"] for a in first["attendees"]] == ["Ada"]  # type: ignore[index]
            await r.call("POST", "/api/events", ada, json={"events": [event(1, "step_passed")]})
            second = await asyncio.wait_for(next_room(), 5)
            cell = second["attendees"][0]["cells"][STEPS[0]]  # type: ignore[index]
            assert cell["state"] == "passed"


@run_async
async def test_an_attendees_stored_events_have_a_budget(data: Path) -> None:
    """An attendee token cannot fill the disk: past its stored-bytes budget (here 20 kB) the
    server answers 413 naming the first event that does not fit (the client sets that one
    aside), and the count survives a restart."""
    message = "x" * 1900
    batches = [
        [event(f"{b}-{i}", "step_failed", message=message) for i in range(4)] for b in range(3)
    ]
    async with room(data, event_budget=20_000) as r:
        _, auth = await r.join("Ada")
        for batch in batches[:2]:
            status, body = await r.call("POST", "/api/events", auth, json={"events": batch})
            assert status == 200 and body["accepted"] == 4, body
        status, body = await r.call("POST", "/api/events", auth, json={"events": batches[2]})
        assert status == 413 and body["index"] == 1, body
        assert "has stored its 19 KiB of events" in body["error"]
        assert r.count("events") == 8
        # A re-sent batch costs nothing: duplicates are not stored again.
        status, body = await r.call("POST", "/api/events", auth, json={"events": batches[0]})
        assert status == 200 and body["duplicates"] == 4
    async with room(data, event_budget=20_000) as r:
        first, second = batches[2][0], batches[2][1]
        status, _ = await r.call("POST", "/api/events", auth, json={"events": [first]})
        assert status == 200
        status, body = await r.call("POST", "/api/events", auth, json={"events": [second]})
        assert status == 413 and body["index"] == 0, body
        assert r.count("events") == 9


@run_async
async def test_an_attendees_events_come_in_pages(data: Path) -> None:
    async with room(data, rate=1000, burst=1000) as r:
        ada, auth = await r.join("Ada")
        for b in range(7):
            batch = [event(f"{b}-{i}") for i in range(40)]
            assert (await r.call("POST", "/api/events", auth, json={"events": batch}))[0] == 200
        path = f"/api/attendees/{ada}/events"
        status, page = await r.call("GET", path, r.instructor)
        assert status == 200 and len(page["events"]) == 200 and page["next"] is not None
        status, rest = await r.call("GET", f"{path}?after={page['next']}", r.instructor)
        assert len(rest["events"]) == 80 and rest["next"] is None
        ids = [e["id"] for e in page["events"] + rest["events"]]
        assert ids == sorted(ids) and len(set(ids)) == 280
        status, small = await r.call("GET", f"{path}?limit=30", auth)
        assert status == 200 and len(small["events"]) == 30
        assert small["next"] == small["events"][-1]["id"]
        status, capped = await r.call("GET", f"{path}?limit=5000", r.instructor)
        assert len(capped["events"]) == 280 and capped["next"] is None
        for bad in ("limit=0", "limit=x", "after=-1", "after=" + "9" * 30):
            status, body = await r.call("GET", f"{path}?{bad}", r.instructor)
            assert status == 400 and "must be an integer" in body["error"], bad


@run_async
async def test_reading_ones_events_is_rate_limited(data: Path) -> None:
    """An attendee reads its own events at its request rate (20 a second, 40 at once)."""
    async with room(data) as r:
        ada, auth = await r.join("Ada")
        statuses = [
            (await r.call("GET", f"/api/attendees/{ada}/events", auth))[0] for _ in range(45)
        ]
        assert statuses[:40] == [200] * 40 and 429 in statuses[40:]
        # The instructor is not limited.
        for _ in range(45):
            assert (await r.call("GET", f"/api/attendees/{ada}/events", r.instructor))[0] == 200


@run_async
async def test_websocket_traffic_counts_as_seen(data: Path) -> None:
    """An attendee heard from only on its websocket: when it was last heard from is saved
    too (the server kept it in memory only, so a restart showed it as gone since joining)."""
    async with room(data) as r:
        ada, auth = await r.join("Ada")
        async with r.http.ws_connect("/ws/attendee", headers=auth) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            heard = time.time()
            await ws.send_str("ping")
            assert (await ws.receive(timeout=5)).data == "pong"
    db = sqlite3.connect(data / "classroom.sqlite")
    try:
        (seen,) = db.execute("SELECT last_seen FROM attendees WHERE id = ?", (ada,)).fetchone()
    finally:
        db.close()
    assert seen >= heard
