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

    async def install(self, name: str, docs: Sequence[Resource]) -> list[str]:
        """A cluster component (an ingress gateway or controller), as an installer would."""
        await self.sandbox.apply(docs)
        return [f"{name} installed (the sandbox's copy of manifests/components/{name}.yaml)"]

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

    def predict(self, probe: Probe) -> Any:
        """The policy engine's prediction, knowing the sandbox's certificates."""
        from meshtutor.policy.predict import predict

        return predict(self.sandbox.cluster, probe, certificates=self.sandbox.certificate_problem)

    async def probe(self, probe: Probe) -> ProbeResult:
        return await run_probe(self.sandbox, probe)

    async def probes(self, probes: Sequence[Probe]) -> list[ProbeResult]:
        return await run_probes(self.sandbox, list(probes))

    async def reset(self) -> None:
        await self.sandbox.stop()
        self.sandbox = Sandbox(self.mesh, **self._options)
        await self.sandbox.start()

    # --- what lessons show --------------------------------------------------------------------

    @property
    def cluster(self) -> Any:
        return self.sandbox.cluster

    async def certificate(self, namespace: str, name: str) -> Any:
        """The chain the workload's sidecar presents, as ``pki.CredentialInfo`` (None without
        a sidecar)."""
        from meshtutor.errors import ClusterStateError
        from meshtutor.pki import describe_credential

        pod = self.sandbox.cluster.pod_for(namespace, name)
        if pod is None:
            raise ClusterStateError(f"no workload {namespace}/{name}")
        credential = self.sandbox.runtime(pod).credential
        return describe_credential(credential) if credential is not None else None

    async def advance_clock(self, delta: Any) -> int:
        return self.sandbox.advance_clock(delta)

    async def table(self, kind: str) -> tuple[list[str], list[list[str]]]:
        return resource_table(self.sandbox.cluster, kind, self.sandbox.external.address)

    async def mtls_status(self) -> tuple[list[str], list[list[str]]]:
        return mtls_status_table(self.sandbox.cluster)


