"""Small socket helpers the sandbox's network and proxies share."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

PEEK_TIMEOUT = 10.0


async def read_initial(reader: asyncio.StreamReader, *, timeout: float = PEEK_TIMEOUT) -> bytes:
    """The first bytes of a connection: a whole TLS record when it starts like one (so the
    ClientHello can be parsed), else whatever arrived first."""
    try:
        head = await asyncio.wait_for(reader.read(5), timeout)
    except (TimeoutError, ConnectionError):
        return b""
    if len(head) == 5 and head[0] == 0x16:
        length = int.from_bytes(head[3:5], "big")
        try:
            body = await asyncio.wait_for(reader.readexactly(length), timeout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return head
        return head + body
    return head


def prepend(first: bytes, reader: asyncio.StreamReader) -> asyncio.StreamReader:
    """A reader that yields ``first`` and then everything ``reader`` yields."""
    joined = asyncio.StreamReader()
    joined.feed_data(first)

    async def pump() -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                joined.feed_data(data)
        except (ConnectionError, OSError) as exc:
            joined.set_exception(exc)
            return
        joined.feed_eof()

    task = asyncio.get_running_loop().create_task(pump())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return joined


_BACKGROUND: set[asyncio.Task[None]] = set()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as Envoy does to plaintext at a STRICT listener:
    curl then reports "Connection reset by peer" (exit 56)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def splice(
    reader_a: asyncio.StreamReader,
    writer_a: asyncio.StreamWriter,
    reader_b: asyncio.StreamReader,
    writer_b: asyncio.StreamWriter,
    *,
    mirror_reset: bool = False,
) -> tuple[int, int]:
    """Copy bytes both ways until either side closes; returns the bytes copied from a to b
    and from b to a (what a proxy's access log counts). With ``mirror_reset`` a reset on one
    side resets the other, as a NAT in the path (kube-proxy) would pass the RST on."""

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> int:
        count = 0
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                count += len(data)
                dst.write(data)
                await dst.drain()
        except ConnectionResetError:
            if mirror_reset:
                reset(dst)
                return count
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if dst.can_write_eof():
                    dst.write_eof()
        return count

    sent, received = await asyncio.gather(copy(reader_a, writer_b), copy(reader_b, writer_a))
    return sent, received


def host_port(address: object) -> str | None:
    """``ip:port`` of a socket address (``get_extra_info("peername")``), None if unknown."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return None


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def hold_until_closed(reader: asyncio.StreamReader, limit: float) -> None:
    """Never answer: what a dropped connection looks like to the client, which waits for its
    own timeout."""
    with contextlib.suppress(TimeoutError, ConnectionError, OSError):
        async with asyncio.timeout(limit):
            while await reader.read(65536):
                pass
