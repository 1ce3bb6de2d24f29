"""Istio mutual TLS: what a server sidecar accepts (PeerAuthentication) and what a client
sidecar sends (auto mTLS and DestinationRule).

Rules and sources: reference/mesh-semantics.md §2-§3; istio/istio
``pilot/pkg/model/authentication.go`` (oldest namespace/mesh policy wins, UNSET inheritance),
``pilot/pkg/xds/endpoints/mtls_checker.go`` (per-endpoint auto mTLS, port-level DR tls),
``pilot/pkg/model/push_context.go`` (``destinationRule()`` lookup order,
``BestEffortInferServiceMTLSMode``) and ``pilot/pkg/networking/core/cluster_tls.go``.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshtutor.model.base import ResourceRef
from meshtutor.model.istio import ClientTLS, DestinationRule, PeerAuthentication
from meshtutor.model.k8s import Service, ServicePort
from meshtutor.policy.cluster import Cluster, PodState
from meshtutor.policy.outcome import Step

CLUSTER_DOMAIN = "cluster.local"


def _describe_pa(pa: PeerAuthentication) -> str:
    if pa.selector is not None:
        return f"PeerAuthentication {pa.namespace}/{pa.name} (workload selector {pa.selector})"
    return f"PeerAuthentication {pa.namespace}/{pa.name}"


@dataclass(frozen=True)
class PeerAuthnResult:
    """The server's effective mTLS mode on one container port, and why."""

    mode: str  # STRICT, PERMISSIVE or DISABLE
    steps: tuple[Step, ...]
    decided_by: ResourceRef | None
    namespace_mode: str  # namespace/mesh-level mode, for BestEffortInferServiceMTLSMode
    namespace_mode_by: ResourceRef | None = None


def _oldest_unselected(
    cluster: Cluster, pas: list[PeerAuthentication], namespace: str
) -> tuple[PeerAuthentication | None, list[PeerAuthentication]]:
    level = [p for p in pas if p.namespace == namespace and p.selector is None]
    return (level[0], level[1:]) if level else (None, [])


