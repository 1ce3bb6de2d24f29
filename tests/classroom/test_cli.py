"""``meshtutor classroom serve``: what it prints, and one-line errors for user mistakes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def _run(*args: str, home: Path, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshtutor", "classroom", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MESHTUTOR_HOME": str(home)},
    )


def test_web_with_its_port_busy_is_one_line(tmp_path: Path) -> None:
    """--web serves browsers on the classroom's port + 1 (tests/classroom/test_web_attendee.py
    runs it); when that port is taken, one line says so."""
    for _ in range(20):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1] - 1
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue  # the port below is taken too: try another pair
            result = _run("--web", "--port", str(port), home=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith(f"meshtutor: --web on port {port + 1}")
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
        return
    raise AssertionError("no free port below a busy one")


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("--port", str(port), home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"meshtutor: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_lan_binding_prints_the_join_url_and_a_warning(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshtutor",
            "classroom",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--title",
            "Mesh 101",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MESHTUTOR_HOME": str(tmp_path)},
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl+C"):
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    text = "".join(lines)
    assert "'Mesh 101'" in text
    shown = next(line.split()[-1] for line in lines if "Join code:" in line)
    code = shown.replace("-", "")
    assert shown == f"{code[:4]}-{code[4:]}"  # two groups of four, easy to read off a projector
    assert len(code) == 8 and not set(code) & set("01OIL")
    assert f"/j/{code}" in text and "Instructor token:" in text
    assert "warning: listening on 0.0.0.0: everyone on this network can reach" in err
    assert process.returncode == 0
    # The database, with the token in it, is readable by its owner only.
    assert (tmp_path / "classroom").stat().st_mode & 0o077 == 0
    assert (tmp_path / "classroom" / "classroom.sqlite").stat().st_mode & 0o077 == 0


def test_a_bad_trust_is_one_line(tmp_path: Path) -> None:
    result = _run("--trust", "10.0.0.0/33", home=tmp_path)
    assert result.returncode == 2
    assert "--trust" in result.stderr and "'10.0.0.0/33' is not an address or a network" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
