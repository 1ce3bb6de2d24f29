"""TLS at the edge: the stand-in public CA, TLS Secrets, and what curl says about a server.

``edge_trust`` predicts curl's verdict; real handshakes on 127.0.0.1 (Python's ssl, and real
curl when it is installed) check the prediction against OpenSSL itself.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pki_helpers import T0

from meshtutor.errors import MeshtutorError, PKIError, ProbeSpecError
from meshtutor.model.edge import Secret
from meshtutor.model.loader import load_file, load_yaml
from meshtutor.pki.edge import (
    FAKE_CERTIFICATE_HOST,
    EdgeCertificate,
    PublicCA,
    edge_trust,
    fake_certificate,
    server_context,
    tls_secret_manifest,
)

REPO = Path(__file__).resolve().parents[2]
EDGE = REPO / "manifests" / "edge"
HOST = "shop.example.com"
NO_ISSUER = "SSL certificate problem: unable to get local issuer certificate"
SELF_SIGNED = "SSL certificate problem: self-signed certificate"
EXPIRED = "SSL certificate problem: certificate has expired"


@dataclass(frozen=True)
class Curl:
    """The two curl options edge_trust reads (a Probe carries the same)."""

    insecure: bool = False
    cacert: str | None = None


@pytest.fixture(scope="module")
def ca() -> PublicCA:
    return PublicCA.create(seed=1, not_before=T0)


@pytest.fixture(scope="module")
def shop(ca: PublicCA) -> EdgeCertificate:
    return ca.issue([HOST, "*.shop.example.com"], not_before=T0)


@pytest.fixture
def bundle(tmp_path: Path, ca: PublicCA) -> str:
    path = tmp_path / "public-ca.pem"
    path.write_bytes(ca.root_pem)
    return str(path)


# --- a loopback HTTPS server ------------------------------------------------------------------


@contextmanager
def https_server(context: ssl.SSLContext) -> Iterator[int]:
    """Serve ``200 OK`` over TLS on 127.0.0.1 until the block ends; yield the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                    )
            except (OSError, ssl.SSLError):
                conn.close()  # the client refused the certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def openssl_says(port: int, host: str, cadata: bytes | None) -> str | None:
    """What Python's ssl (the same OpenSSL curl uses) says about the server, configured as
    curl is: system store unless a bundle is given, partial chains allowed, host name checked.
    None when it accepts; else OpenSSL's verify message."""
    client = ssl.create_default_context(cadata=cadata.decode("ascii") if cadata else None)
    client.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    client.set_alpn_protocols(["http/1.1"])
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname=host) as tls,
        ):
            assert tls.selected_alpn_protocol() == "http/1.1"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert tls.recv(100).startswith(b"HTTP/1.1 200 OK")
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message)
    return None


# --- the CA ------------------------------------------------------------------------------------


