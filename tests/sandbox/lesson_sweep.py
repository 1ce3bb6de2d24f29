"""Every shipped lesson, replayed on the sandbox: does real traffic agree with the prediction?

For each lesson: its topology; then each step's actions, the probes the step runs and expects,
its solution and the expectations again; the quiz's predict and manifest questions on a fresh
sandbox (topology + setup). Optionally, after the topology and after every step: the lesson's
probe matrix (what the app shows: the lesson's sources and URLs topped up with the default
matrix) and the "wide" probes (every pod and its istio-proxy container to every Service port,
https:// to ingresses, curl from outside to every external port): the corners no lesson
shows. Each probe's observation (HTTP code, curl exit code, mutual TLS) is compared with the
policy engine's prediction.

Used by ``tests/sandbox/test_lessons_agree.py`` (a representative subset, in CI) and
``bench/prediction_sweep.py`` (every lesson, matrices and wide probes, with figures).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshtutor.backends.sandbox import SandboxBackend
from meshtutor.lessons.model import Action, Lesson
from meshtutor.lessons.runner import LessonRunner
from meshtutor.model import load_yaml
from meshtutor.pki import ManualClock
from meshtutor.policy.probe import Probe


@dataclass
class SweepReport:
    lessons: int = 0
    probes: int = 0
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _probes_of(actions: Iterable[Action]) -> list[Probe]:
    return [p for a in actions for p in a.args.get("probes", ())]


async def _check(
    backend: SandboxBackend, probes: Sequence[Probe], where: str, report: SweepReport
) -> None:
    unique: dict[str, Probe] = {}
    for probe in probes:
        unique.setdefault(repr(probe), probe)
    if not unique:
        return
    results = await backend.probes(list(unique.values()))
    report.probes += len(results)
    for result in results:
        if result.matches_prediction:
            continue
        p = result.prediction
        report.mismatches.append(
            f"{where} | {result.probe.describe()}: observed {result.http_code}/{result.exit_code} "
            f"mtls={result.mtls} ({result.stderr or result.body[:80]!r}), predicted "
            f"{p.http_code}/{p.exit_code} mtls={p.mtls}; " + " | ".join(p.explanation_lines[-3:])
        )


def _matrix(lesson: Lesson, backend: SandboxBackend) -> list[Probe]:
    from meshtutor.tui.session import lesson_matrix

    return lesson_matrix(lesson, backend.cluster).probes()


def _endpoints(cluster: Any, service: Any) -> list[Any]:
    from meshtutor.policy.predict import service_endpoints

    return [e for port in service.ports for e in service_endpoints(cluster, service, port)]


def wide_probes(cluster: Any) -> list[Probe]:
    """Every pod (its app container, and its istio-proxy container when it has one) to every
    port of every Service, plus curl from outside to every external Service port: the
    corners no lesson shows (a pod calling its own Service, a port nothing listens on, an
    ingress gateway's status port)."""
    from meshtutor.policy.edge import external_port, node_port, role_of

    sources: list[tuple[str, str, str | None]] = []
    for pod in cluster.pods():
        sources.append((pod.namespace, pod.deployment, None))
        if pod.sidecar == "istio":
            sources.append((pod.namespace, pod.deployment, "istio-proxy"))
    probes = []
    for service in cluster.services():
        ingress = any(role_of(pod) for pod, _ in _endpoints(cluster, service))
        for port in service.ports:
            url = f"http://{service.name}.{service.namespace}:{port.port}/"
            probes += [Probe(ns, name, url, container=c) for ns, name, c in sources]
            if ingress:  # an ingress terminates TLS itself: curl's https:// too
                tls_url = url.replace("http://", "https://")
                probes += [
                    Probe(ns, name, tls_url, container=c, insecure=True) for ns, name, c in sources
                ]
            if service.external:
                number = port.port if service.type == "LoadBalancer" else node_port(service, port)
                assert external_port(service, number) is not None
                host = f"{service.name}.{service.namespace}"
                probes.append(Probe.parse(f"outside=http://{host}:{number}/"))
                if ingress:
                    probes.append(Probe.parse(f"outside=https://{host}:{number}/ -k"))
    return probes


async def _fresh(lesson: Lesson, runner: LessonRunner) -> SandboxBackend:
    backend = SandboxBackend(lesson.mesh, clock=ManualClock())
    await backend.start()
    await runner.run_actions(lesson.topology, quiet=True, backend=backend)
    return backend


async def sweep_lesson(
    lesson: Lesson, report: SweepReport, *, matrix: bool = False, wide: bool = False
) -> None:
    """Replay one lesson on sandboxes and add its disagreements to ``report``."""
    runner = LessonRunner(lesson)
    backend = await _fresh(lesson, runner)
    try:
        if matrix:
            await _check(backend, _matrix(lesson, backend), f"{lesson.id} topology", report)
        if wide:
            await _check(backend, wide_probes(backend.cluster), f"{lesson.id} topology", report)
        for step in lesson.steps:
            where = f"{lesson.id} step {step.id}"
            await runner.run_actions(step.actions, quiet=True, backend=backend)
            expected = [e.probe for e in step.expect if e.probe is not None]
            probes = _probes_of(step.actions) + expected
            if matrix:
                probes += _matrix(lesson, backend)
            await _check(backend, probes, where, report)
            if step.solution:
                await runner.run_actions(step.solution, quiet=True, backend=backend)
                await _check(backend, expected, f"{where} (solution)", report)
            if wide:
                await _check(backend, wide_probes(backend.cluster), f"{where} (wide)", report)
    finally:
        await backend.stop()
    for question in lesson.quiz:
        if question.type not in ("predict", "manifest"):
            continue
        backend = await _fresh(lesson, runner)
        try:
            await runner.run_actions(question.setup, quiet=True, backend=backend)
            where = f"{lesson.id} quiz {question.id}"
            if question.type == "predict" and question.probe is not None:
                await _check(backend, [question.probe], where, report)
            else:
                await backend.apply(load_yaml(question.solution, source=where))
                probes = [e.probe for e in question.expect if e.probe is not None]
                await _check(backend, probes, where, report)
        finally:
            await backend.stop()
    report.lessons += 1


async def sweep(
    lessons: Sequence[Lesson], *, matrix: bool = False, wide: bool = False
) -> SweepReport:
    report = SweepReport()
    started = time.perf_counter()
    for lesson in lessons:
        await sweep_lesson(lesson, report, matrix=matrix, wide=wide)
    report.seconds = time.perf_counter() - started
    return report


def lessons_by_id(ids: Iterable[str] | None = None) -> list[Lesson]:
    from meshtutor.lessons.loader import load_lessons

    lessons = load_lessons()
    if ids is None:
        return lessons
    wanted = set(ids)
    return [lesson for lesson in lessons if lesson.id in wanted]


def run(
    ids: Iterable[str] | None = None, *, matrix: bool = False, wide: bool = False
) -> SweepReport:
    import asyncio

    return asyncio.run(sweep(lessons_by_id(ids), matrix=matrix, wide=wide))


def describe(report: SweepReport) -> str:
    return (
        f"{report.lessons} lessons, {report.probes} probes, {len(report.mismatches)} "
        f"disagreements, {report.seconds:.1f} s"
    )
