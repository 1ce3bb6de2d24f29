"""Fixtures for the PKI tests: fixed times, cheap ECDSA meshes, one shared RSA mesh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pki_helpers import T0

from meshtutor.pki import ManualClock, MeshCA


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def istio(clock: ManualClock) -> MeshCA:
    return MeshCA.istio(clock=clock, seed=7)


@pytest.fixture
def linkerd(clock: ManualClock) -> MeshCA:
    return MeshCA.linkerd(clock=clock, seed=7)


@pytest.fixture(scope="module")
def rsa_istio() -> Iterator[MeshCA]:
    # RSA keys cost ~50 ms each: one mesh per module.
    yield MeshCA.istio(key_type="rsa", clock=ManualClock(T0), seed=7)
