"""``APICore`` driven with requests as a transport hands them over: what a kubectl user would
see (status codes, the ``Status`` messages kubectl prints, what stays in the store).

Every message asserted here is the real kube-apiserver's text; the source file is named next
to it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meshtutor.kubeapi.core import APICore, Request, Response, Watch, WatchEvent
from meshtutor.kubeapi.protocol import APIError
from meshtutor.kubeapi.resources import (
    BUILTIN_GROUPS,
    ISTIO_SECURITY,
    ResourceType,
)

JSON = "application/json"
APPLY = "application/apply-patch+yaml"
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


def call(
    core: APICore,
    method: str,
    path: str,
    body: Any = None,
    *,
    ctype: str = JSON,
    accept: str = JSON,
    **query: str,
) -> tuple[int, Any]:
    """One request; the answer's status and its JSON (or text)."""
    raw = b"" if body is None else json.dumps(body).encode()
    resp = core.handle(Request(method, path, query, {"content-type": ctype, "accept": accept}, raw))
    if resp.content_type.startswith("application/json"):
        return resp.status, json.loads(resp.body)
    return resp.status, resp.body.decode()


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def config_map(name: str, namespace: str = "demo", **data: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
    }
    if data:
        body["data"] = data
    return body


def deployment(name: str = "web", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "demo", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "registry.local/web:1"}]},
            },
        },
    }


def peer_authentication(mode: str = "STRICT") -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "demo"},
        "spec": {"mtls": {"mode": mode}},
    }


@pytest.fixture
def core() -> APICore:
    api = APICore(groups=(*BUILTIN_GROUPS, ISTIO_SECURITY))
    assert call(api, "POST", "/api/v1/namespaces", namespace("demo"))[0] == 201
    return api


def recorded(core: APICore) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    core.subscribe(events.append)
    return events


# ---- namespaces go through Terminating ------------------------------------------------


def test_a_deleted_namespace_is_terminating_until_finalized(core: APICore) -> None:
    """``pkg/registry/core/namespace/storage/storage.go`` (Delete: phase Terminating, a
    deletionTimestamp, then the Conflict while the namespace controller works) and the
    NamespaceLifecycle admission plugin
    (``k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go``: a create in a
    terminating namespace is Forbidden)."""
    call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("settings"))
    status, deleted = call(core, "DELETE", "/api/v1/namespaces/demo")
    assert status == 200
    assert deleted["kind"] == "Namespace"
    assert deleted["status"] == {"phase": "Terminating"}
    assert deleted["metadata"]["deletionTimestamp"]

    status, shown = call(core, "GET", "/api/v1/namespaces/demo")
    assert (status, shown["status"]["phase"]) == (200, "Terminating")
    # Its contents go with the namespace controller (finalize_namespaces); until then they can
    # be read, changed and deleted, as `kubectl delete -f` of the namespace and its objects
    # does on a real cluster.
    assert call(core, "GET", "/api/v1/namespaces/demo/configmaps/settings")[0] == 200

    status, refused = call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("again"))
    assert status == 403
    assert refused["reason"] == "Forbidden"
    assert refused["message"] == (
        'configmaps "again" is forbidden: unable to create new content in namespace demo '
        "because it is being terminated"
    )
    assert refused["details"]["causes"] == [
        {
            "reason": "NamespaceTerminating",
            "message": "namespace demo is being terminated",
            "field": "metadata.namespace",
        }
    ]
    # A server-side apply that would create is a create too.
    status, refused = call(
        core,
        "PATCH",
        "/apis/security.istio.io/v1/namespaces/demo/peerauthentications/default",
        peer_authentication(),
        ctype=APPLY,
        fieldManager="kubectl",
    )
    assert (status, refused["message"]) == (
        403,
        'peerauthentications.security.istio.io "default" is forbidden: unable to create new '
        "content in namespace demo because it is being terminated",
    )
    # Controllers in the process are held to it as well.
    with pytest.raises(APIError) as err:
        core.put(config_map("from-a-controller"))
    assert err.value.code == 403

    status, again = call(core, "DELETE", "/api/v1/namespaces/demo")
    assert (status, again["reason"], again["message"]) == (
        409,
        "Conflict",
        'Operation cannot be fulfilled on namespaces "demo": The system is ensuring all '
        "content is removed from this namespace.  Upon completion, this namespace will "
        "automatically be purged by the system.",
    )

    events = recorded(core)
    assert core.finalize_namespaces() == ["demo"]
    assert [(e.type, e.plural, e.object["metadata"]["name"]) for e in events] == [
        ("DELETED", "configmaps", "settings"),
        ("DELETED", "namespaces", "demo"),
    ]
    status, gone = call(core, "GET", "/api/v1/namespaces/demo")
    assert (status, gone["message"]) == (404, 'namespaces "demo" not found')
    assert call(core, "POST", "/api/v1/namespaces", namespace("demo"))[0] == 201
    assert call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("again"))[0] == 201


