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
import uuid
from typing import TYPE_CHECKING, Any

from meshtutor.policy import authz as istio_authz
from meshtutor.policy import linkerd as linkerd_policy
from meshtutor.policy import netpol
from meshtutor.policy.cluster import PodState
from meshtutor.policy.edge import role_of
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
from meshtutor.sandbox.edge import DOWNSTREAM_HEADER
from meshtutor.sandbox.handshake import looks_like_tls, parse_client_hello
from meshtutor.sandbox.http import (
    HTTPParseError,
    Request,
    make_response,
    read_request,
    read_response,
)
from meshtutor.sandbox.netio import (
    close_quietly,
    host_port,
    prepend,
    read_initial,
    reset,
    splice,
)
from meshtutor.sandbox.podlog import (
    EnvoyAccess,
    EnvoyRequest,
    linkerd_access_line,
    linkerd_line,
    utc_now,
)
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


# --- access logs ------------------------------------------------------------------------------


def _envoy_request(
    runtime: PodRuntime, request: Request | None, *, http: bool, **fields: Any
) -> EnvoyRequest:
    """An access log entry in ``runtime``'s Envoy for ``request``: an HTTP line, or a TCP
    line (``"- - -"``) where Envoy proxies the port as TCP and never reads a request."""
    if request is None or not http:
        return EnvoyRequest(runtime.proxy_log, **fields)
    return EnvoyRequest(
        runtime.proxy_log,
        method=request.method,
        # %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%: the :path, query included.
        path=request.path + (f"?{request.query}" if request.query else ""),
        protocol=request.version,
        request_id=request.header("x-request-id"),
        authority=request.header("host") or f"{request.host}:{request.port}",
        user_agent=request.header("user-agent"),
        forwarded_for=request.header("x-forwarded-for"),
        bytes_received=len(request.body),
        **fields,
    )


def _with_request_id(request: Request, log: EnvoyRequest) -> Request:
    """Envoy gives a request without ``x-request-id`` a fresh UUID and passes it on
    (``generate_request_id`` defaults to true), so both sidecars' lines carry the same id."""
    if request.header("x-request-id"):
        return request
    request_id = str(uuid.uuid4())
    log.fields["request_id"] = request_id
    return request.with_headers([("x-request-id", request_id)])


def _rbac_policy(
    sb: Sandbox,
    pod: PodState,
    attrs: istio_authz.RequestAttributes,
    decision: istio_authz.AuthzResult,
) -> str:
    """The policy name in Envoy's ``rbac_access_denied_matched_policy[...]``: the first rule
    of a matching DENY policy, as istiod names it (``ns[NS]-policy[NAME]-rule[N]``, istio
    pilot/pkg/security/authz/builder), or ``none`` when no ALLOW policy matched."""
    ref = decision.decided_by
    for policy in istio_authz.policies_for(sb.cluster, pod):
        if ref is None or policy.ref != ref or policy.action == "ALLOW":
            continue
        deny_like = policy.action in ("DENY", "CUSTOM")
        for index, rule in enumerate(policy.rules):
            if istio_authz.rule_matches(sb.cluster, rule, attrs, deny_like)[0]:
                return f"ns[{policy.namespace}]-policy[{policy.name}]-rule[{index}]"
    return "none"


def _linkerd_tls(peer_identity: str | None) -> str:
    """``client.tls`` as linkerd-proxy's Debug prints a ConditionalServerTls
    (linkerd/tls/src/server.rs)."""
    if peer_identity is None:
        return "None(NoClientHello)"
    return (
        "Some(Established { client_id: Some(ClientId(Dns(Name("
        f'"{peer_identity}")))), negotiated_protocol: Some("{LINKERD_ALPN[0]}") }})'
    )


def _linkerd_server_meta(sb: Sandbox, pod: PodState, port: int) -> str:
    """``server.group= server.kind= server.name=`` of the inbound policy on ``port``: the
    Server that selects it, else the pod's default policy (kind ``default``)."""
    server = linkerd_policy.server_for(sb.cluster, pod, port)
    if server is not None:
        return f"server.group=policy.linkerd.io server.kind=server server.name={server.name}"
    default = pod.default_inbound_policy or sb.cluster.linkerd_default_inbound_policy
    return f"server.group= server.kind=default server.name={default}"


