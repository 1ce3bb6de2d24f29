"""Linkerd inbound policy, decided by the server's linkerd-proxy (reference §6).

Decision order (linkerd docs, restricting-access and authorization-policy reference): if a
``Server`` selects the pod's port, requests must be authorized by an AuthorizationPolicy (or a
legacy ServerAuthorization) that targets it, one of its HTTPRoutes, or the namespace; otherwise
the Server's ``accessPolicy`` (default ``deny``) applies. Without a Server, the pod's default
inbound policy (fixed when the proxy started) applies. Once HTTPRoutes are attached to a
Server, a request that matches none of them gets 404.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from meshtutor.model.base import ResourceRef
from meshtutor.model.k8s import IPBlock
from meshtutor.model.linkerd import (
    HTTPRoute,
    LinkerdAuthorizationPolicy,
    MeshTLSAuthentication,
    NetworkAuthentication,
    RouteMatch,
    Server,
    ServerAuthorization,
    TargetRef,
)
from meshtutor.policy.cluster import Cluster, PodState
from meshtutor.policy.outcome import Step


def linkerd_identity(
    namespace: str, service_account: str, trust_domain: str = "cluster.local"
) -> str:
    return f"{service_account}.{namespace}.serviceaccount.identity.linkerd.{trust_domain}"


@dataclass(frozen=True)
class LinkerdRequest:
    client_identity: str | None  # None when the connection is not meshed mTLS
    client_ip: str
    port: int
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] | None = None
    # False for a connection the proxy cannot read as HTTP (TLS from curl, passed through as
    # opaque TCP): it is authorized once, at the connection, where no HTTPRoute can match.
    http: bool = True


@dataclass(frozen=True)
class LinkerdDecision:
    allowed: bool
    status: int  # 403 or 404 when denied
    steps: tuple[Step, ...]
    decided_by: ResourceRef | None
    audit: bool = False


def _server_port_matches(server: Server, pod: PodState, port: int) -> bool:
    if isinstance(server.port, int):
        return server.port == port
    return any(
        cp.name == server.port and cp.container_port == port
        for c in pod.spec.containers
        for cp in c.ports
    )


def _in_networks(ip: str, networks: tuple[IPBlock, ...]) -> bool:
    addr = ipaddress.ip_address(ip)
    for net in networks:
        if addr in ipaddress.ip_network(net.cidr, strict=False) and not any(
            addr in ipaddress.ip_network(e, strict=False) for e in net.except_
        ):
            return True
    return False


def _identity_match(pattern: str, identity: str | None) -> bool:
    if identity is None:
        return False
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return identity.endswith(pattern[1:])
    return pattern == identity


def _route_matches(match: RouteMatch, req: LinkerdRequest) -> bool:
    if match.method and match.method != req.method:
        return False
    value = match.path_value or "/"
    if match.path_type == "Exact" and req.path != value:
        return False
    if match.path_type == "PathPrefix":
        prefix = value.rstrip("/")
        if prefix and not (req.path == prefix or req.path.startswith(prefix + "/")):
            return False
    if match.path_type == "RegularExpression" and not re.fullmatch(value, req.path):
        return False
    headers = {k.lower(): v for k, v in (req.headers or {}).items()}
    for kind, name, expected in match.headers:
        actual = headers.get(name.lower())
        if actual is None:
            return False
        if kind == "Exact" and actual != expected:
            return False
        if kind == "RegularExpression" and not re.fullmatch(expected, actual):
            return False
    return True


def _default_policy_allows(policy: str, req: LinkerdRequest) -> tuple[bool, str]:
    meshed = req.client_identity is not None
    if policy in ("all-unauthenticated", "cluster-unauthenticated"):
        return (
            True,
            "allows every client"
            if policy == "all-unauthenticated"
            else "allows every client from the cluster's networks",
        )
    if policy in ("all-authenticated", "cluster-authenticated"):
        return meshed, (
            "allows only meshed clients (mutual TLS with a Linkerd identity); "
            + ("this client is meshed" if meshed else "this client is not meshed")
        )
    if policy == "audit":
        return True, "allows every request but flags the ones a deny would have refused"
    return False, "denies every request"


class _Authorizer:
    def __init__(self, cluster: Cluster, pod: PodState, req: LinkerdRequest) -> None:
        self.cluster = cluster
        self.pod = pod
        self.req = req

    def authentication_ok(self, ref: TargetRef, namespace: str) -> tuple[bool, str]:
        ns = ref.namespace or namespace
        if ref.kind == "ServiceAccount":
            expected = linkerd_identity(ns, ref.name)
            return self.req.client_identity == expected, f"ServiceAccount {ns}/{ref.name}"
        if ref.kind == "MeshTLSAuthentication":
            authn = next(
                (
                    a
                    for a in self.cluster.objects(MeshTLSAuthentication)
                    if a.namespace == ns and a.name == ref.name
                ),
                None,
            )
            if authn is None:
                return False, f"MeshTLSAuthentication {ns}/{ref.name} (which does not exist)"
            ok = any(_identity_match(p, self.req.client_identity) for p in authn.identities)
            for iref in authn.identity_refs:
                if iref.kind == "ServiceAccount":
                    ok = ok or self.req.client_identity == linkerd_identity(
                        iref.namespace or ns, iref.name
                    )
                elif iref.kind == "Namespace":
                    ok = ok or _identity_match(
                        f"*.{iref.name}.serviceaccount.identity.linkerd.cluster.local",
                        self.req.client_identity,
                    )
            return ok, f"MeshTLSAuthentication {ns}/{ref.name}"
        authn_net = next(
            (
                a
                for a in self.cluster.objects(NetworkAuthentication)
                if a.namespace == ns and a.name == ref.name
            ),
            None,
        )
        if authn_net is None:
            return False, f"NetworkAuthentication {ns}/{ref.name} (which does not exist)"
        return _in_networks(
            self.req.client_ip, authn_net.networks
        ), f"NetworkAuthentication {ns}/{ref.name}"

    def policy_ok(self, policy: LinkerdAuthorizationPolicy) -> tuple[bool, str]:
        failing = []
        for ref in policy.required_authentications:
            ok, name = self.authentication_ok(ref, policy.namespace or "default")
            if not ok:
                failing.append(name)
        if failing:
            return False, f"the client does not satisfy {', '.join(failing)}"
        return True, "the client satisfies " + ", ".join(
            f"{r.kind} {r.namespace or policy.namespace}/{r.name}"
            for r in policy.required_authentications
        )

    def server_authorization_ok(self, saz: ServerAuthorization) -> bool:
        ident = self.req.client_identity
        if saz.networks and not _in_networks(self.req.client_ip, saz.networks):
            return False
        if saz.unauthenticated:
            return True
        if ident is None:
            return False
        if any(_identity_match(p, ident) for p in saz.identities):
            return True
        if any(
            ident == linkerd_identity(ns or saz.namespace or "default", name)
            for name, ns in saz.service_accounts
        ):
            return True
        return not saz.identities and not saz.service_accounts


def _servers_for(cluster: Cluster, pod: PodState, port: int) -> list[Server]:
    """The Servers that select ``pod``'s ``port``, oldest first."""
    return [
        s
        for s in cluster.objects(Server)
        if s.namespace == pod.namespace
        and s.pod_selector.matches(pod.labels)
        and _server_port_matches(s, pod, port)
    ]


