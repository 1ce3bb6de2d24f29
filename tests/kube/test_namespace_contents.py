"""Deleting a namespace deletes everything in it: meshtutor deletes a namespace it created only
when it holds nothing but meshtutor's own objects and what the cluster puts in every namespace.

Before: a lesson's delete, and ``reset``, deleted namespace ``foo`` that meshtutor had created,
with the deployment, the configuration and the volume claim the user had since put in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer
from kube_helpers import ROOT
from test_ownership import NAMESPACES, apply, reset, with_backend

from meshtutor.backends.kube import Journal
from meshtutor.model import load_file

SLEEP = ROOT / "manifests/samples/sleep.yaml"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def obj(api_version: str, kind: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": "foo"},
        **extra,
    }


#: What the cluster and the mesh put in every namespace: never the user's.
CLUSTER_MADE = [
    obj("v1", "ConfigMap", "kube-root-ca.crt", data={"ca.crt": "x"}),
    obj("v1", "ConfigMap", "istio-ca-root-cert", data={"root-cert.pem": "x"}),
    obj("v1", "ServiceAccount", "default"),
    obj("v1", "Secret", "default-token-abcde", type="kubernetes.io/service-account-token"),
]

USERS = [
    obj(
        "apps/v1",
        "Deployment",
        "web",
        spec={
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    ),
    obj("v1", "ConfigMap", "settings", data={"a": "b"}),
    obj(
        "v1", "PersistentVolumeClaim", "data", spec={"resources": {"requests": {"storage": "1Gi"}}}
    ),
    obj("security.istio.io/v1", "AuthorizationPolicy", "allow-web", spec={}),
]


def setup(fake: FakeAPIServer, config: Path, users: list[dict[str, Any]]) -> None:
    apply(config, NAMESPACES)
    apply(config, SLEEP, namespace="foo")  # meshtutor's, inside foo
    for item in CLUSTER_MADE + users:
        fake.put_object(item)


def test_a_lesson_delete_leaves_a_namespace_holding_the_users_objects(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    setup(fake_apiserver, kubeconfig_path, USERS)
    lines = with_backend(kubeconfig_path, lambda kube: kube.delete(load_file(NAMESPACES)))
    assert lines[:2] == [
        'namespace "foo" left alone: it holds 4 objects meshtutor did not create (deployment '
        "web, configmap settings, persistentvolumeclaim data, authorizationpolicy allow-web), "
        "which deleting it would delete",
        'namespace "bar" deleted',
    ]
    assert fake_apiserver.get_object("apps/v1", "Deployment", "web", "foo") is not None
    assert fake_apiserver.get_object("v1", "Namespace", "foo") is not None


def test_reset_keeps_such_a_namespace_in_its_journal_and_deletes_it_once_it_is_empty(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    setup(fake_apiserver, kubeconfig_path, USERS[1:2])
    lines = reset(kubeconfig_path)
    assert (
        'namespace "foo" left alone: it holds 1 object meshtutor did not create (configmap '
        "settings), which deleting it would delete; meshtutor keeps it in its journal, and "
        "`meshtutor reset` tries again"
    ) in lines
    assert 'deployment "sleep" deleted' in lines  # meshtutor's own, inside foo
    assert fake_apiserver.get_object("v1", "ConfigMap", "settings", "foo") is not None
    assert [e["name"] for e in Journal(CONTEXT).entries()] == ["foo"]

    fake_apiserver.remove_object("v1", "ConfigMap", "settings", "foo")
    assert reset(kubeconfig_path) == ['namespace "foo" deleted']
    assert fake_apiserver.get_object("v1", "Namespace", "foo") is None
    assert Journal(CONTEXT).entries() == []


def test_a_namespace_with_only_meshtutors_and_the_clusters_objects_is_deleted(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    setup(fake_apiserver, kubeconfig_path, [])
    fake_apiserver.add_pod("foo", "sleep-abc", owner="sleep")  # the deployment's pod
    lines = with_backend(kubeconfig_path, lambda kube: kube.delete(load_file(NAMESPACES)))
    assert lines[0] == 'namespace "foo" deleted'


def test_a_bare_pod_of_the_user_is_theirs(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    setup(fake_apiserver, kubeconfig_path, [])
    fake_apiserver.add_pod("foo", "debug")
    lines = with_backend(kubeconfig_path, lambda kube: kube.delete(load_file(NAMESPACES)))
    assert lines[0].startswith(
        'namespace "foo" left alone: it holds 1 object meshtutor did not create (pod debug)'
    )
