"""``meshtutor certs``: what a learner sees, and one-line errors with exit code 2."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from meshtutor.cli import main
from meshtutor.pki import load_certificates
from meshtutor.pki.cli import certs


def run(*args: str, input: bytes | None = None) -> str:
    # rich wraps at $COLUMNS (80 when not a terminal): widen it so lines can be matched whole.
    result = CliRunner(env={"COLUMNS": "160"}).invoke(certs, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.output


def fail(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run through meshtutor's main(), as the shell would; return the single stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        main(["certs", *args])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


class TestCertsCommand:
    def test_istio_tree(self) -> None:
        out = run("foo/sleep")
        assert "foo/sleep in a throwaway Istio mesh, ECDSA P-256" in out
        assert "not rotated yet; next rotation in 1" in out
        assert "✓ trusted: spiffe://cluster.local/ns/foo/sa/sleep chains to the root" in out
        assert "Root CA  O=cluster.local  (self-signed)" in out
        assert "Workload  (empty subject)" in out
        assert "URI:spiffe://cluster.local/ns/foo/sa/sleep  ← SPIFFE ID" in out
        assert "100% of 1 d left" in out
        assert "CA:FALSE · digitalSignature, keyEncipherment · serverAuth, clientAuth" in out
        assert out.index("Root CA") < out.index("Workload")

    def test_linkerd_tree(self) -> None:
        out = run("foo/sleep", "--mesh", "linkerd")
        assert "Trust anchor  CN=root.linkerd.cluster.local" in out
        assert "Identity issuer  CN=identity.linkerd.cluster.local" in out
        assert "Proxy  CN=sleep.foo.serviceaccount.identity.linkerd.cluster.local" in out
        assert "DNS:sleep.foo.serviceaccount.identity.linkerd.cluster.local" in out

    def test_at_plus_24h_rotated(self) -> None:
        out = run("foo/sleep", "--at", "+24h")
        assert "(+24h from now)" in out
        assert "rotated 1 time" in out or "rotated 2 times" in out
        assert "✓ trusted" in out

    def test_at_plus_one_year_linkerd_expired(self) -> None:
        out = run("foo/sleep", "--mesh", "linkerd", "--at", "+1y")
        assert "rotation stopped: cannot issue a certificate" in out
        assert "✗ expired: the root certificate 'CN=root.linkerd.cluster.local' expired 6 h" in out

    def test_rsa(self) -> None:
        assert "RSA 2048, signed sha256WithRSAEncryption" in run("foo/sleep", "--key-type", "rsa")

    def test_plugin_ca(self) -> None:
        out = run("foo/sleep", "--intermediate")
        assert "Intermediate CA  CN=Intermediate CA,O=Istio" in out

    def test_json(self) -> None:
        data = json.loads(run("foo/sleep", "--json"))
        assert data["identity"] == "spiffe://cluster.local/ns/foo/sa/sleep"
        assert data["workload"] == "foo/sleep"
        assert [c["role"] for c in data["chain"]["certificates"]] == ["leaf", "root"]
        assert data["chain"]["certificates"][0]["spiffe_id"] == data["identity"]
        assert data["chain"]["verification"]["reason"] == "ok"

    def test_json_at_plus_24h(self) -> None:
        data = json.loads(run("foo/sleep", "--json", "--at", "+24h"))
        assert data["rotations"] in (1, 2)

    def test_pem(self) -> None:
        out = run("foo/sleep", "--mesh", "linkerd", "--pem")
        chain = load_certificates(out)
        assert len(chain) == 3
        assert chain[0].subject.rfc4514_string().startswith("CN=sleep.foo.serviceaccount")

    def test_spiffe_id_argument(self) -> None:
        out = run("spiffe://example.org/ns/bar/sa/web")
        assert "✓ trusted: spiffe://example.org/ns/bar/sa/web" in out

    def test_write_key(self, tmp_path: Path) -> None:
        key = tmp_path / "sleep.key"
        result = CliRunner().invoke(certs, ["foo/sleep", "--write-key", str(key)])
        assert result.exit_code == 0
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")

    def test_file_from_stdin_base64(self) -> None:
        pem = run("foo/sleep", "--mesh", "linkerd", "--pem").encode()
        out = run("-f", "-", input=base64.b64encode(pem))
        assert "Root CA  CN=root.linkerd.cluster.local" in out

    def test_file_envoy_json_verifies(self, tmp_path: Path) -> None:
        chain = load_certificates(run("foo/sleep", "--pem"))
        as_b64 = [base64.b64encode(c.public_bytes(Encoding.PEM)).decode() for c in chain]
        dump = {
            "dynamicActiveSecrets": [
                {"secret": {"tlsCertificate": {"certificateChain": {"inlineBytes": as_b64[0]}}}},
                {"secret": {"validationContext": {"trustedCa": {"inlineBytes": as_b64[1]}}}},
            ]
        }
        path = tmp_path / "secret.json"
        path.write_text(json.dumps(dump))
        assert "✓ trusted" in run("-f", str(path), "foo/sleep")
        assert "✗ identity_mismatch" in run("-f", str(path), "foo/httpbin")


class TestCertsErrors:
    def test_not_namespace_slash_sa(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = fail(capsys, "sleep")
        assert "expected NAMESPACE/SERVICEACCOUNT (e.g. foo/sleep)" in line

    def test_invalid_namespace(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert "namespace 'Foo' is not a valid Kubernetes name" in fail(capsys, "Foo/sleep")

    def test_missing_workload(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert "expected NAMESPACE/SERVICEACCOUNT, e.g. foo/sleep" in fail(capsys)

    def test_bad_at(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = fail(capsys, "foo/sleep", "--at", "tomorrow")
        assert line.startswith("Error: Invalid value for '--at': cannot read 'tomorrow'")
        assert "+24h" in line

    def test_bad_mesh(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = fail(capsys, "foo/sleep", "--mesh", "consul")
        assert "'consul' is not one of 'istio', 'linkerd'" in line

    def test_json_and_pem(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert "choose one of --json and --pem" in fail(capsys, "foo/sleep", "--json", "--pem")

    def test_garbage_file(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        path = tmp_path / "junk.txt"
        path.write_text("not a certificate")
        line = fail(capsys, "-f", str(path))
        assert line.startswith(f"meshtutor: {path}: cannot read 'not a certificate'")

    def test_key_dir_missing(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        line = fail(capsys, "foo/sleep", "--write-key", str(tmp_path / "no" / "k.pem"))
        assert line.startswith("meshtutor: cannot write the private key to")


class TestEntryPoint:
    def test_subprocess(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "meshtutor", "certs", "foo/sleep", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["identity"] == "spiffe://cluster.local/ns/foo/sa/sleep"

    def test_subprocess_bad_input(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "meshtutor", "certs", "foo"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr
