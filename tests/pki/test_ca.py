from __future__ import annotations

import os
import stat
from datetime import UTC, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pki_helpers import T0

from meshtutor.errors import PKIError
from meshtutor.pki import (
    ISTIO_ROOT_TTL,
    LINKERD_CA_TTL,
    KeyType,
    ManualClock,
    Mesh,
    MeshCA,
    WorkloadIdentity,
    write_private_key,
)

E = TypeVar("E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


class TestIstioRoot:
    def test_subject_is_trust_domain_org(self, istio: MeshCA) -> None:
        assert istio.root.subject == x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local")]
        )
        assert istio.root.issuer == istio.root.subject

    def test_ten_years(self, istio: MeshCA) -> None:
        assert istio.root.not_valid_before_utc == T0
        assert istio.root.not_valid_after_utc - T0 == ISTIO_ROOT_TTL == timedelta(days=3650)

    def test_is_ca(self, istio: MeshCA) -> None:
        constraints = _ext(istio.root, x509.BasicConstraints)
        assert constraints.critical
        assert constraints.value == x509.BasicConstraints(ca=True, path_length=None)
        assert _ext(istio.root, x509.KeyUsage).value.key_cert_sign

    def test_signs_workloads_directly(self, istio: MeshCA) -> None:
        assert istio.issuer == istio.root
        assert istio.intermediates == ()
        assert istio.ca_chain == ()

    def test_custom_trust_domain(self, clock: ManualClock) -> None:
        ca = MeshCA.istio(trust_domain="example.org", clock=clock)
        assert ca.root.subject.rfc4514_string() == "O=example.org"
        assert ca.credential("foo", "sleep").identity.name.startswith("spiffe://example.org/")

    def test_bad_trust_domain(self, clock: ManualClock) -> None:
        with pytest.raises(PKIError, match="trust domain 'Bad Domain' is not valid"):
            MeshCA.istio(trust_domain="Bad Domain", clock=clock)

    def test_repr(self, istio: MeshCA) -> None:
        assert repr(istio) == "MeshCA(istio, ECDSA P-256, O=cluster.local)"


