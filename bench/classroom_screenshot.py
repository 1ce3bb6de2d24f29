"""Screenshot of the classroom instructor page with 20 simulated attendees (headless Chromium).

    python bench/classroom_screenshot.py [--out docs/screenshots/instructor-page.png]
        [--dashboard docs/screenshots/dashboard.png]

Starts a classroom server on loopback with a temporary data directory, makes 20 attendees join
and report progress in varied states (passed, failed with a message, working, not started,
hints used; a few idle long enough to count as stuck), opens a live quiz that 14 of them
answer, then asks ``chromium --headless`` for a screenshot of ``/#token=…``. Needs the
``chromium`` Debian package (``apt-get install -y chromium``). With ``--dashboard``, the same
room is also shown in ``meshtutor classroom dashboard`` (Textual, 180×48): its SVG screenshot
is rendered to PNG by the same Chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from meshtutor.classroom.limits import LOOPBACK
from meshtutor.classroom.server import ServerConfig, start_server
from meshtutor.lessons.loader import load_lessons

NAMES = [
    "Ada Lovelace", "Alan Turing", "Barbara Liskov", "Brian Kernighan", "Claude Shannon",
    "Dennis Ritchie", "Donald Knuth", "Edsger Dijkstra", "Frances Allen", "Grace Hopper",
    "Hedy Lamarr", "John McCarthy", "Ken Thompson", "Leslie Lamport", "Linus Torvalds",
    "Margaret Hamilton", "Niklaus Wirth", "Radia Perlman", "Tim Berners-Lee", "Vint Cerf",
]  # fmt: skip
FAILURES = [
    "expected 200, got 503 (upstream connect error)",
    "expected 403 (RBAC: access denied), got 200",
    "mTLS: peer certificate not trusted (unknown CA)",
    "connection refused: reviews:9080",
    "expected 200, got 000 (56: connection reset by peer)",
]
# Attendees idle this many minutes (the page's default stuck threshold is 5).
STUCK = {"Brian Kernighan": 12.0, "Hedy Lamarr": 7.5, "Niklaus Wirth": 23.0, "Vint Cerf": 9.0}


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def progress(rng: random.Random, lesson: str, steps: list[str], i: int) -> list[dict[str, Any]]:
    """A plausible history: some steps passed, then the current one working or failing."""
    events: list[dict[str, Any]] = [{"id": "start", "kind": "lesson_started", "lesson": lesson}]
    reached = i % (len(steps) + 1)  # 0 … all steps passed
    n = 0

    def add(kind: str, step: str, **detail: Any) -> None:
        nonlocal n
        n += 1
        events.append(
            {"id": f"e{n}", "kind": kind, "lesson": lesson, "step": step, "detail": detail}
        )

    for step in steps[:reached]:
        add("step_started", step)
        for _ in range(rng.choice([0, 0, 1, 2])):
            add("step_failed", step, message=rng.choice(FAILURES))
        if rng.random() < 0.3:
            add("hint_used", step)
        add("step_passed", step)
    if reached < len(steps) and i % 7 != 3:  # a few have not started anything yet
        step = steps[reached]
        add("step_started", step)
        if i % 3 == 0:
            for _ in range(rng.randint(1, 4)):
                add("step_failed", step, message=rng.choice(FAILURES))
            add("hint_used", step)
    elif reached == len(steps):
        events.append({"id": "done", "kind": "lesson_done", "lesson": lesson})
    return events


async def populate(url: str, token: str, join_code: str, data: Path) -> None:
    rng = random.Random(8)
    lessons = load_lessons()
    lesson = lessons[0]
    steps = [s.id for s in lesson.steps]
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(url) as http:
        async with http.post("/api/push/lesson", json={"lesson": lesson.id}, headers=auth) as r:
            assert r.status == 200, await r.text()
        tokens: dict[str, str] = {}
        for i, name in enumerate(NAMES):
            async with http.post("/api/join", json={"code": join_code, "name": name}) as r:
                body = await r.json()
            tokens[name] = body["token"]
            events = progress(rng, lesson.id, steps, i)
            async with http.post(
                "/api/events",
                json={"events": events},
                headers={"Authorization": f"Bearer {body['token']}"},
            ) as r:
                assert r.status == 200, await r.text()
        question = next(q for q in lesson.quiz if q.type == "choice")
        async with http.post(
            "/api/quiz/start", json={"lesson": lesson.id, "question": question.id}, headers=auth
        ) as r:
            quiz = (await r.json())["quiz"]
        right = [i for i, o in enumerate(question.options) if o.correct]
        wrong = [i for i, o in enumerate(question.options) if not o.correct]
        for i, name in enumerate(NAMES[:14]):
            pick = right if i % 3 != 1 else [wrong[i % len(wrong)]]
            await asyncio.sleep(0.05)
            async with http.post(
                f"/api/quiz/{quiz}/answer",
                json={"answer": pick},
                headers={"Authorization": f"Bearer {tokens[name]}"},
            ) as r:
                assert r.status == 200, await r.text()
    # Back-date the stuck attendees' last progress (what minutes-since-progress is made of).
    db = sqlite3.connect(data / "classroom.sqlite")
    with db:
        for name, minutes in STUCK.items():
            db.execute(
                "UPDATE attendees SET last_progress_at = ? WHERE name = ?",
                (time.time() - minutes * 60, name),
            )
    db.close()


async def shoot(browser: str, url: str, out: Path, profile: Path, size: str) -> None:
    process = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=4000",
        f"--window-size={size}",
        f"--screenshot={out.resolve()}",
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.wait_for(process.wait(), timeout=60)


async def dashboard_svg(url: str, token: str, folder: Path) -> Path:
    from meshtutor.tui.dashboard import DashboardApp

    app = DashboardApp(url, token, refresh_seconds=0.5)
    async with app.run_test(size=(180, 48)) as pilot:
        table = app.query_one("#room")
        for _ in range(50):
            await pilot.pause(0.1)
            if getattr(table, "row_count", 0) == len(NAMES):
                break
        await pilot.pause(0.3)
        app.save_screenshot("dashboard.svg", path=str(folder))
    return folder / "dashboard.svg"


async def main(out: Path, dashboard: Path | None = None) -> int:
    browser = chromium()
    if browser is None:
        print("chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "room"
        server = await start_server(
            # The 20 simulated laptops all connect from this machine: exempt loopback from
            # the per-address join and connection limits, as --web does.
            ServerConfig(data=data, title="Mesh 101 workshop", trusted=LOOPBACK),
            "127.0.0.1",
            0,
        )
        try:
            meta = server.classroom.meta
            await populate(server.url, meta.instructor_token, meta.join_code, data)
            server.classroom._changed()  # the back-dated rows: recompute the grid
            out.parent.mkdir(parents=True, exist_ok=True)
            url = f"{server.url}/#token={meta.instructor_token}"
            await shoot(browser, url, out, Path(tmp) / "profile", "1600,1000")
            if dashboard is not None:
                svg = await dashboard_svg(server.url, meta.instructor_token, Path(tmp))
                dashboard.parent.mkdir(parents=True, exist_ok=True)
                await shoot(browser, svg.as_uri(), dashboard, Path(tmp) / "profile2", "1800,1250")
        finally:
            await server.close()
    if not out.exists():
        print("chromium wrote no screenshot", file=sys.stderr)
        return 1
    for path in (out, dashboard):
        if path is not None and path.exists():
            print(f"{path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots/instructor-page.png"))
    parser.add_argument("--dashboard", type=Path, default=None, help="also the Textual dashboard")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.out, args.dashboard)))
