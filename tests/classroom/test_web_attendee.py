"""``meshtutor classroom serve --web`` as browsers use it: a real server subprocess, a real
HTTP client with a cookie jar for each browser, and textual-serve's own websocket protocol
(``["resize", …]`` in, the app's terminal output out) driving real app processes.

Chromium is not installed here, so no test runs textual.js itself; what it would send is what
these tests send (``textual_serve/static/js/textual.js``: ``new WebSocket(url + "?width=…")``,
then ``["resize", {"width": …, "height": …}]``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from classroom_helpers import run_async

from meshtutor.tui.web_server import SeatKey

# Terminal control sequences, to read the app's output as text.
ANSI = re.compile(rb"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][A-Z0-9]|.)")


@dataclass
class WebRoom:
    process: subprocess.Popen[str]
    out: str
    web: str  # the browsers' server, http://127.0.0.1:PORT
    link: str  # the printed link, with ?code=
    code: str
    api: str  # the classroom server
    token: str

    async def names(self) -> list[str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{self.api}/api/room", headers={"Authorization": f"Bearer {self.token}"}
            ) as response,
        ):
            return [a["name"] for a in (await response.json())["attendees"]]

    def apps(self) -> list[int]:
        """The server's descendants: the browsers' app processes and what they started."""
        return descendants(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.communicate(timeout=20)


def serve_web(home: Path, *args: str) -> WebRoom:
    for _ in range(5):  # --port 0 puts --web on the port after it, which may be taken
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meshtutor",
                "classroom",
                "serve",
                "--port",
                "0",
                "--web",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MESHTUTOR_HOME": str(home)},
        )
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or "Ctrl+C" not in lines[-1]:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        out = "".join(lines)
        if "Ctrl+C" not in out:
            _, err = process.communicate(timeout=10)
            assert "address already in use" in err, err
            continue
        link = re.search(r"Browser attendees: (\S+)", out)
        code = re.search(r"Join code:\s+(\S+)", out)
        token = re.search(r"Instructor token:\s+(\S+)", out)
        api = re.search(r"Instructor page:\s+(http://[^/#]+)", out)
        assert link and code and token and api, out
        web = link[1].split("/?", 1)[0]
        return WebRoom(process, out, web, link[1], code[1], api[1], token[1])
    raise AssertionError("no free pair of ports")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children.get(child, [])
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent to reap it is dead: it holds no socket)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until_dead(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


class Browser:
    """One browser: its own cookies, the pages, and the app's websocket."""

    def __init__(self, room: WebRoom) -> None:
        self.room = room
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.http.close()

    async def get(self, url: str | None = None) -> tuple[int, str]:
        async with self.http.get(url or self.room.web + "/") as response:
            return response.status, await response.text()

    async def join(self, name: str, code: str) -> tuple[int, str]:
        data = {"name": name, "code": code}
        async with self.http.post(self.room.web + "/join", data=data) as response:
            return response.status, await response.text()

    async def open_app(self) -> aiohttp.ClientWebSocketResponse:
        url = self.room.web.replace("http", "ws", 1) + "/ws?width=100&height=30"
        ws = await self.http.ws_connect(url)
        await ws.send_json(["resize", {"width": 100, "height": 30}])
        return ws


async def screen_shows(ws: aiohttp.ClientWebSocketResponse, text: str, timeout: float = 30) -> str:
    """Read the app's terminal output until ``text`` is in it."""
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(ws.receive(), 1)
        except TimeoutError:
            continue
        if message.type != aiohttp.WSMsgType.BINARY:
            raise AssertionError(f"the app's websocket ended ({message.type}) before {text!r}")
        output += message.data
        shown = ANSI.sub(b"", output).decode("utf-8", "replace")
        if text in shown:
            return shown
    raise AssertionError(f"no {text!r} from the app in {timeout} s")


async def closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return True
    return False


def test_a_seat_cookie_is_signed_for_one_room(tmp_path: Path) -> None:
    key = SeatKey(tmp_path)
    cookie = key.seal("A" * 22, "Ada")
    assert key.open(cookie) == ("A" * 22, "Ada")
    assert SeatKey(tmp_path).open(cookie) == ("A" * 22, "Ada")  # the same room, restarted
    browser, _, mac = cookie.split(".")
    other_name = ".".join([browser, "Qm9i", mac])  # "Bob"
    assert key.open(other_name) is None
    (tmp_path / "other").mkdir()
    assert SeatKey(tmp_path / "other").open(cookie) is None  # another room's key
    assert key.open("../../etc.x.y") is None and key.open(None) is None
    assert (tmp_path / "seat.key").stat().st_mode & 0o777 == 0o600


