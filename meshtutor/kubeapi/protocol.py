"""The Kubernetes API protocol as pure functions: no store, no clock of its own, no I/O.

- ``APIError``: a failure answered as a ``Status`` body, with the code, reason and message a
  real kube-apiserver gives (``k8s.io/apimachinery/pkg/api/errors/errors.go``);
- patches: JSON merge patch (RFC 7386), strategic merge patch, JSON patch (RFC 6902);
- label and field selectors;
- object metadata validation (names, labels, annotations);
- discovery documents: ``/version``, the legacy ``APIVersions`` / ``APIGroupList`` /
  ``APIResourceList`` and the aggregated ``apidiscovery.k8s.io/v2`` (and ``v2beta1``) lists;
- managed fields and server-side apply (structured-merge-diff's field sets and merge);
- ``Table`` negotiation, the default ``Table`` and the AGE of an object.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meshtutor.kubeapi.resources import DEDUCED, APIGroup, ResourceType, Schema

__all__ = [
    "AGGREGATED_VERSIONS",
    "NO_RESOURCE",
    "REASONS",
    "APIError",
    "aggregated_discovery",
    "aggregated_version",
    "api_versions",
    "compact",
    "details",
    "field_selector",
    "forbidden_message",
    "group_entry",
    "group_list",
    "gv",
    "json_patch",
    "label_selector",
    "merge_patch",
    "not_found",
    "resource_list",
    "status_body",
    "strategic_merge_patch",
    "timestamp",
    "validate_metadata",
    "version_info",
]

# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------

REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

NO_RESOURCE = "the server could not find the requested resource"
"""The message of a 404 for a path no resource serves (``NewNotFound`` of no resource)."""

_NO_DETAILS: dict[str, Any] = {}


class APIError(Exception):
    """A request failed: answered as a ``Status`` with ``code``, ``reason`` and ``message``.

    Not a ``MeshtutorError``: it is a protocol answer that ``APICore.handle`` turns into a
    response, never a message of meshtutor's own to a user. ``details=None`` leaves the
    ``details`` field out, as errors built without details do (``NewResourceExpired``)."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = _NO_DETAILS,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else REASONS.get(code, "")
        self.details = dict(details) if details is not None else None
        self.headers = dict(headers or {})

    def status(self) -> dict[str, Any]:
        """The ``Status`` body."""
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = _NO_DETAILS
) -> dict[str, Any]:
    """A failure ``Status``, its fields in the order a real server writes them."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": dict(details) if details is not None else None,
        "code": code,
    }
    if not reason:
        del body["reason"]
    if details is None:
        del body["details"]
    return body


def details(rt: ResourceType, name: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``StatusDetails``: ``kind`` is the resource's plural, as the server writes it."""
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.plural
    d.update(extra)
    return d


def not_found(rt: ResourceType, name: str) -> APIError:
    """``pods "x" not found`` (``errors.NewNotFound``)."""
    return APIError(404, f'{rt.qualified} "{name}" not found', "NotFound", details(rt, name))


