"""Unauthenticated and malformed input gets a 4xx JSON error, never a 500 or a traceback, and
nothing it carries reaches the database or the exports (issue 13, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

from classroom_helpers import LESSON, event, room, run_async

MAX_INT_ID = 2**63 - 1  # the largest SQLite INTEGER

HUGE_INT = "1" * 5000  # json.loads raises ValueError past 4300 digits (Python 3.11)
DEEP = "[" * 8000  # and RecursionError this deep


def _strict(text: str) -> object:
    """JSON as a browser or jq reads it: NaN and Infinity are not JSON."""

    def refuse(name: str) -> object:
        raise ValueError(f"{name} in the export")

    return json.loads(text, parse_constant=refuse)


@run_async
async def test_join_refuses_hostile_json_with_400(data: Path) -> None:
    async with room(data) as r:
        code = r.server.classroom.meta.join_code
        bodies = [
            f'{{"code": "{code}", "name": "Eve", "n": {HUGE_INT}}}',
            DEEP,
            f'{{"code": "{code}", "name": "Eve", "n": {"[" * 3000}{"]" * 3000}}}',
            f'{{"code": "{code}", "name": "Eve", "n": NaN}}',
            f'{{"code": "{code}", "name": "Eve", "n": -Infinity}}',
            '{"code": "\\ud800", "name": "x"}',
            b'{"name": "\xff\xfe"}'.decode("latin-1"),
        ]
        for body in bodies:
            status, answer = await r.call(
                "POST",
                "/api/join",
                {"Content-Type": "application/json"},
                data=body.encode("utf-8", "surrogatepass"),
            )
            assert status == 400, body[:60]
            assert isinstance(answer, dict) and answer["error"], body[:60]
        assert r.count("attendees") == 0
        assert (await r.call("GET", "/healthz"))[0] == 200  # still serving


@run_async
async def test_json_endpoints_need_the_json_content_type(data: Path) -> None:
    """A page on any web site can make a visitor's browser POST text/plain to the room (no
    CORS preflight for that type): such a join, or any JSON endpoint, is refused with 415."""
    async with room(data) as r:
        code = r.server.classroom.meta.join_code
        body = json.dumps({"code": code, "name": "Mallory"})
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": content_type} if content_type else {}
            async with r.http.post("/api/join", data=body.encode(), headers=headers) as resp:
                assert resp.status == 415, content_type
                assert "application/json" in (await resp.json())["error"]
        _, auth = await r.join("Ada")
        status, _ = await r.call(
            "POST",
            "/api/events",
            {**auth, "Content-Type": "text/plain"},
            data=json.dumps({"events": [event(1)]}),
        )
        assert status == 415
        assert r.count("attendees") == 1 and r.count("events") == 0
        # application/json with a charset is JSON too.
        status, _ = await r.call(
            "POST",
            "/api/join",
            {"Content-Type": "application/json; charset=utf-8"},
            data=json.dumps({"code": code, "name": "Bob"}),
        )
        assert status == 200


@run_async
async def test_nan_and_infinity_never_reach_the_export(data: Path) -> None:
    async with room(data) as r:
        _, auth = await r.join("Ada")
        batch = json.dumps({"events": [event(1)]})
        for constant in ("NaN", "Infinity", "-Infinity"):
            body = batch.replace('"detail": {}', f'"detail": {{"score": {constant}}}')
            assert constant in body
            status, answer = await r.call(
                "POST", "/api/events", {**auth, "Content-Type": "application/json"}, data=body
            )
            assert status == 400 and constant in answer["error"]
        await r.call("POST", "/api/events", auth, json={"events": [event(2, message="ok")]})
        async with r.http.get("/api/export.json", headers=r.instructor) as resp:
            exported = _strict(await resp.text())
        assert [e["client_event_id"] for e in exported["events"]] == ["e-2"]  # type: ignore[index]


@run_async
async def test_a_room_holding_nan_from_before_still_exports_valid_json(data: Path) -> None:
    async with room(data) as r:
        _, auth = await r.join("Ada")
        await r.call("POST", "/api/events", auth, json={"events": [event(1)]})
        import sqlite3

        db = sqlite3.connect(data / "classroom.sqlite")
        db.execute("""UPDATE events SET detail = '{"score": NaN}'""")
        db.commit()
        db.close()
        async with r.http.get("/api/export.json", headers=r.instructor) as resp:
            assert resp.status == 200
            exported = _strict(await resp.text())
        assert exported["events"][0]["detail"] == {"score": None}  # type: ignore[index]


@run_async
async def test_ids_and_push_cursors_out_of_range_get_400(data: Path) -> None:
    async with room(data) as r:
        ada, auth = await r.join("Ada")
        too_big = str(MAX_INT_ID + 1)
        for path in (
            f"/api/quiz/{too_big}/results",
            f"/api/quiz/{'9' * 40}/answers",
            f"/api/quiz/{HUGE_INT}/results",
            "/api/quiz/-1/results",
            "/api/quiz/x/results",
            f"/api/attendees/{too_big}/events",
        ):
            status, answer = await r.call("GET", path, r.instructor)
            assert status == 400, path
            assert "integer" in answer["error"]
        status, _ = await r.call("POST", f"/api/quiz/{too_big}/answer", auth, json={"answer": [0]})
        assert status == 400
        await r.call(
            "POST",
            "/api/quiz/start",
            r.instructor,
            json={"lesson": LESSON.id, "question": LESSON.quiz[0].id},
        )
        for body in (f'{{"quiz": {HUGE_INT}}}', f'{{"quiz": {too_big}}}', '{"quiz": "1"}', DEEP):
            status, answer = await r.call(
                "POST",
                "/api/quiz/close",
                {**r.instructor, "Content-Type": "application/json"},
                data=body,
            )
            assert status == 400, body[:40]
        for since in ("abc", "-1", "1.5", too_big, HUGE_INT, "１２"):  # full-width digits too
            status, answer = await r.call("GET", f"/api/pushes?since={since}", auth)
            assert status == 400 and "since" in answer["error"], since
            async with r.http.get(f"/ws/attendee?since={since}", headers=auth) as resp:
                assert resp.status == 400, since
                assert "since" in (await resp.json())["error"]
        for wait in ("nan", "soon"):
            status, _ = await r.call("GET", f"/api/pushes?since=0&wait={wait}", auth)
            assert status == 400, wait
        # The room still works for everyone.
        status, _ = await r.call("GET", f"/api/attendees/{ada}/events", auth)
        assert status == 200


@run_async
async def test_the_join_page_shows_the_servers_address_not_the_host_header(data: Path) -> None:
    async with room(data, public_host="10.1.2.3") as r:
        code = r.server.classroom.meta.join_code
        async with r.http.get(f"/j/{code}", headers={"Host": "evil.example:666"}) as resp:
            page = await resp.text()
        assert "evil.example" not in page
        assert f"http://10.1.2.3:{r.server.port}/j/{code}" in page
        _, grid = await r.call("GET", "/api/room", {**r.instructor, "Host": "evil.example"})
        assert grid["join_url"] == f"http://10.1.2.3:{r.server.port}/j/{code}"


@run_async
async def test_websocket_query_and_upgrade_errors_are_json(data: Path) -> None:
    async with room(data) as r:
        async with r.http.get("/ws/attendee?since=abc") as resp:
            assert resp.status in (400, 401)
            assert resp.content_type == "application/json"
        async with r.http.get("/ws/attendee", headers={"Authorization": "Bearer x"}) as resp:
            assert resp.status == 401 and (await resp.json())["error"]
