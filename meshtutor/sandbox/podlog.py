"""What ``kubectl logs POD -c CONTAINER`` shows in the sandbox: each container's own log.

Every pod keeps one bounded ring of lines per container (:class:`PodLogs`), created with the
pod, so a replaced pod starts with an empty log as on a real cluster. The lines are written
where the sandbox knows an outcome, in the formats of the real programs:

- **istio-proxy**: istio-agent start-up lines, then Envoy's access log in the TEXT format Istio
  installs by default (``EnvoyTextLogFormat`` in istio/istio ``pilot/pkg/model/
  telemetry_logging.go``; the Istio docs task "Envoy Access Logs",
  ``content/en/docs/tasks/observability/logs/access-log/index.md``). Istio writes it only when
  access logging is enabled (``meshConfig.accessLogFile: /dev/stdout`` or a Telemetry
  resource); the sandbox behaves as a mesh installed with it enabled, as that task does,
  because an access log is what a learner reads to see *why* a request failed.
- **linkerd-proxy**: the proxy's INFO start-up lines (linkerd2-proxy ``linkerd2-proxy/src/
  main.rs``, in ``tracing``'s format with the uptime timer of ``linkerd/tracing/src/
  uptime.rs``), its INFO line for each request or connection its policy denies
  (``linkerd/app/inbound/src/policy/http.rs`` and ``tcp.rs``), and, only when the pod or its
  namespace has ``config.linkerd.io/access-log: apache|json``, the inbound HTTP access log
  (linkerd website ``features/access-logging.md``; ``linkerd/tracing/src/access_log.rs``).
  Linkerd logs nothing per request otherwise.
- **the app containers**: what the images print (go-httpbin's slog lines, hashicorp/http-echo's
  lines; a plain line for the other stand-in apps), see :mod:`meshtutor.sandbox.apps`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meshtutor.errors import ClusterStateError, printable
from meshtutor.policy.cluster import PodState

__all__ = [
    "LINKERD_ACCESS_LOG",
    "MAX_LINES",
    "MAX_LINE_CHARS",
    "ContainerLog",
    "EnvoyAccess",
    "EnvoyRequest",
    "LogLine",
    "PodLogs",
    "envoy_reset",
    "go_duration",
    "istio_agent_line",
    "istio_startup_lines",
    "linkerd_access_line",
    "linkerd_line",
    "linkerd_startup_lines",
    "utc_now",
]

MAX_LINES = 5000
"""Lines kept per container; the oldest are dropped first."""
MAX_LINE_CHARS = 2048
"""A longer line (a huge URL) is cut here. With :data:`MAX_LINES` a container's log stays under
10 MiB, kubelet's default ``containerLogMaxSize``, however a request is shaped."""

LINKERD_ACCESS_LOG = "config.linkerd.io/access-log"
"""The annotation (pod template or namespace) that turns on linkerd-proxy's HTTP access log."""

# The release the linkerd-proxy start-up line names: linkerd2-proxy tag release/v2.366.0, its
# short commit and build date (``{profile} {version} ({sha}) by {vendor} on {date}``, main.rs).
LINKERD_PROXY_RELEASE = "release 2.366.0 (0dcf4e1) by linkerd on 2026-08-12T18:13:11Z"


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- the rings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One line of a container's log and when it was written (``kubectl logs --timestamps``
    and ``--since`` read the time; kubelet stamps each line as the runtime receives it)."""

    time: datetime
    text: str


class ContainerLog:
    """One container's log: the last :data:`MAX_LINES` lines, and the queues following it."""

    def __init__(self) -> None:
        self.lines: deque[LogLine] = deque(maxlen=MAX_LINES)
        self._followers: set[asyncio.Queue[str]] = set()
        self.closed = False

    def write(self, line: str) -> None:
        """Append one line. Control characters other than tabs (istio-agent's separator) are
        escaped: a request path or User-Agent must not drive the learner's terminal through
        ``kubectl logs``."""
        if self.closed:
            return
        text = "\t".join(printable(part) for part in line.rstrip("\n").split("\t"))
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS]
        self.lines.append(LogLine(utc_now(), text))
        for queue in self._followers:
            _offer(queue, text + "\n")

    def text(self) -> str:
        return "".join(f"{line.text}\n" for line in self.lines)

    def follow(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=MAX_LINES)
        if self.closed:
            queue.put_nowait("")
        else:
            self._followers.add(queue)
        return queue

    def unfollow(self, queue: asyncio.Queue[str]) -> bool:
        if queue in self._followers:
            self._followers.discard(queue)
            return True
        return False

    def close(self) -> None:
        """The container stopped: every follower gets the end marker ``""``."""
        self.closed = True
        for queue in self._followers:
            _offer(queue, "")
        self._followers.clear()


