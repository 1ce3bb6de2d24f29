"""The sandbox's edge: external addresses, Istio's ingress gateway and ingress-nginx, for real.

- **External addresses**: every LoadBalancer Service gets an address of its own on loopback
  (``127.43.0.N``, its EXTERNAL-IP) with a listener per port; a NodePort Service listens on the
  node address ``127.44.0.1`` at its node port. Each listener does kube-proxy's job: it picks
  the endpoint pod and connects to it from the outside client's address, so NetworkPolicy and
  the pod's sidecar see a client that is not a pod.
- **Istio's gateway** pod runs a small Envoy-like router on its container ports: the Gateway
  servers on that port decide TLS (SNI, credentialName Secret) and the VirtualServices route
  by host and path; the upstream request leaves through the gateway's own outbound proxy, the
  same code a sidecar runs, so auto mTLS and DestinationRules apply as for any client.
- **ingress-nginx** runs as the controller container's app on ports 80/443 (behind its Linkerd
  proxy when meshed): Ingress rules route, ``spec.tls`` Secrets are served (or the built-in
  fake certificate), and ``service-upstream`` chooses between the Service and a pod address.

The routing decisions come from ``meshtutor.policy.edge``, the same functions the prediction
uses; what the wire shows (ClientHello, handshake, bytes) decides the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from typing import TYPE_CHECKING, Any

from meshtutor.policy import edge
from meshtutor.policy.ingress import NGINX_308, NGINX_404, NGINX_502, NGINX_503
from meshtutor.policy.predict import service_endpoints
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
from meshtutor.sandbox.podlog import EnvoyAccess, EnvoyRequest, utc_now
from meshtutor.sandbox.tlsstream import TLSStream

if TYPE_CHECKING:
    from meshtutor.model.k8s import Service
    from meshtutor.policy.cluster import PodState
    from meshtutor.sandbox.mesh import PodRuntime, Sandbox

#: The address curl and the external listeners use for "a machine outside the cluster".
OUTSIDE_LOOPBACK = "127.43.255.254"
NODE_ADDRESS = "127.44.0.1"
UPSTREAM_TIMEOUT = 30.0
PROBE_HEADER = "x-meshtutor-probe"
#: How the gateway's router tells its own outbound proxy (the same Envoy on a real cluster)
#: where the request came from, for the access log line: "<remote> <local> <sni or ->".
DOWNSTREAM_HEADER = "x-meshtutor-downstream"


async def _reply(
    writer: asyncio.StreamWriter, status: int, body: str, headers: list[tuple[str, str]]
) -> None:
    """A response the proxy makes itself (404, 301, 503...), flushed before the close (over
    TLS the bytes would otherwise still sit in the stream when it shuts)."""
    content_type = "text/html" if body.startswith("<html>") else "text/plain"
    with contextlib.suppress(ConnectionError, OSError):
        writer.write(
            make_response(
                status, body, content_type=content_type, headers=headers, keep_alive=False
            )
        )
        await writer.drain()


# --- external addresses (kube-proxy) ----------------------------------------------------------


class ExternalAddresses:
    """LoadBalancer and NodePort listeners of one sandbox."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self._ips: dict[tuple[str, str], str] = {}
        self._servers: dict[tuple[str, str, int], asyncio.Server] = {}
        self._next = 1

    def address(self, service: Service) -> str:
        """EXTERNAL-IP of a LoadBalancer Service (allocated once, kept while it exists); the
        node address for a NodePort Service."""
        if service.type != "LoadBalancer":
            return NODE_ADDRESS if self.sb.aliases else "127.0.0.1"
        key = (service.namespace or "default", service.name)
        if key not in self._ips:
            if self.sb.aliases:
                self._ips[key] = f"127.43.{self._next // 254}.{self._next % 254 + 1}"
                self._next += 1
            else:
                self._ips[key] = "127.0.0.1"
        return self._ips[key]

    def listener(self, service: Service, port: int) -> tuple[str, int] | None:
        """Where the external address + port listens in this process."""
        server = self._servers.get((service.namespace or "default", service.name, port))
        if server is None:
            return None
        host, real_port = server.sockets[0].getsockname()[:2]
        return str(host), int(real_port)

    async def sync(self) -> None:
        wanted: dict[tuple[str, str, int], Service] = {}
        for service in self.sb.cluster.services():
            if not service.external:
                continue
            for svc_port in service.ports:
                number = (
                    svc_port.port
                    if service.type == "LoadBalancer"
                    else edge.node_port(service, svc_port)
                )
                wanted[(service.namespace or "default", service.name, number)] = service
        for key in list(self._servers):
            if key not in wanted:
                server = self._servers.pop(key)
                server.close()
        for key, service in wanted.items():
            if key in self._servers:
                continue
            host = self.address(service)
            try:
                # The real port when the address is our own; an ephemeral one when everything
                # shares 127.0.0.1 (macOS without aliases) or the port is taken.
                server = await asyncio.start_server(
                    self.sb._handler(lambda r, w, k=key: self._forward(k, r, w)),
                    host,
                    key[2] if self.sb.aliases else 0,
                )
            except OSError:
                server = await asyncio.start_server(
                    self.sb._handler(lambda r, w, k=key: self._forward(k, r, w)), host, 0
                )
            self._servers[key] = server
        for ns, name in list(self._ips):
            if self.sb.cluster.service(ns, name) is None:
                del self._ips[(ns, name)]

    async def close(self) -> None:
        for server in self._servers.values():
            server.close()
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def _forward(
        self, key: tuple[str, str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        ns, name, number = key
        service = self.sb.cluster.service(ns, name)
        svc_port = edge.external_port(service, number) if service else None
        endpoints = (
            service_endpoints(self.sb.cluster, service, svc_port) if service and svc_port else []
        )
        if not endpoints:
            reset(writer)
            return
        target, port = endpoints[0]
        host, entry_port = await self.sb.entry(self.sb.runtime(target), port)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                host,
                entry_port,
                local_addr=(OUTSIDE_LOOPBACK, 0) if self.sb.aliases else None,
            )
        except OSError:
            reset(writer)
            return
        await splice(reader, writer, up_reader, up_writer, mirror_reset=True)
        await close_quietly(up_writer)
        await close_quietly(writer)


# --- the proxies -----------------------------------------------------------------------------


class EdgeServer:
    """The gateway's or the controller's listener on one container port; it stands where an
    ``AppServer`` would (``host``, ``port``, ``close``)."""

    def __init__(self, sb: Sandbox, runtime: PodRuntime, container_port: int, role: str) -> None:
        self.sb = sb
        self.runtime = runtime
        self.container_port = container_port
        self.role = role
        self.host = ""
        self.port = 0
        self._server: asyncio.Server | None = None

    @classmethod
    async def start(
        cls, sb: Sandbox, runtime: PodRuntime, container_port: int, role: str
    ) -> EdgeServer:
        self = cls(sb, runtime, container_port, role)
        handler = self._gateway if role == "istio-gateway" else self._nginx
        self._server = await asyncio.start_server(sb._handler(handler), runtime.state.ip, 0)
        bound = self._server.sockets[0].getsockname()
        self.host, self.port = str(bound[0]), int(bound[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    @property
    def pod(self) -> PodState:
        return self.runtime.state

    # --- TLS at the edge ---

    async def _terminate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first: bytes,
        chain: bytes,
        key: bytes,
        *,
        require_client_cert: bool = False,
    ) -> TLSStream | None:
        context = self.sb.edge_server_context(chain, key, require_client_cert=require_client_cert)
        tls = TLSStream(reader, writer, context, server_side=True, initial=first)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(tls.handshake(), UPSTREAM_TIMEOUT)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            # Keep the failed trace: the probe id arrives only in the HTTP request, so it is
            # filed under the connection's client port instead (see Sandbox.edge_failures).
            self.sb.note_edge_failure(writer, tls.ssl_object, exc)
            await close_quietly(writer)
            return None
        tls.started_ms = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
        return tls

    # --- Istio gateway ---

    async def _gateway(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cluster = self.sb.cluster
        first = await read_initial(reader)
        if not first:
            await close_quietly(writer)
            return
        if self.container_port == edge.STATUS_PORT:
            await self._status(prepend(first, reader), writer, tls=looks_like_tls(first))
            return
        servers = edge.servers_on(cluster, self.pod, self.container_port)
        if not servers:
            reset(writer)
            return
        tls: TLSStream | None = None
        sni = ""
        if looks_like_tls(first):
            tls_servers = [b for b in servers if b.server.terminates_tls]
            if not tls_servers:
                await _reply(writer, 400, "", [("server", "istio-envoy")])
                await close_quietly(writer)
                return
            hello = parse_client_hello(first)
            sni = (hello.sni if hello else None) or ""
            bound = edge.server_for_sni(tls_servers, sni)
            if bound is None or bound.server.tls is None:
                # No filter chain for that SNI: Envoy's listener logs it and closes.
                self.runtime.proxy_log(
                    EnvoyAccess(
                        start=utc_now(),
                        code=0,
                        flags="NR",
                        details="filter_chain_not_found",
                        downstream_local=f"{self.pod.ip}:{self.container_port}",
                        downstream_remote=host_port(writer.get_extra_info("peername")),
                        server_name=sni,
                    ).line()
                )
                reset(writer)
                return
            name = bound.server.tls.credential_name or ""
            secret = edge.tls_secret(cluster, self.pod.namespace, name)
            if edge.secret_problem(secret, self.pod.namespace, name) is not None or secret is None:
                reset(writer)
                return
            tls = await self._terminate(
                reader,
                writer,
                first,
                secret.data["tls.crt"],
                secret.data["tls.key"],
                require_client_cert=bound.server.tls.mode == "MUTUAL",
            )
            if tls is None:
                return
            chosen = [bound]
            r, w = tls.stream_pair()
        else:
            chosen = [b for b in servers if not b.server.terminates_tls]
            if not chosen:
                await close_quietly(writer)  # a TLS listener getting plaintext: no answer
                return
            r, w = prepend(first, reader), writer  # type: ignore[assignment]
        try:
            await self._gateway_request(r, w, tls, chosen, sni)  # type: ignore[arg-type]
        finally:
            if tls is not None:
                await tls.close()
            await close_quietly(writer)

    async def _status(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool
    ) -> None:
        """Envoy's status listener: plain HTTP (a ClientHello gets the codec's 400), one
        route to the agent's readiness check, 404 for the rest."""
        envoy = [("server", "envoy")]
        try:
            request = None if tls else await read_request(reader)
        except (HTTPParseError, ConnectionError, OSError):
            request = None
        if request is None:
            if tls:
                await _reply(writer, 400, "", envoy)
            await close_quietly(writer)
            return
        await _reply(writer, edge.status_port_answer(request.path), "", envoy)
        await close_quietly(writer)

    async def _gateway_request(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: TLSStream | None,
        chosen: list[edge.BoundServer],
        sni: str,
    ) -> None:
        cluster = self.sb.cluster
        try:
            request = await read_request(reader)
        except (HTTPParseError, ConnectionError, OSError, ssl.SSLError):
            return
        if request is None:
            return
        probe_id = request.header(PROBE_HEADER)
        if tls is not None:
            self.sb.record_edge_handshake(
                probe_id, tls.ssl_object, getattr(tls, "started_ms", None)
            )
        envoy = [("server", "istio-envoy")]
        host = request.host
        remote = host_port(writer.get_extra_info("peername"))
        local = f"{self.pod.ip}:{self.container_port}"
        request = request.with_headers(
            [] if request.header("x-request-id") else [("x-request-id", str(uuid.uuid4()))]
        )
        # Answers the gateway's Envoy makes itself (envoy StreamInfo ResponseCodeDetails:
        # route_not_found with NR, cluster_not_found with NC, direct_response); what it
        # proxies is logged by its outbound side, which knows how the upstream answered.
        log = EnvoyRequest(
            self.runtime.proxy_log,
            method=request.method,
            path=request.target,
            protocol=request.version,
            request_id=request.header("x-request-id"),
            authority=request.header("host"),
            user_agent=request.header("user-agent"),
            forwarded_for=edge.OUTSIDE_IP,
            bytes_received=len(request.body),
            downstream_local=local,
            downstream_remote=remote,
            server_name=sni,
        )
        redirect = edge.redirecting_server(chosen, host) if tls is None else None
        if redirect is not None:
            log.finish(301, details="direct_response")
            await _reply(writer, 301, "", [*envoy, ("location", f"https://{host}{request.target}")])
            return
        headers = {k.lower(): v for k, v in request.headers}
        route = edge.gateway_route(
            cluster, chosen, host, request.path, self.container_port, headers
        )
        vs, rule = route.vs, route.rule
        if vs is None or rule is None:
            log.finish(404, flags="NR", details="route_not_found")
            await _reply(writer, 404, "", envoy)
            return
        if rule.direct_response is not None:
            status, body = rule.direct_response
            log.finish(status, details="direct_response", bytes_sent=len(body.encode()))
            await _reply(writer, status, body, envoy)
            return
        if rule.redirect is not None:
            status = int(rule.redirect.get("redirectCode", 301))
            log.finish(status, details="direct_response")
            await _reply(writer, status, "", envoy)
            return
        destination = edge.chosen_destination(rule)
        assert destination is not None
        service, fqdn = edge.destination_service(
            cluster, destination.host, vs.namespace or "default"
        )
        number = edge.destination_port(destination, service, self.container_port) if service else 0
        if service is None or service.port(number) is None:
            log.finish(503, flags="NC", details="cluster_not_found")
            await _reply(writer, 503, "", envoy)
            return
        path = edge.rewritten_path(rule, request.target)
        client_ip = edge.OUTSIDE_IP
        upstream = Request(
            request.method,
            f"http://{fqdn}:{number}{path}",
            headers=[
                (k, v)
                for k, v in request.headers
                if k.lower() not in ("x-forwarded-client-cert", "connection", "proxy-connection")
            ]
            + [
                ("x-forwarded-for", client_ip),
                ("x-forwarded-proto", "https" if tls else "http"),
                ("x-envoy-external-address", client_ip),
                (DOWNSTREAM_HEADER, f"{remote or '-'} {local} {sni or '-'}"),
            ],
            body=request.body,
        )
        await self._via_outbound(upstream, writer, envoy, error_status=503, error_body="")

    async def _via_outbound(
        self,
        request: Request,
        writer: asyncio.StreamWriter,
        extra: list[tuple[str, str]],
        *,
        error_status: int,
        error_body: str,
    ) -> tuple[int, int]:
        """Send ``request`` (absolute-form) through this pod's own outbound proxy; returns the
        status and body size sent back."""
        port = self.runtime.outbound_port
        assert port is not None
        try:
            up_reader, up_writer = await asyncio.open_connection(self.pod.ip, port)
        except OSError:
            await _reply(writer, error_status, error_body, extra)
            return error_status, len(error_body)
        return await self._exchange(
            up_reader, up_writer, request, writer, extra, False, error_status, error_body
        )

    async def _exchange(
        self,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        request: Request,
        writer: asyncio.StreamWriter,
        extra: list[tuple[str, str]],
        origin_form: bool,
        error_status: int,
        error_body: str,
    ) -> tuple[int, int]:
        """Relay ``request`` and its answer; returns the status and body size sent back."""
        try:
            up_writer.write(request.to_bytes(origin_form=origin_form))
            await up_writer.drain()
            response = await asyncio.wait_for(
                read_response(up_reader, head_only_for=request.method), UPSTREAM_TIMEOUT
            )
        except (
            HTTPParseError,
            ConnectionError,
            OSError,
            TimeoutError,
            asyncio.IncompleteReadError,
        ):
            with contextlib.suppress(ConnectionError, OSError):
                await _reply(writer, error_status, error_body, extra)
            return error_status, len(error_body)
        finally:
            await close_quietly(up_writer)
        names = {k.lower() for k, _ in extra}
        response.headers = (
            [(k, v) for k, v in response.headers if k.lower() not in names | {"connection"}]
            + extra
            + [("connection", "close")]
        )
        with contextlib.suppress(ConnectionError, OSError):
            writer.write(response.to_bytes(head_only=request.method == "HEAD"))
            await writer.drain()
        return response.status, 0 if request.method == "HEAD" else len(response.body)

    # --- ingress-nginx ---

    async def _nginx(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cluster = self.sb.cluster
        first = await read_initial(reader)
        if not first:
            await close_quietly(writer)
            return
        tls: TLSStream | None = None
        tls_now = looks_like_tls(first)
        if self.container_port == 443 and tls_now:
            hello = parse_client_hello(first)
            sni = (hello.sni if hello else None) or ""
            entry = edge.ingress_tls_for(cluster, sni) if sni else None
            chain = key = None
            if entry is not None:
                ingress, secret_name = entry
                secret = edge.tls_secret(cluster, ingress.namespace or "default", secret_name or "")
                if secret is not None and {"tls.crt", "tls.key"} <= set(secret.data):
                    chain, key = secret.data["tls.crt"], secret.data["tls.key"]
            if chain is None or key is None:
                chain, key = self.sb.fake_edge_certificate()
            tls = await self._terminate(reader, writer, first, chain, key)
            if tls is None:
                return
            r, w = tls.stream_pair()
        elif tls_now or self.container_port == 443:
            await _reply(writer, 400, "", [("server", "nginx")])
            await close_quietly(writer)
            return
        else:
            r, w = prepend(first, reader), writer  # type: ignore[assignment]
        try:
            await self._nginx_request(r, w, tls)  # type: ignore[arg-type]
        finally:
            if tls is not None:
                await tls.close()
            await close_quietly(writer)

    def _nginx_log(
        self,
        request: Request,
        started: float,
        status: int,
        sent: int,
        upstream: tuple[str, str, int] | None = None,
    ) -> None:
        """The controller's access log line, ingress-nginx's default ``log-format-upstream``
        (internal/ingress/controller/config/config.go): ``$remote_addr - $remote_user
        [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
        $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name]
        $upstream_addr $upstream_response_length $upstream_response_time $upstream_status
        $req_id``. ``upstream``: (upstream name, address, status) when nginx proxied."""
        container = next(
            c.name for c in self.pod.spec.containers if "ingress-nginx" in c.image.lower()
        )
        elapsed = f"{time.monotonic() - started:.3f}"
        name, address, upstream_status = upstream or ("", "-", 0)
        tail = f"{address} {sent} {elapsed} {upstream_status}" if upstream else "- - - -"
        line = (
            f"{edge.OUTSIDE_IP} - - [{utc_now().strftime('%d/%b/%Y:%H:%M:%S +0000')}] "
            f'"{request.method} {request.target} {request.version}" {status} {sent} '
            f'"{request.header("referer") or "-"}" "{request.header("user-agent") or "-"}" '
            f"{len(request.to_bytes(origin_form=False))} {elapsed} [{name}] [] {tail} "
            f"{uuid.uuid4().hex}"
        )
        self.runtime.logs.write(container, line)

    async def _nginx_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: TLSStream | None
    ) -> None:
        cluster = self.sb.cluster
        try:
            request = await read_request(reader)
        except (HTTPParseError, ConnectionError, OSError, ssl.SSLError):
            return
        if request is None:
            return
        started = time.monotonic()
        probe_id = request.header(PROBE_HEADER)
        if tls is not None:
            self.sb.record_edge_handshake(
                probe_id, tls.ssl_object, getattr(tls, "started_ms", None)
            )
        peer = writer.get_extra_info("peername")
        hop = self.sb.opaque_hops.get(tuple(peer[:2])) if peer else None
        if hop is not None:
            self.sb.record(probe_id, **hop)  # the Linkerd hop in front of nginx
        server = [("server", "nginx")]
        host = request.host
        if tls is None:
            entry = edge.ingress_tls_for(cluster, host)
            if entry is not None and (
                entry[0].metadata.annotations.get(edge.SSL_REDIRECT, "true").lower() != "false"
            ):
                self._nginx_log(request, started, 308, len(NGINX_308))
                await _reply(
                    writer,
                    308,
                    NGINX_308,
                    [*server, ("location", f"https://{host}{request.target}")],
                )
                return
        route = edge.ingress_route(cluster, host, request.path)
        if route is None:
            self._nginx_log(request, started, 404, len(NGINX_404))
            await _reply(writer, 404, NGINX_404, server)
            return
        ns = route.ingress.namespace or "default"
        service, svc_port, endpoints = edge.ingress_backend(cluster, route)
        if not endpoints or service is None or svc_port is None:
            self._nginx_log(request, started, 503, len(NGINX_503))
            await _reply(writer, 503, NGINX_503, server)
            return
        target, target_port = endpoints[0]
        if edge.service_upstream(route.ingress):
            authority = f"{service.name}.{ns}.svc.cluster.local:{svc_port.port}"
        else:
            authority = f"{target.ip}:{target_port}"
        headers = [
            (k, v)
            for k, v in request.headers
            if k.lower() not in ("connection", "proxy-connection")
        ] + [
            ("x-real-ip", edge.OUTSIDE_IP),
            ("x-forwarded-for", edge.OUTSIDE_IP),
            ("x-forwarded-proto", "https" if tls else "http"),
            ("x-forwarded-host", host),
        ]
        upstream = Request(
            request.method,
            f"http://{authority}{request.target}",
            headers=headers,
            body=request.body,
        )
        # ingress-nginx names an upstream <namespace>-<service>-<port>.
        name = f"{ns}-{service.name}-{svc_port.port}"
        if self.pod.sidecar is not None:
            # Meshed: the connect is captured by the controller's own proxy.
            status, sent = await self._via_outbound(
                upstream, writer, server, error_status=502, error_body=NGINX_502
            )
            self._nginx_log(request, started, status, sent, (name, authority, status))
            return
        # Unmeshed, both ways end at the same pod: nginx's own pick of the endpoint, or
        # kube-proxy's behind the cluster IP (the oldest pod, as everywhere in meshtutor).
        host_ip, entry_port = await self.sb.entry(self.sb.runtime(target), target_port)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                host_ip, entry_port, local_addr=(self.pod.ip, 0) if self.sb.aliases else None
            )
        except OSError:
            self._nginx_log(request, started, 502, len(NGINX_502), (name, authority, 502))
            await _reply(writer, 502, NGINX_502, server)
            return
        status, sent = await self._exchange(
            up_reader, up_writer, upstream, writer, server, True, 502, NGINX_502
        )
        self._nginx_log(request, started, status, sent, (name, authority, status))


def bind_address(source: Any) -> str | None:
    """The local address a connection from ``source`` (a pod or the outside client) binds."""
    if source is None:
        return None
    return OUTSIDE_LOOPBACK if getattr(source, "external", False) else str(source.ip)
