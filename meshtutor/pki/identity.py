"""Workload identities and the credentials that carry them.

A :class:`WorkloadIdentity` is the name a mesh gives a service account: a SPIFFE ID in Istio
(``spiffe://cluster.local/ns/foo/sa/sleep``), a DNS-like name in Linkerd
(``sleep.foo.serviceaccount.identity.linkerd.cluster.local``). A :class:`WorkloadCredential` is
what the sidecar holds for it: the current key and certificate, when it will renew them, and
how many times it already has (istio-agent and the Linkerd proxy both re-issue before expiry).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from meshtutor.errors import PKIError

if TYPE_CHECKING:
    from cryptography import x509

    from meshtutor.pki.ca import IssuedCertificate, MeshCA, PrivateKey

__all__ = [
    "ISTIO_ROTATION",
    "LINKERD_ROTATION",
    "Mesh",
    "RotationPolicy",
    "WorkloadCredential",
    "WorkloadIdentity",
]

DEFAULT_TRUST_DOMAIN = "cluster.local"


class Mesh(StrEnum):
    """Which mesh names and issues the certificates."""

    ISTIO = "istio"
    LINKERD = "linkerd"


# Kubernetes: a namespace is an RFC 1123 label; a service account name a DNS subdomain.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SPIFFE = re.compile(r"spiffe://([^/]+)/ns/([^/]+)/sa/([^/]+)")
_LINKERD = re.compile(r"([^.]+)\.([^.]+)\.serviceaccount\.identity\.linkerd\.(.+)")


def _check_namespace(namespace: str) -> None:
    if not _LABEL.fullmatch(namespace):
        raise PKIError(
            f"namespace {namespace!r} is not a valid Kubernetes name: expected at most 63 "
            "lowercase letters, digits and '-', starting and ending with a letter or digit, "
            "e.g. 'foo'"
        )


def _check_service_account(service_account: str) -> None:
    if len(service_account) > 253 or not _SUBDOMAIN.fullmatch(service_account):
        raise PKIError(
            f"service account {service_account!r} is not a valid Kubernetes name: expected "
            "lowercase letters, digits, '-' and '.', starting and ending with a letter or "
            "digit, e.g. 'sleep'"
        )


def _check_trust_domain(trust_domain: str) -> None:
    if len(trust_domain) > 253 or not _SUBDOMAIN.fullmatch(trust_domain):
        raise PKIError(
            f"trust domain {trust_domain!r} is not valid: expected a lowercase DNS-like name "
            "such as 'cluster.local'"
        )


@dataclass(frozen=True)
class WorkloadIdentity:
    """The identity of one Kubernetes service account inside a mesh.

    ``str(identity)`` is the name peers see and policies match: the SPIFFE ID for Istio, the
    Linkerd identity name for Linkerd.
    """

    mesh: Mesh
    namespace: str
    service_account: str
    trust_domain: str = DEFAULT_TRUST_DOMAIN

    def __post_init__(self) -> None:
        object.__setattr__(self, "mesh", Mesh(self.mesh))
        _check_namespace(self.namespace)
        _check_service_account(self.service_account)
        _check_trust_domain(self.trust_domain)

    @property
    def name(self) -> str:
        """``spiffe://<td>/ns/<ns>/sa/<sa>`` (Istio), ``<sa>.<ns>.serviceaccount...`` (Linkerd)."""
        if self.mesh is Mesh.ISTIO:
            return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"
        return (
            f"{self.service_account}.{self.namespace}"
            f".serviceaccount.identity.linkerd.{self.trust_domain}"
        )

    @property
    def workload(self) -> str:
        """``namespace/serviceaccount``, as a learner types it."""
        return f"{self.namespace}/{self.service_account}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(
        cls, text: str, *, mesh: Mesh | str = Mesh.ISTIO, trust_domain: str = DEFAULT_TRUST_DOMAIN
    ) -> WorkloadIdentity:
        """Read ``NAMESPACE/SERVICEACCOUNT``, a SPIFFE ID or a Linkerd identity name.

        A SPIFFE ID or Linkerd name decides the mesh and trust domain itself; the short
        ``ns/sa`` form takes them from the arguments.
        """
        text = text.strip()
        if match := _SPIFFE.fullmatch(text):
            domain, namespace, service_account = match.groups()
            return cls(Mesh.ISTIO, namespace, service_account, domain)
        if match := _LINKERD.fullmatch(text):
            service_account, namespace, domain = match.groups()
            return cls(Mesh.LINKERD, namespace, service_account, domain)
        namespace, slash, service_account = text.partition("/")
        if not slash or not namespace or not service_account or "/" in service_account:
            raise PKIError(
                f"cannot read {text!r} as a workload identity: expected NAMESPACE/SERVICEACCOUNT "
                "(e.g. foo/sleep), a SPIFFE ID (spiffe://cluster.local/ns/foo/sa/sleep) or a "
                "Linkerd identity (sleep.foo.serviceaccount.identity.linkerd.cluster.local)"
            )
        return cls(Mesh(mesh), namespace, service_account, trust_domain)


