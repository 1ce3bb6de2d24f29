"""What keeps one client from knocking a workshop over: rate limits per client address.

A venue network is hostile by default: anyone on the Wi-Fi can reach the classroom. The
limits here are per *address* (an IPv4 address, or a whole IPv6 address), chosen so that no
real attendee or laptop ever meets them:

- join codes: 10 wrong codes, then one more a minute; running out locks the address out of
  joining for 15 minutes (see ``JoinGuard``);
- joins: 10 at once, then one every 10 s per address (a whole room behind one address still
  gets in within minutes; one client can no longer fill 500 seats in a second). A new
  browser attendee of ``--web`` takes one too, from the browser's own address;
- connections (``ConnectionGuard``): 32 open at once per address and a total below the
  process's file-descriptor limit, so a flood cannot exhaust descriptors. The instructor's
  own connections never count against their address, and 8 more per address wait for them.

IPv6 addresses are limited one by one, not by /64: on a venue's LAN every laptop is in the
same /64, which would make the whole room one "client". One machine can pick many addresses
in its /64, so per-address limits are the second line there; the first is the join code's
space (31**8 ≈ 8.5e11), which makes guessing hopeless at any rate a laptop can send.

Addresses in ``trusted`` (``Trusted``: the networks given with ``classroom serve --trust
CIDR``, e.g. a room behind one NAT address, and on the classroom's port the addresses
``--web``'s apps join from, this machine's own) are exempt from the per-address limits but
not from the totals.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from meshtutor.classroom.protocol import normalize_join_code

_log = logging.getLogger("meshtutor.classroom")

Clock = Callable[[], float]  # seconds, monotonic (tests pass a clock they move by hand)

TRACKED_ADDRESSES = 65_536  # per-address state kept at most (least recently seen dropped)
REFUSAL_PAUSE = 5.0  # seconds a refused connection waits for its answer (its Retry-After) …
REFUSED_WAITING = 2048  # … while fewer than this many wait (descriptors stay bounded)
INSTRUCTOR_RESERVE = 8  # connections per address past the cap, kept for the instructor
PROVISIONAL_SECONDS = 5.0  # a reserve connection must show the instructor token this soon


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; a request costs one token per event."""

    __slots__ = ("burst", "clock", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.clock = clock
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
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
    """The unit a limit applies to: the IP address (an IPv4-mapped IPv6 address is its IPv4
    address; an IPv6 zone is dropped). Not the IPv6 /64: a venue LAN is one /64 for everyone
    on it (see the module doc)."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a Unix socket path or similar: itself
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class Trusted:
    """Addresses exempt from the per-address limits: networks (``10.0.0.0/8``) or single
    addresses, IPv4 or IPv6. ``key in trusted`` takes an ``address_key``."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(
            dict.fromkeys(ipaddress.ip_network(n, strict=False) for n in networks)
        )
        self._known: dict[str, bool] = {}

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not self.networks:
            return False
        found = self._known.get(key)
        if found is None:
            try:
                address = ipaddress.ip_address(key)
            except ValueError:
                found = False
            else:
                found = any(address in network for network in self.networks)
            if len(self._known) >= TRACKED_ADDRESSES:
                self._known.clear()
            self._known[key] = found
        return found

    def __repr__(self) -> str:
        return f"Trusted({[str(n) for n in self.networks]})"


# --web attendees' app processes run on the server's machine and join over loopback.
LOOPBACK = ("127.0.0.1", "::1")


def parse_trust(value: str) -> str:
    """A ``--trust`` value: an address or a network in CIDR notation; ValueError names it."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an address or a network (e.g. 203.0.113.7 or 10.20.0.0/16)"
        ) from None


@dataclass(frozen=True)
class JoinLimits:
    """How fast one address may guess join codes and take seats (see the module doc)."""

    guesses: int = 10  # wrong codes at once …
    guess_every: float = 60.0  # … then one per this many seconds
    lockout: float = 15 * 60.0  # seconds an address may not join after using up its guesses
    joins: int = 10  # successful joins at once …
    join_every: float = 10.0  # … then one per this many seconds
    refusal_pause: float = 1.0  # seconds before a refused join is answered

    def guesses_per_day(self, hours: float = 8.0) -> int:
        """The most wrong codes one address can try in ``hours``: pacing itself at one a
        guess-interval beats bursting into lockouts, so that is the bound."""
        seconds = hours * 3600
        paced = self.guesses + seconds / self.guess_every
        bursts = self.guesses * (1 + seconds / self.lockout)
        return int(max(paced, bursts))


class _Client:
    __slots__ = ("guesses", "joins", "locked_until")

    def __init__(self, limits: JoinLimits, clock: Clock) -> None:
        self.guesses = TokenBucket(1 / limits.guess_every, limits.guesses, clock)
        self.joins = TokenBucket(1 / limits.join_every, limits.joins, clock)
        self.locked_until = 0.0


class Refused(Exception):
    """A join attempt refused by a limit: ``status`` 429 with ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, int(retry_after + 0.999))


