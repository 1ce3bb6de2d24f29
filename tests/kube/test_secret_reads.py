"""meshtutor reads the certificates the edge needs, and nothing else (issue 13, review).

Before: it listed every ``kubernetes.io/tls`` Secret of the cluster, each with its private key,
and blanked the key afterwards. Now it reads only the Secrets a Gateway's ``credentialName``
(in the namespace of the gateway workload the Gateway selects) or an Ingress's
``secretName`` (in the Ingress's namespace) names, and keeps no key.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from apiserver import FakeAPIServer
from kube_helpers import https_gateway
from test_ownership import with_backend

from meshtutor.model.edge import Secret


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def tls_secret(namespace: str, name: str) -> dict[str, Any]:
    b64 = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n...").decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"tls.crt": b64, "tls.key": base64.b64encode(b"PRIVATE KEY").decode()},
    }


def test_only_the_secrets_gateways_and_ingresses_name_are_read(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    fake = fake_apiserver
    for ns in ("istio-system", "demo", "shop", "team"):
        fake.add_namespace(ns)
    fake.put_object(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {
                "selector": {"matchLabels": {"istio": "ingressgateway"}},
                "template": {
                    "metadata": {"labels": {"istio": "ingressgateway"}},
                    "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]},
                },
            },
        }
    )
    fake.put_object(https_gateway("web", "demo", "demo-cert", "demo.example.com"))
    fake.put_object(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": "shop"},
            "spec": {
                "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-cert"}],
                "rules": [{"host": "shop.example.com"}],
            },
        }
    )
    for ns, name in (("istio-system", "demo-cert"), ("shop", "shop-cert"), ("team", "other")):
        fake.put_object(tls_secret(ns, name))
    fake.put_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db-password", "namespace": "team"},
            "data": {"password": "aHVudGVyMg=="},
        }
    )
    cluster = with_backend(kubeconfig_path, lambda kube: asyncio.to_thread(lambda: kube.cluster))
    read = sorted(r.path for r in fake.requests if "/secrets" in r.path)
    assert read == [
        "/api/v1/namespaces/istio-system/secrets/demo-cert",
        "/api/v1/namespaces/shop/secrets/shop-cert",
    ]
    secrets = {(s.namespace, s.name): s for s in cluster.objects(Secret)}
    assert set(secrets) == {("istio-system", "demo-cert"), ("shop", "shop-cert")}
    assert all(s.data.get("tls.key") == b"" for s in secrets.values())
