"""Benchmark: opening the progress database, with the checks that run at every open.

Run: ``python bench/progress_open.py [--attempts 20]``. Every command and the app open the
database once; ``Progress()`` then reads the whole file (``PRAGMA quick_check``) and compares
its tables with the schema. This prints how long that takes on a database holding every
lesson's steps, hints and ``--attempts`` quiz attempts per lesson (a busy learner has a few).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from meshtutor.lessons.loader import load_lessons
from meshtutor.lessons.progress import Progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=20)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "progress.sqlite"
        progress = Progress(path)
        for lesson in load_lessons():
            for step in lesson.steps:
                progress.step_result(lesson.id, step.id, "passed")
                progress.hint_used(lesson.id, step.id, 2)
            for _ in range(args.attempts):
                attempt = None
                for question in lesson.quiz:
                    attempt = progress.quiz_answer(
                        lesson.id, attempt, question.id, "an answer " * 30, True, 1.0
                    )
        progress.close()
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            Progress(path).close()
            times.append((time.perf_counter() - started) * 1000)
        size = path.stat().st_size
    print(
        f"open with checks, {size / 1024:.0f} KiB database ({args.attempts} quiz attempts per "
        f"lesson): median {statistics.median(times):.2f} ms, best {min(times):.2f} ms"
    )


if __name__ == "__main__":
    main()
