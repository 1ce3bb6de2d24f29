"""A deadline per read is not a deadline: a server that sends one byte every few seconds holds
a call for ever. Every request to the cluster now ends, in full, within its deadline (issue 13,
review of item 9), and meshtutor reads lists a page at a time, up to a bound.

The calls run in a subprocess: before the fix, they never ended.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from apiserver import CONTEXT, FakeAPIServer
from kube_helpers import ROOT
from test_ownership import apply, with_backend

from meshtutor.backends import kube as kube_module
from meshtutor.backends.kube import KubeError

DEMO = ROOT / "manifests/online-boutique/demo.yaml"

CALL = """
import asyncio, sys
from meshtutor.backends.kube import KubeBackend
from meshtutor.errors import MeshtutorError
from meshtutor.model import load_file
from meshtutor.policy import Probe

async def main():
    kube = KubeBackend("istio", kubeconfig=sys.argv[1], context=sys.argv[2], request_timeout=0.5)
    await kube.start()
    try:
        if sys.argv[3] == "apply":
            await kube.apply(load_file(sys.argv[4]))
        else:
            await kube.probe(Probe("demo", "frontend", "http://frontend:80/"))
    finally:
        await kube.stop()

try:
    asyncio.run(main())
except MeshtutorError as exc:
    print(exc)
    sys.exit(2)
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def call(config: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CALL, str(config), CONTEXT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"MESHTUTOR_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_a_trickled_answer_ends_at_the_deadline(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path, home: Path
) -> None:
    """Before: reading namespace demo waited as long as the server kept sending (a byte
    every 0.3 s, under the 0.5 s read timeout)."""
    fake_apiserver.trickle_next("GET", r"^/api/v1/namespaces/demo$", 0.3)
    out = call(kubeconfig_path, home, "apply", str(DEMO))
    assert out.returncode == 2, out.stderr
    assert out.stdout == (
        f"cannot read Namespace demo: {fake_apiserver.url} did not answer in full in 1 s\n"
    )
    assert fake_apiserver.get_object("v1", "Namespace", "demo") is None  # nothing sent after


def test_a_trickled_exec_upgrade_ends_at_the_deadline(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path, home: Path
) -> None:
    apply(kubeconfig_path, DEMO)
    fake_apiserver.add_pod(
        "demo", "frontend-7d4b9c-x2x9z", owner="frontend", containers=["server", "istio-proxy"]
    )
    fake_apiserver.trickle_next("*", r"/exec$", 0.3)
    out = call(kubeconfig_path, home, "probe")
    assert out.returncode == 2, out.stderr
    assert out.stdout == (
        f"cannot exec in demo/frontend-7d4b9c-x2x9z: {fake_apiserver.url} did not answer in "
        "full in 1 s\n"
    )


def test_cluster_wide_lists_are_read_a_page_at_a_time_and_bounded(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: every pod, every secret of every namespace came in one answer, however many."""
    for n in range(7):
        fake_apiserver.add_namespace(f"team-{n}")
        fake_apiserver.add_pod(f"team-{n}", f"web-{n}")
    monkeypatch.setattr(kube_module, "LIST_PAGE", 2)
    monkeypatch.setattr(kube_module, "LIST_LIMIT", 5)
    with pytest.raises(KubeError) as caught:
        with_backend(kubeconfig_path, lambda kube: kube.workloads())
    assert str(caught.value) == (
        f"{fake_apiserver.url} lists more than 5 pods (or more than 100 pages of them): more "
        "than meshtutor reads from a cluster; is this a learning cluster?"
    )
    pages = fake_apiserver.requests_to(r"^/api/v1/pods$", "GET")
    assert [r.param("limit") for r in pages] == ["2", "2", "2"]
