"""The state of a cluster as the policy engine sees it: the objects applied, in creation order,
and the pods created from them, each with the sidecar decision made when it was created.

``Cluster`` reproduces what an API server plus the injection webhooks do: create-or-update by
kind/namespace/name (keeping the creation order that "oldest wins" rules rely on), pods created
from Deployments when they are applied or restarted, and injection decided at pod creation only.
It performs no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import yaml

from meshtutor.errors import ClusterStateError, ManifestError
from meshtutor.model import istio as istio_model
from meshtutor.model.base import ObjectMeta, Resource, ResourceRef
from meshtutor.model.istio import MeshConfig
from meshtutor.model.k8s import ConfigMap, Deployment, Namespace, Pod, PodSpec, Service
from meshtutor.model.loader import UnmodelledResource
from meshtutor.model.schema import SchemaError
from meshtutor.model.yamlnodes import load_single, yaml_problem
from meshtutor.policy.injection import (
    InjectionDecision,
    decide_istio,
    decide_linkerd,
    linkerd_default_policy,
)

Mesh = Literal["istio", "linkerd"]
R = TypeVar("R", bound=Resource)

ISTIO_GROUPS = ("security.istio.io", "networking.istio.io")
LINKERD_GROUPS = ("policy.linkerd.io",)
_BUILTIN_NAMESPACES = {
    "istio": ("default", "kube-system", "kube-public", "istio-system"),
    "linkerd": ("default", "kube-system", "kube-public", "linkerd"),
}


def _group(resource: Resource) -> str:
    return resource.api_version.rsplit("/", 1)[0] if "/" in resource.api_version else ""


@dataclass(frozen=True)
class PodState:
    """A running pod. ``created`` orders pods by creation time; ``ip`` is its pod IP."""

    namespace: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: PodSpec
    owner: ResourceRef
    injection: InjectionDecision
    created: int
    ip: str
    default_inbound_policy: str | None = None
    default_inbound_policy_source: str | None = None
    #: the client outside the cluster (a laptop, a browser), not a pod
    external: bool = False

    @property
    def sidecar(self) -> str | None:
        return self.injection.sidecar

    @property
    def service_account(self) -> str:
        return self.spec.service_account

    @property
    def deployment(self) -> str:
        return self.owner.name

    @property
    def display(self) -> str:
        """``sleep.foo``, the way Istio's task outputs name workloads."""
        if self.external:
            return "the client outside the cluster"
        return f"{self.owner.name}.{self.namespace}"

    @property
    def container_names(self) -> list[str]:
        names = [c.name for c in self.spec.containers]
        if self.sidecar == "istio":
            names.append("istio-proxy")
        elif self.sidecar == "linkerd":
            names.append("linkerd-proxy")
        return names

    @property
    def default_container(self) -> str:
        chosen = self.annotations.get("kubectl.kubernetes.io/default-container")
        if chosen and chosen in self.container_names:
            return chosen
        return self.spec.containers[0].name


@dataclass(frozen=True)
class _Stored:
    resource: Resource
    created: int


@dataclass
class ApplyReport:
    """What one ``apply`` did, in the words ``kubectl apply`` uses."""

    lines: list[str] = field(default_factory=list)
    unmodelled: list[ResourceRef] = field(default_factory=list)


def _default_ip_allocator() -> Callable[[], str]:
    # Pod IPs in kind's default pod subnet; the sandbox passes loopback addresses instead.
    counter = iter(range(2, 65000))

    def allocate() -> str:
        n = next(counter)
        return str(ipaddress.ip_address("10.244.0.0") + n)

    return allocate


