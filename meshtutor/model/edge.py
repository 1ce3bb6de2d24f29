"""Kinds for traffic from outside the cluster: Istio's Gateway and VirtualService, Kubernetes
Ingress and IngressClass, and Secrets (the ``kubernetes.io/tls`` ones carry edge certificates).

Only the fields meshtutor interprets are typed; every other field of the real schema is
accepted (kubectl would accept it) and kept in ``raw``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshtutor.model.base import Resource
from meshtutor.model.schema import (
    LABELS,
    Anything,
    Bool,
    Enum,
    Int,
    ListOf,
    MapOf,
    Obj,
    Port,
    SchemaError,
    Str,
)

# --- Istio Gateway -----------------------------------------------------------------------------

GATEWAY_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS")
GATEWAY_TLS_MODES = (
    "PASSTHROUGH",
    "SIMPLE",
    "MUTUAL",
    "AUTO_PASSTHROUGH",
    "ISTIO_MUTUAL",
    "OPTIONAL_MUTUAL",
)


@dataclass(frozen=True)
class GatewayTLS:
    mode: str = "PASSTHROUGH"
    credential_name: str | None = None
    https_redirect: bool = False


@dataclass(frozen=True)
class GatewayServer:
    number: int
    protocol: str
    port_name: str
    hosts: tuple[str, ...]
    tls: GatewayTLS | None = None
    index: int = 0

    @property
    def terminates_tls(self) -> bool:
        return self.protocol == "HTTPS" or (
            self.tls is not None and self.tls.mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
        )


@dataclass(frozen=True)
class Gateway(Resource):
    selector: Mapping[str, str] = field(default_factory=dict, hash=False)
    servers: tuple[GatewayServer, ...] = ()


def _upper_protocol(value: Any, path: str, line: int | None) -> Any:
    # Istio accepts the protocol in any case ("http" works); store it upper-case.
    if not isinstance(value, str):
        raise SchemaError(f"expected a protocol name such as HTTP, got {value!r}", path, line)
    return Enum(GATEWAY_PROTOCOLS).check(value.upper(), path, line)


class _Protocol(Str):
    def check(self, value: Any, path: str, line: int | None) -> Any:
        return _upper_protocol(value, path, line)


def _server_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    protocol = (out.get("port") or {}).get("protocol", "")
    tls = out.get("tls") or {}
    if protocol in ("HTTPS", "TLS") and not tls:
        # istio/pkg/config/validation: "server must have TLS settings for HTTPS/TLS protocols"
        raise SchemaError(
            f"a {protocol} server needs tls settings (e.g. tls: {{mode: SIMPLE, "
            "credentialName: my-cert}})",
            f"{path}.tls",
            line,
        )
    mode = tls.get("mode", "PASSTHROUGH" if tls else None)
    if (
        mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
        and not tls.get("credentialName")
        and not (tls.get("serverCertificate") and tls.get("privateKey"))
    ):
        raise SchemaError(
            f"tls mode {mode} needs credentialName (the Secret holding the server "
            "certificate) or serverCertificate and privateKey",
            f"{path}.tls.credentialName",
            line,
        )
    for i, host in enumerate(out.get("hosts") or []):
        if "/" in host:
            ns, _, name = host.partition("/")
            if not ns or not name:
                raise SchemaError(
                    f"host {host!r} must be HOST or NAMESPACE/HOST", f"{path}.hosts[{i}]", line
                )


GATEWAY_TLS = Obj(
    {
        "httpsRedirect": Bool(),
        "mode": Enum(GATEWAY_TLS_MODES),
        "credentialName": Str(allow_empty=False),
        "credentialNames": ListOf(Str()),
        "serverCertificate": Str(),
        "privateKey": Str(),
        "caCertificates": Str(),
        "caCrl": Str(),
        "subjectAltNames": ListOf(Str()),
        "verifyCertificateSpki": ListOf(Str()),
        "verifyCertificateHash": ListOf(Str()),
        "minProtocolVersion": Enum(("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")),
        "maxProtocolVersion": Enum(("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")),
        "cipherSuites": ListOf(Str()),
        "tlsCertificates": Anything(),
    },
    what="server tls settings",
)
GATEWAY_SERVER = Obj(
    {
        "port": Obj(
            {
                "number": Port(),
                "protocol": _Protocol(),
                "name": Str(allow_empty=False),
                "targetPort": Port(),
            },
            required=("number", "protocol", "name"),
            what="a gateway port",
        ),
        "bind": Str(),
        "hosts": ListOf(Str(allow_empty=False), min_items=1),
        "tls": GATEWAY_TLS,
        "defaultEndpoint": Str(),
        "name": Str(),
    },
    required=("port", "hosts"),
    what="a gateway server",
    extra=_server_extra,
)
GATEWAY_SPEC = Obj(
    {"selector": LABELS, "servers": ListOf(GATEWAY_SERVER, min_items=1)},
    required=("servers",),
    what="a Gateway spec",
)


def build_gateway_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    servers = []
    for index, s in enumerate(spec.get("servers") or []):
        tls = s.get("tls")
        servers.append(
            GatewayServer(
                number=s["port"]["number"],
                protocol=s["port"]["protocol"],
                port_name=s["port"]["name"],
                hosts=tuple(h.lower() for h in s.get("hosts") or ()),
                tls=GatewayTLS(
                    mode=tls.get("mode", "PASSTHROUGH"),
                    credential_name=tls.get("credentialName"),
                    https_redirect=bool(tls.get("httpsRedirect")),
                )
                if tls
                else None,
                index=index,
            )
        )
    return {"selector": dict(spec.get("selector") or {}), "servers": tuple(servers)}


# --- Istio VirtualService ----------------------------------------------------------------------


@dataclass(frozen=True)
class URIMatch:
    kind: str  # exact | prefix | regex
    value: str

    def matches(self, path: str) -> bool:
        import re

        if self.kind == "exact":
            return path == self.value
        if self.kind == "prefix":
            return path.startswith(self.value)
        return re.fullmatch(self.value, path) is not None

    def __str__(self) -> str:
        return f"uri {self.kind} {self.value}"


@dataclass(frozen=True)
class HTTPMatch:
    uri: URIMatch | None = None
    port: int | None = None
    gateways: tuple[str, ...] = ()
    headers: Mapping[str, URIMatch] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class RouteDestination:
    host: str
    port: int | None = None
    subset: str | None = None
    weight: int = 0


@dataclass(frozen=True)
class HTTPRouteRule:
    index: int
    name: str | None
    matches: tuple[HTTPMatch, ...]
    destinations: tuple[RouteDestination, ...]
    redirect: Mapping[str, Any] | None = field(default=None, hash=False)
    direct_response: tuple[int, str] | None = None
    rewrite_uri: str | None = None


@dataclass(frozen=True)
class VirtualService(Resource):
    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    http: tuple[HTTPRouteRule, ...] = ()
    export_to: tuple[str, ...] = ()


def _string_match(value: Any, path: str, line: int | None) -> Any:
    checked = Obj({"exact": Str(), "prefix": Str(), "regex": Str()}, what="a string match").check(
        value, path, line
    )
    if len(checked) != 1:
        raise SchemaError("a string match needs exactly one of exact, prefix or regex", path, line)
    return checked


class _StringMatch(Obj):
    def check(self, value: Any, path: str, line: int | None) -> Any:
        return _string_match(value, path, line)


HTTP_MATCH = Obj(
    {
        "name": Str(),
        "uri": _StringMatch(),
        "scheme": _StringMatch(),
        "method": _StringMatch(),
        "authority": _StringMatch(),
        "headers": MapOf(_StringMatch()),
        "withoutHeaders": MapOf(_StringMatch()),
        "queryParams": MapOf(_StringMatch()),
        "port": Port(),
        "sourceLabels": LABELS,
        "sourceNamespace": Str(),
        "gateways": ListOf(Str()),
        "ignoreUriCase": Bool(),
        "statPrefix": Str(),
    },
    what="an HTTP match",
)
DESTINATION = Obj(
    {
        "host": Str(allow_empty=False),
        "subset": Str(),
        "port": Obj({"number": Port()}, what="a destination port"),
    },
    required=("host",),
    what="a destination",
)
HTTP_ROUTE_DESTINATION = Obj(
    {"destination": DESTINATION, "weight": Int(minimum=0), "headers": Anything()},
    required=("destination",),
    what="a route destination",
)


def _route_extra(rule: dict[str, Any], path: str, line: int | None) -> None:
    actions = [k for k in ("route", "redirect", "directResponse", "delegate") if rule.get(k)]
    if not actions:
        raise SchemaError(
            "an HTTP route needs route (destinations), redirect or directResponse",
            f"{path}.route",
            line,
        )
    if len(actions) > 1 and "route" in actions:
        raise SchemaError(
            f"an HTTP route cannot have both route and {actions[-1]}",
            f"{path}.{actions[-1]}",
            line,
        )


HTTP_ROUTE = Obj(
    {
        "name": Str(),
        "match": ListOf(HTTP_MATCH),
        "route": ListOf(HTTP_ROUTE_DESTINATION),
        "redirect": Obj(
            {
                "uri": Str(),
                "authority": Str(),
                "port": Port(),
                "derivePort": Enum(("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT")),
                "scheme": Str(),
                "redirectCode": Int(minimum=300, maximum=399),
            },
            what="a redirect",
        ),
        "directResponse": Obj(
            {"status": Int(minimum=200, maximum=599), "body": Anything()},
            required=("status",),
            what="a direct response",
        ),
        "delegate": Anything(),
        "rewrite": Obj({"uri": Str(), "authority": Str(), "uriRegexRewrite": Anything()}),
        "timeout": Str(),
        "retries": Anything(),
        "fault": Anything(),
        "mirror": Anything(),
        "mirrors": Anything(),
        "mirrorPercentage": Anything(),
        "mirrorPercent": Anything(),
        "corsPolicy": Anything(),
        "headers": Anything(),
    },
    what="an HTTP route",
    extra=lambda out, path, line: _route_extra(out, path, line),
)


VIRTUAL_SERVICE_SPEC = Obj(
    {
        "hosts": ListOf(Str(allow_empty=False)),
        "gateways": ListOf(Str(allow_empty=False)),
        "http": ListOf(HTTP_ROUTE),
        "tls": Anything(),
        "tcp": Anything(),
        "exportTo": ListOf(Str()),
    },
    what="a VirtualService spec",
)


def _uri(match: Mapping[str, Any] | None) -> URIMatch | None:
    if not match:
        return None
    kind, value = next(iter(match.items()))
    return URIMatch(kind, value)


def build_virtual_service_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    rules = []
    for index, rule in enumerate(spec.get("http") or []):
        matches = tuple(
            HTTPMatch(
                uri=_uri(m.get("uri")),
                port=m.get("port"),
                gateways=tuple(m.get("gateways") or ()),
                headers={k.lower(): _uri(v) for k, v in (m.get("headers") or {}).items()},  # type: ignore[misc]
            )
            for m in rule.get("match") or []
        )
        destinations = tuple(
            RouteDestination(
                host=r["destination"]["host"].lower(),
                port=(r["destination"].get("port") or {}).get("number"),
                subset=r["destination"].get("subset"),
                weight=r.get("weight", 0),
            )
            for r in rule.get("route") or []
        )
        direct = rule.get("directResponse")
        body = (direct or {}).get("body") or {}
        rules.append(
            HTTPRouteRule(
                index=index,
                name=rule.get("name"),
                matches=matches,
                destinations=destinations,
                redirect=rule.get("redirect"),
                direct_response=(direct["status"], str(body.get("string", ""))) if direct else None,
                rewrite_uri=(rule.get("rewrite") or {}).get("uri"),
            )
        )
    return {
        "hosts": tuple(h.lower() for h in spec.get("hosts") or ()),
        "gateways": tuple(spec.get("gateways") or ()),
        "http": tuple(rules),
        "export_to": tuple(spec.get("exportTo") or ()),
    }


# --- Kubernetes Ingress ------------------------------------------------------------------------

PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")


@dataclass(frozen=True)
class IngressBackend:
    service: str | None
    port: int | str | None  # a number, or a port name of the Service


@dataclass(frozen=True)
class IngressPath:
    path: str
    path_type: str
    backend: IngressBackend
    index: int = 0


@dataclass(frozen=True)
class IngressRule:
    host: str | None
    paths: tuple[IngressPath, ...]
    index: int = 0


@dataclass(frozen=True)
class IngressTLS:
    hosts: tuple[str, ...]
    secret_name: str | None


@dataclass(frozen=True)
class Ingress(Resource):
    ingress_class: str | None = None
    class_field: str | None = None  # where the class came from (spec or annotation)
    default_backend: IngressBackend | None = None
    rules: tuple[IngressRule, ...] = ()
    tls: tuple[IngressTLS, ...] = ()


def _backend_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    if bool(out.get("service")) == bool(out.get("resource")):
        raise SchemaError(
            "a backend needs exactly one of service or resource", f"{path}.service", line
        )
    port = (out.get("service") or {}).get("port")
    if out.get("service") and port is not None and bool("number" in port) == bool("name" in port):
        raise SchemaError(
            "a service backend port needs exactly one of number or name",
            f"{path}.service.port",
            line,
        )


INGRESS_BACKEND = Obj(
    {
        "service": Obj(
            {
                "name": Str(allow_empty=False),
                "port": Obj({"number": Port(), "name": Str(allow_empty=False)}),
            },
            required=("name",),
            what="a service backend",
        ),
        "resource": Anything(),
    },
    what="an Ingress backend",
    extra=_backend_extra,
)


def _path_extra(out: dict[str, Any], path: str, line: int | None) -> None:
    value = out.get("path")
    if (
        out.get("pathType") in ("Exact", "Prefix")
        and value is not None
        and not value.startswith("/")
    ):
        # networking/validation: "must be an absolute path"
        raise SchemaError(f"path {value!r} must be an absolute path (start with /)", path, line)


INGRESS_SPEC = Obj(
    {
        "ingressClassName": Str(allow_empty=False),
        "defaultBackend": INGRESS_BACKEND,
        "tls": ListOf(
            Obj(
                {"hosts": ListOf(Str(allow_empty=False)), "secretName": Str()},
                what="an Ingress tls entry",
            )
        ),
        "rules": ListOf(
            Obj(
                {
                    "host": Str(allow_empty=False),
                    "http": Obj(
                        {
                            "paths": ListOf(
                                Obj(
                                    {
                                        "path": Str(),
                                        "pathType": Enum(PATH_TYPES),
                                        "backend": INGRESS_BACKEND,
                                    },
                                    required=("pathType", "backend"),
                                    what="an Ingress path",
                                    extra=_path_extra,
                                ),
                                min_items=1,
                            )
                        },
                        required=("paths",),
                        what="an Ingress rule's http",
                    ),
                },
                what="an Ingress rule",
            )
        ),
    },
    what="an Ingress spec",
)

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def _backend(raw: Mapping[str, Any] | None) -> IngressBackend | None:
    if not raw:
        return None
    service = raw.get("service") or {}
    port = service.get("port") or {}
    return IngressBackend(service.get("name"), port.get("number", port.get("name")))


def build_ingress_fields(spec: Mapping[str, Any], annotations: Mapping[str, str]) -> dict[str, Any]:
    cls, where = spec.get("ingressClassName"), "spec.ingressClassName"
    if cls is None and INGRESS_CLASS_ANNOTATION in annotations:
        cls, where = (
            annotations[INGRESS_CLASS_ANNOTATION],
            (f"metadata.annotations[{INGRESS_CLASS_ANNOTATION}]"),
        )
    rules = tuple(
        IngressRule(
            host=(r.get("host") or None) and r["host"].lower(),
            paths=tuple(
                IngressPath(
                    path=p.get("path") or "/",
                    path_type=p["pathType"],
                    backend=_backend(p["backend"]),  # type: ignore[arg-type]
                    index=j,
                )
                for j, p in enumerate((r.get("http") or {}).get("paths") or [])
            ),
            index=i,
        )
        for i, r in enumerate(spec.get("rules") or [])
    )
    return {
        "ingress_class": cls,
        "class_field": where if cls is not None else None,
        "default_backend": _backend(spec.get("defaultBackend")),
        "rules": rules,
        "tls": tuple(
            IngressTLS(tuple(h.lower() for h in t.get("hosts") or ()), t.get("secretName") or None)
            for t in spec.get("tls") or []
        ),
    }


@dataclass(frozen=True)
class IngressClass(Resource):
    controller: str = ""
    is_default: bool = False


INGRESS_CLASS_SPEC = Obj(
    {"controller": Str(allow_empty=False), "parameters": Anything()},
    what="an IngressClass spec",
)
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


def build_ingress_class_fields(
    spec: Mapping[str, Any], annotations: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "controller": spec.get("controller", ""),
        "is_default": annotations.get(DEFAULT_CLASS_ANNOTATION) == "true",
    }


# --- Secret ------------------------------------------------------------------------------------

TLS_SECRET = "kubernetes.io/tls"


@dataclass(frozen=True)
class Secret(Resource):
    type: str = "Opaque"
    data: Mapping[str, bytes] = field(default_factory=dict, hash=False, repr=False)


class _Base64(Str):
    def check(self, value: Any, path: str, line: int | None) -> Any:
        text = super().check(value, path, line)
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise SchemaError(
                "secret data must be base64 (use stringData for plain text)", path, line
            ) from None


SECRET_DOC = {
    "type": Str(allow_empty=False),
    "data": MapOf(_Base64()),
    "stringData": MapOf(Str()),
    "immutable": Bool(),
}


def build_secret_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, bytes] = dict(doc.get("data") or {})
    for key, value in (doc.get("stringData") or {}).items():
        data[key] = value.encode("utf-8")  # stringData wins, as the API server merges it
    secret_type = doc.get("type") or "Opaque"
    if secret_type == TLS_SECRET:
        for key in ("tls.crt", "tls.key"):
            if key not in data:
                # core/validation ValidateSecret: kubernetes.io/tls requires both keys.
                raise SchemaError(
                    f"a {TLS_SECRET} Secret needs data[{key}] (the PEM "
                    f"{'certificate chain' if key == 'tls.crt' else 'private key'})",
                    f"data[{key}]",
                    None,
                )
    return {"type": secret_type, "data": data}


__all__ = [
    "GATEWAY_SPEC",
    "INGRESS_CLASS_SPEC",
    "INGRESS_SPEC",
    "SECRET_DOC",
    "TLS_SECRET",
    "VIRTUAL_SERVICE_SPEC",
    "Gateway",
    "GatewayServer",
    "GatewayTLS",
    "HTTPRouteRule",
    "Ingress",
    "IngressBackend",
    "IngressClass",
    "IngressPath",
    "IngressRule",
    "IngressTLS",
    "RouteDestination",
    "Secret",
    "URIMatch",
    "VirtualService",
    "build_gateway_fields",
    "build_ingress_class_fields",
    "build_ingress_fields",
    "build_secret_fields",
    "build_virtual_service_fields",
]