def effective_peer_authentication(cluster: Cluster, pod: PodState, port: int) -> PeerAuthnResult:
    """Compose mesh → namespace → workload → port-level PeerAuthentication for ``port`` (a
    container port of ``pod``), as istiod does."""
    root = cluster.mesh_config.root_namespace
    pas = cluster.objects(PeerAuthentication)  # oldest first
    steps: list[Step] = []

    mesh_pa, mesh_ignored = _oldest_unselected(cluster, pas, root)
    ns_pa, ns_ignored = (
        (None, []) if pod.namespace == root else _oldest_unselected(cluster, pas, pod.namespace)
    )
    for newer, winner in [(p, mesh_pa) for p in mesh_ignored] + [(p, ns_pa) for p in ns_ignored]:
        assert winner is not None
        steps.append(
            Step(
                f"{_describe_pa(newer)} is ignored: {_describe_pa(winner)} is older, and Istio "
                f"uses only the oldest {'mesh' if newer.namespace == root else 'namespace'}-wide policy",
                newer.ref,
                "metadata.creationTimestamp",
            )
        )
    for pa in pas:
        if pa.namespace == root and pa.selector is not None and pa.selector.matches(pod.labels):
            steps.append(
                Step(
                    f"{_describe_pa(pa)} is ignored: a PeerAuthentication with a selector in the "
                    f"root namespace {root} applies to no workload",
                    pa.ref,
                    "spec.selector",
                )
            )
    workload = [
        p
        for p in pas
        if p.namespace == pod.namespace
        and p.namespace != root
        and p.selector is not None
        and p.selector.matches(pod.labels)
    ]
    wl_pa = workload[0] if workload else None
    for newer in workload[1:]:
        steps.append(
            Step(
                f"{_describe_pa(newer)} also selects {pod.display} but is ignored: "
                f"{_describe_pa(wl_pa)} is older",  # type: ignore[arg-type]
                newer.ref,
                "metadata.creationTimestamp",
            )
        )

    # Mesh level: UNSET or absent means PERMISSIVE.
    mode, by, why = (
        "PERMISSIVE",
        None,
        "no PeerAuthentication applies, so Istio's default PERMISSIVE applies",
    )
    if mesh_pa is not None and mesh_pa.mode != "UNSET":
        mode, by = mesh_pa.mode, mesh_pa.ref
        why = f"mesh-wide {_describe_pa(mesh_pa)} in root namespace {root} sets {mode}"
    elif mesh_pa is not None:
        why = f"mesh-wide {_describe_pa(mesh_pa)} leaves the mode UNSET, which means PERMISSIVE"
        by = mesh_pa.ref
    parent_mode, parent_desc = mode, why
    if ns_pa is not None:
        if ns_pa.mode != "UNSET":
            mode, by = ns_pa.mode, ns_pa.ref
            why = f"namespace-wide {_describe_pa(ns_pa)} sets {mode}"
            if mesh_pa is not None and mesh_pa.mode not in ("UNSET", mode):
                why += f"; it overrides mesh-wide {_describe_pa(mesh_pa)} ({mesh_pa.mode})"
        else:
            why = f"namespace-wide {_describe_pa(ns_pa)} leaves the mode UNSET, so it inherits: {parent_desc}"
            by = by or ns_pa.ref
    namespace_mode, namespace_by = mode, by
    parent_mode, parent_desc, parent_by = mode, why, by

    if wl_pa is not None:
        level_pa = ns_pa or mesh_pa
        if wl_pa.mode != "UNSET":
            mode, by = wl_pa.mode, wl_pa.ref
            why = f"{_describe_pa(wl_pa)} sets {mode}"
            if level_pa is not None and parent_mode != mode:
                why += (
                    f"; it overrides {'namespace' if level_pa is ns_pa else 'mesh'} policy "
                    f"{level_pa.namespace}/{level_pa.name} ({parent_mode})"
                )
        else:
            why = (
                f"{_describe_pa(wl_pa)} leaves the workload mode UNSET, so it inherits "
                f"{parent_mode} ({parent_desc})"
            )
            by = wl_pa.ref if parent_by is None else parent_by
        if port in wl_pa.port_level:
            port_mode = wl_pa.port_level[port]
            if port_mode != "UNSET":
                why = (
                    f"{_describe_pa(wl_pa)} sets {port_mode} on port {port} "
                    f"(portLevelMtls; the workload-wide mode is {mode})"
                )
                mode, by = port_mode, wl_pa.ref
                steps.append(Step(f"{why}", wl_pa.ref, f"spec.portLevelMtls[{port}].mode"))
                return PeerAuthnResult(mode, tuple(steps), by, namespace_mode, namespace_by)
            why += f"; portLevelMtls for port {port} is UNSET, so port {port} keeps {mode}"
        else:
            other = [p for p in wl_pa.port_level if p != port]
            if other:
                why += (
                    f" (its portLevelMtls names port {', '.join(map(str, other))}, not {port}: "
                    "the keys are container ports)"
                )
        why = f"{why} on port {port}" if "on port" not in why else why
        steps.append(Step(why, by, "spec.mtls.mode"))
    else:
        steps.append(
            Step(f"{why} for {pod.display} port {port}", by, "spec.mtls.mode" if by else None)
        )
    return PeerAuthnResult(mode, tuple(steps), by, namespace_mode, namespace_by)


# --- DestinationRule -------------------------------------------------------------------------


def qualify_host(host: str, namespace: str) -> str:
    """Istio's ``ResolveShortnameToFQDN``: a name without dots gets ``.<ns>.svc.cluster.local``;
    any name with a dot is taken as already complete (so ``httpbin.bar`` stays as it is)."""
    if host == "*" or "." in host:
        return host
    return f"{host}.{namespace}.svc.{CLUSTER_DOMAIN}"


def _host_matches(pattern: str, fqdn: str) -> bool:
    if pattern.startswith("*"):
        return fqdn.endswith(pattern[1:])
    return pattern == fqdn


def _specificity(pattern: str) -> tuple[int, int]:
    return (0 if pattern.startswith("*") else 1, len(pattern))


def _exported_to(dr: DestinationRule, client_ns: str) -> bool:
    if not dr.export_to:
        return True
    return any(
        e == "*" or e == client_ns or (e == "." and dr.namespace == client_ns) for e in dr.export_to
    )


