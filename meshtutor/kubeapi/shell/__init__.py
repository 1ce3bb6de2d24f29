"""A sandbox pod's container as ``kubectl exec`` sees it: its programs, its shell, its files.

    code = await run(["sh", "-c", "curl -s httpbin:8000/ip | grep origin"], host,
                     stdin, stdout, stderr, tty=False)

``argv`` is what ``kubectl exec POD -c CONTAINER -- ARGV`` sends. The container behaves as
its image (:mod:`.images`: Alpine's busybox + curl for application containers, Ubuntu for
``istio-proxy``, distroless for ``linkerd-proxy``). A pod's shell is not a shell on the host:
only the programs defined in :mod:`.coreutils` and :mod:`.net` exist, everything runs as
asyncio tasks in this process, files live in the session's memory, and the only way out is
the :class:`PodHost` the sandbox passes in (``curl`` runs the real curl with the pod's
routing; ``connect`` opens a connection as the pod would). :mod:`.limits` bounds what one
session may use.

A program the image does not have is not an exit code: the kubelet answers an exec that
cannot start with an ``InternalError`` Status (kubernetes
``staging/src/k8s.io/kubelet/pkg/cri/streaming/remotecommand/exec.go``, ServeExec), which
:func:`run` raises as :class:`ExecStartError` before anything is written.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Protocol

from meshtutor.kubeapi.shell import coreutils, interp, limits, net  # noqa: F401  (registers programs)
from meshtutor.kubeapi.shell.images import Image, PodFiles, image_for
from meshtutor.kubeapi.shell.runtime import IO, PodHost, Session, StepLimit, encode
from meshtutor.kubeapi.shell.streams import Output, SessionOutput, Source, Terminal

__all__ = ["ExecStartError", "Out", "PodHost", "Stdin", "limits", "run"]


class Stdin(Protocol):
    """The exec's stdin stream (kubectl ``-i``): ``read`` returns b"" at the end."""

    async def read(self, n: int) -> bytes: ...


class Out(Protocol):
    async def write(self, data: bytes) -> None: ...


class ExecStartError(Exception):
    """The container runtime could not start ``argv[0]``: no exit code, a Status instead.

    ``message`` is what the kubelet puts after ``Internal error occurred: ``; kubectl prints
    ``error: Internal error occurred: error executing command in container: …`` and exits 1.
    The words after ``failed to start exec`` are containerd's (``internal/cri/server``:
    ``failed to exec in container``, ``failed to start exec %q``) and runc's (``exec failed:
    unable to start container process: exec: "bash": executable file not found in $PATH``).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def status(self) -> dict[str, Any]:
        """The ``metav1.Status`` the exec's error channel carries (apierrors.NewInternalError)."""
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: {self.message}",
            "reason": "InternalError",
            "details": {"causes": [{"message": self.message}]},
            "code": 500,
        }


def _runc_error(name: str, *, too_long: str | None = None) -> str:
    if too_long is not None:
        # Linux refuses an argument longer than MAX_ARG_STRLEN (E2BIG) in execve itself.
        detail = f"exec {too_long}: argument list too long"
    elif "/" in name:
        detail = f'exec: "{name}": stat {name}: no such file or directory'
    else:
        detail = f'exec: "{name}": executable file not found in $PATH'
    exec_id = secrets.token_hex(32)
    return (
        "error executing command in container: failed to exec in container: "
        f'failed to start exec "{exec_id}": OCI runtime exec failed: exec failed: '
        f"unable to start container process: {detail}: unknown"
    )


def _image(host: PodHost) -> Image:
    # The interface names only the container; a host that also knows the image says so.
    image = getattr(host, "image", None)
    return image_for(host.container, image if isinstance(image, str) else None)


def _environment(host: PodHost, image: Image, tty: bool) -> dict[str, str]:
    """The container's environment: the image's, the runtime's, then the pod spec's."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    env["HOSTNAME"] = host.pod
    env.update(image.env)
    if tty:
        env["TERM"] = "xterm"  # containerd sets it for a tty
    env.update(host.environ())
    env.setdefault("HOME", image.home)
    return env


async def run(
    argv: list[str],
    host: PodHost,
    stdin: Stdin | None,
    stdout: Out,
    stderr: Out,
    *,
    tty: bool = False,
) -> int:
    """Run ``argv`` as the container ``host.container`` of pod ``host.pod``; its exit code.

    ``stdin`` is None without ``kubectl exec -i``. With ``tty`` the keystrokes arrive raw
    and everything the container writes goes to ``stdout`` with ``\\r\\n`` line ends (a tty
    has one output stream). Raises :class:`ExecStartError` when the image has no
    ``argv[0]``; cancelling the task ends every program of the session.
    """
    image = _image(host)
    if not argv:
        raise ExecStartError(_runc_error(""))
    found = image.find(argv[0])
    if found is None:
        raise ExecStartError(_runc_error(argv[0]))
    if any(len(arg.encode()) > limits.MAX_SCRIPT for arg in argv):
        raise ExecStartError(_runc_error(argv[0], too_long=image.location(found)))
    out = SessionOutput(stdout, tty=tty)
    err: Output = out if tty else SessionOutput(stderr, tty=False)
    terminal = Terminal(stdin, out) if tty and stdin is not None else None
    session = Session(host, image, PodFiles(image, host), tty=tty, terminal=terminal)
    source = Source(terminal, tty=True) if terminal is not None else Source(stdin)
    io = IO(source, out, err)
    if terminal is not None:
        terminal.start()
    main: asyncio.Future[int] | None = None
    try:
        main = asyncio.ensure_future(
            session.run_program(
                found, list(argv), _environment(host, image, tty), io, image.workdir, 0
            )
        )
        if terminal is not None:
            # Ctrl-C on a tty kills the foreground program (SIGINT); an interactive shell
            # takes the terminal over while it reads a line.
            terminal.on_interrupt = main.cancel
        try:
            status = await main
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            status = 130
        await session.wait_jobs()
        return status
    except StepLimit:
        await err.write(
            encode(
                f"{argv[0]}: meshtutor stopped this session after {limits.MAX_STEPS} commands "
                "(a limit of the sandbox's pods)\n"
            )
        )
        return 2
    finally:
        if main is not None and not main.done():
            main.cancel()
        for job in list(session.jobs):
            job.cancel()
        if terminal is not None:
            await terminal.stop()
