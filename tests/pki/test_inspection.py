from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pki_helpers import T0

from meshtutor.errors import PKIError
from meshtutor.pki import (
    ManualClock,
    MeshCA,
    describe_certificate,
    describe_chain,
    describe_credential,
    load_certificates,
    load_envoy_secrets,
)


class TestDescribeCertificate:
    def test_istio_workload(self, istio: MeshCA) -> None:
        cert = istio.credential("foo", "sleep").certificate
        info = describe_certificate(cert, at=T0 + timedelta(hours=6))
        assert info.role == "leaf"
        assert info.subject == "(empty subject)"
        assert info.issuer == "O=cluster.local"
        assert info.serial == cert.serial_number
        assert info.serial_hex == f"{cert.serial_number:X}"
        assert [str(san) for san in info.sans] == ["URI:spiffe://cluster.local/ns/foo/sa/sleep"]
        assert info.sans[0].spiffe
        assert info.spiffe_id == info.identity == "spiffe://cluster.local/ns/foo/sa/sleep"
        assert info.key_algorithm == "ECDSA P-256"
        assert info.signature_algorithm == "ecdsa-with-SHA256"
        assert (info.is_ca, info.path_length) == (False, None)
        assert info.key_usage == ("digitalSignature", "keyEncipherment")
        assert info.extended_key_usage == ("serverAuth", "clientAuth")
        assert len(info.fingerprint_sha256) == 32 * 3 - 1
        assert not info.self_signed
        assert info.pem.startswith("-----BEGIN CERTIFICATE-----")

    def test_remaining_fraction(self, istio: MeshCA) -> None:
        cert = istio.credential("foo", "sleep").certificate
        info = describe_certificate(cert, at=T0 + timedelta(hours=6))
        assert info.lifetime == timedelta(hours=24)
        assert info.remaining == timedelta(hours=18)
        assert info.remaining_fraction == 0.75
        assert info.status == "valid"

    @pytest.mark.parametrize(
        ("offset", "fraction", "status"),
        [
            (timedelta(hours=-1), 1.0, "not yet valid"),
            (timedelta(0), 1.0, "valid"),
            (timedelta(hours=12), 0.5, "valid"),
            (timedelta(hours=24), 0.0, "valid"),
            (timedelta(hours=30), 0.0, "expired"),
        ],
    )
    def test_status_over_time(
        self, istio: MeshCA, offset: timedelta, fraction: float, status: str
    ) -> None:
        cert = istio.credential("foo", "sleep").certificate
        info = describe_certificate(cert, at=T0 + offset)
        assert info.remaining_fraction == fraction
        assert info.status == status

    def test_root(self, istio: MeshCA) -> None:
        info = describe_certificate(istio.root, at=T0)
        assert info.role == "root"
        assert info.self_signed
        assert info.is_ca
        assert info.key_usage == ("keyCertSign",)
        assert info.sans == ()
        assert info.identity is None

    def test_linkerd_issuer(self, linkerd: MeshCA) -> None:
        info = describe_certificate(linkerd.issuer, at=T0)
        assert info.role == "intermediate"
        assert info.path_length == 0
        assert info.key_usage == ("keyCertSign", "cRLSign")

    def test_linkerd_proxy_identity_is_dns(self, linkerd: MeshCA) -> None:
        info = describe_certificate(linkerd.credential("foo", "sleep").certificate, at=T0)
        assert [str(s) for s in info.sans] == [
            "DNS:sleep.foo.serviceaccount.identity.linkerd.cluster.local"
        ]
        assert info.spiffe_id is None
        assert info.identity == "sleep.foo.serviceaccount.identity.linkerd.cluster.local"

    def test_rsa(self, rsa_istio: MeshCA) -> None:
        info = describe_certificate(rsa_istio.root, at=T0)
        assert info.key_algorithm == "RSA 2048"
        assert info.signature_algorithm == "sha256WithRSAEncryption"


