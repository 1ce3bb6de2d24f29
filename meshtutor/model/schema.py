"""A small declarative schema language for manifest validation.

Kubernetes rejects unknown fields (``kubectl apply`` validates strictly by default) and Istio /
Linkerd CRDs validate enums and types through their OpenAPI schemas. We reproduce that here so a
typo such as ``mtsl:`` is caught with the file, line and field path, and a suggestion, before
anything is applied.

A schema is a tree of ``Spec`` objects; ``check`` walks a YAML node tree produced by
``meshtutor.model.yamlnodes`` and returns plain Python values (dicts, lists, scalars).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshtutor.model.yamlnodes import LineDict, LineList, line_of, line_of_key


class SchemaError(Exception):
    """Raised by ``check``; the loader turns it into a ManifestError with file and document."""

    def __init__(self, message: str, path: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line


def _join(path: str, key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


class Spec:
    """Base class: ``check`` validates ``value`` found at ``path`` (line ``line``)."""

    description = "a value"

    def check(self, value: Any, path: str, line: int | None) -> Any:
        raise NotImplementedError


@dataclass
class Str(Spec):
    description: str = "a string"
    allow_empty: bool = True

    def check(self, value: Any, path: str, line: int | None) -> Any:
        # YAML turns unquoted true/1 into bool/int; the Kubernetes API server would reject those
        # for a string field, so do we, with a hint to quote them.
        if not isinstance(value, str):
            hint = ' (quote it: "...")' if isinstance(value, bool | int | float) else ""
            if isinstance(value, dict):
                hint = ' (text that contains ": " must be quoted)'
            raise SchemaError(f"expected a string, got {_type_name(value)}{hint}", path, line)
        if not self.allow_empty and not value:
            raise SchemaError("must not be empty", path, line)
        return value


@dataclass
class Int(Spec):
    minimum: int | None = None
    maximum: int | None = None
    description: str = "an integer"

    def check(self, value: Any, path: str, line: int | None) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"expected an integer, got {_type_name(value)}", path, line)
        if self.minimum is not None and value < self.minimum:
            raise SchemaError(f"must be at least {self.minimum}, got {value}", path, line)
        if self.maximum is not None and value > self.maximum:
            raise SchemaError(f"must be at most {self.maximum}, got {value}", path, line)
        return value


@dataclass
class Port(Spec):
    """A port number 1-65535."""

    description: str = "a port number (1-65535)"

    def check(self, value: Any, path: str, line: int | None) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise SchemaError(
                f"expected a port number between 1 and 65535, got {value!r}", path, line
            )
        return value


@dataclass
class IntOrStr(Spec):
    """Kubernetes IntOrString, used for ports that may be numbers or port names."""

    description: str = "a port number or a port name"

    def check(self, value: Any, path: str, line: int | None) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise SchemaError(
                f"expected a port number or a port name, got {_type_name(value)}", path, line
            )
        if isinstance(value, int) and not 1 <= value <= 65535:
            raise SchemaError(f"port must be between 1 and 65535, got {value}", path, line)
        if isinstance(value, str) and value.isdigit():
            # The API server keeps "8080" as a *name*, which then never matches a number:
            # almost always a mistake.
            raise SchemaError(
                f'"{value}" is a string; write the port number without quotes', path, line
            )
        return value


@dataclass
class Bool(Spec):
    description: str = "true or false"

    def check(self, value: Any, path: str, line: int | None) -> Any:
        if not isinstance(value, bool):
            raise SchemaError(f"expected true or false, got {value!r}", path, line)
        return value


@dataclass
class Enum(Spec):
    values: tuple[str, ...] = ()
    description: str = "one of a fixed set of values"

    def check(self, value: Any, path: str, line: int | None) -> Any:
        if value not in self.values:
            by_case = [v for v in self.values if v.lower() == str(value).lower()]
            close = by_case or difflib.get_close_matches(str(value), self.values, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise SchemaError(
                f"{path.rsplit('.', 1)[-1]} must be one of {', '.join(self.values)}; "
                f"got {value!r}{hint}",
                path,
                line,
            )
        return value


@dataclass
class Anything(Spec):
    """A subtree meshtutor does not interpret (resources, probes, volumes...)."""

    description: str = "any value"

    def check(self, value: Any, path: str, line: int | None) -> Any:
        return value


@dataclass
class ListOf(Spec):
    item: Spec = field(default_factory=Anything)
    min_items: int = 0

    def check(self, value: Any, path: str, line: int | None) -> Any:
        if value is None and self.min_items:
            # ``containers: null`` passed as an empty list, then IndexError downstream.
            raise SchemaError(f"needs at least {self.min_items} item(s), got null", path, line)
        if value is None:
            return []
        if not isinstance(value, list):
            raise SchemaError(f"expected a list, got {_type_name(value)}", path, line)
        if len(value) < self.min_items:
            raise SchemaError(f"needs at least {self.min_items} item(s)", path, line)
        out = []
        for index, item in enumerate(value):
            item_line = value.item_lines[index] if isinstance(value, LineList) else line
            out.append(self.item.check(item, _join(path, index), item_line))
        return out


@dataclass
class MapOf(Spec):
    """A mapping with free keys (labels, annotations, portLevelMtls)."""

    value: Spec = field(default_factory=Str)
    key: Callable[[Any, str, int | None], Any] | None = None

    def check(self, value: Any, path: str, line: int | None) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise SchemaError(f"expected a mapping, got {_type_name(value)}", path, line)
        out = {}
        for key, item in value.items():
            key_line = line_of_key(value, key, line)
            sub = _join(path, key)
            checked_key = self.key(key, sub, key_line) if self.key else key
            if self.key is None and not isinstance(key, str):
                raise SchemaError(f"keys must be strings, got {key!r}", sub, key_line)
            out[checked_key] = self.value.check(item, sub, key_line)
        return out


@dataclass
class Obj(Spec):
    """A mapping with known fields; unknown fields are rejected, as kubectl does."""

    fields: Mapping[str, Spec] = field(default_factory=dict)
    required: Iterable[str] = ()
    what: str = ""
    extra: Callable[[dict[str, Any], str, int | None], None] | None = None
    #: accept fields not listed (kept unchecked), for configs with many fields we never read
    open: bool = False

    def check(self, value: Any, path: str, line: int | None) -> Any:
        if value is None:
            value = LineDict()
        if not isinstance(value, dict):
            raise SchemaError(f"expected a mapping, got {_type_name(value)}", path, line)
        out: dict[str, Any] = {}
        for key, item in value.items():
            key_line = line_of_key(value, key, line)
            spec = self.fields.get(key) if isinstance(key, str) else None
            if spec is None and self.open:
                out[key] = item
                continue
            if spec is None:
                known = sorted(self.fields)
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f'; did you mean "{close[0]}"?' if close else ""
                where = f" in {self.what}" if self.what else ""
                raise SchemaError(
                    f"unknown field {key!r}{where}{hint} (known fields: {', '.join(known)})",
                    _join(path, key),
                    key_line,
                )
            out[key] = spec.check(item, _join(path, key), key_line)
        for name in self.required:
            if out.get(name) is None:
                raise SchemaError(f"required field {name!r} is missing", _join(path, name), line)
        if self.extra is not None:
            self.extra(out, path, line_of(value, line))
        return out


def port_key(key: Any, path: str, line: int | None) -> int:
    """Keys of port maps (``portLevelMtls``) may be written as numbers or numeric strings."""
    if isinstance(key, int) and not isinstance(key, bool) and 1 <= key <= 65535:
        return key
    if isinstance(key, str) and key.isdigit() and 1 <= int(key) <= 65535:
        return int(key)
    raise SchemaError(f"expected a port number (1-65535) as key, got {key!r}", path, line)


# Reusable Kubernetes building blocks.

LABELS = MapOf(Str())

LABEL_SELECTOR = Obj(
    {
        "matchLabels": LABELS,
        "matchExpressions": ListOf(
            Obj(
                {
                    "key": Str(allow_empty=False),
                    "operator": Enum(("In", "NotIn", "Exists", "DoesNotExist")),
                    "values": ListOf(Str()),
                },
                required=("key", "operator"),
                what="a label selector requirement",
            )
        ),
    },
    what="a label selector",
)

METADATA = Obj(
    {
        "name": Str(allow_empty=False),
        "generateName": Str(),
        "namespace": Str(allow_empty=False),
        "labels": LABELS,
        "annotations": LABELS,
        "uid": Anything(),
        "resourceVersion": Anything(),
        "generation": Anything(),
        "creationTimestamp": Anything(),
        "deletionTimestamp": Anything(),
        "deletionGracePeriodSeconds": Anything(),
        "ownerReferences": Anything(),
        "finalizers": Anything(),
        "managedFields": Anything(),
        "selfLink": Anything(),
    },
    required=("name",),
    what="metadata",
)
