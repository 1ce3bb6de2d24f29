"""The lesson runner: a state machine the app, the terminal runner and the classroom all drive.

    load → setup (topology) → step n: act → check → pass / fail (with the explanation)
         → next … → quiz → cleanup

It knows nothing of any UI: every method returns plain results to display. It talks to the
cluster only through the Backend protocol (the sandbox today, a real cluster later).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshtutor.backends.base import ChecksOwnership, ProbeResult
from meshtutor.lessons.checks import (
    CheckResult,
    ExpectationResult,
    explain_failure,
    probe_problem,
)
from meshtutor.lessons.model import Action, Expectation, Lesson, Question, Step
from meshtutor.lessons.progress import Progress
from meshtutor.lessons.quiz import Grade, choice_text, grade_choice, grade_prediction
from meshtutor.lessons.state import changed_resource
from meshtutor.model.base import ObjectMeta, Resource
from meshtutor.model.loader import load_file, load_yaml

BackendFactory = Callable[[str], Any]
#: Called as ``observer(kind, event)`` at each point of progress, where ``kind`` is a
#: classroom event kind (lesson_started, step_started, step_passed, step_failed, hint_used,
#: quiz_answer, lesson_done) and ``event`` holds ``lesson``, ``step`` (or None) and ``detail``.
#: Observers run on whatever thread drives the runner and must not block.
Observer = Callable[[str, dict[str, Any]], None]


@dataclass
class ActionResult:
    """What one action did, ready to display."""

    action: Action
    command: str
    lines: list[str] = field(default_factory=list)
    manifest: str | None = None
    probes: list[ProbeResult] = field(default_factory=list)
    matrix: tuple[list[str], list[str]] | None = None
    certificate: Any = None  # meshtutor.pki.CredentialInfo
    table: tuple[list[str], list[list[str]]] | None = None
    error: str | None = None


def default_backend(mesh: str) -> Any:
    from meshtutor.backends.sandbox import SandboxBackend
    from meshtutor.pki import ManualClock

    return SandboxBackend(mesh, clock=ManualClock())  # type: ignore[arg-type]


class LessonRunner:
    def __init__(
        self,
        lesson: Lesson,
        *,
        backend_factory: BackendFactory = default_backend,
        progress: Progress | None = None,
    ) -> None:
        self.lesson = lesson
        self.progress = progress
        self._factory = backend_factory
        self.backend: Any = None
        self.index = 0
        self.hints_shown = 0
        # Whether the current step's own actions have run since the learner entered it (or
        # reset it): skipping runs them first when they have not, as resuming does.
        self.acted = False
        self.state = "new"  # new | step | quiz | done
        self.quiz_attempt: int | None = None
        self.grades: dict[str, Grade] = {}
        self.observers: list[Observer] = []

    def _emit(self, kind: str, step: str | None = None, **detail: Any) -> None:
        event = {"lesson": self.lesson.id, "step": step, "detail": detail}
        for observer in list(self.observers):
            try:
                observer(kind, event)
            except Exception:  # an observer must never break the lesson
                import logging

                logging.getLogger(__name__).exception("lesson observer failed on %s", kind)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, *, resume: bool = True) -> list[ActionResult]:
        """Boot the backend, check that every object the lesson would change may be changed,
        and apply the topology; with ``resume``, replay the steps the learner already
        finished (their actions and solutions) and continue from there."""
        self.backend = await self._boot(lesson_actions(self.lesson))
        results = await self.run_actions(self.lesson.topology)
        self.index = 0
        if resume and self.progress is not None:
            done = set(self.progress.lesson(self.lesson.id).steps_done)
            while self.index < len(self.lesson.steps) and self.lesson.steps[self.index].id in done:
                await self._replay(self.lesson.steps[self.index])
                self.index += 1
        self.state = "step" if self.index < len(self.lesson.steps) else "quiz"
        self._enter_step()
        self.announce()
        return results

    def announce(self) -> None:
        """Tell the observers where the learner is: the lesson, and the step if in one (done
        at ``start()``; again by an observer attached to a runner already started)."""
        self._emit("lesson_started", step=None, at_step=self.index + 1)
        if self.state == "step":
            self._emit("step_started", self.step.id)

    async def _boot(self, actions: Iterable[Action]) -> Any:
        """A started backend, on which none of the objects ``actions`` would change belongs
        to someone else: on a real cluster, a conflict met by the third step would otherwise
        stop the lesson with the first two applied. Nothing is checked on the sandbox."""
        backend = self._factory(self.lesson.mesh)
        try:
            await backend.start()
            if isinstance(check := backend, ChecksOwnership):
                await check.check_ownership(changed_objects(actions))
        except BaseException:
            await backend.stop()  # what a failed start opened, as stop() would have
            raise
        return backend

    async def stop(self) -> None:
        if self.backend is not None:
            await self.backend.stop()
            self.backend = None

    async def _replay(self, step: Step) -> None:
        await self.run_actions(step.actions, quiet=True)
        if step.solution:
            await self.run_actions(step.solution, quiet=True)

    def _enter_step(self) -> None:
        self.acted = False
        if self.state == "step" and self.progress is not None:
            self.progress.at_step(self.lesson.id, self.step.id)
            self.hints_shown = self.progress.hints_for(self.lesson.id, self.step.id)
        else:
            self.hints_shown = 0

    @property
    def step(self) -> Step:
        return self.lesson.steps[min(self.index, len(self.lesson.steps) - 1)]

    @property
    def step_number(self) -> tuple[int, int]:
        return self.index + 1, len(self.lesson.steps)

    # --- steps ----------------------------------------------------------------------------

    async def act(self) -> list[ActionResult]:
        """Run the current step's actions."""
        self.acted = True
        return await self.run_actions(self.step.actions)

    async def check(self) -> CheckResult:
        """Check the current step's expectations against the live cluster; record the result."""
        result = await self.check_expectations(self.step.expect)
        if self.progress is not None:
            self.progress.step_result(
                self.lesson.id, self.step.id, "passed" if result.passed else "failed"
            )
        if result.passed:
            self._emit("step_passed", self.step.id)
        else:
            self._emit("step_failed", self.step.id, message=failure_summary(result))
        return result

    async def skip(self) -> tuple[list[ActionResult], CheckResult]:
        """Do the step for the learner, then check; the step counts as skipped.

        Skipping leaves the cluster as finishing the step would, so later steps find what they
        build on: the step's own actions run first if the learner has not run them yet (a step
        without a solution is one whose actions alone make it pass, lessons/FORMAT.md), then
        its solution. Resuming a lesson replays a finished step the same way (``_replay``).
        """
        results: list[ActionResult] = []
        if not self.acted:
            self.acted = True
            # Quietly: only what changes the cluster; the step's probes and views are for a
            # learner who runs the step, and the check below probes anyway.
            done = await self.run_actions(self.step.actions, quiet=True)
            results += [r for r in done if r.lines or r.manifest or r.table]
        if self.step.solution:
            results += await self.run_actions(self.step.solution)
        check = await self.check_expectations(self.step.expect)
        if self.progress is not None and check.passed:
            self.progress.step_result(self.lesson.id, self.step.id, "skipped")
        if check.passed:
            self._emit("step_passed", self.step.id, skipped=True)
        return results, check

    def hint(self) -> tuple[str, int, int] | None:
        """The next hint as (text, number, total), or None when there are no more."""
        hints = self.step.hints
        if not hints:
            return None
        number = min(self.hints_shown + 1, len(hints))
        self.hints_shown = number
        if self.progress is not None:
            self.progress.hint_used(self.lesson.id, self.step.id, number)
        self._emit("hint_used", self.step.id, count=number, total=len(hints))
        return hints[number - 1], number, len(hints)

    def advance(self) -> bool:
        """Go to the next step; False (and the quiz state) after the last one."""
        self.index += 1
        if self.index >= len(self.lesson.steps):
            self.state = "quiz"
            return False
        self._enter_step()
        self._emit("step_started", self.step.id)
        return True

    async def reset_step(self) -> None:
        """Start the current step again from the state the previous steps left."""
        await self._rebuild(self.index)
        self._enter_step()

    async def reset_lesson(self) -> None:
        if self.progress is not None:
            self.progress.reset(self.lesson.id)
        await self._rebuild(0)
        self.state = "step"
        self._enter_step()

    async def _rebuild(self, upto: int) -> None:
        self.acted = False
        await self.stop()
        self.backend = await self._boot(lesson_actions(self.lesson))
        await self.run_actions(self.lesson.topology, quiet=True)
        for step in self.lesson.steps[:upto]:
            await self._replay(step)
        self.index = upto

    # --- actions --------------------------------------------------------------------------

    async def run_actions(
        self, actions: Sequence[Action], *, quiet: bool = False, backend: Any = None
    ) -> list[ActionResult]:
        backend = backend or self.backend
        results = []
        for action in actions:
            results.append(await self._run(action, backend, quiet))
        return results

    async def _run(self, action: Action, backend: Any, quiet: bool) -> ActionResult:
        a = action.args
        out = ActionResult(action, action.describe())
        kind = action.kind
        if kind == "install":
            out.lines = list(await backend.install(a["name"], load_file(a["path"])))
        elif kind in ("apply", "delete"):
            docs = load_file(a["path"], default_namespace=a.get("namespace"))
            if kind == "apply":
                report = await backend.apply(docs)
                out.lines = list(report.lines)
            else:
                out.lines = list(await backend.delete(docs))
            out.manifest = a["path"].read_text(encoding="utf-8")
        elif kind in ("label", "annotate"):
            resource = changed_resource(backend.cluster, action)
            report = await backend.apply([resource])
            what = (
                f"deployment.apps/{a['name']}"
                if a.get("deployment")
                else f"namespace/{a['namespace']}"
            )
            out.lines = [f"{what} {'labeled' if kind == 'label' else 'annotated'}"]
        elif kind == "restart":
            await backend.restart(a["namespace"], a["name"])
            out.lines = [f"deployment.apps/{a['name']} restarted"]
        elif kind in ("probe", "probes", "handshake", "matrix"):
            if not quiet:
                out.probes = list(await backend.probes(a["probes"]))
            if kind == "matrix":
                out.matrix = (list(a["sources"]), list(a["urls"]))
        elif kind == "certs":
            if not quiet:
                out.certificate = await backend.certificate(a["namespace"], a["name"])
        elif kind == "clock":
            rotated = await backend.advance_clock(a["delta"])
            out.lines = [f"the sandbox clock moved {a['text']}; {rotated} certificate rotation(s)"]
        elif kind == "get":
            out.table = await backend.table(a["kind"])
        elif kind == "status":
            out.table = await backend.mtls_status()
        elif kind == "bench" and not quiet:
            out.table = await self._bench(backend, a["probes"], a["count"])
        return out

    async def _bench(
        self, backend: Any, probes: Sequence[Any], count: int
    ) -> tuple[list[str], list[list[str]]]:
        rows = []
        for probe in probes:
            times = []
            last = None
            for _ in range(count):
                started = time.perf_counter()
                last = await backend.probe(probe)
                times.append((time.perf_counter() - started) * 1000)
            assert last is not None
            rows.append(
                [
                    probe.describe(),
                    "yes" if last.mtls else "no",
                    last.http_code,
                    f"{statistics.median(times):.1f} ms",
                    f"{min(times):.1f} ms",
                ]
            )
        return ["probe", "mTLS", "code", "median", "best"], rows

    # --- checks ---------------------------------------------------------------------------

    async def check_expectations(
        self, expect: Sequence[Expectation], backend: Any = None
    ) -> CheckResult:
        backend = backend or self.backend
        # A probe from a workload that is not there (yet) is a failed expectation, not an
        # error that ends the lesson: e.g. a learner checking before running the step that
        # creates it, or a workload deleted by hand on a real cluster.
        missing = {
            id(e): problem
            for e in expect
            if e.kind == "probe" and (problem := _source_problem(backend, e.probe)) is not None
        }
        probes = [e.probe for e in expect if e.kind == "probe" and id(e) not in missing]
        results = list(await backend.probes(probes)) if probes else []
        by_probe = iter(results)
        outcome = []
        for e in expect:
            if id(e) in missing:
                outcome.append(ExpectationResult(e, False, missing[id(e)]))
                continue
            if e.kind == "workload":
                pod = backend.cluster.pod_for(e.namespace, e.name)
                has = pod is not None and pod.sidecar is not None
                problem = (
                    None
                    if (pod is not None and has == e.sidecar)
                    else (
                        f"no running pod {e.namespace}/{e.name}"
                        if pod is None
                        else f"{e.namespace}/{e.name} {'has' if has else 'has no'} sidecar: "
                        f"{pod.injection.reason}"
                    )
                )
                outcome.append(ExpectationResult(e, problem is None, problem))
                continue
            result = next(by_probe)
            problem = probe_problem(e, result.http_code, result.exit_code, result.mtls, result.body)
            outcome.append(
                ExpectationResult(
                    e, problem is None, problem, result, explain_failure(result) if problem else []
                )
            )
        return CheckResult(all(r.passed for r in outcome), outcome)

    # --- quiz -----------------------------------------------------------------------------

    def _record(self, grade: Grade, answer: Any) -> Grade:
        if grade.question.explanation:
            grade.feedback.append(grade.question.explanation)
        self.grades[grade.question.id] = grade
        if self.progress is not None:
            # The first answer allocates the attempt's number; the others reuse it.
            self.quiz_attempt = self.progress.quiz_answer(
                self.lesson.id,
                self.quiz_attempt,
                grade.question.id,
                answer,
                grade.correct,
                grade.score,
            )
        self._emit(
            "quiz_answer",
            question=grade.question.id,
            answer=answer if isinstance(answer, list) else str(answer)[:500],
            correct=grade.correct,
            score=grade.score,
        )
        return grade

    async def scratch(self, question: Question) -> Any:
        """A fresh sandbox with the lesson's topology and the question's setup, where the
        question is graded. Always an embedded sandbox, also when the lesson runs on a real
        cluster: a question needs a cluster in a known state, and the learner's YAML (or a
        question's setup) must never change the learner's own cluster (DESIGN §6)."""
        backend = self._factory(self.lesson.mesh)
        if isinstance(backend, ChecksOwnership):  # a real cluster (not started: no connection)
            backend = default_backend(self.lesson.mesh)
        await backend.start()
        try:
            await self.run_actions(self.lesson.topology, quiet=True, backend=backend)
            await self.run_actions(question.setup, quiet=True, backend=backend)
        except BaseException:
            await backend.stop()
            raise
        return backend

    def answer_choice(self, question: Question, picked: Sequence[int]) -> Grade:
        return self._record(grade_choice(question, picked), list(picked))

    async def answer_prediction(self, question: Question, answer: str) -> tuple[Grade, ProbeResult]:
        """Grade a prediction by running the probe for real on a scratch sandbox."""
        backend = await self.scratch(question)
        try:
            result = await backend.probe(question.probe)
        finally:
            await backend.stop()
        actual = choice_text(result.http_code, result.exit_code)
        explanation = [line for line in result.prediction.explanation_lines]
        return self._record(grade_prediction(question, answer, actual, explanation), answer), result

    async def answer_manifest(
        self, question: Question, text: str
    ) -> tuple[Grade, CheckResult | None]:
        """Apply the learner's YAML to a scratch sandbox and check the question's outcomes:
        any answer that produces them passes, not only the author's."""
        from meshtutor.errors import MeshtutorError

        try:
            docs = load_yaml(text, source="your answer")
        except MeshtutorError as exc:
            grade = Grade(question, text, False, 0.0, [f"your YAML does not load: {exc}"])
            return self._record(grade, text), None
        backend = await self.scratch(question)
        try:
            try:
                await backend.apply(docs)
            except MeshtutorError as exc:
                grade = Grade(question, text, False, 0.0, [f"your YAML does not apply: {exc}"])
                return self._record(grade, text), None
            check = await self.check_expectations(question.expect, backend)
        finally:
            await backend.stop()
        feedback = []
        for r in check.results:
            if r.passed:
                feedback.append(f"✔ {r.expectation.describe()}")
            else:
                feedback.append(f"✘ {r.problem}")
                feedback.extend(f"    {line}" for line in r.culprit)
        grade = Grade(question, text, check.passed, 1.0 if check.passed else 0.0, feedback)
        return self._record(grade, text), check

    def finish(self) -> float:
        """Close the quiz: the lesson is done; returns the attempt's score (0..1)."""
        self.state = "done"
        if self.progress is not None:
            done = set(self.progress.lesson(self.lesson.id).steps_done)
            # A quiz taken on its own (meshtutor quiz) does not complete the lesson's steps.
            if done >= {step.id for step in self.lesson.steps}:
                self.progress.finish(self.lesson.id)
        scores = [g.score for g in self.grades.values()]
        score = sum(scores) / len(self.lesson.quiz) if self.lesson.quiz else 1.0
        self._emit("lesson_done", score=score)
        return score

    async def cleanup(self) -> list[ActionResult]:
        if self.backend is None:
            return []
        results = await self.run_actions(self.lesson.cleanup) if self.lesson.cleanup else []
        await self.stop()
        return results


