"""Istio security and traffic kinds: PeerAuthentication, DestinationRule, AuthorizationPolicy,
and the mesh-wide settings read from the ``istio`` ConfigMap."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshtutor.model.base import Resource
from meshtutor.model.k8s import LabelSelector
from meshtutor.model.schema import (
    LABELS,
    Anything,
    Bool,
    Enum,
    ListOf,
    MapOf,
    Obj,
    Port,
    SchemaError,
    Str,
    port_key,
)

MTLS_MODES = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")
TLS_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
AUTHZ_ACTIONS = ("ALLOW", "DENY", "AUDIT", "CUSTOM")

WORKLOAD_SELECTOR = Obj({"matchLabels": LABELS}, what="a workload selector")
POLICY_TARGET_REF = Obj(
    {
        "group": Str(),
        "kind": Str(allow_empty=False),
        "name": Str(allow_empty=False),
        "namespace": Str(),
    },
    required=("kind", "name"),
    what="a targetRef",
)

# --- PeerAuthentication ------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerAuthentication(Resource):
    selector: LabelSelector | None = None
    mode: str = "UNSET"
    port_level: Mapping[int, str] = field(default_factory=dict, hash=False)


def _pa_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    selector = (out.get("selector") or {}).get("matchLabels")
    if out.get("portLevelMtls") and not selector:
        # istio/api validation: "portLevelMtls requires selector".
        raise SchemaError(
            "portLevelMtls requires a workload selector (spec.selector.matchLabels); "
            "port-level modes only apply to selected workloads",
            f"{path}.portLevelMtls",
            line,
        )


MTLS = Obj({"mode": Enum(MTLS_MODES)}, what="mtls")
PEER_AUTHENTICATION_SPEC = Obj(
    {
        "selector": WORKLOAD_SELECTOR,
        "mtls": MTLS,
        "portLevelMtls": MapOf(MTLS, key=port_key),
    },
    what="a PeerAuthentication spec",
    extra=_pa_extra,
)


def build_peer_authentication_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    labels = (spec.get("selector") or {}).get("matchLabels")
    return {
        "selector": LabelSelector.from_dict({"matchLabels": labels}) if labels else None,
        "mode": (spec.get("mtls") or {}).get("mode", "UNSET"),
        "port_level": {
            port: (value or {}).get("mode", "UNSET")
            for port, value in (spec.get("portLevelMtls") or {}).items()
        },
    }


# --- DestinationRule ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientTLS:
    mode: str
    sni: str | None = None
    subject_alt_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortTrafficPolicy:
    port: int
    tls: ClientTLS | None


@dataclass(frozen=True)
class TrafficPolicy:
    tls: ClientTLS | None = None
    port_level: tuple[PortTrafficPolicy, ...] = ()


@dataclass(frozen=True)
class Subset:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    traffic_policy: TrafficPolicy | None = None


@dataclass(frozen=True)
class DestinationRule(Resource):
    host: str = ""
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
    workload_selector: LabelSelector | None = None


def _client_tls_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    if "mode" not in out:
        raise SchemaError(
            f"tls.mode is required: one of {', '.join(TLS_MODES)}", f"{path}.mode", line
        )


CLIENT_TLS = Obj(
    {
        "mode": Enum(TLS_MODES),
        "clientCertificate": Str(),
        "privateKey": Str(),
        "caCertificates": Str(),
        "caCrl": Str(),
        "credentialName": Str(),
        "subjectAltNames": ListOf(Str()),
        "sni": Str(),
        "insecureSkipVerify": Bool(),
    },
    what="tls settings",
    extra=_client_tls_extra,
)

_OPAQUE_POLICY = {
    "loadBalancer": Anything(),
    "connectionPool": Anything(),
    "outlierDetection": Anything(),
}
PORT_TRAFFIC_POLICY = Obj(
    {
        "port": Obj({"number": Port()}, required=("number",), what="a port selector"),
        "tls": CLIENT_TLS,
        **_OPAQUE_POLICY,
    },
    required=("port",),
    what="a port-level traffic policy",
)
TRAFFIC_POLICY = Obj(
    {
        "tls": CLIENT_TLS,
        "portLevelSettings": ListOf(PORT_TRAFFIC_POLICY),
        "tunnel": Anything(),
        "proxyProtocol": Anything(),
        "retryBudget": Anything(),
        **_OPAQUE_POLICY,
    },
    what="a traffic policy",
)


def _dr_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    names = [s["name"] for s in out.get("subsets") or ()]
    for name in names:
        if names.count(name) > 1:
            raise SchemaError(f"duplicate subset name {name!r}", f"{path}.subsets", line)


DESTINATION_RULE_SPEC = Obj(
    {
        "host": Str(allow_empty=False),
        "trafficPolicy": TRAFFIC_POLICY,
        "subsets": ListOf(
            Obj(
                {"name": Str(allow_empty=False), "labels": LABELS, "trafficPolicy": TRAFFIC_POLICY},
                required=("name",),
                what="a subset",
            )
        ),
        "exportTo": ListOf(Str(allow_empty=False)),
        "workloadSelector": WORKLOAD_SELECTOR,
    },
    required=("host",),
    what="a DestinationRule spec",
    extra=_dr_extra,
)


def _client_tls(data: Mapping[str, Any] | None) -> ClientTLS | None:
    if not data:
        return None
    return ClientTLS(data["mode"], data.get("sni"), tuple(data.get("subjectAltNames") or ()))


def _traffic_policy(data: Mapping[str, Any] | None) -> TrafficPolicy | None:
    if data is None:
        return None
    return TrafficPolicy(
        tls=_client_tls(data.get("tls")),
        port_level=tuple(
            PortTrafficPolicy(p["port"]["number"], _client_tls(p.get("tls")))
            for p in data.get("portLevelSettings") or ()
        ),
    )


def build_destination_rule_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    ws = (spec.get("workloadSelector") or {}).get("matchLabels")
    return {
        "host": spec["host"],
        "traffic_policy": _traffic_policy(spec.get("trafficPolicy")),
        "subsets": tuple(
            Subset(s["name"], dict(s.get("labels") or {}), _traffic_policy(s.get("trafficPolicy")))
            for s in spec.get("subsets") or ()
        ),
        "export_to": tuple(spec.get("exportTo") or ()),
        "workload_selector": LabelSelector.from_dict({"matchLabels": ws}) if ws else None,
    }


# --- AuthorizationPolicy -----------------------------------------------------------------------

SOURCE_FIELDS = [
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "ipBlocks",
    "notIpBlocks",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
    "serviceAccounts",
    "notServiceAccounts",
]
OPERATION_FIELDS = [
    "hosts",
    "notHosts",
    "ports",
    "notPorts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
]

# Condition keys Istio accepts in `when` (istio/istio pilot/pkg/security/authz/model).
CONDITION_KEYS = (
    "request.headers[",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[",
    "destination.ip",
    "destination.port",
    "connection.sni",
    "experimental.envoy.filters.",
)


def _when_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    key = out["key"]
    if not any(key == k or (k.endswith(("[", ".")) and key.startswith(k)) for k in CONDITION_KEYS):
        raise SchemaError(
            f"unknown condition key {key!r}; expected request.headers[NAME], source.ip, "
            "remote.ip, source.namespace, source.principal, destination.ip, destination.port, "
            "connection.sni or request.auth.*",
            f"{path}.key",
            line,
        )
    if key.startswith(("request.headers[", "request.auth.claims[")) and not key.endswith("]"):
        raise SchemaError(f"{key!r} is missing its closing ]", f"{path}.key", line)
    if not out.get("values") and not out.get("notValues"):
        raise SchemaError("a condition needs values or notValues", path, line)


def _port_strings(out: list[Any], path: str, line: int | None) -> None:
    for i, value in enumerate(out):
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            raise SchemaError(
                f'expected a port number as a string such as "8080", got {value!r}',
                f"{path}[{i}]",
                line,
            )


class _PortList(ListOf):
    def check(self, value: Any, path: str, line: int | None) -> Any:
        out = super().check(value, path, line)
        _port_strings(out, path, line)
        return out


RULE = Obj(
    {
        "from": ListOf(
            Obj(
                {"source": Obj({f: ListOf(Str()) for f in SOURCE_FIELDS}, what="a source")},
                what="a from entry",
            )
        ),
        "to": ListOf(
            Obj(
                {
                    "operation": Obj(
                        {
                            **{f: ListOf(Str()) for f in OPERATION_FIELDS},
                            "ports": _PortList(Str()),
                            "notPorts": _PortList(Str()),
                        },
                        what="an operation",
                    )
                },
                what="a to entry",
            )
        ),
        "when": ListOf(
            Obj(
                {
                    "key": Str(allow_empty=False),
                    "values": ListOf(Str()),
                    "notValues": ListOf(Str()),
                },
                required=("key",),
                what="a condition",
                extra=_when_extra,
            )
        ),
    },
    what="a rule",
)


def _ap_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    action = out.get("action", "ALLOW")
    if action == "CUSTOM" and not (out.get("provider") or {}).get("name"):
        raise SchemaError("action CUSTOM needs provider.name", f"{path}.provider", line)
    if action != "CUSTOM" and out.get("provider"):
        raise SchemaError("provider is only allowed with action CUSTOM", f"{path}.provider", line)
    if out.get("selector") and (out.get("targetRef") or out.get("targetRefs")):
        raise SchemaError(
            "use either selector or targetRef(s), not both", f"{path}.targetRef", line
        )


AUTHORIZATION_POLICY_SPEC = Obj(
    {
        "selector": WORKLOAD_SELECTOR,
        "targetRef": POLICY_TARGET_REF,
        "targetRefs": ListOf(POLICY_TARGET_REF),
        "rules": ListOf(RULE),
        "action": Enum(AUTHZ_ACTIONS),
        "provider": Obj({"name": Str(allow_empty=False)}, what="a provider"),
    },
    what="an AuthorizationPolicy spec",
    extra=_ap_extra,
)


@dataclass(frozen=True)
class Source:
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Operation:
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Condition:
    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    sources: tuple[Source, ...] = ()
    operations: tuple[Operation, ...] = ()
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class AuthorizationPolicy(Resource):
    selector: LabelSelector | None = None
    action: str = "ALLOW"
    rules: tuple[Rule, ...] = ()
    provider: str | None = None
    has_target_ref: bool = False
    dry_run: bool = False


def build_authorization_policy_fields(
    spec: Mapping[str, Any], annotations: Mapping[str, str]
) -> dict[str, Any]:
    labels = (spec.get("selector") or {}).get("matchLabels")
    return {
        "selector": LabelSelector.from_dict({"matchLabels": labels}) if labels else None,
        "action": spec.get("action", "ALLOW"),
        "rules": tuple(
            Rule(
                sources=tuple(
                    Source({k: tuple(v) for k, v in (f.get("source") or {}).items()})
                    for f in r.get("from") or ()
                ),
                operations=tuple(
                    Operation({k: tuple(v) for k, v in (t.get("operation") or {}).items()})
                    for t in r.get("to") or ()
                ),
                conditions=tuple(
                    Condition(
                        c["key"], tuple(c.get("values") or ()), tuple(c.get("notValues") or ())
                    )
                    for c in r.get("when") or ()
                ),
            )
            for r in spec.get("rules") or ()
        ),
        "provider": (spec.get("provider") or {}).get("name"),
        "has_target_ref": bool(spec.get("targetRef") or spec.get("targetRefs")),
        "dry_run": str(annotations.get("istio.io/dry-run", "")).lower() == "true",
    }


# --- mesh config -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeshConfig:
    """The fields of Istio's MeshConfig that change security behaviour, with Istio's defaults."""

    trust_domain: str = "cluster.local"
    trust_domain_aliases: tuple[str, ...] = ()
    enable_auto_mtls: bool = True
    root_namespace: str = "istio-system"
    extension_providers: tuple[str, ...] = ()


MESH_CONFIG = Obj(
    {
        "trustDomain": Str(allow_empty=False),
        "trustDomainAliases": ListOf(Str(allow_empty=False)),
        "enableAutoMtls": Bool(),
        "rootNamespace": Str(allow_empty=False),
        "extensionProviders": ListOf(
            Obj(
                {"name": Str(allow_empty=False)},
                required=("name",),
                what="an extension provider",
                open=True,
            )
        ),
    },
    what="mesh config",
    open=True,
)


__all__ = [
    "AUTHORIZATION_POLICY_SPEC",
    "DESTINATION_RULE_SPEC",
    "MESH_CONFIG",
    "PEER_AUTHENTICATION_SPEC",
    "AuthorizationPolicy",
    "ClientTLS",
    "Condition",
    "DestinationRule",
    "MeshConfig",
    "Operation",
    "PeerAuthentication",
    "PortTrafficPolicy",
    "Rule",
    "Source",
    "Subset",
    "TrafficPolicy",
]
