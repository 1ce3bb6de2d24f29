"""A small, strict HTTP/1.1 reader and writer for the sandbox data plane (DESIGN §5).

The sandbox apps and sidecars speak real HTTP/1.1 to a real ``curl``, so this module parses
what curl (and our own proxies) send: origin-form, absolute-form (a request to an HTTP proxy)
and authority-form (``CONNECT``) targets, ``Content-Length`` and chunked bodies, keep-alive.
It has no third-party dependency and never guesses: input it cannot frame unambiguously is an
:class:`HTTPParseError`, which a server answers with ``400`` and a closed connection.

Heads are decoded as ISO-8859-1 so that any byte a client sends survives a parse and
re-serialisation unchanged (a proxy must not rewrite what it does not understand).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import urlsplit

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "HTTPParseError",
    "Request",
    "Response",
    "make_response",
    "read_request",
    "read_response",
    "reason_phrase",
]

MAX_HEAD = 65536
"""Default limit on a message head (request or status line plus headers), in bytes."""
MAX_BODY = 10 * 1024 * 1024
"""Default limit on a message body, in bytes."""

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_REQUEST_LINE = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([!-~]+) (HTTP/\d\.\d)$")
_STATUS_LINE = re.compile(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$")
_CHUNK_SIZE = re.compile(r"^([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?$")
# Framing headers are recomputed on re-serialisation: a body we hold in memory is always sent
# with an exact Content-Length, whatever framing it arrived with.
_FRAMING = frozenset({"content-length", "transfer-encoding"})
# Responses that never carry a body, whatever their headers say (RFC 9110 §6.4.1).
_BODYLESS_STATUSES = frozenset({204, 304})

Headers = list[tuple[str, str]]


class HTTPParseError(Exception):
    """The peer sent bytes that are not a well-formed, acceptably sized HTTP/1.1 message."""


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` (``""`` for codes HTTP does not name)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _find_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def _header_tokens(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    """Every comma-separated token of every ``name`` header, lower-cased."""
    wanted = name.lower()
    return [
        token.strip().lower()
        for key, value in headers
        if key.lower() == wanted
        for token in value.split(",")
        if token.strip()
    ]


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` → (host, port); a bad port falls back to the default."""
    host, port_text = authority, ""
    if authority.startswith("["):
        end = authority.find("]")
        if end != -1:
            host = authority[1:end]
            rest = authority[end + 1 :]
            port_text = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, port_text = authority.split(":")
    port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else default_port
    return host.lower(), port


def _serialise_head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


