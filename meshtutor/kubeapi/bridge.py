"""The sandbox behind the API: admission through meshtutor's model, and the controllers.

A real cluster is an API server plus controllers and kubelets that act on what it stores.
Here the sandbox plays all of those parts, and this module is the seam:

- **admission** (before an object is stored, dry runs included): an object of a kind
  meshtutor models is loaded with meshtutor's own loader, so the API refuses exactly what the
  sandbox could not run, with the field named; defaults a real API server fills in (a
  Service's cluster IP, a Deployment's replicas) are set here;
- **the kubelet and the controllers** (after a write is stored): the change goes to the
  sandbox, which starts, replaces or stops pods and re-reads policy; then the objects a
  cluster derives are written back: ReplicaSets and Pods owned by Deployments (names with
  hashes, the injected proxy container, the pod IP, Ready conditions), Endpoints, a
  Deployment's status, the namespace controller finalising a Terminating namespace.

The sandbox decides injection at pod creation from the namespace and the pod template, as
the webhooks do (``policy/injection.py``); this module only shows the decision as containers.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from meshtutor.errors import ClusterStateError, ManifestError

if TYPE_CHECKING:
    from meshtutor.kubeapi.core import APICore, WatchEvent
    from meshtutor.kubeapi.resources import ResourceType
    from meshtutor.model.base import Resource
    from meshtutor.policy.cluster import PodState
    from meshtutor.sandbox.mesh import Sandbox

log = logging.getLogger(__name__)

#: the one node the sandbox's pods run on (kind calls its node ``kind-control-plane``)
NODE_NAME = "meshtutor-control-plane"
#: who writes what the controllers derive, in managedFields (the real controllers' names)
CONTROLLER_MANAGERS = {
    "replicasets": "kube-controller-manager",
    "pods": "kube-controller-manager",
    "endpoints": "kube-controller-manager",
    "deployments": "kube-controller-manager",
    "namespaces": "kube-controller-manager",
    "nodes": "kubelet",
}
# kube-controller-manager's namespace controller takes a moment to empty a namespace; a
# learner who re-applies at once meets the Terminating namespace, as on a real cluster.
NAMESPACE_FINALIZE_SECONDS = 1.0
# how long a replaced pod shows Terminating before it is gone (the sandbox stops it at once)
POD_TERMINATING_SECONDS = 1.0

ISTIO_PROXY_IMAGE = (
    "docker.io/istio/proxyv2:1.24.2"  # as manifests/components/istio-ingressgateway.yaml
)
LINKERD_PROXY_IMAGE = "cr.l5d.io/linkerd/proxy:stable-2.14.10"
LINKERD_INIT_IMAGE = "cr.l5d.io/linkerd/proxy-init:v2.2.3"

# k8s.io/apimachinery/pkg/util/rand: the alphabet of generated names, vowels and 0,1,3 left out
# so that no word is spelled by accident.
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each byte mapped into the alphabet above."""
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in text.encode())


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """The ``pod-template-hash`` of a Deployment's template. Kubernetes hashes the template with
    FNV-32a (``controller.ComputeHash``) and encodes the decimal digits with SafeEncodeString;
    we hash the canonical JSON, so the value differs from a real cluster's but has its shape
    and changes exactly when the template changes."""
    digest = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True, separators=(",", ":")).encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return safe_encode(str(digest))


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_ALPHANUMS) for _ in range(length))


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster_ip_for(namespace: str, name: str) -> str:
    """A stable address in kind's service range (10.96.0.0/16) for the Service's lifetime; the
    sandbox routes by name, so the address is for display and for ``getent hosts``."""
    n = zlib.crc32(f"{namespace}/{name}".encode()) % 65000 + 10
    return f"10.96.{n // 256}.{n % 256}"


@dataclass
class _PodName:
    """The API name the sandbox pod got at creation (kept for its lifetime)."""

    name: str
    created: int


