"""Certificates as plain data a learner can read, and loading chains from real clusters.

:func:`describe_chain` turns certificates into frozen :class:`CertificateInfo` records (what
``step certificate inspect`` or ``openssl x509 -text`` would show, plus the lifetime left at a
given time) that the CLI prints, the TUI draws, and ``to_dict()`` makes JSON.
:func:`load_certificates` reads what a cluster gives you: PEM bundles, base64 of PEM (Envoy's
config dump ``inlineBytes``), DER; :func:`load_envoy_secrets` reads a whole
``istioctl proxy-config secret -o json`` or Envoy ``/config_dump``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from meshtutor.errors import InputFileError, PKIError
from meshtutor.inputfiles import parse_json
from meshtutor.pki._names import (
    eku_names,
    identity_of,
    is_ca,
    san_values,
    self_signed,
    subject_text,
)
from meshtutor.pki.identity import WorkloadCredential

if TYPE_CHECKING:
    from meshtutor.pki.verify import Verification

__all__ = [
    "CertChain",
    "CertificateInfo",
    "CredentialInfo",
    "EnvoySecrets",
    "SubjectAltName",
    "describe_certificate",
    "describe_chain",
    "describe_credential",
    "load_certificates",
    "load_envoy_secrets",
]

Role = Literal["leaf", "intermediate", "root"]
Status = Literal["valid", "expired", "not yet valid"]

_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_SIGNATURES = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.ED25519: "ED25519",
}
# RFC 5280 §4.2.1.3 names, in bit order.
_KEY_USAGES = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "contentCommitment"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


@dataclass(frozen=True)
class SubjectAltName:
    """One SAN entry; ``spiffe`` flags a SPIFFE ID (the identity Istio policies match)."""

    kind: str  # URI, DNS, IP, email, other
    value: str
    spiffe: bool = False

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class CertificateInfo:
    """Everything a learner needs to read one certificate, at time ``at``."""

    role: Role
    subject: str
    issuer: str
    serial: int
    sans: tuple[SubjectAltName, ...]
    identity: str | None
    not_before: datetime
    not_after: datetime
    at: datetime
    key_algorithm: str
    signature_algorithm: str
    is_ca: bool
    path_length: int | None
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    fingerprint_sha256: str
    self_signed: bool
    pem: str

    @property
    def spiffe_id(self) -> str | None:
        """The SPIFFE ID among the SANs (Istio workloads), else None."""
        return next((san.value for san in self.sans if san.spiffe), None)

    @property
    def lifetime(self) -> timedelta:
        """Not after minus not before."""
        return self.not_after - self.not_before

    @property
    def remaining(self) -> timedelta:
        """Time left at ``at`` (negative once expired)."""
        return self.not_after - self.at

    @property
    def remaining_fraction(self) -> float:
        """Share of the lifetime still ahead at ``at``, 0.0 to 1.0 (1.0 before it starts)."""
        total = self.lifetime.total_seconds()
        if total <= 0:
            return 0.0
        return min(1.0, max(0.0, self.remaining.total_seconds() / total))

    @property
    def status(self) -> Status:
        """``valid``, ``expired`` or ``not yet valid`` at ``at``."""
        if self.at > self.not_after:
            return "expired"
        if self.at < self.not_before:
            return "not yet valid"
        return "valid"

    @property
    def serial_hex(self) -> str:
        """The serial as ``openssl x509 -serial`` prints it (``istioctl`` prints decimal)."""
        return f"{self.serial:X}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (serials as decimal strings: JavaScript loses big ints)."""
        return {
            "role": self.role,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": str(self.serial),
            "serial_hex": self.serial_hex,
            "sans": [
                {"type": san.kind, "value": san.value, "spiffe": san.spiffe} for san in self.sans
            ],
            "identity": self.identity,
            "spiffe_id": self.spiffe_id,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "at": self.at.isoformat(),
            "status": self.status,
            "lifetime_seconds": int(self.lifetime.total_seconds()),
            "remaining_seconds": int(self.remaining.total_seconds()),
            "remaining_fraction": round(self.remaining_fraction, 4),
            "key_algorithm": self.key_algorithm,
            "signature_algorithm": self.signature_algorithm,
            "basic_constraints": {"ca": self.is_ca, "path_length": self.path_length},
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "fingerprint_sha256": self.fingerprint_sha256,
            "self_signed": self.self_signed,
            "pem": self.pem,
        }


