"""Certificate helpers shared by verify and inspection: names, SANs, CA flags, signatures."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}


def eku_names(cert: x509.Certificate) -> list[str]:
    """``["serverAuth", "clientAuth"]`` (OpenSSL's short names; dotted OIDs for the rest)."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return [_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku]


def subject_text(name: x509.Name) -> str:
    """RFC 4514 text, or ``(empty subject)`` for Istio workload certificates, which have none."""
    return name.rfc4514_string() or "(empty subject)"


def san_values(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value)


def identities(cert: x509.Certificate) -> list[str]:
    """Every name a peer could be matched on: SPIFFE IDs first, then URIs and DNS names."""
    uris = [str(n.value) for n in san_values(cert) if isinstance(n, x509.UniformResourceIdentifier)]
    dns = [str(n.value) for n in san_values(cert) if isinstance(n, x509.DNSName)]
    spiffe = [u for u in uris if u.startswith("spiffe://")]
    return [*spiffe, *(u for u in uris if u not in spiffe), *dns]


def identity_of(cert: x509.Certificate) -> str | None:
    """The workload identity a certificate carries: its SPIFFE ID, else its first DNS name."""
    found = identities(cert)
    return found[0] if found else None


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def describe(cert: x509.Certificate, role: str) -> str:
    """``the certificate for spiffe://...`` / ``the intermediate certificate 'CN=...'``."""
    if role == "leaf":
        identity = identity_of(cert)
        if identity:
            return f"the certificate for {identity}"
        return f"the certificate '{subject_text(cert.subject)}'"
    return f"the {role} certificate '{subject_text(cert.subject)}'"


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` names and signed ``cert`` (False on any mismatch, never raises)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and signed_by(cert, cert)