class TestCertChain:
    def test_roles_leaf_to_root(self, linkerd: MeshCA) -> None:
        credential = linkerd.credential("foo", "sleep")
        chain = describe_chain(credential.chain, at=T0, roots=[linkerd.root])
        assert [c.role for c in chain] == ["leaf", "intermediate", "root"]
        assert len(chain) == 3
        assert chain.leaf.identity == credential.identity.name
        assert chain.root.subject == "CN=root.linkerd.cluster.local"

    def test_root_not_repeated(self, clock: ManualClock) -> None:
        ca = MeshCA.istio(clock=clock, intermediate=True)
        credential = ca.credential("foo", "sleep")
        chain = describe_chain(credential.chain, at=T0, roots=[ca.root])
        assert [c.role for c in chain] == ["leaf", "intermediate", "root"]

    def test_pem_round_trip(self, istio: MeshCA) -> None:
        credential = istio.credential("foo", "sleep")
        chain = describe_chain(credential.chain, at=T0, roots=[istio.root])
        assert load_certificates(chain.pem) == [credential.certificate, istio.root]

    def test_to_dict_is_json(self, istio: MeshCA) -> None:
        credential = istio.credential("foo", "sleep")
        data = describe_credential(credential, at=T0 + timedelta(hours=6)).to_dict()
        text = json.dumps(data)
        back = json.loads(text)
        leaf = back["chain"]["certificates"][0]
        assert leaf["spiffe_id"] == "spiffe://cluster.local/ns/foo/sa/sleep"
        assert leaf["remaining_fraction"] == 0.75
        assert leaf["not_after"] == "2026-01-02T00:00:00+00:00"
        assert leaf["serial"] == str(credential.certificate.serial_number)
        assert back["chain"]["verification"]["reason"] == "ok"
        assert back["rotations"] == 0

    def test_empty(self) -> None:
        with pytest.raises(PKIError, match="cannot describe an empty chain"):
            describe_chain([], at=T0)


class TestDescribeCredential:
    def test_after_fast_forward(self, istio: MeshCA, clock: ManualClock) -> None:
        credential = istio.credential("foo", "sleep")
        clock.advance(timedelta(hours=13))
        assert describe_credential(credential).rotation_due
        credential.refresh()
        info = describe_credential(credential)
        assert info.rotations == 1
        assert not info.rotation_due
        assert info.chain.verification is not None
        assert info.chain.verification.ok
        assert info.workload == "foo/sleep"
        assert info.mesh == "istio"


