from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID
from pki_helpers import BOTH_EKU, T0, make_cert

from meshtutor.pki import ManualClock, MeshCA, Reason, WorkloadIdentity, verify_chain


class TestVerifyOK:
    def test_istio(self, istio: MeshCA) -> None:
        credential = istio.credential("foo", "sleep")
        result = istio.verify(credential.chain, expected_identity=credential.identity)
        assert result.ok
        assert bool(result)
        assert result.reason is Reason.OK
        assert result.identity == "spiffe://cluster.local/ns/foo/sa/sleep"
        assert result.path == (credential.certificate, istio.root)
        assert result.message == (
            "trusted: spiffe://cluster.local/ns/foo/sa/sleep chains to the root "
            "'O=cluster.local', valid until 2026-01-02 00:00 UTC (expires in 1 d)"
        )

    def test_linkerd_as_server(self, linkerd: MeshCA) -> None:
        # usage="server" with a DNS identity runs cryptography's ServerVerifier.
        credential = linkerd.credential("foo", "web")
        result = linkerd.verify(
            credential.chain, expected_identity=credential.identity.name, usage="server"
        )
        assert result.ok
        assert result.path == (credential.certificate, linkerd.issuer, linkerd.root)

    def test_any_of_several_identities(self, istio: MeshCA) -> None:
        credential = istio.credential("foo", "sleep")
        expected: list[str | WorkloadIdentity] = [
            "spiffe://cluster.local/ns/foo/sa/other",
            credential.identity,
        ]
        assert istio.verify(credential.chain, expected_identity=expected).ok

    def test_rsa(self, rsa_istio: MeshCA) -> None:
        issued = rsa_istio.issue(rsa_istio.identity("foo", "sleep"))
        assert rsa_istio.verify(issued.chain, usage="client").ok

    def test_to_dict_is_json(self, istio: MeshCA) -> None:
        result = istio.verify(istio.credential("foo", "sleep").chain)
        data = json.loads(json.dumps(result.to_dict()))
        assert data["reason"] == "ok"
        assert [p["subject"] for p in data["path"]] == ["(empty subject)", "O=cluster.local"]


@pytest.fixture(scope="module")
def hand_root() -> tuple[x509.Certificate, Any]:
    """A hand-made root, to sign leaves no mesh CA would issue."""
    return make_cert(subject="test root", ca=True, san=None)