@dataclass
class Pending:
    """Writes stored by the API and not yet carried out by the sandbox."""

    applies: list[Resource] = field(default_factory=list)
    deletes: list[tuple[str, str | None, str]] = field(default_factory=list)  # kind, ns, name
    restarts: list[tuple[str, str]] = field(default_factory=list)  # ns, deployment
    order: list[tuple[str, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.order)


class SandboxBridge:
    """Admission and controllers for one sandbox behind one :class:`APICore`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.core: APICore | None = None
        self._pending = Pending()
        self._deriving = False
        self._pod_names: dict[tuple[str, str], _PodName] = {}  # (ns, owner) -> name
        self._lock = asyncio.Lock()
        self._timers: set[asyncio.TimerHandle] = set()
        self._last_event_ns = 0

    def attach(self, core: APICore) -> None:
        self.core = core
        core.subscribe(self._on_event)

    # --- admission ------------------------------------------------------------------------

    def admit(
        self,
        op: str,
        rt: ResourceType,
        new: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        if self._deriving:
            return new
        if rt.group == "" and rt.plural == "services":
            new = _service_defaults(new, old)
        elif rt.group == "apps" and rt.plural == "deployments":
            new = _deployment_defaults(new)
        if _modelled(rt) is None:
            return new
        resource = self.load(rt, new)
        scratch = self.sandbox.cluster.copy()
        try:
            scratch.apply([resource])
        except ClusterStateError as exc:
            raise _invalid(rt, new, None, str(exc)) from None
        return new

    def load(self, rt: ResourceType, obj: Mapping[str, Any]) -> Resource:
        """The typed resource meshtutor's engine reads, or a 422 naming the field."""
        from meshtutor.model.loader import load_yaml

        clean = {k: v for k, v in obj.items() if k != "status"}
        meta = obj.get("metadata") or {}
        clean["metadata"] = {
            k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta
        }
        try:
            (resource,) = load_yaml(json.dumps(clean), source="<request>")
        except ManifestError as exc:
            raise _invalid(rt, obj, exc.field, exc.reason) from None
        return resource

    # --- the controllers --------------------------------------------------------------------

    def _on_event(self, event: WatchEvent) -> None:
        if self._deriving:
            return
        key = (event.group, event.plural)
        if (
            key == ("", "namespaces")
            and event.type == "MODIFIED"
            and (event.object.get("metadata") or {}).get("deletionTimestamp")
        ):
            self._later(NAMESPACE_FINALIZE_SECONDS, self._finalize_namespaces)
        info = _MODELLED_BY_PLURAL.get(key)
        if info is None:
            return
        meta = event.object.get("metadata") or {}
        if key == ("", "pods") and event.type == "DELETED":
            owner = _controller_of(event.object)
            if owner is not None:
                # A pod of a ReplicaSet: the ReplicaSet controller starts a replacement.
                deployment = owner.rsplit("-", 1)[0]
                self._pending.restarts.append((meta["namespace"], deployment))
                self._pending.order.append(("restart", len(self._pending.restarts) - 1))
                return
        if event.type == "DELETED":
            self._pending.deletes.append((info, meta.get("namespace"), meta["name"]))
            self._pending.order.append(("delete", len(self._pending.deletes) - 1))
            return
        if meta.get("deletionTimestamp"):
            return  # a Terminating namespace: its contents go first, the namespace at the end
        assert self.core is not None
        rt = self.core.resource_type(event.object["apiVersion"], event.object["kind"])
        resource = self.load(rt, event.object)
        self._pending.applies.append(resource)
        self._pending.order.append(("apply", len(self._pending.applies) - 1))

    async def settle(self) -> None:
        """Carry out what the API stored, then write back what the cluster derives from it.
        Called after every write the API answers, before the answer goes out, so that the
        next probe (or ``kubectl exec curl``) sees the change."""
        async with self._lock:
            pending, self._pending = self._pending, Pending()
            batch: list[Resource] = []
            for what, index in pending.order:
                if what == "apply":
                    batch.append(pending.applies[index])
                    continue
                if batch:
                    await self._apply(batch)
                    batch = []
                if what == "restart":
                    ns, deployment = pending.restarts[index]
                    if self.sandbox.cluster.deployment(ns, deployment) is not None:
                        await self.sandbox.restart(ns, deployment)
                    continue
                kind, namespace, name = pending.deletes[index]
                await self._delete(kind, namespace, name)
            if batch:
                await self._apply(batch)
            self.derive()

    async def _apply(self, resources: Sequence[Resource]) -> None:
        try:
            await self.sandbox.apply(resources)
        except ClusterStateError as exc:  # pragma: no cover - admission checked the same
            log.warning("the sandbox refused what the API stored: %s", exc)

    async def _delete(self, kind: str, namespace: str | None, name: str) -> None:
        from meshtutor.model.base import ResourceRef

        await self.sandbox.delete([ResourceRef(kind, namespace, name)])

    def _later(self, delay: float, fn: Any) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            fn()

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def _finalize_namespaces(self) -> None:
        assert self.core is not None
        self.core.finalize_namespaces()

    # --- derived objects ---------------------------------------------------------------------

    def derive(self) -> None:
        """Write the objects the controllers and the kubelet would: the node, ReplicaSets, Pods,
        Endpoints and Deployment status, from the sandbox's pods."""
        assert self.core is not None
        core = self.core
        self._deriving = True
        try:
            if core.get("", "nodes", None, NODE_NAME) is None:
                core.put(_node(), manager="kubelet")
            live: set[tuple[str, str]] = set()
            for pod in self.sandbox.cluster.pods():
                live.add(self._derive_pod(pod))
            for obj in core.list("", "pods"):
                meta = obj["metadata"]
                key = (meta["namespace"], meta["name"])
                if key not in live and not meta.get("deletionTimestamp"):
                    self._terminate_pod(meta["namespace"], meta["name"])
            for dep in core.list("apps", "deployments"):
                self._derive_deployment_status(dep)
            for svc in core.list("", "services"):
                self._derive_endpoints(svc)
        finally:
            self._deriving = False

    def _derive_pod(self, pod: PodState) -> tuple[str, str]:
        assert self.core is not None
        core = self.core
        owner = pod.owner
        name: str
        owner_refs: list[dict[str, Any]] = []
        labels = dict(pod.labels)
        if owner.kind == "Deployment":
            dep = core.get("apps", "deployments", pod.namespace, owner.name)
            if dep is None:
                return (pod.namespace, pod.name)
            template = dep["spec"]["template"]
            hash_ = pod_template_hash(template)
            rs = self._derive_replicaset(dep, hash_)
            labels["pod-template-hash"] = hash_
            known = self._pod_names.get((pod.namespace, owner.name))
            if known is None or known.created != pod.created:
                known = _PodName(f"{rs['metadata']['name']}-{random_suffix()}", pod.created)
                self._pod_names[(pod.namespace, owner.name)] = known
            name = known.name
            owner_refs = [_owner_ref(rs, "ReplicaSet", "apps/v1")]
            spec = copy.deepcopy(template.get("spec") or {})
        else:
            name = pod.name
            existing = core.get("", "pods", pod.namespace, name)
            spec = copy.deepcopy((existing or {}).get("spec") or {})
        current = core.get("", "pods", pod.namespace, name)
        if current is not None and current["status"].get("podIP") == pod.ip:
            return (pod.namespace, name)  # this pod is already written; pods are immutable
        template_containers = [str(c.get("name")) for c in spec.get("containers") or []]
        spec = self._injected(spec, pod)
        spec.setdefault("nodeName", NODE_NAME)
        spec.setdefault("serviceAccountName", pod.service_account)
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        annotations = dict(pod.annotations)
        if pod.sidecar is not None and template_containers:
            # Both injectors name the app as kubectl's default container, so `kubectl exec`
            # and `kubectl logs` without -c reach the app, not the proxy the injector added.
            annotations.setdefault(
                "kubectl.kubernetes.io/default-container", template_containers[0]
            )
        if pod.sidecar == "istio":
            annotations.setdefault("sidecar.istio.io/status", _istio_status(spec))
        if pod.sidecar == "linkerd":
            annotations.setdefault("linkerd.io/proxy-version", LINKERD_PROXY_IMAGE.split(":")[1])
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": pod.namespace,
                "labels": labels,
                **({"annotations": annotations} if annotations else {}),
                **({"ownerReferences": owner_refs} if owner_refs else {}),
                **({"generateName": f"{owner_refs[0]['name']}-"} if owner_refs else {}),
            },
            "spec": spec,
            "status": _pod_status(spec, pod.ip),
        }
        if current is not None:
            for key in ("uid", "creationTimestamp"):
                obj["metadata"][key] = current["metadata"][key]
        stored = core.put(obj, manager="kube-controller-manager")
        if current is None:
            self._pod_events(stored, owner_refs)
        return (pod.namespace, name)

    def _pod_events(self, pod: dict[str, Any], owner_refs: list[dict[str, Any]]) -> None:
        """What ``kubectl describe pod`` and ``kubectl get events`` show for a new pod, in the
        words of the components that write them (1.33: the ReplicaSet controller, the
        scheduler, the kubelet)."""
        meta = pod["metadata"]
        if owner_refs:
            rs = self._get("apps", "replicasets", meta["namespace"], owner_refs[0]["name"])
            if rs is not None:
                self._event(
                    rs, "SuccessfulCreate", f"Created pod: {meta['name']}", "replicaset-controller"
                )
        self._event(
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {NODE_NAME}",
            "default-scheduler",
        )
        spec = pod["spec"]
        for kind, containers in (
            ("initContainers", spec.get("initContainers") or []),
            ("containers", spec.get("containers") or []),
        ):
            for c in containers:
                where = f"spec.{kind}{{{c.get('name')}}}"
                image = c.get("image", "")
                self._event(
                    pod,
                    "Pulled",
                    f'Container image "{image}" already present on machine',
                    "kubelet",
                    where,
                )
                self._event(pod, "Created", f"Created container: {c.get('name')}", "kubelet", where)
                self._event(pod, "Started", f"Started container {c.get('name')}", "kubelet", where)

    def _event_clock(self) -> int:
        self._last_event_ns = max(time.time_ns(), self._last_event_ns + 1)
        return self._last_event_ns

    def _get(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert self.core is not None
        return self.core.get(group, plural, namespace, name)

    def _event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        component: str,
        field_path: str | None = None,
    ) -> None:
        assert self.core is not None
        meta = involved["metadata"]
        now = now_rfc3339()
        ref = {
            "apiVersion": involved.get("apiVersion", "v1"),
            "kind": involved.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        if field_path:
            ref["fieldPath"] = field_path
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                # client-go's recorder names events NAME.<unix nanoseconds in hex>, which also
                # keeps the ones of one second in the order they happened
                "name": f"{meta['name']}.{self._event_clock():x}",
                "namespace": meta.get("namespace") or "default",
            },
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "source": {
                "component": component,
                **({"host": NODE_NAME} if component == "kubelet" else {}),
            },
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": "Normal",
            "reportingComponent": component,
            "reportingInstance": NODE_NAME if component == "kubelet" else "",
        }
        self.core.put(event, manager=component)

    def _injected(self, spec: dict[str, Any], pod: PodState) -> dict[str, Any]:
        names = {c.get("name") for c in spec.get("containers") or []}
        if pod.sidecar == "istio" and "istio-proxy" not in names:
            spec.setdefault("initContainers", []).append(
                {
                    "name": "istio-init",
                    "image": ISTIO_PROXY_IMAGE,
                    "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337"],
                }
            )
            spec["containers"].append(
                {
                    "name": "istio-proxy",
                    "image": ISTIO_PROXY_IMAGE,
                    "args": ["proxy", "sidecar", "--domain", f"{pod.namespace}.svc.cluster.local"],
                    "ports": [
                        {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}
                    ],
                    "securityContext": {"runAsUser": 1337, "runAsGroup": 1337},
                }
            )
        if pod.sidecar == "linkerd" and "linkerd-proxy" not in names:
            spec.setdefault("initContainers", []).append(
                {
                    "name": "linkerd-init",
                    "image": LINKERD_INIT_IMAGE,
                    "args": ["--incoming-proxy-port", "4143"],
                }
            )
            spec["containers"].insert(
                0,  # the injector puts the proxy first so it starts before the app
                {
                    "name": "linkerd-proxy",
                    "image": LINKERD_PROXY_IMAGE,
                    "ports": [
                        {"containerPort": 4143, "name": "linkerd-proxy", "protocol": "TCP"},
                        {"containerPort": 4191, "name": "linkerd-admin", "protocol": "TCP"},
                    ],
                    "securityContext": {"runAsUser": 2102},
                },
            )
        return spec

    def _derive_replicaset(self, dep: dict[str, Any], hash_: str) -> dict[str, Any]:
        assert self.core is not None
        core = self.core
        meta = dep["metadata"]
        name = f"{meta['name']}-{hash_}"
        existing = core.get("apps", "replicasets", meta["namespace"], name)
        replicas = min(int(dep["spec"].get("replicas", 1)), 1)
        template = copy.deepcopy(dep["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = hash_
        selector = copy.deepcopy(dep["spec"]["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = hash_
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [_owner_ref(dep, "Deployment", "apps/v1")],
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                    "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                    "deployment.kubernetes.io/revision": str(meta.get("generation", 1)),
                },
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
            "status": {
                "replicas": replicas,
                "fullyLabeledReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "observedGeneration": 1,
            },
        }
        if existing is not None and existing.get("spec") == rs["spec"]:
            return existing
        # the old ReplicaSets of this Deployment scale to zero, as a rollout leaves them
        for other in core.list("apps", "replicasets", meta["namespace"]):
            refs = other["metadata"].get("ownerReferences") or []
            mine = any(r.get("uid") == meta["uid"] for r in refs)
            if other["metadata"]["name"] != name and mine and other["spec"].get("replicas"):
                scaled = copy.deepcopy(other)
                scaled["spec"]["replicas"] = 0
                scaled["status"] = {"replicas": 0, "observedGeneration": 2}
                core.put(scaled, manager="kube-controller-manager")
        stored = core.put(rs, manager="kube-controller-manager")
        if existing is None:
            self._event(
                dep,
                "ScalingReplicaSet",
                f"Scaled up replica set {name} from 0 to {replicas}",
                "deployment-controller",
            )
        return stored

    def _terminate_pod(self, namespace: str, name: str) -> None:
        """A replaced pod shows Terminating for a moment, then goes (the sandbox already
        stopped it: its address answers nothing)."""
        assert self.core is not None
        core = self.core
        obj = core.get("", "pods", namespace, name)
        if obj is None:
            return
        # The kubelet reports a terminating pod not ready at once, so kubectl (which prefers
        # ready pods for `exec deploy/x`, podutils.ByLogging) picks the replacement.
        status = copy.deepcopy(obj.get("status") or {})
        for condition in status.get("conditions") or []:
            if condition.get("type") in ("Ready", "ContainersReady"):
                condition["status"] = "False"
        for container in status.get("containerStatuses") or []:
            container["ready"] = False
        core.begin_deletion("", "pods", namespace, name, status=status)

        def gone() -> None:
            self._deriving = True
            try:
                core.remove("", "pods", namespace, name)
            finally:
                self._deriving = False

        self._later(POD_TERMINATING_SECONDS, gone)

    def _derive_deployment_status(self, dep: dict[str, Any]) -> None:
        assert self.core is not None
        meta = dep["metadata"]
        pod = self.sandbox.cluster.pod_for(meta["namespace"], meta["name"])
        ready = 1 if pod is not None else 0
        wanted = int(dep["spec"].get("replicas", 1))
        now = now_rfc3339()
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": ready,
            "updatedReplicas": ready,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if ready or not wanted else "False",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{meta["name"]}-{pod_template_hash(dep["spec"]["template"])}" has successfully progressed.',
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
            ],
        }
        if not ready:
            for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
                status.pop(key)
        old = dep.get("status") or {}
        if _without_times(old) == _without_times(status):
            return
        updated = copy.deepcopy(dep)
        updated["status"] = status
        self.core.put(updated, manager="kube-controller-manager")

    def _derive_endpoints(self, svc: dict[str, Any]) -> None:
        from meshtutor.policy.predict import service_endpoints

        assert self.core is not None
        meta = svc["metadata"]
        service = self.sandbox.cluster.service(meta["namespace"], meta["name"])
        if service is None or not service.selector:
            return
        subsets = []
        for svc_port in service.ports:
            found = service_endpoints(self.sandbox.cluster, service, svc_port)
            if not found:
                continue
            addresses = [
                {
                    "ip": pod.ip,
                    "nodeName": NODE_NAME,
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": pod.namespace,
                        "name": self.api_pod_name(pod),
                    },
                }
                for pod, _ in found
            ]
            port = {"port": found[0][1], "protocol": "TCP"}
            if svc_port.name:
                port["name"] = svc_port.name
            subsets.append({"addresses": addresses, "ports": [port]})
        obj = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "labels": dict(meta.get("labels") or {}),
            },
            **({"subsets": subsets} if subsets else {}),
        }
        current = self.core.get("", "endpoints", meta["namespace"], meta["name"])
        if current is not None and current.get("subsets") == obj.get("subsets"):
            return
        self.core.put(obj, manager="kube-controller-manager")

    # --- lookups for exec and logs -------------------------------------------------------------

    def api_pod_name(self, pod: PodState) -> str:
        if pod.owner.kind == "Deployment":
            known = self._pod_names.get((pod.namespace, pod.owner.name))
            if known is not None and known.created == pod.created:
                return known.name
        return pod.name

    def sandbox_pod(self, namespace: str, name: str) -> PodState | None:
        """The running sandbox pod behind an API pod name (None once it was replaced)."""
        for pod in self.sandbox.cluster.pods(namespace):
            if self.api_pod_name(pod) == name:
                return pod
        return None


