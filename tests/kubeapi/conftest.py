"""The kubectl binaries the kubectl tests run with (see ``sandbox_api.kubectls``)."""

from __future__ import annotations

import os
import shutil

import pytest
from sandbox_api import kubectls


def _label(path: str) -> str:
    on_path = shutil.which("kubectl")
    return (
        "kubectl-on-PATH"
        if on_path and os.path.realpath(path) == os.path.realpath(on_path)
        else "kubectl-extra"
    )


@pytest.fixture(
    scope="module", params=kubectls() or [None], ids=lambda p: _label(p) if p else "none"
)
def kubectl(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once per kubectl binary; skipped where there is none (CI
    installs one) or where curl, which the pods' commands run, is missing."""
    if request.param is None:
        pytest.skip("kubectl is not installed")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    return str(request.param)
