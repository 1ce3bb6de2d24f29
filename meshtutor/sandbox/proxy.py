"""The sidecars: Istio's Envoy and Linkerd's proxy, as small asyncio proxies speaking real TLS.

Each decision a proxy makes comes from the policy engine (``meshtutor.policy``) applied to what
the proxy actually sees on the wire: whether the first bytes are a TLS ClientHello, which ALPN
it offers, whether the handshake succeeded, and the identity in the peer's certificate. So a
probe's observed result and the engine's prediction agree only if both are right.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import time
from typing import TYPE_CHECKING, Any

from meshtutor.policy import authz as istio_authz
from meshtutor.policy import linkerd as linkerd_policy
from meshtutor.policy import netpol
from meshtutor.policy.cluster import PodState
from meshtutor.policy.mtls import CLUSTER_DOMAIN, client_tls_decision, effective_peer_authentication
from meshtutor.policy.predict import (
    ENVOY_503,
    ENVOY_CONNECT_TIMEOUT,
    LINKERD_CONNECT_TIMEOUT,
    LINKERD_FAILFAST_TIMEOUT,
    RBAC_DENIED,
    identity_of,
    is_http_port,
    linkerd_loopback,
    resolve_service,
    service_endpoints,
)
from meshtutor.sandbox.handshake import looks_like_tls, parse_client_hello
from meshtutor.sandbox.http import (
    HTTPParseError,
    Request,
    make_response,
    read_request,
    read_response,
)
from meshtutor.sandbox.netio import close_quietly, prepend, read_initial, reset, splice
from meshtutor.sandbox.tlsstream import TLSStream

if TYPE_CHECKING:
    from meshtutor.model.k8s import Service, ServicePort
    from meshtutor.sandbox.mesh import PodRuntime, Sandbox

PROBE_HEADER = "x-meshtutor-probe"
ISTIO_ALPN = ("istio-http/1.1", "istio")
LINKERD_ALPN = ("transport.l5d.io/v1",)
LINKERD_TARGET = b"L5D-TARGET "
UPSTREAM_TIMEOUT = 30.0


def _spiffe_from_der(der: bytes | None) -> str | None:
    if not der:
        return None
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if uris:
        return str(uris[0])
    names = san.get_values_for_type(x509.DNSName)
    return str(names[0]) if names else None


def _envoy_reply(status: int, body: str, keep: bool = False) -> bytes:
    return make_response(status, body, headers=[("server", "envoy")], keep_alive=keep)


def _probe_header_for(pod: PodState) -> str:
    """The probe id header is meshtutor's, so apps never see it; an ingress proxy passes it on,
    so the hops behind it are filed under the same probe."""
    from meshtutor.policy.edge import role_of

    return "" if role_of(pod) else PROBE_HEADER


def port_is_http(sb: Sandbox, pod: PodState, port: int) -> bool:
    """How the mesh classifies a container port: TCP only when a Service port that targets it
    is declared TCP (name ``tcp-*`` or appProtocol), as Istio's protocol selection does."""
    for service in sb.cluster.services(pod.namespace):
        if not service.selector or not all(
            pod.labels.get(k) == v for k, v in service.selector.items()
        ):
            continue
        for svc_port in service.ports:
            for _, target in service_endpoints(sb.cluster, service, svc_port):
                if target == port and not is_http_port(svc_port):
                    return False
    return True


# --- inbound ----------------------------------------------------------------------------------


async def _terminate_mtls(
    sb: Sandbox,
    runtime: PodRuntime,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    first: bytes,
) -> TLSStream | None:
    """Terminate mutual TLS with the pod's certificate, requiring a client certificate from
    the mesh CA that is still valid at the mesh clock. None (connection closed) on failure."""
    try:
        context = runtime.server_context()
    except ssl.SSLError:
        await close_quietly(writer)  # no certificate to present: the handshake cannot start
        return None
    tls = TLSStream(reader, writer, context, server_side=True, initial=first)
    try:
        await asyncio.wait_for(tls.handshake(), UPSTREAM_TIMEOUT)
    except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
        sb.note_failed_handshake(runtime.state, tls.ssl_object, exc)
        await close_quietly(writer)
        return None
    verdict = sb.verify_peer(tls.ssl_object, expected=None)
    if verdict is not None:
        sb.note_failed_handshake(runtime.state, tls.ssl_object, verdict)
        await tls.close()
        return None
    return tls


