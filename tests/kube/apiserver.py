"""``FakeAPIServer``: a loopback stand-in for the Kubernetes API *protocol*, for tests only.

This is a test double. It answers the requests the official ``kubernetes`` Python client
makes, in the shapes a real API server answers them, so that ``KubeBackend`` can be tested
on a machine where no cluster can run. It knows the protocol, not the behaviour of a
cluster or of a mesh:

* discovery (``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>``,
  and the aggregated discovery documents ``apidiscovery.k8s.io/v2``);
* an in-memory object store with server-side apply (``application/apply-patch+yaml``),
  merge / strategic-merge / JSON patches, create, replace, get, list (label and field
  selectors, all namespaces, ``limit``/``continue``), delete and delete-collection, with
  the ``Status`` error bodies of a real server;
* a deployment status that becomes ready after a configurable delay, nothing more: no
  controller creates pods, the test adds them with :meth:`FakeAPIServer.add_pod`;
* ``pods/exec`` over a websocket (``v5.channel.k8s.io``, ``v4.channel.k8s.io``, ...): the
  double runs nothing, a test registers responders with :meth:`FakeAPIServer.on_exec`;
* ``SelfSubjectAccessReview`` and an RBAC stand-in (:meth:`deny`: 403 Forbidden on the
  matching requests, ``allowed: false`` in reviews); everything is allowed by default;
* fault injection (:meth:`fail_next`, :meth:`delay_next`, :meth:`disconnect_next`) and a
  request log (:attr:`requests`) so a test can assert exactly what the client sent.

Not implemented: ``watch=true`` (answered 400), the ``scale`` and ``attach``/``portforward``
subresources, protobuf, and every controller (garbage collection of owned objects and a
namespace's contents happens at once on delete, a deployment's status is computed).

What the official client (``kubernetes`` 37) asks during discovery: ``DynamicClient(...)``
GETs ``/version`` and ``/apis`` (legacy ``APIGroupList``, ``Accept: application/json``; it
never asks for aggregated discovery) unless its cache file already has them, then one
``/api/v1`` or ``/apis/<group>/<version>`` per group-version it searches. A lookup whose
``api_version`` has no group (``"v1"``) searches every group that has that version.

It never decides what a mesh would do with a request: a probe's result is whatever the
test's exec responder returns.

Everything runs on 127.0.0.1 with an ephemeral port, over HTTPS (a ``trustme`` CA) unless
``tls=False``, in background threads that :meth:`stop` joins; no handler blocks for long
(socket timeouts, and every injected delay is cut short by :meth:`stop`).
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

from meshtutor.kubeapi.protocol import (
    NO_RESOURCE,
    REASONS,
    APIError,
    aggregated_discovery,
    aggregated_version,
    api_versions,
    compact,
    details,
    field_selector,
    forbidden_message,
    group_entry,
    group_list,
    gv,
    json_patch,
    label_selector,
    merge_patch,
    not_found,
    resource_list,
    status_body,
    strategic_merge_patch,
    timestamp,
    validate_metadata,
    version_info,
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


@dataclass
class _Owned:
    operation: str  # "Apply" | "Update"
    api_version: str
    time: str
    paths: set[tuple[str, ...]]
    fields: dict[str, Any]  # fieldsV1


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


_SERVER_METADATA = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    }
)


def _fields_v1(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {f"f:{k}": _fields_v1(v) for k, v in value.items()}
    return {}


def _paths_of(body: Mapping[str, Any]) -> set[tuple[str, ...]]:
    """The fields an apply or an update sets, at the granularity the double tracks:
    every label and annotation key, and every other top-level field as a whole."""
    paths: set[tuple[str, ...]] = set()
    meta = body.get("metadata") or {}
    for m in ("labels", "annotations"):
        for k in meta.get(m) or {}:
            paths.add(("metadata", m, k))
    for k in meta:
        if k not in _SERVER_METADATA and k not in ("labels", "annotations", "name", "namespace"):
            paths.add(("metadata", k))
    for k in body:
        if k not in ("apiVersion", "kind", "metadata", "status"):
            paths.add((k,))
    return paths


def _paths_from_fields(fields: Mapping[str, Any]) -> set[tuple[str, ...]]:
    """The paths of a fieldsV1 record, at the granularity ``_paths_of`` tracks."""
    paths: set[tuple[str, ...]] = set()
    for key, value in fields.items():
        if not key.startswith("f:"):
            continue
        name = key[2:]
        if name != "metadata":
            paths.add((name,))
            continue
        for sub, inner in (value or {}).items():
            if not sub.startswith("f:"):
                continue
            if sub in ("f:labels", "f:annotations"):
                paths.update(
                    ("metadata", sub[2:], k[2:]) for k in inner or {} if k.startswith("f:")
                )
            else:
                paths.add(("metadata", sub[2:]))
    return paths


def _value_at(obj: Mapping[str, Any] | None, path: tuple[str, ...]) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


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
        self.aggregated_discovery = aggregated_discovery
        self.git_version = git_version
        self.exec_protocols = tuple(exec_protocols)
        self.user = user
        self._denied: list[tuple[str, str, str, str, str | None]] = []

        self._lock = threading.RLock()
        self._groups: dict[str, APIGroup] = {g.name: g for g in FAKE_BUILTIN_GROUPS}
        self._crd_catalogue: dict[str, APIGroup] = dict(CRD_GROUPS)
        for g in extra_groups:
            if g.custom:
                self._crd_catalogue[g.name] = g
            else:
                self._groups[g.name] = g
        self._installed: list[str] = []
        self.install_crds(*crd_groups)

        self._objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._owners: dict[str, dict[tuple[str, str], _Owned]] = {}  # uid -> (manager, op)
        self._ready_at: dict[str, float] = {}  # deployment uid -> monotonic time
        self._forced_ready: dict[str, bool] = {}
        self._pod_logs: dict[tuple[str, str], str] = {}
        self._rv = 1000
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._exec_handlers: list[tuple[Callable[[ExecRequest], bool], ExecHandler]] = []
        self._execs: list[ExecCall] = []
        self._errors: list[str] = []

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

        for ns in INITIAL_NAMESPACES:
            self.add_namespace(ns)

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
                self._groups[g] = self._crd_catalogue[g]

    def uninstall_crds(self, *groups: str) -> None:
        """Remove CRD groups and every object of them, as deleting the CRDs does."""
        with self._lock:
            for g in groups:
                if g in self._installed:
                    self._installed.remove(g)
                    self._groups.pop(g, None)
                for key in [k for k in self._objects if k[0] == g]:
                    self._forget(key)

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
        catalogue = list(self._groups.values()) + list(self._crd_catalogue.values())
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
        if rt.group not in self._groups:
            raise ValueError(f"put_object: the API group {rt.group} is not installed")
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace", "default") if rt.namespaced else ""
        version = obj["apiVersion"].rpartition("/")[2]
        with self._lock:
            if rt.namespaced:
                self._require_namespace(ns)
            body = copy.deepcopy(dict(obj))
            body.setdefault("metadata", {})
            if rt.namespaced:
                body["metadata"]["namespace"] = ns
            key = (rt.group, rt.plural, ns, meta["name"])
            current = self._objects.get(key)
            status = body.pop("status", None)
            stored = self._write(rt, version, key, current, body, manager, "Update", replace=True)
            if status is not None:
                stored["status"] = status
            return self._present(rt, version, stored)

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The stored object as the API would show it, or None."""
        rt = self.resource_type(api_version, kind)
        key = (rt.group, rt.plural, (namespace or "default") if rt.namespaced else "", name)
        with self._lock:
            obj = self._objects.get(key)
            return None if obj is None else self._present(rt, api_version.rpartition("/")[2], obj)

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Every stored object of ``kind`` (in ``namespace``, if given)."""
        rt = self.resource_type(api_version, kind)
        version = api_version.rpartition("/")[2]
        with self._lock:
            return [
                self._present(rt, version, o)
                for k, o in sorted(self._objects.items())
                if k[:2] == (rt.group, rt.plural) and (namespace is None or k[2] == namespace)
            ]

    def remove_object(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> bool:
        """Delete an object directly (with its dependents); False if it was not there."""
        rt = self.resource_type(api_version, kind)
        key = (rt.group, rt.plural, (namespace or "default") if rt.namespaced else "", name)
        with self._lock:
            if key not in self._objects:
                return False
            self._delete(key)
            return True

    def add_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Create (or update the labels of) a namespace."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})},
        }
        with self._lock:
            key = ("", "namespaces", "", name)
            current = self._objects.get(key)
            if current is not None:
                body["metadata"]["labels"] = {
                    **current["metadata"].get("labels", {}),
                    **body["metadata"]["labels"],
                }
            return self._present(
                CORE.resources[0],
                "v1",
                self._write(
                    CORE.resources[0],
                    "v1",
                    key,
                    current,
                    body,
                    "test-setup",
                    "Update",
                    replace=True,
                ),
            )

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
        with self._lock:
            if ("", "namespaces", "", namespace) not in self._objects:
                self.add_namespace(namespace)
            pod_labels = dict(labels or {})
            owner_refs: list[dict[str, Any]] = []
            template_containers: list[dict[str, Any]] = []
            if owner is not None:
                dkey = ("apps", "deployments", namespace, owner)
                deployment = self._objects.get(dkey)
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
            index = sum(1 for k in self._objects if k[:3] == ("", "pods", namespace)) + 2
            ip = pod_ip or f"10.244.0.{index % 250 + 2}"
            meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": pod_labels}
            if annotations:
                meta["annotations"] = dict(annotations)
            if owner_refs:
                meta["ownerReferences"] = owner_refs
            body = {
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
            key = ("", "pods", namespace, name)
            stored = self._write(
                CORE.resources[1],
                "v1",
                key,
                self._objects.get(key),
                body,
                "kube-controller-manager",
                "Update",
                replace=True,
            )
            now = timestamp()
            cond = "True" if ready else "False"
            stored["status"] = {
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
            return self._present(CORE.resources[1], "v1", stored)

    def set_pod_log(self, namespace: str, pod: str, text: str) -> None:
        """What ``GET .../pods/<pod>/log`` answers."""
        with self._lock:
            self._pod_logs[(namespace, pod)] = text

    def set_rollout(self, namespace: str, name: str, ready: bool | None) -> None:
        """Force a deployment's status ready (True) or not (False), or back to the
        delay-based behaviour (None)."""
        with self._lock:
            obj = self._objects.get(("apps", "deployments", namespace, name))
            if obj is None:
                raise KeyError(f"no deployment {namespace}/{name}")
            uid = obj["metadata"]["uid"]
            if ready is None:
                self._forced_ready.pop(uid, None)
            else:
                self._forced_ready[uid] = ready

    # ---- the store -------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _require_namespace(self, ns: str) -> None:
        if ("", "namespaces", "", ns) not in self._objects:
            raise APIError(
                404, f'namespaces "{ns}" not found', "NotFound", {"name": ns, "kind": "namespaces"}
            )

    def _forget(self, key: tuple[str, str, str, str]) -> dict[str, Any] | None:
        obj = self._objects.pop(key, None)
        if obj is not None:
            uid = obj["metadata"]["uid"]
            self._owners.pop(uid, None)
            self._ready_at.pop(uid, None)
            self._forced_ready.pop(uid, None)
            if key[1] == "pods":
                self._pod_logs.pop((key[2], key[3]), None)
        return obj

    def _delete(self, key: tuple[str, str, str, str]) -> dict[str, Any] | None:
        """Remove an object, its dependents (owner references) and, for a namespace, its
        contents, as the garbage collector and the namespace controller would."""
        obj = self._forget(key)
        if obj is None:
            return None
        uid = obj["metadata"]["uid"]
        if key[:2] == ("", "namespaces"):
            for k in [k for k in self._objects if k[2] == key[3]]:
                self._forget(k)
        for k, o in list(self._objects.items()):
            refs = o["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                self._delete(k)
        return obj

    def _replicaset_for(self, deployment: dict[str, Any]) -> dict[str, Any]:
        meta = deployment["metadata"]
        ns, name = meta["namespace"], meta["name"]
        template = (deployment.get("spec") or {}).get("template") or {}
        pod_hash = _pod_template_hash(template)
        rs_name = f"{name}-{pod_hash}"
        key = ("apps", "replicasets", ns, rs_name)
        existing = self._objects.get(key)
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
        rt = APPS.resources[1]
        return self._write(
            rt, "v1", key, None, body, "kube-controller-manager", "Update", replace=True
        )

    def _write(
        self,
        rt: ResourceType,
        version: str,
        key: tuple[str, str, str, str],
        current: dict[str, Any] | None,
        body: dict[str, Any],
        manager: str,
        operation: str,
        *,
        replace: bool = False,
        force: bool = True,
        dry_run: bool = False,
        managed: dict[tuple[str, str], _Owned] | None = None,
    ) -> dict[str, Any]:
        """Apply (``operation="Apply"``: merge by field ownership) or write (``replace``:
        the body is the whole object; else the body is the already-patched object) and
        keep the server-set metadata. Returns the stored (or dry-run) object."""
        group, _, ns, name = key
        api_version = gv(group, version)
        now = timestamp()
        old_owners = self._owners.get(current["metadata"]["uid"], {}) if current else {}
        if managed is not None:
            # The request set managedFields itself (a client upgrading client-side-apply
            # ownership, csaupgrade): the server takes them as the object's record.
            old_owners = managed
        owners = {
            k: _Owned(v.operation, v.api_version, v.time, set(v.paths), v.fields)
            for k, v in old_owners.items()
        }
        paths = _paths_of(body)

        if operation == "Apply":
            conflicts = []
            for (mgr, op), owned in owners.items():
                if mgr == manager and op == "Apply":
                    continue
                for p in sorted(paths & owned.paths):
                    if _value_at(current, p) != _value_at(body, p):
                        conflicts.append((mgr, owned.api_version, p))
            if conflicts and not force:
                lines = [
                    f'conflict with "{m}" using {av}: .{".".join(p)}' for m, av, p in conflicts
                ]
                n = len(conflicts)
                plural = "s" if n > 1 else ""
                raise APIError(
                    409,
                    f"Apply failed with {n} conflict{plural}: " + "\n".join(lines),
                    "Conflict",
                    details(
                        rt,
                        name,
                        causes=[
                            {
                                "reason": "FieldManagerConflict",
                                "message": line,
                                "field": "." + ".".join(p),
                            }
                            for line, (_, _, p) in zip(lines, conflicts, strict=True)
                        ],
                    ),
                )
            mine = owners.get((manager, "Apply"))
            previously = mine.paths if mine else set()
            others = set().union(*(o.paths for k, o in owners.items() if k != (manager, "Apply")))
            merged = copy.deepcopy(current) if current else {}
            for p in previously - paths - others:
                _drop(merged, p)
            for p in paths:
                value = _value_at(body, p)
                _set(merged, p, copy.deepcopy(value))
            merged["apiVersion"] = api_version
            merged["kind"] = rt.kind
            new_obj = merged
        elif replace:
            new_obj = copy.deepcopy(body)
            taken = paths
        else:
            new_obj = copy.deepcopy(body)
            taken = {p for p in paths if _value_at(current, p) != _value_at(new_obj, p)}

        if operation == "Apply":
            # Fields set to the value they already had become shared; the others move.
            taken = {p for p in paths if _value_at(current, p) != _value_at(body, p)}
        for k, o in list(owners.items()):
            if k != (manager, operation):
                o.paths -= taken
                if not o.paths:
                    del owners[k]
        entry_paths = (
            paths
            if operation == "Apply"
            else taken
            | (owners[(manager, operation)].paths if (manager, operation) in owners else set())
        )
        if entry_paths:
            owners[(manager, operation)] = _Owned(
                operation, api_version, now, set(entry_paths), _fields_for(new_obj, entry_paths)
            )

        meta = new_obj.setdefault("metadata", {})
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if current is not None:
            cmeta = current["metadata"]
            for field_name in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                if field_name in cmeta:
                    meta[field_name] = cmeta[field_name]
            if "status" in current and "status" not in new_obj:
                new_obj["status"] = copy.deepcopy(current["status"])
        else:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now
            meta["generation"] = 1
        if rt.plural == "namespaces":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            new_obj["spec"] = {"finalizers": ["kubernetes"]}
            new_obj["status"] = {"phase": "Active"}
        for m in ("labels", "annotations"):
            if m in meta and not meta[m]:
                del meta[m]

        spec_changed = current is not None and _spec_of(current) != _spec_of(new_obj)
        if spec_changed:
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1  # type: ignore[index]
        meta["managedFields"] = [
            {
                "manager": mgr,
                "operation": op,
                "apiVersion": o.api_version,
                "time": o.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": o.fields,
            }
            for (mgr, op), o in owners.items()
        ]
        changed = current is None or _without_volatile(current) != _without_volatile(new_obj)
        if changed:
            meta["resourceVersion"] = self._next_rv()
        elif current is not None:
            # A no-op keeps the stored object, managedFields times included.
            new_obj = copy.deepcopy(current)
            owners = old_owners
        if dry_run:
            return new_obj
        self._objects[key] = new_obj
        self._owners[new_obj["metadata"]["uid"]] = owners
        if rt.plural == "deployments" and rt.group == "apps" and (current is None or spec_changed):
            self._ready_at[new_obj["metadata"]["uid"]] = time.monotonic() + self.rollout_delay
        return new_obj

    def _present(
        self, rt: ResourceType, version: str, obj: dict[str, Any], *, in_list: bool = False
    ) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"] = gv(rt.group, version)
        out["kind"] = rt.kind
        if rt.group == "apps" and rt.plural == "deployments":
            out["status"] = self._deployment_status(obj)
        ordered: dict[str, Any] = {}
        if not in_list or self._is_custom(rt.group):
            # Items of a built-in list carry no apiVersion/kind; custom resources do.
            ordered["apiVersion"] = out.pop("apiVersion")
            ordered["kind"] = out.pop("kind")
        else:
            out.pop("apiVersion")
            out.pop("kind")
        ordered.update(out)
        return ordered

    def _is_custom(self, group: str) -> bool:
        g = self._groups.get(group)
        return bool(g and g.custom)

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
                return self._json(fault.status, fault.body)
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
        attrs = self._attributes(req)
        if attrs is not None:
            verb, rt, ns, name, sub = attrs
            if not self.allowed(verb, rt.plural, rt.group, sub or "", ns or ""):
                raise APIError(
                    403,
                    forbidden_message(self.user, verb, rt, ns, name, sub),
                    "Forbidden",
                    details(rt, name),
                )
        return self._route(handler, req, query_pairs)

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

    def _attributes(
        self, req: RecordedRequest
    ) -> tuple[str, ResourceType, str | None, str | None, str | None] | None:
        """(verb, resource type, namespace, name, subresource) of a resource request."""
        if not (req.path.startswith("/api/") or req.path.startswith("/apis/")):
            return None
        try:
            _, _, rt, ns, name, sub = self._parse_path(req.path)
        except APIError:
            return None
        if rt is None:
            return None
        if sub == "exec":
            return "create", rt, ns, name, sub
        verb = {
            "GET": "get" if name else "watch" if req.param("watch") in _TRUE else "list",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(req.method, req.method.lower())
        return verb, rt, ns, name, sub

    def _parse_path(
        self, path: str
    ) -> tuple[APIGroup, str, ResourceType | None, str | None, str | None, str | None]:
        """(group, version, resource type, namespace, name, subresource) or 404."""
        segs = [s for s in path.split("/") if s]
        if segs[0] == "api":
            group_name, rest = "", segs[1:]
        else:
            if len(segs) < 2:
                raise APIError(404, NO_RESOURCE, "NotFound")
            group_name, rest = segs[1], segs[2:]
        with self._lock:
            group = self._groups.get(group_name)
        if group is None or not rest or rest[0] not in group.versions:
            raise APIError(404, NO_RESOURCE, "NotFound")
        version, rest = rest[0], rest[1:]
        if not rest:
            return group, version, None, None, None, None

        def lookup(plural: str) -> ResourceType | None:
            return next(
                (r for r in group.resources if r.plural == plural and version in r.versions), None
            )

        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            inner = lookup(rest[2])
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = lookup(rest[0])
        if rt is None or len(rest) > 3:
            raise APIError(404, NO_RESOURCE, "NotFound")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if rt.namespaced and namespace is None and name is not None:
            raise APIError(404, NO_RESOURCE, "NotFound")
        if sub is not None and rt.subresource(sub) is None:
            raise APIError(404, NO_RESOURCE, "NotFound")
        return group, version, rt, namespace, name, sub

    def _fault_message(self, req: RecordedRequest, status: int, reason: str | None) -> str:
        attrs = self._attributes(req)
        reason = reason or REASONS.get(status, "")
        if attrs is None:
            what, name = req.path, None
        else:
            verb, rt, ns, name, sub = attrs
            what = f'{rt.qualified} "{name}"' if name else rt.qualified
            if reason == "Forbidden":
                return forbidden_message(self.user, verb, rt, ns, name, sub)
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
            _, _, rt, _, name, _ = self._parse_path(req.path)
        except APIError:
            return {}
        return details(rt, name) if rt else {}

    def _route(
        self, handler: _Handler, req: RecordedRequest, query_pairs: list[tuple[str, str]]
    ) -> _Response:
        path = req.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return _Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return self._json(200, version_info(self.git_version))
        if path == "/api":
            return self._discovery_root(req, legacy=api_versions(), group_names=[""])
        if path == "/apis":
            with self._lock:
                names = [g for g in self._groups if g]
            return self._discovery_root(req, legacy=self._group_list(), group_names=names)
        if not (path.startswith("/api/") or path.startswith("/apis/")):
            raise APIError(404, NO_RESOURCE, "NotFound")
        segs = [s for s in path.split("/") if s]
        if segs[0] == "apis" and len(segs) == 2:
            with self._lock:
                group = self._groups.get(segs[1])
            if group is None:
                raise APIError(404, NO_RESOURCE, "NotFound")
            self._only(req, "GET")
            return self._json(200, {"kind": "APIGroup", "apiVersion": "v1", **group_entry(group)})
        group, version, rt, ns, name, sub = self._parse_path(path)
        if rt is None:
            self._only(req, "GET")
            return self._json(200, resource_list(group, version))
        params = dict(query_pairs)
        if sub == "exec" and rt.plural == "pods" and not rt.group:
            if req.method not in ("GET", "POST"):
                raise APIError(
                    405,
                    "the server does not allow this method on the requested resource",
                    "MethodNotAllowed",
                )
            assert ns is not None and name is not None
            self._serve_exec(handler, req, ns, name, query_pairs)
            raise _Upgraded()
        return self._resource_request(req, rt, version, ns, name, sub, params)

    @staticmethod
    def _only(req: RecordedRequest, *methods: str) -> None:
        if req.method not in methods:
            raise APIError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
            )

    @staticmethod
    def _json(status: int, body: Any, content_type: str = "application/json") -> _Response:
        return _Response(status, compact(body), content_type)

    # ---- discovery -------------------------------------------------------------------

    def _group_list(self) -> dict[str, Any]:
        with self._lock:
            groups = list(self._groups.values())
        return group_list(groups, (g.name for g in FAKE_BUILTIN_GROUPS))

    def _discovery_root(
        self, req: RecordedRequest, *, legacy: dict[str, Any], group_names: list[str]
    ) -> _Response:
        self._only(req, "GET")
        if self.aggregated_discovery:
            v = aggregated_version(req.headers.get("accept", ""))
            if v is not None:
                with self._lock:
                    groups = [self._groups[n] for n in group_names if n in self._groups]
                body = aggregated_discovery(groups, v, sort=group_names != [""])
                ctype = f"application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
                return self._json(200, body, ctype)
        return self._json(200, legacy)

    # ---- resources -------------------------------------------------------------------

    def _resource_request(
        self,
        req: RecordedRequest,
        rt: ResourceType,
        version: str,
        ns: str | None,
        name: str | None,
        sub: str | None,
        params: dict[str, str],
    ) -> _Response:
        method = req.method
        if rt.group == "authorization.k8s.io":
            if method != "POST" or name is not None:
                raise APIError(
                    405,
                    "the server does not allow this method on the requested resource",
                    "MethodNotAllowed",
                )
            return self._review(req, rt, version)
        if params.get("watch") in _TRUE:
            raise APIError(
                400, "fake apiserver: watch is not implemented by this test double", "BadRequest"
            )
        dry_run = params.get("dryRun")
        if dry_run is not None and dry_run != "All":
            raise APIError(
                400,
                f'Invalid dryRun value "{dry_run}"; the only valid value is "All"',
                "BadRequest",
            )
        with self._lock:
            if name is None:
                if method == "GET":
                    self._verb(rt, "list")
                    return self._json(200, self._list(rt, version, ns, params))
                if method == "POST":
                    self._verb(rt, "create")
                    return self._create(req, rt, version, ns, params)
                if method == "DELETE":
                    self._verb(rt, "deletecollection")
                    return self._delete_collection(rt, version, ns, params)
                raise APIError(
                    405,
                    "the server does not allow this method on the requested resource",
                    "MethodNotAllowed",
                )
            key = (rt.group, rt.plural, ns or "", name)
            if sub == "log":
                self._only(req, "GET")
                if key not in self._objects:
                    raise not_found(rt, name)
                return _Response(
                    200, self._pod_logs.get((ns or "", name), "").encode(), "text/plain"
                )
            if sub not in (None, "status"):
                raise APIError(
                    405,
                    f"fake apiserver: the {sub} subresource is not implemented by this test double",
                    "MethodNotAllowed",
                )
            if method == "GET":
                self._verb(rt, "get")
                obj = self._objects.get(key)
                if obj is None:
                    raise not_found(rt, name)
                return self._json(200, self._present(rt, version, obj))
            if method == "DELETE":
                self._verb(rt, "delete")
                return self._delete_one(rt, version, key, params, dry_run is not None, req.body)
            if method == "PUT":
                self._verb(rt, "update")
                return self._replace(req, rt, version, key, params, sub)
            if method == "PATCH":
                self._verb(rt, "patch")
                return self._patch(req, rt, version, key, params, sub)
            raise APIError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
            )

    @staticmethod
    def _verb(rt: ResourceType, verb: str) -> None:
        if verb not in rt.verbs:
            raise APIError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
            )

    def _list(
        self, rt: ResourceType, version: str, ns: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        if ns is not None and rt.namespaced:
            pass  # a list in a missing namespace is empty, as on a real server
        ls = label_selector(params["labelSelector"]) if params.get("labelSelector") else None
        fs = field_selector(params["fieldSelector"]) if params.get("fieldSelector") else None
        items = []
        for key in sorted(self._objects):
            if key[:2] != (rt.group, rt.plural) or (ns is not None and key[2] != ns):
                continue
            obj = self._objects[key]
            if ls is not None and not ls(obj["metadata"].get("labels") or {}):
                continue
            presented = self._present(rt, version, obj)
            if fs is not None and not fs(presented):
                continue
            items.append(self._present(rt, version, obj, in_list=True))
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        limit = int(params.get("limit") or 0)
        start = 0
        if params.get("continue"):
            try:
                start = int(base64.urlsafe_b64decode(params["continue"].encode()).decode())
            except ValueError as e:
                raise APIError(400, "continue key is not valid", "BadRequest") from e
        if limit > 0 or start:
            end = start + limit if limit > 0 else len(items)
            if end < len(items):
                meta["continue"] = base64.urlsafe_b64encode(str(end).encode()).decode()
                meta["remainingItemCount"] = len(items) - end
            items = items[start:end]
        return {
            "apiVersion": gv(rt.group, version),
            "items": items,
            "kind": f"{rt.kind}List",
            "metadata": meta,
        }

    def _checked_body(
        self,
        req: RecordedRequest,
        rt: ResourceType,
        version: str,
        ns: str,
        name: str | None,
        *,
        require_type: bool,
    ) -> dict[str, Any]:
        body = req.body
        if not isinstance(body, dict):
            raise APIError(
                400, "the body of the request could not be decoded as an object", "BadRequest"
            )
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        expected = gv(rt.group, version)
        if require_type and (not api_version or not kind):
            raise APIError(
                400, "Object 'Kind' is missing in '" + json.dumps(body)[:200] + "'", "BadRequest"
            )
        if api_version and api_version != expected:
            group = api_version.rpartition("/")[0]
            if group != rt.group:
                raise APIError(
                    400,
                    f"the API version in the data ({api_version}) does not match the expected API version ({expected})",
                    "BadRequest",
                )
        if kind and kind != rt.kind:
            raise APIError(
                400,
                f'{kind} in version "{version}" cannot be handled as a {rt.kind}: no kind "{kind}" is registered for version "{expected}"',
                "BadRequest",
            )
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise APIError(400, "metadata must be an object", "BadRequest")
        meta = meta or {}
        body_name = meta.get("name")
        if name is not None and body_name is not None and body_name != name:
            raise APIError(
                400,
                f"the name of the object ({body_name}) does not match the name on the URL ({name})",
                "BadRequest",
            )
        body_ns = meta.get("namespace")
        if rt.namespaced and body_ns is not None and body_ns != ns:
            raise APIError(
                400,
                "the namespace of the provided object does not match the namespace sent on the request",
                "BadRequest",
            )
        final_name = name or body_name
        if not final_name:
            raise APIError(
                422,
                f'{rt.kind} "" is invalid: metadata.name: Required value: name or generateName is required',
                "Invalid",
                details(rt, None),
            )
        validate_metadata(rt, final_name, meta)
        return body

    def _manager(self, req: RecordedRequest, params: dict[str, str]) -> str:
        manager = params.get("fieldManager")
        if manager:
            return manager
        ua = req.headers.get("user-agent", "unknown")
        return ua.split("/")[0]

    def _create(
        self,
        req: RecordedRequest,
        rt: ResourceType,
        version: str,
        ns: str | None,
        params: dict[str, str],
    ) -> _Response:
        if rt.namespaced and ns is None:
            raise APIError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
            )
        ns = ns or ""
        body = self._checked_body(req, rt, version, ns, None, require_type=False)
        name = body["metadata"]["name"]
        if rt.namespaced:
            self._require_namespace(ns)
        key = (rt.group, rt.plural, ns, name)
        if key in self._objects:
            raise APIError(
                409, f'{rt.qualified} "{name}" already exists', "AlreadyExists", details(rt, name)
            )
        body = copy.deepcopy(body)
        body.pop("status", None)
        stored = self._write(
            rt,
            version,
            key,
            None,
            body,
            self._manager(req, params),
            "Update",
            replace=True,
            dry_run=params.get("dryRun") == "All",
        )
        return self._json(201, self._present(rt, version, stored))

    def _replace(
        self,
        req: RecordedRequest,
        rt: ResourceType,
        version: str,
        key: tuple[str, str, str, str],
        params: dict[str, str],
        sub: str | None,
    ) -> _Response:
        ns, name = key[2], key[3]
        body = self._checked_body(req, rt, version, ns, name, require_type=False)
        current = self._objects.get(key)
        if current is None:
            raise not_found(rt, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if not rv and self._is_custom(rt.group):
            # Custom resources allow no unconditional update: AllowUnconditionalUpdate() is
            # false in apiextensions-apiserver's pkg/registry/customresource/strategy.go.
            raise APIError(
                422,
                f'{rt.qualified} "{name}" is invalid: metadata.resourceVersion: Invalid value: '
                "0x0: must be specified for an update",
                "Invalid",
                details(
                    rt,
                    name,
                    causes=[
                        {
                            "reason": "FieldValueInvalid",
                            "message": "Invalid value: 0x0: must be specified for an update",
                            "field": "metadata.resourceVersion",
                        }
                    ],
                ),
            )
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise APIError(
                409,
                f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been modified; please apply your changes to the latest version and try again',
                "Conflict",
                details(rt, name),
            )
        body = copy.deepcopy(body)
        if sub == "status":
            new = copy.deepcopy(current)
            new["status"] = body.get("status")
            body = new
        else:
            body.pop("status", None)
            body.setdefault("metadata", {})
            for k in ("ownerReferences",):
                if k in current["metadata"] and k not in body["metadata"]:
                    body["metadata"][k] = current["metadata"][k]
        stored = self._write(
            rt,
            version,
            key,
            current,
            body,
            self._manager(req, params),
            "Update",
            replace=True,
            dry_run=params.get("dryRun") == "All",
        )
        return self._json(200, self._present(rt, version, stored))

    def _patch(
        self,
        req: RecordedRequest,
        rt: ResourceType,
        version: str,
        key: tuple[str, str, str, str],
        params: dict[str, str],
        sub: str | None,
    ) -> _Response:
        ns, name = key[2], key[3]
        ctype = (req.content_type or "").split(";")[0].strip()
        current = self._objects.get(key)
        dry_run = params.get("dryRun") == "All"
        if ctype == "application/apply-patch+yaml":
            manager = params.get("fieldManager")
            if not manager:
                raise APIError(
                    400,
                    "PATCH " + req.path + ": fieldManager is required for apply requests",
                    "BadRequest",
                )
            if req.body is None and req.raw_body:
                raise APIError(400, "error decoding YAML: the body is not valid YAML", "BadRequest")
            body = self._checked_body(req, rt, version, ns, name, require_type=True)
            if rt.namespaced:
                self._require_namespace(ns)
            if (body.get("metadata") or {}).get("managedFields") is not None:
                raise APIError(
                    400, "metadata.managedFields must be nil", "BadRequest", details(rt, name)
                )
            self._optimistic_lock(rt, name, current, body)
            body = copy.deepcopy(body)
            if sub != "status":
                body.pop("status", None)
            body.setdefault("metadata", {})["name"] = name
            force = _bool_param(params.get("force"))
            stored = self._write(
                rt, version, key, current, body, manager, "Apply", force=force, dry_run=dry_run
            )
            return self._json(201 if current is None else 200, self._present(rt, version, stored))
        if ctype not in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/json-patch+json",
        ):
            raise APIError(
                415,
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(self._patch_types(rt))}",
                "UnsupportedMediaType",
            )
        if ctype == "application/strategic-merge-patch+json" and self._is_custom(rt.group):
            raise APIError(
                415,
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(self._patch_types(rt)),
                "UnsupportedMediaType",
            )
        if current is None:
            raise not_found(rt, name)
        if req.raw_body and req.body is None:
            raise APIError(400, "error decoding patch: invalid JSON", "BadRequest")
        base = copy.deepcopy(current)
        if ctype == "application/json-patch+json":
            patched = json_patch(base, req.body)
        elif ctype == "application/merge-patch+json":
            if not isinstance(req.body, dict):
                raise APIError(400, "merge patch must be an object", "BadRequest")
            patched = merge_patch(base, req.body)
        else:
            if not isinstance(req.body, dict):
                raise APIError(400, "strategic merge patch must be an object", "BadRequest")
            patched = strategic_merge_patch(base, req.body)
        if not isinstance(patched, dict):
            raise APIError(422, "the patched object is not an object", "Invalid")
        self._optimistic_lock(rt, name, current, patched)
        meta = patched.get("metadata") or {}
        if meta.get("name", name) != name:
            raise APIError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
                "BadRequest",
            )
        validate_metadata(rt, name, meta)
        if sub != "status":
            patched["status"] = (
                copy.deepcopy(current.get("status")) if "status" in current else None
            )
            if patched["status"] is None:
                del patched["status"]
        stored = self._write(
            rt,
            version,
            key,
            current,
            patched,
            self._manager(req, params),
            "Update",
            dry_run=dry_run,
            managed=self._managed_from_request(current, patched),
        )
        return self._json(200, self._present(rt, version, stored))

    @staticmethod
    def _optimistic_lock(
        rt: ResourceType, name: str, current: dict[str, Any] | None, body: Any
    ) -> None:
        """A resourceVersion in a patch, an apply or an update is a precondition: the write
        fails with 409 Conflict unless it is the stored object's (the check in Store.Update,
        apiserver's pkg/registry/generic/registry/store.go; kubernetes#63104 for patches). An
        apply that creates the object ignores it."""
        meta = body.get("metadata") if isinstance(body, dict) else None
        rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if rv and current is not None and rv != current["metadata"]["resourceVersion"]:
            raise APIError(
                409,
                f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                "Conflict",
                details(rt, name),
            )

    def _managed_from_request(
        self, current: dict[str, Any] | None, obj: dict[str, Any]
    ) -> dict[tuple[str, str], _Owned] | None:
        """The managedFields a patch or an update wrote, when it changed them (the server then
        uses them instead of its own record, as fieldmanager's decodeLiveOrNew does)."""
        entries = (obj.get("metadata") or {}).get("managedFields")
        if not isinstance(entries, list) or not entries or current is None:
            return None
        if entries == current["metadata"].get("managedFields"):
            return None
        owners: dict[tuple[str, str], _Owned] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("manager"):
                raise APIError(422, "invalid managedFields entry", "Invalid")
            fields = entry.get("fieldsV1") or {}
            owners[(entry["manager"], entry.get("operation", "Update"))] = _Owned(
                entry.get("operation", "Update"),
                entry.get("apiVersion", ""),
                entry.get("time", timestamp()),
                _paths_from_fields(fields),
                fields,
            )
        return owners

    def _review(self, req: RecordedRequest, rt: ResourceType, version: str) -> _Response:
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise APIError(
                400, "the body of the request could not be decoded as an object", "BadRequest"
            )
        spec = body["spec"]
        answer: dict[str, Any] = {
            "kind": rt.kind,
            "apiVersion": gv(rt.group, version),
            "metadata": {"creationTimestamp": None},
            "spec": spec,
        }
        admin = (
            'RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" of ClusterRole '
            '"cluster-admin" to Group "kubeadm:cluster-admins"'
        )
        if rt.plural == "selfsubjectaccessreviews":
            attrs = spec.get("resourceAttributes") or {}
            allowed = not attrs or self.allowed(
                str(attrs.get("verb") or ""),
                str(attrs.get("resource") or ""),
                str(attrs.get("group") or ""),
                str(attrs.get("subresource") or ""),
                str(attrs.get("namespace") or ""),
            )
            answer["status"] = {"allowed": True, "reason": admin} if allowed else {"allowed": False}
        else:
            answer["status"] = {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        return self._json(201, answer)

    def _patch_types(self, rt: ResourceType) -> list[str]:
        types = [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
        if not self._is_custom(rt.group):
            types.insert(2, "application/strategic-merge-patch+json")
        return types

    def _delete_one(
        self,
        rt: ResourceType,
        version: str,
        key: tuple[str, str, str, str],
        params: dict[str, str],
        dry_run: bool,
        options: Any = None,
    ) -> _Response:
        obj = self._objects.get(key)
        if obj is None:
            raise not_found(rt, key[3])
        preconditions = (options or {}).get("preconditions") if isinstance(options, dict) else None
        for name, field_name in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            want = (preconditions or {}).get(name)
            have = obj["metadata"].get(name)
            if want is not None and want != have:
                # The words of apimachinery's storage.Preconditions.Check.
                raise APIError(
                    409,
                    f"Precondition failed: {field_name} in precondition: {want}, {field_name} in "
                    f"object meta: {have}",
                    "Conflict",
                    details(rt, key[3]),
                )
        presented = self._present(rt, version, obj)
        if not dry_run:
            self._delete(key)
        if rt.group == "" and rt.plural in ("pods", "namespaces"):
            # Graceful deletion: the object comes back with a deletionTimestamp (the
            # double forgets it at once; a real server keeps it until the kubelet or the
            # namespace controller is done).
            presented["metadata"]["deletionTimestamp"] = timestamp()
            if rt.plural == "pods":
                presented["metadata"]["deletionGracePeriodSeconds"] = 30
            else:
                presented["status"] = {"phase": "Terminating"}
            return self._json(200, presented)
        return self._json(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details(rt, key[3], uid=obj["metadata"]["uid"]),
            },
        )

    def _delete_collection(
        self, rt: ResourceType, version: str, ns: str | None, params: dict[str, str]
    ) -> _Response:
        listed = self._list(
            rt,
            version,
            ns,
            {k: v for k, v in params.items() if k in ("labelSelector", "fieldSelector")},
        )
        if params.get("dryRun") != "All":
            for item in listed["items"]:
                meta = item["metadata"]
                self._delete((rt.group, rt.plural, meta.get("namespace", ""), meta["name"]))
        return self._json(200, listed)

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
        with self._lock:
            pod = copy.deepcopy(self._objects.get(("", "pods", ns, name)))
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
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container = params.get("container") or ""
        if not container:
            if len(containers) != 1:
                raise APIError(
                    400,
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]",
                    "BadRequest",
                )
            container = containers[0]
        elif container not in containers:
            raise APIError(400, f"container {container} is not valid for pod {name}", "BadRequest")
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
        with self._lock:
            objs = [copy.deepcopy(o) for _, o in sorted(self._objects.items())]
        return iter(objs)


def _pod_template_hash(template: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(compact(template)).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[int(digest[i : i + 2], 16) % len(alphabet)] for i in range(0, 20, 2))


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


def _without_volatile(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    meta = out.get("metadata") or {}
    for k in ("managedFields", "resourceVersion", "generation"):
        meta.pop(k, None)
    return out


def _drop(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    cur: Any = obj
    for p in path[:-1]:
        if not isinstance(cur, dict) or p not in cur:
            return
        cur = cur[p]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)


def _set(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    cur = obj
    for p in path[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[path[-1]] = value


def _fields_for(obj: Mapping[str, Any], paths: Iterable[tuple[str, ...]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for path in sorted(paths):
        cur = fields
        for p in path[:-1]:
            cur = cur.setdefault(f"f:{p}", {})
        cur[f"f:{path[-1]}"] = _fields_v1(_value_at(obj, path)) if len(path) == 1 else {}
    return fields


FakeAPIServerFactory = Callable[..., FakeAPIServer]
"""What the ``fake_apiserver_factory`` fixture is: ``FakeAPIServer`` arguments in, a started
server out (stopped at teardown)."""
