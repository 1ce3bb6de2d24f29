"""``meshtutor`` start-up, against DESIGN §8. Prints figures; asserts nothing.

    python bench/startup.py [--runs N]

Each run starts the app on a fresh pseudo-terminal (120×40, an empty ``MESHTUTOR_HOME``) and
measures, from the spawn:

- first frame: the lesson list is on the terminal (read from the pty, escape codes removed)
- sandbox ready: the sandbox the app warms at start (the lesson it would resume) can be probed;
  the app writes the moment to ``MESHTUTOR_READY_FILE``
- both: the later of the two, the budget's "first frame, sandbox ready to probe" (≤ 1.0 s)
- matrix: enter opens that lesson, until its probe matrix is drawn (from the keypress)
- peak RSS of the app's process (VmHWM in /proc/PID/status), after the matrix (≤ 150 MiB)

Two apps are measured: ``meshtutor`` as installed (it warms lesson 01, 3 workloads) and the same
app on a bench lesson whose topology is the 9 workloads of ``bench/sandbox.py`` (three injected
namespaces, each with sleep, httpbin and web). The second is started by this script
(``--child``), as ``run_app`` would start it, since the curriculum has no 9-workload lesson.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS, ROWS = 120, 40
TIMEOUT = 30.0

# CSI (colours, cursor moves, modes), OSC (titles, clipboard) and two-byte escapes.
ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


@dataclass
class Run:
    first_frame: float
    sandbox_ready: float
    matrix: float
    peak_rss_mib: float

    @property
    def both(self) -> float:
        return max(self.first_frame, self.sandbox_ready)


class Terminal:
    """A child process on a pty of its own, whose screen output we read as plain text."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        os.close(slave)
        self.text = b""

    def read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            with contextlib.suppress(OSError):  # EIO once the child has closed the pty
                self.text += ESCAPES.sub(b"", os.read(self.master, 1 << 16))

    def wait_for(self, needle: str, *, also: Path | None = None) -> tuple[float, float]:
        """Read until ``needle`` is on screen and (if given) the file ``also`` exists; return
        both moments (monotonic)."""
        seen = file_seen = 0.0
        wanted = needle.encode()
        deadline = time.monotonic() + TIMEOUT
        while not (seen and (file_seen or also is None)):
            if time.monotonic() > deadline:
                tail = self.text[-2000:].decode(errors="replace")
                raise SystemExit(f"no {needle!r} after {TIMEOUT} s; the terminal shows:\n{tail}")
            self.read(0.005)
            if not seen and wanted in self.text:
                seen = time.monotonic()
            if also is not None and not file_seen and also.exists() and also.read_text():
                file_seen = float(also.read_text())
        return seen, file_seen

    def send(self, keys: bytes) -> None:
        self.text = b""
        os.write(self.master, keys)

    def peak_rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
        return kib / 1024

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.master, b"\x03")  # ctrl+c: quit
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


def measure(argv: list[str], first_title: str) -> Run:
    home = Path(tempfile.mkdtemp(prefix="meshtutor-bench-"))
    ready = home / "sandbox-ready"
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "MESHTUTOR_HOME": str(home),
        "MESHTUTOR_READY_FILE": str(ready),
    }
    terminal = Terminal(argv, env)
    try:
        frame, sandbox = terminal.wait_for(first_title, also=ready)
        pressed = time.monotonic()
        terminal.send(b"\r")
        matrix, _ = terminal.wait_for("real curl probes")
        rss = terminal.peak_rss_mib()
    finally:
        terminal.close()
        shutil.rmtree(home, ignore_errors=True)
    start = terminal.started
    return Run(frame - start, sandbox - start, matrix - pressed, rss)


