"""The sandbox: an embedded local mesh built from the same manifests a real cluster takes.

Every pod gets its own loopback address (its pod IP, e.g. 127.42.0.7; on Linux the whole
127.0.0.0/8 block is loopback) and real asyncio listeners on ephemeral ports:

- the **apps** of its containers (httpbin, echo) on the pod IP;
- one **pod port** per container port that something reaches: the network layer. It enforces
  NetworkPolicy (a dropped connection is never answered) and hands the connection to the pod's
  inbound sidecar, or straight to the app when the pod has none;
- with a sidecar, an **outbound** listener that captured containers use as their proxy, and for
  Linkerd the proxy's **inbound port** (4143) that meshed peers connect to.

Certificates come from a real CA (``meshtutor.pki``) and TLS is real TLS 1.3.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from meshtutor.model.base import Resource, ResourceRef
from meshtutor.policy import edge as edge_policy
from meshtutor.policy import netpol
from meshtutor.policy.apps import app_for
from meshtutor.policy.cluster import ApplyReport, Cluster, Mesh, PodState
from meshtutor.sandbox import proxy
from meshtutor.sandbox.apps import AppServer
from meshtutor.sandbox.edge import OUTSIDE_LOOPBACK, EdgeServer, ExternalAddresses
from meshtutor.sandbox.handshake import HandshakeRecorder, HandshakeTrace, enable_keylog
from meshtutor.sandbox.netio import close_quietly, hold_until_closed
from meshtutor.sandbox.podlog import (
    LINKERD_ACCESS_LOG,
    LogLine,
    PodLogs,
    istio_startup_lines,
    linkerd_startup_lines,
)

DROP_HOLD = 120.0
_EVENTS_KEPT = 512


def loopback_aliases_work() -> bool:
    """Linux routes all of 127.0.0.0/8 to loopback; macOS only has 127.0.0.1 by default."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.42.255.254", 0))
        except OSError:
            return False
    return True


@dataclass
class ProbeEvents:
    """What the sidecars saw for one probe (keyed by the probe's request header)."""

    mtls: bool = False
    client_identity: str | None = None
    server_identity: str | None = None
    destination: str | None = None
    handshake: HandshakeTrace | None = None
    handshake_error: str | None = None
    handshake_ms: float | None = None
    edge_handshake: HandshakeTrace | None = None
    edge_handshake_ms: float | None = None


@dataclass
class PodRuntime:
    """The running side of a pod: its listeners, credential and TLS contexts."""

    state: PodState
    sandbox: Sandbox
    apps: dict[int, AppServer | EdgeServer] = field(default_factory=dict)
    servers: list[asyncio.Server] = field(default_factory=list)
    entries: dict[int, tuple[str, int]] = field(default_factory=dict)
    closed_ports: dict[int, socket.socket] = field(default_factory=dict)
    outbound_port: int | None = None
    linkerd_port: int | None = None
    credential: Any = None
    credential_error: str | None = None
    #: each container's log, born with the pod: a replaced pod starts with an empty log
    logs: PodLogs = field(init=False)
    #: ``apache`` or ``json`` when linkerd-proxy writes an HTTP access log (decided by the
    #: injector from ``config.linkerd.io/access-log`` when the pod was created)
    linkerd_access_log: str | None = None
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)
    _serial: int | None = None

    def __post_init__(self) -> None:
        self.logs = PodLogs(self.state)

    @property
    def proxy_container(self) -> str | None:
        """The container whose log the pod's proxy writes: its sidecar, or the gateway's
        own Envoy container."""
        pod = self.state
        if pod.sidecar == "istio":
            return "istio-proxy"
        if pod.sidecar == "linkerd":
            return "linkerd-proxy"
        if edge_policy.role_of(pod) == "istio-gateway":
            return next(c.name for c in pod.spec.containers if "proxyv2" in c.image.lower())
        return None

    def proxy_log(self, line: str) -> None:
        self.logs.write(self.proxy_container, line)

    def _fresh(self) -> None:
        serial = self.credential.certificate.serial_number if self.credential else None
        if serial != self._serial:
            self._contexts.clear()
            self._serial = serial

    def _require_credential(self) -> None:
        if self.credential is None:
            raise ssl.SSLError(f"the sidecar has no certificate: {self.credential_error}")

    def server_context(self) -> ssl.SSLContext:
        from meshtutor.pki import server_context

        self._require_credential()
        self._fresh()
        if "server" not in self._contexts:
            alpn = proxy.LINKERD_ALPN if self.state.sidecar == "linkerd" else proxy.ISTIO_ALPN
            ctx = server_context(self.credential, check_time=False, alpn=alpn)
            self.sandbox.instrument(ctx, "server")
            self._contexts["server"] = ctx
        return self._contexts["server"]

    def client_context(self, *, linkerd: bool) -> ssl.SSLContext:
        from meshtutor.pki import client_context

        self._require_credential()
        self._fresh()
        if "client" not in self._contexts:
            alpn = proxy.LINKERD_ALPN if linkerd else proxy.ISTIO_ALPN
            ctx = client_context(self.credential, check_time=False, alpn=alpn)
            self.sandbox.instrument(ctx, "client")
            self._contexts["client"] = ctx
        return self._contexts["client"]