class Cluster:
    """Objects and pods of one cluster with one mesh (``istio`` or ``linkerd``) installed."""

    def __init__(
        self,
        mesh: Mesh = "istio",
        *,
        ip_allocator: Callable[[], str] | None = None,
        linkerd_default_inbound_policy: str = "all-unauthenticated",
    ) -> None:
        if mesh not in ("istio", "linkerd"):
            raise ValueError(f"mesh must be istio or linkerd, not {mesh!r}")
        self.mesh: Mesh = mesh
        self.linkerd_default_inbound_policy = linkerd_default_inbound_policy
        self._allocate_ip = ip_allocator or _default_ip_allocator()
        self._objects: dict[tuple[str, str, str | None, str], _Stored] = {}
        self._pods: dict[tuple[str, str], PodState] = {}
        self._clock = 0
        self.mesh_config = MeshConfig()
        for name in _BUILTIN_NAMESPACES[mesh]:
            self._store(Namespace("v1", "Namespace", ObjectMeta(name, None)))

    # --- reading ----------------------------------------------------------------------------

    def _key(self, resource: Resource) -> tuple[str, str, str | None, str]:
        return (_group(resource), resource.kind, resource.namespace, resource.name)

    def objects(self, cls: type[R]) -> list[R]:
        """Every object of a class, oldest first."""
        found = [s for s in self._objects.values() if isinstance(s.resource, cls)]
        found.sort(key=lambda s: s.created)
        return [s.resource for s in found]  # type: ignore[misc]

    def created(self, resource: Resource) -> int:
        return self._objects[self._key(resource)].created

    def namespace(self, name: str) -> Namespace | None:
        stored = self._objects.get(("", "Namespace", None, name))
        return stored.resource if stored else None  # type: ignore[return-value]

    def namespace_labels(self, name: str) -> dict[str, str]:
        ns = self.namespace(name)
        labels = dict(ns.metadata.labels) if ns else {}
        # The API server adds this label to every namespace (Kubernetes 1.21+).
        labels["kubernetes.io/metadata.name"] = name
        return labels

    def namespace_annotations(self, name: str) -> dict[str, str]:
        ns = self.namespace(name)
        return dict(ns.metadata.annotations) if ns else {}

    def services(self, namespace: str | None = None) -> list[Service]:
        return [s for s in self.objects(Service) if namespace is None or s.namespace == namespace]

    def service(self, namespace: str, name: str) -> Service | None:
        stored = self._objects.get(("", "Service", namespace, name))
        return stored.resource if stored else None  # type: ignore[return-value]

    def deployment(self, namespace: str, name: str) -> Deployment | None:
        stored = self._objects.get(("apps", "Deployment", namespace, name))
        return stored.resource if stored else None  # type: ignore[return-value]

    def pods(self, namespace: str | None = None) -> list[PodState]:
        pods = [p for p in self._pods.values() if namespace is None or p.namespace == namespace]
        return sorted(pods, key=lambda p: p.created)

    def pod_for(self, namespace: str, deployment: str) -> PodState | None:
        return self._pods.get((namespace, deployment))

    def pod_by_ip(self, ip: str) -> PodState | None:
        return next((p for p in self._pods.values() if p.ip == ip), None)

    def __iter__(self) -> Iterator[Resource]:
        return iter(s.resource for s in sorted(self._objects.values(), key=lambda s: s.created))

    # --- writing ----------------------------------------------------------------------------

    def _store(self, resource: Resource) -> bool:
        """Create or update; returns True when the object was new. Updates keep their creation
        time, as the API server keeps creationTimestamp."""
        key = self._key(resource)
        old = self._objects.get(key)
        self._clock += 1
        self._objects[key] = _Stored(resource, old.created if old else self._clock)
        return old is None

    def _check(self, resource: Resource) -> None:
        group = _group(resource)
        if self.mesh == "linkerd" and group in ISTIO_GROUPS:
            raise ClusterStateError(
                f"{resource.origin.source}:{resource.origin.line}: document {resource.origin.document}: no matches for "
                f"kind {resource.kind} in version {resource.api_version}: Istio is not installed "
                "in this linkerd cluster (use --mesh istio)"
            )
        if self.mesh == "istio" and group in LINKERD_GROUPS:
            raise ClusterStateError(
                f"{resource.origin.source}:{resource.origin.line}: document {resource.origin.document}: no matches for "
                f"kind {resource.kind} in version {resource.api_version}: Linkerd is not "
                "installed in this istio cluster (use --mesh linkerd)"
            )
        if (
            resource.namespace
            and not isinstance(resource, Namespace | UnmodelledResource)
            and self.namespace(resource.namespace) is None
        ):
            raise ClusterStateError(
                f"{resource.origin.source}:{resource.origin.line}: document {resource.origin.document}: "
                f"{resource.kind} {resource.namespace}/{resource.name}: namespace "
                f"{resource.namespace!r} not found; apply its Namespace first"
            )

    def apply(self, resources: Iterable[Resource]) -> ApplyReport:
        """Apply documents in order, like ``kubectl apply -f``; all or nothing."""
        docs = list(resources)
        snapshot = (dict(self._objects), dict(self._pods), self._clock, self.mesh_config)
        report = ApplyReport()
        try:
            for resource in docs:
                self._apply_one(resource, report)
        except BaseException:
            self._objects, self._pods, self._clock, self.mesh_config = snapshot
            raise
        return report

    def _apply_one(self, resource: Resource, report: ApplyReport) -> None:
        self._check(resource)
        if isinstance(resource, UnmodelledResource):
            report.unmodelled.append(resource.ref)
            report.lines.append(f"{resource.kind.lower()}/{resource.name} ignored (not simulated)")
            return
        if (
            isinstance(resource, ConfigMap)
            and (resource.namespace, resource.name) == ("istio-system", "istio")
            and self.mesh == "istio"
        ):
            self.mesh_config = _parse_mesh_config(resource)
        old = self._objects.get(self._key(resource))
        created = self._store(resource)
        verb = (
            "created"
            if created
            else ("unchanged" if old and old.resource == resource else "configured")
        )
        report.lines.append(f"{resource.kind.lower()}/{resource.name} {verb}")
        if isinstance(resource, Deployment):
            previous = old.resource if old else None
            if (
                not isinstance(previous, Deployment)
                or previous.template != resource.template
                or previous.replicas != resource.replicas
            ):
                self._start_pod(resource)
        elif isinstance(resource, Pod) and (
            (resource.namespace or "default", resource.name) not in self._pods
            or (old and old.resource != resource)
        ):
            self._start_pod(resource)

    def delete(self, refs: Iterable[Resource | ResourceRef]) -> list[str]:
        """Delete objects (pods of deleted Deployments go too); unknown objects are skipped,
        as ``kubectl delete --ignore-not-found`` does."""
        lines = []
        for item in refs:
            if isinstance(item, Resource):
                key = self._key(item)
            else:
                key = next(
                    (
                        k
                        for k, s in self._objects.items()
                        if s.resource.kind == item.kind
                        and k[2] == item.namespace
                        and k[3] == item.name
                    ),
                    ("?", item.kind, item.namespace, item.name),
                )
            stored = self._objects.pop(key, None)
            if stored is None:
                continue
            res = stored.resource
            lines.append(f'{res.kind.lower()} "{res.name}" deleted')
            if isinstance(res, Deployment | Pod):
                self._pods.pop((res.namespace or "default", res.name), None)
            if isinstance(res, Namespace):
                for k in [k for k in self._objects if k[2] == res.name]:
                    del self._objects[k]
                for pod_key in [p for p in self._pods if p[0] == res.name]:
                    del self._pods[pod_key]
            if isinstance(res, ConfigMap) and (res.namespace, res.name) == (
                "istio-system",
                "istio",
            ):
                self.mesh_config = MeshConfig()
        return lines

    def restart(self, namespace: str, deployment: str) -> None:
        """``kubectl rollout restart``: a new pod replaces the old one, so injection and the
        Linkerd default policy are decided again."""
        dep = self.deployment(namespace, deployment)
        if dep is None:
            names = ", ".join(d.name for d in self.objects(Deployment) if d.namespace == namespace)
            raise ClusterStateError(
                f"no deployment {namespace}/{deployment}"
                + (f"; deployments in {namespace}: {names}" if names else "")
            )
        self._start_pod(dep)

    def _start_pod(self, owner: Deployment | Pod) -> None:
        namespace = owner.namespace or "default"
        key = (namespace, owner.name)
        if isinstance(owner, Deployment):
            if owner.replicas == 0:
                self._pods.pop(key, None)
                return
            labels = dict(owner.template.labels)
            annotations = dict(owner.template.annotations)
            spec = owner.template.spec
        else:
            labels = dict(owner.metadata.labels)
            annotations = dict(owner.metadata.annotations)
            spec = owner.spec
        ns_labels = self.namespace_labels(namespace)
        ns_annotations = self.namespace_annotations(namespace)
        if self.mesh == "istio":
            decision = decide_istio(
                namespace,
                ns_labels,
                labels,
                annotations,
                owner=owner.ref,
                host_network=spec.host_network,
            )
            policy = source = None
        else:
            decision = decide_linkerd(namespace, ns_annotations, annotations, owner=owner.ref)
            policy, source = (
                linkerd_default_policy(
                    namespace,
                    ns_annotations,
                    annotations,
                    self.linkerd_default_inbound_policy,
                    owner.ref,
                )
                if decision.sidecar
                else (None, None)
            )
        if decision.sidecar == "istio":
            labels.setdefault("security.istio.io/tlsMode", "istio")
        self._clock += 1
        self._pods[key] = PodState(
            namespace=namespace,
            name=owner.name,
            labels=labels,
            annotations=annotations,
            spec=spec,
            owner=owner.ref,
            injection=decision,
            created=self._clock,
            ip=self._allocate_ip(),
            default_inbound_policy=policy,
            default_inbound_policy_source=source,
        )

    def copy(self) -> Cluster:
        """An independent copy (for scratch evaluation)."""
        other = Cluster.__new__(Cluster)
        other.__dict__.update(self.__dict__)
        other._objects = dict(self._objects)
        other._pods = dict(self._pods)
        return other

    def with_pod(self, pod: PodState, **changes: Any) -> None:
        self._pods[(pod.namespace, pod.name)] = replace(pod, **changes)


