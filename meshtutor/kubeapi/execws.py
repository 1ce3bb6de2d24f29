"""``pods/exec`` over a websocket: the channel protocol ``kubectl exec`` speaks, on aiohttp.

What happens on the wire, and where each rule comes from (kubernetes v1.33 sources):

* The client sends ``GET …/pods/NAME/exec?command=sh&command=-c&command=…&stdin=true&…`` with
  ``Upgrade: websocket`` and the subprotocols it speaks, best first. kubectl ≥ 1.30 offers only
  ``v5.channel.k8s.io`` (client-go ``tools/remotecommand/websocket.go``
  ``NewWebSocketExecutor``); the official Python client (37) offers v5, then v4. The server
  takes the first protocol of the client's list it knows (apimachinery
  ``util/httpstream/wsstream/conn.go`` ``handshake``). Known here, as a cluster knows them:
  ``v5.channel.k8s.io`` (kube-apiserver's stream translator,
  ``apiserver/pkg/util/proxy/websocket.go``) and the kubelet's ``v4.channel.k8s.io``,
  ``v4.base64.channel.k8s.io``, ``channel.k8s.io``, ``base64.channel.k8s.io`` and none at all
  (``pkg/kubelet/cri/streaming/remotecommand/websocket.go``). ``v2``/``v3`` exist only over
  SPDY: no server accepts them over a websocket, so neither does this one.
* Every message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error (the final
  status), 4 resize (``{"Width":80,"Height":24}``, client-go ``TerminalSize``), and in v5 only
  255 + one channel byte: the client closed that stream (stdin EOF). In the base64 protocols
  the channel is an ASCII digit and the payload base64 (text messages). Anything else is
  ignored, as ``Conn.handle`` ignores it; a malformed close signal ends the session, as there.
* Right after the upgrade the server sends one empty message on the lowest writable channel
  (stdout, else stderr, else error) so the client knows the streams are open.
* With ``tty`` there is no stderr stream: the kubelet drops it (``NewOptions``: "tty and
  stderr is not supported, bypassing stderr"); what the command writes to stderr reaches the
  terminal through stdout, as it would through a pty.
* At the end: v4 and v5 send a ``metav1.Status`` on channel 3, ``Success``, or ``Failure`` with
  reason ``NonZeroExitCode`` and cause ``ExitCode`` carrying the number, which client-go turns
  into ``command terminated with exit code 56`` and kubectl into its own exit code
  (``tools/remotecommand/v4.go`` ``errorDecoderV4``). v1 sends only a failure's message, as
  text. Then the server closes the websocket normally (1000) and waits for the client's
  close (at most ``CLOSE_TIMEOUT``), so output still on its way is not cut off.
* A client leaving cancels the command; so does the server stopping, if the application
  was given :func:`track_exec_sessions` (the client is then told so in a status).

Errors a real API server answers *before* the upgrade (pod not found, container not valid,
no streams) are HTTP ``Status`` responses here too: ``admit`` runs before the upgrade. kubectl
≥ 1.30 answers a failed websocket upgrade by retrying the same request over SPDY
(``FallbackExecutor``, ``httpstream.IsUpgradeFailure``); that retry gets the same ``Status``,
which kubectl prints as ``Error from server (BadRequest): container x is not valid for pod y``.
SPDY itself is not spoken: a SPDY upgrade that passes ``admit`` is refused with a ``Status``
saying to use a websocket-capable kubectl, so an old kubectl stops with that line instead of
hanging.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from multidict import MultiMapping

log = logging.getLogger(__name__)

V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"
V4_BASE64_PROTOCOL = "v4.base64.channel.k8s.io"
V1_PROTOCOL = "channel.k8s.io"
V1_BASE64_PROTOCOL = "base64.channel.k8s.io"
# What this server accepts. The order does not decide anything: the client's order does.
PROTOCOLS = (V5_PROTOCOL, V4_PROTOCOL, V4_BASE64_PROTOCOL, V1_PROTOCOL, V1_BASE64_PROTOCOL)
_STATUS_JSON = frozenset({V5_PROTOCOL, V4_PROTOCOL, V4_BASE64_PROTOCOL})
_BASE64 = frozenset({V4_BASE64_PROTOCOL, V1_BASE64_PROTOCOL})

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

# A stdin message from kubectl is at most 32 KiB (client-go copies stdin with io.Copy's
# buffer); the Python client sends what its caller writes in one message. 1 MiB is far beyond
# both and bounds what one message can make this process hold.
MAX_MESSAGE = 1024 * 1024
# Stdin the command has not read yet, at most: past it the server stops reading the socket
# until the command reads, as the kubelet's io.Pipe does. A pasted file fits; a flood waits.
STDIN_BUFFER = 256 * 1024
# While stdin is full, how often to look whether the client is still connected.
STDIN_STALL_CHECK = 1.0
# Output goes out in messages of at most this much, as the kubelet copies with 32 KiB buffers.
OUTPUT_CHUNK = 32 * 1024
# Resize events not yet taken by the command: only the latest size matters, older ones drop.
RESIZE_BACKLOG = 16
# After the status, how long to wait for the client's close frame. kubectl answers at once once
# it has read everything before it; one that neither reads nor closes is cut off after this.
CLOSE_TIMEOUT = 30.0
# When the server stops, how long each open session may take to say so to its client.
STOP_CLOSE_TIMEOUT = 2.0


class Stdin(Protocol):
    """A command's standard input: ``read(n)`` returns 1..n bytes, ``b""`` at end of input."""

    async def read(self, n: int = -1) -> bytes: ...


