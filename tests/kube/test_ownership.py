"""meshtutor never changes what it did not create (issue 13, item 8).

An object that exists and is neither labelled ``app.kubernetes.io/managed-by: meshtutor`` nor in
meshtutor's journal is the user's: applying over it (a manifest, a label or an annotation) is a
conflict that stops the whole apply before anything changes; ``--adopt`` takes it over with a
backup in the journal, and ``reset`` puts it back exactly; a delete leaves it alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer
from kube_helpers import ROOT, run_meshtutor

from meshtutor.backends.kube import (
    MANAGED_BY,
    Journal,
    KubeBackend,
    OwnershipConflict,
    backup_of,
)
from meshtutor.lessons.model import Action
from meshtutor.lessons.state import changed_resource
from meshtutor.model import ResourceRef, load_file

MANIFESTS = ROOT / "manifests"
DEMO = MANIFESTS / "online-boutique/demo.yaml"
MESH_STRICT = MANIFESTS / "lessons/mesh-wide-strict/mesh-strict.yaml"
FOO_STRICT = MANIFESTS / "lessons/verifying-mtls/foo-strict.yaml"
NAMESPACES = MANIFESTS / "samples/namespaces.yaml"
SLEEP = MANIFESTS / "samples/sleep.yaml"

USER_POLICY = {
    "apiVersion": "security.istio.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {
        "name": "default",
        "namespace": "istio-system",
        "labels": {"owner": "platform-team"},
        "annotations": {"note": "keep PERMISSIVE until the migration is done"},
    },
    "spec": {"mtls": {"mode": "PERMISSIVE"}},
}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def with_backend(
    config: Path, work: Callable[[KubeBackend], Awaitable[Any]], **options: Any
) -> Any:
    """Start a KubeBackend (a fresh one: a new process as far as meshtutor knows), run
    ``work`` with it, stop it."""
    kube = KubeBackend("istio", kubeconfig=str(config), context=CONTEXT, **options)

    async def main() -> Any:
        await kube.start()
        try:
            return await work(kube)
        finally:
            await kube.stop()

    return asyncio.run(main())


def apply(config: Path, *paths: Path, namespace: str | None = None, **options: Any) -> Any:
    docs = [d for p in paths for d in load_file(p, default_namespace=namespace)]
    return with_backend(config, lambda kube: kube.apply(docs), **options)


def reset(config: Path) -> list[str]:
    result: list[str] = with_backend(config, lambda kube: kube.reset())
    return result


def user_policy(fake: FakeAPIServer) -> dict[str, Any]:
    fake.add_namespace("istio-system")
    return fake.put_object(USER_POLICY, manager="kubectl-client-side-apply")


def writes(fake: FakeAPIServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.method != "GET"]


class TestConflicts:
    def test_a_user_object_stops_the_whole_apply_before_anything_changes(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """Before: forced server-side apply took the user's mesh-wide policy over
        (PERMISSIVE → STRICT), and nothing recorded it."""
        before = user_policy(fake_apiserver)
        fake_apiserver.clear_requests()
        with pytest.raises(OwnershipConflict) as caught:
            apply(kubeconfig_path, DEMO, MESH_STRICT)  # the demo first: nothing half-applied
        assert str(caught.value) == (
            "PeerAuthentication istio-system/default exists and is not meshtutor's "
            f"(meshtutor's journal for context {CONTEXT} does not record it as created or adopted "
            "on this cluster): "
            "meshtutor stopped before changing any object of this apply. Pass --adopt to take "
            f"it over: meshtutor backs it up first, and `meshtutor reset --context {CONTEXT}` "
            "puts it back as it was"
        )
        assert writes(fake_apiserver) == []
        assert fake_apiserver.get_object("v1", "Namespace", "demo") is None
        after = fake_apiserver.get_object(
            "security.istio.io/v1", "PeerAuthentication", "default", "istio-system"
        )
        assert after == before
        assert Journal(CONTEXT).entries() == []

    def test_every_conflict_is_named(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        user_policy(fake_apiserver)
        fake_apiserver.add_namespace("foo", {"team": "a"})
        with pytest.raises(OwnershipConflict) as caught:
            apply(kubeconfig_path, NAMESPACES, MESH_STRICT)
        assert str(caught.value).startswith(
            "2 objects exist and are not meshtutor's: Namespace foo, PeerAuthentication "
            "istio-system/default (meshtutor's journal"
        )
        assert "Pass --adopt to take them over" in str(caught.value)

    def test_meshtutors_own_objects_are_applied_again_without_question(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        apply(kubeconfig_path, DEMO)
        report = apply(kubeconfig_path, DEMO)  # labelled and journalled: meshtutor's
        assert report.lines[0] == "namespace/demo serverside-applied"

    def test_with_its_journal_lost_meshtutors_label_alone_makes_nothing_meshtutors(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """The journal's uid decides (test_object_identity.py): the label is on every copy of the
        object too. A learner who lost the journal adopts the objects back, and reset then
        puts each back as it was found."""
        apply(kubeconfig_path, DEMO)
        Journal(CONTEXT).path.unlink()
        with pytest.raises(OwnershipConflict, match=r"^7 objects exist and are not meshtutor's"):
            apply(kubeconfig_path, DEMO)
        apply(kubeconfig_path, DEMO, adopt=True)
        assert len(Journal(CONTEXT).entries()) == 7
        reset(kubeconfig_path)
        assert fake_apiserver.get_object("v1", "Namespace", "demo") is not None

    def test_a_dry_run_says_where_a_real_run_would_stop(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        user_policy(fake_apiserver)
        report = apply(kubeconfig_path, MESH_STRICT, dry_run=True)
        assert report.lines == [
            "PeerAuthentication istio-system/default exists and is not meshtutor's: a real "
            "run would stop here and change nothing (--adopt takes it over)"
        ]
        assert writes(fake_apiserver) == []


class TestAdopt:
    def test_adopt_backs_the_object_up_and_reset_puts_it_back_exactly(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        before = user_policy(fake_apiserver)
        report = apply(kubeconfig_path, MESH_STRICT, adopt=True, lesson="mesh-wide-strict")
        assert report.lines == [
            "PeerAuthentication istio-system/default is not meshtutor's: adopted, its "
            "original is backed up for `meshtutor reset`",
            "peerauthentication/default serverside-applied",
        ]
        taken = fake_apiserver.get_object(
            "security.istio.io/v1", "PeerAuthentication", "default", "istio-system"
        )
        assert taken is not None and taken["spec"]["mtls"]["mode"] == "STRICT"
        (entry,) = Journal(CONTEXT).entries()
        assert entry["adopted"] is True
        assert entry["backup"] == backup_of(before)  # the whole object, minus server fields
        assert "resourceVersion" not in entry["backup"]["metadata"]

        # Adopting it again (the step run twice) keeps the first backup.
        apply(kubeconfig_path, MESH_STRICT, adopt=True)
        assert Journal(CONTEXT).entries()[0]["backup"] == backup_of(before)

        lines = reset(kubeconfig_path)
        assert lines == ['peerauthentication "default" restored']
        after = fake_apiserver.get_object(
            "security.istio.io/v1", "PeerAuthentication", "default", "istio-system"
        )
        assert after is not None and backup_of(after) == backup_of(before)
        assert after["spec"]["mtls"]["mode"] == "PERMISSIVE"
        assert MANAGED_BY not in after["metadata"]["labels"]
        assert Journal(CONTEXT).entries() == []

    def test_a_deleted_adopted_object_is_created_again_by_reset(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        before = user_policy(fake_apiserver)
        apply(kubeconfig_path, MESH_STRICT, adopt=True)
        lines = with_backend(kubeconfig_path, lambda kube: kube.delete(load_file(MESH_STRICT)))
        assert lines == ['peerauthentication "default" deleted']  # journalled: meshtutor's now
        assert len(Journal(CONTEXT).entries()) == 1  # the backup stays for reset
        assert reset(kubeconfig_path) == [
            'peerauthentication "default" restored (created again from its backup)'
        ]
        after = fake_apiserver.get_object(
            "security.istio.io/v1", "PeerAuthentication", "default", "istio-system"
        )
        assert after is not None and backup_of(after) == backup_of(before)

    def test_an_adopted_namespace_gets_its_labels_back_and_keeps_its_contents(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """Before: applying samples/namespaces.yaml added labels to the user's namespace foo,
        unjournalled, so that reset left them."""
        fake_apiserver.add_namespace("foo", {"team": "a"})
        keep = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "keep-me", "namespace": "foo"},
        }
        fake_apiserver.put_object(keep)
        before = fake_apiserver.get_object("v1", "Namespace", "foo")
        apply(kubeconfig_path, NAMESPACES, adopt=True)
        apply(kubeconfig_path, SLEEP, namespace="foo", adopt=True)  # meshtutor's, inside foo
        labels = fake_apiserver.get_object("v1", "Namespace", "foo")["metadata"]["labels"]  # type: ignore[index]
        assert labels["istio-injection"] == "enabled"

        # A lesson's delete of the adopted namespace would delete the user's things in it.
        lines = with_backend(kubeconfig_path, lambda kube: kube.delete(load_file(NAMESPACES)))
        assert lines[0].startswith('namespace "foo" left alone: meshtutor adopted Namespace foo')

        reset(kubeconfig_path)
        after = fake_apiserver.get_object("v1", "Namespace", "foo")
        assert after is not None and backup_of(after) == backup_of(before)  # type: ignore[arg-type]
        assert fake_apiserver.get_object("v1", "ServiceAccount", "keep-me", "foo") is not None
        assert fake_apiserver.get_object("apps/v1", "Deployment", "sleep", "foo") is None
        assert fake_apiserver.get_object("v1", "Namespace", "bar") is None  # meshtutor's
        assert Journal(CONTEXT).entries() == []


def label(kube: KubeBackend, namespace: str, values: dict[str, str | None]) -> Any:
    """A lesson's ``label`` action, as the runner runs it."""
    action = Action("label", {"namespace": namespace, "values": values})
    return kube.apply([changed_resource(kube.cluster, action)])


