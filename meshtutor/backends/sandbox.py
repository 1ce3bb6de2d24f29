"""``SandboxBackend``: the Backend protocol on top of the embedded sandbox mesh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshtutor.backends.base import ProbeResult, WorkloadStatus
from meshtutor.model.base import Resource, ResourceRef
from meshtutor.policy.cluster import ApplyReport, Mesh
from meshtutor.policy.predict import identity_of
from meshtutor.policy.probe import Probe
from meshtutor.sandbox.mesh import Sandbox
from meshtutor.sandbox.probe import run_probe, run_probes


class SandboxBackend:
    def __init__(self, mesh: Mesh = "istio", **options: Any) -> None:
        self.mesh: Mesh = mesh
        self._options = options
        self.sandbox = Sandbox(mesh, **options)

    async def start(self) -> SandboxBackend:
        await self.sandbox.start()
        return self

    async def stop(self) -> None:
        await self.sandbox.stop()

    async def apply(self, docs: Sequence[Resource]) -> ApplyReport:
        return await self.sandbox.apply(docs)

    async def delete(self, refs: Sequence[Resource | ResourceRef]) -> list[str]:
        return await self.sandbox.delete(refs)

    async def restart(self, namespace: str, deployment: str) -> None:
        await self.sandbox.restart(namespace, deployment)

    async def workloads(self) -> list[WorkloadStatus]:
        cluster = self.sandbox.cluster
        return [
            WorkloadStatus(
                p.namespace,
                p.deployment,
                p.service_account,
                p.sidecar,
                identity_of(cluster, p),
                True,
                p.ip,
            )
            for p in cluster.pods()
        ]

    async def probe(self, probe: Probe) -> ProbeResult:
        return await run_probe(self.sandbox, probe)

    async def probes(self, probes: Sequence[Probe]) -> list[ProbeResult]:
        return await run_probes(self.sandbox, list(probes))

    async def reset(self) -> None:
        await self.sandbox.stop()
        self.sandbox = Sandbox(self.mesh, **self._options)
        await self.sandbox.start()
