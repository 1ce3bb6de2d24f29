"""The Online Boutique scenario of GoogleCloudPlatform/istio-samples security-intro
(reference §1.3, §2 "What a plaintext client sees at a STRICT sidecar", §3, §9.8).

curl from productcatalogservice's istio-proxy container (uid 1337, outside its own sidecar)
to http://frontend:80/ prints 200 by default and 000 / exit 56 once frontend's sidecar is
STRICT; the app container (``server``) goes through its sidecar and keeps getting 200 over
mutual TLS. Manifests: manifests/online-boutique/{demo,strict-namespace,strict-frontend}.yaml.
"""

from __future__ import annotations

import pytest
from topologies import (
    Delete,
    case,
    manifest_text,
    online_boutique,
    run_case,
    spiffe,
)

from meshtutor.errors import ProbeSpecError
from meshtutor.policy import Probe

STRICT_NAMESPACE = manifest_text("online-boutique/strict-namespace.yaml")
STRICT_FRONTEND = manifest_text("online-boutique/strict-frontend.yaml")
FROM_PROXY = "demo/productcatalogservice:istio-proxy=http://frontend:80/"
FROM_SERVER = "demo/productcatalogservice:server=http://frontend:80/"
FROM_DEFAULT_CONTAINER = "demo/productcatalogservice=http://frontend:80/"
PCS = spiffe("demo", "productcatalogservice")
FRONTEND = spiffe("demo", "frontend")

# --------------------------------------------------------------------------- istio-proxy curl
# ref §1.3 (istio-samples security-intro: 200 by default, 000 + exit 56 after STRICT)

FROM_ISTIO_PROXY = [
    case(
        "no-policy-is-200",
        (),
        FROM_PROXY,
        "200",
        words=("PERMISSIVE",),
        mtls=False,
        client=None,
        server=None,
    ),
    case(
        "strict-namespace-is-000-exit-56",
        STRICT_NAMESPACE,
        FROM_PROXY,
        "000/56",
        named=("PeerAuthentication demo/default",),
        mtls=False,
        client=None,
    ),
    case(
        "strict-frontend-is-000-exit-56",
        STRICT_FRONTEND,
        FROM_PROXY,
        "000/56",
        named=("PeerAuthentication demo/frontend",),
        mtls=False,
        client=None,
    ),
    case(
        "strict-namespace-deleted-is-200-again",
        (STRICT_NAMESPACE, Delete(STRICT_NAMESPACE)),
        FROM_PROXY,
        "200",
        words=("PERMISSIVE",),
        mtls=False,
    ),
    case(
        "strict-frontend-deleted-is-200-again",
        (STRICT_FRONTEND, Delete(STRICT_FRONTEND)),
        FROM_PROXY,
        "200",
        words=("PERMISSIVE",),
        mtls=False,
    ),
    case(
        "both-deleted-is-200-again",
        (STRICT_NAMESPACE, STRICT_FRONTEND, Delete(STRICT_FRONTEND), Delete(STRICT_NAMESPACE)),
        FROM_PROXY,
        "200",
        words=("PERMISSIVE",),
    ),
    case(
        "workload-strict-decides-when-both-apply",
        (STRICT_NAMESPACE, STRICT_FRONTEND),
        FROM_PROXY,
        "000/56",
        named=("PeerAuthentication demo/frontend",),
    ),
    case(
        "namespace-strict-remains-after-deleting-workload-policy",
        (STRICT_NAMESPACE, STRICT_FRONTEND, Delete(STRICT_FRONTEND)),
        FROM_PROXY,
        "000/56",
        named=("PeerAuthentication demo/default",),
    ),
    case(
        "fully-qualified-url-same-result",
        STRICT_NAMESPACE,
        "demo/productcatalogservice:istio-proxy=http://frontend.demo.svc.cluster.local:80/",
        "000/56",
        named=("PeerAuthentication demo/default",),
    ),
]


@pytest.mark.parametrize("c", FROM_ISTIO_PROXY)
def test_from_istio_proxy_container(c):
    run_case(online_boutique, c)


# --------------------------------------------------------------------------- app container
# ref §3 auto mTLS / explicit ISTIO_MUTUAL DR: the captured app container is unaffected by
# STRICT because its sidecar sends mutual TLS.

FROM_APP = [
    case(
        "no-policy-app-container-uses-auto-mtls",
        (),
        FROM_SERVER,
        "200",
        words=("auto",),
        mtls=True,
        client=PCS,
        server=FRONTEND,
    ),
    case(
        "strict-namespace-app-container-stays-200",
        STRICT_NAMESPACE,
        FROM_SERVER,
        "200",
        named=("PeerAuthentication demo/default",),
        mtls=True,
        client=PCS,
        server=FRONTEND,
    ),
    case(
        "strict-frontend-app-container-uses-istio-mutual-dr",
        STRICT_FRONTEND,
        FROM_SERVER,
        "200",
        named=("PeerAuthentication demo/frontend", "DestinationRule demo/frontend"),
        mtls=True,
        client=PCS,
        server=FRONTEND,
    ),
    case(
        "default-container-is-the-app-container",
        STRICT_NAMESPACE,
        FROM_DEFAULT_CONTAINER,
        "200",
        named=("PeerAuthentication demo/default",),
        mtls=True,
        client=PCS,
    ),
]


@pytest.mark.parametrize("c", FROM_APP)
def test_from_app_container(c):
    run_case(online_boutique, c)


# --------------------------------------------------------------------------- probe basics
# ref §8 curl exit codes + conventions: unknown host -> 000 / exit 6; https:// to a
# plain-HTTP mesh app -> 000 / exit 35; a malformed probe raises ProbeSpecError.

BASICS = [
    case(
        "unknown-host",
        (),
        "demo/productcatalogservice=http://no-such-service:80/",
        "000/6",
        words=("resolve|unknown|exist|DNS|not found",),
    ),
    case(
        "service-absent-from-named-namespace",
        (),
        "demo/productcatalogservice=http://frontend.default:80/",
        "000/6",
        words=("resolve|unknown|exist|DNS|not found",),
    ),
    case(
        "https-to-plain-http-app",
        (),
        "demo/productcatalogservice=https://frontend:80/",
        "000/35",
        words=("TLS|https",),
    ),
]


@pytest.mark.parametrize("c", BASICS)
def test_probe_basics(c):
    run_case(online_boutique, c)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("demo/productcatalogservice", id="no-url"),
        pytest.param("productcatalogservice=http://frontend:80/", id="no-namespace"),
        pytest.param("demo/=http://frontend:80/", id="empty-deployment"),
        pytest.param("/productcatalogservice=http://frontend:80/", id="empty-namespace"),
    ],
)
def test_invalid_probe_spec(spec):
    with pytest.raises(ProbeSpecError):
        Probe.parse(spec)