def forbidden_message(
    user: str, verb: str, rt: ResourceType, namespace: str | None, name: str | None, sub: str | None
) -> str:
    """What RBAC's denial says (``pkg/endpoints/handlers/responsewriters/errors.go``
    ``forbiddenMessage`` with the authorizer's reason left out)."""
    what = f'{rt.qualified} "{name}"' if name else rt.qualified
    res = f"{rt.plural}/{sub}" if sub else rt.plural
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return (
        f'{what} is forbidden: User "{user}" cannot {verb} resource "{res}" '
        f'in API group "{rt.group}"{scope}'
    )


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def timestamp(when: datetime | None = None) -> str:
    """RFC 3339 in UTC to the second, as ``metav1.Time`` is written."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gv(group: str, version: str) -> str:
    """``apps/v1``, or ``v1`` for the core group."""
    return f"{group}/{version}" if group else version


def compact(obj: Any) -> bytes:
    """JSON as a real server writes it: no spaces."""
    return json.dumps(obj, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, schema: Schema = DEDUCED) -> Any:
    """A strategic merge patch (``k8s.io/apimachinery/pkg/util/strategicpatch``) of
    ``target`` by ``patch``, lists merged by ``schema``'s ``patchMergeKey`` (``containers``
    by name, ``ports`` by containerPort, ``ownerReferences`` by uid...), sets merged as
    unions (``finalizers``), other lists replaced. The directives kubectl sends are honoured:
    ``$patch: replace | delete | merge``, ``$retainKeys``, ``$deleteFromPrimitiveList/<f>``
    and ``$setElementOrder/<f>``."""
    if not isinstance(patch, dict):
        raise APIError(400, "strategic merge patch must be an object", "BadRequest")
    merged = _smp_map(target if isinstance(target, dict) else {}, patch, schema)
    return {} if merged is None else merged


def _smp_map(target: dict[str, Any], patch: dict[str, Any], schema: Schema) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return _without_directives(patch)
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise APIError(400, f"Unknown patch type: {directive} in map: {patch}", "BadRequest")
    result = dict(target)
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list):
            raise APIError(400, "invalid patch format of retainKeys", "BadRequest")
        result = {k: v for k, v in result.items() if k in retain}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.partition("/")[2]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = [x for x in result[name] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        sub = schema.field(key)
        current = result.get(key)
        if isinstance(value, dict):
            merged = _smp_map(current if isinstance(current, dict) else {}, value, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(current if isinstance(current, list) else [], value, sub)
        else:
            result[key] = value
    for key, order in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(order, list):
            name = key.partition("/")[2]
            if isinstance(result.get(name), list):
                result[name] = _in_order(result[name], order, schema.field(name).merge_key)
    return result


def _smp_list(target: list[Any], patch: list[Any], schema: Schema) -> list[Any]:
    key = schema.merge_key
    if schema.shape == "set":
        return [*target, *(copy.deepcopy(x) for x in patch if x not in target)]
    if key is None:
        return _without_directives(patch)  # type: ignore[no-any-return]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [
            _without_directives(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)
        ]
    result = [copy.deepcopy(x) for x in target]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise APIError(
                400, f"map: {item} does not contain declared merge key: {key}", "BadRequest"
            )
        at = [i for i, x in enumerate(result) if isinstance(x, dict) and x.get(key) == item[key]]
        if item.get("$patch") == "delete":
            result = [x for i, x in enumerate(result) if i not in at]
        elif at:
            merged = _smp_map(result[at[0]], item, schema.element())
            if merged is None:
                del result[at[0]]
            else:
                result[at[0]] = merged
        else:
            result.append(_without_directives(item))
    return result


def _in_order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """``items`` in the order of ``$setElementOrder`` (elements it does not name keep their
    relative order, after the named ones)."""

    def ident(x: Any) -> Any:
        return json.dumps(x.get(key) if key and isinstance(x, dict) else x, sort_keys=True)

    rank = {ident(x): i for i, x in enumerate(order)}
    return sorted(items, key=lambda x: rank.get(ident(x), len(rank)))


def _without_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_directives(v)
            for k, v in value.items()
            if not (
                k.startswith("$patch")
                or k.startswith("$retainKeys")
                or k.startswith("$setElementOrder/")
                or k.startswith("$deleteFromPrimitiveList/")
            )
        }
    if isinstance(value, list):
        return [_without_directives(v) for v in value]
    return value


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise APIError(422, f"invalid JSON pointer {path!r}", "Invalid")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test (what clients send in practice)."""
    if not isinstance(ops, list):
        raise APIError(400, "json patch must be a list of operations", "BadRequest")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise APIError(422, f"invalid JSON patch operation {op!r}", "Invalid")
        parts = _pointer(op["path"])
        if not parts:
            raise APIError(422, "the root of a document cannot be patched here", "Invalid")
        parent: Any = doc
        try:
            for p in parts[:-1]:
                parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise APIError(
                422,
                f"jsonpatch {op['op']} operation does not apply: doc is missing path: {op['path']}",
                "Invalid",
            ) from e
        last = parts[-1]
        kind = op["op"]
        try:
            if kind == "add":
                if isinstance(parent, list):
                    parent.insert(
                        len(parent) if last == "-" else int(last), copy.deepcopy(op["value"])
                    )
                else:
                    parent[last] = copy.deepcopy(op["value"])
            elif kind == "replace":
                if isinstance(parent, list):
                    parent[int(last)] = copy.deepcopy(op["value"])
                else:
                    if last not in parent:
                        raise KeyError(last)
                    parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                if isinstance(parent, list):
                    del parent[int(last)]
                else:
                    del parent[last]
            elif kind == "test":
                current = parent[int(last)] if isinstance(parent, list) else parent[last]
                if current != op.get("value"):
                    raise APIError(422, f"testing value {op['path']} failed", "Invalid")
            else:
                raise APIError(422, f"Unexpected kind: {kind}", "Invalid")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise APIError(
                422,
                f"jsonpatch {kind} operation does not apply: doc is missing path: {op['path']}",
                "Invalid",
            ) from e
    return doc


# --------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------


def _split_selector(text: str) -> list[str]:
    terms: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """Parse a label selector: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``,
    ``a notin (x,y)``, joined by commas."""
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    for term in _split_selector(text):
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term)
        if m:
            key, op, raw = m.group(1), m.group(2), m.group(3)
            values = {v.strip() for v in raw.split(",") if v.strip()}
            checks.append(_label_in(key, values, op == "in"))
            continue
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)", term)
        if m:
            key, op, value = m.group(1), m.group(2), m.group(3)
            checks.append(_label_in(key, {value}, op != "!="))
            continue
        m = re.fullmatch(r"(!?)([A-Za-z0-9][-A-Za-z0-9_./]*)", term)
        if m:
            neg, key = m.group(1), m.group(2)
            checks.append(_label_exists(key, not neg))
            continue
        raise APIError(
            400,
            f"unable to parse requirement: found '{term}', expected: in, notin, =, ==, !=, gt, lt",
            "BadRequest",
        )
    return lambda labels: all(c(labels) for c in checks)


