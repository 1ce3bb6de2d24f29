"""A server restarted (or killed) mid-session loses no accepted event, and clients carry on
by themselves: what they queued while it was away arrives once it is back, exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
from classroom_helpers import LESSON, STEPS, event, room, run_async

from meshtutor.classroom.client import ClassroomClient


async def until(predicate: object, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@run_async
async def test_restarted_server_keeps_everything_and_clients_resend_by_themselves(
    data: Path, tmp_path: Path
) -> None:
    received: list[dict[str, object]] = []
    async with room(data) as r:
        port, code = r.server.port, r.server.classroom.meta.join_code
        url = f"{r.url}/j/{code}"
        c = ClassroomClient(url, "Ada", state=tmp_path / "client.sqlite", on_push=received.append)
        await c.start()
        before = [c.record("step_started", LESSON.id, step) for step in STEPS]
        await until(lambda: c.pending() == 0)
        attendee = c.attendee
        assert r.count("events") == len(STEPS)
    # The server is gone. The app goes on working and recording.
    during = [c.record("step_passed", LESSON.id, step) for step in STEPS]
    during.append(c.record("hint_used", LESSON.id, STEPS[0], {"count": 2}))
    await asyncio.sleep(0.6)  # the sender tries, fails, and backs off
    assert c.pending() == len(during) and not c.online
    # Back on the same port with the same data: the client delivers on its own, as the same
    # attendee, and hears pushes again.
    async with room(data, port=port) as r:
        await until(lambda: c.pending() == 0)
        assert r.count("attendees") == 1 and c.attendee == attendee
        assert r.count("events") == len(before) + len(during)
        db = sqlite3.connect(data / "classroom.sqlite")
        ids = {row[0] for row in db.execute("SELECT client_event_id FROM events")}
        db.close()
        assert ids == set(before) | set(during)
        _, grid = await r.call("GET", "/api/room", r.instructor)
        cells = grid["attendees"][0]["cells"]
        assert [cells[s]["state"] for s in STEPS] == ["passed"] * len(STEPS)
        assert cells[STEPS[0]]["hints"] == 2
        await r.call("POST", "/api/push/hint", r.instructor, json={"text": "welcome back"})
        await until(lambda: bool(received))
        assert received[0]["text"] == "welcome back"
    await c.close()


def _serve(data: Path, home: Path, port: int = 0) -> tuple[subprocess.Popen[str], str, str]:
    """``meshtutor classroom serve`` in its own process; returns it, its URL and token."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshtutor",
            "classroom",
            "serve",
            "--port",
            str(port),
            "--data",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MESHTUTOR_HOME": str(home)},
    )
    assert process.stdout is not None
    url = token = ""
    for line in process.stdout:
        if "Instructor page:" in line:
            url = line.split()[-1].split("/#token=")[0]
        if "Instructor token:" in line:
            token = line.split()[-1]
        if line.startswith("Press Ctrl+C"):
            break
    assert url and token, process.stderr.read() if process.stderr else ""
    return process, url, token


def test_a_killed_server_has_every_acknowledged_event(data: Path, tmp_path: Path) -> None:
    """SIGKILL while requests are in flight: every event answered 200 is in the database."""
    process, url, token = _serve(data, tmp_path)
    acknowledged: list[str] = []

    async def main() -> None:
        async with aiohttp.ClientSession(url) as http:
            auths = []
            code_page = await (await http.get("/")).text()
            assert "meshtutor classroom" in code_page
            meta = sqlite3.connect(data / "classroom.sqlite")
            code = meta.execute("SELECT value FROM meta WHERE key = 'join_code'").fetchone()[0]
            meta.close()
            for name in ("Ada", "Bob", "Cy", "Dee"):
                async with http.post("/api/join", json={"code": code, "name": name}) as resp:
                    auths.append({"Authorization": f"Bearer {(await resp.json())['token']}"})

            async def attendee(i: int) -> None:
                for n in range(1000):
                    ev = event(f"{i}-{n}", "step_started")
                    try:
                        async with http.post(
                            "/api/events", headers=auths[i], json={"events": [ev]}
                        ) as resp:
                            if resp.status == 200:
                                acknowledged.append(ev["id"])
                    except aiohttp.ClientError:
                        return
                    await asyncio.sleep(0.01)

            async def killer() -> None:
                await asyncio.sleep(0.5)
                process.send_signal(signal.SIGKILL)

            await asyncio.gather(killer(), *(attendee(i) for i in range(4)))

    try:
        asyncio.run(main())
    finally:
        process.kill()
        process.wait()
    assert len(acknowledged) > 20
    db = sqlite3.connect(data / "classroom.sqlite")
    stored = {row[0] for row in db.execute("SELECT client_event_id FROM events")}
    db.close()
    assert set(acknowledged) <= stored

    # The same --data resumes the room: same join code and instructor token.
    process, url2, token2 = _serve(data, tmp_path)
    try:
        assert token2 == token

        async def check() -> None:
            async with (
                aiohttp.ClientSession(url2) as http,
                http.get("/api/room", headers={"Authorization": f"Bearer {token}"}) as resp,
            ):
                grid = await resp.json()
                assert grid["total"] == 4

        asyncio.run(check())
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0 and "Classroom stopped" in out