class TestPublicCA:
    def test_layout_like_lets_encrypt(self, ca: PublicCA, shop: EdgeCertificate) -> None:
        root_cn = ca.root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        issuing_cn = ca.issuing.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert root_cn == "meshtutor Stand-in Public Root CA"
        assert issuing_cn == "meshtutor Stand-in Issuing CA R1"
        assert "O=meshtutor demo" in ca.root.subject.rfc4514_string()
        assert shop.chain == (shop.certificate, ca.issuing)  # tls.crt: never the root
        shop.certificate.verify_directly_issued_by(ca.issuing)
        ca.issuing.verify_directly_issued_by(ca.root)
        assert shop.root_pem == ca.root_pem

    def test_leaf(self, shop: EdgeCertificate) -> None:
        leaf = shop.certificate
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == HOST
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [HOST, "*.shop.example.com"]
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert shop.not_before == T0
        assert shop.not_after - shop.not_before == timedelta(days=90)

    def test_seed_is_deterministic(self, ca: PublicCA) -> None:
        again = PublicCA.create(seed=1, not_before=T0)
        assert again.root_pem == ca.root_pem
        first = PublicCA.create(seed=1, not_before=T0).issue([HOST], not_before=T0)
        second = PublicCA.create(seed=1, not_before=T0).issue([HOST], not_before=T0)
        assert first.chain_pem == second.chain_pem
        assert first.key_pem() == second.key_pem()
        assert PublicCA.create(seed=2, not_before=T0).root_pem != ca.root_pem

    def test_hosts_normalised(self, ca: PublicCA) -> None:
        cert = ca.issue(["Shop.Example.COM", "shop.example.com"], not_before=T0)
        assert cert.hosts == (HOST,)

    @pytest.mark.parametrize(
        ("hosts", "match"),
        [
            ([], "no host names"),
            ([""], "empty host name"),
            (["https://shop.example.com"], "not a DNS name: give the bare name"),
            (["shop.example.com:443"], "no scheme, port or path"),
            (["10.0.0.1"], "is an IP address"),
            (["localhost"], "single label"),
            (["*.com"], "too wide"),
            (["shop.*.com"], "wildcard must be the whole leftmost label"),
            (["f*.example.com"], "wildcard must be the whole leftmost label"),
            (["-shop.example.com"], "label '-shop' is not a DNS label"),
            (["shop_1.example.com"], "label 'shop_1' is not a DNS label"),
            ([f"{'a' * 64}.example.com"], "is not a DNS label"),
        ],
    )
    def test_bad_hosts(self, ca: PublicCA, hosts: list[str], match: str) -> None:
        with pytest.raises(PKIError, match=match):
            ca.issue(hosts, not_before=T0)

    def test_days_within_issuing_ca(self, ca: PublicCA) -> None:
        with pytest.raises(PKIError, match="at least 1 day"):
            ca.issue([HOST], days=0, not_before=T0)
        with pytest.raises(PKIError, match="stand-in issuing CA is valid from 2026-01-01"):
            ca.issue([HOST], days=3651, not_before=T0)
        with pytest.raises(PKIError, match="ask for fewer days"):
            ca.issue([HOST], not_before=T0 - timedelta(days=1))

    def test_open_keeps_one_root(self, tmp_path: Path) -> None:
        first = PublicCA.open(tmp_path / "ca")
        second = PublicCA.open(tmp_path / "ca")
        assert first.root_pem == second.root_pem
        assert (tmp_path / "ca" / "public-ca.pem").read_bytes() == first.root_pem
        key = tmp_path / "ca" / "issuing-ca.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
        assert not any("root" in p.name or p.name == "public-ca.key" for p in key.parent.iterdir())
        cert = second.issue([HOST])
        cert.certificate.verify_directly_issued_by(first.issuing)

    def test_key_symlink_refused(self, tmp_path: Path, ca: PublicCA) -> None:
        (tmp_path / "ca").mkdir()
        (tmp_path / "ca" / "issuing-ca.key").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(PKIError, match="cannot write the private key"):
            ca.save(tmp_path / "ca")
        assert not (tmp_path / "elsewhere").exists()

    def test_load_mismatched_files(self, tmp_path: Path, ca: PublicCA) -> None:
        ca.save(tmp_path)
        (tmp_path / "public-ca.pem").write_bytes(PublicCA.create(seed=9, not_before=T0).root_pem)
        with pytest.raises(PKIError, match="do not belong together"):
            PublicCA.load(tmp_path)
        (tmp_path / "issuing-ca.key").unlink()
        with pytest.raises(PKIError, match="cannot read the stand-in CA"):
            PublicCA.load(tmp_path)


# --- the Secret --------------------------------------------------------------------------------