def field_selector(
    text: str, rt: ResourceType | None = None, *, custom: bool = False
) -> Callable[[Mapping[str, Any]], bool]:
    """Parse a field selector (``metadata.name=x``, ``status.phase!=Running``, ...) for
    ``rt``: a field its API does not select on is a 400 with the words of its field label
    conversion (``field label not supported: …`` for the kinds that register one and for
    custom resources, runtime's ``DefaultMetaV1FieldSelectorConversion`` for the others)."""
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for term in _split_selector(text):
        m = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)", term)
        if not m:
            raise APIError(
                400, f"invalid selector: '{text}'; can't understand '{term}'", "BadRequest"
            )
        label = m.group(1)
        if rt is not None:
            allowed = rt.field_labels or ("metadata.name", "metadata.namespace")
            if label not in allowed:
                if rt.field_labels is not None or custom:
                    message = f"field label not supported: {label}"
                else:
                    message = f'"{label}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                raise APIError(400, message, "BadRequest")
        checks.append(_field_is(label.split("."), m.group(3), m.group(2) != "!="))
    return lambda obj: all(c(obj) for c in checks)


def selector_string(selector: Any) -> str:
    """A LabelSelector as its string (``LabelSelectorAsSelector(...).String()``): requirements
    sorted by key, ``app=web,tier in (a,b)``."""
    if not isinstance(selector, Mapping):
        return ""
    terms: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        terms.append((str(key), f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, Mapping):
            continue
        key, op = str(expr.get("key", "")), expr.get("operator")
        values = ",".join(sorted(str(v) for v in expr.get("values") or []))
        if op == "In":
            terms.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            terms.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            terms.append((key, key))
        elif op == "DoesNotExist":
            terms.append((key, f"!{key}"))
    return ",".join(t for _, t in sorted(terms))


def _label_in(key: str, values: set[str], inside: bool) -> Callable[[Mapping[str, str]], bool]:
    return lambda labels: (labels.get(key) in values) is inside


def _label_exists(key: str, present: bool) -> Callable[[Mapping[str, str]], bool]:
    return lambda labels: (key in labels) is present


def _field_is(path: list[str], value: str, equal: bool) -> Callable[[Mapping[str, Any]], bool]:
    def check(obj: Mapping[str, Any]) -> bool:
        cur: Any = obj
        for p in path:
            cur = cur.get(p) if isinstance(cur, dict) else None
        return (("" if cur is None else str(cur)) == value) is equal

    return check


# --------------------------------------------------------------------------------------
# Validation of object metadata
# --------------------------------------------------------------------------------------

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def _label_problem(key: str, value: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return f"Invalid value: {key!r}: prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"Invalid value: {key!r}: name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    if value and (len(value) > 63 or not _QUALIFIED_NAME.fullmatch(value)):
        return (
            f'Invalid value: "{value}": a valid label must be an empty string or consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return None


def validate_metadata(rt: ResourceType, name: str, meta: Mapping[str, Any]) -> None:
    """422 Invalid, as the server's ``ValidateObjectMeta`` words it, for a bad name, label or
    annotation."""
    causes: list[dict[str, str]] = []
    pattern = _DNS1123_LABEL if rt.plural in ("namespaces", "services") else _DNS1123_SUBDOMAIN
    limit = 63 if rt.plural in ("namespaces", "services") else 253
    if not pattern.fullmatch(name) or len(name) > limit:
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": f'Invalid value: "{name}": a lowercase RFC 1123 '
                + ("label" if limit == 63 else "subdomain")
                + " must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                "field": "metadata.name",
            }
        )
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": "labels must be a map",
                "field": "metadata.labels",
            }
        )
    else:
        for k, v in labels.items():
            if not isinstance(v, str):
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {v!r}: label values must be strings",
                        "field": "metadata.labels",
                    }
                )
                continue
            problem = _label_problem(str(k), v)
            if problem:
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "message": problem,
                        "field": "metadata.labels",
                    }
                )
    annotations = meta.get("annotations") or {}
    if isinstance(annotations, dict):
        for v in annotations.values():
            if not isinstance(v, str):
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {v!r}: annotation values must be strings",
                        "field": "metadata.annotations",
                    }
                )
    if causes:
        summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        raise APIError(
            422,
            f'{rt.qualified_kind} "{name}" is invalid: {summary}',
            "Invalid",
            {
                "name": name,
                **({"group": rt.group} if rt.group else {}),
                "kind": rt.kind,
                "causes": causes,
            },
        )


# --------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------

AGGREGATED_VERSIONS: tuple[str, ...] = ("v2", "v2beta1")
"""The ``apidiscovery.k8s.io`` versions served (v2 since 1.30, v2beta1 1.26–1.32)."""