def _offer(queue: asyncio.Queue[str], item: str) -> None:
    """Put without waiting; a follower that stopped reading loses its oldest lines, never the
    sandbox its memory (the queue is bounded like the ring)."""
    while True:
        try:
            queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


@dataclass
class PodLogs:
    """The logs of one pod's containers, born with the pod and dropped with it."""

    pod: PodState
    started: float = field(default_factory=time.monotonic)
    containers: dict[str, ContainerLog] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.pod.container_names:
            self.containers[name] = ContainerLog()

    def container(self, name: str) -> ContainerLog:
        found = self.containers.get(name)
        if found is None:
            # The API server's own wording (kubernetes pkg/registry/core/pod/strategy.go,
            # LogLocation), which it answers with 400 BadRequest.
            raise ClusterStateError(f"container {name} is not valid for pod {self.pod.name}")
        return found

    def write(self, container: str | None, line: str) -> None:
        if container is not None and container in self.containers:
            self.containers[container].write(line)

    def sink(self, container: str | None) -> Callable[[str], None]:
        """A writer of lines into ``container``'s log (one that drops them when None)."""
        return lambda line: self.write(container, line)

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def close(self) -> None:
        for log in self.containers.values():
            log.close()


# --- istio-proxy -----------------------------------------------------------------------------


def _dash(value: object) -> str:
    """Envoy prints ``-`` for a value it does not have."""
    if value is None or value == "":
        return "-"
    return str(value)


@dataclass(frozen=True)
class EnvoyAccess:
    """One line of Istio's default TEXT access log (``EnvoyTextLogFormat``):

    ``[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
    %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
    "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
    %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
    "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
    %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
    %REQUESTED_SERVER_NAME% %ROUTE_NAME%``

    A TCP connection (no HTTP request) leaves method, path and protocol empty (``"- - -"``)
    and code 0, as in the "filter_chain_not_found" line Envoy writes for plaintext refused
    by a STRICT listener.
    """

    start: datetime
    code: int
    method: str | None = None
    path: str | None = None
    protocol: str | None = None
    flags: str = "-"
    details: str | None = None
    termination: str | None = None
    transport_failure: str | None = None
    bytes_received: int = 0
    bytes_sent: int = 0
    duration_ms: int = 0
    upstream_service_ms: int | None = None
    forwarded_for: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    authority: str | None = None
    upstream_host: str | None = None
    upstream_cluster: str | None = None
    upstream_local: str | None = None
    downstream_local: str | None = None
    downstream_remote: str | None = None
    server_name: str | None = None
    route: str | None = None

    def line(self) -> str:
        when = self.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{self.start.microsecond // 1000:03d}Z"
        )
        return (
            f"[{when}] "
            f'"{_dash(self.method)} {_dash(self.path)} {_dash(self.protocol)}" '
            f"{self.code} {_dash(self.flags)} {_dash(self.details)} {_dash(self.termination)} "
            f'"{_dash(self.transport_failure)}" {self.bytes_received} {self.bytes_sent} '
            f"{self.duration_ms} {_dash(self.upstream_service_ms)} "
            f'"{_dash(self.forwarded_for)}" "{_dash(self.user_agent)}" '
            f'"{_dash(self.request_id)}" "{_dash(self.authority)}" "{_dash(self.upstream_host)}" '
            f"{_dash(self.upstream_cluster)} {_dash(self.upstream_local)} "
            f"{_dash(self.downstream_local)} {_dash(self.downstream_remote)} "
            f"{_dash(self.server_name)} {_dash(self.route)}"
        )


def _no_spaces(text: str) -> str:
    # Envoy's StringUtil::replaceAllEmptySpace: details never break the log's columns.
    return "".join("_" if ch.isspace() else ch for ch in text)


_RESET_FLAGS = {
    # Router::Filter::streamResetReasonToResponseFlag (envoy source/common/router/router.cc).
    "connection failure": "UF",
    "local connection failure": "UF",
    "remote connection failure": "UF",
    "connection timeout": "UF",
    "connection termination": "UC",
    "local reset": "LR",
    "remote reset": "UR",
    "overflow": "UO",
    "protocol error": "UPE",
}


