from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The tests import their helpers as a plain module, as tests/lessons does.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The classroom's --data directory (a real SQLite file lives there)."""
    return tmp_path / "room"