@dataclass(frozen=True)
class ClientTLSChoice:
    """Which DestinationRule applies to a client's traffic for a service port, and its tls."""

    rule: DestinationRule | None
    tls: ClientTLS | None
    field_path: str | None
    steps: tuple[Step, ...] = ()


def destination_rule_for(
    cluster: Cluster, client: PodState, service: Service, port: int
) -> ClientTLSChoice:
    """The DestinationRule a client sidecar in ``client.namespace`` uses for ``service``:
    client namespace first, then the service's namespace (if exported), then the root
    namespace; the most specific host wins in a namespace; among rules for the same host the
    oldest top-level trafficPolicy is used."""
    service_ns = service.namespace or "default"
    fqdn = f"{service.name}.{service_ns}.svc.{CLUSTER_DOMAIN}"
    root = cluster.mesh_config.root_namespace
    rules = cluster.objects(DestinationRule)
    steps: list[Step] = []

    def matching(namespace: str, exported_only: bool) -> list[DestinationRule]:
        found = []
        for dr in rules:
            if dr.namespace != namespace:
                continue
            if dr.workload_selector is not None and not (
                dr.namespace == client.namespace and dr.workload_selector.matches(client.labels)
            ):
                continue
            if exported_only and not _exported_to(dr, client.namespace):
                continue
            if _host_matches(qualify_host(dr.host, namespace), fqdn):
                found.append(dr)
        if not found:
            return []
        best = max(_specificity(qualify_host(d.host, namespace)) for d in found)
        return [d for d in found if _specificity(qualify_host(d.host, namespace)) == best]

    # Point out the classic mistake: a host with a dot that is not a full name.
    for dr in rules:
        if (
            "." in dr.host
            and not dr.host.startswith("*")
            and dr.host != fqdn
            and fqdn.startswith(dr.host + ".")
        ):
            steps.append(
                Step(
                    f"DestinationRule {dr.namespace}/{dr.name} has host {dr.host!r}, which Istio "
                    f"takes as a complete name, so it does not match {fqdn} (write the full name "
                    "or the short name)",
                    dr.ref,
                    "spec.host",
                )
            )

    chosen: list[DestinationRule] = []
    order = [client.namespace] if client.namespace != root else [root]
    if client.namespace != root:
        chosen = matching(client.namespace, exported_only=False)
    if not chosen and service_ns != client.namespace:
        chosen = matching(service_ns, exported_only=True)
        order.append(service_ns)
        hidden = [d for d in matching(service_ns, exported_only=False) if d not in chosen]
        for dr in hidden:
            steps.append(
                Step(
                    f"DestinationRule {dr.namespace}/{dr.name} matches {fqdn} but its exportTo "
                    f"{list(dr.export_to)} hides it from namespace {client.namespace}",
                    dr.ref,
                    "spec.exportTo",
                )
            )
    if not chosen and root not in order:
        chosen = matching(root, exported_only=True)
    if not chosen:
        return ClientTLSChoice(None, None, None, tuple(steps))

    # Several rules for the same host are merged; the first top-level trafficPolicy is used.
    with_policy = [d for d in chosen if d.traffic_policy is not None]
    rule = with_policy[0] if with_policy else chosen[0]
    for other in with_policy[1:]:
        steps.append(
            Step(
                f"DestinationRule {other.namespace}/{other.name} also targets {rule.host}, but only "
                f"the oldest rule's trafficPolicy ({rule.namespace}/{rule.name}) is used",
                other.ref,
                "spec.trafficPolicy",
            )
        )
    tp = rule.traffic_policy
    tls, where = None, None
    if tp is not None:
        if tp.tls is not None:
            tls, where = tp.tls, "spec.trafficPolicy.tls.mode"
        for index, pl in enumerate(tp.port_level):
            if pl.port == port and pl.tls is not None:
                tls, where = pl.tls, f"spec.trafficPolicy.portLevelSettings[{index}].tls.mode"
                break
        other_ports = [pl.port for pl in tp.port_level if pl.port != port and pl.tls is not None]
        if (other_ports and where is None) or (other_ports and "portLevel" not in (where or "")):
            steps.append(
                Step(
                    f"DestinationRule {rule.namespace}/{rule.name} has portLevelSettings for port "
                    f"{', '.join(map(str, other_ports))}, not for service port {port} "
                    "(these keys are Service ports)",
                    rule.ref,
                    "spec.trafficPolicy.portLevelSettings",
                )
            )
    return ClientTLSChoice(rule, tls, where, tuple(steps))