def version_info(git_version: str) -> dict[str, Any]:
    """``/version``."""
    m = re.match(r"v(\d+)\.(\d+)", git_version)
    major, minor = (m.group(1), m.group(2)) if m else ("1", "31")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2024-08-13T07:28:49Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions() -> dict[str, Any]:
    """``/api``, legacy."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "172.18.0.2:6443"}
        ],
    }


def group_entry(group: APIGroup) -> dict[str, Any]:
    """One group of an ``APIGroupList`` (and the body of ``/apis/<group>``)."""
    versions = [{"groupVersion": f"{group.name}/{v}", "version": v} for v in group.versions]
    return {"name": group.name, "versions": versions, "preferredVersion": versions[0]}


def group_list(groups: Iterable[APIGroup], builtin_order: Iterable[str] = ()) -> dict[str, Any]:
    """``/apis``, legacy: built-in groups in ``builtin_order``, then custom ones by name."""
    order = {name: i for i, name in enumerate(builtin_order)}
    listed = sorted(
        (g for g in groups if g.name),
        key=lambda g: (g.custom, order.get(g.name, len(order)), g.name),
    )
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group_entry(g) for g in listed],
    }


def resource_list(group: APIGroup, version: str) -> dict[str, Any]:
    """``/api/v1``, ``/apis/<group>/<version>``: an ``APIResourceList``."""
    resources: list[dict[str, Any]] = []
    for rt in group.resources:
        if version not in rt.versions:
            continue
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            s: dict[str, Any] = {
                "name": f"{rt.plural}/{sub.name}",
                "singularName": "",
                "namespaced": rt.namespaced,
            }
            if sub.group is not None:
                s["group"] = sub.group
            if sub.version is not None:
                s["version"] = sub.version
            s["kind"] = sub.kind
            s["verbs"] = list(sub.verbs)
            resources.append(s)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv(group.name, version),
        "resources": resources,
    }


def aggregated_version(accept: str) -> str | None:
    """The ``apidiscovery.k8s.io`` version an ``Accept`` header asks for, best first
    (``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...``), or None."""
    for media in (m.strip() for m in accept.split(",")):
        params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
        if (
            media.split(";")[0].strip() == "application/json"
            and params.get("g") == "apidiscovery.k8s.io"
            and params.get("as") == "APIGroupDiscoveryList"
            and params.get("v") in AGGREGATED_VERSIONS
        ):
            return params["v"]
    return None


def aggregated_discovery(groups: Iterable[APIGroup], v: str, *, sort: bool) -> dict[str, Any]:
    """An ``APIGroupDiscoveryList`` of ``groups`` (sorted, built-in first, if ``sort``)."""
    listed = list(groups)
    if sort:
        listed.sort(key=lambda g: (g.custom, g.name))
    items: list[dict[str, Any]] = []
    for g in listed:
        versions = []
        for version in g.versions:
            resources = []
            for rt in g.resources:
                if version not in rt.versions:
                    continue
                r: dict[str, Any] = {
                    "resource": rt.plural,
                    "responseKind": {"group": rt.group, "version": version, "kind": rt.kind},
                    "scope": "Namespaced" if rt.namespaced else "Cluster",
                    "singularResource": rt.singular,
                    "verbs": list(rt.verbs),
                }
                if rt.short_names:
                    r["shortNames"] = list(rt.short_names)
                if rt.categories:
                    r["categories"] = list(rt.categories)
                if rt.subresources:
                    r["subresources"] = [
                        {
                            "subresource": s.name,
                            "responseKind": {
                                "group": s.group if s.group is not None else rt.group,
                                "version": s.version or version,
                                "kind": s.kind,
                            },
                            "verbs": list(s.verbs),
                        }
                        for s in rt.subresources
                    ]
                resources.append(r)
            versions.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": g.name} if g.name else {}, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{v}",
        "metadata": {},
        "items": items,
    }


# --------------------------------------------------------------------------------------
# Managed fields and server-side apply (structured-merge-diff, as the apiserver runs it)
# --------------------------------------------------------------------------------------

Path = tuple[str, ...]
"""A field path as ``fieldsV1`` spells its elements: ``("f:spec", "f:containers",
'k:{"name":"web"}', "f:image")``; ``v:<json>`` names a set's value."""

_MEMBER = object()  # the value of an owned map, list element or set: compared by presence only
_SYSTEM_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    }
)


@dataclass(frozen=True)
class ManagerKey:
    """Who owns a set of fields: a manager, its operation and the subresource it wrote."""

    manager: str
    operation: str  # "Apply" | "Update"
    subresource: str = ""


@dataclass(frozen=True)
class Managed:
    """One ``managedFields`` entry: the fields a manager owns."""

    api_version: str
    time: str
    fields: frozenset[Path]