def test_the_namespaces_every_cluster_needs_may_not_be_deleted(core: APICore) -> None:
    """NamespaceLifecycle's immortal namespaces (``admission.go``: "this namespace may not be
    deleted")."""
    status, refused = call(core, "DELETE", "/api/v1/namespaces/default")
    assert (status, refused["message"]) == (
        403,
        'namespaces "default" is forbidden: this namespace may not be deleted',
    )
    assert call(core, "GET", "/api/v1/namespaces/default")[1]["status"]["phase"] == "Active"


def test_deleting_an_owner_deletes_or_orphans_its_dependents(core: APICore) -> None:
    """The garbage collector's propagation policies; an unknown one is the validation error
    of ``DeleteOptions`` (``pkg/apis/meta/v1/validation``: ``Unsupported value``)."""
    _, owner = call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("owner"))
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    for name in ("a", "b"):
        body = config_map(name)
        body["metadata"]["ownerReferences"] = [ref]
        call(core, "POST", "/api/v1/namespaces/demo/configmaps", body)
    status, refused = call(
        core, "DELETE", "/api/v1/namespaces/demo/configmaps/owner", {"propagationPolicy": "Later"}
    )
    assert (status, refused["reason"]) == (422, "Invalid")
    assert 'propagationPolicy: Unsupported value: "Later"' in refused["message"]

    status, held = call(
        core, "DELETE", "/api/v1/namespaces/demo/configmaps/owner", {"propagationPolicy": "Orphan"}
    )
    assert (status, held["metadata"]["finalizers"]) == (200, ["orphan"])
    _, left = call(core, "GET", "/api/v1/namespaces/demo/configmaps")
    assert [
        (i["metadata"]["name"], i["metadata"].get("ownerReferences")) for i in left["items"]
    ] == [
        ("a", None),
        ("b", None),
    ]


# ---- dry run -----------------------------------------------------------------------------


def test_a_dry_run_answers_as_the_write_would_and_stores_nothing(core: APICore) -> None:
    events = recorded(core)
    before = core.resource_version
    status, preview = call(
        core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("x", k="v"), dryRun="All"
    )
    assert (status, preview["data"]) == (201, {"k": "v"})
    assert call(core, "GET", "/api/v1/namespaces/demo/configmaps/x")[0] == 404
    status, _ = call(
        core,
        "PATCH",
        "/apis/apps/v1/namespaces/demo/deployments/web",
        deployment(),
        ctype=APPLY,
        fieldManager="kubectl",
        dryRun="All",
    )
    assert status == 201
    assert core.get("apps", "deployments", "demo", "web") is None

    call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("kept", k="v"))
    events.clear()
    before = core.resource_version
    status, _ = call(
        core,
        "PATCH",
        "/api/v1/namespaces/demo/configmaps/kept",
        {"data": {"k": "changed"}},
        ctype=MERGE,
        dryRun="All",
    )
    assert status == 200
    assert call(core, "DELETE", "/api/v1/namespaces/demo/configmaps/kept", dryRun="All")[0] == 200
    status, terminating = call(core, "DELETE", "/api/v1/namespaces/demo", dryRun="All")
    assert (status, terminating["status"]["phase"]) == (200, "Terminating")

    assert core.get("", "configmaps", "demo", "kept")["data"] == {"k": "v"}  # type: ignore[index]
    assert call(core, "GET", "/api/v1/namespaces/demo")[1]["status"]["phase"] == "Active"
    assert (events, core.resource_version) == ([], before)
    status, refused = call(core, "DELETE", "/api/v1/namespaces/demo", dryRun="true")
    assert (status, refused["message"]) == (
        400,
        'Invalid dryRun value "true"; the only valid value is "All"',
    )


# ---- admission -----------------------------------------------------------------------------


