"""Browsers for ``meshtutor classroom serve --web``: the server as a real subprocess, one
HTTP client with its own cookie jar per browser, and textual-serve's websocket protocol, as
textual.js speaks it (``textual_serve/static/js/textual.js``: ``new WebSocket(url +
"?width=…&height=…")``, then ``["resize", {"width": …, "height": …}]``; the app's terminal
output comes back as binary frames). Used by tests/classroom/test_web_attendee.py and
bench/classroom_web.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from classroom_helpers import spawn_serve

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

    def stop(self) -> str:
        """SIGINT, as Ctrl+C would; returns what the server wrote to stderr (once)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            return self.process.communicate(timeout=20)[1] or ""
        if self.process.stderr is not None and not self.process.stderr.closed:
            return self.process.communicate(timeout=20)[1] or ""
        return ""


def serve_web(home: Path, *args: str) -> WebRoom:
    for _ in range(5):  # --port 0 puts --web on the port after it, which may be taken
        process, lines = spawn_serve("--web", *args, home=home)
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

    def __init__(self, room: WebRoom, source: str | None = None) -> None:
        self.room = room
        # ``source``: the browser's machine, as a loopback address of its own (Linux).
        connector = aiohttp.TCPConnector(local_addr=(source, 0)) if source else None
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), connector=connector
        )

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
