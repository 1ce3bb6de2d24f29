"""What the TUI tests share: a deterministic app on frozen fixture lessons, and waiting for
the sandbox thread without fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from textual.coordinate import Coordinate
from textual.pilot import Pilot

from meshtutor.backends.sandbox import SandboxBackend
from meshtutor.lessons.loader import load_lesson
from meshtutor.lessons.model import Lesson
from meshtutor.lessons.progress import Progress
from meshtutor.pki import ManualClock
from meshtutor.tui.app import MeshtutorApp
from meshtutor.tui.session import Session
from meshtutor.tui.widgets import ProbeMatrix

DATA = Path(__file__).parent / "data"
START = datetime(2026, 1, 1, tzinfo=UTC)
SEED = 1

#: The source and URL of the matrix cell the STRICT step turns from 200 to 000 (56).
PLAINTEXT_SOURCE = "demo/productcatalogservice:istio-proxy"
MTLS_SOURCE = "demo/productcatalogservice"
FRONTEND = "http://frontend.demo:80/"


@cache
def fixture_lessons() -> tuple[Lesson, ...]:
    paths = sorted((DATA / "lessons").glob("*.yaml"))
    return tuple(load_lesson(p, manifests=DATA / "manifests") for p in paths)


def strict_demo() -> Lesson:
    return fixture_lessons()[0]


def seeded_backend(mesh: str) -> SandboxBackend:
    """Byte-identical certificates and fixed pod IPs, on a clock that only moves when told."""
    return SandboxBackend(mesh, clock=ManualClock(START), seed=SEED)  # type: ignore[arg-type]


def make_app(progress_path: Path) -> MeshtutorApp:
    progress = Progress(progress_path)
    session = Session(progress=progress, backend_factory=seeded_backend)
    return MeshtutorApp(
        lessons=list(fixture_lessons()), progress=progress, session=session, warm=False
    )


def screen_text(app: Any) -> str:
    """The characters the learner sees on the current screen, line by line."""
    # Textual has no public "text of the screen"; the compositor's strips are exactly what a
    # terminal would be sent.
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_for(
    pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float = 10.0, what: str = ""
) -> Any:
    """Poll ``predicate`` while the app runs, until it is truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {timeout} s still waiting for {what or predicate}; the screen shows:\n"
                + screen_text(pilot.app)
            )
        await pilot.pause(0.1)


async def wait_for_text(pilot: Pilot[Any], *texts: str, timeout: float = 10.0) -> str:
    """Wait until every one of ``texts`` is on the screen; return the screen."""

    def shown() -> str | None:
        screen = screen_text(pilot.app)
        return screen if all(t in screen for t in texts) else None

    result: str = await wait_for(pilot, shown, timeout, what=" and ".join(map(repr, texts)))
    return result


def cell_text(matrix: ProbeMatrix, source: str, url: str) -> str | None:
    try:
        row, column = matrix.get_row_index(source), matrix.get_column_index(url)
    except Exception:  # the matrix is not drawn yet
        return None
    return str(matrix.get_cell_at(Coordinate(row, column)))


async def select_cell(pilot: Any, matrix: ProbeMatrix, source: str, url: str) -> None:
    """Focus the matrix and walk its cursor to a cell with the arrow keys."""
    matrix.focus()
    row, column = matrix.get_row_index(source), matrix.get_column_index(url)
    current = matrix.cursor_coordinate
    keys = ["down" if row > current.row else "up"] * abs(row - current.row)
    keys += ["right" if column > current.column else "left"] * abs(column - current.column)
    await pilot.press(*keys)
    assert matrix.cursor_coordinate == (row, column)
