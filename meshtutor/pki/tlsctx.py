"""``ssl.SSLContext`` objects for sidecars, built from workload credentials.

Both sides speak TLS 1.3 only, present the workload chain, require the peer's certificate and
trust only the mesh root (Linkerd peers send their issuer, so the trust anchor is enough).
Hostnames are not checked by OpenSSL: mesh identities are SPIFFE URIs or Linkerd names, so
secure naming is :func:`verify_peer`'s job after the handshake.

Time: OpenSSL compares validity with the real clock and Python cannot give it another one.
A mesh on a fast-forwarded clock therefore builds its contexts with ``check_time=False`` and
calls :func:`verify_peer`, which checks validity at the mesh clock's time.

Keys: ``SSLContext.load_cert_chain`` only reads files. On Linux the key goes into an anonymous
in-memory file (``memfd_create``) read through ``/proc/self/fd``, so it never touches a disk;
elsewhere it is written to a private temporary directory (0700, file 0600) and deleted at once.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from meshtutor.pki.ca import IssuedCertificate, MeshCA, _write_all
from meshtutor.pki.identity import WorkloadCredential, WorkloadIdentity
from meshtutor.pki.verify import Reason, Usage, Verification

if TYPE_CHECKING:
    from meshtutor.pki.clock import Clock

__all__ = [
    "client_context",
    "explain_handshake_error",
    "server_context",
    "verify_peer",
]

# X509_V_FLAG_NO_CHECK_TIME (OpenSSL >= 1.1.0); the ssl module has no name for it.
_NO_CHECK_TIME = 0x200000

Credential = WorkloadCredential | IssuedCertificate


def _issued(credential: Credential) -> IssuedCertificate:
    return credential.current if isinstance(credential, WorkloadCredential) else credential


def _trust_pem(
    trust: Sequence[x509.Certificate] | bytes | None, credential: Credential | None
) -> str:
    if isinstance(trust, bytes):
        return trust.decode("ascii")
    if trust is None:
        if not isinstance(credential, WorkloadCredential):
            raise TypeError("pass trust= (the mesh root) when the credential has no CA attached")
        return credential.ca.root_pem.decode("ascii")
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in trust)


def load_credential(context: ssl.SSLContext, credential: Credential) -> None:
    """Load a credential's key and chain into ``context`` without leaving the key on disk."""
    issued = _issued(credential)
    # Key first, then the chain: OpenSSL reads the certificates after skipping the key block.
    blob = issued.key_pem() + issued.chain_pem
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("meshtutor-credential", os.MFD_CLOEXEC)
        try:
            _write_all(fd, blob)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="meshtutor-") as private:  # created 0700
        path = os.path.join(private, "credential.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, blob)
        finally:
            os.close(fd)
        context.load_cert_chain(path)


def _context(
    protocol: int,
    credential: Credential | None,
    trust: Sequence[x509.Certificate] | bytes | None,
    check_time: bool,
    alpn: Sequence[str],
) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=_trust_pem(trust, credential))
    if not check_time:
        context.verify_flags |= _NO_CHECK_TIME
    if credential is not None:
        load_credential(context, credential)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def server_context(
    credential: Credential,
    *,
    trust: Sequence[x509.Certificate] | bytes | None = None,
    check_time: bool = True,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """An inbound sidecar's context: TLS 1.3, presents ``credential``, requires a client cert.

    ``trust`` defaults to the credential's mesh root. ``check_time=False`` leaves validity to
    :func:`verify_peer` (for a fast-forwarded clock).
    """
    return _context(ssl.PROTOCOL_TLS_SERVER, credential, trust, check_time, alpn)


def client_context(
    credential: Credential | None,
    *,
    trust: Sequence[x509.Certificate] | bytes | None = None,
    check_time: bool = True,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """An outbound sidecar's context: TLS 1.3, presents ``credential``, verifies the server.

    ``credential=None`` gives a client with no certificate (what a non-mesh TLS client
    sends), which then needs ``trust``.
    """
    return _context(ssl.PROTOCOL_TLS_CLIENT, credential, trust, check_time, alpn)


def verify_peer(
    tls: ssl.SSLSocket | ssl.SSLObject,
    ca: MeshCA,
    *,
    expected_identity: str | WorkloadIdentity | Sequence[str | WorkloadIdentity] | None = None,
    at: datetime | None = None,
    usage: Usage | None = None,
) -> Verification:
    """After a handshake: check the peer's certificate at the mesh clock and its identity.

    Python before 3.13 exposes only the peer's leaf, so the path is rebuilt with the mesh's
    own intermediates (OpenSSL already checked the presented one).
    """
    when = ca.clock.now() if at is None else at
    der = tls.getpeercert(binary_form=True)
    if not der:
        return ca.verify((), expected_identity=expected_identity, at=when, usage=usage)
    unverified = getattr(tls, "get_unverified_chain", None)
    if unverified is not None:
        chain = [x509.load_der_x509_certificate(c) for c in unverified()]
    else:
        chain = [x509.load_der_x509_certificate(der), *ca.intermediates]
    return ca.verify(chain, expected_identity=expected_identity, at=when, usage=usage)


# OpenSSL verify codes (x509_vfy.h) and alert reasons, in learner's terms.
_VERIFY_CODES: dict[int, tuple[Reason, str]] = {
    2: (Reason.CHAIN_INCOMPLETE, "the issuer of a certificate in the peer's chain is missing"),
    7: (Reason.WRONG_ROOT, "a signature in the peer's chain does not verify"),
    9: (Reason.NOT_YET_VALID, "the peer's certificate is not valid yet (check the clocks)"),
    10: (Reason.EXPIRED, "the peer's certificate has expired"),
    18: (Reason.WRONG_ROOT, "the peer's certificate is self-signed, not issued by the mesh"),
    19: (Reason.WRONG_ROOT, "the peer's chain ends at a root this mesh does not trust"),
    20: (
        Reason.WRONG_ROOT,
        "the peer's certificate does not chain to this mesh's root (another mesh's CA, or a "
        "missing intermediate)",
    ),
    21: (Reason.CHAIN_INCOMPLETE, "the peer sent a single certificate whose issuer is unknown"),
    24: (Reason.NOT_A_CA, "a certificate that is not a CA signed another one"),
    26: (Reason.WRONG_USAGE, "the peer's certificate is not meant for this side of TLS"),
}
_ALERTS: dict[str, tuple[Reason, str]] = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": (
        Reason.NO_CERTIFICATE,
        "the client sent no certificate, and this side requires one (mutual TLS)",
    ),
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": (
        Reason.NO_CERTIFICATE,
        "the server requires a client certificate and this side sent none (curl: exit 35)",
    ),
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": (
        Reason.EXPIRED,
        "the peer refused this side's certificate: it has expired",
    ),
    "TLSV1_ALERT_UNKNOWN_CA": (
        Reason.WRONG_ROOT,
        "the peer refused this side's certificate: it does not chain to the peer's root",
    ),
    "SSLV3_ALERT_BAD_CERTIFICATE": (
        Reason.REJECTED,
        "the peer refused this side's certificate as bad",
    ),
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": (
        Reason.WRONG_USAGE,
        "the peer refused this side's certificate as unsuitable (key usage)",
    ),
}


def explain_handshake_error(exc: BaseException, *, at: datetime | Clock) -> Verification:
    """Turn an ``ssl`` handshake error (either side) into a reason code and a sentence."""
    when = at if isinstance(at, datetime) else at.now()
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = int(getattr(exc, "verify_code", 0) or 0)
        detail = str(getattr(exc, "verify_message", "") or exc)
        reason, sentence = _VERIFY_CODES.get(
            code, (Reason.REJECTED, "OpenSSL rejected the peer's certificate")
        )
        return Verification(reason, f"{sentence} (OpenSSL: {detail})", when)
    text = getattr(exc, "reason", None) or ""
    for name, (reason, sentence) in _ALERTS.items():
        if name == text or name in str(exc):
            return Verification(reason, f"{sentence} (OpenSSL: {name.lower()})", when)
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError | ssl.SSLEOFError):
        return Verification(
            Reason.REJECTED, "the peer closed the connection during the handshake", when
        )
    return Verification(Reason.REJECTED, f"the TLS handshake failed: {exc}", when)