def server_for(cluster: Cluster, pod: PodState, port: int) -> Server | None:
    """The Server whose policy governs ``pod``'s ``port`` (the oldest that selects it)."""
    servers = _servers_for(cluster, pod, port)
    return servers[0] if servers else None


def evaluate(cluster: Cluster, pod: PodState, req: LinkerdRequest) -> LinkerdDecision:
    """Decide one HTTP request arriving at ``pod``'s linkerd-proxy on container port ``req.port``."""
    servers = _servers_for(cluster, pod, req.port)
    if not servers:
        default = pod.default_inbound_policy or cluster.linkerd_default_inbound_policy
        ok, why = _default_policy_allows(default, req)
        step = Step(
            f"no Server selects {pod.display} port {req.port}, so its default inbound policy "
            f"{default} applies (set by {pod.default_inbound_policy_source}, read when the proxy "
            f"started): it {why}",
            pod.owner
            if "pod template" in (pod.default_inbound_policy_source or "")
            else (
                ResourceRef("Namespace", None, pod.namespace)
                if "Namespace" in (pod.default_inbound_policy_source or "")
                else None
            ),
            "config.linkerd.io/default-inbound-policy",
        )
        return LinkerdDecision(ok, 403, (step,), step.resource, audit=default == "audit")

    server = servers[0]
    steps: list[Step] = []
    for other in servers[1:]:
        steps.append(
            Step(
                f"Server {other.namespace}/{other.name} also selects this port; the older Server "
                f"{server.namespace}/{server.name} is used",
                other.ref,
                "spec.podSelector",
            )
        )
    authz = _Authorizer(cluster, pod, req)
    routes = [
        r
        for r in cluster.objects(HTTPRoute)
        if r.namespace == pod.namespace
        and any(p.kind == "Server" and p.name == server.name for p in r.parents)
    ]
    matched_route: HTTPRoute | None = None
    if routes and not req.http:
        steps.append(
            Step(
                "the connection is not HTTP to the proxy (curl's own TLS), so it is authorized "
                "once, as TCP: HTTPRoutes do not apply, only authorizations of the Server",
                routes[0].ref,
                "spec.rules",
            )
        )
    elif routes:
        matched_route = next(
            (
                r
                for r in routes
                if any(any(_route_matches(m, req) for m in rule) for rule in r.rules)
            ),
            None,
        )
        if matched_route is None:
            names = ", ".join(f"HTTPRoute {r.namespace}/{r.name}" for r in routes)
            steps.append(
                Step(
                    f"Server {server.namespace}/{server.name} has routes ({names}) and "
                    f"{req.method} {req.path} matches none of them, so the proxy answers 404",
                    routes[0].ref,
                    "spec.rules",
                )
            )
            return LinkerdDecision(False, 404, tuple(steps), routes[0].ref)
        steps.append(
            Step(
                f"{req.method} {req.path} matches HTTPRoute {matched_route.namespace}/{matched_route.name}",
                matched_route.ref,
                "spec.rules",
            )
        )

    def targets(policy: LinkerdAuthorizationPolicy) -> bool:
        t = policy.target
        if t.kind == "Server":
            return t.name == server.name
        if t.kind in ("HTTPRoute", "GRPCRoute"):
            return matched_route is not None and t.name == matched_route.name
        return t.kind == "Namespace" and t.name == pod.namespace

    policies = [
        p
        for p in cluster.objects(LinkerdAuthorizationPolicy)
        if p.namespace == pod.namespace and targets(p)
    ]
    sazs = [
        s
        for s in cluster.objects(ServerAuthorization)
        if s.namespace == pod.namespace
        and (
            s.server_name == server.name
            or (s.server_selector is not None and s.server_selector.matches(server.metadata.labels))
        )
    ]
    failures = []
    for policy in policies:
        ok, why = authz.policy_ok(policy)
        if ok:
            steps.append(
                Step(
                    f"AuthorizationPolicy {policy.namespace}/{policy.name} targets "
                    f"{policy.target.kind} {policy.target.namespace or policy.namespace}/{policy.target.name} and {why}, so the request is allowed",
                    policy.ref,
                    "spec.requiredAuthenticationRefs",
                )
            )
            return LinkerdDecision(True, 200, tuple(steps), policy.ref)
        failures.append(
            Step(
                f"AuthorizationPolicy {policy.namespace}/{policy.name}: {why}",
                policy.ref,
                "spec.requiredAuthenticationRefs",
            )
        )
    for saz in sazs:
        if authz.server_authorization_ok(saz):
            steps.append(
                Step(
                    f"ServerAuthorization {saz.namespace}/{saz.name} authorizes this client on "
                    f"Server {server.name}",
                    saz.ref,
                    "spec.client",
                )
            )
            return LinkerdDecision(True, 200, tuple(steps), saz.ref)
        failures.append(
            Step(
                f"ServerAuthorization {saz.namespace}/{saz.name} does not authorize this client "
                f"({'not meshed' if req.client_identity is None else req.client_identity})",
                saz.ref,
                "spec.client",
            )
        )
    steps.extend(failures)
    ok, why = _default_policy_allows(server.access_policy, req)
    if ok:
        steps.append(
            Step(
                f"no authorization matches, and Server {server.namespace}/{server.name} has "
                f"accessPolicy {server.access_policy}, which {why}",
                server.ref,
                "spec.accessPolicy",
            )
        )
        return LinkerdDecision(
            True, 200, tuple(steps), server.ref, audit=server.access_policy == "audit"
        )
    if not policies and not sazs:
        steps.append(
            Step(
                f"Server {server.namespace}/{server.name} selects {pod.display} port {req.port} and no "
                f"authorization targets it; its accessPolicy {server.access_policy} denies the "
                "request (403)",
                server.ref,
                "spec.accessPolicy",
            )
        )
        return LinkerdDecision(False, 403, tuple(steps), server.ref)
    decider = failures[0].resource if failures else server.ref
    steps.append(
        Step(
            f"no authorization for Server {server.namespace}/{server.name} matches this client, and "
            f"its accessPolicy {server.access_policy} denies the request (403)",
            server.ref,
            "spec.accessPolicy",
        )
    )
    return LinkerdDecision(False, 403, tuple(steps), decider)
