"""The edge of the cluster: how traffic from outside finds its way in.

A client outside the cluster (a laptop's curl, a browser) reaches a Service of type
LoadBalancer or NodePort at its external address; kube-proxy forwards the connection to a pod.
When that pod is an ingress gateway (Istio's ``istio-ingressgateway``, configured by Gateway
and VirtualService) or an ingress controller (ingress-nginx, configured by Ingress), the pod
terminates the client's connection, picks a backend by host and path, and opens a *new*
connection to it from inside the cluster. This module holds those routing decisions; the
prediction of the hops themselves is in ``predict``.

Pure: no I/O, like the rest of ``meshtutor.policy``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

from meshtutor.model.base import ResourceRef
from meshtutor.model.edge import (
    TLS_SECRET,
    Gateway,
    GatewayServer,
    HTTPRouteRule,
    Ingress,
    IngressBackend,
    IngressClass,
    IngressPath,
    RouteDestination,
    Secret,
    VirtualService,
)
from meshtutor.model.k8s import PodSpec, Service, ServicePort
from meshtutor.policy.cluster import Cluster, PodState
from meshtutor.policy.injection import InjectionDecision

#: Where the outside client comes from, as the pods see it (a documentation address,
#: RFC 5737). The sandbox maps its own loopback client address to it.
OUTSIDE_IP = "203.0.113.10"
NGINX_CONTROLLER = "k8s.io/ingress-nginx"
SERVICE_UPSTREAM = "nginx.ingress.kubernetes.io/service-upstream"
SSL_REDIRECT = "nginx.ingress.kubernetes.io/ssl-redirect"
FAKE_CERTIFICATE = "Kubernetes Ingress Controller Fake Certificate"

Role = Literal["istio-gateway", "ingress-nginx"]


def outside_client() -> PodState:
    """The client outside the cluster, as a pseudo-pod: no namespace, no labels, no sidecar."""
    return PodState(
        namespace="",
        name="outside",
        labels={},
        annotations={},
        spec=PodSpec(containers=()),
        owner=ResourceRef("Client", None, "outside"),
        injection=InjectionDecision(None, "it is not a pod of the cluster"),
        created=0,
        ip=OUTSIDE_IP,
        external=True,
    )


def role_of(pod: PodState) -> Role | None:
    """Istio's gateway runs the proxyv2 image as a ``router``; ingress-nginx its controller."""
    for container in pod.spec.containers:
        image = container.image.lower()
        if "proxyv2" in image and "router" in container.args:
            return "istio-gateway"
        if "ingress-nginx/controller" in image:
            return "ingress-nginx"
    return None


def node_port(service: Service, port: ServicePort) -> int:
    """The node port: the one the Service asks for, else one the API server allocates (here a
    stable pick in 30000-32767, as it stays the same for the Service's lifetime)."""
    if port.node_port:
        return port.node_port
    key = f"{service.namespace}/{service.name}/{port.port}".encode()
    return 30000 + zlib.crc32(key) % 2768


def external_port(service: Service, port: int) -> ServicePort | None:
    """The Service port an outside client reaches on ``port``: the service port itself on a
    LoadBalancer address, the node port on a node."""
    for svc_port in service.ports:
        if service.type == "LoadBalancer" and svc_port.port == port:
            return svc_port
        if node_port(service, svc_port) == port:
            return svc_port
    return None


def host_matches(pattern: str, host: str) -> bool:
    """Istio and Ingress host matching: exact, ``*``, or ``*.example.com`` (one or more
    labels in front)."""
    pattern, host = pattern.lower(), host.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return pattern == host


def _gateway_host(entry: str) -> str:
    return entry.split("/", 1)[1] if "/" in entry else entry


def entry_services(cluster: Cluster, pod: PodState) -> list[Service]:
    """External Services (LoadBalancer / NodePort) that send traffic to ``pod``."""
    return [
        s
        for s in cluster.services(pod.namespace)
        if s.external and s.selector and all(pod.labels.get(k) == v for k, v in s.selector.items())
    ]


# --- Istio gateway -------------------------------------------------------------------------


def gateway_pods(cluster: Cluster, gateway: Gateway) -> list[PodState]:
    """Pods a Gateway configures. Istio matches the selector against gateway pods in every
    namespace (PILOT_SCOPE_GATEWAY_TO_NAMESPACE is off by default)."""
    return [
        p
        for p in cluster.pods()
        if role_of(p) == "istio-gateway"
        and gateway.selector
        and all(p.labels.get(k) == v for k, v in gateway.selector.items())
    ]


def listener_port(cluster: Cluster, pod: PodState, number: int) -> int:
    """The port Envoy listens on in the gateway pod for a Gateway server's port ``number``:
    a Service port of that number that selects the pod maps it to its targetPort (Istio 1.x
    gateways listen on 8080/8443, unprivileged), else the number itself."""
    for service in cluster.services(pod.namespace):
        if not service.selector or not all(
            pod.labels.get(k) == v for k, v in service.selector.items()
        ):
            continue
        svc_port = service.port(number)
        if svc_port is not None and isinstance(svc_port.target_port, int):
            return svc_port.target_port
    return number


@dataclass(frozen=True)
class BoundServer:
    gateway: Gateway
    server: GatewayServer

    @property
    def field(self) -> str:
        return f"spec.servers[{self.server.index}]"


def servers_on(cluster: Cluster, pod: PodState, container_port: int) -> list[BoundServer]:
    """Gateway servers the gateway pod serves on ``container_port``, oldest Gateway first."""
    found = []
    for gateway in cluster.objects(Gateway):
        if pod not in gateway_pods(cluster, gateway):
            continue
        for server in gateway.servers:
            if listener_port(cluster, pod, server.number) == container_port:
                found.append(BoundServer(gateway, server))
    return found


#: Envoy's status listener, which every Istio proxy (sidecar or gateway) gets from its bootstrap
#: whatever Gateways exist: istio/istio tools/packaging/common/envoy_bootstrap.json, listener
#: ``0.0.0.0_{{ .envoy_status_port }}`` (15021), plain HTTP, one virtual host ``*`` with one
#: route, prefix ``/healthz/ready`` to the ``agent`` cluster (istio-agent's readiness check).
STATUS_PORT = 15021
READY_PATH = "/healthz/ready"


def status_port_answer(path: str) -> int:
    """What Envoy's status listener answers: the agent's 200 for ``/healthz/ready`` (the
    proxy is ready), else no route, which Envoy answers with 404 itself."""
    return 200 if path.startswith(READY_PATH) else 404


def gateway_listens(cluster: Cluster, pod: PodState, container_port: int) -> bool:
    """Whether the gateway's Envoy has a listener on ``container_port``: the status port
    always, another port only while some Gateway server is bound to it (istiod builds
    listeners from Gateway servers alone; without one nothing listens and connections are
    refused)."""
    return container_port == STATUS_PORT or bool(servers_on(cluster, pod, container_port))


def serves_host(bound: BoundServer, host: str) -> bool:
    """Whether a server's hosts (``host`` or ``namespace/host``) include ``host``."""
    return any(host_matches(_gateway_host(h), host) for h in bound.server.hosts)


def server_for_sni(servers: list[BoundServer], sni: str) -> BoundServer | None:
    """The TLS server whose filter chain takes a ClientHello with this SNI: hosts become
    server_names, except ``*``, which takes any SNI or none (Istio GetSNIHostsForServer)."""
    for bound in servers:
        if any(_gateway_host(h) == "*" for h in bound.server.hosts):
            return bound
        if sni and serves_host(bound, sni):
            return bound
    return None


def redirecting_server(servers: list[BoundServer], host: str) -> BoundServer | None:
    """A plain HTTP server for ``host`` with ``tls.httpsRedirect`` (Envoy answers 301)."""
    return next(
        (
            b
            for b in servers
            if b.server.tls is not None and b.server.tls.https_redirect and serves_host(b, host)
        ),
        None,
    )


@dataclass(frozen=True)
class GatewayRoute:
    """What the gateway's route table gives a request: the servers listing its host, the
    server and VirtualService used (None: 404) and the matching HTTP route (None: 404)."""

    matching: list[BoundServer]
    bound: BoundServer
    vs: VirtualService | None
    rule: HTTPRouteRule | None


def gateway_route(
    cluster: Cluster,
    servers: list[BoundServer],
    host: str,
    path: str,
    port: int,
    headers: dict[str, str],
) -> GatewayRoute:
    """The Host header picks the VirtualService (first bound one of the first server listing
    the host), then its first HTTP route that matches."""
    matching = [b for b in servers if serves_host(b, host)]
    for bound in matching:
        found = virtual_services_for(cluster, bound, host)
        if found:
            vs = found[0]
            return GatewayRoute(
                matching, bound, vs, route_for(vs, path, port, headers, bound.gateway)
            )
    return GatewayRoute(matching, (matching or servers)[0], None, None)


