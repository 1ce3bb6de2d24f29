"""What travels between a classroom server and its clients, and how it is validated.

The server trusts nothing it receives: every payload is checked here before anything is
stored, and a bad one is refused whole (``PayloadError`` → HTTP 400 naming the field), so a
batch is either stored completely or not at all. The client uses the same checks before it
queues an event, so what it queues offline will be accepted later.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

EventKind = Literal[
    "step_started",
    "step_passed",
    "step_failed",
    "hint_used",
    "quiz_answer",
    "lesson_started",
    "lesson_done",
]
EVENT_KINDS: frozenset[str] = frozenset(get_args(EventKind))
# Events that are about one step of a lesson and so must name it.
STEP_KINDS: frozenset[str] = frozenset({"step_started", "step_passed", "step_failed", "hint_used"})

PushKind = Literal["lesson", "hint", "quiz", "quiz_closed"]

MAX_BODY = 16 * 1024  # bytes of any request body (413 above)
MAX_BATCH = 40  # events in one POST /api/events (the default burst, so a full batch can pass)
MAX_DETAIL = 4 * 1024  # bytes of one event's detail, as JSON
MAX_NAME = 40  # characters of an attendee name
MAX_TEXT = 2000  # characters of a hint or a failure message
MAX_ID = 64  # characters of a client event id, lesson id or step id

MAX_INT_ID = 2**63 - 1  # ids and push cursors are SQLite INTEGERs: nothing larger exists

# Join codes are read off a projector and typed on a phone-sized keyboard: no 0/O, 1/I/L.
# Eight characters (shown as two groups of four) give 31**8 ≈ 8.5e11 codes: at the rate the
# server lets one address guess (under 500 tries in an 8-hour day, see server.JoinGuard) the
# chance of hitting the code is below 1e-9 per address, and even at the ~2,850 guesses a
# second an unlimited server once answered it would stay below 1e-4 over a whole day.
JOIN_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
JOIN_CODE_LENGTH = 8

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PayloadError(ValueError):
    """A request payload is malformed. ``index`` is the position of the bad event in a batch,
    so a client can drop that one event and re-send the rest."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


def new_join_code() -> str:
    return "".join(secrets.choice(JOIN_ALPHABET) for _ in range(JOIN_CODE_LENGTH))


def normalize_join_code(code: str) -> str:
    """Codes are compared upper-case without spaces or dashes (``abc-234`` is ``ABC234``)."""
    return re.sub(r"[\s-]", "", code).upper()


def display_join_code(code: str) -> str:
    """``ABCDEFGH`` → ``ABCD-EFGH``: groups of four are easier to read off a projector (the
    dash is optional when typed). Six-character codes of older rooms stay whole."""
    return f"{code[:4]}-{code[4:]}" if len(code) == 8 else code


def _refuse_constant(name: str) -> object:
    raise PayloadError(f"{name} is not a number JSON allows")


def parse_json(raw: bytes | str, what: str = "the body") -> object:
    """Parse untrusted JSON. Every way it can fail is a ``PayloadError``: bad syntax or
    encoding, NaN/Infinity (Python accepts them, but they make the exports invalid JSON),
    integers longer than Python converts (ValueError since 3.11) and nesting deeper than the
    parser's recursion (RecursionError)."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
        # "\ud800" is valid JSON but no text: it could never be stored (SQLite takes UTF-8).
        json.dumps(value, ensure_ascii=False).encode()
    except PayloadError as exc:
        raise PayloadError(f"{what}: {exc.message}") from None
    except RecursionError:
        raise PayloadError(f"{what} is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    except UnicodeEncodeError:
        raise PayloadError(f"{what} has a string with a lone surrogate (\\ud800-\\udfff)") from None
    except ValueError:  # UnicodeDecodeError, or an integer of thousands of digits
        raise PayloadError(
            f"{what} is not valid JSON (bad encoding or a number too long)"
        ) from None
    return value


def parse_int(value: object, what: str, *, minimum: int = 1, text: bool = False) -> int:
    """An integer from ``minimum`` to 2**63-1: a JSON number, or with ``text`` a decimal
    string (a path segment, a query parameter)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (
        text
        and isinstance(value, str)
        and 0 < len(value) <= 19
        and value.isascii()
        and value.isdigit()
    ):
        number = int(value)
    if number is None or not minimum <= number <= MAX_INT_ID:
        raise PayloadError(f"{what} must be an integer from {minimum} to {MAX_INT_ID}")
    return number


def new_token() -> str:
    return secrets.token_urlsafe(24)


def validate_name(value: object) -> str:
    """An attendee name: 1–40 printable characters once trimmed (NFC, so an accented name
    typed two ways counts the same)."""
    if not isinstance(value, str):
        raise PayloadError("name must be a string")
    name = unicodedata.normalize("NFC", value).strip()
    if not name:
        raise PayloadError("name must not be empty")
    if len(name) > MAX_NAME:
        raise PayloadError(f"name must be at most {MAX_NAME} characters, got {len(name)}")
    if not name.isprintable():
        raise PayloadError("name must contain printable characters only")
    return name


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be a JSON object")
    return value


