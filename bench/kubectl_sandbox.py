"""kubectl against the sandbox (issue 14's budgets). Prints figures; asserts nothing.

    python bench/kubectl_sandbox.py [--runs N]

- start: ``meshtutor sandbox serve -f manifests/online-boutique/demo.yaml`` launched to the
  first ``kubectl get pods`` answered (budget ≤ 1.5 s);
- kubectl's own start-up (``kubectl version --client``), the floor every command pays;
- a 3×3 matrix of ``kubectl exec SLEEP -- curl …`` (foo, bar, legacy, as in Istio's "Mutual
  TLS Migration" task) against the same matrix through ``meshtutor sandbox probe``; budget: one
  ``kubectl exec curl`` ≤ 150 ms above kubectl's start-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "manifests/samples"
BOUTIQUE = ROOT / "manifests/online-boutique/demo.yaml"
MATRIX = [(s, d) for s in ("foo", "bar", "legacy") for d in ("foo", "bar", "legacy")]


def meshtutor() -> list[str]:
    return [sys.executable, "-m", "meshtutor"]


def serve(tmp: Path, files: list[Path]) -> tuple[subprocess.Popen[str], Path, float]:
    kubeconfig = tmp / "kubeconfig"
    args = [*meshtutor(), "sandbox", "serve", "--kubeconfig", str(kubeconfig)]
    for f in files:
        args += ["-f", str(f)]
    env = {**os.environ, "MESHTUTOR_HOME": str(tmp / "home")}
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Ctrl-C"):
            break
    return proc, kubeconfig, started


def kubectl(kubeconfig: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp)}
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, check=False)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(10)


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms (min {min(samples) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    if shutil.which("kubectl") is None or shutil.which("curl") is None:
        sys.exit("needs kubectl and curl on PATH")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        starts = []
        for _ in range(runs):
            proc, kubeconfig, started = serve(tmp, [BOUTIQUE])
            got = kubectl(kubeconfig, tmp, "get", "pods", "-n", "demo")
            starts.append(time.perf_counter() - started)
            assert got.returncode == 0, got.stderr
            stop(proc)
        print(f"serve → first `kubectl get pods` answer: {median_ms(starts)}  (budget 1.5 s)")

        floor = []
        for _ in range(runs):
            t = time.perf_counter()
            kubectl(kubeconfig, tmp, "version", "--client")
            floor.append(time.perf_counter() - t)
        print(f"kubectl's own start-up (version --client): {median_ms(floor)}")

        proc, kubeconfig, _ = serve(tmp, [SAMPLES / "namespaces.yaml"])
        for ns in ("foo", "bar", "legacy"):
            for sample in ("sleep.yaml", "httpbin.yaml"):
                kubectl(kubeconfig, tmp, "apply", "-n", ns, "-f", str(SAMPLES / sample))
        try:
            pods = {}
            for ns in ("foo", "bar", "legacy"):
                got = kubectl(
                    kubeconfig,
                    tmp,
                    "get",
                    "pod",
                    "-l",
                    "app=sleep",
                    "-n",
                    ns,
                    "-o",
                    "jsonpath={.items..metadata.name}",
                )
                pods[ns] = got.stdout.strip()
            per_exec = []
            for _ in range(runs):
                t0 = time.perf_counter()
                for src, dst in MATRIX:
                    t = time.perf_counter()
                    kubectl(
                        kubeconfig,
                        tmp,
                        "exec",
                        pods[src],
                        "-c",
                        "sleep",
                        "-n",
                        src,
                        "--",
                        "curl",
                        f"http://httpbin.{dst}:8000/ip",
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                    )
                    per_exec.append(time.perf_counter() - t)
                matrix = time.perf_counter() - t0
            print(
                f"3×3 `kubectl exec curl` matrix: {matrix * 1000:.0f} ms; one exec {median_ms(per_exec)}"
            )
            above = statistics.median(per_exec) - statistics.median(floor)
            print(
                f"one `kubectl exec curl` above kubectl's start-up: {above * 1000:.0f} ms  (budget 150 ms)"
            )
        finally:
            stop(proc)

        print("compare: bench/sandbox.py prints the same 3×3 matrix through the sandbox's probes")


if __name__ == "__main__":
    main()
