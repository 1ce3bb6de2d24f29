"""Nothing half-applied on a real cluster (issue 13, item 8, per lesson).

Each apply stops before changing anything when one of its objects is not meshtutor's; but a
lesson is many applies, so a conflict at step 3 used to stop the lesson with the topology and
steps 1–2 already on the user's cluster. When a lesson starts on a real cluster, meshtutor now
reads every object any apply, label or annotate action of the lesson would change (topology,
steps, solutions, cleanup; quiz setups run on a scratch sandbox) and refuses before the first
change, naming every conflict at once, with the same ``--adopt`` offer. ``--adopt`` behaves as before: an object is
backed up when meshtutor first changes it.

Lesson 6 (mesh-wide-strict) is the case of the issue: its step 3 applies
``istio-system/default``, the PeerAuthentication a platform team keeps PERMISSIVE.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer
from kube_helpers import ROOT, run_meshtutor
from test_ownership import user_policy, writes

from meshtutor.backends.kube import Journal, OwnershipConflict, backup_of
from meshtutor.commands.common import backend_factory
from meshtutor.lessons.loader import find_lesson
from meshtutor.lessons.runner import (
    LessonRunner,
    changed_objects,
    default_backend,
    lesson_actions,
)
from meshtutor.model import load_file

LESSON = "6"
POLICY = ("security.istio.io/v1", "PeerAuthentication", "default", "istio-system")
MESSAGE = (
    "PeerAuthentication istio-system/default exists and is not meshtutor's "
    f"(meshtutor's journal for context {CONTEXT} does not record it as created or adopted on "
    "this cluster): "
    "meshtutor stopped before changing any object of this lesson. Pass --adopt to take it "
    f"over: meshtutor backs it up first, and `meshtutor reset --context {CONTEXT}` puts it "
    "back as it was"
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_lesson_6_touches_the_mesh_wide_policy_at_step_3() -> None:
    """The premise: the user's object is first touched by step 3, not by the topology."""
    lesson = find_lesson(LESSON)
    paths = [
        [str(a.args["path"]) for a in step.actions if a.kind == "apply"] for step in lesson.steps
    ]
    assert not any("mesh-strict" in str(a.args.get("path")) for a in lesson.topology)
    assert not any("mesh-strict" in p for step in paths[:2] for p in step)
    assert any(p.endswith("mesh-wide-strict/mesh-strict.yaml") for p in paths[2])


def test_run_refuses_the_lesson_before_changing_anything(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path, home: Path
) -> None:
    """Before: ``meshtutor run 6`` created the namespaces, the six workloads and step 2's
    policy, journalled them, then stopped at step 3."""
    before = user_policy(fake_apiserver)
    fake_apiserver.clear_requests()
    cluster = ["--kubeconfig", str(kubeconfig_path), "--context", CONTEXT]

    out = run_meshtutor("run", LESSON, *cluster, home=home)
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"meshtutor: {MESSAGE}\n"
    assert writes(fake_apiserver) == []
    assert fake_apiserver.get_object("v1", "Namespace", "foo") is None
    assert fake_apiserver.get_object(*POLICY) == before
    assert Journal(CONTEXT).entries() == []

    auto = run_meshtutor("run", LESSON, "--auto", *cluster, home=home)
    assert auto.returncode == 1 and "Traceback" not in auto.stderr, auto.stderr
    assert f"    {MESSAGE}\n" in auto.stdout
    assert writes(fake_apiserver) == []
    assert Journal(CONTEXT).entries() == []


def test_every_conflict_of_the_lesson_is_named_at_once(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    """The topology's namespace foo and step 3's policy, in one message, in lesson order."""
    user_policy(fake_apiserver)
    fake_apiserver.add_namespace("foo", {"team": "a"})
    fake_apiserver.clear_requests()
    factory = backend_factory("kube", CONTEXT, str(kubeconfig_path), False, lesson="x")
    runner = LessonRunner(find_lesson(LESSON), backend_factory=factory)

    async def start() -> None:
        try:
            await runner.start(resume=False)
        finally:
            await runner.stop()

    with pytest.raises(OwnershipConflict) as caught:
        asyncio.run(start())
    assert str(caught.value).startswith(
        "2 objects exist and are not meshtutor's: Namespace foo, PeerAuthentication "
        "istio-system/default (meshtutor's journal"
    )
    assert "stopped before changing any object of this lesson. Pass --adopt to take them over" in (
        str(caught.value)
    )
    assert writes(fake_apiserver) == []


def test_label_targets_are_checked_and_quiz_setups_never_reach_the_cluster(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    """Lesson 2 applies ``foo/only-toolbox`` only in a quiz question's setup, which runs on a
    scratch sandbox (test_quiz_on_cluster.py): the user's object of that name is no conflict.
    Lesson 3 labels namespace legacy."""
    factory = backend_factory("kube", CONTEXT, str(kubeconfig_path), False)

    async def namespaces() -> None:  # foo is meshtutor's, from an earlier lesson
        kube = factory("istio")
        await kube.start()
        try:
            await kube.apply(load_file(ROOT / "manifests/samples/namespaces.yaml"))
        finally:
            await kube.stop()

    asyncio.run(namespaces())
    fake_apiserver.put_object(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "only-toolbox", "namespace": "foo"},
            "spec": {},
        }
    )
    users = fake_apiserver.get_object(
        "security.istio.io/v1", "AuthorizationPolicy", "only-toolbox", "foo"
    )
    runner = LessonRunner(find_lesson("2"), backend_factory=factory)

    async def start() -> None:
        try:
            await runner.start(resume=False)
        finally:
            await runner.stop()

    asyncio.run(start())
    assert (
        fake_apiserver.get_object(
            "security.istio.io/v1", "AuthorizationPolicy", "only-toolbox", "foo"
        )
        == users
    )

    labelled = [
        (o.api_version, o.kind, o.name)
        for o in changed_objects(lesson_actions(find_lesson("3")))
        if not o.raw  # a label, annotate or restart target, read from the cluster when it runs
    ]
    assert labelled == [("v1", "Namespace", "legacy"), ("apps/v1", "Deployment", "httpbin")]


def test_with_adopt_the_lesson_runs_and_backs_the_object_up_when_it_first_changes(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    before = user_policy(fake_apiserver)
    factory = backend_factory(
        "kube", CONTEXT, str(kubeconfig_path), False, adopt=True, lesson="mesh-wide-strict"
    )
    runner = LessonRunner(find_lesson(LESSON), backend_factory=factory)

    lesson = runner.lesson

    async def main() -> None:
        try:
            await runner.start(resume=False)  # the check passes: --adopt was given
            for step in lesson.steps[:2]:
                await runner.run_actions([a for a in step.actions if a.kind == "apply"])
            # Steps 1 and 2 ran; step 3's apply has not: the user's object is untouched.
            assert fake_apiserver.get_object(*POLICY) == before
            assert not any(e.get("adopted") for e in Journal(CONTEXT).entries())
            await runner.run_actions([a for a in lesson.steps[2].actions if a.kind == "apply"])
        finally:
            await runner.stop()

    asyncio.run(main())
    taken = fake_apiserver.get_object(*POLICY)
    assert taken is not None and taken["spec"]["mtls"]["mode"] == "STRICT"
    (entry,) = [e for e in Journal(CONTEXT).entries() if e.get("adopted")]
    assert (entry["kind"], entry["backup"]) == ("PeerAuthentication", backup_of(before))


def test_the_sandbox_starts_the_lesson_as_before() -> None:
    """The sandbox has no one else's objects: no check, the lesson starts."""
    runner = LessonRunner(find_lesson(LESSON), backend_factory=default_backend)

    async def start() -> Any:
        try:
            await runner.start(resume=False)
            return runner.backend.cluster.namespace("foo")
        finally:
            await runner.stop()

    assert asyncio.run(start()) is not None
