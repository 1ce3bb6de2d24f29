"""``pods/exec`` over websockets (``meshtutor.kubeapi.execws``), served by a real aiohttp server
on 127.0.0.1 and driven two ways: frame by frame with aiohttp's websocket client (v5, v4, v1,
base64), and by the real ``kubectl`` binaries against a minimal API (version, discovery, one
pod) that mounts ``serve_exec`` at ``/api/v1/namespaces/{ns}/pods/{name}/exec``.

The fake command runner stands in for the pod's shell; what is checked is what a client sees:
the frames and their channels, the status on channel 3, what kubectl prints and exits with.
Sources for every expectation are in the module docstring of ``execws``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from meshtutor.kubeapi.execws import (
    MAX_MESSAGE,
    STDIN_BUFFER,
    ExecError,
    ExecParams,
    ExecStreams,
    exec_params,
    serve_exec,
    track_exec_sessions,
)

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
EXEC_PATH = "/api/v1/namespaces/ns/pods/p/exec"
POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "ns", "uid": "5f0c-pod"},
    "spec": {
        "containers": [
            {"name": "app", "image": "curl"},
            {"name": "istio-proxy", "image": "proxyv2"},
        ]
    },
    "status": {"phase": "Running"},
}


def run_async(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """pytest-asyncio is not installed: each test runs in its own ``asyncio.run``."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout=60))

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