class Sandbox:
    """A running mesh. Use ``async with Sandbox("istio") as sb:`` or ``start``/``stop``."""

    def __init__(
        self,
        mesh: Mesh = "istio",
        *,
        clock: Any = None,
        key_type: str = "ecdsa",
        keylog: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.aliases = loopback_aliases_work()
        self._next_ip = 2
        self.cluster = Cluster(mesh, ip_allocator=self._allocate_ip)
        self.mesh = mesh
        self._clock = clock
        self._key_type = key_type
        self._keylog = keylog
        self._seed = seed
        self.ca: Any = None
        self.recorder = HandshakeRecorder()
        self._runtimes: dict[tuple[str, str], PodRuntime] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._blackhole: asyncio.Server | None = None
        self.blackhole_port = 0
        self.events: OrderedDict[str, ProbeEvents] = OrderedDict()
        # Hops a proxy passed through as opaque bytes (it cannot see the probe id in them),
        # by the local address of its connection to the app; the app that finds the probe id
        # (ingress-nginx, terminating curl's TLS) files the hop under it.
        self.opaque_hops: dict[tuple[Any, ...], dict[str, object]] = {}
        self._started = False
        self._foreign: dict[bool, ssl.SSLContext] = {}
        self._refusing: socket.socket | None = None
        self.external = ExternalAddresses(self)
        self._edge_contexts: dict[tuple[bytes, bytes, bool], ssl.SSLContext] = {}
        self._outside: PodState | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def _allocate_ip(self) -> str:
        if not self.aliases:
            return "127.0.0.1"
        n = self._next_ip
        self._next_ip += 1
        return f"127.42.{n // 254}.{n % 254 + 1}"

    async def start(self) -> Sandbox:
        if self._started:
            return self
        from meshtutor.pki import MeshCA, SystemClock

        self.ca = MeshCA.create(
            self.mesh,
            clock=self._clock or SystemClock(),
            key_type=self._key_type,
            seed=self._seed,
        )
        self._blackhole = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.blackhole_port = self._blackhole.sockets[0].getsockname()[1]
        self._started = True
        return self

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- logs ---------------------------------------------------------------------------------

    def _pod_logs(self, pod: PodState) -> PodLogs:
        from meshtutor.errors import ClusterStateError

        runtime = self._runtimes.get((pod.namespace, pod.name))
        if runtime is None or runtime.state.created != pod.created:
            raise ClusterStateError(f"pod {pod.namespace}/{pod.name} is not running in the sandbox")
        return runtime.logs

    def pod_log(self, pod: PodState, container: str) -> str:
        """What ``kubectl logs POD -c CONTAINER`` prints: the container's whole log so far, one
        line each ending in a newline (``""`` when it has written nothing).

        Raises ClusterStateError when the pod is not running here (deleted, or replaced by a
        newer pod) or has no such container (the API server's "container X is not valid for
        pod Y", a 400)."""
        return self._pod_logs(pod).container(container).text()

    def pod_log_lines(self, pod: PodState, container: str) -> list[LogLine]:
        """The same log as :meth:`pod_log`, each line with the time it was written (for
        ``--timestamps``, ``--since`` and ``--since-time``)."""
        return list(self._pod_logs(pod).container(container).lines)

    def follow_log(self, pod: PodState, container: str) -> asyncio.Queue[str]:
        """``kubectl logs -f``: a queue of the lines written from now on, one per item with its
        newline. The item ``""`` ends the stream: the pod was deleted or replaced, or the
        sandbox stopped (kubelet ends a follow when the container stops).

        Read ``pod_log`` and call this without an ``await`` in between, and no line is lost or
        repeated. To stop following before the end, call :meth:`unfollow_log` with the queue.
        A follower that stops reading loses its oldest lines, never the sandbox its memory.
        Call it on the sandbox's event loop: lines are put with ``put_nowait`` from there."""
        return self._pod_logs(pod).container(container).follow()

    def unfollow_log(self, queue: asyncio.Queue[str]) -> None:
        """Stop feeding ``queue`` (from :meth:`follow_log`); unknown queues are ignored."""
        for runtime in self._runtimes.values():
            for log in runtime.logs.containers.values():
                if log.unfollow(queue):
                    return

    async def stop(self) -> None:
        """Close every listener, connection and task: nothing keeps listening afterwards."""
        await self.external.close()
        for runtime in list(self._runtimes.values()):
            await self._stop_pod(runtime)
        self._runtimes.clear()
        if self._blackhole is not None:
            self._blackhole.close()
            await self._blackhole.wait_closed()
            self._blackhole = None
        if self._refusing is not None:
            self._refusing.close()
            self._refusing = None
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        self._started = False

    def refusing_port(self) -> int:
        """A port on 127.0.0.1 that refuses connections (bound, never listening): what
        kube-proxy's REJECT rule gives a service without endpoints."""
        if self._refusing is None:
            self._refusing = socket.socket()
            self._refusing.bind(("127.0.0.1", 0))
        return int(self._refusing.getsockname()[1])

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hold_until_closed(reader, DROP_HOLD)
        await close_quietly(writer)

    # --- cluster operations -------------------------------------------------------------------

    async def apply(self, resources: Iterable[Resource]) -> ApplyReport:
        """Create or update objects, then start, replace or stop pods to match."""
        report = self.cluster.apply(resources)
        await self.reconcile()
        await self.warm()
        await self.external.sync()
        return report

    async def delete(self, refs: Iterable[Resource | ResourceRef]) -> list[str]:
        lines = self.cluster.delete(refs)
        await self.reconcile()
        await self.external.sync()
        return lines

    async def restart(self, namespace: str, deployment: str) -> None:
        self.cluster.restart(namespace, deployment)
        await self.reconcile()

    async def reconcile(self) -> None:
        wanted = {(p.namespace, p.name): p for p in self.cluster.pods()}
        for key, runtime in list(self._runtimes.items()):
            pod = wanted.get(key)
            if pod is None or pod.created != runtime.state.created:
                await self._stop_pod(runtime)
                del self._runtimes[key]
        for key, pod in wanted.items():
            if key not in self._runtimes:
                self._runtimes[key] = await self._start_pod(pod)
            else:
                self._runtimes[key].state = pod

    async def warm(self) -> None:
        """Open every pod port a Service or container declares and build the TLS contexts now,
        so the first probe pays for nothing (what "ready" means for the boot budget)."""
        from meshtutor.policy.predict import service_endpoints

        ports: dict[tuple[str, str], set[int]] = {}
        for service in self.cluster.services():
            for svc_port in service.ports:
                for pod, port in service_endpoints(self.cluster, service, svc_port):
                    ports.setdefault((pod.namespace, pod.name), set()).add(port)
        for key, runtime in self._runtimes.items():
            wanted = ports.get(key, set()) | set(runtime.apps)
            for container in runtime.state.spec.containers:
                wanted |= {p.container_port for p in container.ports}
            for port in sorted(wanted):
                await self.entry(runtime, port)
            if runtime.credential is not None:
                runtime.server_context()
                runtime.client_context(linkerd=self.mesh == "linkerd")

    def advance_clock(self, delta: timedelta) -> int:
        """Fast-forward the mesh clock; returns how many certificates rotated."""
        clock = self.ca.clock
        if not hasattr(clock, "advance"):
            raise ValueError("this sandbox runs on the real clock; create it with a ManualClock")
        clock.advance(delta)
        rotated = 0
        for runtime in self._runtimes.values():
            if runtime.credential is not None:
                rotated += runtime.credential.refresh()
        return rotated

    # --- pods ---------------------------------------------------------------------------------

    def runtime(self, pod: PodState) -> PodRuntime:
        return self._runtimes[(pod.namespace, pod.name)]

    def runtimes(self) -> list[PodRuntime]:
        return list(self._runtimes.values())

    async def _start_pod(self, pod: PodState) -> PodRuntime:
        runtime = PodRuntime(pod, self)
        role = edge_policy.role_of(pod)
        if role is not None:
            # An ingress proxy: its listeners stand where the app's would.
            ports = {p.container_port for c in pod.spec.containers for p in c.ports}
            if role == "ingress-nginx":
                ports = {80, 443}
            else:
                ports.add(edge_policy.STATUS_PORT)  # from Envoy's bootstrap, declared or not
            for port in sorted(ports):
                runtime.apps[port] = await EdgeServer.start(self, runtime, port, role)
        for container in pod.spec.containers if role is None else ():
            app = app_for(container)
            if app.kind == "client":
                continue
            for port in app.ports:
                if port not in runtime.apps:
                    runtime.apps[port] = await AppServer.start(
                        app,
                        pod.ip,
                        0,
                        pod_name=pod.name,
                        namespace=pod.namespace,
                        image=container.image,
                        log=runtime.logs.sink(container.name),
                        listen_port=port,
                    )
        if pod.sidecar is not None or role == "istio-gateway":
            from meshtutor.errors import PKIError

            started = time.perf_counter()
            try:
                runtime.credential = self.ca.credential(pod.namespace, pod.service_account)
            except PKIError as exc:
                # istio-agent / linkerd identity cannot get a certificate (e.g. the CA expired):
                # the sidecar runs but every mutual TLS handshake through it fails.
                runtime.credential_error = str(exc)
            self._proxy_started(runtime, time.perf_counter() - started)
            server = await asyncio.start_server(
                self._handler(lambda r, w, rt=runtime: proxy.outbound(self, rt, r, w)), pod.ip, 0
            )
            runtime.servers.append(server)
            runtime.outbound_port = server.sockets[0].getsockname()[1]
        return runtime

    def _proxy_started(self, runtime: PodRuntime, latency: float) -> None:
        """The proxy's start-up lines, and whether linkerd-proxy keeps an access log."""
        pod = runtime.state
        credential = runtime.credential
        if pod.sidecar == "linkerd":
            from meshtutor.policy.linkerd import linkerd_identity

            # The injector reads the annotation from the pod template, else the namespace,
            # when the pod is created (linkerd website features/access-logging.md).
            value = pod.annotations.get(LINKERD_ACCESS_LOG) or self.cluster.namespace_annotations(
                pod.namespace
            ).get(LINKERD_ACCESS_LOG)
            if value is not None and value.lower() in ("apache", "json"):
                runtime.linkerd_access_log = value.lower()
            identity = linkerd_identity(pod.namespace, pod.service_account)
            lines = linkerd_startup_lines(runtime.logs, identity, certified=credential is not None)
        else:
            ttl = None
            if credential is not None:
                ttl = (credential.current.not_after - self.ca.clock.now()).total_seconds()
            lines = istio_startup_lines(latency=latency, ttl=ttl)
        for line in lines:
            runtime.proxy_log(line)

    async def _stop_pod(self, runtime: PodRuntime) -> None:
        runtime.logs.close()
        for server in runtime.servers:
            server.close()
        for server in runtime.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for app in runtime.apps.values():
            await app.close()
        for sock in runtime.closed_ports.values():
            sock.close()
        runtime.servers.clear()

    def _handler(self, fn: Any) -> Any:
        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.get_running_loop().create_task(self._guard(fn(reader, writer), writer))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

        return accept

    async def _guard(self, coro: Any, writer: asyncio.StreamWriter) -> None:
        try:
            await coro
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
            await close_quietly(writer)

    def _source_of(self, writer: asyncio.StreamWriter) -> PodState | None:
        peer = writer.get_extra_info("peername")
        if not peer or not self.aliases:
            return None
        if peer[0] == OUTSIDE_LOOPBACK:
            if self._outside is None:
                self._outside = edge_policy.outside_client()
            return self._outside
        return self.cluster.pod_by_ip(peer[0])

    async def entry(self, runtime: PodRuntime, port: int) -> tuple[str, int]:
        """Where a connection to ``pod IP:port`` lands. Created on first use; a port where
        nothing listens (no app, no sidecar) refuses connections, as a real one would."""
        pod = runtime.state
        if edge_policy.role_of(pod) == "istio-gateway" and not edge_policy.gateway_listens(
            self.cluster, pod, port
        ):
            # The gateway's Envoy listens only where a Gateway server is bound, which changes
            # with every apply, so this is decided per connection, never cached.
            return pod.ip, self._refusing_on(runtime, port)
        if port in runtime.entries:
            return runtime.entries[port]
        if pod.sidecar is None and port not in runtime.apps:
            runtime.entries[port] = (pod.ip, self._refusing_on(runtime, port))
            return runtime.entries[port]

        async def pod_port(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            source = self._source_of(writer)
            if source is not None and not self._network_allows(source, runtime.state, port):
                await hold_until_closed(reader, DROP_HOLD)
                await close_quietly(writer)
                return
            await proxy.inbound(self, runtime, port, source, reader, writer)

        server = await asyncio.start_server(self._handler(pod_port), pod.ip, 0)
        runtime.servers.append(server)
        runtime.entries[port] = (pod.ip, server.sockets[0].getsockname()[1])
        return runtime.entries[port]

    def _refusing_on(self, runtime: PodRuntime, port: int) -> int:
        """A port on the pod's address that refuses connections (bound, never listening)."""
        if port not in runtime.closed_ports:
            sock = socket.socket()
            sock.bind((runtime.state.ip, 0))
            runtime.closed_ports[port] = sock
        return int(runtime.closed_ports[port].getsockname()[1])

    async def linkerd_entry(self, runtime: PodRuntime) -> tuple[str, int]:
        """The Linkerd proxy's inbound port (4143 in a real pod)."""
        if runtime.linkerd_port is None:

            async def inbound(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                source = self._source_of(writer)
                if source is not None and not self._network_allows(source, runtime.state, 4143):
                    await hold_until_closed(reader, DROP_HOLD)
                    await close_quietly(writer)
                    return
                await proxy.linkerd_inbound_port(self, runtime, source, reader, writer)

            server = await asyncio.start_server(self._handler(inbound), runtime.state.ip, 0)
            runtime.servers.append(server)
            runtime.linkerd_port = server.sockets[0].getsockname()[1]
        return runtime.state.ip, runtime.linkerd_port

    def _network_allows(self, source: PodState, target: PodState, port: int) -> bool:
        return (
            netpol.egress_allowed(self.cluster, source, target, port).allowed
            and netpol.ingress_allowed(self.cluster, source, target, port).allowed
        )

    # --- TLS plumbing -------------------------------------------------------------------------

    def instrument(self, ctx: ssl.SSLContext, side: str) -> None:
        self.recorder.attach(ctx, side=side)  # type: ignore[arg-type]
        if self._keylog:
            enable_keylog(ctx, self._keylog)

    def foreign_client_context(self, *, with_certificate: bool) -> ssl.SSLContext:
        """TLS a DestinationRule SIMPLE or MUTUAL sends: no mesh certificate, no mesh trust."""
        if with_certificate not in self._foreign:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if with_certificate:
                from meshtutor.pki import MeshCA, client_context

                stranger = MeshCA.create("istio", clock=self.ca.clock).credential("x", "x")
                ctx = client_context(stranger, check_time=False)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self.instrument(ctx, "client")
            self._foreign[with_certificate] = ctx
        return self._foreign[with_certificate]

    def edge_server_context(
        self, chain: bytes, key: bytes, *, require_client_cert: bool = False
    ) -> ssl.SSLContext:
        """A TLS server context for an edge certificate (a kubernetes.io/tls Secret)."""
        cache_key = (chain, key, require_client_cert)
        if cache_key not in self._edge_contexts:
            from meshtutor.pki.edge import server_context

            ctx = server_context(chain, key)
            if require_client_cert:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cadata=chain.decode("ascii", "replace"))
            self.instrument(ctx, "server")
            self._edge_contexts[cache_key] = ctx
        return self._edge_contexts[cache_key]

    def fake_edge_certificate(self) -> tuple[bytes, bytes]:
        from meshtutor.pki.edge import fake_certificate

        return fake_certificate()

    def record_edge_handshake(
        self, probe_id: str | None, ssl_object: ssl.SSLObject, duration_ms: float | None
    ) -> None:
        trace = self.recorder.pop(ssl_object)
        event = self._event(probe_id)
        if event is not None:
            event.edge_handshake = trace
            event.edge_handshake_ms = duration_ms

    def note_edge_failure(
        self, writer: asyncio.StreamWriter, ssl_object: ssl.SSLObject, error: object
    ) -> None:
        self.recorder.pop(ssl_object)

    def edge_trust(self, probe: Any, chain: bytes | None, host: str) -> str | None:
        from meshtutor.pki.edge import edge_trust

        return edge_trust(probe, chain, host)

    def certificate_problem(self, pod: PodState) -> str | None:
        """What is wrong with a sidecar's certificate at the mesh clock, or None."""
        runtime = self._runtimes.get((pod.namespace, pod.name))
        if runtime is None:
            return None
        if runtime.credential is None:
            return runtime.credential_error
        result = self.ca.verify(runtime.credential.chain)
        return None if result.ok else str(result.message)

    def verify_peer(self, tls: ssl.SSLObject, *, expected: str | None) -> str | None:
        """Check the peer at the mesh clock (OpenSSL ignores our fast-forwarded time) and its
        identity (secure naming); None when fine, else the reason."""
        from meshtutor.pki import verify_peer

        result = verify_peer(tls, self.ca, expected_identity=expected)
        return None if result.ok else result.message

    # --- events -------------------------------------------------------------------------------

    def _event(self, probe_id: str | None) -> ProbeEvents | None:
        if not probe_id:
            return None
        event = self.events.get(probe_id)
        if event is None:
            event = self.events[probe_id] = ProbeEvents()
            while len(self.events) > _EVENTS_KEPT:
                self.events.popitem(last=False)
        return event

    def record(self, probe_id: str | None, **values: Any) -> None:
        event = self._event(probe_id)
        if event is not None:
            for key, value in values.items():
                setattr(event, key, value)

    def record_handshake(
        self,
        probe_id: str | None,
        ssl_object: ssl.SSLObject,
        *,
        error: object = None,
        duration_ms: float | None = None,
    ) -> None:
        trace = self.recorder.pop(ssl_object)
        event = self._event(probe_id)
        if event is not None:
            event.handshake = trace
            if isinstance(error, Exception) and error.args and isinstance(error.args[0], str):
                event.handshake_error = error.args[0]
            else:
                event.handshake_error = str(error) if error is not None else None
            event.handshake_ms = duration_ms

    def note_failed_handshake(
        self, pod: PodState, ssl_object: ssl.SSLObject, error: object
    ) -> None:
        self.recorder.pop(ssl_object)