@run_async
async def test_a_browser_names_itself_and_a_reload_is_the_same_attendee(tmp_path: Path) -> None:
    """A page load costs nothing until a name and the code are given; the app then joins
    under that name, a reload (or a second tab) replaces the app without a new guest, and
    past the cap (here 1) a page load gets a page saying so and no process."""
    room = serve_web(tmp_path, "--web-sessions", "1")
    ada, bob = Browser(room), Browser(room)
    try:
        status, page = await ada.get(room.link)
        assert status == 200 and 'name="name"' in page and f'value="{room.code}"' in page
        assert "textual.js" not in page and room.apps() == []

        status, page = await ada.join("Ada Lovelace", "ABCDEF")
        assert status == 403 and "is not this classroom" in page
        status, page = await ada.join("  ", room.code)
        assert status == 400 and "name must not be empty" in page
        status, page = await ada.join("Ada Lovelace", room.code.lower())
        assert status == 200 and "textual.js" in page  # redirected to the app's page
        # Every asset of the app's page comes from this server (offline rooms).
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        local = [a for a in assets if a.startswith(room.web)]
        assert {a.rsplit("/", 1)[1] for a in local} >= {"textual.js", "xterm.css"}
        for asset in local:
            assert (await ada.get(asset))[0] == 200
        assert room.apps() == []  # still no process: the page's websocket starts it

        first = await ada.open_app()
        await screen_shows(first, "joined the classroom as Ada Lovelace")
        apps = room.apps()
        assert apps and await room.names() == ["Ada Lovelace"]

        # The room is full: another browser gets a page saying so, and no process.
        status, page = await bob.get()
        assert status == 503 and "browser seats are taken" in page
        assert (await bob.join("Bob", room.code))[0] == 503  # seated, but no free seat
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await bob.open_app()
        assert refused.value.status == 503
        assert set(room.apps()) == set(apps)

        # A reload: the page's websocket closes, a new one opens with the same cookie.
        await first.close()
        second = await ada.open_app()
        await screen_shows(second, "joined the classroom as Ada Lovelace")
        assert wait_until_dead(apps, 5) == []
        # A second tab: the first tab's app ends (one app per browser, one home).
        third = await ada.open_app()
        assert await closed(second)
        await screen_shows(third, "joined the classroom as Ada Lovelace")
        assert await room.names() == ["Ada Lovelace"]  # one attendee all along, no guest
        homes = [p for p in (tmp_path / "classroom" / "web").iterdir() if p.is_dir()]
        assert len(homes) == 1 and (homes[0] / "classroom.sqlite").exists()
    finally:
        await ada.close()
        await bob.close()
        room.stop()


@run_async
async def test_a_killed_server_leaves_no_app_behind(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup in the server: each app dies with it (PR_SET_PDEATHSIG)
    instead of living on under PID 1 with its sandbox's listeners open."""
    room = serve_web(tmp_path)
    ada = Browser(room)
    apps: list[int] = []
    try:
        await ada.join("Ada", room.code)
        ws = await ada.open_app()
        await screen_shows(ws, "joined the classroom as Ada")
        apps = room.apps()
        assert apps
        room.process.kill()
        room.process.wait(timeout=10)
        assert wait_until_dead(apps, 5) == []
    finally:
        await ada.close()
        room.stop()
        for pid in apps:  # what a failed test would leave behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@run_async
async def test_sigterm_with_sessions_open_exits_promptly(tmp_path: Path) -> None:
    """Each app gets SIGTERM and one second before its process group is killed, all at
    once (bench/classroom_web.py prints the time it takes; it used to be 15-18 s)."""
    room = serve_web(tmp_path)
    browsers = [Browser(room), Browser(room)]
    try:
        sockets: list[Any] = []
        for name, browser in zip(("Ada", "Bob"), browsers, strict=True):
            await browser.join(name, room.code)
            sockets.append(await browser.open_app())
        for name, ws in zip(("Ada", "Bob"), sockets, strict=True):
            await screen_shows(ws, f"joined the classroom as {name}")
        apps = room.apps()
        room.process.send_signal(signal.SIGTERM)
        out, _ = room.process.communicate(timeout=10)
        assert room.process.returncode == 0
        assert "Classroom stopped" in out
        assert [p for p in apps if alive(p)] == []
    finally:
        for browser in browsers:
            await browser.close()
        room.stop()


@run_async
async def test_wrong_join_codes_lock_the_address_out(tmp_path: Path) -> None:
    room = serve_web(tmp_path)
    browser = Browser(room)
    try:
        for _ in range(5):
            assert (await browser.join("Eve", "AAAAAA"))[0] == 403
        status, page = await browser.join("Eve", room.code)  # even the right code, for now
        assert status == 429 and "wait a minute" in page
        assert room.apps() == []
    finally:
        await browser.close()
        room.stop()
