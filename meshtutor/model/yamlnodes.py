"""YAML parsing that remembers line numbers, so errors can point at the exact line.

Every YAML meshtutor reads (manifests, lessons, probe files, the mesh config inside a
ConfigMap, kubeconfigs) goes through :func:`parse_documents`, which also refuses what no real
manifest contains and what would take a learner's machine down later on:

* aliases that expand to more than :data:`MAX_ALIAS_NODES` nodes in one file ("billion
  laughs": 385 bytes of nested aliases loaded fine, then ``json.dumps`` on the kube apply path
  built 3.7 GB); PyYAML shares aliased objects, so the blow-up only comes when something
  walks or serialises the result, far from the file;
* nesting deeper than :data:`MAX_DEPTH` levels (PyYAML's constructor recurses per level);
* integers of more than :data:`MAX_INT_DIGITS` digits (Python refuses to convert more than
  4,300 digits, and nothing in Kubernetes holds more than 64 bits);
* values that do not fit an explicit tag (``!!int abc``), which PyYAML reports as
  ValueError, KeyError or AttributeError instead of a YAML error.

Each refusal is a :class:`yaml.MarkedYAMLError` with the line of the offending alias or value,
so callers report it like any syntax error; :func:`yaml_problem` renders one line for both.
"""

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
    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # PyYAML's scalar constructors let these through for values that do not fit
            # their tag (``!!int abc``, ``2001-02-30``); the innermost node is the culprit.
            tag = str(node.tag).rsplit(":", 1)[-1]
            what = repr(str(node.value)[:40]) if isinstance(node, yaml.ScalarNode) else "this"
            detail = f" ({exc})" if isinstance(exc, ValueError | OverflowError) else ""
            raise YAMLLimitError(f"{what} is not a valid {tag}{detail}", node.start_mark) from None


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


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    digits = sum(ch.isdigit() for ch in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise YAMLLimitError(
            f"this number has {digits:,} digits; Kubernetes numbers are 64-bit integers "
            "(at most 19 digits)",
            node.start_mark,
        )
    value: int = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    return value


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


#: Nodes that aliases may add to one file. A hand-written manifest uses a few aliases, if any
#: (meshtutor's own manifests and lessons use none); the ~400-byte bomb of issue 13 expands
#: to 435 million nodes.
MAX_ALIAS_NODES = 10_000
#: Nesting levels of one document: ten times the depth of the deepest field a learner writes
#: in a Deployment (spec.template.spec.containers[].env[].valueFrom.secretKeyRef.name).
MAX_DEPTH = 100
#: Digits of an integer. Kubernetes integer fields are int32 or int64 (at most 19 digits);
#: up to 40 load, so that the schema can say which field is out of range.
MAX_INT_DIGITS = 40


class YAMLLimitError(yaml.MarkedYAMLError):
    """A document meshtutor refuses although it may be valid YAML; ``problem`` says why."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _Measure:
    """Sizes of the node graph the composer built, where an alias is a second edge to the
    same node: ``size`` counts the nodes of a collection's expanded tree, ``height`` its
    levels, and ``aliased`` the nodes all aliases met so far add when expanded."""

    def __init__(self) -> None:
        self.aliased = 0
        self.next_document()

    def next_document(self) -> None:
        """Forget the last document's nodes (keeping ``aliased``): the memo is keyed by
        ``id()``, and a freed node's id may come back for a node of the next document."""
        self.size: dict[int, int] = {}
        self.height: dict[int, int] = {}
        self.scalars: set[int] = set()

    def walk(self, root: yaml.Node) -> None:
        """Measure ``root``, adding its aliases' expansion to ``aliased``.

        Raises ``YAMLLimitError`` for nesting deeper than ``MAX_DEPTH`` (so the recursion
        here stays shallow), and ``_Recursive`` for an alias to a collection that contains it.
        """
        size, height, scalars = self.size, self.height, self.scalars
        open_ids: set[int] = set()
        scalar = yaml.ScalarNode

        def visit(node: yaml.Node, depth: int) -> None:
            key = id(node)
            if key in size:
                self.aliased += size[key]
                if depth + height[key] - 1 > MAX_DEPTH:
                    raise _too_deep(node)
                return
            if key in open_ids:
                raise _Recursive()
            if depth > MAX_DEPTH:
                raise _too_deep(node)
            value = node.value
            if isinstance(node, yaml.MappingNode):
                value = [item for pair in value for item in pair]
            open_ids.add(key)
            total, tallest = 1, 0
            for child in value:
                # Scalars are most nodes: count them without a call.
                if type(child) is scalar:
                    if depth + 1 > MAX_DEPTH:
                        raise _too_deep(child)
                    if id(child) in scalars:
                        self.aliased += 1
                    scalars.add(id(child))
                    total += 1
                    tallest = tallest or 1
                    continue
                visit(child, depth + 1)
                total += size[id(child)]
                tallest = max(tallest, height[id(child)])
            open_ids.discard(key)
            size[key], height[key] = total, tallest + 1

        if not isinstance(root, scalar):
            visit(root, 1)

    def size_of(self, node: yaml.Node) -> int:
        """The expanded size of a complete node (for the locator)."""
        if isinstance(node, yaml.ScalarNode):
            return 1
        if id(node) not in self.size:
            saved = self.aliased
            self.walk(node)
            self.aliased = saved
        return self.size[id(node)]


class _Recursive(Exception):
    pass


def _too_deep(node: yaml.Node | None) -> YAMLLimitError:
    return YAMLLimitError(
        f"this is nested more than {MAX_DEPTH} levels deep; no manifest needs that many",
        node.start_mark if node is not None else None,
    )


def _alias_problem(anchor: str, column: int) -> str:
    return (
        f"the alias *{anchor} at column {column} makes the aliases of this file expand to "
        f"more than {MAX_ALIAS_NODES:,} nodes (a 'billion laughs'); write the values out or "
        "use fewer aliases"
    )


class _AliasLocator(yaml.SafeLoader):
    """The pure-Python composer, run only after a file was refused, to find the alias that
    crossed the bound (libyaml's composer keeps no position for an alias)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.measure = _Measure()
        self.expanded = 0
        self.open_anchors: list[str] = []

    def compose_document(self) -> Any:
        self.measure.next_document()
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            column = event.start_mark.column + 1
            if event.anchor in self.open_anchors:
                raise YAMLLimitError(
                    f"the alias *{event.anchor} at column {column} refers to the collection "
                    "that contains it, which would repeat forever",
                    event.start_mark,
                )
            if target is not None:
                self.expanded += self.measure.size_of(target)
                if self.expanded > MAX_ALIAS_NODES:
                    raise YAMLLimitError(_alias_problem(event.anchor, column), event.start_mark)
            return super().compose_node(parent, index)
        anchor = self.peek_event().anchor  # type: ignore[no-untyped-call]
        if anchor is None:
            return super().compose_node(parent, index)
        self.open_anchors.append(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.open_anchors.pop()


def _locate_alias_problem(text: str) -> YAMLLimitError:
    locator = _AliasLocator(text)
    try:
        while locator.check_node():
            locator.get_node()
    except YAMLLimitError as exc:
        return exc
    except RecursionError:  # pragma: no cover - the pure-Python composer recurses per level
        pass
    finally:
        locator.dispose()
    # pragma: no cover - both composers build the same graph, so the locator finds the alias
    return YAMLLimitError(
        f"the aliases of this file expand to more than {MAX_ALIAS_NODES:,} nodes", None
    )


def parse_documents(text: str) -> list[tuple[int, Any]]:
    """Parse a multi-document YAML text into ``(start_line, value)`` pairs.

    Empty documents are kept as ``None`` so that document numbers match what the user counts.
    Raises ``yaml.YAMLError`` (with ``problem_mark``) on malformed input, and
    ``YAMLLimitError`` beyond the bounds above.
    """
    loader = _LineLoader(text)
    docs: list[tuple[int, Any]] = []
    measure = _Measure()
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node guarantees a node
                break
            measure.next_document()
            try:
                measure.walk(node)
            except _Recursive:
                raise _locate_alias_problem(text) from None
            if measure.aliased > MAX_ALIAS_NODES:
                raise _locate_alias_problem(text)
            docs.append((node.start_mark.line + 1, loader.construct_document(node)))
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps far from the limit
        # Only without libyaml: the pure-Python composer recurses per level before the
        # walk above can count them.
        raise _too_deep(None) from None
    finally:
        loader.dispose()
    return docs


def load_single(text: str) -> Any:
    """The one document of a plain YAML text (a kubeconfig, a mesh config), bounded as
    :func:`parse_documents` is; ``None`` when empty. Raises ``yaml.YAMLError``."""
    docs = parse_documents(text)
    if len(docs) > 1:
        second = docs[1][0]
        raise YAMLLimitError(
            f"expected one YAML document, found {len(docs)}",
            yaml.Mark("<input>", 0, second - 1, 0, None, None),  # type: ignore[arg-type]
        )
    return docs[0][1] if docs else None


def yaml_problem(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """``(line, message)`` for a YAML error, the message one line saying what is wrong."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, YAMLLimitError):
        return line, problem
    column = f", column {mark.column + 1}" if mark is not None else ""
    return line, f"this is not valid YAML: {problem}{column}"


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
