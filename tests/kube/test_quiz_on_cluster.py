"""Quiz questions are graded on a scratch sandbox, never on the learner's cluster (DESIGN §6:
"graded by applying the learner's YAML to a scratch sandbox").

Before: on a real cluster, "write the manifest" applied the learner's YAML (and the lesson's
topology) to the live cluster, where it stayed and changed the steps after it; with --adopt,
the quiz's text area could take any object of the user's over. A "predict" question applied its
setup to the live cluster too, and probed there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer
from test_ownership import USER_POLICY, writes

from meshtutor.commands.common import backend_factory
from meshtutor.lessons.loader import find_lesson
from meshtutor.lessons.runner import LessonRunner

LEARNERS_ANSWER = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def runner_on(config: Path) -> LessonRunner:
    factory = backend_factory("kube", CONTEXT, str(config), False, adopt=True)
    return LessonRunner(find_lesson("4"), backend_factory=factory)


def question(runner: LessonRunner, qid: str) -> Any:
    return next(q for q in runner.lesson.quiz if q.id == qid)


def test_a_written_manifest_is_graded_on_a_sandbox_and_never_reaches_the_cluster(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    fake_apiserver.add_namespace("istio-system")
    before = fake_apiserver.put_object(USER_POLICY)
    fake_apiserver.clear_requests()
    runner = runner_on(kubeconfig_path)
    grade, check = asyncio.run(
        runner.answer_manifest(question(runner, "write-strict"), LEARNERS_ANSWER)
    )
    assert grade.correct and check is not None and check.passed  # mesh-wide STRICT does it
    assert writes(fake_apiserver) == []
    after = fake_apiserver.get_object(
        "security.istio.io/v1", "PeerAuthentication", "default", "istio-system"
    )
    assert after == before


def test_a_prediction_is_graded_on_a_sandbox_too(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    fake_apiserver.clear_requests()
    runner = runner_on(kubeconfig_path)
    grade, result = asyncio.run(
        runner.answer_prediction(question(runner, "predict-istio-proxy-strict"), "000 (56)")
    )
    assert grade.correct and (result.http_code, result.exit_code) == ("000", 56)
    assert fake_apiserver.requests == []