@dataclass(frozen=True)
class TLSDecision:
    """What an Istio client sidecar sends to one endpoint: ``plaintext``, ``mtls`` (Istio
    mutual TLS), ``tls`` (DestinationRule SIMPLE: TLS without a client certificate) or
    ``mutual-own`` (DestinationRule MUTUAL: the rule's own certificate, not the mesh's)."""

    sends: str
    steps: tuple[Step, ...]
    rule: DestinationRule | None = None


_DR_SENDS = {
    "DISABLE": "plaintext",
    "ISTIO_MUTUAL": "mtls",
    "SIMPLE": "tls",
    "MUTUAL": "mutual-own",
}
_SENDS_WORDS = {
    "plaintext": "plaintext",
    "mtls": "Istio mutual TLS",
    "tls": "TLS without a client certificate",
    "mutual-own": "TLS with the certificate named in the rule, not the mesh's",
}


def client_tls_decision(
    cluster: Cluster,
    client: PodState,
    service: Service,
    svc_port: ServicePort,
    target: PodState,
    target_port: int,
    server_pa: PeerAuthnResult | None = None,
) -> TLSDecision:
    """Auto mTLS and DestinationRule, as istiod programs a client sidecar for one endpoint
    (``mtls_checker.go: checkMtlsEnabled``, ``cluster_tls.go: buildUpstreamTLSSettings``)."""
    choice = destination_rule_for(cluster, client, service, svc_port.port)
    steps = list(choice.steps)
    if choice.tls is not None and choice.rule is not None:
        sends = _DR_SENDS[choice.tls.mode]
        steps.append(
            Step(
                f"DestinationRule {choice.rule.namespace}/{choice.rule.name} (host "
                f"{choice.rule.host}) sets tls.mode {choice.tls.mode} for this traffic, which "
                f"replaces auto mTLS: the client sidecar sends {_SENDS_WORDS[sends]}",
                choice.rule.ref,
                choice.field_path,
            )
        )
        return TLSDecision(sends, tuple(steps), choice.rule)
    if choice.rule is not None:
        steps.append(
            Step(
                f"DestinationRule {choice.rule.namespace}/{choice.rule.name} applies but sets no "
                "tls, so auto mTLS stays in charge",
                choice.rule.ref,
                "spec.trafficPolicy",
            )
        )
    if server_pa is None and target.sidecar == "istio":
        server_pa = effective_peer_authentication(cluster, target, target_port)
    if not cluster.mesh_config.enable_auto_mtls:
        steps.append(
            Step(
                "enableAutoMtls is false in ConfigMap istio-system/istio and no DestinationRule "
                "sets tls, so the client sidecar sends plaintext",
                ResourceRef("ConfigMap", "istio-system", "istio"),
                "data.mesh.enableAutoMtls",
            )
        )
        return TLSDecision("plaintext", tuple(steps), choice.rule)
    if target.sidecar != "istio" or server_pa is None:
        steps.append(
            Step(
                f"auto mTLS: {target.display} has no sidecar, so the client sidecar sends plaintext"
            )
        )
        return TLSDecision("plaintext", tuple(steps), choice.rule)
    if server_pa.namespace_mode == "DISABLE":
        steps.append(
            Step(
                f"auto mTLS: the namespace-wide mode for {service.namespace} is DISABLE, so istiod "
                "configures no TLS at all for this service's clients",
                server_pa.namespace_mode_by,
                "spec.mtls.mode",
            )
        )
        return TLSDecision("plaintext", tuple(steps), choice.rule)
    if server_pa.mode == "DISABLE":
        steps.append(
            Step(
                f"auto mTLS: {target.display} accepts only plaintext on port {target_port} "
                "(PeerAuthentication DISABLE), so the client sidecar sends plaintext",
                server_pa.decided_by,
                "spec.mtls.mode",
            )
        )
        return TLSDecision("plaintext", tuple(steps), choice.rule)
    steps.append(
        Step(
            f"auto mTLS: {target.display} has a sidecar, so the client sidecar sends Istio mutual "
            "TLS with its certificate"
        )
    )
    return TLSDecision("mtls", tuple(steps), choice.rule)
