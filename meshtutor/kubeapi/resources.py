"""The API groups and resource types the sandbox's API serves, as a real cluster lists them.

Built-in groups follow ``kubectl api-resources`` of a v1.33 cluster (names, short names,
categories, verbs, subresources); the custom groups follow the CRDs the meshes install:
Istio's ``manifests/charts/base/files/crd-all.gen.yaml``, Linkerd's
``charts/linkerd-crds/templates/policy/*.yaml`` and Gateway API v1.3.0's
``config/crd/standard/*.yaml``. A group's versions are listed preferred first, as discovery
orders them (the kube-aware version priority: v1 > v1beta3 > v1beta1 > v1alpha3 …); a
resource's first version is its storage version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALL_CRD_GROUPS",
    "APPS",
    "ATOMIC",
    "AUTHORIZATION",
    "BUILTIN_GROUPS",
    "CORE",
    "CRD_GROUPS",
    "DEDUCED",
    "EVENTS",
    "GATEWAY_API",
    "GATEWAY_API_CRD_GROUPS",
    "INITIAL_NAMESPACES",
    "ISTIO_CRD_GROUPS",
    "ISTIO_NETWORKING",
    "ISTIO_SECURITY",
    "LINKERD_CRD_GROUPS",
    "LINKERD_POLICY",
    "NETWORKING",
    "OBJECT_META",
    "VERBS",
    "APIGroup",
    "ResourceType",
    "Schema",
    "Subresource",
    "schema_for",
]

VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
_STATUS_VERBS: tuple[str, ...] = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    """One ``<resource>/<name>`` entry of an APIResourceList (``pods/exec``, ...)."""

    name: str
    kind: str
    verbs: tuple[str, ...] = _STATUS_VERBS
    group: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class ResourceType:
    """One resource (plural) of an API group, served in ``versions`` (storage version first).

    ``field_labels`` are the fields a field selector may name, for the kinds whose API
    registers a field label conversion (``pkg/apis/core/v1/conversion.go``: pods, events,
    namespaces, secrets, services, nodes); ``None`` is the default of every other kind,
    ``metadata.name`` and ``metadata.namespace``.
    """

    group: str
    plural: str
    singular: str
    kind: str
    versions: tuple[str, ...]
    namespaced: bool = True
    verbs: tuple[str, ...] = VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    field_labels: tuple[str, ...] | None = None

    @property
    def qualified(self) -> str:
        """``deployments.apps``, ``pods``: how a real server names it in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Deployment.apps``, ``Pod``: how a real server names it in ``Invalid`` messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def api_version(self) -> str:
        """The storage version's ``apiVersion`` (``apps/v1``, ``v1``)."""
        return f"{self.group}/{self.versions[0]}" if self.group else self.versions[0]

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)


@dataclass(frozen=True)
class APIGroup:
    """An API group; ``custom`` groups are CRDs that a cluster may or may not have."""

    name: str
    versions: tuple[str, ...]  # the preferred version first
    resources: tuple[ResourceType, ...]
    custom: bool = False

    def resource(self, plural: str, version: str | None = None) -> ResourceType | None:
        """The resource ``plural`` (served in ``version``, if given)."""
        return next(
            (
                r
                for r in self.resources
                if r.plural == plural and (version is None or version in r.versions)
            ),
            None,
        )


def _rt(
    group: str,
    plural: str,
    kind: str,
    versions: tuple[str, ...],
    *,
    namespaced: bool = True,
    verbs: tuple[str, ...] = VERBS,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subs: tuple[Subresource, ...] = (),
    fields: tuple[str, ...] | None = None,
) -> ResourceType:
    return ResourceType(
        group=group,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        versions=versions,
        namespaced=namespaced,
        verbs=verbs,
        short_names=short,
        categories=categories,
        subresources=subs,
        field_labels=fields,
    )