class JoinGuard:
    """Code guesses and joins per client address. One guard serves every port of a
    classroom (``/api/join``, ``/j/CODE``, and ``--web``'s join form), so the limits are
    per real client address whichever port it uses."""

    def __init__(
        self, limits: JoinLimits, trusted: Trusted | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.limits = limits
        self.trusted = trusted if trusted is not None else Trusted()
        self.clock = clock
        self.compared = 0  # join codes compared with the room's (what a guesser gets)
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def _client(self, key: str) -> _Client:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _Client(self.limits, self.clock)
            if len(self._clients) > TRACKED_ADDRESSES:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        return client

    def check(self, key: str, trusted: Trusted | None = None) -> None:
        """Before a code is even looked at: a locked-out address learns nothing.
        ``trusted`` (every method takes it) replaces the guard's own set for one port."""
        if key in (trusted if trusted is not None else self.trusted):
            return
        client = self._client(key)
        left = client.locked_until - self.clock()
        if left > 0:
            raise Refused(
                f"too many wrong join codes from your address: try again in {_minutes(left)}",
                left,
            )

    def matches(self, key: str, code: str, room_code: str, trusted: Trusted | None = None) -> bool:
        """Compare ``code`` (as typed) with the room's, under the address's guess limit:
        True, False (a wrong code, counted), or ``Refused``."""
        self.check(key, trusted)
        self.compared += 1
        if len(code) <= 64 and hmac.compare_digest(
            normalize_join_code(code).encode(), room_code.encode()
        ):
            return True
        self.wrong_code(key, trusted)
        return False

    def wrong_code(self, key: str, trusted: Trusted | None = None) -> int:
        """Count a wrong code; returns the guesses left, or raises ``Refused`` (locking the
        address out) when none are."""
        if key in (trusted if trusted is not None else self.trusted):
            return self.limits.guesses
        client = self._client(key)
        client.guesses.take(1)
        left = client.guesses.left()
        if left < 1:
            client.locked_until = self.clock() + self.limits.lockout
            _log.warning("join codes: %s locked out after too many wrong codes", key)
            raise Refused(
                "too many wrong join codes from your address: try again in "
                f"{_minutes(self.limits.lockout)}",
                self.limits.lockout,
            )
        return left

    def seat(self, key: str, trusted: Trusted | None = None) -> None:
        """A right code: take one of the address's joins, or raise ``Refused``."""
        if key in (trusted if trusted is not None else self.trusted):
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
    out attendees. One guard serves every port of a classroom (``attach`` each server).

    aiohttp has no connection limit of its own; its ``web.Server`` is told of every
    connection (``connection_made``/``connection_lost``, called by each request handler), so
    the guard wraps those two. At the total, the connection idle the longest (no request in
    progress: a keep-alive left open, or one that never sent a whole request) is closed to
    make room, and only when every connection is busy does the new one get ``503``.
    ``busy``/``idle`` are called by a middleware around each request.

    Per address: a connection that shows the instructor token (``instructor``) stops
    counting against its address, so the instructor's page never uses up the address's cap.
    Past the cap, ``instructor_reserve`` more connections are accepted *provisionally*, for the
    instructor arriving at an address already full (a room behind one address): the first
    request on one must show the instructor token (``busy`` returns True and the middleware
    checks), and one that sends none within ``PROVISIONAL_SECONDS`` gets the same ``429`` as
    a connection refused outright past the reserve.
    """

    def __init__(
        self,
        total: int,
        per_address: int,
        trusted: Trusted | None = None,
        waiting: int = REFUSED_WAITING,
        reserve: int = INSTRUCTOR_RESERVE,
    ) -> None:
        self.total = total  # descriptors for connections, less what ``reserve`` took
        self.reserved = 0
        self.per_address = per_address
        self.instructor_reserve = reserve
        self.backlog = 128  # the listen backlog its servers should use (see server.py)
        self.max_waiting = waiting
        self.trusted = trusted if trusted is not None else Trusted()
        self.refused = 0  # connections refused over a cap since the start
        self.evicted = 0  # idle connections closed to make room
        self._waiting = 0  # refused connections whose answer waits
        # handler → (address key, or "" once it no longer counts against one; transport)
        self._open: dict[Any, tuple[str, asyncio.Transport]] = {}
        self._by_address: dict[str, int] = {}
        self._idle: OrderedDict[Any, None] = OrderedDict()  # oldest idle first
        self._busy: dict[Any, int] = {}
        self._provisional: dict[Any, asyncio.TimerHandle] = {}

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
        count = self._by_address.get(key, 0)
        provisional = key not in self.trusted and count >= self.per_address
        if provisional and count >= self.per_address + self.instructor_reserve:
            self._refuse(handler, transport, 429, self._too_many())
            return
        if len(self._open) >= self.total - self.reserved and not self._evict():
            self._refuse(handler, transport, 503, "the classroom is at its connection limit")
            return
        self._open[handler] = (key, transport)
        self._by_address[key] = count + 1
        self._idle[handler] = None
        if provisional:
            loop = asyncio.get_running_loop()
            self._provisional[handler] = loop.call_later(
                PROVISIONAL_SECONDS, self._expire, handler, transport
            )

    def _too_many(self) -> str:
        return f"too many connections from your address (at most {self.per_address})"

    def _expire(self, handler: Any, transport: asyncio.Transport) -> None:
        """A provisional connection that sent no request: refused as it would have been
        (it has waited already, so at once)."""
        if self._provisional.pop(handler, None) is not None:
            self._lost(handler)
            self._refuse(handler, transport, 429, self._too_many(), pause=False)

    def _uncount(self, handler: Any) -> None:
        timer = self._provisional.pop(handler, None)
        if timer is not None:
            timer.cancel()
        entry = self._open.get(handler)
        if entry is None or not entry[0]:
            return
        key = entry[0]
        self._open[handler] = ("", entry[1])
        count = self._by_address[key] - 1
        if count:
            self._by_address[key] = count
        else:
            del self._by_address[key]

    def _lost(self, handler: Any) -> None:
        self._uncount(handler)
        self._open.pop(handler, None)
        self._idle.pop(handler, None)
        self._busy.pop(handler, None)

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

    def _refuse(
        self,
        handler: Any,
        transport: asyncio.Transport,
        status: int,
        why: str,
        *,
        pause: bool = True,
    ) -> None:
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
        delay = REFUSAL_PAUSE if pause and self._waiting < self.max_waiting else 0.0
        self._waiting += 1
        asyncio.get_running_loop().call_later(delay, close)

    def reserve(self, descriptors: int, keep: int = 16) -> bool:
        """Take ``descriptors`` of the connections' share for something else (a --web app's
        pipes), keeping ``keep`` for connections; idle connections over the new total are
        closed. False, taking nothing, when they do not fit."""
        if self.total - self.reserved - descriptors < keep:
            return False
        self.reserved += descriptors
        while len(self._open) > self.total - self.reserved and self._evict():
            pass
        return True

    def release(self, descriptors: int) -> None:
        """Give back what ``reserve`` took."""
        self.reserved = max(0, self.reserved - descriptors)

    def busy(self, handler: Any) -> bool:
        """A request starts on ``handler``. True when the connection is provisional: this
        first request must show the instructor token (then call ``instructor``), else it is
        refused and the connection closed."""
        if handler in self._open:
            self._busy[handler] = self._busy.get(handler, 0) + 1
            self._idle.pop(handler, None)
        timer = self._provisional.pop(handler, None)
        if timer is None:
            return False
        timer.cancel()
        return True

    def instructor(self, handler: Any) -> None:
        """The connection carries the instructor's requests: it no longer counts against its
        address (it still counts in the total)."""
        self._uncount(handler)

    async def refused_request(self) -> str:
        """Count a provisional connection's request refused and hold its answer as long as a
        connection refused outright waits (a client reconnecting in a loop into the reserve
        must not make the server answer thousands of refusals a second); returns why, for
        the 429."""
        self.refused += 1
        if self._waiting < self.max_waiting:
            self._waiting += 1
            try:
                await asyncio.sleep(REFUSAL_PAUSE)
            finally:
                self._waiting -= 1
        return self._too_many()

    def idle(self, handler: Any) -> None:
        count = self._busy.get(handler, 0) - 1
        if count > 0:
            self._busy[handler] = count
            return
        self._busy.pop(handler, None)
        if handler in self._open:
            self._idle[handler] = None
            self._idle.move_to_end(handler)
