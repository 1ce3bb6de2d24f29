"""Clocks: where the PKI reads "now".

Certificates are about time (issued, renewed, expired), and a tutor has to show a day or a year
passing in a second. So nothing in ``meshtutor.pki`` calls ``datetime.now()`` itself: it asks a
:class:`Clock` the caller injects. :class:`SystemClock` is the real time, :class:`ManualClock`
stands still until moved (tests, ``meshtutor certs --at``), :class:`FastForwardClock` follows
the real time but can be pushed ahead (a live sandbox where the learner presses "+24 h").
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from meshtutor.errors import PKIError

__all__ = [
    "EARLIEST",
    "LATEST",
    "Clock",
    "FastForwardClock",
    "ManualClock",
    "SystemClock",
    "format_duration",
    "format_relative",
    "format_time",
    "parse_offset",
    "parse_time",
]


@runtime_checkable
class Clock(Protocol):
    """Anything that can say what time it is, as an aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


#: The times a clock may show. X.509 writes UTCTime from 1950 (RFC 5280 §4.1.2.5) and
#: GeneralizedTime up to 9999, where Python's datetime stops too: beyond, `+99999y` was an
#: OverflowError, and certificates issued near 9999 could not be written. 9000 leaves room
#: for a 10-year root issued at the latest time.
EARLIEST = datetime(1950, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_SPAN = (
    f"meshtutor's clock stays between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} "
    "(X.509 dates start in 1950 and end in 9999)"
)


def _aware(when: datetime, what: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise PKIError(f"{what} {when.isoformat()} has no time zone: pass an aware datetime (UTC)")
    return _in_span(when.astimezone(UTC), when.isoformat())


def _in_span(when: datetime, text: str) -> datetime:
    if not EARLIEST <= when <= LATEST:
        raise PKIError(f"cannot go to {text}: {_SPAN}")
    return when


def _moved(start: datetime, delta: timedelta) -> datetime:
    """``start + delta``, refused with a PKIError outside the span (not an OverflowError)."""
    try:
        return _in_span(start + delta, f"{'+' if delta >= timedelta(0) else '-'}{abs(delta)}")
    except OverflowError:
        raise PKIError(f"cannot move the clock by {delta}: {_SPAN}") from None


class ManualClock:
    """A clock that stands still until it is moved: ``advance(timedelta(hours=24))``."""

    def __init__(self, start: datetime | None = None) -> None:
        # Certificates carry whole seconds; starting on a whole second keeps displays and
        # comparisons free of sub-second noise.
        start = datetime.now(UTC) if start is None else _aware(start, "ManualClock start")
        self._now = start.replace(microsecond=0)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock by ``delta`` (may be negative) and return the new time."""
        self._now = _moved(self._now, delta)
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (an aware datetime) and return it."""
        self._now = _aware(when, "ManualClock.set")
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


class FastForwardClock:
    """The real time plus an offset that only grows when someone fast-forwards.

    A sandbox runs on it: seconds pass as they do on the wall, and "+24 h" jumps a day ahead
    so rotation and expiry can be seen without waiting.
    """

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self._offset = offset
        self._base = datetime.now(UTC)
        self._monotonic = time.monotonic()

    @property
    def offset(self) -> timedelta:
        """How far ahead of the real time this clock runs."""
        return self._offset

    def now(self) -> datetime:
        # Monotonic time, so a wall-clock adjustment (NTP) cannot send the mesh backwards.
        elapsed = timedelta(seconds=time.monotonic() - self._monotonic)
        return self._base + elapsed + self._offset

    def advance(self, delta: timedelta) -> datetime:
        """Jump ``delta`` ahead and return the new time."""
        _moved(self.now(), delta)
        self._offset += delta
        return self.now()

    def __repr__(self) -> str:
        return f"FastForwardClock(offset={self._offset})"


# systemd.time(7) spans: a year is 365.25 days, so "+1y" lands past a 365-day certificate
# (Linkerd's trust anchor and issuer) rather than exactly on its last second.
_UNITS: dict[str, timedelta] = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365.25),
}
_OFFSET = re.compile(r"([+-]?)((?:\d+(?:\.\d+)?[smhdwy])+)")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdwy])")


def parse_offset(text: str) -> timedelta:
    """Parse a time offset such as ``+24h``, ``+1h30m``, ``+7d``, ``+1y`` or ``-90s``.

    Units: s, m, h, d, w, y (365.25 days). Raises :class:`PKIError` saying what is expected.
    """
    match = _OFFSET.fullmatch(text.strip().lower())
    if match is None:
        raise PKIError(
            f"cannot read {text!r} as a time offset: expected a number and a unit "
            "(s, m, h, d, w, y), e.g. +1h, +24h, +7d, +1y or +1h30m"
        )
    sign, body = match.groups()
    seconds = sum(
        float(amount) * _UNITS[unit].total_seconds() for amount, unit in _PART.findall(body)
    )
    if seconds > (LATEST - EARLIEST).total_seconds():  # inf too, for a 400-digit number
        raise PKIError(f"cannot move the clock by {text.strip()}: {_SPAN}")
    total = timedelta(seconds=seconds)
    return -total if sign == "-" else total


def parse_time(text: str, *, now: datetime) -> datetime:
    """Parse ``--at``: an offset from ``now`` (``+24h``) or an ISO 8601 time (UTC if no zone)."""
    stripped = text.strip()
    if stripped[:1] in "+-" or _OFFSET.fullmatch(stripped.lower()):
        offset = parse_offset(stripped)
        try:
            return _in_span(now + offset, stripped)
        except OverflowError:
            raise PKIError(f"cannot go to {stripped}: {_SPAN}") from None
    try:
        when = datetime.fromisoformat(stripped)
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PKIError(
            f"cannot read {text!r} as a time: expected an offset such as +24h, +7d, +1y "
            "or an ISO 8601 time such as 2030-01-01T00:00:00Z"
        ) from None
    return _in_span(when, stripped)


def format_duration(delta: timedelta) -> str:
    """A short human reading of a duration: ``2 h``, ``11 h 59 min``, ``364 d``, ``45 s``.

    The sign is dropped; callers say "ago" or "in".
    """
    seconds = abs(int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days >= 2:
        return f"{days} d"
    if days:
        return f"1 d {hours} h" if hours else "1 d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def format_time(when: datetime) -> str:
    """``2026-01-02 00:00 UTC`` (seconds shown only when there are some)."""
    when = when.astimezone(UTC)
    return f"{when:%Y-%m-%d %H:%M:%S} UTC" if when.second else f"{when:%Y-%m-%d %H:%M} UTC"


def format_relative(when: datetime, now: datetime) -> str:
    """``in 12 h`` or ``2 h ago``."""
    delta = when - now
    return (
        f"in {format_duration(delta)}" if delta >= timedelta(0) else f"{format_duration(delta)} ago"
    )
