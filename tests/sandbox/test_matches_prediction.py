"""The sandbox's real traffic agrees with the policy engine, over many policy combinations.

Each combination applies a random (seeded, so reproducible) mix of PeerAuthentication,
DestinationRule, AuthorizationPolicy and NetworkPolicy to the foo/bar/legacy topology of Istio's
security tasks, runs real curl probes, and checks the observation against the prediction: HTTP
code, curl exit code and whether the hop was mutual TLS.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from meshtutor.model import load_yaml
from meshtutor.policy import Probe
from meshtutor.sandbox.mesh import Sandbox
from meshtutor.sandbox.probe import run_probes

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests/samples"

PA_MODES = [None, "STRICT", "PERMISSIVE", "DISABLE", "UNSET"]


def _topology() -> list:
    docs = load_yaml((SAMPLES / "namespaces.yaml").read_text())
    for ns in ("foo", "bar", "legacy"):
        for name in ("sleep", "httpbin"):
            docs += load_yaml((SAMPLES / f"{name}.yaml").read_text(), default_namespace=ns)
    return docs


def _pa(
    name: str, ns: str, mode: str | None, selector: bool = False, port_mode: str | None = None
) -> str:
    if mode is None:
        return ""
    sel = "  selector:\n    matchLabels: {app: httpbin}\n" if selector else ""
    port = f"  portLevelMtls:\n    8080: {{mode: {port_mode}}}\n" if port_mode and selector else ""
    return (
        f"---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        f"metadata: {{name: {name}, namespace: {ns}}}\nspec:\n{sel}  mtls: {{mode: {mode}}}\n{port}"
    )


def _combination(rng: random.Random) -> str:
    parts = [
        _pa("default", "istio-system", rng.choice(PA_MODES)),
        _pa("default", "bar", rng.choice(PA_MODES)),
        _pa(
            "httpbin",
            "bar",
            rng.choice(PA_MODES),
            selector=True,
            port_mode=rng.choice([None, None, "DISABLE", "STRICT", "PERMISSIVE"]),
        ),
    ]
    dr_mode = rng.choice([None, None, "DISABLE", "ISTIO_MUTUAL", "SIMPLE", "notls"])
    if dr_mode:
        ns = rng.choice(["foo", "bar", "istio-system"])
        tp = (
            "  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n"
            if dr_mode == "notls"
            else (f"  trafficPolicy:\n    tls: {{mode: {dr_mode}}}\n")
        )
        parts.append(
            f"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            f"metadata: {{name: httpbin, namespace: {ns}}}\n"
            f"spec:\n  host: httpbin.bar.svc.cluster.local\n{tp}"
        )
    ap = rng.choice(
        [
            None,
            None,
            "allow-foo-sleep",
            "deny-foo-ns",
            "allow-get-ip",
            "deny-all",
            "allow-all",
            "allow-not-foo",
        ]
    )
    rules = {
        "allow-foo-sleep": "  action: ALLOW\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]\n",
        "deny-foo-ns": "  action: DENY\n  rules:\n  - from: [{source: {namespaces: [foo]}}]\n",
        "allow-get-ip": "  action: ALLOW\n  rules:\n  - to: [{operation: {methods: [GET], paths: [/ip]}}]\n",
        "deny-all": "  {}\n",
        "allow-all": "  rules:\n  - {}\n",
        "allow-not-foo": "  rules:\n  - from: [{source: {notNamespaces: [foo]}}]\n",
    }
    if ap:
        body = rules[ap]
        spec = "spec:\n" + body if body.strip() != "{}" else "spec: {}\n"
        parts.append(
            f"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
            f"metadata: {{name: httpbin, namespace: bar}}\n{spec}"
        )
    np = rng.choice([None, None, None, "from-foo", "deny-all"])
    if np:
        ingress = (
            (
                "  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: "
                "{kubernetes.io/metadata.name: foo}}\n"
            )
            if np == "from-foo"
            else ""
        )
        parts.append(
            f"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            f"metadata: {{name: httpbin, namespace: bar}}\n"
            f"spec:\n  podSelector: {{matchLabels: {{app: httpbin}}}}\n"
            f"  policyTypes: [Ingress]\n{ingress}"
        )
    return "".join(parts)


PROBES = [
    Probe("foo", "sleep", "http://httpbin.bar:8000/ip", timeout=1),
    Probe("foo", "sleep", "http://httpbin.bar:8000/headers", method="POST", timeout=1),
    Probe("legacy", "sleep", "http://httpbin.bar:8000/ip", timeout=1),
    Probe("bar", "sleep", "http://httpbin:8000/ip", container="istio-proxy", timeout=1),
    Probe("foo", "sleep", "http://httpbin.legacy:8000/ip", timeout=1),
    Probe("legacy", "sleep", "https://httpbin.bar:8000/", timeout=1),
]

COMBINATIONS = 120


PARALLEL_SANDBOXES = 3


def _mismatches(mesh: str, setups: list[tuple[str, list[Any]]], probes: list[Probe]) -> list[str]:
    """Boot one sandbox per setup (a few at a time), apply its documents, run the probes, and
    describe every probe whose observation differs from the prediction."""
    mismatches: list[str] = []
    checked = 0

    async def one(label: str, docs: list[Any], limit: asyncio.Semaphore) -> None:
        nonlocal checked
        async with limit, Sandbox(mesh) as sb:  # type: ignore[arg-type]
            await sb.apply(docs)
            results = await run_probes(sb, probes)
        checked += len(results)
        for result in results:
            if not result.matches_prediction:
                p = result.prediction
                mismatches.append(
                    f"{result.probe.describe()}: observed {result.http_code}/{result.exit_code} "
                    f"mtls={result.mtls} ({result.stderr}), predicted {p.http_code}/"
                    f"{p.exit_code} mtls={p.mtls}\n{label}"
                )

    async def main() -> None:
        limit = asyncio.Semaphore(PARALLEL_SANDBOXES)
        await asyncio.gather(*(one(label, docs, limit) for label, docs in setups))

    asyncio.run(main())
    assert checked == len(setups) * len(probes)
    return mismatches


def test_observations_match_predictions_istio() -> None:
    rng = random.Random(20261122)
    topology = _topology()
    setups = []
    for index in range(COMBINATIONS):
        text = _combination(rng)
        docs = load_yaml(text, source=f"combination-{index}") if text.strip() else []
        setups.append((text, topology + docs))
    mismatches = _mismatches("istio", setups, PROBES)
    assert not mismatches, f"{len(mismatches)} mismatches; first:\n" + "\n".join(mismatches[:3])


LINKERD_TOPOLOGY = """
apiVersion: v1
kind: Namespace
metadata: {name: app, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: app}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: api, namespace: app}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: curlimages/curl:8.16.0, command: [/bin/sleep, infinity]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bot, namespace: app}
spec:
  selector: {matchLabels: {app: bot}}
  template:
    metadata: {labels: {app: bot}}
    spec:
      containers: [{name: bot, image: curlimages/curl:8.16.0, command: [/bin/sleep, infinity]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: app}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations: {config.linkerd.io/default-inbound-policy: POLICY}
    spec:
      serviceAccountName: api
      containers:
      - name: api
        image: docker.io/mccutchen/go-httpbin:v2.15.0
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: app}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: plain}
spec:
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      containers: [{name: curl, image: curlimages/curl:8.16.0, command: [/bin/sleep, infinity]}]
"""

LINKERD_POLICIES = {
    "server": """
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: api-http, namespace: app}
spec:
  podSelector: {matchLabels: {app: api}}
  port: http
  accessPolicy: ACCESS