_V1 = ("v1",)
_NS_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
_META_FIELDS = ("metadata.name", "metadata.namespace")
# The field labels of k8s.io/kubernetes pkg/apis/core/v1/conversion.go.
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    *_META_FIELDS,
)
_POD_FIELDS = (
    *_META_FIELDS,
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
)

CORE = APIGroup(
    "",
    _V1,
    (
        _rt(
            "",
            "namespaces",
            "Namespace",
            _V1,
            namespaced=False,
            verbs=_NS_VERBS,
            short=("ns",),
            subs=(
                Subresource("finalize", "Namespace", ("update",)),
                Subresource("status", "Namespace"),
            ),
            fields=("status.phase", "metadata.name"),
        ),
        _rt(
            "",
            "pods",
            "Pod",
            _V1,
            short=("po",),
            categories=("all",),
            subs=(
                Subresource("attach", "PodAttachOptions", ("create", "get")),
                Subresource("exec", "PodExecOptions", ("create", "get")),
                Subresource("log", "Pod", ("get",)),
                Subresource("portforward", "PodPortForwardOptions", ("create", "get")),
                Subresource("status", "Pod"),
            ),
            fields=_POD_FIELDS,
        ),
        _rt(
            "",
            "services",
            "Service",
            _V1,
            short=("svc",),
            categories=("all",),
            subs=(Subresource("status", "Service"),),
            fields=(*_META_FIELDS, "spec.clusterIP", "spec.type"),
        ),
        _rt("", "serviceaccounts", "ServiceAccount", _V1, short=("sa",)),
        _rt("", "configmaps", "ConfigMap", _V1, short=("cm",)),
        _rt("", "secrets", "Secret", _V1, fields=("type", *_META_FIELDS)),
        _rt("", "endpoints", "Endpoints", _V1, short=("ep",)),
        _rt("", "events", "Event", _V1, short=("ev",), fields=_EVENT_FIELDS),
        _rt(
            "",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            _V1,
            short=("pvc",),
            subs=(Subresource("status", "PersistentVolumeClaim"),),
        ),
        _rt(
            "",
            "nodes",
            "Node",
            _V1,
            namespaced=False,
            short=("no",),
            subs=(Subresource("status", "Node"),),
            fields=("metadata.name", "spec.unschedulable"),
        ),
    ),
)
_SCALE = Subresource("scale", "Scale", _STATUS_VERBS, group="autoscaling", version="v1")
APPS = APIGroup(
    "apps",
    _V1,
    (
        _rt(
            "apps",
            "deployments",
            "Deployment",
            _V1,
            short=("deploy",),
            categories=("all",),
            subs=(_SCALE, Subresource("status", "Deployment")),
        ),
        _rt(
            "apps",
            "replicasets",
            "ReplicaSet",
            _V1,
            short=("rs",),
            categories=("all",),
            subs=(_SCALE, Subresource("status", "ReplicaSet")),
        ),
        _rt(
            "apps",
            "statefulsets",
            "StatefulSet",
            _V1,
            short=("sts",),
            categories=("all",),
            subs=(_SCALE, Subresource("status", "StatefulSet")),
        ),
        _rt(
            "apps",
            "daemonsets",
            "DaemonSet",
            _V1,
            short=("ds",),
            categories=("all",),
            subs=(Subresource("status", "DaemonSet"),),
        ),
    ),
)
# events.k8s.io/v1 serves the same objects as core v1 events (one storage), under its own group.
EVENTS = APIGroup(
    "events.k8s.io",
    _V1,
    (_rt("events.k8s.io", "events", "Event", _V1, short=("ev",)),),
)
NETWORKING = APIGroup(
    "networking.k8s.io",
    _V1,
    (
        _rt("networking.k8s.io", "networkpolicies", "NetworkPolicy", _V1, short=("netpol",)),
        _rt(
            "networking.k8s.io",
            "ingresses",
            "Ingress",
            _V1,
            short=("ing",),
            subs=(Subresource("status", "Ingress"),),
        ),
        _rt("networking.k8s.io", "ingressclasses", "IngressClass", _V1, namespaced=False),
    ),
)
AUTHORIZATION = APIGroup(
    "authorization.k8s.io",
    _V1,
    (
        _rt(
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            _V1,
            namespaced=False,
            verbs=("create",),
        ),
        _rt(
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            _V1,
            namespaced=False,
            verbs=("create",),
        ),
    ),
)