class TestTLSSecretManifest:
    def test_loads_as_a_tls_secret(self, shop: EdgeCertificate) -> None:
        text = tls_secret_manifest(shop, name="shop-example-com-tls", namespace="istio-system")
        (secret,) = load_yaml(text)
        assert isinstance(secret, Secret)
        assert secret.type == "kubernetes.io/tls"
        assert secret.metadata.name == "shop-example-com-tls"
        assert secret.metadata.namespace == "istio-system"
        assert secret.data["tls.crt"] == shop.chain_pem
        assert secret.data["tls.key"] == shop.key_pem()

    def test_reads_like_kubectl_with_a_demo_header(self, shop: EdgeCertificate) -> None:
        text = tls_secret_manifest(shop, name="shop-tls", namespace="shop")
        comments = [line for line in text.splitlines() if line.startswith("#")]
        assert "stand-in public CA" in comments[1]
        assert any("not a real CA" in line for line in comments)
        body = [line.split(":")[0] for line in text.splitlines() if not line.startswith(("#", " "))]
        assert body == ["apiVersion", "data", "kind", "metadata", "type"]  # kubectl's order
        assert "  creationTimestamp: null\n" in text

    @pytest.mark.parametrize(
        ("name", "namespace", "match"),
        [
            ("Shop", "shop", "Secret name 'Shop' is not a valid Kubernetes name"),
            ("shop_tls", "shop", "Secret name 'shop_tls'"),
            ("shop-tls", "istio.system", "namespace 'istio.system' is not a valid"),
            ("shop-tls", "", "namespace ''"),
        ],
    )
    def test_bad_names(self, shop: EdgeCertificate, name: str, namespace: str, match: str) -> None:
        with pytest.raises(MeshtutorError, match=match):
            tls_secret_manifest(shop, name=name, namespace=namespace)


# --- what curl says ---------------------------------------------------------------------------


NOW = T0 + timedelta(days=1)