def destination_port(destination: RouteDestination, service: Service, listener: int) -> int:
    """The destination's port, else the Service's only port, else the gateway's own port
    (what Istio uses when a multi-port Service is named without one; route.go)."""
    if destination.port:
        return destination.port
    return service.ports[0].port if len(service.ports) == 1 else listener


def rewritten_path(rule: HTTPRouteRule, path: str) -> str:
    """``rewrite.uri`` replaces the matched prefix (or the whole path without one)."""
    if rule.rewrite_uri is None:
        return path
    prefix = next((m.uri.value for m in rule.matches if m.uri and m.uri.kind == "prefix"), "")
    return rule.rewrite_uri + path[len(prefix) :] if prefix else rule.rewrite_uri


def _vs_binds(vs: VirtualService, gateway: Gateway) -> bool:
    for ref in vs.gateways:
        ns, _, name = ref.rpartition("/")
        if name == gateway.name and (ns or vs.namespace) == gateway.namespace:
            return True
    return False


def virtual_services_for(cluster: Cluster, bound: BoundServer, host: str) -> list[VirtualService]:
    """VirtualServices attached to the Gateway (``spec.gateways``) whose hosts match ``host``
    and are allowed by the server's hosts (``namespace/host`` limits the namespace)."""
    found = []
    for vs in cluster.objects(VirtualService):
        if not _vs_binds(vs, bound.gateway):
            continue
        if not any(host_matches(h, host) for h in vs.hosts):
            continue
        allowed = False
        for entry in bound.server.hosts:
            ns, _, name = entry.rpartition("/")
            if ns not in ("", "*", ".") and ns != vs.namespace:
                continue
            if ns == "." and vs.namespace != bound.gateway.namespace:
                continue
            if host_matches(name, host):
                allowed = True
        if allowed:
            found.append(vs)
    return found


def route_for(
    vs: VirtualService, path: str, port: int, headers: dict[str, str], gateway: Gateway
) -> HTTPRouteRule | None:
    """The first HTTP route whose match list matches (an empty list matches everything)."""
    for rule in vs.http:
        if not rule.matches:
            return rule
        for match in rule.matches:
            if match.uri is not None and not match.uri.matches(path):
                continue
            if match.port is not None and match.port != port:
                continue
            if match.gateways and not any(
                g.rpartition("/")[2] == gateway.name for g in match.gateways
            ):
                continue
            if any(
                m is None or not m.matches(headers.get(k, "\0")) for k, m in match.headers.items()
            ):
                continue
            return rule
    return None


def chosen_destination(rule: HTTPRouteRule) -> RouteDestination | None:
    """With weights, traffic is split; meshtutor follows the heaviest destination (the first
    on a tie), as it follows the oldest pod of a service."""
    if not rule.destinations:
        return None
    return max(rule.destinations, key=lambda d: d.weight)


def destination_service(
    cluster: Cluster, host: str, vs_namespace: str
) -> tuple[Service | None, str]:
    """A VirtualService destination host: a short name is relative to the VirtualService's
    namespace; ``name.ns``, ``name.ns.svc`` and the full name also work."""
    from meshtutor.policy.predict import resolve_service

    return resolve_service(cluster, host, vs_namespace)


# --- ingress-nginx -----------------------------------------------------------------------------


def ingress_classes_of(cluster: Cluster) -> list[IngressClass]:
    return [c for c in cluster.objects(IngressClass) if c.controller == NGINX_CONTROLLER]


def ingresses_for_controller(cluster: Cluster) -> list[tuple[Ingress, str]]:
    """Ingresses ingress-nginx serves (with a reason): ``spec.ingressClassName`` (or the old
    annotation) naming an IngressClass of its controller, or no class when its class is the
    default one."""
    classes = ingress_classes_of(cluster)
    names = {c.name for c in classes}
    default = next((c for c in classes if c.is_default), None)
    found = []
    for ingress in cluster.objects(Ingress):
        if ingress.ingress_class is not None and ingress.ingress_class in names:
            found.append((ingress, f"its class {ingress.ingress_class!r} ({ingress.class_field})"))
        elif ingress.ingress_class is None and default is not None:
            found.append(
                (ingress, f"it has no class and IngressClass {default.name} is the default")
            )
    return found