def _parse_mesh_config(cm: ConfigMap) -> MeshConfig:
    text = cm.data.get("mesh")
    if text is None:
        return MeshConfig()

    def fail(message: str, field_path: str) -> ManifestError:
        return ManifestError(
            message,
            source=cm.origin.source,
            document=cm.origin.document,
            line=cm.origin.line,
            field=f"data.mesh: {field_path}",
        )

    try:
        data = load_single(text) or {}
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        where = f"line {line} of the mesh config: " if line else "the mesh config: "
        raise fail(where + problem, "mesh") from None
    if not isinstance(data, dict):
        raise fail("the mesh config must be a YAML mapping", "mesh")
    try:
        checked = istio_model.MESH_CONFIG.check(data, "", None)
    except SchemaError as exc:
        raise fail(exc.message, exc.path) from None
    return MeshConfig(
        trust_domain=checked.get("trustDomain", "cluster.local"),
        trust_domain_aliases=tuple(checked.get("trustDomainAliases") or ()),
        enable_auto_mtls=checked.get("enableAutoMtls", True),
        root_namespace=checked.get("rootNamespace", "istio-system"),
        extension_providers=tuple(p["name"] for p in checked.get("extensionProviders") or ()),
    )


def load_cluster(
    resources: Sequence[Resource], mesh: Mesh = "istio"
) -> Cluster:  # pragma: no cover - convenience
    cluster = Cluster(mesh)
    cluster.apply(resources)
    return cluster
