"""Issue 13 item 10 on the real-cluster path: a lesson whose manifest is an alias bomb never
reaches KubeBackend.apply, whose ``json.dumps`` of the document built 3.7 GB for the 385-byte
bomb. The smaller bomb here (4.8 million strings) keeps the failure before the fix quick."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest
from apiserver import CONTEXT, FakeAPIServer

from meshtutor.backends.kube import KubeBackend
from meshtutor.errors import ManifestError
from meshtutor.lessons.loader import load_lesson
from meshtutor.lessons.runner import LessonRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzzkit import billion_laughs

BOMB = billion_laughs(7, head="apiVersion: v1\nkind: Namespace\nmetadata: {name: bombed}\n")
LESSON = textwrap.dedent("""\
    id: bombed
    title: A lesson that applies a bomb
    mesh: istio
    summary: Nothing much.
    minutes: 5
    topology:
      - apply: bomb.yaml
    steps:
      - id: one
        title: One
        prose: One.
    """)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_lesson_applying_a_bomb_stops_before_the_cluster(
    fake_apiserver: FakeAPIServer, kubeconfig_path: Path, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "bomb.yaml").write_text(BOMB)
    (tmp_path / "bombed.yaml").write_text(LESSON)
    lesson = load_lesson(tmp_path / "bombed.yaml", manifests=manifests)

    def kube(mesh: str) -> KubeBackend:
        return KubeBackend("istio", kubeconfig=str(kubeconfig_path), context=CONTEXT)

    async def main() -> None:
        runner = LessonRunner(lesson, backend_factory=kube)
        try:
            await runner.start(resume=False)
        finally:
            await runner.stop()

    with pytest.raises(ManifestError) as exc:
        asyncio.run(main())
    assert str(exc.value).startswith(f"{manifests / 'bomb.yaml'}:9: the alias *d at column")
    assert not [r for r in fake_apiserver.requests if r.method == "PATCH"]
    assert fake_apiserver.get_object("v1", "Namespace", "bombed") is None
