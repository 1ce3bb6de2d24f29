"""Fixtures around :class:`FakeAPIServer`, the loopback stand-in for the Kubernetes API
protocol (see ``apiserver.py``). Every server a test starts is stopped at teardown, and the
teardown fails the test if the double hit an internal error or left a thread running."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer, FakeAPIServerFactory
from kubernetes import config
from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient

# Import these from ``apiserver``, not from here: ``from conftest import ...`` finds whichever
# conftest module was imported first (tests/pki has one too), depending on collection order.
__all__ = ["CONTEXT", "FakeAPIServerFactory"]


def _fake_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("fake-apiserver")}


@pytest.fixture
def fake_apiserver_factory() -> Iterator[FakeAPIServerFactory]:
    """Start FakeAPIServers with any constructor arguments; all are stopped at teardown."""
    before = _fake_threads()
    servers: list[FakeAPIServer] = []

    def make(**kwargs: Any) -> FakeAPIServer:
        server = FakeAPIServer(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
    errors = [e for server in servers for e in server.errors]
    assert not errors, "the FakeAPIServer failed inside:\n" + "\n".join(errors)
    left = _fake_threads() - before
    assert not left, f"FakeAPIServer threads left running: {sorted(t.name for t in left)}"


@pytest.fixture
def fake_apiserver(fake_apiserver_factory: FakeAPIServerFactory) -> FakeAPIServer:
    """A started FakeAPIServer with every CRD group (Istio, Linkerd, Gateway API)."""
    return fake_apiserver_factory()


@pytest.fixture
def kubeconfig_path(fake_apiserver: FakeAPIServer, tmp_path: Path) -> Path:
    """A kubeconfig for ``fake_apiserver``, context ``kind-meshtutor-test``."""
    return fake_apiserver.kubeconfig(tmp_path / "kubeconfig", context_name=CONTEXT)


@pytest.fixture
def api_client(kubeconfig_path: Path) -> Iterator[ApiClient]:
    """The official client, configured from the kubeconfig as a user's would be."""
    client = config.new_client_from_config(config_file=str(kubeconfig_path), context=CONTEXT)
    yield client
    client.close()


@pytest.fixture
def dynamic_client(api_client: ApiClient, tmp_path: Path) -> DynamicClient:
    """A DynamicClient with its discovery cache in ``tmp_path``: the default cache is a
    file in the system temp dir named after the server URL, so a later server on a reused
    port would otherwise read an earlier server's discovery."""
    return DynamicClient(api_client, cache_file=str(tmp_path / "discovery-cache.json"))


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An https address that accepts TCP connections and never says a word (the kernel
    completes the handshake for a listening socket nobody accepts from)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"https://127.0.0.1:{sock.getsockname()[1]}"
