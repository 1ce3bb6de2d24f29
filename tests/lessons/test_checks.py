"""Probe expectations, including the response body, against the engine and real traffic."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meshtutor.lessons.checks import check_prediction, probe_problem
from meshtutor.lessons.model import Expectation
from meshtutor.model import load_file, load_yaml
from meshtutor.policy import Cluster, Probe
from meshtutor.sandbox.mesh import Sandbox
from meshtutor.sandbox.probe import run_probe

ROOT = Path(__file__).resolve().parents[2]
DENY_ALL = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: demo}
spec: {}
"""
PROBE = Probe("demo", "productcatalogservice", "http://frontend:80/")


def expectation(body: str) -> Expectation:
    return Expectation("probe", PROBE, code="403", body=body)


def test_body_against_the_engine() -> None:
    cluster = Cluster("istio")
    cluster.apply(load_file(ROOT / "manifests/online-boutique/demo.yaml"))
    cluster.apply(load_yaml(DENY_ALL))
    assert check_prediction(cluster, expectation("RBAC: access denied")) is None
    problem = check_prediction(cluster, expectation("forbidden"))
    assert problem is not None and "does not contain 'forbidden': RBAC: access denied" in problem


def test_body_against_real_traffic() -> None:
    async def main() -> str:
        async with Sandbox("istio") as sb:
            await sb.apply(load_file(ROOT / "manifests/online-boutique/demo.yaml"))
            await sb.apply(load_yaml(DENY_ALL))
            return (await run_probe(sb, PROBE)).body

    body = asyncio.run(main())
    assert probe_problem(expectation("RBAC: access denied"), "403", 0, True, body) is None
    assert probe_problem(expectation("nope"), "403", 0, True, body) is not None
    assert probe_problem(expectation("RBAC"), "200", 0, True, body) is not None  # code first
