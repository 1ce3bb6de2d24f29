"""Fuzz every entry point that reads a user's file, for many more inputs than CI runs.

Run: ``python bench/fuzz_inputs.py [-n 10000] [--seed 1] [--sandbox-every 5] [--save DIR]``.
The strategies and the checks are those of ``tests/test_fuzz_inputs.py`` (``tests/fuzzkit.py``):
manifests through ``explain -f`` (and every ``--sandbox-every``-th one through ``sandbox probe``
on a real sandbox as well), probe files through ``explain --probes``, lessons through ``lesson
validate``, certificate inputs through ``certs -f``. An input passes when every command exits 0
or 2 and, on 2, prints one line naming the file (or the probe argument). The ``-n`` inputs are
shared among the kinds by weight; the script prints, per kind, the inputs, the commands run,
their exit codes, the failures (each distinct problem once, with the input saved under
``--save``) and the time. Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzkit import STRATEGIES, check
from hypothesis import HealthCheck, Phase, given, seed, settings

WEIGHTS = {"manifest": 4, "probes": 2, "lesson": 2, "certs": 2}


def run_kind(
    kind: str, count: int, seed_value: int, sandbox_every: int, save: Path, work: Path
) -> dict[str, object]:
    inputs = 0
    codes: collections.Counter[int] = collections.Counter()
    problems: dict[str, tuple[int, Path]] = {}

    @seed(seed_value)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # every input counts; failures are collected, not shrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(STRATEGIES[kind]())
    def one(data: bytes) -> None:
        nonlocal inputs
        inputs += 1
        sandbox = sandbox_every > 0 and inputs % sandbox_every == 0
        for outcome in check(kind, data, work / kind, sandbox=sandbox):
            codes[outcome.code] += 1
            if outcome.problem is None:
                continue
            key = f"{outcome.command[0]}: {outcome.problem[:160]}"
            if key in problems:
                problems[key] = (problems[key][0] + 1, problems[key][1])
                continue
            path = save / f"{kind}-{len(problems) + 1}.bin"
            path.write_bytes(data)
            problems[key] = (1, path)

    start = time.perf_counter()
    one()
    return {
        "inputs": inputs,
        "codes": dict(sorted(codes.items())),
        "problems": problems,
        "seconds": time.perf_counter() - start,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="inputs in all (default 10,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sandbox-every", type=int, default=5, metavar="K")
    parser.add_argument(
        "--kinds", nargs="*", default=sorted(STRATEGIES), choices=sorted(STRATEGIES)
    )
    parser.add_argument("--save", type=Path, default=None, help="where failing inputs go")
    args = parser.parse_args()
    save = args.save or Path(tempfile.mkdtemp(prefix="meshtutor-fuzz-"))
    save.mkdir(parents=True, exist_ok=True)
    total_weight = sum(WEIGHTS[k] for k in args.kinds)
    failed = 0
    grand = time.perf_counter()
    inputs_total = 0
    print(
        f"{'kind':<10} {'inputs':>7} {'exit 0':>7} {'exit 2':>7} {'other':>6} {'failures':>8} {'time':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="meshtutor-fuzz-work-") as work:
        for kind in args.kinds:
            count = max(1, round(args.n * WEIGHTS[kind] / total_weight))
            result = run_kind(kind, count, args.seed, args.sandbox_every, save, Path(work))
            codes: dict[int, int] = result["codes"]  # type: ignore[assignment]
            problems: dict[str, tuple[int, Path]] = result["problems"]  # type: ignore[assignment]
            other = sum(v for k, v in codes.items() if k not in (0, 2))
            failures = sum(n for n, _ in problems.values())
            failed += failures
            inputs_total += result["inputs"]  # type: ignore[operator]
            print(
                f"{kind:<10} {result['inputs']:>7} {codes.get(0, 0):>7} {codes.get(2, 0):>7} "
                f"{other:>6} {failures:>8} {result['seconds']:>7.1f}s"
            )
            for key, (n, path) in problems.items():
                print(f"    {n} x {key}  (input: {path})")
    print(
        f"{inputs_total} inputs in {time.perf_counter() - grand:.1f} s; "
        f"{failed} failure(s); failing inputs in {save}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
