"""`meshtutor doctor` when there is no cluster at all: fast, clear, non-zero."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

from kube_helpers import run_meshtutor, write_kubeconfig


def doctor(*args: str, home: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    out = run_meshtutor(
        "doctor", *args, home=home / "meshtutor", env={"HOME": str(home), "KUBECONFIG": ""}
    )
    return out, time.monotonic() - started


def test_no_kubeconfig(tmp_path: Path) -> None:
    out, seconds = doctor(home=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stdout.startswith(f"✘ kubeconfig: no kubeconfig at {tmp_path}/.kube/config")
    assert "fix: create a local cluster: kind create cluster" in out.stdout
    assert seconds < 5


def test_unreachable_server(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        config = tmp_path / "config"
        write_kubeconfig(config, f"https://127.0.0.1:{port}", name="kind-gone")
        out, seconds = doctor("--kubeconfig", str(config), "--json", home=tmp_path)
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert out.returncode == 1
    assert checks["kubeconfig"]["status"] == "ok"
    assert checks["context is local"]["status"] == "ok"
    assert checks["API reachable"]["status"] == "fail"
    assert checks["API reachable"]["detail"] == (
        f"https://127.0.0.1:{port} refuses connections; is the cluster running? "
        "(`kind get clusters`, `docker ps`)"
    )
    assert seconds < 5


def test_remote_context_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config"
    write_kubeconfig(config, "https://k8s.example.com:6443", name="prod-eu")
    out, _ = doctor("--kubeconfig", str(config), home=tmp_path)
    assert out.returncode == 1
    assert (
        "✘ context is local: context 'prod-eu' (server https://k8s.example.com:6443) is not a "
        "cluster on this machine: k8s.example.com is a host name" in out.stdout
    )
    assert "pass --allow-remote" in out.stdout