class TestVerifyFailures:
    def test_no_certificate(self, istio: MeshCA) -> None:
        result = istio.verify(())
        assert result.reason is Reason.NO_CERTIFICATE
        assert "no certificate was presented" in result.message

    def test_expired(self, istio: MeshCA) -> None:
        chain = istio.credential("foo", "sleep").chain
        result = istio.verify(chain, at=T0 + timedelta(hours=26))
        assert result.reason is Reason.EXPIRED
        assert result.failed_at == 0
        assert result.message == (
            "the certificate for spiffe://cluster.local/ns/foo/sa/sleep expired 2 h ago "
            "(not after 2026-01-02 00:00 UTC)"
        )

    def test_expired_issuer_is_reported_first(self, linkerd: MeshCA) -> None:
        chain = linkerd.credential("foo", "sleep").chain
        result = linkerd.verify(chain, at=T0 + timedelta(days=366))
        assert result.reason is Reason.EXPIRED
        assert result.failed_at == 2
        assert result.message.startswith(
            "the root certificate 'CN=root.linkerd.cluster.local' expired 1 d ago"
        )
        assert "and 2 certificate(s) below it too" in result.message

    def test_not_yet_valid(self, istio: MeshCA, clock: ManualClock) -> None:
        clock.advance(timedelta(hours=5))
        chain = istio.credential("foo", "sleep").chain
        result = istio.verify(chain, at=T0 + timedelta(hours=3))
        assert result.reason is Reason.NOT_YET_VALID
        assert result.failed_at == 0
        assert "is not valid yet: it starts in 2 h (not before 2026-01-01 05:00 UTC)" in (
            result.message
        )

    def test_another_mesh_with_the_same_root_name(self, istio: MeshCA, clock: ManualClock) -> None:
        other = MeshCA.istio(clock=clock)
        result = istio.verify(other.credential("foo", "sleep").chain)
        assert result.reason is Reason.WRONG_ROOT
        assert "names 'O=cluster.local' as its issuer, but this mesh's root" in result.message

    def test_another_trust_domain(self, istio: MeshCA, clock: ManualClock) -> None:
        other = MeshCA.istio(trust_domain="other.local", clock=clock)
        result = istio.verify(other.credential("foo", "sleep").chain)
        assert result.reason is Reason.WRONG_ROOT
        assert "a CA this mesh does not know" in result.message

    def test_chain_ends_at_an_unknown_root(self, istio: MeshCA, clock: ManualClock) -> None:
        other = MeshCA.istio(trust_domain="other.local", clock=clock, intermediate=True)
        result = istio.verify(other.credential("foo", "sleep").chain)
        assert result.reason is Reason.WRONG_ROOT
        assert "the chain ends at the root 'CN=Root CA,O=Istio'" in result.message

    def test_another_linkerd_issuer(self, linkerd: MeshCA, clock: ManualClock) -> None:
        other = MeshCA.linkerd(clock=clock)
        result = linkerd.verify(other.credential("foo", "sleep").chain)
        assert result.reason is Reason.WRONG_ROOT
        assert result.failed_at == 1

    def test_chain_incomplete(self, linkerd: MeshCA) -> None:
        leaf = linkerd.credential("foo", "sleep").certificate
        result = linkerd.verify([leaf])
        assert result.reason is Reason.CHAIN_INCOMPLETE
        assert "issued by 'CN=identity.linkerd.cluster.local', but that certificate was not " in (
            result.message
        )

    def test_chain_incomplete_without_mesh_knowledge(self, linkerd: MeshCA) -> None:
        leaf = linkerd.credential("foo", "sleep").certificate
        result = verify_chain([leaf], [linkerd.root], at=T0)
        assert result.reason is Reason.CHAIN_INCOMPLETE
        assert "(or the certificate comes from another CA)" in result.message

    def test_not_a_ca(self, linkerd: MeshCA) -> None:
        # A proxy certificate used as if it were an issuer.
        credential = linkerd.credential("foo", "sleep")
        forged, _ = make_cert(
            subject="forged",
            issuer=None,
            ca=False,
            eku=BOTH_EKU,
        )
        child = (
            x509.CertificateBuilder()
            .subject_name(forged.subject)
            .issuer_name(credential.certificate.subject)
            .public_key(forged.public_key())
            .serial_number(1)
            .not_valid_before(T0)
            .not_valid_after(T0 + timedelta(hours=1))
            .sign(credential.private_key, hashes.SHA256())
        )
        result = linkerd.verify([child, *credential.chain])
        assert result.reason is Reason.NOT_A_CA
        assert result.failed_at == 1
        assert "which is not a CA (CA:FALSE)" in result.message

    def test_wrong_usage(self, hand_root: tuple[x509.Certificate, Any]) -> None:
        leaf, _ = make_cert(
            subject="server-only",
            issuer=hand_root[0],
            issuer_key=hand_root[1],
            ca=False,
            eku=[ExtendedKeyUsageOID.SERVER_AUTH],
        )
        result = verify_chain([leaf], [hand_root[0]], at=T0, usage="client")
        assert result.reason is Reason.WRONG_USAGE
        assert "may not be used as a TLS client" in result.message

    def test_identity_mismatch(self, istio: MeshCA) -> None:
        chain = istio.credential("foo", "sleep").chain
        result = istio.verify(chain, expected_identity=istio.identity("foo", "httpbin"))
        assert result.reason is Reason.IDENTITY_MISMATCH
        assert result.message.startswith(
            "the peer presented spiffe://cluster.local/ns/foo/sa/sleep, but "
            "spiffe://cluster.local/ns/foo/sa/httpbin was expected"
        )

    def test_identity_missing(self, hand_root: tuple[x509.Certificate, Any]) -> None:
        leaf, _ = make_cert(
            issuer=hand_root[0],
            issuer_key=hand_root[1],
            ca=False,
            eku=BOTH_EKU,
            san=None,
        )
        expected = "spiffe://cluster.local/ns/foo/sa/a"
        result = verify_chain([leaf], [hand_root[0]], at=T0, expected_identity=expected)
        assert result.reason is Reason.IDENTITY_MISMATCH
        assert "carries no identity" in result.message

    def test_rejected_by_cryptography(self, hand_root: tuple[x509.Certificate, Any]) -> None:
        # An unknown critical extension: the hand walk has no opinion, RFC 5280 says reject.
        odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
        leaf, _ = make_cert(
            issuer=hand_root[0],
            issuer_key=hand_root[1],
            ca=False,
            eku=BOTH_EKU,
            extra=odd,
        )
        result = verify_chain([leaf], [hand_root[0]], at=T0)
        assert result.reason is Reason.REJECTED
        assert "rejected by cryptography's verifier" in result.message

    @pytest.mark.parametrize("reason", list(Reason))
    def test_every_reason_has_a_code(self, reason: Reason) -> None:
        assert reason.value == reason.name.lower()