_ISTIO_SEC_V = ("v1", "v1beta1")
_ISTIO_SEC_CAT = ("istio-io", "security-istio-io")
ISTIO_SECURITY = APIGroup(
    "security.istio.io",
    _ISTIO_SEC_V,
    tuple(
        _rt(
            "security.istio.io",
            plural,
            kind,
            _ISTIO_SEC_V,
            short=short,
            categories=_ISTIO_SEC_CAT,
            subs=(Subresource("status", kind),),
        )
        for plural, kind, short in (
            ("authorizationpolicies", "AuthorizationPolicy", ("ap",)),
            ("peerauthentications", "PeerAuthentication", ("pa",)),
            ("requestauthentications", "RequestAuthentication", ("ra",)),
        )
    ),
    custom=True,
)
_ISTIO_NET_V = ("v1", "v1beta1", "v1alpha3")
_ISTIO_NET_CAT = ("istio-io", "networking-istio-io")
ISTIO_NETWORKING = APIGroup(
    "networking.istio.io",
    _ISTIO_NET_V,
    tuple(
        _rt(
            "networking.istio.io",
            plural,
            kind,
            versions,
            short=short,
            categories=_ISTIO_NET_CAT,
            subs=(Subresource("status", kind),),
        )
        for plural, kind, versions, short in (
            ("destinationrules", "DestinationRule", _ISTIO_NET_V, ("dr",)),
            ("gateways", "Gateway", _ISTIO_NET_V, ("gw",)),
            ("serviceentries", "ServiceEntry", _ISTIO_NET_V, ("se",)),
            ("sidecars", "Sidecar", _ISTIO_NET_V, ()),
            ("virtualservices", "VirtualService", _ISTIO_NET_V, ("vs",)),
            ("workloadentries", "WorkloadEntry", _ISTIO_NET_V, ("we",)),
            ("workloadgroups", "WorkloadGroup", _ISTIO_NET_V, ("wg",)),
            ("envoyfilters", "EnvoyFilter", ("v1alpha3",), ()),
            ("proxyconfigs", "ProxyConfig", ("v1beta1",), ()),
        )
    ),
    custom=True,
)
_LINKERD_V = ("v1beta3", "v1beta2", "v1beta1", "v1alpha1")
LINKERD_POLICY = APIGroup(
    "policy.linkerd.io",
    _LINKERD_V,
    tuple(
        _rt(
            "policy.linkerd.io",
            plural,
            kind,
            versions,
            short=short,
            categories=categories,
            subs=(Subresource("status", kind),) if status else (),
        )
        for plural, kind, versions, short, categories, status in (
            ("servers", "Server", _LINKERD_V, ("srv",), (), False),
            (
                "serverauthorizations",
                "ServerAuthorization",
                ("v1beta1", "v1alpha1"),
                ("saz", "serverauthz", "srvauthz"),
                (),
                False,
            ),
            (
                "authorizationpolicies",
                "AuthorizationPolicy",
                ("v1alpha1",),
                ("authzpolicy",),
                (),
                False,
            ),
            (
                "meshtlsauthentications",
                "MeshTLSAuthentication",
                ("v1alpha1",),
                ("meshtlsauthn",),
                (),
                False,
            ),
            (
                "networkauthentications",
                "NetworkAuthentication",
                ("v1alpha1",),
                ("netauthn", "networkauthn"),
                (),
                False,
            ),
            ("httproutes", "HTTPRoute", _LINKERD_V, (), (), True),
            ("egressnetworks", "EgressNetwork", ("v1alpha1",), (), ("policy",), True),
        )
    ),
    custom=True,
)
_GATEWAY_V = ("v1", "v1beta1")
GATEWAY_API = APIGroup(
    "gateway.networking.k8s.io",
    _GATEWAY_V,
    tuple(
        _rt(
            "gateway.networking.k8s.io",
            plural,
            kind,
            versions,
            namespaced=namespaced,
            short=short,
            categories=("gateway-api",),
            subs=(Subresource("status", kind),) if status else (),
        )
        for plural, kind, versions, namespaced, short, status in (
            ("gatewayclasses", "GatewayClass", _GATEWAY_V, False, ("gc",), True),
            ("gateways", "Gateway", _GATEWAY_V, True, ("gtw",), True),
            ("httproutes", "HTTPRoute", _GATEWAY_V, True, (), True),
            ("grpcroutes", "GRPCRoute", _V1, True, (), True),
            ("referencegrants", "ReferenceGrant", ("v1beta1",), True, ("refgrant",), False),
        )
    ),
    custom=True,
)

