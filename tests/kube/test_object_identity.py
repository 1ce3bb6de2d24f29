"""What makes an object meshtutor's: the uid its journal recorded, on the cluster it recorded.

A context name is not a cluster: ``kind delete cluster; kind create cluster`` gives a new
cluster under the same name, where the user's own ``istio-system/default`` is not the object
meshtutor created on the old one. A journal entry is not an object either: an apply that failed
after its entry was written must not make a later object of that name meshtutor's. Each test
plays the scenario on the fake API server (a second server stands for the recreated cluster).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer, FakeAPIServerFactory
from kube_helpers import ROOT
from test_ownership import (
    MESH_STRICT,
    NAMESPACES,
    USER_POLICY,
    apply,
    reset,
    with_backend,
    writes,
)

from meshtutor.backends.kube import (
    MANAGED_BY,
    Journal,
    KubeBackend,
    KubeError,
    OwnershipConflict,
)
from meshtutor.model import load_file

POLICY = ("security.istio.io/v1", "PeerAuthentication", "default", "istio-system")
SLEEP = ROOT / "manifests/samples/sleep.yaml"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def recreate(factory: FakeAPIServerFactory, config: Path) -> FakeAPIServer:
    """``kind delete cluster; kind create cluster``: a new cluster, the same context name (kind
    rewrites the kubeconfig entry with the new server's address and CA)."""
    fresh = factory()
    fresh.kubeconfig(config, context_name=CONTEXT)
    return fresh


def without_status(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The object but its status (the fake computes a deployment's, with the time of asking)."""
    return None if obj is None else {k: v for k, v in obj.items() if k != "status"}


def users_policy(fake: FakeAPIServer) -> dict[str, Any]:
    fake.add_namespace("istio-system")
    return fake.put_object(USER_POLICY, manager="kubectl-client-side-apply")


class TestAnotherClusterOfTheSameName:
    def test_the_users_object_on_the_new_cluster_is_not_meshtutors(
        self, fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
    ) -> None:
        """Before: the journal's entry for istio-system/default (created on the old cluster)
        made the user's own policy on the new cluster meshtutor's: overwritten without
        --adopt, deleted by a lesson's delete, deleted by reset."""
        config = tmp_path / "kubeconfig"
        old = fake_apiserver_factory()
        old.kubeconfig(config, context_name=CONTEXT)
        old.add_namespace("istio-system")
        apply(config, MESH_STRICT)  # meshtutor creates istio-system/default there

        new = recreate(fake_apiserver_factory, config)
        before = users_policy(new)
        new.clear_requests()
        with pytest.raises(OwnershipConflict, match=r"^PeerAuthentication istio-system/default"):
            apply(config, MESH_STRICT)
        assert new.get_object(*POLICY) == before

        lines = with_backend(config, lambda kube: kube.delete(load_file(MESH_STRICT)))
        assert lines == [
            'peerauthentication "default" left alone: PeerAuthentication istio-system/default '
            "is not meshtutor's (it deletes only what it created or adopted)"
        ]
        assert new.get_object(*POLICY) == before

        lines = reset(config)
        assert lines == [
            f"1 entry of meshtutor's journal for {CONTEXT} is from another cluster of that name "
            "(its kube-system namespace differs): not acted on, dropped, and kept in "
            f"{Journal(CONTEXT).path.with_suffix('')}.other-clusters.json"
        ]
        assert new.get_object(*POLICY) == before
        assert writes(new) == []
        assert Journal(CONTEXT).entries() == []
        kept = json.loads(
            Path(f"{Journal(CONTEXT).path.with_suffix('')}.other-clusters.json").read_text()
        )
        assert [(e["kind"], e["name"]) for e in kept] == [("PeerAuthentication", "default")]

    def test_reset_never_puts_the_old_clusters_backup_on_the_new_cluster(
        self, fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
    ) -> None:
        """Before: reset replaced the new cluster's namespace foo with the backup of the old
        cluster's foo (its labels and annotations)."""
        config = tmp_path / "kubeconfig"
        old = fake_apiserver_factory()
        old.kubeconfig(config, context_name=CONTEXT)
        old.add_namespace("foo", {"team": "old"})
        apply(config, NAMESPACES, adopt=True)

        new = recreate(fake_apiserver_factory, config)
        new.add_namespace("foo", {"team": "new", "istio-injection": "enabled"})
        before = new.get_object("v1", "Namespace", "foo")
        new.clear_requests()
        lines = reset(config)
        assert len(lines) == 1 and lines[0].startswith(
            f"3 entries of meshtutor's journal for {CONTEXT} are from another cluster"
        )
        assert new.get_object("v1", "Namespace", "foo") == before
        assert writes(new) == []


class TestAStaleEntry:
    def test_an_apply_that_failed_after_its_entry_leaves_the_name_free(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """Before: the "created" entry of a deployment whose apply failed made the user's own
        deployment of that name meshtutor's: overwritten, and deleted by reset."""

        def sleep() -> dict[str, Any] | None:
            found = fake_apiserver.get_object("apps/v1", "Deployment", "sleep", "foo")
            return without_status(found)

        apply(kubeconfig_path, NAMESPACES)
        fake_apiserver.fail_next("*", r"/namespaces/foo/deployments", 500)
        with pytest.raises(KubeError):
            apply(kubeconfig_path, SLEEP, namespace="foo")

        users = load_file(SLEEP, default_namespace="foo")[-1].raw
        users = {**users, "metadata": {**users["metadata"], "namespace": "foo"}}
        before = fake_apiserver.put_object(users, manager="kubectl-client-side-apply")
        with pytest.raises(OwnershipConflict, match=r"^Deployment foo/sleep exists"):
            apply(kubeconfig_path, SLEEP, namespace="foo")
        assert sleep() == without_status(before)

        fake_apiserver.remove_object("v1", "Namespace", "foo")  # reset would delete foo
        fake_apiserver.add_namespace("foo")
        fake_apiserver.put_object(users)
        before = fake_apiserver.get_object("apps/v1", "Deployment", "sleep", "foo")
        reset(kubeconfig_path)
        assert sleep() == without_status(before)

    def test_an_object_meshtutor_created_whose_answer_was_lost_is_still_meshtutors(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """The create reached the server, its answer did not reach meshtutor: the entry has no
        uid yet, and the object carries the creation token the entry recorded."""
        fake_apiserver.disconnect_next("POST", r"/api/v1/namespaces$")
        with pytest.raises(KubeError):
            apply(kubeconfig_path, NAMESPACES)
        # The fake stored nothing (it hung up before serving): create it as if the server had.
        (entry,) = Journal(CONTEXT).entries()
        assert "uid" not in entry
        ns = load_file(NAMESPACES)[0].raw
        labels = {**ns["metadata"].get("labels", {}), MANAGED_BY: "meshtutor"}
        fake_apiserver.put_object(
            {
                **ns,
                "metadata": {
                    **ns["metadata"],
                    "labels": labels,
                    "annotations": {"meshtutor.dev/created": entry["token"]},
                },
            }
        )
        apply(kubeconfig_path, NAMESPACES)  # meshtutor's: no conflict
        entries = Journal(CONTEXT).entries()
        assert (
            entries[0]["uid"]
            == fake_apiserver.get_object("v1", "Namespace", "foo")["metadata"]["uid"]
        )  # type: ignore[index]


def test_an_adopted_object_meshtutor_deleted_and_created_again_is_still_restored(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    """The journal follows the object meshtutor created again (a new uid), so reset still
    recognises it and puts the user's original back."""
    before = users_policy(fake_apiserver)
    apply(kubeconfig_path, MESH_STRICT, adopt=True)
    with_backend(kubeconfig_path, lambda kube: kube.delete(load_file(MESH_STRICT)))
    apply(kubeconfig_path, MESH_STRICT)  # a later step applies it again: meshtutor creates it
    (entry,) = Journal(CONTEXT).entries()
    assert (
        entry["adopted"] and entry["uid"] == fake_apiserver.get_object(*POLICY)["metadata"]["uid"]
    )  # type: ignore[index]
    assert reset(kubeconfig_path) == ['peerauthentication "default" restored']
    after = fake_apiserver.get_object(*POLICY)
    assert after is not None and after["spec"] == before["spec"]
    assert after["metadata"]["labels"] == before["metadata"]["labels"]


class TestLabels:
    def test_a_label_alone_does_not_make_an_object_meshtutors(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """A copy of meshtutor's object (a backup restored, a GitOps copy) carries its label."""
        fake_apiserver.add_namespace("istio-system")
        fake_apiserver.put_object(
            {
                **USER_POLICY,
                "metadata": {**USER_POLICY["metadata"], "labels": {MANAGED_BY: "meshtutor"}},
            }
        )
        with pytest.raises(OwnershipConflict):
            apply(kubeconfig_path, MESH_STRICT)
        lines = with_backend(kubeconfig_path, lambda kube: kube.delete(load_file(MESH_STRICT)))
        assert lines[0].startswith('peerauthentication "default" left alone')

    def test_an_adopted_object_is_not_labelled_and_a_lost_journal_never_deletes_it(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """Before: the adopted policy got meshtutor's labels from the apply; with its journal
        entry lost, the label made a later delete remove the user's object."""
        users_policy(fake_apiserver)
        apply(kubeconfig_path, MESH_STRICT, adopt=True, lesson="mesh-wide-strict")
        taken = fake_apiserver.get_object(*POLICY)
        assert taken is not None and taken["spec"]["mtls"]["mode"] == "STRICT"
        assert MANAGED_BY not in taken["metadata"]["labels"]
        assert "meshtutor.dev/lesson" not in taken["metadata"]["labels"]

        Journal(CONTEXT).path.unlink()
        lines = with_backend(kubeconfig_path, lambda kube: kube.delete(load_file(MESH_STRICT)))
        assert lines[0].startswith('peerauthentication "default" left alone')
        assert fake_apiserver.get_object(*POLICY) is not None


class TestRaces:
    """Another client writes between meshtutor's read and its write (``before_next``)."""

    def test_an_object_created_by_someone_else_before_meshtutors_create_is_left_alone(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        """Before: meshtutor's forced server-side apply took the user's new policy over."""
        fake_apiserver.add_namespace("istio-system")
        fake_apiserver.before_next(
            "POST",
            r"/istio-system/peerauthentications$",
            lambda: fake_apiserver.put_object(USER_POLICY, manager="kubectl-create"),
        )
        with pytest.raises(KubeError) as caught:
            apply(kubeconfig_path, MESH_STRICT)
        assert str(caught.value) == (
            "PeerAuthentication istio-system/default was created by someone else after meshtutor "
            "read the cluster (409 AlreadyExists): it is not meshtutor's, and meshtutor left it "
            "alone and stopped here; run the step again to see it as a conflict (--adopt takes "
            "it over)"
        )
        after = fake_apiserver.get_object(*POLICY)
        assert after is not None and after["spec"]["mtls"]["mode"] == "PERMISSIVE"
        assert Journal(CONTEXT).entries() == []

    def test_meshtutors_object_changed_by_someone_else_is_not_overwritten(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
    ) -> None:
        fake_apiserver.add_namespace("istio-system")
        apply(kubeconfig_path, MESH_STRICT)

        def edit() -> None:
            obj = fake_apiserver.get_object(*POLICY)
            assert obj is not None
            obj["spec"] = {"mtls": {"mode": "DISABLE"}}
            fake_apiserver.put_object(obj, manager="kubectl-edit")

        fake_apiserver.before_next("PATCH", r"/peerauthentications/default$", edit)
        with pytest.raises(KubeError) as caught:
            apply(kubeconfig_path, MESH_STRICT)
        assert str(caught.value) == (
            "PeerAuthentication istio-system/default changed after meshtutor read it (409 "
            "Conflict: someone else wrote it in between): meshtutor did not change it and "
            "stopped here; run the step again"
        )
        after = fake_apiserver.get_object(*POLICY)
        assert after is not None and after["spec"]["mtls"]["mode"] == "DISABLE"


class TestFieldOwnership:
    def test_a_field_dropped_from_the_manifest_leaves_the_object_created_with_post(
        self, fake_apiserver: FakeAPIServer, kubeconfig_path: Path, tmp_path: Path
    ) -> None:
        """An object created with POST belongs to its creator's Update entry; meshtutor moves
        that entry to its Apply entry (as kubectl's csaupgrade does), so that a later apply
        without a label removes it, as `kubectl apply --server-side` would."""
        first = tmp_path / "ns.yaml"
        first.write_text(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab\n  labels: {a: '1', b: '2'}\n"
        )
        apply(kubeconfig_path, first)
        first.write_text(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab\n  labels: {a: '1'}\n"
        )
        apply(kubeconfig_path, first)
        labels = fake_apiserver.get_object("v1", "Namespace", "lab")["metadata"]["labels"]  # type: ignore[index]
        assert "b" not in labels and labels["a"] == "1"


ADD_ENTRIES = """
import sys
from meshtutor.backends.kube import Journal
journal = Journal(sys.argv[1])
for i in range(int(sys.argv[3])):
    journal.add({"apiVersion": "v1", "kind": "ConfigMap", "namespace": "x",
                 "name": f"{sys.argv[2]}-{i}", "cluster": "c", "uid": f"u-{sys.argv[2]}-{i}"})
"""


def test_processes_writing_the_journal_at_once_lose_nothing(home: Path) -> None:
    """The app and `meshtutor run` both write the journal. Before: each read it, changed it
    and wrote it back through one fixed temporary name, unlocked: entries (and with them the
    backups of adopted objects) were lost, or a writer died on the other's rename."""
    env = {**os.environ, "MESHTUTOR_HOME": str(home)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", ADD_ENTRIES, CONTEXT, f"w{n}", "40"],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    errors = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0, 0], errors
    names = {e["name"] for e in Journal(CONTEXT).entries()}
    assert len(names) == 160
    leftovers = [p.name for p in Journal(CONTEXT).path.parent.iterdir() if ".tmp" in p.name]
    assert leftovers == []


@pytest.mark.parametrize(
    "entry, why",
    [
        ({"kind": "Namespace", "name": "foo", "cluster": "c"}, "entry 1 has no apiVersion"),
        (
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "name": "foo",
                "cluster": "c",
                "adopted": True,
            },
            "entry 1 is adopted and has no backup",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "name": "foo",
                "cluster": "c",
                "namespace": 3,
            },
            "entry 1 has a namespace that is not text",
        ),
        ({"apiVersion": "v1", "kind": "Namespace", "name": "foo"}, "entry 1 has no cluster"),
    ],
)
def test_a_journal_entry_missing_a_field_is_one_line(
    entry: dict[str, Any], why: str, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    """Before: an entry without apiVersion, or an adopted one without backup, passed the
    check and raised KeyError in reset."""
    path = Journal(CONTEXT).path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([entry]))
    with pytest.raises(KubeError) as caught:
        reset(kubeconfig_path)
    assert str(caught.value).startswith(f"meshtutor's journal {path} cannot be read ({why});")


def test_contexts_whose_names_differ_only_in_punctuation_keep_apart(
    fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
) -> None:
    """Before: `kind-a@b`, `kind-a:b` and `kind-a_b` shared one journal and one discovery
    cache: the cache of a cluster with Istio made meshtutor believe a cluster without it had
    PeerAuthentication."""
    with_istio = fake_apiserver_factory()
    without = fake_apiserver_factory(crd_groups=())
    first = with_istio.kubeconfig(tmp_path / "one", context_name="kind-a@b")
    second = without.kubeconfig(tmp_path / "two", context_name="kind-a:b")
    with_istio.add_namespace("istio-system")
    without.add_namespace("istio-system")

    async def go(config: Path, context: str) -> Any:
        kube = KubeBackend("istio", kubeconfig=str(config), context=context)
        await kube.start()
        try:
            return await kube.apply(load_file(MESH_STRICT))
        finally:
            await kube.stop()

    asyncio.run(go(first, "kind-a@b"))
    with pytest.raises(KubeError, match=r"does not know PeerAuthentication"):
        asyncio.run(go(second, "kind-a:b"))
    assert len({Journal(c).path for c in ("kind-a@b", "kind-a:b", "kind-a_b")}) == 3
