"""The classroom under attack, small and bounded: ``bench/classroom_attack.py`` with 20
attendees at one event a second for 4 s while 200 anonymous websockets and a join flood hit
the server (the full-size run and its timings are the bench's; no timing is asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ATTENDEES, ANONYMOUS, FLOODERS = 20, 200, 20


@pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.0/8 loopback, /proc")
def test_attendees_lose_nothing_while_the_server_is_attacked(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "classroom_attack.py"),
            "--json",
            "--attendees",
            str(ATTENDEES),
            "--seconds",
            "4",
            "--anonymous",
            str(ANONYMOUS),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        env={**os.environ, "MESHTUTOR_HOME": str(tmp_path)},
        cwd=ROOT,
    )
    figures = json.loads(result.stdout.splitlines()[-1])
    assert figures["joined"] == ATTENDEES, figures  # every real attendee got in
    assert figures["sent"] >= ATTENDEES * 3 and figures["lost"] == 0, figures
    assert figures["errors"] == {}, figures
    attack = figures["attack"]
    # No anonymous socket was upgraded: each was refused before (401), or over a cap.
    assert attack.get("ws 401", 0) > 0 and not attack.get("ws 101"), attack
    assert attack.get("join 429", 0) > 0, attack  # the flood hit the limits
    # Descriptors stay within what the clients hold open, plus the server's own few.
    assert figures["fds_max"] <= ANONYMOUS + 3 * ATTENDEES + FLOODERS + 100, figures
    # The log stayed a few lines whatever the attack did.
    assert figures["server_stderr_lines"] <= FLOODERS + 5, figures
