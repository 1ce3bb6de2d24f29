"""Benchmark: browser attendees (``meshtutor classroom serve --web``).

Run: ``python bench/classroom_web.py [--sessions 3]``. Prints, for N browsers that each choose
a name and open the app's websocket (textual-serve's protocol, as textual.js speaks it):

- the processes and memory (RSS, summed over the server's descendants) per browser session;
- seconds from opening the websocket to the app's "joined the classroom" toast;
- seconds from SIGTERM to the server's exit with every session open (15-18 s before the
  server ended the sessions itself);
- the same again, then SIGKILL: seconds until no app process is left (before the
  parent-death signal they lived on under PID 1 with their listeners open).

The browsers are the tests' (tests/classroom/web_helpers.py), so both drive the same protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "classroom"))

from web_helpers import Browser, alive, screen_shows, serve_web, wait_until_dead


def rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+)", status)
    return int(match[1]) / 1024 if match else 0.0


async def run(sessions: int, kill: bool) -> None:
    with tempfile.TemporaryDirectory() as home:
        room = serve_web(Path(home), "--web-sessions", str(sessions))
        browsers = [Browser(room) for _ in range(sessions)]
        joined = []
        sockets = []  # held open: a session lasts as long as its websocket
        for i, browser in enumerate(browsers):
            await browser.join(f"bench {i}", room.code)
            start = time.monotonic()
            sockets.append(await browser.open_app())
            await screen_shows(sockets[-1], f"joined the classroom as bench {i}", timeout=60)
            joined.append(time.monotonic() - start)
        await asyncio.sleep(2)  # let the sandboxes settle
        apps = room.apps()
        process = room.process
        if not kill:
            memory = sum(rss_mib(p) for p in apps)
            print(f"{sessions} browser sessions: {len(apps)} processes under the server")
            print(
                f"  per session: {len(apps) / sessions:.1f} processes, {memory / sessions:.0f} MiB"
            )
            print(f"  websocket open → joined: median {statistics.median(joined):.2f} s")
            start = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(60)
            print(
                f"  SIGTERM → server exited: {time.monotonic() - start:.2f} s "
                f"(exit code {process.returncode}, "
                f"{sum(alive(p) for p in apps)} app processes left)"
            )
        else:
            process.kill()
            start = time.monotonic()
            process.wait()
            left = wait_until_dead(apps, 30)
            print(
                f"  SIGKILL → no app process left: {time.monotonic() - start:.2f} s "
                f"({len(left)} left)"
            )
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        for browser in browsers:
            await browser.close()
        room.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.sessions, kill=False))
    asyncio.run(run(args.sessions, kill=True))


if __name__ == "__main__":
    main()
