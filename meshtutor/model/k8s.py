"""Core Kubernetes kinds: Namespace, ServiceAccount, Service, Deployment, Pod, ConfigMap,
NetworkPolicy, and the label selector they share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshtutor.model.base import Resource
from meshtutor.model.schema import (
    LABEL_SELECTOR,
    LABELS,
    METADATA,
    Anything,
    Bool,
    Enum,
    Int,
    IntOrStr,
    ListOf,
    MapOf,
    Obj,
    Port,
    SchemaError,
    Str,
)

# --- label selectors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist

    def __str__(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector. An empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LabelSelector:
        data = data or {}
        return cls(
            tuple(sorted((data.get("matchLabels") or {}).items())),
            tuple(
                Requirement(e["key"], e["operator"], tuple(e.get("values") or ()))
                for e in data.get("matchExpressions") or ()
            ),
        )

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels] + [
            str(r) for r in self.match_expressions
        ]
        return ",".join(parts) if parts else "(all)"


def _selector_requirements_valid(out: dict[str, Any], path: str, line: int | None) -> None:
    for i, expr in enumerate(out.get("matchExpressions") or ()):
        values = expr.get("values") or []
        if expr["operator"] in ("In", "NotIn") and not values:
            raise SchemaError(
                f"operator {expr['operator']} needs a non-empty values list",
                f"{path}.matchExpressions[{i}].values",
                line,
            )
        if expr["operator"] in ("Exists", "DoesNotExist") and values:
            raise SchemaError(
                f"operator {expr['operator']} takes no values",
                f"{path}.matchExpressions[{i}].values",
                line,
            )


SELECTOR = Obj(
    dict(LABEL_SELECTOR.fields), what="a label selector", extra=_selector_requirements_valid
)

# --- Namespace, ServiceAccount, ConfigMap ------------------------------------------------------


@dataclass(frozen=True)
class Namespace(Resource):
    pass


@dataclass(frozen=True)
class ServiceAccount(Resource):
    pass


@dataclass(frozen=True)
class ConfigMap(Resource):
    data: Mapping[str, str] = field(default_factory=dict, hash=False)


NAMESPACE_DOC = {"spec": Anything(), "status": Anything()}
SERVICE_ACCOUNT_DOC = {
    "secrets": Anything(),
    "imagePullSecrets": Anything(),
    "automountServiceAccountToken": Bool(),
}
CONFIG_MAP_DOC = {"data": MapOf(Str()), "binaryData": Anything(), "immutable": Bool()}

# --- Pods and Deployments ----------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str | None = None
    protocol: str = "TCP"


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    ports: tuple[ContainerPort, ...] = ()
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()

    def port_named(self, name: str) -> ContainerPort | None:
        return next((p for p in self.ports if p.name == name), None)


@dataclass(frozen=True)
class PodSpec:
    containers: tuple[Container, ...]
    service_account: str = "default"
    host_network: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PodSpec:
        return cls(
            containers=tuple(
                Container(
                    name=c["name"],
                    image=c.get("image") or "",
                    ports=tuple(
                        ContainerPort(p["containerPort"], p.get("name"), p.get("protocol", "TCP"))
                        for p in c.get("ports") or ()
                    ),
                    command=tuple(str(x) for x in (c.get("command") or ())),
                    args=tuple(str(x) for x in (c.get("args") or ())),
                )
                for c in data["containers"]
            ),
            # serviceAccount is the deprecated spelling; the API server copies it across.
            service_account=data.get("serviceAccountName")
            or data.get("serviceAccount")
            or "default",
            host_network=bool(data.get("hostNetwork", False)),
        )


@dataclass(frozen=True)
class PodTemplate:
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    spec: PodSpec = field(default_factory=lambda: PodSpec(()))


@dataclass(frozen=True)
class Deployment(Resource):
    replicas: int = 1
    selector: LabelSelector = field(default_factory=LabelSelector)
    template: PodTemplate = field(default_factory=PodTemplate)


@dataclass(frozen=True)
class Pod(Resource):
    """A Pod written directly in a manifest (most lessons use Deployments)."""

    spec: PodSpec = field(default_factory=lambda: PodSpec(()))


def _unique_names(kind: str) -> Any:
    def check(out: list[dict[str, Any]], path: str, line: int | None) -> None:
        seen: set[str] = set()
        for i, item in enumerate(out):
            name = item.get("name")
            if name in seen:
                raise SchemaError(f"duplicate {kind} name {name!r}", f"{path}[{i}].name", line)
            if name:
                seen.add(name)

    return check


CONTAINER_PORT = Obj(
    {
        "containerPort": Port(),
        "name": Str(allow_empty=False),
        "protocol": Enum(("TCP", "UDP", "SCTP")),
        "hostIP": Str(),
        "hostPort": Port(),
    },
    required=("containerPort",),
    what="a container port",
)

_CONTAINER_FIELDS = {
    "name": Str(allow_empty=False),
    "image": Str(),
    "ports": ListOf(CONTAINER_PORT),
    "command": ListOf(Str()),
    "args": ListOf(Str()),
}
for _name in [
    "env",
    "envFrom",
    "imagePullPolicy",
    "lifecycle",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "resizePolicy",
    "resources",
    "restartPolicy",
    "restartPolicyRules",
    "securityContext",
    "stdin",
    "stdinOnce",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "tty",
    "volumeDevices",
    "volumeMounts",
    "workingDir",
]:
    _CONTAINER_FIELDS[_name] = Anything()

CONTAINER = Obj(_CONTAINER_FIELDS, required=("name",), what="a container")

_POD_SPEC_FIELDS: dict[str, Any] = {
    "containers": ListOf(CONTAINER, min_items=1),
    "initContainers": ListOf(CONTAINER),
    "serviceAccountName": Str(allow_empty=False),
    "serviceAccount": Str(allow_empty=False),
    "hostNetwork": Bool(),
}
for _name in [
    "activeDeadlineSeconds",
    "affinity",
    "automountServiceAccountToken",
    "dnsConfig",
    "dnsPolicy",
    "enableServiceLinks",
    "ephemeralContainers",
    "hostAliases",
    "hostIPC",
    "hostPID",
    "hostUsers",
    "hostname",
    "hostnameOverride",
    "imagePullSecrets",
    "nodeName",
    "nodeSelector",
    "os",
    "overhead",
    "preemptionPolicy",
    "priority",
    "priorityClassName",
    "readinessGates",
    "resourceClaims",
    "resources",
    "restartPolicy",
    "runtimeClassName",
    "schedulerName",
    "schedulingGates",
    "securityContext",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "subdomain",
    "terminationGracePeriodSeconds",
    "tolerations",
    "topologySpreadConstraints",
    "volumes",
]:
    _POD_SPEC_FIELDS[_name] = Anything()


def _pod_spec_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    _unique_names("container")(out.get("containers", []), f"{path}.containers", line)


POD_SPEC = Obj(_POD_SPEC_FIELDS, required=("containers",), what="a pod spec", extra=_pod_spec_extra)

POD_TEMPLATE = Obj(
    {
        "metadata": Obj(
            {
                "labels": LABELS,
                "annotations": LABELS,
                "name": Str(),
                "namespace": Str(),
                "creationTimestamp": Anything(),
            },
            what="pod template metadata",
        ),
        "spec": POD_SPEC,
    },
    required=("spec",),
    what="a pod template",
)


def _deployment_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    selector = LabelSelector.from_dict(out.get("selector"))
    labels = ((out.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector.matches(labels):
        # The API server refuses this: `selector` does not match template `labels`.
        raise SchemaError(
            f"selector {selector} does not match the pod template labels "
            f"{','.join(f'{k}={v}' for k, v in sorted(labels.items())) or '(none)'}",
            f"{path}.selector",
            line,
        )


DEPLOYMENT_SPEC = Obj(
    {
        "replicas": Int(minimum=0),
        "selector": SELECTOR,
        "template": POD_TEMPLATE,
        "strategy": Anything(),
        "minReadySeconds": Int(minimum=0),
        "revisionHistoryLimit": Int(minimum=0),
        "progressDeadlineSeconds": Int(minimum=1),
        "paused": Bool(),
    },
    required=("selector", "template"),
    what="a Deployment spec",
    extra=_deployment_extra,
)


def build_pod_template(data: Mapping[str, Any]) -> PodTemplate:
    meta = data.get("metadata") or {}
    return PodTemplate(
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        spec=PodSpec.from_dict(data["spec"]),
    )


# --- Services ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str
    name: str | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None
    node_port: int | None = None


@dataclass(frozen=True)
class Service(Resource):
    type: str = "ClusterIP"
    selector: Mapping[str, str] | None = field(default=None, hash=False)
    ports: tuple[ServicePort, ...] = ()
    external_traffic_policy: str = "Cluster"

    @property
    def external(self) -> bool:
        """Reachable from outside the cluster (a node port, and for LoadBalancer an address)."""
        return self.type in ("NodePort", "LoadBalancer")

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)


SERVICE_PORT = Obj(
    {
        "name": Str(allow_empty=False),
        "port": Port(),
        "targetPort": IntOrStr(),
        "protocol": Enum(("TCP", "UDP", "SCTP")),
        "appProtocol": Str(allow_empty=False),
        "nodePort": Int(minimum=30000, maximum=32767, description="a node port"),
    },
    required=("port",),
    what="a service port",
)


def _service_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    ports = out.get("ports") or []
    if len(ports) > 1:
        for i, p in enumerate(ports):
            if not p.get("name"):
                raise SchemaError(
                    "when a Service has more than one port, every port needs a name",
                    f"{path}.ports[{i}].name",
                    line,
                )
    _unique_names("port")(ports, f"{path}.ports", line)


_SERVICE_FIELDS: dict[str, Any] = {
    "type": Enum(("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")),
    "selector": LABELS,
    "ports": ListOf(SERVICE_PORT),
    "clusterIP": Str(),
}
for _name in [
    "allocateLoadBalancerNodePorts",
    "clusterIPs",
    "externalIPs",
    "externalName",
    "externalTrafficPolicy",
    "healthCheckNodePort",
    "internalTrafficPolicy",
    "ipFamilies",
    "ipFamilyPolicy",
    "loadBalancerClass",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "publishNotReadyAddresses",
    "sessionAffinity",
    "sessionAffinityConfig",
    "trafficDistribution",
]:
    _SERVICE_FIELDS[_name] = Anything()

SERVICE_SPEC = Obj(_SERVICE_FIELDS, what="a Service spec", extra=_service_extra)


def build_service_ports(ports: list[dict[str, Any]]) -> tuple[ServicePort, ...]:
    return tuple(
        ServicePort(
            port=p["port"],
            target_port=p.get("targetPort", p["port"]),
            name=p.get("name"),
            protocol=p.get("protocol", "TCP"),
            app_protocol=p.get("appProtocol"),
            node_port=p.get("nodePort"),
        )
        for p in ports
    )


# --- NetworkPolicy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IPBlock:
    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkPolicyPeer:
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class NetworkPolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class NetworkPolicyRule:
    """One ingress or egress rule: ``peers`` is ``from`` (ingress) or ``to`` (egress).

    ``peers`` None means the field was absent (any peer); an empty tuple likewise matches all,
    as the API documents: "If this field is empty or missing, this rule matches all sources".
    """

    peers: tuple[NetworkPolicyPeer, ...] = ()
    ports: tuple[NetworkPolicyPort, ...] = ()


@dataclass(frozen=True)
class NetworkPolicy(Resource):
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    policy_types: tuple[str, ...] = ("Ingress",)
    ingress: tuple[NetworkPolicyRule, ...] = ()
    egress: tuple[NetworkPolicyRule, ...] = ()


def _ip_block_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    import ipaddress

    try:
        net = ipaddress.ip_network(out["cidr"], strict=False)
    except ValueError:
        raise SchemaError(
            f"{out['cidr']!r} is not a CIDR such as 10.0.0.0/16", f"{path}.cidr", line
        ) from None
    for i, ex in enumerate(out.get("except") or ()):
        try:
            sub = ipaddress.ip_network(ex, strict=False)
        except ValueError:
            raise SchemaError(f"{ex!r} is not a CIDR", f"{path}.except[{i}]", line) from None
        if sub.version != net.version or not sub.subnet_of(net):  # type: ignore[arg-type]
            raise SchemaError(f"{ex} is not inside {out['cidr']}", f"{path}.except[{i}]", line)


def _peer_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    if "ipBlock" in out and len(out) > 1:
        raise SchemaError(
            "ipBlock cannot be combined with podSelector or namespaceSelector in one peer",
            path,
            line,
        )
    if not out:
        raise SchemaError("a peer needs podSelector, namespaceSelector or ipBlock", path, line)


NP_PEER = Obj(
    {
        "podSelector": SELECTOR,
        "namespaceSelector": SELECTOR,
        "ipBlock": Obj(
            {"cidr": Str(allow_empty=False), "except": ListOf(Str())},
            required=("cidr",),
            what="an ipBlock",
            extra=_ip_block_extra,
        ),
    },
    what="a NetworkPolicy peer",
    extra=_peer_extra,
)
NP_PORT = Obj(
    {"protocol": Enum(("TCP", "UDP", "SCTP")), "port": IntOrStr(), "endPort": Port()},
    what="a NetworkPolicy port",
)
NETWORK_POLICY_SPEC = Obj(
    {
        "podSelector": SELECTOR,
        "policyTypes": ListOf(Enum(("Ingress", "Egress"))),
        "ingress": ListOf(
            Obj({"from": ListOf(NP_PEER), "ports": ListOf(NP_PORT)}, what="an ingress rule")
        ),
        "egress": ListOf(
            Obj({"to": ListOf(NP_PEER), "ports": ListOf(NP_PORT)}, what="an egress rule")
        ),
    },
    required=("podSelector",),
    what="a NetworkPolicy spec",
)


def _np_peer(data: Mapping[str, Any]) -> NetworkPolicyPeer:
    block = data.get("ipBlock")
    return NetworkPolicyPeer(
        pod_selector=LabelSelector.from_dict(data["podSelector"])
        if "podSelector" in data
        else None,
        namespace_selector=(
            LabelSelector.from_dict(data["namespaceSelector"])
            if "namespaceSelector" in data
            else None
        ),
        ip_block=IPBlock(block["cidr"], tuple(block.get("except") or ())) if block else None,
    )


def _np_rules(rules: list[dict[str, Any]], peer_key: str) -> tuple[NetworkPolicyRule, ...]:
    return tuple(
        NetworkPolicyRule(
            peers=tuple(_np_peer(p) for p in rule.get(peer_key) or ()),
            ports=tuple(
                NetworkPolicyPort(p.get("protocol", "TCP"), p.get("port"), p.get("endPort"))
                for p in rule.get("ports") or ()
            ),
        )
        for rule in rules
    )


def build_network_policy_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    types = spec.get("policyTypes")
    if not types:
        # Default: Ingress always, Egress only if the policy has egress rules.
        types = ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    return {
        "pod_selector": LabelSelector.from_dict(spec.get("podSelector")),
        "policy_types": tuple(types),
        "ingress": _np_rules(spec.get("ingress") or [], "from"),
        "egress": _np_rules(spec.get("egress") or [], "to"),
    }


__all__ = [
    "CONFIG_MAP_DOC",
    "DEPLOYMENT_SPEC",
    "METADATA",
    "NAMESPACE_DOC",
    "NETWORK_POLICY_SPEC",
    "POD_SPEC",
    "SERVICE_ACCOUNT_DOC",
    "SERVICE_SPEC",
    "ConfigMap",
    "Container",
    "ContainerPort",
    "Deployment",
    "IPBlock",
    "LabelSelector",
    "Namespace",
    "NetworkPolicy",
    "NetworkPolicyPeer",
    "NetworkPolicyPort",
    "NetworkPolicyRule",
    "Pod",
    "PodSpec",
    "PodTemplate",
    "Requirement",
    "Service",
    "ServiceAccount",
    "ServicePort",
    "build_network_policy_fields",
    "build_pod_template",
    "build_service_ports",
]
