"""The core never imports Textual (DESIGN §3), and `meshtutor --help` stays light.

Each module is imported in a fresh interpreter, as harlequin's hygiene test does, so that
nothing imported by another test can hide a dependency.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE = [
    "meshtutor.model",
    "meshtutor.policy",
    "meshtutor.pki",
    "meshtutor.lessons",
    "meshtutor.backends",
    "meshtutor.commands.explain",
]


def _modules_after_import(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", CORE)
def test_core_does_not_import_textual(module: str) -> None:
    loaded = _modules_after_import(module)
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


@pytest.mark.parametrize("module", ["meshtutor.model", "meshtutor.policy"])
def test_model_and_policy_do_no_io_or_crypto(module: str) -> None:
    loaded = _modules_after_import(module)
    assert "kubernetes" not in loaded
    assert "cryptography" not in loaded
    assert "socket" not in loaded or "asyncio" not in loaded


def test_cli_help_imports_no_heavy_module() -> None:
    code = (
        "import json, sys\n"
        "from meshtutor.cli import cli\n"
        "from click.testing import CliRunner\n"
        "CliRunner().invoke(cli, ['--help'])\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"textual", "kubernetes", "cryptography", "rich"}
