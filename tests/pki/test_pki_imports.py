"""Import hygiene: the PKI never pulls in Textual, and the CLI module stays cheap to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import meshtutor.pki as pki

MODULES = [
    "meshtutor.pki",
    "meshtutor.pki.ca",
    "meshtutor.pki.cli",
    "meshtutor.pki.clock",
    "meshtutor.pki.identity",
    "meshtutor.pki.inspection",
    "meshtutor.pki.tlsctx",
    "meshtutor.pki.verify",
]


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_no_textual() -> None:
    loaded = _imported_after("; ".join(f"import {module}" for module in MODULES))
    assert not {name for name in loaded if name.split(".")[0] == "textual"}


def test_cli_module_is_cheap() -> None:
    loaded = _imported_after("import meshtutor.pki.cli")
    assert "cryptography" not in loaded
    assert "rich" not in loaded


def test_public_surface_resolves() -> None:
    for name in pki.__all__:
        assert getattr(pki, name) is not None
    assert set(pki.__all__) == set(pki._EXPORTS)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        pki.nope  # noqa: B018
