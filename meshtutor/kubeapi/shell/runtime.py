"""What a program in a pod's container gets: its argv, environment, streams and session.

A *program* is an ``async def`` taking a :class:`Proc` and returning the exit status; the
modules that define them register them with :func:`program`. The :class:`Session` is one
``kubectl exec``: its container, its files, and the counters behind :mod:`limits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import posixpath
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from meshtutor.kubeapi.shell import limits
from meshtutor.kubeapi.shell.images import Flavour, Image, PodFiles
from meshtutor.kubeapi.shell.streams import NullOutput, Output, Source, Terminal

__all__ = [
    "IO",
    "PROGRAMS",
    "ForkError",
    "PodHost",
    "Proc",
    "Session",
    "StepLimit",
    "decode",
    "encode",
    "program",
]


class PodHost(Protocol):
    """What a pod's container offers its commands (implemented by the sandbox).

    ``environ()`` is the container's environment from its pod spec (and the service
    variables); the shell adds PATH, HOSTNAME, HOME and the image's own. ``read_file`` is the
    pod's view of a path (``/etc/hosts``, the service account token, the proxy's files), None
    when the pod has no such file; files the session writes never reach it.

    ``curl(argv, stdin)`` runs the real curl as this container's traffic: ``argv[0]`` is
    ``"curl"``, the rest is the learner's command line after :func:`net.plan_curl` checked it
    (no option reads or writes the host's files or changes where traffic goes; it ends with
    ``--proto =http,https --proto-redir =http,https``). The host adds its routing options,
    should put ``-q`` first (no ``~/.curlrc``), run curl without a controlling terminal and
    with a clean environment (no ``http_proxy``), and kill it when the call is cancelled.
    It returns curl's stdout, stderr and exit code.

    ``connect(host, port, timeout)`` opens a TCP connection as the container would (through
    its sidecar when captured); it raises ``socket.gaierror`` for a name that does not
    resolve, ``TimeoutError`` after ``timeout`` seconds, and ``OSError`` as a socket would
    (``ECONNREFUSED``, ``ECONNRESET``). A writer whose ``peername`` is the address a pod
    would see lets nc and wget print it.

    A host may also have an ``image`` attribute (the container's image reference), which
    chooses the image more precisely than the container's name (:func:`images.image_for`).
    """

    pod: str
    namespace: str
    container: str

    def environ(self) -> dict[str, str]: ...

    def read_file(self, path: str) -> bytes | None: ...

    async def curl(self, argv: list[str], stdin: bytes) -> tuple[bytes, bytes, int]: ...

    async def connect(
        self, host: str, port: int, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


def decode(data: bytes) -> str:
    """Bytes to text and back without loss: shells handle bytes, Python handles str."""
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class ForkError(Exception):
    """The session runs as many processes as a pod may (``can't fork``)."""


class StepLimit(Exception):
    """The session ran :data:`limits.MAX_STEPS` commands."""


@dataclass
class IO:
    stdin: Source
    stdout: Output
    stderr: Output


@dataclass
class Session:
    host: PodHost
    image: Image
    files: PodFiles
    tty: bool = False
    terminal: Terminal | None = None
    steps: int = 0
    last_pause: float = field(default_factory=time.monotonic)
    processes: int = 0
    jobs: set[asyncio.Task[int]] = field(default_factory=set)

    async def tick(self) -> None:
        """Count one command or loop round; pause now and then; stop a runaway script.

        Every :data:`limits.STEPS_PER_PAUSE` steps the session sleeps as long as those steps
        took (at most :data:`limits.STEP_PAUSE`): a busy loop gets half of one core at
        most, a loop that waits on curl or sleep barely notices.
        """
        self.steps += 1
        if self.steps > limits.MAX_STEPS:
            raise StepLimit
        if self.steps % limits.STEPS_PER_PAUSE == 0:
            now = time.monotonic()
            took = now - self.last_pause
            await asyncio.sleep(min(took, limits.STEP_PAUSE))
            self.last_pause = time.monotonic()

    @contextlib.contextmanager
    def process(self) -> Iterator[None]:
        if self.processes >= limits.MAX_PROCESSES:
            raise ForkError
        self.processes += 1
        try:
            yield
        finally:
            self.processes -= 1

    async def run_program(
        self, name: str, argv: list[str], env: dict[str, str], io: IO, cwd: str, depth: int
    ) -> int:
        if depth > limits.MAX_DEPTH:
            raise ForkError
        with self.process():
            proc = Proc(argv, env, io, self, cwd, depth)
            return await run_proc(PROGRAMS[name], proc)

    async def wait_jobs(self) -> None:
        while self.jobs:
            await asyncio.gather(*list(self.jobs), return_exceptions=True)


async def run_proc(fn: Program, proc: Proc) -> int:
    """Run a program as the kernel would end it: a closed pipe kills it silently (SIGPIPE)."""
    try:
        return await fn(proc)
    except BrokenPipeError:
        return 128 + 13
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EFBIG):
            with contextlib.suppress(OSError):
                await proc.error(f"write error: {e.strerror}")
            return 1
        raise


@dataclass
class Proc:
    argv: list[str]
    env: dict[str, str]
    io: IO
    session: Session
    cwd: str
    depth: int = 0
    flavour: Flavour = "ash"
    label: str | None = None  # what messages start with, when not the program's name

    @property
    def name(self) -> str:
        if self.label is not None:
            return self.label
        return self.command

    @property
    def command(self) -> str:
        """The name the program was started by (``[`` or ``test``, ``egrep`` or ``grep``)."""
        return posixpath.basename(self.argv[0]) if self.argv else "sh"

    @property
    def image(self) -> Image:
        return self.session.image

    @property
    def files(self) -> PodFiles:
        return self.session.files

    @property
    def busybox(self) -> bool:
        return self.session.image.tools == "busybox"

    def path(self, name: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, name)).replace("//", "/")

    async def out(self, data: bytes | str) -> None:
        await self.io.stdout.write(encode(data) if isinstance(data, str) else data)

    async def error(self, message: str) -> None:
        await self.io.stderr.write(encode(f"{self.name}: {message}\n"))

    async def open_error(self, name: str, err: int = errno.ENOENT, *, quoted: bool = False) -> None:
        """The message a utility prints for a file it cannot open.

        busybox's open_or_warn (cat, tail) says ``can't open 'F': …``; its fopen_or_warn (head,
        wc, grep, ls) and GNU coreutils say ``F: …``.
        """
        reason = os.strerror(err)
        if quoted and self.busybox:
            await self.error(f"can't open '{name}': {reason}")
        else:
            await self.error(f"{name}: {reason}")

    def open_output(self, name: str, *, append: bool = False) -> Output:
        """A file to write, as the program's open() would get it; raises OSError."""
        path = self.path(name)
        if path == "/dev/null":
            return NullOutput()
        if path in ("/dev/stdout", "/dev/tty"):
            return self.io.stdout
        if path == "/dev/stderr":
            return self.io.stderr
        return self.files.open_write(path, append=append)

    async def read_input(self, name: str) -> Source | None:
        """A file argument (``-`` is stdin) as a Source, or None after printing the error."""
        if name == "-":
            return self.io.stdin
        path = self.path(name)
        data = self.files.read(path)
        if data is None:
            return None
        return Source(data=data)

    async def usage(self, text: str) -> int:
        """Bad usage: busybox prints its usage line and exits 1."""
        if self.busybox:
            await self.io.stderr.write(
                encode(f"BusyBox v1.37.0 multi-call binary.\n\nUsage: {self.name} {text}\n")
            )
        else:
            await self.error(f"invalid usage\nUsage: {self.name} {text}")
        return 1


Program = Callable[[Proc], Awaitable[int]]
PROGRAMS: dict[str, Program] = {}


def program(*names: str) -> Callable[[Program], Program]:
    def register(fn: Program) -> Program:
        for name in names:
            PROGRAMS[name] = fn
        return fn

    return register