def _linkerd_denied(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    client: str,
    peer_identity: str | None,
    decision: linkerd_policy.LinkerdDecision,
    request: Request | None,
) -> None:
    """What linkerd-proxy logs at INFO when its policy refuses: "Request denied" and the
    rescue's "request failed" for HTTP (linkerd/app/inbound/src/policy/http.rs,
    linkerd/app/core/src/errors/respond.rs, the error text from inbound/src/http/server.rs),
    "Connection denied" for a connection it cannot read as HTTP (policy/tcp.rs)."""
    pod = runtime.state
    spans = f"inbound:server{{port={port}}}"
    server = _linkerd_server_meta(sb, pod, port)
    ip = client.rsplit(":", 1)[0]
    uptime = runtime.logs.uptime()
    if request is None:
        runtime.proxy_log(
            linkerd_line(
                uptime,
                f"Connection denied {server} tls={_linkerd_tls(peer_identity)} client={client}",
                target="linkerd_app_inbound::policy::tcp",
                spans=spans,
            )
        )
        return
    cause = "unauthorized request on route"
    if decision.status == 404:
        cause = "no route found for request"
    else:
        ref = decision.decided_by
        route = (
            f"route.group=policy.linkerd.io route.kind=HTTPRoute route.name={ref.name}"
            if ref is not None and ref.kind == "HTTPRoute"
            else "route.group= route.kind=default route.name=default"
        )
        runtime.proxy_log(
            linkerd_line(
                uptime,
                f"Request denied {server} {route} client.tls={_linkerd_tls(peer_identity)} "
                f"client.ip={ip}",
                target="linkerd_app_inbound::policy::http",
                spans=spans,
            )
        )
    # Meshed clients arrive on the inbound port 4143 and speak HTTP/2 between proxies.
    version = "HTTP/2.0" if peer_identity else request.version
    server_addr = f"{pod.ip}:{4143 if peer_identity else port}"
    runtime.proxy_log(
        linkerd_line(
            uptime,
            f"{version} request failed error=client {client}: server: {server_addr}: {cause} "
            f"error.sources=[{cause}] path={request.path}",
            target="linkerd_app_core::errors::respond",
            spans=f"{spans}:rescue{{client.addr={client}}}",
        )
    )


def _linkerd_access(
    runtime: PodRuntime,
    request: Request,
    client: str,
    peer_identity: str | None,
    status: int | None,
    response_bytes: int | None,
    started: float,
) -> None:
    """linkerd-proxy's inbound HTTP access log line, when the pod enabled it."""
    fmt = runtime.linkerd_access_log
    if fmt is None or status is None:
        return
    total = int((time.monotonic() - started) * 1e9)
    target = request.path + (f"?{request.query}" if request.query else "")
    host = request.header("host") or ""
    # Between meshed proxies requests travel as HTTP/2 with an absolute URI (the docs'
    # example: "GET http://webapp:7000/ HTTP/2.0"); an unmeshed client's arrive as sent.
    uri, version = (
        (f"http://{host}{target}", "HTTP/2.0") if peer_identity else (target, request.version)
    )
    runtime.proxy_log(
        linkerd_access_line(
            fmt,
            client_addr=client,
            client_id=peer_identity,
            method=request.method,
            uri=uri,
            version=version,
            status=status,
            host=host,
            user_agent=request.header("user-agent") or "",
            request_bytes=request.header("content-length") or "",
            response_bytes="" if response_bytes is None else str(response_bytes),
            trace_id=request.header("x-b3-traceid") or request.header("x-request-id") or "",
            total_ns=total,
            processing_ns=total,
        )
    )


