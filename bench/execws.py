"""Benchmark: what ``kubectl exec`` costs on top of kubectl itself, against ``execws``.

Run: ``python bench/execws.py [--runs 20] [--kubectl PATH]``. The issue's budget for the
sandbox's API: one ``kubectl exec … curl`` at most 150 ms above kubectl's own start-up. This
measures the protocol's share of it with a command that does nothing (``echo``), on the
minimal API of ``tests/kubeapi/test_execws.py`` (version, discovery, one pod, exec), plain
HTTP on 127.0.0.1:

- ``kubectl version --client``: kubectl starting and exiting, no request;
- ``kubectl get pod p -o name``: discovery and one GET, what every exec also does first;
- ``kubectl exec p -c app -- echo hi``: the same plus the websocket exec.

Each figure is the median and the 90th percentile of ``--runs`` runs, one after another.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "kubeapi"))

from test_execws import Commands, kubectl, start_api  # noqa: E402


async def measure(binary: str, runs: int) -> None:
    commands = Commands()
    url, runner = await start_api(commands)
    rows = {
        "kubectl version --client": ("version", "--client"),
        "kubectl get pod p -o name": ("get", "pod", "p", "-o", "name"),
        "kubectl exec p -- echo hi": ("exec", "p", "-c", "app", "--", "echo", "hi"),
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, args in rows.items():
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    ran = await kubectl(binary, Path(tmp), url, *args)
                    times.append((time.perf_counter() - start) * 1000)
                    if ran.code != 0:
                        raise SystemExit(f"{label} failed: {ran.stderr.decode()}")
                times.sort()
                p90 = times[min(len(times) - 1, round(0.9 * len(times)))]
                print(f"{label:28} median {statistics.median(times):6.1f} ms   p90 {p90:6.1f} ms")
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--kubectl", default="/usr/lib/google-cloud-sdk/bin/kubectl.1.33", help="kubectl binary"
    )
    args = parser.parse_args()
    binary = shutil.which(args.kubectl) or args.kubectl
    asyncio.run(measure(binary, args.runs))


if __name__ == "__main__":
    main()
