"""The sandbox's Kubernetes API on 127.0.0.1: HTTPS with client certificates, over aiohttp.

This is the transport. What a request means is decided by :class:`APICore` (the protocol,
synchronous and free of I/O) and :class:`SandboxBridge` (what the sandbox does about it); this
module authenticates, bounds what it reads, streams watches, and hands ``exec`` to the pod's
shell. It runs in the sandbox's own event loop, so a write is carried out by the sandbox before
its answer leaves: the next ``kubectl exec … curl`` sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from meshtutor.kubeapi.bridge import SandboxBridge
    from meshtutor.kubeapi.core import APICore
    from meshtutor.kubeapi.kubeconfig import APICredentials
    from meshtutor.sandbox.mesh import Sandbox

log = logging.getLogger(__name__)

# The real API server refuses bodies over 3 MiB (apiserver's MaxRequestBodyBytes, the etcd
# object limit); a manifest a learner writes is a few KiB.
MAX_BODY = 3 * 1024 * 1024
# what /version says; kubectl's dispatcher on these machines picks its binary from it
GIT_VERSION = "v1.33.1"
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def status_body(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    ).encode()


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.Response(
        status=code, body=status_body(code, reason, message), content_type="application/json"
    )


@dataclass
class Served:
    url: str
    port: int


class SandboxAPI:
    """One sandbox's API server. ``start`` boots nothing but the listener: the sandbox and the
    core are the caller's (so the app and ``sandbox serve`` share one sandbox)."""

    def __init__(
        self,
        sandbox: Sandbox,
        core: APICore,
        bridge: SandboxBridge,
        credentials: APICredentials,
        *,
        port: int = 0,
    ) -> None:
        self.sandbox = sandbox
        self.core = core
        self.bridge = bridge
        self.credentials = credentials
        self.port = port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._watches: set[asyncio.Task[Any]] = set()
        self.url = ""

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> str:
        from meshtutor.kubeapi.kubeconfig import server_ssl_context

        app = web.Application(client_max_size=MAX_BODY, handler_args={"max_field_size": 16384})
        app.router.add_route("*", "/{tail:.*}", self._handle)
        from meshtutor.kubeapi.execws import track_exec_sessions

        track_exec_sessions(app)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        ctx = server_ssl_context(self.credentials)
        # Loopback only, whatever the caller asks: this API runs pods' shells.
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=ctx)
        try:
            await self._site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            from meshtutor.errors import MeshtutorError

            raise MeshtutorError(
                f"--port {self.port}: cannot listen on 127.0.0.1:{self.port}: "
                f"{os.strerror(exc.errno) if exc.errno else exc}; give another port, or 0 "
                "for any free one"
            ) from None
        server = self._site._server
        assert server is not None
        sockets: Sequence[Any] = getattr(server, "sockets", ())
        self.port = sockets[0].getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        return self.url

    async def stop(self) -> None:
        for task in list(self._watches):
            task.cancel()
        self.bridge.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- requests --------------------------------------------------------------------------

    def _user(self, request: web.Request) -> str | None:
        from meshtutor.kubeapi.kubeconfig import client_user

        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport else None
        return client_user(ssl_object) if ssl_object is not None else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        from meshtutor.kubeapi.core import Request

        user = self._user(request)
        if user is None:
            # What kube-apiserver answers a request without credentials it accepts.
            return _status(401, "Unauthorized", "Unauthorized")
        parts = request.path.strip("/").split("/")
        if _is_pod_subresource(parts, "exec") or _is_pod_subresource(parts, "attach"):
            return await self._exec(request, parts)
        if _is_pod_subresource(parts, "log") and request.method == "GET":
            return await self._logs(request, parts)
        if request.path == "/openapi/v2" and request.method == "GET":
            return _openapi_v2()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _status(
                413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728"
            )
        query = {k: v for k, v in request.query.items()}
        headers = {k.lower(): v for k, v in request.headers.items()}
        req = Request(request.method, request.path, query, headers, body, user)
        if request.method == "GET" and query.get("watch") in ("true", "1"):
            return await self._watch(request, req)
        response = self.core.handle(req)
        if request.method in _WRITES:
            await self.bridge.settle()
        return web.Response(
            status=response.status,
            body=response.body,
            headers={"Content-Type": response.content_type, **dict(response.headers)},
        )

    async def _watch(self, request: web.Request, req: Any) -> web.StreamResponse:
        from meshtutor.kubeapi.core import Response

        watch = self.core.open_watch(req)
        if isinstance(watch, Response):
            return web.Response(
                status=watch.status,
                body=watch.body,
                headers={"Content-Type": watch.content_type, **dict(watch.headers)},
            )
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=10000)

        def deliver(event: Any) -> None:
            if watch.matches(event):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(event)

        unsubscribe = self.core.subscribe(deliver)
        response = web.StreamResponse(status=200, headers={"Content-Type": watch.content_type})
        timeout = float(watch.timeout_seconds) if watch.timeout_seconds else 1800.0
        task = asyncio.current_task()
        if task is not None:
            self._watches.add(task)
        try:
            await response.prepare(request)
            for line in watch.opening():
                await response.write(line)
            if watch.error is None:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                while (remaining := deadline - loop.time()) > 0:
                    try:
                        event = await asyncio.wait_for(queue.get(), min(remaining, 30.0))
                    except TimeoutError:
                        bookmark = watch.bookmark()
                        if bookmark is not None:
                            await response.write(bookmark)
                        continue
                    await response.write(watch.encode(event))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            unsubscribe()
            if task is not None:
                self._watches.discard(task)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    async def _exec(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        from meshtutor.kubeapi.execws import serve_exec

        namespace, name = parts[3], parts[5]
        return await serve_exec(
            request, self._runner_for(namespace, name), admit=self._exec_admit(namespace, name)
        )

    def _exec_admit(self, namespace: str, name: str) -> Any:
        """Checked before the websocket upgrade, so kubectl prints the refusal as the API
        server's (``Error from server (BadRequest): container x is not valid for pod y``)."""
        from dataclasses import replace

        from meshtutor.kubeapi.execws import ExecError
        from meshtutor.kubeapi.protocol import APIError, choose_container

        def admit(params: Any) -> Any:
            obj = self.core.get("", "pods", namespace, name)
            if obj is None:
                raise ExecError(404, "NotFound", f'pods "{name}" not found')
            try:
                container = choose_container(obj, params.container)
            except APIError as exc:
                raise ExecError(exc.code, exc.reason, exc.message) from None
            if self.bridge.sandbox_pod(namespace, name) is None:
                # what the API server says of a pod that is not running
                phase = "Terminating" if obj["metadata"].get("deletionTimestamp") else "Pending"
                raise ExecError(
                    400,
                    "BadRequest",
                    f"unable to upgrade connection: pod {name} is {phase.lower()}"
                    if phase == "Terminating"
                    else f"unable to upgrade connection: container not found ({container!r})",
                )
            return replace(params, container=container)

        return admit

    def _runner_for(self, namespace: str, name: str) -> Any:
        from meshtutor.kubeapi.execws import ExecError
        from meshtutor.kubeapi.shell import ExecStartError, run
        from meshtutor.sandbox.podexec import SandboxPodHost

        async def run_in_pod(streams: Any) -> int:
            pod = self.bridge.sandbox_pod(namespace, name)
            if pod is None:
                raise ExecError(500, "InternalError", f"pod {name} stopped")
            host = SandboxPodHost(
                self.sandbox, pod, streams.container, name, api_ca_pem=self.credentials.ca_pem
            )
            try:
                return await run(
                    streams.argv,
                    host,
                    streams.stdin,
                    streams.stdout,
                    streams.stderr,
                    tty=streams.tty,
                )
            except ExecStartError as exc:
                # No such program in the image: the runtime's error, not an exit code.
                raise ExecError(500, "InternalError", exc.status()["message"]) from None

        return run_in_pod

    async def _logs(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        """``kubectl logs [-f] [--tail N] [-c C]``: what the container printed (the sidecar's
        access log, the app's lines), then, with follow, each new line until the pod goes."""
        from meshtutor.kubeapi.protocol import APIError, choose_container

        namespace, name = parts[3], parts[5]
        obj = self.core.get("", "pods", namespace, name)
        if obj is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        try:
            # kubectl picks the default container itself (the injectors' annotation
            # kubectl.kubernetes.io/default-container) and always names one.
            container = choose_container(obj, request.query.get("container"))
        except APIError as exc:
            return _status(exc.code, exc.reason, exc.message)
        pod = self.bridge.sandbox_pod(namespace, name)
        if pod is None:
            return web.Response(status=200, text="", content_type="text/plain")
        text = self.sandbox.pod_log(pod, container)
        tail = request.query.get("tailLines")
        if tail and tail.isdigit():
            lines = text.splitlines(keepends=True)
            text = "".join(lines[len(lines) - int(tail) :]) if int(tail) else ""
        if request.query.get("follow") not in ("true", "1"):
            return web.Response(status=200, text=text, content_type="text/plain")
        queue = self.sandbox.follow_log(pod, container)
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        task = asyncio.current_task()
        if task is not None:
            self._watches.add(task)
        try:
            await response.prepare(request)
            await response.write(text.encode())
            while line := await queue.get():
                await response.write(line.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.sandbox.unfollow_log(queue)
            if task is not None:
                self._watches.discard(task)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response


# An OpenAPI v2 document with no definitions, in the protobuf form client-go asks for
# (gnostic's openapi_v2.Document: field 1 is ``swagger``). kubectl falls back to it for client
# side validation only when the v3 document of the object's group-version lacks the kind
# (k8s.io/kubectl/pkg/validation/schema.go, paramVerifyingSchema); with no definition for
# the kind its validator skips the object ("resource is not present, let's just skip
# validation"), and the server's answer (no matches for kind …) is what the learner sees.
_OPENAPI_V2_PB = b"\x0a\x032.0"


def _openapi_v2() -> web.Response:
    return web.Response(
        status=200,
        body=_OPENAPI_V2_PB,
        headers={"Content-Type": "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"},
    )


def _is_pod_subresource(parts: list[str], sub: str) -> bool:
    return (
        len(parts) == 7
        and parts[:3] == ["api", "v1", "namespaces"]
        and parts[4] == "pods"
        and parts[6] == sub
    )


def _container_names(pod: dict[str, Any]) -> list[str]:
    return [c["name"] for c in pod["spec"].get("containers") or []]


def _seconds(value: str | None, *, default: float) -> float:
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        return default
