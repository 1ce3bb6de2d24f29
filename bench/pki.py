"""Benchmark: how fast the mesh CA mints workload identities.

Run: ``python bench/pki.py``. Budget (DESIGN.md §8): 9 P-256 workload identities in <= 20 ms.
"Minting" is what a sandbox does per pod: a fresh key, a signed certificate, and a renewing
credential around them. The CA itself is made once per sandbox and timed separately.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from meshtutor.pki import KeyType, ManualClock, MeshCA, server_context

BUDGET_MS = 20.0


def _rate(ca: MeshCA, seconds: float) -> float:
    """Identities per second, minting for about ``seconds``."""
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        ca.credential("bench", f"sa-{count}")
        count += 1
    return count / elapsed


def _timings(run: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> int:
    clock = ManualClock()
    p256 = MeshCA.istio(clock=clock)
    rsa = MeshCA.istio(clock=clock, key_type=KeyType.RSA_2048)
    linkerd = MeshCA.linkerd(clock=clock)

    _rate(p256, 0.3)  # warm up: first calls pay for lazy imports and CPU frequency ramp-up
    print("identities minted per second (fresh key + signed certificate + credential):")
    print(f"  ECDSA P-256 (Istio)    {_rate(p256, 1.0):8.0f} /s")
    print(f"  ECDSA P-256 (Linkerd)  {_rate(linkerd, 1.0):8.0f} /s")
    print(f"  RSA 2048    (Istio)    {_rate(rsa, 2.0):8.1f} /s")

    def nine() -> None:
        for i in range(9):
            p256.credential("default", f"workload-{i}")

    nine()  # warm up (first use of each code path)
    runs = _timings(nine, 50)
    median, worst = statistics.median(runs), max(runs)
    verdict = "within" if median <= BUDGET_MS else "OVER"
    print(
        f"9 P-256 workload identities: median {median:.2f} ms, best {min(runs):.2f} ms, "
        f"worst {worst:.2f} ms over {len(runs)} runs ({verdict} the {BUDGET_MS:.0f} ms budget)"
    )

    ca_runs = _timings(lambda: MeshCA.istio(clock=clock), 20)
    linkerd_runs = _timings(lambda: MeshCA.linkerd(clock=clock), 20)
    print(
        f"a new CA: Istio {statistics.median(ca_runs):.2f} ms, "
        f"Linkerd (anchor + issuer) {statistics.median(linkerd_runs):.2f} ms (P-256, median)"
    )
    credential = p256.credential("default", "ctx")
    ctx_runs = _timings(lambda: server_context(credential), 50)
    print(f"server SSLContext from a credential: {statistics.median(ctx_runs):.2f} ms (median)")
    return 0 if median <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