class Commands:
    """What runs "in the container": a few commands with observable ends."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.seen: list[ExecStreams] = []

    async def run(self, s: ExecStreams) -> int:
        self.seen.append(s)
        cmd, *args = s.argv
        if cmd == "echo":
            await s.stdout.write((" ".join(args) + "\n").encode())
            return 0
        if cmd == "cat":
            assert s.stdin is not None
            while data := await s.stdin.read(65536):
                await s.stdout.write(data)
            return 0
        if cmd == "warn":  # writes to both streams, exits with the code given
            await s.stdout.write(b"out\n")
            await s.stderr.write(b"warn: " + " ".join(args[1:]).encode() + b"\n")
            return int(args[0])
        if cmd == "exit":
            return int(args[0])
        if cmd == "refuse":
            raise ExecError(400, "BadRequest", "container sidecar is not valid for pod p")
        if cmd == "crash":
            raise RuntimeError("the shell fell over")
        if cmd == "size":
            width, height = await s.resize.get()
            await s.stdout.write(f"{width}x{height}\n".encode())
            return 0
        if cmd == "hang":
            self.started.set()
            try:
                await asyncio.Event().wait()
            finally:
                self.cancelled.set()
        raise AssertionError(f"unexpected command {s.argv}")


def admit(params: ExecParams) -> ExecParams:
    """The pod's containers, checked before the upgrade as kube-apiserver's ExecLocation does."""
    names = [c["name"] for c in POD["spec"]["containers"]]
    if params.container is None:
        raise ExecError(
            400,
            "BadRequest",
            f"a container name must be specified for pod p, choose one of: [{' '.join(names)}]",
        )
    if params.container not in names:
        raise ExecError(400, "BadRequest", f"container {params.container} is not valid for pod p")
    return params


def _status(code: int, reason: str, message: str) -> web.Response:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
    body |= {"status": "Failure", "message": message, "reason": reason, "code": code}
    return web.json_response(body, status=code)


async def start_api(commands: Commands, version: str = "v1.33.1") -> tuple[str, web.AppRunner]:
    """The few requests kubectl makes before an exec, and the exec itself, on 127.0.0.1."""

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == EXEC_PATH:
            return await serve_exec(request, commands.run, admit=admit)
        if path == "/version":
            major, minor = version[1:].split(".")[:2]
            return web.json_response({"major": major, "minor": minor, "gitVersion": version})
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if path == "/api/v1":
            pods = {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod"}
            pods |= {"verbs": ["get", "list"], "shortNames": ["po"]}
            execs = {"name": "pods/exec", "singularName": "", "namespaced": True}
            execs |= {"kind": "PodExecOptions", "verbs": ["create", "get"]}
            return web.json_response(
                {"kind": "APIResourceList", "groupVersion": "v1", "resources": [pods, execs]}
            )
        if path == "/api/v1/namespaces/ns/pods/p":
            return web.json_response(POD)
        return _status(404, "NotFound", f"the server could not find the requested resource {path}")

    app = web.Application()
    track_exec_sessions(app)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}", runner


@contextlib.asynccontextmanager
async def api(commands: Commands) -> AsyncIterator[str]:
    url, runner = await start_api(commands)
    try:
        yield url
    finally:
        await runner.cleanup()
    assert not _exec_tasks(), "exec tasks outlived the server"


def _exec_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("exec-") and not t.done()]


# ---- frame level: aiohttp's websocket client ---------------------------------------------


@dataclass
class Session:
    protocol: str | None
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    close_code: int | None = None

    def channel(self, n: int) -> bytes:
        return b"".join(data for ch, data in self.frames if ch == n)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(self.channel(3))
        return status


def query(*argv: str, container: str = "app", **flags: str) -> list[tuple[str, str]]:
    params = [("command", a) for a in argv] + [("container", container)]
    return params + list(({"stdout": "true", "stderr": "true"} | flags).items())


@contextlib.asynccontextmanager
async def connect(
    url: str, params: Sequence[tuple[str, str]], protocols: Sequence[str] = (V5,)
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url + EXEC_PATH, params=params, protocols=protocols) as ws,
    ):
        yield ws


async def exchange(
    url: str,
    params: Sequence[tuple[str, str]],
    protocols: Sequence[str] = (V5,),
    send: Sequence[bytes | str] = (),
) -> Session:
    """Open an exec websocket, send ``send``, read everything until the server closes."""
    async with connect(url, params, protocols) as ws:
        session = Session(ws.protocol)
        for message in send:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                session.frames.append((msg.data[0], msg.data[1:]))
            elif msg.type is WSMsgType.TEXT:
                session.frames.append((ord(msg.data[0]) - ord("0"), base64.b64decode(msg.data[1:])))
        session.close_code = ws.close_code
        return session


@run_async
async def test_v5_output_then_success_status_then_normal_close() -> None:
    commands = Commands()
    async with api(commands) as url:
        s = await exchange(url, query("echo", "hello", "mesh"))
    assert s.protocol == V5
    # The kubelet's first frame: empty, on the lowest writable channel (stdout).
    assert s.frames[0] == (1, b"")
    assert s.channel(1) == b"hello mesh\n"
    assert s.frames[-1][0] == 3
    assert s.channel(3) == b'{"metadata":{},"status":"Success"}'
    assert s.close_code == 1000
    assert commands.seen[0].container == "app"


@run_async
async def test_v5_exit_code_is_a_nonzero_exit_code_status() -> None:
    async with api(Commands()) as url:
        s = await exchange(url, query("warn", "56", "no", "route"))
    assert s.channel(1) == b"out\n"
    assert s.channel(2) == b"warn: no route\n"
    assert s.status() == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: command terminated with exit code 56",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "56"}]},
    }


@run_async
async def test_v5_stdin_ends_at_the_close_signal() -> None:
    """kubectl -i sends stdin on channel 0 and, at its end, 255 followed by the channel (0)."""
    async with api(Commands()) as url:
        s = await exchange(
            url,
            query("cat", stdin="true"),
            send=[b"\x00port 9000\n", b"\x00hello\n", b"\xff\x00"],
        )
    assert s.channel(1) == b"port 9000\nhello\n"
    assert s.status()["status"] == "Success"


@run_async
async def test_unknown_channels_and_junk_frames_are_ignored() -> None:
    async with api(Commands()) as url:
        s = await exchange(
            url,
            query("cat", stdin="true"),
            # writes to the server's own channels, a channel nobody has, an empty message,
            # a resize that is not JSON, then the data and the end of stdin
            send=[
                b"\x01x",
                b"\x03x",
                b"\x07x",
                b"\xc8x",
                b"",
                b"\x04{not json",
                b"\x00ok\n",
                b"\xff\x00",
            ],
        )
    assert s.channel(1) == b"ok\n"
    assert s.status()["status"] == "Success"


@run_async
async def test_a_malformed_close_signal_ends_the_session_and_the_command() -> None:
    """apimachinery wsstream ends the connection on a close signal that is not 2 bytes."""
    commands = Commands()
    async with api(commands) as url:
        async with connect(url, query("hang")) as ws:
            await commands.started.wait()
            await ws.send_bytes(b"\xff\x00\x01")
            async for _ in ws:
                pass
        await commands.cancelled.wait()


@run_async
async def test_tty_merges_stderr_into_stdout_and_passes_resizes() -> None:
    commands = Commands()
    async with api(commands) as url:
        merged = await exchange(url, query("warn", "0", "x", tty="true"))
        sized = await exchange(
            url,
            query("size", stdin="true", tty="true"),
            send=[b'\x04{"Width":132,"Height":43}\n'],
        )
    assert merged.channel(2) == b""
    assert merged.channel(1) == b"out\nwarn: x\n"
    assert sized.channel(1) == b"132x43\n"


@run_async
async def test_an_exec_error_from_the_command_is_its_status() -> None:
    async with api(Commands()) as url:
        s = await exchange(url, query("refuse"))
        crashed = await exchange(url, query("crash"))
    assert s.status() == {
        "metadata": {},
        "status": "Failure",
        "message": "container sidecar is not valid for pod p",
        "reason": "BadRequest",
        "code": 400,
    }
    assert crashed.status()["reason"] == "InternalError"
    assert crashed.status()["message"] == (
        "Internal error occurred: error executing command in container: the shell fell over"
    )


@run_async
async def test_v4_speaks_the_kubelets_status() -> None:
    """The Python client offers v4; the kubelet words the exit as the runtime reported it."""
    async with api(Commands()) as url:
        s = await exchange(url, query("exit", "7"), protocols=(V4,))
    assert s.protocol == V4
    assert s.status()["reason"] == "NonZeroExitCode"
    assert s.status()["message"] == (
        "command terminated with non-zero exit code: error executing command [exit 7], exit code 7"
    )
    assert s.status()["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


@run_async
async def test_the_clients_first_known_protocol_wins() -> None:
    async with api(Commands()) as url:
        v4_first = await exchange(url, query("exit", "0"), protocols=("v9.channel.k8s.io", V4, V5))
    assert v4_first.protocol == V4


@run_async
async def test_v1_sends_only_a_failures_message_as_text() -> None:
    async with api(Commands()) as url:
        ok = await exchange(url, query("echo", "hi"), protocols=("channel.k8s.io",))
        failed = await exchange(url, query("exit", "3"), protocols=("channel.k8s.io",))
        unnamed = await exchange(url, query("exit", "3"), protocols=())
    assert ok.protocol == "channel.k8s.io"
    assert ok.channel(3) == b""
    assert failed.channel(3) == (
        b"command terminated with non-zero exit code: error executing command [exit 3], exit code 3"
    )
    assert unnamed.protocol is None
    assert unnamed.channel(3) == failed.channel(3)


@run_async
async def test_base64_protocols_carry_text_frames() -> None:
    async with api(Commands()) as url:
        s = await exchange(url, query("warn", "2", "b64"), protocols=("v4.base64.channel.k8s.io",))
    assert s.protocol == "v4.base64.channel.k8s.io"
    assert s.frames[0] == (1, b"")
    assert (s.channel(1), s.channel(2)) == (b"out\n", b"warn: b64\n")
    assert s.status()["details"]["causes"] == [{"reason": "ExitCode", "message": "2"}]


async def _cat_base64(url: str) -> tuple[str | None, bytes]:
    async with connect(url, query("cat", stdin="true"), ("base64.channel.k8s.io",)) as ws:
        await ws.send_str("0!!not base64")  # wsstream drops what does not decode
        await ws.send_str("0" + base64.b64encode(b"over text\n").decode())
        got = b""
        while b"\n" not in got:
            msg = await ws.receive()
            assert msg.type is WSMsgType.TEXT
            assert msg.data[0] == "1"
            got += base64.b64decode(msg.data[1:])
        return ws.protocol, got


@run_async
async def test_base64_stdin_reaches_the_command() -> None:
    async with api(Commands()) as url:
        protocol, got = await _cat_base64(url)
    assert (protocol, got) == ("base64.channel.k8s.io", b"over text\n")


@run_async
async def test_a_client_leaving_mid_command_cancels_it() -> None:
    commands = Commands()
    async with api(commands) as url:
        async with connect(url, query("hang")) as ws:
            await commands.started.wait()
            await ws.close()
        await commands.cancelled.wait()
        while _exec_tasks():  # the session's tasks end with it (bounded by the test timeout)
            await asyncio.sleep(0.01)


@run_async
async def test_a_message_over_the_limit_closes_the_session() -> None:
    commands = Commands()
    async with api(commands) as url:
        async with connect(url, query("hang", stdin="true")) as ws:
            await commands.started.wait()
            await ws.send_bytes(b"\x00" + b"x" * MAX_MESSAGE)
            async for _ in ws:
                pass
            assert ws.close_code == 1009  # RFC 6455 "message too big"
        await commands.cancelled.wait()


# ---- HTTP refusals: Kubernetes Status bodies ---------------------------------------------


async def _http(
    url: str, method: str, params: Sequence[tuple[str, str]], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url + EXEC_PATH, params=params, headers=headers) as response,
    ):
        return response.status, await response.json()


WS_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
}


@pytest.mark.parametrize(
    ("method", "params", "headers", "message"),
    [
        ("GET", query("echo"), {}, "Upgrade request required"),
        ("POST", query("echo"), {"Upgrade": "h2c"}, "Upgrade request required"),
        ("GET", query(), WS_HEADERS, "you must specify at least one command for the container"),
        (
            "GET",
            [("command", "echo"), ("container", "app"), ("stdout", "false"), ("stdin", "0")],
            WS_HEADERS,
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
        (
            "GET",
            query("echo", container="nope"),
            WS_HEADERS,
            "container nope is not valid for pod p",
        ),
        (
            "GET",
            [("command", "echo"), ("stdout", "true")],
            WS_HEADERS,
            "a container name must be specified for pod p, choose one of: [app istio-proxy]",
        ),
        (
            "GET",
            query("echo"),
            WS_HEADERS | {"Sec-WebSocket-Protocol": "v3.channel.k8s.io, chat"},
            "requested protocol(s) are not supported: [v3.channel.k8s.io chat]; supports "
            "[v5.channel.k8s.io v4.channel.k8s.io v4.base64.channel.k8s.io channel.k8s.io "
            "base64.channel.k8s.io]",
        ),
        (
            "POST",
            query("echo"),
            {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": V4},
            "this API serves exec over websockets (v5.channel.k8s.io), not SPDY/3.1: use kubectl "
            "1.29 or later with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true (the default since 1.30)",
        ),
    ],
    ids=[
        "plain-get",
        "other-upgrade",
        "no-command",
        "no-streams",
        "bad-container",
        "no-container",
        "unknown-protocols",
        "spdy",
    ],
)
def test_refusals_are_kubernetes_status_answers(
    method: str, params: list[tuple[str, str]], headers: dict[str, str], message: str
) -> None:
    async def main() -> None:
        async with api(Commands()) as url:
            code, body = await _http(url, method, params, headers)
            # the server keeps serving after each refusal
            again = await exchange(url, query("echo", "still", "here"))
        assert (code, body) == (
            400,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "BadRequest",
                "code": 400,
            },
        )
        assert again.channel(1) == b"still here\n"

    asyncio.run(asyncio.wait_for(main(), timeout=60))


def test_exec_params_reads_the_query_as_the_api_server_does() -> None:
    from multidict import MultiDict

    q = MultiDict(
        [
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo a && echo b"),
            ("container", "istio-proxy"),
            ("container", "app"),  # the first value counts
            ("stdin", ""),  # present without a value: true
            ("stdout", "FALSE"),
            ("stderr", "1"),
        ]
    )
    assert exec_params(q) == ExecParams(
        ("sh", "-c", "echo a && echo b"), "istio-proxy", True, False, True, False
    )
    tty = exec_params({"command": "sh", "stdin": "true", "stderr": "true", "tty": "true"})
    assert (tty.stderr, tty.tty, tty.container) == (False, True, None)


# ---- the real kubectl --------------------------------------------------------------------

GCLOUD_BIN = Path("/usr/lib/google-cloud-sdk/bin")


def _kubectl(version: str) -> str:
    """A kubectl binary: ``1.NN`` from the Cloud SDK, ``current`` from PATH."""
    path = (
        shutil.which("kubectl") if version == "current" else str(GCLOUD_BIN / f"kubectl.{version}")
    )
    if not path or not os.access(path, os.X_OK):
        pytest.skip(f"kubectl {version} is not installed")
    return path


@dataclass
class Ran:
    code: int
    stdout: bytes
    stderr: bytes


async def start_kubectl(
    binary: str, tmp: Path, url: str, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    config = tmp / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: sandbox, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: learner, user: {}}]\n"
        "contexts: [{name: meshtutor, context: {cluster: sandbox, user: learner, namespace: ns}}]\n"
        "current-context: meshtutor\n"
    )
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "KUBECACHEDIR": str(tmp / "cache"),
    }
    return await asyncio.create_subprocess_exec(
        binary,
        "--kubeconfig",
        str(config),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ | (env or {}),
    )


async def kubectl(
    binary: str,
    tmp: Path,
    url: str,
    *args: str,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
) -> Ran:
    proc = await start_kubectl(binary, tmp, url, *args, env=env)
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return Ran(proc.returncode, out, err)


KUBECTLS = ["1.33", "1.30", "current"]


@pytest.mark.parametrize("version", KUBECTLS)
def test_kubectl_exec_prints_output_and_passes_exit_codes(version: str, tmp_path: Path) -> None:
    binary = _kubectl(version)

    async def main() -> None:
        async with api(Commands()) as url:
            ok = await kubectl(binary, tmp_path, url, "exec", "p", "-c", "app", "--", "echo", "hi")
            failed = await kubectl(
                binary, tmp_path, url, "exec", "p", "-c", "app", "--", "warn", "56", "reset"
            )
        assert (ok.code, ok.stdout, ok.stderr) == (0, b"hi\n", b"")
        assert failed.code == 56
        assert failed.stdout == b"out\n"
        assert failed.stderr == b"warn: reset\ncommand terminated with exit code 56\n"

    asyncio.run(asyncio.wait_for(main(), timeout=60))


@pytest.mark.parametrize("version", KUBECTLS)
def test_kubectl_exec_i_carries_stdin_to_its_end(version: str, tmp_path: Path) -> None:
    """A few hundred KiB through ``cat``: chunked both ways, and EOF (v5's close signal) ends it."""
    binary = _kubectl(version)
    data = b"".join(b"line %06d of the pasted file\n" % i for i in range(12000))

    async def main() -> None:
        async with api(Commands()) as url:
            ran = await kubectl(
                binary, tmp_path, url, "exec", "-i", "p", "-c", "app", "--", "cat", stdin=data
            )
        assert (ran.code, ran.stderr) == (0, b"")
        assert ran.stdout == data

    asyncio.run(asyncio.wait_for(main(), timeout=60))


@pytest.mark.parametrize("version", KUBECTLS)
def test_kubectl_sees_refusals_as_a_cluster_words_them(version: str, tmp_path: Path) -> None:
    """A refused websocket upgrade makes kubectl retry over SPDY, which gets the same Status."""
    binary = _kubectl(version)

    async def main() -> None:
        async with api(Commands()) as url:
            bad = await kubectl(binary, tmp_path, url, "exec", "p", "-c", "nope", "--", "echo")
            spdy = await kubectl(
                binary,
                tmp_path,
                url,
                "exec",
                "p",
                "-c",
                "app",
                "--",
                "echo",
                env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"},
            )
        assert (bad.code, bad.stderr) == (
            1,
            b"Error from server (BadRequest): container nope is not valid for pod p\n",
        )
        assert spdy.code == 1
        assert spdy.stderr.startswith(
            b"Error from server (BadRequest): this API serves exec over websockets"
        )

    asyncio.run(asyncio.wait_for(main(), timeout=60))


def test_kubectl_killed_mid_command_cancels_the_command(tmp_path: Path) -> None:
    binary = _kubectl("1.33")

    async def main() -> None:
        commands = Commands()
        async with api(commands) as url:
            proc = await start_kubectl(
                binary, tmp_path, url, "exec", "p", "-c", "app", "--", "hang"
            )
            await commands.started.wait()
            proc.kill()
            await proc.wait()
            await commands.cancelled.wait()

    asyncio.run(asyncio.wait_for(main(), timeout=60))


@run_async
async def test_stopping_the_server_ends_open_sessions_with_a_status() -> None:
    """aiohttp alone would wait 2 x 60 s for a command that never ends (an open shell)."""
    commands = Commands()
    url, runner = await start_api(commands)
    async with connect(url, query("hang")) as ws:
        await commands.started.wait()
        stopping = asyncio.create_task(runner.cleanup())
        frames = [msg.data async for msg in ws]
        await stopping
    assert frames == [
        b"\x01",
        b'\x03{"metadata":{},"status":"Failure","message":"the API server is shutting down",'
        b'"reason":"ServiceUnavailable","code":503}',
    ]
    assert ws.close_code == 1000
    assert commands.cancelled.is_set()
    assert not _exec_tasks()


def test_kubectl_says_when_the_server_stops_under_it(tmp_path: Path) -> None:
    binary = _kubectl("1.33")

    async def main() -> None:
        commands = Commands()
        url, runner = await start_api(commands)
        proc = await start_kubectl(binary, tmp_path, url, "exec", "p", "-c", "app", "--", "hang")
        await commands.started.wait()
        await runner.cleanup()
        out, err = await proc.communicate()
        assert (proc.returncode, out, err) == (1, b"", b"error: the API server is shutting down\n")

    asyncio.run(asyncio.wait_for(main(), timeout=60))


def test_kubectl_killed_while_its_stdin_backs_up_cancels_the_command(tmp_path: Path) -> None:
    """The command never reads stdin, so once STDIN_BUFFER is full the server stops reading
    the socket (backpressure, as the kubelet's io.Pipe); the client leaving must still be
    noticed and the command cancelled."""
    binary = _kubectl("1.33")

    async def main() -> None:
        commands = Commands()
        async with api(commands) as url:
            proc = await start_kubectl(
                binary, tmp_path, url, "exec", "-i", "p", "-c", "app", "--", "hang"
            )
            await commands.started.wait()
            assert proc.stdin is not None
            feeding = asyncio.create_task(_feed_forever(proc.stdin))
            stdin = commands.seen[0].stdin
            while len(stdin._buffer) < STDIN_BUFFER:  # type: ignore[union-attr]
                await asyncio.sleep(0.01)  # until the server holds a full buffer and waits
            proc.kill()
            await proc.wait()
            await commands.cancelled.wait()
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeding

    asyncio.run(asyncio.wait_for(main(), timeout=60))


async def _feed_forever(pipe: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while True:
            pipe.write(b"x" * 65536)
            await pipe.drain()


# ---- the official Python client (what KubeBackend uses) -----------------------------------


def _python_client_exec(url: str, command: list[str], stdin: bytes | None) -> tuple[str, str, int]:
    from kubernetes import client
    from kubernetes.stream import stream

    configuration = client.Configuration()
    configuration.host = url
    with client.ApiClient(configuration) as api_client:
        response = stream(
            client.CoreV1Api(api_client).connect_get_namespaced_pod_exec,
            "p",
            "ns",
            container="app",
            command=command,
            stdin=stdin is not None,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
        )
        if stdin is not None:
            response.write_stdin(stdin.decode())
            response.close_channel(0)  # v5's close signal
        response.run_forever(timeout=30)
        out = response.read_stdout()
        err = response.read_stderr()
        return out, err, response.returncode


@run_async
async def test_the_python_client_reads_output_and_exit_codes() -> None:
    async with api(Commands()) as url:
        failed = await asyncio.to_thread(_python_client_exec, url, ["warn", "56", "reset"], None)
        echoed = await asyncio.to_thread(_python_client_exec, url, ["cat"], b"from python\n")
    assert failed == ("out\n", "warn: reset\n", 56)
    assert echoed == ("from python\n", "", 0)
