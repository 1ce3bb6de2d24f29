"""Reaching a real cluster: the kubeconfig context to use, whether it is on this machine, and
a client of the official ``kubernetes`` library (imported lazily) whose every call has a
deadline, with its failures told in one line that names the server."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshtutor.backends.locality import locality_problem
from meshtutor.errors import MeshtutorError


class KubeError(MeshtutorError):
    """Talking to the cluster failed; the message says what to do."""


@dataclass(frozen=True)
class Target:
    context: str
    server: str
    kubeconfig: str
    cluster: str = ""  # the kubeconfig's cluster entry
    provider: str = ""  # the provider its extensions name (minikube writes one)

    def locality_problem(self, **machine: Any) -> str | None:
        """Why this is not a cluster on this machine, or None (see ``locality``; ``machine``:
        its ``routes`` and ``platform``, when not this machine's)."""
        return locality_problem(
            self.context, self.server, cluster=self.cluster, provider=self.provider, **machine
        )


def kubeconfig_path(kubeconfig: str | None = None) -> str:
    """``--kubeconfig``, else the first file of ``$KUBECONFIG``, else ``~/.kube/config``."""
    if kubeconfig:
        return kubeconfig
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    return str(Path.home() / ".kube" / "config")


def resolve_target(kubeconfig: str | None = None, context: str | None = None) -> Target:
    """Find the context to use, without connecting. Raises ``KubeError`` with a fix."""
    path = kubeconfig_path(kubeconfig)
    if not Path(path).is_file():
        raise KubeError(
            f"no kubeconfig at {path}: create a local cluster first (for example "
            "`kind create cluster`), or pass --kubeconfig"
        )
    # meshtutor's bounded YAML reader goes first: the client's yaml.safe_load would accept
    # an alias bomb (issue 13, item 10) and hand it on.
    data = _read_kubeconfig(path)
    from kubernetes import config as kconfig

    try:
        contexts, active = kconfig.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path
        )
    except Exception as exc:  # the client raises ConfigException and others for bad files
        raise KubeError(f"{path}: cannot read the kubeconfig: {exc}") from None
    chosen = next((c for c in contexts if c["name"] == context), None) if context else active
    if chosen is None:
        names = ", ".join(c["name"] for c in contexts) or "none"
        raise KubeError(f"{path}: no context {context!r}; contexts: {names}")
    cluster_name = str(chosen["context"].get("cluster") or "")
    entry = next(
        (
            c.get("cluster") or {}
            for c in data.get("clusters") or []
            if isinstance(c, dict) and c.get("name") == cluster_name
        ),
        {},
    )
    extensions = entry.get("extensions") if isinstance(entry, dict) else None
    provider = next(
        (
            str((e.get("extension") or {}).get("provider") or "")
            for e in extensions or []
            if isinstance(e, dict) and isinstance(e.get("extension"), dict)
        ),
        "",
    )
    server = str(entry.get("server") or "") if isinstance(entry, dict) else ""
    return Target(chosen["name"], server, path, cluster_name, provider)


def _read_kubeconfig(path: str) -> dict[str, Any]:
    import yaml

    from meshtutor.errors import InputFileError
    from meshtutor.inputfiles import read_text
    from meshtutor.model.yamlnodes import load_single, yaml_problem

    try:
        data = load_single(read_text(path))
    except InputFileError as exc:
        raise KubeError(f"{exc.source}: cannot read the kubeconfig: {exc.reason}") from None
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        raise KubeError(f"{path}{f':{line}' if line else ''}: {problem}") from None
    return data if isinstance(data, dict) else {}


def check_local(target: Target, allow_remote: bool) -> None:
    """Refuse a cluster that is not on this machine, saying which context, which server and
    why, unless ``allow_remote``."""
    problem = target.locality_problem()
    if allow_remote or problem is None:
        return
    raise KubeError(
        f"context {target.context!r} (server {target.server or 'none'}) is not a cluster on "
        f"this machine: {problem}. meshtutor creates and deletes objects, so it only uses "
        "local clusters; pass --allow-remote if you really mean this one"
    )


#: Seconds to wait for the API server to accept a connection, and then for each answer; a
#: request ends, answered in full or not, within twice that (``socket_deadline``).
REQUEST_TIMEOUT = 10.0


class DeadlineExceeded(TimeoutError):
    """A request's answer did not come in full within its deadline: the server answered, but
    too slowly (one byte now and then keeps every read's timeout from firing)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no full answer in {seconds:g} s")
        self.seconds = seconds


class _Watch:
    """A deadline for everything one thread does with the network for a while: when it passes,
    the sockets the thread registered are shut, which ends any read or write blocked on them
    (a timeout per read does not: a server that sends a byte just before each read times out
    holds it for ever)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def add(self, close: Callable[[], None]) -> None:
        with self._lock:
            if not self.expired:
                self._closers.append(close)
                return
        close()  # the deadline passed already

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            closers, self._closers = self._closers, []
        for close in closers:
            with contextlib.suppress(OSError):
                close()


