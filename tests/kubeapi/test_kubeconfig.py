"""The sandbox API's certificates and kubeconfig, checked with the real kubectl and real TLS.

kubectl's own commands read the files meshtutor writes (``kubectl config get-contexts``,
``kubectl config view --minify``) and a tiny aiohttp HTTPS server using
``server_ssl_context`` answers ``kubectl get --raw /version`` as kube-apiserver would: with
the client certificate the version, without it ``401 Unauthorized`` from the HTTP layer
(kube-apiserver's answer to a request it cannot authenticate), and a certificate from another
CA never completes the handshake.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from meshtutor.errors import InputFileError, PKIError
from meshtutor.kubeapi.kubeconfig import (
    CLIENT_GROUP,
    CLIENT_USER,
    APICredentials,
    check_kubeconfig_path,
    client_groups,
    client_user,
    issue_credentials,
    remove_from_kubeconfig,
    server_ssl_context,
    write_kubeconfig,
)

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

#: A learner's kubeconfig with a kind cluster in it, comments and preferences included.
EXISTING = """\
# my clusters
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: kind-kind
  cluster:
    server: https://127.0.0.1:6443
    insecure-skip-tls-verify: true
users:
- name: kind-kind
  user:
    token: abc
contexts:
- name: kind-kind
  context:
    cluster: kind-kind
    user: kind-kind
    namespace: default
