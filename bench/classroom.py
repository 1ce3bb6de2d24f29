"""Benchmark: a full classroom on loopback.

Run: ``python bench/classroom.py [--attendees 200] [--seconds 60]``. Budget (issue 8): 200
attendees each sending one progress event a second for 60 s, plus a live quiz, on the 2-core
machine: p99 latency <= 50 ms and no event lost.

Three processes share the machine's cores, as nothing would in a real room:

- the server, ``meshtutor classroom serve``, as in a workshop;
- the attendees' progress: one HTTP connection each, one event a second on a fixed schedule,
  each request timed from send to answer (the latency reported); each attendee is its own
  loopback address, as each is its own laptop (the server limits joins and connections per
  address);
- the attendees' push side: each holds a long poll open the whole time, as ``ClassroomClient``
  does, and answers the live quiz after 1-5 s of thought. It runs in its own process because
  in a room each attendee is a laptop of its own: when the quiz starts, 200 answers arrive at
  once, and in a single load-generator process handling them would delay the timing of
  unrelated progress requests, which would measure this script, not the server.

The instructor's projector (the live room stream) is open throughout. At half time the
instructor starts a live quiz; it closes ten seconds later and the results are checked.
"Lost" counts events sent but not in the server's database at the end, whatever the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

P99_BUDGET_MS = 50.0
KINDS = ["step_started", "step_failed", "hint_used", "step_passed"]


@dataclass
class Stats:
    sent: int = 0
    acknowledged: set[str] = field(default_factory=set)
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    when: list[float] = field(default_factory=list)  # seconds into the run, per latency
    lag: list[float] = field(default_factory=list)  # how late this process sent (its own load)
    stream_updates: int = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _start_server(data: Path) -> tuple[subprocess.Popen[str], str, str, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshtutor",
            "classroom",
            "serve",
            "--port",
            "0",
            "--data",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MESHTUTOR_HOME": str(data)},
    )
    assert process.stdout is not None
    url = token = code = ""
    for line in process.stdout:
        if "Instructor page:" in line:
            url = line.split()[-1].split("/#token=")[0]
        elif "Instructor token:" in line:
            token = line.split()[-1]
        elif "Join code:" in line:
            code = line.split()[-1]
        elif line.startswith("Press Ctrl+C"):
            break
    if not (url and token and code):
        process.kill()
        error = process.stderr.read() if process.stderr else ""
        raise SystemExit(f"the server did not start: {error}")
    return process, url, token, code


def address(index: int) -> str:
    """Attendee ``index``'s laptop: its own loopback address (127.0.1.1, 127.0.1.2, …;
    127.0.0.0/8 is all loopback on Linux), so the server's per-address limits see a room of
    machines, as on a venue LAN, not one client."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def session(url: str, index: int, **kwargs: Any) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(address(index), 0), limit=0)
    return aiohttp.ClientSession(url, connector=connector, **kwargs)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the progress side (this process) --------------------------------------------------------


