"""The app as a classroom attendee (``meshtutor --join``), against a real server on loopback:
progress reaches the instructor, pushes reach the learner, a live quiz round-trips, and what
is done while the server is down arrives once it is back."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

import aiohttp
from classroom_helpers import run_async
from textual.widgets import RadioButton, RadioSet

sys.path.insert(0, str(Path(__file__).parent.parent / "tui"))

from tui_helpers import fixture_lessons, seeded_backend, wait_for, wait_for_text

from meshtutor.classroom.client import ClassroomClient
from meshtutor.classroom.server import RunningServer, ServerConfig, start_server
from meshtutor.lessons.progress import Progress
from meshtutor.tui.app import MeshtutorApp
from meshtutor.tui.classroom_link import LiveQuizScreen
from meshtutor.tui.screens.lesson import LessonScreen
from meshtutor.tui.session import Session

SIZE = (120, 40)


async def serve(data: Path, port: int = 0) -> RunningServer:
    config = ServerConfig(data=data, lessons=list(fixture_lessons()))
    return await start_server(config, "127.0.0.1", port)


class Instructor:
    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.headers = {
            "Authorization": f"Bearer {server.classroom.meta.instructor_token}",
        }

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with (
            aiohttp.ClientSession(self.server.url) as http,
            http.request(method, path, headers=self.headers, **kwargs) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def kinds(self, attendee: int) -> list[str]:
        body = await self.call("GET", f"/api/attendees/{attendee}/events")
        return [e["kind"] for e in body["events"]]


def attendee_app(tmp_path: Path, client: ClassroomClient) -> MeshtutorApp:
    progress = Progress(tmp_path / "progress.sqlite")
    session = Session(progress=progress, backend_factory=seeded_backend)
    return MeshtutorApp(
        lessons=list(fixture_lessons()),
        progress=progress,
        session=session,
        warm=False,
        classroom=client,
    )


def notified(app: MeshtutorApp, title: str, text: str = "") -> bool:
    return any(n.title == title and text in n.message for n in app._notifications)


@run_async
async def test_attendee_app_reports_receives_pushes_and_works_offline(tmp_path: Path) -> None:
    data = tmp_path / "room"
    server = await serve(data)
    port = server.port
    first, second = fixture_lessons()[0], fixture_lessons()[1]
    url = f"{server.url}/j/{server.classroom.meta.join_code}"
    client = ClassroomClient(url, "Ada", state=tmp_path / "client.sqlite")
    app = attendee_app(tmp_path, client)
    try:
        async with app.run_test(size=SIZE) as pilot:
            teacher = Instructor(server)
            await wait_for(pilot, lambda: client.attendee is not None, what="joined")
            attendee = client.attendee
            assert attendee is not None
            await wait_for(pilot, lambda: "classroom: connected" in str(app.sub_title))
            # The lesson list keeps its own sub-title, the classroom's state after it.
            await wait_for(
                pilot,
                lambda: (
                    str(app.screen.sub_title).startswith("backend: ")
                    and str(app.screen.sub_title).endswith(" · classroom: connected")
                ),
                what="the lesson list's sub-title",
            )

            # Progress: open the lesson, run the first step; the instructor sees it.
            app.open_lesson(first)
            await wait_for(pilot, lambda: app.session.runner is not None, what="the runner")
            screen = app.screen
            assert isinstance(screen, LessonScreen)
            await wait_for(pilot, lambda: screen.base_sub_title is not None)
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.passed, what="step 1 passed")
            await pilot.press("h")
            await wait_for(pilot, lambda: client.pending() == 0, what="events delivered")
            body = await teacher.call("GET", f"/api/attendees/{attendee}/events")
            kinds = [(e["kind"], e["step"]) for e in body["events"]]
            step = first.steps[0].id
            assert kinds == [
                ("lesson_started", None),
                ("step_started", step),
                ("step_passed", step),
                ("hint_used", step),
            ], kinds
            assert body["events"][-1]["detail"] == {"count": 1, "total": 2}
            assert "classroom: connected" in str(screen.sub_title)

            # Pushes: a hint, then "go to lesson 2".
            await teacher.call("POST", "/api/push/hint", json={"text": "think of uid 1337"})
            await wait_for(
                pilot, lambda: notified(app, "from the instructor", "uid 1337"), what="hint"
            )
            await teacher.call("POST", "/api/push/lesson", json={"lesson": second.id})
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, LessonScreen) and app.screen.lesson.id == second.id,
                what="lesson 2 opened",
            )
            assert len(app.screen_stack) == 3  # default, lessons, lesson 2

            # A live quiz: the modal shows its choices; the answer reaches the server.
            question = first.quiz[0]
            assert question.type == "choice"
            started = await teacher.call(
                "POST", "/api/quiz/start", json={"lesson": first.id, "question": question.id}
            )
            quiz = started["quiz"]
            await wait_for(pilot, lambda: isinstance(app.screen, LiveQuizScreen), what="quiz")
            modal = app.screen
            radio = modal.query_one(RadioSet)
            await wait_for(pilot, lambda: bool(radio.query(RadioButton)), what="choices")
            labels = [str(b.label) for b in radio.query(RadioButton)]
            assert labels == [o.text for o in question.options]
            right = next(i for i, o in enumerate(question.options) if o.correct)
            radio.focus()
            await pilot.press(*(["down"] * right), "enter", "ctrl+s")
            await wait_for(pilot, lambda: not isinstance(app.screen, LiveQuizScreen))
            answers = (await teacher.call("GET", f"/api/quiz/{quiz}/answers"))["answers"]
            assert [(a["attendee"], a["answer"], a["correct"]) for a in answers] == [
                (attendee, [right], True)
            ]

            # Closing a quiz nobody answered yet takes its question off the screen.
            await teacher.call(
                "POST", "/api/quiz/start", json={"lesson": first.id, "question": question.id}
            )
            await wait_for(pilot, lambda: isinstance(app.screen, LiveQuizScreen))
            await teacher.call("POST", "/api/quiz/close")
            await wait_for(pilot, lambda: not isinstance(app.screen, LiveQuizScreen))

            # Offline: the server goes away; progress is queued and shown in the header.
            await server.close()
            await wait_for(pilot, lambda: not client.online, what="offline")
            await wait_for(pilot, lambda: app.session.runner is not None)
            before = client.pending()
            assert isinstance(app.screen, LessonScreen)
            await pilot.press("enter")  # run the step: step_passed or step_failed, queued
            await wait_for(pilot, lambda: client.pending() > before, what="queued offline")
            await wait_for(
                pilot, lambda: "offline, " in str(app.sub_title) and "queued" in str(app.sub_title)
            )

            # Back on the same port with the same data: the queue drains by itself.
            server = await serve(data, port)
            teacher = Instructor(server)
            await wait_for(pilot, lambda: client.pending() == 0, timeout=10, what="re-sent")
            body = await teacher.call("GET", f"/api/attendees/{attendee}/events")
            checked = [
                e
                for e in body["events"]
                if e["lesson"] == second.id and e["kind"] in ("step_passed", "step_failed")
            ]
            assert len(checked) == 1, checked
            if checked[0]["kind"] == "step_failed":  # the failing check travels with it
                assert checked[0]["detail"]["message"]
            await wait_for(pilot, lambda: "classroom: connected" in str(app.sub_title))
    finally:
        await server.close()
    await asyncio.sleep(0)


def hostile_lessons() -> list[Any]:
    """The fixture lessons as a server could send them: markup in the first lesson's live
    question and its choices, and one more lesson (unknown to the app) titled with markup."""
    first = fixture_lessons()[0]
    question = first.quiz[0]
    options = tuple(
        dataclasses.replace(o, text=text)
        for o, text in zip(question.options, ("[/]", CLICK_QUIT, "[b]bold?[/b]", "x"), strict=False)
    )
    quiz = (dataclasses.replace(question, question="[/] pick [i]one[/i]", options=options),)
    extra = dataclasses.replace(first, id="not-in-the-app", title="[link=https://evil]x[/link]")
    return [dataclasses.replace(first, quiz=quiz + first.quiz[1:]), *fixture_lessons()[1:], extra]


CLICK_QUIT = "[@click=app.quit]q[/]"


@run_async
async def test_text_from_the_classroom_is_never_markup(tmp_path: Path) -> None:
    """The attendee's own name, the instructor's hints, lesson titles and live quiz text all
    come from the network: shown as typed, nothing crashes and nothing is clickable."""
    config = ServerConfig(data=tmp_path / "room", lessons=hostile_lessons())
    server = await start_server(config, "127.0.0.1", 0)
    url = f"{server.url}/j/{server.classroom.meta.join_code}"
    client = ClassroomClient(url, "[/]", state=tmp_path / "client.sqlite")
    app = attendee_app(tmp_path, client)
    opened: list[str] = []
    app.open_url = lambda url, **_: opened.append(url)  # type: ignore[method-assign]
    try:
        # Notifications are drawn (run_test leaves them out by default): they are markup too.
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            teacher = Instructor(server)
            await wait_for(pilot, lambda: client.attendee is not None, what="joined")
            await wait_for_text(pilot, "joined the classroom as [/]")
            app.clear_notifications()  # one toast at a time: a stack outgrows the screen

            await teacher.call("POST", "/api/push/hint", json={"text": f"{CLICK_QUIT} [/]"})
            await wait_for_text(pilot, f"{CLICK_QUIT} [/]")
            app.clear_notifications()
            await teacher.call("POST", "/api/push/lesson", json={"lesson": "not-in-the-app"})
            await wait_for_text(pilot, "[link=https://evil]x[/link], which")

            lesson = hostile_lessons()[0]
            await teacher.call(
                "POST",
                "/api/quiz/start",
                json={"lesson": lesson.id, "question": lesson.quiz[0].id},
            )
            await wait_for(pilot, lambda: isinstance(app.screen, LiveQuizScreen), what="quiz")
            shown = await wait_for_text(pilot, "[/] pick [i]one[/i]", "[b]bold?[/b]")
            labels = [str(b.label) for b in app.screen.query(RadioButton)]
            assert labels[:3] == ["[/]", CLICK_QUIT, "[b]bold?[/b]"], shown
            # Click the choice that would be an action: it is only chosen.
            await pilot.click(app.screen.query(RadioButton)[1])
            await pilot.pause(0.2)
            assert app.is_running and app.return_code is None
            assert app.screen.query_one(RadioSet).pressed_index == 1
            assert opened == []
    finally:
        await server.close()