current-context: kind-kind
"""


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> APICredentials:
    return issue_credentials(tmp_path_factory.mktemp("api") / "sandbox-api")


def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [KUBECTL, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


class TestCredentials:
    def test_files_keys_private_and_reused(self, tmp_path: Path) -> None:
        folder = tmp_path / "sandbox-api"
        first = issue_credentials(folder)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert sorted(p.name for p in folder.iterdir()) == [
            "ca.crt",
            "client.crt",
            "client.key",
            "server.crt",
            "server.key",
        ]
        for key in ("client.key", "server.key"):
            assert stat.S_IMODE((folder / key).stat().st_mode) == 0o600
        assert issue_credentials(folder) == first  # the next run keeps them

    def test_names_like_kind(self, creds: APICredentials) -> None:
        ca = x509.load_pem_x509_certificate(creds.ca_pem)
        server = x509.load_pem_x509_certificate(creds.server_cert_pem)
        client = x509.load_pem_x509_certificate(creds.client_cert_pem)
        assert ca.subject.rfc4514_string() == "CN=meshtutor-sandbox-ca"
        san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CLIENT_USER
        orgs = client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        assert [o.value for o in orgs] == [CLIENT_GROUP] == ["kubeadm:cluster-admins"]
        for cert in (ca, server, client):
            life = cert.not_valid_after_utc - cert.not_valid_before_utc
            assert timedelta(days=365) <= life <= timedelta(days=366)

    def test_broken_file_issues_afresh(self, tmp_path: Path) -> None:
        first = issue_credentials(tmp_path)
        (tmp_path / "server.key").write_bytes(b"not a key")
        second = issue_credentials(tmp_path)
        assert second.ca_pem != first.ca_pem
        assert issue_credentials(tmp_path) == second

    def test_mismatched_files_issue_afresh(self, tmp_path: Path) -> None:
        first = issue_credentials(tmp_path / "a")
        issue_credentials(tmp_path / "b")
        shutil.copy(tmp_path / "b" / "client.crt", tmp_path / "a" / "client.crt")
        assert issue_credentials(tmp_path / "a").ca_pem != first.ca_pem

    def test_expired_issues_afresh(self, tmp_path: Path) -> None:
        old = issue_credentials(tmp_path, now=datetime.now(UTC) - timedelta(days=400))
        fresh = issue_credentials(tmp_path)
        assert fresh.ca_pem != old.ca_pem
        cert = x509.load_pem_x509_certificate(fresh.server_cert_pem)
        assert cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=300)

    def test_widened_key_is_narrowed_again(self, tmp_path: Path) -> None:
        issue_credentials(tmp_path / "api")
        (tmp_path / "api" / "client.key").chmod(0o644)
        (tmp_path / "api").chmod(0o755)
        issue_credentials(tmp_path / "api")
        assert stat.S_IMODE((tmp_path / "api" / "client.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "api").stat().st_mode) == 0o700

    def test_unwritable_directory_is_one_line(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(PKIError) as caught:
            issue_credentials(blocker / "sandbox-api")
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"cannot keep the sandbox API's certificates in {blocker}")
        assert "set MESHTUTOR_HOME to a folder you can write" in message


# --- TLS --------------------------------------------------------------------------------------


class _Server:
    """``server_ssl_context`` on a real socket in a thread: each handshake's outcome and the
    user :func:`client_user` saw."""

    def __init__(self, creds: APICredentials) -> None:
        self.context = server_ssl_context(creds)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.results: list[tuple[str | None, tuple[str, ...]] | str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    tls = self.context.wrap_socket(conn, server_side=True)
                    self.results.append((client_user(tls), client_groups(tls)))
                    tls.sendall(b"ok")
                    tls.close()
                except (ssl.SSLError, OSError) as exc:
                    self.results.append(f"failed: {type(exc).__name__}")

    def connect(self, client: ssl.SSLContext) -> bytes:
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            return tls.recv(10)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def tls_server(creds: APICredentials) -> Iterator[_Server]:
    server = _Server(creds)
    yield server
    server.close()


def _client(creds: APICredentials, cert: bytes | None = None, key: bytes | None = None) -> Any:
    context = ssl.create_default_context(cadata=creds.ca_pem.decode())
    if cert is not None and key is not None:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "client.pem"
            path.write_bytes(key + cert)
            context.load_cert_chain(path)
    return context


class TestServerContext:
    def test_client_certificate_names_the_user(
        self, creds: APICredentials, tls_server: _Server
    ) -> None:
        client = _client(creds, creds.client_cert_pem, creds.client_key_pem)
        assert tls_server.connect(client) == b"ok"
        assert client.minimum_version <= ssl.TLSVersion.TLSv1_3
        assert tls_server.results == [(CLIENT_USER, (CLIENT_GROUP,))]

    def test_no_client_certificate_still_completes_the_handshake(
        self, creds: APICredentials, tls_server: _Server
    ) -> None:
        """So the HTTP layer can answer 401 with a Status, as kube-apiserver does."""
        assert tls_server.connect(_client(creds)) == b"ok"
        assert tls_server.results == [(None, ())]

    def test_certificate_of_another_ca_fails_the_handshake(
        self, creds: APICredentials, tls_server: _Server, tmp_path: Path
    ) -> None:
        stranger = issue_credentials(tmp_path / "other")
        client = _client(creds, stranger.client_cert_pem, stranger.client_key_pem)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_server.connect(client)
            raise ConnectionError("handshake went through")  # pragma: no cover - the bug
        tls_server.close()
        assert tls_server.results == ["failed: SSLCertVerificationError"]

    @pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
    def test_tls_1_1_is_refused(self, creds: APICredentials, tls_server: _Server) -> None:
        client = _client(creds)
        client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_server.connect(client)


# --- the kubeconfig ---------------------------------------------------------------------------


class TestWriteKubeconfig:
    def test_new_file(self, creds: APICredentials, tmp_path: Path) -> None:
        path = tmp_path / "kubeconfig"
        update = write_kubeconfig(path, "https://127.0.0.1:6443", creds)
        assert update.created and update.previous_context is None and update.notes() == []
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        config = yaml.safe_load(path.read_text())
        assert config["current-context"] == "meshtutor"
        assert config["clusters"] == [
            {
                "cluster": {
                    "certificate-authority-data": base64.b64encode(creds.ca_pem).decode(),
                    "server": "https://127.0.0.1:6443",
                },
                "name": "meshtutor",
            }
        ]
        user = config["users"][0]["user"]
        assert base64.b64decode(user["client-key-data"]) == creds.client_key_pem
        assert list(tmp_path.iterdir()) == [path]  # no temporary file, no lock left

    def test_merge_keeps_the_other_context(self, creds: APICredentials, tmp_path: Path) -> None:
        path = tmp_path / "config"
        path.write_text(EXISTING)
        update = write_kubeconfig(path, "https://127.0.0.1:40001", creds)
        assert not update.created
        assert update.previous_context == "kind-kind"
        assert update.dropped_comments
        assert update.notes() == [
            "current-context was 'kind-kind'; switch back with "
            "`kubectl config use-context kind-kind`",
            f"{path}: its comments were not kept (kubectl config drops them too)",
        ]
        config = yaml.safe_load(path.read_text())
        before = yaml.safe_load(EXISTING)
        assert config["preferences"] == {"colors": True}
        for section in ("clusters", "users", "contexts"):
            assert config[section][0] == before[section][0]
            assert [e["name"] for e in config[section]] == ["kind-kind", "meshtutor"]

    def test_second_write_replaces_ours_and_keeps_the_namespace(
        self, creds: APICredentials, tmp_path: Path
    ) -> None:
        path = tmp_path / "config"
        write_kubeconfig(path, "https://127.0.0.1:40001", creds)
        config = yaml.safe_load(path.read_text())
        config["contexts"][0]["context"]["namespace"] = "demo"  # kubectl config set-context
        path.write_text(yaml.safe_dump(config))
        write_kubeconfig(path, "https://127.0.0.1:40002", creds)
        config = yaml.safe_load(path.read_text())
        assert [c["name"] for c in config["clusters"]] == ["meshtutor"]
        assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:40002"
        assert config["contexts"][0]["context"]["namespace"] == "demo"

    def test_symlink_is_written_through(self, creds: APICredentials, tmp_path: Path) -> None:
        real = tmp_path / "real-config"
        real.write_text(EXISTING)
        link = tmp_path / "config"
        link.symlink_to(real)
        write_kubeconfig(link, "https://127.0.0.1:40001", creds)
        assert link.is_symlink()
        assert "meshtutor" in real.read_text()

    def test_malformed_file_is_left_untouched(self, creds: APICredentials, tmp_path: Path) -> None:
        path = tmp_path / "config"
        path.write_text("apiVersion: v1\nclusters: [\n")
        with pytest.raises(InputFileError) as caught:
            write_kubeconfig(path, "https://127.0.0.1:40001", creds)
        assert str(caught.value).startswith(f"{path}:3: this is not valid YAML")
        assert path.read_text() == "apiVersion: v1\nclusters: [\n"
        with pytest.raises(InputFileError, match=r"field clusters: expected a list"):
            path.write_text("clusters: {a: 1}\n")
            check_kubeconfig_path(path)
        with pytest.raises(InputFileError, match="is not a kubeconfig"):
            path.write_text("- a\n- b\n")
            write_kubeconfig(path, "https://127.0.0.1:40001", creds)

    def test_a_failed_write_leaves_the_old_file(
        self, creds: APICredentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A write that dies before the rename (disk full, Ctrl-C) leaves the old file whole
        and no temporary file behind."""
        path = tmp_path / "config"
        path.write_text(EXISTING)

        def full(*args: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(InputFileError, match="No space left on device"):
            write_kubeconfig(path, "https://127.0.0.1:40001", creds)
        assert path.read_text() == EXISTING
        assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]

    def test_a_held_lock_is_reported(self, creds: APICredentials, tmp_path: Path) -> None:
        path = tmp_path / "config"
        Path(f"{path}.lock").touch()
        with pytest.raises(InputFileError, match=r"config\.lock exists\); if no kubectl"):
            write_kubeconfig(path, "https://127.0.0.1:40001", creds)
        assert not path.exists()

    def test_remove(self, creds: APICredentials, tmp_path: Path) -> None:
        path = tmp_path / "config"
        path.write_text(EXISTING)
        write_kubeconfig(path, "https://127.0.0.1:40001", creds)
        assert remove_from_kubeconfig(path)
        config = yaml.safe_load(path.read_text())
        before = yaml.safe_load(EXISTING)
        for section in ("clusters", "users", "contexts"):
            assert config[section] == before[section]
        assert config["current-context"] == ""
        assert not remove_from_kubeconfig(path)
        assert not remove_from_kubeconfig(tmp_path / "missing")

    def test_check_path(self, tmp_path: Path) -> None:
        check_kubeconfig_path(tmp_path / "new" / "config")  # made when written
        (tmp_path / "file").write_text("x")
        with pytest.raises(InputFileError, match="is not a folder"):
            check_kubeconfig_path(tmp_path / "file" / "config")
        with pytest.raises(InputFileError, match="this is a directory"):
            check_kubeconfig_path(tmp_path)


