"""Shared topologies and assertions for the table-driven mesh-semantics suite.

Every topology function returns a *fresh* ``Cluster`` so that tests never share state. The
sample manifests (``manifests/samples``, ``manifests/online-boutique``) are read once and
cached as text; each cluster loads them again, exactly as ``kubectl apply -n NS -f FILE``
would. Section numbers (``§2``) refer to ``/work/shared/reference/mesh-semantics.md``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshtutor.model import load_yaml
from meshtutor.policy import Cluster, Probe, predict

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
HTTPBIN_IMAGE = "docker.io/mccutchen/go-httpbin:v2.15.0"
CURL_IMAGE = "curlimages/curl:8.16.0"
ENVOY_503_PREFIX = "upstream connect error or disconnect/reset before headers."
RBAC_DENIED = "RBAC: access denied"


# --------------------------------------------------------------------------- manifests


@cache
def manifest_text(relative: str) -> str:
    """The text of ``manifests/<relative>``, read once per test session."""
    return (MANIFESTS / relative).read_text()


def load_manifest(relative: str, namespace: str | None = None) -> list[Any]:
    return load_yaml(manifest_text(relative), source=relative, default_namespace=namespace)


def apply_manifest(cluster: Cluster, relative: str, namespace: str | None = None) -> Cluster:
    cluster.apply(load_manifest(relative, namespace))
    return cluster


def delete_manifest(cluster: Cluster, relative: str, namespace: str | None = None) -> Cluster:
    cluster.delete(load_manifest(relative, namespace))
    return cluster


def apply_yaml(cluster: Cluster, text: str, namespace: str | None = None) -> Cluster:
    """Apply an inline (indented) YAML snippet; documents are created in order."""
    cluster.apply(load_yaml(textwrap.dedent(text), source="<test>", default_namespace=namespace))
    return cluster


def delete_yaml(cluster: Cluster, text: str, namespace: str | None = None) -> Cluster:
    cluster.delete(load_yaml(textwrap.dedent(text), source="<test>", default_namespace=namespace))
    return cluster


def namespace_yaml(
    name: str,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> str:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})


def workload_yaml(
    namespace: str,
    name: str,
    *,
    image: str,
    service_ports: Iterable[Mapping[str, Any]] = (),
    container_port: int | None = None,
    service_account: str | None = None,
    pod_labels: Mapping[str, str] | None = None,
    pod_annotations: Mapping[str, str] | None = None,
) -> str:
    """ServiceAccount + Service + Deployment like the samples, with pod-template extras."""
    sa = service_account or name
    labels = {"app": name, **(pod_labels or {})}
    template_meta: dict[str, Any] = {"labels": labels}
    if pod_annotations:
        template_meta["annotations"] = dict(pod_annotations)
    container: dict[str, Any] = {"name": name, "image": image}
    if container_port is None:
        container["command"] = ["/bin/sleep", "infinity"]
    else:
        container["ports"] = [{"containerPort": container_port}]
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": sa, "namespace": namespace},
        },
    ]
    ports = [dict(p) for p in service_ports]
    if ports:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {"selector": {"app": name}, "ports": ports},
            }
        )
    docs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": template_meta,
                    "spec": {"serviceAccountName": sa, "containers": [container]},
                },
            },
        }
    )
    return yaml.safe_dump_all(docs, sort_keys=False)


def httpbin_yaml(namespace: str, name: str = "httpbin", **extra: Any) -> str:
    """httpbin as in samples/httpbin.yaml: Service 8000 -> container 8080."""
    ports = extra.pop("service_ports", [{"name": "http", "port": 8000, "targetPort": 8080}])
    return workload_yaml(
        namespace, name, image=HTTPBIN_IMAGE, container_port=8080, service_ports=ports, **extra
    )


def sleep_yaml(namespace: str, name: str = "sleep", **extra: Any) -> str:
    """A curl client pod (listens on nothing) like samples/sleep.yaml."""
    return workload_yaml(namespace, name, image=CURL_IMAGE, **extra)


def mesh_config_yaml(mesh: Mapping[str, Any]) -> str:
    """ConfigMap ``istio`` in ``istio-system`` carrying MeshConfig under key ``mesh``."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": {"mesh": yaml.safe_dump(dict(mesh), sort_keys=False)},
        }
    )


# --------------------------------------------------------------------------- topologies