BUILTIN_GROUPS: tuple[APIGroup, ...] = (CORE, APPS, EVENTS, AUTHORIZATION, NETWORKING)
"""The built-in groups, in the order a real server's ``/apis`` lists them."""
CRD_GROUPS: dict[str, APIGroup] = {
    g.name: g for g in (ISTIO_SECURITY, ISTIO_NETWORKING, LINKERD_POLICY, GATEWAY_API)
}
ISTIO_CRD_GROUPS: tuple[str, ...] = ("security.istio.io", "networking.istio.io")
LINKERD_CRD_GROUPS: tuple[str, ...] = ("policy.linkerd.io",)
GATEWAY_API_CRD_GROUPS: tuple[str, ...] = ("gateway.networking.k8s.io",)
ALL_CRD_GROUPS: tuple[str, ...] = ISTIO_CRD_GROUPS + LINKERD_CRD_GROUPS + GATEWAY_API_CRD_GROUPS

INITIAL_NAMESPACES: tuple[str, ...] = ("default", "kube-node-lease", "kube-public", "kube-system")
"""The namespaces every new cluster has."""


# --------------------------------------------------------------------------------------
# How the values of the built-in kinds merge and are owned
# --------------------------------------------------------------------------------------

Shape = Literal["struct", "map", "list", "set", "atomic", "deduced"]


@dataclass(frozen=True)
class Schema:
    """How one value merges (strategic merge patch) and is owned (server-side apply).

    The shapes are structured-merge-diff's: a ``struct`` has named fields and is never owned
    itself, a ``map`` is owned itself and key by key, a ``list`` is associative (its elements
    owned by their ``keys``, a ``+listMapKey``), a ``set`` is a list of scalars owned value by
    value, an ``atomic`` value is owned and replaced as a whole. ``deduced`` is what a schema-less
    value gets (a custom resource's spec): objects are maps, lists are atomic.

    ``merge_key`` is the ``patchMergeKey`` a strategic merge patch merges a list by (no key:
    the list is replaced; a ``set`` with ``patchStrategy:"merge"`` is merged as a union).
    The keys and strategies are the struct tags of ``k8s.io/api`` (``core/v1/types.go``,
    ``apps/v1/types.go``) and ``k8s.io/apimachinery/pkg/apis/meta/v1/types.go``.
    """

    shape: Shape = "deduced"
    fields: tuple[tuple[str, Schema], ...] = ()
    item: Schema | None = None
    keys: tuple[str, ...] = ()
    merge_key: str | None = None

    def field(self, name: str) -> Schema:
        """The schema of field (or map key) ``name`` of this value."""
        if self.shape == "struct":
            return next((s for n, s in self.fields if n == name), DEDUCED)
        if self.shape == "map":
            return self.item or DEDUCED
        return ATOMIC if self.shape == "atomic" else DEDUCED

    def element(self) -> Schema:
        """The schema of this list's (or set's) elements."""
        if self.shape in ("list", "set"):
            return self.item or DEDUCED
        return ATOMIC if self.shape == "atomic" else DEDUCED


