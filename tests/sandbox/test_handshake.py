"""TLS handshakes recorded message by message, the ClientHello sniffer and key logs.

Real TLS 1.3 over 127.0.0.1 through asyncio, as the sidecars run it; a few recorder checks use
in-memory BIOs, which go through the same OpenSSL callback without a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import ssl
import stat
import threading
import weakref
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from meshtutor.sandbox.handshake import (
    HandshakeRecorder,
    HandshakeTrace,
    Side,
    enable_keylog,
    looks_like_tls,
    parse_client_hello,
    tls_record_length,
)

SNI = "outbound_.8000_._.httpbin.foo.svc.cluster.local"
ALPN = ["istio-http/1.1", "istio"]
TIMEOUT = 5.0  # generous: each exchange takes milliseconds, this only bounds a hang

T = TypeVar("T")

MUTUAL = [
    ("client", "ClientHello"),
    ("server", "ServerHello"),
    ("server", "EncryptedExtensions"),
    ("server", "CertificateRequest"),
    ("server", "Certificate"),
    ("server", "CertificateVerify"),
    ("server", "Finished"),
    ("client", "Certificate"),
    ("client", "CertificateVerify"),
    ("client", "Finished"),
]


# --- certificates and contexts -----------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert


@cache
def pki() -> Pki:
    """One CA and two leaves for the whole module (ECDSA: ~10 ms)."""
    ca = trustme.CA()
    return Pki(ca, ca.issue_cert("httpbin.foo.svc.cluster.local"), ca.issue_cert("sleep.foo.svc"))


def leaf_der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def server_context(*, require_client_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    pki().server.configure_cert(ctx)
    pki().ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
    ctx.set_alpn_protocols(ALPN)
    return ctx


def client_context(*, with_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    pki().ca.configure_trust(ctx)
    # Sidecars check SPIFFE identities after the handshake, not hostnames (and the SNI below
    # is Istio's outbound cluster name, not a hostname in the certificate).
    ctx.check_hostname = False
    if with_cert:
        pki().client.configure_cert(ctx)
    ctx.set_alpn_protocols(ALPN)
    return ctx


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, TIMEOUT)

    return asyncio.run(bounded())


def core(trace: HandshakeTrace) -> list[tuple[Side, str]]:
    """The handshake proper: session tickets and close_notify depend on read timing."""
    return [
        (m.sender, m.name)
        for m in trace.messages
        if m.name not in ("NewSessionTicket", "Alert: close_notify")
    ]


def without_ccs(names: list[tuple[Side, str]]) -> list[tuple[Side, str]]:
    return [n for n in names if n[1] != "ChangeCipherSpec"]


# --- real handshakes over asyncio --------------------------------------------------------------


@dataclass
class Exchange:
    client: HandshakeTrace
    server: HandshakeTrace
    conn_types: set[type]


async def exchange(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> Exchange:
    """One successful connection; both traces are fetched right after the handshake."""
    recorder = HandshakeRecorder()
    conn_types: set[type] = set()

    def spy(conn: Any, *_: Any) -> None:
        conn_types.add(type(conn))

    # A callback that was there first must keep working once the recorder is attached.
    server_ctx._msg_callback = spy  # type: ignore[attr-defined]
    recorder.attach(server_ctx, side="server")
    recorder.attach(client_ctx, side="client")

    loop = asyncio.get_running_loop()
    server_trace: asyncio.Future[HandshakeTrace] = loop.create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_trace.set_result(recorder.finish(writer.get_extra_info("ssl_object")))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=SNI
        )
        ssl_object = writer.get_extra_info("ssl_object")
        assert await reader.read() == b"ok"
        client_trace = recorder.finish(ssl_object)
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        return Exchange(client_trace, await server_trace, conn_types)


@pytest.fixture(scope="module")
def mutual() -> Exchange:
    return run(exchange(server_context(), client_context()))


def test_mutual_handshake_client_side_lists_every_message_in_wire_order(
    mutual: Exchange,
) -> None:
    trace = mutual.client
    assert trace.side == "client"
    assert without_ccs(core(trace)) == MUTUAL
    assert trace.mutual and trace.completed and trace.error is None
    assert trace.version == "TLSv1.3"
    assert trace.cipher is not None and trace.cipher.startswith("TLS_AES_")
    assert trace.sni == SNI
    assert trace.alpn == "istio-http/1.1"
    # trustme's chain is the leaf alone; OpenSSL completes it from the context's trust store
    # (no SSL_MODE_NO_AUTO_CHAIN), so each side also sends the CA, as Istio's chains do.
    ca_der = ssl.PEM_cert_to_DER_cert(pki().ca.cert_pem.bytes().decode())
    assert trace.server_certificates == (leaf_der(pki().server), ca_der)
    assert trace.client_certificates == (leaf_der(pki().client), ca_der)

    by_name = {(m.sender, m.name): m for m in trace.messages}
    assert by_name["client", "ClientHello"].detail == (
        f"TLS 1.3, SNI {SNI}, ALPN istio-http/1.1, istio"
    )
    assert by_name["server", "CertificateRequest"].detail == "server asks for a client certificate"
    assert by_name["server", "Certificate"].detail == "2 certificates"
    assert by_name["client", "Certificate"].detail == "2 certificates"
    assert by_name["server", "EncryptedExtensions"].detail == "ALPN istio-http/1.1"
    assert "TLS 1.3" in by_name["server", "ServerHello"].detail
    assert "ecdsa_secp256r1_sha256" in by_name["client", "CertificateVerify"].detail
    mtls = {(m.sender, m.name) for m in trace.messages if m.mtls_specific}
    assert mtls == {
        ("server", "CertificateRequest"),
        ("client", "Certificate"),
        ("client", "CertificateVerify"),
    }
    assert trace.client_hello is not None and trace.client_hello.istio_alpn


def test_mutual_handshake_server_side_shows_the_same_messages_and_senders(
    mutual: Exchange,
) -> None:
    server, client = mutual.server, mutual.client
    assert server.side == "server"
    # ChangeCipherSpec included: the receiver only sees its record header, and the recorder
    # uses headers precisely so that both ends agree.
    assert core(server) == core(client)
    assert ("server", "ChangeCipherSpec") in core(server)
    assert server.mutual and server.completed
    assert (server.version, server.cipher, server.sni, server.alpn) == (
        client.version,
        client.cipher,
        client.sni,
        client.alpn,
    )
    assert server.client_certificates == client.client_certificates
    assert server.server_certificates == client.server_certificates


def test_python_passes_the_sslobject_to_the_callback_under_asyncio(mutual: Exchange) -> None:
    # Also proves the callback installed before attach() was chained, not replaced.
    assert mutual.conn_types == {ssl.SSLObject}


def test_summary_lines_and_json(mutual: Exchange) -> None:
    lines = mutual.client.summary_lines()
    assert lines[0].startswith("client → server  ClientHello ")
    assert lines[0].endswith(f"TLS 1.3, SNI {SNI}, ALPN istio-http/1.1, istio")
    assert any(
        line.startswith("client ← server  CertificateRequest ") and line.endswith("[mTLS]")
        for line in lines
    )
    assert lines[-1] == (
        f"result: TLSv1.3, {mutual.client.cipher}, ALPN istio-http/1.1, mutual TLS"
    )

    data = json.loads(json.dumps(mutual.client.to_dict()))
    assert data["mutual"] is True and data["completed"] is True
    assert data["messages"][0]["name"] == "ClientHello"
    assert data["server_certificates"][0]["pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(data["client_certificates"][0]["sha256"]) == 64
    assert data["client_hello"]["alpn"] == ALPN


def test_one_way_tls_has_no_certificate_request_and_no_client_certificate() -> None:
    result = run(exchange(server_context(require_client_cert=False), client_context()))
    for trace in (result.client, result.server):
        names = without_ccs(core(trace))
        assert ("server", "CertificateRequest") not in names
        assert ("client", "Certificate") not in names
        assert ("client", "CertificateVerify") not in names
        assert names[-1] == ("client", "Finished")
        assert not trace.mutual and trace.completed
        assert trace.client_certificates == ()
        assert not any(m.mtls_specific for m in trace.messages)
    assert result.client.summary_lines()[-1].endswith("server-only TLS (no client certificate)")


def test_client_without_certificate_against_strict_server() -> None:
    async def scenario() -> tuple[HandshakeTrace, list[HandshakeTrace], bytes, bool]:
        errors: list[HandshakeTrace] = []
        recorder = HandshakeRecorder(on_error=errors.append)
        server_ctx, client_ctx = server_context(), client_context(with_cert=False)
        recorder.attach(server_ctx, side="server")
        recorder.attach(client_ctx, side="client")
        handled = False

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal handled
            handled = True
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        async with server:
            port = server.sockets[0].getsockname()[1]
            # With TLS 1.3 the client's handshake completes (it sends an empty Certificate
            # and its Finished in one flight) before the server checks and rejects it, so
            # the failure only shows on the client's first read: curl reports exit 56
            # (receive failure), not 35 (handshake failure) as it would with TLS 1.2.
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname=SNI
            )
            client_obj = writer.get_extra_info("ssl_object")
            try:
                data = await reader.read(100)
            except (ssl.SSLError, ConnectionError):
                data = b"<error>"
            client_trace = recorder.finish(client_obj)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
        return client_trace, errors, data, handled

    client, errors, data, handled = run(scenario())

    # asyncio (3.11) closes the server transport without flushing the alert OpenSSL wrote, so
    # an asyncio client gets a bare EOF; a blocking client gets the alert (next test).
    assert data in (b"", b"<error>")
    assert not handled
    assert client.completed  # from the client's point of view the handshake succeeded
    assert not client.mutual
    empty = [m for m in client.messages if m.sender == "client" and m.name == "Certificate"]
    assert len(empty) == 1
    assert empty[0].detail == "no certificate (empty)" and empty[0].mtls_specific

    # asyncio never exposes the server's SSLObject here: on_error (and traces()) still has it.
    assert len(errors) == 1
    server = errors[0]
    assert server.side == "server"
    assert without_ccs(core(server)) == [
        *MUTUAL[:7],
        ("client", "Certificate"),
        ("server", "Alert: certificate_required"),
    ]
    assert server.error == "server sent alert certificate_required"
    assert server.messages[-1].detail == "fatal: a client certificate is required"
    assert server.summary_lines()[-1] == "result: failed: server sent alert certificate_required"


def test_blocking_client_receives_the_certificate_required_alert() -> None:
    recorder = HandshakeRecorder()
    server_ctx, client_ctx = server_context(), client_context(with_cert=False)
    recorder.attach(server_ctx, side="server")
    recorder.attach(client_ctx, side="client")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(ssl.SSLError, OSError):
            server_ctx.wrap_socket(conn, server_side=True)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as raw:
            tls = client_ctx.wrap_socket(raw, server_hostname=SNI)
            with pytest.raises(ssl.SSLError) as failure:
                tls.recv(100)
            assert failure.value.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
            trace = recorder.pop(tls)  # with blocking sockets conn is the SSLSocket
    finally:
        thread.join(TIMEOUT)
        listener.close()
    assert trace.messages[-1].sender == "server"
    assert trace.messages[-1].name == "Alert: certificate_required"
    assert trace.error == "server sent alert certificate_required"
    with pytest.raises(KeyError):
        recorder.trace_for(tls)


# --- ClientHello sniffing ----------------------------------------------------------------------


async def capture_client_hello(client_ctx: ssl.SSLContext) -> bytes:
    """The first TLS record a real ssl client sends to a plain TCP server."""
    loop = asyncio.get_running_loop()
    first: asyncio.Future[bytes] = loop.create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(5)
        length = tls_record_length(header)
        assert length is not None
        first.set_result(header + await reader.readexactly(length - 5))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname=SNI)
        return await first


@cache
def real_client_hello() -> bytes:
    return run(capture_client_hello(client_context()))


def test_parse_client_hello_captured_from_a_socket() -> None:
    record = real_client_hello()
    assert looks_like_tls(record[:3])
    assert tls_record_length(record[:5]) == len(record)
    hello = parse_client_hello(record)
    assert hello is not None
    assert hello.sni == SNI
    assert hello.alpn == ("istio-http/1.1", "istio")
    assert hello.istio_alpn
    assert hello.legacy_version == "TLSv1.2"  # TLS 1.3 hides behind supported_versions
    assert hello.supported_versions == ("TLSv1.3",)  # minimum_version is TLS 1.3
    assert hello.max_version == "TLSv1.3"
    assert "TLS_AES_256_GCM_SHA384" in hello.cipher_suites
    assert "x25519" in hello.key_share_groups and hello.offers_key_share
    assert "secp256r1" in hello.supported_groups
    assert hello.summary() == f"TLS 1.3, SNI {SNI}, ALPN istio-http/1.1, istio"


def test_incomplete_or_foreign_bytes_give_none() -> None:
    record = real_client_hello()
    assert all(parse_client_hello(record[:n]) is None for n in range(len(record)))
    assert parse_client_hello(record + b"trailing bytes are ignored") == (
        parse_client_hello(record)
    )
    http = b"GET /ip HTTP/1.1\r\nHost: httpbin\r\n\r\n"
    assert not looks_like_tls(http) and parse_client_hello(http) is None
    assert tls_record_length(http) is None
    assert not looks_like_tls(b"\x16\x03")  # too short to tell
    # a TLS record that carries a ServerHello, not a ClientHello
    assert parse_client_hello(record[:5] + b"\x02" + record[6:]) is None


def test_client_hello_fragmented_over_two_records() -> None:
    record = real_client_hello()
    body = record[5:]
    split = len(body) // 3

    def wrap(fragment: bytes) -> bytes:
        return record[:3] + len(fragment).to_bytes(2, "big") + fragment

    fragmented = wrap(body[:split]) + wrap(body[split:])
    assert parse_client_hello(fragmented) == parse_client_hello(record)
    assert parse_client_hello(wrap(body[:split])) is None  # only the first record


@given(st.binary(max_size=600))
def test_parse_client_hello_never_raises_on_random_bytes(data: bytes) -> None:
    parse_client_hello(data)
    looks_like_tls(data)
    tls_record_length(data)


@given(st.binary(max_size=600))
def test_parse_client_hello_never_raises_on_a_random_client_hello_body(body: bytes) -> None:
    # Past the record header and message type, so the fuzzing reaches the field parser.
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    parse_client_hello(b"\x16\x03\x01" + len(message).to_bytes(2, "big") + message)


@given(st.data())
def test_parse_client_hello_never_raises_on_a_mutated_real_hello(data: st.DataObject) -> None:
    record = bytearray(real_client_hello())
    for _ in range(data.draw(st.integers(1, 8))):
        record[data.draw(st.integers(5, len(record) - 1))] = data.draw(st.integers(0, 255))
    parse_client_hello(bytes(record))


# --- recorder bookkeeping (in-memory TLS, no sockets) ------------------------------------------


def memory_handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Drive a full handshake between two SSLObjects by shuttling bytes between BIOs."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=SNI)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, obj in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client, server
    raise AssertionError("handshake did not finish")


def client_hello_only(ctx: ssl.SSLContext) -> ssl.SSLObject:
    """An SSLObject that has written its ClientHello and waits for an answer."""
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=SNI)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return obj


def test_memory_bio_handshake_and_tls12_layouts() -> None:
    recorder = HandshakeRecorder()
    server_ctx, client_ctx = server_context(), client_context()
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    recorder.attach(server_ctx, side="server")
    recorder.attach(client_ctx, side="client")
    client, server = memory_handshake(server_ctx, client_ctx)
    trace = recorder.trace_for(client)
    assert trace.version == "TLSv1.2"
    assert trace.cipher == "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"  # IANA, not OpenSSL's name
    assert trace.mutual and trace.completed
    assert trace.server_certificates[0] == leaf_der(pki().server)
    assert ("server", "ServerHelloDone") in trace.names()
    assert ("client", "ClientKeyExchange") in trace.names()
    assert core(recorder.trace_for(server)) == core(trace)


def test_messages_after_pop_are_not_recorded() -> None:
    recorder = HandshakeRecorder()
    server_ctx, client_ctx = server_context(), client_context()
    recorder.attach(server_ctx, side="server")
    recorder.attach(client_ctx, side="client")
    client, server = memory_handshake(server_ctx, client_ctx)
    trace = recorder.pop(client)
    assert ("server", "NewSessionTicket") not in trace.names()
    with pytest.raises(ssl.SSLWantReadError):
        client.read()  # processes the session tickets the server sent after its handshake
    with pytest.raises(KeyError):
        recorder.trace_for(client)
    assert [t.side for t in recorder.traces()] == ["server"]
    assert ("server", "NewSessionTicket") in recorder.trace_for(server).names()


def test_capacity_bounds_memory_and_evicts_oldest_first() -> None:
    recorder = HandshakeRecorder(capacity=3)
    ctx = client_context()
    recorder.attach(ctx, side="client")
    objs = [client_hello_only(ctx) for _ in range(5)]
    assert len(recorder) == 3
    for evicted in objs[:2]:
        with pytest.raises(KeyError):
            recorder.trace_for(evicted)
    assert recorder.trace_for(objs[-1]).names() == [("client", "ClientHello")]
    assert len(recorder.traces(side="client")) == 3 and recorder.traces(side="server") == []


def test_traces_outlive_their_ssl_object_without_keeping_it_alive() -> None:
    recorder = HandshakeRecorder()
    ctx = client_context()
    recorder.attach(ctx, side="client")
    obj = client_hello_only(ctx)
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert ref() is None  # the recorder holds no strong reference
    assert [t.names() for t in recorder.traces()] == [[("client", "ClientHello")]]
    assert recorder._by_id == {}  # the id may be reused: its mapping is gone
    recorder.clear()
    assert len(recorder) == 0


def test_pop_forgets_and_attach_detach_chain_callbacks() -> None:
    recorder = HandshakeRecorder()
    ctx = client_context()
    seen: list[str] = []

    def previous(conn: Any, direction: str, *_: Any) -> None:
        seen.append(direction)

    ctx._msg_callback = previous  # type: ignore[attr-defined]
    recorder.attach(ctx, side="client")
    recorder.attach(ctx, side="client")  # idempotent: no double recording
    obj = client_hello_only(ctx)
    assert seen  # the earlier callback still runs
    assert recorder.pop(obj).names() == [("client", "ClientHello")]
    with pytest.raises(KeyError):
        recorder.pop(obj)

    recorder.detach(ctx)
    assert ctx._msg_callback is previous  # type: ignore[attr-defined]
    client_hello_only(ctx)
    assert len(recorder) == 0


def test_recorder_bugs_never_break_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = HandshakeRecorder()

    def broken(*args: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(recorder, "_record", broken)
    server_ctx, client_ctx = server_context(), client_context()
    recorder.attach(server_ctx, side="server")
    recorder.attach(client_ctx, side="client")
    client, _ = memory_handshake(server_ctx, client_ctx)
    assert client.version() == "TLSv1.3"


# --- key log -----------------------------------------------------------------------------------


def test_enable_keylog_writes_nss_lines_to_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.log"
    client_ctx = client_context()
    enable_keylog(client_ctx, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    memory_handshake(server_context(), client_ctx)
    labels = {line.split()[0] for line in path.read_text().splitlines() if line[:1] != "#"}
    assert {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    } <= labels
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_enable_keylog_appends_to_an_existing_file_and_fixes_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "keys.log"
    path.write_text("# earlier session\n")
    path.chmod(0o644)
    ctx = client_context()
    enable_keylog(ctx, str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    memory_handshake(server_context(), ctx)
    text = path.read_text()
    assert text.startswith("# earlier session\n") and "CLIENT_TRAFFIC_SECRET_0" in text


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="POSIX only")
def test_enable_keylog_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    target.chmod(0o644)
    link = tmp_path / "keys.log"
    link.symlink_to(target)
    with pytest.raises(OSError):
        enable_keylog(client_context(), link)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
