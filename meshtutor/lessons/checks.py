"""Step checks: compare what happened with what the lesson expects, and say why it differs."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshtutor.backends.base import ProbeResult
from meshtutor.lessons.model import Expectation
from meshtutor.policy.cluster import Cluster
from meshtutor.policy.predict import predict


def _outcome_text(code: str, exit_code: int, mtls: bool | None) -> str:
    text = code + (f" (exit {exit_code})" if exit_code else "")
    if mtls is not None:
        text += ", mutual TLS" if mtls else ", no mutual TLS"
    return text


def probe_problem(expect: Expectation, code: str, exit_code: int, mtls: bool) -> str | None:
    """None when the observed probe matches the expectation, else what differs."""
    ok = (
        code == expect.code
        and exit_code == expect.exit
        and (expect.mtls is None or expect.mtls == mtls)
    )
    if ok:
        return None
    assert expect.probe is not None
    wanted = _outcome_text(expect.code or "", expect.exit, expect.mtls)
    got = _outcome_text(code, exit_code, mtls if expect.mtls is not None else None)
    return f"{expect.probe.describe()}: expected {wanted}, got {got}"


def check_prediction(cluster: Cluster, expect: Expectation) -> str | None:
    """Check an expectation against the policy engine alone (used by lesson validation)."""
    if expect.kind == "workload":
        return _workload_problem(cluster, expect)
    assert expect.probe is not None
    outcome = predict(cluster, expect.probe)
    return probe_problem(expect, outcome.http_code, outcome.exit_code, outcome.mtls)


def _workload_problem(cluster: Cluster, expect: Expectation) -> str | None:
    pod = cluster.pod_for(expect.namespace or "", expect.name or "")
    if pod is None:
        return f"no running pod for {expect.namespace}/{expect.name}"
    has = pod.sidecar is not None
    if has == expect.sidecar:
        return None
    return (
        f"{expect.namespace}/{expect.name} {'has' if has else 'has no'} sidecar: "
        f"{pod.injection.reason}"
    )


@dataclass
class ExpectationResult:
    expectation: Expectation
    passed: bool
    problem: str | None = None
    result: ProbeResult | None = None
    culprit: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    passed: bool
    results: list[ExpectationResult]

    @property
    def summary(self) -> str:
        if self.passed:
            return "every expectation holds"
        failing = [r for r in self.results if not r.passed]
        return "; ".join(r.problem or "failed" for r in failing)


def explain_failure(result: ProbeResult) -> list[str]:
    """The explanation lines that name resources: the likely culprits of a surprise."""
    named = [s.text for s in result.prediction.explanation if s.resource is not None]
    return named[-3:] if named else result.prediction.explanation_lines[-2:]