class TestLabelAndAnnotate:
    def test_a_label_on_meshtutors_namespace_is_set(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """Before: the action applied the object as read back, so the new label never reached
        the cluster (only meshtutor's own labels did)."""
        apply(kubeconfig_path, NAMESPACES)
        report = with_backend(
            kubeconfig_path, lambda kube: label(kube, "legacy", {"istio-injection": "enabled"})
        )
        assert report.lines == ["namespace/legacy patched"]
        labels = fake_apiserver.get_object("v1", "Namespace", "legacy")["metadata"]["labels"]  # type: ignore[index]
        assert labels["istio-injection"] == "enabled"
        (patch,) = [
            r
            for r in fake_apiserver.requests_to(r"/namespaces/legacy$", "PATCH")
            if "labels" in r.body.get("metadata", {})
        ]
        assert patch.content_type == "application/merge-patch+json"
        assert patch.body["metadata"]["labels"] == {"istio-injection": "enabled"}
        assert patch.body["metadata"]["resourceVersion"]  # a precondition: nothing else changed

    def test_a_label_removed_with_null(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        apply(kubeconfig_path, NAMESPACES)
        with_backend(kubeconfig_path, lambda kube: label(kube, "foo", {"istio-injection": None}))
        labels = fake_apiserver.get_object("v1", "Namespace", "foo")["metadata"]["labels"]  # type: ignore[index]
        assert "istio-injection" not in labels and labels[MANAGED_BY] == "meshtutor"

    def test_a_label_on_a_user_namespace_is_a_conflict_then_adopted_and_restored(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        before = fake_apiserver.add_namespace("default", {"team": "a"})
        fake_apiserver.clear_requests()
        with pytest.raises(OwnershipConflict, match=r"^Namespace default exists and is not"):
            with_backend(
                kubeconfig_path, lambda kube: label(kube, "default", {"istio-injection": "enabled"})
            )
        assert writes(fake_apiserver) == []

        with_backend(
            kubeconfig_path,
            lambda kube: label(kube, "default", {"istio-injection": "enabled"}),
            adopt=True,
        )
        labels = fake_apiserver.get_object("v1", "Namespace", "default")["metadata"]["labels"]  # type: ignore[index]
        assert labels["istio-injection"] == "enabled" and MANAGED_BY not in labels
        (entry,) = Journal(CONTEXT).entries()
        assert entry["backup"]["metadata"]["labels"] == before["metadata"]["labels"]

        reset(kubeconfig_path)
        after = fake_apiserver.get_object("v1", "Namespace", "default")
        assert after is not None and after["metadata"]["labels"] == before["metadata"]["labels"]

    def test_an_annotation_on_a_deployment_template(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        apply(kubeconfig_path, DEMO)

        def annotate(kube: KubeBackend) -> Any:
            action = Action(
                "annotate",
                {
                    "deployment": True,
                    "namespace": "demo",
                    "name": "frontend",
                    "values": {"sidecar.istio.io/inject": "false"},
                },
            )
            return kube.apply([changed_resource(kube.cluster, action)])

        assert with_backend(kubeconfig_path, annotate).lines == ["deployment/frontend patched"]
        dep = fake_apiserver.get_object("apps/v1", "Deployment", "frontend", "demo")
        assert dep is not None
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"sidecar.istio.io/inject": "false"}
        assert dep["spec"]["template"]["spec"]["containers"][0]["name"] == "server"


class TestDelete:
    def test_a_delete_leaves_the_users_object_alone(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """Before: a lesson's delete removed the user's own, unlabelled foo/default."""
        fake_apiserver.add_namespace("foo")
        fake_apiserver.put_object(
            {**USER_POLICY, "metadata": {"name": "default", "namespace": "foo"}}
        )
        apply(kubeconfig_path, DEMO)
        fake_apiserver.clear_requests()
        docs = load_file(FOO_STRICT) + load_file(DEMO)[-1:]  # the user's, then meshtutor's
        lines = with_backend(kubeconfig_path, lambda kube: kube.delete(docs))
        assert lines == [
            'peerauthentication "default" left alone: PeerAuthentication foo/default is not '
            "meshtutor's (it deletes only what it created or adopted)",
            'service "productcatalogservice" deleted',
        ]
        assert fake_apiserver.get_object(
            "security.istio.io/v1", "PeerAuthentication", "default", "foo"
        )
        assert [r.path for r in fake_apiserver.requests if r.method == "DELETE"] == [
            "/api/v1/namespaces/demo/services/productcatalogservice"
        ]
        assert ("Service", "productcatalogservice") not in {
            (e["kind"], e["name"]) for e in Journal(CONTEXT).entries()
        }


ADOPT_AND_APPLY = """
import asyncio, sys
from meshtutor.backends.kube import KubeBackend
from meshtutor.model import load_file

async def main():
    kube = KubeBackend("istio", kubeconfig=sys.argv[1], context=sys.argv[2], adopt=True)
    await kube.start()
    await kube.apply(load_file(sys.argv[3]))

asyncio.run(main())
"""


def test_a_crash_mid_apply_leaves_the_backup_in_the_journal(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path, home: Path
) -> None:
    """The journal entry (with the backup) is written before the change: a meshtutor killed
    while its apply is on the wire leaves what reset needs to put the object back."""
    before = user_policy(fake_apiserver)
    fake_apiserver.delay_next(r"/peerauthentications/default$", 60, method="PATCH")
    process = subprocess.Popen(
        [sys.executable, "-c", ADOPT_AND_APPLY, str(kubeconfig_path), CONTEXT, str(MESH_STRICT)],
        env={**os.environ, "MESHTUTOR_HOME": str(home)},
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not fake_apiserver.requests_to(r"/peerauthentications/default$", "PATCH"):
            assert process.poll() is None, "the apply ended before it reached the server"
            assert time.monotonic() < deadline, "the apply never reached the server"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    (entry,) = Journal(CONTEXT).entries()
    assert entry["adopted"] and entry["backup"] == backup_of(before)
    reset(kubeconfig_path)
    after = fake_apiserver.get_object(
        "security.istio.io/v1", "PeerAuthentication", "default", "istio-system"
    )
    assert after is not None and backup_of(after) == backup_of(before)


def test_journal_entries_are_plain_json(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    user_policy(fake_apiserver)
    apply(kubeconfig_path, MESH_STRICT, adopt=True)
    data = json.loads(Journal(CONTEXT).path.read_text())
    assert [e["kind"] for e in data] == ["PeerAuthentication"]


def meshtutor(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_meshtutor(*args, home=home)


class TestCommands:
    def test_run_stops_at_the_conflict_and_reset_undoes_an_adoption(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path, home: Path
    ) -> None:
        fake_apiserver.add_namespace("foo", {"team": "a"})
        before = fake_apiserver.get_object("v1", "Namespace", "foo")
        cluster = ["--kubeconfig", str(kubeconfig_path), "--context", CONTEXT]

        dry = meshtutor(home, "run", "4", "--dry-run", *cluster)
        assert dry.returncode == 0, dry.stderr
        assert (
            "  Namespace foo exists and is not meshtutor's: a real run would stop here and "
            "change nothing (--adopt takes it over)\n" in dry.stdout
        )

        out = meshtutor(home, "run", "4", "--auto", *cluster)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert "    Namespace foo exists and is not meshtutor's (meshtutor's journal" in out.stdout
        # The lesson was checked as a whole before its first apply: nothing of it was applied,
        # not even demo.yaml, which comes before the namespaces (test_lesson_ownership.py).
        assert "stopped before changing any object of this lesson" in out.stdout
        assert fake_apiserver.get_object("v1", "Namespace", "foo") == before
        assert fake_apiserver.get_object("v1", "Namespace", "bar") is None
        assert fake_apiserver.get_object("v1", "Namespace", "demo") is None
        assert Journal(CONTEXT).entries() == []

        # The learner adopts foo for the lesson's topology, then undoes everything.
        docs = load_file(NAMESPACES)
        with_backend(kubeconfig_path, lambda kube: kube.apply(docs), adopt=True)
        listed = meshtutor(home, "reset", "--dry-run", *cluster)
        assert listed.stdout.splitlines()[:3] == [
            "would delete Namespace legacy",
            "would delete Namespace bar",
            "would restore Namespace foo",
        ]
        assert listed.stdout.splitlines()[-1] == (
            f"3 object(s) in meshtutor's journal for {CONTEXT}"
        )
        done = meshtutor(home, "reset", *cluster)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[:3] == [
            'namespace "legacy" deleted',
            'namespace "bar" deleted',
            'namespace "foo" restored',
        ]
        assert done.stdout.splitlines()[-1] == f"meshtutor's journal for {CONTEXT} is empty"
        assert fake_apiserver.get_object("v1", "Namespace", "demo") is None
        after = fake_apiserver.get_object("v1", "Namespace", "foo")
        assert after is not None and before is not None and backup_of(after) == backup_of(before)

    def test_adopt_is_for_a_real_cluster(self, home: Path) -> None:
        out = meshtutor(home, "run", "4", "--adopt")
        assert out.returncode == 2
        assert "--adopt is for a real cluster: add --backend kube or --context" in out.stderr


def test_the_journal_tells_kinds_of_the_same_name_apart(home: Path) -> None:
    """Istio's and Linkerd's AuthorizationPolicy share a name; two versions of one group serve
    the same object."""
    journal = Journal(CONTEXT, "cluster-1")
    ref = ResourceRef("AuthorizationPolicy", "foo", "allow")
    journal.add({"apiVersion": "security.istio.io/v1", **_fields(ref)})
    assert journal.find(ref, "security.istio.io/v1beta1") is not None
    assert journal.find(ref, "policy.linkerd.io/v1alpha1") is None
    journal.add({"apiVersion": "policy.linkerd.io/v1alpha1", **_fields(ref)})
    assert len(journal.entries()) == 2
    journal.remove({"apiVersion": "security.istio.io/v1", **_fields(ref)})
    assert [e["apiVersion"] for e in journal.entries()] == ["policy.linkerd.io/v1alpha1"]


def _fields(ref: ResourceRef) -> dict[str, Any]:
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name, "cluster": "cluster-1"}


def test_a_damaged_journal_stops_meshtutor_and_is_kept(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path, home: Path
) -> None:
    """Read as empty, a damaged journal would be overwritten at the next apply: the backups of
    adopted objects would be gone and reset could not put the user's objects back."""
    user_policy(fake_apiserver)
    apply(kubeconfig_path, MESH_STRICT, adopt=True)
    path = Journal(CONTEXT).path
    damaged = path.read_bytes()[:-40]
    path.write_bytes(damaged)
    cluster = ["--kubeconfig", str(kubeconfig_path), "--context", CONTEXT]
    out = meshtutor(home, "reset", *cluster)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"meshtutor: meshtutor's journal {path} cannot be read (it is not meshtutor's JSON); it "
        "lists what meshtutor created on this cluster and the backups of what it adopted. "
        "Repair or move it aside (meshtutor then starts a new one and forgets what the old one "
        "listed)"
    ]
    # `run --auto` reports it as the lesson's failure, as it does every cluster error.
    out = meshtutor(home, "run", "4", "--auto", "--adopt", *cluster)
    assert out.returncode == 1 and "Traceback" not in out.stderr + out.stdout
    assert f"meshtutor's journal {path} cannot be read" in out.stdout
    assert path.read_bytes() == damaged


USER_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
        },
    },
}


def _template_annotations(fake: FakeAPIServer) -> dict[str, str]:
    obj = fake.get_object("apps/v1", "Deployment", "web", "shop")
    assert obj is not None
    return dict(obj["spec"]["template"]["metadata"].get("annotations") or {})


class TestRestart:
    """`rollout restart` changes the pod template: the same rules as an apply."""

    def test_a_users_deployment_is_not_restarted_unless_adopted_and_reset_restores_it(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        fake_apiserver.add_namespace("shop")
        fake_apiserver.put_object(USER_DEPLOYMENT, manager="kubectl-client-side-apply")
        before = fake_apiserver.get_object("apps/v1", "Deployment", "web", "shop")
        with pytest.raises(OwnershipConflict, match=r"Deployment shop/web exists and is not"):
            with_backend(kubeconfig_path, lambda kube: kube.restart("shop", "web"))
        assert not [w for w in writes(fake_apiserver) if "/deployments/" in w]
        assert _template_annotations(fake_apiserver) == {}

        with_backend(kubeconfig_path, lambda kube: kube.restart("shop", "web"), adopt=True)
        assert "kubectl.kubernetes.io/restartedAt" in _template_annotations(fake_apiserver)
        assert reset(kubeconfig_path) == ['deployment "web" restored']
        after = fake_apiserver.get_object("apps/v1", "Deployment", "web", "shop")
        assert after is not None and before is not None
        assert backup_of(after) == backup_of(before)

    def test_a_dry_run_restart_changes_nothing(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        apply(kubeconfig_path, NAMESPACES)
        apply(kubeconfig_path, SLEEP, namespace="foo")
        with_backend(kubeconfig_path, lambda kube: kube.restart("foo", "sleep"), dry_run=True)
        obj = fake_apiserver.get_object("apps/v1", "Deployment", "sleep", "foo")
        assert obj is not None
        assert "kubectl.kubernetes.io/restartedAt" not in (
            obj["spec"]["template"]["metadata"].get("annotations") or {}
        )
