"""``FakeAPIServer``: the sandbox's Kubernetes API on a loopback socket, for tests only.

The protocol is ``meshtutor.kubeapi``'s (``APICore``: discovery, the object store, server-side
apply, patches, selectors, ``Status`` errors …), the one meshtutor serves to kubectl; this
double adds what a test of ``KubeBackend`` needs around it and a real cluster would not
offer:

* a threaded HTTP(S) transport on 127.0.0.1 (a ``trustme`` CA unless ``tls=False``) with a
  bearer token, and a request log (:attr:`requests`) so a test can assert what the client sent;
* fault injection (:meth:`fail_next`, :meth:`delay_next`, :meth:`disconnect_next`,
  :meth:`before_next`, :meth:`answer_next`, :meth:`trickle_next`);
* an RBAC stand-in (:meth:`deny`: 403 Forbidden on the matching requests, ``allowed: false``
  in reviews); everything is allowed by default;
* ``pods/exec`` over a websocket (``v5.channel.k8s.io``, ``v4.channel.k8s.io``, ...): the
  double runs nothing, a test registers responders with :meth:`on_exec`;
* controllers' stand-ins: a deployment's status that becomes ready after a configurable
  delay; :meth:`add_pod` adds a pod as the ReplicaSet controller and the kubelet would, with
  its ReplicaSet; pod logs are what :meth:`set_pod_log` says;
* CRD groups installed and removed at will (:meth:`install_crds`, :meth:`uninstall_crds`).

Not served here: ``watch=true`` (answered 400), ``attach``/``portforward``, protobuf.

What the official client (``kubernetes`` 37) asks during discovery: ``DynamicClient(...)``
GETs ``/version`` and ``/apis`` (legacy ``APIGroupList``, ``Accept: application/json``; it
never asks for aggregated discovery) unless its cache file already has them, then one
``/api/v1`` or ``/apis/<group>/<version>`` per group-version it searches. A lookup whose
``api_version`` has no group (``"v1"``) searches every group that has that version.

Everything runs on 127.0.0.1 with an ephemeral port, in background threads that :meth:`stop`
joins; no handler blocks for long (socket timeouts, and every injected delay is cut short by
:meth:`stop`).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import re
import socket
import socketserver
import ssl
import struct
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlsplit

import trustme
import yaml

from meshtutor.kubeapi.core import APICore, Attributes, Request, Target, WatchEvent
from meshtutor.kubeapi.protocol import (
    NO_RESOURCE,
    REASONS,
    APIError,
    choose_container,
    compact,
    details,
    forbidden_message,
    not_found,
    status_body,
    timestamp,
)
from meshtutor.kubeapi.resources import (
    ALL_CRD_GROUPS,
    APPS,
    AUTHORIZATION,
    CORE,
    CRD_GROUPS,
    GATEWAY_API_CRD_GROUPS,
    INITIAL_NAMESPACES,
    ISTIO_CRD_GROUPS,
    LINKERD_CRD_GROUPS,
    NETWORKING,
    APIGroup,
    ResourceType,
    Subresource,
)

__all__ = [
    "ALL_CRD_GROUPS",
    "BUILTIN_GROUPS",
    "CONTEXT",
    "CRD_GROUPS",
    "DEFAULT_EXEC_PROTOCOLS",
    "GATEWAY_API_CRD_GROUPS",
    "INITIAL_NAMESPACES",
    "ISTIO_CRD_GROUPS",
    "LINKERD_CRD_GROUPS",
    "APIGroup",
    "ExecCall",
    "ExecFailure",
    "ExecHandler",
    "ExecRequest",
    "FakeAPIServer",
    "FakeAPIServerFactory",
    "RecordedRequest",
    "ResourceType",
    "Subresource",
]

# --------------------------------------------------------------------------------------
# The catalogue of API groups and resources the double serves
# --------------------------------------------------------------------------------------


FAKE_BUILTIN_GROUPS: tuple[APIGroup, ...] = (CORE, APPS, AUTHORIZATION, NETWORKING)
"""The built-in groups the double serves (a kind cluster's, as the tests pin its discovery)."""
BUILTIN_GROUPS = FAKE_BUILTIN_GROUPS

CONTEXT = "kind-meshtutor-test"
"""The context (and cluster and user) name :meth:`FakeAPIServer.kubeconfig` writes."""

# --------------------------------------------------------------------------------------
# Errors, records and exec types
# --------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the double received it (and the status it answered)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON / YAML, or None
    raw_body: bytes
    status: int = 0
    time: float = 0.0

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


@dataclass(frozen=True)
class ExecRequest:
    """A ``pods/exec`` call as the double saw it (``container`` already defaulted)."""

    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    protocol: str


class ExecFailure(Exception):
    """Raise from an exec responder to answer with this ``Status`` on the error channel
    (e.g. a container that cannot run the command) instead of an exit code."""

    def __init__(self, message: str, reason: str = "InternalError") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


ExecOutput = tuple[bytes | str, bytes | str, int]
ExecHandler = Callable[[list[str]], ExecOutput]
ExecMatch = (
    Callable[[ExecRequest], bool]
    | tuple[str | None, str | None, str | None]
    | tuple[str | None, str | None]
    | None
)


@dataclass
class ExecCall:
    """What one exec did: the request, and what was sent back (or the error raised)."""

    request: ExecRequest
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    status: dict[str, Any] | None = None
    error: BaseException | None = None
    matched: bool = True


@dataclass
class _Fault:
    kind: str  # "status" | "delay" | "disconnect" | "call" | "answer" | "trickle"
    method: str
    pattern: re.Pattern[str]
    remaining: int | None  # None: forever
    status: int = 0
    reason: str | None = None
    message: str | None = None
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    action: Callable[[], None] | None = None  # "call": run before the request is served
    body: Any = None  # "answer": the JSON answered instead

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method not in ("*", method):
            return False
        return self.pattern.search(path) is not None


# --------------------------------------------------------------------------------------
# Small helpers: time, patches, selectors, validation, websocket frames
# --------------------------------------------------------------------------------------

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"
DEFAULT_EXEC_PROTOCOLS: tuple[str, ...] = (
    V5_PROTOCOL,
    V4_PROTOCOL,
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
_JSON_STATUS_PROTOCOLS = {V5_PROTOCOL, V4_PROTOCOL}
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}


def _ws_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _read_exact(rfile: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = rfile.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _ws_read_frame(rfile: BinaryIO) -> tuple[int, bytes] | None:
    head = _read_exact(rfile, 2)
    if head is None:
        return None
    opcode, n = head[0] & 0x0F, head[1] & 0x7F
    masked = bool(head[1] & 0x80)
    if n == 126:
        ext = _read_exact(rfile, 2)
        if ext is None:
            return None
        n = struct.unpack("!H", ext)[0]
    elif n == 127:
        ext = _read_exact(rfile, 8)
        if ext is None:
            return None
        n = struct.unpack("!Q", ext)[0]
    mask = _read_exact(rfile, 4) if masked else b""
    data = _read_exact(rfile, n)
    if data is None or mask is None:
        return None
    if masked:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return opcode, data


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def _bool_param(value: str | None) -> bool:
    return value is not None and value in _TRUE


# --------------------------------------------------------------------------------------
# The HTTP machinery
# --------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that does TLS in each connection's thread and tracks its
    connections, so that :meth:`FakeAPIServer.stop` can close them and join the threads."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, fake: FakeAPIServer, ssl_context: ssl.SSLContext | None) -> None:
        self.fake = fake
        self.ssl_context = ssl_context
        self.conn_lock = threading.Lock()
        self.conns: dict[threading.Thread, socket.socket] = {}
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks the resolver for the host's FQDN: not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        # Without TCP_NODELAY, the header and body writes of one answer meet the client's
        # delayed ACK: 40 ms a request.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"fake-apiserver-conn-{self.server_port}",
            daemon=True,
        )
        with self.conn_lock:
            self.conns[t] = request
        t.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self.conn_lock:
                self.conns.pop(threading.current_thread(), None)

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        if self.ssl_context is not None:
            request.settimeout(5.0)
            try:
                conn = self.ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
            with self.conn_lock:
                self.conns[threading.current_thread()] = conn
            if self.fake._stopping.is_set():
                conn.close()
                return
        try:
            self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError):
            pass  # the client went away, or stop() closed the connection
        finally:
            if conn is not request:
                with contextlib.suppress(OSError):
                    conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.fake._record_error(traceback.format_exc())

    def close_connections(self) -> list[threading.Thread]:
        with self.conn_lock:
            items = list(self.conns.items())
        for _, conn in items:
            # The base class's shutdown works on the descriptor of an SSLSocket too,
            # without touching the TLS state another thread may be using.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
        return [t for t, _ in items]


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"
    sys_version = ""
    timeout = 10.0  # an idle keep-alive connection ends after this; stop() ends it at once
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline(1024)
                    return body
                body += self.rfile.read(size)
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        raw = self._read_body()
        query_pairs = parse_qsl(split.query, keep_blank_values=True)
        query: dict[str, list[str]] = {}
        for k, v in query_pairs:
            query.setdefault(k, []).append(v)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = RecordedRequest(
            method=self.command,
            path=split.path,
            query=query,
            headers=headers,
            body=_parse_body(raw, headers.get("content-type", "")),
            raw_body=raw,
            time=time.monotonic(),
        )
        fake._log(record)
        try:
            response = fake._serve(self, record, query_pairs)
        except APIError as e:
            response = _Response(e.code, compact(e.status()), headers=e.headers)
        except _Disconnect:
            record.status = -1
            self.close_connection = True
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self.connection, socket.SHUT_RDWR)
            return
        except _Upgraded:
            self.close_connection = True
            return
        except (OSError, ssl.SSLError):
            # The client went away while a handler (an exec stream, a held request) was
            # writing to it: what a real server sees too, not a failure of the double.
            self.close_connection = True
            return
        except Exception:
            fake._record_error(traceback.format_exc())
            response = _Response(
                500, compact(status_body(500, "InternalError", "fake apiserver: internal error"))
            )
        record.status = response.status
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in response.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


