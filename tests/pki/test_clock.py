from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pki_helpers import T0

from meshtutor.errors import PKIError
from meshtutor.pki import (
    Clock,
    FastForwardClock,
    ManualClock,
    SystemClock,
    parse_offset,
    parse_time,
)
from meshtutor.pki.clock import format_duration, format_relative, format_time


class TestManualClock:
    def test_stands_still(self) -> None:
        clock = ManualClock(T0)
        assert clock.now() == T0
        assert clock.now() == T0

    def test_advance(self) -> None:
        clock = ManualClock(T0)
        assert clock.advance(timedelta(hours=24)) == T0 + timedelta(hours=24)
        assert clock.now() == datetime(2026, 1, 2, tzinfo=UTC)

    def test_set_converts_to_utc(self) -> None:
        clock = ManualClock(T0)
        clock.set(datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))))
        assert clock.now() == T0
        assert clock.now().tzinfo is UTC

    def test_start_drops_microseconds(self) -> None:
        assert ManualClock(T0.replace(microsecond=123)).now() == T0

    def test_naive_start(self) -> None:
        with pytest.raises(PKIError, match="has no time zone"):
            ManualClock(datetime(2026, 1, 1))

    def test_naive_set(self) -> None:
        with pytest.raises(PKIError, match="has no time zone"):
            ManualClock(T0).set(datetime(2026, 1, 1))

    def test_is_a_clock(self) -> None:
        assert isinstance(ManualClock(T0), Clock)


class TestFastForwardClock:
    def test_follows_real_time(self) -> None:
        clock = FastForwardClock()
        real = datetime.now(UTC)
        assert abs(clock.now() - real) < timedelta(seconds=1)

    def test_advance(self) -> None:
        clock = FastForwardClock()
        clock.advance(timedelta(days=365))
        assert clock.offset == timedelta(days=365)
        assert clock.now() - datetime.now(UTC) > timedelta(days=364)


class TestSystemClock:
    def test_aware_utc(self) -> None:
        now = SystemClock().now()
        assert now.tzinfo is UTC
        assert isinstance(SystemClock(), Clock)


class TestParseOffset:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("+1h", timedelta(hours=1)),
            ("+24h", timedelta(hours=24)),
            ("24h", timedelta(hours=24)),
            ("+7d", timedelta(days=7)),
            ("+1w", timedelta(weeks=1)),
            ("+1y", timedelta(days=365.25)),
            ("+1h30m", timedelta(minutes=90)),
            ("+1.5h", timedelta(minutes=90)),
            ("-90s", timedelta(seconds=-90)),
            (" +2D ", timedelta(days=2)),
        ],
    )
    def test_valid(self, text: str, expected: timedelta) -> None:
        assert parse_offset(text) == expected

    def test_no_unit(self) -> None:
        with pytest.raises(PKIError, match=r"cannot read '24' as a time offset: expected"):
            parse_offset("24")

    def test_unknown_unit(self) -> None:
        with pytest.raises(PKIError, match=r"units? \(s, m, h, d, w, y\)"):
            parse_offset("+3x")

    def test_empty(self) -> None:
        with pytest.raises(PKIError, match="cannot read '' as a time offset"):
            parse_offset("")


class TestParseTime:
    def test_offset(self) -> None:
        assert parse_time("+24h", now=T0) == datetime(2026, 1, 2, tzinfo=UTC)

    def test_iso_with_zone(self) -> None:
        assert parse_time("2026-03-01T00:00:00Z", now=T0) == datetime(2026, 3, 1, tzinfo=UTC)

    def test_iso_without_zone_is_utc(self) -> None:
        assert parse_time("2026-03-01 12:00", now=T0) == datetime(2026, 3, 1, 12, tzinfo=UTC)

    def test_garbage(self) -> None:
        with pytest.raises(PKIError, match="expected an offset such as \\+24h"):
            parse_time("tomorrow", now=T0)


class TestSpan:
    """Issue 13 item 14: `certs --at +9000y` and the shell's `clock +99999y` raised
    OverflowError; every clock now stays between 1950 and 9000 and says so."""

    @pytest.mark.parametrize("text", ["+9000y", "+99999999999999999999999y", "-100000y"])
    def test_offsets_past_the_span(self, text: str) -> None:
        with pytest.raises(PKIError, match=r"stays between 1950-01-01 and 9000-01-01"):
            parse_time(text, now=T0)

    @pytest.mark.parametrize("text", ["9999-12-31", "1900-01-01", "-100y"])
    def test_times_past_the_span(self, text: str) -> None:
        with pytest.raises(PKIError, match=r"cannot go to .*stays between"):
            parse_time(text, now=T0)

    def test_a_manual_clock_refuses_and_stays(self) -> None:
        clock = ManualClock(T0)
        with pytest.raises(PKIError, match="stays between"):
            clock.advance(parse_offset("+6000y") * 2)
        assert clock.now() == T0
        with pytest.raises(PKIError, match="stays between"):
            clock.set(datetime(9500, 1, 1, tzinfo=UTC))

    def test_a_fast_forward_clock_refuses_and_stays(self) -> None:
        clock = FastForwardClock()
        for _ in range(2):
            clock.advance(parse_offset("+3000y"))
        with pytest.raises(PKIError, match="stays between"):
            clock.advance(parse_offset("+3000y"))
        assert clock.offset == 2 * parse_offset("+3000y")


class TestFormatting:
    @pytest.mark.parametrize(
        ("delta", "text"),
        [
            (timedelta(seconds=45), "45 s"),
            (timedelta(minutes=5), "5 min"),
            (timedelta(hours=2), "2 h"),
            (timedelta(hours=11, minutes=59), "11 h 59 min"),
            (timedelta(hours=25), "1 d 1 h"),
            (timedelta(days=365), "365 d"),
            (timedelta(hours=-2), "2 h"),
        ],
    )
    def test_duration(self, delta: timedelta, text: str) -> None:
        assert format_duration(delta) == text

    def test_time(self) -> None:
        assert format_time(T0) == "2026-01-01 00:00 UTC"
        assert format_time(T0 + timedelta(seconds=20)) == "2026-01-01 00:00:20 UTC"

    def test_relative(self) -> None:
        assert format_relative(T0 + timedelta(hours=12), T0) == "in 12 h"
        assert format_relative(T0, T0 + timedelta(hours=2)) == "2 h ago"