def _path_matches(path: IngressPath, request_path: str) -> bool:
    if path.path_type == "Exact":
        return request_path == path.path
    if path.path_type == "Prefix":
        prefix = path.path.rstrip("/")
        # Element-wise: /foo matches /foo and /foo/bar, not /foobar.
        return prefix == "" or request_path == prefix or request_path.startswith(prefix + "/")
    return request_path.startswith(path.path)  # ingress-nginx: a plain prefix


@dataclass(frozen=True)
class IngressRoute:
    ingress: Ingress
    backend: IngressBackend
    field: str
    why: str


def ingress_route(cluster: Cluster, host: str, path: str) -> IngressRoute | None:
    """The backend ingress-nginx picks: rules for the exact host win over wildcard hosts and
    host-less rules; among paths, Exact before Prefix, longer before shorter (nginx's
    location ordering); then an Ingress defaultBackend."""
    served = ingresses_for_controller(cluster)
    candidates: list[tuple[int, int, int, IngressRoute]] = []
    for ingress, why in served:
        for rule in ingress.rules:
            if rule.host is None:
                host_rank = 2
            elif rule.host == host:
                host_rank = 0
            elif rule.host.startswith("*.") and host_matches(rule.host, host):
                host_rank = 1
            else:
                continue
            for p in rule.paths:
                if _path_matches(p, path):
                    candidates.append(
                        (
                            host_rank,
                            0 if p.path_type == "Exact" else 1,
                            -len(p.path),
                            IngressRoute(
                                ingress,
                                p.backend,
                                f"spec.rules[{rule.index}].http.paths[{p.index}]",
                                why,
                            ),
                        )
                    )
    if candidates:
        candidates.sort(key=lambda c: c[:3])
        return candidates[0][3]
    for ingress, why in served:
        if ingress.default_backend is not None:
            return IngressRoute(ingress, ingress.default_backend, "spec.defaultBackend", why)
    return None


def ingress_tls_for(cluster: Cluster, host: str) -> tuple[Ingress, str | None] | None:
    """The Ingress whose ``spec.tls`` covers ``host`` and the Secret it names."""
    for ingress, _ in ingresses_for_controller(cluster):
        for entry in ingress.tls:
            if any(host_matches(h, host) for h in entry.hosts):
                return ingress, entry.secret_name
    return None


def service_upstream(ingress: Ingress) -> bool:
    return ingress.metadata.annotations.get(SERVICE_UPSTREAM, "").lower() == "true"


# --- TLS secrets -------------------------------------------------------------------------------


def tls_secret(cluster: Cluster, namespace: str, name: str) -> Secret | None:
    for secret in cluster.objects(Secret):
        if secret.namespace == namespace and secret.name == name:
            return secret
    return None


def secret_problem(secret: Secret | None, namespace: str, name: str) -> str | None:
    if secret is None:
        return f"there is no Secret {namespace}/{name}"
    if secret.type != TLS_SECRET and not {"tls.crt", "tls.key"} <= set(secret.data):
        return (
            f"Secret {namespace}/{name} is of type {secret.type} and has no tls.crt/tls.key "
            "(a certificate Secret has type kubernetes.io/tls)"
        )
    return None


def ingress_backend(
    cluster: Cluster, route: IngressRoute
) -> tuple[Service | None, ServicePort | None, list[tuple[PodState, int]]]:
    """The Service, port (by number or name) and ready endpoints of an Ingress backend."""
    from meshtutor.policy.predict import service_endpoints

    backend = route.backend
    service = cluster.service(route.ingress.namespace or "default", backend.service or "")
    if service is None:
        return None, None, []
    svc_port = next(
        (
            p
            for p in service.ports
            if p.port == backend.port or (isinstance(backend.port, str) and p.name == backend.port)
        ),
        None,
    )
    if svc_port is None:
        return service, None, []
    return service, svc_port, service_endpoints(cluster, service, svc_port)


__all__ = [
    "FAKE_CERTIFICATE",
    "OUTSIDE_IP",
    "BoundServer",
    "GatewayRoute",
    "IngressRoute",
    "chosen_destination",
    "destination_port",
    "destination_service",
    "entry_services",
    "external_port",
    "gateway_pods",
    "gateway_route",
    "host_matches",
    "ingress_backend",
    "ingress_route",
    "ingress_tls_for",
    "listener_port",
    "node_port",
    "outside_client",
    "redirecting_server",
    "rewritten_path",
    "role_of",
    "route_for",
    "secret_problem",
    "server_for_sni",
    "servers_on",
    "serves_host",
    "service_upstream",
    "tls_secret",
    "virtual_services_for",
]
