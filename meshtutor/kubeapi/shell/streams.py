"""Byte streams between a pod's programs: pipes, shared stdin, collectors, and the tty.

Everything is asyncio and bounded: a pipe holds :data:`limits.PIPE_CAPACITY` bytes before its
writer waits (so ``seq 1 1000000000 | head -1`` neither fills memory nor runs to the end: the
writer gets ``BrokenPipeError`` when head is done, as with SIGPIPE), a command substitution
holds at most :data:`limits.MAX_SUBSTITUTION` bytes.

:class:`Terminal` is the pty's line discipline for ``kubectl exec -t``: kubectl puts the
learner's terminal in raw mode and the websocket carries single keystrokes, so echo, erase,
Ctrl-C and Ctrl-D happen here, as the container's pty (canonical mode, ECHO, ISIG, ONLCR)
would do them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections import deque
from collections.abc import Callable
from typing import Protocol

from meshtutor.kubeapi.shell import limits

__all__ = [
    "Collector",
    "Input",
    "NullOutput",
    "Output",
    "OutputLimit",
    "Pipe",
    "SessionOutput",
    "Source",
    "Terminal",
]


class Input(Protocol):
    async def read(self, n: int) -> bytes: ...


class Output(Protocol):
    async def write(self, data: bytes) -> None: ...


class OutputLimit(Exception):
    """A command substitution produced more than it may keep."""


class _Empty:
    async def read(self, n: int) -> bytes:
        return b""


class Source:
    """A readable stream shared by every command that reads it, buffered once.

    Commands read exactly what they consume (a line for ``read``, everything for ``cat``), so
    ``{ read a; cat; }`` sees the rest of the input after the first line.
    """

    def __init__(self, raw: Input | None = None, *, data: bytes = b"", tty: bool = False) -> None:
        self._raw: Input = raw if raw is not None else _Empty()
        self._buf = bytearray(data)
        self._pos = 0  # consumed bytes at the front of _buf (dropped in bulk, not per line)
        self._eof = raw is None
        # A tty's end of input (Ctrl-D) ends one read, not the stream: the next program reads on.
        self._sticky = not tty

    def _buffered(self) -> int:
        return len(self._buf) - self._pos

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[self._pos : self._pos + n])
        self._pos += len(data)
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        return data

    async def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = await self._raw.read(65536)
        if not chunk:
            self._eof = self._sticky
            return False
        self._buf += chunk
        return True

    async def read(self, n: int) -> bytes:
        if not self._buffered() and not await self._fill():
            return b""
        return self._take(n)

    async def readline(self, limit: int | None = None) -> bytes:
        """One line with its newline; the last line may lack it; b"" at the end."""
        cap = limits.MAX_STDIN if limit is None else limit
        start = self._pos
        while True:
            i = self._buf.find(b"\n", start, self._pos + cap)
            if i >= 0:
                return self._take(i + 1 - self._pos)
            if self._buffered() >= cap:
                return self._take(cap)
            start = len(self._buf)
            if not await self._fill():
                return self._take(self._buffered())

    async def read_all(self, limit: int | None = None) -> bytes:
        cap = limits.MAX_STDIN if limit is None else limit
        while self._buffered() < cap and await self._fill():
            pass
        return self._take(cap)


class Pipe:
    """``|``: a bounded buffer between two concurrent commands."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._write_closed = False
        self._read_closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._read_closed:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            room = limits.PIPE_CAPACITY - len(self._buf)
            if room <= 0:
                self._writable.clear()
                await self._writable.wait()
                continue
            self._buf += view[:room]
            view = view[room:]
            self._readable.set()
        if self._read_closed:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    async def read(self, n: int) -> bytes:
        while not self._buf:
            if self._write_closed or self._read_closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._writable.set()
        return data

    def close_write(self) -> None:
        self._write_closed = True
        self._readable.set()

    def close_read(self) -> None:
        self._read_closed = True
        self._buf.clear()
        self._writable.set()
        self._readable.set()


class NullOutput:
    """``/dev/null``."""

    async def write(self, data: bytes) -> None:
        return None


