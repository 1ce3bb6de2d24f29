"""Verify a presented chain against a mesh root, and say why it fails in a learner's words.

``cryptography.x509.verification`` does the authoritative check (its ``ClientVerifier`` takes
URI-only SANs and empty subjects; its ``ServerVerifier`` needs a DNS name, which Linkerd
identities are and SPIFFE IDs are not), but its errors read "candidates exhausted". So the
chain is first walked by hand: signatures, CA flags, validity at the injected time, key usage
and the expected identity (secure naming), each failure with a reason code and a sentence.
A chain the walk accepts and cryptography still rejects is reported as ``rejected``.

Checks run in this order, and the first failure is the one reported: a certificate at all,
a path to the root (``chain_incomplete`` / ``wrong_root``), ``not_a_ca``, validity
(``expired`` / ``not_yet_valid``, the certificate nearest the root first, since renewing the
leaf cannot fix an expired issuer), ``wrong_usage``, ``identity_mismatch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from meshtutor.pki._names import (
    describe,
    eku_names,
    identities,
    identity_of,
    is_ca,
    san_values,
    self_signed,
    signed_by,
    subject_text,
)
from meshtutor.pki.clock import format_relative, format_time
from meshtutor.pki.identity import WorkloadIdentity

__all__ = ["Reason", "Usage", "Verification", "verify_chain"]

Usage = Literal["client", "server"]
_MAX_DEPTH = 8


class Reason(StrEnum):
    """Why a chain was accepted or rejected (machine-readable; the message is for people)."""

    OK = "ok"
    NO_CERTIFICATE = "no_certificate"
    CHAIN_INCOMPLETE = "chain_incomplete"
    WRONG_ROOT = "wrong_root"
    NOT_A_CA = "not_a_ca"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_USAGE = "wrong_usage"
    IDENTITY_MISMATCH = "identity_mismatch"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Verification:
    """The verdict on one presented chain.

    ``path`` is the chain as far as it was built, leaf first (ending at the trusted root when
    it got there); ``failed_at`` indexes the certificate at fault in ``path``.
    """

    reason: Reason
    message: str
    at: datetime
    identity: str | None = None
    expected: tuple[str, ...] = ()
    path: tuple[x509.Certificate, ...] = ()
    failed_at: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "ok": self.ok,
            "reason": self.reason.value,
            "message": self.message,
            "at": self.at.isoformat(),
            "identity": self.identity,
            "expected": list(self.expected),
            "path": [
                {
                    "subject": subject_text(cert.subject),
                    "sha256": cert.fingerprint(hashes.SHA256()).hex(),
                }
                for cert in self.path
            ],
            "failed_at": self.failed_at,
        }


def _expected_names(
    expected: str | WorkloadIdentity | Sequence[str | WorkloadIdentity] | None,
) -> tuple[str, ...]:
    if expected is None:
        return ()
    if isinstance(expected, str | WorkloadIdentity):
        return (str(expected),)
    return tuple(str(name) for name in expected)


class _Failure(Exception):
    """Internal: ends the walk with a reason; turned into a Verification."""

    def __init__(self, reason: Reason, message: str, index: int | None) -> None:
        super().__init__(message)
        self.reason, self.message, self.index = reason, message, index


class _Walk:
    """One verification: builds the path, then checks it step by step."""

    def __init__(
        self,
        chain: Sequence[x509.Certificate],
        roots: Sequence[x509.Certificate],
        at: datetime,
        mesh_intermediates: Sequence[x509.Certificate] | None,
    ) -> None:
        self.chain, self.roots, self.at = chain, roots, at
        self.mesh_intermediates = mesh_intermediates
        self.path: list[x509.Certificate] = [chain[0]]
        self.complete = False  # the path reached a trusted root

    def describe(self, index: int) -> str:
        if index == 0:
            role = "leaf"
        elif self.complete and index == len(self.path) - 1:
            role = "root"
        else:
            role = "intermediate"
        return describe(self.path[index], role)

    def build_path(self) -> None:
        root_prints = {root.fingerprint(hashes.SHA256()) for root in self.roots}
        pool = list(self.chain[1:])
        current = self.path[0]
        while len(self.path) <= _MAX_DEPTH:
            if current.fingerprint(hashes.SHA256()) in root_prints:
                self.complete = True  # a peer may send the root itself (Istio plug-in CA does)
                return
            named_roots = [r for r in self.roots if r.subject == current.issuer]
            signer = next((r for r in named_roots if signed_by(current, r)), None)
            if signer is not None:
                self.path.append(signer)
                self.complete = True
                return
            named = [c for c in pool if c.subject == current.issuer and c not in self.path]
            signer = next((c for c in named if signed_by(current, c)), None)
            if signer is None:
                self._no_issuer(current, named_roots, named)
            self.path.append(signer)
            current = signer
        raise _Failure(
            Reason.CHAIN_INCOMPLETE,
            f"the chain is longer than {_MAX_DEPTH} certificates without reaching a trusted root",
            len(self.path) - 1,
        )

    def _no_issuer(
        self,
        current: x509.Certificate,
        named_roots: list[x509.Certificate],
        named: list[x509.Certificate],
    ) -> NoReturn:
        index = len(self.path) - 1
        what, issuer = self.describe(index), subject_text(current.issuer)
        trusted = ", ".join(f"'{subject_text(r.subject)}'" for r in self.roots) or "none"
        if named_roots:
            # Two throwaway meshes both call their root O=cluster.local: only the key differs.
            raise _Failure(
                Reason.WRONG_ROOT,
                f"{what} names '{issuer}' as its issuer, but this mesh's root of that name did "
                "not sign it: it was issued by another CA with the same name (another mesh or "
                "an old root)",
                index,
            )
        if named:
            raise _Failure(
                Reason.WRONG_ROOT,
                f"{what} does not carry a valid signature of the presented issuer '{issuer}': "
                "it was signed by another key with that name",
                index,
            )
        if self_signed(current):
            raise _Failure(
                Reason.WRONG_ROOT,
                f"the chain ends at the root '{subject_text(current.subject)}' (SHA-256 "
                f"{current.fingerprint(hashes.SHA256()).hex()[:16]}…), which this mesh does not "
                f"trust (trusted: {trusted}): the certificate comes from another mesh or CA",
                index,
            )
        known = self.mesh_intermediates
        if known is not None and not any(c.subject == current.issuer for c in known):
            raise _Failure(
                Reason.WRONG_ROOT,
                f"{what} was issued by '{issuer}', a CA this mesh does not know (trusted: "
                f"{trusted}): the certificate comes from another mesh or CA",
                index,
            )
        maybe_other = "" if known is not None else " (or the certificate comes from another CA)"
        raise _Failure(
            Reason.CHAIN_INCOMPLETE,
            f"the chain is incomplete: {what} was issued by '{issuer}', but that certificate "
            "was not presented and is not a trusted root; the peer must send its issuer "
            f"(intermediate) certificate after its own{maybe_other}",
            index,
        )

    def check_cas(self) -> None:
        """Every certificate that signed another must be a CA, within its path length."""
        for index in range(1, len(self.path)):
            cert = self.path[index]
            what, signed = self.describe(index), self.describe(index - 1)
            if not is_ca(cert):
                raise _Failure(
                    Reason.NOT_A_CA,
                    f"{signed} was signed by {what}, which is not a CA (CA:FALSE): a workload "
                    "certificate cannot issue other certificates",
                    index,
                )
            try:
                may_sign = cert.extensions.get_extension_for_class(
                    x509.KeyUsage
                ).value.key_cert_sign
            except x509.ExtensionNotFound:
                may_sign = True
            if not may_sign:
                raise _Failure(
                    Reason.NOT_A_CA,
                    f"{what} signed {signed}, but its key usage does not include keyCertSign",
                    index,
                )
            limit = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
            below = index - 1  # CA certificates between this one and the leaf
            if limit is not None and below > limit:
                raise _Failure(
                    Reason.NOT_A_CA,
                    f"{what} may have only {limit} CA certificate(s) below it (pathlen:{limit}), "
                    f"but the chain puts {below} there",
                    index,
                )

    def check_validity(self) -> None:
        """Validity at the given time, nearest the root first: renewing a leaf cannot fix an
        expired issuer, so that is the one to tell."""
        at = self.at
        for index in reversed(range(len(self.path))):
            cert = self.path[index]
            before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
            if before <= at <= after:
                continue
            others = sum(
                1
                for c in self.path[:index]
                if not c.not_valid_before_utc <= at <= c.not_valid_after_utc
            )
            also = f" (and {others} certificate(s) below it too)" if others else ""
            if at > after:
                consequence = ": every certificate it signed is refused until it is renewed"
                raise _Failure(
                    Reason.EXPIRED,
                    f"{self.describe(index)} expired {format_relative(after, at)} (not after "
                    f"{format_time(after)}){also}{consequence if index else ''}",
                    index,
                )
            raise _Failure(
                Reason.NOT_YET_VALID,
                f"{self.describe(index)} is not valid yet: it starts "
                f"{format_relative(before, at)} (not before {format_time(before)}){also}; "
                "check the clocks",
                index,
            )

    def check_usage(self, usage: Usage) -> None:
        """The leaf's extended key usage allows the side of the handshake it is used on."""
        wanted = "clientAuth" if usage == "client" else "serverAuth"
        eku = eku_names(self.path[0])
        if eku and wanted not in eku:
            raise _Failure(
                Reason.WRONG_USAGE,
                f"{self.describe(0)} may not be used as a TLS {usage} (its extended key usage "
                f"lists {', '.join(eku)}, not {wanted})",
                0,
            )

    def check_identity(self, expected: tuple[str, ...]) -> None:
        """Secure naming: the peer is the workload we meant to talk to."""
        leaf = self.path[0]
        if set(expected) & set(identities(leaf)):
            return
        wanted = " or ".join(expected)
        identity = identity_of(leaf)
        if identity is None:
            raise _Failure(
                Reason.IDENTITY_MISMATCH,
                f"the peer's certificate carries no identity (no URI or DNS SAN), but {wanted} "
                "was expected",
                0,
            )
        raise _Failure(
            Reason.IDENTITY_MISMATCH,
            f"the peer presented {identity}, but {wanted} was expected (secure naming: a valid "
            "certificate for the wrong workload is still refused)",
            0,
        )

    def check_with_cryptography(self, usage: Usage | None, expected: tuple[str, ...]) -> None:
        """The second opinion of cryptography's RFC 5280 / Web PKI verifier."""
        from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

        leaf, rest = self.chain[0], list(self.chain[1:])
        builder = PolicyBuilder().store(Store(list(self.roots))).time(self.at)
        dns_names = {str(n.value) for n in san_values(leaf) if isinstance(n, x509.DNSName)}
        server_name = next((n for n in expected if n in dns_names), None)
        try:
            if usage == "server" and server_name:
                # Linkerd identities are DNS names: the server verifier matches them itself.
                builder.build_server_verifier(x509.DNSName(server_name)).verify(leaf, rest)
            elif "clientAuth" in eku_names(leaf) or not eku_names(leaf):
                # SPIFFE IDs are URIs, which the server verifier cannot match; the client
                # verifier checks everything else, and the identity was matched by hand.
                builder.build_client_verifier().verify(leaf, rest)
        except VerificationError as exc:
            raise _Failure(
                Reason.REJECTED,
                f"{self.describe(0)} was rejected by cryptography's verifier: {exc}",
                None,
            ) from None


