"""Sandbox speed and memory, against DESIGN §8 / issue 4 budgets. Prints figures; asserts nothing.

    python bench/sandbox.py [--runs N]

- boot: ``Sandbox()`` to a 9-workload Istio mesh ready to probe (CA, certificates, listeners)
- a 3x3 matrix of real curl probes through mTLS sidecars, sequential and parallel
- a policy applied -> the next probe reflects it
- peak RSS of this process
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meshtutor.model import load_file, load_yaml  # noqa: E402
from meshtutor.policy import Probe  # noqa: E402
from meshtutor.sandbox.mesh import Sandbox  # noqa: E402
from meshtutor.sandbox.probe import run_probe, run_probes  # noqa: E402

SAMPLES = ROOT / "manifests/samples"
NAMESPACES = ("alpha", "beta", "gamma")

STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"""


def topology() -> list:
    docs = []
    for ns in NAMESPACES:
        docs += load_yaml(
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
            "  labels: {istio-injection: enabled}\n"
        )
        docs += load_file(SAMPLES / "sleep.yaml", default_namespace=ns)
        docs += load_file(SAMPLES / "httpbin.yaml", default_namespace=ns)
        docs += load_yaml(
            f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: nginx:1.27, ports: [{{containerPort: 80}}]}}]
"""
        )
    return docs


MATRIX = [
    Probe(src, "sleep", f"http://httpbin.{dst}:8000/ip", timeout=5)
    for src in NAMESPACES
    for dst in NAMESPACES
]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


async def one_round() -> dict[str, float]:
    docs = topology()
    started = time.perf_counter()
    sb = Sandbox("istio")
    await sb.start()
    await sb.apply(docs)  # apply also opens the pod ports and builds TLS contexts
    boot = time.perf_counter() - started
    try:
        # First probes pay for lazily built TLS contexts; measure warm matrices.
        await run_probes(sb, MATRIX)
        t = time.perf_counter()
        for probe in MATRIX:
            result = await run_probe(sb, probe)
            assert result.http_code == "200" and result.mtls, result
        sequential = time.perf_counter() - t
        t = time.perf_counter()
        results = await run_probes(sb, MATRIX)
        parallel = time.perf_counter() - t
        assert all(r.http_code == "200" and r.mtls for r in results)
        # Apply STRICT, then probe from a pod without sidecar's point of view: istio-proxy.
        probe = Probe("alpha", "sleep", "http://httpbin.beta:8000/ip", container="istio-proxy")
        assert (await run_probe(sb, probe)).http_code == "200"
        t = time.perf_counter()
        await sb.apply(load_yaml(STRICT))
        result = await run_probe(sb, probe)
        reflected = time.perf_counter() - t
        assert (result.http_code, result.exit_code) == ("000", 56), result
    finally:
        await sb.stop()
    return {"boot": boot, "sequential": sequential, "parallel": parallel, "reflected": reflected}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rounds = [asyncio.run(one_round()) for _ in range(args.runs)]
    print(f"sandbox bench, {args.runs} runs, median (min-max)")
    budgets = {"boot": 0.6, "sequential": 0.25, "parallel": 0.15, "reflected": 0.1}
    labels = {
        "boot": "boot 9 workloads to ready",
        "sequential": "3x3 curl matrix, sequential",
        "parallel": "3x3 curl matrix, parallel",
        "reflected": "apply STRICT -> probe shows 000/56",
    }
    for key, label in labels.items():
        values = [r[key] for r in rounds]
        print(
            f"  {label:<36} {ms(statistics.median(values))}  ({ms(min(values)).strip()} - "
            f"{ms(max(values)).strip()})  budget {budgets[key] * 1000:.0f} ms"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  {'peak RSS':<36} {rss:7.1f} MiB  budget 120 MiB")


if __name__ == "__main__":
    main()
