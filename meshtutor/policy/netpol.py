"""Kubernetes NetworkPolicy, enforced on pod IPs and container ports, below the mesh.

A pod selected by no policy of a direction accepts everything in that direction; a selected
pod accepts only what the union of the selecting policies' rules allows (reference §7).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from meshtutor.model.base import ResourceRef
from meshtutor.model.k8s import NetworkPolicy, NetworkPolicyPeer, NetworkPolicyRule
from meshtutor.policy.cluster import Cluster, PodState
from meshtutor.policy.outcome import Step


@dataclass(frozen=True)
class NetpolResult:
    allowed: bool
    steps: tuple[Step, ...]
    decided_by: ResourceRef | None


def _peer_matches(
    cluster: Cluster, policy: NetworkPolicy, peer: NetworkPolicyPeer, other: PodState
) -> bool:
    if other.external and peer.ip_block is None:
        return False  # pod and namespace selectors only ever match pods
    if peer.ip_block is not None:
        ip = ipaddress.ip_address(other.ip)
        net = ipaddress.ip_network(peer.ip_block.cidr, strict=False)
        return ip in net and not any(
            ip in ipaddress.ip_network(e, strict=False) for e in peer.ip_block.except_
        )
    if peer.namespace_selector is not None:
        if not peer.namespace_selector.matches(cluster.namespace_labels(other.namespace)):
            return False
    elif other.namespace != policy.namespace:
        return False  # a podSelector alone means pods of the policy's own namespace
    return peer.pod_selector is None or peer.pod_selector.matches(other.labels)


def _port_matches(rule: NetworkPolicyRule, target: PodState, port: int) -> bool:
    if not rule.ports:
        return True
    for p in rule.ports:
        if p.protocol != "TCP":
            continue
        if p.port is None:
            return True
        if isinstance(p.port, str):
            named = [
                cp.container_port
                for c in target.spec.containers
                for cp in c.ports
                if cp.name == p.port
            ]
            if port in named:
                return True
            continue
        if p.port == port or (p.end_port is not None and p.port <= port <= p.end_port):
            return True
    return False


def _rule_matches(
    cluster: Cluster,
    policy: NetworkPolicy,
    rule: NetworkPolicyRule,
    other: PodState,
    port_owner: PodState,
    port: int,
) -> bool:
    peers_ok = not rule.peers or any(_peer_matches(cluster, policy, p, other) for p in rule.peers)
    return peers_ok and _port_matches(rule, port_owner, port)


def _evaluate(
    cluster: Cluster,
    subject: PodState,
    other: PodState,
    port_owner: PodState,
    port: int,
    direction: str,
) -> NetpolResult:
    policies = [
        p
        for p in cluster.objects(NetworkPolicy)
        if p.namespace == subject.namespace
        and direction in p.policy_types
        and p.pod_selector.matches(subject.labels)
    ]
    verb = "ingress to" if direction == "Ingress" else "egress from"
    if not policies:
        everywhere = cluster.objects(NetworkPolicy)
        nearby = [p for p in everywhere if p.namespace == subject.namespace]
        if not everywhere or (direction == "Egress" and not nearby):
            return NetpolResult(True, (), None)
        if nearby:
            names = ", ".join(f"NetworkPolicy {p.namespace}/{p.name}" for p in nearby)
            text = (
                f"{names} {'exists' if len(nearby) == 1 else 'exist'} in {subject.namespace} "
                f"but none selects {subject.display} for {direction}, so its "
                f"{direction.lower()} is not restricted"
            )
        else:
            first = everywhere[0]
            text = (
                f"no NetworkPolicy in namespace {subject.namespace} selects {subject.display} "
                f"(NetworkPolicy {first.namespace}/{first.name} only selects pods of its own "
                f"namespace), so its {direction.lower()} is not restricted"
            )
        ref = (nearby or everywhere)[0].ref
        return NetpolResult(True, (Step(text, ref, "spec.podSelector"),), None)
        names = ", ".join(f"NetworkPolicy {p.namespace}/{p.name}" for p in nearby)
        return NetpolResult(
            True,
            (
                Step(
                    f"{names} {'exists' if len(nearby) == 1 else 'exist'} in {subject.namespace} but none "
                    f"selects {subject.display} for {direction}, so its {direction.lower()} is not "
                    "restricted",
                    nearby[0].ref,
                    "spec.podSelector",
                ),
            ),
            None,
        )
    for policy in policies:
        rules = policy.ingress if direction == "Ingress" else policy.egress
        for index, rule in enumerate(rules):
            if _rule_matches(cluster, policy, rule, other, port_owner, port):
                key = "ingress" if direction == "Ingress" else "egress"
                return NetpolResult(
                    True,
                    (
                        Step(
                            f"NetworkPolicy {policy.namespace}/{policy.name} selects {subject.display} "
                            f"and its {key} rule {index + 1} allows {other.display} on port {port}",
                            policy.ref,
                            f"spec.{key}[{index}]",
                        ),
                    ),
                    policy.ref,
                )
    names = ", ".join(f"NetworkPolicy {p.namespace}/{p.name}" for p in policies)
    return NetpolResult(
        False,
        (
            Step(
                f"{names} {'selects' if len(policies) == 1 else 'select'} {subject.display} for "
                f"{direction}, and no rule allows {verb} {subject.display} "
                f"{'from' if direction == 'Ingress' else 'to'} {other.display} on port {port}; the "
                "packets are dropped, so the connection hangs until the client gives up",
                policies[0].ref,
                f"spec.{direction.lower()}",
            ),
        ),
        policies[0].ref,
    )


def ingress_allowed(
    cluster: Cluster, source: PodState, target: PodState, port: int
) -> NetpolResult:
    return _evaluate(cluster, target, source, target, port, "Ingress")


def egress_allowed(cluster: Cluster, source: PodState, target: PodState, port: int) -> NetpolResult:
    return _evaluate(cluster, source, target, target, port, "Egress")


def dns_allowed(cluster: Cluster, source: PodState) -> NetpolResult:
    """Whether an egress policy on ``source`` lets its DNS lookups (port 53) out."""
    policies = [
        p
        for p in cluster.objects(NetworkPolicy)
        if p.namespace == source.namespace
        and "Egress" in p.policy_types
        and p.pod_selector.matches(source.labels)
    ]
    if not policies:
        return NetpolResult(True, (), None)
    kube_dns_ns = cluster.namespace_labels("kube-system")
    for policy in policies:
        for rule in policy.egress:
            ports_ok = not rule.ports or any(
                p.port in (53, "dns", "dns-tcp", None)
                or (
                    isinstance(p.port, int)
                    and p.end_port is not None
                    and p.port <= 53 <= p.end_port
                )
                for p in rule.ports
            )
            peers_ok = not rule.peers or any(
                (
                    peer.namespace_selector is not None
                    and peer.namespace_selector.matches(kube_dns_ns)
                    and (
                        peer.pod_selector is None
                        or peer.pod_selector.matches({"k8s-app": "kube-dns"})
                    )
                )
                or (peer.ip_block is not None and peer.ip_block.cidr in ("0.0.0.0/0",))
                for peer in rule.peers
            )
            if ports_ok and peers_ok:
                return NetpolResult(True, (), None)
    return NetpolResult(
        False,
        (
            Step(
                f"NetworkPolicy {policies[0].namespace}/{policies[0].name} restricts egress from "
                f"{source.display} and no rule allows DNS (port 53 to kube-dns in kube-system), so the "
                "name lookup times out before any connection is made",
                policies[0].ref,
                "spec.egress",
            ),
        ),
        policies[0].ref,
    )