def lesson_actions(lesson: Lesson) -> list[Action]:
    """Every action of a lesson that runs on the learner's cluster, in the order a learner meets
    them: topology, each step's actions and solution, cleanup. Quiz setups run on a scratch
    sandbox (``LessonRunner.scratch``)."""
    steps = [a for step in lesson.steps for a in (*step.actions, *step.solution)]
    return [*lesson.topology, *steps, *lesson.cleanup]


def changed_objects(actions: Iterable[Action]) -> list[Resource]:
    """The objects ``actions`` would create or change: each applied manifest's documents, and
    the target of each label, annotate or restart action (the namespace, or the deployment whose
    pod template changes), as a bare reference since it is read from the cluster when it runs."""
    objects: list[Resource] = []
    for action in actions:
        a = action.args
        if action.kind == "apply":
            objects += load_file(a["path"], default_namespace=a.get("namespace"))
        elif action.kind == "restart":
            meta = ObjectMeta(name=a["name"], namespace=a["namespace"])
            objects.append(Resource("apps/v1", "Deployment", meta))
        elif action.kind in ("label", "annotate"):
            if a.get("deployment"):
                meta = ObjectMeta(name=a["name"], namespace=a["namespace"])
                objects.append(Resource("apps/v1", "Deployment", meta))
            else:
                meta = ObjectMeta(name=a["namespace"], namespace=None)
                objects.append(Resource("v1", "Namespace", meta))
    return objects


def _source_problem(backend: Any, probe: Any) -> str | None:
    """Why ``probe`` cannot run from its source workload now, or None if it can."""
    from meshtutor.errors import ProbeSpecError
    from meshtutor.policy.predict import resolve_source

    if probe.outside:
        return None
    try:
        resolve_source(backend.cluster, probe)
    except ProbeSpecError as exc:
        return str(exc)
    return None


def failure_summary(result: CheckResult, limit: int = 1000) -> str:
    """The failing expectations of a check in one line each (for a classroom's grid)."""
    lines = [f"{r.expectation.describe()}: {r.problem}" for r in result.results if not r.passed]
    text = "\n".join(lines) or "the check failed"
    return text if len(text) <= limit else text[: limit - 1] + "…"