def verify_chain(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    expected_identity: str | WorkloadIdentity | Sequence[str | WorkloadIdentity] | None = None,
    mesh_intermediates: Sequence[x509.Certificate] | None = None,
    usage: Usage | None = None,
) -> Verification:
    """Verify ``chain`` (leaf first, as presented) against ``roots`` at time ``at``.

    ``expected_identity`` is the identity (or any of several) the peer must carry, compared
    with the leaf's SPIFFE URI or DNS SANs. ``usage`` also requires the clientAuth or
    serverAuth extended key usage. ``mesh_intermediates``, when given, is the complete list
    of the mesh's own CA certificates below the roots; it is never trusted, only used to tell
    a missing intermediate from a certificate of another mesh.
    """
    expected = _expected_names(expected_identity)
    if not chain:
        return Verification(
            Reason.NO_CERTIFICATE,
            "no certificate was presented: the peer sent no client certificate, so it has no "
            "mesh identity (plaintext, or TLS from outside the mesh)",
            at,
            expected=expected,
        )
    walk = _Walk(chain, roots, at, mesh_intermediates)
    identity = identity_of(chain[0])
    try:
        walk.build_path()
        walk.check_cas()
        walk.check_validity()
        if usage is not None:
            walk.check_usage(usage)
        if expected:
            walk.check_identity(expected)
        walk.check_with_cryptography(usage, expected)
    except _Failure as failure:
        return Verification(
            failure.reason, failure.message, at, identity, expected, tuple(walk.path), failure.index
        )
    path = walk.path
    end = min(cert.not_valid_after_utc for cert in path)
    return Verification(
        Reason.OK,
        f"trusted: {identity or subject_text(chain[0].subject)} chains to the root "
        f"'{subject_text(path[-1].subject)}', valid until {format_time(end)} "
        f"(expires {format_relative(end, at)})",
        at,
        identity,
        expected,
        tuple(path),
    )