class Gate:
    """An admission that refuses ConfigMaps labelled ``refuse`` and labels the others."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []

    def admit(
        self,
        op: str,
        rt: ResourceType,
        new: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        self.calls.append((op, new["metadata"]["name"], dry_run))
        labels: Mapping[str, str] = new["metadata"].get("labels") or {}
        if rt.plural == "configmaps" and "refuse" in labels:
            raise APIError(
                422,
                f'ConfigMap "{new["metadata"]["name"]}" is invalid: metadata.labels: refused',
                "Invalid",
            )
        if rt.plural == "configmaps":
            new["metadata"].setdefault("labels", {})["admitted"] = "yes"
        return new


def test_admission_sees_every_write_and_a_refusal_leaves_nothing() -> None:
    gate = Gate()
    core = APICore(admission=gate)
    call(core, "POST", "/api/v1/namespaces", namespace("demo"))
    events = recorded(core)
    status, created = call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("ok"))
    assert (status, created["metadata"]["labels"]) == (201, {"admitted": "yes"})

    refused_body = config_map("no")
    refused_body["metadata"]["labels"] = {"refuse": "1"}
    before = core.resource_version
    status, refused = call(core, "POST", "/api/v1/namespaces/demo/configmaps", refused_body)
    assert (status, refused["message"]) == (
        422,
        'ConfigMap "no" is invalid: metadata.labels: refused',
    )
    status, _ = call(
        core,
        "PATCH",
        "/api/v1/namespaces/demo/configmaps/ok",
        {"metadata": {"labels": {"refuse": "1"}}, "data": {"k": "v"}},
        ctype=MERGE,
    )
    assert status == 422
    stored = core.get("", "configmaps", "demo", "ok")
    assert stored is not None and "data" not in stored
    assert core.get("", "configmaps", "demo", "no") is None
    assert core.resource_version == before
    assert [e.type for e in events] == ["ADDED"]

    call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("dry"), dryRun="All")
    assert gate.calls == [
        ("CREATE", "demo", False),
        ("CREATE", "ok", False),
        ("CREATE", "no", False),
        ("UPDATE", "ok", False),
        ("CREATE", "dry", True),
    ]


# ---- field ownership and patches ------------------------------------------------------------


def test_a_re_apply_after_a_rollout_restart_starts_no_second_rollout(core: APICore) -> None:
    """``kubectl rollout restart`` patches the template's ``restartedAt`` annotation as
    ``kubectl-rollout``; the manifest applied again does not carry it, and server-side apply
    leaves a field another manager owns (structured-merge-diff's ``Updater.Apply``): the
    template, and so the generation, stay as they are."""
    path = "/apis/apps/v1/namespaces/demo/deployments/web"
    call(core, "PATCH", path, deployment(), ctype=APPLY, fieldManager="meshtutor", force="true")
    restart = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01"}}
            }
        }
    }
    _, restarted = call(core, "PATCH", path, restart, ctype=SMP, fieldManager="kubectl-rollout")
    assert restarted["metadata"]["generation"] == 2
    status, again = call(
        core, "PATCH", path, deployment(), ctype=APPLY, fieldManager="meshtutor", force="true"
    )
    assert status == 200
    assert again["metadata"]["generation"] == 2
    assert again["metadata"]["resourceVersion"] == restarted["metadata"]["resourceVersion"]
    assert again["spec"]["template"]["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/restartedAt": "2025-01-01"
    }


def test_an_apply_changing_a_field_someone_else_set_conflicts(core: APICore) -> None:
    """The message of apimachinery's ``pkg/util/managedfields/internal/conflict.go``."""
    path = "/apis/apps/v1/namespaces/demo/deployments/web"
    call(core, "PATCH", path, deployment(), ctype=APPLY, fieldManager="meshtutor")
    call(core, "PATCH", path, {"spec": {"replicas": 5}}, ctype=MERGE, fieldManager="kubectl-edit")
    status, refused = call(
        core, "PATCH", path, deployment(replicas=3), ctype=APPLY, fieldManager="meshtutor"
    )
    assert (status, refused["reason"]) == (409, "Conflict")
    assert refused["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas'
    )
    assert refused["details"] == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "kubectl-edit" using apps/v1',
                "field": ".spec.replicas",
            }
        ]
    }
    # The same value is no conflict: the field is shared.
    status, _ = call(
        core, "PATCH", path, deployment(replicas=5), ctype=APPLY, fieldManager="meshtutor"
    )
    assert status == 200