def istio_cluster(mesh: Mapping[str, Any] | None = None) -> Cluster:
    """An empty Istio cluster, optionally with mesh settings applied first."""
    cluster = Cluster(mesh="istio")
    if mesh is not None:
        apply_yaml(cluster, mesh_config_yaml(mesh))
    return cluster


def istio_authn_policy(mesh: Mapping[str, Any] | None = None) -> Cluster:
    """Istio "Authentication Policy" task: httpbin + sleep in foo and bar (sidecars, the
    namespaces carry istio-injection=enabled) and in legacy (no sidecar)."""
    cluster = istio_cluster(mesh)
    apply_manifest(cluster, "samples/namespaces.yaml")
    for ns in ("foo", "bar", "legacy"):
        apply_manifest(cluster, "samples/httpbin.yaml", ns)
        apply_manifest(cluster, "samples/sleep.yaml", ns)
    return cluster


def istio_mtls_migration() -> Cluster:
    """Istio "Mutual TLS Migration" task: httpbin + sleep with sidecars in foo and bar,
    only sleep (no sidecar) in legacy."""
    cluster = istio_cluster()
    apply_manifest(cluster, "samples/namespaces.yaml")
    for ns in ("foo", "bar"):
        apply_manifest(cluster, "samples/httpbin.yaml", ns)
        apply_manifest(cluster, "samples/sleep.yaml", ns)
    apply_manifest(cluster, "samples/sleep.yaml", "legacy")
    return cluster


def online_boutique() -> Cluster:
    """Namespace demo (injected): frontend (container ``server``, 80 -> 8080) and
    productcatalogservice (container ``server``, gRPC 3550)."""
    return apply_manifest(istio_cluster(), "online-boutique/demo.yaml")


LINKERD_INJECT = {"linkerd.io/inject": "enabled"}


def linkerd_foo_bar_legacy(
    annotations: Mapping[str, Mapping[str, str]] | None = None,
) -> Cluster:
    """The same foo/bar/legacy layout under Linkerd: foo and bar carry
    ``linkerd.io/inject: enabled``, legacy does not. ``annotations`` adds namespace
    annotations (e.g. a default inbound policy) *before* the pods are created."""
    cluster = Cluster(mesh="linkerd")
    extra = annotations or {}
    for ns, inject in (("foo", True), ("bar", True), ("legacy", False)):
        ann = {**(LINKERD_INJECT if inject else {}), **extra.get(ns, {})}
        apply_yaml(cluster, namespace_yaml(ns, annotations=ann))
    for ns in ("foo", "bar", "legacy"):
        apply_manifest(cluster, "samples/httpbin.yaml", ns)
        apply_manifest(cluster, "samples/sleep.yaml", ns)
    return cluster


def netpol_cluster(mesh: str = "istio") -> Cluster:
    """A mesh-free layout for NetworkPolicy (no namespace is injected):

    * ``demo`` (label ``purpose: demo``): httpbin, sleep (app=sleep), curl (app=curl)
    * ``partner`` (label ``team: partner``): sleep, curl
    * ``outsider`` (label ``team: outsider``): sleep
    """
    cluster = Cluster(mesh=mesh)
    apply_yaml(cluster, namespace_yaml("demo", labels={"purpose": "demo"}))
    apply_yaml(cluster, namespace_yaml("partner", labels={"team": "partner"}))
    apply_yaml(cluster, namespace_yaml("outsider", labels={"team": "outsider"}))
    apply_manifest(cluster, "samples/httpbin.yaml", "demo")
    apply_manifest(cluster, "samples/sleep.yaml", "demo")
    apply_manifest(cluster, "samples/curl.yaml", "demo")
    apply_manifest(cluster, "samples/sleep.yaml", "partner")
    apply_manifest(cluster, "samples/curl.yaml", "partner")
    apply_manifest(cluster, "samples/sleep.yaml", "outsider")
    return cluster


# --------------------------------------------------------------------------- probing


