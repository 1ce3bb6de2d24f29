"""Does the app stay responsive while a 9×9 probe matrix runs? Prints figures; asserts nothing.

    python bench/ui_responsiveness.py

Opens the 9-workload bench lesson of ``bench/startup.py`` headless, sets a 9 sources × 9
destinations matrix (81 real curl probes through mTLS sidecars, on the sandbox thread), and
measures how late a 10 ms timer on the UI's event loop fires while the matrix runs: the worst
lag is how long a key press could wait.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from startup import nine_workload_lesson  # noqa: E402


async def main() -> None:
    from meshtutor.lessons.loader import load_lesson
    from meshtutor.lessons.progress import Progress
    from meshtutor.tui.app import MeshtutorApp
    from meshtutor.tui.screens.lesson import LessonScreen
    from meshtutor.tui.session import MatrixSpec
    from meshtutor.tui.widgets import ProbeMatrix

    folder = Path(tempfile.mkdtemp())
    os.environ["MESHTUTOR_HOME"] = str(folder / "home")
    path = nine_workload_lesson(folder)
    lesson = load_lesson(path, manifests=path.parent / "manifests")
    app = MeshtutorApp(lessons=[lesson], progress=Progress(), warm=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("enter")
        for _ in range(200):
            await pilot.pause(0.05)
            if isinstance(app.screen, LessonScreen) and app.session.runner is not None:
                break
        screen = app.screen
        assert isinstance(screen, LessonScreen)
        cluster = app.session.runner.backend.cluster
        sources = [f"{p.namespace}/{p.deployment}" for p in cluster.pods()]
        urls = [f"http://{s.name}.{s.namespace}:{s.ports[0].port}/" for s in cluster.services()]
        screen.matrix_spec = MatrixSpec(tuple(sources[:9]), tuple(urls[:9]))
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                start = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append((time.perf_counter() - start - 0.01) * 1000)

        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        await screen.refresh_mesh()
        elapsed = time.perf_counter() - started
        done.set()
        await tick
        matrix = screen.query_one(ProbeMatrix)
        cells = len(matrix._results)  # a bench may look inside
    print(f"9x9 matrix: {cells} real curl probes in {elapsed * 1000:.0f} ms")
    print(
        f"UI event loop lag while it ran: median {statistics.median(lags):.1f} ms, "
        f"p99 {sorted(lags)[int(len(lags) * 0.99) - 1]:.1f} ms, worst {max(lags):.1f} ms "
        f"({len(lags)} ticks of 10 ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
