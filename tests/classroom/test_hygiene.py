"""The classroom is core code (DESIGN §3): the client the app will embed and the server never
import Textual, and ``meshtutor --help`` does not import aiohttp."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("module", ["meshtutor.classroom.client", "meshtutor.classroom.server"])
def test_classroom_does_not_import_textual(module: str) -> None:
    loaded = _modules_after(f"import {module}")
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


def test_help_does_not_import_aiohttp() -> None:
    loaded = _modules_after(
        "from click.testing import CliRunner\n"
        "from meshtutor.cli import cli\n"
        "CliRunner().invoke(cli, ['classroom', '--help'])"
    )
    assert "aiohttp" not in loaded
