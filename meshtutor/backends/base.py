"""The Backend protocol: what the lessons, the app and the classroom need from a cluster,
whether it is the embedded sandbox or a real Kubernetes cluster (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from meshtutor.model.base import Resource, ResourceRef
from meshtutor.policy.outcome import Outcome
from meshtutor.policy.probe import Probe

if TYPE_CHECKING:
    from meshtutor.policy.cluster import ApplyReport

Prober = Literal["curl", "builtin", "exec"]


def gathered(results: Sequence[ProbeResult | BaseException]) -> list[ProbeResult]:
    """The results of ``asyncio.gather(..., return_exceptions=True)`` over probes, or the first
    error. Probes run together must all finish before an error is raised: a plain gather
    cancels the others, and a probe cancelled while it starts its curl process can leave
    ``asyncio.run`` waiting for ever on Python 3.11."""
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ProbeResult:
    """One probe as observed, next to the policy engine's prediction.

    ``http_code`` and ``exit_code`` are what curl printed and returned; ``mtls`` and the
    identities are what the destination's sidecar saw on the wire.
    """

    probe: Probe
    container: str
    http_code: str
    exit_code: int
    stderr: str
    body: str
    mtls: bool
    client_identity: str | None
    server_identity: str | None
    prediction: Outcome
    prober: Prober
    duration_ms: float
    command: str
    handshake: Any = None  # meshtutor.sandbox.handshake.HandshakeTrace, when recorded
    handshake_error: str | None = None
    #: outside probes through TLS at the edge: curl's handshake with the gateway/ingress
    edge_handshake: Any = None
    edge_handshake_error: str | None = None

    @property
    def matches_prediction(self) -> bool:
        p = self.prediction
        return (self.http_code, self.exit_code, self.mtls) == (p.http_code, p.exit_code, p.mtls)

    def to_dict(self) -> dict[str, Any]:
        p = self.prediction
        data: dict[str, Any] = {
            "from": self.probe.source,
            "container": self.container,
            "method": self.probe.method,
            "url": self.probe.url,
            "http_code": self.http_code,
            "exit_code": self.exit_code,
            "stderr": self.stderr,
            "mtls": self.mtls,
            "client_identity": self.client_identity,
            "server_identity": self.server_identity,
            "destination": p.destination_pod,
            "predicted_http_code": p.http_code,
            "predicted_exit_code": p.exit_code,
            "predicted_mtls": p.mtls,
            "matches_prediction": self.matches_prediction,
            "prober": self.prober,
            "duration_ms": round(self.duration_ms, 1),
            "command": self.command,
            "decided_by": str(p.decided_by) if p.decided_by else None,
            "explanation": p.explanation_lines,
        }
        if self.probe.outside:
            data["edge_tls"] = p.edge_tls
            data["via"] = p.via
        if self.edge_handshake is not None:
            data["edge_handshake"] = self.edge_handshake.to_dict()
        if self.edge_handshake_error:
            data["edge_handshake_error"] = self.edge_handshake_error
        if self.handshake is not None:
            data["handshake"] = self.handshake.to_dict()
        if self.handshake_error:
            data["handshake_error"] = self.handshake_error
        return data


@dataclass(frozen=True)
class WorkloadStatus:
    namespace: str
    name: str
    service_account: str
    sidecar: str | None  # "istio", "linkerd" or None
    identity: str | None
    ready: bool
    ip: str


class Backend(Protocol):
    mesh: Literal["istio", "linkerd"]

    async def apply(self, docs: Sequence[Resource]) -> ApplyReport: ...

    async def delete(self, refs: Sequence[Resource | ResourceRef]) -> list[str]: ...

    async def restart(self, namespace: str, deployment: str) -> None: ...

    async def workloads(self) -> list[WorkloadStatus]: ...

    async def probe(self, probe: Probe) -> ProbeResult: ...

    async def probes(self, probes: Sequence[Probe]) -> list[ProbeResult]: ...

    async def reset(self) -> None: ...


@runtime_checkable
class ChecksOwnership(Protocol):
    """A backend on a cluster that may hold objects meshtutor did not create (a real cluster).

    The lesson runner hands it every object a lesson would create or change before the first
    change, so that a conflict at step 3 stops the lesson with nothing applied. The sandbox
    holds only what meshtutor created: it does not implement this, and nothing is checked.
    """

    async def check_ownership(self, docs: Sequence[Resource]) -> None:
        """Raise, naming every one of ``docs`` that exists and is not meshtutor's, before
        anything changes (unless the user chose to adopt them)."""
        ...