def _probe_header_for(pod: PodState) -> str:
    """The probe id header is meshtutor's, so apps never see it; an ingress proxy passes it on,
    so the hops behind it are filed under the same probe."""
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
    log: EnvoyRequest | None = None,
) -> None:
    """Pass bytes through to the app untouched (no sidecar, or a port the sidecar does not
    terminate). ``hop``: what this proxy knows of the hop (mutual TLS, identities), for an
    app that reads the probe id from the bytes (an ingress controller terminating curl's TLS).
    ``log``: the TCP access log entry of the sidecar passing the bytes, if any."""
    app = runtime.apps.get(port)
    if log is not None:
        log.upstream(f"{runtime.state.ip}:{port}")
    if app is None:
        if log is not None:
            log.tcp_failure("connection failure")
        reset(writer)
        return
    from meshtutor.sandbox.edge import bind_address

    local = bind_address(source) if sb.aliases else None
    try:
        up_reader, up_writer = await asyncio.open_connection(
            app.host, app.port, local_addr=(local, 0) if local else None
        )
    except OSError:
        if log is not None:
            log.tcp_failure("connection failure")
        reset(writer)
        return
    key = up_writer.get_extra_info("sockname")
    if log is not None:
        log.upstream(f"{runtime.state.ip}:{port}", host_port(key))
    if hop is not None and key:
        sb.opaque_hops[tuple(key[:2])] = hop
    if first:
        up_writer.write(first)
    try:
        received, sent = await splice(reader, writer, up_reader, up_writer)
        if log is not None:
            log.finish(0, bytes_received=received + len(first), bytes_sent=sent)
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
        client = host_port(writer.get_extra_info("peername")) or "-"
        _linkerd_denied(sb, runtime, port, client, peer_identity, decision, None)
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
    where: dict[str, Any] = {
        "downstream_local": f"{pod.ip}:{port}",
        "downstream_remote": host_port(writer.get_extra_info("peername")),
    }
    if looks_like_tls(first):
        hello = parse_client_hello(first)
        istio = bool(hello and hello.istio_alpn)
        where["server_name"] = hello.sni if hello else None
        if mode == "DISABLE" or (mode == "PERMISSIVE" and not istio):
            # Not Istio mTLS: Envoy's passthrough chain hands the bytes to the app as they are.
            log = EnvoyRequest(runtime.proxy_log, upstream_cluster=f"inbound|{port}||", **where)
            await _to_app_raw(sb, runtime, port, source, first, reader, writer, log=log)
            return
        tls = await _terminate_mtls(sb, runtime, reader, writer, first)
        if tls is None:
            return
        peer = _spiffe_from_der(tls.peer_certificate_der())
        tls_reader, tls_writer = tls.stream_pair()
        await _istio_http(sb, runtime, port, source, tls_reader, tls_writer, peer, tls, where)  # type: ignore[arg-type]
        return
    if mode == "STRICT":
        # No filter chain of a STRICT listener takes plaintext: Envoy's listener log says
        # "NR filter_chain_not_found" and the connection is closed (Istio's listener access
        # log, which only logs NR, is how these lines reach the proxy's log).
        runtime.proxy_log(
            EnvoyAccess(
                start=utc_now(),
                code=0,
                flags="NR",
                details="filter_chain_not_found",
                **where,
            ).line()
        )
        reset(writer)
        return
    await _istio_http(sb, runtime, port, source, prepend(first, reader), writer, None, None, where)


async def _istio_http(
    sb: Sandbox,
    runtime: PodRuntime,
    port: int,
    source: PodState | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    peer_identity: str | None,
    tls: TLSStream | None,
    where: dict[str, Any],
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
    log = _envoy_request(
        runtime,
        request,
        http=http,
        upstream_cluster=f"inbound|{port}||",
        route="default" if http else None,
        **where,
    )
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
        # Envoy's RBAC filter names the policy that decided (envoy source/extensions/filters/
        # common/rbac/utility.cc responseDetail): the HTTP filter in the response code
        # details, the network filter (a TCP port) in the connection termination details.
        denied = f"rbac_access_denied_matched_policy[{_rbac_policy(sb, pod, attrs, decision)}]"
        if http:
            log.finish(403, details=denied, bytes_sent=len(RBAC_DENIED))
            writer.write(_envoy_reply(403, RBAC_DENIED))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
        else:
            log.finish(0, termination=denied)
        await close_quietly(writer)
        return
    if http:
        request = _with_request_id(request, log)
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
        log=log,
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
    log: EnvoyRequest | None = None,
) -> tuple[int | None, int | None]:
    """Send ``request`` to the app on ``port`` and relay its answer. Returns the status sent
    to the client (None when the connection was just closed) and the response body's size;
    ``log`` (Istio's inbound Envoy) gets the line for what happened."""
    app = runtime.apps.get(port)
    reason = error_body.removeprefix(ENVOY_503)

    def failed() -> tuple[int | None, int | None]:
        if log is not None:
            if http:
                log.reset(reason, status=error_status, retried=False, sent=len(error_body))
            else:
                log.tcp_failure(reason)
        return (error_status, len(error_body)) if http else (None, None)

    if log is not None:
        log.upstream(f"{runtime.state.ip}:{port}")
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
        return failed()
    if log is not None:
        log.upstream(f"{runtime.state.ip}:{port}", host_port(up_writer.get_extra_info("sockname")))
    outcome: tuple[int | None, int | None]
    try:
        up_writer.write(request.with_headers(remove={"connection"}).to_bytes())
        await up_writer.drain()
        if log is not None:
            log.sent()
        response = await asyncio.wait_for(
            read_response(up_reader, head_only_for=request.method), UPSTREAM_TIMEOUT
        )
        response.headers = [(k, v) for k, v in response.headers if k.lower() != "connection"]
        response.headers.append(("connection", "close"))
        wire = response.to_bytes(head_only=request.method == "HEAD")
        sent = 0 if request.method == "HEAD" else len(response.body)
        writer.write(wire)
        outcome = (response.status, sent)
        if log is not None:
            if http:
                log.finish(response.status, details="via_upstream", bytes_sent=sent)
            else:
                log.finish(0, bytes_received=len(request.to_bytes()), bytes_sent=len(wire))
        await writer.drain()
    except (HTTPParseError, ConnectionError, OSError, TimeoutError):
        if http:
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(_envoy_reply(error_status, error_body))
                await writer.drain()
        outcome = failed()
    finally:
        await close_quietly(up_writer)
        await close_quietly(writer)
    return outcome


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
    client = host_port(writer.get_extra_info("peername")) or "-"
    try:
        request = await read_request(reader)
    except (HTTPParseError, ConnectionError, OSError, ssl.SSLError):
        await close_quietly(writer)
        return
    if request is None:
        await close_quietly(writer)
        return
    started = time.monotonic()
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
        _linkerd_denied(sb, runtime, port, client, peer_identity, decision, request)
        _linkerd_access(runtime, request, client, peer_identity, decision.status, 0, started)
        writer.write(make_response(decision.status, b"", keep_alive=False))
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        await close_quietly(writer)
        return
    add = [("l5d-client-id", peer_identity)] if peer_identity else []
    upstream = request.with_headers(add, remove={_probe_header_for(pod), "l5d-client-id"})
    status, size = await _forward_to_app(
        sb, runtime, port, upstream, writer, True, error_status=502, error_body=""
    )
    _linkerd_access(runtime, request, client, peer_identity, status, size, started)


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
) -> bool:
    """Hang like an unanswered connect, then answer as the proxy does when it gives up.
    False when the client gave up first."""
    with contextlib.suppress(TimeoutError, ConnectionError, OSError):
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
            return False  # the client gave up first
    with contextlib.suppress(ConnectionError, OSError):
        writer.write(
            make_response(
                status, body, headers=[("server", "envoy")] if body else [], keep_alive=False
            )
        )
        await writer.drain()
    return True


