"""Linkerd policy kinds (policy.linkerd.io): Server, ServerAuthorization (legacy), HTTPRoute,
MeshTLSAuthentication, NetworkAuthentication and AuthorizationPolicy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshtutor.model.base import Resource
from meshtutor.model.k8s import SELECTOR, IPBlock, LabelSelector, _ip_block_extra
from meshtutor.model.schema import (
    Anything,
    Bool,
    Enum,
    IntOrStr,
    ListOf,
    Obj,
    Port,
    SchemaError,
    Str,
)

DEFAULT_POLICIES = (
    "all-unauthenticated",
    "all-authenticated",
    "cluster-unauthenticated",
    "cluster-authenticated",
    "deny",
    "audit",
)
PROXY_PROTOCOLS = ("unknown", "HTTP/1", "HTTP/2", "gRPC", "opaque", "TLS")

# --- Server ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server(Resource):
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    port: int | str = 0
    proxy_protocol: str = "unknown"
    access_policy: str = "deny"


def _server_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    if "podSelector" not in out and "externalWorkloadSelector" not in out:
        raise SchemaError("a Server needs podSelector", f"{path}.podSelector", line)


SERVER_SPEC = Obj(
    {
        "podSelector": SELECTOR,
        "externalWorkloadSelector": SELECTOR,
        "port": IntOrStr(),
        "proxyProtocol": Enum(PROXY_PROTOCOLS),
        "accessPolicy": Enum(DEFAULT_POLICIES),
    },
    required=("port",),
    what="a Server spec",
    extra=_server_extra,
)


def build_server_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pod_selector": LabelSelector.from_dict(spec.get("podSelector")),
        "port": spec["port"],
        "proxy_protocol": spec.get("proxyProtocol", "unknown"),
        "access_policy": spec.get("accessPolicy", "deny"),
    }


# --- references shared by the authorization kinds ---------------------------------------------


@dataclass(frozen=True)
class TargetRef:
    kind: str
    name: str
    group: str = ""
    namespace: str | None = None


TARGET_REF = Obj(
    {
        "group": Str(),
        "kind": Str(allow_empty=False),
        "name": Str(allow_empty=False),
        "namespace": Str(),
    },
    required=("kind", "name"),
    what="a target reference",
)


def _ref(data: Mapping[str, Any]) -> TargetRef:
    return TargetRef(data["kind"], data["name"], data.get("group") or "", data.get("namespace"))


NETWORK = Obj(
    {"cidr": Str(allow_empty=False), "except": ListOf(Str())},
    required=("cidr",),
    what="a network",
    extra=_ip_block_extra,
)


def _networks(items: Any) -> tuple[IPBlock, ...]:
    return tuple(IPBlock(n["cidr"], tuple(n.get("except") or ())) for n in items or ())


# --- AuthorizationPolicy (policy.linkerd.io) ---------------------------------------------------

_TARGET_KINDS = ("Server", "HTTPRoute", "GRPCRoute", "Namespace")
_AUTHN_KINDS = ("MeshTLSAuthentication", "NetworkAuthentication", "ServiceAccount")


def _lap_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    kind = out["targetRef"]["kind"]
    if kind not in _TARGET_KINDS:
        raise SchemaError(
            f"targetRef.kind must be one of {', '.join(_TARGET_KINDS)}; got {kind!r}",
            f"{path}.targetRef.kind",
            line,
        )
    for i, ref in enumerate(out.get("requiredAuthenticationRefs") or ()):
        if ref["kind"] not in _AUTHN_KINDS:
            raise SchemaError(
                f"kind must be one of {', '.join(_AUTHN_KINDS)}; got {ref['kind']!r}",
                f"{path}.requiredAuthenticationRefs[{i}].kind",
                line,
            )


@dataclass(frozen=True)
class LinkerdAuthorizationPolicy(Resource):
    target: TargetRef = field(default_factory=lambda: TargetRef("Server", ""))
    required_authentications: tuple[TargetRef, ...] = ()


LINKERD_AUTHORIZATION_POLICY_SPEC = Obj(
    {"targetRef": TARGET_REF, "requiredAuthenticationRefs": ListOf(TARGET_REF)},
    required=("targetRef", "requiredAuthenticationRefs"),
    what="an AuthorizationPolicy spec",
    extra=_lap_extra,
)


def build_linkerd_authorization_policy_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "target": _ref(spec["targetRef"]),
        "required_authentications": tuple(_ref(r) for r in spec["requiredAuthenticationRefs"]),
    }


# --- MeshTLSAuthentication / NetworkAuthentication ---------------------------------------------


@dataclass(frozen=True)
class MeshTLSAuthentication(Resource):
    identities: tuple[str, ...] = ()
    identity_refs: tuple[TargetRef, ...] = ()


def _mtls_authn_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    if bool(out.get("identities")) == bool(out.get("identityRefs")):
        raise SchemaError("set exactly one of identities or identityRefs", path, line)


MESH_TLS_AUTHENTICATION_SPEC = Obj(
    {"identities": ListOf(Str(allow_empty=False)), "identityRefs": ListOf(TARGET_REF)},
    what="a MeshTLSAuthentication spec",
    extra=_mtls_authn_extra,
)


def build_mesh_tls_authentication_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "identities": tuple(spec.get("identities") or ()),
        "identity_refs": tuple(_ref(r) for r in spec.get("identityRefs") or ()),
    }


@dataclass(frozen=True)
class NetworkAuthentication(Resource):
    networks: tuple[IPBlock, ...] = ()


NETWORK_AUTHENTICATION_SPEC = Obj(
    {"networks": ListOf(NETWORK, min_items=1)},
    required=("networks",),
    what="a NetworkAuthentication spec",
)


def build_network_authentication_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"networks": _networks(spec["networks"])}


# --- ServerAuthorization (legacy) --------------------------------------------------------------


@dataclass(frozen=True)
class ServerAuthorization(Resource):
    server_name: str | None = None
    server_selector: LabelSelector | None = None
    identities: tuple[str, ...] = ()
    service_accounts: tuple[tuple[str, str | None], ...] = ()
    unauthenticated_tls: bool = False
    unauthenticated: bool = False
    networks: tuple[IPBlock, ...] = ()
    mesh_tls: bool = False


def _saz_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    server = out["server"]
    if bool(server.get("name")) == bool(server.get("selector")):
        raise SchemaError("server needs exactly one of name or selector", f"{path}.server", line)
    client = out["client"]
    if client.get("unauthenticated") and client.get("meshTLS"):
        raise SchemaError(
            "client.unauthenticated and client.meshTLS cannot both be set", f"{path}.client", line
        )
    if not client.get("unauthenticated") and not client.get("meshTLS"):
        raise SchemaError("client needs meshTLS or unauthenticated: true", f"{path}.client", line)


SERVER_AUTHORIZATION_SPEC = Obj(
    {
        "server": Obj({"name": Str(), "selector": SELECTOR}, what="a server reference"),
        "client": Obj(
            {
                "meshTLS": Obj(
                    {
                        "identities": ListOf(Str(allow_empty=False)),
                        "serviceAccounts": ListOf(
                            Obj(
                                {"name": Str(allow_empty=False), "namespace": Str()},
                                required=("name",),
                                what="a service account reference",
                            )
                        ),
                        "unauthenticatedTLS": Bool(),
                    },
                    what="meshTLS",
                ),
                "unauthenticated": Bool(),
                "networks": ListOf(NETWORK),
            },
            what="a client",
        ),
    },
    required=("server", "client"),
    what="a ServerAuthorization spec",
    extra=_saz_extra,
)


def build_server_authorization_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    server = spec["server"]
    client = spec["client"]
    mesh = client.get("meshTLS")
    return {
        "server_name": server.get("name") or None,
        "server_selector": LabelSelector.from_dict(server["selector"])
        if server.get("selector")
        else None,
        "identities": tuple((mesh or {}).get("identities") or ()),
        "service_accounts": tuple(
            (sa["name"], sa.get("namespace")) for sa in (mesh or {}).get("serviceAccounts") or ()
        ),
        "unauthenticated_tls": bool((mesh or {}).get("unauthenticatedTLS", False)),
        "unauthenticated": bool(client.get("unauthenticated", False)),
        "networks": _networks(client.get("networks")),
        "mesh_tls": mesh is not None,
    }


# --- HTTPRoute ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteMatch:
    path_type: str | None = None
    path_value: str | None = None
    method: str | None = None
    headers: tuple[tuple[str, str, str], ...] = ()  # (type, name, value)


@dataclass(frozen=True)
class HTTPRoute(Resource):
    parents: tuple[TargetRef, ...] = ()
    #: each rule's matches; a rule with no matches matches every request ("/" prefix)
    rules: tuple[tuple[RouteMatch, ...], ...] = ()


_PATH_TYPES = ("Exact", "PathPrefix", "RegularExpression")
HTTP_ROUTE_SPEC = Obj(
    {
        "parentRefs": ListOf(
            Obj(
                {
                    "group": Str(),
                    "kind": Str(),
                    "name": Str(allow_empty=False),
                    "namespace": Str(),
                    "port": Port(),
                    "sectionName": Str(),
                },
                required=("name",),
                what="a parent reference",
            )
        ),
        "hostnames": ListOf(Str()),
        "rules": ListOf(
            Obj(
                {
                    "matches": ListOf(
                        Obj(
                            {
                                "path": Obj(
                                    {"type": Enum(_PATH_TYPES), "value": Str()}, what="a path match"
                                ),
                                "headers": ListOf(
                                    Obj(
                                        {
                                            "type": Enum(("Exact", "RegularExpression")),
                                            "name": Str(allow_empty=False),
                                            "value": Str(),
                                        },
                                        required=("name", "value"),
                                        what="a header match",
                                    )
                                ),
                                "queryParams": Anything(),
                                "method": Enum(
                                    (
                                        "GET",
                                        "HEAD",
                                        "POST",
                                        "PUT",
                                        "DELETE",
                                        "CONNECT",
                                        "OPTIONS",
                                        "TRACE",
                                        "PATCH",
                                    )
                                ),
                            },
                            what="a route match",
                        )
                    ),
                    "filters": Anything(),
                    "backendRefs": Anything(),
                    "timeouts": Anything(),
                    "name": Str(),
                    "retry": Anything(),
                    "sessionPersistence": Anything(),
                },
                what="a route rule",
            )
        ),
    },
    what="an HTTPRoute spec",
)


def build_http_route_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in spec.get("rules") or [{}]:
        matches = []
        for m in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
            path = m.get("path") or {"type": "PathPrefix", "value": "/"}
            matches.append(
                RouteMatch(
                    path_type=path.get("type", "PathPrefix"),
                    path_value=path.get("value", "/"),
                    method=m.get("method"),
                    headers=tuple(
                        (h.get("type", "Exact"), h["name"], h["value"])
                        for h in m.get("headers") or ()
                    ),
                )
            )
        rules.append(tuple(matches))
    return {
        "parents": tuple(
            TargetRef(
                p.get("kind") or "Gateway", p["name"], p.get("group") or "", p.get("namespace")
            )
            for p in spec.get("parentRefs") or ()
        ),
        "rules": tuple(rules),
    }


__all__ = [
    "DEFAULT_POLICIES",
    "HTTPRoute",
    "LinkerdAuthorizationPolicy",
    "MeshTLSAuthentication",
    "NetworkAuthentication",
    "RouteMatch",
    "Server",
    "ServerAuthorization",
    "TargetRef",
]