def resource_table(
    cluster: Any, kind: str, external: Any = None
) -> tuple[list[str], list[list[str]]]:
    """``kubectl get KIND -A`` as (headers, rows), with the columns kubectl prints.
    ``external`` gives a LoadBalancer Service's EXTERNAL-IP (the sandbox's loopback one)."""
    from meshtutor.model import edge, istio, k8s, linkerd
    from meshtutor.policy.edge import node_port

    def age(obj: Any) -> str:
        return "1m"

    if kind == "pods":
        rows = [
            [
                p.namespace,
                f"{p.deployment}-7d4b9c-x2x9z",
                f"{len(p.container_names)}/{len(p.container_names)}",
                "Running",
                p.ip,
            ]
            for p in cluster.pods()
        ]
        return ["NAMESPACE", "NAME", "READY", "STATUS", "IP"], rows
    if kind == "services":
        rows = []
        for svc in cluster.objects(k8s.Service):
            ports = ",".join(
                f"{p.port}" + (f":{node_port(svc, p)}" if svc.external else "") + "/TCP"
                for p in svc.ports
            )
            address = "<none>"
            if svc.type == "LoadBalancer":
                address = external(svc) if external else "<pending>"
            rows.append([svc.namespace, svc.name, svc.type, address, ports])
        return ["NAMESPACE", "NAME", "TYPE", "EXTERNAL-IP", "PORT(S)"], rows
    if kind == "gateway":
        return ["NAMESPACE", "NAME", "SERVERS"], [
            [
                g.namespace,
                g.name,
                ", ".join(f"{s.number}/{s.protocol} {'|'.join(s.hosts)}" for s in g.servers),
            ]
            for g in cluster.objects(edge.Gateway)
        ]
    if kind == "virtualservice":
        return ["NAMESPACE", "NAME", "GATEWAYS", "HOSTS"], [
            [v.namespace, v.name, ",".join(v.gateways) or "mesh", ",".join(v.hosts)]
            for v in cluster.objects(edge.VirtualService)
        ]
    if kind == "ingress":
        return ["NAMESPACE", "NAME", "CLASS", "HOSTS", "TLS"], [
            [
                i.namespace,
                i.name,
                i.ingress_class or "<none>",
                ",".join(r.host or "*" for r in i.rules) or "*",
                ",".join(t.secret_name or "-" for t in i.tls) or "-",
            ]
            for i in cluster.objects(edge.Ingress)
        ]
    if kind == "namespaces":
        return ["NAME", "LABELS"], [
            [ns.name, ",".join(f"{k}={v}" for k, v in sorted(ns.metadata.labels.items()))]
            for ns in cluster.objects(k8s.Namespace)
        ]
    if kind == "peerauthentication":
        return ["NAMESPACE", "NAME", "MODE", "AGE"], [
            [p.namespace, p.name, p.mode, age(p)] for p in cluster.objects(istio.PeerAuthentication)
        ]
    if kind == "destinationrule":
        return ["NAMESPACE", "NAME", "HOST", "AGE"], [
            [d.namespace, d.name, d.host, age(d)] for d in cluster.objects(istio.DestinationRule)
        ]
    if kind == "authorizationpolicy":
        return ["NAMESPACE", "NAME", "ACTION", "AGE"], [
            [a.namespace, a.name, a.action, age(a)]
            for a in cluster.objects(istio.AuthorizationPolicy)
        ]
    if kind == "networkpolicy":
        return ["NAMESPACE", "NAME", "POD-SELECTOR", "AGE"], [
            [
                n.namespace,
                n.name,
                str(n.pod_selector) if not n.pod_selector.empty else "<none>",
                age(n),
            ]
            for n in cluster.objects(k8s.NetworkPolicy)
        ]
    if kind == "server":
        return ["NAMESPACE", "NAME", "PORT", "PROTOCOL", "ACCESS POLICY"], [
            [s.namespace, s.name, str(s.port), s.proxy_protocol, s.access_policy]
            for s in cluster.objects(linkerd.Server)
        ]
    if kind == "httproute":
        return ["NAMESPACE", "NAME", "PARENTS"], [
            [r.namespace, r.name, ",".join(p.name for p in r.parents)]
            for r in cluster.objects(linkerd.HTTPRoute)
        ]
    return ["NAMESPACE", "NAME", "TARGET"], [
        [a.namespace, a.name, f"{a.target.kind}/{a.target.name}"]
        for a in cluster.objects(linkerd.LinkerdAuthorizationPolicy)
    ]


def mtls_status_table(cluster: Any) -> tuple[list[str], list[list[str]]]:
    """Each workload with its sidecar, identity and effective inbound mode per port."""
    from meshtutor.policy.apps import app_for
    from meshtutor.policy.mtls import effective_peer_authentication
    from meshtutor.policy.predict import identity_of

    rows = []
    for pod in cluster.pods():
        ports = sorted(
            {p for c in pod.spec.containers for p in app_for(c).ports}
            | {cp.container_port for c in pod.spec.containers for cp in c.ports}
        )
        if pod.sidecar == "istio":
            modes = (
                ", ".join(
                    f"{port}: {effective_peer_authentication(cluster, pod, port).mode}"
                    for port in ports
                )
                or "(no ports)"
            )
        elif pod.sidecar == "linkerd":
            modes = f"mTLS from meshed clients; default policy {pod.default_inbound_policy}"
        else:
            modes = "no sidecar: plaintext only, no policy enforced"
        rows.append(
            [
                f"{pod.namespace}/{pod.deployment}",
                pod.sidecar or "-",
                identity_of(cluster, pod) or "-",
                modes,
            ]
        )
    return ["WORKLOAD", "SIDECAR", "IDENTITY", "INBOUND"], rows