@needs_kubectl
class TestKubectlReadsIt:
    def test_get_contexts_and_minify(self, creds: APICredentials, tmp_path: Path) -> None:
        path = tmp_path / "config"
        path.write_text(EXISTING)
        write_kubeconfig(path, "https://127.0.0.1:40001", creds)
        listed = kubectl("config", "get-contexts", "--kubeconfig", str(path))
        assert listed.returncode == 0, listed.stderr
        rows = [line.split() for line in listed.stdout.splitlines()[1:]]
        assert rows == [
            ["kind-kind", "kind-kind", "kind-kind", "default"],
            ["*", "meshtutor", "meshtutor", "meshtutor"],
        ]
        ours = kubectl("config", "view", "--minify", "-o", "json", "--kubeconfig", str(path))
        assert ours.returncode == 0, ours.stderr
        view = json.loads(ours.stdout)
        assert view["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:40001"
        theirs = kubectl(
            "config", "view", "--minify", "-o", "json", "--context", "kind-kind",
            "--kubeconfig", str(path),
        )  # fmt: skip
        assert theirs.returncode == 0, theirs.stderr
        kind = json.loads(theirs.stdout)
        assert kind["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
        assert kind["contexts"][0]["context"]["namespace"] == "default"

    def test_get_raw_version_over_client_certificate_tls(
        self, creds: APICredentials, tmp_path: Path
    ) -> None:
        """kubectl (Go TLS) presents the client certificate from the kubeconfig and gets the
        version; with the client certificate replaced by a token the sandbox does not take,
        the handshake still completes and the HTTP layer's 401 comes back, printed as kubectl
        prints it for a real apiserver. (A user with no credentials at all makes kubectl ask
        for a user name instead.)"""
        version = {"major": "1", "minor": "33", "gitVersion": "v1.33.1"}
        with _api_server(creds, version) as (url, seen):
            path = tmp_path / "config"
            write_kubeconfig(path, url, creds)
            out = kubectl("get", "--raw", "/version", "--kubeconfig", str(path))
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout) == version
            assert CLIENT_USER in seen

            config = yaml.safe_load(path.read_text())
            config["users"][0]["user"] = {"token": "not-a-sandbox-credential"}
            path.write_text(yaml.safe_dump(config))
            out = kubectl("get", "--raw", "/version", "--kubeconfig", str(path))
            assert out.returncode == 1
            assert out.stderr == "error: You must be logged in to the server (Unauthorized)\n"
            assert None in seen  # the request reached the HTTP layer


@contextmanager
def _api_server(creds: APICredentials, version: dict[str, str]) -> Iterator[tuple[str, list[Any]]]:
    """An aiohttp HTTPS server on 127.0.0.1 with ``server_ssl_context``: /version for a
    client-certificate user, a 401 Status otherwise (kube-apiserver's answer, from
    staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
    ``Unauthorized``)."""
    from aiohttp import web

    seen: list[Any] = []
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        transport = request.transport
        user = client_user(transport.get_extra_info("ssl_object") if transport else None)
        seen.append(user)
        if user is None:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Unauthorized",
                "reason": "Unauthorized",
                "code": 401,
            }
            return web.json_response(status, status=401)
        return web.json_response(version)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/version", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(creds))
        await site.start()
        server: Any = site._server
        box["url"] = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["url"], seen
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


def test_credentials_repr_hides_keys(creds: APICredentials) -> None:
    text = repr(replace(creds))
    assert "PRIVATE KEY" not in text
