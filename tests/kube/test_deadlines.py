"""Every call to a cluster has a deadline, and its failure is one line naming the server
(issue 13, item 9).

Real sockets on loopback: one that accepts connections and never answers (the kernel completes
the TCP handshake for a listening socket nobody accepts from), and ones that answer garbage
(an SSH banner where TLS was expected; HTML where the API's JSON was expected).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer
from kube_helpers import ROOT, run_meshtutor, write_kubeconfig

from meshtutor.backends.kube import KubeBackend, KubeError
from meshtutor.model import load_file
from meshtutor.policy import Probe

DEMO = ROOT / "manifests/online-boutique/demo.yaml"


def _answering(answer: bytes) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    # Closing a socket does not wake a thread blocked in accept() on Linux: poll instead.
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(answer)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        sock.close()
        thread.join(5)


@pytest.fixture
def garbage_tls_server() -> Iterator[str]:
    """Answers a TLS ClientHello with an SSH banner."""
    for port in _answering(b"SSH-2.0-OpenSSH_9.6\r\n"):
        yield f"https://127.0.0.1:{port}"


@pytest.fixture
def garbage_http_server() -> Iterator[str]:
    """A web server that is not an API server: HTML for every path."""
    page = b"<html><body>It works!</body></html>"
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
        + str(len(page)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + page
    )
    for port in _answering(answer):
        yield f"http://127.0.0.1:{port}"


def kubeconfig(tmp_path: Path, server: str) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", server, insecure=True)


def meshtutor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_meshtutor(*args, home=tmp_path / "home", timeout=90)


SERVERS = {
    "silent": ("silent_server", "did not answer in 1 s"),
    "garbage TLS": (
        "garbage_tls_server",
        "did not complete a TLS handshake (wrong version number): is this an API server's address?",
    ),
    "garbage HTTP": (
        "garbage_http_server",
        "answered /version with something that is not the Kubernetes API's (text/html): is "
        "this an API server's address?",
    ),
}


@pytest.mark.parametrize("kind", list(SERVERS))
def test_run_dry_run_ends_with_one_line(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Before: against the silent server, `run --dry-run` hung until it was killed (the
    client library's discovery has no timeout)."""
    fixture, said = SERVERS[kind]
    server: str = request.getfixturevalue(fixture)
    config = kubeconfig(tmp_path, server)
    out = meshtutor(
        tmp_path, "run", "4", "--dry-run", "--kubeconfig", str(config), "--request-timeout", "1"
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"meshtutor: cannot connect to the API server: {server} {said}\n"


@pytest.mark.parametrize("kind", list(SERVERS))
def test_doctor_says_the_api_is_unreachable(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fixture, said = SERVERS[kind]
    server: str = request.getfixturevalue(fixture)
    config = kubeconfig(tmp_path, server)
    out = meshtutor(
        tmp_path, "doctor", "--kubeconfig", str(config), "--json", "--request-timeout", "1"
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["API reachable"]["status"] == "fail"
    assert checks["API reachable"]["detail"] == f"{server} {said}"


def test_doctor_does_not_hang_when_discovery_does_not_answer(
    fake_apiserver: FakeAPIServer, tmp_path: Path
) -> None:
    """The API server answers /version, then never answers discovery. Before: `doctor` hung
    in the mesh check (its DynamicClient discovery had no timeout)."""
    fake_apiserver.delay_next(r"^/apis$", 120, times=None)
    config = fake_apiserver.kubeconfig(tmp_path / "config", context_name=CONTEXT)
    out = meshtutor(
        tmp_path,
        "doctor",
        "--kubeconfig",
        str(config),
        "--json",
        "--mesh",
        "istio",
        "--request-timeout",
        "1",
    )
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert out.returncode == 1, checks
    assert checks["API reachable"]["status"] == "ok"
    assert checks["mesh"] == {
        "name": "mesh",
        "status": "fail",
        "detail": f"could not check: {fake_apiserver.url} did not answer in 1 s",
        "fix": "check your permissions (kubectl auth can-i --list)",
        "required": True,
        "mark": "✘",
    }


def test_the_backend_does_not_hang_at_start(tmp_path: Path, silent_server: str) -> None:
    kube = KubeBackend(
        "istio", kubeconfig=str(kubeconfig(tmp_path, silent_server)), request_timeout=0.5
    )
    with pytest.raises(KubeError) as caught:
        asyncio.run(kube.start())
    assert str(caught.value) == (
        f"cannot connect to the API server: {silent_server} did not answer in 0.5 s"
    )


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_an_exec_upgrade_that_never_answers_ends(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    """The API server takes the exec websocket's upgrade request and never answers. Before:
    the probe waited as long as the server held it (the client library opens the websocket
    without a timeout)."""
    kube = KubeBackend(
        "istio", kubeconfig=str(kubeconfig_path), context=CONTEXT, request_timeout=0.5
    )
    fake_apiserver.delay_next(r"/exec$", 60, times=None)

    async def main() -> Any:
        await kube.start()
        try:
            await kube.apply(load_file(DEMO))
            fake_apiserver.add_pod(
                "demo",
                "frontend-7d4b9c-x2x9z",
                owner="frontend",
                containers=["server", "istio-proxy"],
            )
            return await kube.probe(Probe("demo", "frontend", "http://frontend:80/"))
        finally:
            await kube.stop()

    with pytest.raises(KubeError) as caught:
        asyncio.run(main())
    assert str(caught.value) == (
        f"cannot exec in demo/frontend-7d4b9c-x2x9z: {fake_apiserver.url} did not answer in 0.5 s"
    )
