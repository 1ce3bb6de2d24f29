"""Predicting traffic from outside the cluster and through an ingress.

Two new hops join the chain ``predict`` follows:

- **the edge**: curl on the learner's machine resolves a public name (or a Service's external
  address), kube-proxy forwards the connection to a pod; NetworkPolicy sees a client that is
  not a pod; TLS at the edge (if any) is *one-way*: the server presents a certificate from a
  ``kubernetes.io/tls`` Secret, curl checks it against its CA bundle and shows none itself;
- **the ingress proxy** (Istio's gateway or ingress-nginx): it ends the client's connection,
  routes by host and path (VirtualService / Ingress) and opens a new one from inside the
  cluster, which the rest of the engine follows like any pod-to-pod request.

Facts and sources: /work/notes/ingress-research.md (Istio ``pilot/pkg/model/gateway.go``
``resolvePorts``, ``core/gateway.go`` blackhole vhost, ingress-nginx ``nginx.tmpl`` and
``balancer.lua``, Linkerd ``using-ingress.md`` and the destination service's pod-IP lookups).
"""

from __future__ import annotations

from dataclasses import replace

from meshtutor.policy import edge, netpol
from meshtutor.policy import linkerd as linkerd_policy
from meshtutor.policy.cluster import Cluster, PodState
from meshtutor.policy.outcome import Outcome
from meshtutor.policy.predict import (
    ENVOY_503,
    CertificateCheck,
    EdgeTrust,
    _from_pod,
    _https,
    _istio,
    _linkerd,
    _Trace,
    identity_of,
    is_http_port,
    linkerd_loopback,
    linkerd_mtls_hop,
    service_endpoints,
)
from meshtutor.policy.probe import Probe

