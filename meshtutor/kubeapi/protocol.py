"""The Kubernetes API protocol as pure functions: no store, no clock of its own, no I/O.

- ``APIError``: a failure answered as a ``Status`` body, with the code, reason and message a
  real kube-apiserver gives (``k8s.io/apimachinery/pkg/api/errors/errors.go``);
- patches: JSON merge patch (RFC 7386), strategic merge patch, JSON patch (RFC 6902);
- label and field selectors;
- object metadata validation (names, labels, annotations);
- discovery documents: ``/version``, the legacy ``APIVersions`` / ``APIGroupList`` /
  ``APIResourceList`` and the aggregated ``apidiscovery.k8s.io/v2`` (and ``v2beta1``) lists.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from meshtutor.kubeapi.resources import APIGroup, ResourceType

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


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch good enough for tests: a merge patch where lists of objects
    that all carry a ``name`` (containers, ports, env) are merged by name."""
    if not isinstance(patch, dict):
        if isinstance(patch, list) and isinstance(target, list) and _named_list(patch, target):
            merged = [copy.deepcopy(x) for x in target]
            index = {x["name"]: i for i, x in enumerate(merged)}
            for item in patch:
                if item["name"] in index:
                    i = index[item["name"]]
                    merged[i] = strategic_merge_patch(merged[i], item)
                else:
                    merged.append(copy.deepcopy(item))
            return merged
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _named_list(*lists: list[Any]) -> bool:
    return all(isinstance(x, dict) and "name" in x for lst in lists for x in lst)


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


def field_selector(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """Parse a field selector (``metadata.name=x``, ``status.phase!=Running``, ...)."""
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for term in _split_selector(text):
        m = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)", term)
        if not m:
            raise APIError(
                400, f"invalid selector: '{text}'; can't understand '{term}'", "BadRequest"
            )
        checks.append(_field_is(m.group(1).split("."), m.group(3), m.group(2) != "!="))
    return lambda obj: all(c(obj) for c in checks)


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