def _outbound_log(
    runtime: PodRuntime,
    request: Request,
    writer: asyncio.StreamWriter,
    service: Service | None,
    svc_port: ServicePort | None,
) -> EnvoyRequest | None:
    """The client Envoy's access log entry for ``request`` (Linkerd's proxy keeps no
    outbound access log). A CONNECT stands for curl's own TLS, which Envoy proxies as TCP."""
    if runtime.state.sidecar == "linkerd":
        return None
    fqdn = f"{service.name}.{service.namespace}.svc.{CLUSTER_DOMAIN}" if service else ""
    # DOWNSTREAM_LOCAL_ADDRESS is the original destination: the Service's cluster IP (when
    # the object has one) or the address asked for.
    cluster_ip = service.raw.get("spec", {}).get("clusterIP") if service else None
    number = svc_port.port if svc_port else request.port
    original = f"{cluster_ip}:{number}" if cluster_ip and cluster_ip != "None" else None
    if original is None and _is_ipv4(request.host):
        original = f"{request.host}:{request.port}"
    where: dict[str, str | None] = {
        "downstream_local": original,
        "downstream_remote": host_port(writer.get_extra_info("peername")),
        "server_name": None,
    }
    route = "default" if svc_port else "allow_any"
    forwarded = request.header(DOWNSTREAM_HEADER)
    if forwarded and role_of(runtime.state) == "istio-gateway":
        # The gateway's router and this outbound side are one Envoy on a real cluster: the
        # line names the outside client, the gateway's listener and the SNI it was reached
        # with, and the VirtualService route (unnamed, so "-").
        values = [None if v == "-" else v for v in forwarded.split(" ", 2)]
        where = dict(
            zip(("downstream_remote", "downstream_local", "server_name"), values, strict=False)
        )
        route = "-"
    # A port the mesh treats as TCP, or a CONNECT (curl's own TLS), is proxied as TCP.
    http = not request.is_connect and (svc_port is None or is_http_port(svc_port))
    return _envoy_request(
        runtime,
        request,
        http=http,
        upstream_cluster=f"outbound|{svc_port.port}||{fqdn}" if svc_port else "PassthroughCluster",
        route=route if http else None,
        **where,
    )


