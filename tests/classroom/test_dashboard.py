"""``meshtutor classroom dashboard``: the Textual instructor view against a real server on
loopback, with three attendees sending real progress events over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import os
import pty
import struct
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from classroom_helpers import LESSON, LESSONS, STEPS, Room, event, room, run_async
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Select, Static

from meshtutor.classroom.server import ServerConfig, start_server
from meshtutor.tui.dashboard import (
    DashboardApp,
    NewJoinCodeScreen,
    RemoveAttendeeScreen,
    normalise_url,
    token_from_url,
)

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


# Attendee-supplied text that Rich/Textual markup would read as tags: a bare closing tag (a
# MarkupError while rendering, which used to end the dashboard at every start), a link, and an
# action that would quit the dashboard when clicked.
HOSTILE_NAMES = ("[/]", "[link=https://evil]x[/link]", "[@click=app.quit]q[/]")
CLICK_QUIT = "[@click=app.quit]boom[/]"


def hostile_lesson() -> Any:
    """The fixture lesson with markup in its titles and a live question's text, as a server
    (or a lesson file) could send them."""
    step = dataclasses.replace(LESSON.steps[0], title="[@click=app.quit]s[/]")
    question = dataclasses.replace(CHOICE, question="[/] which [b]one[/b]?")
    quiz = tuple(question if q.id == CHOICE.id else q for q in LESSON.quiz)
    return dataclasses.replace(
        LESSON, title="[/]lesson", steps=(step, *LESSON.steps[1:]), quiz=quiz
    )


def cell_offset(table: DataTable[Any], key: str, column: int) -> tuple[int, int]:
    """Where on the table a cell is drawn (the header takes the first line)."""
    widths = [c.get_render_width(table) for c in table.columns.values()]
    return sum(widths[:column]) + 2, 1 + table.get_row_index(key)


@run_async
async def test_attendee_text_is_shown_as_typed_never_as_markup(data: Path) -> None:
    config = ServerConfig(data=data, lessons=[hostile_lesson(), *LESSONS[1:]])
    server = await start_server(config, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(server.url) as http:
            r = Room(server, http, data)
            people = {name: await r.join(name) for name in HOSTILE_NAMES}
            failures = {
                "[/]": "[/]",
                "[@click=app.quit]q[/]": CLICK_QUIT,
                # An escape sequence would reach the instructor's terminal: shown as U+FFFD.
                "[link=https://evil]x[/link]": "\x1b[2Jcleared?",
            }
            for name, message in failures.items():
                events = [event(1), event(2, "step_failed", message=message)]
                status, body = await r.call(
                    "POST", "/api/events", people[name][1], json={"events": events}
                )
                assert status == 200, body
            token = server.classroom.meta.instructor_token
            app = DashboardApp(r.url, token, refresh_seconds=0.3)
            opened: list[str] = []
            app.open_url = lambda url, **_: opened.append(url)  # type: ignore[method-assign]
            async with app.run_test(size=SIZE) as pilot:
                table = app.query_one("#room", DataTable)
                await until(pilot, lambda: table.row_count == 3)
                ids = {name: str(aid) for name, (aid, _) in people.items()}
                for name in HOSTILE_NAMES:
                    assert row(table, ids[name])[0] == name
                assert row(table, ids["[/]"])[-2] == "[/]"
                assert row(table, ids["[@click=app.quit]q[/]"])[-2] == CLICK_QUIT
                assert row(table, ids["[link=https://evil]x[/link]"])[-2] == "\ufffd[2Jcleared?"
                labels = [str(c.label) for c in table.columns.values()]
                assert "1. [@click=app.qu" in labels, labels

                # Clicking the would-be action and link does nothing: still running.
                last = len(table.columns) - 2
                for name, column in (
                    ("[@click=app.quit]q[/]", last),
                    ("[@click=app.quit]q[/]", 0),
                    ("[link=https://evil]x[/link]", 0),
                ):
                    await pilot.click("#room", offset=cell_offset(table, ids[name], column))
                    await pilot.pause(0.1)
                    assert app.is_running and app.return_code is None
                assert opened == []

                # A live quiz whose question is markup: the results panel shows it as is.
                app.query_one("#question", Select).value = CHOICE.id
                await pilot.click("#quiz-start")
                quiz_text = app.query_one("#quiz", Static)
                await until(pilot, lambda: "which" in str(quiz_text.render()))
                assert "[/] which [b]one[/b]?" in str(quiz_text.render())
                await pilot.pause(0.3)  # a few refreshes more: nothing crashes
                assert app.is_running and app.return_code is None
    finally:
        await server.close()


async def in_a_terminal(*args: str, keys: bytes = b"", home: Path) -> tuple[int, str]:
    """Run ``meshtutor ARGS`` on a pseudo-terminal (Textual needs one), type ``keys`` once it
    has drawn, and return its exit code and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshtutor",
        *args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "MESHTUTOR_HOME": str(home), "TERM": "xterm-256color"},
    )
    os.close(slave)

    def read_all() -> bytes:
        chunks: list[bytes] = []
        typed = not keys
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not typed and b"attendee" in b"".join(chunks):  # the table has drawn
                os.write(master, keys)
                typed = True
        return b"".join(chunks)

    try:
        output = await asyncio.wait_for(asyncio.to_thread(read_all), timeout=20)
        code = await asyncio.wait_for(process.wait(), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
        os.close(master)
    return code, output.decode("utf-8", "replace")


@run_async
async def test_a_crashing_dashboard_exits_non_zero(tmp_path: Path) -> None:
    """Textual's ``App.run()`` returns normally after an unhandled exception (it prints the
    traceback and sets ``return_code`` to 1); the command must pass that on, not exit 0. A
    server answering a room this dashboard cannot read makes it crash."""

    async def lessons(_: web.Request) -> web.Response:
        return web.json_response({"lessons": []})

    async def broken_room(_: web.Request) -> web.Response:
        return web.json_response({"attendees": [{"name": "no id"}]})

    app = web.Application()
    app.router.add_get("/api/lessons", lessons)
    app.router.add_get("/api/room", broken_room)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        code, output = await in_a_terminal(
            "classroom", "dashboard", f"http://127.0.0.1:{port}", "--token", "t", home=tmp_path
        )
    finally:
        await runner.cleanup()
    assert "KeyError" in output
    assert code == 1, output[-2000:]


@run_async
async def test_the_dashboard_in_a_terminal_survives_markup_and_quits_cleanly(
    data: Path, tmp_path: Path
) -> None:
    async with room(data) as r:
        _, auth = await r.join("[/]")
        events = [event(1), event(2, "step_failed", message="[/]")]
        status, body = await r.call("POST", "/api/events", auth, json={"events": events})
        assert status == 200, body
        token = r.server.classroom.meta.instructor_token
        code, output = await in_a_terminal(
            "classroom", "dashboard", r.url, "--token", token, keys=b"q", home=tmp_path
        )
    assert "MarkupError" not in output and "Traceback" not in output, output[-2000:]
    assert code == 0


async def select_row(pilot: Pilot[Any], app: DashboardApp, rows: int, key: str) -> DataTable[Any]:
    """Once the grid shows ``rows`` attendees, its cursor on ``key``'s row, as the instructor
    puts it there with the arrow keys."""
    table: DataTable[Any] = app.query_one("#room", DataTable)
    await until(pilot, lambda: table.row_count == rows)
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    return table


@run_async
async def test_the_instructor_removes_an_attendee_from_the_dashboard(data: Path) -> None:
    """Item 2 of issue 13, dashboard side: ``x`` on the selected row asks first, naming the
    attendee as typed; cancelling removes nobody; confirming frees the seat, the attendee's
    token stops working (403) and the row leaves the grid. The cursor stays on the attendee
    the instructor chose while the grid refreshes (it used to jump back to the first row every
    refresh, so ``x`` would have asked about someone else)."""
    async with room(data) as r:
        people = {name: await r.join(name) for name in ("Ada", "[b]Bob[/b]", "Cy")}
        ids = {name: str(aid) for name, (aid, _) in people.items()}
        bob_id, bob_auth = people["[b]Bob[/b]"]
        token = r.server.classroom.meta.instructor_token
        app = DashboardApp(r.url, token, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            table = await select_row(pilot, app, 3, ids["[b]Bob[/b]"])
            footer = {b.binding.key: b.binding.description for b in app.active_bindings.values()}
            assert footer.get("x") == "Remove attendee", footer
            refreshed = r.server.classroom.room_version
            # Progress arrives: the grid is rebuilt, the cursor stays on Bob.
            await r.call("POST", "/api/events", people["Cy"][1], json={"events": [event(1)]})
            await until(pilot, lambda: row(table, ids["Cy"])[2] == "▶ working")
            assert r.server.classroom.room_version > refreshed

            # Cancel: nobody is removed.
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, RemoveAttendeeScreen))
            question = str(app.screen.query_one("#remove-question", Static).render())
            assert "Remove [b]Bob[/b] from the room?" in question, question
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, RemoveAttendeeScreen))
            await pilot.pause(0.5)  # a few refreshes
            assert table.row_count == 3
            status, _ = await r.call("GET", "/api/pushes?since=0", bob_auth)
            assert status == 200

            # Confirm: Bob's token is refused and his row leaves the grid.
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, RemoveAttendeeScreen))
            await pilot.click("#remove-confirm")
            await until(pilot, lambda: table.row_count == 2)
            assert ids["[b]Bob[/b]"] not in {k.value for k in table.rows}
            status, body = await r.call("GET", "/api/pushes?since=0", bob_auth)
            assert status == 403 and body.get("removed") is True, body
            assert r.count("attendees", f"id = {bob_id} AND removed_at IS NOT NULL") == 1
            assert r.count("attendees", "removed_at IS NULL") == 2


