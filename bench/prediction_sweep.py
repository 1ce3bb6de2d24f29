"""Prediction vs observation over every shipped lesson. Prints figures; exits 1 on any
disagreement (so it can gate a release), 0 otherwise.

    python bench/prediction_sweep.py [--no-matrix] [--no-wide] [LESSON_ID ...]

For each lesson (default: all): the topology, every step's actions, probes, expectations and
solution, every predict/manifest quiz question on a fresh sandbox; after the topology and after
each step, the lesson's probe matrix (as the app shows it) and the wide probes (every pod and
istio-proxy container to every Service port, https:// to ingresses, curl from outside to every
external port). Each probe is a real curl through the sandbox; its HTTP code, curl exit code and
mutual TLS flag are compared with the policy engine's prediction. CI runs a subset
(tests/sandbox/test_lessons_agree.py); this runs everything.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests/sandbox"))

from lesson_sweep import describe, lessons_by_id, sweep  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson ids (default: every lesson)")
    parser.add_argument("--no-matrix", action="store_true", help="skip the probe matrices")
    parser.add_argument("--no-wide", action="store_true", help="skip the wide probes")
    args = parser.parse_args()
    lessons = lessons_by_id(args.lessons or None)
    report = asyncio.run(sweep(lessons, matrix=not args.no_matrix, wide=not args.no_wide))
    print(describe(report))
    if report.seconds:
        print(f"{report.probes / report.seconds:.0f} probes/s (sandbox boots included)")
    for line in report.mismatches:
        print(" -", line)
    return 1 if report.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