def test_a_field_left_out_of_the_next_apply_goes_unless_another_manager_owns_it(
    core: APICore,
) -> None:
    path = "/apis/apps/v1/namespaces/demo/deployments/web"
    first = deployment()
    first["metadata"]["labels"]["tier"] = "front"
    call(core, "PATCH", path, first, ctype=APPLY, fieldManager="meshtutor")
    call(
        core,
        "PATCH",
        path,
        {"metadata": {"labels": {"owner": "alice"}}},
        ctype=MERGE,
        fieldManager="kubectl-label",
    )
    _, again = call(core, "PATCH", path, deployment(), ctype=APPLY, fieldManager="meshtutor")
    assert again["metadata"]["labels"] == {"app": "web", "owner": "alice"}
    entries = {(e["manager"], e["operation"]) for e in again["metadata"]["managedFields"]}
    assert entries == {("meshtutor", "Apply"), ("kubectl-label", "Update")}


def test_a_strategic_merge_patch_merges_lists_by_their_merge_keys(core: APICore) -> None:
    """``patchMergeKey`` of k8s.io/api ``core/v1/types.go`` (containers by name, env by name,
    ports by containerPort) and the directives of ``strategicpatch``."""
    path = "/apis/apps/v1/namespaces/demo/deployments/web"
    body = deployment()
    body["spec"]["template"]["spec"]["containers"].append(
        {"name": "sidecar", "image": "proxy:1", "env": [{"name": "A", "value": "1"}]}
    )
    call(core, "POST", "/apis/apps/v1/namespaces/demo/deployments", body)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                    "containers": [
                        {"name": "web", "image": "registry.local/web:2"},
                        {"name": "sidecar", "env": [{"name": "B", "value": "2"}]},
                    ],
                }
            }
        }
    }
    _, patched = call(core, "PATCH", path, patch, ctype=SMP)
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("sidecar", "proxy:1"),
        ("web", "registry.local/web:2"),
    ]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    remove = {
        "spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}}}
    }
    _, patched = call(core, "PATCH", path, remove, ctype=SMP)
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["web"]
    status, _ = call(
        core,
        "PATCH",
        "/apis/security.istio.io/v1/namespaces/demo/peerauthentications/default",
        {"spec": {}},
        ctype=SMP,
    )
    assert status == 415  # custom resources take no strategic merge patch


# ---- tables ---------------------------------------------------------------------------------

KUBECTL_GET = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
"""The Accept header of ``kubectl get`` (``transformRequests`` in kubectl's get.go)."""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_kubectl_get_without_printer_columns_gets_name_and_age() -> None:
    """A custom resource without printer columns shows NAME and AGE
    (apiextensions-apiserver's ``tableconvertor.go`` and ``serveDefaultColumnsIfEmpty``); a
    built-in one without a printer NAME and CREATED AT (apiserver's
    ``pkg/registry/rest/table.go``). Rows carry the object's metadata unless
    ``includeObject`` says otherwise (``asTable`` in ``pkg/endpoints/handlers/response.go``)."""
    clock = Clock()
    core = APICore(groups=(*BUILTIN_GROUPS, ISTIO_SECURITY), clock=clock)
    call(core, "POST", "/api/v1/namespaces", namespace("demo"))
    path = "/apis/security.istio.io/v1/namespaces/demo/peerauthentications/default"
    call(core, "PATCH", path, peer_authentication(), ctype=APPLY, fieldManager="kubectl")
    clock.now += timedelta(minutes=5, seconds=30)
    status, table = call(
        core, "GET", "/apis/security.istio.io/v1/peerauthentications", accept=KUBECTL_GET
    )
    assert (status, table["kind"], table["apiVersion"]) == (200, "Table", "meta.k8s.io/v1")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert [r["cells"] for r in table["rows"]] == [["default", "5m30s"]]
    row_object = table["rows"][0]["object"]
    assert (row_object["kind"], row_object["metadata"]["namespace"]) == (
        "PartialObjectMetadata",
        "demo",
    )
    _, one = call(core, "GET", path, accept=KUBECTL_GET, includeObject="Object")
    assert one["rows"][0]["object"]["spec"] == {"mtls": {"mode": "STRICT"}}
    _, bare = call(core, "GET", path, accept=KUBECTL_GET, includeObject="None")
    assert bare["rows"][0]["object"] is None
    status, refused = call(core, "GET", path, accept=KUBECTL_GET, includeObject="All")
    assert (status, refused["message"]) == (400, 'unrecognized includeObject value: "All"')

    _, maps = call(core, "GET", "/api/v1/namespaces", accept=KUBECTL_GET)
    assert [c["name"] for c in maps["columnDefinitions"]] == ["Name", "Created At"]
    assert maps["rows"][-1]["cells"] == ["kube-system", "2025-01-01T12:00:00Z"]
    # Plain JSON for a client that does not ask for a Table.
    assert call(core, "GET", path)[1]["kind"] == "PeerAuthentication"