async def inbound(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    source: PodState | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Traffic arriving at a pod on container port ``port`` (after NetworkPolicy)."""
    pod = runtime.state
    if pod.sidecar == "istio":
        await _istio_inbound(sb, runtime, port, source, reader, writer)
    elif pod.sidecar == "linkerd":
        await _linkerd_inbound(sb, runtime, port, source, reader, writer)
    else:
        await _to_app_raw(sb, runtime, port, source, b"", reader, writer)


async def _to_app_raw(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    source: PodState | None,
    first: bytes,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    hop: dict[str, object] | None = None,
) -> None:
    """Pass bytes through to the app untouched (no sidecar, or a port the sidecar does not
    terminate). ``hop``: what this proxy knows of the hop (mutual TLS, identities), for an
    app that reads the probe id from the bytes (an ingress controller terminating curl's TLS)."""
    app = runtime.apps.get(port)
    if app is None:
        reset(writer)
        return
    from meshtutor.sandbox.edge import bind_address

    local = bind_address(source) if sb.aliases else None
    try:
        up_reader, up_writer = await asyncio.open_connection(
            app.host, app.port, local_addr=(local, 0) if local else None
        )
    except OSError:
        reset(writer)
        return
    key = up_writer.get_extra_info("sockname")
    if hop is not None and key:
        sb.opaque_hops[tuple(key[:2])] = hop
    if first:
        up_writer.write(first)
    try:
        await splice(reader, writer, up_reader, up_writer)
    finally:
        if hop is not None and key:
            sb.opaque_hops.pop(tuple(key[:2]), None)
        # Also when the sandbox stops mid-splice: a TLS writer's close stops its pump task.
        up_writer.close()
        writer.close()
    await close_quietly(up_writer)
    await close_quietly(writer)


async def _linkerd_opaque(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    source: PodState | None,
    first: bytes,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    peer_identity: str | None,
) -> bool:
    """Bytes Linkerd's proxy cannot read as HTTP (curl's own TLS): authorized once, at the
    connection ("denied at the TCP level, i.e. by refusing the connection": linkerd.io
    features/server-policy), then passed to the app as they are. False when denied (the
    caller closes)."""
    pod = runtime.state
    decision = linkerd_policy.evaluate(
        sb.cluster,
        pod,
        linkerd_policy.LinkerdRequest(
            client_identity=peer_identity,
            client_ip=source.ip if source else "127.0.0.1",
            port=port,
            http=False,
        ),
    )
    if not decision.allowed:
        return False
    hop: dict[str, object] = {
        "mtls": peer_identity is not None,
        "client_identity": peer_identity,
        "server_identity": identity_of(sb.cluster, pod) if peer_identity else None,
        "destination": pod.display,
    }
    await _to_app_raw(sb, runtime, port, source, first, reader, writer, hop)
    return True


async def _istio_inbound(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    source: PodState | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    pod = runtime.state
    first = await read_initial(reader)
    if not first:
        await close_quietly(writer)
        return
    mode = effective_peer_authentication(sb.cluster, pod, port).mode
    if looks_like_tls(first):
        hello = parse_client_hello(first)
        istio = bool(hello and hello.istio_alpn)
        if mode == "DISABLE" or (mode == "PERMISSIVE" and not istio):
            # Not Istio mTLS: Envoy's passthrough chain hands the bytes to the app as they are.
            await _to_app_raw(sb, runtime, port, source, first, reader, writer)
            return
        tls = await _terminate_mtls(sb, runtime, reader, writer, first)
        if tls is None:
            return
        peer = _spiffe_from_der(tls.peer_certificate_der())
        tls_reader, tls_writer = tls.stream_pair()
        await _istio_http(sb, runtime, port, source, tls_reader, tls_writer, peer, tls)  # type: ignore[arg-type]
        return
    if mode == "STRICT":
        reset(writer)
        return
    await _istio_http(sb, runtime, port, source, prepend(first, reader), writer, None, None)


async def _istio_http(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    source: PodState | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    peer_identity: str | None,
    tls: TLSStream | None,
) -> None:
    pod = runtime.state
    http = port_is_http(sb, pod, port)
    try:
        request = await read_request(reader)
    except (HTTPParseError, ConnectionError, OSError, ssl.SSLError):
        await close_quietly(writer)
        return
    if request is None:
        await close_quietly(writer)
        return
    probe_id = request.header(PROBE_HEADER)
    server_identity = identity_of(sb.cluster, pod) if tls else None
    sb.record(
        probe_id,
        mtls=tls is not None,
        client_identity=peer_identity,
        server_identity=server_identity,
        destination=pod.display,
    )
    principal = peer_identity.removeprefix("spiffe://") if peer_identity else None
    headers = {k.lower(): v for k, v in request.headers}
    attrs = istio_authz.RequestAttributes(
        principal=principal,
        source_ip=source.ip if source else "127.0.0.1",
        destination_ip=pod.ip,
        port=port,
        http=http,
        method=request.method,
        path=request.path,
        host=headers.get("host", ""),
        headers=headers,
        sni=tls.ssl_object.server_hostname or "" if tls else "",
    )
    decision = istio_authz.evaluate(sb.cluster, pod, attrs)
    if not decision.allowed:
        if http:
            writer.write(_envoy_reply(403, RBAC_DENIED))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
        await close_quietly(writer)
        return
    add = [("x-forwarded-proto", "http")]
    if source is not None:
        add.append(("x-forwarded-for", source.ip))
    if peer_identity and tls is not None:
        der = tls.peer_certificate_der() or b""
        add.append(
            (
                "x-forwarded-client-cert",
                f'By={server_identity};Hash={hashlib.sha256(der).hexdigest()};Subject="";'
                f"URI={peer_identity}",
            )
        )
    upstream = request.with_headers(add, remove={_probe_header_for(pod), "x-forwarded-client-cert"})
    await _forward_to_app(
        sb,
        runtime,
        port,
        upstream,
        writer,
        http,
        error_status=503,
        error_body=ENVOY_503 + "connection failure",
    )


async def _forward_to_app(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    request: Request,
    writer: asyncio.StreamWriter,
    http: bool,
    *,
    error_status: int,
    error_body: str,
) -> None:
    app = runtime.apps.get(port)
    try:
        if app is None:
            raise ConnectionRefusedError
        up_reader, up_writer = await asyncio.open_connection(app.host, app.port)
    except OSError:
        if http:
            writer.write(_envoy_reply(error_status, error_body))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
        await close_quietly(writer)
        return
    try:
        up_writer.write(request.with_headers(remove={"connection"}).to_bytes())
        await up_writer.drain()
        response = await asyncio.wait_for(
            read_response(up_reader, head_only_for=request.method), UPSTREAM_TIMEOUT
        )
        response.headers = [(k, v) for k, v in response.headers if k.lower() != "connection"]
        response.headers.append(("connection", "close"))
        writer.write(response.to_bytes(head_only=request.method == "HEAD"))
        await writer.drain()
    except (HTTPParseError, ConnectionError, OSError, TimeoutError):
        if http:
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(_envoy_reply(error_status, error_body))
                await writer.drain()
    finally:
        await close_quietly(up_writer)
        await close_quietly(writer)


async def _linkerd_inbound(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    source: PodState | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Linkerd's proxy on an application port: plaintext from unmeshed clients (meshed ones
    come to the inbound port 4143, see ``linkerd_inbound_port``); other TLS passes through."""
    first = await read_initial(reader)
    if not first:
        await close_quietly(writer)
        return
    if looks_like_tls(first):
        if not await _linkerd_opaque(sb, runtime, port, source, first, reader, writer, None):
            reset(writer)
        return
    await _linkerd_http(sb, runtime, port, source, prepend(first, reader), writer, None)


async def linkerd_inbound_port(
    sb: Sandbox,
    runtime: PodRuntime,
    source: PodState | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Linkerd's inbound port 4143: mutual TLS from a meshed proxy, then a transport header
    naming the target port."""
    first = await read_initial(reader)
    if not looks_like_tls(first):
        await close_quietly(writer)
        return
    tls = await _terminate_mtls(sb, runtime, reader, writer, first)
    if tls is None:
        return
    peer = _spiffe_from_der(tls.peer_certificate_der())
    tls_reader, tls_writer = tls.stream_pair()
    # The TLS stream's reader and writer stand in for asyncio's (same methods); closing the
    # writer also stops the reader's pump task.
    inner_reader: Any = tls_reader
    inner_writer: Any = tls_writer
    try:
        line = await tls_reader.readline()
    except (ConnectionError, OSError, ssl.SSLError):
        await close_quietly(inner_writer)
        return
    if not line.startswith(LINKERD_TARGET):
        await close_quietly(inner_writer)
        return
    port = int(line[len(LINKERD_TARGET) :].strip() or 0)
    first = await read_initial(inner_reader)
    if looks_like_tls(first):
        if not await _linkerd_opaque(
            sb, runtime, port, source, first, inner_reader, inner_writer, peer
        ):
            await close_quietly(inner_writer)
        return
    await _linkerd_http(sb, runtime, port, source, prepend(first, inner_reader), inner_writer, peer)


async def _linkerd_http(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    source: PodState | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    peer_identity: str | None,
) -> None:
    pod = runtime.state
    try:
        request = await read_request(reader)
    except (HTTPParseError, ConnectionError, OSError, ssl.SSLError):
        await close_quietly(writer)
        return
    if request is None:
        await close_quietly(writer)
        return
    probe_id = request.header(PROBE_HEADER)
    sb.record(
        probe_id,
        mtls=peer_identity is not None,
        client_identity=peer_identity,
        server_identity=identity_of(sb.cluster, pod) if peer_identity else None,
        destination=pod.display,
    )
    decision = linkerd_policy.evaluate(
        sb.cluster,
        pod,
        linkerd_policy.LinkerdRequest(
            client_identity=peer_identity,
            client_ip=source.ip if source else "127.0.0.1",
            port=port,
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
        ),
    )
    if not decision.allowed:
        writer.write(make_response(decision.status, b"", keep_alive=False))
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        await close_quietly(writer)
        return
    add = [("l5d-client-id", peer_identity)] if peer_identity else []
    upstream = request.with_headers(add, remove={_probe_header_for(pod), "l5d-client-id"})
    await _forward_to_app(
        sb, runtime, port, upstream, writer, True, error_status=502, error_body=""
    )


# --- outbound ---------------------------------------------------------------------------------


async def outbound(
    sb: Sandbox, runtime: PodRuntime, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """The client sidecar. Captured app containers reach it as an HTTP proxy (``curl
    --proxy``), which stands in for iptables' transparent capture."""
    try:
        request = await read_request(reader)
    except (HTTPParseError, ConnectionError, OSError):
        await close_quietly(writer)
        return
    if request is None:
        await close_quietly(writer)
        return
    try:
        await _outbound_request(sb, runtime, request, reader, writer)
    finally:
        await close_quietly(writer)


async def _wait_then(
    writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    seconds: float,
    status: int,
    body: str,
) -> None:
    """Hang like an unanswered connect, then answer as the proxy does when it gives up."""
    with contextlib.suppress(TimeoutError, ConnectionError, OSError):
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
            return  # the client gave up first
    with contextlib.suppress(ConnectionError, OSError):
        writer.write(
            make_response(
                status, body, headers=[("server", "envoy")] if body else [], keep_alive=False
            )
        )
        await writer.drain()


async def _outbound_request(
    sb: Sandbox,
    runtime: PodRuntime,
    request: Request,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    source = runtime.state
    linkerd = source.sidecar == "linkerd"
    probe_id = request.header(PROBE_HEADER)
    direct = sb.cluster.pod_by_ip(request.host)
    service: Service | None
    svc_port: ServicePort | None
    if direct is not None:
        # A pod address (an ingress controller picking endpoints itself): no Service.
        service, svc_port, target, port, http = None, None, direct, request.port, True
    else:
        service, _ = resolve_service(sb.cluster, request.host, source.namespace)
        svc_port = service.port(request.port) if service else None
        if service is None or svc_port is None:
            # Envoy's passthrough: the original destination does not answer.
            await _wait_then(
                writer, reader, ENVOY_CONNECT_TIMEOUT, 503, ENVOY_503 + "connection timeout"
            )
            return
        endpoints = service_endpoints(sb.cluster, service, svc_port)
        if not endpoints:
            writer.write(
                make_response(503, "" if linkerd else "no healthy upstream", keep_alive=False)
            )
            await writer.drain()
            return
        target, port = endpoints[0]
        http = is_http_port(svc_port) or linkerd  # Linkerd detects HTTP whatever the name
    loopback = linkerd_loopback(source, True, target)
    meshed_target = target.sidecar == "linkerd" and linkerd and not loopback
    wire_port = 4143 if meshed_target else port
    for check in (
        netpol.egress_allowed(sb.cluster, source, target, wire_port),
        netpol.ingress_allowed(sb.cluster, source, target, wire_port),
    ):
        if not check.allowed:
            if linkerd:
                limit = LINKERD_FAILFAST_TIMEOUT if meshed_target else LINKERD_CONNECT_TIMEOUT
                await _wait_then(writer, reader, limit, 504, "")
            else:
                await _wait_then(
                    writer, reader, ENVOY_CONNECT_TIMEOUT, 503, ENVOY_503 + "connection timeout"
                )
            return
    if linkerd:
        sends = "mtls" if meshed_target else "plaintext"
    elif service is None or svc_port is None:
        sends = "plaintext"  # Envoy's PassthroughCluster
    else:
        sends = client_tls_decision(sb.cluster, source, service, svc_port, target, port).sends
    target_runtime = sb.runtime(target)
    try:
        if loopback:
            app = target_runtime.apps.get(port)
            if app is None:
                raise ConnectionRefusedError(port)
            host, entry_port = app.host, app.port  # straight to the app, inbound skipped
        elif meshed_target:
            host, entry_port = await sb.linkerd_entry(target_runtime)
        else:
            host, entry_port = await sb.entry(target_runtime, port)
        up_reader, up_writer = await asyncio.open_connection(
            host, entry_port, local_addr=(source.ip, 0)
        )
    except OSError:
        await _fail(
            writer, http, linkerd, ENVOY_503 + "connection failure", connect=request.is_connect
        )
        return

    fqdn = f"{service.name}.{service.namespace}.svc.{CLUSTER_DOMAIN}" if service else ""
    tls: TLSStream | None = None
    if sends != "plaintext":
        if sends == "mtls":
            try:
                context = runtime.client_context(linkerd=linkerd)
            except ssl.SSLError as exc:
                await close_quietly(up_writer)
                await _fail(
                    writer,
                    http,
                    linkerd,
                    ENVOY_503 + f"connection failure, transport failure reason: TLS error: {exc}",
                    linkerd_status=502,
                    connect=request.is_connect,
                )
                return
        else:
            context = sb.foreign_client_context(with_certificate=sends == "mutual-own")
        sni = (
            identity_of(sb.cluster, target)
            if linkerd
            else f"outbound_.{svc_port.port if svc_port else port}_._.{fqdn}"
        )
        tls = TLSStream(up_reader, up_writer, context, server_side=False, server_hostname=sni)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(tls.handshake(), UPSTREAM_TIMEOUT)
            if sends == "mtls":
                expected = identity_of(sb.cluster, target)
                verdict = sb.verify_peer(tls.ssl_object, expected=expected)
                if verdict is not None:
                    raise ssl.SSLError(verdict)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            sb.record_handshake(probe_id, tls.ssl_object, error=exc)
            await close_quietly(up_writer)
            reason = "connection failure, transport failure reason: TLS error: " + (
                getattr(exc, "reason", None) or type(exc).__name__
            )
            await _fail(
                writer,
                http,
                linkerd,
                ENVOY_503 + reason,
                linkerd_status=502,
                connect=request.is_connect,
            )
            return
        sb.record_handshake(
            probe_id, tls.ssl_object, duration_ms=(time.perf_counter() - started) * 1000
        )
        up_r, up_w = tls.stream_pair()
        if meshed_target:
            up_w.write(LINKERD_TARGET + str(port).encode() + b"\r\n")
    else:
        up_r, up_w = up_reader, up_writer  # type: ignore[assignment]

    if request.is_connect:
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await splice(reader, writer, up_r, up_w)  # type: ignore[arg-type]
        finally:
            up_w.close()  # also when the sandbox stops mid-tunnel: ends a TLS pump task
        await close_quietly(up_w)  # type: ignore[arg-type]
        return
    upstream = request.with_headers(remove={"proxy-connection", "connection"})
    try:
        up_w.write(upstream.to_bytes(origin_form=True))
        await up_w.drain()
        response = await asyncio.wait_for(
            read_response(up_r, head_only_for=request.method), UPSTREAM_TIMEOUT
        )
    except (HTTPParseError, ConnectionError, OSError, ssl.SSLError, TimeoutError):
        await close_quietly(up_w)  # type: ignore[arg-type]
        await _fail(writer, http, linkerd, ENVOY_503 + "connection termination")
        return
    await close_quietly(up_w)  # type: ignore[arg-type]
    # Linkerd's outbound proxy strips its informational headers before the app sees them.
    drop = {"connection", "l5d-proxy-error", "l5d-proxy-connection"}
    response.headers = [(k, v) for k, v in response.headers if k.lower() not in drop]
    response.headers.append(("connection", "close"))
    writer.write(response.to_bytes(head_only=request.method == "HEAD"))
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()


async def _fail(
    writer: asyncio.StreamWriter,
    http: bool,
    linkerd: bool,
    envoy_body: str,
    *,
    linkerd_status: int = 502,
    connect: bool = False,
) -> None:
    """What the client proxy answers when the upstream fails: Envoy's 503 with its body, or
    Linkerd's bodiless error; on a TCP port, just a closed connection. ``connect``: curl's
    https:// (a CONNECT to this stand-in for iptables capture): on a cluster the sidecar has
    already accepted the connection and curl sent its ClientHello, so the close cuts curl's
    TLS handshake (exit 35), never an HTTP answer."""
    if connect:
        with contextlib.suppress(ConnectionError, OSError):
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        return
    if not http:
        return
    if linkerd:
        writer.write(make_response(linkerd_status, b"", keep_alive=False))
    else:
        writer.write(_envoy_reply(503, envoy_body))
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
