"""Fixed times and hand-made certificates shared by the PKI tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

T0 = datetime(2026, 1, 1, tzinfo=UTC)


_KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(
    *,
    subject: str = "forged",
    issuer: x509.Certificate | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    ca: bool | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    san: str | None = "spiffe://cluster.local/ns/foo/sa/forged",
    not_before: datetime = T0,
    lifetime: timedelta = timedelta(days=1),
    extra: x509.ExtensionType | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A hand-made certificate for the shapes no mesh CA would issue."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=False
        )
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    if issuer is not None:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        builder = builder.add_extension(aki, critical=False)
    else:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(_KEY.public_key()), critical=False
        )
    return builder.sign(issuer_key or _KEY, hashes.SHA256()), _KEY


BOTH_EKU = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
