"""What keeps one client from knocking a workshop over: rate limits per client address.

A venue network is hostile by default: anyone on the Wi-Fi can reach the classroom. The
limits here are per *address* (an IPv4 address, or an IPv6 /64, which one machine usually
holds whole), chosen so that no real attendee or laptop ever meets them:

- join codes: 10 wrong codes, then one more a minute; running out locks the address out of
  joining for 15 minutes (see ``JoinGuard``);
- joins: 10 at once, then one every 10 s per address (a whole room behind one address still
  gets in within minutes; one client can no longer fill 500 seats in a second);
- connections (``ConnectionGuard``): 32 open at once per address and a total below the
  process's file-descriptor limit, so a flood cannot exhaust descriptors.

Addresses in ``trusted`` (loopback, when ``--web`` runs attendees' apps on this machine)
are exempt from the per-address limits but not from the totals.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_log = logging.getLogger("meshtutor.classroom")

TRACKED_ADDRESSES = 65_536  # per-address state kept at most (least recently seen dropped)
REFUSAL_PAUSE = 5.0  # seconds a refused connection waits for its answer (its Retry-After) …
REFUSED_WAITING = 2048  # … while fewer than this many wait (descriptors stay bounded)


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; a request costs one token per event."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, cost: float) -> float:
        """Take ``cost`` tokens; returns 0, or the seconds to wait before it would succeed."""
        self._refill()
        cost = min(cost, self.burst)  # a full-size batch must be able to pass eventually
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate

    def left(self) -> int:
        """Whole tokens available now."""
        self._refill()
        return int(self.tokens)


def address_key(host: str | None) -> str:
    """The unit a limit applies to: the IPv4 address (also when IPv4-mapped in IPv6), or the
    IPv6 /64 (a single machine gets a whole /64 by SLAAC and can pick any address in it)."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a Unix socket path or similar: itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# The --web attendees' app processes run on the server's machine and all connect over loopback.
LOOPBACK = frozenset({address_key("127.0.0.1"), address_key("::1")})


@dataclass(frozen=True)
class JoinLimits:
    """How fast one address may guess join codes and take seats (see the module doc)."""

    guesses: int = 10  # wrong codes at once …
    guess_every: float = 60.0  # … then one per this many seconds
    lockout: float = 15 * 60.0  # seconds an address may not join after using up its guesses
    joins: int = 10  # successful joins at once …
    join_every: float = 10.0  # … then one per this many seconds

    def guesses_per_day(self, hours: float = 8.0) -> int:
        """The most wrong codes one address can try in ``hours``: pacing itself at one a
        guess-interval beats bursting into lockouts, so that is the bound."""
        seconds = hours * 3600
        paced = self.guesses + seconds / self.guess_every
        bursts = self.guesses * (1 + seconds / self.lockout)
        return int(max(paced, bursts))


class _Client:
    __slots__ = ("guesses", "joins", "locked_until")

    def __init__(self, limits: JoinLimits) -> None:
        self.guesses = TokenBucket(1 / limits.guess_every, limits.guesses)
        self.joins = TokenBucket(1 / limits.join_every, limits.joins)
        self.locked_until = 0.0


class Refused(Exception):
    """A join attempt refused by a limit: ``status`` 429 with ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, int(retry_after + 0.999))


class JoinGuard:
    """Code guesses and joins per client address (``/api/join`` and ``/j/CODE``)."""

    def __init__(self, limits: JoinLimits, trusted: Iterable[str] = ()) -> None:
        self.limits = limits
        self.trusted = frozenset(trusted)
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def _client(self, key: str) -> _Client:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _Client(self.limits)
            if len(self._clients) > TRACKED_ADDRESSES:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        return client

    def check(self, key: str) -> None:
        """Before a code is even looked at: a locked-out address learns nothing."""
        if key in self.trusted:
            return
        client = self._client(key)
        left = client.locked_until - time.monotonic()
        if left > 0:
            raise Refused(
                f"too many wrong join codes from your address: try again in {_minutes(left)}",
                left,
            )

    def wrong_code(self, key: str) -> int:
        """Count a wrong code; returns the guesses left, or raises ``Refused`` (locking the
        address out) when none are."""
        if key in self.trusted:
            return self.limits.guesses
        client = self._client(key)
        client.guesses.take(1)
        left = client.guesses.left()
        if left < 1:
            client.locked_until = time.monotonic() + self.limits.lockout
            _log.warning("join codes: %s locked out after too many wrong codes", key)
            raise Refused(
                "too many wrong join codes from your address: try again in "
                f"{_minutes(self.limits.lockout)}",
                self.limits.lockout,
            )
        return left

    def seat(self, key: str) -> None:
        """A right code: take one of the address's joins, or raise ``Refused``."""
        if key in self.trusted:
            return
        wait = self._client(key).joins.take(1)
        if wait:
            raise Refused(
                "too many joins from your address: at most "
                f"{self.limits.joins} at once, then one every {self.limits.join_every:g} s",
                wait,
            )


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


