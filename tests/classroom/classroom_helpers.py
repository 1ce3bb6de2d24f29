"""Shared by the classroom tests: real servers on loopback, real SQLite files, real HTTP.

pytest-asyncio is not installed: each test is an ``async def`` run by ``asyncio.run`` through
``@run_async``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from meshtutor.classroom.server import RunningServer, ServerConfig, start_server
from meshtutor.lessons.loader import load_lessons

LESSONS = load_lessons()  # once for the session: loading the curriculum takes ~0.3 s
LESSON = LESSONS[0]
STEPS = [s.id for s in LESSON.steps]


def run_async(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout=30))

    return wrapper


@dataclass
class Room:
    """A running classroom and an HTTP session to it."""

    server: RunningServer
    http: aiohttp.ClientSession
    data: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def instructor(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.server.classroom.meta.instructor_token}"}

    async def join(self, name: str) -> tuple[int, dict[str, str]]:
        code = self.server.classroom.meta.join_code
        async with self.http.post("/api/join", json={"code": code, "name": name}) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        return body["attendee"], {"Authorization": f"Bearer {body['token']}"}

    async def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        async with self.http.request(method, path, headers=headers, **kwargs) as r:
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, await r.text()

    def count(self, table: str, where: str = "1") -> int:
        """Read the database file itself, as a restarted server would."""
        db = sqlite3.connect(self.data / "classroom.sqlite")
        try:
            return int(db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])
        finally:
            db.close()


def machine(url: str, address: str) -> aiohttp.ClientSession:
    """An HTTP session whose connections come from ``address``: one "machine" of a venue
    LAN, as its own loopback address (127.0.0.0/8 is all loopback on Linux)."""
    return aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(local_addr=(address, 0)))


def connect_from(url: str, source: str) -> socket.socket | None:
    """A raw TCP connection to ``url``'s server from ``source`` (None when refused)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        return socket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))
    except OSError:
        return None


async def real_join(served: Served, source: str = "127.0.4.1") -> int:
    """A real student's join, while the server is under attack: its HTTP status."""
    code = served.banner["Join code"]
    async with (
        machine(served.url, source) as http,
        http.post(
            "/api/join",
            json={"code": code, "name": "Real Student"},
            timeout=aiohttp.ClientTimeout(total=20),
        ) as response,
    ):
        return response.status


def config(data: Path, **kwargs: Any) -> ServerConfig:
    return ServerConfig(data=data, lessons=LESSONS, **kwargs)


@contextlib.asynccontextmanager
async def room(data: Path, port: int = 0, **kwargs: Any) -> AsyncIterator[Room]:
    server = await start_server(config(data, **kwargs), "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession(server.url) as http:
            yield Room(server, http, data)
    finally:
        await server.close()


def event(
    n: int | str, kind: str = "step_started", step: str | None = None, **detail: Any
) -> dict[str, Any]:
    return {
        "id": f"e-{n}",
        "kind": kind,
        "lesson": LESSON.id,
        "step": step if step is not None else STEPS[0],
        "detail": detail,
    }


@dataclass
class Served:
    """``meshtutor classroom serve`` running in a subprocess, and what its banner said."""

    process: subprocess.Popen[str]
    banner: dict[str, str]  # "Join code" → "ABCD-EFGH", "Instructor token" → …, …

    @property
    def url(self) -> str:
        return self.banner["Instructor page"].split("/#token=")[0]

    @property
    def token(self) -> str:
        return self.banner["Instructor token"]

    def stop(self, timeout: float = 15) -> str:
        """SIGINT, as Ctrl+C would; returns what it wrote to stderr (once)."""
        if self.process.returncode is not None:
            return ""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err or ""


def spawn_serve(
    *args: str, home: Path, preexec: Callable[[], None] | None = None, stderr: Any = None
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``meshtutor classroom serve --port 0 ARGS`` in its own process and read its
    banner: the lines up to "Press Ctrl+C" (all it printed, if it stopped before)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "meshtutor", "classroom", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
        text=True,
        env={**os.environ, "MESHTUTOR_HOME": str(home)},
        preexec_fn=preexec,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl+C"):
            break
    return process, lines


@contextlib.contextmanager
def serve(
    *args: str, home: Path, preexec: Callable[[], None] | None = None, stderr: Any = None
) -> Iterator[Served]:
    """Run ``meshtutor classroom serve --port 0 ARGS`` until its banner is printed."""
    process, lines = spawn_serve(*args, home=home, preexec=preexec, stderr=stderr)
    banner: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.strip().partition(":")
        if sep and value.strip():
            banner[key.strip()] = value.strip()
    served = Served(process, banner)
    try:
        assert "Instructor token" in banner, served.stop()
        yield served
    finally:
        served.stop()