class Out(Protocol):
    """A command's standard output or error."""

    async def write(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class ExecParams:
    """What ``pods/exec`` was asked (``PodExecOptions`` from the query).

    ``container`` is ``None`` when the query names none; an ``admit`` callback returns it
    filled in with the pod's only container, as the API server defaults it."""

    argv: tuple[str, ...]
    container: str | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


@dataclass(frozen=True)
class ExecStreams:
    """What a command gets to run with.

    ``stdin`` is ``None`` unless the client asked for it (``kubectl exec -i``); it ends when
    the client closes it (v5's close signal on channel 255, kubectl's end of input) or the
    websocket closes. ``stdout`` and ``stderr`` always accept writes: one the client did not ask
    for discards them, and with ``tty`` ``stderr`` writes to stdout, as a terminal merges them.
    Writing after the client went away raises ``ConnectionResetError``. ``resize`` receives
    ``(width, height)`` as the client's terminal changes (``kubectl exec -t``)."""

    argv: list[str]
    container: str | None
    tty: bool
    stdin: Stdin | None
    stdout: Out
    stderr: Out
    resize: asyncio.Queue[tuple[int, int]]


ExecRun = Callable[[ExecStreams], Awaitable[int]]
"""Runs the command and returns its exit code (0–255; others are taken modulo 256, as a
process's exit status is). Raising :class:`ExecError` reports that status instead; the
command is cancelled when the client goes away."""

ExecAdmit = Callable[[ExecParams], ExecParams]
"""Checks the request before the upgrade (the pod exists, the container is one of its
containers) and returns the parameters with the container filled in, or raises
:class:`ExecError`, which is answered as the HTTP ``Status`` a real API server sends."""


class ExecError(Exception):
    """A Kubernetes ``Status`` failure for an exec request.

    Before the upgrade it is the HTTP answer (``code``, ``reason``, ``message``); raised by
    the command's callback it is the status on the error channel, which kubectl prints as
    ``error: MESSAGE``. Not a :class:`MeshtutorError`: it is an answer to a client, not a
    mistake of the user running meshtutor."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def status(self) -> dict[str, Any]:
        """The ``Status`` as a channel-3 message carries it."""
        return _failure(self.message, self.reason, code=self.code)

    def response(self) -> web.Response:
        """The ``Status`` as an HTTP answer, which carries kind and apiVersion."""
        body = {"kind": "Status", "apiVersion": "v1", **self.status()}
        return web.Response(
            status=self.code, body=json.dumps(body).encode(), content_type="application/json"
        )


def _bad_request(message: str) -> ExecError:
    return ExecError(400, "BadRequest", message)


def _query_bool(values: list[str]) -> bool:
    # apimachinery runtime/conversion.go Convert_Slice_string_To_bool: the first value counts;
    # absent, "0" and "false" (any case) are false, anything else (even "") is true.
    return bool(values) and values[0] != "0" and values[0].lower() != "false"


def exec_params(query: Mapping[str, str] | MultiMapping[str]) -> ExecParams:
    """Read ``PodExecOptions`` from a query, or raise :class:`ExecError` (400).

    ``command`` repeats, one value per argument. The other parameters take their first value,
    as the API server's query conversion does (``Convert_Slice_string_To_string`` / ``_bool``).
    """
    return _checked(_parsed(query))


def _parsed(query: Mapping[str, str] | MultiMapping[str]) -> ExecParams:
    def values(name: str) -> list[str]:
        if isinstance(query, MultiMapping):
            return list(query.getall(name, []))
        return [query[name]] if name in query else []

    argv = tuple(values("command"))
    container = (values("container") or [""])[0] or None
    stdin, stdout, stderr, tty = (
        _query_bool(values(k)) for k in ("stdin", "stdout", "stderr", "tty")
    )
    if tty and stderr:
        # kubelet remotecommand NewOptions: "Access to exec with tty and stderr is not
        # supported, bypassing stderr".
        stderr = False
    return ExecParams(argv, container, stdin, stdout, stderr, tty)


def _checked(params: ExecParams) -> ExecParams:
    if not (params.stdin or params.stdout or params.stderr):
        # kubelet remotecommand NewOptions (httpstream.go), answered 400 before any upgrade.
        raise _bad_request("you must specify at least 1 of stdin, stdout, stderr")
    if not params.argv:
        # A cluster hands an empty argv to the container runtime, which fails only after the
        # upgrade; kubectl never sends one. Refuse it early, in kubectl's own words
        # (kubectl/pkg/cmd/exec/exec.go ExecOptions.Validate).
        raise _bad_request("you must specify at least one command for the container")
    return params


def exit_status(code: int, argv: list[str], protocol: str) -> dict[str, Any]:
    """The channel-3 ``Status`` for an exit code, as the server that speaks ``protocol`` words
    it. v5 comes from kube-apiserver's translator (``codeExitToStatusError`` around client-go's
    ``command terminated with exit code N``); v4 from the kubelet around the runtime's error
    (containerd: ``error executing command [sh -c exit 56], exit code 56``). kubectl reads only
    the ``ExitCode`` cause."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    if protocol == V5_PROTOCOL:
        cause = f"command terminated with exit code {code}"
    else:
        cause = f"error executing command [{' '.join(argv)}], exit code {code}"
    return _failure(
        f"command terminated with non-zero exit code: {cause}",
        "NonZeroExitCode",
        causes=[{"reason": "ExitCode", "message": str(code)}],
    )


