"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` shows.

``kubectl get`` asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints
the cells it gets back: the columns (``READY 2/2``, ``MODE STRICT``, ``AGE 5m``) are computed by
the API server, not by kubectl. This module computes them as a real server does, so that the
sandbox's ``kubectl get pods`` and ``kubectl get peerauthentication -A`` print what a learner
will later see on a real cluster.

Two kinds of printers exist upstream, and both are here:

* built-in types: ``kubernetes/pkg/printers/internalversion/printers.go`` (``printPod``,
  ``printService``, ...), one hand-written function per type, all columns always sent (the
  server builds them with ``GenerateOptions{Wide: true}``, ``pkg/registry/core/.../storage``
  via ``printerstorage.TableConvertor``); kubectl hides ``priority > 0`` unless ``-o wide``;
* custom resources: the CRD's ``additionalPrinterColumns`` for the served version, evaluated
  by apiextensions-apiserver's ``pkg/registry/customresource/tableconvertor/tableconvertor.go``
  (JSONPath, first result only; ``date`` shown as an age; a CRD without columns gets ``Age``,
  ``serveDefaultColumnsIfEmpty`` in ``pkg/apis/apiextensions/helpers.go``).

The module is pure: no I/O, no clock (``now`` is an argument), no imports from the sandbox.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Column", "human_duration", "known", "to_table"]

TABLE_API_VERSION = "meta.k8s.io/v1"

# What the apiserver accepts for ?includeObject= (apiserver pkg/endpoints/handlers/response.go,
# asTable): "" means Metadata.
_INCLUDE = {"": "Metadata", "Metadata": "Metadata", "Object": "Object", "None": "None"}


# --- descriptions --------------------------------------------------------------------------
# The Table's column descriptions are the Go types' SwaggerDoc() strings, copied verbatim from
# k8s.io/api (commit 10b39a3) and k8s.io/apimachinery pkg/apis/meta/v1
# types_swagger_doc_generated.go. kubectl does not print them; clients that do (dashboards,
# `kubectl explain`-like tools) then read what a real server would have sent.
_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_DOC = {
    "PodStatus.podIP": "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    "PodSpec.nodeName": "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
    "PodStatus.nominatedNodeName": "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
    "PodSpec.readinessGates": 'If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to "True" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates',
    "PodSpec.nodeSelector": "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
    "ReplicaSetSpec.replicas": "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
    "ReplicaSetStatus.replicas": "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
    "ReplicaSetStatus.readyReplicas": "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
    "ReplicaSetSpec.selector": "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    "DeploymentStatus.updatedReplicas": "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
    "DeploymentStatus.availableReplicas": "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
    "DeploymentSpec.selector": "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.",
    "DaemonSetStatus.desiredNumberScheduled": "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    "DaemonSetStatus.currentNumberScheduled": "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    "DaemonSetStatus.numberReady": "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
    "DaemonSetStatus.updatedNumberScheduled": "The total number of nodes that are running updated daemon pod",
    "DaemonSetStatus.numberAvailable": "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
    "DaemonSetSpec.selector": "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    "ServiceSpec.type": 'type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is "None", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. "NodePort" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. "LoadBalancer" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. "ExternalName" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types',
    "ServiceSpec.clusterIP": 'clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are "None", empty string (""), or a valid IP address. Setting this to "None" makes a "headless service" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies',
    "ServiceSpec.externalIPs": "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.",
    "ServiceSpec.ports": "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    "ServiceSpec.selector": "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
    "Endpoints.subsets": "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.",
    "EndpointSlice.addressType": 'addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType "IPv4" and "IPv6". No semantics are defined for the "FQDN" type.',
    "EndpointSlice.ports": "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.",
    "EndpointSlice.endpoints": "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
    "Secret.type": "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
    "Secret.data": "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
    "ServiceAccount.secrets": 'Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a "kubernetes.io/enforce-mountable-secrets" annotation set to "true". The "kubernetes.io/enforce-mountable-secrets" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret',
    "ConfigMap.data": "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
    "NetworkPolicySpec.podSelector": "podSelector selects the pods to which this NetworkPolicy object applies. The array of rules is applied to any pods selected by this field. An empty selector matches all pods in the policy's namespace. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is optional. If it is not specified, it defaults to an empty selector.",
    "Event.lastTimestamp": "The time at which the most recent occurrence of this event was recorded.",
    "Event.type": "Type of this event (Normal, Warning), new types could be added in the future",
    "Event.reason": "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    "Event.involvedObject": "The object that this event is about.",
    "ObjectReference.fieldPath": 'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: "spec.containers{name}" (where "name" refers to the name of the container that triggered the event) or if no container name is specified "spec.containers[2]" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.',
    "Event.source": "The component reporting this event. Should be a short machine understandable string.",
    "Event.message": "A human-readable description of the status of this operation.",
    "Event.firstTimestamp": "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    "Event.count": "The number of times this event has occurred.",
    "NodeSystemInfo.kubeletVersion": "Kubelet Version reported by the node.",
    "NodeStatus.addresses": "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).",
    "NodeSystemInfo.osImage": "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    "NodeSystemInfo.kernelVersion": "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    "NodeSystemInfo.containerRuntimeVersion": "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    "PersistentVolumeClaimStatus.phase": "phase represents the current phase of PersistentVolumeClaim.",
    "PersistentVolumeClaimSpec.volumeName": "volumeName is the binding reference to the PersistentVolume backing this claim.",
    "PersistentVolumeClaimStatus.capacity": "capacity represents the actual resources of the underlying volume.",
    "PersistentVolumeClaimStatus.accessModes": "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
    "PersistentVolumeClaimSpec.volumeMode": "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.",
}
_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."


@dataclass(frozen=True)
class Column:
    """One ``TableColumnDefinition``: every field is always on the wire (no omitempty)."""

    name: str
    type: str
    description: str
    format: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def _name_column() -> Column:
    return Column("Name", "string", _NAME_DOC, format="name")


def _age_column() -> Column:
    return Column("Age", "string", _AGE_DOC)


# --- ages: k8s.io/apimachinery pkg/util/duration/duration.go ------------------------------
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)


