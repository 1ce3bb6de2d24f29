"""What another local user could have put in a classroom's ``--data`` directory.

``--data`` may be a shared directory (``/tmp``-like, mode 1777: everyone creates files, the
sticky bit protects each). Everything meshtutor reads there must then be its own: another
user could otherwise pre-create ``wheelhouse/`` with a "meshtutor 99" wheel that the join
page's ``pip install`` prefers, ``web/seat.key`` to forge browser seats, or the database's
``-wal`` file. A file or directory is refused when it belongs to another user (root excepted:
root can change anything anyway) or when group or others may write it (then they could
replace what is in it); a symbolic link is judged as a link and as what it points to.

The one-line error names the path and says what to do, exit code 2 (``DataDirError``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from meshtutor.errors import MeshtutorError


class DataDirError(MeshtutorError):
    """A file or directory of the classroom's --data is not the user's own."""


def unsafe(path: Path, info: os.stat_result | None = None) -> str | None:
    """Why another user could have made or changed ``path`` (None: only its owner can; also
    None when it does not exist). ``info`` is its ``lstat`` when already at hand."""
    if not hasattr(os, "geteuid"):  # Windows: no owners or modes to compare
        return None
    try:
        link = info if info is not None else path.lstat()
        target = path.stat() if stat.S_ISLNK(link.st_mode) else link
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be checked ({exc.strerror or exc})"
    me = os.geteuid()
    for what in (link, target):
        if what.st_uid not in (me, 0):
            return f"belongs to another user (uid {what.st_uid})"
        if not stat.S_ISLNK(what.st_mode) and what.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"is writable by group or others (mode {stat.S_IMODE(what.st_mode):04o})"
    return None


def check_private(path: Path) -> None:
    """Raise ``DataDirError`` naming ``path`` when another user could have made or changed
    it (see ``unsafe``); a missing path is fine (meshtutor creates it owner-only)."""
    why = unsafe(path)
    if why is not None:
        raise DataDirError(
            f"{path} {why}: another user could have put what meshtutor would read there; "
            "remove it (or chmod go-w it if it is yours), or use a --data directory of yours"
        )


def check_tree(folder: Path) -> None:
    """``check_private`` on ``folder`` and everything directly in it (a wheelhouse, the
    browsers' folder: what meshtutor reads is one level deep)."""
    check_private(folder)
    try:
        entries = sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise DataDirError(f"{folder} cannot be read: {exc.strerror or exc}") from None
    for entry in entries:
        check_private(entry)


def private_dir(path: Path) -> Path:
    """Create ``path`` owner-only if missing, then check it is the user's own (another user
    may have made it first, between any check and the mkdir)."""
    path.mkdir(mode=0o700, exist_ok=True)
    check_private(path)
    return path
