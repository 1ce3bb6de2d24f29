"""``meshtutor classroom dashboard``: the Textual instructor view against a real server on
loopback, with three attendees sending real progress events over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from classroom_helpers import LESSON, STEPS, Room, event, room, run_async
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Select, Static

from meshtutor.tui.dashboard import DashboardApp, normalise_url, token_from_url

CHOICE = next(q for q in LESSON.quiz if q.type == "choice")
SIZE = (200, 50)


async def until(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the dashboard"
        await pilot.pause(0.05)


def row(table: DataTable[Any], key: str) -> list[str]:
    return [str(cell) for cell in table.get_row(key)]


async def three_attendees(r: Room) -> dict[str, tuple[int, dict[str, str]]]:
    people = {name: await r.join(name) for name in ("Ada", "Bob", "Cy")}
    _, ada_auth = people["Ada"]
    _, bob_auth = people["Bob"]
    ada_events = [
        {"id": "a1", "kind": "lesson_started", "lesson": LESSON.id},
        event(2, "step_started"),
        event(3, "step_failed", message="expected 200, got 503"),
        event(4, "hint_used"),
        event(5, "step_passed"),
        event(6, "step_started", step=STEPS[1]),
    ]
    bob_events = [
        event(1, "step_started"),
        event(2, "step_failed", message="connection refused by reviews"),
    ]
    for auth, events in ((ada_auth, ada_events), (bob_auth, bob_events)):
        status, body = await r.call("POST", "/api/events", auth, json={"events": events})
        assert status == 200, body
    return people


def test_urls_and_tokens() -> None:
    assert normalise_url("127.0.0.1:8765") == "http://127.0.0.1:8765"
    assert normalise_url("http://h:1/#token=abc") == "http://h:1"
    assert token_from_url("http://h:1/#token=abc") == "abc"
    assert token_from_url("http://h:1/") is None


@run_async
async def test_the_dashboard_shows_the_room_and_drives_it(data: Path, tmp_path: Path) -> None:
    async with room(data) as r:
        people = await three_attendees(r)
        token = r.server.classroom.meta.instructor_token
        app = DashboardApp(
            r.url, token, stuck_minutes=30, export_dir=tmp_path / "out", refresh_seconds=0.3
        )
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one("#room", DataTable)
            await until(pilot, lambda: table.row_count == 3)
            ids = {name: str(aid) for name, (aid, _) in people.items()}
            ada, bob, cy = (row(table, ids[n]) for n in ("Ada", "Bob", "Cy"))
            # attendee, online, one cell per step, last failure, idle (min)
            assert len(ada) == 2 + len(STEPS) + 2
            assert ada[0] == "Ada" and ada[2] == "✔ passed 2× 1h" and ada[3] == "▶ working"
            assert bob[2] == "✘ failed 1×" and bob[-2] == "connection refused by reviews"
            assert cy[2:-2] == ["· not started"] * len(STEPS) and cy[-2] == ""
            assert float(cy[-1]) < 1.0
            assert app.query_one("#lesson", Select).value == LESSON.id

            # Progress arrives while the dashboard is open: the worker picks it up.
            _, cy_auth = people["Cy"]
            await r.call("POST", "/api/events", cy_auth, json={"events": [event(1)]})
            await until(pilot, lambda: row(table, ids["Cy"])[2] == "▶ working")

            # Stuck > 30 min: nobody; the filter toggles back.
            await pilot.press("s")
            assert app.query_one("#stuck", Checkbox).value
            await until(pilot, lambda: table.row_count == 0)
            await pilot.press("s")
            await until(pilot, lambda: table.row_count == 3)

            # A hint typed in the dashboard reaches the server.
            await pilot.click("#hint")
            await pilot.press(*"Check the port")
            await pilot.click("#push-hint")
            await until(pilot, lambda: r.count("pushes", "kind = 'hint'") == 1)
            _, pushes = await r.call("GET", "/api/pushes?since=0", people["Bob"][1])
            assert [p["text"] for p in pushes["pushes"] if p["kind"] == "hint"] == [
                "Check the port"
            ]

            # Push the lesson to everyone.
            await pilot.click("#push-lesson")
            await until(pilot, lambda: r.count("pushes", "kind = 'lesson'") == 1)

            # A live quiz: start it, two attendees answer, close it, see the results.
            app.query_one("#question", Select).value = CHOICE.id
            await pilot.click("#quiz-start")
            await until(pilot, lambda: r.server.classroom.quiz is not None)
            quiz = r.server.classroom.quiz
            assert quiz is not None and quiz.question == CHOICE.id
            right = next(i for i, o in enumerate(CHOICE.options) if o.correct)
            wrong = next(i for i, o in enumerate(CHOICE.options) if not o.correct)
            for name, pick in (("Ada", right), ("Bob", wrong)):
                status, _ = await r.call(
                    "POST", f"/api/quiz/{quiz.id}/answer", people[name][1], json={"answer": [pick]}
                )
                assert status == 200
            quiz_text = app.query_one("#quiz", Static)
            await until(pilot, lambda: "2 of 3 answered" in str(quiz_text.render()))
            await pilot.click("#quiz-close")
            await until(pilot, lambda: r.count("quizzes", "state = 'closed'") == 1)
            await until(pilot, lambda: "(closed)" in str(quiz_text.render()))
            shown = str(quiz_text.render())
            assert "✔ right" in shown and "Leaderboard" in shown
            assert shown.index("Ada") < shown.index("Bob")

            # Export both files.
            await pilot.press("e")
            out = tmp_path / "out"
            await until(pilot, lambda: (out / "classroom-export.csv").exists())
            exported = json.loads((out / "classroom-export.json").read_text())
            assert {a["name"] for a in exported["attendees"]} == {"Ada", "Bob", "Cy"}
            assert "Ada" in (out / "classroom-export.csv").read_text()


@run_async
async def test_a_wrong_token_or_url_is_one_line_and_exit_2(data: Path, tmp_path: Path) -> None:
    async with room(data) as r:
        for args, expected in (
            ([r.url, "--token", "wrong"], "token is wrong"),
            (["http://127.0.0.1:1", "--token", "x"], "cannot reach the classroom"),
            ([r.url], "token is missing"),
        ):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "meshtutor",
                "classroom",
                "dashboard",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "MESHTUTOR_HOME": str(tmp_path)},
            )
            _, err = await process.communicate()
            stderr = err.decode()
            assert process.returncode == 2, stderr
            assert expected in stderr and stderr.count("\n") == 1 and "Traceback" not in stderr