class TestLoadCertificates:
    @pytest.fixture
    def chain(self, linkerd: MeshCA) -> list[x509.Certificate]:
        return [*linkerd.credential("foo", "sleep").chain, linkerd.root]

    def _pem(self, chain: list[x509.Certificate]) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)

    def test_pem_bundle(self, chain: list) -> None:  # type: ignore[type-arg]
        assert load_certificates(self._pem(chain)) == chain

    def test_pem_str_with_key_block(self, chain: list, linkerd: MeshCA) -> None:  # type: ignore[type-arg]
        issued = linkerd.issue(linkerd.identity("foo", "sleep"))
        text = (issued.key_pem() + issued.chain_pem).decode()
        assert load_certificates(text) == list(issued.chain)

    def test_base64_of_pem_as_envoy_inline_bytes(self, chain: list) -> None:  # type: ignore[type-arg]
        inline = base64.b64encode(self._pem(chain))
        assert load_certificates(inline) == chain

    def test_wrapped_base64_without_padding(self, chain: list) -> None:  # type: ignore[type-arg]
        encoded = base64.b64encode(self._pem(chain[:1])).rstrip(b"=")
        wrapped = b"\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
        assert load_certificates(wrapped) == chain[:1]

    def test_der(self, chain: list) -> None:  # type: ignore[type-arg]
        der = chain[0].public_bytes(serialization.Encoding.DER)
        assert load_certificates(der) == chain[:1]

    def test_concatenated_der(self, chain: list) -> None:  # type: ignore[type-arg]
        der = b"".join(c.public_bytes(serialization.Encoding.DER) for c in chain)
        assert load_certificates(der) == chain

    def test_base64_of_der(self, chain: list) -> None:  # type: ignore[type-arg]
        der = chain[0].public_bytes(serialization.Encoding.DER)
        assert load_certificates(base64.b64encode(der)) == chain[:1]

    def test_empty(self) -> None:
        with pytest.raises(PKIError, match="<input>: no data; expected PEM certificates"):
            load_certificates(b"  \n")

    def test_garbage(self) -> None:
        with pytest.raises(PKIError, match="cannot read 'hello world' as certificates"):
            load_certificates("hello world")

    def test_key_only(self, linkerd: MeshCA) -> None:
        key = linkerd.issue(linkerd.identity("foo", "sleep")).key_pem()
        with pytest.raises(PKIError, match="PEM holds PRIVATE KEY but no CERTIFICATE"):
            load_certificates(key)

    def test_damaged_pem(self) -> None:
        bad = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
        with pytest.raises(PKIError, match="a PEM CERTIFICATE block is damaged"):
            load_certificates(bad)

    def test_damaged_der(self, chain: list) -> None:  # type: ignore[type-arg]
        der = chain[0].public_bytes(serialization.Encoding.DER)
        with pytest.raises(PKIError, match="DER certificate at byte 0 is damaged"):
            load_certificates(der[:-10])

    def test_json_points_to_envoy_loader(self) -> None:
        with pytest.raises(PKIError, match="this is JSON but not an Envoy secret dump"):
            load_certificates('{"configs": []}')

    def test_source_in_message(self) -> None:
        with pytest.raises(PKIError, match=r"^cert\.pem: cannot read"):
            load_certificates("nonsense!", source="cert.pem")


class TestLoadEnvoySecrets:
    @staticmethod
    def _b64(certs: list[x509.Certificate]) -> str:
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
        return base64.b64encode(pem).decode()

    def test_istioctl_secret_json(self, linkerd: MeshCA) -> None:
        chain = list(linkerd.credential("foo", "sleep").chain)
        document = {
            "dynamicActiveSecrets": [
                {
                    "name": "default",
                    "secret": {
                        "tlsCertificate": {
                            "certificateChain": {"inlineBytes": self._b64(chain)},
                            "privateKey": {"inlineBytes": "W3JlZGFjdGVkXQ=="},
                        }
                    },
                },
                {
                    "name": "ROOTCA",
                    "secret": {
                        "validationContext": {
                            "trustedCa": {"inlineBytes": self._b64([linkerd.root])}
                        }
                    },
                },
            ]
        }
        secrets = load_envoy_secrets(json.dumps(document))
        assert list(secrets.chain) == chain
        assert secrets.roots == (linkerd.root,)

    def test_envoy_config_dump_snake_case(self, istio: MeshCA) -> None:
        chain = list(istio.credential("foo", "sleep").chain)
        document = {
            "configs": [
                {
                    "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                    "dynamic_active_secrets": [
                        {
                            "name": "default",
                            "secret": {
                                "tls_certificate": {
                                    "certificate_chain": {"inline_bytes": self._b64(chain)}
                                }
                            },
                        }
                    ],
                }
            ]
        }
        secrets = load_envoy_secrets(json.dumps(document).encode())
        assert list(secrets.chain) == chain
        assert secrets.roots == ()

    def test_not_json(self) -> None:
        with pytest.raises(PKIError, match=r"not JSON .*expected the output of `istioctl"):
            load_envoy_secrets("-----BEGIN CERTIFICATE-----")

    def test_no_chain(self) -> None:
        with pytest.raises(PKIError, match=r"no certificateChain\.inlineBytes found"):
            load_envoy_secrets('{"configs": []}')

    def test_bad_inline_bytes(self) -> None:
        document = {"certificateChain": {"inlineBytes": "bm90IGEgY2VydA=="}}
        with pytest.raises(PKIError, match="<input> certificateChain: cannot read"):
            load_envoy_secrets(json.dumps(document))
