"""Random documents never crash the loader: they load, or raise ManifestError."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshtutor.errors import ManifestError
from meshtutor.model import Resource, load_yaml
from meshtutor.model.loader import KINDS

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [p.read_text() for p in sorted((ROOT / "manifests").rglob("*.yaml"))]

FIELD_NAMES = sorted(
    {
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "namespace",
        "labels",
        "annotations",
        "spec",
        "selector",
        "matchLabels",
        "matchExpressions",
        "key",
        "operator",
        "values",
        "mtls",
        "mode",
        "portLevelMtls",
        "host",
        "trafficPolicy",
        "tls",
        "portLevelSettings",
        "port",
        "number",
        "rules",
        "from",
        "to",
        "when",
        "source",
        "operation",
        "principals",
        "namespaces",
        "paths",
        "methods",
        "ports",
        "action",
        "provider",
        "podSelector",
        "namespaceSelector",
        "ipBlock",
        "cidr",
        "except",
        "ingress",
        "egress",
        "policyTypes",
        "containers",
        "image",
        "template",
        "replicas",
        "targetPort",
        "containerPort",
        "targetRef",
        "requiredAuthenticationRefs",
        "identities",
        "networks",
        "accessPolicy",
        "proxyProtocol",
        "parentRefs",
        "matches",
        "data",
        "items",
        "exportTo",
        "subsets",
        "client",
        "server",
        "meshTLS",
        "unauthenticated",
    }
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 70000),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "STRICT",
            "PERMISSIVE",
            "DISABLE",
            "ISTIO_MUTUAL",
            "ALLOW",
            "DENY",
            "CUSTOM",
            "In",
            "Exists",
            "TCP",
            "8080",
            "http",
            "*",
            "cluster.local/ns/foo/sa/sleep",
            "10.0.0.0/8",
            "foo",
            "",
            "Server",
            "Namespace",
            "HTTPRoute",
        ]
    ),
    st.text(max_size=12),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELD_NAMES), st.integers(0, 9000)), children, max_size=5
        ),
    ),
    max_leaves=25,
)
API_KINDS = [(f"{k.group}/{v}" if k.group else v, k.kind) for k in KINDS for v in k.versions]


@st.composite
def documents(draw: st.DrawFn) -> str:
    api_version, kind = draw(st.sampled_from(API_KINDS))
    doc = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": draw(st.one_of(st.just({"name": "x", "namespace": "foo"}), TREES)),
    }
    extra = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), TREES, max_size=3))
    doc.update(extra)
    return yaml.safe_dump(doc, sort_keys=False)


def _load(text: str) -> None:
    try:
        result = load_yaml(text, source="fuzz.yaml")
    except ManifestError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml")
        assert "\n" not in message.strip() or "YAML" in message
        return
    assert all(isinstance(r, Resource) for r in result)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_random_documents_of_every_kind(text: str) -> None:
    _load(text)


@settings(max_examples=200, deadline=None)
@given(TREES.map(lambda t: yaml.safe_dump(t)))
def test_random_trees(text: str) -> None:
    _load(text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_real_manifests(text: str, data: st.DataObject) -> None:
    """Delete, duplicate or replace a slice of a real manifest, as a typo would."""
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start, min(len(text), start + 30)))
    action = data.draw(st.sampled_from(["delete", "dup", "replace"]))
    if action == "delete":
        mutated = text[:start] + text[end:]
    elif action == "dup":
        mutated = text[:end] + text[start:end] + text[end:]
    else:
        mutated = text[:start] + data.draw(st.text(max_size=8)) + text[end:]
    _load(mutated)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    _load(text)
