"""Where meshtutor keeps its files. ``MESHTUTOR_HOME`` overrides the user data directory."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The directory for progress, journals and keys (created on first use)."""
    override = os.environ.get("MESHTUTOR_HOME")
    if override:
        path = Path(override)
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("meshtutor", appauthor=False))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from meshtutor.errors import MeshtutorError

        where = "MESHTUTOR_HOME" if override else "the user data folder"
        raise MeshtutorError(
            f"cannot create {where} {path}: {exc.strerror}; set MESHTUTOR_HOME to a folder "
            "you can write"
        ) from None
    return path


def _bundled(name: str) -> Path:
    """A data folder shipped with meshtutor: the source tree's, else the wheel's copy."""
    here = Path(__file__).resolve().parent
    source_tree = here.parent / name
    if source_tree.is_dir():
        return source_tree
    return here / "_data" / name


def manifests_dir() -> Path:
    return _bundled("manifests")


def lessons_dir() -> Path:
    return _bundled("lessons")