def probe(
    cluster: Cluster,
    spec: str,
    *,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """Predict ``NS/DEPLOY[:CONTAINER]=URL``; method/headers go through the constructor."""
    if method is None and headers is None:
        return predict(cluster, Probe.parse(spec))
    source, url = spec.split("=", 1)
    namespace, deployment = source.split("/", 1)
    deployment, _, container = deployment.partition(":")
    return predict(
        cluster,
        Probe(
            source_namespace=namespace,
            source_deployment=deployment,
            url=url,
            container=container or None,
            method=method or "GET",
            headers=dict(headers or {}),
        ),
    )


def spiffe(namespace: str, sa: str, trust_domain: str = "cluster.local") -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{sa}"


def l5d(namespace: str, sa: str) -> str:
    return f"{sa}.{namespace}.serviceaccount.identity.linkerd.cluster.local"


def explanation(out: Any) -> str:
    return "\n".join(out.explanation_lines)


_UNSET: Any = object()


def expect(
    out: Any,
    result: str,
    *,
    named: Iterable[str] = (),
    words: Iterable[str] = (),
    mtls: bool | None = None,
    client: str | None = _UNSET,
    server: str | None = _UNSET,
    body: str | None = None,
    body_prefix: str | None = None,
) -> None:
    """Assert one probe outcome.

    ``result`` is ``"200"`` (exit 0 implied) or ``"000/56"`` (http_code/exit code).
    ``named`` are resource references (``"PeerAuthentication foo/default"``) that must
    appear verbatim in the explanation; each of ``words`` must appear case-insensitively,
    ``"a|b"`` meaning either.
    """
    code, _, exit_code = result.partition("/")
    want_exit = int(exit_code) if exit_code else 0
    text = explanation(out)
    where = f"\nexplanation:\n{text}"
    assert (out.http_code, out.exit_code) == (code, want_exit), (
        f"got {out.http_code}/{out.exit_code}, want {code}/{want_exit}{where}"
    )
    if mtls is not None:
        assert out.mtls is mtls, f"mtls={out.mtls}, want {mtls}{where}"
    if client is not _UNSET:
        assert out.client_identity == client, where
    if server is not _UNSET:
        assert out.server_identity == server, where
    if body is not None:
        assert out.body.strip() == body, f"body={out.body!r}{where}"
    if body_prefix is not None:
        assert out.body.startswith(body_prefix), f"body={out.body!r}{where}"
    for ref in named:
        assert ref in text, f"{ref!r} is not named{where}"
    lowered = text.lower()
    for word in words:
        options = word.split("|")
        assert any(o.lower() in lowered for o in options), f"none of {options} in{where}"


# --------------------------------------------------------------------------- table cases


@dataclass(frozen=True)
class Delete:
    """A setup step: ``kubectl delete -f`` of an inline snippet."""

    text: str


@dataclass(frozen=True)
class Restart:
    """A setup step: ``kubectl rollout restart deployment/NAME -n NS``."""

    namespace: str
    deployment: str


Step = str | Delete | Restart


@dataclass(frozen=True)
class Case:
    setup: tuple[Step, ...]
    probe: str
    result: str
    named: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    mtls: bool | None = None
    client: Any = _UNSET
    server: Any = _UNSET
    method: str | None = None
    headers: Mapping[str, str] | None = None
    body: str | None = None
    body_prefix: str | None = None


def case(
    case_id: str,
    setup: Iterable[Step] | Step,
    spec: str,
    result: str,
    **kwargs: Any,
) -> Any:
    """One table row: ``pytest.param(Case(...), id=case_id)``.

    ``setup`` is applied in order on top of the topology: a YAML string is applied,
    ``Delete(text)`` deletes, ``Restart(ns, name)`` re-creates the deployment's pod.
    For a ``403`` result the Istio body ``RBAC: access denied`` is not implied; pass
    ``body=`` where it matters.
    """
    steps = (setup,) if isinstance(setup, str | Delete | Restart) else tuple(setup)
    return pytest.param(Case(steps, spec, result, **kwargs), id=case_id)


def run_setup(cluster: Cluster, steps: Iterable[Step]) -> Cluster:
    for step in steps:
        if isinstance(step, Delete):
            delete_yaml(cluster, step.text)
        elif isinstance(step, Restart):
            cluster.restart(step.namespace, step.deployment)
        else:
            apply_yaml(cluster, step)
    return cluster


def run_case(topology: Callable[[], Cluster] | Cluster, c: Case) -> Any:
    """Build the topology, apply the case's setup, probe, and check the outcome."""
    cluster = topology if isinstance(topology, Cluster) else topology()
    run_setup(cluster, c.setup)
    out = probe(cluster, c.probe, method=c.method, headers=c.headers)
    expect(
        out,
        c.result,
        named=c.named,
        words=c.words,
        mtls=c.mtls,
        client=c.client,
        server=c.server,
        body=c.body,
        body_prefix=c.body_prefix,
    )
    return out
