"""The instructor page in headless Chromium with 20 simulated attendees (skipped without
Chromium): ``bench/classroom_screenshot.py`` writes a real 1600×1000 PNG."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    reason="chromium is not installed",
)
def test_the_instructor_page_screenshot(tmp_path: Path) -> None:
    out = tmp_path / "page.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "classroom_screenshot.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "MESHTUTOR_HOME": str(tmp_path / "home")},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    header = out.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1600, 1000)
    # A rendered page, not a blank one: a blank 1600×1000 PNG compresses to a few KB.
    assert 50_000 < out.stat().st_size < 500_000
