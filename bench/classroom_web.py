"""Benchmark: browser attendees (``meshtutor classroom serve --web``).

Run: ``python bench/classroom_web.py [--sessions 3]``. Prints, for N browsers that each choose
a name and open the app's websocket (textual-serve's protocol, as textual.js speaks it):

- the processes and memory (RSS, summed over the server's descendants) per browser session;
- seconds from opening the websocket to the app's "joined the classroom" toast;
- seconds from SIGTERM to the server's exit with every session open (the issue measured
  15-18 s before the sessions were ended by the server itself);
- the same again, then SIGKILL: seconds until no app process is left (none outlived the
  server before the parent-death signal: they stayed under PID 1 with their listeners open).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

# ruff: noqa: RUF005
ANSI = re.compile(rb"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][A-Z0-9]|.)")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children.get(child, [])
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+)", status)
    return int(match[1]) / 1024 if match else 0.0


def serve(home: Path, sessions: int) -> tuple[subprocess.Popen[str], str, str]:
    for _ in range(5):
        process = subprocess.Popen(
            [sys.executable, "-m", "meshtutor", "classroom", "serve", "--port", "0", "--web"]
            + ["--web-sessions", str(sessions)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "MESHTUTOR_HOME": str(home)},
        )
        assert process.stdout is not None
        out = ""
        while "Ctrl+C" not in out:
            line = process.stdout.readline()
            if not line:
                break
            out += line
        link = re.search(r"Browser attendees: (http://[^/]+)/\?code=(\S+)", out)
        if link:
            return process, link[1], link[2]
        process.wait()
    raise SystemExit("could not start the server (ports taken?)")


async def open_session(web: str, code: str, name: str) -> tuple[aiohttp.ClientSession, Any, float]:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(f"{web}/join", data={"name": name, "code": code}) as response:
        assert response.status == 200, await response.text()
    start = time.monotonic()
    ws = await http.ws_connect(web.replace("http", "ws", 1) + "/ws?width=100&height=30")
    await ws.send_json(["resize", {"width": 100, "height": 30}])
    output = b""
    while b"joined the classroom" not in ANSI.sub(b"", output):
        message = await asyncio.wait_for(ws.receive(), 60)
        assert message.type == aiohttp.WSMsgType.BINARY, message
        output += message.data
    return http, ws, time.monotonic() - start  # the socket stays open: the session too


async def run(sessions: int, kill: bool) -> None:
    with tempfile.TemporaryDirectory() as home:
        process, web, code = serve(Path(home), sessions)
        opened = [await open_session(web, code, f"bench {i}") for i in range(sessions)]
        await asyncio.sleep(2)  # let the sandboxes settle
        apps = descendants(process.pid)
        memory = sum(rss_mib(p) for p in apps)
        joined = [seconds for _, _, seconds in opened]
        if not kill:
            print(f"{sessions} browser sessions: {len(apps)} processes under the server")
            print(
                f"  per session: {len(apps) / sessions:.1f} processes, {memory / sessions:.0f} MiB"
            )
            print(f"  websocket open → joined: median {statistics.median(joined):.2f} s")
            start = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(60)
            left = [p for p in apps if alive(p)]
            print(
                f"  SIGTERM → server exited: {time.monotonic() - start:.2f} s "
                f"(exit code {process.returncode}, {len(left)} app processes left)"
            )
        else:
            process.kill()
            start = time.monotonic()
            process.wait()
            while [p for p in apps if alive(p)] and time.monotonic() - start < 30:
                await asyncio.sleep(0.02)
            left = [p for p in apps if alive(p)]
            print(
                f"  SIGKILL → no app process left: {time.monotonic() - start:.2f} s "
                f"({len(left)} left)"
            )
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        for http, _, _ in opened:
            await http.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.sessions, kill=False))
    asyncio.run(run(args.sessions, kill=True))


if __name__ == "__main__":
    main()