def test_the_table_hook_gives_the_columns() -> None:
    seen: list[tuple[str, list[str]]] = []

    def printer(rt: ResourceType, objects: list[dict[str, Any]], now: datetime) -> Any:
        seen.append((rt.plural, [o["metadata"]["name"] for o in objects]))
        if rt.plural != "peerauthentications":
            return None
        return {
            "columnDefinitions": [
                {
                    "name": "Name",
                    "type": "string",
                    "format": "name",
                    "description": "",
                    "priority": 0,
                },
                {"name": "Mode", "type": "string", "format": "", "description": "", "priority": 0},
            ],
            "rows": [
                {"cells": [o["metadata"]["name"], o["spec"]["mtls"]["mode"]]} for o in objects
            ],
        }

    core = APICore(groups=(*BUILTIN_GROUPS, ISTIO_SECURITY), table=printer)
    call(core, "POST", "/api/v1/namespaces", namespace("demo"))
    call(
        core,
        "PATCH",
        "/apis/security.istio.io/v1/namespaces/demo/peerauthentications/default",
        peer_authentication("PERMISSIVE"),
        ctype=APPLY,
        fieldManager="kubectl",
    )
    _, table = call(
        core, "GET", "/apis/security.istio.io/v1/peerauthentications", accept=KUBECTL_GET
    )
    assert [r["cells"] for r in table["rows"]] == [["default", "PERMISSIVE"]]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    _, defaulted = call(core, "GET", "/api/v1/namespaces/demo", accept=KUBECTL_GET)
    assert [c["name"] for c in defaulted["columnDefinitions"]] == ["Name", "Created At"]
    assert seen == [("peerauthentications", ["default"]), ("namespaces", ["demo"])]


# ---- watch ----------------------------------------------------------------------------------


def watch_request(path: str, accept: str = JSON, **query: str) -> Request:
    return Request("GET", path, {"watch": "true", **query}, {"accept": accept})


def lines(data: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data]


def test_a_watch_starts_with_the_current_objects_and_sees_what_its_selector_selects(
    core: APICore,
) -> None:
    labelled = config_map("a")
    labelled["metadata"]["labels"] = {"app": "web"}
    call(core, "POST", "/api/v1/namespaces/demo/configmaps", labelled)
    call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("b"))
    watch = core.open_watch(
        watch_request("/api/v1/namespaces/demo/configmaps", labelSelector="app=web")
    )
    assert isinstance(watch, Watch)
    events = recorded(core)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines(watch.opening())] == [
        ("ADDED", "a")
    ]
    second = config_map("c")
    second["metadata"]["labels"] = {"app": "web"}
    call(core, "POST", "/api/v1/namespaces/demo/configmaps", second)
    call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("d"))
    call(
        core,
        "PATCH",
        "/api/v1/namespaces/demo/configmaps/a",
        {"metadata": {"labels": {"app": "db"}}},
        ctype=MERGE,
    )
    sent = lines([watch.encode(e) for e in events if watch.matches(e)])
    # A change that takes an object out of the selection is its DELETED, as the cacher says.
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in sent] == [
        ("ADDED", "c"),
        ("DELETED", "a"),
    ]
    assert sent[0]["object"]["kind"] == "ConfigMap"


