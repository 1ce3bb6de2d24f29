"""Quiz grading: choice questions by the key; predict-the-probe by running the probe;
write-the-manifest by applying the learner's YAML to a scratch sandbox and checking outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from meshtutor.lessons.model import Question
from meshtutor.policy.cluster import Cluster
from meshtutor.policy.predict import predict


def choice_text(code: str, exit_code: int) -> str:
    """How predict choices read: ``200`` or ``000 (56)``."""
    return code if exit_code == 0 else f"{code} ({exit_code})"


def predict_choice(cluster: Cluster, question: Question) -> str:
    assert question.probe is not None
    outcome = predict(cluster, question.probe)
    return choice_text(outcome.http_code, outcome.exit_code)


@dataclass
class Grade:
    """One graded answer: ``score`` between 0 and 1; ``feedback`` lines say why."""

    question: Question
    answer: object
    correct: bool
    score: float
    feedback: list[str] = field(default_factory=list)
    actual: str | None = None  # predict: what the probe really printed


def grade_choice(question: Question, picked: Sequence[int]) -> Grade:
    """``picked`` are option indexes (0-based). Multiple choice scores partial credit: right
    picks minus wrong picks, over the number of right options, never below 0."""
    chosen = set(picked)
    right = {i for i, o in enumerate(question.options) if o.correct}
    feedback = []
    for i, option in enumerate(question.options):
        mark = "✔" if option.correct else "✘"
        if i in chosen or option.correct:
            feedback.append(f"{mark} {option.text}: {option.why}")
    if question.type == "choice":
        score = 1.0 if chosen == right else 0.0
    else:
        score = max(0.0, (len(chosen & right) - len(chosen - right)) / len(right))
    return Grade(question, sorted(chosen), chosen == right, score, feedback)


def grade_prediction(question: Question, answer: str, actual: str, explanation: list[str]) -> Grade:
    correct = answer.strip() == actual
    head = f"the probe printed {actual}" + (
        "; you predicted it" if correct else f"; you predicted {answer}"
    )
    return Grade(question, answer, correct, 1.0 if correct else 0.0, [head, *explanation], actual)
