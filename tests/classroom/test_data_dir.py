"""``classroom serve --data DIR`` creates DIR owner-only, and never changes the mode of a
directory that already exists (issue 13, item 5)."""

from __future__ import annotations

import os
import stat
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