#: The watch of the thread's current request (each thread has its own context).
_WATCH: ContextVar[_Watch | None] = ContextVar("meshtutor_socket_watch", default=None)


@contextlib.contextmanager
def socket_deadline(seconds: float) -> Iterator[_Watch]:
    """Within the block, every connection to the API server the thread uses (the client's
    HTTP connections, the exec websocket) is shut when ``seconds`` have passed."""
    watch = _Watch(seconds)
    token = _WATCH.set(watch)
    watch._timer.start()
    try:
        yield watch
    finally:
        watch._timer.cancel()
        _WATCH.reset(token)


def shut(sock: Any) -> None:
    """Shut a socket down from another thread, which wakes a thread blocked on it."""
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)


def _watched(sock: Any) -> None:
    watch = _WATCH.get()
    if watch is not None and sock is not None:
        watch.add(lambda: shut(sock))


@functools.cache
def _watched_pools() -> dict[str, type]:
    """urllib3 connection pools whose connections put their socket under the thread's current
    ``socket_deadline`` before they wait for an answer."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class WatchedHTTPConnection(HTTPConnection):
        def getresponse(self) -> Any:  # type: ignore[override]
            _watched(self.sock)
            return super().getresponse()

    class WatchedHTTPSConnection(HTTPSConnection):
        def getresponse(self) -> Any:  # type: ignore[override]
            _watched(self.sock)
            return super().getresponse()

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


def _total(timeout: Any) -> float:
    """A request's whole deadline: the time to connect and the time to answer."""
    if isinstance(timeout, tuple):
        return float(sum(t for t in timeout if t))
    return 2 * float(timeout)


# The exec websocket's deadline, set by ``KubeBackend._exec`` around its call (see
# ``_bound_exec_websockets``); None elsewhere, which leaves other users of the library as they are.
_WEBSOCKET_TIMEOUT: ContextVar[float | None] = ContextVar(
    "meshtutor_websocket_timeout", default=None
)


@functools.cache
def _deadline_api_client() -> type:
    """An ``ApiClient`` that gives every call without ``_request_timeout`` a deadline.

    The client library passes no timeout on the calls it makes itself (``DynamicClient``'s
    discovery: ``/version``, ``/apis``, one ``/apis/GROUP/VERSION`` per group it searches), and
    urllib3 then waits for ever: an API server that accepts the connection and never answers
    hung ``meshtutor run --dry-run`` until it was killed. Every call of the generated API and of
    the dynamic client goes through ``call_api``."""
    from kubernetes.client import ApiClient

    class DeadlineApiClient(ApiClient):  # type: ignore[misc]
        deadline: tuple[float, float] = (REQUEST_TIMEOUT, REQUEST_TIMEOUT)

        def call_api(
            self,
            method: str,
            url: str,
            header_params: Any = None,
            body: Any = None,
            post_params: Any = None,
            _request_timeout: Any = None,
        ) -> Any:
            timeout = _request_timeout or self.deadline
            total = _total(timeout)
            with socket_deadline(total) as watch:
                try:
                    response: Any = super().call_api(
                        method, url, header_params, body, post_params, timeout
                    )
                    response.read()  # the whole answer, under the same deadline
                    return response
                except Exception:
                    if watch.expired:
                        raise DeadlineExceeded(total) from None
                    raise

    return DeadlineApiClient


@functools.cache
def _bound_exec_websockets() -> None:
    """Give the exec websocket a deadline. The client library opens it without one
    (``create_websocket`` in ``kubernetes/stream/ws_client.py`` passes no ``timeout``, and
    websocket-client's ``WebSocket`` ignores ``websocket.setdefaulttimeout``), so an API server
    that accepted the upgrade request and never answered would hold a probe for ever. The
    subclass only adds the timeout ``_exec`` sets in ``_WEBSOCKET_TIMEOUT``; connecting, the TLS
    handshake, the upgrade and every later read are then bounded by it."""
    from kubernetes.stream import ws_client

    base = ws_client.WebSocket  # type: ignore[attr-defined]

    class DeadlineWebSocket(base):  # type: ignore[misc, valid-type]
        def connect(self, url: str, **options: Any) -> None:
            timeout = _WEBSOCKET_TIMEOUT.get()
            if timeout is not None:
                options.setdefault("timeout", timeout)
            watch = _WATCH.get()
            if watch is not None:  # the upgrade and every frame after it, until the deadline
                watch.add(lambda: shut(getattr(self, "sock", None)))
            super().connect(url, **options)

    ws_client.WebSocket = DeadlineWebSocket  # type: ignore[attr-defined]


def client_configuration(target: Target, *, retries: int = 1) -> Any:
    """The client library's ``Configuration`` for ``target``. A connection that fails is retried
    ``retries`` times, a request the server did not answer never: urllib3 would otherwise retry
    three times, turning a 3 s timeout into 12 s."""
    import urllib3
    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    configuration = kclient.Configuration()
    kconfig.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=target.kubeconfig,
        context=target.context,
        client_configuration=configuration,
        persist_config=False,
    )
    # Set before the client exists: its connection pool takes it at construction.
    configuration.retries = urllib3.Retry(total=retries, read=0, redirect=0)
    return configuration


