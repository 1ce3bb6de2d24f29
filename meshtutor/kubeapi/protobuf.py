"""Kubernetes protobuf request bodies, read as the JSON objects they stand for.

kubectl 1.32 and later write with ``Content-Type: application/vnd.kubernetes.protobuf``
through their typed clients (``kubectl create namespace|configmap|secret|deployment …``,
``kubectl auth can-i``), and client-go falls back to JSON only for CBOR
(``rest/client.go``), so a server must read them. The body is the magic ``k8s\\x00`` and a
``runtime.Unknown`` (``k8s.io/apimachinery/pkg/runtime/generated.proto``: the object's
TypeMeta and its message); the message is decoded with the field numbers of
``protoschema`` (generated from k8s.io/api's ``generated.proto`` files).

The encoder (gogo-protobuf) writes every non-pointer field, zero or not; JSON leaves zero
values out (``omitempty``), so the zero values are left out here too, but for the pointer
fields a user sets to zero or false on purpose (``replicas: 0``…), which are kept.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from meshtutor.kubeapi.protocol import APIError
from meshtutor.kubeapi.protoschema import MESSAGES

__all__ = ["CONTENT_TYPE", "MAGIC", "decode_object"]

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_PACKAGES = {
    "": "k8s.io.api.core",
    "apps": "k8s.io.api.apps",
    "authorization.k8s.io": "k8s.io.api.authorization",
    "networking.k8s.io": "k8s.io.api.networking",
    "events.k8s.io": "k8s.io.api.events",
    "autoscaling": "k8s.io.api.autoscaling",
    "meta.k8s.io": _META,
}
# Pointer fields whose zero (or false) a user sets on purpose.
_KEPT_ZEROES = frozenset(
    {
        "replicas",
        "automountServiceAccountToken",
        "immutable",
        "terminationGracePeriodSeconds",
        "revisionHistoryLimit",
        "enableServiceLinks",
        "allowPrivilegeEscalation",
        "privileged",
        "readOnlyRootFilesystem",
        "runAsNonRoot",
        "runAsUser",
        "runAsGroup",
        "optional",
        "gracePeriodSeconds",
    }
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GO_ZERO_TIME = -62135596800  # 0001-01-01T00:00:00Z: an unset metav1.Time


class _Malformed(ValueError):
    pass


def decode_object(body: bytes) -> dict[str, Any]:
    """The object a protobuf request body carries (400 Bad Request if it is not one)."""
    if not body.startswith(MAGIC):
        raise APIError(
            400, "the body of the request could not be decoded as an object", "BadRequest"
        )
    try:
        type_meta: dict[str, Any] = {}
        raw = b""
        for number, wire, value in _fields(body[len(MAGIC) :]):
            if number == 1 and wire == 2:
                type_meta = _message(value, "k8s.io.apimachinery.pkg.runtime.TypeMeta")
            elif number == 2 and wire == 2:
                raw = value
        api_version = str(type_meta.get("apiVersion") or "")
        kind = str(type_meta.get("kind") or "")
        group, _, version = api_version.rpartition("/")
        package = _PACKAGES.get(group)
        name = f"{package}.{version}.{kind}" if package else ""
        if kind == "DeleteOptions":
            name = f"{_META}.DeleteOptions"
        if name not in MESSAGES:
            raise APIError(
                400,
                f'no kind "{kind}" is registered for version "{api_version}" in the protobuf '
                "types this server reads",
                "BadRequest",
            )
        return {"apiVersion": api_version, "kind": kind, **_message(raw, name)}
    except (_Malformed, IndexError, struct.error, UnicodeDecodeError, ValueError) as e:
        if isinstance(e, APIError):
            raise
        raise APIError(
            400, "the body of the request could not be decoded as an object", "BadRequest"
        ) from None


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data) or shift > 63:
            raise _Malformed("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message: an int, or bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            n, i = _varint(data, i)
            if i + n > len(data):
                raise _Malformed("truncated field")
            value, i = data[i : i + n], i + n
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise _Malformed(f"wire type {wire}")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, wire: int, value: Any) -> Any:
    if kind == "string":
        return bytes(value).decode()
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if kind == "bool":
        return bool(value)
    if kind in ("int32", "int64"):
        return _signed(value)
    if kind in ("uint32", "uint64"):
        return value
    if kind == "double":
        return struct.unpack("<d", value)[0]
    if kind == "float":
        return struct.unpack("<f", value)[0]
    raise _Malformed(kind)


def _numbers(kind: str, wire: int, value: Any) -> list[Any]:
    """A repeated number: one value, or a packed run of them."""
    if wire != 2 or kind in ("string", "bytes"):
        return [_scalar(kind, wire, value)]
    out = []
    i = 0
    while i < len(value):
        v, i = _varint(value, i)
        out.append(_scalar(kind, 0, v))
    return out


def _message(data: bytes, name: str) -> Any:
    """A message as its JSON value (an object, or the string / number / object the special
    types of apimachinery are written as)."""
    special = _SPECIAL.get(name)
    if special is not None:
        return special(data)
    schema = MESSAGES.get(name)
    if schema is None:
        raise _Malformed(name)
    out: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        field = schema.get(number)
        if field is None:
            continue
        json_name, kind, repeated = field
        if kind.startswith("map:"):
            _, key_kind, value_kind = kind.split(":", 2)
            key, item = _entry(value, key_kind, value_kind)
            out.setdefault(json_name, {})[key] = item
        elif kind in MESSAGES or kind in _SPECIAL:
            item = _message(value, kind)
            if repeated:
                out.setdefault(json_name, []).append(item)
            else:
                out[json_name] = item
        elif repeated:
            out.setdefault(json_name, []).extend(_numbers(kind, wire, value))
        else:
            out[json_name] = _scalar(kind, wire, value)
    return {k: v for k, v in out.items() if not _zero(k, v)}


def _entry(data: bytes, key_kind: str, value_kind: str) -> tuple[str, Any]:
    key: Any = ""
    item: Any = "" if value_kind in ("string", "bytes") else None
    for number, wire, value in _fields(data):
        if number == 1:
            key = _scalar(key_kind, wire, value)
        elif number == 2:
            item = (
                _message(value, value_kind)
                if value_kind in MESSAGES or value_kind in _SPECIAL
                else _scalar(value_kind, wire, value)
            )
    return str(key), item


def _zero(name: str, value: Any) -> bool:
    """A value the JSON of the object would leave out (``omitempty``). An empty message stays:
    it is written only when set (``emptyDir: {}``), or is a struct JSON writes as ``{}``."""
    if value is None or value == "" or value == []:
        return True
    if isinstance(value, bool | int | float) and not isinstance(value, dict) and not value:
        return name not in _KEPT_ZEROES
    return False


def _plain(data: bytes) -> dict[int, Any]:
    return {number: value for number, _, value in _fields(data)}


def _time(data: bytes, *, micro: bool = False) -> str | None:
    f = _plain(data)
    seconds, nanos = _signed(f.get(1, 0)), _signed(f.get(2, 0))
    if seconds in (0, _GO_ZERO_TIME) and not nanos:
        return None  # metav1.Time writes its zero as an empty message
    when = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    if micro:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(data: bytes) -> int | str:
    f = _plain(data)
    if f.get(1, 0) == 1:
        return bytes(f.get(3, b"")).decode()
    return _signed(f.get(2, 0))


def _json_bytes(data: bytes) -> Any:
    raw = bytes(_plain(data).get(1, b""))
    return json.loads(raw) if raw else None


def _duration(data: bytes) -> str:
    nanos = _signed(_plain(data).get(1, 0))
    seconds, rest = divmod(abs(nanos), 1_000_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{seconds}.{rest:09d}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return ("-" if nanos < 0 else "") + text


_SPECIAL: dict[str, Callable[[bytes], Any]] = {
    f"{_META}.Time": _time,
    f"{_META}.MicroTime": lambda data: _time(data, micro=True),
    f"{_META}.Duration": _duration,
    f"{_META}.FieldsV1": _json_bytes,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _json_bytes,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": lambda data: bytes(
        _plain(data).get(1, b"")
    ).decode(),
}
