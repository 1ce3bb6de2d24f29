"""Classrooms: an instructor's server that attendees' apps report their progress to.

    protocol.py   what travels on the wire and how it is validated (shared by both sides)
    store.py      the server's SQLite file: one group-committing writer, WAL readers
    server.py     the aiohttp server: attendees, the instructor's API and page, live quizzes
    client.py     ClassroomClient: join, an offline outbox, pushes (asyncio + aiohttp only)
    static/       the instructor's page and the join page (self-contained HTML)

Names are imported lazily, so importing the client does not load the server.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClassroomClient": "meshtutor.classroom.client",
    "ClassroomError": "meshtutor.classroom.client",
    "ClassroomOffline": "meshtutor.classroom.client",
    "ClassroomRemoved": "meshtutor.classroom.client",
    "ServerConfig": "meshtutor.classroom.server",
    "create_app": "meshtutor.classroom.server",
    "start_server": "meshtutor.classroom.server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