# --- what admission fills in -----------------------------------------------------------------


def _service_defaults(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """What the API server's Service strategy sets: a cluster IP for the Service's lifetime,
    TCP ports, targetPort defaulting to port, node ports for NodePort/LoadBalancer."""
    new = copy.deepcopy(new)
    spec = new.setdefault("spec", {})
    meta = new.get("metadata") or {}
    spec.setdefault("type", "ClusterIP")
    old_spec = (old or {}).get("spec") or {}
    if spec["type"] != "ExternalName":
        ip = spec.get("clusterIP") or old_spec.get("clusterIP")
        if not ip:
            ip = cluster_ip_for(meta.get("namespace", "default"), meta.get("name", ""))
        spec["clusterIP"] = ip
        if ip != "None":
            spec.setdefault("clusterIPs", [ip])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
            if spec["type"] in ("NodePort", "LoadBalancer") and "port" in port:
                key = f"{meta.get('namespace', 'default')}/{meta.get('name', '')}/{port['port']}"
                port.setdefault("nodePort", 30000 + zlib.crc32(key.encode()) % 2768)
    return new


def _deployment_defaults(new: dict[str, Any]) -> dict[str, Any]:
    """The apps/v1 defaults a Deployment is stored with (pkg/apis/apps/v1/defaults.go)."""
    new = copy.deepcopy(new)
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return new
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
    )
    return new