def test_a_watch_from_a_resource_version_the_history_no_longer_holds_is_expired() -> None:
    """The watch cache's ``too old resource version: X (Y)``, 410 Expired, as the stream's one
    ERROR event (``k8s.io/apiserver/pkg/storage/cacher/watch_cache_history.go``, ``newErrWatcher``
    in ``cacher.go``)."""
    core = APICore(history=3)
    call(core, "POST", "/api/v1/namespaces", namespace("demo"))
    _, first = call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("a"))
    old = first["metadata"]["resourceVersion"]
    for name in ("b", "c", "d"):
        call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map(name))
    recent = core.open_watch(
        watch_request("/api/v1/namespaces/demo/configmaps", resourceVersion=str(int(old) + 1))
    )
    assert isinstance(recent, Watch)
    assert [e["object"]["metadata"]["name"] for e in lines(recent.opening())] == ["c", "d"]
    too_old = str(int(old) - 1)  # b, c and d are in the history; the change before a is not
    expired = core.open_watch(
        watch_request("/api/v1/namespaces/demo/configmaps", resourceVersion=too_old)
    )
    assert isinstance(expired, Watch)
    (error,) = lines(expired.opening())
    assert error == {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"too old resource version: {too_old} ({old})",
            "reason": "Expired",
            "code": 410,
        },
    }
    assert core.events_since(int(too_old)) is None
    assert [e.object["metadata"]["name"] for e in core.events_since(int(old)) or []] == [
        "b",
        "c",
        "d",
    ]


