"""Label and annotate actions as the API server applies them: merged into the live object."""

from __future__ import annotations

from dataclasses import replace

from meshtutor.errors import ClusterStateError
from meshtutor.lessons.model import Action
from meshtutor.model.base import Resource
from meshtutor.model.k8s import Deployment, Namespace
from meshtutor.policy.cluster import Cluster


def _merge(current: dict[str, str], values: dict[str, str | None]) -> dict[str, str]:
    merged = dict(current)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def changed_resource(cluster: Cluster, action: Action) -> Resource:
    """The object a label/annotate action produces from the cluster's current one."""
    a = action.args
    field = "labels" if action.kind == "label" else "annotations"
    if a.get("deployment"):
        dep = cluster.deployment(a["namespace"], a["name"])
        if dep is None:
            raise ClusterStateError(f"no deployment {a['namespace']}/{a['name']} to {action.kind}")
        template = dep.template
        merged = _merge(dict(getattr(template, field)), a["values"])
        changed = (
            replace(template, labels=merged)
            if field == "labels"
            else replace(template, annotations=merged)
        )
        return replace(dep, template=changed)
    ns = cluster.namespace(a["namespace"])
    if ns is None:
        raise ClusterStateError(f"no namespace {a['namespace']} to {action.kind}")
    merged = _merge(dict(getattr(ns.metadata, field)), a["values"])
    meta = (
        replace(ns.metadata, labels=merged)
        if field == "labels"
        else replace(ns.metadata, annotations=merged)
    )
    return replace(ns, metadata=meta)


__all__ = ["Deployment", "Namespace", "changed_resource"]
