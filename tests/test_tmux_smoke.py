"""``meshtutor`` in a real terminal: tmux runs it, we read the pane as a learner would see it.

Opens the first lesson, runs its first step, finds the probe matrix, quits, and checks the
process exited cleanly. Skipped where tmux is missing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from meshtutor.lessons.loader import load_lessons

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

ROOT = Path(__file__).resolve().parents[1]


class Tmux:
    """One detached session on a private tmux server (never the user's own)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.session = "meshtutor"

    def __call__(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["tmux", "-S", str(self.socket), "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
        )
        return result.stdout

    def pane(self) -> str:
        return self("capture-pane", "-p", "-t", self.session)

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.pane()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"after {timeout} s no {what} on the pane:\n{screen}")
            time.sleep(0.1)

    def kill(self) -> None:
        self("kill-server", check=False)

    def start_meshtutor(self, home: Path, width: int = 120, height: int = 40) -> None:
        """``meshtutor`` with its data in ``home``, in a new session of ``width`` × ``height``.

        The shell reports the exit status, then keeps the pane open: tmux's
        #{pane_dead_status} is sometimes never filled in, and the last output of a pane that
        dies can be lost."""
        command = (
            shlex.join(["env", f"MESHTUTOR_HOME={home}", sys.executable, "-m", "meshtutor"])
            + '; echo "meshtutor exited with status $?"; sleep 60'
        )
        self(
            "new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height),
            "-c", str(ROOT), command,
        )  # fmt: skip


def test_meshtutor_opens_a_lesson_runs_a_step_and_quits(tmp_path: Path) -> None:
    first = load_lessons()[0]
    tmux = Tmux(tmp_path / "tmux.sock")
    try:
        tmux.start_meshtutor(tmp_path / "home")
        home = tmux.wait_for(lambda s: "lessons done" in s, "lesson list")
        assert first.title in home

        tmux("send-keys", "-t", tmux.session, "Enter")  # the cursor starts on the first lesson
        tmux.wait_for(
            lambda s: "probe matrix" in s and "real curl probes" in s, "probe matrix", timeout=30
        )
        tmux("send-keys", "-t", tmux.session, "Enter")  # run the first step
        screen = tmux.wait_for(
            lambda s: "step passed" in s or "not yet" in s, "step result", timeout=30
        )
        assert "✔ step passed" in screen
        assert "probe matrix" in screen
        assert " 200 " in screen

        tmux("send-keys", "-t", tmux.session, "Escape")
        tmux.wait_for(lambda s: "lessons done" in s, "lesson list again")
        tmux("send-keys", "-t", tmux.session, "q")
        screen = tmux.wait_for(lambda s: "meshtutor exited with status" in s, "exit", timeout=15)
        assert "meshtutor exited with status 0" in screen
        assert "Traceback" not in screen
    finally:
        tmux.kill()
