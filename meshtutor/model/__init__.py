"""Kubernetes, Istio and Linkerd manifests as typed, validated, frozen resources."""

from __future__ import annotations

from meshtutor.model.base import ObjectMeta, Origin, Resource, ResourceRef
from meshtutor.model.istio import (
    AuthorizationPolicy,
    DestinationRule,
    MeshConfig,
    PeerAuthentication,
)
from meshtutor.model.k8s import (
    ConfigMap,
    Container,
    Deployment,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    Service,
    ServiceAccount,
)
from meshtutor.model.linkerd import (
    HTTPRoute,
    LinkerdAuthorizationPolicy,
    MeshTLSAuthentication,
    NetworkAuthentication,
    Server,
    ServerAuthorization,
)
from meshtutor.model.loader import UnmodelledResource, load_file, load_yaml

__all__ = [
    "AuthorizationPolicy",
    "ConfigMap",
    "Container",
    "Deployment",
    "DestinationRule",
    "HTTPRoute",
    "LabelSelector",
    "LinkerdAuthorizationPolicy",
    "MeshConfig",
    "MeshTLSAuthentication",
    "Namespace",
    "NetworkAuthentication",
    "NetworkPolicy",
    "ObjectMeta",
    "Origin",
    "PeerAuthentication",
    "Pod",
    "Resource",
    "ResourceRef",
    "Server",
    "ServerAuthorization",
    "Service",
    "ServiceAccount",
    "UnmodelledResource",
    "load_file",
    "load_yaml",
]