@dataclass(frozen=True)
class CertChain:
    """A chain leaf → … → root, described at time ``at``, with its verification if any."""

    certificates: tuple[CertificateInfo, ...]
    at: datetime
    verification: Verification | None = None

    @property
    def leaf(self) -> CertificateInfo:
        return self.certificates[0]

    @property
    def root(self) -> CertificateInfo:
        return self.certificates[-1]

    @property
    def pem(self) -> str:
        return "".join(cert.pem for cert in self.certificates)

    def __iter__(self) -> Iterator[CertificateInfo]:
        return iter(self.certificates)

    def __len__(self) -> int:
        return len(self.certificates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "certificates": [cert.to_dict() for cert in self.certificates],
            "verification": None if self.verification is None else self.verification.to_dict(),
        }


@dataclass(frozen=True)
class CredentialInfo:
    """A workload's credential at a moment: its chain and where it is in its rotation."""

    workload: str
    identity: str
    mesh: str
    chain: CertChain
    rotations: int
    rotated_at: datetime | None
    renew_at: datetime
    rotation_due: bool
    rotation_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "identity": self.identity,
            "mesh": self.mesh,
            "rotations": self.rotations,
            "rotated_at": None if self.rotated_at is None else self.rotated_at.isoformat(),
            "renew_at": self.renew_at.isoformat(),
            "rotation_due": self.rotation_due,
            "rotation_error": self.rotation_error,
            "chain": self.chain.to_dict(),
        }


def key_algorithm(cert: x509.Certificate) -> str:
    """``ECDSA P-256``, ``RSA 2048``, ``Ed25519``…"""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def _sans(cert: x509.Certificate) -> tuple[SubjectAltName, ...]:
    out = []
    for name in san_values(cert):
        if isinstance(name, x509.UniformResourceIdentifier):
            out.append(SubjectAltName("URI", name.value, name.value.startswith("spiffe://")))
        elif isinstance(name, x509.DNSName):
            out.append(SubjectAltName("DNS", name.value))
        elif isinstance(name, x509.IPAddress):
            out.append(SubjectAltName("IP", str(name.value)))
        elif isinstance(name, x509.RFC822Name):
            out.append(SubjectAltName("email", name.value))
        else:
            out.append(SubjectAltName("other", str(name.value)))
    return tuple(out)