def human_duration(d: timedelta) -> str:
    """``duration.HumanDuration``: ``5s``, ``2m3s``, ``10m``, ``3h5m``, ``2d3h``, ``2y100d``.

    Up to one second in the future reads ``0s`` (clock skew between machines); further in
    the future is ``<invalid>``, as upstream.
    """
    micros = d // timedelta(microseconds=1)
    # Go's int(d.Seconds()) truncates toward zero: -1.9s is -1 ("0s"), -2s is "<invalid>".
    seconds = -((-micros) // 1_000_000) if micros < 0 else micros // 1_000_000
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = d // _MINUTE
    if minutes < 10:
        s = (d // _SECOND) % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = d // _HOUR
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


# metav1.Time's wire form is RFC 3339 (time.Parse(time.RFC3339, ...) accepts fractions too).
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z"
)


class _Invalid:
    """A timestamp that is present but does not parse."""


_INVALID = _Invalid()


def _parse_time(value: object) -> datetime | _Invalid | None:
    """None for an absent (or empty, or ``null``) timestamp, as metav1.Time's zero value."""
    if value is None or value in ("", "null"):
        return None
    if not isinstance(value, str):
        return _INVALID
    m = _RFC3339.match(value)
    if m is None:
        return _INVALID
    date, clock, fraction, zone = m.groups()
    micro = (fraction or "")[:6].ljust(6, "0")
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{date}T{clock}.{micro}{zone}")
    except ValueError:
        return _INVALID


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _age(value: object, now: datetime) -> str:
    """``translateTimestampSince``: ``<unknown>`` when absent, else the HumanDuration."""
    t = _parse_time(value)
    if t is None:
        return "<unknown>"
    if isinstance(t, _Invalid):
        return "<invalid>"
    return human_duration(_aware(now) - t)


# --- safe access to stored objects ---------------------------------------------------------
# Objects come from the store; a printer must never fail on an odd shape (a user may create a
# Pod with a string where a list belongs, and `kubectl get pods` must still answer).
def _get(obj: object, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _strs(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str_map(value: object) -> dict[str, str]:
    return {k: v for k, v in _dict(value).items() if isinstance(v, str)}


# --- label formatting: k8s.io/apimachinery pkg/labels and pkg/apis/meta/v1/helpers.go ---------
def _format_labels(labels: Mapping[str, str]) -> str:
    """``labels.FormatLabels``: ``k=v`` sorted as strings, ``<none>`` when empty."""
    return ",".join(sorted(f"{k}={v}" for k, v in labels.items())) or "<none>"


_SELECTOR_OPS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


def _selector_string(selector: object) -> str | None:
    """``LabelSelectorAsSelector(s).String()``; None where upstream returns an error.

    Requirements are sorted by key; In/NotIn values are sorted; an absent or empty selector
    is the empty string (labels.Nothing / labels.Everything both print "").
    """
    if not isinstance(selector, dict):
        return ""
    reqs: list[tuple[str, str]] = []
    for key, value in _dict(selector.get("matchLabels")).items():
        if not isinstance(value, str):
            return None
        reqs.append((key, f"{key}={value}"))
    expressions = selector.get("matchExpressions")
    if expressions is not None and not isinstance(expressions, list):
        return None
    for expr in expressions or []:
        key, op, values = _get(expr, "key"), _get(expr, "operator"), _get(expr, "values")
        if not isinstance(key, str) or op not in _SELECTOR_OPS:
            return None
        vals = _strs(values)
        if op in ("In", "NotIn"):
            if not vals:
                return (
                    None  # NewRequirement: "for 'in', 'notin' operators, values set can't be empty"
                )
            reqs.append((key, f"{key}{_SELECTOR_OPS[op]}({','.join(sorted(vals))})"))
        else:
            if vals:
                return None  # "values set must be empty for exists and does not exist"
            reqs.append((key, key if op == "Exists" else f"!{key}"))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def _format_label_selector(selector: object) -> str:
    """``metav1.FormatLabelSelector``: ``<none>`` when empty, ``<error>`` when invalid."""
    text = _selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def _layout_containers(template_spec: object) -> tuple[str, str]:
    """``layoutContainerCells``: container names and images, comma-separated."""
    containers = _dicts(_get(template_spec, "containers"))
    return (
        ",".join(_str(c.get("name")) for c in containers),
        ",".join(_str(c.get("image")) for c in containers),
    )


def _replicas(spec: object) -> int:
    """``spec.replicas``; the API defaults an absent value to 1 (apps/v1 SetDefaults_*)."""
    value = _get(spec, "replicas")
    return _int(value, 1) if value is not None else 1


# --- built-in printers: kubernetes pkg/printers/internalversion/printers.go ----------------
_Row = tuple[list[Any], list[dict[str, Any]] | None]  # cells, row conditions


@dataclass(frozen=True)
class _Builtin:
    columns: tuple[Column, ...]
    row: Callable[[dict[str, Any], datetime], _Row]


def _is_restartable_init(container: dict[str, Any] | None) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always`` (KEP-753)."""
    return container is not None and container.get("restartPolicy") == "Always"


def _condition_true(conditions: list[dict[str, Any]], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in conditions)


def _initialized(conditions: list[dict[str, Any]]) -> bool:
    """``isPodInitializedConditionTrue``: the first Initialized condition decides."""
    for c in conditions:
        if c.get("type") == "Initialized":
            return c.get("status") == "True"
    return False


def _finished_at(status: dict[str, Any]) -> datetime | None:
    t = _parse_time(_get(status, "lastState", "terminated", "finishedAt"))
    return t if isinstance(t, datetime) else None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if b is not None and (a is None or a < b):
        return b
    return a


_POD_SUCCEEDED = {
    "type": "Completed",
    "status": "True",
    "reason": "Succeeded",
    "message": "The pod has completed successfully.",
}
_POD_FAILED = {
    "type": "Completed",
    "status": "True",
    "reason": "Failed",
    "message": "The pod failed.",
}


def _pod_row(pod: dict[str, Any], now: datetime) -> _Row:
    """``printPod`` (kubernetes v1.33): READY, STATUS, RESTARTS as ``kubectl get pods`` shows.

    READY counts spec.containers plus sidecar init containers (restartPolicy Always); STATUS
    walks init container statuses (``Init:0/1``, ``Init:CrashLoopBackOff``) and then the
    containers in reverse, so the first container's waiting/terminated reason wins
    (``CrashLoopBackOff``, ``ContainerCreating``, ``Completed``, ``Error``); a deletion
    timestamp on a pod that has not finished reads ``Terminating``.
    """
    spec, status = _dict(pod.get("spec")), _dict(pod.get("status"))
    conditions = _dicts(status.get("conditions"))
    restarts = 0
    sidecar_restarts = 0
    total = len(_dicts(spec.get("containers")))
    ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    conds: list[dict[str, Any]] | None = None
    if phase == "Succeeded":
        conds = [dict(_POD_SUCCEEDED)]
    elif phase == "Failed":
        conds = [dict(_POD_FAILED)]

    init_specs = _dicts(spec.get("initContainers"))
    init_by_name = {_str(c.get("name")): c for c in init_specs}
    total += sum(1 for c in init_specs if _is_restartable_init(c))

    initializing = False
    for i, cs in enumerate(_dicts(status.get("initContainerStatuses"))):
        restarts += _int(cs.get("restartCount"))
        finished = _finished_at(cs)
        last_restart = _later(last_restart, finished)
        sidecar = _is_restartable_init(init_by_name.get(_str(cs.get("name"))))
        if sidecar:
            sidecar_restarts += _int(cs.get("restartCount"))
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        terminated = _get(cs, "state", "terminated")
        waiting_reason = _str(_get(cs, "state", "waiting", "reason"))
        if isinstance(terminated, dict) and _int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, dict):
            if not _str(terminated.get("reason")):
                if _int(terminated.get("signal")) != 0:
                    reason = f"Init:Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
            else:
                reason = "Init:" + _str(terminated.get("reason"))
        elif waiting_reason and waiting_reason != "PodInitializing":
            reason = "Init:" + waiting_reason
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _initialized(conditions):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(_dicts(status.get("containerStatuses"))):
            restarts += _int(cs.get("restartCount"))
            last_restart = _later(last_restart, _finished_at(cs))
            state = _dict(cs.get("state"))
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if isinstance(waiting, dict) and _str(waiting.get("reason")):
                reason = _str(waiting.get("reason"))
            elif isinstance(terminated, dict) and _str(terminated.get("reason")):
                reason = _str(terminated.get("reason"))
            elif isinstance(terminated, dict):
                if _int(terminated.get("signal")) != 0:
                    reason = f"Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif cs.get("ready") is True and isinstance(state.get("running"), dict):
                has_running = True
                ready += 1
        # a pod whose containers partly completed is still Running while one runs
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    deleting = _parse_time(_get(pod, "metadata", "deletionTimestamp")) is not None
    if deleting and _str(status.get("reason")) == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(_aware(now) - last_restart)} ago)"

    # The apiserver converts a v1 pod with only status.podIP into podIPs=[podIP]
    # (pkg/apis/core/v1/conversion.go), so the printer sees the IP either way.
    pod_ips = _dicts(status.get("podIPs"))
    pod_ip = (_str(pod_ips[0].get("ip")) if pod_ips else "") or _str(status.get("podIP"))

    gates = _dicts(spec.get("readinessGates"))
    readiness_gates = "<none>"
    if gates:
        true_gates = 0
        for gate in gates:
            for c in conditions:
                if c.get("type") == gate.get("conditionType"):
                    true_gates += c.get("status") == "True"
                    break
        readiness_gates = f"{true_gates}/{len(gates)}"

    cells: list[Any] = [
        _str(_get(pod, "metadata", "name")),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _age(_get(pod, "metadata", "creationTimestamp"), now),
        pod_ip or "<none>",
        _str(spec.get("nodeName")) or "<none>",
        _str(status.get("nominatedNodeName")) or "<none>",
        readiness_gates,
    ]
    return cells, conds


_POD = _Builtin(
    (
        _name_column(),
        Column(
            "Ready", "string", "The aggregate readiness state of this pod for accepting traffic."
        ),
        Column("Status", "string", "The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the "
            "last container in this pod has restarted.",
        ),
        _age_column(),
        Column("IP", "string", _DOC["PodStatus.podIP"], priority=1),
        Column("Node", "string", _DOC["PodSpec.nodeName"], priority=1),
        Column("Nominated Node", "string", _DOC["PodStatus.nominatedNodeName"], priority=1),
        Column("Readiness Gates", "string", _DOC["PodSpec.readinessGates"], priority=1),
    ),
    _pod_row,
)


def _name_and_age(obj: dict[str, Any], now: datetime) -> tuple[str, str]:
    return _str(_get(obj, "metadata", "name")), _age(
        _get(obj, "metadata", "creationTimestamp"), now
    )


def _deployment_row(obj: dict[str, Any], now: datetime) -> _Row:
    """``printDeployment``: READY ready/desired, UP-TO-DATE, AVAILABLE (integers)."""
    name, age = _name_and_age(obj, now)
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    selector = _selector_string(spec.get("selector"))
    names, images = _layout_containers(_get(spec, "template", "spec"))
    cells = [
        name,
        f"{_int(status.get('readyReplicas'))}/{_replicas(spec)}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        age,
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]
    return cells, None


_WORKLOAD_WIDE = (
    Column("Containers", "string", _CONTAINERS_DOC, priority=1),
    Column("Images", "string", _IMAGES_DOC, priority=1),
)

_DEPLOYMENT = _Builtin(
    (
        _name_column(),
        Column("Ready", "string", "Number of the pod with ready state"),
        Column("Up-to-date", "string", _DOC["DeploymentStatus.updatedReplicas"]),
        Column("Available", "string", _DOC["DeploymentStatus.availableReplicas"]),
        _age_column(),
        *_WORKLOAD_WIDE,
        Column("Selector", "string", _DOC["DeploymentSpec.selector"], priority=1),
    ),
    _deployment_row,
)


def _replicaset_row(obj: dict[str, Any], now: datetime) -> _Row:
    """``printReplicaSet``: DESIRED, CURRENT, READY as integers."""
    name, age = _name_and_age(obj, now)
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    names, images = _layout_containers(_get(spec, "template", "spec"))
    cells = [
        name,
        _replicas(spec),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        age,
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]
    return cells, None


_REPLICASET = _Builtin(
    (
        _name_column(),
        Column("Desired", "integer", _DOC["ReplicaSetSpec.replicas"]),
        Column("Current", "integer", _DOC["ReplicaSetStatus.replicas"]),
        Column("Ready", "integer", _DOC["ReplicaSetStatus.readyReplicas"]),
        _age_column(),
        *_WORKLOAD_WIDE,
        Column("Selector", "string", _DOC["ReplicaSetSpec.selector"], priority=1),
    ),
    _replicaset_row,
)


def _statefulset_row(obj: dict[str, Any], now: datetime) -> _Row:
    name, age = _name_and_age(obj, now)
    spec = _dict(obj.get("spec"))
    names, images = _layout_containers(_get(spec, "template", "spec"))
    ready = _int(_get(obj, "status", "readyReplicas"))
    return [name, f"{ready}/{_replicas(spec)}", age, names, images], None


_STATEFULSET = _Builtin(
    (
        _name_column(),
        Column("Ready", "string", "Number of the pod with ready state"),
        _age_column(),
        *_WORKLOAD_WIDE,
    ),
    _statefulset_row,
)


def _daemonset_row(obj: dict[str, Any], now: datetime) -> _Row:
    name, age = _name_and_age(obj, now)
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    names, images = _layout_containers(_get(spec, "template", "spec"))
    cells = [
        name,
        _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")),
        _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")),
        _int(status.get("numberAvailable")),
        _format_labels(_str_map(_get(spec, "template", "spec", "nodeSelector"))),
        age,
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]
    return cells, None


_DAEMONSET = _Builtin(
    (
        _name_column(),
        Column("Desired", "integer", _DOC["DaemonSetStatus.desiredNumberScheduled"]),
        Column("Current", "integer", _DOC["DaemonSetStatus.currentNumberScheduled"]),
        Column("Ready", "integer", _DOC["DaemonSetStatus.numberReady"]),
        Column("Up-to-date", "integer", _DOC["DaemonSetStatus.updatedNumberScheduled"]),
        Column("Available", "integer", _DOC["DaemonSetStatus.numberAvailable"]),
        Column("Node Selector", "string", _DOC["PodSpec.nodeSelector"]),
        _age_column(),
        *_WORKLOAD_WIDE,
        Column("Selector", "string", _DOC["DaemonSetSpec.selector"], priority=1),
    ),
    _daemonset_row,
)


_LOAD_BALANCER_WIDTH = 16


def _lb_ingress(status: object) -> list[str]:
    """``loadBalancerStatusStringer`` (wide): each ingress's IP, else its hostname, once."""
    seen: list[str] = []
    for ing in _dicts(_get(status, "loadBalancer", "ingress")):
        value = _str(ing.get("ip")) or _str(ing.get("hostname"))
        if value and value not in seen:
            seen.append(value)
    return seen


def _service_external_ip(spec: dict[str, Any], status: object) -> str:
    """``getServiceExternalIP(svc, wide=true)``: ``<none>``, ``<pending>``, the LB address."""
    svc_type = _str(spec.get("type")) or "ClusterIP"
    external = _strs(spec.get("externalIPs"))
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if svc_type == "LoadBalancer":
        lb = _lb_ingress(status)
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if svc_type == "ExternalName":
        return _str(spec.get("externalName"))
    return "<unknown>"


def _port_string(ports: list[dict[str, Any]]) -> str:
    """``makePortString``: ``80/TCP``, ``80:30080/TCP`` (protocol defaults to TCP)."""
    pieces = []
    for p in ports:
        protocol = _str(p.get("protocol")) or "TCP"
        node_port = _int(p.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{_int(p.get('port'))}:{node_port}/{protocol}")
        else:
            pieces.append(f"{_int(p.get('port'))}/{protocol}")
    return ",".join(pieces)


def _service_row(obj: dict[str, Any], now: datetime) -> _Row:
    """``printService``: TYPE, CLUSTER-IP (clusterIPs[0], ``None`` when headless), ..."""
    name, age = _name_and_age(obj, now)
    spec = _dict(obj.get("spec"))
    # The API defaults clusterIPs from clusterIP; a stored object may carry only the latter.
    cluster_ips = _strs(spec.get("clusterIPs"))
    cluster_ip = (cluster_ips[0] if cluster_ips else "") or _str(spec.get("clusterIP"))
    cells = [
        name,
        _str(spec.get("type")) or "ClusterIP",
        cluster_ip or "<none>",
        _service_external_ip(spec, obj.get("status")),
        _port_string(_dicts(spec.get("ports"))) or "<none>",
        age,
        _format_labels(_str_map(spec.get("selector"))),
    ]
    return cells, None


_SERVICE = _Builtin(
    (
        _name_column(),
        Column("Type", "string", _DOC["ServiceSpec.type"]),
        Column("Cluster-IP", "string", _DOC["ServiceSpec.clusterIP"]),
        Column("External-IP", "string", _DOC["ServiceSpec.externalIPs"]),
        Column("Port(s)", "string", _DOC["ServiceSpec.ports"]),
        _age_column(),
        Column("Selector", "string", _DOC["ServiceSpec.selector"], priority=1),
    ),
    _service_row,
)


def _host_port(ip: str, port: int) -> str:
    """``net.JoinHostPort``: IPv6 addresses get brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _format_endpoints(obj: dict[str, Any]) -> str:
    """``formatEndpoints(ep, nil)``: at most three ``ip:port``, then ``+ N more...``."""
    subsets = _dicts(obj.get("subsets"))
    if not subsets:
        return "<none>"
    maximum = 3
    shown: list[str] = []
    more = False
    count = 0
    for ss in subsets:
        addresses = [_str(a.get("ip")) for a in _dicts(ss.get("addresses"))]
        ports = _dicts(ss.get("ports"))
        if not ports:
            # headless services may have no ports: just the IPs
            count += len(addresses)
            for ip in addresses:
                if len(shown) == maximum:
                    more = True
                    break
                shown.append(ip)
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == maximum:
                    more = True
                    break
                shown.append(_host_port(ip, _int(port.get("port"))))
    text = ",".join(shown)
    return f"{text} + {count - maximum} more..." if more else text


def _endpoints_row(obj: dict[str, Any], now: datetime) -> _Row:
    name, age = _name_and_age(obj, now)
    return [name, _format_endpoints(obj), age], None


_ENDPOINTS = _Builtin(
    (_name_column(), Column("Endpoints", "string", _DOC["Endpoints.subsets"]), _age_column()),
    _endpoints_row,
)


def _list_with_more(shown: list[str], more: bool, count: int, maximum: int) -> str:
    """``listWithMoreString``: as formatEndpoints, but ``<unset>`` when empty."""
    text = ",".join(shown)
    if more:
        return f"{text} + {count - maximum} more..."
    return text or "<unset>"


def _endpointslice_row(obj: dict[str, Any], now: datetime) -> _Row:
    """``printEndpointSlice``: ADDRESSTYPE, PORTS, ENDPOINTS."""
    name, age = _name_and_age(obj, now)
    maximum = 3
    ports: list[str] = []
    more_ports = False
    for p in _dicts(obj.get("ports")):
        if len(ports) < maximum:
            port = p.get("port")
            pname = p.get("name")
            ports.append(
                str(_int(port)) if port is not None else (pname if isinstance(pname, str) else "*")
            )
        elif len(ports) == maximum:
            more_ports = True
    addresses: list[str] = []
    more_addresses = False
    address_count = 0
    for ep in _dicts(obj.get("endpoints")):
        for address in _strs(ep.get("addresses")):
            if len(addresses) < maximum:
                addresses.append(address)
            elif len(addresses) == maximum:
                more_addresses = True
            address_count += 1
    cells = [
        name,
        _str(obj.get("addressType")),
        _list_with_more(ports, more_ports, len(_dicts(obj.get("ports"))), maximum),
        _list_with_more(addresses, more_addresses, address_count, maximum),
        age,
    ]
    return cells, None


_ENDPOINTSLICE = _Builtin(
    (
        _name_column(),
        Column("AddressType", "string", _DOC["EndpointSlice.addressType"]),
        Column("Ports", "string", _DOC["EndpointSlice.ports"]),
        Column("Endpoints", "string", _DOC["EndpointSlice.endpoints"]),
        _age_column(),
    ),
    _endpointslice_row,
)


def _namespace_row(obj: dict[str, Any], now: datetime) -> _Row:
    name, age = _name_and_age(obj, now)
    # The apiserver sets phase Active on create (namespace strategy PrepareForCreate) and
    # Terminating on delete; a stored object without it reads as the server would show it.
    phase = _str(_get(obj, "status", "phase"))
    if not phase:
        deleting = _parse_time(_get(obj, "metadata", "deletionTimestamp")) is not None
        phase = "Terminating" if deleting else "Active"
    return [name, phase, age], None


_NAMESPACE = _Builtin(
    (_name_column(), Column("Status", "string", "The status of the namespace"), _age_column()),
    _namespace_row,
)


def _configmap_row(obj: dict[str, Any], now: datetime) -> _Row:
    name, age = _name_and_age(obj, now)
    data = len(_dict(obj.get("data"))) + len(_dict(obj.get("binaryData")))
    return [name, data, age], None


_CONFIGMAP = _Builtin(
    (_name_column(), Column("Data", "string", _DOC["ConfigMap.data"]), _age_column()),
    _configmap_row,
)


def _secret_row(obj: dict[str, Any], now: datetime) -> _Row:
    name, age = _name_and_age(obj, now)
    # stringData is write-only: the apiserver merges it into data before storing
    data = len(_dict(obj.get("data")) | _dict(obj.get("stringData")))
    return [name, _str(obj.get("type")) or "Opaque", data, age], None


_SECRET = _Builtin(
    (
        _name_column(),
        Column("Type", "string", _DOC["Secret.type"]),
        Column("Data", "string", _DOC["Secret.data"]),
        _age_column(),
    ),
    _secret_row,
)


def _serviceaccount_row(obj: dict[str, Any], now: datetime) -> _Row:
    name, age = _name_and_age(obj, now)
    return [name, len(_dicts(obj.get("secrets"))), age], None


_SERVICEACCOUNT = _Builtin(
    (_name_column(), Column("Secrets", "string", _DOC["ServiceAccount.secrets"]), _age_column()),
    _serviceaccount_row,
)


def _event_row(obj: dict[str, Any], now: datetime) -> _Row:
    """``printEvent``: LAST SEEN, TYPE, REASON, OBJECT (kind/name lower-cased), MESSAGE."""
    first_ts, last_ts = obj.get("firstTimestamp"), obj.get("lastTimestamp")
    first = _age(first_ts, now)
    if _parse_time(first_ts) is None:
        first = _age(obj.get("eventTime"), now)
    last = _age(last_ts, now) if _parse_time(last_ts) is not None else first
    count = _int(obj.get("count"))
    series = obj.get("series")
    if isinstance(series, dict):
        last = _age(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events carry no count in the events.k8s.io API
    involved = _dict(obj.get("involvedObject"))
    kind = _str(involved.get("kind")).lower()
    target = f"{kind}/{_str(involved.get('name'))}" if _str(involved.get("name")) else kind
    source = _dict(obj.get("source"))
    component = _str(source.get("component")) or _str(obj.get("reportingComponent"))
    instance = _str(source.get("host")) or _str(obj.get("reportingInstance"))
    cells = [
        last,
        _str(obj.get("type")),
        _str(obj.get("reason")),
        target,
        _str(involved.get("fieldPath")),
        f"{component}, {instance}" if instance else component,
        _str(obj.get("message")).strip(),
        first,
        count,
        _str(_get(obj, "metadata", "name")),
    ]
    return cells, None


_EVENT = _Builtin(
    (
        Column("Last Seen", "string", _DOC["Event.lastTimestamp"]),
        Column("Type", "string", _DOC["Event.type"]),
        Column("Reason", "string", _DOC["Event.reason"]),
        Column("Object", "string", _DOC["Event.involvedObject"]),
        Column("Subobject", "string", _DOC["ObjectReference.fieldPath"], priority=1),
        Column("Source", "string", _DOC["Event.source"], priority=1),
        Column("Message", "string", _DOC["Event.message"]),
        Column("First Seen", "string", _DOC["Event.firstTimestamp"], priority=1),
        Column("Count", "string", _DOC["Event.count"], priority=1),
        Column("Name", "string", _NAME_DOC, format="name", priority=1),
    ),
    _event_row,
)


def _node_row(obj: dict[str, Any], now: datetime) -> _Row:
    """``printNode``: STATUS from the Ready condition, ROLES from node-role labels."""
    name, age = _name_and_age(obj, now)
    status = _dict(obj.get("status"))
    states: list[str] = []
    ready = [c for c in _dicts(status.get("conditions")) if c.get("type") == "Ready"]
    if ready:
        # upstream keeps the last condition of a type (a map keyed by type)
        states.append("Ready" if ready[-1].get("status") == "True" else "NotReady")
    else:
        states.append("Unknown")
    if _get(obj, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in _str_map(_get(obj, "metadata", "labels")).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = _dict(status.get("nodeInfo"))
    addresses = _dicts(status.get("addresses"))

    def address(kind: str) -> str:
        return next((_str(a.get("address")) for a in addresses if a.get("type") == kind), "<none>")

    cells = [
        name,
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",  # upstream: set order (unsorted)
        age,
        _str(info.get("kubeletVersion")),
        address("InternalIP"),
        address("ExternalIP"),
        _str(info.get("osImage")) or "<unknown>",
        _str(info.get("kernelVersion")) or "<unknown>",
        _str(info.get("containerRuntimeVersion")) or "<unknown>",
    ]
    return cells, None


_NODE = _Builtin(
    (
        _name_column(),
        Column("Status", "string", "The status of the node"),
        Column("Roles", "string", "The roles of the node"),
        _age_column(),
        Column("Version", "string", _DOC["NodeSystemInfo.kubeletVersion"]),
        Column("Internal-IP", "string", _DOC["NodeStatus.addresses"], priority=1),
        Column("External-IP", "string", _DOC["NodeStatus.addresses"], priority=1),
        Column("OS-Image", "string", _DOC["NodeSystemInfo.osImage"], priority=1),
        Column("Kernel-Version", "string", _DOC["NodeSystemInfo.kernelVersion"], priority=1),
        Column(
            "Container-Runtime",
            "string",
            _DOC["NodeSystemInfo.containerRuntimeVersion"],
            priority=1,
        ),
    ),
    _node_row,
)

_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _pvc_row(obj: dict[str, Any], now: datetime) -> _Row:
    """``printPersistentVolumeClaim``."""
    name, age = _name_and_age(obj, now)
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    phase = _str(status.get("phase"))
    if _parse_time(_get(obj, "metadata", "deletionTimestamp")) is not None:
        phase = "Terminating"
    capacity = access = ""
    if _str(spec.get("volumeName")):
        modes = _strs(status.get("accessModes"))
        access = ",".join(short for mode, short in _ACCESS_MODES if mode in modes)
        storage = _get(status, "capacity", "storage")
        capacity = storage if isinstance(storage, str) else ""
    storage_class = _str(
        _get(obj, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class")
    ) or _str(spec.get("storageClassName"))
    cells = [
        name,
        phase,
        _str(spec.get("volumeName")),
        capacity,
        access,
        storage_class,
        _str(spec.get("volumeAttributesClassName")) or "<unset>",
        age,
        _str(spec.get("volumeMode")) or "<unset>",
    ]
    return cells, None


_PVC = _Builtin(
    (
        _name_column(),
        Column("Status", "string", _DOC["PersistentVolumeClaimStatus.phase"]),
        Column("Volume", "string", _DOC["PersistentVolumeClaimSpec.volumeName"]),
        Column("Capacity", "string", _DOC["PersistentVolumeClaimStatus.capacity"]),
        Column("Access Modes", "string", _DOC["PersistentVolumeClaimStatus.accessModes"]),
        Column("StorageClass", "string", "StorageClass of the pvc"),
        Column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
        _age_column(),
        Column("VolumeMode", "string", _DOC["PersistentVolumeClaimSpec.volumeMode"], priority=1),
    ),
    _pvc_row,
)


def _networkpolicy_row(obj: dict[str, Any], now: datetime) -> _Row:
    name, age = _name_and_age(obj, now)
    # printNetworkPolicy passes &spec.podSelector: an absent selector is the empty one
    selector = _get(obj, "spec", "podSelector")
    return [name, _format_label_selector(selector if selector is not None else {}), age], None


_NETWORKPOLICY = _Builtin(
    (
        _name_column(),
        Column("Pod-Selector", "string", _DOC["NetworkPolicySpec.podSelector"]),
        _age_column(),
    ),
    _networkpolicy_row,
)


def _ingress_row(obj: dict[str, Any], now: datetime) -> _Row:
    """``printIngress``: CLASS, HOSTS (``*`` when none), ADDRESS, PORTS ``80`` / ``80, 443``."""
    name, age = _name_and_age(obj, now)
    spec = _dict(obj.get("spec"))
    rules = _dicts(spec.get("rules"))
    maximum = 3
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == maximum:
            more = True
        if not more and _str(rule.get("host")):
            hosts.append(_str(rule.get("host")))
    if not hosts:
        host_cell = "*"
    elif more:
        host_cell = f"{','.join(hosts)} + {len(rules) - maximum} more..."
    else:
        host_cell = ",".join(hosts)
    cells = [
        name,
        _str(spec.get("ingressClassName")) or "<none>",
        host_cell,
        ",".join(_lb_ingress(obj.get("status"))),
        "80, 443" if _dicts(spec.get("tls")) else "80",
        age,
    ]
    return cells, None


_INGRESS = _Builtin(
    (
        _name_column(),
        Column(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        Column(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        Column(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        Column("Ports", "string", "Ports of TLS configurations that open"),
        _age_column(),
    ),
    _ingress_row,
)


def _ingressclass_row(obj: dict[str, Any], now: datetime) -> _Row:
    name, age = _name_and_age(obj, now)
    spec = _dict(obj.get("spec"))
    params = spec.get("parameters")
    parameters = "<none>"
    if isinstance(params, dict):
        parameters = _str(params.get("kind"))
        if isinstance(params.get("apiGroup"), str):
            parameters += "." + params["apiGroup"]
        parameters += "/" + _str(params.get("name"))
    return [name, _str(spec.get("controller")), parameters, age], None


_INGRESSCLASS = _Builtin(
    (
        _name_column(),
        Column("Controller", "string", "Controller that is responsible for handling this class"),
        Column("Parameters", "string", "A reference to a resource with additional parameters"),
        _age_column(),
    ),
    _ingressclass_row,
)

_BUILTIN: dict[tuple[str, str], _Builtin] = {
    ("", "pods"): _POD,
    ("", "services"): _SERVICE,
    ("", "endpoints"): _ENDPOINTS,
    ("", "namespaces"): _NAMESPACE,
    ("", "events"): _EVENT,
    ("", "configmaps"): _CONFIGMAP,
    ("", "secrets"): _SECRET,
    ("", "serviceaccounts"): _SERVICEACCOUNT,
    ("", "nodes"): _NODE,
    ("", "persistentvolumeclaims"): _PVC,
    ("apps", "deployments"): _DEPLOYMENT,
    ("apps", "replicasets"): _REPLICASET,
    ("apps", "statefulsets"): _STATEFULSET,
    ("apps", "daemonsets"): _DAEMONSET,
    ("networking.k8s.io", "networkpolicies"): _NETWORKPOLICY,
    ("networking.k8s.io", "ingresses"): _INGRESS,
    ("networking.k8s.io", "ingressclasses"): _INGRESSCLASS,
    ("discovery.k8s.io", "endpointslices"): _ENDPOINTSLICE,
}


# --- custom resources: additionalPrinterColumns ------------------------------------------
@dataclass(frozen=True)
class _PathStep:
    kind: str  # "field" | "all" | "index" | "filter"
    key: str = ""
    index: int = 0
    value: str = ""


_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_-]+)
      | \[\*\]
      | \[(?P<index>\d+)\]
      | \[\?\(@\.(?P<fkey>[A-Za-z0-9_-]+)=="(?P<fvalue>[^"]*)"\)\]""",
    re.VERBOSE,
)


@functools.cache
def _compile_path(path: str) -> tuple[_PathStep, ...]:
    """The JSONPath subset CRD printer columns use (``.a.b``, ``[*]``, ``[0]``,
    ``[?(@.type=="Ready")]``). Only this module's constant definitions reach it."""
    steps: list[_PathStep] = []
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise ValueError(f"unsupported JSONPath {path!r} at offset {pos}")
        if m.group("field") is not None:
            steps.append(_PathStep("field", key=m.group("field")))
        elif m.group("index") is not None:
            steps.append(_PathStep("index", index=int(m.group("index"))))
        elif m.group("fkey") is not None:
            steps.append(_PathStep("filter", key=m.group("fkey"), value=m.group("fvalue")))
        else:
            steps.append(_PathStep("all"))
        pos = m.end()
    return tuple(steps)


def _find(obj: object, steps: Sequence[_PathStep]) -> list[Any]:
    """client-go jsonpath ``FindResults`` with ``AllowMissingKeys(true)``: missing keys and
    JSON nulls yield nothing (an apiserver with a structural schema never stores those nulls)."""
    nodes: list[Any] = [obj]
    for step in steps:
        out: list[Any] = []
        for node in nodes:
            if step.kind == "field":
                if isinstance(node, dict) and node.get(step.key) is not None:
                    out.append(node[step.key])
            elif step.kind == "all":
                if isinstance(node, list):
                    out.extend(v for v in node if v is not None)
                elif isinstance(node, dict):
                    out.extend(v for v in node.values() if v is not None)
            elif step.kind == "index":
                if (
                    isinstance(node, list)
                    and step.index < len(node)
                    and node[step.index] is not None
                ):
                    out.append(node[step.index])
            elif isinstance(node, list):  # filter
                out.extend(v for v in node if isinstance(v, dict) and v.get(step.key) == step.value)
        nodes = out
    return nodes


def _go_json(value: Any) -> str:
    """``json.Marshal`` as Go writes it: compact, map keys sorted, ``<>&`` escaped, a whole
    float64 without ``.0`` (``["reviews"]`` is how ``kubectl get vs`` shows HOSTS)."""

    def normalise(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
            return int(v)
        if isinstance(v, list):
            return [normalise(x) for x in v]
        if isinstance(v, dict):
            return {k: normalise(x) for k, x in v.items()}
        return v

    text = json.dumps(normalise(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _go_text(value: Any) -> str:
    """jsonpath ``PrintResults`` of one value: maps and lists as JSON, scalars as Go's
    ``fmt.Fprint`` prints them."""
    if isinstance(value, (dict, list)):
        return _go_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry of a CRD version."""

    name: str
    type: str
    json_path: str
    description: str | None = None
    priority: int = 0
    format: str = ""

    def column(self) -> Column:
        # tableconvertor.New: a column without description gets this one
        desc = self.description or (
            f"Custom resource definition column (in JSONPath format): {self.json_path}"
        )
        return Column(self.name, self.type, desc, self.format, self.priority)

    def cell(self, obj: dict[str, Any], now: datetime) -> Any:
        """``convertor.ConvertToTable``: the first JSONPath result, typed by the column."""
        found = _find(obj, _compile_path(self.json_path))
        if not found:
            return None
        value = found[0]
        if self.type == "string":
            return _go_text(value)
        return _cell_for_json_value(self.type, value, now)


def _cell_for_json_value(column_type: str, value: Any, now: datetime) -> Any:
    """``cellForJSONValue``: a value of the wrong JSON type is a null cell."""
    if column_type == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return int(value)
    elif column_type == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif column_type == "boolean":
        if isinstance(value, bool):
            return value
    elif column_type == "date" and isinstance(value, str):
        return _age(value, now)
    return None


def _age_printer_column() -> PrinterColumn:
    """``serveDefaultColumnsIfEmpty``: what a CRD version without columns shows."""
    return PrinterColumn("Age", "date", ".metadata.creationTimestamp", _AGE_DOC)


def _crd_age() -> PrinterColumn:
    """The Age column the upstream CRDs declare themselves (description left empty)."""
    return PrinterColumn("Age", "date", ".metadata.creationTimestamp")


# Istio 1.26.0 (c2e9871) manifests/charts/base/files/crd-all.gen.yaml: every Istio CRD
# declares its Age with this description (except the ones without columns at all).
_ISTIO_AGE = PrinterColumn(
    "Age",
    "date",
    ".metadata.creationTimestamp",
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC. Populated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/api-conventions.md#metadata",
)


def _same(
    versions: Sequence[str], columns: Sequence[PrinterColumn]
) -> dict[str, tuple[PrinterColumn, ...]]:
    return {v: tuple(columns) for v in versions}


_ISTIO_NET = ("v1", "v1beta1", "v1alpha3")
_ISTIO_SEC = ("v1", "v1beta1")
_GW_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")

# (group, plural) -> served version -> columns; the first version is the preferred one, used
# when the objects do not say which version they are in.
_CRD_COLUMNS: dict[tuple[str, str], dict[str, tuple[PrinterColumn, ...]]] = {
    # --- Istio 1.26.0, manifests/charts/base/files/crd-all.gen.yaml (same in 1.22 .. master)
    ("security.istio.io", "peerauthentications"): _same(
        _ISTIO_SEC,
        [
            PrinterColumn(
                "Mode",
                "string",
                ".spec.mtls.mode",
                "Defines the mTLS mode used for peer authentication.",
            ),
            _ISTIO_AGE,
        ],
    ),
    ("security.istio.io", "authorizationpolicies"): _same(
        _ISTIO_SEC,
        [PrinterColumn("Action", "string", ".spec.action", "The operation to take."), _ISTIO_AGE],
    ),
    ("security.istio.io", "requestauthentications"): _same(_ISTIO_SEC, [_age_printer_column()]),
    ("networking.istio.io", "destinationrules"): _same(
        _ISTIO_NET,
        [
            PrinterColumn(
                "Host", "string", ".spec.host", "The name of a service from the service registry"
            ),
            _ISTIO_AGE,
        ],
    ),
    ("networking.istio.io", "virtualservices"): _same(
        _ISTIO_NET,
        [
            PrinterColumn(
                "Gateways",
                "string",
                ".spec.gateways",
                "The names of gateways and sidecars that should apply these routes",
            ),
            PrinterColumn(
                "Hosts",
                "string",
                ".spec.hosts",
                "The destination hosts to which traffic is being sent",
            ),
            _ISTIO_AGE,
        ],
    ),
    ("networking.istio.io", "serviceentries"): _same(
        _ISTIO_NET,
        [
            PrinterColumn(
                "Hosts", "string", ".spec.hosts", "The hosts associated with the ServiceEntry"
            ),
            PrinterColumn(
                "Location",
                "string",
                ".spec.location",
                "Whether the service is external to the mesh or part of the mesh "
                "(MESH_EXTERNAL or MESH_INTERNAL)",
            ),
            PrinterColumn(
                "Resolution",
                "string",
                ".spec.resolution",
                "Service resolution mode for the hosts (NONE, STATIC, or DNS)",
            ),
            _ISTIO_AGE,
        ],
    ),
    ("networking.istio.io", "workloadentries"): _same(
        _ISTIO_NET,
        [
            _ISTIO_AGE,
            PrinterColumn(
                "Address",
                "string",
                ".spec.address",
                "Address associated with the network endpoint.",
            ),
        ],
    ),
    ("networking.istio.io", "workloadgroups"): _same(_ISTIO_NET, [_ISTIO_AGE]),
    ("networking.istio.io", "gateways"): _same(_ISTIO_NET, [_age_printer_column()]),
    ("networking.istio.io", "sidecars"): _same(_ISTIO_NET, [_age_printer_column()]),
    ("networking.istio.io", "envoyfilters"): _same(("v1alpha3",), [_age_printer_column()]),
    ("networking.istio.io", "proxyconfigs"): _same(("v1beta1",), [_age_printer_column()]),
    ("telemetry.istio.io", "telemetries"): _same(("v1", "v1alpha1"), [_ISTIO_AGE]),
    ("extensions.istio.io", "wasmplugins"): _same(("v1alpha1",), [_ISTIO_AGE]),
    # --- Linkerd edge-26.8.3 (19a0d90), charts/linkerd-crds/templates/policy/*.yaml.
    # Server and ServerAuthorization differ per version, and their v1beta* columns have no
    # Age (the CRD declares columns, so none is defaulted in).
    ("policy.linkerd.io", "servers"): {
        "v1beta3": (
            PrinterColumn("Port", "string", ".spec.port", "The port the server is listening on"),
            PrinterColumn(
                "Protocol", "string", ".spec.proxyProtocol", "The protocol of the server"
            ),
            PrinterColumn(
                "Access Policy",
                "string",
                ".spec.accessPolicy",
                "The default access policy applied when the traffic doesn't match any of the "
                "policy rules",
            ),
        ),
        **_same(
            ("v1beta2", "v1beta1"),
            [
                PrinterColumn(
                    "Port", "string", ".spec.port", "The port the server is listening on"
                ),
                PrinterColumn(
                    "Protocol", "string", ".spec.proxyProtocol", "The protocol of the server"
                ),
            ],
        ),
        "v1alpha1": (_age_printer_column(),),
    },
    ("policy.linkerd.io", "serverauthorizations"): {
        "v1beta1": (
            PrinterColumn(
                "Server", "string", ".spec.server.name", "The server that this grants access to"
            ),
        ),
        "v1alpha1": (_age_printer_column(),),
    },
    ("policy.linkerd.io", "httproutes"): _same(
        ("v1beta3", "v1beta2", "v1beta1", "v1alpha1"),
        [PrinterColumn("Hostnames", "string", ".spec.hostnames"), _crd_age()],
    ),
    ("policy.linkerd.io", "authorizationpolicies"): _same(("v1alpha1",), [_age_printer_column()]),
    ("policy.linkerd.io", "meshtlsauthentications"): _same(("v1alpha1",), [_age_printer_column()]),
    ("policy.linkerd.io", "networkauthentications"): _same(("v1alpha1",), [_age_printer_column()]),
    ("policy.linkerd.io", "egressnetworks"): _same(("v1alpha1",), [_age_printer_column()]),
    # --- Gateway API v1.3.0 (40be951) standard channel, config/crd/standard/*.yaml
    # (identical columns v1.1.0 .. v1.6.1)
    ("gateway.networking.k8s.io", "gatewayclasses"): _same(
        ("v1", "v1beta1"),
        [
            PrinterColumn("Controller", "string", ".spec.controllerName"),
            PrinterColumn("Accepted", "string", '.status.conditions[?(@.type=="Accepted")].status'),
            _crd_age(),
            PrinterColumn("Description", "string", ".spec.description", priority=1),
        ],
    ),
    ("gateway.networking.k8s.io", "gateways"): _same(
        ("v1", "v1beta1"),
        [
            PrinterColumn("Class", "string", ".spec.gatewayClassName"),
            PrinterColumn("Address", "string", ".status.addresses[*].value"),
            PrinterColumn(
                "Programmed", "string", '.status.conditions[?(@.type=="Programmed")].status'
            ),
            _crd_age(),
        ],
    ),
    ("gateway.networking.k8s.io", "httproutes"): _same(
        ("v1", "v1beta1"), [PrinterColumn("Hostnames", "string", ".spec.hostnames"), _crd_age()]
    ),
    ("gateway.networking.k8s.io", "grpcroutes"): _same(
        ("v1",), [PrinterColumn("Hostnames", "string", ".spec.hostnames"), _crd_age()]
    ),
    ("gateway.networking.k8s.io", "referencegrants"): _same(("v1beta1",), [_crd_age()]),
}


@dataclass(frozen=True)
class _Custom:
    columns: tuple[PrinterColumn, ...]

    def row(self, obj: dict[str, Any], now: datetime) -> _Row:
        return [_str(_get(obj, "metadata", "name"))] + [
            c.cell(obj, now) for c in self.columns
        ], None


def _version_of(objects: Sequence[Mapping[str, Any]]) -> str | None:
    for obj in objects:
        api_version = obj.get("apiVersion")
        if isinstance(api_version, str) and api_version:
            return api_version.rsplit("/", 1)[-1]
    return None


def _printer(
    group: str, plural: str, version: str | None
) -> tuple[tuple[Column, ...], Callable[[dict[str, Any], datetime], _Row]] | None:
    builtin = _BUILTIN.get((group, plural))
    if builtin is not None:
        return builtin.columns, builtin.row
    per_version = _CRD_COLUMNS.get((group, plural))
    if per_version is None:
        return None
    columns = per_version.get(version or "") or next(iter(per_version.values()))
    custom = _Custom(columns)
    return (_name_column(), *(c.column() for c in columns)), custom.row


def known(group: str, plural: str) -> bool:
    """Whether ``to_table`` has printer columns for this resource type."""
    return (group, plural) in _BUILTIN or (group, plural) in _CRD_COLUMNS


def to_table(
    group: str,
    plural: str,
    objects: list[dict[str, Any]],
    now: datetime,
    *,
    include_object: str = "Metadata",
    list_meta: dict[str, Any] | None = None,
    version: str | None = None,
    no_headers: bool = False,
) -> dict[str, Any] | None:
    """The ``meta.k8s.io/v1`` Table a real kube-apiserver answers for these objects.

    ``objects`` are the items of a list (pass the list's ``metadata`` as ``list_meta``:
    resourceVersion, continue, remainingItemCount) or the one object of a GET (leave
    ``list_meta`` None: the Table then carries that object's resourceVersion, as
    ``meta.CommonAccessor`` does upstream). ``include_object`` is the ``?includeObject=``
    query parameter: each row's ``object`` is a ``PartialObjectMetadata`` (the default: kubectl
    reads the namespace for ``-A`` and the labels for ``--show-labels`` from it), the full
    object, or null. ``version`` picks a CRD's per-version columns; by default the objects'
    ``apiVersion`` says, else the preferred version. ``no_headers`` leaves the column
    definitions out (null), as the apiserver does for every watch event after the first
    (apiserver pkg/endpoints/handlers/watch.go; kubectl reuses the last columns). Returns None for a type without printer
    columns here. Raises ValueError for an ``include_object`` the apiserver rejects (its
    message is the 400 BadRequest message). The Table shares nothing with ``objects``.
    """
    include = _INCLUDE.get(include_object)
    if include is None:
        raise ValueError(f'unrecognized includeObject value: "{include_object}"')
    printer = _printer(group, plural, version or _version_of(objects))
    if printer is None:
        return None
    columns, row_fn = printer
    rows = []
    for obj in objects:
        cells, conditions = row_fn(obj, now)
        row: dict[str, Any] = {"cells": cells}
        if conditions:
            row["conditions"] = conditions
        if include == "Metadata":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": TABLE_API_VERSION,
                "metadata": copy.deepcopy(_dict(obj.get("metadata"))),
            }
        elif include == "Object":
            row["object"] = copy.deepcopy(obj)
        else:
            row["object"] = None
        rows.append(row)
    if list_meta is not None:
        metadata = {
            k: copy.deepcopy(v)
            for k, v in list_meta.items()
            if k in ("resourceVersion", "continue", "remainingItemCount") and v not in (None, "")
        }
    else:
        rv = _get(objects[0], "metadata", "resourceVersion") if len(objects) == 1 else None
        metadata = {"resourceVersion": rv} if isinstance(rv, str) and rv else {}
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": metadata,
        "columnDefinitions": None if no_headers else [c.definition() for c in columns],
        "rows": rows,
    }