class TestEdgeTrust:
    def test_trusted_with_the_bundle(self, shop: EdgeCertificate, bundle: str) -> None:
        assert edge_trust(Curl(cacert=bundle), shop.chain_pem, HOST, now=NOW) is None

    def test_system_store_never_trusts_the_stand_in(self, shop: EdgeCertificate) -> None:
        assert edge_trust(Curl(), shop.chain_pem, HOST, now=NOW) == NO_ISSUER

    def test_another_stand_in_ca_of_the_same_name(
        self, shop: EdgeCertificate, tmp_path: Path
    ) -> None:
        other = tmp_path / "other.pem"
        other.write_bytes(PublicCA.create(seed=5, not_before=T0).root_pem)
        assert edge_trust(Curl(cacert=str(other)), shop.chain_pem, HOST, now=NOW) == NO_ISSUER

    def test_server_leaves_out_the_intermediate(self, shop: EdgeCertificate, bundle: str) -> None:
        leaf_only = shop.certificate.public_bytes(Encoding.PEM)
        assert edge_trust(Curl(cacert=bundle), leaf_only, HOST, now=NOW) == NO_ISSUER

    def test_bundle_with_the_intermediate_is_enough(
        self, shop: EdgeCertificate, ca: PublicCA, tmp_path: Path
    ) -> None:
        # curl sets X509_V_FLAG_PARTIAL_CHAIN: any certificate of the bundle is an anchor.
        path = tmp_path / "issuing.pem"
        path.write_bytes(ca.issuing.public_bytes(Encoding.PEM))
        assert edge_trust(Curl(cacert=str(path)), shop.chain_pem, HOST, now=NOW) is None

    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            (T0 - timedelta(seconds=1), "SSL certificate problem: certificate is not yet valid"),
            (T0, None),
            (T0 + timedelta(days=90), None),
            (T0 + timedelta(days=90, seconds=1), EXPIRED),
        ],
    )
    def test_validity(
        self, shop: EdgeCertificate, bundle: str, now: datetime, expected: str | None
    ) -> None:
        assert edge_trust(Curl(cacert=bundle), shop.chain_pem, HOST, now=now) == expected

    @pytest.mark.parametrize(
        ("host", "ok"),
        [
            ("shop.example.com", True),
            ("SHOP.example.com.", True),
            ("www.shop.example.com", True),  # *.shop.example.com
            ("a.b.shop.example.com", False),  # a wildcard matches one label only
            ("example.com", False),
            ("shop.example.org", False),
            ("127.0.0.1", False),
        ],
    )
    def test_host_names(self, shop: EdgeCertificate, bundle: str, host: str, ok: bool) -> None:
        said = edge_trust(Curl(cacert=bundle), shop.chain_pem, host, now=NOW)
        if ok:
            assert said is None
        else:
            assert said == (
                f"SSL: no alternative certificate subject name matches target host name '{host}'"
            )

    def test_insecure_accepts_anything(self, shop: EdgeCertificate) -> None:
        later = NOW + timedelta(days=3650)
        assert edge_trust(Curl(insecure=True), shop.chain_pem, "wrong.example", now=later) is None
        assert edge_trust(Curl(insecure=True), None, HOST) is None
        missing = Curl(insecure=True, cacert="/nonexistent/ca.pem")  # curl -k goes on without it
        assert edge_trust(missing, shop.chain_pem, HOST) is None

    def test_fake_certificate_is_self_signed(self) -> None:
        assert edge_trust(Curl(), None, HOST) == SELF_SIGNED
        chain_pem, key_pem = fake_certificate()
        assert fake_certificate() == (chain_pem, key_pem)  # made once per process
        fake = x509.load_pem_x509_certificate(chain_pem)
        assert fake.subject.rfc4514_string() == (
            "CN=Kubernetes Ingress Controller Fake Certificate,O=Acme Co"
        )
        assert fake.issuer == fake.subject
        san = fake.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [FAKE_CERTIFICATE_HOST]

    def test_missing_cacert(self, shop: EdgeCertificate) -> None:
        with pytest.raises(ProbeSpecError, match=r"--cacert nope\.pem: no such file"):
            edge_trust(Curl(cacert="nope.pem"), shop.chain_pem, HOST)

    def test_cacert_without_certificates(self, shop: EdgeCertificate, tmp_path: Path) -> None:
        (tmp_path / "empty.pem").write_text("not a certificate\n")
        with pytest.raises(ProbeSpecError, match="no PEM certificate in the file"):
            edge_trust(Curl(cacert=str(tmp_path / "empty.pem")), shop.chain_pem, HOST)

    def test_relative_cacert_current_directory_first(
        self, shop: EdgeCertificate, bundle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "edge").mkdir()
        # A cwd file shadows the bundled one of the same relative name.
        (tmp_path / "edge" / "public-ca.pem").write_bytes(Path(bundle).read_bytes())
        probe = Curl(cacert="edge/public-ca.pem")
        assert edge_trust(probe, shop.chain_pem, HOST, now=NOW) is None
        assert edge_trust(Curl(cacert="public-ca.pem"), shop.chain_pem, HOST, now=NOW) is None

    def test_relative_cacert_then_bundled_manifests(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        (secret,) = load_file(EDGE / "shop-tls-istio.yaml")
        assert isinstance(secret, Secret)
        chain = secret.data["tls.crt"]
        assert edge_trust(Curl(cacert="edge/public-ca.pem"), chain, HOST) is None


# --- real handshakes -------------------------------------------------------------------------


class TestAgainstOpenSSL:
    """Each prediction next to what OpenSSL itself says in a real handshake (real time)."""

    @pytest.fixture(scope="class")
    def live(self) -> tuple[PublicCA, EdgeCertificate]:
        ca = PublicCA.create(seed=3)
        return ca, ca.issue([HOST])

    def test_trusted_with_the_bundle(self, live: tuple[PublicCA, EdgeCertificate]) -> None:
        ca, cert = live
        with https_server(server_context(cert.chain_pem, cert.key_pem())) as port:
            assert openssl_says(port, HOST, ca.root_pem) is None

    def test_untrusted_without_it(self, live: tuple[PublicCA, EdgeCertificate]) -> None:
        _, cert = live
        with https_server(server_context(cert.chain_pem, cert.key_pem())) as port:
            said = openssl_says(port, HOST, None)
        assert said == "unable to get local issuer certificate"
        assert edge_trust(Curl(), cert.chain_pem, HOST) == f"SSL certificate problem: {said}"

    def test_another_ca(self, live: tuple[PublicCA, EdgeCertificate], tmp_path: Path) -> None:
        _, cert = live
        other = PublicCA.create(seed=4).root_pem
        (tmp_path / "other.pem").write_bytes(other)
        with https_server(server_context(cert.chain_pem, cert.key_pem())) as port:
            said = openssl_says(port, HOST, other)
        predicted = edge_trust(Curl(cacert=str(tmp_path / "other.pem")), cert.chain_pem, HOST)
        assert predicted == f"SSL certificate problem: {said}"

    def test_host_name_mismatch(self, live: tuple[PublicCA, EdgeCertificate]) -> None:
        ca, cert = live
        with (
            https_server(server_context(cert.chain_pem, cert.key_pem())) as port,
            pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"),
        ):
            client = ssl.create_default_context(cadata=ca.root_pem.decode())
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                client.wrap_socket(raw, server_hostname="api.example.com"),
            ):
                pass

    def test_expired(self, tmp_path: Path) -> None:
        old = PublicCA.create(seed=6, not_before=datetime(2020, 1, 1, tzinfo=UTC))
        cert = old.issue([HOST], days=90, not_before=datetime(2020, 1, 1, tzinfo=UTC))
        (tmp_path / "ca.pem").write_bytes(old.root_pem)
        with https_server(server_context(cert.chain_pem, cert.key_pem())) as port:
            said = openssl_says(port, HOST, old.root_pem)
        assert said == "certificate has expired"
        assert edge_trust(Curl(cacert=str(tmp_path / "ca.pem")), cert.chain_pem, HOST) == EXPIRED

    def test_fake_certificate(self) -> None:
        with https_server(server_context(*fake_certificate())) as port:
            said = openssl_says(port, HOST, None)
        assert edge_trust(Curl(), None, HOST) == f"SSL certificate problem: {said}"

    def test_server_offers_tls12_and_up(self, live: tuple[PublicCA, EdgeCertificate]) -> None:
        _, cert = live
        context = server_context(cert.chain_pem, cert.key_pem())
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
        assert context.verify_mode is ssl.CERT_NONE  # one-way TLS: no client certificate

    def test_server_context_rejects_a_foreign_key(
        self, live: tuple[PublicCA, EdgeCertificate]
    ) -> None:
        _, cert = live
        with pytest.raises(PKIError, match="do not load"):
            server_context(cert.chain_pem, fake_certificate()[1])


