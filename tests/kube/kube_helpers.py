"""What the kube tests share: a kubeconfig for any server address, and running the real
``meshtutor`` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster: {{server: "{server}"{tls}}}
contexts:
- name: {name}
  context: {{cluster: {name}, user: u}}
current-context: {name}
users:
- name: u
  user: {{token: abc}}
"""


def write_kubeconfig(
    path: Path, server: str, *, name: str = "kind-x", insecure: bool = False
) -> Path:
    """A kubeconfig with one context ``name`` for ``server`` (TLS unverified if ``insecure``)."""
    tls = ", insecure-skip-tls-verify: true" if insecure else ""
    path.write_text(KUBECONFIG.format(name=name, server=server, tls=tls))
    return path


def run_meshtutor(
    *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m meshtutor ARGS`` with its data under ``home``."""
    return subprocess.run(
        [sys.executable, "-m", "meshtutor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "MESHTUTOR_HOME": str(home), **(env or {})},
    )


def https_gateway(name: str, namespace: str, credential: str, host: str) -> dict[str, Any]:
    """An Istio Gateway for the default ingress gateway with one HTTPS server whose certificate
    is the Secret ``credential``."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "hosts": [host],
                    "tls": {"mode": "SIMPLE", "credentialName": credential},
                }
            ],
        },
    }
