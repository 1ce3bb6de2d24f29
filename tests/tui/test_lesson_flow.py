"""A learner goes through a whole lesson with the keyboard, as Pilot drives it: the lesson list,
a step that changes the probe matrix, why a probe failed, certificates, a handshake, the quiz,
and the progress that is left in SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from textual.widgets import RadioButton, RadioSet, TextArea
from tui_helpers import (
    FRONTEND,
    MTLS_SOURCE,
    PLAINTEXT_SOURCE,
    cell_text,
    fixture_lessons,
    make_app,
    screen_text,
    select_cell,
    wait_for,
    wait_for_text,
)

from meshtutor.lessons.loader import validate_lesson
from meshtutor.tui.screens.dialogs import ProbeDetailScreen
from meshtutor.tui.screens.lesson import LessonScreen
from meshtutor.tui.screens.quiz import QuizScreen
from meshtutor.tui.screens.tls import CertificateScreen, HandshakeScreen
from meshtutor.tui.widgets import ProbeMatrix, WorkloadTable

SIZE = (120, 40)


def serials(screen: str) -> list[str]:
    return [line.split("Serial:")[1].strip() for line in screen.splitlines() if "Serial:" in line]


async def answer_radio(pilot: Any, screen: QuizScreen, text: str) -> None:
    def radio_with_answer() -> RadioSet | None:
        # The previous question's buttons are removed while the new ones mount.
        for radio in screen.query(RadioSet):
            if radio.is_mounted and text in [str(b.label) for b in radio.query(RadioButton)]:
                return radio
        return None

    radio = await wait_for(pilot, radio_with_answer, what=f"a radio button {text!r}")
    index = [str(b.label) for b in radio.query(RadioButton)].index(text)
    radio.focus()
    await pilot.press(*(["down"] * index), "enter")
    await wait_for(pilot, lambda: radio.pressed_index == index, what=f"radio {text!r} pressed")
    await pilot.press("ctrl+s")


def test_the_fixture_lessons_are_valid() -> None:
    """They are replayed on the policy engine, as ``meshtutor lesson validate`` would."""
    for lesson in fixture_lessons():
        assert validate_lesson(lesson) == [], lesson.path


def test_a_learner_goes_through_a_whole_lesson(tmp_path: Path) -> None:
    db = tmp_path / "progress.sqlite"
    asyncio.run(_walk_the_lesson(db))

    with contextlib.closing(sqlite3.connect(db)) as conn:
        steps = conn.execute(
            "SELECT step_id, status FROM steps WHERE lesson_id = 'strict-demo' ORDER BY step_id"
        ).fetchall()
        answers = conn.execute(
            "SELECT attempt, question_id, answer, correct FROM quiz_attempts "
            "WHERE lesson_id = 'strict-demo' ORDER BY id"
        ).fetchall()
        hints = conn.execute("SELECT step_id, hints_used FROM hints").fetchall()
        (status,) = conn.execute(
            "SELECT status FROM lessons WHERE lesson_id = 'strict-demo'"
        ).fetchone()
    assert steps == [("baseline", "passed"), ("strict", "passed")]
    assert [(a, q, c) for a, q, _, c in answers] == [
        (1, "why-1337", 1),
        (1, "predict-strict", 1),
        (1, "write-strict", 1),
    ]
    assert json.loads(answers[1][2]) == "000 (56)"
    assert "mode: STRICT" in json.loads(answers[2][2])
    assert hints == [("baseline", 1)]
    assert status == "done"


async def _walk_the_lesson(db: Path) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        # The lesson list, then enter on the first lesson.
        await wait_for_text(pilot, "Namespace-wide STRICT mTLS", "0/3 lessons done")
        await pilot.press("enter")
        lesson = await wait_for(pilot, lambda: isinstance(app.screen, LessonScreen) and app.screen)
        matrix = lesson.query_one(ProbeMatrix)

        # The sandbox comes up and the matrix fills: plaintext from istio-proxy still gets in.
        await wait_for(
            pilot,
            lambda: (cell_text(matrix, PLAINTEXT_SOURCE, FRONTEND) or "").startswith("200"),
            what="the matrix before STRICT",
        )
        await wait_for_text(pilot, "step 1/2 · Two ways to curl from the same pod")
        assert "🔒" in (cell_text(matrix, MTLS_SOURCE, FRONTEND) or "")

        # h shows the first of the step's hints.
        await pilot.press("h")
        await wait_for_text(
            pilot, "hint 1/2", "Which user does the `istio-proxy` container run as?"
        )

        # Step 1: enter runs it and checks it.
        await pilot.press("enter")
        await wait_for_text(pilot, "step passed")
        await pilot.press("n")
        await wait_for_text(pilot, "step 2/2 · One policy for the whole namespace")

        # Step 2 applies STRICT: the same cell turns to 000 (56), the mTLS one stays 200.
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: (cell_text(matrix, PLAINTEXT_SOURCE, FRONTEND) or "").startswith("000 (56)"),
            what="the matrix after STRICT",
        )
        await wait_for_text(pilot, "step passed")
        assert (cell_text(matrix, MTLS_SOURCE, FRONTEND) or "").startswith("200 🔒")
        assert "000 (56)" in screen_text(app)
        assert "8080: STRICT" in screen_text(app)

        # enter on the failed cell: why? The deciding resource is named.
        await select_cell(pilot, matrix, PLAINTEXT_SOURCE, FRONTEND)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ProbeDetailScreen))
        detail = await wait_for_text(pilot, "decided by", "PeerAuthentication demo/default")
        assert "observed   000 (curl exit 56)" in detail
        assert "✔ the same" in detail
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is lesson)

        # t on an mTLS cell: the handshake, with the message only mutual TLS has.
        await select_cell(pilot, matrix, MTLS_SOURCE, FRONTEND)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, HandshakeScreen))
        handshake = await wait_for_text(pilot, "ClientHello", "CertificateRequest", "Finished")
        assert handshake.index("ClientHello") < handshake.index("CertificateRequest")
        assert handshake.index("CertificateRequest") < handshake.index("Finished")
        assert "mutual TLS: both sides proved who they are" in handshake
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is lesson)

        # c on the selected workload: its certificate chain, then 2 moves the clock a day.
        workloads = lesson.query_one(WorkloadTable)
        workloads.focus()
        row = workloads.get_row_index("demo/frontend")
        await pilot.press(*(["down"] * row))
        await pilot.press("c")
        certs = await wait_for(
            pilot, lambda: isinstance(app.screen, CertificateScreen) and app.screen
        )
        assert certs.workload == "frontend"
        before = await wait_for_text(
            pilot,
            "identity  spiffe://cluster.local/ns/demo/sa/frontend",
            "← SPIFFE ID",
            "mesh clock 2026-01-01 00:00 UTC · rotated 0 time(s)",
        )
        await pilot.press("2")
        after = await wait_for_text(
            pilot, "mesh clock 2026-01-02 00:00 UTC", "moved the clock +24 h", "✔ trusted"
        )
        assert "rotated 0 time(s)" not in after
        # The leaf was reissued: its serial and fingerprint changed, the root's did not.
        assert serials(after)[0] == serials(before)[0]
        assert serials(after)[1] != serials(before)[1]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is lesson)

        # The last step passed: n opens the quiz.
        lesson.query_one("#content").focus()
        await pilot.press("n")
        quiz = await wait_for(pilot, lambda: isinstance(app.screen, QuizScreen) and app.screen)
        await wait_for_text(pilot, "question 1/3", "pick one")

        await answer_radio(
            pilot, quiz, "It runs as uid 1337, which Istio's iptables rules never redirect"
        )
        await wait_for_text(pilot, "✔ correct")
        await pilot.press("n")

        await wait_for_text(pilot, "question 2/3", "$ demo/productcatalogservice:istio-proxy")
        await answer_radio(pilot, quiz, "000 (56)")
        await wait_for_text(pilot, "✔ correct", timeout=15)
        await pilot.press("n")

        await wait_for_text(pilot, "question 3/3", "mode: PERMISSIVE")
        editor = quiz.query_one("#answer", TextArea)
        assert editor.has_focus
        # Edit the starter as a learner would: go to the word and retype it.
        row = editor.text.splitlines().index("    mode: PERMISSIVE")
        editor.move_cursor((row, len("    mode: ")))
        await pilot.press("shift+end", *"STRICT")
        assert "mode: STRICT" in editor.text
        await pilot.press("ctrl+s")
        await wait_for_text(pilot, "✔ correct", timeout=15)
        await pilot.press("n")
        await wait_for_text(pilot, "Lesson complete. Quiz score: 100%")

        # Back on the lesson list, the lesson shows as done with its score.
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is lesson)
        await pilot.press("escape")
        home = await wait_for_text(pilot, "1/3 lessons done")
        row = next(line for line in home.splitlines() if "Namespace-wide STRICT mTLS" in line)
        assert row.split()[-3:] == ["✔", "done", "100%"]


def test_r_resumes_at_the_first_step_not_done(tmp_path: Path) -> None:
    db = tmp_path / "progress.sqlite"
    app = make_app(db)
    app.progress.step_result("strict-demo", "baseline", "passed")
    app.progress.at_step("strict-demo", "strict")

    async def resume() -> None:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            home = await wait_for_text(pilot, "▶ 1/2 steps")
            assert "0/3 lessons done" in home
            await pilot.press("r")
            await wait_for_text(pilot, "step 2/2 · One policy for the whole namespace")
            matrix = app.screen.query_one(ProbeMatrix)
            # Step 1 was replayed (it applies nothing), STRICT is not applied yet.
            await wait_for(
                pilot,
                lambda: (cell_text(matrix, PLAINTEXT_SOURCE, FRONTEND) or "").startswith("200"),
                what="the matrix",
            )

    asyncio.run(resume())
