"""scripts/audit_deps.py reads OSV records the way pip-audit does: ECOSYSTEM ranges, explicit
version lists, withdrawn records skipped (https://ossf.github.io/osv-schema/)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def audit():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("audit_deps", ROOT / "scripts/audit_deps.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_deps"] = module
    spec.loader.exec_module(module)
    return module


def record(tmp: Path, name: str, **fields: object) -> None:
    base = {
        "id": name,
        "modified": "2026-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Demo_Pkg"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [
                            {"introduced": "1.0"},
                            {"fixed": "1.4.2"},
                            {"introduced": "2.0"},
                            {"last_affected": "2.1"},
                        ],
                    }
                ],
                "versions": ["0.9.post1"],
            }
        ],
    }
    base.update(fields)
    (tmp / f"{name}.json").write_text(json.dumps(base))


@pytest.mark.parametrize(
    ("version", "hit"),
    [
        ("0.5", False),
        ("0.9.post1", True),
        ("1.0", True),
        ("1.4.1", True),
        ("1.4.2", False),
        ("1.9", False),
        ("2.0", True),
        ("2.1", True),
        ("2.1.1", False),
    ],
)
def test_ranges(audit, tmp_path: Path, version: str, hit: bool) -> None:  # type: ignore[no-untyped-def]
    record(tmp_path, "PYSEC-1")
    found = audit.check(audit.load_advisories(tmp_path), {"demo-pkg": version})
    assert [h["id"] for h in found] == (["PYSEC-1"] if hit else [])


def test_withdrawn_records_are_skipped(audit, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record(tmp_path, "PYSEC-2", withdrawn="2026-02-01T00:00:00Z")
    assert audit.check(audit.load_advisories(tmp_path), {"demo-pkg": "1.0"}) == []


def test_bad_folder_exits_2(audit, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert audit.main(["--osv", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
