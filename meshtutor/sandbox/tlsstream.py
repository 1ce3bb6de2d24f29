"""TLS over an asyncio stream that has already been read from.

A sidecar must look at the first bytes of a connection (TLS ClientHello or plain HTTP?) before
it decides to terminate TLS, and asyncio's ``start_tls`` cannot take back bytes already read.
So the sidecars drive an ``ssl.SSLObject`` through memory BIOs themselves: the peeked bytes go
into the incoming BIO first. This is also what lets the handshake recorder see every message.
"""

from __future__ import annotations

import asyncio
import ssl
from contextlib import suppress

_CHUNK = 65536


class TLSStream:
    """One TLS connection on top of an asyncio reader/writer pair."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        initial: bytes = b"",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        if initial:
            self._incoming.write(initial)
        self._eof = False

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._writer.write(data)
            with suppress(ConnectionError):
                await self._writer.drain()

    async def _fill(self) -> None:
        data = await self._reader.read(_CHUNK)
        if not data:
            self._incoming.write_eof()
            self._eof = True
        else:
            self._incoming.write(data)

    async def handshake(self) -> None:
        """Run the handshake; raises ``ssl.SSLError`` or ``ConnectionError`` on failure. The
        alert OpenSSL produces on failure is still sent to the peer."""
        while True:
            try:
                self.ssl_object.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                if self._eof:
                    raise ConnectionResetError(
                        "the peer closed the connection during the handshake"
                    ) from None
                await self._fill()
                continue
            except ssl.SSLError:
                await self._flush()  # deliver the alert
                raise
            await self._flush()
            return

    async def read(self, n: int = _CHUNK) -> bytes:
        """Decrypted bytes; ``b""`` at EOF. TLS 1.3 alerts that arrive after the handshake
        (such as certificate_required) surface here as ``ssl.SSLError``."""
        while True:
            try:
                return self.ssl_object.read(n)
            except ssl.SSLWantReadError:
                await self._flush()
                if self._eof:
                    return b""
                await self._fill()
            except ssl.SSLZeroReturnError:
                return b""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self.ssl_object.write(view)
            view = view[written:]
            await self._flush()

    async def close(self) -> None:
        with suppress(ssl.SSLError, ssl.SSLWantReadError, ConnectionError, OSError):
            self.ssl_object.unwrap()
        with suppress(ConnectionError, OSError):
            await self._flush()
        self._writer.close()
        with suppress(ConnectionError, OSError, ssl.SSLError):
            await self._writer.wait_closed()

    def peer_certificate_der(self) -> bytes | None:
        return self.ssl_object.getpeercert(binary_form=True)

    def stream_pair(self) -> tuple[asyncio.StreamReader, _TLSWriter]:
        """A reader fed by a pump task, and a writer, so HTTP helpers written for plain
        streams work over TLS unchanged."""
        reader = asyncio.StreamReader()

        async def pump() -> None:
            try:
                while True:
                    data = await self.read()
                    if not data:
                        break
                    reader.feed_data(data)
            except (ssl.SSLError, ConnectionError, OSError) as exc:
                reader.set_exception(exc)
                return
            reader.feed_eof()

        task = asyncio.get_running_loop().create_task(pump())
        return reader, _TLSWriter(self, task)


class _TLSWriter:
    """The parts of ``asyncio.StreamWriter`` the sidecars use, writing through TLS."""

    def __init__(self, stream: TLSStream, pump: asyncio.Task[None]) -> None:
        self._stream = stream
        self._pump = pump
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._pending.append(data)

    async def drain(self) -> None:
        data, self._pending = b"".join(self._pending), []
        if data:
            await self._stream.write(data)

    def close(self) -> None:
        self._pump.cancel()

    async def wait_closed(self) -> None:
        await self.drain()
        self._pump.cancel()
        with suppress(asyncio.CancelledError):
            await self._pump
        await self._stream.close()

    def can_write_eof(self) -> bool:
        # TLS has close_notify, not a half-close: splice() then just stops copying.
        return False

    def write_eof(self) -> None:
        raise RuntimeError("TLS streams cannot be half-closed")

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._stream._writer.get_extra_info(name, default)
