"""Random documents never crash the loader: they load, or raise ManifestError."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshtutor.errors import ManifestError
from meshtutor.model import Resource, load_yaml

# The strategies live in tests/fuzzkit.py, shared with tests/test_fuzz_inputs.py (the same
# inputs through the real commands) and bench/fuzz_inputs.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzzkit import SAMPLES, TREES, documents, text_mutations


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
@given(st.sampled_from(SAMPLES).flatmap(text_mutations))
def test_mutated_real_manifests(mutated: str) -> None:
    """Delete, duplicate or replace a slice of a real manifest, as a typo would."""
    _load(mutated)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    _load(text)