CURL = shutil.which("curl")


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
class TestRealCurl:
    def curl(self, port: int, *options: str) -> subprocess.CompletedProcess[str]:
        assert CURL is not None
        command = [CURL, "-sS", "--noproxy", "*", "--resolve", f"{HOST}:{port}:127.0.0.1"]
        command += [*options, f"https://{HOST}:{port}/"]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    def test_cacert_exit_0_without_exit_60(self, tmp_path: Path) -> None:
        ca = PublicCA.create(seed=8)
        cert = ca.issue([HOST])
        (tmp_path / "public-ca.pem").write_bytes(ca.root_pem)
        with https_server(server_context(cert.chain_pem, cert.key_pem())) as port:
            trusted = self.curl(port, "--cacert", str(tmp_path / "public-ca.pem"))
            untrusted = self.curl(port)
            insecure = self.curl(port, "-k")
        assert (trusted.returncode, trusted.stdout) == (0, "ok\n"), trusted.stderr
        assert insecure.returncode == 0
        assert untrusted.returncode == 60
        predicted = edge_trust(Curl(), cert.chain_pem, HOST)
        assert predicted is not None and predicted in untrusted.stderr

    def test_committed_bundle_and_secret(self) -> None:
        (secret,) = load_file(EDGE / "shop-tls-nginx.yaml")
        assert isinstance(secret, Secret)
        context = server_context(secret.data["tls.crt"], secret.data["tls.key"])
        with https_server(context) as port:
            done = self.curl(port, "--cacert", str(EDGE / "public-ca.pem"))
        assert done.returncode == 0, done.stderr

    def test_host_name_mismatch_and_fake(self, tmp_path: Path) -> None:
        ca = PublicCA.create(seed=8)
        cert = ca.issue(["api.example.com"])
        (tmp_path / "ca.pem").write_bytes(ca.root_pem)
        with https_server(server_context(cert.chain_pem, cert.key_pem())) as port:
            wrong = self.curl(port, "--cacert", str(tmp_path / "ca.pem"))
        assert wrong.returncode == 60
        probe = Curl(cacert=str(tmp_path / "ca.pem"))
        predicted = edge_trust(probe, cert.chain_pem, HOST)
        assert predicted is not None and predicted in wrong.stderr
        with https_server(server_context(*fake_certificate())) as port:
            fake = self.curl(port)
        assert fake.returncode == 60
        assert SELF_SIGNED in fake.stderr


