"""``classroom serve --data DIR`` creates DIR owner-only, never changes the mode of a
directory that already exists (issue 13, item 5), and refuses what another user could have
put in it."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from classroom_helpers import serve

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX modes")


def test_a_shared_sticky_directory_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: everyone writes, the sticky bit protects each file
    with serve("--data", str(shared), home=tmp_path / "home"):
        pass
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    # The token lives in the database file, which is the owner's alone.
    assert stat.S_IMODE((shared / "classroom.sqlite").stat().st_mode) == 0o600


def test_an_existing_private_or_open_directory_keeps_its_mode(tmp_path: Path) -> None:
    for mode in (0o755, 0o750, 0o700):
        folder = tmp_path / f"d{mode:o}"
        folder.mkdir()
        folder.chmod(mode)
        with serve("--data", str(folder), home=tmp_path / "home"):
            pass
        assert stat.S_IMODE(folder.stat().st_mode) == mode


def test_a_new_directory_is_created_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "room"
    old = os.umask(0o022)
    try:
        with serve("--data", str(folder), home=tmp_path / "home"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


NOBODY = 65534


def _serve(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``classroom serve`` that should refuse to start (stopped by SIGINT if it does)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "meshtutor", "classroom", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MESHTUTOR_HOME": str(home)},
    )
    try:
        out, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _shared(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    return shared


def _refused(result: subprocess.CompletedProcess[str], path: Path, why: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"meshtutor: {path} {why}"), result.stderr
    assert "Instructor token" not in result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's files needs root")
def test_another_users_files_in_a_shared_data_directory_are_refused(tmp_path: Path) -> None:
    """In a shared 1777 --data, another local user could put there first what meshtutor
    reads: a wheelhouse with a "meshtutor 99" wheel pip would prefer, the seat key that signs
    browser seats, the database's write-ahead log. Each is refused in one line, exit 2."""
    home = tmp_path / "home"
    shared = _shared(tmp_path)
    wheels = shared / "wheelhouse"
    wheels.mkdir()
    (wheels / "meshtutor-99.0-py3-none-any.whl").write_bytes(b"PK")
    os.chown(wheels, NOBODY, NOBODY)
    _refused(_serve("--data", str(shared), home=home), wheels, "belongs to another user")

    shutil.rmtree(wheels)
    wheels.mkdir()
    planted = wheels / "meshtutor-99.0-py3-none-any.whl"
    planted.write_bytes(b"PK")
    os.chown(planted, NOBODY, NOBODY)
    _refused(_serve("--data", str(shared), home=home), planted, "belongs to another user")
    shutil.rmtree(wheels)

    web = shared / "web"
    web.mkdir(mode=0o700)
    (web / "seat.key").write_bytes(os.urandom(32))
    os.chown(web / "seat.key", NOBODY, NOBODY)
    result = _serve("--data", str(shared), "--web", home=home)
    assert result.returncode == 2 and f"{web / 'seat.key'} belongs to another user" in (
        result.stderr
    ), result.stderr
    shutil.rmtree(web)

    wal = shared / "classroom.sqlite-wal"
    wal.write_bytes(b"")
    os.chown(wal, NOBODY, NOBODY)
    _refused(_serve("--data", str(shared), home=home), wal, "belongs to another user")


def test_a_wheelhouse_others_may_write_is_refused(tmp_path: Path) -> None:
    """Yours but group- or world-writable: anyone in the group could swap a wheel."""
    home = tmp_path / "home"
    shared = _shared(tmp_path)
    wheels = shared / "wheelhouse"
    wheels.mkdir()
    wheels.chmod(0o777)
    _refused(_serve("--data", str(shared), home=home), wheels, "is writable by group or others")
    wheels.chmod(0o755)
    planted = wheels / "meshtutor-99.0-py3-none-any.whl"
    planted.write_bytes(b"PK")
    planted.chmod(0o664)
    _refused(_serve("--data", str(shared), home=home), planted, "is writable by group or others")
    planted.chmod(0o644)
    with serve("--data", str(shared), home=home) as served:
        assert "Instructor token" in served.banner
