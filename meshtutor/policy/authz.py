"""Istio AuthorizationPolicy, evaluated in the server's sidecar.

Order (istio/api ``authorization_policy.proto``): CUSTOM deny, then DENY, then ALLOW (no ALLOW
policy → allow; some ALLOW policy matches → allow; else deny). AUDIT never decides. Policies
with the ``istio.io/dry-run: "true"`` annotation are evaluated but not enforced. See
reference/mesh-semantics.md §4.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from meshtutor.model.base import ResourceRef
from meshtutor.model.istio import AuthorizationPolicy, Condition, Operation, Rule, Source
from meshtutor.policy.cluster import Cluster, PodState
from meshtutor.policy.outcome import Step

HTTP_ONLY_SOURCE = {"requestPrincipals", "notRequestPrincipals"}
HTTP_ONLY_OPERATION = {"hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"}


@dataclass(frozen=True)
class RequestAttributes:
    """What the server sidecar knows about a request. Identity fields are None for plaintext."""

    principal: str | None  # "cluster.local/ns/foo/sa/sleep"
    source_ip: str
    destination_ip: str
    port: int  # container port
    http: bool  # False when the port is treated as TCP
    method: str = "GET"
    path: str = "/"
    host: str = ""
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    sni: str = ""

    @property
    def namespace(self) -> str | None:
        if not self.principal:
            return None
        match = re.search(r"/ns/([^/]+)/sa/", self.principal)
        return match.group(1) if match else None


@dataclass(frozen=True)
class AuthzResult:
    allowed: bool
    steps: tuple[Step, ...]
    decided_by: ResourceRef | None


# --- value matching ----------------------------------------------------------------------------


def string_match(pattern: str, value: str | None) -> bool:
    """Istio's string match: exact, ``prefix*``, ``*suffix``, or ``*`` (any non-empty value)."""
    if value is None or value == "":
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _template_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for segment in pattern.split("/"):
        if segment == "{*}":
            out.append("[^/]+")
        elif segment == "{**}":
            out.append(".*")
        else:
            out.append(re.escape(segment))
    regex = "/".join(out)
    # "{**}" as the last segment also matches the path without that trailing part.
    regex = regex.replace("/.*", "(/.*)?") if regex.endswith("/.*") else regex
    return re.compile(f"^{regex}$")


def path_match(pattern: str, path: str) -> bool:
    if "{*}" in pattern or "{**}" in pattern:
        return bool(_template_regex(pattern).match(path))
    return string_match(pattern, path)


def host_match(pattern: str, host: str) -> bool:
    """Hosts match the request's authority case-insensitively, port included: ``httpbin.foo``
    does not match ``httpbin.foo:8000`` (istio/istio authz ``generator.go``: HostMatcher)."""
    return string_match(pattern.lower(), host.lower())