""",
    "route": """
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: api-ip, namespace: app}
spec:
  parentRefs: [{name: api-http, kind: Server, group: policy.linkerd.io}]
  rules:
  - matches: [{path: {value: /ip, type: PathPrefix}, method: GET}]
""",
    "ap-web": """
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: api-from-web, namespace: app}
spec:
  targetRef: {group: policy.linkerd.io, kind: TARGET, name: NAME}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-only}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: web-only, namespace: app}
spec:
  identities: [web.app.serviceaccount.identity.linkerd.cluster.local]
""",
    "ap-net": """
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: api-from-anywhere, namespace: app}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: api-http}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: everywhere}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: everywhere, namespace: app}
spec:
  networks: [{cidr: 0.0.0.0/0}]
""",
}

LINKERD_PROBES = [
    Probe("app", "web", "http://api/ip", timeout=1),
    Probe("app", "web", "http://api/headers", timeout=1),
    Probe("app", "bot", "http://api.app/ip", timeout=1),
    Probe("plain", "curl", "http://api.app/ip", timeout=1),
    Probe(
        "plain", "curl", "http://api.app.svc.cluster.local:80/anything", method="POST", timeout=1
    ),
]


def _linkerd_combination(rng: random.Random) -> tuple[str, str]:
    default = rng.choice(
        [
            "all-unauthenticated",
            "all-authenticated",
            "cluster-authenticated",
            "deny",
            "audit",
            "cluster-unauthenticated",
        ]
    )
    parts = []
    if rng.random() < 0.7:
        parts.append(
            LINKERD_POLICIES["server"].replace(
                "ACCESS", rng.choice(["deny", "all-unauthenticated", "all-authenticated", "audit"])
            )
        )
        has_route = rng.random() < 0.5
        if has_route:
            parts.append(LINKERD_POLICIES["route"])
        auth = rng.choice([None, "ap-web", "ap-net"])
        if auth == "ap-web":
            target = (
                ("HTTPRoute", "api-ip")
                if has_route and rng.random() < 0.5
                else rng.choice([("Server", "api-http"), ("Namespace", "app")])
            )
            text = (
                LINKERD_POLICIES["ap-web"].replace("TARGET", target[0]).replace("NAME", target[1])
            )
            if target[0] == "Namespace":
                text = text.replace("group: policy.linkerd.io, kind: Namespace", "kind: Namespace")
            parts.append(text)
        elif auth == "ap-net":
            parts.append(LINKERD_POLICIES["ap-net"])
    return default, "---".join(parts)


LINKERD_COMBINATIONS = 40


def test_observations_match_predictions_linkerd() -> None:
    rng = random.Random(7)
    setups = []
    for index in range(LINKERD_COMBINATIONS):
        default, policies = _linkerd_combination(rng)
        docs = load_yaml(LINKERD_TOPOLOGY.replace("POLICY", default))
        if policies.strip():
            docs += load_yaml(policies, source=f"linkerd-{index}")
        setups.append((f"default inbound policy {default}\n{policies}", docs))
    mismatches = _mismatches("linkerd", setups, LINKERD_PROBES)
    assert not mismatches, f"{len(mismatches)} mismatches; first:\n" + "\n".join(mismatches[:3])