# --- connections ------------------------------------------------------------------------------


class ConnectionGuard:
    """Caps the server's open connections in total and per address, below the file-descriptor
    limit, so a flood of idle or slow connections can neither exhaust descriptors nor crowd
    out attendees.

    aiohttp has no connection limit of its own; its ``web.Server`` is told of every
    connection (``connection_made``/``connection_lost``, called by each request handler), so
    the guard wraps those two. Over the per-address cap a new connection gets ``429``; at the
    total, the connection idle the longest (no request in progress: a keep-alive left open, or
    one that never sent a whole request) is closed to make room, and only when every
    connection is busy does the new one get ``503``. ``busy``/``idle`` are called by a
    middleware around each request.
    """

    def __init__(
        self,
        total: int,
        per_address: int,
        trusted: Iterable[str] = (),
        waiting: int = REFUSED_WAITING,
    ) -> None:
        self.total = total
        self.per_address = per_address
        self.max_waiting = waiting
        self.trusted = frozenset(trusted)
        self.refused = 0  # connections refused over a cap since the start
        self.evicted = 0  # idle connections closed to make room
        self._waiting = 0  # refused connections whose answer waits
        self._open: dict[Any, tuple[str, asyncio.Transport]] = {}  # handler → (key, transport)
        self._by_address: dict[str, int] = {}
        self._idle: OrderedDict[Any, None] = OrderedDict()  # oldest idle first
        self._busy: dict[Any, int] = {}

    def attach(self, server: Any) -> None:
        made: Callable[[Any, asyncio.Transport], None] = server.connection_made
        lost: Callable[[Any, BaseException | None], None] = server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._made(handler, transport)

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            self._lost(handler)
            lost(handler, exc)

        server.connection_made = connection_made
        server.connection_lost = connection_lost

    @property
    def open(self) -> int:
        return len(self._open)

    def _made(self, handler: Any, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        key = address_key(peer[0] if isinstance(peer, tuple) and peer else None)
        if key not in self.trusted and self._by_address.get(key, 0) >= self.per_address:
            self._refuse(
                handler,
                transport,
                429,
                f"too many connections from your address (at most {self.per_address})",
            )
            return
        if len(self._open) >= self.total and not self._evict():
            self._refuse(handler, transport, 503, "the classroom is at its connection limit")
            return
        self._open[handler] = (key, transport)
        self._by_address[key] = self._by_address.get(key, 0) + 1
        self._idle[handler] = None

    def _lost(self, handler: Any) -> None:
        entry = self._open.pop(handler, None)
        self._idle.pop(handler, None)
        self._busy.pop(handler, None)
        if entry is not None:
            key = entry[0]
            count = self._by_address[key] - 1
            if count:
                self._by_address[key] = count
            else:
                del self._by_address[key]

    def _evict(self) -> bool:
        while self._idle:
            handler, _ = self._idle.popitem(last=False)
            entry = self._open.get(handler)
            if entry is None:
                continue
            self.evicted += 1
            handler.force_close()  # as aiohttp's own keep-alive timeout closes one
            self._lost(handler)  # its slot is free now; connection_lost comes later
            return True
        return False

    def _refuse(self, handler: Any, transport: asyncio.Transport, status: int, why: str) -> None:
        """Answer ``status`` and close. The answer waits (nothing is read meanwhile)
        while few refused connections wait, so a client reconnecting in a loop makes the
        server accept one connection in five seconds, not thousands a second; past that, at
        once."""
        self.refused += 1
        reason = "Too Many Requests" if status == 429 else "Service Unavailable"
        body = f'{{"error": "{why}"}}'.encode()
        answer = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        transport.pause_reading()  # never a request on a refused connection

        def close() -> None:
            self._waiting -= 1
            if not transport.is_closing():
                transport.write(answer)
            handler.force_close()

        # Even at once, on the next loop turn: aiohttp starts the handler's task after this
        # call returns, and that task must find the connection still there.
        delay = REFUSAL_PAUSE if self._waiting < self.max_waiting else 0.0
        self._waiting += 1
        asyncio.get_running_loop().call_later(delay, close)

    def busy(self, handler: Any) -> None:
        if handler in self._open:
            self._busy[handler] = self._busy.get(handler, 0) + 1
            self._idle.pop(handler, None)

    def idle(self, handler: Any) -> None:
        count = self._busy.get(handler, 0) - 1
        if count > 0:
            self._busy[handler] = count
            return
        self._busy.pop(handler, None)
        if handler in self._open:
            self._idle[handler] = None
            self._idle.move_to_end(handler)
