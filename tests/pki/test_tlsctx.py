"""Real TLS 1.3 handshakes on 127.0.0.1 with mesh certificates (threads, real sockets)."""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from meshtutor.pki import (
    FastForwardClock,
    ManualClock,
    MeshCA,
    Reason,
    Verification,
    client_context,
    explain_handshake_error,
    server_context,
    verify_peer,
)
from meshtutor.pki.tlsctx import load_credential


@dataclass
class Side:
    """What one end of a handshake saw."""

    error: BaseException | None = None
    version: str | None = None
    peer: Verification | None = None
    received: bytes = b""


def handshake(
    server: ssl.SSLContext,
    client: ssl.SSLContext,
    ca: MeshCA,
    *,
    expect_server: str | None = None,
) -> tuple[Side, Side]:
    """Run one handshake and one byte of application data; report both sides."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]
    server_side, client_side = Side(), Side()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(5)
            with server.wrap_socket(conn, server_side=True) as tls:
                server_side.version = tls.version()
                server_side.peer = verify_peer(tls, ca, usage="client")
                tls.sendall(b"x")
        except (OSError, ssl.SSLError) as exc:
            server_side.error = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client.wrap_socket(raw) as tls,
        ):
            client_side.version = tls.version()
            client_side.peer = verify_peer(tls, ca, expected_identity=expect_server, usage="server")
            # TLS 1.3: the server judges the client certificate after the client has
            # finished, so a refusal arrives as an alert on the first read.
            client_side.received = tls.recv(1)
    except (OSError, ssl.SSLError) as exc:
        client_side.error = exc
    finally:
        thread.join(10)
        listener.close()
    return server_side, client_side


class TestMutualTLS:
    @pytest.mark.parametrize("mesh", ["istio", "linkerd"])
    def test_succeeds_with_mutual_authentication(self, mesh: str) -> None:
        ca = MeshCA.create(mesh)
        httpbin, sleep = ca.credential("foo", "httpbin"), ca.credential("foo", "sleep")
        server, client = handshake(
            server_context(httpbin), client_context(sleep), ca, expect_server=httpbin.identity.name
        )
        assert server.error is None and client.error is None
        assert server.version == client.version == "TLSv1.3"
        assert client.received == b"x"
        assert server.peer is not None and server.peer.ok
        assert server.peer.identity == sleep.identity.name
        assert client.peer is not None and client.peer.ok
        assert client.peer.identity == httpbin.identity.name

    def test_plugin_ca_chain(self) -> None:
        ca = MeshCA.istio(intermediate=True)
        server, client = handshake(
            server_context(ca.credential("foo", "httpbin")),
            client_context(ca.credential("foo", "sleep")),
            ca,
        )
        assert server.peer is not None and server.peer.ok, server.error
        assert client.received == b"x"

    def test_secure_naming_mismatch(self) -> None:
        ca = MeshCA.istio()
        _, client = handshake(
            server_context(ca.credential("foo", "httpbin")),
            client_context(ca.credential("foo", "sleep")),
            ca,
            expect_server="spiffe://cluster.local/ns/bar/sa/httpbin",
        )
        assert client.peer is not None
        assert client.peer.reason is Reason.IDENTITY_MISMATCH

    def test_client_without_certificate(self) -> None:
        ca = MeshCA.istio()
        server, client = handshake(
            server_context(ca.credential("foo", "httpbin")),
            client_context(None, trust=[ca.root]),
            ca,
        )
        assert isinstance(server.error, ssl.SSLError)
        assert explain_handshake_error(server.error, at=ca.clock).reason is Reason.NO_CERTIFICATE
        assert isinstance(client.error, ssl.SSLError)
        seen = explain_handshake_error(client.error, at=ca.clock)
        assert seen.reason is Reason.NO_CERTIFICATE
        assert "requires a client certificate" in seen.message

    def test_client_certificate_expired(self) -> None:
        # OpenSSL checks the real time: mint on a clock two days behind it.
        past = ManualClock(datetime.now(UTC) - timedelta(days=2))
        ca = MeshCA.istio(clock=past)
        sleep = ca.credential("foo", "sleep")
        past.advance(timedelta(days=2))
        httpbin = ca.credential("foo", "httpbin")
        server, client = handshake(server_context(httpbin), client_context(sleep), ca)
        assert isinstance(server.error, ssl.SSLCertVerificationError)
        seen = explain_handshake_error(server.error, at=ca.clock)
        assert seen.reason is Reason.EXPIRED
        assert "certificate has expired" in seen.message
        assert isinstance(client.error, ssl.SSLError)
        assert explain_handshake_error(client.error, at=ca.clock).reason is Reason.EXPIRED

    def test_client_from_another_root(self) -> None:
        ca, other = MeshCA.istio(), MeshCA.istio()
        server, client = handshake(
            server_context(ca.credential("foo", "httpbin")),
            client_context(other.credential("foo", "sleep"), trust=[ca.root]),
            ca,
        )
        assert isinstance(server.error, ssl.SSLCertVerificationError)
        assert explain_handshake_error(server.error, at=ca.clock).reason is Reason.WRONG_ROOT
        assert isinstance(client.error, ssl.SSLError)
        assert explain_handshake_error(client.error, at=ca.clock).reason is Reason.WRONG_ROOT

    def test_linkerd_proxy_without_its_issuer(self) -> None:
        ca = MeshCA.linkerd()
        issued = ca.issue(ca.identity("foo", "sleep"))
        bare = type(issued)(
            issued.identity, issued.certificate, issued.private_key, (), issued.issued_at
        )
        server, _ = handshake(
            server_context(ca.credential("foo", "httpbin")),
            client_context(bare, trust=[ca.root]),
            ca,
        )
        # OpenSSL cannot tell a missing intermediate from a foreign CA; the sentence names both.
        assert isinstance(server.error, ssl.SSLCertVerificationError)
        seen = explain_handshake_error(server.error, at=ca.clock)
        assert seen.reason is Reason.WRONG_ROOT
        assert "or a missing intermediate" in seen.message


class TestFastForwardedMesh:
    def test_expiry_is_judged_at_the_mesh_clock(self) -> None:
        clock = FastForwardClock()
        ca = MeshCA.istio(clock=clock)
        httpbin, sleep = ca.credential("foo", "httpbin"), ca.credential("foo", "sleep")
        clock.advance(timedelta(hours=25))
        # Only sleep's agent renews; httpbin still sees a valid peer, sleep's old one is gone.
        httpbin.refresh()
        server, client = handshake(
            server_context(httpbin, check_time=False),
            client_context(sleep, check_time=False),
            ca,
        )
        assert server.error is None  # OpenSSL, on the real clock, found nothing wrong
        assert server.peer is not None
        assert server.peer.reason is Reason.EXPIRED
        assert "expired 1 h ago" in server.peer.message
        assert client.peer is not None and client.peer.ok

    def test_rotated_credentials_verify_after_fast_forward(self) -> None:
        clock = FastForwardClock()
        ca = MeshCA.linkerd(clock=clock)
        httpbin, sleep = ca.credential("foo", "httpbin"), ca.credential("foo", "sleep")
        clock.advance(timedelta(days=3))
        assert httpbin.refresh() > 0 and sleep.refresh() > 0
        server, client = handshake(
            server_context(httpbin, check_time=False),
            client_context(sleep, check_time=False),
            ca,
        )
        assert server.peer is not None and server.peer.ok
        assert client.peer is not None and client.peer.ok


class TestKeysStayOffDisk:
    def test_memfd_leaves_no_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        ca = MeshCA.istio()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        load_credential(context, ca.credential("foo", "sleep"))
        assert list(tmp_path.iterdir()) == []

    def test_fallback_private_file_is_removed(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        monkeypatch.delattr(os, "memfd_create")
        modes: list[int] = []
        real = ssl.SSLContext.load_cert_chain

        def spy(self: ssl.SSLContext, certfile: str, *args: object, **kwargs: object) -> None:
            modes.append(os.stat(certfile).st_mode & 0o777)
            modes.append(os.stat(os.path.dirname(certfile)).st_mode & 0o777)
            real(self, certfile)

        monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
        ca = MeshCA.istio()
        load_credential(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), ca.credential("foo", "sleep"))
        assert modes == [0o600, 0o700]
        assert list(tmp_path.iterdir()) == []

    def test_contexts_are_tls13_only(self) -> None:
        ca = MeshCA.istio()
        context = server_context(ca.credential("foo", "sleep"))
        assert context.minimum_version is ssl.TLSVersion.TLSv1_3
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert not context.check_hostname


class TestExplainHandshakeError:
    def test_unknown_error(self) -> None:
        seen = explain_handshake_error(OSError("boom"), at=ManualClock())
        assert seen.reason is Reason.REJECTED
        assert "boom" in seen.message

    def test_reset(self) -> None:
        seen = explain_handshake_error(ConnectionResetError(), at=ManualClock())
        assert "closed the connection" in seen.message
