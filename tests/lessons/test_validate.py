"""`meshtutor lesson validate` rejects each kind of broken lesson with a precise message."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from meshtutor.lessons.loader import LessonError, load_lesson, validate_lesson, validate_path

ROOT = Path(__file__).resolve().parents[2]

GOOD = textwrap.dedent("""\
    id: strict-demo
    title: Namespace STRICT
    mesh: istio
    summary: Plaintext stops at a STRICT namespace.
    minutes: 5
    topology:
      - apply: online-boutique/demo.yaml
    steps:
      - id: baseline
        title: Plaintext works by default
        prose: The istio-proxy container bypasses its own sidecar.
        actions:
          - probe: demo/productcatalogservice:istio-proxy=http://frontend:80/
        expect:
          - probe: demo/productcatalogservice:istio-proxy=http://frontend:80/
            code: "200"
        hints: [Nothing to do here.]
      - id: strict
        title: STRICT resets plaintext
        prose: Apply the namespace policy.
        actions:
          - apply: online-boutique/strict-namespace.yaml
        expect:
          - probe: demo/productcatalogservice:istio-proxy=http://frontend:80/
            code: "000"
            exit: 56
          - workload: demo/frontend
            sidecar: true
    quiz:
      - id: which
        type: choice
        question: What resets the connection?
        options:
          - {text: the client sidecar, why: the client container bypasses it}
          - {text: the server sidecar, correct: true, why: STRICT accepts only mTLS}
      - id: predict
        type: predict
        question: What does the probe print under STRICT?
        setup: [{apply: online-boutique/strict-namespace.yaml}]
        probe: demo/productcatalogservice:istio-proxy=http://frontend:80/
        choices: ["200", "000 (56)", "503"]
      - id: write
        type: manifest
        question: Make frontend accept mutual TLS only.
        solution: |
          apiVersion: security.istio.io/v1
          kind: PeerAuthentication
          metadata: {name: default, namespace: demo}
          spec: {mtls: {mode: STRICT}}
        expect:
          - probe: demo/productcatalogservice:istio-proxy=http://frontend:80/
            code: "000"
            exit: 56
          - probe: demo/productcatalogservice=http://frontend:80/
            code: "200"
            mtls: true
""")


def write(tmp_path: Path, text: str, name: str = "01-strict-demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def check(tmp_path: Path, text: str, name: str = "01-strict-demo.yaml") -> None:
    validate_lesson(load_lesson(write(tmp_path, text, name)))


def test_the_good_lesson_is_valid(tmp_path: Path) -> None:
    check(tmp_path, GOOD)


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "apply: online-boutique/strict-namespace.yaml\n    expect",
            "apply: online-boutique/nope.yaml\n    expect",
            r":22: steps\[1\]\.actions\[0\]\.apply: manifest 'online-boutique/nope\.yaml' does not exist",
        ),
        (
            "- probe: demo/productcatalogservice:istio-proxy=http://frontend:80/\n    expect",
            "- probe: demo/checkout:istio-proxy=http://frontend:80/\n    expect",
            r":13: steps\[0\]\.actions\[0\]: probe demo/checkout:istio-proxy=http://frontend:80/: no workload demo/checkout; workloads in demo: frontend, productcatalogservice",
        ),
        (
            "      - {text: the server sidecar, correct: true, why: STRICT accepts only mTLS}",
            "      - {text: the server sidecar, why: STRICT accepts only mTLS}",
            r"quiz\[0\]\.options: no option is marked correct: true",
        ),
        (
            "mesh: istio",
            "mesh: consul",
            r":3: mesh: mesh must be one of istio, linkerd; got 'consul'",
        ),
        ("  - id: strict\n", "  - id: baseline\n", r"steps\[1\]\.id: duplicate step id 'baseline'"),
        (
            '        code: "200"\n    hints',
            '        code: "403"\n    hints',
            r"step 'baseline': the policy engine disagrees: steps\[0\]\.expect\[0\] \(line 15\): demo/productcatalogservice:istio-proxy=http://frontend:80/: expected 403, got 200",
        ),
        (
            'choices: ["200", "000 (56)", "503"]',
            'choices: ["200", "503"]',
            r"quiz\[1\]\.choices: the policy engine predicts '000 \(56\)', which is not among the choices",
        ),
        (
            "spec: {mtls: {mode: STRICT}}",
            "spec: {mtls: {mode: PERMISSIVE}}",
            r"quiz\[2\]\.solution: the solution does not pass: quiz\[2\]\.expect\[0\]",
        ),
        (
            "        exit: 56\n      - workload",
            "        exit: 56\n        sidecar: true\n      - workload",
            r"sidecar goes with workload, not probe",
        ),
        (
            'code: "200"\n    hints',
            "code: 200\n    hints",
            r"expected a string, got a number \(quote it",
        ),
        (
            "  - probe: demo/productcatalogservice:istio-proxy=http://frontend:80/\n    expect",
            "  - probe: demo/productcatalogservice=frontend\n    expect",
            r"is not a URL",
        ),
        (
            "    actions:\n      - apply",
            "    actions:\n      - apply: online-boutique/demo.yaml\n        restart: demo/frontend\n      - apply",
            r"an action needs exactly one of",
        ),
        (
            "title: Namespace STRICT\n",
            "title: Namespace STRICT\ncolour: blue\n",
            r":3: colour: unknown field 'colour' in a lesson",
        ),
    ],
)
def test_each_broken_lesson_is_rejected(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD, old
    with pytest.raises(LessonError, match=message):
        check(tmp_path, GOOD.replace(old, new, 1))


def test_quiz_needs_three_questions_and_a_practical_one(tmp_path: Path) -> None:
    short = GOOD[: GOOD.index("  - id: predict")]
    with pytest.raises(
        LessonError, match=r"quiz: a lesson needs at least 3 quiz questions, this one has 1"
    ):
        check(tmp_path, short)


def test_id_matches_file_name(tmp_path: Path) -> None:
    with pytest.raises(
        LessonError, match=r"id: the file name says 'other' but id is 'strict-demo'"
    ):
        check(tmp_path, GOOD, name="03-other.yaml")


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(LessonError, match=r"01-strict-demo\.yaml:\d+: this is not valid YAML"):
        check(tmp_path, GOOD + "  bad: [\n")


def test_a_manifest_error_inside_a_lesson_names_both(tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    (manifests / "online-boutique").mkdir(parents=True)
    for name in ("demo.yaml", "strict-namespace.yaml"):
        source = ROOT / "manifests/online-boutique" / name
        (manifests / "online-boutique" / name).write_text(source.read_text())
    (manifests / "bad.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n"
    )
    lesson = write(tmp_path, GOOD.replace("apply: online-boutique/demo.yaml", "apply: bad.yaml"))
    with pytest.raises(
        LessonError, match=r"topology\[0\]: .*bad\.yaml:3, document 1, field metadata\.name"
    ):
        validate_lesson(load_lesson(lesson, manifests=manifests))


def test_cli_validate_reports_file_line_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("mesh: istio", "mesh: consul"))
    out = subprocess.run(
        [sys.executable, "-m", "meshtutor", "lesson", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}:3: mesh: mesh must be one of istio, linkerd" in out.stderr


def test_the_whole_curriculum_is_valid() -> None:
    results = validate_path()
    assert len(results) >= 4
