"""Mesh certificate authorities: Istio's istiod CA and Linkerd's trust anchor and issuer.

Istio (self-signed, the default install)::

    O=cluster.local (root, 10 years)  ──signs──>  workload certificates (24 h)

Istio with a plug-in CA (``cacerts``, as ``tools/certs/Makefile.selfsigned.mk`` makes it)::

    CN=Root CA,O=Istio (10 years) ──> CN=Intermediate CA,O=Istio (2 years) ──> workloads

Linkerd (as ``linkerd install`` generates it)::

    CN=root.linkerd.cluster.local (trust anchor, 365 d)
      ──> CN=identity.linkerd.cluster.local (identity issuer, 365 d) ──> proxies (24 h)

Keys are ECDSA P-256 unless RSA 2048 (Istio's own default) is asked for. Workload keys are
generated here, where the real agent would generate them in the pod and send a CSR: the tutor
has no pod to keep them in.
"""

from __future__ import annotations

import os
import random
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshtutor.errors import PKIError
from meshtutor.pki.clock import Clock, SystemClock, format_duration, format_time
from meshtutor.pki.identity import (
    DEFAULT_TRUST_DOMAIN,
    ISTIO_ROTATION,
    LINKERD_ROTATION,
    Mesh,
    RotationPolicy,
    WorkloadCredential,
    WorkloadIdentity,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from meshtutor.pki.verify import Usage, Verification

__all__ = [
    "ISTIO_MAX_WORKLOAD_TTL",
    "ISTIO_ROOT_TTL",
    "LINKERD_CA_TTL",
    "WORKLOAD_TTL",
    "IssuedCertificate",
    "KeyType",
    "MeshCA",
    "PrivateKey",
    "generate_key",
    "write_private_key",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# istio/istio security/pkg/cmd/constants.go and pilot-agent options (see reference §5).
ISTIO_ROOT_TTL = timedelta(days=3650)  # CITADEL_SELF_SIGNED_CA_CERT_TTL
ISTIO_INTERMEDIATE_TTL = timedelta(days=730)  # tools/certs INTERMEDIATE_DAYS
WORKLOAD_TTL = timedelta(hours=24)  # SECRET_TTL; Linkerd issuanceLifetime 24h0m0s
ISTIO_MAX_WORKLOAD_TTL = timedelta(days=90)  # MAX_WORKLOAD_CERT_TTL
# linkerd2 pkg/tls/ca.go DefaultLifetime = (24*365)h for the generated anchor and issuer.
LINKERD_CA_TTL = timedelta(days=365)
# Linkerd backdates proxy certificates by identity.issuer.clockSkewAllowance (20s) so a peer
# whose clock is slightly behind still accepts them.
LINKERD_CLOCK_SKEW = timedelta(seconds=20)


class KeyType(StrEnum):
    """The key algorithm of every key in a mesh."""

    ECDSA_P256 = "ecdsa"
    RSA_2048 = "rsa"

    @property
    def label(self) -> str:
        """``ECDSA P-256`` or ``RSA 2048``, as the inspection view prints key algorithms."""
        return "ECDSA P-256" if self is KeyType.ECDSA_P256 else "RSA 2048"


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def generate_key(
    key_type: KeyType | str = KeyType.ECDSA_P256, rng: random.Random | None = None
) -> PrivateKey:
    """A fresh private key: P-256 takes ~0.05 ms, RSA 2048 ~50 ms (the lesson's point).

    With ``rng`` (a seeded CA, for tests and snapshots) a P-256 key is derived from it, so the
    same seed gives the same certificates; RSA keys stay random.
    """
    if KeyType(key_type) is KeyType.ECDSA_P256:
        if rng is not None:
            return ec.derive_private_key(rng.randrange(1, _P256_ORDER), ec.SECP256R1())
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _serial(rng: random.Random | None) -> int:
    return rng.getrandbits(159) | 1 if rng is not None else x509.random_serial_number()


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    # RFC 6979 deterministic ECDSA: as safe as random nonces, and a seeded CA then produces
    # byte-identical certificates (stable fingerprints in snapshots).
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    return builder.sign(key, hashes.SHA256())


def _pkcs8_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until everything is written (it may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_private_key(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS #8 PEM, readable by its owner only (mode 0600).

    An existing file is replaced, and narrowed to 0600 before the key is written; a symlink
    is refused rather than followed.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # a FIFO without a reader fails instead of hanging
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise PKIError(
            f"cannot write the private key to {os.fspath(path)}: {exc.strerror}"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            # --write-key /dev/null as root would otherwise make /dev/null 0600 for everyone,
            # and a terminal would show the key.
            raise PKIError(f"cannot write the private key to {os.fspath(path)}: not a regular file")
        os.fchmod(fd, 0o600)  # the mode argument only applies to a file os.open creates
        _write_all(fd, _pkcs8_pem(key))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class IssuedCertificate:
    """One workload certificate with its key, as a sidecar holds it.

    ``ca_chain`` is what the sidecar sends after its own certificate: nothing for Istio's
    self-signed root, the issuer for Linkerd, intermediate and root for an Istio plug-in CA.
    """

    identity: WorkloadIdentity
    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)
    ca_chain: tuple[x509.Certificate, ...]
    issued_at: datetime

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Leaf first, then ``ca_chain``: the TLS Certificate message."""
        return (self.certificate, *self.ca_chain)

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @cached_property
    def chain_pem(self) -> bytes:
        """The chain as concatenated PEM (serialised once, on first use)."""
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in self.chain)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS #8 PEM, made afresh on each call so no copy
        lingers on the object. Handle with care: see ``tlsctx`` and :func:`write_private_key`.
        """
        return _pkcs8_pem(self.private_key)


@dataclass(frozen=True)
class _CACert:
    """A CA certificate with its key, and the AKI extension of everything it signs."""

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)

    @cached_property
    def authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def _ca_certificate(
    subject: x509.Name,
    key: PrivateKey,
    *,
    signer: _CACert | None,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None,
    crl_sign: bool,
    rng: random.Random | None = None,
) -> x509.Certificate:
    """A CA certificate: self-signed when ``signer`` is None."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if signer is None else signer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(_serial(rng))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=crl_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if signer is not None:
        builder = builder.add_extension(signer.authority_key_identifier, critical=False)
    return _sign(builder, signer.key if signer else key)


# The same for every workload certificate of both meshes (Istio GenCertFromCSR; Linkerd's
# end-entity template): a TLS key that is no CA and serves both ends of mTLS.
_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_EKU = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)
_NOT_A_CA = x509.BasicConstraints(ca=False, path_length=None)


class MeshCA:
    """A mesh's certificate authority on an injected clock.

    Build one with :meth:`istio`, :meth:`linkerd` or :meth:`create`; mint workload
    certificates with :meth:`issue` or, for a credential that renews itself, :meth:`credential`.
    """

    def __init__(
        self,
        *,
        mesh: Mesh,
        trust_domain: str,
        key_type: KeyType,
        clock: Clock,
        root: _CACert,
        intermediates: Sequence[_CACert] = (),
        send_root: bool = False,
        workload_ttl: timedelta = WORKLOAD_TTL,
        rotation: RotationPolicy | None = None,
        rng: random.Random | None = None,
        key_rng: random.Random | None = None,
    ) -> None:
        self.mesh = mesh
        # Seeded CAs derive keys and serials from this (deterministic certificates).
        self._key_rng = key_rng
        self.trust_domain = trust_domain
        self.key_type = key_type
        self.clock = clock
        self.workload_ttl = workload_ttl
        self.rotation = rotation or (ISTIO_ROTATION if mesh is Mesh.ISTIO else LINKERD_ROTATION)
        self.rng = rng or random.Random()
        self._root = root
        self._intermediates = tuple(intermediates)
        # The CA that signs workload certificates: the last intermediate, else the root.
        self._signer = self._intermediates[-1] if self._intermediates else root
        # Sent after the leaf, nearest CA first (RFC 8446 §4.4.2 order).
        sent = [ca.certificate for ca in reversed(self._intermediates)]
        self._ca_chain = (*sent, root.certificate) if send_root else tuple(sent)
        self._check_ttl(workload_ttl)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        mesh: Mesh | str = Mesh.ISTIO,
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        key_type: KeyType | str = KeyType.ECDSA_P256,
        clock: Clock | None = None,
        intermediate: bool = False,
        workload_ttl: timedelta = WORKLOAD_TTL,
        seed: int | None = None,
    ) -> MeshCA:
        """A new throwaway CA for ``mesh``; ``intermediate`` selects Istio's plug-in CA layout.

        ``seed`` fixes the rotation jitter, and the keys and serials of P-256 certificates, so
        the same seed and clock give the same certificates (tests and snapshots). Linkerd always has an intermediate (the
        identity issuer).
        """
        mesh = Mesh(mesh)
        if mesh is Mesh.ISTIO:
            return cls.istio(
                trust_domain=trust_domain,
                key_type=key_type,
                clock=clock,
                intermediate=intermediate,
                workload_ttl=workload_ttl,
                seed=seed,
            )
        return cls.linkerd(
            trust_domain=trust_domain,
            key_type=key_type,
            clock=clock,
            workload_ttl=workload_ttl,
            seed=seed,
        )

    @classmethod
    def istio(
        cls,
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        key_type: KeyType | str = KeyType.ECDSA_P256,
        clock: Clock | None = None,
        intermediate: bool = False,
        workload_ttl: timedelta = WORKLOAD_TTL,
        seed: int | None = None,
    ) -> MeshCA:
        """istiod's self-signed CA (root O=<trust domain>, 10 years) or a plug-in CA."""
        clock = clock or SystemClock()
        key_type = KeyType(key_type)
        WorkloadIdentity(Mesh.ISTIO, "default", "default", trust_domain)  # validates the domain
        now = clock.now()
        key_rng = random.Random(f"keys-{seed}") if seed is not None else None
        root_key = generate_key(key_type, key_rng)
        if not intermediate:
            # istiod: Org = trust domain, no CN (security/pkg/pki/ca NewSelfSignedIstioCAOptions).
            subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
        else:
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Istio"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Root CA"),
                ]
            )
        root_cert = _ca_certificate(
            subject,
            root_key,
            signer=None,
            not_before=now,
            not_after=now + ISTIO_ROOT_TTL,
            path_length=None,
            crl_sign=intermediate,
            rng=key_rng,
        )
        root = _CACert(root_cert, root_key)
        intermediates: list[_CACert] = []
        if intermediate:
            key = generate_key(key_type, key_rng)
            name = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Istio"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Intermediate CA"),
                ]
            )
            cert = _ca_certificate(
                name,
                key,
                signer=root,
                not_before=now,
                not_after=now + ISTIO_INTERMEDIATE_TTL,
                path_length=0,
                crl_sign=True,
                rng=key_rng,
            )
            intermediates.append(_CACert(cert, key))
        return cls(
            mesh=Mesh.ISTIO,
            trust_domain=trust_domain,
            key_type=key_type,
            clock=clock,
            root=root,
            intermediates=intermediates,
            # cacerts' cert-chain.pem holds intermediate and root; workloads send it whole.
            send_root=intermediate,
            workload_ttl=workload_ttl,
            rng=random.Random(seed),
            key_rng=key_rng,
        )

    @classmethod
    def linkerd(
        cls,
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        key_type: KeyType | str = KeyType.ECDSA_P256,
        clock: Clock | None = None,
        workload_ttl: timedelta = WORKLOAD_TTL,
        seed: int | None = None,
    ) -> MeshCA:
        """Linkerd's trust anchor and identity issuer, 365 days each, as ``linkerd install``."""
        clock = clock or SystemClock()
        key_type = KeyType(key_type)
        WorkloadIdentity(Mesh.LINKERD, "default", "default", trust_domain)  # validates the domain
        now = clock.now()
        key_rng = random.Random(f"keys-{seed}") if seed is not None else None
        anchor_key, issuer_key = generate_key(key_type, key_rng), generate_key(key_type, key_rng)
        anchor_name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"root.linkerd.{trust_domain}")]
        )
        anchor = _CACert(
            _ca_certificate(
                anchor_name,
                anchor_key,
                signer=None,
                not_before=now,
                not_after=now + LINKERD_CA_TTL,
                path_length=None,
                crl_sign=True,
                rng=key_rng,
            ),
            anchor_key,
        )
        # The identity controller checks its issuer certificate is named
        # identity.<control-plane-ns>.<trust-domain> (controller/cmd/identity).
        issuer_name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"identity.linkerd.{trust_domain}")]
        )
        issuer = _CACert(
            _ca_certificate(
                issuer_name,
                issuer_key,
                signer=anchor,
                not_before=now,
                not_after=now + LINKERD_CA_TTL,
                path_length=0,
                crl_sign=True,
                rng=key_rng,
            ),
            issuer_key,
        )
        return cls(
            mesh=Mesh.LINKERD,
            trust_domain=trust_domain,
            key_type=key_type,
            clock=clock,
            root=anchor,
            intermediates=[issuer],
            workload_ttl=workload_ttl,
            rng=random.Random(seed),
            key_rng=key_rng,
        )

    # -- what the CA is made of -----------------------------------------------------------

    @property
    def root(self) -> x509.Certificate:
        """The root (Istio) or trust anchor (Linkerd): what every peer trusts."""
        return self._root.certificate

    @property
    def issuer(self) -> x509.Certificate:
        """The certificate that signs workload certificates (the root for Istio self-signed)."""
        return self._signer.certificate

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """CA certificates between the root and the workloads, nearest the root first."""
        return tuple(ca.certificate for ca in self._intermediates)

    @property
    def ca_chain(self) -> tuple[x509.Certificate, ...]:
        """What a workload sends after its own certificate."""
        return self._ca_chain

    @cached_property
    def root_pem(self) -> bytes:
        """The trust bundle as PEM (Istio's ``istio-ca-root-cert`` ``root-cert.pem``)."""
        return self.root.public_bytes(serialization.Encoding.PEM)

    def identity(self, namespace: str, service_account: str) -> WorkloadIdentity:
        """The identity this mesh gives ``namespace/service_account``."""
        return WorkloadIdentity(self.mesh, namespace, service_account, self.trust_domain)

    def __repr__(self) -> str:
        layout = " → ".join(c.subject.rfc4514_string() for c in (self.root, *self.intermediates))
        return f"MeshCA({self.mesh.value}, {self.key_type.label}, {layout})"

    # -- issuing ----------------------------------------------------------------------------

    def _check_ttl(self, ttl: timedelta) -> None:
        if ttl <= timedelta(0):
            raise PKIError(f"certificate TTL {ttl} must be positive, e.g. 24h")
        if self.mesh is Mesh.ISTIO and ttl > ISTIO_MAX_WORKLOAD_TTL:
            raise PKIError(
                f"certificate TTL {format_duration(ttl)} is over Istio's maximum of 90 d "
                "(MAX_WORKLOAD_CERT_TTL): ask for 90 d or less"
            )

    def validity_window(
        self, at: datetime | None = None, ttl: timedelta | None = None
    ) -> tuple[datetime, datetime]:
        """The (not before, not after) a workload certificate issued at ``at`` would get.

        As istiod's ``minTTL``: never past the end of the CA chain, and no certificate at all
        from a chain that has expired or is not valid yet (Linkerd is given the same rule).
        """
        at = self.clock.now() if at is None else at
        ttl = self.workload_ttl if ttl is None else ttl
        self._check_ttl(ttl)
        cas = [self._root, *self._intermediates]
        for ca in cas:
            cert = ca.certificate
            what = "root" if ca is self._root else "intermediate"
            if at > cert.not_valid_after_utc:
                raise PKIError(
                    f"cannot issue a certificate at {format_time(at)}: the {what} certificate "
                    f"{cert.subject.rfc4514_string()} expired at "
                    f"{format_time(cert.not_valid_after_utc)}; rotate the {what} first"
                )
            if at < cert.not_valid_before_utc:
                raise PKIError(
                    f"cannot issue a certificate at {format_time(at)}: the {what} certificate "
                    f"{cert.subject.rfc4514_string()} is only valid from "
                    f"{format_time(cert.not_valid_before_utc)}"
                )
        chain_end = min(ca.certificate.not_valid_after_utc for ca in cas)
        not_before = at - LINKERD_CLOCK_SKEW if self.mesh is Mesh.LINKERD else at
        return not_before, min(at + ttl, chain_end)

    def issue(
        self,
        identity: WorkloadIdentity,
        *,
        at: datetime | None = None,
        ttl: timedelta | None = None,
        key: PrivateKey | None = None,
    ) -> IssuedCertificate:
        """Mint a workload certificate for ``identity`` (a fresh key unless ``key`` is given)."""
        if identity.mesh is not self.mesh or identity.trust_domain != self.trust_domain:
            mine = self.identity(identity.namespace, identity.service_account)
            raise PKIError(
                f"cannot issue {identity.name}: this is a {self.mesh.value} CA for trust domain "
                f"{self.trust_domain!r}; ask for {mine}"
            )
        at = self.clock.now() if at is None else at
        not_before, not_after = self.validity_window(at, ttl)
        key = generate_key(self.key_type, self._key_rng) if key is None else key
        if self.mesh is Mesh.ISTIO:
            # Empty subject, so the SAN is critical (RFC 5280 §4.2.1.6), as Istio marks it.
            subject = x509.Name([])
            san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.name)])
            san_critical = True
        elif len(identity.name) > 64:
            # X.509 caps a common name at 64 characters (RFC 5280 ub-common-name); a long
            # identity (ingress-nginx.ingress-nginx.serviceaccount...) lives in the SAN only.
            subject = x509.Name([])
            san = x509.SubjectAlternativeName([x509.DNSName(identity.name)])
            san_critical = True
        else:
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.name)])
            san = x509.SubjectAlternativeName([x509.DNSName(identity.name)])
            san_critical = False
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._signer.certificate.subject)
            .public_key(key.public_key())
            .serial_number(_serial(self._key_rng))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(_NOT_A_CA, critical=True)
            .add_extension(_LEAF_KEY_USAGE, critical=True)
            .add_extension(_LEAF_EKU, critical=False)
            .add_extension(san, critical=san_critical)
            .add_extension(self._signer.authority_key_identifier, critical=False)
        )
        certificate = _sign(builder, self._signer.key)
        return IssuedCertificate(identity, certificate, key, self._ca_chain, at)

    def credential(self, namespace: str, service_account: str) -> WorkloadCredential:
        """A renewing credential for ``namespace/service_account``, issued at the clock's now."""
        identity = self.identity(namespace, service_account)
        return WorkloadCredential(self, identity, self.issue(identity))

    # -- checking ---------------------------------------------------------------------------

    def verify(
        self,
        chain: Sequence[x509.Certificate],
        *,
        expected_identity: str | WorkloadIdentity | Sequence[str | WorkloadIdentity] | None = None,
        at: datetime | None = None,
        usage: Usage | None = None,
    ) -> Verification:
        """Check a presented chain against this mesh's root at ``at`` (default: the clock's now).

        Knowing its own intermediates lets the CA tell a peer that left out the issuer
        ("chain incomplete") from one that belongs to another mesh ("wrong root").
        """
        from meshtutor.pki.verify import verify_chain

        return verify_chain(
            chain,
            [self.root],
            at=self.clock.now() if at is None else at,
            expected_identity=expected_identity,
            mesh_intermediates=self.intermediates,
            usage=usage,
        )
