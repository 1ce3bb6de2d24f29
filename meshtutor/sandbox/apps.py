"""The built-in apps a sandbox pod runs: an httpbin clone and a generic echo server (DESIGN §2).

Which app a container runs, and which status code it answers, is decided in
:mod:`meshtutor.policy.apps`; this module only serves those decisions over real sockets so a
real ``curl`` sees what the policy engine predicted. Every status code comes from
:func:`~meshtutor.policy.apps.response_status`; the handlers here only shape the body.

The httpbin bodies follow mccutchen/go-httpbin v2, the image the Istio samples use: indented
JSON, header names in Go's canonical case with a list of values each, ``origin`` taken from the
first ``X-Forwarded-For`` entry or else the TCP peer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from meshtutor.policy.apps import App, response_status
from meshtutor.sandbox.http import (
    HTTPParseError,
    Request,
    make_response,
    read_request,
    reason_phrase,
)
from meshtutor.sandbox.podlog import go_duration

__all__ = ["MAX_BYTES", "MAX_DELAY", "AppServer", "canonical_header_name", "request_headers"]

log = logging.getLogger(__name__)

MAX_DELAY = 10.0
"""``/delay/N`` never waits longer than this (go-httpbin's default ``-max-duration``)."""
MAX_BYTES = 100 * 1024
"""``/bytes/N`` never sends more than this (the classic httpbin's cap)."""

_JSON = "application/json; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_METHOD_ONLY = {"/post": "POST", "/put": "PUT", "/patch": "PATCH", "/delete": "DELETE"}
_READ_ONLY = frozenset({"/ip", "/headers", "/get", "/user-agent", "/uuid"})

_INDEX_HTML = """<!DOCTYPE html>
<html>
<head><title>httpbin (meshtutor sandbox)</title></head>
<body>
<h1>httpbin</h1>
<p>A meshtutor sandbox app answering like go-httpbin.</p>
<ul>
<li><a href="/ip">/ip</a> the requester's IP address</li>
<li><a href="/headers">/headers</a> the request's headers</li>
<li><a href="/get">/get</a> the GET request's data</li>
<li><a href="/anything">/anything</a> any request's data</li>
<li><a href="/status/418">/status/:code</a> the given status code</li>
<li><a href="/delay/1">/delay/:n</a> a response after n seconds (at most 10)</li>
<li><a href="/user-agent">/user-agent</a>, <a href="/uuid">/uuid</a>,
<a href="/json">/json</a>, <a href="/html">/html</a>, <a href="/bytes/16">/bytes/:n</a></li>
<li>/post, /put, /patch, /delete: only with that method</li>
</ul>
</body>
</html>
"""

_MOBY_HTML = """<!DOCTYPE html>
<html>
  <head>
  </head>
  <body>
      <h1>Herman Melville - Moby-Dick</h1>

      <div>
        <p>
          Availing himself of the mild, summer-cool weather that now reigned in these latitudes,
          and in preparation for the peculiarly active pursuits shortly to be anticipated, Perth,
          the begrimed, blistered old blacksmith, had not removed his portable forge to the hold
          again.
        </p>
      </div>
  </body>
</html>
"""

_SAMPLE_JSON: dict[str, Any] = {
    "slideshow": {
        "author": "Yours Truly",
        "date": "date of publication",
        "slides": [
            {"title": "Wake up to WonderWidgets!", "type": "all"},
            {
                "items": [
                    "Why <em>WonderWidgets</em> are great",
                    "Who <em>buys</em> WonderWidgets",
                ],
                "title": "Overview",
                "type": "all",
            },
        ],
        "title": "Sample Slide Show",
    }
}


def canonical_header_name(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``x-forwarded-for`` → ``X-Forwarded-For``.

    Names with characters outside an HTTP token are returned unchanged, as Go does.
    """
    if not _TOKEN.match(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def request_headers(request: Request) -> dict[str, list[str]]:
    """The request's headers as go-httpbin prints them: canonical names, every value in a list.

    Keys are sorted because Go's JSON encoder sorts map keys; ``Host`` is always present.
    """
    merged: dict[str, list[str]] = {}
    for name, value in request.headers:
        key = canonical_header_name(name)
        if key == "Host":
            continue
        merged.setdefault(key, []).append(value)
    # Go moves Host out of the header map into r.Host (taken from an absolute-form target when
    # there is one) and go-httpbin puts it back.
    host = request.target.split("://", 1)[1].split("/", 1)[0] if request.is_absolute else None
    merged["Host"] = [host or request.header("host") or ""]
    return dict(sorted(merged.items()))


def _client_ip(request: Request, peer_ip: str) -> str:
    forwarded = request.header("x-forwarded-for")
    if forwarded and forwarded.split(",", 1)[0].strip():
        return forwarded.split(",", 1)[0].strip()
    return peer_ip


def _url(request: Request) -> str:
    scheme = request.header("x-forwarded-proto") or "http"
    host = request_headers(request)["Host"][0]
    path = request.path or "/"
    return f"{scheme}://{host}{path}" + (f"?{request.query}" if request.query else "")


def _args(query: str) -> dict[str, list[str]]:
    return dict(sorted(parse_qs(query, keep_blank_values=True).items()))


def _json_body(value: Any) -> bytes:
    # go-httpbin's encoder: two-space indent, no HTML escaping, trailing newline.
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def _no_body_doc(request: Request, peer_ip: str) -> dict[str, Any]:
    return {
        "args": _args(request.query),
        "headers": request_headers(request),
        "method": request.method,
        "origin": _client_ip(request, peer_ip),
        "url": _url(request),
    }


def _body_doc(request: Request, peer_ip: str) -> dict[str, Any]:
    doc = _no_body_doc(request, peer_ip)
    doc.update(data="", files={}, form={}, json=None)
    if not request.body:
        return doc
    content_type = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
    text = request.body.decode("utf-8", errors="replace")
    doc["data"] = text
    if content_type == "application/x-www-form-urlencoded":
        doc["form"] = _args(text)
    elif content_type == "application/json":
        # go-httpbin answers 400 to a body that is not JSON; the policy engine predicts 200 for
        # every /anything request, so the sandbox keeps the 200 and leaves "json" null.
        with contextlib.suppress(ValueError, RecursionError):  # RecursionError: [[[[… a client sent
            doc["json"] = json.loads(text)
    elif content_type not in ("text/plain", "text/html", "multipart/form-data"):
        encoded = base64.urlsafe_b64encode(request.body).decode()
        doc["data"] = f"data:{content_type or 'application/octet-stream'};base64,{encoded}"
    return doc


async def _lingering_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send FIN, then read and drop what the client still sends, for at most a second.

    Closing a socket with unread input makes the kernel send a reset, which can destroy the
    400 we just wrote before the client reads it (the classic case: a TLS ClientHello sent to
    a plaintext port, of which we read one byte).
    """
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(1):
            while await reader.read(65536):
                pass


_Reply = tuple[bytes, str, list[tuple[str, str]]]
"""A 2xx body, its content type, and extra response headers."""


class AppServer:
    """One built-in app listening on a loopback address, as a container in a sandbox pod.

    Created with :meth:`start`; :meth:`close` stops listening and drops every connection.
    """

    def __init__(
        self,
        app: App,
        *,
        pod_name: str,
        namespace: str,
        image: str = "",
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.pod_name = pod_name
        self.namespace = namespace
        self.image = image.lower()
        self._log = log
        self.host = ""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    @classmethod
    async def start(
        cls,
        app: App,
        host: str,
        port: int = 0,
        *,
        pod_name: str,
        namespace: str,
        image: str = "",
        log: Callable[[str], None] | None = None,
        listen_port: int | None = None,
    ) -> AppServer:
        """Serve ``app`` on ``host:port`` (port 0: an ephemeral one, then read ``.port``).

        ``log`` receives the lines the container's image would print (``kubectl logs``): its
        start-up line, then one per request it answers; ``image`` chooses their format and
        ``listen_port`` is the container port the start-up line names.

        Raises ValueError for a client-only app, which listens on nothing, and OSError when
        the address cannot be bound.
        """
        if app.kind == "client":
            raise ValueError(f"container {app.container!r} is client-only and listens on no port")
        self = cls(app, pod_name=pod_name, namespace=namespace, image=image, log=log)
        self._server = await asyncio.start_server(self._accept, host, port)
        bound = self._server.sockets[0].getsockname()
        self.host, self.port = str(bound[0]), int(bound[1])
        if log is not None:
            for line in startup_lines(app, self.image, listen_port or self.port):
                log(line)
        return self

    async def close(self) -> None:
        """Stop listening, close every connection and wait until no task of ours is left."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._writers.clear()

    async def __aenter__(self) -> AppServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, not a coroutine: the connection's task is created and recorded
        # synchronously when the connection is made, so close() can never miss one that was
        # accepted but had not run yet.
        if self._closing:
            writer.transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self._serve_connection(reader, writer))
        self._connections.add(task)
        self._writers.add(writer)
        task.add_done_callback(self._connections.discard)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        peer_ip = str(peer[0]) if isinstance(peer, tuple) else ""
        try:
            while True:
                try:
                    request = await read_request(reader, continue_writer=writer)
                except HTTPParseError as exc:
                    body = f"400 Bad Request: {exc}\n"
                    writer.write(make_response(400, body, content_type=_TEXT, keep_alive=False))
                    await writer.drain()
                    await _lingering_close(reader, writer)
                    return
                if request is None:
                    return
                started = time.perf_counter()
                data, close_after = await self._respond(request, peer_ip)
                if self._log is not None:
                    line = request_line(
                        self.app,
                        self.image,
                        request,
                        data,
                        peer,
                        time.perf_counter() - started,
                    )
                    if line is not None:
                        self._log(line)
                writer.write(data)
                await writer.drain()
                if close_after:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away, or a bug: never let it reach the loop
            log.debug("app connection from %s ended: %r", peer_ip, exc)
        finally:
            self._writers.discard(writer)
            # close(), not abort(): a response still in the transport's buffer is flushed first.
            writer.close()

    async def _respond(self, request: Request, peer_ip: str) -> tuple[bytes, bool]:
        """The bytes to send back for ``request``, and whether to close the connection after."""
        status = response_status(self.app, request.method, request.path)
        keep_alive = request.keep_alive
        headers: list[tuple[str, str]] = []
        if request.version == "HTTP/1.0" and keep_alive:
            headers.append(("connection", "keep-alive"))
        if self.app.kind == "echo":
            headers.append(("x-meshtutor-pod", f"{self.pod_name}.{self.namespace}"))
        if status < 200:
            # An interim code cannot end an exchange; sending it and closing makes curl report
            # exactly this code (with exit code 52), matching the prediction.
            return make_response(status), True
        try:
            # /status/2xx answers that code with an empty body; echo apps have no /status/.
            is_status_path = self.app.kind == "httpbin" and request.path.startswith("/status/")
            if 200 <= status < 300 and not is_status_path:
                body, content_type, more = await self._success_body(request, peer_ip)
            else:
                body, content_type, more = self._other_body(request, status, is_status_path)
        except Exception:  # a bug in a body builder must still give curl an answer
            # debug, not error: the sandbox runs under a TUI, and a stray stderr line would
            # tear its screen; the 500 itself shows up as a prediction mismatch.
            log.debug(
                "%s failed on %s %s", self.app.kind, request.method, request.path, exc_info=True
            )
            status, body, content_type, more = 500, b"500 Internal Server Error\n", _TEXT, []
        headers.extend(more)
        if request.method.upper() == "HEAD":
            # HEAD gets the headers a GET would get, Content-Length included, and no body.
            wire = make_response(
                status, body, content_type=content_type, headers=headers, keep_alive=keep_alive
            )
            head, _, _ = wire.partition(b"\r\n\r\n")
            return head + b"\r\n\r\n", not keep_alive
        return (
            make_response(
                status, body, content_type=content_type, headers=headers, keep_alive=keep_alive
            ),
            not keep_alive,
        )

    def _other_body(self, request: Request, status: int, is_status_path: bool) -> _Reply:
        if is_status_path:
            return b"", _TEXT, []
        if status == 404:
            # The text Go's ServeMux answers for a path no route matches.
            return b"404 page not found\n", _TEXT, []
        if status == 405:
            allowed = _METHOD_ONLY.get(request.path)
            allow = allowed if allowed else "GET, HEAD" if request.path in _READ_ONLY else ""
            extra = [("allow", allow)] if allow else []
            return b"Method Not Allowed\n", _TEXT, extra
        return f"{status} {reason_phrase(status)}\n".encode(), _TEXT, []

    async def _success_body(self, request: Request, peer_ip: str) -> _Reply:
        if self.app.kind == "echo":
            doc = {
                "pod": self.pod_name,
                "namespace": self.namespace,
                "method": request.method,
                "path": request.path,
                "headers": request_headers(request),
                "origin": _client_ip(request, peer_ip),
            }
            return _json_body(doc), _JSON, []
        path = request.path
        if path.startswith("/delay/"):
            await asyncio.sleep(min(float(path.removeprefix("/delay/")), MAX_DELAY))
            return _json_body(_body_doc(request, peer_ip)), _JSON, []
        if path.startswith("/bytes/"):
            return self._random_bytes(request), "application/octet-stream", []
        if path == "/anything" or path.startswith("/anything/"):
            is_head = request.method.upper() == "HEAD"
            doc = _no_body_doc(request, peer_ip) if is_head else _body_doc(request, peer_ip)
            return _json_body(doc), _JSON, []
        if path in _METHOD_ONLY:
            return _json_body(_body_doc(request, peer_ip)), _JSON, []
        handler = self._simple_handlers().get(path)
        if handler is None:  # response_status said 2xx for a path we do not know
            return b"", _TEXT, []
        return handler(request, peer_ip)

    def _simple_handlers(self) -> dict[str, Callable[[Request, str], _Reply]]:
        return {
            "/": lambda r, ip: (_INDEX_HTML.encode(), _HTML, []),
            "/ip": self._ip,
            "/headers": lambda r, ip: (_json_body({"headers": request_headers(r)}), _JSON, []),
            "/get": lambda r, ip: (_json_body(_no_body_doc(r, ip)), _JSON, []),
            "/user-agent": lambda r, ip: (
                _json_body({"user-agent": r.header("user-agent") or ""}),
                _JSON,
                [],
            ),
            "/uuid": lambda r, ip: (_json_body({"uuid": str(uuid.uuid4())}), _JSON, []),
            "/json": lambda r, ip: (_json_body(_SAMPLE_JSON), _JSON, []),
            "/html": lambda r, ip: (_MOBY_HTML.encode(), _HTML, []),
        }

    @staticmethod
    def _ip(request: Request, peer_ip: str) -> _Reply:
        origin = _client_ip(request, peer_ip)
        if "format=text" in request.query.split("&"):
            return f"{origin}\n".encode(), _TEXT, []
        return _json_body({"origin": origin}), _JSON, []

    @staticmethod
    def _random_bytes(request: Request) -> bytes:
        count = min(int(request.path.removeprefix("/bytes/")), MAX_BYTES)
        seed = _args(request.query).get("seed", [""])[0]
        # A seed makes the bytes reproducible, as go-httpbin's ?seed= does.
        rng = random.Random(int(seed)) if seed.lstrip("-").isdigit() else random.Random()
        return rng.randbytes(count)


# --- the container's log (kubectl logs) ---------------------------------------------------------
#
# What each image prints, checked against the images the manifests name:
# - mccutchen/go-httpbin v2.15.0: slog's text handler on stderr (httpbin/cmd/cmd.go), a start-up
#   line "go-httpbin listening on http://0.0.0.0:8080", then StdLogObserver's line per request
#   (httpbin/middleware.go): INFO, WARN for 4xx, ERROR for 5xx.
# - kennethreitz/httpbin: gunicorn 19.9 with gevent workers and no --access-logfile, so only
#   gunicorn's start-up lines and nothing per request (gunicorn's access log is off by default).
# - hashicorp/http-echo 1.0: "[INFO] server is listening on :5678" (main.go), then httpLog's
#   line per request (handlers.go).
# - any other image runs meshtutor's echo stand-in, which says so and logs each request in the
#   common log format.


def _flavour(app: App, image: str) -> str:
    if app.kind == "httpbin":
        return "go-httpbin" if 8080 in app.ports else "gunicorn"
    return "http-echo" if "http-echo" in image else "echo"


def _go_time(now: datetime) -> str:
    # slog's text handler: RFC 3339 with milliseconds (the images run in UTC).
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _slog_value(value: str) -> str:
    """slog's text handler quotes a value that is empty or holds a space, ``=``, ``"`` or a
    character that is not printable (log/slog ``needsQuoting``), as Go's strconv.Quote."""
    if value and not any(ch.isspace() or ch in '="' or not ch.isprintable() for ch in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _go_float(value: float) -> str:
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def startup_lines(app: App, image: str, port: int) -> list[str]:
    """The lines the container prints when it starts."""
    now = datetime.now(UTC)
    flavour = _flavour(app, image)
    if flavour == "go-httpbin":
        return [
            f'time={_go_time(now)} level=INFO msg="go-httpbin listening on http://0.0.0.0:{port}"'
        ]
    if flavour == "gunicorn":
        stamp = now.strftime("[%Y-%m-%d %H:%M:%S +0000]")
        return [
            f"{stamp} [1] [INFO] Starting gunicorn 19.9.0",
            f"{stamp} [1] [INFO] Listening at: http://0.0.0.0:{port} (1)",
            f"{stamp} [1] [INFO] Using worker: gevent",
            f"{stamp} [8] [INFO] Booting worker with pid: 8",
        ]
    if flavour == "http-echo":
        return [f"{now.strftime('%Y/%m/%d %H:%M:%S')} [INFO] server is listening on :{port}"]
    return [f"meshtutor echo: listening on :{port} (standing in for {image or 'the image'})"]


def request_line(
    app: App, image: str, request: Request, data: bytes, peer: object, seconds: float
) -> str | None:
    """The line the container prints for one request it answered with ``data``; None for an
    image that prints nothing per request."""
    flavour = _flavour(app, image)
    if flavour == "gunicorn":
        return None
    status = int(data[9:12])
    head = data.find(b"\r\n\r\n")
    size = len(data) - head - 4 if head >= 0 else 0
    peer_ip, peer_port = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
    user_agent = request.header("user-agent") or ""
    now = datetime.now(UTC)
    target = request.path + (f"?{request.query}" if request.query else "")
    if flavour == "go-httpbin":
        level = "ERROR" if status >= 500 else "WARN" if status >= 400 else "INFO"
        # Go measures whole nanoseconds, so its float has no binary noise to print.
        millis = round(seconds * 1e9) / 1e6
        return (
            f"time={_go_time(now)} level={level} "
            f"msg={_slog_value(f'{status} {request.method} {target} {millis:.1f}ms')} "
            f"status={status} method={_slog_value(request.method)} uri={_slog_value(target)} "
            f"size_bytes={size} duration_ms={_go_float(millis)} "
            f"user_agent={_slog_value(user_agent)} "
            f"client_ip={_slog_value(_client_ip(request, peer_ip))}"
        )
    if flavour == "http-echo":
        return (
            f"{now.strftime('%Y/%m/%d %H:%M:%S')} {request.header('host') or ''} "
            f'{peer_ip}:{peer_port} "{request.method} {request.path} {request.version}" '
            f'{status} {size} "{user_agent}" {go_duration(seconds)}'
        )
    stamp = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (
        f'{peer_ip} - - [{stamp}] "{request.method} {target} {request.version}" {status} {size}'
        f' "-" "{user_agent}"'
    )
