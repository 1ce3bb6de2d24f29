"""Sidecar injection, decided once, when a pod is created (as the admission webhooks do)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshtutor.model.base import ResourceRef
from meshtutor.model.linkerd import DEFAULT_POLICIES

ISTIO_IGNORED_NAMESPACES = frozenset(
    {"kube-system", "kube-public", "kube-node-lease", "local-path-storage"}
)
LINKERD_IGNORED_NAMESPACES = frozenset({"kube-system", "cert-manager"})


@dataclass(frozen=True)
class InjectionDecision:
    """Whether the pod got a sidecar (``sidecar`` is ``"istio"``, ``"linkerd"`` or None), the
    sentence saying why, and the object whose label/annotation decided it."""

    sidecar: str | None
    reason: str
    decided_by: ResourceRef | None = None
    field: str | None = None


def decide_istio(
    namespace: str,
    ns_labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
    pod_annotations: Mapping[str, str],
    *,
    owner: ResourceRef,
    host_network: bool = False,
) -> InjectionDecision:
    """Istio's rules: the namespace label ``istio-injection`` (or ``istio.io/rev``) decides
    whether the webhook sees the pod at all; the pod label ``sidecar.istio.io/inject`` opts a
    single pod in or out (the annotation of the same name is the deprecated form)."""
    ns_ref = ResourceRef("Namespace", None, namespace)
    ns_label = ns_labels.get("istio-injection")
    pod_label = pod_labels.get("sidecar.istio.io/inject")
    pod_annotation = pod_annotations.get("sidecar.istio.io/inject")
    if namespace in ISTIO_IGNORED_NAMESPACES:
        return InjectionDecision(None, f"Istio never injects pods in {namespace}")
    if host_network:
        return InjectionDecision(
            None,
            "the pod uses hostNetwork, which Istio never injects",
            owner,
            "spec.template.spec.hostNetwork",
        )
    if ns_label == "disabled":
        return InjectionDecision(
            None,
            f"Namespace {namespace} has label istio-injection=disabled",
            ns_ref,
            "metadata.labels[istio-injection]",
        )
    if ns_label == "enabled" or (ns_label is None and "istio.io/rev" in ns_labels):
        label = (
            "istio-injection=enabled"
            if ns_label == "enabled"
            else (f"istio.io/rev={ns_labels['istio.io/rev']}")
        )
        if pod_label == "false":
            return InjectionDecision(
                None,
                f"Namespace {namespace} has {label}, but the pod template label "
                'sidecar.istio.io/inject="false" opts this pod out',
                owner,
                "spec.template.metadata.labels[sidecar.istio.io/inject]",
            )
        if pod_label is None and pod_annotation == "false":
            return InjectionDecision(
                None,
                f"Namespace {namespace} has {label}, but the pod template annotation "
                'sidecar.istio.io/inject="false" opts this pod out',
                owner,
                "spec.template.metadata.annotations[sidecar.istio.io/inject]",
            )
        return InjectionDecision(
            "istio",
            f"Namespace {namespace} has label {label}, so the pod got an istio-proxy sidecar",
            ns_ref,
            "metadata.labels",
        )
    if pod_label == "true" or (ns_label is None and "istio.io/rev" in pod_labels):
        return InjectionDecision(
            "istio",
            'the pod template label sidecar.istio.io/inject="true" asks for a sidecar, so the '
            "pod got an istio-proxy sidecar",
            owner,
            "spec.template.metadata.labels[sidecar.istio.io/inject]",
        )
    if pod_annotation == "true":
        return InjectionDecision(
            None,
            f'the pod annotation sidecar.istio.io/inject="true" is not enough: '
            f"Namespace {namespace} has no istio-injection label, so the injector never sees the pod "
            "(use the label sidecar.istio.io/inject instead)",
            owner,
            "spec.template.metadata.annotations[sidecar.istio.io/inject]",
        )
    return InjectionDecision(
        None,
        f"Namespace {namespace} has no istio-injection label and the pod has no "
        "sidecar.istio.io/inject label, so the pod runs without a sidecar",
        ns_ref,
        "metadata.labels",
    )


def decide_linkerd(
    namespace: str,
    ns_annotations: Mapping[str, str],
    pod_annotations: Mapping[str, str],
    *,
    owner: ResourceRef,
) -> InjectionDecision:
    """Linkerd's rules: annotation ``linkerd.io/inject`` on the pod template wins over the
    namespace's; ``enabled`` (or ``ingress``) injects, ``disabled`` opts out."""
    ns_ref = ResourceRef("Namespace", None, namespace)
    pod_value = pod_annotations.get("linkerd.io/inject")
    ns_value = ns_annotations.get("linkerd.io/inject")
    if namespace in LINKERD_IGNORED_NAMESPACES:
        return InjectionDecision(None, f"Linkerd never injects pods in {namespace}")
    if pod_value == "disabled":
        return InjectionDecision(
            None,
            "the pod template annotation linkerd.io/inject: disabled opts this pod out",
            owner,
            "spec.template.metadata.annotations[linkerd.io/inject]",
        )
    if pod_value in ("enabled", "ingress"):
        return InjectionDecision(
            "linkerd",
            f"the pod template annotation linkerd.io/inject: {pod_value} added a linkerd-proxy",
            owner,
            "spec.template.metadata.annotations[linkerd.io/inject]",
        )
    if ns_value in ("enabled", "ingress"):
        return InjectionDecision(
            "linkerd",
            f"Namespace {namespace} has annotation linkerd.io/inject: {ns_value}, so the pod got "
            "a linkerd-proxy",
            ns_ref,
            "metadata.annotations[linkerd.io/inject]",
        )
    return InjectionDecision(
        None,
        f"neither Namespace {namespace} nor the pod template has the annotation "
        "linkerd.io/inject: enabled, so the pod is not meshed",
        ns_ref,
        "metadata.annotations",
    )


def linkerd_default_policy(
    namespace: str,
    ns_annotations: Mapping[str, str],
    pod_annotations: Mapping[str, str],
    cluster_default: str,
    owner: ResourceRef | None = None,
) -> tuple[str, str]:
    """The default inbound policy a Linkerd proxy starts with, and where it came from.

    The injector copies it into the proxy's environment, so it is fixed until the pod restarts.
    """
    key = "config.linkerd.io/default-inbound-policy"
    for value, where in (
        (
            pod_annotations.get(key),
            f"the pod template annotation of {owner}" if owner else "the pod annotation",
        ),
        (ns_annotations.get(key), f"Namespace {namespace}'s annotation"),
    ):
        if value is None:
            continue
        if value in DEFAULT_POLICIES:
            return value, f"{where} {key}: {value}"
        return cluster_default, (
            f"{where} {key}: {value} is not a recognised policy (the injector ignores it), "
            f"so the cluster default {cluster_default} applies"
        )
    return cluster_default, f"the cluster-wide default ({cluster_default})"