def _is_ipv4(host: str) -> bool:
    """Whether ``host`` is an IPv4 address (an original destination Envoy can name)."""
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


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
        log = _outbound_log(runtime, request, writer, None, None)
    else:
        service, _ = resolve_service(sb.cluster, request.host, source.namespace)
        svc_port = service.port(request.port) if service else None
        log = _outbound_log(runtime, request, writer, service, svc_port)
        if service is None or svc_port is None:
            # Envoy's passthrough: the original destination does not answer.
            body = ENVOY_503 + "connection timeout"
            if await _wait_then(writer, reader, ENVOY_CONNECT_TIMEOUT, 503, body):
                if log is not None:
                    log.reset("connection timeout", retried=False, sent=len(body))
            elif log is not None:
                log.gave_up()
            return
        endpoints = service_endpoints(sb.cluster, service, svc_port)
        if not endpoints:
            body = "" if linkerd else "no healthy upstream"
            writer.write(make_response(503, body, keep_alive=False))
            if log is not None:
                log.finish(503, flags="UH", details="no_healthy_upstream", bytes_sent=len(body))
            await writer.drain()
            return
        target, port = endpoints[0]
        http = is_http_port(svc_port) or linkerd  # Linkerd detects HTTP whatever the name
    # Connect failures to a Service are retried (Istio's default route retry policy); the
    # passthrough route to a pod address is not.
    retried = service is not None
    if log is not None:
        log.upstream(f"{target.ip}:{port}")
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
                body = ENVOY_503 + "connection timeout"
                answered = await _wait_then(writer, reader, ENVOY_CONNECT_TIMEOUT, 503, body)
                if log is not None and answered:
                    log.reset("connection timeout", retried=retried, sent=len(body))
                elif log is not None:
                    log.gave_up()
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
            writer,
            http,
            linkerd,
            ENVOY_503 + "connection failure",
            connect=request.is_connect,
            log=log,
            retried=retried,
        )
        return
    if log is not None:
        log.upstream(f"{target.ip}:{port}", host_port(up_writer.get_extra_info("sockname")))

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
                    log=log,
                    retried=retried,
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
                log=log,
                retried=retried,
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
            received, sent = await splice(reader, writer, up_r, up_w)  # type: ignore[arg-type]
            if log is not None:
                log.finish(0, bytes_received=received, bytes_sent=sent)
        finally:
            up_w.close()  # also when the sandbox stops mid-tunnel: ends a TLS pump task
        await close_quietly(up_w)  # type: ignore[arg-type]
        return
    upstream = request.with_headers(remove={"proxy-connection", "connection", DOWNSTREAM_HEADER})
    if log is not None and http:
        upstream = _with_request_id(upstream, log)
    try:
        up_w.write(upstream.to_bytes(origin_form=True))
        await up_w.drain()
        if log is not None:
            log.sent()
        response = await asyncio.wait_for(
            read_response(up_r, head_only_for=request.method), UPSTREAM_TIMEOUT
        )
    except (HTTPParseError, ConnectionError, OSError, ssl.SSLError, TimeoutError):
        await close_quietly(up_w)  # type: ignore[arg-type]
        await _fail(writer, http, linkerd, ENVOY_503 + "connection termination", log=log)
        return
    await close_quietly(up_w)  # type: ignore[arg-type]
    # Linkerd's outbound proxy strips its informational headers before the app sees them.
    drop = {"connection", "l5d-proxy-error", "l5d-proxy-connection"}
    response.headers = [(k, v) for k, v in response.headers if k.lower() not in drop]
    response.headers.append(("connection", "close"))
    wire = response.to_bytes(head_only=request.method == "HEAD")
    if log is not None:
        sent = 0 if request.method == "HEAD" else len(response.body)
        if http:
            # A 503 from upstream is retried too ("retriable-status-codes", 503), and the
            # last one relayed with the retry limit exceeded.
            flags = "URX" if response.status == 503 and retried else "-"
            log.finish(response.status, flags=flags, details="via_upstream", bytes_sent=sent)
        else:
            log.finish(0, bytes_sent=len(wire))
    writer.write(wire)
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
    log: EnvoyRequest | None = None,
    retried: bool = False,
) -> None:
    """What the client proxy answers when the upstream fails: Envoy's 503 with its body, or
    Linkerd's bodiless error; on a TCP port, just a closed connection. ``connect``: curl's
    https:// (a CONNECT to this stand-in for iptables capture): on a cluster the sidecar has
    already accepted the connection and curl sent its ClientHello, so the close cuts curl's
    TLS handshake (exit 35), never an HTTP answer. ``log`` gets Envoy's line for it."""
    reason = envoy_body.removeprefix(ENVOY_503)
    if connect or not http:
        if log is not None:
            log.tcp_failure(reason)
        if connect:
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
        return
    if linkerd:
        writer.write(make_response(linkerd_status, b"", keep_alive=False))
    else:
        if log is not None:
            log.reset(reason, retried=retried, sent=len(envoy_body))
        writer.write(_envoy_reply(503, envoy_body))
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