def _slug(value: object, what: str) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise PayloadError(f"{what} must be an id of 1–{MAX_ID} letters, digits, '.', '_', '-'")
    return value


def _text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{what} must be a string")
    if len(value) > limit:
        raise PayloadError(f"{what} must be at most {limit} characters")
    return value


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class EventIn:
    """One progress event as an attendee reports it. ``client_id`` makes a re-send
    idempotent; ``at`` is the attendee's clock when it happened (it may be sent much later)."""

    client_id: str
    kind: EventKind
    lesson: str
    step: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)
    at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.client_id,
            "kind": self.kind,
            "lesson": self.lesson,
            "step": self.step,
            "detail": dict(self.detail),
            "at": self.at,
        }


def _detail(kind: str, value: object) -> dict[str, Any]:
    detail = dict(_object({} if value is None else value, "detail"))
    if len(json.dumps(detail, ensure_ascii=False).encode()) > MAX_DETAIL:
        raise PayloadError(f"detail must be at most {MAX_DETAIL} bytes as JSON")
    if "message" in detail:
        _text(detail["message"], "detail.message")
    if kind == "hint_used" and "count" in detail:
        count = detail["count"]
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100:
            raise PayloadError("detail.count must be an integer from 1 to 100")
    if kind == "quiz_answer":
        _slug(detail.get("question"), "detail.question")
        if "correct" in detail and not isinstance(detail["correct"], bool):
            raise PayloadError("detail.correct must be true or false")
        if "score" in detail and not (_number(detail["score"]) and 0 <= detail["score"] <= 1):
            raise PayloadError("detail.score must be a number from 0 to 1")
    return detail


def parse_event(value: object, known: Mapping[str, Sequence[str]] | None = None) -> EventIn:
    """Check one event. With ``known`` (lesson id → step ids), the lesson and step must exist
    in the curriculum the server runs."""
    obj = _object(value, "an event")
    unknown = set(obj) - {"id", "kind", "lesson", "step", "detail", "at"}
    if unknown:
        raise PayloadError(f"unknown field {sorted(unknown)[0]!r}")
    client_id = obj.get("id")
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise PayloadError("id must be 1–64 characters of letters, digits, '.', '_', ':', '-'")
    kind = obj.get("kind")
    if kind not in EVENT_KINDS:
        raise PayloadError(f"kind must be one of {', '.join(sorted(EVENT_KINDS))}")
    lesson = _slug(obj.get("lesson"), "lesson")
    step = obj.get("step")
    if kind in STEP_KINDS or step is not None:
        step = _slug(step, "step")
    if known is not None:
        if lesson not in known:
            raise PayloadError(f"unknown lesson {lesson!r}")
        if step is not None and step not in known[lesson]:
            raise PayloadError(f"lesson {lesson!r} has no step {step!r}")
    at = obj.get("at")
    if at is not None and not (_number(at) and at >= 0):
        raise PayloadError("at must be a time in seconds since the epoch")
    return EventIn(
        client_id=client_id,
        kind=kind,
        lesson=lesson,
        step=step,
        detail=_detail(kind, obj.get("detail")),
        at=float(at) if at is not None else None,
    )


def parse_events(
    payload: object, known: Mapping[str, Sequence[str]] | None = None
) -> list[EventIn]:
    """``{"events": [...]}`` → events, all valid or ``PayloadError`` naming the first bad one."""
    events = _object(payload, "the body").get("events")
    if not isinstance(events, list) or not events:
        raise PayloadError("events must be a non-empty list")
    if len(events) > MAX_BATCH:
        raise PayloadError(f"at most {MAX_BATCH} events per request, got {len(events)}")
    parsed = []
    seen: set[str] = set()
    for i, value in enumerate(events):
        try:
            event = parse_event(value, known)
        except PayloadError as exc:
            raise PayloadError(f"events[{i}]: {exc.message}", i) from None
        if event.client_id in seen:
            raise PayloadError(f"events[{i}]: id {event.client_id!r} appears twice", i)
        seen.add(event.client_id)
        parsed.append(event)
    return parsed


def parse_slug(value: object, what: str) -> str:
    return _slug(value, what)


def parse_text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    text = _text(value, what, limit).strip()
    if not text:
        raise PayloadError(f"{what} must not be empty")
    return text


def parse_targets(value: object) -> list[int] | None:
    """``to``: absent or null for everyone, else a list of attendee ids."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or len(value) > 500
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise PayloadError("to must be a non-empty list of attendee ids, or absent for everyone")
    return sorted(set(value))


def parse_object(value: object, what: str = "the body") -> Mapping[str, Any]:
    return _object(value, what)