def ip_match(block: str, ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False


def _trust_domains(cluster: Cluster) -> set[str]:
    config = cluster.mesh_config
    return {config.trust_domain, *config.trust_domain_aliases}


def principal_match(cluster: Cluster, pattern: str, principal: str | None) -> bool:
    """``cluster.local`` (and the mesh's trust domain and aliases) in a policy stands for every
    trust domain of the mesh; any other trust domain is matched literally."""
    if not principal:
        return False
    bundle = _trust_domains(cluster)
    td, sep, rest = pattern.partition("/")
    if sep and (td in bundle or td == "cluster.local"):
        actual_td, _, actual_rest = principal.partition("/")
        return actual_td in bundle and string_match(rest, actual_rest)
    return string_match(pattern, principal)


def _service_account_match(cluster: Cluster, value: str, principal: str | None) -> bool:
    ns, _, sa = value.partition("/")
    return principal_match(cluster, f"cluster.local/ns/{ns}/sa/{sa}", principal)


# --- rule evaluation ---------------------------------------------------------------------------


def _field_matches(
    cluster: Cluster, name: str, values: tuple[str, ...], req: RequestAttributes
) -> bool:
    base = name[3].lower() + name[4:] if name.startswith("not") else name
    if base == "principals":
        return any(principal_match(cluster, v, req.principal) for v in values)
    if base == "namespaces":
        return any(string_match(v, req.namespace) for v in values)
    if base == "serviceAccounts":
        return any(_service_account_match(cluster, v, req.principal) for v in values)
    if base in ("ipBlocks", "remoteIpBlocks"):
        return any(ip_match(v, req.source_ip) for v in values)
    if base == "requestPrincipals":
        return False  # no RequestAuthentication: requests never carry a JWT principal
    if base == "hosts":
        return any(host_match(v, req.host) for v in values)
    if base == "methods":
        return any(string_match(v, req.method) for v in values)
    if base == "paths":
        return any(path_match(v, req.path) for v in values)
    if base == "ports":
        return str(req.port) in values
    raise AssertionError(name)


def _fields_match(
    cluster: Cluster,
    fields: Mapping[str, tuple[str, ...]],
    req: RequestAttributes,
    http_only: set[str],
    deny_like: bool,
) -> tuple[bool, str | None]:
    """All fields of a source/operation must match; returns (matched, first failing field)."""
    for name, values in fields.items():
        if not req.http and name in http_only:
            if deny_like:
                continue  # on TCP, a DENY treats HTTP-only fields as matching
            return False, name
        matched = _field_matches(cluster, name, values, req)
        if name.startswith("not"):
            matched = not matched
        if not matched:
            return False, name
    return True, None


def _condition_match(
    cluster: Cluster, cond: Condition, req: RequestAttributes, deny_like: bool
) -> bool:
    key = cond.key
    if not req.http and (key.startswith("request.")):
        return deny_like

    def test(value: str) -> bool:
        if key.startswith("request.headers["):
            header = key[len("request.headers[") : -1].lower()
            return string_match(value, req.headers.get(header))
        if key in ("source.ip", "remote.ip"):
            return ip_match(value, req.source_ip)
        if key == "destination.ip":
            return ip_match(value, req.destination_ip)
        if key == "destination.port":
            return value == str(req.port)
        if key == "source.namespace":
            return string_match(value, req.namespace)
        if key == "source.principal":
            return principal_match(cluster, value, req.principal)
        if key == "source.serviceAccount":
            return _service_account_match(cluster, value, req.principal)
        if key == "connection.sni":
            return string_match(value, req.sni)
        return False  # request.auth.*: no JWT in meshtutor

    if cond.values and not any(test(v) for v in cond.values):
        return False
    return not (cond.not_values and any(test(v) for v in cond.not_values))


def rule_matches(
    cluster: Cluster, rule: Rule, req: RequestAttributes, deny_like: bool
) -> tuple[bool, str]:
    """Does one rule match? Returns the verdict and a short reason naming the deciding field."""
    if rule.sources:
        results = [
            _fields_match(cluster, s.fields, req, HTTP_ONLY_SOURCE, deny_like) for s in rule.sources
        ]
        if not any(ok for ok, _ in results):
            failing = next(f for ok, f in results if not ok)
            return False, f"from.source.{failing}"
    if rule.operations:
        results = [
            _fields_match(cluster, o.fields, req, HTTP_ONLY_OPERATION, deny_like)
            for o in rule.operations
        ]
        if not any(ok for ok, _ in results):
            failing = next(f for ok, f in results if not ok)
            return False, f"to.operation.{failing}"
    for cond in rule.conditions:
        if not _condition_match(cluster, cond, req, deny_like):
            return False, f"when[{cond.key}]"
    return True, "matched"


def policy_matches(
    cluster: Cluster, policy: AuthorizationPolicy, req: RequestAttributes
) -> tuple[bool, str]:
    deny_like = policy.action in ("DENY", "CUSTOM")
    if not policy.rules:
        return False, "it has no rules, so it matches no request"
    reasons = []
    for index, rule in enumerate(policy.rules):
        ok, why = rule_matches(cluster, rule, req, deny_like)
        if ok:
            return True, f"rule {index + 1} matches"
        reasons.append(f"rules[{index}].{why}")
    return False, "no rule matches (" + "; ".join(reasons) + ")"


def policies_for(cluster: Cluster, pod: PodState) -> list[AuthorizationPolicy]:
    """Policies that select a workload: its namespace's, plus the root namespace's (whose
    selector, unlike PeerAuthentication's, matches workloads in every namespace)."""
    root = cluster.mesh_config.root_namespace
    found = []
    for policy in cluster.objects(AuthorizationPolicy):
        if policy.has_target_ref:
            continue  # targetRef policies bind to gateways and waypoints, not sidecars
        if policy.namespace not in (pod.namespace, root):
            continue
        if policy.selector is None or policy.selector.matches(pod.labels):
            found.append(policy)
    return found


def _name(policy: AuthorizationPolicy) -> str:
    return f"AuthorizationPolicy {policy.namespace}/{policy.name}"


def _describe_request(req: RequestAttributes) -> str:
    who = req.principal or "no identity (plaintext)"
    if req.http:
        return f"{req.method} {req.path} from {who}"
    return f"a TCP connection from {who}"


def evaluate(cluster: Cluster, pod: PodState, req: RequestAttributes) -> AuthzResult:
    """Decide a request at ``pod``'s sidecar, with one step per policy that mattered."""
    policies = policies_for(cluster, pod)
    steps: list[Step] = []
    if not policies:
        return AuthzResult(
            True,
            (Step(f"no AuthorizationPolicy selects {pod.display}, so every request is allowed"),),
            None,
        )

    if not req.http:
        tcp_http = [
            p
            for p in policies
            if any(set(s.fields) & HTTP_ONLY_SOURCE for r in p.rules for s in r.sources)
            or any(set(o.fields) & HTTP_ONLY_OPERATION for r in p.rules for o in r.operations)
        ]
        for p in tcp_http:
            steps.append(
                Step(
                    f"{_name(p)} uses HTTP-only fields on port {req.port}, which Istio treats as TCP: "
                    + (
                        "in a DENY policy they count as matching"
                        if p.action in ("DENY", "CUSTOM")
                        else "in an ALLOW policy they make the rule match nothing"
                    ),
                    p.ref,
                    "spec.rules",
                )
            )

    providers = cluster.mesh_config.extension_providers
    for p in policies:
        if p.action == "CUSTOM" and p.provider in providers:
            steps.append(
                Step(
                    f"{_name(p)} delegates matching requests to the external authorizer "
                    f"{p.provider!r} (CUSTOM); meshtutor runs no external authorizer, so this policy "
                    "is noted but not evaluated",
                    p.ref,
                    "spec.provider.name",
                )
            )
        elif p.action == "AUDIT":
            matched, _ = policy_matches(cluster, p, req)
            steps.append(
                Step(
                    f"{_name(p)} is an AUDIT policy: it {'would log' if matched else 'does not log'} "
                    "this request and never allows or denies",
                    p.ref,
                    "spec.action",
                )
            )

    enforced = [p for p in policies if not p.dry_run]
    for p in [p for p in policies if p.dry_run]:
        matched, why = policy_matches(cluster, p, req)
        effect = (
            ("would deny" if (p.action == "DENY") == matched else "would allow")
            if p.action in ("ALLOW", "DENY")
            else "would not change the decision"
        )
        steps.append(
            Step(
                f'{_name(p)} has istio.io/dry-run: "true": it is evaluated but not enforced '
                f"({why}; it {effect} this request)",
                p.ref,
                "metadata.annotations[istio.io/dry-run]",
            )
        )

    # A CUSTOM policy whose provider is not in meshConfig.extensionProviders fails closed:
    # istiod installs a DENY built from its rules (builder.go, "deny-due-to-bad-CUSTOM-action").
    for p in [p for p in enforced if p.action == "CUSTOM" and p.provider not in providers]:
        matched, why = policy_matches(cluster, p, req)
        if matched:
            steps.append(
                Step(
                    f"CUSTOM {_name(p)} names provider {p.provider!r}, which meshConfig."
                    "extensionProviders does not define; istiod turns such a policy into a DENY of "
                    f"the requests its rules match, and this request matches ({why})",
                    p.ref,
                    "spec.provider.name",
                )
            )
            return AuthzResult(False, tuple(steps), p.ref)
        steps.append(
            Step(
                f"CUSTOM {_name(p)} names undefined provider {p.provider!r} (so it denies what its "
                f"rules match), but this request does not match: {why}",
                p.ref,
                "spec.provider.name",
            )
        )

    for p in [p for p in enforced if p.action == "DENY"]:
        matched, why = policy_matches(cluster, p, req)
        if matched:
            steps.append(
                Step(
                    f"DENY {_name(p)} matches {_describe_request(req)} ({why}), so the request is denied",
                    p.ref,
                    "spec.rules",
                )
            )
            return AuthzResult(False, tuple(steps), p.ref)
        steps.append(Step(f"DENY {_name(p)} does not match: {why}", p.ref, "spec.rules"))

    allows = [p for p in enforced if p.action == "ALLOW"]
    if not allows:
        steps.append(Step(f"no ALLOW policy selects {pod.display}, so the request is allowed"))
        return AuthzResult(True, tuple(steps), None)
    failures = []
    for p in allows:
        matched, why = policy_matches(cluster, p, req)
        if matched:
            steps.append(
                Step(
                    f"ALLOW {_name(p)} matches {_describe_request(req)} ({why})",
                    p.ref,
                    "spec.rules",
                )
            )
            return AuthzResult(True, tuple(steps), p.ref)
        failures.append((p, why))
    for p, why in failures:
        extra = ""
        if req.principal is None and any(
            f in s.fields
            for r in p.rules
            for s in r.sources
            for f in ("principals", "namespaces", "serviceAccounts")
        ):
            extra = "; a plaintext request has no principal or namespace to match"
        steps.append(
            Step(
                f"ALLOW {_name(p)} does not match {_describe_request(req)}: {why}{extra}",
                p.ref,
                "spec.rules",
            )
        )
    decider = failures[0][0]
    steps.append(
        Step(
            f"{pod.display} is selected by ALLOW "
            f"{'policy' if len(allows) == 1 else 'policies'} "
            f"{', '.join(f'{p.namespace}/{p.name}' for p in allows)} and none matches, so the request "
            "is denied",
            decider.ref,
            "spec.rules",
        )
    )
    return AuthzResult(False, tuple(steps), decider.ref)


__all__ = [
    "AuthzResult",
    "Operation",
    "RequestAttributes",
    "Source",
    "evaluate",
    "host_match",
    "path_match",
    "principal_match",
    "string_match",
]