# --- the command -----------------------------------------------------------------------------


def meshtutor(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHTUTOR_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "meshtutor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


class TestTLSSecretCommand:
    def test_manifest_loads_and_verifies_against_the_printed_bundle(self, tmp_path: Path) -> None:
        done = meshtutor(
            "tls-secret",
            HOST,
            "--name",
            "shop-example-com-tls",
            "-n",
            "istio-system",
            home=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        (secret,) = load_yaml(done.stdout, source="<stdout>")
        assert isinstance(secret, Secret)
        assert (secret.metadata.name, secret.metadata.namespace) == (
            "shop-example-com-tls",
            "istio-system",
        )
        first, second = done.stderr.splitlines()
        bundle = first.rsplit(": ", 1)[1]
        assert bundle == str(tmp_path / "edge-ca" / "public-ca.pem")
        assert second.strip() == (
            f"curl --cacert {bundle} --resolve {HOST}:443:ADDRESS https://{HOST}/"
        )
        assert edge_trust(Curl(cacert=bundle), secret.data["tls.crt"], HOST) is None
        key = tmp_path / "edge-ca" / "issuing-ca.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600

    def test_repeated_runs_share_the_root(self, tmp_path: Path) -> None:
        args = ("tls-secret", HOST, "--name", "a", "-n", "shop", "--ca-dir", str(tmp_path / "ca"))
        first, second = (
            meshtutor(*args, home=tmp_path),
            meshtutor(*args, "--days", "7", home=tmp_path),
        )
        assert first.returncode == second.returncode == 0, first.stderr + second.stderr
        assert first.stdout != second.stdout  # a new key and certificate each time
        bundle = str(tmp_path / "ca" / "public-ca.pem")
        for done in (first, second):
            (secret,) = load_yaml(done.stdout)
            assert isinstance(secret, Secret)
            assert edge_trust(Curl(cacert=bundle), secret.data["tls.crt"], HOST) is None
        assert not (tmp_path / "edge-ca").exists()  # --ca-dir, not the data directory

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["https://shop.example.com/", "--name", "a"], "meshtutor: host 'https://shop."),
            ([HOST, "*.com", "--name", "a"], "meshtutor: wildcard '*.com' is too wide"),
            ([HOST, "--name", "Shop"], "meshtutor: Secret name 'Shop' is not a valid"),
            ([HOST, "--name", "a", "--days", "0"], "Error: Invalid value for '--days'"),
            ([HOST], "Error: Missing option '--name'"),
        ],
    )
    def test_mistakes_exit_2_with_one_line(
        self, tmp_path: Path, args: list[str], message: str
    ) -> None:
        done = meshtutor("tls-secret", *args, "-n", "shop", home=tmp_path)
        assert done.returncode == 2
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(message)
        assert not (tmp_path / "edge-ca").exists()  # nothing created for a mistake

    def test_command_module_is_cheap(self) -> None:
        code = "import sys, meshtutor.pki.edge_cli; print('cryptography' in sys.modules)"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert done.stdout.strip() == "False"


# --- the committed demo files ----------------------------------------------------------------


class TestDemoFiles:
    def test_up_to_date_with_the_script(self) -> None:
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "make_edge_certs.py"), "--check"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    @pytest.mark.parametrize(
        ("file_name", "namespace"),
        [("shop-tls-istio.yaml", "istio-system"), ("shop-tls-nginx.yaml", "shop")],
    )
    def test_secrets(self, file_name: str, namespace: str) -> None:
        (secret,) = load_file(EDGE / file_name)
        assert isinstance(secret, Secret)
        assert (secret.metadata.name, secret.metadata.namespace) == (
            "shop-example-com-tls",
            namespace,
        )
        probe = Curl(cacert=str(EDGE / "public-ca.pem"))
        chain = secret.data["tls.crt"]
        assert edge_trust(probe, chain, HOST) is None
        leaf = x509.load_pem_x509_certificate(chain)
        assert leaf.not_valid_before_utc == T0
        assert leaf.not_valid_after_utc >= datetime(2035, 12, 1, tzinfo=UTC)
