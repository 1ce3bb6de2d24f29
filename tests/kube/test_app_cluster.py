"""The app on a real cluster (``meshtutor --context X``): a cluster that does not answer and an
object that is not meshtutor's show as a readable message in a dialog, never as a hang or a
traceback; with ``--adopt`` the lesson starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiserver import CONTEXT, FakeAPIServer
from kube_helpers import write_kubeconfig
from test_ownership import user_policy, writes

from meshtutor.backends.kube import Journal
from meshtutor.commands.common import backend_factory
from meshtutor.lessons.loader import find_lesson
from meshtutor.lessons.progress import Progress
from meshtutor.tui.app import MeshtutorApp
from meshtutor.tui.screens.dialogs import ErrorScreen
from meshtutor.tui.screens.lesson import LessonScreen
from meshtutor.tui.session import Session

SIZE = (120, 40)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def screen_text(app: Any) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def dialog_text(screen: str) -> str:
    """The words inside the dialog's border, as one line (the dialog wraps them)."""
    inside = [line.split("│")[1].strip() for line in screen.splitlines() if line.count("│") >= 2]
    return " ".join(part for part in inside if part)


async def wait_for(pilot: Any, predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}; the screen:\n{screen_text(pilot.app)}")
        await pilot.pause(0.1)
    return value


def open_lesson(tmp_path: Path, number: str, factory: Any) -> Any:
    """Open a lesson in the app, as the learner would, and return the dialog (or the lesson
    screen) it ends on."""
    lesson = find_lesson(number)
    progress = Progress(tmp_path / "progress.sqlite")
    session = Session(progress=progress, backend_factory=factory)
    app = MeshtutorApp(
        lessons=[lesson], progress=progress, session=session, warm=False, backend_label="cluster"
    )

    async def main() -> Any:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.open_lesson(lesson)

            def settled() -> Any:
                if isinstance(app.screen, ErrorScreen) and "press enter to close" in (
                    text := screen_text(app)
                ):
                    return ("error", app.screen.title_text, app.screen.message, text)
                if isinstance(app.screen, LessonScreen) and "step 1/" in screen_text(app):
                    return ("lesson", "", "", screen_text(app))
                return None

            return await wait_for(pilot, settled, "the lesson or an error dialog")

    return asyncio.run(main())


def test_a_cluster_that_never_answers_is_a_message_not_a_hang(
    tmp_path: Path, silent_server: str
) -> None:
    """Before: the lesson screen said "starting the sandbox…" for ever."""
    config = write_kubeconfig(tmp_path / "kubeconfig", silent_server, insecure=True)
    factory = backend_factory("kube", None, str(config), False, request_timeout=1)
    shown, title, message, screen = open_lesson(tmp_path, "4", factory)
    assert shown == "error" and title == "meshtutor stopped"
    assert message == f"cannot connect to the API server: {silent_server} did not answer in 1 s"
    assert message in dialog_text(screen)


def test_an_object_that_is_not_meshtutors_is_a_message_then_adopt_takes_it_over(
    tmp_path: Path, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    """Before: lesson 4's topology silently relabelled the learner's own namespace foo."""
    fake_apiserver.add_namespace("foo", {"team": "a"})
    factory = backend_factory("kube", CONTEXT, str(kubeconfig_path), False)
    shown, title, message, screen = open_lesson(tmp_path, "4", factory)
    assert shown == "error" and title == "meshtutor stopped"
    assert message.startswith("Namespace foo exists and is not meshtutor's")
    assert "Pass --adopt to take it over" in message
    assert message in dialog_text(screen)
    labels = fake_apiserver.get_object("v1", "Namespace", "foo")["metadata"]["labels"]  # type: ignore[index]
    assert labels == {"team": "a", "kubernetes.io/metadata.name": "foo"}

    adopting = backend_factory("kube", CONTEXT, str(kubeconfig_path), False, adopt=True)
    shown, _, _, screen = open_lesson(tmp_path, "4", adopting)
    assert shown == "lesson", screen
    labels = fake_apiserver.get_object("v1", "Namespace", "foo")["metadata"]["labels"]  # type: ignore[index]
    assert labels["istio-injection"] == "enabled"


def test_a_lesson_whose_step_3_touches_a_user_object_stops_before_changing_anything(
    tmp_path: Path, fake_apiserver: FakeAPIServer, kubeconfig_path: Path
) -> None:
    """Before: opening lesson 6 applied its topology (namespaces, six workloads) and only
    step 3 met the user's mesh-wide policy; now the lesson does not start and the cluster
    is as it was (tests/kube/test_lesson_ownership.py has the terminal runner's side)."""
    before = user_policy(fake_apiserver)
    fake_apiserver.clear_requests()
    factory = backend_factory("kube", CONTEXT, str(kubeconfig_path), False)
    shown, title, message, screen = open_lesson(tmp_path, "6", factory)
    assert shown == "error" and title == "meshtutor stopped"
    assert message.startswith(
        "PeerAuthentication istio-system/default exists and is not meshtutor's"
    )
    assert "stopped before changing any object of this lesson. Pass --adopt" in message
    assert message in dialog_text(screen)
    assert writes(fake_apiserver) == []
    assert (
        fake_apiserver.get_object(
            "security.istio.io/v1", "PeerAuthentication", "default", "istio-system"
        )
        == before
    )
    assert Journal(CONTEXT).entries() == []