def _internal_error(exc: BaseException) -> dict[str, Any]:
    # kubelet remotecommand ServeExec: apierrors.NewInternalError(fmt.Errorf("error executing
    # command in container: %v", err)).
    cause = f"error executing command in container: {exc}"
    return _failure(
        f"Internal error occurred: {cause}", "InternalError", causes=[{"message": cause}], code=500
    )


def _failure(
    message: str, reason: str, *, causes: list[dict[str, str]] | None = None, code: int = 0
) -> dict[str, Any]:
    """A failure ``Status`` as ``json.Marshal(status.Status())`` writes it on channel 3: no
    kind or apiVersion, ``metadata`` always, ``details`` and ``code`` only when set."""
    status: dict[str, Any] = {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if causes:
        status["details"] = {"causes": causes}
    if code:
        status["code"] = code
    return status


def choose_protocol(offered: list[str]) -> str | None:
    """The subprotocol to answer: the first of the client's that this server speaks, ``""``
    when the client offers none (then ``channel.k8s.io`` is spoken without naming it), or
    ``None`` when none of the client's is known."""
    if not offered:
        return ""
    return next((p for p in offered if p in PROTOCOLS), None)


def _offered_protocols(request: web.BaseRequest) -> list[str]:
    return [
        p.strip()
        for header in request.headers.getall("Sec-WebSocket-Protocol", [])
        for p in header.split(",")
        if p.strip()
    ]


def _upgrade_to(request: web.BaseRequest) -> str | None:
    """The protocol an upgrade request asks for (lower case), as apimachinery's
    ``httpstream.IsUpgradeRequest`` sees one: a ``Connection`` header containing "upgrade"."""
    connection = " ".join(request.headers.getall("Connection", [])).lower()
    if "upgrade" not in connection:
        return None
    return request.headers.get("Upgrade", "").strip().lower() or None


def _spdy_refused() -> ExecError:
    return _bad_request(
        "this API serves exec over websockets (v5.channel.k8s.io), not SPDY/3.1: use kubectl "
        "1.29 or later with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true (the default since 1.30)"
    )


# What an open session is told when the server stops (the words of kube-apiserver's own
# refusal while it shuts down, filters/with_retry_after.go, without its "try again later").
SHUTTING_DOWN = ExecError(503, "ServiceUnavailable", "the API server is shutting down")
_SESSIONS: web.AppKey[set[_Session]] = web.AppKey("meshtutor.execws.sessions")


def track_exec_sessions(app: web.Application) -> None:
    """Make ``app`` end its open exec sessions when it shuts down (call before it starts).

    Without it, stopping the server waits for every running command: aiohttp gives a busy
    handler its shutdown timeout (60 s by default) twice before cancelling it, and a shell
    left open in ``kubectl exec -it`` never finishes by itself. With it, ``on_shutdown``
    cancels each command and ends its session with a ``ServiceUnavailable`` status."""
    app[_SESSIONS] = set()
    app.on_shutdown.append(_stop_sessions)


async def _stop_sessions(app: web.Application) -> None:
    sessions = app[_SESSIONS]
    await asyncio.gather(*(session.stop() for session in list(sessions)))


async def serve_exec(
    request: web.Request, run: ExecRun, *, admit: ExecAdmit | None = None
) -> web.StreamResponse:
    """Answer one ``pods/exec`` request: check it, upgrade it, run the command, report its end.

    Every refusal is a Kubernetes ``Status``: the query's (400), ``admit``'s, a request that
    is not an upgrade (400 ``Upgrade request required``, apimachinery
    ``proxy/upgradeaware.go``), a SPDY upgrade (400, see the module docstring), an unknown
    subprotocol (400 with wsstream's message).
    """
    try:
        # The order of a cluster's checks: the pod and container (kube-apiserver's
        # ExecLocation), then the upgrade (its UpgradeAwareHandler), then the streams (the
        # kubelet's NewOptions).
        params = _parsed(request.query)
        if admit is not None:
            params = admit(params)
        upgrade = _upgrade_to(request)
        if upgrade is None or not (upgrade == "websocket" or upgrade.startswith("spdy/")):
            raise _bad_request("Upgrade request required")
        params = _checked(params)
        if upgrade != "websocket":
            raise _spdy_refused()
        offered = _offered_protocols(request)
        protocol = choose_protocol(offered)
        if protocol is None:
            # apimachinery wsstream handshake's words; Go prints a []string as [a b].
            raise _bad_request(
                f"requested protocol(s) are not supported: [{' '.join(offered)}]; "
                f"supports [{' '.join(PROTOCOLS)}]"
            )
    except ExecError as exc:
        return exc.response()

    ws = web.WebSocketResponse(
        protocols=(protocol,) if protocol else (),
        max_msg_size=MAX_MESSAGE,
        timeout=CLOSE_TIMEOUT,
        autoping=True,
    )
    if protocol:
        # aiohttp looks for the protocol in the first Sec-WebSocket-Protocol line only; a
        # client may send several lines. Name it here so the answer always carries it.
        ws.headers["Sec-WebSocket-Protocol"] = protocol
    try:
        await ws.prepare(request)
    except web.HTTPException as exc:
        # A handshake aiohttp refuses (no key, a version other than 13).
        return _bad_request(f"websocket handshake failed: {exc.text or exc.reason}").response()
    session = _Session(request, ws, protocol, params)
    sessions = request.config_dict.get(_SESSIONS)
    if sessions is not None:
        sessions.add(session)
    try:
        await session.serve(run)
    finally:
        if sessions is not None:
            sessions.discard(session)
    return ws


class _Session:
    """One upgraded exec: the websocket, the streams the command sees, and their ends."""

    def __init__(
        self, request: web.Request, ws: web.WebSocketResponse, protocol: str, params: ExecParams
    ) -> None:
        self.request = request
        self.ws = ws
        self.protocol = protocol
        self.params = params
        self.base64 = protocol in _BASE64
        self.close_signal = protocol == V5_PROTOCOL
        self._lock = asyncio.Lock()
        self._gone = False
        self.stdin = _StdinPipe(STDIN_BUFFER) if params.stdin else None
        self.resize: asyncio.Queue[tuple[int, int]] = asyncio.Queue(maxsize=RESIZE_BACKLOG)
        self._stopping = asyncio.Event()
        self._done = asyncio.Event()

    async def stop(self) -> None:
        """End the session now (the server is stopping): the command is cancelled and the
        client told so."""
        self._stopping.set()
        await self._done.wait()

    async def send(self, channel: int, data: bytes) -> None:
        """One message on ``channel``; raises ``ConnectionResetError`` once the client is gone."""
        async with self._lock:
            if self._gone or self.ws.closed:
                raise ConnectionResetError("the exec client went away")
            try:
                if self.base64:
                    await self.ws.send_str(
                        chr(ord("0") + channel) + base64.b64encode(data).decode()
                    )
                else:
                    await self.ws.send_bytes(bytes([channel]) + data)
            except ConnectionResetError:
                self._gone = True
                raise

    async def connected(self) -> bool:
        """Whether the client is still there, asked without reading from the socket: a ping
        written to a peer that is gone fails (at the latest on the next one), and aiohttp
        does not see a closed connection while it is not reading."""
        try:
            await self.ws.ping()
        except Exception:
            return False
        transport = self.request.transport
        return transport is not None and not transport.is_closing()

    def writer(self, channel: int, enabled: bool) -> Out:
        return _ChannelWriter(self, channel) if enabled else _Discard()

    async def serve(self, run: ExecRun) -> None:
        p = self.params
        first = STDOUT if p.stdout else STDERR if p.stderr else ERROR
        stdout = self.writer(STDOUT, p.stdout)
        streams = ExecStreams(
            argv=list(p.argv),
            container=p.container,
            tty=p.tty,
            stdin=self.stdin,
            stdout=stdout,
            stderr=stdout if p.tty else self.writer(STDERR, p.stderr),
            resize=self.resize,
        )
        reader = asyncio.create_task(self._read(), name="exec-ws-reader")
        stopping = asyncio.create_task(self._stopping.wait(), name="exec-stopping")
        tasks: list[asyncio.Task[Any]] = [reader, stopping]
        try:
            # The kubelet's "connection is established" notice (remotecommand/websocket.go).
            await self.send(first, b"")
            command = asyncio.create_task(_call(run, streams), name="exec-command")
            tasks.append(command)
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                await _cancel(command, reader)
                # Said as a status, so kubectl prints one line ("error: the API server is
                # shutting down") rather than a websocket error. Bounded: a client that
                # neither reads nor answers the close must not hold the server.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._end(SHUTTING_DOWN.status()), STOP_CLOSE_TIMEOUT)
            elif not command.done():
                # The client went away (or broke the protocol): nobody is left to answer.
                if self.stdin is not None:
                    self.stdin.feed_eof()
                if not self.ws.closed:
                    await self.ws.close()  # what wsstream does after a malformed close signal
            else:
                if self.stdin is not None:
                    # Like the translator's finish(): input still arriving is dropped now.
                    self.stdin.close()
                await _cancel(reader)
                await self._finish(command)
        except ConnectionResetError:
            pass
        finally:
            # Also when this handler is cancelled (aiohttp giving up on it): the command and
            # the reader end with it; the connection is then aiohttp's to drop.
            await _cancel(*tasks)
            self._done.set()

    async def _finish(self, command: asyncio.Task[int]) -> None:
        try:
            status = exit_status(command.result() % 256, list(self.params.argv), self.protocol)
        except ExecError as exc:
            status = exc.status()
        except Exception as exc:
            log.exception("exec of %s failed", list(self.params.argv))
            status = _internal_error(exc)
        await self._end(status)

    async def _end(self, status: dict[str, Any]) -> None:
        """Send the final status on the error channel, then close the websocket normally."""
        if self.protocol in _STATUS_JSON:
            await self.send(ERROR, json.dumps(status, separators=(",", ":")).encode())
        elif status["status"] != "Success":
            # v1WriteStatusFunc: a failure's message as text, nothing on success.
            await self.send(ERROR, str(status["message"]).encode())
        await self.ws.close()

    async def _read(self) -> None:
        """Take the client's messages until it goes away; return then."""
        async for msg in self.ws:
            if msg.type is WSMsgType.BINARY:
                data: bytes = msg.data
            elif msg.type is WSMsgType.TEXT:
                data = str(msg.data).encode()
            else:  # ERROR (a message over MAX_MESSAGE, a protocol violation): the end
                return
            if not data:
                continue
            if self.close_signal and data[0] == CLOSE:
                if len(data) != 2 or data[1] > RESIZE:
                    return  # wsstream ends the connection on a malformed close signal
                if data[1] == STDIN and self.stdin is not None:
                    self.stdin.feed_eof()
                continue
            channel, payload = data[0], data[1:]
            if self.base64:
                channel -= ord("0")
                try:
                    payload = base64.b64decode(payload, validate=True)
                except binascii.Error:
                    continue  # wsstream logs it and reads on
            if channel == STDIN and self.stdin is not None:
                if not await self.stdin.feed(payload, self.connected):
                    return
            elif channel == RESIZE:
                for size in _terminal_sizes(payload):
                    if self.resize.full():
                        self.resize.get_nowait()
                    self.resize.put_nowait(size)
            # anything else: a channel the server only writes, or none at all; ignored


async def _call(run: ExecRun, streams: ExecStreams) -> int:
    return await run(streams)


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    """Cancel ``tasks`` and wait until they are over, whatever they end with."""
    for task in tasks:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _terminal_sizes(payload: bytes) -> list[tuple[int, int]]:
    """The sizes in one resize message. client-go writes each ``TerminalSize`` as one JSON
    object per message (``json.NewEncoder(...).Encode``, keys ``Width``/``Height``, uint16);
    Go matches keys without regard to case. What does not decode is skipped."""
    sizes: list[tuple[int, int]] = []
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return sizes
    decoder = json.JSONDecoder()
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        if not isinstance(value, dict):
            continue
        fields = {str(k).lower(): v for k, v in value.items()}
        width, height = fields.get("width", 0), fields.get("height", 0)
        if all(type(v) is int and 0 <= v <= 0xFFFF for v in (width, height)):
            sizes.append((width, height))
    return sizes


class _ChannelWriter:
    def __init__(self, session: _Session, channel: int) -> None:
        self._session = session
        self._channel = channel

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), OUTPUT_CHUNK):
            await self._session.send(self._channel, bytes(data[start : start + OUTPUT_CHUNK]))


