"""What the policy engine predicts for one probe, and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshtutor.model.base import ResourceRef


@dataclass(frozen=True)
class Step:
    """One link in the chain of reasons behind an outcome.

    ``resource`` is the object that decided this step (``None`` for built-in behaviour such as
    a default), ``field`` the field path inside it (``spec.mtls.mode``).
    """

    text: str
    resource: ResourceRef | None = None
    field: str | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Outcome:
    """A probe's result exactly as curl would report it, plus the explanation.

    ``http_code`` is curl's ``%{http_code}``: ``"000"`` when no response arrived. ``exit_code``
    is curl's exit code (0, 6 unresolved host, 7 refused, 28 timeout, 35 TLS handshake failure,
    52 empty reply, 56 connection reset). ``mtls`` says whether the hop into the destination pod
    was mutual TLS. Identities are SPIFFE IDs (Istio) or Linkerd DNS identities.
    """

    http_code: str
    exit_code: int
    mtls: bool
    client_identity: str | None
    server_identity: str | None
    explanation: tuple[Step, ...]
    body: str = ""
    stderr: str = ""
    decided_by: ResourceRef | None = None
    destination_pod: str | None = None
    notes: tuple[str, ...] = field(default=())
    #: outside probes only: whether the client's hop into the cluster was TLS ("one-way": the
    #: server proves its name, curl shows no certificate) and which ingress it went through
    edge_tls: bool | None = None
    via: str | None = None

    @property
    def explanation_lines(self) -> list[str]:
        return [step.text for step in self.explanation]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.http_code.startswith("2")
