"""YAML parsing that remembers line numbers, so errors can point at the exact line."""

from __future__ import annotations

from typing import Any

import yaml

try:  # the C loader is several times faster; fall back when libyaml is absent
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on the build of PyYAML
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class LineDict(dict[Any, Any]):
    """A dict that knows the line it starts on and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}


class LineList(list[Any]):
    """A list that knows the line it starts on and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines = []


class DuplicateKeyError(yaml.MarkedYAMLError):
    pass


class _LineLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    pass


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                "found a key that is not a scalar",
                key_node.start_mark,
            ) from None
        if key in result:
            # The API server's YAML decoder rejects duplicate keys; silently keeping the last
            # one would hide a real mistake.
            raise DuplicateKeyError(
                "while reading a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: Any, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def parse_documents(text: str) -> list[tuple[int, Any]]:
    """Parse a multi-document YAML text into ``(start_line, value)`` pairs.

    Empty documents are kept as ``None`` so that document numbers match what the user counts.
    Raises ``yaml.YAMLError`` (with ``problem_mark``) on malformed input.
    """
    loader = _LineLoader(text)
    docs: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node guarantees a node
                break
            docs.append((node.start_mark.line + 1, loader.construct_document(node)))
    finally:
        loader.dispose()
    return docs


def line_of(value: Any, default: int | None) -> int | None:
    line = getattr(value, "line", 0)
    return line or default


def line_of_key(mapping: Any, key: Any, default: int | None) -> int | None:
    lines = getattr(mapping, "key_lines", None)
    if lines and key in lines:
        return int(lines[key])
    return default


# What parse_documents builds dumps back with yaml.safe_dump (the app's diff preview does
# this): PyYAML's safe representer looks a value's exact type up, so without these it knows
# dict and list but refuses their line-aware subclasses ("cannot represent an object").
for _dumper in {yaml.SafeDumper, getattr(yaml, "CSafeDumper", yaml.SafeDumper)}:
    _dumper.add_representer(LineDict, yaml.representer.SafeRepresenter.represent_dict)
    _dumper.add_representer(LineList, yaml.representer.SafeRepresenter.represent_list)
