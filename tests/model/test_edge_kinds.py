"""Gateway, VirtualService, Ingress, IngressClass and Secret: typed from real YAML, and one
precise error (file, line, field, what was expected) per mistake, as the API server or the
CRD validation would reject it."""

from __future__ import annotations

import textwrap

import pytest

from meshtutor.errors import ManifestError, ProbeSpecError
from meshtutor.model import load_yaml
from meshtutor.model.edge import Gateway, Ingress, IngressClass, Secret, VirtualService
from meshtutor.policy.probe import Probe


def load(text: str) -> list:  # type: ignore[type-arg]
    return load_yaml(textwrap.dedent(text), source="edge.yaml")


def test_gateway_and_virtual_service_are_typed() -> None:
    gw, vs = load("""\
        apiVersion: networking.istio.io/v1beta1
        kind: Gateway
        metadata: {name: gw, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 443, name: https, protocol: https}
            hosts: [Shop.Example.com]
            tls: {mode: SIMPLE, credentialName: shop-tls}
        ---
        apiVersion: networking.istio.io/v1alpha3
        kind: VirtualService
        metadata: {name: shop, namespace: demo}
        spec:
          hosts: [shop.example.com]
          gateways: [istio-system/gw]
          http:
          - match: [{uri: {prefix: /api}}]
            route:
            - {destination: {host: api, port: {number: 8080}}, weight: 90}
            - {destination: {host: api-canary}, weight: 10}
        """)
    assert isinstance(gw, Gateway) and isinstance(vs, VirtualService)
    server = gw.servers[0]
    assert (server.number, server.protocol, server.hosts) == (443, "HTTPS", ("shop.example.com",))
    assert server.tls is not None and server.tls.credential_name == "shop-tls"
    assert vs.gateways == ("istio-system/gw",)
    rule = vs.http[0]
    assert rule.matches[0].uri is not None and rule.matches[0].uri.matches("/api/v1")
    assert [(d.host, d.port, d.weight) for d in rule.destinations] == [
        ("api", 8080, 90),
        ("api-canary", None, 10),
    ]


def test_ingress_class_secret_are_typed() -> None:
    ing, cls, secret = load("""\
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: shop
          namespace: shop
          annotations: {nginx.ingress.kubernetes.io/service-upstream: "true"}
        spec:
          ingressClassName: nginx
          tls: [{hosts: [shop.example.com], secretName: shop-tls}]
          rules:
          - host: shop.example.com
            http:
              paths:
              - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
        ---
        apiVersion: networking.k8s.io/v1
        kind: IngressClass
        metadata:
          name: nginx
          annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
        spec: {controller: k8s.io/ingress-nginx}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: shop-tls, namespace: shop}
        type: kubernetes.io/tls
        data: {tls.crt: Y2VydA==}
        stringData: {tls.key: key}
        """)
    assert isinstance(ing, Ingress) and ing.ingress_class == "nginx"
    assert ing.rules[0].paths[0].backend.port == "http"
    assert ing.tls[0].secret_name == "shop-tls"
    assert isinstance(cls, IngressClass) and cls.is_default and cls.namespace is None
    assert isinstance(secret, Secret) and secret.data == {"tls.crt": b"cert", "tls.key": b"key"}


@pytest.mark.parametrize(
    "text, line, field, message",
    [
        (
            """\
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw}
            spec:
              servers:
              - port: {number: 443, name: https, protocol: HTTPS}
                hosts: ["*"]
            """,
            6,
            "spec.servers[0].tls",
            "a HTTPS server needs tls settings",
        ),
        (
            """\
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw}
            spec:
              servers:
              - port: {number: 80, name: http, protocol: HTTP}
                host: ["*"]
            """,
            7,
            "spec.servers[0].host",
            'did you mean "hosts"',
        ),
        (
            """\
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw}
            spec:
              servers:
              - port: {number: 443, name: https, protocol: HTTPS}
                hosts: ["*"]
                tls: {mode: SIMPLE}
            """,
            6,
            "spec.servers[0].tls.credentialName",
            "needs credentialName",
        ),
        (
            """\
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw}
            spec:
              servers:
              - port: {number: 80, name: http, protocol: HTTPX}
                hosts: ["*"]
            """,
            6,
            "spec.servers[0].port.protocol",
            "protocol must be one of HTTP",
        ),
        (
            """\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: vs}
            spec:
              hosts: ["*"]
              http:
              - route: [{destination: {host: a}}]
                redirect: {uri: /b}
            """,
            7,
            "spec.http[0].redirect",
            "cannot have both route and redirect",
        ),
        (
            """\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: vs}
            spec:
              hosts: ["*"]
              http:
              - match: [{uri: {prefix: /a, exact: /a}}]
                route: [{destination: {host: a}}]
            """,
            7,
            "spec.http[0].match[0].uri",
            "exactly one of exact, prefix or regex",
        ),
        (
            """\
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: i}
            spec:
              rules:
              - http:
                  paths:
                  - {path: shop, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
            """,
            8,
            "spec.rules[0].http.paths[0]",
            "must be an absolute path",
        ),
        (
            """\
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: i}
            spec:
              rules:
              - http:
                  paths:
                  - {path: /, backend: {service: {name: web, port: {number: 80}}}}
            """,
            8,
            "spec.rules[0].http.paths[0].pathType",
            "required field 'pathType' is missing",
        ),
        (
            """\
            apiVersion: v1
            kind: Secret
            metadata: {name: s}
            type: kubernetes.io/tls
            data: {tls.crt: Y2VydA==}
            """,
            1,
            "data[tls.key]",
            r"needs data\[tls.key\]",
        ),
        (
            """\
            apiVersion: v1
            kind: Secret
            metadata: {name: s}
            data: {password: "not base64!"}
            """,
            4,
            "data.password",
            "must be base64",
        ),
        (
            """\
            apiVersion: v1
            kind: Service
            metadata: {name: s}
            spec:
              type: NodePort
              ports: [{port: 80, nodePort: 80}]
            """,
            6,
            "spec.ports[0].nodePort",
            "must be at least 30000",
        ),
    ],
)
def test_mistakes_name_line_field_and_expectation(
    text: str, line: int, field: str, message: str
) -> None:
    with pytest.raises(ManifestError, match=message) as info:
        load(text)
    error = info.value
    assert (error.line, error.field) == (line, field), str(error)
    assert str(error).startswith("edge.yaml:")


@pytest.mark.parametrize(
    "text, message",
    [
        ("outside:sleep=http://a.b/", "not valid"),
        ("outside=https://shop.example.com/ --cacert", "--cacert needs a file"),
        ("outside=https://shop.example.com/ --verbose", "unknown curl option '--verbose'"),
        ("outside=shop.example.com", "is not a URL"),
    ],
)
def test_outside_probe_mistakes(text: str, message: str) -> None:
    with pytest.raises(ProbeSpecError, match=message):
        Probe.parse(text)


def test_outside_probe_forms() -> None:
    probe = Probe.parse("outside=https://shop.example.com/ -k --cacert edge/public-ca.pem")
    assert probe.outside and probe.insecure and probe.cacert == "edge/public-ca.pem"
    assert probe.source == "outside"
    assert probe.describe() == "outside=https://shop.example.com/ -k --cacert edge/public-ca.pem"
    entry = Probe.from_entry(
        {"from": "outside", "url": "http://a.example/", "insecure": True}, "f:1"
    )
    assert entry.outside and entry.insecure
    with pytest.raises(ProbeSpecError, match="no container"):
        Probe.from_outside("http://a.example/", container="c")