def _node() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {"podCIDR": "127.42.0.0/16"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now_rfc3339(),
                    "lastTransitionTime": now_rfc3339(),
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.33.1",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "meshtutor-sandbox",
            },
        },
    }


def _owner_ref(obj: Mapping[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _controller_of(obj: Mapping[str, Any]) -> str | None:
    """The name of the ReplicaSet that controls a pod, if one does."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
            return str(ref.get("name"))
    return None


def _istio_status(spec: Mapping[str, Any]) -> str:
    return json.dumps(
        {
            "initContainers": ["istio-init"],
            "containers": ["istio-proxy"],
            "volumes": ["istio-envoy", "istio-data", "istio-podinfo", "istiod-ca-cert"],
            "imagePullSecrets": None,
            "revision": "default",
        },
        separators=(",", ":"),
    )


def _pod_status(spec: Mapping[str, Any], ip: str) -> dict[str, Any]:
    started = now_rfc3339()

    def running(container: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": container.get("name"),
            "image": container.get("image", ""),
            "imageID": "",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}},
        }

    def completed(container: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": container.get("name"),
            "image": container.get("image", ""),
            "imageID": "",
            "ready": True,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": started,
                    "finishedAt": started,
                }
            },
        }

    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": started, "lastProbeTime": None}
        for kind in (
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        )
    ]
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "qosClass": "BestEffort",
        "containerStatuses": [running(c) for c in spec.get("containers") or []],
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [completed(c) for c in spec["initContainers"]]
    return status


def _without_times(status: Mapping[str, Any]) -> Any:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.endswith("Time")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(dict(status))


# --- which API resources the sandbox runs ------------------------------------------------------


def _plural_of(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def _modelled_index() -> dict[tuple[str, str], str]:
    from meshtutor.model.loader import KINDS

    return {(info.group, _plural_of(info.kind)): info.kind for info in KINDS}


_MODELLED_BY_PLURAL: dict[tuple[str, str], str] = _modelled_index()


def _modelled(rt: ResourceType) -> str | None:
    return _MODELLED_BY_PLURAL.get((rt.group, rt.plural))


def _invalid(
    rt: ResourceType, obj: Mapping[str, Any], field_path: str | None, message: str
) -> Exception:
    """What the API server answers an object meshtutor's model refuses.

    An unknown field is the strict decoding error kubectl's default ``--validate=strict``
    asks the server for (``fieldValidation=Strict``: 400 BadRequest, ``PeerAuthentication in
    version "v1" cannot be handled as a PeerAuthentication: strict decoding error: unknown
    field "spec.mtls.mdoe"``, apimachinery's ``runtime.NewStrictDecodingError``). Anything
    else is a 422 Invalid with the field named, as ``errors.NewInvalid`` shapes it (kubectl
    prints ``The PeerAuthentication "x" is invalid: spec.mtls.mode: Invalid value: …``)."""
    from meshtutor.kubeapi.protocol import APIError

    name = str((obj.get("metadata") or {}).get("name", ""))
    version = str(obj.get("apiVersion", "")).rpartition("/")[2]
    if field_path and message.startswith("unknown field"):
        return APIError(
            400,
            f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
            f'strict decoding error: unknown field "{field_path}"',
            "BadRequest",
        )
    where = f"{field_path}: " if field_path else ""
    cause = {"reason": "FieldValueInvalid", "message": f"Invalid value: {message}"}
    if field_path:
        cause["field"] = field_path
    group = {"group": rt.group} if rt.group else {}
    return APIError(
        422,
        f'{rt.qualified_kind} "{name}" is invalid: {where}Invalid value: {message}',
        "Invalid",
        {"name": name, **group, "kind": rt.kind, "causes": [cause]},
    )