@dataclass
class Request:
    """One HTTP request as received: the target is kept as sent, headers keep order and case."""

    method: str
    target: str
    version: str = "HTTP/1.1"
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    @property
    def is_absolute(self) -> bool:
        """Whether the target is absolute-form (``http://host/path``), as a proxy receives it."""
        return "://" in self.target and not self.target.startswith("/")

    @property
    def is_connect(self) -> bool:
        """Whether this is a ``CONNECT host:port`` tunnel request (authority-form target)."""
        return self.method.upper() == "CONNECT"

    def _origin_target(self) -> str:
        if self.is_connect:
            return ""
        if self.is_absolute:
            parts = urlsplit(self.target)
            path = parts.path or "/"
            return f"{path}?{parts.query}" if parts.query else path
        return self.target

    @property
    def path(self) -> str:
        """The path without the query (``/ip``); ``""`` for CONNECT, ``*`` for ``OPTIONS *``."""
        return self._origin_target().split("?", 1)[0]

    @property
    def query(self) -> str:
        """The raw query string without the ``?`` (``""`` when there is none)."""
        target = self._origin_target()
        return target.split("?", 1)[1] if "?" in target else ""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return _find_header(self.headers, name)

    @property
    def host(self) -> str:
        """The destination host: from an absolute or CONNECT target, else the Host header."""
        if self.is_connect:
            return _split_authority(self.target, 443)[0]
        if self.is_absolute:
            return (urlsplit(self.target).hostname or "").lower()
        return _split_authority(self.header("host") or "", 80)[0]

    @property
    def port(self) -> int:
        """The destination port: from an absolute or CONNECT target or the Host header, else 80."""
        if self.is_connect:
            return _split_authority(self.target, 443)[1]
        if self.is_absolute:
            parts = urlsplit(self.target)
            default = 443 if parts.scheme.lower() == "https" else 80
            try:
                return parts.port or default
            except ValueError:
                return default
        return _split_authority(self.header("host") or "", 80)[1]

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection be reused after this request."""
        tokens = _header_tokens(self.headers, "connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def with_headers(
        self, add: Iterable[tuple[str, str]] = (), remove: Iterable[str] = ()
    ) -> Request:
        """A copy without the headers named in ``remove`` (any case), with ``add`` appended."""
        dropped = {name.lower() for name in remove}
        kept = [(k, v) for k, v in self.headers if k.lower() not in dropped]
        return dataclasses.replace(self, headers=[*kept, *add])

    def to_bytes(self, origin_form: bool = True) -> bytes:
        """Serialise for sending upstream.

        With ``origin_form`` an absolute target becomes ``path?query`` (what a proxy sends to
        the origin server) and a Host header is added if the client sent none. The body is
        always framed with Content-Length.
        """
        target = self.target
        headers = [(k, v) for k, v in self.headers if k.lower() not in _FRAMING]
        if origin_form and self.is_absolute:
            target = self._origin_target()
            if self.header("host") is None:
                headers.insert(0, ("Host", urlsplit(self.target).netloc))
        had_framing = any(k.lower() in _FRAMING for k, _ in self.headers)
        if self.body or had_framing:
            headers.append(("Content-Length", str(len(self.body))))
        return _serialise_head(f"{self.method} {target} {self.version}", headers) + self.body


@dataclass
class Response:
    """One HTTP response; ``body`` is already de-chunked."""

    status: int
    reason: str = ""
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return _find_header(self.headers, name)

    def to_bytes(self, *, head_only: bool = False) -> bytes:
        """Serialise, framing the body with Content-Length.

        ``head_only`` serialises the response to a HEAD request: the headers are sent as they
        are (their Content-Length describes the body a GET would get) and no body follows.
        """
        start = f"{self.version} {self.status} {self.reason}"
        if head_only:
            return _serialise_head(start, self.headers)
        headers = [(k, v) for k, v in self.headers if k.lower() not in _FRAMING]
        if self.status >= 200 and self.status not in _BODYLESS_STATUSES:
            headers.append(("content-length", str(len(self.body))))
            return _serialise_head(start, headers) + self.body
        return _serialise_head(start, headers)


async def _read_line(reader: asyncio.StreamReader, budget: int) -> str:
    """One CRLF- (or bare LF-) terminated line of at most ``budget`` bytes, without its ending."""
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise HTTPParseError("connection closed in the middle of the message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise HTTPParseError("message head too large") from exc
    if len(raw) > budget:
        raise HTTPParseError("message head too large")
    return raw.rstrip(b"\n").rstrip(b"\r").decode("latin-1")


async def _read_headers(reader: asyncio.StreamReader, budget: int) -> tuple[Headers, int]:
    """Header lines up to the empty line; returns the headers and the budget left."""
    headers: Headers = []
    while True:
        line = await _read_line(reader, budget)
        budget -= len(line) + 2
        if not line:
            return headers, budget
        if line[0] in " \t":
            # Obsolete line folding is a request-smuggling vector; RFC 9112 §5.2 lets us refuse.
            raise HTTPParseError("folded header line")
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name) <= _TOKEN_CHARS:
            raise HTTPParseError(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip(" \t")))


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise HTTPParseError("connection closed in the middle of the body") from exc


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while True:
        line = await _read_line(reader, 4096)
        match = _CHUNK_SIZE.match(line)
        if not match:
            raise HTTPParseError(f"bad chunk size line {line[:40]!r}")
        size = int(match.group(1), 16)
        if size == 0:
            break
        if len(body) + size > max_body:
            raise HTTPParseError("body too large")
        body += await _read_exactly(reader, size)
        if await _read_line(reader, 2) != "":
            raise HTTPParseError("chunk not followed by CRLF")
    # Trailer fields are read to keep the connection in sync, then dropped: nothing in the
    # sandbox acts on them.
    await _read_headers(reader, MAX_HEAD)
    return bytes(body)


def _content_length(headers: Headers) -> int | None:
    values = {v.strip() for k, v in headers if k.lower() == "content-length"}
    # "5, 5" (a list of identical values) is allowed by RFC 9110 §8.6; differing values are not.
    values = {part.strip() for v in values for part in v.split(",")}
    if not values:
        return None
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise HTTPParseError(f"bad Content-Length {sorted(values)!r}")
    return int(next(iter(values)))


async def _read_body(
    reader: asyncio.StreamReader, headers: Headers, max_body: int, *, until_eof: bool
) -> bytes:
    codings = _header_tokens(headers, "transfer-encoding")
    if codings:
        # Transfer-Encoding overrides Content-Length (RFC 9112 §6.3); only chunked can be framed.
        if codings[-1] != "chunked":
            if until_eof:
                return await _read_to_eof(reader, max_body)
            raise HTTPParseError(f"unsupported Transfer-Encoding {', '.join(codings)}")
        return await _read_chunked(reader, max_body)
    length = _content_length(headers)
    if length is not None:
        if length > max_body:
            raise HTTPParseError("body too large")
        return await _read_exactly(reader, length)
    return await _read_to_eof(reader, max_body) if until_eof else b""


async def _read_to_eof(reader: asyncio.StreamReader, max_body: int) -> bytes:
    data = await reader.read(max_body + 1)
    body = bytearray()
    while data:
        body += data
        if len(body) > max_body:
            raise HTTPParseError("body too large")
        data = await reader.read(max_body + 1 - len(body))
    return bytes(body)


async def read_request(
    reader: asyncio.StreamReader,
    *,
    max_head: int = MAX_HEAD,
    max_body: int = MAX_BODY,
    continue_writer: asyncio.StreamWriter | None = None,
) -> Request | None:
    """Read one request (head and whole body) from ``reader``.

    Returns None when the peer closes the connection cleanly before sending a byte (the end of
    a keep-alive connection). Raises :class:`HTTPParseError` on anything malformed or larger
    than ``max_head`` / ``max_body``. With ``continue_writer``, a request carrying
    ``Expect: 100-continue`` is answered ``100 Continue`` before its body is read, as a real
    server does; otherwise curl waits a second before sending a large body.
    """
    budget = max_head
    # Tolerate a few stray blank lines before the request line (RFC 9112 §2.2), but look at the
    # very first byte on its own: a TLS ClientHello (0x16) contains no newline to wait for, and
    # must be rejected at once rather than leave the client hanging.
    while True:
        try:
            first = await reader.readexactly(1)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and budget == max_head:
                return None
            raise HTTPParseError("connection closed before a request line") from exc
        if first not in b"\r\n":
            break
        budget -= 1
        if budget <= max_head - 8:
            raise HTTPParseError("too many blank lines before the request line")
    if chr(first[0]) not in _TOKEN_CHARS:
        raise HTTPParseError(f"not an HTTP request (first byte {first!r})")
    line = first.decode("latin-1") + await _read_line(reader, budget - 1)
    budget -= len(line) + 2
    match = _REQUEST_LINE.match(line)
    if not match:
        raise HTTPParseError(f"malformed request line {line[:80]!r}")
    method, target, version = match.groups()
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HTTPParseError(f"unsupported version {version}")
    headers, budget = await _read_headers(reader, budget)
    if budget < 0:
        raise HTTPParseError("message head too large")
    expects = _header_tokens(headers, "expect")
    if continue_writer is not None and "100-continue" in expects and version == "HTTP/1.1":
        continue_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await continue_writer.drain()
    body = await _read_body(reader, headers, max_body, until_eof=False)
    return Request(method, target, version, headers, body)


async def read_response(
    reader: asyncio.StreamReader,
    *,
    head_only_for: str | None = None,
    max_head: int = MAX_HEAD,
    max_body: int = MAX_BODY,
) -> Response:
    """Read one response, skipping interim ``1xx`` responses other than ``101``.

    The body is framed by Transfer-Encoding: chunked, Content-Length, or the end of the
    connection. Pass the request's method as ``head_only_for``: for ``HEAD`` (and a successful
    ``CONNECT``) no body is read. Raises :class:`HTTPParseError` when the connection closes
    before a full response head, or on anything malformed.
    """
    while True:
        line = await _read_line(reader, max_head)
        match = _STATUS_LINE.match(line)
        if not match:
            raise HTTPParseError(f"malformed status line {line[:80]!r}")
        version, code, reason = match.groups()
        headers, _ = await _read_headers(reader, max_head - len(line) - 2)
        status = int(code)
        if status >= 200 or status == 101:
            break
    method = (head_only_for or "").upper()
    no_body = (
        status < 200
        or status in _BODYLESS_STATUSES
        or method == "HEAD"
        or (method == "CONNECT" and 200 <= status < 300)
    )
    body = b"" if no_body else await _read_body(reader, headers, max_body, until_eof=True)
    return Response(status, reason or "", headers, body, version)


def make_response(
    status: int,
    body: bytes | str = b"",
    *,
    content_type: str = "text/plain",
    headers: Iterable[tuple[str, str]] = (),
    keep_alive: bool = True,
) -> bytes:
    """A complete response on the wire: status line, framing and standard headers, body.

    A ``content-type`` in ``headers`` replaces the default one. ``204``, ``304`` and ``1xx``
    responses are sent without a body, as HTTP requires.
    """
    payload = body.encode() if isinstance(body, str) else body
    extra = list(headers)
    out: Headers = []
    if status >= 200 and status not in _BODYLESS_STATUSES:
        out.append(("content-length", str(len(payload))))
    else:
        payload = b""
    if _find_header(extra, "content-type") is None and status >= 200:
        out.append(("content-type", content_type))
    out.append(("date", formatdate(usegmt=True)))
    out.extend(extra)
    if not keep_alive:
        out.append(("connection", "close"))
    return _serialise_head(f"HTTP/1.1 {status} {reason_phrase(status)}", out) + payload