def _key_usage(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    names = [name for attr, name in _KEY_USAGES if getattr(usage, attr)]
    # cryptography raises on encipher_only/decipher_only unless keyAgreement is set.
    if usage.key_agreement:
        names += ["encipherOnly"] if usage.encipher_only else []
        names += ["decipherOnly"] if usage.decipher_only else []
    return tuple(names)


def describe_certificate(
    cert: x509.Certificate, *, at: datetime, role: Role | None = None
) -> CertificateInfo:
    """One certificate as plain data; ``role`` defaults to root if self-signed, else leaf/CA."""
    is_self_signed = self_signed(cert)
    ca = is_ca(cert)
    if role is None:
        role = "root" if is_self_signed else "intermediate" if ca else "leaf"
    try:
        path_length = cert.extensions.get_extension_for_class(
            x509.BasicConstraints
        ).value.path_length
    except x509.ExtensionNotFound:
        path_length = None
    oid = cert.signature_algorithm_oid
    return CertificateInfo(
        role=role,
        subject=subject_text(cert.subject),
        issuer=subject_text(cert.issuer),
        serial=cert.serial_number,
        sans=_sans(cert),
        identity=identity_of(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        at=at,
        key_algorithm=key_algorithm(cert),
        signature_algorithm=_SIGNATURES.get(oid, getattr(oid, "_name", oid.dotted_string)),
        is_ca=ca,
        path_length=path_length,
        key_usage=_key_usage(cert),
        extended_key_usage=tuple(eku_names(cert)),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        self_signed=is_self_signed,
        pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


def describe_chain(
    chain: Sequence[x509.Certificate],
    *,
    at: datetime,
    roots: Sequence[x509.Certificate] = (),
    verification: Verification | None = None,
) -> CertChain:
    """Describe a presented chain (leaf first), followed by the ``roots`` it does not already
    contain, so a view can draw root → [issuer] → workload."""
    if not chain:
        raise PKIError("cannot describe an empty chain: expected at least one certificate")
    prints = {cert.fingerprint(hashes.SHA256()) for cert in chain}
    full = [*chain, *(r for r in roots if r.fingerprint(hashes.SHA256()) not in prints)]
    infos = []
    for index, cert in enumerate(full):
        role: Role | None = "leaf" if index == 0 and len(full) > 1 else None
        infos.append(describe_certificate(cert, at=at, role=role))
    return CertChain(tuple(infos), at, verification)


def describe_credential(
    credential: WorkloadCredential, *, at: datetime | None = None
) -> CredentialInfo:
    """A credential's chain (with the mesh root) and rotation state at ``at``."""
    ca = credential.ca
    at = ca.clock.now() if at is None else at
    verification = ca.verify(credential.chain, expected_identity=credential.identity, at=at)
    return CredentialInfo(
        workload=credential.identity.workload,
        identity=credential.identity.name,
        mesh=credential.identity.mesh.value,
        chain=describe_chain(credential.chain, at=at, roots=[ca.root], verification=verification),
        rotations=credential.rotations,
        rotated_at=credential.rotated_at,
        renew_at=credential.renew_at,
        rotation_due=credential.rotation_due(at),
        rotation_error=credential.rotation_error,
    )


# -- loading --------------------------------------------------------------------------------

_EXPECTED = (
    "expected PEM certificates (-----BEGIN CERTIFICATE-----), base64 of PEM (as in Envoy's "
    "config dump inlineBytes) or DER"
)
_BASE64 = re.compile(rb"[A-Za-z0-9+/=_\-\s]+")


def _preview(data: bytes) -> str:
    text = data[:24].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > 24 else ""))


def _der_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """One DER certificate or several concatenated (each a SEQUENCE with a DER length)."""
    certs, offset = [], 0
    while offset < len(data):
        if data[offset] != 0x30 or offset + 2 > len(data):
            raise PKIError(f"{source}: DER data at byte {offset} is not a certificate; {_EXPECTED}")
        first = data[offset + 1]
        if first < 0x80:
            header, length = 2, first
        else:
            count = first & 0x7F
            header = 2 + count
            length = int.from_bytes(data[offset + 2 : offset + header], "big")
        end = offset + header + length
        try:
            certs.append(x509.load_der_x509_certificate(data[offset:end]))
        except ValueError as exc:
            raise PKIError(
                f"{source}: DER certificate at byte {offset} is damaged ({exc}); {_EXPECTED}"
            ) from None
        offset = end
    return certs


def _readable(certs: list[x509.Certificate], source: str) -> list[x509.Certificate]:
    """cryptography decodes a certificate's key and extensions only when they are read, so a
    damaged one (an unknown curve, a bad extension) loads and then raises in the middle of
    the display; read them all now so it is one PKIError naming the certificate instead."""
    for index, cert in enumerate(certs, start=1):
        try:
            describe_certificate(cert, at=cert.not_valid_before_utc)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise PKIError(
                f"{source}: certificate #{index} is damaged ({exc}); {_EXPECTED}"
            ) from None
    return certs


def load_certificates(data: bytes | str, *, source: str = "<input>") -> list[x509.Certificate]:
    """Read certificates from PEM, base64 of PEM, DER, or base64 of DER, in the order given.

    Raises :class:`PKIError` naming ``source`` and what was expected when nothing usable is
    found.
    """
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    stripped = raw.strip()
    if not stripped:
        raise PKIError(f"{source}: no data; {_EXPECTED}")
    if b"-----BEGIN" in stripped:
        if b"-----BEGIN CERTIFICATE-----" not in stripped:
            kinds = sorted(set(re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", stripped)))
            found = ", ".join(k.decode() for k in kinds)
            raise PKIError(f"{source}: PEM holds {found} but no CERTIFICATE; {_EXPECTED}")
        try:
            return _readable(x509.load_pem_x509_certificates(stripped), source)
        except ValueError:
            raise PKIError(
                f"{source}: a PEM CERTIFICATE block is damaged (bad base64 or truncated); "
                "copy the whole block, BEGIN and END lines included"
            ) from None
    if stripped[0] == 0x30:
        return _readable(_der_certificates(stripped, source), source)
    if _BASE64.fullmatch(stripped):
        # Whitespace from line wrapping, URL-safe letters and missing padding all occur in
        # what people paste.
        compact = re.sub(rb"\s+", b"", stripped).translate(bytes.maketrans(b"-_", b"+/"))
        compact = compact.rstrip(b"=")
        try:
            decoded = base64.b64decode(compact + b"=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if decoded.lstrip().startswith(b"-----BEGIN") or decoded[:1] == b"\x30":
            return load_certificates(decoded, source=f"{source} (base64-decoded)")
    if stripped[:1] in (b"{", b"["):
        raise PKIError(
            f"{source}: this is JSON but not an Envoy secret dump: give PEM or DER certificates, "
            "or the JSON object that `istioctl proxy-config secret POD -o json` prints"
        )
    raise PKIError(f"{source}: cannot read {_preview(stripped)} as certificates; {_EXPECTED}")


@dataclass(frozen=True)
class EnvoySecrets:
    """The workload chain and trusted roots found in an Envoy secrets dump."""

    chain: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...]


_CHAIN_KEYS = {"certificate_chain", "certificateChain"}
_ROOT_KEYS = {"trusted_ca", "trustedCa"}
_INLINE_KEYS = ("inline_bytes", "inlineBytes", "inline_string", "inlineString")


def _inline(node: Any) -> str | None:
    if isinstance(node, dict):
        for key in _INLINE_KEYS:
            if isinstance(node.get(key), str):
                return str(node[key])
    return None


def _values(node: dict[Any, Any], found: dict[str, list[str]]) -> Iterator[Any]:
    """The values of ``node`` to search further, recording inline certificates on the way
    (lazily, so that they are found in document order)."""
    for key, value in node.items():
        inline = _inline(value)
        if key in _CHAIN_KEYS and inline is not None:
            found["chain"].append(inline)
        elif key in _ROOT_KEYS and inline is not None:
            found["roots"].append(inline)
        else:
            yield value


def _walk(document: Any, found: dict[str, list[str]]) -> None:
    # A stack of iterators, not recursion: a dump nested almost as deep as json.loads allows
    # would otherwise end in RecursionError here.
    stack: list[Iterator[Any]] = [iter((document,))]
    while stack:
        node = next(stack[-1], _END)
        if node is _END:
            stack.pop()
        elif isinstance(node, dict):
            stack.append(_values(node, found))
        elif isinstance(node, list):
            stack.append(iter(node))


_END = object()


def load_envoy_secrets(text: str | bytes, *, source: str = "<input>") -> EnvoySecrets:
    """Read the ``default`` chain and ``ROOTCA`` roots from Envoy secrets JSON.

    Accepts ``istioctl proxy-config secret POD -o json`` (camelCase) and Envoy's admin
    ``/config_dump`` (snake_case). Only the first certificate chain found is used.
    """
    try:
        document = parse_json(text, source)
    except InputFileError as exc:
        raise PKIError(
            f"{exc.source}{f':{exc.line}' if exc.line else ''}: not JSON ({exc.reason}); "
            "expected the output of `istioctl proxy-config secret POD -o json` or Envoy's "
            "/config_dump"
        ) from None
    found: dict[str, list[str]] = {"chain": [], "roots": []}
    _walk(document, found)
    if not found["chain"]:
        raise PKIError(
            f"{source}: no certificateChain.inlineBytes found; expected the output of "
            "`istioctl proxy-config secret POD -o json` or Envoy's /config_dump"
        )
    chain = load_certificates(found["chain"][0], source=f"{source} certificateChain")
    roots = [
        cert
        for i, blob in enumerate(found["roots"])
        for cert in load_certificates(blob, source=f"{source} trustedCa #{i + 1}")
    ]
    return EnvoySecrets(tuple(chain), tuple(roots))
