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


def probe_problem(
    expect: Expectation, code: str, exit_code: int, mtls: bool, body: str | None = None
) -> str | None:
    """None when the observed probe matches the expectation, else what differs. ``body``
    None means the body is unknown (a prediction without one) and is not checked."""
    ok = (
        code == expect.code
        and exit_code == expect.exit
        and (expect.mtls is None or expect.mtls == mtls)
    )
    assert expect.probe is not None
    if ok and expect.body and body is not None and expect.body not in body:
        short = body.strip().splitlines()[0][:80] if body.strip() else "(empty)"
        return f"{expect.probe.describe()}: the body does not contain {expect.body!r}: {short}"
    if ok:
        return None
    wanted = _outcome_text(expect.code or "", expect.exit, expect.mtls)
    got = _outcome_text(code, exit_code, mtls if expect.mtls is not None else None)
    return f"{expect.probe.describe()}: expected {wanted}, got {got}"


def check_prediction(cluster: Cluster, expect: Expectation) -> str | None:
    """Check an expectation against the policy engine alone (used by lesson validation)."""
    if expect.kind == "workload":
        return _workload_problem(cluster, expect)
    assert expect.probe is not None
    outcome = predict(cluster, expect.probe)
    # The engine knows the bodies proxies write (403, 503), not the application's.
    body = outcome.body if outcome.http_code in ("403", "503") else None
    return probe_problem(expect, outcome.http_code, outcome.exit_code, outcome.mtls, body)


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