Owners = dict[ManagerKey, Managed]


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _shape(schema: Schema, value: Any) -> str:
    shape = schema.shape
    if shape == "deduced":
        return "map" if isinstance(value, dict) else "atomic"
    if shape in ("struct", "map") and not isinstance(value, dict):
        return "atomic"
    if shape in ("list", "set") and not isinstance(value, list):
        return "atomic"
    if shape == "list" and not all(
        isinstance(x, dict) and any(k in x for k in schema.keys) for x in value
    ):
        return "atomic"  # elements without their keys cannot be told apart: owned as a whole
    if shape == "set" and not all(
        x is None or isinstance(x, str | int | float | bool) for x in value
    ):
        return "atomic"
    return shape


def _element_key(schema: Schema, element: Mapping[str, Any]) -> str:
    return "k:" + _json_key({k: element[k] for k in schema.keys if k in element})


def _walk(value: Any, schema: Schema, path: Path, out: dict[Path, Any]) -> None:
    shape = _shape(schema, value)
    if shape == "atomic" or (shape == "struct" and not value):
        out[path] = copy.deepcopy(value)
        return
    if shape in ("struct", "map"):
        if shape == "map":
            out[path] = _MEMBER
        for k, v in value.items():
            _walk(v, schema.field(k), (*path, f"f:{k}"), out)
        return
    if shape == "set":
        out[path] = _MEMBER
        for v in value:
            out[(*path, "v:" + _json_key(v))] = _MEMBER
        return
    # An associative list is not owned itself, only its elements.
    item = schema.element()
    for element in value:
        at = (*path, _element_key(schema, element))
        out[at] = _MEMBER
        for k, v in element.items():
            _walk(v, item.field(k), (*at, f"f:{k}"), out)


def _managed_part(obj: Mapping[str, Any] | None, subresource: str) -> dict[str, Any]:
    """The part of an object whose fields are owned: without apiVersion, kind and the
    metadata the server sets; only ``status`` for a write to the status subresource, and
    without it otherwise (the strategies reset it)."""
    if not obj:
        return {}
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in _SYSTEM_METADATA}
        if meta:
            out["metadata"] = meta
        else:
            del out["metadata"]
    return out


def field_values(
    obj: Mapping[str, Any] | None, schema: Schema, subresource: str = ""
) -> dict[Path, Any]:
    """Every owned path of ``obj`` with its value (owned maps, list elements and set values
    compare by presence only)."""
    out: dict[Path, Any] = {}
    for k, v in _managed_part(obj, subresource).items():
        _walk(v, schema.field(k), (f"f:{k}",), out)
    return out


def _compare(old: dict[Path, Any], new: dict[Path, Any]) -> tuple[set[Path], set[Path], set[Path]]:
    """(added, modified, removed), as ``typed.Compare``."""
    added = set(new) - set(old)
    removed = set(old) - set(new)
    modified = {p for p in set(old) & set(new) if old[p] is not _MEMBER and old[p] != new[p]}
    return added, modified, removed


def path_string(path: Path) -> str:
    """``.spec.template.spec.containers[name="web"].image``, as fieldpath.Path.String()."""
    out = ""
    for pe in path:
        kind, _, rest = pe.partition(":")
        if kind == "f":
            out += f".{rest}"
        elif kind == "k":
            keys = json.loads(rest)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif kind == "v":
            out += f"[={rest}]"
        else:
            out += f"[{rest}]"
    return out


def fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """The ``fieldsV1`` trie of a set of paths (``"."`` marks an owned node with children)."""
    root: dict[str, Any] = {}
    members: set[Path] = set()
    for path in paths:
        members.add(path)
        node = root
        for pe in path:
            node = node.setdefault(pe, {})

    def mark(node: dict[str, Any], at: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if node and at in members:
            out["."] = {}
        for pe in sorted(node):
            out[pe] = mark(node[pe], (*at, pe))
        return out

    return mark(root, ())


def paths_of_fields_v1(fields: Mapping[str, Any], at: Path = ()) -> set[Path]:
    """The paths of a ``fieldsV1`` trie."""
    paths: set[Path] = set()
    for pe, inner in fields.items():
        if pe == ".":
            paths.add(at)
            continue
        if not isinstance(inner, Mapping):
            continue
        if inner:
            paths |= paths_of_fields_v1(inner, (*at, pe))
        else:
            paths.add((*at, pe))
    return paths


def owners_of(entries: Any) -> Owners:
    """The owners recorded in ``metadata.managedFields`` (422 for an entry that is not one)."""
    owners: Owners = {}
    for entry in entries or []:
        if not isinstance(entry, dict) or not entry.get("manager"):
            raise APIError(422, "invalid managedFields entry", "Invalid")
        fields = entry.get("fieldsV1") or {}
        if not isinstance(fields, dict):
            raise APIError(422, "invalid managedFields entry", "Invalid")
        key = ManagerKey(
            str(entry["manager"]),
            str(entry.get("operation") or "Update"),
            str(entry.get("subresource") or ""),
        )
        owners[key] = Managed(
            str(entry.get("apiVersion") or ""),
            str(entry.get("time") or ""),
            frozenset(paths_of_fields_v1(fields)),
        )
    return owners


def managed_fields(owners: Owners) -> list[dict[str, Any]]:
    """``metadata.managedFields`` for ``owners``, in the order the apiserver sorts them
    (``sortEncodedManagedFields``: operation, time, manager, apiVersion, subresource)."""
    entries = []
    ordered = sorted(
        owners.items(),
        key=lambda kv: (
            kv[0].operation,
            kv[1].time,
            kv[0].manager,
            kv[1].api_version,
            kv[0].subresource,
        ),
    )
    for key, managed in ordered:
        entry: dict[str, Any] = {
            "manager": key.manager,
            "operation": key.operation,
            "apiVersion": managed.api_version,
            "time": managed.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(managed.fields),
        }
        if key.subresource:
            entry["subresource"] = key.subresource
        entries.append(entry)
    return entries


def _manager_name(key: ManagerKey, managed: Managed) -> str:
    """How a conflict names a manager (``printManager`` in apimachinery's
    ``pkg/util/managedfields/internal/conflict.go``)."""
    name = json.dumps(key.manager)
    if key.subresource:
        name += f" with subresource {json.dumps(key.subresource)}"
    if key.operation == "Update":
        name += f" using {managed.api_version}"
    return name


def _take_away(
    owners: Owners,
    me: ManagerKey,
    before: dict[Path, Any],
    after: dict[Path, Any],
    *,
    force: bool,
) -> Owners:
    """Others lose the fields this write changed (or, without ``force``, the write fails
    with a 409 naming them) and the fields it removed (``Updater.update``)."""
    added, modified, removed = _compare(before, after)
    changed = added | modified
    conflicts = {
        key: sorted(managed.fields & changed, key=path_string)
        for key, managed in owners.items()
        if key != me and managed.fields & changed
    }
    if conflicts and not force:
        items = [
            (_manager_name(key, owners[key]), path)
            for key in sorted(conflicts, key=lambda k: (k.manager, k.operation, k.subresource))
            for path in conflicts[key]
        ]
        if len(items) == 1:
            message = f"Apply failed with 1 conflict: conflict with {items[0][0]}: {path_string(items[0][1])}"
        else:
            lines: list[str] = []
            for name in dict.fromkeys(n for n, _ in items):
                lines.append(f"conflicts with {name}:")
                lines.extend(f"- {path_string(p)}" for n, p in items if n == name)
            message = f"Apply failed with {len(items)} conflicts: " + "\n".join(lines)
        raise APIError(
            409,
            message,
            "Conflict",
            {
                "causes": [
                    {
                        "reason": "FieldManagerConflict",
                        "message": f"conflict with {name}",
                        "field": path_string(path),
                    }
                    for name, path in items
                ]
            },
        )
    out: Owners = {}
    for key, managed in owners.items():
        fields = managed.fields if key == me else managed.fields - changed - removed
        if fields:
            out[key] = Managed(managed.api_version, managed.time, frozenset(fields))
    return out


def record_update(
    owners: Owners,
    me: ManagerKey,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    schema: Schema,
    api_version: str,
    now: str,
) -> Owners:
    """The owners after a create, an update or a patch by ``me`` (``Updater.Update``): ``me``
    gains every field it set or changed, the others lose them."""
    old = field_values(before, schema, me.subresource)
    new = field_values(after, schema, me.subresource)
    out = _take_away(owners, me, old, new, force=True)
    added, modified, removed = _compare(old, new)
    mine = out.get(me)
    fields = ((mine.fields if mine else frozenset()) - removed) | added | modified
    if not added and not modified and not removed and mine is not None:
        return out
    out.pop(me, None)
    if fields:
        out[me] = Managed(api_version, now, frozenset(fields))
    return out


def server_side_apply(
    live: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    owners: Owners,
    me: ManagerKey,
    schema: Schema,
    api_version: str,
    now: str,
    *,
    force: bool,
) -> tuple[dict[str, Any], Owners]:
    """Merge an applied configuration into the live object (``Updater.Apply``): the config's
    fields become ``me``'s, the fields ``me`` applied last time and no longer does are removed
    unless someone else owns them, and a field another manager owns and the apply changes is
    a 409 Conflict unless ``force`` (then it changes hands)."""
    base = copy.deepcopy(dict(live)) if live else {}
    merged = _ssa_merge(base, dict(config), schema)
    assert isinstance(merged, dict)
    applied = field_values(config, schema, me.subresource)
    last = owners.get(me)
    others: set[Path] = set()
    for key, managed in owners.items():
        if key != me:
            others |= managed.fields
    if last is not None:
        _prune(merged, set(last.fields) - set(applied) - others, schema)
    before = field_values(live, schema, me.subresource)
    after = field_values(merged, schema, me.subresource)
    out = _take_away(owners, me, before, after, force=force)
    out.pop(me, None)
    out[me] = Managed(api_version, now, frozenset(applied))
    return merged, out


def _ssa_merge(live: Any, config: Any, schema: Schema) -> Any:
    shape = _shape(schema, config)
    if shape in ("struct", "map") and isinstance(live, dict):
        out = dict(live)
        for k, v in config.items():
            out[k] = _ssa_merge(live.get(k), v, schema.field(k))
        return out
    if shape == "set" and isinstance(live, list):
        return [*live, *(copy.deepcopy(x) for x in config if x not in live)]
    if shape == "list" and isinstance(live, list) and _shape(schema, live) == "list":
        out_list = [copy.deepcopy(x) for x in live]
        index = {_element_key(schema, x): i for i, x in enumerate(out_list)}
        for element in config:
            at = index.get(_element_key(schema, element))
            if at is None:
                out_list.append(copy.deepcopy(element))
            else:
                out_list[at] = _ssa_merge(out_list[at], element, schema.element())
        return out_list
    return copy.deepcopy(config)


def _schema_at(schema: Schema, path: Path) -> Schema:
    for pe in path:
        schema = schema.field(pe[2:]) if pe.startswith("f:") else schema.element()
    return schema


def _locate(obj: Any, path: Path, schema: Schema) -> tuple[Any, Any] | None:
    """(container, key or index) of ``path`` in ``obj``."""
    parent: Any = obj
    at: Any = None
    for i, pe in enumerate(path):
        if at is not None:
            parent = parent[at]
        kind, _, rest = pe.partition(":")
        if kind == "f":
            if not isinstance(parent, dict) or rest not in parent:
                return None
            at = rest
        elif isinstance(parent, list):
            list_schema = _schema_at(schema, path[:i])
            want = pe
            found = [
                j
                for j, x in enumerate(parent)
                if (kind == "k" and isinstance(x, dict) and _element_key(list_schema, x) == want)
                or (kind == "v" and "v:" + _json_key(x) == want)
            ]
            if not found:
                return None
            at = found[0]
        else:
            return None
    return (parent, at) if at is not None else None


def _prune(obj: dict[str, Any], paths: set[Path], schema: Schema) -> None:
    """Remove ``paths`` (deepest first); an owned map, list element or set keeps what other
    managers still own in it, and an element keeps its keys while it stays."""
    for path in sorted(paths, key=len, reverse=True):
        found = _locate(obj, path, schema)
        if found is None:
            continue
        parent, at = found
        value = parent[at]
        if len(path) >= 2 and path[-2].startswith("k:") and path[-1].startswith("f:"):
            element_schema = _schema_at(schema, path[:-2])
            if path[-1][2:] in element_schema.keys:
                continue  # a key goes with its element
        if path[-1].startswith("k:"):
            keys = _schema_at(schema, path[:-1]).keys
            if any(k not in keys for k in value):
                continue  # what others own in it keeps the element
        elif value and _shape(_schema_at(schema, path), value) in ("map", "set"):
            continue  # an owned map or set keeps what others still own in it
        del parent[at]
        _drop_empty_structs(obj, path[:-1], schema)


def _drop_empty_structs(obj: dict[str, Any], path: Path, schema: Schema) -> None:
    """A named field of a struct left empty by a removal goes too: structured-merge-diff
    counts the named fields of what a manager applied as its own
    (``EnsureNamedFieldsAreMembers``)."""
    while path and path[-1].startswith("f:"):
        found = _locate(obj, path, schema)
        if found is None:
            return
        parent, at = found
        if parent[at] not in ({}, []) or _schema_at(schema, path[:-1]).shape != "struct":
            return
        del parent[at]
        path = path[:-1]


# --------------------------------------------------------------------------------------
# Pods
# --------------------------------------------------------------------------------------


def choose_container(pod: Mapping[str, Any], requested: str | None) -> str:
    """The container an exec or a log request means: the named one, else the pod's only
    one; 400 with the apiserver's words otherwise (``pkg/registry/core/pod/strategy.go``,
    ``validateContainer``)."""
    name = (pod.get("metadata") or {}).get("name", "")
    containers = [
        str(c.get("name", ""))
        for c in ((pod.get("spec") or {}).get("containers") or [])
        if isinstance(c, dict)
    ]
    if not requested:
        if len(containers) != 1:
            raise APIError(
                400,
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]",
                "BadRequest",
            )
        return containers[0]
    if requested not in containers:
        raise APIError(400, f"container {requested} is not valid for pod {name}", "BadRequest")
    return requested


