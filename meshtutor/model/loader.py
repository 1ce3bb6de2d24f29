"""Load multi-document YAML into typed, validated resources.

A file loads completely or raises a ``ManifestError`` that names the file, the document number,
the line and the field path, and says what was expected. Kinds meshtutor does not model (a
Secret, a cert-manager Certificate, ...) load as ``UnmodelledResource`` so callers can report
them; a kind that does not exist in a group we model (``PeerAuthentications``, or
``PeerAuthentication`` under ``networking.istio.io``) is an error, as ``kubectl apply`` would say.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshtutor.errors import InputFileError, ManifestError
from meshtutor.inputfiles import read_text
from meshtutor.model import edge, istio, k8s, linkerd
from meshtutor.model.base import ObjectMeta, Origin, Resource
from meshtutor.model.schema import METADATA, Anything, Obj, SchemaError, Spec, Str
from meshtutor.model.yamlnodes import LineDict, line_of_key, parse_documents, yaml_problem

Builder = Callable[[Mapping[str, Any], ObjectMeta, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class UnmodelledResource(Resource):
    """A valid-looking object of a kind meshtutor does not simulate; it has no effect."""


@dataclass(frozen=True)
class KindInfo:
    group: str
    kind: str
    versions: tuple[str, ...]
    cls: type[Resource]
    top: Mapping[str, Spec]  # top-level fields besides apiVersion/kind/metadata
    build: Builder
    namespaced: bool = True
    spec_required: bool = False


def _none(spec: Mapping[str, Any], meta: ObjectMeta, doc: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def _spec(fn: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Builder:
    return lambda spec, meta, doc: fn(spec)


def _deployment(
    spec: Mapping[str, Any], meta: ObjectMeta, doc: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "replicas": spec.get("replicas", 1),
        "selector": k8s.LabelSelector.from_dict(spec.get("selector")),
        "template": k8s.build_pod_template(spec["template"]),
    }


def _pod(spec: Mapping[str, Any], meta: ObjectMeta, doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"spec": k8s.PodSpec.from_dict(spec)}


def _service(spec: Mapping[str, Any], meta: ObjectMeta, doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": spec.get("type", "ClusterIP"),
        "selector": dict(spec["selector"]) if spec.get("selector") else None,
        "ports": k8s.build_service_ports(spec.get("ports") or []),
        "external_traffic_policy": spec.get("externalTrafficPolicy", "Cluster"),
    }


def _config_map(
    spec: Mapping[str, Any], meta: ObjectMeta, doc: Mapping[str, Any]
) -> dict[str, Any]:
    return {"data": dict(doc.get("data") or {})}


def _ingress(spec: Mapping[str, Any], meta: ObjectMeta, doc: Mapping[str, Any]) -> dict[str, Any]:
    return edge.build_ingress_fields(spec, meta.annotations)


def _ingress_class(
    spec: Mapping[str, Any], meta: ObjectMeta, doc: Mapping[str, Any]
) -> dict[str, Any]:
    return edge.build_ingress_class_fields(spec, meta.annotations)


def _secret(spec: Mapping[str, Any], meta: ObjectMeta, doc: Mapping[str, Any]) -> dict[str, Any]:
    return edge.build_secret_fields(doc)


def _authz(spec: Mapping[str, Any], meta: ObjectMeta, doc: Mapping[str, Any]) -> dict[str, Any]:
    return istio.build_authorization_policy_fields(spec, meta.annotations)


_LINKERD_HTTPROUTE_VERSIONS = ("v1alpha1", "v1beta1", "v1beta2", "v1beta3")

KINDS: tuple[KindInfo, ...] = (
    KindInfo("", "Namespace", ("v1",), k8s.Namespace, k8s.NAMESPACE_DOC, _none, namespaced=False),
    KindInfo("", "ServiceAccount", ("v1",), k8s.ServiceAccount, k8s.SERVICE_ACCOUNT_DOC, _none),
    KindInfo("", "ConfigMap", ("v1",), k8s.ConfigMap, k8s.CONFIG_MAP_DOC, _config_map),
    KindInfo("", "Service", ("v1",), k8s.Service, {"spec": k8s.SERVICE_SPEC}, _service),
    KindInfo("", "Secret", ("v1",), edge.Secret, edge.SECRET_DOC, _secret),
    KindInfo("", "Pod", ("v1",), k8s.Pod, {"spec": k8s.POD_SPEC}, _pod, spec_required=True),
    KindInfo(
        "apps",
        "Deployment",
        ("v1",),
        k8s.Deployment,
        {"spec": k8s.DEPLOYMENT_SPEC},
        _deployment,
        spec_required=True,
    ),
    KindInfo(
        "networking.k8s.io",
        "NetworkPolicy",
        ("v1",),
        k8s.NetworkPolicy,
        {"spec": k8s.NETWORK_POLICY_SPEC},
        _spec(k8s.build_network_policy_fields),
        spec_required=True,
    ),
    KindInfo(
        "networking.k8s.io",
        "Ingress",
        ("v1",),
        edge.Ingress,
        {"spec": edge.INGRESS_SPEC},
        _ingress,
    ),
    KindInfo(
        "networking.k8s.io",
        "IngressClass",
        ("v1",),
        edge.IngressClass,
        {"spec": edge.INGRESS_CLASS_SPEC},
        _ingress_class,
        namespaced=False,
    ),
    KindInfo(
        "networking.istio.io",
        "Gateway",
        ("v1alpha3", "v1beta1", "v1"),
        edge.Gateway,
        {"spec": edge.GATEWAY_SPEC},
        _spec(edge.build_gateway_fields),
        spec_required=True,
    ),
    KindInfo(
        "networking.istio.io",
        "VirtualService",
        ("v1alpha3", "v1beta1", "v1"),
        edge.VirtualService,
        {"spec": edge.VIRTUAL_SERVICE_SPEC},
        _spec(edge.build_virtual_service_fields),
        spec_required=True,
    ),
    KindInfo(
        "security.istio.io",
        "PeerAuthentication",
        ("v1beta1", "v1"),
        istio.PeerAuthentication,
        {"spec": istio.PEER_AUTHENTICATION_SPEC},
        _spec(istio.build_peer_authentication_fields),
    ),
    KindInfo(
        "security.istio.io",
        "AuthorizationPolicy",
        ("v1beta1", "v1"),
        istio.AuthorizationPolicy,
        {"spec": istio.AUTHORIZATION_POLICY_SPEC},
        _authz,
    ),
    KindInfo(
        "networking.istio.io",
        "DestinationRule",
        ("v1alpha3", "v1beta1", "v1"),
        istio.DestinationRule,
        {"spec": istio.DESTINATION_RULE_SPEC},
        _spec(istio.build_destination_rule_fields),
        spec_required=True,
    ),
    KindInfo(
        "policy.linkerd.io",
        "Server",
        ("v1alpha1", "v1beta1", "v1beta2", "v1beta3"),
        linkerd.Server,
        {"spec": linkerd.SERVER_SPEC},
        _spec(linkerd.build_server_fields),
        spec_required=True,
    ),
    KindInfo(
        "policy.linkerd.io",
        "ServerAuthorization",
        ("v1alpha1", "v1beta1"),
        linkerd.ServerAuthorization,
        {"spec": linkerd.SERVER_AUTHORIZATION_SPEC},
        _spec(linkerd.build_server_authorization_fields),
        spec_required=True,
    ),
    KindInfo(
        "policy.linkerd.io",
        "HTTPRoute",
        _LINKERD_HTTPROUTE_VERSIONS,
        linkerd.HTTPRoute,
        {"spec": linkerd.HTTP_ROUTE_SPEC},
        _spec(linkerd.build_http_route_fields),
    ),
    KindInfo(
        "gateway.networking.k8s.io",
        "HTTPRoute",
        ("v1", "v1beta1", "v1alpha2"),
        linkerd.HTTPRoute,
        {"spec": linkerd.HTTP_ROUTE_SPEC},
        _spec(linkerd.build_http_route_fields),
    ),
    KindInfo(
        "policy.linkerd.io",
        "AuthorizationPolicy",
        ("v1alpha1",),
        linkerd.LinkerdAuthorizationPolicy,
        {"spec": linkerd.LINKERD_AUTHORIZATION_POLICY_SPEC},
        _spec(linkerd.build_linkerd_authorization_policy_fields),
        spec_required=True,
    ),
    KindInfo(
        "policy.linkerd.io",
        "MeshTLSAuthentication",
        ("v1alpha1",),
        linkerd.MeshTLSAuthentication,
        {"spec": linkerd.MESH_TLS_AUTHENTICATION_SPEC},
        _spec(linkerd.build_mesh_tls_authentication_fields),
        spec_required=True,
    ),
    KindInfo(
        "policy.linkerd.io",
        "NetworkAuthentication",
        ("v1alpha1",),
        linkerd.NetworkAuthentication,
        {"spec": linkerd.NETWORK_AUTHENTICATION_SPEC},
        _spec(linkerd.build_network_authentication_fields),
        spec_required=True,
    ),
)
_BY_GROUP_KIND = {(k.group, k.kind): k for k in KINDS}

# Real kinds of the groups we model that meshtutor does not simulate: reported, not errors.
KNOWN_UNMODELLED: dict[str, tuple[str, ...]] = {
    "": (
        "Endpoints",
        "PersistentVolumeClaim",
        "LimitRange",
        "ResourceQuota",
        "ReplicationController",
        "PersistentVolume",
        "Node",
        "Event",
    ),
    "apps": ("StatefulSet", "DaemonSet", "ReplicaSet", "ControllerRevision"),
    "networking.k8s.io": ("IPAddress", "ServiceCIDR"),
    "security.istio.io": ("RequestAuthentication",),
    "networking.istio.io": (
        "ServiceEntry",
        "Sidecar",
        "WorkloadEntry",
        "WorkloadGroup",
        "EnvoyFilter",
        "ProxyConfig",
    ),
    "policy.linkerd.io": ("EgressNetwork", "GRPCRoute", "TLSRoute", "TCPRoute"),
    "gateway.networking.k8s.io": (
        "Gateway",
        "GatewayClass",
        "GRPCRoute",
        "TCPRoute",
        "TLSRoute",
        "UDPRoute",
        "ReferenceGrant",
    ),
}
_MODELLED_GROUPS = {k.group for k in KINDS}

_RETIRED_VERSIONS = {
    ("security.istio.io", "v1alpha1"): "security.istio.io/v1alpha1 (the old Policy API) was "
    "removed in Istio 1.6; write security.istio.io/v1",
    ("authentication.istio.io", "v1alpha1"): "authentication.istio.io/v1alpha1 (Policy, "
    "MeshPolicy) was removed in Istio 1.6; use a security.istio.io/v1 PeerAuthentication",
    ("rbac.istio.io", "v1alpha1"): "rbac.istio.io (ServiceRole, ClusterRbacConfig) was removed "
    "in Istio 1.6; use a security.istio.io/v1 AuthorizationPolicy",
    ("extensions", "v1beta1"): "extensions/v1beta1 was removed in Kubernetes 1.16; use apps/v1 "
    "for Deployments and networking.k8s.io/v1 for NetworkPolicy",
    ("apps", "v1beta1"): "apps/v1beta1 was removed in Kubernetes 1.16; use apps/v1",
    ("apps", "v1beta2"): "apps/v1beta2 was removed in Kubernetes 1.16; use apps/v1",
}

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.rsplit("/", 1)
        return group, version
    return "", api_version


def _kind_info(doc: Mapping[str, Any], err: Callable[..., ManifestError]) -> KindInfo | None:
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    if not isinstance(api_version, str) or not api_version:
        raise err(
            "apiVersion is missing; every document needs apiVersion and kind "
            "(e.g. apiVersion: v1, kind: Service)",
            field="apiVersion",
            key="apiVersion",
        )
    if not isinstance(kind, str) or not kind:
        raise err(
            "kind is missing; every document needs apiVersion and kind", field="kind", key="kind"
        )
    group, version = _split_api_version(api_version)
    retired = _RETIRED_VERSIONS.get((group, version))
    if retired:
        raise err(retired, field="apiVersion", key="apiVersion")
    info = _BY_GROUP_KIND.get((group, kind))
    if info is not None:
        if version not in info.versions:
            expected = " or ".join(f"{group + '/' if group else ''}{v}" for v in info.versions)
            raise err(
                f"{kind} is not served as {api_version}; expected {expected}",
                field="apiVersion",
                key="apiVersion",
            )
        return info
    if kind in KNOWN_UNMODELLED.get(group, ()):
        return None
    # Is the kind real but in another group we model? Say where it lives.
    homes = [k for k in KINDS if k.kind == kind]
    if homes:
        expected = " or ".join(f"{h.group + '/' if h.group else ''}{h.versions[-1]}" for h in homes)
        raise err(
            f"there is no {kind} in {api_version}; {kind} is apiVersion {expected}",
            field="apiVersion",
            key="apiVersion",
        )
    if group in _MODELLED_GROUPS:
        candidates = [k.kind for k in KINDS if k.group == group] + list(
            KNOWN_UNMODELLED.get(group, ())
        )
        close = difflib.get_close_matches(kind, candidates, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        raise err(
            f"{api_version} has no kind {kind!r}{hint} (kinds: {', '.join(sorted(candidates))})",
            field="kind",
            key="kind",
        )
    return None


def _check_name(value: str, path: str, line: int | None, *, label: bool = False) -> None:
    pattern = _LABEL_RE if label else _NAME_RE
    if len(value) > (63 if label else 253) or not pattern.match(value):
        kind = "a DNS label" if label else "a DNS subdomain name"
        raise SchemaError(
            f"{value!r} is not a valid name: it must be {kind} (lower-case letters, digits and "
            "'-', starting and ending with a letter or digit)",
            path,
            line,
        )


def _build(
    doc: LineDict,
    origin: Origin,
    default_namespace: str | None,
    err: Callable[..., ManifestError],
) -> Resource:
    info = _kind_info(doc, err)
    api_version, kind = doc["apiVersion"], doc["kind"]
    if info is None:
        meta_raw = doc.get("metadata")
        name = meta_raw.get("name") if isinstance(meta_raw, dict) else None
        ns = meta_raw.get("namespace") if isinstance(meta_raw, dict) else None
        if not isinstance(name, str) or not name:
            raise err("metadata.name is missing", field="metadata.name", key="metadata")
        return UnmodelledResource(
            api_version,
            kind,
            ObjectMeta(name, ns if isinstance(ns, str) else default_namespace),
            origin,
            dict(doc),
        )
    schema = Obj(
        {
            "apiVersion": Str(),
            "kind": Str(),
            "metadata": METADATA,
            "status": Anything(),
            **info.top,
        },
        required=("metadata", "spec") if info.spec_required else ("metadata",),
        what=f"a {kind}",
    )
    try:
        checked = schema.check(doc, "", doc.line or origin.line)
        meta = checked["metadata"]
        meta_line = line_of_key(doc, "metadata", origin.line)
        name_line = line_of_key(doc.get("metadata"), "name", meta_line)
        _check_name(
            meta["name"], "metadata.name", name_line, label=kind in ("Namespace", "Service")
        )
        namespace: str | None = None
        if info.namespaced:
            namespace = meta.get("namespace")
            if namespace and default_namespace and namespace != default_namespace:
                raise SchemaError(
                    f"the document says namespace {namespace!r} but you asked for "
                    f"{default_namespace!r}; remove one of the two (kubectl refuses this too)",
                    "metadata.namespace",
                    line_of_key(doc.get("metadata"), "namespace", meta_line),
                )
            namespace = namespace or default_namespace or "default"
            _check_name(namespace, "metadata.namespace", meta_line, label=True)
        metadata = ObjectMeta(
            meta["name"],
            namespace,
            dict(meta.get("labels") or {}),
            dict(meta.get("annotations") or {}),
        )
        spec = checked.get("spec") or {}
        fields = info.build(spec, metadata, checked)
    except SchemaError as exc:
        raise err(exc.message, field=exc.path or None, line=exc.line) from None
    return info.cls(api_version, kind, metadata, origin, dict(checked), **fields)


def load_yaml(
    text: str, source: str = "<input>", default_namespace: str | None = None
) -> list[Resource]:
    """Load every document of a YAML text, in order; raise ``ManifestError`` on the first
    problem, so that nothing is half-loaded.

    ``default_namespace`` plays the part of ``kubectl apply -n``: namespaced documents without
    ``metadata.namespace`` land there (else in ``default``).
    """
    try:
        documents = parse_documents(text)
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        raise ManifestError(problem, source=source, line=line) from None

    resources: list[Resource] = []
    for number, (start, doc) in enumerate(documents, start=1):
        if doc is None:
            continue

        def err(
            message: str,
            *,
            field: str | None = None,
            line: int | None = None,
            key: str | None = None,
            _doc: Any = doc,
            _n: int = number,
            _start: int = start,
        ) -> ManifestError:
            if line is None:
                line = line_of_key(_doc, key, _start) if key else _start
            return ManifestError(message, source=source, document=_n, line=line, field=field)

        if not isinstance(doc, dict):
            raise err(
                f"a document must be a mapping with apiVersion, kind and metadata; "
                f"got {type(doc).__name__}"
            )
        origin = Origin(source, number, start)
        if doc.get("kind") == "List" and doc.get("apiVersion") == "v1":
            items = doc.get("items")
            if not isinstance(items, list):
                raise err("a List needs items: a list of objects", field="items", key="items")
            for index, item in enumerate(items):
                if not isinstance(item, LineDict):
                    raise err(
                        "each item of a List must be an object",
                        field=f"items[{index}]",
                        key="items",
                    )
                resources.append(_build(item, origin, default_namespace, _item_err(err, index)))
            continue
        if not isinstance(doc, LineDict):  # pragma: no cover - the YAML loader builds LineDicts
            raise err("a document must be a mapping")
        resources.append(_build(doc, origin, default_namespace, err))
    return resources


def _item_err(err: Callable[..., ManifestError], index: int) -> Callable[..., ManifestError]:
    def wrapped(
        message: str, *, field: str | None = None, line: int | None = None, key: str | None = None
    ) -> ManifestError:
        prefixed = f"items[{index}].{field}" if field else f"items[{index}]"
        return err(message, field=prefixed, line=line, key=None if line else "items")

    return wrapped


def load_file(path: str | Path, default_namespace: str | None = None) -> list[Resource]:
    """Load a manifest file; unreadable files raise ``ManifestError`` too."""
    try:
        text = read_text(path)
    except InputFileError as exc:
        raise ManifestError(exc.reason, source=str(path), line=exc.line) from None
    return load_yaml(text, source=str(path), default_namespace=default_namespace)
