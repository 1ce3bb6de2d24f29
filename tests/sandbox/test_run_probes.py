"""One bad probe among many ends the run with its error, and the process still exits.

With a plain ``asyncio.gather`` the bad probe's error cancelled the others while they were
starting curl, and on Python 3.11 a task cancelled there never finished: ``asyncio.run``
waited for ever after the error (found by the fuzz test of issue 13)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio
from pathlib import Path
from meshtutor.errors import ProbeSpecError
from meshtutor.model import load_file
from meshtutor.policy import Probe
from meshtutor.sandbox.mesh import Sandbox
from meshtutor.sandbox.probe import run_probes

async def main():
    samples = Path("manifests/samples")
    docs = load_file(samples / "namespaces.yaml")
    docs += load_file(samples / "sleep.yaml", default_namespace="foo")
    docs += load_file(samples / "httpbin.yaml", default_namespace="foo")
    async with Sandbox("istio") as sb:
        await sb.apply(docs)
        probes = [Probe("foo", "sleep", "http://httpbin.foo:8000/ip", timeout=2)] * 12
        probes.insert(3, Probe("foo", "nosuch", "http://httpbin.foo:8000/ip", timeout=2))
        try:
            await run_probes(sb, probes)
        except ProbeSpecError as exc:
            print("error:", exc)

asyncio.run(main())
print("exited")
"""


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_bad_probe_among_curl_runs_raises_and_the_process_exits() -> None:
    try:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("run_probes raised, then asyncio.run never returned")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "error: probe foo/nosuch=http://httpbin.foo:8000/ip: no workload foo/nosuch; "
        "workloads in foo: sleep, httpbin",
        "exited",
    ]