ATOMIC = Schema("atomic")
DEDUCED = Schema("deduced")
_STRINGS = Schema("map", item=ATOMIC)


def _struct(**fields: Schema) -> Schema:
    return Schema("struct", tuple(fields.items()))


def _keyed(*keys: str, item: Schema = DEDUCED, merge_key: str | None = None) -> Schema:
    return Schema("list", item=item, keys=keys, merge_key=merge_key or keys[0])


OBJECT_META = _struct(
    labels=_STRINGS,
    annotations=_STRINGS,
    ownerReferences=_keyed("uid"),
    finalizers=Schema("set", item=ATOMIC),
    managedFields=ATOMIC,
)
_CONTAINER = _struct(
    ports=_keyed("containerPort", "protocol", merge_key="containerPort"),
    env=_keyed("name"),
    volumeMounts=_keyed("mountPath"),
    volumeDevices=_keyed("devicePath"),
    command=ATOMIC,
    args=ATOMIC,
)
_POD_SPEC = _struct(
    containers=_keyed("name", item=_CONTAINER),
    initContainers=_keyed("name", item=_CONTAINER),
    ephemeralContainers=_keyed("name", item=_CONTAINER),
    volumes=_keyed("name"),
    imagePullSecrets=_keyed("name"),
    hostAliases=_keyed("ip"),
    topologySpreadConstraints=_keyed("topologyKey", "whenUnsatisfiable", merge_key="topologyKey"),
    schedulingGates=_keyed("name"),
    resourceClaims=_keyed("name"),
    nodeSelector=_STRINGS,
    tolerations=ATOMIC,
)
_CONDITIONS = _keyed("type")
_POD_TEMPLATE = _struct(metadata=OBJECT_META, spec=_POD_SPEC)
_STATUS = _struct(conditions=_CONDITIONS)


def _object(spec: Schema = DEDUCED, status: Schema = DEDUCED, **top: Schema) -> Schema:
    return _struct(
        apiVersion=ATOMIC, kind=ATOMIC, metadata=OBJECT_META, spec=spec, status=status, **top
    )


def _workload(**extra: Schema) -> Schema:
    return _object(_struct(selector=ATOMIC, template=_POD_TEMPLATE, **extra), _STATUS)


_SCHEMAS: dict[tuple[str, str], Schema] = {
    ("", "Pod"): _object(
        _POD_SPEC,
        _struct(conditions=_CONDITIONS, podIPs=_keyed("ip"), hostIPs=_keyed("ip")),
    ),
    ("", "Service"): _object(
        _struct(
            ports=_keyed("port", "protocol", merge_key="port"),
            selector=ATOMIC,
            clusterIPs=ATOMIC,
            externalIPs=ATOMIC,
        ),
        _STATUS,
    ),
    ("", "Namespace"): _object(_struct(finalizers=ATOMIC), _STATUS),
    ("", "ServiceAccount"): _object(secrets=_keyed("name"), imagePullSecrets=ATOMIC),
    ("", "ConfigMap"): _object(data=_STRINGS, binaryData=_STRINGS),
    ("", "Secret"): _object(data=_STRINGS, stringData=_STRINGS),
    ("", "Endpoints"): _object(subsets=ATOMIC),
    ("apps", "Deployment"): _workload(strategy=DEDUCED),
    ("apps", "ReplicaSet"): _workload(),
    ("apps", "StatefulSet"): _workload(volumeClaimTemplates=ATOMIC),
    ("apps", "DaemonSet"): _workload(),
    ("networking.k8s.io", "NetworkPolicy"): _object(
        _struct(podSelector=ATOMIC, ingress=ATOMIC, egress=ATOMIC, policyTypes=ATOMIC)
    ),
}
_CUSTOM = _object()


def schema_for(rt: ResourceType) -> Schema:
    """The schema of ``rt``'s objects: a built-in kind's own, else a custom resource's
    (typed metadata, everything else deduced)."""
    return _SCHEMAS.get((rt.group, rt.kind), _CUSTOM)
