"""Benchmark: what a pod's shell (``meshtutor.kubeapi.shell``) adds to a ``kubectl exec``.

Run: ``python bench/exec_shell.py``. The host is a stand-in whose curl answers at once, so
the figures are the shell's own cost, not curl's (a real curl process costs ~9 ms) nor the
API's. Budget context (issue 14): one ``kubectl exec curl`` may cost at most 150 ms above
kubectl's own start-up; the shell's share should be a small fraction of a millisecond.

Printed: the median time of an exec of ``curl …`` and of ``sh -c 'curl … | grep'``; the rate
of a busy loop (commands a second, including the pauses :mod:`limits` imposes on it); the
throughput of a pipe; the peak memory of the loop; the import time of the module.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshtutor.kubeapi.shell import run


class _Out:
    def __init__(self) -> None:
        self.size = 0

    async def write(self, data: bytes) -> None:
        self.size += len(data)


class _Host:
    pod = "sleep-7c8f9d6b5-x2kqj"
    namespace = "foo"
    container = "sleep"

    def environ(self) -> dict[str, str]:
        return {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}

    def read_file(self, path: str) -> bytes | None:
        return None

    async def curl(self, argv: list[str], stdin: bytes) -> tuple[bytes, bytes, int]:
        return b"ok 200\n", b"", 0

    async def connect(
        self, host: str, port: int, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise OSError(111, "Connection refused")


async def _exec(argv: list[str]) -> tuple[int, int]:
    out = _Out()
    code = await run(argv, _Host(), None, out, _Out())
    return code, out.size


async def _median_ms(argv: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await _exec(argv)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def main() -> None:
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://httpbin:8000/"]
    piped = ["sh", "-c", "curl -s http://httpbin:8000/ | grep -c ok"]
    print(f"exec curl (median of 500):           {await _median_ms(curl, 500):.3f} ms")
    print(f"exec sh -c 'curl | grep' (median):   {await _median_ms(piped, 500):.3f} ms")

    loop = ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i + 1)); done"]
    start = time.perf_counter()
    await _exec(loop)
    elapsed = time.perf_counter() - start
    # Each round runs the test and the assignment, and counts the round itself.
    print(f"busy loop: {3 * 20000 / elapsed:,.0f} steps/s (throttled to half a core)")
    tracemalloc.start()
    await _exec(["sh", "-c", "x=$(seq 1 100000); for i in $x; do :; done | cat"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak memory of a 590 kB $(seq) and a 100000-round loop: {peak / 1e6:.1f} MB")

    start = time.perf_counter()
    await _exec(["sh", "-c", "seq 1 1000000 | cat | wc -c"])
    elapsed = time.perf_counter() - start
    print(f"pipe seq | cat | wc: 6.9 MB in {elapsed:.2f} s ({6.888896 / elapsed:.1f} MB/s)")


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import meshtutor.kubeapi.shell; print(time.perf_counter() - t)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    return float(out.stdout) * 1000


if __name__ == "__main__":
    asyncio.run(main())
    print(f"import meshtutor.kubeapi.shell: {import_time():.0f} ms")