def envoy_reset(reason: str, *, retried: bool) -> tuple[str, str, str | None]:
    """Response flags, details and transport failure for an upstream reset, from the reason
    Envoy also puts in its 503 body (``reset reason: <reason>[, transport failure reason:
    <transport>]``), so the log and what curl printed always agree.

    Details are ``upstream_reset_before_response_started{<reason>[,<transport>]}`` with spaces
    made underscores (router.cc ``onUpstreamReset``). ``retried``: Istio's default route retries
    connect failures twice (``retry_on: connect-failure,...``, ``num_retries: 2``, istio/istio
    ``pilot/pkg/networking/core/route/retry/retry.go``), so a connect failure at a client
    sidecar ends with the retry limit exceeded as well (``UF,URX``).
    """
    base, _, transport = reason.partition(", transport failure reason: ")
    flag = _RESET_FLAGS.get(base, "UF")
    flags = f"{flag},URX" if retried and flag == "UF" else flag
    inner = base + (f",{transport}" if transport else "")
    details = _no_spaces(f"upstream_reset_before_response_started{{{inner}}}")
    return flags, details, (_no_spaces(transport) if transport else None)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` for a non-negative duration (``1.5ms``, ``23h59m59s``)."""
    nanos = round(seconds * 1e9)
    if nanos < 1000:
        return f"{nanos}ns"
    if nanos < 1_000_000:
        return f"{_trim(nanos / 1e3)}µs"
    if nanos < 1_000_000_000:
        return f"{_trim(nanos / 1e6)}ms"
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _trim(rest / 1e9)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def istio_agent_line(level: str, message: str, *, scope: str = "", labels: str = "") -> str:
    """istio-agent's log format (istio ``pkg/log``): time, level, scope, message and labels,
    separated by tabs: ``2024-11-20T10:00:00.123456Z	info	Envoy proxy is ready``."""
    now = utc_now()
    when = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}Z"
    parts = [when, level] + ([scope] if scope else []) + [message] + ([labels] if labels else [])
    return "\t".join(parts)


# --- linkerd-proxy ---------------------------------------------------------------------------


def linkerd_line(
    uptime: float,
    message: str,
    *,
    target: str = "linkerd2_proxy",
    spans: str = "",
    level: str = "INFO",
    thread: int = 1,
) -> str:
    """A line of linkerd-proxy's plain log: the uptime (``[{secs:>6}.{micros:06}s]``,
    ``uptime.rs``), the level right-aligned in five columns, the thread, the span context and
    the target, as ``tracing_subscriber``'s default format prints them."""
    secs = int(uptime)
    micros = int((uptime - secs) * 1_000_000)
    context = f"{spans}: " if spans else ""
    return (
        f"[{secs:>6}.{micros:06d}s] {level:>5} ThreadId({thread:02d}) {context}{target}: {message}"
    )


def linkerd_access_line(
    fmt: str,
    *,
    client_addr: str,
    client_id: str | None,
    method: str,
    uri: str,
    version: str,
    status: int,
    host: str,
    user_agent: str,
    request_bytes: str,
    response_bytes: str,
    trace_id: str,
    total_ns: int,
    processing_ns: int,
) -> str:
    """One linkerd-proxy HTTP access log entry (``linkerd/http/access-log/src/lib.rs`` records
    the fields; ``linkerd/tracing/src/access_log.rs`` writes them): Apache common log format
    ``<client.addr> <client.id> - [<timestamp>] "<method> <uri> <version>" <status>``, or one
    JSON object with every field (keys sorted, as the docs' examples show)."""
    now = utc_now()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"
    who = client_id or "-"
    if fmt == "json":
        doc = {
            "client.addr": client_addr,
            "client.id": who,
            "host": host,
            "method": method,
            "processing_ns": str(processing_ns),
            "request_bytes": request_bytes,
            "response_bytes": response_bytes,
            "status": status,
            "timestamp": stamp,
            "total_ns": str(total_ns),
            "trace_id": trace_id,
            "uri": uri,
            "user_agent": user_agent,
            "version": version,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f'{client_addr} {who} - [{stamp}] "{method} {uri} {version}" {status}'


class EnvoyRequest:
    """What one Envoy knows of a request (or TCP connection) while it handles it; ``finish``
    writes its access log line, once, when the outcome is known."""

    def __init__(
        self,
        sink: Callable[[str], None],
        *,
        method: str | None = None,
        path: str | None = None,
        protocol: str | None = None,
        request_id: str | None = None,
        authority: str | None = None,
        user_agent: str | None = None,
        forwarded_for: str | None = None,
        bytes_received: int = 0,
        upstream_cluster: str | None = None,
        downstream_local: str | None = None,
        downstream_remote: str | None = None,
        server_name: str | None = None,
        route: str | None = None,
    ) -> None:
        self._sink = sink
        self.start = utc_now()
        self._t0 = time.monotonic()
        self._sent: float | None = None
        self._done = False
        self.fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "protocol": protocol,
            "request_id": request_id,
            "authority": authority,
            "user_agent": user_agent,
            "forwarded_for": forwarded_for,
            "bytes_received": bytes_received,
            "upstream_cluster": upstream_cluster,
            "downstream_local": downstream_local,
            "downstream_remote": downstream_remote,
            "server_name": server_name,
            "route": route,
        }

    def upstream(self, host: str | None, local: str | None = None) -> None:
        """The upstream host chosen (and, once connected, the local address used)."""
        self.fields["upstream_host"] = host
        if local is not None:
            self.fields["upstream_local"] = local

    def sent(self) -> None:
        """The request went upstream: %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% counts from here."""
        self._sent = time.monotonic()

    def finish(
        self,
        code: int,
        *,
        flags: str = "-",
        details: str | None = None,
        termination: str | None = None,
        transport: str | None = None,
        bytes_sent: int = 0,
        bytes_received: int | None = None,
    ) -> None:
        if self._done:
            return
        self._done = True
        now = time.monotonic()
        fields = dict(self.fields)
        if bytes_received is not None:
            fields["bytes_received"] = bytes_received
        service = (
            round((now - self._sent) * 1000)
            if self._sent is not None and details == "via_upstream"
            else None
        )
        entry = EnvoyAccess(
            start=self.start,
            code=code,
            flags=flags,
            details=details,
            termination=termination,
            transport_failure=transport,
            bytes_sent=bytes_sent,
            duration_ms=round((now - self._t0) * 1000),
            upstream_service_ms=service,
            **fields,
        )
        self._sink(entry.line())

    def reset(self, reason: str, *, status: int = 503, retried: bool, sent: int = 0) -> None:
        """An upstream reset answered with Envoy's local reply ``status`` (``sent`` body
        bytes); ``reason`` is the text after "reset reason: " in that reply."""
        flags, details, transport = envoy_reset(reason, retried=retried)
        self.finish(status, flags=flags, details=details, transport=transport, bytes_sent=sent)

    def tcp_failure(self, reason: str) -> None:
        """A TCP proxy (no HTTP) that could not reach its upstream: code 0, flags only."""
        flags, _, transport = envoy_reset(reason, retried=False)
        self.finish(0, flags=flags, transport=transport)

    def gave_up(self) -> None:
        """The client closed its connection before any answer: ``0 DC
        downstream_remote_disconnect`` (StreamInfo ResponseCodeDetails)."""
        self.finish(0, flags="DC", details="downstream_remote_disconnect")


def istio_startup_lines(*, latency: float, ttl: float | None) -> list[str]:
    """A few of istio-proxy's start-up lines: the agent's certificate (security/pkg/nodeagent/
    cache/secretcache.go) and readiness (pilot/cmd/pilot-agent/status/server.go). Nothing when
    the agent got no certificate: Envoy never becomes ready then."""
    if ttl is None:
        return []
    return [
        istio_agent_line(
            "info",
            "generated new workload certificate",
            scope="cache",
            labels=f"resourceName=default latency={go_duration(latency)} ttl={go_duration(ttl)}",
        ),
        istio_agent_line("info", "Envoy proxy is ready"),
    ]


def linkerd_startup_lines(logs: PodLogs, identity: str, *, certified: bool) -> list[str]:
    """linkerd-proxy's INFO start-up lines (linkerd2-proxy ``linkerd2-proxy/src/main.rs``; the
    addresses are the proxy injector's defaults; ``Certified identity`` from
    ``linkerd/app/src/lib.rs`` once the identity controller signed the certificate)."""
    messages = [
        LINKERD_PROXY_RELEASE,
        "Admin interface on 0.0.0.0:4191",
        "Inbound interface on 0.0.0.0:4143",
        "Outbound interface on 127.0.0.1:4140",
        "Tap interface on 0.0.0.0:4190",
        f"SNI is {identity}",
        f"Local identity is {identity}",
        "Destinations resolved via linkerd-dst-headless.linkerd.svc.cluster.local:8086 "
        "(linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local)",
    ]
    lines = [linkerd_line(logs.uptime(), m) for m in messages]
    if certified:
        lines.append(
            linkerd_line(
                logs.uptime(),
                f"Certified identity id={identity}",
                target="linkerd_app",
                spans="daemon:identity",
                thread=2,
            )
        )
    return lines