async def _attendee(
    http: aiohttp.ClientSession,
    auth: dict[str, str],
    index: int,
    lesson: str,
    steps: list[str],
    start: float,
    args: argparse.Namespace,
    stats: Stats,
) -> None:
    """One event every 1/rate s on an absolute schedule (no drift), spread across attendees."""
    loop = asyncio.get_running_loop()
    period = 1.0 / args.rate
    n = 0
    while True:
        due = start + index / args.attendees * period + n * period
        if due - start >= args.seconds:
            return
        await asyncio.sleep(max(0.0, due - loop.time()))
        stats.lag.append((loop.time() - due) * 1000)
        kind = KINDS[n % len(KINDS)]
        event: dict[str, Any] = {
            "id": f"{index}-{n}",
            "kind": kind,
            "lesson": lesson,
            "step": steps[(n // len(KINDS)) % len(steps)],
            "detail": {"message": "expected 200, got 503"} if kind == "step_failed" else {},
            "at": time.time(),
        }
        n += 1
        stats.sent += 1
        sent = time.perf_counter()
        try:
            async with http.post("/api/events", headers=auth, json={"events": [event]}) as resp:
                await resp.read()
                if resp.status == 200:
                    stats.acknowledged.add(event["id"])
                    stats.latencies.append((time.perf_counter() - sent) * 1000)
                    stats.when.append(due - start)
                else:
                    stats.error(f"HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.error(type(exc).__name__)


async def _projector(http: aiohttp.ClientSession, instructor: dict[str, str], stats: Stats) -> None:
    """The instructor's page: the live room stream, read to the end."""
    async with http.get(
        "/api/room/stream", headers=instructor, timeout=aiohttp.ClientTimeout(total=None)
    ) as resp:
        async for line in resp.content:
            if line.startswith(b"event: room"):
                stats.stream_updates += 1


# --- the push side (its own process) ---------------------------------------------------------


async def _listen(url: str, tokens: list[str], think: float) -> dict[str, Any]:
    """Long polls for every attendee; answers quizzes. Stops when stdin closes."""
    pushes: list[float] = []  # wall-clock time each quiz push arrived
    answer_ms: list[float] = []
    errors: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def answer(
        http: aiohttp.ClientSession, auth: dict[str, str], push: dict[str, Any]
    ) -> None:
        await asyncio.sleep(random.uniform(min(1.0, think / 2), think))
        options = push["options"]
        choice = [random.randrange(len(options))] if options else push["choices"][0]
        sent = time.perf_counter()
        try:
            async with http.post(
                f"/api/quiz/{push['quiz']}/answer", headers=auth, json={"answer": choice}
            ) as resp:
                await resp.read()
                if resp.status == 200:
                    answer_ms.append((time.perf_counter() - sent) * 1000)
                else:
                    errors[f"answer HTTP {resp.status}"] = (
                        errors.get(f"answer HTTP {resp.status}", 0) + 1
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    async def poll(i: int, token: str) -> None:
        async with session(url, i, timeout=aiohttp.ClientTimeout(total=60)) as http:
            await poll_as(http, token)

    async def poll_as(http: aiohttp.ClientSession, token: str) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        since = 0
        while True:
            try:
                async with http.get(
                    "/api/pushes", params={"since": str(since), "wait": "20"}, headers=auth
                ) as resp:
                    body = await resp.json()
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            for push in body["pushes"]:
                since = max(since, push["id"])
                if push["kind"] == "quiz":
                    pushes.append(time.time())
                    task = asyncio.create_task(answer(http, auth, push))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

    pollers = [asyncio.create_task(poll(i, token)) for i, token in enumerate(tokens)]
    await asyncio.sleep(0.5)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    for task in pollers:
        task.cancel()
    await asyncio.gather(*pollers, return_exceptions=True)
    return {"pushes": pushes, "answer_ms": answer_ms, "errors": errors}


def listener_main(url: str) -> int:
    setup = json.loads(sys.stdin.readline())
    result = asyncio.run(_listen(url, setup["tokens"], setup["think"]))
    print(json.dumps(result), flush=True)
    return 0


# --- the run ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    from meshtutor.lessons.loader import load_lessons

    lesson = load_lessons()[0]
    steps = [s.id for s in lesson.steps]
    question = next(q for q in lesson.quiz if q.type == "choice")
    quiz_open = min(10.0, args.seconds / 2 - 0.5)
    with tempfile.TemporaryDirectory(prefix="meshtutor-bench-") as tmp:
        process, url, token, code = _start_server(Path(tmp))
        instructor = {"Authorization": f"Bearer {token}"}
        stats = Stats()
        listener: subprocess.Popen[str] | None = None
        try:
            connector = aiohttp.TCPConnector(limit=0)  # one connection per attendee
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:
                auths, tokens = [], []
                laptops = [session(url, i, timeout=timeout) for i in range(args.attendees)]
                for i, laptop in enumerate(laptops):
                    name = {"code": code, "name": f"attendee {i:03d}"}
                    async with laptop.post("/api/join", json=name) as resp:
                        tokens.append((await resp.json())["token"])
                        auths.append({"Authorization": f"Bearer {tokens[-1]}"})
                listener = subprocess.Popen(
                    [sys.executable, __file__, "--listener", url],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert listener.stdin is not None and listener.stdout is not None
                think = max(1.0, min(5.0, quiz_open - 2.0))
                listener.stdin.write(json.dumps({"tokens": tokens, "think": think}) + "\n")
                listener.stdin.flush()
                assert listener.stdout.readline().strip() == "ready"
                path = "/api/push/lesson"
                async with http.post(path, headers=instructor, json={"lesson": lesson.id}):
                    pass
                projector = asyncio.create_task(_projector(http, instructor, stats))
                await asyncio.sleep(0.5)
                loop = asyncio.get_running_loop()
                start = loop.time() + 0.2
                cpu_start = _cpu_seconds(process.pid)
                senders = [
                    asyncio.create_task(
                        _attendee(laptop, auth, i, lesson.id, steps, start, args, stats)
                    )
                    for i, (laptop, auth) in enumerate(zip(laptops, auths, strict=True))
                ]

                async def quiz() -> tuple[float, dict[str, Any]]:
                    await asyncio.sleep(max(0.0, start + args.seconds / 2 - loop.time()))
                    started = time.time()
                    body = {"lesson": lesson.id, "question": question.id}
                    async with http.post("/api/quiz/start", headers=instructor, json=body) as resp:
                        quiz_id = (await resp.json())["quiz"]
                    await asyncio.sleep(quiz_open)
                    body = {"quiz": quiz_id}
                    async with http.post("/api/quiz/close", headers=instructor, json=body) as resp:
                        return started, await resp.json()

                (quiz_started, results), *_ = await asyncio.gather(quiz(), *senders)
                cpu = _cpu_seconds(process.pid) - cpu_start
                projector.cancel()
                await asyncio.gather(projector, return_exceptions=True)
                listener.stdin.close()
                pushed = json.loads(listener.stdout.readline())
                listener.wait(timeout=15)
                for laptop in laptops:
                    await laptop.close()
        finally:
            if listener is not None and listener.poll() is None:
                listener.kill()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        db = sqlite3.connect(Path(tmp) / "classroom.sqlite")
        stored = {row[0] for row in db.execute("SELECT client_event_id FROM events")}
        db.close()

    if os.environ.get("BENCH_DUMP"):  # seconds-into-run and latency of each event, to plot
        rows = zip(stats.when, stats.latencies, strict=True)
        Path(os.environ["BENCH_DUMP"]).write_text("\n".join(f"{w:.3f} {ms:.2f}" for w, ms in rows))
    lost = stats.sent - len(stored)
    p50, p99 = _pct(stats.latencies, 0.50), _pct(stats.latencies, 0.99)
    push_ms = [(at - quiz_started) * 1000 for at in pushed["pushes"]]
    answer_ms = pushed["answer_ms"]
    histogram_total = sum(h["count"] for h in results["histogram"])
    board = results["leaderboard"]
    print(
        f"classroom bench: {args.attendees} attendees x {args.rate:g} event/s for "
        f"{args.seconds:g} s, live quiz at {args.seconds / 2:g} s for {quiz_open:g} s; "
        f"{os.cpu_count()} CPUs shared by the server and both load processes"
    )
    print(
        f"events: sent {stats.sent}, acknowledged {len(stats.acknowledged)}, stored "
        f"{len(stored)}, lost {lost}, errors {stats.errors or 0}"
    )
    print(
        f"event latency: p50 {p50:.1f} ms, p90 {_pct(stats.latencies, 0.9):.1f} ms, "
        f"p99 {p99:.1f} ms, p99.9 {_pct(stats.latencies, 0.999):.1f} ms, "
        f"max {max(stats.latencies, default=float('nan')):.1f} ms, "
        f"mean {statistics.fmean(stats.latencies) if stats.latencies else float('nan'):.1f} ms"
    )
    print(
        f"load generator's own send lag: p50 {_pct(stats.lag, 0.5):.1f} ms, "
        f"p99 {_pct(stats.lag, 0.99):.1f} ms"
    )
    print(
        f"live quiz: question reached {len(push_ms)}/{args.attendees} attendees "
        f"(p50 {_pct(push_ms, 0.5):.0f} ms, max {max(push_ms, default=float('nan')):.0f} ms "
        f"after start); answers acknowledged {len(answer_ms)} (p50 {_pct(answer_ms, 0.5):.1f} "
        f"ms, p99 {_pct(answer_ms, 0.99):.1f} ms), errors {pushed['errors'] or 0}; results: "
        f"{results['answered']} answered, histogram total {histogram_total}, "
        f"leader {board[0]['name'] if board else '-'}"
    )
    print(
        f"server CPU: {cpu:.1f} s in {args.seconds:g} s ({100 * cpu / args.seconds:.0f} % of "
        f"one core); projector stream updates: {stats.stream_updates}"
    )
    ok = p99 <= P99_BUDGET_MS and lost == 0 and len(answer_ms) == args.attendees
    print(
        f"verdict: {'within' if ok else 'OVER'} budget (p99 <= {P99_BUDGET_MS:g} ms, 0 lost, "
        "every quiz answer in)"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--attendees", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=1.0, help="events per second per attendee")
    parser.add_argument("--listener", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.listener:
        return listener_main(args.listener)
    if args.seconds < 6 or args.attendees < 1 or args.rate <= 0:
        parser.error("--seconds must be at least 6, --attendees at least 1, --rate above 0")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
