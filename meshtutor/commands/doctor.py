"""``meshtutor doctor``: is this cluster ready for the lessons? A checklist in the style of
``linkerd check``: ✔ passed, ‼ a warning, ✘ a failure, each with a one-line fix."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

import click

from meshtutor.commands.common import cluster_options

SAMPLE_IMAGES = ("curlimages/curl", "mccutchen/go-httpbin")


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""
    required: bool = True

    @property
    def mark(self) -> str:
        return {"ok": "✔", "warn": "‼", "fail": "✘"}[self.status]


def run_checks(
    *,
    kubeconfig: str | None,
    context: str | None,
    allow_remote: bool,
    mesh: str,
    timeout: float = 3.0,
) -> list[Check]:
    """Every check, in order; stops early when later checks cannot run."""
    from meshtutor.backends.kubeclient import (
        KubeError,
        api_client,
        check_local,
        client_error_reason,
        client_errors,
        resolve_target,
        server_version,
    )

    checks: list[Check] = []
    try:
        target = resolve_target(kubeconfig, context)
    except KubeError as exc:
        checks.append(
            Check(
                "kubeconfig",
                "fail",
                str(exc),
                "create a local cluster: kind create cluster --name meshtutor",
            )
        )
        return checks
    checks.append(Check("kubeconfig", "ok", f"{target.kubeconfig}, context {target.context}"))
    try:
        check_local(target, allow_remote)
        local = (
            "on this machine"
            if target.locality_problem() is None
            else "not on this machine, allowed by --allow-remote"
        )
        checks.append(Check("context is local", "ok", f"{target.server} ({local})"))
    except KubeError as exc:
        checks.append(
            Check(
                "context is local",
                "fail",
                str(exc),
                "switch context (kubectl config use-context kind-…) or pass --allow-remote",
            )
        )
        return checks

    try:
        api = api_client(target, timeout=timeout, retries=0)
        version = server_version(api, timeout)
        checks.append(Check("API reachable", "ok", f"Kubernetes {version}"))
    except client_errors() as exc:  # refused, timeouts, TLS errors: all mean "unreachable"
        checks.append(
            Check(
                "API reachable",
                "fail",
                f"{target.server} {client_error_reason(exc, timeout)}",
                "start the cluster (docker ps; kind get clusters) and retry",
            )
        )
        return checks

    def components(api: Any, mesh: str, timeout: float) -> list[Check]:
        return _component_checks(api, mesh, timeout, target.context)

    try:
        for name, step, required in (
            ("mesh", _mesh_checks, True),
            ("ingress", components, False),
            ("images", _image_checks, False),
            ("RBAC", _rbac_checks, True),
        ):
            try:
                checks += step(api, mesh, timeout)
            except client_errors() as exc:  # an API error in one group must not hide the others
                status = getattr(exc, "status", None)
                detail = (
                    f"the API answered {status}"
                    if status
                    else f"{target.server} {client_error_reason(exc, timeout)}"
                )
                checks.append(
                    Check(
                        name,
                        "warn" if status == 404 else "fail",
                        f"could not check: {detail}",
                        "check your permissions (kubectl auth can-i --list)",
                        required=required and status != 404,
                    )
                )
    finally:
        api.close()
    return checks


def _deployment_ready(api: Any, namespace: str, name: str, timeout: float) -> bool | None:
    from kubernetes import client as kclient
    from kubernetes.client.exceptions import ApiException

    try:
        dep = kclient.AppsV1Api(api).read_namespaced_deployment(
            name, namespace, _request_timeout=timeout
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return bool(dep.status and (dep.status.available_replicas or 0) >= 1)


def _has_kind(api: Any, api_version: str, kind: str) -> bool:
    import tempfile

    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    # A fresh discovery cache: the client's default one may predate the mesh's install.
    with tempfile.TemporaryDirectory() as tmp:
        try:
            DynamicClient(api, cache_file=f"{tmp}/discovery.json").resources.get(
                api_version=api_version, kind=kind
            )
        except ResourceNotFoundError:
            return False
    return True


def _mesh_checks(api: Any, mesh: str, timeout: float) -> list[Check]:
    meshes = {
        "istio": (
            "security.istio.io/v1",
            "PeerAuthentication",
            "istio-system",
            "istiod",
            "istioctl install --set profile=default -y",
        ),
        "linkerd": (
            "policy.linkerd.io/v1beta3",
            "Server",
            "linkerd",
            "linkerd-destination",
            "linkerd install --crds | kubectl apply -f - && linkerd install | kubectl apply -f -",
        ),
    }
    wanted = [mesh] if mesh != "auto" else ["istio", "linkerd"]
    found: list[Check] = []
    for name in wanted:
        api_version, kind, ns, deployment, install = meshes[name]
        if not _has_kind(api, api_version, kind):
            found.append(
                Check(
                    f"{name} CRDs",
                    "fail",
                    f"no {kind} ({api_version}) in the cluster",
                    install,
                    required=mesh != "auto",
                )
            )
            continue
        found.append(Check(f"{name} CRDs", "ok", f"{kind} ({api_version}) is served"))
        ready = _deployment_ready(api, ns, deployment, timeout)
        if ready:
            found.append(Check(f"{name} control plane", "ok", f"{ns}/{deployment} is available"))
        else:
            what = "missing" if ready is None else "not ready"
            found.append(
                Check(
                    f"{name} control plane",
                    "fail",
                    f"{ns}/{deployment} is {what}",
                    f"kubectl -n {ns} rollout status deploy/{deployment}",
                    required=mesh != "auto",
                )
            )
    if mesh == "auto":
        meshes_ok = [c for c in found if c.name.endswith("control plane") and c.status == "ok"]
        if not meshes_ok:
            found.append(
                Check(
                    "a mesh is installed",
                    "fail",
                    "neither Istio nor Linkerd is ready",
                    "install one: istioctl install -y, or linkerd install",
                )
            )
    return found


#: The lessons that ``install`` each cluster component (traffic from outside the cluster).
COMPONENT_LESSONS = {"istio-ingressgateway": "lesson 14", "ingress-nginx": "lesson 15"}


def _component_checks(api: Any, mesh: str, timeout: float, context: str) -> list[Check]:
    """The ingress components some lessons need: optional, meshtutor never installs them."""
    from meshtutor.backends.kube import KIND_INGRESS_NGINX
    from meshtutor.lessons.model import COMPONENTS

    checks = []
    for name, component in COMPONENTS.items():
        if name == "istio-ingressgateway" and mesh == "linkerd":
            continue
        ns, deployment = component["namespace"], component["deployment"]
        ready = _deployment_ready(api, ns, deployment, timeout)
        if ready:
            checks.append(Check(name, "ok", f"{ns}/{deployment} is available", required=False))
            continue
        fix = component["command"]
        if ready is not None:
            fix = f"kubectl -n {ns} rollout status deploy/{deployment}"
        elif name == "ingress-nginx" and context.startswith("kind-"):
            fix = f"kubectl apply -f {KIND_INGRESS_NGINX}"
        checks.append(
            Check(
                name,
                "warn",
                f"{ns}/{deployment} is {'missing' if ready is None else 'not ready'}: "
                f"needed by {COMPONENT_LESSONS.get(name, 'the ingress lessons')}",
                fix,
                required=False,
            )
        )
    return checks


def _image_checks(api: Any, mesh: str, timeout: float) -> list[Check]:
    from kubernetes import client as kclient

    from meshtutor.backends.kube import LIST_PAGE

    # One page: a learning cluster has a node or three, and the images are on every one.
    nodes = kclient.CoreV1Api(api).list_node(limit=LIST_PAGE, _request_timeout=timeout).items
    present = {
        name
        for node in nodes
        for image in ((node.status and node.status.images) or [])
        for name in (image.names or [])
    }
    checks = []
    for image in SAMPLE_IMAGES:
        if any(image in name for name in present):
            checks.append(Check(f"image {image}", "ok", "already on the nodes", required=False))
        else:
            checks.append(
                Check(
                    f"image {image}",
                    "warn",
                    "not on the nodes yet: it will be pulled when a lesson starts "
                    "(slow, and it needs internet access)",
                    f"docker pull {image} && kind load docker-image {image}",
                    required=False,
                )
            )
    return checks


def _rbac_checks(api: Any, mesh: str, timeout: float) -> list[Check]:
    from kubernetes import client as kclient

    wanted = [
        ("create", "apps", "deployments", ""),
        ("create", "", "pods", "exec"),
        ("delete", "", "namespaces", ""),
    ]
    if mesh in ("istio", "auto"):
        wanted.append(("patch", "security.istio.io", "peerauthentications", ""))
    if mesh in ("linkerd", "auto"):
        wanted.append(("patch", "policy.linkerd.io", "servers", ""))
    authz = kclient.AuthorizationV1Api(api)
    denied = []
    for verb, group, resource, sub in wanted:
        review = kclient.V1SelfSubjectAccessReview(
            spec=kclient.V1SelfSubjectAccessReviewSpec(
                resource_attributes=kclient.V1ResourceAttributes(
                    verb=verb, group=group, resource=resource, subresource=sub or None
                )
            )
        )
        result = authz.create_self_subject_access_review(review, _request_timeout=timeout)
        if not (result.status and result.status.allowed):
            denied.append(f"{verb} {resource}{'/' + sub if sub else ''}")
    if denied:
        return [
            Check(
                "RBAC",
                "fail",
                "not allowed: " + ", ".join(denied),
                "use a cluster-admin context (local clusters give you one)",
            )
        ]
    return [Check("RBAC", "ok", "allowed to create, exec, patch policies and delete")]


@click.command("doctor")
@cluster_options(3.0)
@click.option(
    "--mesh",
    type=click.Choice(["auto", "istio", "linkerd"]),
    default="auto",
    show_default=True,
    help="Which mesh must be installed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(
    context: str | None,
    kubeconfig: str | None,
    allow_remote: bool,
    request_timeout: float,
    mesh: str,
    as_json: bool,
) -> None:
    """Check that a cluster is ready for meshtutor's lessons, with a fix for each failure."""
    checks = run_checks(
        kubeconfig=kubeconfig,
        context=context,
        allow_remote=allow_remote,
        mesh=mesh,
        timeout=request_timeout,
    )
    failed = [c for c in checks if c.status == "fail" and c.required]
    if as_json:
        click.echo(json.dumps([{**asdict(c), "mark": c.mark} for c in checks], indent=2))
    else:
        for c in checks:
            click.echo(f"{c.mark} {c.name}: {c.detail}")
            if c.fix and c.status != "ok":
                click.echo(f"    fix: {c.fix}")
        click.echo(
            "\nStatus check results are "
            + ("✘: fix the items above" if failed else "✔: ready for the lessons")
        )
    sys.exit(1 if failed else 0)