class Collector:
    """What ``$( … )`` captures."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        if len(self.data) + len(data) > limits.MAX_SUBSTITUTION:
            raise OutputLimit
        self.data += data


class SessionOutput:
    """One of the exec's output streams, with a tty's ONLCR (``\\n`` → ``\\r\\n``)."""

    def __init__(self, out: Output, *, tty: bool) -> None:
        self._out = out
        self._tty = tty
        self._lock = asyncio.Lock()

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._tty:
            data = data.replace(b"\n", b"\r\n")
        async with self._lock:
            await self._out.write(data)


_INTERRUPT = object()


class Terminal:
    """The container's pty, fed the raw keystrokes kubectl sends.

    Input is edited when someone reads it, as busybox's line editor does (it turns the pty's
    echo off and echoes what it reads), so keys typed ahead appear after the next prompt:
    Backspace, Ctrl-U and Ctrl-W edit, Enter ends a line, Ctrl-D on an empty line is end of
    input (otherwise it hands over the partial line). Escape sequences (arrow keys) are
    swallowed: there is no history to walk. Ctrl-C is a signal, so it acts on arrival: when
    :attr:`on_interrupt` is set (a foreground job runs), typed-ahead input is dropped, ``^C``
    echoed and the callback called; otherwise the line being edited is dropped and
    :meth:`read_line` returns None, so the shell prints a new prompt.
    """

    def __init__(self, raw: Input, echo: Output) -> None:
        self._raw = raw
        self._echo = echo
        self._pending: deque[int] = deque()  # raw keystrokes not yet read
        self._arrived = asyncio.Event()
        self._drained = asyncio.Event()
        self._eof = False
        self._edit = bytearray()
        self._escape = 0  # 0: none, 1: after ESC, 2: inside a CSI sequence
        self._leftover = b""  # the rest of a line a program read only part of
        self.on_interrupt: Callable[[], object] | None = None
        self._pump: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None

    async def _run(self) -> None:
        while True:
            data = await self._raw.read(4096)
            if not data:
                self._eof = True
                self._arrived.set()
                return
            while len(self._pending) > limits.MAX_STDIN:
                # Nobody reads: stop taking keystrokes (kubectl's stream backs up), as a
                # full tty input queue does.
                self._drained.clear()
                await self._drained.wait()
            interrupt = self.on_interrupt
            if interrupt is not None and b"\x03" in data:
                # SIGINT flushes the input queue (no NOFLSH) and kills the foreground job.
                self._pending.clear()
                self._edit.clear()
                self._pending.extend(data[data.rindex(b"\x03") + 1 :])
                await self._echo.write(b"^C\n")
                interrupt()
            else:
                self._pending.extend(data)
            self._arrived.set()

    async def _next_line(self) -> object:
        """Edit pending input into one line (bytes), b"" for end of input, or _INTERRUPT."""
        echo = bytearray()
        try:
            while True:
                if not self._pending:
                    if self._eof:
                        return b""
                    await self._flush(echo)
                    self._arrived.clear()
                    await self._arrived.wait()
                    continue
                byte = self._pending.popleft()
                if len(self._pending) <= limits.MAX_STDIN:
                    self._drained.set()
                if self._escape == 1:
                    self._escape = 2 if byte in (0x5B, 0x4F) else 0  # "[" or "O"
                elif self._escape == 2:
                    if 0x40 <= byte <= 0x7E:
                        self._escape = 0
                elif byte == 0x1B:
                    self._escape = 1
                elif byte == 0x03:
                    echo += b"^C\n"
                    self._edit.clear()
                    return _INTERRUPT
                elif byte == 0x04:
                    line = bytes(self._edit)
                    self._edit.clear()
                    return line
                elif byte in (0x7F, 0x08):
                    if self._erase_char():
                        echo += b"\b \b"
                elif byte == 0x15:  # Ctrl-U
                    while self._erase_char():
                        echo += b"\b \b"
                elif byte == 0x17:  # Ctrl-W
                    while self._edit[-1:] == b" " and self._erase_char():
                        echo += b"\b \b"
                    while self._edit and self._edit[-1:] != b" " and self._erase_char():
                        echo += b"\b \b"
                elif byte in (0x0D, 0x0A):
                    echo += b"\n"
                    line = bytes(self._edit) + b"\n"
                    self._edit.clear()
                    return line
                elif byte >= 0x20 and len(self._edit) < limits.MAX_LINE - 1:
                    self._edit.append(byte)
                    echo.append(byte)
        finally:
            await self._flush(echo)

    def _erase_char(self) -> bool:
        """Drop one character (a UTF-8 lead byte with its continuation bytes)."""
        if not self._edit:
            return False
        while self._edit and (self._edit[-1] & 0xC0) == 0x80:
            self._edit.pop()
        if self._edit:
            self._edit.pop()
        return True

    async def _flush(self, echo: bytearray) -> None:
        if echo:
            await self._echo.write(bytes(echo))
            echo.clear()

    async def read_line(self) -> bytes | None:
        """The shell's next line; b"" at end of input; None after Ctrl-C."""
        item = await self._next_line()
        return None if item is _INTERRUPT else item  # type: ignore[return-value]

    async def read(self, n: int) -> bytes:
        """A program's stdin: one edited line at a time; Ctrl-D ends one read."""
        if not self._leftover:
            item = await self._next_line()
            if item is _INTERRUPT:
                return b""
            assert isinstance(item, bytes)
            self._leftover = item
            if not item:
                return b""
        data, self._leftover = self._leftover[:n], self._leftover[n:]
        return data