class _Disconnect(Exception):
    """Close the connection without an answer."""


class _Upgraded(Exception):
    """The handler switched protocols and is done with the connection."""


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError):
        return None


# --------------------------------------------------------------------------------------
# FakeAPIServer
# --------------------------------------------------------------------------------------


class FakeAPIServer:
    """A test double for the Kubernetes API protocol on 127.0.0.1 (see the module docstring).

    :param crd_groups: the custom API groups the cluster has (``ALL_CRD_GROUPS`` by
        default; ``()`` for a cluster without a mesh; ``ISTIO_CRD_GROUPS`` ...).
    :param tls: serve HTTPS with a fresh ``trustme`` CA (the default) or plain HTTP.
    :param token: the bearer token requests must carry (``None``: no authentication).
    :param rollout_delay: seconds before a deployment's new generation reports ready.
    :param aggregated_discovery: answer ``Accept: ...;as=APIGroupDiscoveryList`` on
        ``/api`` and ``/apis`` (as servers since 1.30 do); if False, always legacy JSON.
    :param git_version: what ``/version`` reports.
    :param exec_protocols: the websocket subprotocols exec accepts, best first.
    :param extra_groups: more API groups (built-in if not ``custom``, else CRDs).
    :param user: who the token belongs to, in Forbidden messages (kind's admin by default).
    """

    def __init__(
        self,
        *,
        crd_groups: Iterable[str] = ALL_CRD_GROUPS,
        tls: bool = True,
        token: str | None = "meshtutor-test-token",
        rollout_delay: float = 0.0,
        aggregated_discovery: bool = True,
        git_version: str = "v1.31.0",
        exec_protocols: Sequence[str] = DEFAULT_EXEC_PROTOCOLS,
        extra_groups: Iterable[APIGroup] = (),
        user: str = "kubernetes-admin",
    ) -> None:
        self.tls = tls
        self.token = token
        self.rollout_delay = rollout_delay
        self.exec_protocols = tuple(exec_protocols)
        self.user = user
        self._denied: list[tuple[str, str, str, str, str | None]] = []

        self._lock = threading.RLock()
        builtin = list(FAKE_BUILTIN_GROUPS)
        self._crd_catalogue: dict[str, APIGroup] = dict(CRD_GROUPS)
        for g in extra_groups:
            if g.custom:
                self._crd_catalogue[g.name] = g
            else:
                builtin.append(g)
        self._ready_at: dict[str, float] = {}  # deployment uid -> monotonic time
        self._forced_ready: dict[str, bool] = {}
        self._pod_logs: dict[tuple[str, str], str] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._exec_handlers: list[tuple[Callable[[ExecRequest], bool], ExecHandler]] = []
        self._execs: list[ExecCall] = []
        self._errors: list[str] = []
        self.core = APICore(
            groups=builtin,
            git_version=git_version,
            authorize=self._authorize,
            view=self._view,
            pod_log=lambda ns, pod, _container: self._pod_logs.get((ns, pod), ""),
            aggregated_discovery=aggregated_discovery,
            on_internal_error=self._record_error,
        )
        """The API server this double serves: the protocol lives in ``meshtutor.kubeapi``."""
        self.core.subscribe(self._on_event)
        self._installed: list[str] = []
        self.install_crds(*crd_groups)

        self._ca: trustme.CA | None = None
        self._ssl_context: ssl.SSLContext | None = None
        if tls:
            self._ca = trustme.CA()
            cert = self._ca.issue_cert("127.0.0.1", "localhost")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert.configure_cert(ctx)
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl_context = ctx

        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def aggregated_discovery(self) -> bool:
        """Whether ``/api`` and ``/apis`` answer aggregated discovery when asked (as servers
        since 1.30 do); False: always the legacy JSON."""
        return self.core.aggregated_discovery

    @aggregated_discovery.setter
    def aggregated_discovery(self, value: bool) -> None:
        self.core.aggregated_discovery = value

    @property
    def git_version(self) -> str:
        return self.core.git_version

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> FakeAPIServer:
        """Listen on 127.0.0.1 (an ephemeral port) and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server(self, self._ssl_context)
        self._port = self._httpd.server_port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fake-apiserver-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close every connection, join every thread."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        threads = httpd.close_connections()
        httpd.server_close()
        for t in threads:
            t.join(5.0)
            if t.is_alive():
                self._record_error(f"connection thread {t.name} still alive after stop()")

    def __enter__(self) -> FakeAPIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeAPIServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>`` (``http://`` if ``tls=False``)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        """The PEM of the CA that signed the serving certificate."""
        if self._ca is None:
            raise RuntimeError("FakeAPIServer(tls=False) has no CA")
        return self._ca.cert_pem.bytes()

    def kubeconfig_dict(
        self,
        context_name: str = CONTEXT,
        token: str | None = None,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """A kubeconfig (as a dict) with one cluster, user and context, all named
        ``context_name``, as kind writes them."""
        cluster: dict[str, Any] = {"server": self.url}
        if self._ca is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        context: dict[str, Any] = {"cluster": context_name, "user": context_name}
        if namespace:
            context["namespace"] = namespace
        user: dict[str, Any] = {}
        tok = token if token is not None else self.token
        if tok:
            user["token"] = tok
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": context_name, "cluster": cluster}],
            "users": [{"name": context_name, "user": user}],
            "contexts": [{"name": context_name, "context": context}],
            "current-context": context_name,
        }

    def kubeconfig(
        self,
        path: str | Path,
        context_name: str = CONTEXT,
        token: str | None = None,
        namespace: str | None = None,
    ) -> Path:
        """Write a kubeconfig for this server to ``path`` (token: the server's by default)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump(self.kubeconfig_dict(context_name, token, namespace)))
        return p

    # ---- configuration of the cluster -------------------------------------------------

    def install_crds(self, *groups: str) -> None:
        """Make CRD groups (``security.istio.io``, ...) available, as installing a mesh does."""
        with self._lock:
            for g in groups:
                if g not in self._crd_catalogue:
                    raise ValueError(
                        f"unknown CRD group {g!r}; known: {sorted(self._crd_catalogue)}"
                    )
                if g not in self._installed:
                    self._installed.append(g)
                self.core.add_group(self._crd_catalogue[g])

    def uninstall_crds(self, *groups: str) -> None:
        """Remove CRD groups and every object of them, as deleting the CRDs does."""
        with self._lock:
            for g in groups:
                if g in self._installed:
                    self._installed.remove(g)
                    self.core.remove_group(g)

    @property
    def crd_groups(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._installed)

    # ---- requests, faults, errors ----------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_regex: str, method: str | None = None) -> list[RecordedRequest]:
        """The requests whose path matches ``path_regex`` (``re.search``)."""
        pattern = re.compile(path_regex)
        return [
            r
            for r in self.requests
            if pattern.search(r.path) and (method is None or r.method == method.upper())
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def errors(self) -> list[str]:
        """Tracebacks of failures inside the double (a test fixture asserts none)."""
        with self._lock:
            return list(self._errors)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        reason: str | None = None,
        message: str | None = None,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` requests (``None``: all) whose method is ``method``
        (``"*"``: any) and whose path matches ``path_regex`` with a ``Status`` of code
        ``status``. ``reason`` defaults from the code (403 → ``Forbidden``, 409 →
        ``Conflict``, ...) and ``message`` is written as a real server writes it."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._add_fault(
            _Fault(
                "status",
                method.upper(),
                re.compile(path_regex),
                times,
                status=status,
                reason=reason,
                message=message,
                headers=headers,
            )
        )

    def delay_next(
        self, path_regex: str, seconds: float, *, method: str = "*", times: int | None = 1
    ) -> None:
        """Hold the next matching request(s) for ``seconds`` before answering (for client
        timeouts); :meth:`stop` cuts the wait short."""
        self._add_fault(
            _Fault("delay", method.upper(), re.compile(path_regex), times, seconds=seconds)
        )

    def disconnect_next(self, method: str, path_regex: str, *, times: int | None = 1) -> None:
        """Close the connection of the next matching request(s) without answering."""
        self._add_fault(_Fault("disconnect", method.upper(), re.compile(path_regex), times))

    def before_next(
        self, method: str, path_regex: str, action: Callable[[], None], *, times: int | None = 1
    ) -> None:
        """Run ``action`` (e.g. another client's write, with :meth:`put_object`) when the next
        matching request arrives, before it is served: a race between two clients, made
        deterministic."""
        self._add_fault(
            _Fault("call", method.upper(), re.compile(path_regex), times, action=action)
        )

    def answer_next(
        self, method: str, path_regex: str, body: Any, *, status: int = 200, times: int | None = 1
    ) -> None:
        """Answer the next matching request(s) with ``body`` as JSON (a broken or hostile
        server's objects: no metadata, items that are not objects, ...)."""
        self._add_fault(
            _Fault(
                "answer", method.upper(), re.compile(path_regex), times, status=status, body=body
            )
        )

    def trickle_next(
        self, method: str, path_regex: str, interval: float, *, times: int | None = 1
    ) -> None:
        """Answer the next matching request(s) with a 200 whose body never ends: one byte of
        JSON whitespace every ``interval`` seconds, until the client goes or :meth:`stop`. A
        client with only a per-read timeout waits for ever."""
        self._add_fault(
            _Fault("trickle", method.upper(), re.compile(path_regex), times, seconds=interval)
        )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many injected faults have not fired yet (forever faults count once)."""
        with self._lock:
            return sum(1 for f in self._faults if f.remaining is None or f.remaining > 0)

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_faults(self, method: str, path: str) -> list[_Fault]:
        taken: list[_Fault] = []
        with self._lock:
            for kind in ("call", "delay", "disconnect", "trickle", "answer", "status"):
                for f in self._faults:
                    if f.kind == kind and f.matches(method, path):
                        if f.remaining is not None:
                            f.remaining -= 1
                        taken.append(f)
                        break
        return taken

    def _log(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    # ---- RBAC ----------------------------------------------------------------------

    def deny(
        self,
        verb: str,
        resource: str,
        group: str = "",
        *,
        subresource: str = "",
        namespace: str | None = None,
    ) -> None:
        """Take a permission away from the test's user, as RBAC would: matching requests
        get 403 Forbidden and SelfSubjectAccessReviews answer ``allowed: false``. Any
        argument may be ``"*"``; ``namespace=None`` means every namespace. By default the
        user may do everything (a kind cluster's admin)."""
        with self._lock:
            self._denied.append((verb, group, resource, subresource, namespace))

    def allow_all(self) -> None:
        """Give back every permission taken with :meth:`deny`."""
        with self._lock:
            self._denied.clear()

    def allowed(
        self, verb: str, resource: str, group: str = "", subresource: str = "", namespace: str = ""
    ) -> bool:
        """Whether the test's user may ``verb`` ``resource`` (what a review answers)."""

        def hit(rule: str | None, value: str) -> bool:
            return rule is None or rule == "*" or rule == value

        with self._lock:
            return not any(
                hit(v, verb)
                and hit(g, group)
                and hit(r, resource)
                and hit(s, subresource)
                and hit(n, namespace)
                for v, g, r, s, n in self._denied
            )

    def _authorize(self, attrs: Attributes) -> bool:
        return self.allowed(
            attrs.verb, attrs.resource, attrs.group, attrs.subresource, attrs.namespace
        )

    # ---- exec ----------------------------------------------------------------------

    def on_exec(self, match: ExecMatch, handler: ExecHandler) -> None:
        """Answer exec calls that ``match`` with ``handler(command) -> (stdout, stderr,
        exit_code)``. ``match`` is a predicate on :class:`ExecRequest`, a tuple
        ``(namespace, pod[, container])`` where ``None`` matches anything, or ``None``.
        The latest registration that matches wins. A handler may raise
        :class:`ExecFailure` (a ``Status`` on the error channel) or any other exception
        (the connection is dropped without a status, as when a node goes away)."""
        if match is None:
            predicate: Callable[[ExecRequest], bool] = lambda _r: True  # noqa: E731
        elif callable(match):
            predicate = match
        else:
            want = tuple(match) + (None,) * (3 - len(match))

            def predicate(r: ExecRequest, want: tuple[str | None, ...] = want) -> bool:
                got = (r.namespace, r.pod, r.container)
                return all(w is None or w == g for w, g in zip(want, got, strict=True))

        with self._lock:
            self._exec_handlers.append((predicate, handler))

    @property
    def execs(self) -> list[ExecCall]:
        """Every exec call so far, oldest first."""
        with self._lock:
            return list(self._execs)

    # ---- objects: helpers for tests -------------------------------------------------

    def resource_type(self, api_version: str, kind: str) -> ResourceType:
        """The resource type of ``kind`` in ``api_version`` (installed or not)."""
        group, _, version = api_version.rpartition("/")
        catalogue = list(self.core.groups) + list(self._crd_catalogue.values())
        for g in catalogue:
            if g.name != group:
                continue
            for rt in g.resources:
                if rt.kind == kind and version in rt.versions:
                    return rt
        raise KeyError(f"no resource {kind} in {api_version}")

    def put_object(self, obj: Mapping[str, Any], *, manager: str = "test-setup") -> dict[str, Any]:
        """Store ``obj`` directly (create or replace, no protocol checks beyond the
        namespace); returns the stored object. For setting up a test's cluster."""
        rt = self.resource_type(obj["apiVersion"], obj["kind"])
        if rt.group not in {g.name for g in self.core.groups}:
            raise ValueError(f"put_object: the API group {rt.group} is not installed")
        stored = self.core.put(obj, manager=manager)
        return self.core.present(rt, obj["apiVersion"].rpartition("/")[2], stored)

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The stored object as the API would show it, or None."""
        rt = self.resource_type(api_version, kind)
        obj = self.core.get(
            rt.group, rt.plural, (namespace or "default") if rt.namespaced else None, name
        )
        return None if obj is None else self.core.present(rt, api_version.rpartition("/")[2], obj)

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Every stored object of ``kind`` (in ``namespace``, if given)."""
        rt = self.resource_type(api_version, kind)
        version = api_version.rpartition("/")[2]
        return [
            self.core.present(rt, version, o)
            for o in self.core.list(rt.group, rt.plural, namespace)
        ]

    def remove_object(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> bool:
        """Delete an object directly (with its dependents); False if it was not there."""
        rt = self.resource_type(api_version, kind)
        ns = (namespace or "default") if rt.namespaced else None
        return self.core.remove(rt.group, rt.plural, ns, name) is not None

    def add_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Create (or update the labels of) a namespace."""
        current = self.core.get("", "namespaces", None, name)
        merged = {**((current or {}).get("metadata", {}).get("labels") or {}), **(labels or {})}
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": merged},
        }
        return self.core.present(CORE.resources[0], "v1", self.core.put(body, manager="test-setup"))

    def add_pod(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str] | None = None,
        containers: Sequence[str | Mapping[str, Any]] | None = None,
        owner: str | None = None,
        *,
        phase: str = "Running",
        ready: bool = True,
        pod_ip: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Add a pod as a controller and the kubelet would have made it.

        ``owner`` names a deployment in ``namespace``: the pod is then owned by that
        deployment's ReplicaSet (created if needed, named ``<deployment>-<hash>``), carries
        its ``pod-template-hash`` label and, unless given, the template's labels and
        containers. ``containers`` are names (``"app"``, ``"istio-proxy"``) or container
        dicts. The namespace is created if missing."""
        if self.core.get("", "namespaces", None, namespace) is None:
            self.add_namespace(namespace)
        pod_labels = dict(labels or {})
        owner_refs: list[dict[str, Any]] = []
        template_containers: list[dict[str, Any]] = []
        if owner is not None:
            deployment = self.core.get("apps", "deployments", namespace, owner)
            if deployment is None:
                raise ValueError(f"add_pod: no deployment {namespace}/{owner}")
            template = (deployment.get("spec") or {}).get("template") or {}
            if labels is None:
                pod_labels = dict((template.get("metadata") or {}).get("labels") or {})
            template_containers = list((template.get("spec") or {}).get("containers") or [])
            rs = self._replicaset_for(deployment)
            pod_labels["pod-template-hash"] = rs["metadata"]["labels"]["pod-template-hash"]
            owner_refs = [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs["metadata"]["name"],
                    "uid": rs["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        if containers is None:
            spec_containers = copy.deepcopy(template_containers) or [
                {"name": "app", "image": "registry.local/meshtutor/app:test"}
            ]
        else:
            spec_containers = [
                {"name": c, "image": f"registry.local/meshtutor/{c}:test"}
                if isinstance(c, str)
                else copy.deepcopy(dict(c))
                for c in containers
            ]
        index = len(self.core.list("", "pods", namespace)) + 2
        ip = pod_ip or f"10.244.0.{index % 250 + 2}"
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": pod_labels}
        if annotations:
            meta["annotations"] = dict(annotations)
        if owner_refs:
            meta["ownerReferences"] = owner_refs
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {
                "containers": spec_containers,
                "nodeName": "meshtutor-test-control-plane",
                "restartPolicy": "Always",
                "serviceAccountName": "default",
            },
        }
        now = timestamp()
        cond = "True" if ready else "False"
        body["status"] = {
            "phase": phase,
            "conditions": [
                {
                    "type": t,
                    "status": cond if t in ("Ready", "ContainersReady") else "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                }
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": "172.18.0.2",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "started": phase == "Running",
                    "state": {"running": {"startedAt": now}}
                    if phase == "Running"
                    else {"waiting": {"reason": "ContainerCreating"}},
                }
                for c in spec_containers
            ],
        }
        stored = self.core.put(body, manager="kube-controller-manager")
        return self.core.present(CORE.resources[1], "v1", stored)

    def set_pod_log(self, namespace: str, pod: str, text: str) -> None:
        """What ``GET .../pods/<pod>/log`` answers."""
        with self._lock:
            self._pod_logs[(namespace, pod)] = text

    def set_rollout(self, namespace: str, name: str, ready: bool | None) -> None:
        """Force a deployment's status ready (True) or not (False), or back to the
        delay-based behaviour (None)."""
        obj = self.core.get("apps", "deployments", namespace, name)
        if obj is None:
            raise KeyError(f"no deployment {namespace}/{name}")
        uid = obj["metadata"]["uid"]
        if ready is None:
            self._forced_ready.pop(uid, None)
        else:
            self._forced_ready[uid] = ready

    # ---- what the double adds to the API: controllers' stand-ins ----------------------

    def _replicaset_for(self, deployment: dict[str, Any]) -> dict[str, Any]:
        meta = deployment["metadata"]
        ns, name = meta["namespace"], meta["name"]
        template = (deployment.get("spec") or {}).get("template") or {}
        pod_hash = _pod_template_hash(template)
        rs_name = f"{name}-{pod_hash}"
        key = ("apps", "replicasets", ns, rs_name)
        existing = self.core.get(*key)
        if existing is not None:
            return existing
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["pod-template-hash"] = pod_hash
        tmpl = copy.deepcopy(template)
        tmpl.setdefault("metadata", {})["labels"] = labels
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": name,
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": (deployment.get("spec") or {}).get("replicas", 1),
                "selector": {"matchLabels": labels},
                "template": tmpl,
            },
        }
        return self.core.put(body, manager="kube-controller-manager")

    def _on_event(self, event: WatchEvent) -> None:
        # Called inside the core's writes: plain dict updates, no lock of the double's.
        meta = event.object["metadata"]
        if (event.group, event.plural) == ("apps", "deployments"):
            uid = meta["uid"]
            if event.type == "DELETED":
                self._ready_at.pop(uid, None)
                self._forced_ready.pop(uid, None)
            elif event.old_object is None or event.old_object["metadata"].get(
                "generation"
            ) != meta.get("generation"):
                self._ready_at[uid] = time.monotonic() + self.rollout_delay
        elif (event.group, event.plural) == ("", "pods") and event.type == "DELETED":
            self._pod_logs.pop((meta.get("namespace", ""), meta["name"]), None)

    def _view(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if rt.group == "apps" and rt.plural == "deployments":
            obj["status"] = self._deployment_status(obj)
        return obj

    def _deployment_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        uid = meta["uid"]
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        forced = self._forced_ready.get(uid)
        ready = forced if forced is not None else time.monotonic() >= self._ready_at.get(uid, 0.0)
        now = timestamp()
        rs = f"{meta['name']}-{_pod_template_hash((obj.get('spec') or {}).get('template') or {})}"
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
        }
        if ready:
            status["readyReplicas"] = replicas
            status["availableReplicas"] = replicas
            conditions = [
                (
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                ),
                (
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{rs}" has successfully progressed.',
                ),
            ]
        else:
            status["unavailableReplicas"] = replicas
            conditions = [
                (
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                ),
                (
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{rs}" is progressing.',
                ),
            ]
        # Zero counts are omitted on the wire (omitempty), as a real server does.
        status = {k: v for k, v in status.items() if v != 0}
        status["conditions"] = [
            {
                "type": t,
                "status": s,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
                "reason": r,
                "message": m,
            }
            for t, s, r, m in conditions
        ]
        return status

    # ---- serving -------------------------------------------------------------------

    def _request(self, record: RecordedRequest) -> Request:
        """The recorded request as the API core takes it."""
        return Request(
            record.method,
            record.path,
            {k: v[-1] for k, v in record.query.items()},
            record.headers,
            record.raw_body,
            self.user,
        )

    def _serve(
        self, handler: _Handler, req: RecordedRequest, query_pairs: list[tuple[str, str]]
    ) -> _Response:
        if self.token is not None and req.headers.get("authorization") != f"Bearer {self.token}":
            raise APIError(401, "Unauthorized", "Unauthorized")
        for fault in self._take_faults(req.method, req.path):
            if fault.kind == "call":
                assert fault.action is not None
                fault.action()
            elif fault.kind == "delay":
                self._stopping.wait(fault.seconds)
            elif fault.kind == "disconnect":
                raise _Disconnect()
            elif fault.kind == "answer":
                return _Response(fault.status, compact(fault.body))
            elif fault.kind == "trickle":
                self._trickle(handler, fault.seconds)
            else:
                raise APIError(
                    fault.status,
                    fault.message or self._fault_message(req, fault.status, fault.reason),
                    fault.reason if fault.reason is not None else REASONS.get(fault.status, ""),
                    self._fault_details(req),
                    headers=fault.headers,
                )
        request = self._request(req)
        try:
            target: Target | None = self.core.resource_for(req.path)
        except APIError:
            target = None
        streaming = (
            target is not None
            and target.rt is not None
            and (target.subresource == "exec" or req.param("watch") in _TRUE)
        )
        if streaming:
            # Exec and watch are the transport's: the double checks the permission itself.
            assert target is not None and target.rt is not None
            self.core.check_access(request)
            if target.subresource != "exec":
                raise APIError(
                    400,
                    "fake apiserver: watch is not implemented by this test double",
                    "BadRequest",
                )
            if req.method not in ("GET", "POST"):
                raise APIError(
                    405,
                    "the server does not allow this method on the requested resource",
                    "MethodNotAllowed",
                )
            assert target.namespace is not None and target.name is not None
            self._serve_exec(handler, req, target.namespace, target.name, query_pairs)
            raise _Upgraded()
        response = self.core.handle(request)
        if req.method == "DELETE":
            # The namespace controller's work, done at once: a deleted namespace is gone when
            # the DELETE is answered (tests of the Terminating phase drive APICore directly).
            self.core.finalize_namespaces()
        return _Response(
            response.status, response.body, response.content_type, dict(response.headers)
        )

    def _trickle(self, handler: _Handler, interval: float) -> None:
        # The whole answer, status line included, one byte at a time: any read waits less than
        # ``interval``, and the answer never ends.
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        )
        try:
            for byte in head + b" " * 1_000_000:
                if self._stopping.wait(interval):
                    break
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
        except OSError:
            pass  # the client gave up: what the test waits for
        raise _Upgraded()  # the connection is done; no other answer

    def _fault_message(self, req: RecordedRequest, status: int, reason: str | None) -> str:
        attrs = self.core.attributes(self._request(req))
        reason = reason or REASONS.get(status, "")
        name: str | None
        if attrs is None:
            what, name = req.path, None
        else:
            target = self.core.resource_for(req.path)
            assert target.rt is not None
            rt, name = target.rt, target.name
            what = f'{rt.qualified} "{name}"' if name else rt.qualified
            if reason == "Forbidden":
                return forbidden_message(
                    self.user, attrs.verb, rt, target.namespace, name, target.subresource
                )
        if reason == "Forbidden":
            return f'forbidden: User "{self.user}" cannot {req.method.lower()} path "{req.path}"'
        if reason == "NotFound":
            return f"{what} not found" if name else NO_RESOURCE
        if reason == "Conflict":
            return (
                f"Operation cannot be fulfilled on {what}: the object has been modified; "
                "please apply your changes to the latest version and try again"
            )
        if reason == "AlreadyExists":
            return f"{what} already exists"
        if reason == "TooManyRequests":
            return "storage is (re)initializing"
        if reason == "ServiceUnavailable":
            return "the server is currently unable to handle the request"
        if reason == "Timeout":
            return "the server was unable to return a response in the time allotted"
        if reason == "Unauthorized":
            return "Unauthorized"
        return f"fake apiserver: injected {status} {reason}"

    def _fault_details(self, req: RecordedRequest) -> dict[str, Any]:
        try:
            target = self.core.resource_for(req.path)
        except APIError:
            return {}
        return details(target.rt, target.name) if target.rt else {}

    # ---- exec ----------------------------------------------------------------------

    def _serve_exec(
        self,
        handler: _Handler,
        req: RecordedRequest,
        ns: str,
        name: str,
        query: list[tuple[str, str]],
    ) -> None:
        pod_rt = CORE.resources[1]
        params = dict(query)
        command = [v for k, v in query if k == "command"]
        stdin, stdout, stderr, tty = (
            _bool_param(params.get(k)) for k in ("stdin", "stdout", "stderr", "tty")
        )
        pod = self.core.get("", "pods", ns, name)
        if pod is None:
            raise not_found(pod_rt, name)
        if req.headers.get("upgrade", "").lower() != "websocket":
            raise APIError(400, "Upgrade request required", "BadRequest")
        key = req.headers.get("sec-websocket-key")
        if not key:
            raise APIError(400, "missing Sec-WebSocket-Key", "BadRequest")
        if not (stdin or stdout or stderr):
            raise APIError(
                400, "you must specify at least 1 of stdin, stdout, stderr", "BadRequest"
            )
        if not command:
            raise APIError(
                400, "you must specify at least one command for the container", "BadRequest"
            )
        container = choose_container(pod, params.get("container"))
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise APIError(
                400,
                f"cannot exec into a container in a completed pod; current phase is {phase}",
                "BadRequest",
            )
        offered = [
            p.strip() for p in req.headers.get("sec-websocket-protocol", "").split(",") if p.strip()
        ]
        protocol = next((p for p in offered if p in self.exec_protocols), None)
        if offered and protocol is None:
            raise APIError(
                400,
                f"requested protocol(s) are not supported: {offered}; supported protocols are {list(self.exec_protocols)}",
                "BadRequest",
            )
        protocol = protocol or "channel.k8s.io"
        exec_req = ExecRequest(
            ns, name, container, tuple(command), stdin, stdout, stderr, tty, protocol
        )
        with self._lock:
            responder = next((h for p, h in reversed(self._exec_handlers) if p(exec_req)), None)
            call = ExecCall(exec_req, matched=responder is not None)
            self._execs.append(call)

        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        req.status = 101
        handler.send_response_only(101, "Switching Protocols")
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", accept)
        if offered:
            handler.send_header("Sec-WebSocket-Protocol", protocol)
        handler.end_headers()
        wfile = handler.wfile

        def send(channel: int, data: bytes) -> None:
            wfile.write(_ws_frame(bytes([channel]) + data))

        # The kubelet's first frame: an empty one on the lowest writable channel.
        send(1 if stdout else 2 if stderr else 3, b"")
        try:
            out: bytes | str
            err: bytes | str
            if responder is None:
                out, err, code = (
                    b"",
                    f"fake apiserver: no exec responder for {command} in {ns}/{name}/{container}\n".encode(),
                    127,
                )
            else:
                out, err, code = responder(list(command))
            call.stdout, call.stderr, call.exit_code = _as_bytes(out), _as_bytes(err), int(code)
            status: dict[str, Any] | None
            if call.exit_code == 0:
                status = {"metadata": {}, "status": "Success"}
            else:
                status = {
                    "metadata": {},
                    "status": "Failure",
                    "message": f"command terminated with non-zero exit code: error executing command "
                    f"[{' '.join(command)}], exit code {call.exit_code}",
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(call.exit_code)}]},
                }
        except ExecFailure as e:
            call.error = e
            status = {"metadata": {}, "status": "Failure", "message": e.message, "reason": e.reason}
        except Exception as e:
            # An abrupt end: no status, no close frame, the TCP connection just goes.
            call.error = e
            socket.socket.shutdown(handler.connection, socket.SHUT_RDWR)
            return
        call.status = status
        chunk = 16 * 1024  # several frames for long output, as a real server sends
        if stdout:
            for i in range(0, len(call.stdout), chunk):
                send(1, call.stdout[i : i + chunk])
        if stderr:
            for i in range(0, len(call.stderr), chunk):
                send(2, call.stderr[i : i + chunk])
        if protocol in _JSON_STATUS_PROTOCOLS:
            send(3, compact(status))
        elif status.get("status") != "Success":
            send(3, str(status.get("message", "")).encode())
        wfile.write(_ws_frame(struct.pack("!H", 1000), opcode=0x8))
        # Wait (briefly) for the client's close frame, then hang up.
        handler.connection.settimeout(2.0)
        deadline = time.monotonic() + 2.0
        try:
            while time.monotonic() < deadline and not self._stopping.is_set():
                frame = _ws_read_frame(handler.rfile)  # type: ignore[arg-type]
                if frame is None or frame[0] == 0x8:
                    break
        except (OSError, ValueError):
            pass

    # ---- iteration helpers ---------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.core.objects())


def _pod_template_hash(template: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(compact(template)).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[int(digest[i : i + 2], 16) % len(alphabet)] for i in range(0, 20, 2))


FakeAPIServerFactory = Callable[..., FakeAPIServer]
"""What the ``fake_apiserver_factory`` fixture is: ``FakeAPIServer`` arguments in, a started
server out (stopped at teardown)."""