NINE_WORKLOADS = """\
id: bench-nine
title: Bench, nine workloads in three injected namespaces
mesh: istio
summary: The topology of bench/sandbox.py.
minutes: 1
topology:
  - apply: namespaces.yaml
{apps}
steps:
  - id: probe
    title: One probe
    prose: Nothing to read.
    actions:
      - probe: alpha/sleep=http://httpbin.beta:8000/ip
    expect:
      - probe: alpha/sleep=http://httpbin.beta:8000/ip
        code: "200"
quiz:
  - id: a
    type: choice
    question: One?
    options: [{{text: "yes", correct: true, why: "."}}, {{text: "no", why: "."}}]
  - id: b
    type: choice
    question: Two?
    options: [{{text: "yes", correct: true, why: "."}}, {{text: "no", why: "."}}]
  - id: c
    type: predict
    question: Three?
    probe: alpha/sleep=http://httpbin.beta:8000/ip
    choices: ["200", "000 (56)"]
"""

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
"""


def nine_workload_lesson(folder: Path) -> Path:
    """A lesson (and its manifests) with bench/sandbox.py's 9-workload topology."""
    manifests = folder / "manifests"
    manifests.mkdir()
    namespaces = ("alpha", "beta", "gamma")
    (manifests / "namespaces.yaml").write_text(
        "---\n".join(
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
            "  labels: {istio-injection: enabled}\n"
            for ns in namespaces
        )
    )
    for sample in ("sleep.yaml", "httpbin.yaml"):
        shutil.copy(ROOT / "manifests/samples" / sample, manifests / sample)
    (manifests / "web.yaml").write_text(WEB)
    apps = "\n".join(
        f"  - apply: {app}.yaml\n    namespace: {ns}"
        for ns in namespaces
        for app in ("sleep", "httpbin", "web")
    )
    lesson = folder / "01-bench-nine.yaml"
    lesson.write_text(NINE_WORKLOADS.format(apps=apps))
    return lesson


def child(lesson_path: str) -> None:
    """``run_app()`` with the bench lesson as the whole curriculum."""
    from meshtutor.lessons.loader import load_lesson
    from meshtutor.lessons.progress import Progress
    from meshtutor.tui.app import MeshtutorApp

    path = Path(lesson_path)
    lesson = load_lesson(path, manifests=path.parent / "manifests")
    MeshtutorApp(lessons=[lesson], progress=Progress()).run()


def summary(name: str, runs: list[Run]) -> None:
    def row(label: str, values: list[float], unit: str, budget: str = "") -> None:
        scale = 1000 if unit == "ms" else 1
        median = statistics.median(values) * scale
        low, high = min(values) * scale, max(values) * scale
        print(f"  {label:<38}{median:8.0f} {unit}  ({low:.0f}-{high:.0f})  {budget}")

    print(name)
    row("spawn -> first frame (lesson list)", [r.first_frame for r in runs], "ms")
    row("spawn -> warm sandbox ready to probe", [r.sandbox_ready for r in runs], "ms")
    row("spawn -> both", [r.both for r in runs], "ms", "budget 1000 ms")
    row("enter -> lesson's probe matrix drawn", [r.matrix for r in runs], "ms")
    row("peak RSS (VmHWM)", [r.peak_rss_mib for r in runs], "MiB", "budget 150 MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--child", metavar="LESSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    sys.path.insert(0, str(ROOT))
    from meshtutor.lessons.loader import load_lessons

    installed = shutil.which("meshtutor", path=str(Path(sys.executable).parent))
    meshtutor = [installed] if installed else [sys.executable, "-m", "meshtutor"]
    curriculum = [measure(meshtutor, load_lessons()[0].title) for _ in range(args.runs)]

    with tempfile.TemporaryDirectory() as folder:
        lesson = nine_workload_lesson(Path(folder))
        bench = [sys.executable, str(Path(__file__).resolve()), "--child", str(lesson)]
        nine = [measure(bench, "Bench, nine workloads") for _ in range(args.runs)]

    print(f"meshtutor start-up, {args.runs} runs each, median (min-max), {COLUMNS}x{ROWS} pty")
    summary(f"`{' '.join(Path(a).name for a in meshtutor)}` (warms lesson 01)", curriculum)
    summary("the same app, warming a 9-workload lesson", nine)
    print(
        textwrap.dedent("""\
        (first frame: the lesson list's first title reaches the terminal; sandbox ready: the
         app's MESHTUTOR_READY_FILE stamp; both clocks are CLOCK_MONOTONIC)""")
    )


if __name__ == "__main__":
    main()