class _Discard:
    """A stream the client did not ask for: the kubelet's IgnoreChannel drops its writes."""

    async def write(self, data: bytes) -> None:
        return None


class _StdinPipe:
    """The command's stdin: what the client sends, buffered up to ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()

    async def read(self, n: int = -1) -> bytes:
        while not self._buffer and not self._eof:
            self._readable.clear()
            await self._readable.wait()
        take = len(self._buffer) if n <= 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        if len(self._buffer) < self._limit:
            self._drained.set()
        return data

    async def feed(self, data: bytes, connected: Callable[[], Awaitable[bool]]) -> bool:
        """Buffer ``data``; wait while the buffer is full, so the client waits with it.

        While it waits nothing reads the socket, so a client leaving would go unnoticed and
        the command would run on: ``connected`` is asked now and then. Returns ``False`` when
        the client is gone."""
        if self._eof or self._closed:
            return True
        self._buffer += data
        self._readable.set()
        if len(self._buffer) >= self._limit:
            self._drained.clear()
            while not self._drained.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained.wait(), STDIN_STALL_CHECK)
                if not self._drained.is_set() and not await connected():
                    return False
        return True

    def feed_eof(self) -> None:
        self._eof = True
        self._readable.set()

    def close(self) -> None:
        """The command is over: drop what is buffered and what still comes."""
        self._closed = True
        self._buffer.clear()
        self.feed_eof()
        self._drained.set()