@dataclass(frozen=True)
class RotationPolicy:
    """When a sidecar asks for a new certificate.

    Renewal happens once ``fraction`` (± up to ``jitter``, drawn per certificate) of the
    lifetime left at issuance has passed. Istio's agent renews at ``SECRET_GRACE_PERIOD_RATIO``
    0.5 with 0.01 jitter ("~15 minutes over 24 hours"); the Linkerd proxy refreshes at 70 %
    (linkerd2-proxy ``identity-client/src/certify.rs``: ``d * 7 / 10``).
    """

    fraction: float
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.jitter < self.fraction and self.fraction + self.jitter < 1.0):
            raise PKIError(
                f"rotation fraction {self.fraction} ± {self.jitter}: expected 0 < fraction < 1 "
                "and 0 <= jitter < fraction"
            )

    def renew_at(self, issued_at: datetime, not_after: datetime, rng: random.Random) -> datetime:
        """When to renew a certificate received at ``issued_at`` that ends at ``not_after``."""
        fraction = self.fraction + (rng.uniform(-self.jitter, self.jitter) if self.jitter else 0)
        # At least one second later: near a CA's end of life lifetimes shrink towards zero and
        # each renewal would otherwise be due at once, forever.
        return max(issued_at + (not_after - issued_at) * fraction, issued_at + timedelta(seconds=1))


ISTIO_ROTATION = RotationPolicy(fraction=0.5, jitter=0.01)
LINKERD_ROTATION = RotationPolicy(fraction=0.7)


class WorkloadCredential:
    """The key and certificate a sidecar holds for one identity, renewed like the real agent.

    It is not frozen: rotation replaces :attr:`current` and counts itself in :attr:`rotations`
    so a view can say "rotated 3 times". Time comes from the CA's clock.
    """

    def __init__(self, ca: MeshCA, identity: WorkloadIdentity, issued: IssuedCertificate) -> None:
        self.ca = ca
        self.identity = identity
        self.current = issued
        self.renew_at = ca.rotation.renew_at(issued.issued_at, issued.not_after, ca.rng)
        self.rotations = 0
        self.rotated_at: datetime | None = None
        # Why the last renewal attempt failed (e.g. the issuer expired), None when it did not.
        self.rotation_error: str | None = None

    @property
    def certificate(self) -> x509.Certificate:
        """The current leaf certificate."""
        return self.current.certificate

    @property
    def private_key(self) -> PrivateKey:
        """The current private key (in memory only; see ``tlsctx`` for loading it)."""
        return self.current.private_key

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """What the sidecar presents in a handshake: the leaf, then its CA certificates."""
        return self.current.chain

    def rotation_due(self, at: datetime | None = None) -> bool:
        """Whether the agent would have renewed by ``at`` (default: the clock's now)."""
        return (self.ca.clock.now() if at is None else at) >= self.renew_at

    def rotate(self, at: datetime | None = None) -> IssuedCertificate:
        """Re-issue now (or at ``at``), due or not. Raises :class:`PKIError` if the CA refuses."""
        when = self.ca.clock.now() if at is None else at
        issued = self.ca.issue(self.identity, at=when)
        self._install(issued, when)
        self.rotations += 1
        self.rotation_error = None
        return issued

    def refresh(self, at: datetime | None = None) -> int:
        """Do every renewal the agent would have done up to ``at``; return how many.

        After a fast-forward of a day this is 2 for Istio (renewal every ~12 h). Only the last
        certificate is actually minted, since nobody saw the ones in between; the count is
        exact. If the CA refuses (its certificate expired), renewal stops there, the old
        certificate stays and :attr:`rotation_error` says why.
        """
        target = self.ca.clock.now() if at is None else at
        renew_at, last, count, error = self.renew_at, None, 0, None
        while renew_at <= target:
            try:
                _, not_after = self.ca.validity_window(renew_at)
            except PKIError as exc:
                error = str(exc)
                break
            last, count = renew_at, count + 1
            renew_at = self.ca.rotation.renew_at(renew_at, not_after, self.ca.rng)
        if last is not None:
            self._install(self.ca.issue(self.identity, at=last), last)
            self.rotations += count
        self.rotation_error = error
        return count

    def _install(self, issued: IssuedCertificate, when: datetime) -> None:
        self.current = issued
        self.renew_at = self.ca.rotation.renew_at(issued.issued_at, issued.not_after, self.ca.rng)
        self.rotated_at = when

    def __repr__(self) -> str:
        return (
            f"WorkloadCredential({self.identity.name!r}, serial={self.certificate.serial_number},"
            f" rotations={self.rotations})"
        )
