"""The FakeAPIServer test double, driven with the official ``kubernetes`` client only.

These tests pin the protocol the double speaks (what a real API server answers the
official client), so that tests of ``KubeBackend`` against it mean something. No meshtutor
code is used here.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from apiserver import CONTEXT, ExecFailure, FakeAPIServer, FakeAPIServerFactory
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    ConflictError,
    DynamicApiError,
    ForbiddenError,
    NotFoundError,
    ResourceNotFoundError,
)
from kubernetes.stream import stream
from websocket import WebSocketConnectionClosedException

MANAGED_BY = "app.kubernetes.io/managed-by"


def _deployment(name: str = "web", namespace: str = "demo", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": name, MANAGED_BY: "meshtutor", **labels},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "registry.local/web:1"}]},
            },
        },
    }


def _peer_authentication(namespace: str = "demo", mode: str = "STRICT") -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {
            "name": "default",
            "namespace": namespace,
            "labels": {MANAGED_BY: "meshtutor"},
        },
        "spec": {"mtls": {"mode": mode}},
    }


def _status(e: ApiException) -> dict[str, Any]:
    body = json.loads(e.body)
    assert isinstance(body, dict)
    return body


def _exec(core: client.CoreV1Api, pod: str, namespace: str, **kwargs: Any) -> Any:
    return stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=kwargs.pop("command", ["curl", "-sS", "http://backend.demo:8080/"]),
        stdin=False,
        stdout=True,
        stderr=True,
        tty=False,
        **kwargs,
    )


# ---- connection, kubeconfig, authentication ---------------------------------------------


def test_kubeconfig_is_what_the_official_loader_accepts(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path, api_client: ApiClient
) -> None:
    assert api_client.configuration.host == fake_apiserver.url
    assert fake_apiserver.url.startswith("https://127.0.0.1:")
    namespaces = client.CoreV1Api(api_client).list_namespace()
    assert [n.metadata.name for n in namespaces.items] == [
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
    ]
    assert namespaces.items[0].metadata.labels == {"kubernetes.io/metadata.name": "default"}
    sent = fake_apiserver.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {fake_apiserver.token}"
    assert sent.headers["user-agent"].startswith("OpenAPI-Generator/")
    contexts, active = config.list_kube_config_contexts(config_file=str(kubeconfig_path))
    assert [c["name"] for c in contexts] == [CONTEXT]
    assert active["context"] == {"cluster": CONTEXT, "user": CONTEXT}


def test_a_wrong_token_is_unauthorized(fake_apiserver: FakeAPIServer, tmp_path: Path) -> None:
    kubeconfig = fake_apiserver.kubeconfig(tmp_path / "kc", token="not-the-token")
    with (
        config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT) as api,
        pytest.raises(ApiException) as err,
    ):
        client.CoreV1Api(api).list_namespace()
    assert err.value.status == 401
    assert _status(err.value)["reason"] == "Unauthorized"


def test_plain_http(fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path) -> None:
    server = fake_apiserver_factory(tls=False, token=None)
    assert server.url.startswith("http://127.0.0.1:")
    kubeconfig = server.kubeconfig(tmp_path / "kc")
    with config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT) as api:
        assert client.VersionApi(api).get_code().git_version == "v1.31.0"


def test_stop_leaves_no_listening_socket_and_no_thread(
    fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
) -> None:
    server = fake_apiserver_factory()
    kubeconfig = server.kubeconfig(tmp_path / "kc")
    api = config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT)
    client.CoreV1Api(api).list_namespace()  # a keep-alive connection stays open
    port = server.port
    server.stop()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    # Connection refused is the client's usual MaxRetryError (urllib3 retries 3 times).
    with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
        client.CoreV1Api(api).list_namespace()
    assert isinstance(err.value.reason, urllib3.exceptions.NewConnectionError)
    api.close()


def test_a_dynamic_client_for_a_stopped_server_fails_on_construction(
    fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
) -> None:
    server = fake_apiserver_factory()
    kubeconfig = server.kubeconfig(tmp_path / "kc")
    server.stop()
    with (
        config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT) as api,
        pytest.raises(urllib3.exceptions.MaxRetryError),
    ):
        DynamicClient(api, cache_file=str(tmp_path / "cache.json"))


# ---- discovery ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_version", "kind", "namespaced", "subresources"),
    [
        ("v1", "Pod", True, {"exec", "log", "status", "attach", "portforward"}),
        ("v1", "Namespace", False, {"status", "finalize"}),
        ("apps/v1", "Deployment", True, {"status", "scale"}),
        ("networking.k8s.io/v1", "NetworkPolicy", True, set()),
        ("security.istio.io/v1", "PeerAuthentication", True, {"status"}),
        ("security.istio.io/v1beta1", "AuthorizationPolicy", True, {"status"}),
        ("networking.istio.io/v1alpha3", "DestinationRule", True, {"status"}),
        ("policy.linkerd.io/v1beta3", "Server", True, set()),
        ("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", True, set()),
        ("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", True, set()),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", True, {"status"}),
    ],
)
def test_dynamic_discovery_finds_core_apps_istio_and_linkerd_kinds(
    dynamic_client: DynamicClient,
    api_version: str,
    kind: str,
    namespaced: bool,
    subresources: set[str],
) -> None:
    resource = dynamic_client.resources.get(api_version=api_version, kind=kind)
    assert resource.group_version == api_version
    assert resource.kind == kind
    assert resource.namespaced is namespaced
    assert set(resource.subresources) == subresources
    assert "patch" in resource.verbs


def test_what_the_dynamic_client_requests_during_discovery(
    fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient
) -> None:
    # Construction: /version, then /apis (the legacy APIGroupList; no aggregated Accept).
    first = [(r.method, r.path) for r in fake_apiserver.requests]
    assert first == [("GET", "/version"), ("GET", "/apis")]
    assert {r.headers["accept"] for r in fake_apiserver.requests} == {"application/json"}
    fake_apiserver.clear_requests()
    dynamic_client.resources.get(api_version="apps/v1", kind="Deployment")
    assert [r.path for r in fake_apiserver.requests] == ["/apis/apps/v1"]
    fake_apiserver.clear_requests()
    # api_version="v1" names no group: every group with a v1 is fetched to find the kind.
    dynamic_client.resources.get(api_version="v1", kind="Pod")
    paths = {r.path for r in fake_apiserver.requests}
    assert {"/api/v1", "/apis/security.istio.io/v1", "/apis/networking.k8s.io/v1"} <= paths
    fake_apiserver.clear_requests()
    dynamic_client.resources.get(api_version="v1", kind="Service", prefix="api")
    assert fake_apiserver.requests == []  # already discovered, and cached


def test_discovery_documents_parse_as_the_typed_models(api_client: ApiClient) -> None:
    version = client.VersionApi(api_client).get_code()
    assert (version.major, version.minor) == ("1", "31")
    assert client.CoreApi(api_client).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(api_client).get_api_versions().groups}
    assert list(groups)[:4] == [
        "apps",
        "authorization.k8s.io",
        "networking.k8s.io",
        "gateway.networking.k8s.io",
    ]
    assert [v.version for v in groups["security.istio.io"].versions] == ["v1", "v1beta1"]
    assert [v.version for v in groups["networking.istio.io"].versions] == [
        "v1",
        "v1beta1",
        "v1alpha3",
    ]
    assert [v.version for v in groups["policy.linkerd.io"].versions] == [
        "v1beta3",
        "v1beta2",
        "v1beta1",
        "v1alpha1",
    ]
    assert (
        groups["policy.linkerd.io"].preferred_version.group_version == "policy.linkerd.io/v1beta3"
    )
    apps = {r.name: r for r in client.AppsV1Api(api_client).get_api_resources().resources}
    assert apps["deployments"].singular_name == "deployment"
    assert apps["deployments"].short_names == ["deploy"]
    assert apps["deployments/status"].kind == "Deployment"
    assert (apps["deployments/scale"].group, apps["deployments/scale"].kind) == (
        "autoscaling",
        "Scale",
    )
    core = {r.name: r for r in client.CoreV1Api(api_client).get_api_resources().resources}
    assert core["pods/exec"].kind == "PodExecOptions"
    assert core["pods/exec"].verbs == ["create", "get"]
    assert core["namespaces"].namespaced is False


def _raw_get(api_client: ApiClient, path: str, accept: str) -> tuple[int, dict[str, str], Any]:
    response = api_client.call_api(
        "GET",
        api_client.configuration.host + path,
        header_params={
            "Accept": accept,
            "authorization": api_client.configuration.auth_settings()["BearerToken"]["value"],
        },
    )
    data = response.read()
    return response.status, dict(response.headers), json.loads(data)


def test_aggregated_discovery_is_answered_when_asked_for(
    fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
) -> None:
    accept = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
        "application/json"
    )
    server = fake_apiserver_factory(crd_groups=("security.istio.io",))
    kubeconfig = server.kubeconfig(tmp_path / "kc")
    with config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT) as api:
        status, headers, body = _raw_get(api, "/apis", accept)
        assert status == 200
        assert headers["Content-Type"] == (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        )
        assert body["kind"] == "APIGroupDiscoveryList"
        names = [item["metadata"]["name"] for item in body["items"]]
        assert names == ["apps", "authorization.k8s.io", "networking.k8s.io", "security.istio.io"]
        pa = body["items"][3]["versions"][0]["resources"][1]
        assert pa["resource"] == "peerauthentications"
        assert pa["responseKind"] == {
            "group": "security.istio.io",
            "version": "v1",
            "kind": "PeerAuthentication",
        }
        assert pa["scope"] == "Namespaced"
        _, _, core = _raw_get(api, "/api", accept)
        pods = next(
            r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "pods"
        )
        assert {s["subresource"] for s in pods["subresources"]} >= {"exec", "log", "status"}
        # A plain Accept gets the legacy document.
        _, headers, legacy = _raw_get(api, "/apis", "application/json")
        assert headers["Content-Type"] == "application/json"
        assert legacy["kind"] == "APIGroupList"
    server.aggregated_discovery = False  # an older server: the legacy document regardless
    with config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT) as api:
        _, headers, legacy = _raw_get(api, "/apis", accept)
    assert legacy["kind"] == "APIGroupList"


def test_a_cluster_without_the_istio_crds(
    fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
) -> None:
    server = fake_apiserver_factory(crd_groups=("policy.linkerd.io",))
    kubeconfig = server.kubeconfig(tmp_path / "kc")
    with config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT) as api:
        dyn = DynamicClient(api, cache_file=str(tmp_path / "cache.json"))
        with pytest.raises(ResourceNotFoundError):
            dyn.resources.get(api_version="security.istio.io/v1", kind="PeerAuthentication")
        assert dyn.resources.get(api_version="policy.linkerd.io/v1beta3", kind="Server").namespaced
        groups = [g.name for g in client.ApisApi(api).get_api_versions().groups]
        assert "security.istio.io" not in groups
        assert "policy.linkerd.io" in groups
        with pytest.raises(ApiException) as err:
            client.CustomObjectsApi(api).list_namespaced_custom_object(
                "security.istio.io", "v1", "demo", "peerauthentications"
            )
    assert err.value.status == 404
    assert _status(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server could not find the requested resource",
        "reason": "NotFound",
        "details": {},
        "code": 404,
    }


def test_crds_installed_after_discovery_are_found_on_the_next_lookup(
    fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
) -> None:
    server = fake_apiserver_factory(crd_groups=())
    kubeconfig = server.kubeconfig(tmp_path / "kc")
    with config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT) as api:
        dyn = DynamicClient(api, cache_file=str(tmp_path / "cache.json"))
        with pytest.raises(ResourceNotFoundError):
            dyn.resources.get(api_version="security.istio.io/v1", kind="PeerAuthentication")
        server.install_crds("security.istio.io", "networking.istio.io")
        # A miss invalidates the LazyDiscoverer's cache, so the new group is found.
        pa = dyn.resources.get(api_version="security.istio.io/v1", kind="PeerAuthentication")
        assert pa.kind == "PeerAuthentication"


# ---- objects -------------------------------------------------------------------------


def test_server_side_apply_creates_then_updates(
    fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient
) -> None:
    fake_apiserver.add_namespace("demo")
    deployments = dynamic_client.resources.get(api_version="apps/v1", kind="Deployment")
    fake_apiserver.clear_requests()
    created = deployments.server_side_apply(
        body=_deployment(),
        name="web",
        namespace="demo",
        field_manager="meshtutor",
        force_conflicts=True,
    )
    sent = fake_apiserver.requests[-1]
    assert (sent.method, sent.path, sent.status) == (
        "PATCH",
        "/apis/apps/v1/namespaces/demo/deployments/web",
        201,
    )
    assert sent.query == {"fieldManager": ["meshtutor"], "force": ["true"]}
    assert sent.content_type == "application/apply-patch+yaml"
    assert sent.body["metadata"]["labels"][MANAGED_BY] == "meshtutor"
    meta = created.metadata
    assert meta.uid and meta.resourceVersion and meta.creationTimestamp
    assert meta.generation == 1
    assert [(m.manager, m.operation) for m in meta.managedFields] == [("meshtutor", "Apply")]
    assert created.status.observedGeneration == 1

    # The same apply again is a no-op: same resourceVersion, answered 200.
    again = deployments.server_side_apply(
        body=_deployment(),
        name="web",
        namespace="demo",
        field_manager="meshtutor",
        force_conflicts=True,
    )
    assert fake_apiserver.requests[-1].status == 200
    assert again.metadata.resourceVersion == meta.resourceVersion

    changed = _deployment(tier="frontend")
    changed["spec"]["replicas"] = 3
    updated = deployments.server_side_apply(
        body=changed, name="web", namespace="demo", field_manager="meshtutor", force_conflicts=True
    )
    assert fake_apiserver.requests[-1].status == 200
    assert updated.metadata.uid == meta.uid
    assert int(updated.metadata.resourceVersion) > int(meta.resourceVersion)
    assert updated.metadata.generation == 2
    assert updated.spec.replicas == 3
    assert updated.metadata.labels["tier"] == "frontend"


def test_apply_merges_labels_by_field_manager(
    fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient
) -> None:
    fake_apiserver.add_namespace("demo")
    pas = dynamic_client.resources.get(
        api_version="security.istio.io/v1", kind="PeerAuthentication"
    )
    body = _peer_authentication()
    body["metadata"]["labels"]["lesson"] = "mtls-strict"
    pas.server_side_apply(
        body=body, namespace="demo", field_manager="meshtutor", force_conflicts=True
    )
    # Someone else labels the object.
    other = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "demo", "labels": {"owner": "alice"}},
    }
    pas.server_side_apply(body=other, namespace="demo", field_manager="kubectl")
    # meshtutor drops its "lesson" label: it goes; alice's label stays; spec is replaced.
    again = pas.server_side_apply(
        body=_peer_authentication(mode="PERMISSIVE"),
        namespace="demo",
        field_manager="meshtutor",
        force_conflicts=True,
    )
    assert again.metadata.labels.to_dict() == {MANAGED_BY: "meshtutor", "owner": "alice"}
    assert again.spec.mtls.mode == "PERMISSIVE"
    assert {m.manager for m in again.metadata.managedFields} == {"meshtutor", "kubectl"}


def test_apply_conflicts_without_force(
    fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient
) -> None:
    fake_apiserver.add_namespace("demo")
    pas = dynamic_client.resources.get(
        api_version="security.istio.io/v1", kind="PeerAuthentication"
    )
    pas.server_side_apply(body=_peer_authentication(), namespace="demo", field_manager="meshtutor")
    with pytest.raises(ConflictError) as err:
        pas.server_side_apply(
            body=_peer_authentication(mode="DISABLE"),
            namespace="demo",
            field_manager="someone-else",
        )
    status = _status(err.value)
    assert (status["code"], status["reason"]) == (409, "Conflict")
    assert 'conflict with "meshtutor"' in status["message"]
    # force=true takes the field over.
    taken = pas.server_side_apply(
        body=_peer_authentication(mode="DISABLE"),
        namespace="demo",
        field_manager="someone-else",
        force_conflicts=True,
    )
    assert taken.spec.mtls.mode == "DISABLE"


def test_apply_needs_a_field_manager_and_an_existing_namespace(
    fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient
) -> None:
    pas = dynamic_client.resources.get(
        api_version="security.istio.io/v1", kind="PeerAuthentication"
    )
    with pytest.raises(NotFoundError) as err:
        pas.server_side_apply(body=_peer_authentication("nowhere"), field_manager="meshtutor")
    assert _status(err.value)["message"] == 'namespaces "nowhere" not found'
    fake_apiserver.add_namespace("demo")
    with pytest.raises(ApiException) as err2:
        pas.server_side_apply(body=_peer_authentication())
    assert err2.value.status == 400
    assert "fieldManager is required for apply requests" in _status(err2.value)["message"]


def test_invalid_labels_are_rejected_as_a_real_server_does(
    fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient
) -> None:
    fake_apiserver.add_namespace("demo")
    deployments = dynamic_client.resources.get(api_version="apps/v1", kind="Deployment")
    body = _deployment()
    body["metadata"]["labels"]["lesson"] = "mtls/strict"
    with pytest.raises(ApiException) as err:
        deployments.server_side_apply(body=body, namespace="demo", field_manager="meshtutor")
    status = _status(err.value)
    assert (err.value.status, status["reason"]) == (422, "Invalid")
    assert status["message"].startswith('Deployment.apps "web" is invalid: metadata.labels')


def test_dry_run_answers_without_storing(
    fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient
) -> None:
    fake_apiserver.add_namespace("demo")
    deployments = dynamic_client.resources.get(api_version="apps/v1", kind="Deployment")
    preview = deployments.server_side_apply(
        body=_deployment(), namespace="demo", field_manager="meshtutor", dry_run="All"
    )
    assert preview.metadata.name == "web"
    assert fake_apiserver.requests[-1].param("dryRun") == "All"
    assert fake_apiserver.get_object("apps/v1", "Deployment", "web", "demo") is None


def test_get_list_and_delete(fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient) -> None:
    for ns in ("demo", "other"):
        fake_apiserver.add_namespace(ns)
    pas = dynamic_client.resources.get(
        api_version="security.istio.io/v1", kind="PeerAuthentication"
    )
    for ns in ("demo", "other"):
        pas.server_side_apply(
            body=_peer_authentication(ns), namespace=ns, field_manager="meshtutor"
        )
    unmanaged = _peer_authentication("demo")
    unmanaged["metadata"] = {"name": "hand-made", "namespace": "demo"}
    pas.server_side_apply(body=unmanaged, namespace="demo", field_manager="kubectl")

    got = pas.get(name="default", namespace="demo")
    assert (got.apiVersion, got.kind, got.metadata.namespace) == (
        "security.istio.io/v1",
        "PeerAuthentication",
        "demo",
    )
    managed = pas.get(label_selector=f"{MANAGED_BY}=meshtutor")
    assert managed.kind == "PeerAuthenticationList"
    assert [(i.metadata.namespace, i.metadata.name) for i in managed.items] == [
        ("demo", "default"),
        ("other", "default"),
    ]
    assert fake_apiserver.requests[-1].path == "/apis/security.istio.io/v1/peerauthentications"
    assert fake_apiserver.requests[-1].param("labelSelector") == f"{MANAGED_BY}=meshtutor"
    in_demo = pas.get(namespace="demo")
    assert sorted(i.metadata.name for i in in_demo.items) == ["default", "hand-made"]
    assert [
        i.metadata.name for i in pas.get(namespace="demo", label_selector=f"!{MANAGED_BY}").items
    ] == ["hand-made"]
    # Custom resources in a list carry apiVersion/kind; built-in ones do not.
    assert in_demo.items[0].kind == "PeerAuthentication"

    deleted = pas.delete(name="default", namespace="demo")
    assert (deleted.kind, deleted.status) == ("Status", "Success")
    assert deleted.details.name == "default"
    with pytest.raises(NotFoundError) as err:
        pas.get(name="default", namespace="demo")
    assert _status(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'peerauthentications.security.istio.io "default" not found',
        "reason": "NotFound",
        "details": {"name": "default", "group": "security.istio.io", "kind": "peerauthentications"},
        "code": 404,
    }
    with pytest.raises(NotFoundError):
        pas.delete(name="default", namespace="demo")


def test_the_typed_client_works_too(fake_apiserver: FakeAPIServer, api_client: ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    with pytest.raises(ApiException) as err:
        core.create_namespace(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
        )
    assert (err.value.status, _status(err.value)["reason"]) == (409, "AlreadyExists")
    deployment = client.AppsV1Api(api_client).create_namespaced_deployment("demo", _deployment())
    assert deployment.metadata.generation == 1
    listed = client.AppsV1Api(api_client).list_deployment_for_all_namespaces(
        label_selector="app=web"
    )
    assert [d.metadata.name for d in listed.items] == ["web"]
    deleted = core.delete_namespace("demo")
    # A namespace's DELETE answers the Namespace, Terminating (not the V1Status the typed
    # client declares, so the typed client hands back a plain dict).
    assert deleted["kind"] == "Namespace"
    assert deleted["status"]["phase"] == "Terminating"
    assert fake_apiserver.get_object("apps/v1", "Deployment", "web", "demo") is None


def test_rollout_restart_patch_and_deployment_readiness(
    fake_apiserver: FakeAPIServer, api_client: ApiClient
) -> None:
    fake_apiserver.add_namespace("demo")
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment("demo", _deployment())
    fake_apiserver.rollout_delay = 0.3
    restart = {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}
                }
            }
        }
    }
    patched = apps.patch_namespaced_deployment("web", "demo", restart)
    assert fake_apiserver.requests[-1].content_type == "application/strategic-merge-patch+json"
    assert patched.metadata.generation == 2
    annotations = patched.spec.template.metadata.annotations
    assert annotations == {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}
    status = apps.read_namespaced_deployment_status("web", "demo").status
    assert (status.observed_generation, status.updated_replicas) == (2, 2)
    assert status.ready_replicas is None  # omitted while zero, as on the wire
    assert status.unavailable_replicas == 2
    time.sleep(0.35)
    status = apps.read_namespaced_deployment("web", "demo").status
    assert (status.ready_replicas, status.available_replicas) == (2, 2)
    fake_apiserver.set_rollout("demo", "web", ready=False)
    assert apps.read_namespaced_deployment("web", "demo").status.ready_replicas is None


def test_merge_patch_through_the_dynamic_client_and_no_strategic_patch_for_crds(
    fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient
) -> None:
    fake_apiserver.add_namespace("demo")
    pas = dynamic_client.resources.get(
        api_version="security.istio.io/v1", kind="PeerAuthentication"
    )
    pas.server_side_apply(body=_peer_authentication(), namespace="demo", field_manager="meshtutor")
    patch = {"metadata": {"annotations": {"note": "x"}}}
    with pytest.raises(ApiException) as err:
        # DynamicClient.patch defaults to a strategic merge patch: custom resources refuse it.
        pas.patch(body=patch, name="default", namespace="demo")
    assert (err.value.status, _status(err.value)["reason"]) == (415, "UnsupportedMediaType")
    patched = pas.patch(
        body=patch, name="default", namespace="demo", content_type="application/merge-patch+json"
    )
    assert patched.metadata.annotations.note == "x"
    assert ("OpenAPI-Generator", "Update") in {
        (m.manager, m.operation) for m in patched.metadata.managedFields
    }


def test_pods_of_a_deployment(fake_apiserver: FakeAPIServer, api_client: ApiClient) -> None:
    fake_apiserver.add_namespace("demo")
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment("demo", _deployment())
    fake_apiserver.add_pod("demo", "web-abc12", owner="web", containers=["web", "istio-proxy"])
    fake_apiserver.add_pod("demo", "web-def34", owner="web", containers=["web", "istio-proxy"])
    fake_apiserver.add_pod("demo", "loner", labels={"app": "loner"})
    pods = client.CoreV1Api(api_client).list_namespaced_pod("demo", label_selector="app=web")
    assert [p.metadata.name for p in pods.items] == ["web-abc12", "web-def34"]
    pod = pods.items[0]
    assert [c.name for c in pod.spec.containers] == ["web", "istio-proxy"]
    assert pod.status.phase == "Running"
    assert all(s.ready for s in pod.status.container_statuses)
    (owner,) = pod.metadata.owner_references
    assert owner.kind == "ReplicaSet"
    assert pod.metadata.labels["pod-template-hash"] == owner.name.removeprefix("web-")
    rs = apps.read_namespaced_replica_set(owner.name, "demo")
    assert rs.metadata.owner_references[0].name == "web"
    running = client.CoreV1Api(api_client).list_namespaced_pod(
        "demo", field_selector="status.phase=Running,metadata.name!=loner"
    )
    assert len(running.items) == 2
    apps.delete_namespaced_deployment("web", "demo")
    left = client.CoreV1Api(api_client).list_namespaced_pod("demo")
    assert [p.metadata.name for p in left.items] == ["loner"]


# ---- injected faults -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "error", "message_part"),
    [
        (403, "Forbidden", ForbiddenError, "cannot patch resource"),
        (404, "NotFound", NotFoundError, '"default" not found'),
        (409, "Conflict", ConflictError, "the object has been modified"),
    ],
)
def test_injected_errors_raise_with_the_status(
    fake_apiserver: FakeAPIServer,
    dynamic_client: DynamicClient,
    status: int,
    reason: str,
    error: type[ApiException],
    message_part: str,
) -> None:
    fake_apiserver.add_namespace("demo")
    pas = dynamic_client.resources.get(
        api_version="security.istio.io/v1", kind="PeerAuthentication"
    )
    fake_apiserver.fail_next("PATCH", r"/peerauthentications/default$", status)
    with pytest.raises(error) as err:
        pas.server_side_apply(
            body=_peer_authentication(), namespace="demo", field_manager="meshtutor"
        )
    assert isinstance(err.value, ApiException)
    assert err.value.status == status
    body = _status(err.value)
    assert (body["code"], body["reason"]) == (status, reason)
    assert message_part in body["message"]
    assert fake_apiserver.pending_faults == 0
    # Only the next one: the retry goes through.
    pas.server_side_apply(body=_peer_authentication(), namespace="demo", field_manager="meshtutor")


def test_injected_errors_on_the_typed_client(
    fake_apiserver: FakeAPIServer, api_client: ApiClient
) -> None:
    fake_apiserver.fail_next("GET", r"^/api/v1/namespaces$", 403, message="nope", times=2)
    core = client.CoreV1Api(api_client)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.list_namespace()
        assert (err.value.status, _status(err.value)["message"]) == (403, "nope")
    core.list_namespace()


def test_a_slow_write_times_out(fake_apiserver: FakeAPIServer, api_client: ApiClient) -> None:
    fake_apiserver.delay_next(r"/namespaces/default$", 2.0, method="PATCH")
    start = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        client.CoreV1Api(api_client).patch_namespace(
            "default", {"metadata": {"labels": {"a": "b"}}}, _request_timeout=0.2
        )
    assert time.monotonic() - start < 1.0


def test_a_slow_read_is_retried_by_urllib3(
    fake_apiserver: FakeAPIServer, api_client: ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    # One slow answer to a GET: urllib3 retries the read on its own, and succeeds.
    fake_apiserver.delay_next(r"^/api/v1/namespaces$", 2.0)
    assert core.list_namespace(_request_timeout=0.2).items
    assert len(fake_apiserver.requests_to(r"^/api/v1/namespaces$")) == 2
    # Always slow: MaxRetryError once the retries (3) are spent.
    fake_apiserver.delay_next(r"^/api/v1/namespaces$", 2.0, times=None)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
        core.list_namespace(_request_timeout=0.1)
    assert isinstance(err.value.reason, urllib3.exceptions.ReadTimeoutError)
    fake_apiserver.clear_faults()


def test_a_dropped_connection_on_a_read_is_retried(
    fake_apiserver: FakeAPIServer, api_client: ApiClient
) -> None:
    fake_apiserver.disconnect_next("GET", r"^/api/v1/namespaces$")
    assert client.CoreV1Api(api_client).list_namespace().items
    assert [r.status for r in fake_apiserver.requests_to(r"^/api/v1/namespaces$")] == [-1, 200]
    # A write is not retried: the dropped connection surfaces.
    fake_apiserver.disconnect_next("PATCH", r"^/api/v1/namespaces/default$")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        client.CoreV1Api(api_client).patch_namespace(
            "default", {"metadata": {"labels": {"a": "b"}}}
        )


# ---- exec ------------------------------------------------------------------------------


@pytest.fixture
def core(fake_apiserver: FakeAPIServer, api_client: ApiClient) -> client.CoreV1Api:
    fake_apiserver.add_namespace("demo")
    fake_apiserver.add_pod(
        "demo", "sleep-1", labels={"app": "sleep"}, containers=["sleep", "istio-proxy"]
    )
    return client.CoreV1Api(api_client)


def test_exec_reports_a_non_zero_exit_code(
    fake_apiserver: FakeAPIServer, core: client.CoreV1Api
) -> None:
    seen: list[list[str]] = []

    def curl(command: list[str]) -> tuple[bytes, bytes, int]:
        seen.append(command)
        return b"000", b"curl: (56) Recv failure: Connection reset by peer\n", 56

    fake_apiserver.on_exec(("demo", "sleep-1", "sleep"), curl)
    resp = _exec(core, "sleep-1", "demo", container="sleep", _preload_content=False)
    resp.run_forever(timeout=5)
    assert resp.returncode == 56
    assert resp.read_stdout() == "000"
    assert resp.read_stderr() == "curl: (56) Recv failure: Connection reset by peer\n"
    resp.close()
    assert seen == [["curl", "-sS", "http://backend.demo:8080/"]]
    (call,) = fake_apiserver.execs
    assert call.request.protocol == "v5.channel.k8s.io"
    assert call.status == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        "[curl -sS http://backend.demo:8080/], exit code 56",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "56"}]},
    }
    sent = fake_apiserver.requests[-1]
    assert sent.path == "/api/v1/namespaces/demo/pods/sleep-1/exec"
    assert sent.query == {
        "command": ["curl", "-sS", "http://backend.demo:8080/"],
        "container": ["sleep"],
        "stderr": ["true"],
        "stdin": ["false"],
        "stdout": ["true"],
        "tty": ["false"],
    }
    assert sent.status == 101


def test_exec_success_and_the_preloaded_mode(
    fake_apiserver: FakeAPIServer, core: client.CoreV1Api
) -> None:
    fake_apiserver.on_exec(None, lambda command: (b"200", b"", 0))
    resp = _exec(core, "sleep-1", "demo", container="sleep", _preload_content=False)
    resp.run_forever(timeout=5)
    assert (resp.returncode, resp.read_stdout()) == (0, "200")
    resp.close()
    # Preloaded: stdout and stderr come back concatenated as one string; no exit code.
    fake_apiserver.on_exec(lambda r: r.container == "istio-proxy", lambda c: ("out", "err", 3))
    assert _exec(core, "sleep-1", "demo", container="sleep") == "200"
    assert _exec(core, "sleep-1", "demo", container="istio-proxy") == "outerr"


def test_exec_over_the_v4_protocol(
    fake_apiserver_factory: FakeAPIServerFactory, tmp_path: Path
) -> None:
    server = fake_apiserver_factory(exec_protocols=("v4.channel.k8s.io", "channel.k8s.io"))
    server.add_pod("demo", "one", containers=["app"])
    server.on_exec(("demo", "one"), lambda c: (b"x" * 100_000, b"", 7))
    kubeconfig = server.kubeconfig(tmp_path / "kc")
    with config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT) as api:
        resp = _exec(
            client.CoreV1Api(api), "one", "demo", _preload_content=False
        )  # no container: the only one
        resp.run_forever(timeout=5)
        assert resp.returncode == 7
        assert len(resp.read_stdout()) == 100_000  # several frames
        resp.close()
    assert server.execs[0].request.protocol == "v4.channel.k8s.io"
    assert server.execs[0].request.container == "app"


def test_exec_errors(fake_apiserver: FakeAPIServer, core: client.CoreV1Api) -> None:
    # Errors before the upgrade come back as the websocket handshake's status.
    with pytest.raises(ApiException) as err:
        _exec(core, "missing", "demo", container="sleep")
    assert err.value.status == 0
    assert "Handshake status 404" in str(err.value.reason)
    with pytest.raises(ApiException) as err:
        _exec(core, "sleep-1", "demo")  # two containers: which one?
    assert "a container name must be specified for pod sleep-1" in str(err.value.reason)
    with pytest.raises(ApiException) as err:
        _exec(core, "sleep-1", "demo", container="nope")
    assert "container nope is not valid for pod sleep-1" in str(err.value.reason)

    # A responder that raises: the connection just drops, no status.
    def gone(command: list[str]) -> tuple[bytes, bytes, int]:
        raise RuntimeError("the node went away")

    fake_apiserver.on_exec(None, gone)
    resp = _exec(core, "sleep-1", "demo", container="sleep", _preload_content=False)
    with pytest.raises(WebSocketConnectionClosedException):
        resp.run_forever(timeout=5)
    resp.close()
    with pytest.raises(ApiException) as err:
        _exec(core, "sleep-1", "demo", container="sleep")
    assert err.value.status == 0

    # ExecFailure: a Status without an exit code on the error channel.
    def unstartable(command: list[str]) -> tuple[bytes, bytes, int]:
        raise ExecFailure('container not found ("sleep")')

    fake_apiserver.on_exec(None, unstartable)
    resp = _exec(core, "sleep-1", "demo", container="sleep", _preload_content=False)
    resp.run_forever(timeout=5)
    error = json.loads(resp.read_channel(3))
    assert (error["status"], error["message"]) == ("Failure", 'container not found ("sleep")')
    resp.close()
    fake_apiserver.fail_next("GET", r"/pods/sleep-1/exec$", 403)
    with pytest.raises(ApiException) as err:
        _exec(core, "sleep-1", "demo", container="sleep")
    assert "Handshake status 403" in str(err.value.reason)


# ---- RBAC stand-in --------------------------------------------------------------------


def test_access_reviews_and_denied_permissions(
    fake_apiserver: FakeAPIServer, api_client: ApiClient
) -> None:
    authz = client.AuthorizationV1Api(api_client)

    def can(verb: str, resource: str, group: str = "", sub: str | None = None) -> bool:
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, group=group, resource=resource, subresource=sub, namespace="demo"
                )
            )
        )
        return bool(authz.create_self_subject_access_review(review).status.allowed)

    assert can("create", "pods", sub="exec")
    assert can("patch", "peerauthentications", "security.istio.io")
    fake_apiserver.deny("create", "pods", subresource="exec")
    fake_apiserver.deny("patch", "*", "security.istio.io", namespace="demo")
    assert not can("create", "pods", sub="exec")
    assert not can("patch", "peerauthentications", "security.istio.io")
    assert can("get", "pods")
    fake_apiserver.add_pod("demo", "sleep-1", containers=["sleep"])
    with pytest.raises(ApiException) as err:
        _exec(client.CoreV1Api(api_client), "sleep-1", "demo")
    assert "Handshake status 403" in str(err.value.reason)
    assert (
        'pods \\"sleep-1\\" is forbidden: User \\"kubernetes-admin\\" cannot create resource '
        '\\"pods/exec\\" in API group \\"\\" in the namespace \\"demo\\"'
    ) in str(err.value.reason)
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
            "security.istio.io",
            "v1",
            "demo",
            "peerauthentications",
            "default",
            {"metadata": {"labels": {"a": "b"}}},
        )
    assert err.value.status == 403
    fake_apiserver.allow_all()
    assert can("create", "pods", sub="exec")


# ---- smaller protocol details ---------------------------------------------------------


def test_pages_replace_json_patch_logs_and_delete_collection(
    fake_apiserver: FakeAPIServer, api_client: ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    fake_apiserver.add_namespace("demo")
    for i in range(5):
        core.create_namespaced_config_map(
            "demo", {"metadata": {"name": f"cm-{i}", "labels": {"batch": "a" if i < 3 else "b"}}}
        )
    first = core.list_namespaced_config_map("demo", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map("demo", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm-2", "cm-3", "cm-4"]
    assert rest.metadata._continue is None
    # Items of a built-in list carry no kind on the wire.
    raw = api_client.call_api(
        "GET",
        api_client.configuration.host + "/api/v1/namespaces/demo/configmaps",
        header_params={
            "authorization": api_client.configuration.auth_settings()["BearerToken"]["value"]
        },
    )
    assert "kind" not in json.loads(raw.read())["items"][0]

    current = core.read_namespaced_config_map("cm-0", "demo")
    current.data = {"k": "v"}
    replaced = core.replace_namespaced_config_map("cm-0", "demo", current)
    assert replaced.data == {"k": "v"}
    current.data = {"k": "stale"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("cm-0", "demo", current)  # old resourceVersion
    assert (err.value.status, _status(err.value)["reason"]) == (409, "Conflict")

    patched = core.patch_namespaced_config_map(
        "cm-0", "demo", [{"op": "add", "path": "/data/other", "value": "x"}]
    )
    assert fake_apiserver.requests[-1].content_type == "application/json-patch+json"
    assert patched.data == {"k": "v", "other": "x"}

    fake_apiserver.add_pod("demo", "p", containers=["app"])
    fake_apiserver.set_pod_log("demo", "p", "line 1\nline 2\n")
    assert core.read_namespaced_pod_log("p", "demo") == "line 1\nline 2\n"

    core.delete_collection_namespaced_config_map("demo", label_selector="batch=a")
    assert [c.metadata.name for c in core.list_namespaced_config_map("demo").items] == [
        "cm-3",
        "cm-4",
    ]


def test_a_custom_resource_is_replaced_only_at_a_known_resource_version(
    fake_apiserver: FakeAPIServer, dynamic_client: DynamicClient
) -> None:
    """As apiextensions-apiserver: custom resources allow no unconditional update (PUT without
    ``metadata.resourceVersion`` is 422), built-in ones do."""
    fake_apiserver.add_namespace("demo")
    policies = dynamic_client.resources.get(
        api_version="security.istio.io/v1", kind="PeerAuthentication"
    )
    body: dict[str, Any] = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "demo"},
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    created = policies.create(body=body, namespace="demo")
    with pytest.raises(DynamicApiError) as err:
        policies.replace(body=body, name="default", namespace="demo")
    assert err.value.status == 422
    assert (
        "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        in (json.loads(err.value.body)["message"])
    )
    body["metadata"]["resourceVersion"] = created.metadata.resourceVersion
    body["spec"]["mtls"]["mode"] = "PERMISSIVE"
    assert policies.replace(body=body, name="default", namespace="demo").spec.mtls.mode == (
        "PERMISSIVE"
    )
    maps = dynamic_client.resources.get(api_version="v1", kind="ConfigMap")
    maps.create(body={"metadata": {"name": "cm"}}, namespace="demo")
    maps.replace(body={"metadata": {"name": "cm"}, "data": {"k": "v"}}, name="cm", namespace="demo")