def test_a_watch_as_kubectl_get_w_asks_sends_tables_and_bookmarks(core: APICore) -> None:
    """Headers only with the first event (``watchEmbeddedEncoder`` in
    ``handlers/response.go``); the initial-events-end bookmark of a ``sendInitialEvents``
    watch (``cache_watcher.go``)."""
    call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map("a"))
    watch = core.open_watch(
        watch_request(
            "/api/v1/namespaces/demo/configmaps",
            KUBECTL_GET,
            resourceVersion=str(core.resource_version),
            allowWatchBookmarks="true",
        )
    )
    assert isinstance(watch, Watch)
    assert watch.opening() == []
    events = recorded(core)
    for name in ("b", "c"):
        call(core, "POST", "/api/v1/namespaces/demo/configmaps", config_map(name))
    first, second = lines([watch.encode(e) for e in events if watch.matches(e)])
    assert first["object"]["kind"] == "Table"
    assert [c["name"] for c in first["object"]["columnDefinitions"]] == ["Name", "Created At"]
    assert second["object"]["columnDefinitions"] is None
    assert second["object"]["rows"][0]["cells"][0] == "c"
    bookmark = watch.bookmark()
    assert bookmark is not None
    assert json.loads(bookmark) == {
        "type": "BOOKMARK",
        "object": {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(core.resource_version)},
        },
    }

    listing = core.open_watch(
        watch_request(
            "/api/v1/namespaces/demo/configmaps",
            sendInitialEvents="true",
            resourceVersionMatch="NotOlderThan",
            allowWatchBookmarks="true",
        )
    )
    assert isinstance(listing, Watch)
    sent = lines(listing.opening())
    assert [e["type"] for e in sent] == ["ADDED", "ADDED", "ADDED", "BOOKMARK"]
    assert sent[-1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    refused = core.open_watch(watch_request("/api/v1/namespaces/demo/nothings"))
    assert isinstance(refused, Response) and refused.status == 404


# ---- subresources -------------------------------------------------------------------------


def test_kubectl_scale_changes_the_replicas_through_the_scale_subresource(core: APICore) -> None:
    """``autoscaling/v1`` Scale of a Deployment (``scaleFromDeployment`` in
    ``pkg/registry/apps/deployment/storage/storage.go``); ``kubectl scale`` sends a merge
    patch to it, recorded with subresource ``scale``."""
    call(core, "POST", "/apis/apps/v1/namespaces/demo/deployments", deployment())
    path = "/apis/apps/v1/namespaces/demo/deployments/web/scale"
    status, scale = call(core, "GET", path)
    assert (status, scale["kind"], scale["apiVersion"]) == (200, "Scale", "autoscaling/v1")
    assert (scale["spec"], scale["status"]) == (
        {"replicas": 2},
        {"replicas": 0, "selector": "app=web"},
    )
    status, scaled = call(
        core, "PATCH", path, {"spec": {"replicas": 3}}, ctype=MERGE, fieldManager="kubectl"
    )
    assert (status, scaled["spec"]["replicas"]) == (200, 3)
    stored = core.get("apps", "deployments", "demo", "web")
    assert stored is not None and stored["spec"]["replicas"] == 3
    assert stored["metadata"]["generation"] == 2
    assert {(e["manager"], e.get("subresource")) for e in stored["metadata"]["managedFields"]} >= {
        ("kubectl", "scale")
    }
    stale = {**scale, "spec": {"replicas": 1}}
    status, refused = call(core, "PUT", path, stale)
    assert (status, refused["reason"]) == (409, "Conflict")
    status, refused = call(core, "PATCH", path, {"spec": {"replicas": -1}}, ctype=MERGE)
    assert (status, refused["message"]) == (
        422,
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: must be greater '
        "than or equal to 0",
    )
    assert call(core, "GET", "/apis/apps/v1/namespaces/demo/deployments/nope/scale")[0] == 404


def test_the_status_subresource_changes_the_status_only(core: APICore) -> None:
    call(core, "POST", "/apis/apps/v1/namespaces/demo/deployments", deployment())
    path = "/apis/apps/v1/namespaces/demo/deployments/web"
    status, patched = call(
        core,
        "PATCH",
        f"{path}/status",
        {"spec": {"replicas": 9}, "status": {"replicas": 2, "readyReplicas": 2}},
        ctype=MERGE,
        fieldManager="kube-controller-manager",
    )
    assert status == 200
    assert (patched["spec"]["replicas"], patched["status"]["readyReplicas"]) == (2, 2)
    # A write to the object itself leaves the status as it is.
    call(core, "PATCH", path, {"status": {"readyReplicas": 0}}, ctype=MERGE)
    assert call(core, "GET", f"{path}/status")[1]["status"]["readyReplicas"] == 2


# ---- protobuf bodies --------------------------------------------------------------------------

# What kubectl v1.33.1 sent for `kubectl create ns foo`, `kubectl create deployment web -n foo
# --image=nginx --replicas=0 --port=80` and `kubectl create secret generic s -n foo
# --from-literal=p=q` (its typed clients write protobuf since 1.32).
KUBECTL_CREATE_NS = bytes.fromhex(
    "6b3873000a0f0a02763112094e616d657370616365121b0a130a03666f6f12001a0022002a0032003800420012"
    "001a020a001a002200"
)
KUBECTL_CREATE_DEPLOYMENT = bytes.fromhex(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412bb010a220a0377656212001a03666f6f22"
    "002a003200380042005a0a0a0361707012037765621286010800120c0a0a0a0361707012037765621a6c0a1c0a"
    "0012001a0022002a003200380042005a0a0a036170701203776562124c122e0a056e67696e7812056e67696e78"
    "2a00320a0a001000185022002a0042006a007200800100880100900100a201001a00320042004a005200580060"
    "0068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200"
)
KUBECTL_CREATE_SECRET = bytes.fromhex(
    "6b3873000a0c0a027631120653656372657412200a140a017312001a03666f6f22002a00320038004200120"
    "60a01701201711a001a002200"
)
PROTOBUF = "application/vnd.kubernetes.protobuf"


def post_protobuf(core: APICore, path: str, body: bytes) -> tuple[int, Any]:
    resp = core.handle(
        Request(
            "POST",
            path,
            {"fieldManager": "kubectl-create", "fieldValidation": "Strict"},
            {"content-type": PROTOBUF, "accept": f"{PROTOBUF},{JSON}"},
            body,
        )
    )
    return resp.status, json.loads(resp.body)


def test_the_protobuf_bodies_of_a_current_kubectl_are_read() -> None:
    core = APICore()
    status, ns = post_protobuf(core, "/api/v1/namespaces", KUBECTL_CREATE_NS)
    assert (status, ns["metadata"]["name"], ns["status"]) == (201, "foo", {"phase": "Active"})
    status, created = post_protobuf(
        core, "/apis/apps/v1/namespaces/foo/deployments", KUBECTL_CREATE_DEPLOYMENT
    )
    assert status == 201
    assert created["metadata"]["labels"] == {"app": "web"}
    spec = created["spec"]
    assert spec["replicas"] == 0  # set to zero on purpose: kept
    assert spec["selector"] == {"matchLabels": {"app": "web"}}
    assert spec["template"]["metadata"] == {"labels": {"app": "web"}}
    assert spec["template"]["spec"]["containers"] == [
        {
            "name": "nginx",
            "image": "nginx",
            "ports": [{"containerPort": 80}],
            "resources": {},
        }
    ]
    status, secret = post_protobuf(core, "/api/v1/namespaces/foo/secrets", KUBECTL_CREATE_SECRET)
    assert (status, secret["data"]) == (201, {"p": "cQ=="})
    status, refused = post_protobuf(core, "/api/v1/namespaces", b"k8s\x00\x0a\xff")
    assert (status, refused["message"]) == (
        400,
        "the body of the request could not be decoded as an object",
    )