class TestIstioWorkloadCertificate:
    @pytest.fixture
    def cert(self, istio: MeshCA) -> x509.Certificate:
        return istio.credential("foo", "sleep").certificate

    def test_empty_subject(self, cert: x509.Certificate) -> None:
        assert cert.subject == x509.Name([])

    def test_spiffe_uri_san_is_critical(self, cert: x509.Certificate) -> None:
        san = _ext(cert, x509.SubjectAlternativeName)
        assert san.critical
        assert list(san.value) == [
            x509.UniformResourceIdentifier("spiffe://cluster.local/ns/foo/sa/sleep")
        ]

    def test_extended_key_usage(self, cert: x509.Certificate) -> None:
        assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
        ]

    def test_key_usage(self, cert: x509.Certificate) -> None:
        usage = _ext(cert, x509.KeyUsage)
        assert usage.critical
        assert usage.value.digital_signature
        assert usage.value.key_encipherment
        assert not usage.value.key_cert_sign

    def test_not_a_ca(self, cert: x509.Certificate) -> None:
        assert _ext(cert, x509.BasicConstraints).value.ca is False

    def test_twenty_four_hours(self, cert: x509.Certificate) -> None:
        assert cert.not_valid_before_utc == T0
        assert cert.not_valid_after_utc == T0 + timedelta(hours=24)

    def test_authority_key_id_is_root_key_id(self, istio: MeshCA, cert: x509.Certificate) -> None:
        aki = _ext(cert, x509.AuthorityKeyIdentifier).value
        ski = _ext(istio.root, x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest

    def test_ecdsa_p256_by_default(self, cert: x509.Certificate) -> None:
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"

    def test_signed_by_root(self, istio: MeshCA, cert: x509.Certificate) -> None:
        cert.verify_directly_issued_by(istio.root)

    def test_fresh_key_and_serial_each_time(self, istio: MeshCA) -> None:
        a, b = istio.credential("foo", "sleep"), istio.credential("foo", "sleep")
        assert a.certificate.serial_number != b.certificate.serial_number
        assert a.certificate.public_key() != b.certificate.public_key()

    def test_given_key_is_used(self, istio: MeshCA) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        issued = istio.issue(istio.identity("foo", "sleep"), key=key)
        assert issued.certificate.public_key() == key.public_key()

    def test_key_pem_is_pkcs8(self, istio: MeshCA) -> None:
        issued = istio.issue(istio.identity("foo", "sleep"))
        assert issued.key_pem().startswith(b"-----BEGIN PRIVATE KEY-----")
        assert issued.chain_pem.count(b"BEGIN CERTIFICATE") == 1


class TestIstioPluginCA:
    @pytest.fixture
    def ca(self, clock: ManualClock) -> MeshCA:
        return MeshCA.istio(clock=clock, intermediate=True)

    def test_layout(self, ca: MeshCA) -> None:
        assert ca.root.subject.rfc4514_string() == "CN=Root CA,O=Istio"
        assert ca.issuer.subject.rfc4514_string() == "CN=Intermediate CA,O=Istio"
        assert ca.intermediates == (ca.issuer,)
        assert ca.issuer.not_valid_after_utc - T0 == timedelta(days=730)

    def test_intermediate_path_length_zero(self, ca: MeshCA) -> None:
        assert _ext(ca.issuer, x509.BasicConstraints).value.path_length == 0

    def test_workloads_send_intermediate_and_root(self, ca: MeshCA) -> None:
        credential = ca.credential("foo", "sleep")
        assert credential.chain == (credential.certificate, ca.issuer, ca.root)
        credential.certificate.verify_directly_issued_by(ca.issuer)
        assert ca.verify(credential.chain).ok


class TestLinkerdCA:
    def test_trust_anchor(self, linkerd: MeshCA) -> None:
        anchor = linkerd.root
        assert anchor.subject.rfc4514_string() == "CN=root.linkerd.cluster.local"
        assert anchor.not_valid_after_utc - anchor.not_valid_before_utc == LINKERD_CA_TTL
        assert timedelta(days=365) == LINKERD_CA_TTL

    def test_identity_issuer(self, linkerd: MeshCA) -> None:
        issuer = linkerd.issuer
        assert issuer.subject.rfc4514_string() == "CN=identity.linkerd.cluster.local"
        assert issuer.issuer == linkerd.root.subject
        assert issuer.not_valid_after_utc - T0 == timedelta(days=365)
        assert _ext(issuer, x509.BasicConstraints).value == x509.BasicConstraints(
            ca=True, path_length=0
        )
        issuer.verify_directly_issued_by(linkerd.root)

    def test_proxy_certificate(self, linkerd: MeshCA) -> None:
        cert = linkerd.credential("emojivoto", "web").certificate
        name = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert list(_ext(cert, x509.SubjectAlternativeName).value) == [x509.DNSName(name)]
        assert _ext(cert, x509.BasicConstraints).value.ca is False
        cert.verify_directly_issued_by(linkerd.issuer)

    def test_proxy_certificate_lifetime_and_skew(self, linkerd: MeshCA) -> None:
        cert = linkerd.credential("foo", "sleep").certificate
        assert cert.not_valid_before_utc == T0 - timedelta(seconds=20)
        assert cert.not_valid_after_utc == T0 + timedelta(hours=24)

    def test_proxies_send_the_issuer(self, linkerd: MeshCA) -> None:
        credential = linkerd.credential("foo", "sleep")
        assert credential.chain == (credential.certificate, linkerd.issuer)

    def test_create_dispatches(self, clock: ManualClock) -> None:
        assert MeshCA.create("linkerd", clock=clock).mesh is Mesh.LINKERD
        assert MeshCA.create(clock=clock).mesh is Mesh.ISTIO


class TestRSA:
    def test_root_and_workload_are_rsa_2048(self, rsa_istio: MeshCA) -> None:
        cert = rsa_istio.issue(rsa_istio.identity("foo", "sleep")).certificate
        for c in (rsa_istio.root, cert):
            key = c.public_key()
            assert isinstance(key, rsa.RSAPublicKey)
            assert key.key_size == 2048
        assert cert.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.RSA_WITH_SHA256
        assert rsa_istio.key_type is KeyType.RSA_2048
        assert KeyType.RSA_2048.label == "RSA 2048"

    def test_unknown_key_type(self, clock: ManualClock) -> None:
        with pytest.raises(ValueError, match="'dsa' is not a valid KeyType"):
            MeshCA.istio(key_type="dsa", clock=clock)


class TestIssue:
    def test_identity_of_another_mesh(self, istio: MeshCA) -> None:
        other = WorkloadIdentity(Mesh.LINKERD, "foo", "sleep")
        with pytest.raises(PKIError, match=r"this is a istio CA for trust domain 'cluster\.local'"):
            istio.issue(other)

    def test_ttl_above_istio_maximum(self, istio: MeshCA) -> None:
        with pytest.raises(PKIError, match="over Istio's maximum of 90 d"):
            istio.issue(istio.identity("foo", "sleep"), ttl=timedelta(days=91))

    def test_ttl_not_positive(self, istio: MeshCA) -> None:
        with pytest.raises(PKIError, match="must be positive"):
            istio.issue(istio.identity("foo", "sleep"), ttl=timedelta(0))

    def test_custom_ttl(self, istio: MeshCA) -> None:
        issued = istio.issue(istio.identity("foo", "sleep"), ttl=timedelta(hours=1))
        assert issued.not_after - issued.not_before == timedelta(hours=1)

    def test_clamped_to_ca_lifetime(self, linkerd: MeshCA) -> None:
        at = linkerd.issuer.not_valid_after_utc - timedelta(hours=2)
        issued = linkerd.issue(linkerd.identity("foo", "sleep"), at=at)
        assert issued.not_after == linkerd.issuer.not_valid_after_utc

    def test_expired_ca(self, linkerd: MeshCA) -> None:
        with pytest.raises(PKIError, match=r"the root certificate .* expired at 2027-01-01"):
            linkerd.issue(linkerd.identity("foo", "sleep"), at=T0 + timedelta(days=366))

    def test_ca_not_yet_valid(self, istio: MeshCA) -> None:
        with pytest.raises(PKIError, match="is only valid from 2026-01-01 00:00 UTC"):
            istio.issue(istio.identity("foo", "sleep"), at=T0 - timedelta(days=1))


class TestWritePrivateKey:
    def test_mode_0600(self, tmp_path: Path, istio: MeshCA) -> None:
        path = tmp_path / "key.pem"
        key = istio.issue(istio.identity("foo", "sleep")).private_key
        write_private_key(path, key)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert loaded.public_key() == key.public_key()

    def test_existing_file_is_narrowed(self, tmp_path: Path, istio: MeshCA) -> None:
        path = tmp_path / "key.pem"
        path.write_text("old")
        os.chmod(path, 0o644)
        write_private_key(path, istio.issue(istio.identity("foo", "sleep")).private_key)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_symlink_refused(self, tmp_path: Path, istio: MeshCA) -> None:
        target = tmp_path / "elsewhere"
        target.write_text("")
        link = tmp_path / "key.pem"
        link.symlink_to(target)
        key = istio.issue(istio.identity("foo", "sleep")).private_key
        with pytest.raises(PKIError, match=r"cannot write the private key to .*key\.pem"):
            write_private_key(link, key)
        assert target.read_text() == ""

    def test_missing_directory(self, tmp_path: Path, istio: MeshCA) -> None:
        key = istio.issue(istio.identity("foo", "sleep")).private_key
        with pytest.raises(PKIError, match="No such file or directory"):
            write_private_key(tmp_path / "nope" / "key.pem", key)


class TestSeededCA:
    """A seeded CA on a fixed clock gives byte-identical certificates (for snapshots)."""

    def test_same_seed_same_certificates(self) -> None:
        from datetime import datetime

        from meshtutor.pki import ManualClock, MeshCA

        def chain(mesh: str, seed: int) -> list[bytes]:
            clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
            credential = MeshCA.create(mesh, clock=clock, seed=seed).credential("foo", "sleep")
            return [c.public_bytes(serialization.Encoding.DER) for c in credential.chain]

        for mesh in ("istio", "linkerd"):
            assert chain(mesh, 7) == chain(mesh, 7)
            assert chain(mesh, 7) != chain(mesh, 8)
