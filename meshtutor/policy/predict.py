"""Predict one probe: what ``curl`` prints, whether the hop was mutual TLS, and why.

The request is followed hop by hop, the way packets and proxies would handle it: the source
container (captured by its sidecar or not), cluster DNS and the Service, NetworkPolicy, what the
client sidecar sends (Istio auto mTLS / DestinationRule, Linkerd automatic mTLS), what the
server sidecar accepts (PeerAuthentication), authorization (Istio AuthorizationPolicy or Linkerd
Server policy), and finally the application. Each hop adds a ``Step`` naming the resource and
field that decided it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from meshtutor.errors import ProbeSpecError
from meshtutor.model.base import ResourceRef
from meshtutor.model.k8s import Service, ServicePort
from meshtutor.policy import authz as istio_authz
from meshtutor.policy import edge, netpol
from meshtutor.policy import linkerd as linkerd_policy
from meshtutor.policy.apps import listener_for, response_status
from meshtutor.policy.cluster import Cluster, PodState
from meshtutor.policy.mtls import (
    CLUSTER_DOMAIN,
    client_tls_decision,
    effective_peer_authentication,
)
from meshtutor.policy.outcome import Outcome, Step
from meshtutor.policy.probe import ParsedURL, Probe

ENVOY_503 = "upstream connect error or disconnect/reset before headers. reset reason: "
ENVOY_CONNECT_TIMEOUT = 10.0
LINKERD_INBOUND_PORT = 4143
# linkerd2-proxy defaults: outbound connect timeout 1 s; a meshed endpoint that cannot be
# reached puts the balancer in fail-fast after 3 s. Either way the proxy answers 504.
LINKERD_CONNECT_TIMEOUT = 1.0
LINKERD_FAILFAST_TIMEOUT = 3.0
RBAC_DENIED = "RBAC: access denied"

CURL_ERRORS = {
    6: "Could not resolve host: {host}",
    7: "Failed to connect to {host} port {port}: Connection refused",
    28: "Connection timed out after {ms} milliseconds",
    35: "TLS connect error: wrong version number",
    52: "Empty reply from server",
    56: "Recv failure: Connection reset by peer",
    60: "SSL certificate problem: unable to get local issuer certificate",
}
#: curl exit codes of its own TLS handshake failing: no request was sent.
CURL_TLS_FAILURES = (35, 60)
EXIT_MEANING = {
    0: "",
    6: "could not resolve host",
    7: "connection refused",
    28: "timeout",
    35: "TLS handshake failed",
    52: "empty reply",
    56: "connection reset",
    60: "server certificate not trusted",
}


def spiffe_id(cluster: Cluster, pod: PodState) -> str:
    return (
        f"spiffe://{cluster.mesh_config.trust_domain}/ns/{pod.namespace}/sa/{pod.service_account}"
    )


def identity_of(cluster: Cluster, pod: PodState) -> str | None:
    if pod.sidecar == "istio" or edge.role_of(pod) == "istio-gateway":
        return spiffe_id(cluster, pod)
    if pod.sidecar == "linkerd":
        return linkerd_policy.linkerd_identity(pod.namespace, pod.service_account)
    return None


CertificateCheck = Callable[[PodState], "str | None"]
#: Whether curl trusts an edge server certificate: (probe, PEM chain or None for a self-signed
#: built-in one, the host name curl checks) -> None when trusted, else curl's complaint.
EdgeTrust = Callable[[Probe, "bytes | None", str], "str | None"]


def default_edge_trust(probe: Probe, chain: bytes | None, host: str) -> str | None:
    """Without the certificates at hand: -k trusts anything; --cacert is taken to hold the
    right CA; the system store trusts neither the stand-in public CA nor a self-signed one."""
    if probe.insecure:
        return None
    if chain is None:
        return "SSL certificate problem: self-signed certificate"
    if probe.cacert:
        return None
    return "SSL certificate problem: unable to get local issuer certificate"


def same_pod(a: PodState, b: PodState) -> bool:
    return (a.namespace, a.name) == (b.namespace, b.name)


def linkerd_loopback(source: PodState, captured: bool, target: PodState) -> bool:
    """A meshed pod's request to an endpoint that is the pod itself. linkerd2-proxy marks an
    endpoint among its own inbound addresses ``is_local``: no TLS (``NoClientTls::Loopback``)
    and no transport-header port override (linkerd/app/outbound/src/http/concrete.rs), so it
    connects straight to the application's port. proxy-init lets the proxy's own connections
    out unredirected (ignore-proxy-uid, reference/iptables.md) and a connection made inside
    the pod never passes PREROUTING, so the inbound proxy and its policy are not on the path."""
    return captured and source.sidecar == "linkerd" and same_pod(source, target)


@dataclass
class _Trace:
    probe: Probe
    url: ParsedURL
    steps: list[Step] = field(default_factory=list)
    decided_by: ResourceRef | None = None
    client_identity: str | None = None
    server_identity: str | None = None
    mtls: bool = False
    destination: str | None = None
    certificates: CertificateCheck | None = None
    edge_trust: EdgeTrust | None = None
    edge_tls: bool | None = None
    via: str | None = None

    def certificate_failure(self, client: PodState, server: PodState) -> str | None:
        """Why a mutual TLS handshake between these sidecars would fail, if it would."""
        if self.certificates is None:
            return None
        for pod, role in ((server, "server"), (client, "client")):
            problem = self.certificates(pod)
            if problem:
                return f"the {role} {pod.display}'s certificate cannot be trusted: {problem}"
        return None

    def add(self, text: str, resource: ResourceRef | None = None, fld: str | None = None) -> None:
        self.steps.append(Step(text, resource, fld))

    def extend(self, steps: tuple[Step, ...] | list[Step]) -> None:
        self.steps.extend(steps)

    def result(
        self,
        code: str,
        exit_code: int,
        body: str = "",
        decided_by: ResourceRef | None = None,
        detail: str | None = None,
    ) -> Outcome:
        stderr = ""
        if exit_code:
            stderr = f"curl: ({exit_code}) " + (detail or CURL_ERRORS[exit_code]).format(
                host=self.url.host, port=self.url.port, ms=int(self.probe.effective_timeout * 1000)
            )
            self.add(
                f"curl prints {code} and exits with code {exit_code} ({EXIT_MEANING[exit_code]})"
            )
        else:
            self.add(f"curl prints {code}")
        # Whether curl's request crossed a mutual TLS hop: once the sidecars' handshake is done
        # it did, whoever answers afterwards (the server sidecar's own 503 or 403 travels back
        # over that connection); when curl's own TLS handshake fails (35, 60) its request was
        # never sent at all.
        mtls = self.mtls and exit_code not in CURL_TLS_FAILURES
        return Outcome(
            http_code=code,
            exit_code=exit_code,
            mtls=mtls,
            client_identity=self.client_identity if mtls else None,
            server_identity=self.server_identity if mtls else None,
            explanation=tuple(self.steps),
            body=body,
            stderr=stderr,
            decided_by=decided_by if decided_by is not None else self.decided_by,
            destination_pod=self.destination,
            edge_tls=self.edge_tls,
            via=self.via,
        )


def resolve_source(cluster: Cluster, probe: Probe) -> tuple[PodState, str]:
    if cluster.namespace(probe.source_namespace) is None:
        raise ProbeSpecError(
            f"probe {probe.describe()}: namespace {probe.source_namespace!r} does not exist"
        )
    pod = cluster.pod_for(probe.source_namespace, probe.source_deployment)
    if pod is None:
        dep = cluster.deployment(probe.source_namespace, probe.source_deployment)
        if dep is not None:
            raise ProbeSpecError(
                f"probe {probe.describe()}: deployment {probe.source} has no running "
                "pod (replicas: 0)"
            )
        names = ", ".join(p.deployment for p in cluster.pods(probe.source_namespace))
        raise ProbeSpecError(
            f"probe {probe.describe()}: no workload {probe.source}"
            + (
                f"; workloads in {probe.source_namespace}: {names}"
                if names
                else f"; namespace {probe.source_namespace} has no workloads"
            )
        )
    container = probe.container or pod.default_container
    if container not in pod.container_names:
        raise ProbeSpecError(
            f"probe {probe.describe()}: pod {probe.source} has no container {container!r}; "
            f"containers: {', '.join(pod.container_names)}"
        )
    if container == "linkerd-proxy":
        raise ProbeSpecError(
            f"probe {probe.describe()}: the linkerd-proxy container has no shell and no curl; "
            "probe from the application container instead"
        )
    return pod, container


def resolve_service(cluster: Cluster, host: str, source_ns: str) -> tuple[Service | None, str]:
    """Cluster DNS: ``name``, ``name.ns``, ``name.ns.svc`` and ``name.ns.svc.cluster.local``."""
    labels = host.rstrip(".").split(".")
    suffix = ["svc", *CLUSTER_DOMAIN.split(".")]
    if len(labels) == 1:
        name, ns = labels[0], source_ns
    elif len(labels) == 2 or (len(labels) > 2 and labels[2:] == suffix[: len(labels) - 2]):
        name, ns = labels[0], labels[1]
    else:
        return None, host
    return cluster.service(ns, name), f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"


def is_http_port(port: ServicePort) -> bool:
    """Istio picks the protocol from the port name (``http-*``, ``tcp-*``) or appProtocol, and
    sniffs when neither says; meshtutor's probes are HTTP, so only an explicit declaration of
    a protocol Istio proxies as TCP makes the port TCP (istio/istio
    pkg/config/protocol/instance.go ``IsTCP``: TCP, HTTPS, TLS, Mongo, Redis, MySQL; an
    ``https`` port is passed through as TLS, never parsed as HTTP). Istio only: Linkerd
    detects HTTP on the wire whatever the port is called."""
    declared = (port.app_protocol or (port.name or "").split("-", 1)[0]).lower()
    return declared not in ("tcp", "tls", "https", "mongo", "mysql", "redis")


def predict(
    cluster: Cluster,
    probe: Probe,
    *,
    certificates: CertificateCheck | None = None,
    edge_trust: EdgeTrust | None = None,
) -> Outcome:
    """Predict ``probe`` against ``cluster`` without running any traffic.

    ``certificates`` says, per pod, what is wrong with its sidecar's certificate right now
    (expired, CA expired...) or None; the engine itself has no clock, so a backend that knows
    certificates (the sandbox) passes it in. ``edge_trust`` says whether curl trusts a server
    certificate at the edge (default: ``default_edge_trust``).
    """
    if probe.outside:
        from meshtutor.policy.ingress import predict_outside

        return predict_outside(cluster, probe, certificates, edge_trust or default_edge_trust)
    source, container = resolve_source(cluster, probe)
    url = probe.parsed_url
    # edge_trust: a pod's https:// to an ingress meets the same edge certificate check.
    trace = _Trace(
        probe, url, certificates=certificates, edge_trust=edge_trust or default_edge_trust
    )
    mesh = cluster.mesh

    # 1. The source container.
    proxy_name = "istio-proxy" if mesh == "istio" else "linkerd-proxy"
    captured = source.sidecar is not None and container != proxy_name
    if source.sidecar is None:
        trace.add(
            f"{source.display} has no sidecar: {source.injection.reason}; curl in "
            f"container {container} sends plain HTTP itself",
            source.injection.decided_by,
            source.injection.field,
        )
    elif not captured:
        trace.add(
            f"the client container istio-proxy runs as uid 1337, which Istio's iptables rules "
            f"never redirect, so curl in it bypasses {source.display}'s own sidecar and leaves "
            "as plaintext with no client certificate",
            source.owner,
            "container istio-proxy",
        )
    else:
        trace.add(
            f"{source.display} has {'an Istio sidecar' if mesh == 'istio' else 'a Linkerd proxy'}"
            f" ({source.injection.reason}); curl in container {container} is captured, so "
            "its request goes through the sidecar",
            source.injection.decided_by,
            source.injection.field,
        )
        trace.client_identity = identity_of(cluster, source)

    return _from_pod(cluster, trace, probe, source, captured)


def _from_pod(
    cluster: Cluster, trace: _Trace, probe: Probe, source: PodState, captured: bool
) -> Outcome:
    """Follow the request from the source pod (its sidecar, if ``captured``) onwards."""
    url = trace.url
    mesh = cluster.mesh
    # 2. DNS and the Service.
    dns = netpol.dns_allowed(cluster, source)
    if not dns.allowed:
        trace.extend(dns.steps)
        return trace.result("000", 28, decided_by=dns.decided_by)
    direct = cluster.pod_by_ip(url.host)
    service: Service | None
    svc_port: ServicePort | None
    if direct is not None:
        # A pod address, as an ingress controller that picks endpoints itself uses.
        service, svc_port, target, port, http = None, None, direct, url.port, True
        trace.destination = target.display
        trace.add(
            f"{url.host} is the pod address of {target.display}; the connection goes "
            f"straight to its port {port}, no Service in between"
        )
    else:
        found = _service_hop(cluster, trace, source, captured, url)
        if isinstance(found, Outcome):
            return found
        service, svc_port, target, port, http = found

    # 3. NetworkPolicy, enforced on pod IPs below the mesh.
    wire_port = port
    if (
        mesh == "linkerd"
        and captured
        and target.sidecar == "linkerd"
        and url.scheme == "http"
        and not same_pod(source, target)
    ):
        wire_port = LINKERD_INBOUND_PORT
        trace.add(
            f"between meshed pods Linkerd connects to the server proxy's inbound port "
            f"{LINKERD_INBOUND_PORT} (the target port {port} travels in a transport "
            f"header), so NetworkPolicy sees port {LINKERD_INBOUND_PORT}"
        )
    for check in (
        netpol.egress_allowed(cluster, source, target, wire_port),
        netpol.ingress_allowed(cluster, source, target, wire_port),
    ):
        if not check.allowed:
            trace.extend(check.steps)
            return _dropped(trace, mesh, captured, target, check.decided_by)
        trace.extend(check.steps)

    role = edge.role_of(target)
    if role is not None:
        from meshtutor.policy.ingress import through_edge_proxy

        return through_edge_proxy(
            cluster, trace, probe, source, target, port, role, captured=captured, http=http
        )

    # 4. https:// to an application that speaks plain HTTP.
    if url.scheme == "https":
        return _https(cluster, trace, source, captured, target, port)

    if mesh == "istio":
        return _istio(
            cluster, trace, probe, source, captured, service, svc_port, target, port, http
        )
    return _linkerd(cluster, trace, probe, source, captured, target, port)


def _service_hop(
    cluster: Cluster, trace: _Trace, source: PodState, captured: bool, url: ParsedURL
) -> Outcome | tuple[Service, ServicePort, PodState, int, bool]:
    """Cluster DNS and the Service: which pod and container port the request goes to."""
    mesh = cluster.mesh
    service, fqdn = resolve_service(cluster, url.host, source.namespace)
    if service is None:
        trace.add(
            f"cluster DNS has no name {url.host} (no such Service"
            f"{' in namespace ' + source.namespace if '.' not in url.host else ''})"
        )
        return trace.result("000", 6)
    svc_port = service.port(url.port)
    if svc_port is None:
        ports = ", ".join(str(p.port) for p in service.ports) or "none"
        trace.add(
            f"Service {service.namespace}/{service.name} has no port {url.port} (its ports: "
            f"{ports}); nothing answers on that port of the service address",
            service.ref,
            "spec.ports",
        )
        return trace.result("000", 28, decided_by=service.ref)
    endpoints = service_endpoints(cluster, service, svc_port)
    if not endpoints:
        trace.add(
            f"Service {service.namespace}/{service.name} has no ready endpoints "
            f"(no running pod matches its selector and port {svc_port.target_port})",
            service.ref,
            "spec.selector",
        )
        if captured and mesh == "istio":
            trace.add(
                "the client sidecar has no healthy upstream for the service, so Envoy "
                "answers 503 itself"
            )
            return trace.result("503", 0, "no healthy upstream", service.ref)
        if captured:
            trace.add("the Linkerd proxy has no endpoint to send the request to, so it answers 503")
            return trace.result("503", 0, "", service.ref)
        trace.add("kube-proxy rejects connections to a service with no endpoints")
        return trace.result("000", 7, decided_by=service.ref)
    target, port = endpoints[0]
    trace.destination = target.display
    others = (
        f" (one of {len(endpoints)} endpoints; meshtutor follows the oldest pod)"
        if len(endpoints) > 1
        else ""
    )
    trace.add(
        f"{fqdn}:{url.port} is Service {service.namespace}/{service.name} port "
        f"{svc_port.port}, which forwards to {target.display} on container port {port}{others}",
        service.ref,
        "spec.ports",
    )
    http = is_http_port(svc_port) if mesh == "istio" else True
    if not http:
        trace.add(
            f"port {svc_port.port} is declared as "
            f"{svc_port.app_protocol or svc_port.name}, so the mesh treats it as TCP, not HTTP",
            service.ref,
            "spec.ports.name",
        )

    return service, svc_port, target, port, http


def _dropped(
    trace: _Trace, mesh: str, captured: bool, target: PodState, by: ResourceRef | None
) -> Outcome:
    """A dropped connection hangs; whoever gives up first decides what curl prints."""
    timeout = trace.probe.effective_timeout
    if captured and mesh == "istio" and timeout > ENVOY_CONNECT_TIMEOUT:
        trace.add(
            f"the client sidecar gives up after Envoy's {ENVOY_CONNECT_TIMEOUT:.0f} s connect "
            "timeout and answers 503"
        )
        return trace.result("503", 0, ENVOY_503 + "connection timeout", by)
    if captured and mesh == "linkerd":
        limit = LINKERD_FAILFAST_TIMEOUT if target.sidecar == "linkerd" else LINKERD_CONNECT_TIMEOUT
        if timeout > limit:
            trace.add(f"the client's Linkerd proxy gives up after {limit:.0f} s and answers 504")
            return trace.result("504", 0, "", by)
    trace.add(f"curl gives up after its {timeout:g} s timeout (--max-time)")
    return trace.result("000", 28, decided_by=by)


def service_endpoints(
    cluster: Cluster, service: Service, svc_port: ServicePort
) -> list[tuple[PodState, int]]:
    if not service.selector:
        return []
    found = []
    for pod in cluster.pods(service.namespace):
        if not all(pod.labels.get(k) == v for k, v in service.selector.items()):
            continue
        target = svc_port.target_port
        if isinstance(target, str):
            named = [
                cp.container_port
                for c in pod.spec.containers
                for cp in c.ports
                if cp.name == target
            ]
            if not named:
                continue
            target = named[0]
        found.append((pod, target))
    return found


def _https(
    cluster: Cluster, trace: _Trace, source: PodState, captured: bool, target: PodState, port: int
) -> Outcome:
    if target.sidecar == "istio" and not captured:
        pa = effective_peer_authentication(cluster, target, port)
        trace.extend(pa.steps)
        if pa.mode == "STRICT":
            trace.add(
                f"{target.display}'s sidecar terminates TLS on port {port} (STRICT) and presents "
                "its mesh certificate, which is signed by the mesh's own CA; curl does not trust "
                "that CA and aborts the handshake (with -k it would get further and then fail "
                "for lack of a client certificate)",
                pa.decided_by,
                "spec.mtls.mode",
            )
            return trace.result("000", 60, decided_by=pa.decided_by)
    trace.add(
        f"curl starts a TLS handshake, but the application in {target.display} speaks plain "
        "HTTP on that port and never answers with a ServerHello"
    )
    return trace.result("000", 35)


def _istio(
    cluster: Cluster,
    trace: _Trace,
    probe: Probe,
    source: PodState,
    captured: bool,
    service: Service | None,
    svc_port: ServicePort | None,
    target: PodState,
    port: int,
    http: bool,
) -> Outcome:
    url = trace.url
    pa = effective_peer_authentication(cluster, target, port) if target.sidecar == "istio" else None
    sends = "plaintext"
    if captured and (service is None or svc_port is None):
        trace.add(
            "the client sidecar knows no service for a bare pod address, so Envoy's "
            "PassthroughCluster forwards the connection as it is: plaintext, no mutual TLS"
        )
    elif captured and service is not None and svc_port is not None:
        tls_choice = client_tls_decision(cluster, source, service, svc_port, target, port, pa)
        sends = tls_choice.sends
        trace.extend(tls_choice.steps)
    if target.sidecar != "istio":
        if sends != "plaintext":
            trace.add(
                f"{target.display} has no sidecar to terminate TLS; its application gets a "
                "TLS ClientHello it cannot read and closes the connection, so the client "
                "sidecar answers 503",
                None,
            )
            return _closed(
                trace,
                http,
                ENVOY_503 + "connection failure, transport failure "
                "reason: TLS error: WRONG_VERSION_NUMBER",
            )
        trace.add(
            f"{target.display} has no sidecar: {target.injection.reason}; no "
            "PeerAuthentication or AuthorizationPolicy is enforced on it",
            target.injection.decided_by,
            target.injection.field,
        )
        return _app(trace, probe, target, port, captured, via_server_proxy=False)

    assert pa is not None
    trace.add(
        f"{target.display} has a sidecar: {target.injection.reason}",
        target.injection.decided_by,
        target.injection.field,
    )
    if captured and same_pod(source, target):
        # istio/istio tools/istio-iptables/pkg/capture/run.go: "Redirect app calls back to
        # itself via Envoy when using the service VIP e.g. appN => Envoy (client) => Envoy
        # (server) => appN" (-o lo, uid 1337, not 127.0.0.1 -> ISTIO_IN_REDIRECT).
        trace.add(
            f"the endpoint is {source.display} itself: Istio's iptables rules send its "
            "sidecar's connection to its own pod address back into its own inbound listener "
            "(app => Envoy as client => Envoy as server => app), so the request passes the "
            "same sidecar twice, like a call to another pod"
        )
    trace.extend(pa.steps)
    if sends == "plaintext" and pa.mode == "STRICT":
        if captured:
            trace.add(
                f"{target.display}'s sidecar accepts only mutual TLS and resets the "
                "plaintext connection; the client sidecar answers 503",
                pa.decided_by,
                "spec.mtls.mode",
            )
            return _closed(trace, http, ENVOY_503 + "connection termination", pa.decided_by)
        trace.add(
            f"{target.display}'s sidecar accepts only mutual TLS, so it resets the plaintext "
            "connection",
            pa.decided_by,
            "spec.mtls.mode",
        )
        return trace.result("000", 56, decided_by=pa.decided_by)
    if sends == "mtls" and pa.mode == "DISABLE":
        trace.add(
            f"{target.display}'s sidecar does not terminate TLS on port {port} (DISABLE), so "
            "the mutual TLS reaches the plain-HTTP application, which cannot read it; the "
            "client sidecar answers 503",
            pa.decided_by,
            "spec.mtls.mode",
        )
        return _closed(
            trace,
            http,
            ENVOY_503 + "connection failure, transport failure reason: "
            "TLS error: WRONG_VERSION_NUMBER",
            pa.decided_by,
        )
    if sends in ("tls", "mutual-own"):
        reason = (
            "requires a client certificate signed by the mesh CA"
            if pa.mode == "STRICT"
            else "passes non-Istio TLS straight to the application"
        )
        trace.add(
            f"{target.display}'s sidecar {reason}, so this TLS connection fails and the client "
            "sidecar answers 503",
            pa.decided_by,
            "spec.mtls.mode",
        )
        return _closed(
            trace,
            http,
            ENVOY_503 + "connection failure, transport failure reason: TLS error",
            pa.decided_by,
        )
    if sends == "mtls":
        failure = trace.certificate_failure(source, target)
        if failure:
            trace.add(
                f"{failure}, so the mutual TLS handshake fails and the client sidecar answers 503"
            )
            return _closed(
                trace,
                http,
                ENVOY_503 + "connection failure, transport failure "
                "reason: TLS error: certificate verify failed",
            )
        trace.mtls = True
        trace.server_identity = spiffe_id(cluster, target)
        trace.add(
            f"mutual TLS: {source.display} presents {trace.client_identity} and "
            f"{target.display} presents {trace.server_identity}"
        )
    else:
        trace.client_identity = None
        trace.add(
            f"{target.display}'s sidecar accepts the plaintext request ({pa.mode})",
            pa.decided_by,
            "spec.mtls.mode" if pa.decided_by else None,
        )

    principal = (
        trace.client_identity.removeprefix("spiffe://")
        if trace.mtls and trace.client_identity
        else None
    )
    headers = {k.lower(): v for k, v in probe.headers.items()}
    req = istio_authz.RequestAttributes(
        principal=principal,
        source_ip=source.ip,
        destination_ip=target.ip,
        port=port,
        http=http,
        method=probe.method,
        path=url.path,
        host=headers.get("host", url.authority),
        headers={"user-agent": "curl", **headers},
        sni=f"outbound_.{svc_port.port}_._.{service.name}.{service.namespace}.svc.{CLUSTER_DOMAIN}"
        if trace.mtls and service is not None and svc_port is not None
        else "",
    )
    decision = istio_authz.evaluate(cluster, target, req)
    trace.extend(decision.steps)
    if not decision.allowed:
        if http:
            return trace.result("403", 0, RBAC_DENIED, decision.decided_by)
        trace.add("on a TCP port the sidecar closes the denied connection without an answer")
        return trace.result("000", 52, decided_by=decision.decided_by)
    return _app(trace, probe, target, port, captured, via_server_proxy=True)


def _closed(trace: _Trace, http: bool, body: str, by: ResourceRef | None = None) -> Outcome:
    if http:
        return trace.result("503", 0, body, by)
    trace.add(
        "on a TCP port the client sidecar just closes the connection instead of answering 503"
    )
    return trace.result("000", 52, decided_by=by)


def _linkerd(
    cluster: Cluster,
    trace: _Trace,
    probe: Probe,
    source: PodState,
    captured: bool,
    target: PodState,
    port: int,
) -> Outcome:
    url = trace.url
    if linkerd_loopback(source, captured, target):
        trace.client_identity = None
        trace.add(
            f"the endpoint is {source.display} itself: Linkerd's proxy never uses TLS to its "
            "own pod and connects straight to the application's port; its own connection is "
            "not redirected and, made inside the pod, never reaches the inbound side, so the "
            "hop is plaintext and no Linkerd policy of the pod applies"
        )
        return _app(trace, probe, target, port, captured, via_server_proxy=False, mesh="linkerd")
    if target.sidecar == "linkerd":
        trace.add(
            f"{target.display} is meshed: {target.injection.reason}",
            target.injection.decided_by,
            target.injection.field,
        )
    if target.sidecar == "linkerd" and captured:
        failed = linkerd_mtls_hop(cluster, trace, source, target)
        if failed is not None:
            return failed
        trace.add(
            f"both pods are meshed, so Linkerd encrypts the hop with mutual TLS automatically: "
            f"{source.display} is {trace.client_identity}, {target.display} is "
            f"{trace.server_identity}"
        )
    elif target.sidecar == "linkerd":
        trace.client_identity = None
        trace.add(
            f"{source.display} is not meshed, so the request reaches {target.display}'s proxy "
            "as plaintext, without a client identity"
        )
    else:
        trace.client_identity = None
        trace.add(
            f"{target.display} is not meshed ({target.injection.reason}), so the hop is "
            "plaintext and no Linkerd policy applies",
            target.injection.decided_by,
            target.injection.field,
        )
        return _app(trace, probe, target, port, captured, via_server_proxy=False, mesh="linkerd")
    decision = linkerd_policy.evaluate(
        cluster,
        target,
        linkerd_policy.LinkerdRequest(
            client_identity=trace.client_identity if trace.mtls else None,
            client_ip=source.ip,
            port=port,
            method=probe.method,
            path=url.path,
            headers=dict(probe.headers),
        ),
    )
    trace.extend(decision.steps)
    if not decision.allowed:
        return trace.result(str(decision.status), 0, "", decision.decided_by)
    return _app(trace, probe, target, port, captured, via_server_proxy=True, mesh="linkerd")


def linkerd_mtls_hop(
    cluster: Cluster, trace: _Trace, source: PodState, target: PodState
) -> Outcome | None:
    """The mutual TLS between two meshed pods' Linkerd proxies: the 502 the client's proxy
    answers when a certificate cannot be trusted, else None with the hop marked mutual TLS."""
    failure = trace.certificate_failure(source, target)
    if failure:
        trace.add(
            f"{failure}, so the mutual TLS handshake fails and the client's Linkerd proxy "
            "answers 502"
        )
        return trace.result("502", 0, "")
    trace.mtls = True
    trace.client_identity = identity_of(cluster, source)
    trace.server_identity = identity_of(cluster, target)
    return None


def _app(
    trace: _Trace,
    probe: Probe,
    target: PodState,
    port: int,
    captured: bool,
    via_server_proxy: bool,
    mesh: str = "istio",
) -> Outcome:
    app = listener_for(target.spec.containers, port)
    if app is None:
        what = "nothing listens on port"
        if (via_server_proxy or captured) and mesh == "linkerd":
            trace.add(
                f"{what} {port} in {target.display}, so the Linkerd proxy cannot connect "
                "to the application and answers 502"
            )
            return trace.result("502", 0, "")
        if via_server_proxy:
            over = " over the mutual TLS connection" if trace.mtls else ""
            relay = "; the client sidecar passes it on" if captured else ""
            trace.add(
                f"{what} {port} in {target.display}, so the sidecar of {target.display} (the "
                f"server side) cannot connect to the application and answers 503{over}{relay}"
            )
            return trace.result("503", 0, ENVOY_503 + "connection failure")
        if captured:
            trace.add(
                f"{what} {port} in {target.display}, so the client sidecar cannot connect to "
                "it and answers 503"
            )
            return trace.result("503", 0, ENVOY_503 + "connection failure")
        trace.add(f"{what} {port} in {target.display}, so the connection is refused")
        return trace.result("000", 7)
    status = response_status(app, probe.method, trace.url.path)
    trace.add(
        f"the request reaches {app.description} in container {app.container}, which answers "
        f"{status}"
    )
    return trace.result(str(status), 0)
