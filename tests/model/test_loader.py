"""The manifest loader: typed resources from real YAML, and one precise error per mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from meshtutor.errors import ManifestError
from meshtutor.model import (
    AuthorizationPolicy,
    Deployment,
    DestinationRule,
    HTTPRoute,
    LinkerdAuthorizationPolicy,
    MeshTLSAuthentication,
    NetworkAuthentication,
    NetworkPolicy,
    PeerAuthentication,
    Server,
    ServerAuthorization,
    Service,
    UnmodelledResource,
    load_file,
    load_yaml,
)

ROOT = Path(__file__).resolve().parents[2]


def y(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


class TestSamples:
    @pytest.mark.parametrize("path", sorted((ROOT / "manifests").rglob("*.yaml")), ids=str)
    def test_every_shipped_manifest_loads(self, path: Path) -> None:
        assert load_file(path)

    def test_httpbin_sample_is_typed(self) -> None:
        docs = load_file(ROOT / "manifests/samples/httpbin.yaml", default_namespace="foo")
        service = next(d for d in docs if isinstance(d, Service))
        deployment = next(d for d in docs if isinstance(d, Deployment))
        assert service.ref.namespace == "foo"
        assert (service.ports[0].port, service.ports[0].target_port) == (8000, 8080)
        assert deployment.template.spec.service_account == "httpbin"
        assert deployment.template.spec.containers[0].ports[0].container_port == 8080
        assert deployment.origin.line == 23 and deployment.origin.document == 3


class TestIstioKinds:
    @pytest.mark.parametrize("version", ["v1beta1", "v1"])
    def test_peer_authentication(self, version: str) -> None:
        (pa,) = load_yaml(
            y(f"""
            apiVersion: security.istio.io/{version}
            kind: PeerAuthentication
            metadata: {{name: httpbin, namespace: foo}}
            spec:
              selector: {{matchLabels: {{app: httpbin}}}}
              mtls: {{mode: STRICT}}
              portLevelMtls:
                8080: {{mode: DISABLE}}
                "9000": {{mode: PERMISSIVE}}
        """)
        )
        assert isinstance(pa, PeerAuthentication)
        assert pa.mode == "STRICT"
        assert dict(pa.port_level) == {8080: "DISABLE", 9000: "PERMISSIVE"}
        assert str(pa.selector) == "app=httpbin"

    @pytest.mark.parametrize("version", ["v1alpha3", "v1beta1", "v1"])
    def test_destination_rule(self, version: str) -> None:
        (dr,) = load_yaml(
            y(f"""
            apiVersion: networking.istio.io/{version}
            kind: DestinationRule
            metadata: {{name: httpbin, namespace: bar}}
            spec:
              host: httpbin.bar.svc.cluster.local
              exportTo: ["."]
              trafficPolicy:
                loadBalancer: {{simple: ROUND_ROBIN}}
                tls: {{mode: ISTIO_MUTUAL}}
                portLevelSettings:
                - port: {{number: 8000}}
                  tls: {{mode: DISABLE}}
        """)
        )
        assert isinstance(dr, DestinationRule)
        assert dr.traffic_policy is not None and dr.traffic_policy.tls is not None
        assert dr.traffic_policy.tls.mode == "ISTIO_MUTUAL"
        assert dr.traffic_policy.port_level[0].port == 8000
        assert dr.export_to == (".",)

    def test_authorization_policy_with_dry_run(self) -> None:
        (ap,) = load_yaml(
            y("""
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata:
              name: allow-get
              namespace: foo
              annotations: {istio.io/dry-run: "true"}
            spec:
              action: DENY
              rules:
              - from: [{source: {principals: ["cluster.local/ns/foo/sa/sleep"]}}]
                to: [{operation: {methods: ["GET"], ports: ["8080"]}}]
                when: [{key: "request.headers[x-token]", values: ["abc"]}]
        """)
        )
        assert isinstance(ap, AuthorizationPolicy)
        assert ap.dry_run and ap.action == "DENY"
        assert ap.rules[0].operations[0].fields["ports"] == ("8080",)


class TestLinkerdKinds:
    def test_all_policy_kinds(self) -> None:
        docs = load_yaml(
            y("""
            apiVersion: policy.linkerd.io/v1beta3
            kind: Server
            metadata: {name: web-http, namespace: emojivoto}
            spec:
              podSelector: {matchLabels: {app: web-svc}}
              port: http
              proxyProtocol: HTTP/1
              accessPolicy: deny
            ---
            apiVersion: policy.linkerd.io/v1beta3
            kind: HTTPRoute
            metadata: {name: web-get, namespace: emojivoto}
            spec:
              parentRefs: [{name: web-http, kind: Server, group: policy.linkerd.io}]
              rules:
              - matches: [{path: {value: /api, type: PathPrefix}, method: GET}]
            ---
            apiVersion: policy.linkerd.io/v1alpha1
            kind: MeshTLSAuthentication
            metadata: {name: vote-bot, namespace: emojivoto}
            spec:
              identities: ["vote-bot.emojivoto.serviceaccount.identity.linkerd.cluster.local"]
            ---
            apiVersion: policy.linkerd.io/v1alpha1
            kind: NetworkAuthentication
            metadata: {name: cluster-nets, namespace: emojivoto}
            spec:
              networks: [{cidr: 10.0.0.0/8, except: [10.9.0.0/16]}]
            ---
            apiVersion: policy.linkerd.io/v1alpha1
            kind: AuthorizationPolicy
            metadata: {name: web-get-policy, namespace: emojivoto}
            spec:
              targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: web-get}
              requiredAuthenticationRefs:
              - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: vote-bot}
            ---
            apiVersion: policy.linkerd.io/v1beta1
            kind: ServerAuthorization
            metadata: {name: legacy, namespace: emojivoto}
            spec:
              server: {name: web-http}
              client:
                meshTLS:
                  serviceAccounts: [{name: web}]
        """)
        )
        kinds = [type(d) for d in docs]
        assert kinds == [
            Server,
            HTTPRoute,
            MeshTLSAuthentication,
            NetworkAuthentication,
            LinkerdAuthorizationPolicy,
            ServerAuthorization,
        ]
        server = docs[0]
        assert isinstance(server, Server) and server.port == "http"
        assert isinstance(docs[5], ServerAuthorization)
        assert docs[5].service_accounts == (("web", None),)


class TestNetworkPolicy:
    def test_defaults_and_peers(self) -> None:
        (np,) = load_yaml(
            y("""
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: allow-a, namespace: demo}
            spec:
              podSelector: {matchLabels: {app: b}}
              ingress:
              - from:
                - namespaceSelector: {matchLabels: {team: x}}
                  podSelector: {matchLabels: {app: a}}
                - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
                ports: [{port: 8080}, {port: http, protocol: TCP}]
        """)
        )
        assert isinstance(np, NetworkPolicy)
        assert np.policy_types == ("Ingress",)
        peer = np.ingress[0].peers[0]
        assert peer.namespace_selector is not None and peer.pod_selector is not None
        assert np.ingress[0].ports[1].port == "http"


class TestListsAndUnmodelled:
    def test_kind_list_is_expanded(self) -> None:
        docs = load_yaml(
            y("""
            apiVersion: v1
            kind: List
            items:
            - {apiVersion: v1, kind: Namespace, metadata: {name: foo}}
            - {apiVersion: v1, kind: ServiceAccount, metadata: {name: sleep, namespace: foo}}
        """)
        )
        assert [d.kind for d in docs] == ["Namespace", "ServiceAccount"]

    @pytest.mark.parametrize(
        "api_version, kind",
        [
            ("v1", "Endpoints"),
            ("apps/v1", "StatefulSet"),
            ("cert-manager.io/v1", "Certificate"),
            ("networking.istio.io/v1", "ServiceEntry"),
            ("security.istio.io/v1", "RequestAuthentication"),
        ],
    )
    def test_unmodelled_kinds_are_reported_not_errors(self, api_version: str, kind: str) -> None:
        (doc,) = load_yaml(f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\n")
        assert isinstance(doc, UnmodelledResource)
        assert doc.kind == kind

    def test_empty_documents_are_skipped_but_counted(self) -> None:
        with pytest.raises(ManifestError, match=r"document 3, field spec\.mtls\.mode"):
            load_yaml(
                y("""
                ---
                apiVersion: v1
                kind: Namespace
                metadata: {name: foo}
                ---
                ---
                apiVersion: security.istio.io/v1
                kind: PeerAuthentication
                metadata: {name: x, namespace: foo}
                spec: {mtls: {mode: strict}}
            """)
            )


PA = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: x\n"


class TestErrors:
    """Each mistake names the file, document, line and field and says what was expected."""

    def test_malformed_yaml(self) -> None:
        with pytest.raises(ManifestError, match=r"^bad\.yaml:3: this is not valid YAML: .*column"):
            load_yaml("a: 1\nb: [1, 2\nc: 3\n", source="bad.yaml")

    def test_tab_indentation(self) -> None:
        with pytest.raises(ManifestError, match=r"^t\.yaml:\d+: this is not valid YAML"):
            load_yaml("metadata:\n\tname: x\n", source="t.yaml")

    def test_document_that_is_not_a_mapping(self) -> None:
        with pytest.raises(ManifestError, match=r"document 1: a document must be a mapping"):
            load_yaml("- a\n- b\n")

    def test_missing_api_version(self) -> None:
        with pytest.raises(ManifestError, match=r"field apiVersion: apiVersion is missing"):
            load_yaml("kind: Service\nmetadata: {name: a}\n")

    def test_missing_kind(self) -> None:
        with pytest.raises(ManifestError, match=r"field kind: kind is missing"):
            load_yaml("apiVersion: v1\nmetadata: {name: a}\n")

    def test_misspelled_kind_in_a_modelled_group(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"x\.yaml:2, document 1, field kind: .*no kind 'PeerAuthentications'; did you mean \"PeerAuthentication\"\?",
        ):
            load_yaml(PA.replace("PeerAuthentication", "PeerAuthentications"), source="x.yaml")

    def test_kind_in_the_wrong_group(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"there is no PeerAuthentication in networking\.istio\.io/v1; PeerAuthentication is apiVersion security\.istio\.io/v1",
        ):
            load_yaml(PA.replace("security.istio.io", "networking.istio.io"))

    def test_version_not_served(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"DestinationRule is not served as networking\.istio\.io/v2; expected networking\.istio\.io/v1alpha3 or networking\.istio\.io/v1beta1 or networking\.istio\.io/v1",
        ):
            load_yaml(
                "apiVersion: networking.istio.io/v2\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a}\n"
            )

    def test_retired_api(self) -> None:
        with pytest.raises(ManifestError, match=r"removed in Istio 1\.6"):
            load_yaml(
                "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: a}\n"
            )

    def test_wrong_enum_value(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"^<input>:7, document 1, field spec\.mtls\.mode: mode must be one of UNSET, DISABLE, PERMISSIVE, STRICT; got 'STRIKT' \(did you mean \"STRICT\"\?\)$",
        ):
            load_yaml(PA + "spec:\n  mtls:\n    mode: STRIKT\n")

    def test_lowercase_enum_value(self) -> None:
        with pytest.raises(
            ManifestError, match=r"got 'istio_mutual' \(did you mean \"ISTIO_MUTUAL\"\?\)"
        ):
            load_yaml(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec:\n  host: a\n  trafficPolicy:\n    tls:\n      mode: istio_mutual\n"
            )

    def test_unknown_field_in_spec(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r":6, document 1, field spec\.mtsl: unknown field 'mtsl' in a PeerAuthentication spec; did you mean \"mtls\"\?",
        ):
            load_yaml(PA + "spec:\n  mtsl:\n    mode: STRICT\n")

    def test_unknown_field_deep_in_a_deployment(self) -> None:
        text = (
            (ROOT / "manifests/samples/httpbin.yaml")
            .read_text()
            .replace(
                "        - containerPort: 8080",
                "        - containerPort: 8080\n          hostport: 80",
            )
        )
        with pytest.raises(
            ManifestError,
            match=r"httpbin\.yaml:\d+, document 3, field spec\.template\.spec\.containers\[0\]\.ports\[0\]\.hostport: unknown field 'hostport'.*did you mean \"hostPort\"",
        ):
            load_yaml(text, source="httpbin.yaml")

    def test_wrong_type(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"field spec\.ports\[0\]\.port: expected a port number between 1 and 65535, got 'eighty'",
        ):
            load_yaml(
                "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - port: eighty\n"
            )

    def test_unquoted_boolean_label(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"field metadata\.labels\.sidecar\.istio\.io/inject: expected a string, got a boolean \(quote it",
        ):
            load_yaml(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels:\n    sidecar.istio.io/inject: true\nspec:\n  containers: [{name: a, image: b}]\n"
            )

    def test_port_level_mtls_needs_selector(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"field spec\.portLevelMtls: portLevelMtls requires a workload selector",
        ):
            load_yaml(PA + "spec:\n  portLevelMtls:\n    8080: {mode: DISABLE}\n")

    def test_port_level_mtls_key_must_be_a_port(self) -> None:
        with pytest.raises(
            ManifestError, match=r"expected a port number \(1-65535\) as key, got 'http'"
        ):
            load_yaml(
                PA
                + "spec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    http: {mode: DISABLE}\n"
            )

    def test_authz_port_must_be_a_string(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"operation\.ports\[0\]: expected a string, got a number \(quote it",
        ):
            load_yaml(
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - to: [{operation: {ports: [8080]}}]\n"
            )

    def test_unknown_condition_key(self) -> None:
        with pytest.raises(
            ManifestError, match=r"when\[0\]\.key: unknown condition key 'request\.method'"
        ):
            load_yaml(
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - when: [{key: request.method, values: [GET]}]\n"
            )

    def test_custom_needs_provider(self) -> None:
        with pytest.raises(
            ManifestError, match=r"field spec\.provider: action CUSTOM needs provider\.name"
        ):
            load_yaml(
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  action: CUSTOM\n  rules: [{}]\n"
            )

    def test_deployment_selector_must_match_template(self) -> None:
        text = (
            (ROOT / "manifests/samples/httpbin.yaml")
            .read_text()
            .replace("      version: v1\n  template", "      version: v2\n  template")
        )
        with pytest.raises(
            ManifestError,
            match=r"field spec\.selector: selector app=httpbin,version=v2 does not match the pod template labels app=httpbin,version=v1",
        ):
            load_yaml(text)

    def test_invalid_name(self) -> None:
        with pytest.raises(
            ManifestError, match=r"field metadata\.name: 'Foo_Bar' is not a valid name"
        ):
            load_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: Foo_Bar}\n")

    def test_duplicate_key(self) -> None:
        with pytest.raises(
            ManifestError, match=r":5: this is not valid YAML: found duplicate key 'name'"
        ):
            load_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n")

    def test_namespace_conflict_with_default_namespace(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"field metadata\.namespace: the document says namespace 'foo' but you asked for 'bar'",
        ):
            load_yaml(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: foo}\n",
                default_namespace="bar",
            )

    def test_named_target_port_that_is_a_number_in_quotes(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r'targetPort: "8080" is a string; write the port number without quotes',
        ):
            load_yaml(
                'apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80, targetPort: "8080"}]\n'
            )

    def test_match_expression_needs_values(self) -> None:
        with pytest.raises(ManifestError, match=r"operator In needs a non-empty values list"):
            load_yaml(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec:\n  podSelector:\n    matchExpressions: [{key: app, operator: In}]\n"
            )

    def test_bad_cidr(self) -> None:
        with pytest.raises(ManifestError, match=r"'10\.0\.0\.0/33' is not a CIDR"):
            load_yaml(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/33}}]\n"
            )

    def test_linkerd_target_kind(self) -> None:
        with pytest.raises(
            ManifestError,
            match=r"targetRef\.kind: targetRef\.kind must be one of Server, HTTPRoute, GRPCRoute, Namespace; got 'Deployment'",
        ):
            load_yaml(
                "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  targetRef: {kind: Deployment, name: web}\n  requiredAuthenticationRefs: []\n"
            )

    def test_linkerd_access_policy_value(self) -> None:
        with pytest.raises(
            ManifestError, match=r"got 'all_authenticated' \(did you mean \"all-authenticated\"\?\)"
        ):
            load_yaml(
                "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: a}\nspec:\n  podSelector: {}\n  port: 80\n  accessPolicy: all_authenticated\n"
            )

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ManifestError, match=r"nope\.yaml: no such file"):
            load_file(tmp_path / "nope.yaml")

    def test_binary_file(self, tmp_path: Path) -> None:
        path = tmp_path / "b.yaml"
        path.write_bytes(b"\xff\xfe\x00garbage")
        with pytest.raises(ManifestError, match=r"not UTF-8"):
            load_file(path)

    def test_nothing_is_half_loaded(self) -> None:
        good = "apiVersion: v1\nkind: Namespace\nmetadata: {name: foo}\n---\n"
        with pytest.raises(ManifestError, match=r"document 2"):
            load_yaml(good + PA + "spec: {mtls: {mode: NOPE}}\n")
