"""Lessons as typed, frozen data (see lessons/FORMAT.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from meshtutor.policy.probe import Probe

ActionKind = Literal[
    "install",
    "apply",
    "delete",
    "label",
    "annotate",
    "restart",
    "probe",
    "probes",
    "matrix",
    "certs",
    "handshake",
    "clock",
    "get",
    "status",
    "bench",
]
QuestionType = Literal["choice", "multiple", "predict", "manifest"]

#: Cluster components a lesson can ``install``: the sandbox applies manifests/components/NAME.yaml
#: (outside the lesson: never cleaned up); a real cluster must already have them.
COMPONENTS: dict[str, dict[str, str]] = {
    "istio-ingressgateway": {
        "namespace": "istio-system",
        "deployment": "istio-ingressgateway",
        "service": "istio-ingressgateway",
        "command": "istioctl install --set profile=default -y",
        "what": "Istio's ingress gateway (the default profile installs it)",
    },
    "ingress-nginx": {
        "namespace": "ingress-nginx",
        "deployment": "ingress-nginx-controller",
        "service": "ingress-nginx-controller",
        "command": "helm install ingress-nginx ingress-nginx --repo "
        "https://kubernetes.github.io/ingress-nginx -n ingress-nginx --create-namespace",
        "what": "the ingress-nginx controller",
    },
}


@dataclass(frozen=True)
class Action:
    """One thing a step does. ``args`` holds the kind's parameters, already validated:
    apply/delete: file (Path), namespace; label/annotate: namespace or deployment (ns, name),
    values; restart: (ns, name); probe/probes/handshake: probes; matrix: sources, urls;
    certs: (ns, name); clock: text; get: kind; status: what; bench: probes, count."""

    kind: ActionKind
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    line: int = 0

    def describe(self) -> str:
        """The command a learner would type on a real cluster."""
        a = self.args
        if self.kind == "install":
            return COMPONENTS[a["name"]]["command"]
        if self.kind in ("apply", "delete"):
            ns = f" -n {a['namespace']}" if a.get("namespace") else ""
            return f"kubectl {self.kind} -f manifests/{a['name']}{ns}"
        if self.kind == "restart":
            return f"kubectl rollout restart deployment/{a['name']} -n {a['namespace']}"
        if self.kind in ("label", "annotate"):
            pairs = " ".join(f"{k}-" if v is None else f"{k}={v}" for k, v in a["values"].items())
            if a.get("deployment"):
                return (
                    f"kubectl patch deployment {a['name']} -n {a['namespace']} "
                    f"(pod template {'labels' if self.kind == 'label' else 'annotations'}: "
                    f"{pairs})"
                )
            return f"kubectl {self.kind} namespace {a['namespace']} {pairs} --overwrite"
        if self.kind in ("probe", "probes", "handshake"):
            return "; ".join(p.describe() for p in a["probes"])
        if self.kind == "matrix":
            return f"curl from {', '.join(a['sources'])} to {', '.join(a['urls'])}"
        if self.kind == "certs":
            return f"istioctl proxy-config secret deploy/{a['name']} -n {a['namespace']}"
        if self.kind == "clock":
            return f"(sandbox) fast-forward the clock {a['text']}"
        if self.kind == "get":
            return f"kubectl get {a['kind']} -A"
        if self.kind == "status":
            return "(sandbox) mTLS status of every workload"
        if self.kind == "bench":
            return f"(sandbox) time each probe {a['count']} times"
        return self.kind


@dataclass(frozen=True)
class Expectation:
    """``probe``: the probe prints ``code`` (and ``exit``, ``mtls`` when given);
    ``workload``: the pod of ``namespace/name`` has a sidecar or not."""

    kind: Literal["probe", "workload"]
    probe: Probe | None = None
    code: str | None = None
    exit: int = 0
    mtls: bool | None = None
    namespace: str | None = None
    name: str | None = None
    sidecar: bool | None = None
    body: str | None = None  # the response body must contain this text
    line: int = 0

    def describe(self) -> str:
        if self.kind == "workload":
            return f"{self.namespace}/{self.name} {'has' if self.sidecar else 'has no'} sidecar"
        assert self.probe is not None
        want = f"{self.code}" + (f" (exit {self.exit})" if self.exit else "")
        if self.mtls is not None:
            want += ", mutual TLS" if self.mtls else ", no mutual TLS"
        if self.body:
            want += f", body contains {self.body!r}"
        return f"{self.probe.describe()} prints {want}"


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    prose: str
    actions: tuple[Action, ...] = ()
    expect: tuple[Expectation, ...] = ()
    hints: tuple[str, ...] = ()
    solution: tuple[Action, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Option:
    text: str
    correct: bool = False
    why: str = ""


@dataclass(frozen=True)
class Question:
    id: str
    type: QuestionType
    question: str
    options: tuple[Option, ...] = ()
    setup: tuple[Action, ...] = ()
    probe: Probe | None = None
    choices: tuple[str, ...] = ()
    starter: str = ""
    solution: str = ""
    expect: tuple[Expectation, ...] = ()
    explanation: str = ""
    line: int = 0


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    mesh: Literal["istio", "linkerd"]
    summary: str
    minutes: int
    topology: tuple[Action, ...]
    steps: tuple[Step, ...]
    quiz: tuple[Question, ...]
    cleanup: tuple[Action, ...] = ()
    path: Path = Path()
    order: int = 0
