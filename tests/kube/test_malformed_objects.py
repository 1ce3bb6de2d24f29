"""A broken or hostile API server's malformed objects end in one line naming the server, never
in a traceback (issue 13, review of items 8 and 9): objects without metadata, lists without
items, items that are not objects, answers that are not JSON.

Before: bare subscripts (``o["metadata"]``, ``meta["namespace"]``, ``to_dict()["items"]``) and
the client library's own parsing raised KeyError, TypeError or AttributeError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer
from kube_helpers import ROOT

from meshtutor.backends.kube import KubeBackend, KubeError
from meshtutor.model import load_file
from meshtutor.policy import Probe

DEMO = ROOT / "manifests/online-boutique/demo.yaml"
STRICT = ROOT / "manifests/lessons/mesh-wide-strict/mesh-strict.yaml"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def workloads(kube: KubeBackend) -> Awaitable[Any]:
    return kube.workloads()


def read_back(kube: KubeBackend) -> Awaitable[Any]:
    return asyncio.to_thread(lambda: kube.cluster)


def restart(kube: KubeBackend) -> Awaitable[Any]:
    return kube.restart("demo", "frontend")


def probe(kube: KubeBackend) -> Awaitable[Any]:
    return kube.probe(Probe("demo", "frontend", "http://frontend:80/"))


def apply(kube: KubeBackend) -> Awaitable[Any]:
    return kube.apply(load_file(STRICT))


NO_META = {"apiVersion": "v1", "kind": "Pod"}
CASES: list[tuple[str, Callable[[KubeBackend], Awaitable[Any]], str, str, Any, str]] = [
    (
        "a pod without metadata",
        workloads,
        "GET",
        r"^/api/v1/pods$",
        {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [{"spec": {}}]},
        "answered the list of pods with an object without metadata",
    ),
    (
        "items that are not objects",
        workloads,
        "GET",
        r"^/api/v1/pods$",
        {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [1, "two"]},
        "answered the list of pods with an object without metadata",
    ),
    (
        "a list without items",
        workloads,
        "GET",
        r"^/api/v1/pods$",
        {"apiVersion": "v1", "kind": "PodList", "metadata": {}},
        "answered the list of pods without items",
    ),
    (
        "a list that is not an object",
        workloads,
        "GET",
        r"^/api/v1/pods$",
        ["not", "a", "list", "object"],
        "answered the list of pods without items",
    ),
    (
        "a policy without a name",
        read_back,
        "GET",
        r"^/apis/security.istio.io/v1/peerauthentications$",
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthenticationList",
            "metadata": {},
            "items": [{"metadata": {"namespace": "demo"}, "spec": {}}],
        },
        "answered the list of PeerAuthentications with an object without a name or uid",
    ),
    (
        "a deployment without metadata while it rolls out",
        restart,
        "GET",
        r"^/apis/apps/v1/namespaces/demo/deployments/frontend$",
        {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {}},
        "answered Deployment demo/frontend with an object without metadata",
    ),
    (
        "a deployment whose selector is not a map",
        probe,
        "GET",
        r"^/apis/apps/v1/namespaces/demo/deployments/frontend$",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "frontend", "uid": "u"},
            "spec": {"selector": {"matchLabels": ["app", "frontend"]}},
        },
        "answered Deployment demo/frontend with a selector that is not a map of labels",
    ),
    (
        "an object that is not JSON",
        apply,
        "GET",
        r"/peerauthentications/default$",
        None,  # the fake answers the JSON null
        "answered PeerAuthentication istio-system/default with an object without metadata",
    ),
]


@pytest.mark.parametrize("what, call, method, path, answer, said", CASES, ids=[c[0] for c in CASES])
def test_a_malformed_answer_is_one_line(
    what: str,
    call: Callable[[KubeBackend], Awaitable[Any]],
    method: str,
    path: str,
    answer: Any,
    said: str,
    fake_apiserver: FakeAPIServer,
    kubeconfig_path: Path,
) -> None:
    fake_apiserver.add_namespace("istio-system")
    kube = KubeBackend("istio", kubeconfig=str(kubeconfig_path), context=CONTEXT)

    async def main() -> None:
        await kube.start()
        try:
            await kube.apply(load_file(DEMO))
            fake_apiserver.add_pod(
                "demo", "frontend-1", owner="frontend", containers=["server", "istio-proxy"]
            )
            fake_apiserver.answer_next(method, path, answer, times=None)
            await call(kube)
        finally:
            await kube.stop()

    with pytest.raises(KubeError) as caught:
        asyncio.run(main())
    assert str(caught.value) == f"{fake_apiserver.url} {said}"