@run_async
async def test_removing_an_attendee_already_gone_is_a_one_line_notification(data: Path) -> None:
    """The page (or another dashboard) removed the attendee first: the server answers 404 and
    the dashboard says so in one notification, and keeps running."""
    async with room(data) as r:
        people = {name: await r.join(name) for name in ("Ada", "Bob")}
        token = r.server.classroom.meta.instructor_token
        # A long refresh: the row is still shown when the second removal is asked for.
        app = DashboardApp(r.url, token, refresh_seconds=60)
        async with app.run_test(size=SIZE) as pilot:
            table = await select_row(pilot, app, 2, str(people["Bob"][0]))
            status, _ = await r.call("DELETE", f"/api/attendees/{people['Bob'][0]}", r.instructor)
            assert status == 200
            shown: list[tuple[str, str]] = []
            notify = app.notify

            def record(message: str, **kwargs: Any) -> None:
                shown.append((message, str(kwargs.get("severity", "information"))))
                notify(message, **kwargs)

            app.notify = record  # type: ignore[method-assign]
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, RemoveAttendeeScreen))
            await pilot.press("y")
            await until(pilot, lambda: any(s == "error" for _, s in shown))
            (message,) = [m for m, s in shown if s == "error"]
            assert "404" in message and "Bob" in message and "\n" not in message, message
            await until(pilot, lambda: table.row_count == 1)
            assert app.is_running and app.return_code is None


