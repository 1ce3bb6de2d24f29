"""``APICore``: the sandbox's Kubernetes API server without a transport.

A request comes in as a :class:`Request` and goes out as a :class:`Response`; ``handle`` never
raises: every failure is a ``Status`` body with the code, reason and message a real
kube-apiserver gives, since kubectl prints them as they are (``Error from server (NotFound):
…``). It holds the object store (resourceVersion, uid, creationTimestamp, generation,
managedFields), answers discovery, get / list (label and field selectors, all namespaces,
``limit``/``continue``), create, update, patch (JSON, merge, strategic merge, server-side
apply), delete and delete-collection, ``dryRun=All``, and SelfSubjectAccessReviews. Controllers
in the same process use :meth:`APICore.get`, :meth:`~APICore.list`, :meth:`~APICore.put`,
:meth:`~APICore.remove` and :meth:`~APICore.subscribe` without HTTP.

It is synchronous and thread-safe (one lock around the store); subscribers are called in the
order of the writes, after each write, and may write themselves.
"""

from __future__ import annotations

import base64
import builtins
import copy
import json
import threading
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import yaml

from meshtutor.kubeapi.protobuf import CONTENT_TYPE as PROTOBUF
from meshtutor.kubeapi.protobuf import decode_object
from meshtutor.kubeapi.protocol import (
    NO_RESOURCE,
    APIError,
    ManagerKey,
    aggregated_discovery,
    aggregated_version,
    api_versions,
    choose_container,
    compact,
    default_table,
    details,
    field_selector,
    forbidden_message,
    group_entry,
    group_list,
    gv,
    json_patch,
    label_selector,
    managed_fields,
    merge_patch,
    not_found,
    openapi_v3_document,
    openapi_v3_index,
    openapi_v3_path,
    owners_of,
    partial_object_metadata,
    record_update,
    resource_list,
    selector_string,
    server_side_apply,
    status_body,
    strategic_merge_patch,
    table_version,
    timestamp,
    validate_metadata,
    version_info,
)
from meshtutor.kubeapi.resources import (
    BUILTIN_GROUPS,
    CORE,
    INITIAL_NAMESPACES,
    APIGroup,
    ResourceType,
    schema_for,
)

__all__ = [
    "MAX_BODY_BYTES",
    "APICore",
    "Admission",
    "Attributes",
    "Request",
    "Response",
    "Target",
    "Watch",
    "WatchEvent",
]

MAX_BODY_BYTES = 3 * 1024 * 1024
"""The largest request body taken (kube-apiserver's default ``MaxRequestBodyBytes``)."""

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_POLICIES = ("Foreground", "Background", "Orphan")
# The groups whose kinds keep no metadata.generation (their registry strategies never set it;
# pods get one only from 1.34, PodObservedGenerationTracking).
_NO_GENERATION = frozenset({"", "events.k8s.io"})
_IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_NOT_ALLOWED = "the server does not allow this method on the requested resource"
_NAMESPACES = CORE.resources[0]

Key = tuple[str, str, str, str]  # (group, plural, namespace or "", name)


@dataclass(frozen=True)
class Request:
    """One API request, as the transport received it."""

    method: str  # "GET", "POST", ...
    path: str  # "/api/v1/namespaces/demo/pods"
    query: Mapping[str, str]  # last value wins, as the apiserver's own parsing for these params
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    user: str = "kubernetes-admin"  # from the client certificate's CN

    def param(self, name: str) -> str | None:
        return self.query.get(name)


