"""Start a sandbox with its Kubernetes API: what ``meshtutor sandbox serve``, the app and the
tests share."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshtutor.kubeapi.bridge import SandboxBridge
    from meshtutor.kubeapi.core import APICore
    from meshtutor.kubeapi.kubeconfig import APICredentials
    from meshtutor.kubeapi.server import SandboxAPI
    from meshtutor.model.base import Resource
    from meshtutor.sandbox.mesh import Sandbox


@dataclass
class ServedSandbox:
    sandbox: Sandbox
    core: APICore
    bridge: SandboxBridge
    api: SandboxAPI

    async def stop(self) -> None:
        await self.api.stop()
        await self.sandbox.stop()


def groups_for(mesh: str) -> list[Any]:
    """The API groups a cluster with this mesh serves: the built-in ones, the mesh's CRDs and
    the Gateway API (both meshes install it)."""
    from meshtutor.kubeapi import resources

    crds = resources.ISTIO_CRD_GROUPS if mesh == "istio" else resources.LINKERD_CRD_GROUPS
    names = list(crds) + list(resources.GATEWAY_API_CRD_GROUPS)
    return list(resources.BUILTIN_GROUPS) + [resources.CRD_GROUPS[n] for n in names]


def new_core(mesh: str, bridge: SandboxBridge) -> APICore:
    from meshtutor.kubeapi.core import APICore
    from meshtutor.kubeapi.server import GIT_VERSION
    from meshtutor.kubeapi.tables import to_table

    def table(rt: Any, objects: list[dict[str, Any]], now: Any) -> dict[str, Any] | None:
        return to_table(rt.group, rt.plural, objects, now)

    mesh_namespace = "istio-system" if mesh == "istio" else "linkerd"
    namespaces = ("default", "kube-node-lease", "kube-public", "kube-system", mesh_namespace)
    core = APICore(
        groups=groups_for(mesh),
        namespaces=namespaces,
        git_version=GIT_VERSION,
        admission=bridge,
        table=table,
    )
    bridge.attach(core)
    return core


async def start_sandbox_api(
    mesh: str,
    batches: Sequence[Sequence[Resource]],
    credentials: APICredentials,
    *,
    port: int = 0,
    sandbox: Sandbox | None = None,
) -> ServedSandbox:
    from meshtutor.kubeapi.bridge import SandboxBridge
    from meshtutor.kubeapi.server import SandboxAPI
    from meshtutor.sandbox.mesh import Sandbox

    sb = sandbox or Sandbox(mesh)  # type: ignore[arg-type]
    if sandbox is None:
        await sb.start()
    bridge = SandboxBridge(sb)
    core = new_core(mesh, bridge)
    try:
        for batch in batches:
            await sb.apply(batch)
        import_cluster(core, bridge, sb)
        api = SandboxAPI(sb, core, bridge, credentials, port=port)
        await api.start()
    except BaseException:
        bridge.close()
        if sandbox is None:
            await sb.stop()
        raise
    return ServedSandbox(sb, core, bridge, api)


def import_cluster(core: APICore, bridge: SandboxBridge, sandbox: Sandbox) -> None:
    """Store every object the sandbox runs that the API does not have yet (what the files or
    a lesson applied directly), as ``kubectl apply`` would have stored it, then derive pods."""
    from meshtutor.kubeapi.bridge import _deployment_defaults, _service_defaults
    from meshtutor.kubeapi.protocol import APIError

    bridge._deriving = True
    try:
        for resource in sandbox.cluster:
            doc = _document(resource)
            if doc is None:
                continue
            try:
                rt = core.resource_type(doc["apiVersion"], doc["kind"])
            except APIError:
                continue  # a kind this cluster's API does not serve
            group, plural = rt.group, rt.plural
            meta = doc["metadata"]
            if core.get(group, plural, meta.get("namespace"), meta["name"]) is not None:
                continue
            if (group, plural) == ("", "services"):
                doc = _service_defaults(doc, None)
            elif (group, plural) == ("apps", "deployments"):
                doc = _deployment_defaults(doc)
            annotations = meta.setdefault("annotations", {})
            annotations["kubectl.kubernetes.io/last-applied-configuration"] = (
                json.dumps(_document(resource), separators=(",", ":")) + "\n"
            )
            core.put(doc, manager="kubectl-client-side-apply")
    finally:
        bridge._deriving = False
    bridge.derive()


def _document(resource: Resource) -> dict[str, Any] | None:
    raw = getattr(resource, "raw", None)
    if not raw:
        return None
    doc: dict[str, Any] = json.loads(json.dumps(raw))
    meta = doc.setdefault("metadata", {})
    if resource.namespace and "namespace" not in meta:
        meta["namespace"] = resource.namespace
    doc.pop("status", None)
    return copy.deepcopy(doc)