NGINX_404 = (
    "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found"
    "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
NGINX_502 = NGINX_404.replace("404 Not Found", "502 Bad Gateway")
NGINX_503 = NGINX_404.replace("404 Not Found", "503 Service Temporarily Unavailable")
NGINX_308 = NGINX_404.replace("404 Not Found", "308 Permanent Redirect")
SSL_RESET = "OpenSSL SSL_connect: Connection reset by peer in connection to {host}:{port}"


def _host_header(probe: Probe) -> str:
    url = probe.parsed_url
    headers = {k.lower(): v for k, v in probe.headers.items()}
    host = headers.get("host", url.authority)
    return host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host


# --- outside ---------------------------------------------------------------------------------


def predict_outside(
    cluster: Cluster,
    probe: Probe,
    certificates: CertificateCheck | None,
    edge_trust: EdgeTrust,
) -> Outcome:
    url = probe.parsed_url
    trace = _Trace(probe, url, certificates=certificates, edge_trust=edge_trust)
    client = edge.outside_client()
    trace.add(
        "curl runs on your machine, outside the cluster: it has no sidecar and no mesh "
        "certificate, and cluster DNS names do not resolve there"
    )
    entry = _entry(cluster, trace, probe)
    if isinstance(entry, Outcome):
        return entry
    service, svc_port = entry
    endpoints = service_endpoints(cluster, service, svc_port)
    if not endpoints:
        trace.add(
            f"Service {service.namespace}/{service.name} has no ready endpoints, so "
            "kube-proxy rejects the connection",
            service.ref,
            "spec.selector",
        )
        return trace.result("000", 7, decided_by=service.ref)
    target, port = endpoints[0]
    trace.destination = target.display
    policy = (
        "keeps the client's address (externalTrafficPolicy: Local)"
        if service.external_traffic_policy == "Local"
        else "rewrites the source to a node address on the way (externalTrafficPolicy: Cluster)"
    )
    trace.add(
        f"kube-proxy forwards the connection to {target.display} on container port {port}; "
        f"it {policy}",
        service.ref,
        "spec.ports",
    )
    check = netpol.ingress_allowed(cluster, client, target, port)
    trace.extend(check.steps)
    if not check.allowed:
        trace.add(f"curl gives up after its {probe.effective_timeout:g} s timeout (--max-time)")
        return trace.result("000", 28, decided_by=check.decided_by)
    role = edge.role_of(target)
    if role is not None:
        return through_edge_proxy(cluster, trace, probe, client, target, port, role)
    trace.edge_tls = url.scheme == "https"
    if url.scheme == "https":
        return _https(cluster, trace, client, False, target, port)
    if cluster.mesh == "istio":
        return _istio(
            cluster,
            trace,
            probe,
            client,
            False,
            service,
            svc_port,
            target,
            port,
            is_http_port(svc_port),
        )
    return _linkerd(cluster, trace, probe, client, False, target, port)


def _entry(cluster: Cluster, trace: _Trace, probe: Probe) -> Outcome | tuple:  # type: ignore[type-arg]
    """Which external Service (and port) the URL's host reaches from outside."""
    url = trace.url
    labels = url.host.split(".")
    if len(labels) == 2 and cluster.service(labels[1], labels[0]) is not None:
        service = cluster.service(labels[1], labels[0])
        assert service is not None
        if not service.external:
            trace.add(
                f"Service {service.namespace}/{service.name} is of type {service.type}: its "
                f"address exists only inside the cluster, so {url.host} does not resolve out "
                "here (a LoadBalancer or NodePort Service, or an ingress, is the way in)",
                service.ref,
                "spec.type",
            )
            return trace.result("000", 6, decided_by=service.ref)
        svc_port = edge.external_port(service, url.port)
        if svc_port is None:
            ports = ", ".join(
                str(p.port if service.type == "LoadBalancer" else edge.node_port(service, p))
                for p in service.ports
            )
            trace.add(
                f"the external address of Service {service.namespace}/{service.name} has no "
                f"port {url.port} (it forwards {ports}), so the connection is refused",
                service.ref,
                "spec.ports",
            )
            return trace.result("000", 7, decided_by=service.ref)
        where = (
            "its load balancer address"
            if service.type == "LoadBalancer"
            else f"node port {edge.node_port(service, svc_port)} on every node"
        )
        trace.add(
            f"{url.host} stands for the external address of Service "
            f"{service.namespace}/{service.name} (type {service.type}): {where}",
            service.ref,
            "spec.type",
        )
        return service, svc_port
    found = _public_name(cluster, url.host, url.port)
    if found is None:
        trace.add(
            f"no Service, Gateway or Ingress in the cluster answers for {url.host}, so the name "
            "does not resolve to the cluster (meshtutor resolves a host name a Gateway or an "
            "Ingress serves to the address of its ingress, as DNS or curl --resolve would)"
        )
        return trace.result("000", 6)
    service, svc_port, why, ref = found
    trace.add(
        f"{url.host} resolves to the external address of Service {service.namespace}/"
        f"{service.name} ({why}), as public DNS (or curl --resolve) would point it",
        ref,
        None,
    )
    return service, svc_port


def _gateway_for_name(cluster: Cluster, host: str, port: int, on_port: bool) -> tuple | None:  # type: ignore[type-arg]
    from meshtutor.model.edge import Gateway

    for gateway in cluster.objects(Gateway):
        for pod in edge.gateway_pods(cluster, gateway):
            for service in edge.entry_services(cluster, pod):
                svc_port = edge.external_port(service, port)
                if svc_port is None:
                    continue
                serves = any(
                    (
                        not on_port
                        or edge.listener_port(cluster, pod, server.number) == svc_port.target_port
                    )
                    and any(edge.host_matches(h.split("/")[-1], host) for h in server.hosts)
                    for server in gateway.servers
                )
                if serves:
                    return (
                        service,
                        svc_port,
                        f"Gateway {gateway.namespace}/{gateway.name} serves {host} on "
                        f"{pod.display}",
                        gateway.ref,
                    )
    return None


def _public_name(cluster: Cluster, host: str, port: int) -> tuple | None:  # type: ignore[type-arg]
    """An external Service of an ingress that serves ``host``."""

    # DNS knows host names, not ports: any Gateway serving the host points it at the gateway.
    # The one with a server on the port curl reaches (80 → 8080) is named first, so an HTTPS
    # Gateway for shop.example.com wins over another Gateway's port-80 "*".
    for on_port in (True, False):
        found = _gateway_for_name(cluster, host, port, on_port)
        if found is not None:
            return found
    served = edge.ingresses_for_controller(cluster)
    for ingress, _ in served:
        hosts = [r.host for r in ingress.rules if r.host] + [
            h for t in ingress.tls for h in t.hosts
        ]
        if not any(edge.host_matches(h, host) for h in hosts):
            continue
        for pod in cluster.pods():
            if edge.role_of(pod) != "ingress-nginx":
                continue
            for service in edge.entry_services(cluster, pod):
                svc_port = edge.external_port(service, port)
                if svc_port is not None:
                    return (
                        service,
                        svc_port,
                        f"Ingress {ingress.namespace}/{ingress.name} serves {host} through "
                        f"{pod.display}",
                        ingress.ref,
                    )
    return None


# --- through an ingress proxy ------------------------------------------------------------------


def through_edge_proxy(
    cluster: Cluster,
    trace: _Trace,
    probe: Probe,
    source: PodState,
    proxy: PodState,
    port: int,
    role: str,
    *,
    captured: bool = False,
    http: bool = True,
) -> Outcome:
    """The request reaches an ingress proxy's pod on container ``port``; ``captured``: from
    a pod, through its own sidecar (``http``: on a port the mesh treats as HTTP)."""
    trace.via = proxy.display
    if role == "istio-gateway":
        return _istio_gateway(cluster, trace, probe, source, proxy, port, captured, http)
    return _ingress_nginx(cluster, trace, probe, source, proxy, port, captured)


def _edge_certificate(
    trace: _Trace, probe: Probe, chain: bytes | None, sni: str, what: str
) -> Outcome | None:
    """curl's check of the server certificate at the edge; None when curl accepts it."""
    assert trace.edge_trust is not None
    problem = trace.edge_trust(probe, chain, sni)
    how = (
        "curl -k skips the check"
        if probe.insecure
        else f"curl checks it against {'--cacert ' + probe.cacert if probe.cacert else 'the system CA store'}"
    )
    if problem is not None:
        trace.add(f"{what}; {how}: {problem.removeprefix('SSL certificate problem: ')}")
        return trace.result("000", 60, detail=problem)
    trace.edge_tls = True
    trace.add(
        f"{what}; {how} and accepts it for {sni}. This TLS is one-way: the server proves "
        "its name, curl shows no certificate"
    )
    return None


def _upstream(
    cluster: Cluster,
    trace: _Trace,
    probe: Probe,
    proxy: PodState,
    url: str,
    captured: bool,
    path: str,
) -> Outcome:
    """The ingress proxy's own request to the backend, followed like any pod's request."""
    inner_probe = replace(
        probe,
        source_namespace=proxy.namespace,
        source_deployment=proxy.deployment,
        url=url + path,
        container=None,
        insecure=False,
        cacert=None,
        headers={k: v for k, v in probe.headers.items() if k.lower() != "host"},
    )
    inner = _Trace(inner_probe, inner_probe.parsed_url, certificates=trace.certificates)
    if captured:
        inner.client_identity = identity_of(cluster, proxy)
    outcome = _from_pod(cluster, inner, inner_probe, proxy, captured)
    trace.extend(list(outcome.explanation[:-1]))  # all but the inner "curl prints" line
    trace.mtls = outcome.mtls
    trace.client_identity = outcome.client_identity
    trace.server_identity = outcome.server_identity
    trace.destination = outcome.destination_pod
    return outcome


# --- Istio ingress gateway ---------------------------------------------------------------------


def _istio_gateway(
    cluster: Cluster,
    trace: _Trace,
    probe: Probe,
    source: PodState,
    gw: PodState,
    port: int,
    captured: bool,
    http: bool,
) -> Outcome:
    url = trace.url
    host = _host_header(probe)
    if captured and cluster.mesh == "istio":
        # Auto mTLS looks at the endpoint's security.istio.io/tlsMode label
        # (pilot/pkg/xds/endpoints/mtls_checker.go); only the sidecar injection template sets
        # it, not the gateway charts (manifests/charts/gateways/istio-ingress/templates/
        # deployment.yaml) nor the gateway injection template.
        trace.add(
            f"{gw.display} has no security.istio.io/tlsMode label (Istio's sidecar injection "
            "adds it; the gateway's templates do not), so auto mTLS in the client sidecar "
            "sends plaintext to it, as to a pod without a sidecar"
        )
    if port == edge.STATUS_PORT:
        return _status_port(trace, gw)
    servers = edge.servers_on(cluster, gw, port)
    if not servers:
        text = (
            f"{gw.display} is Istio's ingress gateway, a standalone Envoy. No Gateway gives it a "
            f"server for container port {port} (a Gateway server's port number is the Service "
            "port; Envoy listens on its targetPort, e.g. 80 becomes 8080), so nothing listens "
        )
        if captured and url.scheme == "https":
            trace.add(
                text + "and the client sidecar, refused, closes the connection it had accepted, "
                "in the middle of curl's TLS handshake"
            )
            return trace.result("000", 35, detail=SSL_RESET)
        if captured and http:
            trace.add(text + "and the client sidecar, refused, answers 503 itself")
            return trace.result("503", 0, ENVOY_503 + "connection failure")
        if captured:
            trace.add(
                text + "and the client sidecar, refused, closes curl's connection (a TCP port: "
                "no HTTP answer)"
            )
            return trace.result("000", 52)
        trace.add(text + "and the connection is refused")
        return trace.result("000", 7)
    tls_servers = [b for b in servers if b.server.terminates_tls]
    plain = [b for b in servers if not b.server.terminates_tls]
    if url.scheme == "https":
        if not tls_servers:
            b = servers[0]
            trace.add(
                f"Gateway {b.gateway.namespace}/{b.gateway.name} serves plain "
                f"{b.server.protocol} on this port; Envoy answers curl's TLS ClientHello with "
                "an HTTP 400 that curl cannot read as TLS",
                b.gateway.ref,
                f"{b.field}.port.protocol",
            )
            return trace.result("000", 35)
        sni = url.host
        bound = edge.server_for_sni(tls_servers, sni)
        if bound is None:
            hosts = ", ".join(h for b in tls_servers for h in b.server.hosts)
            b = tls_servers[0]
            trace.add(
                f"the TLS server name curl sends (SNI {sni}) matches no HTTPS server of the "
                f"gateway on this port (hosts: {hosts}); Envoy finds no filter chain and closes "
                "the connection",
                b.gateway.ref,
                f"{b.field}.hosts",
            )
            return trace.result("000", 35, detail=SSL_RESET)
        tls = bound.server.tls
        assert tls is not None
        name = tls.credential_name or ""
        secret = edge.tls_secret(cluster, gw.namespace, name)
        problem = edge.secret_problem(secret, gw.namespace, name)
        if problem is not None:
            trace.add(
                f"Gateway {bound.gateway.namespace}/{bound.gateway.name} takes its certificate "
                f"from credentialName {name!r}, looked up in the gateway's namespace "
                f"{gw.namespace}: {problem}. istiod has no certificate to give Envoy, so Envoy "
                "resets every TLS handshake on this server",
                bound.gateway.ref,
                f"{bound.field}.tls.credentialName",
            )
            return trace.result("000", 35, decided_by=bound.gateway.ref, detail=SSL_RESET)
        assert secret is not None
        failed = _edge_certificate(
            trace,
            probe,
            secret.data.get("tls.crt"),
            sni,
            f"TLS at the edge: Envoy presents the certificate from Secret {gw.namespace}/{name} "
            f"(Gateway {bound.gateway.namespace}/{bound.gateway.name}, tls mode {tls.mode})",
        )
        if failed is not None:
            return failed
        if tls.mode == "MUTUAL":
            trace.add(
                "tls mode MUTUAL asks the client for a certificate too; curl has none to "
                "give, so the gateway ends the connection with a 'certificate required' alert",
                bound.gateway.ref,
                f"{bound.field}.tls.mode",
            )
            return trace.result("000", 56, decided_by=bound.gateway.ref)
        chosen = [bound]
    else:
        if not plain:
            b = servers[0]
            trace.add(
                f"Gateway {b.gateway.namespace}/{b.gateway.name} serves only HTTPS on this "
                "port; Envoy expects a TLS ClientHello, gets plain HTTP and closes the "
                "connection without an answer",
                b.gateway.ref,
                f"{b.field}.tls",
            )
            return trace.result("000", 52)
        trace.edge_tls = False
        chosen = plain
        trace.add("the client's hop to the gateway is plain HTTP: anyone on the way can read it")
        redirect = edge.redirecting_server(plain, host)
        if redirect is not None:
            trace.add(
                f"Gateway {redirect.gateway.namespace}/{redirect.gateway.name} sets "
                "httpsRedirect, so Envoy answers every plain HTTP request with 301 to https://",
                redirect.gateway.ref,
                f"{redirect.field}.tls.httpsRedirect",
            )
            return trace.result("301", 0, "", redirect.gateway.ref)

    # The Host header picks the VirtualService.
    route = edge.gateway_route(
        cluster, chosen, host, url.path, port, {k.lower(): v for k, v in probe.headers.items()}
    )
    vs, rule, bound_used = route.vs, route.rule, route.bound
    if vs is None:
        b = bound_used
        reason = (
            f"no VirtualService bound to Gateway {b.gateway.namespace}/{b.gateway.name} has a "
            f"host matching {host} (spec.gateways binds a VirtualService; a name without a "
            "namespace means the VirtualService's own namespace)"
            if route.matching
            else f"no server of the gateway on this port lists host {host} "
            f"(hosts: {', '.join(h for x in chosen for h in x.server.hosts)})"
        )
        trace.add(
            f"{reason}, so Envoy has no route and answers 404 itself",
            b.gateway.ref,
            f"{b.field}.hosts",
        )
        return trace.result("404", 0, "", b.gateway.ref)
    if rule is None:
        trace.add(
            f"VirtualService {vs.namespace}/{vs.name} has no route matching {url.path}, so "
            "Envoy answers 404",
            vs.ref,
            "spec.http",
        )
        return trace.result("404", 0, "", vs.ref)
    where = f"spec.http[{rule.index}]"
    if rule.direct_response is not None:
        status, body = rule.direct_response
        trace.add(
            f"VirtualService {vs.namespace}/{vs.name} answers {status} directly",
            vs.ref,
            f"{where}.directResponse",
        )
        return trace.result(str(status), 0, body, vs.ref)
    if rule.redirect is not None:
        code = int(rule.redirect.get("redirectCode", 301))
        trace.add(
            f"VirtualService {vs.namespace}/{vs.name} redirects ({code})",
            vs.ref,
            f"{where}.redirect",
        )
        return trace.result(str(code), 0, "", vs.ref)
    destination = edge.chosen_destination(rule)
    assert destination is not None
    service, fqdn = edge.destination_service(cluster, destination.host, vs.namespace or "default")
    if service is None:
        trace.add(
            f"VirtualService {vs.namespace}/{vs.name} routes to {destination.host}, which is "
            f"no Service (short names are read in the VirtualService's namespace "
            f"{vs.namespace}); Envoy has no such cluster and answers 503",
            vs.ref,
            f"{where}.route",
        )
        return trace.result("503", 0, "", vs.ref)
    number = edge.destination_port(destination, service, port)
    svc_port = service.port(number)
    if svc_port is None:
        trace.add(
            f"VirtualService {vs.namespace}/{vs.name} routes to port {number} of Service "
            f"{service.namespace}/{service.name}, which has no such port; Envoy answers 503",
            vs.ref,
            f"{where}.route",
        )
        return trace.result("503", 0, "", vs.ref)
    trace.add(
        f"VirtualService {vs.namespace}/{vs.name} (bound to Gateway "
        f"{bound_used.gateway.namespace}/{bound_used.gateway.name}) routes {host}{url.path} to "
        f"{fqdn}:{number}; the gateway opens a new connection from inside the mesh, as "
        f"{identity_of(cluster, gw)}",
        vs.ref,
        where,
    )
    path = edge.rewritten_path(rule, url.path_with_query)
    outcome = _upstream(cluster, trace, probe, gw, f"http://{fqdn}:{number}", True, path)
    return _relay(trace, outcome, proxy_name="the gateway")


def _status_port(trace: _Trace, gw: PodState) -> Outcome:
    """Envoy's status listener (``edge.STATUS_PORT``): plain HTTP, one route."""
    url = trace.url
    what = (
        f"port {edge.STATUS_PORT} of {gw.display} is Envoy's status port, a listener every "
        "Istio proxy has from its bootstrap whatever Gateways exist; its one route, "
        f"{edge.READY_PATH}, goes to istio-agent's readiness check"
    )
    if url.scheme == "https":
        trace.add(
            f"{what}. It speaks plain HTTP: Envoy answers curl's TLS ClientHello with an HTTP "
            "400 that curl cannot read as TLS"
        )
        return trace.result("000", 35)
    status = edge.status_port_answer(url.path)
    trace.add(
        f"{what}, which answers 200 while the proxy is ready"
        if status == 200
        else f"{what}; {url.path} has no route, so Envoy answers 404 itself"
    )
    return trace.result(str(status), 0, "")


def _relay(trace: _Trace, inner: Outcome, *, proxy_name: str, nginx: bool = False) -> Outcome:
    """What the outside client gets from the ingress proxy's upstream attempt."""
    if inner.exit_code == 28:
        trace.add(
            f"curl gives up after its {trace.probe.effective_timeout:g} s timeout (--max-time)"
        )
        return trace.result("000", 28, decided_by=inner.decided_by)
    if inner.http_code == "000":
        if nginx:
            trace.add(
                f"{proxy_name} could not get an answer from the backend "
                f"(curl would have exited {inner.exit_code}), so nginx answers 502 Bad Gateway"
            )
            return trace.result("502", 0, NGINX_502, inner.decided_by)
        trace.add(f"{proxy_name} gets no answer from the backend and answers 503")
        return trace.result("503", 0, "", inner.decided_by)
    return trace.result(inner.http_code, 0, inner.body, inner.decided_by)


# --- ingress-nginx -----------------------------------------------------------------------------


def _ingress_nginx(
    cluster: Cluster,
    trace: _Trace,
    probe: Probe,
    source: PodState,
    ctrl: PodState,
    port: int,
    captured: bool = False,
) -> Outcome:
    url = trace.url
    host = _host_header(probe)
    if port not in (80, 443):
        trace.add(f"ingress-nginx listens on 80 and 443 only; nothing answers on port {port}")
        return trace.result("000", 7)
    if linkerd_loopback(source, captured, ctrl):
        trace.add(
            f"the endpoint is {ctrl.display} itself: Linkerd's proxy never uses TLS to its own "
            "pod and connects straight to nginx's port; made inside the pod, the connection "
            "never reaches the inbound side, so the hop is plaintext and no Linkerd policy "
            "applies"
        )
    elif ctrl.sidecar == "linkerd":
        meshed = captured and source.sidecar == "linkerd"
        who = (
            "the client outside has no mesh identity"
            if source.external
            else f"{source.display} is meshed too, so its proxy and the controller's talk "
            "mutual TLS"
            if meshed
            else f"{source.display} is not meshed, so it arrives as plaintext without a client "
            "identity"
        )
        trace.add(
            f"{ctrl.display} is meshed ({ctrl.injection.reason}); its Linkerd proxy takes the "
            f"connection first, and {who}",
            ctrl.injection.decided_by,
            ctrl.injection.field,
        )
        if meshed:
            failed = linkerd_mtls_hop(cluster, trace, source, ctrl)
            if failed is not None:
                return failed
        decision = linkerd_policy.evaluate(
            cluster,
            ctrl,
            linkerd_policy.LinkerdRequest(
                client_identity=trace.client_identity if meshed else None,
                client_ip=source.ip,
                port=port,
                method=probe.method,
                path=url.path,
                headers=dict(probe.headers),
                http=url.scheme == "http",
            ),
        )
        trace.extend(decision.steps)
        if not decision.allowed:
            if url.scheme == "https":
                # TLS from curl is no HTTP the proxy can answer: it refuses the connection.
                trace.add("curl's TLS is not HTTP to the proxy, so it refuses the connection")
                return trace.result("000", 35, decided_by=decision.decided_by, detail=SSL_RESET)
            return trace.result(str(decision.status), 0, "", decision.decided_by)
    else:
        trace.add(
            f"{ctrl.display} is the ingress-nginx controller, not meshed: {ctrl.injection.reason}",
            ctrl.injection.decided_by,
            ctrl.injection.field,
        )
    tls_entry = edge.ingress_tls_for(cluster, host if url.scheme == "http" else url.host)
    if url.scheme == "https":
        if port != 443:
            trace.add(
                "port 80 of ingress-nginx speaks plain HTTP; nginx answers the "
                "ClientHello with an HTTP 400 that curl cannot read as TLS"
            )
            return trace.result("000", 35)
        chain: bytes | None = None
        if tls_entry is None:
            what = (
                f"no Ingress lists {url.host} under spec.tls, so nginx presents its built-in "
                f"'{edge.FAKE_CERTIFICATE}' (self-signed)"
            )
            ref = None
        else:
            ingress, secret_name = tls_entry
            ref = ingress.ref
            secret = edge.tls_secret(cluster, ingress.namespace or "default", secret_name or "")
            problem = (
                edge.secret_problem(secret, ingress.namespace or "default", secret_name)
                if secret_name
                else "no secretName is given"
            )
            if problem is not None or secret is None:
                what = (
                    f"Ingress {ingress.namespace}/{ingress.name} wants TLS for {url.host}, but "
                    f"{problem}; nginx falls back to its '{edge.FAKE_CERTIFICATE}' (self-signed)"
                )
            else:
                chain = secret.data.get("tls.crt")
                what = (
                    f"TLS at the edge: nginx presents the certificate from Secret "
                    f"{ingress.namespace}/{secret_name} (Ingress {ingress.namespace}/"
                    f"{ingress.name}, spec.tls)"
                )
        if ref is not None:
            trace.decided_by = ref
        failed = _edge_certificate(trace, probe, chain, url.host, what)
        if failed is not None:
            return failed
    else:
        if port != 80:
            trace.add(
                "port 443 of ingress-nginx expects TLS; the plain HTTP request gets "
                "nginx's 400 'The plain HTTP request was sent to HTTPS port'"
            )
            return trace.result("400", 0, "")
        trace.edge_tls = False
        trace.add("the client's hop to nginx is plain HTTP: anyone on the way can read it")
        if tls_entry is not None:
            ingress, _ = tls_entry
            if ingress.metadata.annotations.get(edge.SSL_REDIRECT, "true").lower() != "false":
                trace.add(
                    f"Ingress {ingress.namespace}/{ingress.name} has TLS for {host}, so nginx "
                    "redirects plain HTTP to https:// (308 Permanent Redirect; annotation "
                    f'{edge.SSL_REDIRECT}: "false" turns that off)',
                    ingress.ref,
                    "spec.tls",
                )
                return trace.result("308", 0, NGINX_308, ingress.ref)
    route = edge.ingress_route(cluster, host, url.path)
    if route is None:
        trace.add(
            f"no Ingress served by ingress-nginx has a rule for host {host} and path "
            f"{url.path}, so nginx's default server answers 404"
        )
        return trace.result("404", 0, NGINX_404)
    ingress = route.ingress
    ns = ingress.namespace or "default"
    backend = route.backend
    service, svc_port, endpoints = edge.ingress_backend(cluster, route)
    if not endpoints:
        what = (
            f"Service {ns}/{backend.service} does not exist"
            if service is None
            else f"Service {ns}/{backend.service} has no port {backend.port}"
            if svc_port is None
            else f"Service {ns}/{backend.service} has no ready endpoints"
        )
        trace.add(
            f"Ingress {ns}/{ingress.name} ({route.why}) sends {host}{url.path} to "
            f"{backend.service}:{backend.port}, but {what}; nginx has no upstream and answers 503",
            ingress.ref,
            route.field,
        )
        return trace.result("503", 0, NGINX_503, ingress.ref)
    assert service is not None and svc_port is not None
    target, target_port = endpoints[0]
    captured = ctrl.sidecar is not None
    fqdn = f"{service.name}.{ns}.svc.cluster.local"
    if edge.service_upstream(ingress):
        trace.add(
            f"Ingress {ns}/{ingress.name} ({route.why}) sends {host}{url.path} to Service "
            f'{ns}/{service.name} port {svc_port.port}. With {edge.SERVICE_UPSTREAM}: "true" '
            "nginx's upstream is the Service's cluster IP, not the pod list: "
            + (
                "the Linkerd proxy sees a Service and applies its per-service features "
                "(load balancing, routes, retries, timeouts, metrics)"
                if captured
                else "kube-proxy picks the pod"
            ),
            ingress.ref,
            f"metadata.annotations[{edge.SERVICE_UPSTREAM}]",
        )
        upstream = f"http://{fqdn}:{svc_port.port}"
    else:
        trace.add(
            f"Ingress {ns}/{ingress.name} ({route.why}) sends {host}{url.path} to Service "
            f"{ns}/{service.name} port {svc_port.port}. By default nginx reads the Service's "
            f"endpoints and connects to a pod address itself ({target.display}, {target.ip}:"
            f"{target_port})"
            + (
                "; the Linkerd proxy still secures a pod address (mutual TLS with the pod's "
                "identity) but sees no Service, so per-service features (routes, retries, "
                "timeouts, its own load balancing) do not apply. Set "
                f'{edge.SERVICE_UPSTREAM}: "true" to get them'
                if captured
                else ""
            ),
            ingress.ref,
            route.field,
        )
        upstream = f"http://{target.ip}:{target_port}"
    outcome = _upstream(cluster, trace, probe, ctrl, upstream, captured, url.path_with_query)
    return _relay(trace, outcome, proxy_name="nginx", nginx=True)


__all__ = ["predict_outside", "through_edge_proxy"]


def outside_service(cluster: Cluster, host: str, port: int) -> tuple | None:  # type: ignore[type-arg]
    """The external Service (and its port) an outside client reaches at ``host:port``, or
    None when the name does not lead into the cluster (what ``predict_outside`` explains)."""
    labels = host.split(".")
    if len(labels) == 2:
        service = cluster.service(labels[1], labels[0])
        if service is not None:
            if not service.external:
                return None
            svc_port = edge.external_port(service, port)
            return (service, svc_port) if svc_port is not None else None
    found = _public_name(cluster, host, port)
    return (found[0], found[1]) if found else None