def api_client(
    target: Target | None = None,
    *,
    timeout: float = REQUEST_TIMEOUT,
    retries: int = 1,
    configuration: Any = None,
) -> Any:
    """An ApiClient for ``target`` (or an existing ``configuration``) whose every call waits at
    most ``timeout`` seconds to connect and ``timeout`` seconds for each answer."""
    if configuration is None:
        assert target is not None
        configuration = client_configuration(target, retries=retries)
    client = _deadline_api_client()(configuration)
    client.deadline = (timeout, timeout)
    # Set before the first request: the pool manager makes a pool per server when it needs one.
    client.rest_client.pool_manager.pool_classes_by_scheme = _watched_pools()
    return client


class NotAnAPIServer(Exception):
    """The server answered ``/version`` with something that is not the Kubernetes API's."""


def server_version(api: Any, timeout: float) -> str:
    """The API server's version (``v1.31.0``), read from ``/version`` as the first call: it
    also proves the address is a Kubernetes API server before the client library's discovery
    reads it (which fails with an AttributeError on a web page)."""
    from kubernetes import client as kclient

    response: Any = kclient.VersionApi(api).get_code(
        _preload_content=False, _request_timeout=timeout
    )
    try:
        info = json.loads(response.data)
        return str(info["gitVersion"])
    except (ValueError, KeyError, TypeError):
        raise NotAnAPIServer(response.headers.get("Content-Type") or "no content type") from None


def client_error_reason(exc: BaseException, timeout: float) -> str:
    """What went wrong talking to an API server, to follow its address in one line: ``refuses
    connections``, ``did not answer in 10 s``, ``did not complete a TLS handshake (...)``."""
    import urllib3.exceptions as u3

    if isinstance(exc, DeadlineExceeded):
        return f"did not answer in full in {exc.seconds:g} s"
    reason: BaseException = exc
    while isinstance(reason, u3.MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    if (
        isinstance(reason, u3.ProtocolError)
        and reason.args
        and isinstance(reason.args[-1], BaseException)
    ):
        reason = reason.args[-1]
    text = str(reason)
    name = type(reason).__name__
    if isinstance(reason, ConnectionRefusedError) or "Connection refused" in text:
        return "refuses connections; is the cluster running? (`kind get clusters`, `docker ps`)"
    if isinstance(reason, u3.NewConnectionError):
        errno_text = re.search(r"\[Errno -?\d+\] (.+)$", text)
        return f"cannot be reached ({errno_text.group(1) if errno_text else text})"
    if isinstance(reason, u3.ConnectTimeoutError):
        return f"did not accept a connection in {timeout:g} s"
    if (
        isinstance(reason, (u3.ReadTimeoutError, TimeoutError))
        or "timed out" in text.lower()
        or "timeout" in name.lower()
    ):
        return f"did not answer in {timeout:g} s"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        detail = re.search(r"certificate verify failed: ([^(\"')]+)", text)
        why = f" ({detail.group(1).strip()})" if detail else ""
        return f"presented a certificate this kubeconfig does not trust{why}"
    if isinstance(reason, u3.SSLError) or "SSL" in name or "[SSL" in text:
        detail = re.search(r"\[SSL[^\]]*\] ([^(\"')]+)", text)
        why = detail.group(1).strip() if detail else name
        return f"did not complete a TLS handshake ({why}): is this an API server's address?"
    if name in ("RemoteDisconnected", "ConnectionResetError", "IncompleteRead") or (
        isinstance(reason, (ConnectionError, u3.ProtocolError))
    ):
        return "closed the connection without an answer: is this an API server's address?"
    if isinstance(reason, NotAnAPIServer):
        return (
            f"answered /version with something that is not the Kubernetes API's ({reason}): "
            "is this an API server's address?"
        )
    if name in ("BadStatusLine", "LineTooLong", "LocationParseError") or isinstance(
        reason, (json.JSONDecodeError, UnicodeDecodeError)
    ):
        return (
            "answered, but not as a Kubernetes API server does "
            f"({name}): is this an API server's address?"
        )
    first = text.splitlines()[0] if text else ""
    return f"failed: {name}: {first[:200]}".rstrip(": ")


def client_errors() -> tuple[type[BaseException], ...]:
    """The errors the client library raises for a cluster that cannot be reached, answers badly
    or refuses; anything else is a bug in meshtutor and keeps its traceback."""
    import http.client

    import urllib3.exceptions as u3
    from kubernetes.client.exceptions import ApiException, OpenApiException
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.dynamic.exceptions import DynamicApiError
    from websocket import WebSocketException

    return (
        NotAnAPIServer,
        ApiException,
        OpenApiException,
        ConfigException,
        DynamicApiError,
        u3.HTTPError,
        http.client.HTTPException,
        WebSocketException,
        OSError,
        json.JSONDecodeError,
        UnicodeDecodeError,
    )