# --------------------------------------------------------------------------------------
# Tables (what ``kubectl get`` asks for)
# --------------------------------------------------------------------------------------

TABLE_VERSIONS: tuple[str, ...] = ("v1", "v1beta1")
"""The ``meta.k8s.io`` versions a ``Table`` is served in."""

# ObjectMeta's swagger descriptions, which the default table convertors put on their columns
# (k8s.io/apimachinery/pkg/apis/meta/v1/types_swagger_doc_generated.go).
NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATED_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


def table_version(accept: str) -> str | None:
    """The ``meta.k8s.io`` version of ``Table`` an ``Accept`` header asks for before any
    plain JSON (``application/json;as=Table;v=v1;g=meta.k8s.io,...,application/json``, what
    ``kubectl get`` sends), or None."""
    for media in (m.strip() for m in accept.split(",")):
        kind = media.split(";")[0].strip()
        params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
        if (
            kind == "application/json"
            and params.get("as") == "Table"
            and params.get("g") == "meta.k8s.io"
            and params.get("v") in TABLE_VERSIONS
        ):
            return params["v"]
        if kind in ("application/json", "*/*", "application/*") and "as" not in params:
            return None
    return None


def human_duration(seconds: float) -> str:
    """``5m``, ``3h10m``, ``2d5h``: apimachinery's ``duration.HumanDuration``, what AGE shows."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(created: str | None, now: datetime) -> str:
    """The AGE of an object created at ``created`` (``<unknown>`` without one), as
    ``ConvertToHumanReadableDateType`` writes it."""
    if not created:
        return "<unknown>"
    try:
        when = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    return human_duration((now - when).total_seconds())


def default_table(
    rt: ResourceType, objects: Iterable[Mapping[str, Any]], now: datetime, *, custom: bool
) -> dict[str, Any]:
    """The Table of a resource without printer columns: a custom resource's has NAME and AGE
    (apiextensions-apiserver's ``tableconvertor`` with the default ``Age`` column of
    ``serveDefaultColumnsIfEmpty``), a built-in one's NAME and CREATED AT (apiserver's
    ``pkg/registry/rest/table.go``)."""
    name_column = {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": NAME_DESCRIPTION,
        "priority": 0,
    }
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        created = meta.get("creationTimestamp")
        when = age(created, now) if custom else created
        rows.append({"cells": [meta.get("name", ""), when]})
    second = "Age" if custom else "Created At"
    return {
        "columnDefinitions": [
            name_column,
            {
                "name": second,
                "type": "date",
                "format": "",
                "description": CREATED_DESCRIPTION,
                "priority": 0,
            },
        ],
        "rows": rows,
    }


def partial_object_metadata(obj: Mapping[str, Any], table_version: str) -> dict[str, Any]:
    """A table row's object by default (``includeObject=Metadata``): the object's metadata as
    a ``PartialObjectMetadata`` (``asTable`` in apiserver's ``handlers/response.go``)."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{table_version}",
        "metadata": copy.deepcopy(obj.get("metadata") or {}),
    }