@dataclass(frozen=True)
class Response:
    """What to send back."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WatchEvent:
    """A change of the store. ``object`` is the stored object (never changed afterwards: a
    caller deep-copies before handing it out); ``old_object`` what it replaced."""

    type: str  # "ADDED" | "MODIFIED" | "DELETED"
    group: str
    plural: str
    namespace: str | None
    object: dict[str, Any]
    resource_version: int
    old_object: dict[str, Any] | None = None


class Admission(Protocol):
    """Called inside a write, before it is stored (also for dry-run). May return a changed
    object (mutating admission: the sidecar a pod gets, a Service's clusterIP) or raise
    APIError (422 Invalid, 400 BadRequest, ...); the store is untouched when it raises."""

    def admit(
        self,
        op: str,
        rt: ResourceType,
        new: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        dry_run: bool,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Attributes:
    """What an authorizer decides on (the apiserver's ``RequestInfo`` and user)."""

    user: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Target:
    """What a resource path names."""

    group: APIGroup
    version: str
    rt: ResourceType | None  # None: the group version itself (its APIResourceList)
    namespace: str | None
    name: str | None
    subresource: str | None


Authorizer = Callable[[Attributes], bool]
View = Callable[[ResourceType, dict[str, Any]], dict[str, Any]]
TableHook = Callable[[ResourceType, list[dict[str, Any]], datetime], dict[str, Any] | None]
PodLog = Callable[[str, str, str], str]


class APICore:
    """The API server: store and request handling, no transport (see the module docstring).

    :param groups: the API groups served (built-in and custom); more can be added and
        removed later (:meth:`add_group`, :meth:`remove_group`), as installing CRDs does.
    :param git_version: what ``/version`` reports.
    :param admission: called on every create, update, patch and apply (also dry-run).
    :param authorize: decides each resource request and SelfSubjectAccessReview (None:
        everything is allowed, a kind cluster's admin).
    :param view: called on a copy of each object before it is answered (a status computed at
        the time of asking).
    :param pod_log: ``(namespace, pod, container) -> text`` for ``pods/log`` (no follow).
    :param namespaces: the namespaces that exist from the start.
    :param aggregated_discovery: answer ``Accept: …;as=APIGroupDiscoveryList`` (servers since
        1.26); if False, always the legacy documents.
    :param on_internal_error: told the traceback of a failure inside (answered 500).
    :param history: how many store events ``events_since`` (and watches from a
        resourceVersion) can replay.
    :param table: ``(rt, objects, now) -> Table | None``: the columns and cells of
        ``kubectl get`` (``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``) for the
        objects given, one row each in their order; the core adds the Table's kind, metadata
        and each row's object. None (or a None answer): the default table, as a real server
        gives for a resource without printer columns.
    :param clock: the time (UTC) of creationTimestamps and AGE.
    """

    def __init__(
        self,
        *,
        groups: Iterable[APIGroup] = BUILTIN_GROUPS,
        git_version: str = "v1.33.1",
        admission: Admission | None = None,
        authorize: Authorizer | None = None,
        view: View | None = None,
        pod_log: PodLog | None = None,
        namespaces: Iterable[str] = INITIAL_NAMESPACES,
        aggregated_discovery: bool = True,
        on_internal_error: Callable[[str], None] | None = None,
        history: int = 10_000,
        table: TableHook | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.git_version = git_version
        self.admission = admission
        self.authorize = authorize
        self.view = view
        self.pod_log = pod_log
        self.aggregated_discovery = aggregated_discovery
        self.on_internal_error = on_internal_error
        self.table = table
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._groups: dict[str, APIGroup] = {}
        self._builtin_order: list[str] = []
        for g in groups:
            self.add_group(g)
        self._objects: dict[Key, dict[str, Any]] = {}
        self._rv = 1000
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._history_floor = self._rv
        self._subscribers: list[Callable[[WatchEvent], None]] = []
        self._pending: deque[WatchEvent] = deque()
        self._dispatching = False
        for ns in namespaces:
            self.put(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                manager="kube-apiserver",
            )

    def _now(self) -> datetime:
        return self._clock()

    # ---- groups ---------------------------------------------------------------------

    def add_group(self, group: APIGroup) -> None:
        """Serve ``group`` (installing a CRD group, or a built-in one)."""
        with self._lock:
            self._groups[group.name] = group
            if not group.custom and group.name not in self._builtin_order:
                self._builtin_order.append(group.name)

    def remove_group(self, name: str) -> None:
        """Stop serving group ``name`` and delete its objects, as deleting its CRDs does."""
        with self._lock:
            self._groups.pop(name, None)
            for key in [k for k in self._objects if k[0] == name]:
                self._drop(key)
            self._dispatch()

    @property
    def groups(self) -> tuple[APIGroup, ...]:
        with self._lock:
            return tuple(self._groups.values())

    def resource_type(self, api_version: str, kind: str) -> ResourceType:
        """The served resource type of ``kind`` in ``api_version`` (404 if none)."""
        group_name, _, version = api_version.rpartition("/")
        with self._lock:
            group = self._groups.get(group_name)
        rt = (
            next((r for r in group.resources if r.kind == kind and version in r.versions), None)
            if group
            else None
        )
        if rt is None:
            raise APIError(
                404,
                f'no matches for kind "{kind}" in version "{api_version}"',
                "NotFound",
            )
        return rt

    # ---- paths and attributes ----------------------------------------------------------

    def resource_for(self, path: str) -> Target:
        """What ``path`` names: (group, version, resource type, namespace, name,
        subresource); 404 ``the server could not find the requested resource`` if nothing."""
        segs = [s for s in path.split("/") if s]
        if not segs or segs[0] not in ("api", "apis"):
            raise APIError(404, NO_RESOURCE, "NotFound")
        if segs[0] == "api":
            group_name, rest = "", segs[1:]
        else:
            if len(segs) < 2:
                raise APIError(404, NO_RESOURCE, "NotFound")
            group_name, rest = segs[1], segs[2:]
        with self._lock:
            group = self._groups.get(group_name)
        if group is None or not rest or rest[0] not in group.versions:
            raise APIError(404, NO_RESOURCE, "NotFound")
        version, rest = rest[0], rest[1:]
        if not rest:
            return Target(group, version, None, None, None, None)
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            inner = group.resource(rest[2], version)
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = group.resource(rest[0], version)
        if rt is None or len(rest) > 3:
            raise APIError(404, NO_RESOURCE, "NotFound")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if rt.namespaced and namespace is None and name is not None:
            raise APIError(404, NO_RESOURCE, "NotFound")
        if sub is not None and rt.subresource(sub) is None:
            raise APIError(404, NO_RESOURCE, "NotFound")
        return Target(group, version, rt, namespace, name, sub)

    def attributes(self, req: Request) -> Attributes | None:
        """The authorization attributes of a resource request (None for any other path)."""
        try:
            target = self.resource_for(req.path)
        except APIError:
            return None
        rt = target.rt
        if rt is None:
            return None
        name, sub = target.name, target.subresource
        if sub in ("exec", "attach", "portforward"):
            # A websocket upgrade (GET) needs "create" too since kubernetes 1.31
            # (AuthorizePodWebsocketUpgradeCreatePermission); "create" is what it decides on.
            verb = "create"
        else:
            verb = {
                "GET": "get" if name else "watch" if req.param("watch") in _TRUE else "list",
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection",
            }.get(req.method, req.method.lower())
        return Attributes(
            req.user, verb, rt.group, rt.plural, sub or "", target.namespace or "", name or ""
        )

    def check_access(self, req: Request) -> None:
        """Raise the 403 Forbidden a request the authorizer denies gets (the transport calls
        it for the requests it serves itself: exec, watch, logs)."""
        attrs = self.attributes(req)
        if attrs is None or self.authorize is None or self.authorize(attrs):
            return
        target = self.resource_for(req.path)
        assert target.rt is not None
        raise APIError(
            403,
            forbidden_message(
                req.user, attrs.verb, target.rt, target.namespace, target.name, target.subresource
            ),
            "Forbidden",
            details(target.rt, target.name),
        )

    # ---- requests --------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        """Answer one request (everything but watch, exec and log streaming). Never raises."""
        try:
            with self._lock:
                try:
                    return self._route(req)
                finally:
                    self._dispatch()
        except APIError as e:
            return Response(e.code, compact(e.status()), headers=e.headers)
        except Exception:
            if self.on_internal_error is not None:
                self.on_internal_error(traceback.format_exc())
            return _json(
                500,
                status_body(500, "InternalError", "Internal error occurred: an unexpected failure"),
            )

    def _route(self, req: Request) -> Response:
        if len(req.body) > MAX_BODY_BYTES:
            raise APIError(
                413, f"Request entity too large: limit is {MAX_BODY_BYTES}", "RequestEntityTooLarge"
            )
        path = req.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return _json(200, version_info(self.git_version))
        if path == "/api":
            return self._discovery_root(req, api_versions(), [""])
        if path == "/apis":
            legacy = group_list(self._groups.values(), self._builtin_order)
            return self._discovery_root(req, legacy, [g for g in self._groups if g])
        if path == "/openapi/v3":
            _only(req, "GET")
            return _json(200, openapi_v3_index(self._groups.values(), self.git_version))
        if path.startswith("/openapi/v3/"):
            _only(req, "GET")
            wanted = path.removeprefix("/openapi/v3/")
            for served in self._groups.values():
                for version in served.versions:
                    if openapi_v3_path(served.name, version) == wanted:
                        doc = openapi_v3_document(served, version, self.git_version)
                        return _json(200, doc)
            raise APIError(404, NO_RESOURCE, "NotFound")
        segs = [s for s in path.split("/") if s]
        if segs[0] == "apis" and len(segs) == 2:
            group = self._groups.get(segs[1])
            if group is None:
                raise APIError(404, NO_RESOURCE, "NotFound")
            _only(req, "GET")
            return _json(200, {"kind": "APIGroup", "apiVersion": "v1", **group_entry(group)})
        target = self.resource_for(path)
        self.check_access(req)
        if target.rt is None:
            _only(req, "GET")
            return _json(200, resource_list(target.group, target.version))
        return self._resource_request(req, target, target.rt)

    def _discovery_root(
        self, req: Request, legacy: dict[str, Any], group_names: list[str]
    ) -> Response:
        _only(req, "GET")
        if self.aggregated_discovery:
            v = aggregated_version(req.headers.get("accept", ""))
            if v is not None:
                groups = [self._groups[n] for n in group_names if n in self._groups]
                body = aggregated_discovery(groups, v, sort=group_names != [""])
                ctype = f"application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
                return _json(200, body, ctype)
        return _json(200, legacy)

    def _resource_request(self, req: Request, target: Target, rt: ResourceType) -> Response:
        method, name, sub = req.method, target.name, target.subresource
        version, ns = target.version, target.namespace
        if rt.group == "authorization.k8s.io":
            if method != "POST" or name is not None:
                raise APIError(405, _NOT_ALLOWED, "MethodNotAllowed")
            return self._review(req, rt, version)
        if sub in ("exec", "attach", "portforward"):
            raise APIError(400, "Upgrade request required", "BadRequest")
        if req.param("watch") in _TRUE:
            raise APIError(400, "watch requests are served by APICore.open_watch", "BadRequest")
        dry_run = req.param("dryRun")
        if dry_run is not None and dry_run != "All":
            raise APIError(
                400,
                f'Invalid dryRun value "{dry_run}"; the only valid value is "All"',
                "BadRequest",
            )
        if name is None:
            if method == "GET":
                _verb(rt, "list")
                tv = table_version(req.headers.get("accept", ""))
                if tv is None:
                    return _json(200, self._list(rt, version, ns, req.query))
                objs, meta = self._page(rt, ns, req.query)
                return _json(
                    200, self._table(rt, version, objs, meta, tv, req.param("includeObject"))
                )
            if method == "POST":
                _verb(rt, "create")
                return self._create(req, rt, version, ns)
            if method == "DELETE":
                _verb(rt, "deletecollection")
                return self._delete_collection(req, rt, version, ns)
            raise APIError(405, _NOT_ALLOWED, "MethodNotAllowed")
        key: Key = (rt.group, rt.plural, ns or "", name)
        if sub == "log":
            _only(req, "GET")
            return self._log(rt, key, req.param("container"))
        if sub == "scale":
            return self._scale(req, rt, version, key)
        if sub not in (None, "status"):
            raise APIError(405, _NOT_ALLOWED, "MethodNotAllowed")
        if method == "GET":
            _verb(rt, "get")
            obj = self._objects.get(key)
            if obj is None:
                raise not_found(rt, name)
            tv = table_version(req.headers.get("accept", ""))
            if tv is not None and sub is None:
                meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                return _json(
                    200, self._table(rt, version, [obj], meta, tv, req.param("includeObject"))
                )
            return _json(200, self.present(rt, version, obj))
        if method == "DELETE":
            _verb(rt, "delete")
            return self._delete_one(req, rt, version, key)
        if method == "PUT":
            _verb(rt, "update")
            return self._replace(req, rt, version, key, sub)
        if method == "PATCH":
            _verb(rt, "patch")
            return self._patch(req, rt, version, key, sub)
        raise APIError(405, _NOT_ALLOWED, "MethodNotAllowed")

    # ---- reads -----------------------------------------------------------------------

    def present(
        self, rt: ResourceType, version: str, obj: Mapping[str, Any], *, in_list: bool = False
    ) -> dict[str, Any]:
        """A copy of a stored object as the API answers it in ``version``: apiVersion and kind
        first (left out of the items of a built-in list, as on the wire), through ``view``."""
        out = copy.deepcopy(dict(obj))
        out["apiVersion"] = gv(rt.group, version)
        out["kind"] = rt.kind
        if self.view is not None:
            out = self.view(rt, out)
        ordered: dict[str, Any] = {}
        api_version, kind = out.pop("apiVersion"), out.pop("kind")
        if not in_list or self._is_custom(rt.group):
            ordered["apiVersion"] = api_version
            ordered["kind"] = kind
        ordered.update(out)
        return ordered

    def _is_custom(self, group: str) -> bool:
        g = self._groups.get(group)
        return bool(g and g.custom)

    def _page(
        self, rt: ResourceType, ns: str | None, params: Mapping[str, str]
    ) -> tuple[builtins.list[dict[str, Any]], dict[str, Any]]:
        """The stored objects a list request answers (selectors, ``limit``/``continue``) and
        the list's metadata."""
        objs = self._selected(rt, ns, params)
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        limit = _int_param(params.get("limit"), "limit")
        start = 0
        if params.get("continue"):
            try:
                start = int(base64.urlsafe_b64decode(params["continue"].encode()).decode())
            except ValueError as e:
                raise APIError(400, "continue key is not valid", "BadRequest") from e
        if limit > 0 or start:
            end = start + limit if limit > 0 else len(objs)
            if end < len(objs):
                meta["continue"] = base64.urlsafe_b64encode(str(end).encode()).decode()
                meta["remainingItemCount"] = len(objs) - end
            objs = objs[start:end]
        return objs, meta

    def _list(
        self, rt: ResourceType, version: str, ns: str | None, params: Mapping[str, str]
    ) -> dict[str, Any]:
        objs, meta = self._page(rt, ns, params)
        return {
            "apiVersion": gv(rt.group, version),
            "items": [self.present(rt, version, obj, in_list=True) for obj in objs],
            "kind": f"{rt.kind}List",
            "metadata": meta,
        }

    def _table(
        self,
        rt: ResourceType,
        version: str,
        objs: Iterable[Mapping[str, Any]],
        meta: Mapping[str, Any],
        table_version: str,
        include: str | None,
        *,
        headers: bool = True,
    ) -> dict[str, Any]:
        """``objs`` as a ``meta.k8s.io`` Table: the ``table`` hook's columns and cells (the
        default table without one), each row's object as ``includeObject`` asks
        (``asTable`` in apiserver's ``pkg/endpoints/handlers/response.go``)."""
        include = include or "Metadata"
        if include not in ("Object", "Metadata", "None"):
            raise APIError(400, f'unrecognized includeObject value: "{include}"', "BadRequest")
        presented = [self.present(rt, version, obj) for obj in objs]
        now = self._now()
        table = self.table(rt, presented, now) if self.table is not None else None
        if table is None:
            table = default_table(rt, presented, now, custom=self._is_custom(rt.group))
        rows = table.get("rows") or []
        if len(rows) != len(presented):
            raise RuntimeError(
                f"the table of {rt.qualified} has {len(rows)} rows for {len(presented)} objects"
            )
        out: dict[str, Any] = {
            "kind": "Table",
            "apiVersion": f"meta.k8s.io/{table_version}",
            "metadata": dict(meta),
            "columnDefinitions": table["columnDefinitions"] if headers else None,
            "rows": [],
        }
        for row, obj in zip(rows, presented, strict=True):
            entry = {k: v for k, v in row.items() if k != "object"}
            if include == "Object":
                entry["object"] = obj
            elif include == "Metadata":
                entry["object"] = partial_object_metadata(obj, table_version)
            else:
                entry["object"] = None
            out["rows"].append(entry)
        return out

    def _selected(
        self, rt: ResourceType, ns: str | None, params: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """The stored objects of ``rt`` (in ``ns``) that the request's selectors match."""
        ls = label_selector(params["labelSelector"]) if params.get("labelSelector") else None
        fs = (
            field_selector(params["fieldSelector"], rt, custom=self._is_custom(rt.group))
            if params.get("fieldSelector")
            else None
        )
        out = []
        for key in sorted(self._objects):
            if key[:2] != (rt.group, rt.plural) or (ns is not None and key[2] != ns):
                continue
            obj = self._objects[key]
            if ls is not None and not ls(obj["metadata"].get("labels") or {}):
                continue
            if fs is not None and not fs(self.present(rt, rt.versions[0], obj)):
                continue
            out.append(obj)
        return out

    def _log(self, rt: ResourceType, key: Key, container: str | None) -> Response:
        pod = self._objects.get(key)
        if pod is None:
            raise not_found(rt, key[3])
        chosen = choose_container(pod, container)
        text = self.pod_log(key[2], key[3], chosen) if self.pod_log is not None else ""
        return Response(200, text.encode(), "text/plain")

    # ---- writes through the API ----------------------------------------------------------

    def _body(self, req: Request) -> Any:
        if not req.body:
            return None
        if req.headers.get("content-type", "").startswith(PROTOBUF):
            return decode_object(req.body)
        try:
            if "yaml" in req.headers.get("content-type", ""):
                return yaml.safe_load(req.body)
            return json.loads(req.body)
        except (ValueError, yaml.YAMLError):
            raise APIError(
                400, "the body of the request could not be decoded as an object", "BadRequest"
            ) from None

    def _checked_body(
        self,
        body: Any,
        rt: ResourceType,
        version: str,
        ns: str,
        name: str | None,
        *,
        require_type: bool,
    ) -> dict[str, Any]:
        """The request's object, checked as the apiserver's decoding and name checks do."""
        if not isinstance(body, dict):
            raise APIError(
                400, "the body of the request could not be decoded as an object", "BadRequest"
            )
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        expected = gv(rt.group, version)
        if require_type and (not api_version or not kind):
            raise APIError(
                400, "Object 'Kind' is missing in '" + json.dumps(body)[:200] + "'", "BadRequest"
            )
        if api_version and api_version != expected:
            group = str(api_version).rpartition("/")[0]
            if group != rt.group:
                raise APIError(
                    400,
                    f"the API version in the data ({api_version}) does not match the expected API version ({expected})",
                    "BadRequest",
                )
        if kind and kind != rt.kind:
            raise APIError(
                400,
                f'{kind} in version "{version}" cannot be handled as a {rt.kind}: no kind "{kind}" is registered for version "{expected}"',
                "BadRequest",
            )
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise APIError(400, "metadata must be an object", "BadRequest")
        meta = meta or {}
        body_name = meta.get("name")
        if name is not None and body_name is not None and body_name != name:
            raise APIError(
                400,
                f"the name of the object ({body_name}) does not match the name on the URL ({name})",
                "BadRequest",
            )
        body_ns = meta.get("namespace")
        if rt.namespaced and body_ns is not None and body_ns != ns:
            raise APIError(
                400,
                "the namespace of the provided object does not match the namespace sent on the request",
                "BadRequest",
            )
        final_name = name or body_name
        if not final_name and meta.get("generateName") and name is None:
            final_name = f"{meta['generateName']}{_random_suffix()}"
            body = {**body, "metadata": {**meta, "name": final_name}}
        if not final_name:
            raise APIError(
                422,
                f'{rt.kind} "" is invalid: metadata.name: Required value: name or generateName is required',
                "Invalid",
                details(rt, None),
            )
        validate_metadata(rt, str(final_name), meta)
        return copy.deepcopy(body)

    @staticmethod
    def _manager(req: Request) -> str:
        """The field manager: the request's, else the user agent's product name (as the
        apiserver's ``managerOrUserAgent``)."""
        manager = req.param("fieldManager")
        if manager:
            return manager
        return req.headers.get("user-agent", "unknown").split("/")[0]

    def _create(self, req: Request, rt: ResourceType, version: str, ns: str | None) -> Response:
        if rt.namespaced and ns is None:
            raise APIError(405, _NOT_ALLOWED, "MethodNotAllowed")
        body = self._checked_body(self._body(req), rt, version, ns or "", None, require_type=False)
        name = body["metadata"]["name"]
        key: Key = (rt.group, rt.plural, ns or "", name)
        if rt.namespaced:
            self._require_namespace(ns or "")
        if key in self._objects:
            raise APIError(
                409, f'{rt.qualified} "{name}" already exists', "AlreadyExists", details(rt, name)
            )
        body.pop("status", None)
        stored = self._write(
            rt,
            version,
            key,
            body,
            ManagerKey(self._manager(req), "Update"),
            dry_run=req.param("dryRun") == "All",
        )
        return _json(201, self.present(rt, version, stored))

    def _replace(
        self, req: Request, rt: ResourceType, version: str, key: Key, sub: str | None
    ) -> Response:
        ns, name = key[2], key[3]
        body = self._checked_body(self._body(req), rt, version, ns, name, require_type=False)
        current = self._objects.get(key)
        if current is None:
            raise not_found(rt, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if not rv and self._is_custom(rt.group):
            # Custom resources allow no unconditional update: AllowUnconditionalUpdate() is
            # false in apiextensions-apiserver's pkg/registry/customresource/strategy.go.
            raise APIError(
                422,
                f'{rt.qualified} "{name}" is invalid: metadata.resourceVersion: Invalid value: '
                "0x0: must be specified for an update",
                "Invalid",
                details(
                    rt,
                    name,
                    causes=[
                        {
                            "reason": "FieldValueInvalid",
                            "message": "Invalid value: 0x0: must be specified for an update",
                            "field": "metadata.resourceVersion",
                        }
                    ],
                ),
            )
        _optimistic_lock(rt, name, current, body)
        if sub == "status":
            new = copy.deepcopy(current)
            new["status"] = body.get("status")
            body = new
        else:
            body.pop("status", None)
            meta = body.setdefault("metadata", {})
            if "ownerReferences" in current["metadata"] and "ownerReferences" not in meta:
                meta["ownerReferences"] = copy.deepcopy(current["metadata"]["ownerReferences"])
        stored = self._write(
            rt,
            version,
            key,
            body,
            ManagerKey(self._manager(req), "Update", sub or ""),
            dry_run=req.param("dryRun") == "All",
        )
        return _json(200, self.present(rt, version, stored))

    def _patch_types(self, rt: ResourceType) -> list[str]:
        types = [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
        if not self._is_custom(rt.group):
            types.insert(2, "application/strategic-merge-patch+json")
        return types

    def _patch(
        self, req: Request, rt: ResourceType, version: str, key: Key, sub: str | None
    ) -> Response:
        ns, name = key[2], key[3]
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        current = self._objects.get(key)
        dry_run = req.param("dryRun") == "All"
        if ctype == "application/apply-patch+yaml":
            manager = req.param("fieldManager")
            if not manager:
                raise APIError(
                    400,
                    "PATCH " + req.path + ": fieldManager is required for apply requests",
                    "BadRequest",
                )
            try:
                parsed = yaml.safe_load(req.body) if req.body else None
            except yaml.YAMLError:
                raise APIError(
                    400, "error decoding YAML: the body is not valid YAML", "BadRequest"
                ) from None
            body = self._checked_body(parsed, rt, version, ns, name, require_type=True)
            if rt.namespaced:
                self._require_namespace(ns)
            if (body.get("metadata") or {}).get("managedFields") is not None:
                raise APIError(
                    400, "metadata.managedFields must be nil", "BadRequest", details(rt, name)
                )
            _optimistic_lock(rt, name, current, body)
            if sub == "status":
                body = {k: v for k, v in body.items() if k in ("apiVersion", "kind", "status")}
                body["metadata"] = {"name": name}
            else:
                body.pop("status", None)
            body.setdefault("metadata", {})["name"] = name
            stored = self._write(
                rt,
                version,
                key,
                body,
                ManagerKey(manager, "Apply", sub or ""),
                apply=True,
                force=req.param("force") in _TRUE,
                dry_run=dry_run,
            )
            return _json(201 if current is None else 200, self.present(rt, version, stored))
        if ctype not in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/json-patch+json",
        ) or (ctype == "application/strategic-merge-patch+json" and self._is_custom(rt.group)):
            raise APIError(
                415,
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(self._patch_types(rt)),
                "UnsupportedMediaType",
            )
        if current is None:
            raise not_found(rt, name)
        try:
            patch = json.loads(req.body) if req.body else None
        except ValueError:
            raise APIError(400, "error decoding patch: invalid JSON", "BadRequest") from None
        base = copy.deepcopy(current)
        if ctype == "application/json-patch+json":
            patched = json_patch(base, patch)
        elif ctype == "application/merge-patch+json":
            if not isinstance(patch, dict):
                raise APIError(400, "merge patch must be an object", "BadRequest")
            patched = merge_patch(base, patch)
        else:
            patched = strategic_merge_patch(base, patch, schema_for(rt))
        if not isinstance(patched, dict):
            raise APIError(422, "the patched object is not an object", "Invalid")
        _optimistic_lock(rt, name, current, patched)
        meta = patched.get("metadata")
        if not isinstance(meta, dict):
            raise APIError(422, "the patched object has no metadata", "Invalid")
        if meta.get("name", name) != name:
            raise APIError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
                "BadRequest",
            )
        validate_metadata(rt, name, meta)
        if sub == "status":
            # The status subresource changes the status only (each kind's StatusStrategy).
            patched = {**copy.deepcopy(current), "status": patched.get("status")}
        else:
            patched.pop("status", None)
            if "status" in current:
                patched["status"] = copy.deepcopy(current["status"])
        stored = self._write(
            rt,
            version,
            key,
            patched,
            ManagerKey(self._manager(req), "Update", sub or ""),
            dry_run=dry_run,
        )
        return _json(200, self.present(rt, version, stored))

    def _delete_options(self, req: Request) -> tuple[dict[str, Any], str | None]:
        """The request's DeleteOptions (body, or query parameters) and propagation policy."""
        options = self._body(req) if req.body else None
        if options is not None and not isinstance(options, dict):
            raise APIError(
                400, "the body of the request could not be decoded as an object", "BadRequest"
            )
        options = dict(options or {})
        policy = options.get("propagationPolicy") or req.param("propagationPolicy")
        if policy is None:
            orphan = options.get("orphanDependents", req.param("orphanDependents"))
            if orphan is not None:
                policy = "Orphan" if orphan in (True, *_TRUE) else "Background"
        if policy is not None and policy not in _POLICIES:
            raise APIError(
                422,
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                f'"{policy}": supported values: "Foreground", "Background", "Orphan"',
                "Invalid",
                {"group": "meta.k8s.io", "kind": "DeleteOptions"},
            )
        return options, policy

    def _delete_one(self, req: Request, rt: ResourceType, version: str, key: Key) -> Response:
        obj = self._objects.get(key)
        if obj is None:
            raise not_found(rt, key[3])
        options, policy = self._delete_options(req)
        preconditions = options.get("preconditions")
        for name, field_name in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            want = preconditions.get(name) if isinstance(preconditions, dict) else None
            have = obj["metadata"].get(name)
            if want is not None and want != have:
                # The words of apimachinery's storage.Preconditions.Check.
                raise APIError(
                    409,
                    f"Precondition failed: {field_name} in precondition: {want}, {field_name} in "
                    f"object meta: {have}",
                    "Conflict",
                    details(rt, key[3]),
                )
        dry_run = req.param("dryRun") == "All"
        if rt is _NAMESPACES:
            return _json(200, self.present(rt, version, self._terminate(key, dry_run=dry_run)))
        presented = self.present(rt, version, obj)
        if not dry_run:
            if policy == "Orphan":
                self._orphan(obj["metadata"]["uid"])
            self._drop(key, cascade=policy != "Orphan")
        meta = presented["metadata"]
        if rt.group == "" and rt.plural == "pods":
            # Graceful deletion: the pod comes back with its deletionTimestamp (the kubelet
            # would take the grace period to stop it; here it is gone at once).
            grace = options.get("gracePeriodSeconds", req.param("gracePeriodSeconds"))
            meta["deletionTimestamp"] = timestamp(self._now())
            meta["deletionGracePeriodSeconds"] = _int_param(
                "30" if grace is None else str(grace), "gracePeriodSeconds"
            )
            return _json(200, presented)
        if policy in ("Foreground", "Orphan"):
            # The object as the garbage collector's finalizer holds it (a real server answers
            # before the collector is done; here it is done).
            meta["deletionTimestamp"] = timestamp(self._now())
            finalizer = "foregroundDeletion" if policy == "Foreground" else "orphan"
            meta["finalizers"] = [*meta.get("finalizers", []), finalizer]
            return _json(200, presented)
        return _json(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details(rt, key[3], uid=obj["metadata"]["uid"]),
            },
        )

    def _terminate(self, key: Key, *, dry_run: bool) -> dict[str, Any]:
        """Start deleting a namespace, as its registry does
        (``pkg/registry/core/namespace/storage/storage.go``): the namespace turns Terminating
        with a deletionTimestamp; nothing can be created in it any more, and what it holds is
        deleted by :meth:`finalize_namespaces` (the namespace controller's work). Not at once:
        ``kubectl delete -f`` of a file with the namespace first and its objects after deletes
        each of them on a real cluster, and prints ``… deleted`` for each."""
        name = key[3]
        obj = self._objects[key]
        if name in _IMMORTAL_NAMESPACES:
            # NamespaceLifecycle's immortal namespaces.
            raise APIError(
                403,
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                "Forbidden",
                {"name": name, "kind": "namespaces"},
            )
        if _terminating(obj):
            raise APIError(
                409,
                f'Operation cannot be fulfilled on namespaces "{name}": The system is ensuring '
                "all content is removed from this namespace.  Upon completion, this namespace "
                "will automatically be purged by the system.",
                "Conflict",
                {"name": name, "kind": "namespaces"},
            )
        terminating = copy.deepcopy(obj)
        terminating["metadata"]["deletionTimestamp"] = timestamp(self._now())
        terminating["status"] = {"phase": "Terminating"}
        if dry_run:
            return terminating
        self._store(key, terminating)
        return terminating

    def finalize_namespaces(self, *names: str) -> builtins.list[str]:
        """Delete what the Terminating namespaces (those named, or all) hold, then the
        namespaces, as the namespace controller does; their names."""
        with self._lock:
            try:
                done = []
                for key, obj in list(self._objects.items()):
                    if key[:2] == ("", "namespaces") and _terminating(obj):
                        if names and key[3] not in names:
                            continue
                        self._drop(key)
                        done.append(key[3])
                return done
            finally:
                self._dispatch()

    def _orphan(self, uid: str) -> None:
        """Take the owner references to ``uid`` out of its dependents (the garbage
        collector's orphan finalizer)."""
        for key, obj in list(self._objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            kept = [r for r in refs if not (isinstance(r, dict) and r.get("uid") == uid)]
            if len(kept) != len(refs):
                changed = copy.deepcopy(obj)
                if kept:
                    changed["metadata"]["ownerReferences"] = kept
                else:
                    del changed["metadata"]["ownerReferences"]
                self._store(key, changed)

    def _delete_collection(
        self, req: Request, rt: ResourceType, version: str, ns: str | None
    ) -> Response:
        _, policy = self._delete_options(req)
        selectors = {k: v for k, v in req.query.items() if k in ("labelSelector", "fieldSelector")}
        listed = self._list(rt, version, ns, selectors)
        if req.param("dryRun") != "All":
            for item in listed["items"]:
                meta = item["metadata"]
                key: Key = (rt.group, rt.plural, meta.get("namespace", ""), meta["name"])
                if policy == "Orphan":
                    self._orphan(meta["uid"])
                self._drop(key, cascade=policy != "Orphan")
        return _json(200, listed)

    def _review(self, req: Request, rt: ResourceType, version: str) -> Response:
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise APIError(
                400, "the body of the request could not be decoded as an object", "BadRequest"
            )
        spec = body["spec"]
        answer: dict[str, Any] = {
            "kind": rt.kind,
            "apiVersion": gv(rt.group, version),
            "metadata": {"creationTimestamp": None},
            "spec": spec,
        }
        admin = (
            'RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" of ClusterRole '
            '"cluster-admin" to Group "kubeadm:cluster-admins"'
        )
        if rt.plural == "selfsubjectaccessreviews":
            attrs = spec.get("resourceAttributes") or {}
            allowed = (
                not attrs
                or self.authorize is None
                or self.authorize(
                    Attributes(
                        req.user,
                        str(attrs.get("verb") or ""),
                        str(attrs.get("group") or ""),
                        str(attrs.get("resource") or ""),
                        str(attrs.get("subresource") or ""),
                        str(attrs.get("namespace") or ""),
                        str(attrs.get("name") or ""),
                    )
                )
            )
            answer["status"] = {"allowed": True, "reason": admin} if allowed else {"allowed": False}
        else:
            answer["status"] = {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        return _json(201, answer)

    # ---- the store -------------------------------------------------------------------

    def _require_namespace(
        self,
        ns: str,
        *,
        creating: bool = False,
        rt: ResourceType | None = None,
        name: str = "",
    ) -> None:
        """404 for a namespace that does not exist; 403 for a create in one that is being
        deleted, as the NamespaceLifecycle admission plugin says it
        (``k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go``)."""
        namespace = self._objects.get(("", "namespaces", "", ns))
        if namespace is None:
            raise APIError(
                404, f'namespaces "{ns}" not found', "NotFound", {"name": ns, "kind": "namespaces"}
            )
        if creating and rt is not None and _terminating(namespace):
            raise APIError(
                403,
                f'{rt.qualified} "{name}" is forbidden: unable to create new content in '
                f"namespace {ns} because it is being terminated",
                "Forbidden",
                details(
                    rt,
                    name,
                    causes=[
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {ns} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                ),
            )

    def _write(
        self,
        rt: ResourceType,
        version: str,
        key: Key,
        body: dict[str, Any],
        me: ManagerKey,
        *,
        apply: bool = False,
        force: bool = True,
        dry_run: bool = False,
        admit: bool = True,
    ) -> dict[str, Any]:
        """Store ``body`` as the object at ``key`` (for an apply, the applied configuration,
        merged by field ownership) with the server-set metadata kept or made, after the
        namespace's lifecycle and ``admission`` (if ``admit``) let it; returns the stored (or,
        dry-run, the would-be) object. A write that changes nothing stores nothing."""
        group, _, ns, name = key
        api_version = gv(group, version)
        current = self._objects.get(key)
        if current is None and rt.namespaced:
            self._require_namespace(ns, creating=True, rt=rt, name=name)
        now = timestamp(self._now())
        schema = schema_for(rt)
        owners = owners_of(current["metadata"].get("managedFields")) if current else {}
        if apply:
            new_obj, owners = server_side_apply(
                current, body, owners, me, schema, api_version, now, force=force
            )
        else:
            new_obj = copy.deepcopy(body)
            requested = (new_obj.get("metadata") or {}).get("managedFields")
            if (
                current is not None
                and isinstance(requested, list)
                and requested
                and requested != current["metadata"].get("managedFields")
            ):
                # The request wrote managedFields itself (a client upgrading client-side-apply
                # ownership, csaupgrade): the server takes them as the record
                # (fieldmanager's decodeLiveOrNew).
                owners = owners_of(requested)
            owners = record_update(owners, me, current, new_obj, schema, api_version, now)
        self._settle(rt, key, current, new_obj, now)
        if admit and self.admission is not None:
            # After the field manager, as in the apiserver's handlers: what admission changes
            # is owned by no one.
            new_obj = self.admission.admit(
                "CREATE" if current is None else "UPDATE",
                rt,
                new_obj,
                copy.deepcopy(current) if current is not None else None,
                dry_run=dry_run,
            )
            self._settle(rt, key, current, new_obj, now)
        meta = new_obj["metadata"]
        if current is not None and "generation" in meta and _spec_of(current) != _spec_of(new_obj):
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        meta["managedFields"] = managed_fields(owners)
        if not meta["managedFields"]:
            del meta["managedFields"]
        if current is not None and _without_volatile(current) == _without_volatile(new_obj):
            # A no-op keeps the stored object, managedFields times included.
            return current
        if dry_run:
            return new_obj
        self._store(key, new_obj)
        return new_obj

    def _settle(
        self,
        rt: ResourceType,
        key: Key,
        current: Mapping[str, Any] | None,
        new_obj: dict[str, Any],
        now: str,
    ) -> None:
        """The metadata the server sets, whatever the request said: name and namespace from
        the path, uid, creationTimestamp, resourceVersion, generation and deletion kept (or
        made, on create); a namespace's phase and finalizer; no empty labels/annotations."""
        _, _, ns, name = key
        new_obj["apiVersion"] = rt.api_version  # stored at the storage version
        new_obj["kind"] = rt.kind
        meta = new_obj.get("metadata")
        if not isinstance(meta, dict):
            meta = new_obj["metadata"] = {}
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        kept = (
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        )
        if current is not None:
            cmeta = current["metadata"]
            for field_name in kept:
                if field_name in cmeta:
                    meta[field_name] = cmeta[field_name]
                else:
                    meta.pop(field_name, None)
            if "status" in current and "status" not in new_obj:
                new_obj["status"] = copy.deepcopy(current["status"])
        else:
            for field_name in kept:
                meta.pop(field_name, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now
            if rt.group not in _NO_GENERATION:
                meta["generation"] = 1
        if rt is _NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            new_obj["spec"] = {"finalizers": ["kubernetes"]}
            terminating = current is not None and _terminating(current)
            new_obj["status"] = {"phase": "Terminating" if terminating else "Active"}
        for m in ("labels", "annotations"):
            if m in meta and not meta[m]:
                del meta[m]

    def _store(self, key: Key, obj: dict[str, Any]) -> None:
        """Keep ``obj`` (never changed afterwards) at a new resourceVersion; an event."""
        old = self._objects.get(key)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[key] = obj
        self._event("MODIFIED" if old is not None else "ADDED", key, obj, old)

    def _drop(self, key: Key, *, cascade: bool = True) -> dict[str, Any] | None:
        """Remove an object, its dependents (owner references; unless not ``cascade``) and,
        for a namespace, its contents, as the garbage collector and the namespace controller
        would."""
        if key not in self._objects:
            return None
        if key[:2] == ("", "namespaces"):
            for k in [k for k in self._objects if k[2] == key[3] and k[:2] != key[:2]]:
                self._drop(k)
        obj = self._objects.pop(key)
        self._rv += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._event("DELETED", key, gone, obj)
        uid = obj["metadata"]["uid"]
        if cascade:
            for k, o in list(self._objects.items()):
                refs = o["metadata"].get("ownerReferences") or []
                if any(isinstance(r, dict) and r.get("uid") == uid for r in refs):
                    self._drop(k)
        return obj

    def _event(self, kind: str, key: Key, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        event = WatchEvent(kind, key[0], key[1], key[2] or None, obj, self._rv, old)
        if len(self._history) == self._history.maxlen:
            self._history_floor = self._history[0].resource_version
        self._history.append(event)
        self._pending.append(event)

    def _dispatch(self) -> None:
        """Tell the subscribers of the pending events, in order; a subscriber's own writes
        are told after the event that caused them."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                event = self._pending.popleft()
                for callback in list(self._subscribers):
                    try:
                        callback(event)
                    except Exception:
                        # The write is done: a subscriber's failure is its own, not the
                        # request's.
                        if self.on_internal_error is not None:
                            self.on_internal_error(traceback.format_exc())
        finally:
            self._dispatching = False

    # ---- the scale subresource ---------------------------------------------------------

    def _scale_of(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """An ``autoscaling/v1`` Scale of a workload (``scaleFromDeployment`` in
        ``pkg/registry/apps/deployment/storage/storage.go``; ReplicaSets and StatefulSets
        alike)."""
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        replicas = spec.get("replicas", 1)
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": replicas} if replicas else {},
            "status": {
                "replicas": int(status.get("replicas") or 0),
                "selector": selector_string(spec.get("selector")),
            },
        }

    def _scale(self, req: Request, rt: ResourceType, version: str, key: Key) -> Response:
        """GET, PUT and PATCH of ``<workload>/scale``: the Scale's ``spec.replicas`` is the
        workload's."""
        current = self._objects.get(key)
        if current is None:
            raise not_found(rt, key[3])
        scale = self._scale_of(self.present(rt, version, current))
        if req.method == "GET":
            return _json(200, scale)
        if req.method == "PUT":
            body = self._body(req)
            if not isinstance(body, dict):
                raise APIError(
                    400, "the body of the request could not be decoded as an object", "BadRequest"
                )
            new_scale = body
        elif req.method == "PATCH":
            ctype = req.headers.get("content-type", "").split(";")[0].strip()
            try:
                patch = json.loads(req.body) if req.body else None
            except ValueError:
                raise APIError(400, "error decoding patch: invalid JSON", "BadRequest") from None
            if ctype == "application/json-patch+json":
                new_scale = json_patch(scale, patch)
            elif ctype in (
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ):
                if not isinstance(patch, dict):
                    raise APIError(400, "merge patch must be an object", "BadRequest")
                new_scale = merge_patch(scale, patch)
            else:
                raise APIError(
                    415,
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/strategic-merge-patch+json",
                    "UnsupportedMediaType",
                )
        else:
            raise APIError(405, _NOT_ALLOWED, "MethodNotAllowed")
        _optimistic_lock(rt, key[3], current, new_scale)
        replicas = (
            (new_scale.get("spec") or {}).get("replicas", 0) if isinstance(new_scale, dict) else 0
        )
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise APIError(
                422,
                f'Scale.autoscaling "{key[3]}" is invalid: spec.replicas: Invalid value: '
                f"{json.dumps(replicas)}: must be greater than or equal to 0",
                "Invalid",
                {"name": key[3], "group": "autoscaling", "kind": "Scale"},
            )
        scaled = copy.deepcopy(current)
        scaled.setdefault("spec", {})["replicas"] = replicas
        stored = self._write(
            rt,
            version,
            key,
            scaled,
            ManagerKey(self._manager(req), "Update", "scale"),
            dry_run=req.param("dryRun") == "All",
        )
        return _json(200, self._scale_of(self.present(rt, version, stored)))

    # ---- watch -----------------------------------------------------------------------

    def open_watch(self, req: Request) -> Watch | Response:
        """Start a watch (``GET …?watch=true``): a :class:`Watch` that says what to send first
        and how to filter and encode the store events that follow (subscribe in the same
        step: ``matches`` drops what the opening already covers), or the error Response for
        a request that cannot be watched."""
        try:
            with self._lock:
                return self._open_watch(req)
        except APIError as e:
            return Response(e.code, compact(e.status()), headers=e.headers)

    def _open_watch(self, req: Request) -> Watch:
        _only(req, "GET")
        target = self.resource_for(req.path)
        rt = target.rt
        if rt is None or target.subresource is not None:
            raise APIError(405, _NOT_ALLOWED, "MethodNotAllowed")
        self.check_access(req)
        _verb(rt, "watch")
        params = dict(req.query)
        if target.name is not None:
            # The legacy watch of one object: a list watch on its name.
            params["fieldSelector"] = ",".join(
                s for s in (params.get("fieldSelector"), f"metadata.name={target.name}") if s
            )
        labels = label_selector(params["labelSelector"]) if params.get("labelSelector") else None
        fields = (
            field_selector(params["fieldSelector"], rt, custom=self._is_custom(rt.group))
            if params.get("fieldSelector")
            else None
        )
        bookmarks = params.get("allowWatchBookmarks") in _TRUE
        send_initial = params.get("sendInitialEvents") in _TRUE
        if send_initial and not (
            bookmarks and params.get("resourceVersionMatch") == "NotOlderThan"
        ):
            # ValidateListOptions in apimachinery's pkg/apis/meta/internalversion/validation.
            raise APIError(
                422,
                'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: '
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is "
                "enabled, resourceVersionMatch is set to NotOlderThan and allowWatchBookmarks is "
                "set to true",
                "Invalid",
                {"group": "meta.k8s.io", "kind": "ListOptions"},
            )
        timeout = _int_param(params.get("timeoutSeconds"), "timeoutSeconds") or None
        watch = Watch(
            self,
            rt,
            target.version,
            target.namespace,
            labels,
            fields,
            table_version(req.headers.get("accept", "")),
            params.get("includeObject") or "Metadata",
            bookmarks,
            self._rv,
            timeout,
        )
        rv_param = params.get("resourceVersion") or ""
        if send_initial or rv_param in ("", "0"):
            # "Start at most recent" (or "any"): the current objects first, as ADDED.
            for key in sorted(self._objects):
                obj = self._objects[key]
                if key[:2] == (rt.group, rt.plural):
                    event = WatchEvent(
                        "ADDED",
                        key[0],
                        key[1],
                        key[2] or None,
                        obj,
                        int(obj["metadata"].get("resourceVersion") or 0),
                    )
                    if watch.passes(obj):
                        watch.initial.append(event)
            watch.initial_events_end = send_initial
            return watch
        try:
            since = int(rv_param)
        except ValueError:
            raise APIError(
                400,
                f'resourceVersion: Invalid value: "{rv_param}": strconv.ParseUint: parsing '
                f'"{rv_param}": invalid syntax',
                "BadRequest",
            ) from None
        events = self.events_since(since)
        if events is None:
            # The watch cache's words (k8s.io/apiserver/pkg/storage/cacher/
            # watch_cache_history.go), sent as the stream's one ERROR event.
            watch.error = APIError(
                410,
                f"too old resource version: {since} ({self._history_floor})",
                "Expired",
                details=None,
            ).status()
            return watch
        watch.resource_version = since
        watch.initial.extend(e for e in events if watch.matches(e))
        watch.resource_version = self._rv
        return watch

    # ---- direct access for controllers -------------------------------------------------

    def get(
        self, group: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """A copy of the stored object, or None."""
        with self._lock:
            obj = self._objects.get((group, plural, namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Copies of the stored objects of a resource (in ``namespace``), by namespace and name."""
        with self._lock:
            return [
                copy.deepcopy(o)
                for k, o in sorted(self._objects.items())
                if k[:2] == (group, plural) and (namespace is None or k[2] == namespace)
            ]

    def objects(self) -> builtins.list[dict[str, Any]]:
        """Copies of every stored object."""
        with self._lock:
            return [copy.deepcopy(o) for _, o in sorted(self._objects.items())]

    def put(self, obj: Mapping[str, Any], *, manager: str = "meshtutor") -> dict[str, Any]:
        """Create or update ``obj`` (its ``status`` too) as ``manager`` would with an update:
        an update keeps uid, creationTimestamp and the other server-set metadata, bumps the
        resourceVersion and fires an event. No admission. Raises APIError for an unknown kind
        or a namespace that does not exist."""
        with self._lock:
            try:
                api_version = str(obj.get("apiVersion") or "")
                rt = self.resource_type(api_version, str(obj.get("kind") or ""))
                meta = obj.get("metadata") or {}
                name = str(meta.get("name") or "")
                ns = str(meta.get("namespace") or "default") if rt.namespaced else ""
                if not name:
                    raise APIError(
                        422,
                        f'{rt.kind} "" is invalid: metadata.name: Required value: name or generateName is required',
                        "Invalid",
                    )
                if rt.namespaced:
                    self._require_namespace(ns)
                key: Key = (rt.group, rt.plural, ns, name)
                return copy.deepcopy(
                    self._write(
                        rt,
                        api_version.rpartition("/")[2],
                        key,
                        copy.deepcopy(dict(obj)),
                        ManagerKey(manager, "Update"),
                        admit=False,
                    )
                )
            finally:
                self._dispatch()

    def remove(
        self, group: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """Delete an object at once, with its dependents (and a namespace's contents); the
        object as it was, or None if it was not there."""
        with self._lock:
            try:
                obj = self._drop((group, plural, namespace or "", name))
                return copy.deepcopy(obj) if obj is not None else None
            finally:
                self._dispatch()

    def begin_deletion(
        self,
        group: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        grace_seconds: int = 30,
        status: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Mark an object as being deleted (``deletionTimestamp``, what ``kubectl get`` shows
        as Terminating) without removing it, as a graceful pod deletion leaves the pod until
        the kubelet is done; ``status`` replaces its status (a terminating pod is not ready).
        An update cannot set these fields, so controllers come here. The object as stored,
        or None if it is not there."""
        with self._lock:
            try:
                key: Key = (group, plural, namespace or "", name)
                obj = self._objects.get(key)
                if obj is None:
                    return None
                changed = copy.deepcopy(obj)
                meta = changed["metadata"]
                meta.setdefault("deletionTimestamp", timestamp(self._now()))
                meta.setdefault("deletionGracePeriodSeconds", grace_seconds)
                if status is not None:
                    changed["status"] = copy.deepcopy(dict(status))
                self._store(key, changed)
                return copy.deepcopy(changed)
            finally:
                self._dispatch()

    def subscribe(self, callback: Callable[[WatchEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every store event from now on; returns the unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    @property
    def resource_version(self) -> int:
        """The store's latest resourceVersion."""
        with self._lock:
            return self._rv

    def events_since(self, resource_version: int) -> builtins.list[WatchEvent] | None:
        """The store events after ``resource_version``, or None when the history no longer
        reaches back that far (a watch from there is 410 Gone)."""
        with self._lock:
            if resource_version < self._history_floor:
                return None
            return [e for e in self._history if e.resource_version > resource_version]


class Watch:
    """One watch request: the events to send first (``initial``, or the ``error`` that ends
    the stream at once), which store events it sees (``matches``) and their bytes on the
    wire (``encode``: one JSON line each, the object as the request asked: in its version,
    or as a Table for ``kubectl get -w``). Made by :meth:`APICore.open_watch`; the transport
    sends ``opening()``, then ``encode(event)`` for every subscribed event that ``matches``,
    and may send ``bookmark()`` now and then; it ends the stream after ``timeout_seconds``.
    Not thread-safe (as the apiserver's encoder: the Table's headers go with the first
    event only)."""

    def __init__(
        self,
        core: APICore,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        labels: Callable[[Mapping[str, str]], bool] | None,
        fields: Callable[[Mapping[str, Any]], bool] | None,
        table_version: str | None,
        include_object: str,
        allow_bookmarks: bool,
        resource_version: int,
        timeout_seconds: int | None,
    ) -> None:
        self.core = core
        self.rt = rt
        self.version = version
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.table_version = table_version
        self.include_object = include_object
        self.allow_bookmarks = allow_bookmarks
        self.resource_version = resource_version
        """Events up to this resourceVersion are in ``initial`` (or were before the watch)."""
        self.timeout_seconds = timeout_seconds
        self.initial: list[WatchEvent] = []
        self.initial_events_end = False
        """Send the ``k8s.io/initial-events-end`` bookmark after ``initial``
        (``sendInitialEvents=true``)."""
        self.error: dict[str, Any] | None = None
        """A Status to send as the one ERROR event (410 Expired), after which the stream ends."""
        self.content_type = "application/json"
        self._headers_sent = False

    def passes(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` is one this watch selects (namespace, labels, fields)."""
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.labels is not None and not self.labels(meta.get("labels") or {}):
            return False
        return self.fields is None or self.fields(
            self.core.present(self.rt, self.rt.versions[0], obj)
        )

    def matches(self, event: WatchEvent) -> bool:
        """Whether this watch sends ``event``: its resource, newer than what it has sent,
        and selected before or after the change."""
        if (event.group, event.plural) != (self.rt.group, self.rt.plural):
            return False
        if event.resource_version <= self.resource_version:
            return False
        return self.passes(event.object) or (
            event.old_object is not None and self.passes(event.old_object)
        )

    def _seen(self, event: WatchEvent) -> tuple[str, dict[str, Any]]:
        # An object that stops (starts) matching is DELETED (ADDED) for this watch, as the
        # cacher's convertToWatchEvent says.
        now = self.passes(event.object)
        before = event.old_object is not None and self.passes(event.old_object)
        if event.type == "MODIFIED" and not now:
            gone = copy.deepcopy(event.old_object or event.object)
            gone["metadata"]["resourceVersion"] = str(event.resource_version)
            return "DELETED", gone
        if event.type == "MODIFIED" and not before:
            return "ADDED", event.object
        return event.type, event.object

    def encode(self, event: WatchEvent) -> bytes:
        """The line for ``event`` (``{"type":…,"object":…}``)."""
        kind, obj = self._seen(event)
        self.resource_version = max(self.resource_version, event.resource_version)
        with self.core._lock:
            if self.table_version is None:
                body = self.core.present(self.rt, self.version, obj)
            else:
                meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                body = self.core._table(
                    self.rt,
                    self.version,
                    [obj],
                    meta,
                    self.table_version,
                    self.include_object,
                    headers=not self._headers_sent,
                )
                self._headers_sent = True
        return compact({"type": kind, "object": body}) + b"\n"

    def opening(self) -> list[bytes]:
        """The lines to send first: the ERROR that ends the stream, or the initial events
        (then the initial-events-end bookmark, if asked)."""
        if self.error is not None:
            return [compact({"type": "ERROR", "object": self.error}) + b"\n"]
        lines = [self.encode(e) for e in self.initial]
        self.resource_version = max(self.resource_version, self.core.resource_version)
        if self.initial_events_end:
            lines.append(self._bookmark({"k8s.io/initial-events-end": "true"}))
        return lines

    def bookmark(self) -> bytes | None:
        """A BOOKMARK line at the latest resourceVersion sent, if the request allowed them."""
        return self._bookmark(None) if self.allow_bookmarks else None

    def _bookmark(self, annotations: dict[str, str] | None) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(self.resource_version)}
        if annotations:
            meta["annotations"] = annotations
        obj = {
            "kind": self.rt.kind,
            "apiVersion": gv(self.rt.group, self.version),
            "metadata": meta,
        }
        return compact({"type": "BOOKMARK", "object": obj}) + b"\n"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _json(status: int, body: Any, content_type: str = "application/json") -> Response:
    return Response(status, compact(body), content_type)


def _only(req: Request, *methods: str) -> None:
    if req.method not in methods:
        raise APIError(405, _NOT_ALLOWED, "MethodNotAllowed")


def _verb(rt: ResourceType, verb: str) -> None:
    if verb not in rt.verbs:
        raise APIError(405, _NOT_ALLOWED, "MethodNotAllowed")


def _int_param(value: str | None, name: str) -> int:
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise APIError(
            400, f'strconv.ParseInt: parsing "{value}": invalid syntax', "BadRequest"
        ) from None


def _optimistic_lock(
    rt: ResourceType, name: str, current: Mapping[str, Any] | None, body: Any
) -> None:
    """A resourceVersion in a patch, an apply or an update is a precondition: the write fails
    with 409 Conflict unless it is the stored object's (the check in Store.Update, apiserver's
    pkg/registry/generic/registry/store.go; kubernetes#63104 for patches). An apply that
    creates the object ignores it."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    if rv and current is not None and rv != current["metadata"]["resourceVersion"]:
        raise APIError(
            409,
            f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            "Conflict",
            details(rt, name),
        )


def _terminating(namespace: Mapping[str, Any]) -> bool:
    return bool((namespace.get("metadata") or {}).get("deletionTimestamp"))


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


def _without_volatile(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as a no-op write leaves it: a write that changes only the times of
    managedFields entries is not stored (fieldmanager's
    ``IgnoreManagedFieldsTimestampsTransformer``)."""
    out = dict(obj)
    meta = {
        k: v
        for k, v in (out.get("metadata") or {}).items()
        if k not in ("resourceVersion", "generation")
    }
    if isinstance(meta.get("managedFields"), list):
        meta["managedFields"] = sorted(
            (
                json.dumps({k: v for k, v in e.items() if k != "time"}, sort_keys=True)
                for e in meta["managedFields"]
            ),
        )
    out["metadata"] = meta
    return out


_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _random_suffix() -> str:
    """Five characters of the alphabet ``generateName`` uses (apiserver's
    ``names.SimpleNameGenerator``)."""
    raw = uuid.uuid4().bytes
    return "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in raw[:5])