@run_async
async def test_the_instructor_makes_a_new_join_code_from_the_dashboard(data: Path) -> None:
    """``n`` asks first (cancelling changes nothing), then makes a new join code: the old one
    is refused, attendees already in keep their tokens, and the status line shows the new
    code."""
    async with room(data) as r:
        _, ada = await r.join("Ada")
        old = r.server.classroom.meta.join_code
        token = r.server.classroom.meta.instructor_token
        app = DashboardApp(r.url, token, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: bool(app.room))
            footer = {b.binding.key: b.binding.description for b in app.active_bindings.values()}
            assert footer.get("n") == "New join code", footer
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, NewJoinCodeScreen))
            question = str(app.screen.query_one("#code-question", Static).render())
            assert f"current one ({old[:4]}-{old[4:]}) stops working" in question, question
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, NewJoinCodeScreen))
            assert r.server.classroom.meta.join_code == old

            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, NewJoinCodeScreen))
            await pilot.press("y")
            await until(pilot, lambda: r.server.classroom.meta.join_code != old)
            new = r.server.classroom.meta.join_code
            status = app.grid.query_one("#status", Static)
            shown = f"{new[:4]}-{new[4:]}"  # as the projector shows it
            await until(pilot, lambda: f"join code {shown}" in str(status.render()))
        refused = await r.call("POST", "/api/join", json={"code": old, "name": "Troll"})
        assert refused[0] == 403
        assert (await r.call("GET", "/api/me", ada))[0] == 200