# --------------------------------------------------------------------------------------
# OpenAPI v3 (what kubectl reads before it writes)
# --------------------------------------------------------------------------------------


def openapi_v3_path(group: str, version: str) -> str:
    """``api/v1``, ``apis/apps/v1``: a group version's key in the OpenAPI v3 index."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_document(group: APIGroup, version: str, git_version: str) -> dict[str, Any]:
    """The OpenAPI v3 document of a group version, reduced to what kubectl reads from it:
    for each resource, the PATCH operation with its ``x-kubernetes-group-version-kind`` and
    the ``fieldValidation`` query parameter. kubectl's ``QueryParamVerifierV3``
    (``k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go``) then lets the server
    validate fields (``fieldValidation=Strict``) instead of downloading schemas to validate
    itself; with no request body listed, ``kubectl apply`` computes its patches from the
    kinds it knows (``gvkSupportsPatchOpenAPIV3`` in ``pkg/cmd/apply/patcher.go``). There are
    no schemas: ``kubectl explain`` has nothing to explain."""
    paths: dict[str, Any] = {}
    prefix = "/" + openapi_v3_path(group.name, version)
    for rt in group.resources:
        if version not in rt.versions or "patch" not in rt.verbs:
            continue
        scope = f"{prefix}/namespaces/{{namespace}}" if rt.namespaced else prefix
        paths[f"{scope}/{rt.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": [
                    {
                        "name": "fieldValidation",
                        "in": "query",
                        "description": "fieldValidation instructs the server on how to handle "
                        "objects in the request (POST/PUT/PATCH) containing unknown or "
                        "duplicate fields.",
                        "schema": {"type": "string", "uniqueItems": True},
                    }
                ],
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": rt.group,
                    "version": version,
                    "kind": rt.kind,
                },
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": git_version},
        "paths": paths,
        "components": {"schemas": {}},
    }


def openapi_v3_index(groups: Iterable[APIGroup], git_version: str) -> dict[str, Any]:
    """``/openapi/v3``: each group version's document, by a URL with its content hash (the
    client caches a document for as long as its hash stays)."""
    paths: dict[str, Any] = {}
    for group in groups:
        for version in group.versions:
            key = openapi_v3_path(group.name, version)
            digest = hashlib.sha512(
                compact(openapi_v3_document(group, version, git_version))
            ).hexdigest()[:128]
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest.upper()}"}
    return {"paths": paths}
