"""Load and validate lessons. Errors name the file, line and field and say what is expected.

Validation has two layers. The schema layer checks the YAML itself (fields, types, enums).
The semantic layer replays the lesson on the policy engine, with no traffic: every manifest
must load, every probe must name a workload that exists at that point, every expectation must
agree with the engine's prediction, quiz answers must be consistent (a predict question's real
answer must be among its choices, a manifest question's solution must pass).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from meshtutor.errors import (
    ClusterStateError,
    InputFileError,
    ManifestError,
    MeshtutorError,
    ProbeSpecError,
)
from meshtutor.inputfiles import read_text
from meshtutor.lessons.model import (
    COMPONENTS,
    Action,
    Expectation,
    Lesson,
    Option,
    Question,
    Step,
)
from meshtutor.model.loader import load_file, load_yaml
from meshtutor.model.schema import (
    Anything,
    Bool,
    Enum,
    Int,
    ListOf,
    MapOf,
    Obj,
    SchemaError,
    Spec,
    Str,
)
from meshtutor.model.yamlnodes import LineDict, line_of, parse_documents, yaml_problem
from meshtutor.paths import lessons_dir, manifests_dir
from meshtutor.policy.cluster import Cluster
from meshtutor.policy.probe import Probe


class LessonError(MeshtutorError):
    """A lesson file is invalid: ``file:line: field: what is wrong``."""

    def __init__(
        self, message: str, *, source: str, line: int | None = None, field: str | None = None
    ) -> None:
        self.reason, self.source, self.line, self.field = message, source, line, field
        where = source + (f":{line}" if line else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


_ID = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_SOURCE = re.compile(r"^[a-z0-9][-a-z0-9]*/[a-z0-9][-a-z0-9.]*$")


class _Id(Str):
    def check(self, value: Any, path: str, line: int | None) -> Any:
        value = super().check(value, path, line)
        if not re.match(_ID, value):
            raise SchemaError(f"{value!r} must use lower-case letters, digits and '-'", path, line)
        return value


PROBE_SPEC: Spec = Anything()  # a string or a probe mapping; checked by _probe()
ACTION_FIELDS: dict[str, Spec] = {
    "install": Enum(tuple(COMPONENTS)),
    "apply": Str(allow_empty=False),
    "delete": Str(allow_empty=False),
    "namespace": Str(allow_empty=False),
    "label": Obj(
        {
            "namespace": Str(allow_empty=False),
            "deployment": Str(allow_empty=False),
            "labels": MapOf(Anything()),
        },
        what="a label action",
    ),
    "annotate": Obj(
        {
            "namespace": Str(allow_empty=False),
            "deployment": Str(allow_empty=False),
            "annotations": MapOf(Anything()),
        },
        what="an annotate action",
    ),
    "restart": Str(allow_empty=False),
    "probe": PROBE_SPEC,
    "probes": ListOf(PROBE_SPEC, min_items=1),
    "matrix": Obj(
        {
            "from": ListOf(Str(), min_items=1),
            "to": ListOf(Str(), min_items=1),
            "container": Str(),
            "timeout": Anything(),
        },
        required=("from", "to"),
        what="a matrix",
    ),
    "certs": Str(allow_empty=False),
    "handshake": PROBE_SPEC,
    "clock": Str(allow_empty=False),
    "get": Enum(
        (
            "peerauthentication",
            "destinationrule",
            "authorizationpolicy",
            "networkpolicy",
            "server",
            "authorizationpolicies.policy.linkerd.io",
            "httproute",
            "pods",
            "namespaces",
            "services",
            "gateway",
            "virtualservice",
            "ingress",
        )
    ),
    "status": Enum(("mtls",)),
    "bench": Obj(
        {"probes": ListOf(PROBE_SPEC, min_items=1), "count": Int(minimum=1, maximum=500)},
        required=("probes",),
        what="a bench action",
    ),
}
ACTION = Obj(ACTION_FIELDS, what="an action")
EXPECT = Obj(
    {
        "probe": PROBE_SPEC,
        "code": Str(allow_empty=False),
        "exit": Int(minimum=0, maximum=99),
        "mtls": Bool(),
        "body": Str(allow_empty=False),
        "workload": Str(allow_empty=False),
        "sidecar": Bool(),
    },
    what="an expectation",
)
STEP = Obj(
    {
        "id": _Id(allow_empty=False),
        "title": Str(allow_empty=False),
        "prose": Str(allow_empty=False),
        "actions": ListOf(ACTION),
        "expect": ListOf(EXPECT),
        "hints": ListOf(Str(allow_empty=False)),
        "solution": ListOf(ACTION),
    },
    required=("id", "title", "prose"),
    what="a step",
)
OPTION = Obj(
    {"text": Str(allow_empty=False), "correct": Bool(), "why": Str()},
    required=("text",),
    what="an option",
)
QUESTION = Obj(
    {
        "id": _Id(allow_empty=False),
        "type": Enum(("choice", "multiple", "predict", "manifest")),
        "question": Str(allow_empty=False),
        "options": ListOf(OPTION),
        "setup": ListOf(ACTION),
        "probe": PROBE_SPEC,
        "choices": ListOf(Str(allow_empty=False)),
        "starter": Str(),
        "solution": Str(),
        "expect": ListOf(EXPECT),
        "explanation": Str(),
    },
    required=("id", "type", "question"),
    what="a quiz question",
)
LESSON = Obj(
    {
        "id": _Id(allow_empty=False),
        "title": Str(allow_empty=False),
        "mesh": Enum(("istio", "linkerd")),
        "summary": Str(allow_empty=False),
        "minutes": Int(minimum=1, maximum=240),
        "topology": ListOf(ACTION),
        "steps": ListOf(STEP, min_items=1),
        "quiz": ListOf(QUESTION),
        "cleanup": ListOf(ACTION),
    },
    required=("id", "title", "mesh", "summary", "minutes", "steps"),
    what="a lesson",
)

_ACTION_KEYS = [k for k in ACTION_FIELDS if k != "namespace"]


def _line(node: Any, key: str | None, default: int) -> int:
    if isinstance(node, LineDict) and key is not None and key in node.key_lines:
        return int(node.key_lines[key])
    return line_of(node, default) or default


class _Reader:
    """Builds typed lessons from checked YAML nodes, keeping line numbers for errors."""

    def __init__(self, source: str, manifests: Path) -> None:
        self.source = source
        self.manifests = manifests

    def fail(self, message: str, line: int | None, field: str | None) -> LessonError:
        return LessonError(message, source=self.source, line=line, field=field)

    def probe(self, value: Any, line: int, field: str) -> Probe:
        try:
            if isinstance(value, str):
                probe = Probe.parse(value)
            elif isinstance(value, dict):
                probe = Probe.from_entry(dict(value), f"{self.source}:{line}")
            else:
                probe = None
        except ProbeSpecError as exc:
            raise self.fail(str(exc), line, field) from None
        if probe is not None:
            if probe.cacert:
                # Found missing only when the probe ran, it stopped every other probe of the
                # step; like an apply path, it must name a file under manifests/.
                self.manifest(probe.cacert, line, field, what="--cacert file")
            return probe
        raise self.fail(
            "a probe is NAMESPACE/DEPLOYMENT[:CONTAINER]=URL or a mapping with from and url",
            line,
            field,
        )

    def workload(self, value: str, line: int, field: str) -> tuple[str, str]:
        if not _SOURCE.match(value):
            raise self.fail(f"{value!r} must be NAMESPACE/NAME", line, field)
        ns, _, name = value.partition("/")
        return ns, name

    def manifest(self, name: str, line: int, field: str, what: str = "manifest") -> Path:
        # A lesson names files under manifests/ only: a shared lesson must not make a learner
        # apply (or show) /etc/passwd, ../../secret.yaml or a symlink out of the folder.
        root = self.manifests.resolve()
        path = (root / name).resolve()
        if Path(name).is_absolute() or not path.is_relative_to(root):
            raise self.fail(
                f"{what} {name!r} is outside {self.manifests}; a lesson uses files from "
                "manifests/ only (a path such as samples/sleep.yaml)",
                line,
                field,
            )
        if not path.is_file():
            raise self.fail(f"{what} {name!r} does not exist in {self.manifests}", line, field)
        return path

    def action(self, node: Any, checked: Mapping[str, Any], field: str) -> Action:
        line = _line(node, None, 0)
        kinds = [k for k in _ACTION_KEYS if k in checked]
        if len(kinds) != 1:
            raise self.fail(
                "an action needs exactly one of "
                + ", ".join(_ACTION_KEYS)
                + (f"; got {', '.join(kinds)}" if kinds else ""),
                line,
                field,
            )
        kind = kinds[0]
        value = checked[kind]
        where = f"{field}.{kind}"
        kline = _line(node, kind, line)
        if "namespace" in checked and kind not in ("apply", "delete"):
            raise self.fail("namespace: goes with apply or delete only", kline, field)
        args: dict[str, Any]
        if kind == "install":
            args = {
                "name": value,
                "path": self.manifest(f"components/{value}.yaml", kline, where),
            }
        elif kind in ("apply", "delete"):
            args = {
                "name": value,
                "path": self.manifest(value, kline, where),
                "namespace": checked.get("namespace"),
            }
        elif kind in ("label", "annotate"):
            values_key = "labels" if kind == "label" else "annotations"
            values = value.get(values_key) or {}
            if not values:
                raise self.fail(f"{kind} needs {values_key}", kline, where)
            bad = [k for k, v in values.items() if v is not None and not isinstance(v, str)]
            if bad:
                raise self.fail(
                    f"the value of {bad[0]!r} must be a quoted string (or null to remove it)",
                    kline,
                    f"{where}.{values_key}",
                )
            if bool(value.get("namespace")) == bool(value.get("deployment")):
                raise self.fail("name exactly one of namespace or deployment", kline, where)
            if value.get("deployment"):
                ns, name = self.workload(value["deployment"], kline, f"{where}.deployment")
                args = {"deployment": True, "namespace": ns, "name": name, "values": values}
            else:
                args = {"deployment": False, "namespace": value["namespace"], "values": values}
        elif kind in ("restart", "certs"):
            ns, name = self.workload(value, kline, where)
            args = {"namespace": ns, "name": name}
        elif kind in ("probe", "handshake"):
            args = {"probes": (self.probe(value, kline, where),)}
        elif kind == "probes":
            args = {
                "probes": tuple(self.probe(v, kline, f"{where}[{i}]") for i, v in enumerate(value))
            }
        elif kind == "matrix":
            sources = [self.workload(s, kline, f"{where}.from") for s in value["from"]]
            timeout = value.get("timeout")
            probes = tuple(
                self.probe(
                    {
                        "from": f"{ns}/{name}",
                        "url": url,
                        **({"container": value["container"]} if value.get("container") else {}),
                        **({"timeout": timeout} if timeout is not None else {}),
                    },
                    kline,
                    where,
                )
                for ns, name in sources
                for url in value["to"]
            )
            args = {
                "sources": [f"{ns}/{n}" for ns, n in sources],
                "urls": list(value["to"]),
                "probes": probes,
            }
        elif kind == "clock":
            from meshtutor.pki.clock import parse_offset

            try:
                args = {"text": value, "delta": parse_offset(value)}
            except MeshtutorError as exc:
                raise self.fail(str(exc), kline, where) from None
        elif kind == "get":
            args = {"kind": value}
        elif kind == "status":
            args = {"what": value}
        else:  # bench
            args = {
                "probes": tuple(
                    self.probe(v, kline, f"{where}.probes[{i}]")
                    for i, v in enumerate(value["probes"])
                ),
                "count": value.get("count", 20),
            }
        return Action(kind, args, kline)  # type: ignore[arg-type]

    def actions(self, nodes: Any, checked: list[Any], field: str) -> tuple[Action, ...]:
        return tuple(self.action(nodes[i], c, f"{field}[{i}]") for i, c in enumerate(checked))

    def expectation(self, node: Any, checked: Mapping[str, Any], field: str) -> Expectation:
        line = _line(node, None, 0)
        if ("probe" in checked) == ("workload" in checked):
            raise self.fail("an expectation needs exactly one of probe or workload", line, field)
        if "probe" in checked:
            if "code" not in checked:
                raise self.fail(
                    'a probe expectation needs code (a quoted string such as "200")', line, field
                )
            if not re.fullmatch(r"\d{3}", checked["code"]):
                raise self.fail(
                    f'code must be three digits such as "200" or "000", got {checked["code"]!r}',
                    _line(node, "code", line),
                    f"{field}.code",
                )
            if "sidecar" in checked:
                raise self.fail("sidecar goes with workload, not probe", line, field)
            return Expectation(
                "probe",
                self.probe(checked["probe"], _line(node, "probe", line), f"{field}.probe"),
                code=checked["code"],
                exit=checked.get("exit", 0),
                mtls=checked.get("mtls"),
                body=checked.get("body"),
                line=line,
            )
        if "sidecar" not in checked:
            raise self.fail("a workload expectation needs sidecar: true or false", line, field)
        ns, name = self.workload(checked["workload"], line, f"{field}.workload")
        return Expectation(
            "workload", namespace=ns, name=name, sidecar=checked["sidecar"], line=line
        )

    def expectations(self, nodes: Any, checked: list[Any], field: str) -> tuple[Expectation, ...]:
        return tuple(self.expectation(nodes[i], c, f"{field}[{i}]") for i, c in enumerate(checked))

    def question(self, node: Any, q: Mapping[str, Any], field: str) -> Question:
        line = _line(node, None, 0)
        kind = q["type"]
        options = tuple(
            Option(o["text"], o.get("correct", False), o.get("why", ""))
            for o in q.get("options") or ()
        )
        if kind in ("choice", "multiple"):
            correct = sum(o.correct for o in options)
            if len(options) < 2:
                raise self.fail(
                    "a choice question needs at least two options", line, f"{field}.options"
                )
            if correct == 0:
                raise self.fail("no option is marked correct: true", line, f"{field}.options")
            if kind == "choice" and correct != 1:
                raise self.fail(
                    f"a choice question has exactly one correct option, not {correct} "
                    "(use type: multiple)",
                    line,
                    f"{field}.options",
                )
            missing = [o.text for o in options if not o.why]
            if missing:
                raise self.fail(
                    f"option {missing[0]!r} needs a why (shown after answering)",
                    line,
                    f"{field}.options",
                )
        probe = None
        if kind == "predict":
            if "probe" not in q:
                raise self.fail("a predict question needs probe", line, field)
            probe = self.probe(q["probe"], _line(node, "probe", line), f"{field}.probe")
            choices = q.get("choices") or []
            if len(choices) < 2:
                raise self.fail(
                    'a predict question needs at least two choices such as "200" and "000 (56)"',
                    line,
                    f"{field}.choices",
                )
            for choice in choices:
                if not re.fullmatch(r"\d{3}( \(\d+\))?", choice):
                    raise self.fail(
                        f"choice {choice!r} must read CODE or CODE (EXIT), e.g. "
                        '"200" or "000 (56)"',
                        line,
                        f"{field}.choices",
                    )
        nodes = node.get("expect") if isinstance(node, dict) else None
        expect = self.expectations(nodes or [], q.get("expect") or [], f"{field}.expect")
        if kind == "manifest" and (not q.get("solution") or not expect):
            raise self.fail("a manifest question needs solution and expect", line, field)
        setup_nodes = node.get("setup") if isinstance(node, dict) else None
        return Question(
            q["id"],
            kind,
            q["question"],
            options,
            self.actions(setup_nodes or [], q.get("setup") or [], f"{field}.setup"),
            probe,
            tuple(q.get("choices") or ()),
            q.get("starter", ""),
            q.get("solution", ""),
            expect,
            q.get("explanation", ""),
            line,
        )


def _parse(text: str, source: str) -> tuple[LineDict, dict[str, Any]]:
    try:
        docs = [d for _, d in parse_documents(text) if d is not None]
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        raise LessonError(problem, source=source, line=line) from None
    if len(docs) != 1 or not isinstance(docs[0], LineDict):
        raise LessonError(
            "a lesson file holds one YAML mapping (id, title, mesh, ...)", source=source, line=1
        )
    node = docs[0]
    try:
        checked = LESSON.check(node, "", 1)
    except SchemaError as exc:
        raise LessonError(exc.message, source=source, line=exc.line, field=exc.path) from None
    return node, checked


def load_lesson(path: str | Path, *, manifests: Path | None = None) -> Lesson:
    """Read one lesson file (schema checks only; see ``validate_lesson`` for the rest)."""
    path = Path(path)
    source = str(path)
    try:
        text = read_text(path)
    except InputFileError as exc:
        raise LessonError(exc.reason, source=source, line=exc.line) from None
    node, c = _parse(text, source)
    reader = _Reader(source, manifests or manifests_dir())
    steps = []
    seen: set[str] = set()
    for i, (step_node, s) in enumerate(zip(node["steps"], c["steps"], strict=True)):
        field = f"steps[{i}]"
        if s["id"] in seen:
            raise reader.fail(
                f"duplicate step id {s['id']!r}", _line(step_node, "id", 0), f"{field}.id"
            )
        seen.add(s["id"])
        steps.append(
            Step(
                s["id"],
                s["title"],
                s["prose"],
                reader.actions(
                    step_node.get("actions") or [], s.get("actions") or [], f"{field}.actions"
                ),
                reader.expectations(
                    step_node.get("expect") or [], s.get("expect") or [], f"{field}.expect"
                ),
                tuple(s.get("hints") or ()),
                reader.actions(
                    step_node.get("solution") or [], s.get("solution") or [], f"{field}.solution"
                ),
                _line(step_node, None, 0),
            )
        )
    questions = []
    seen = set()
    for i, (q_node, q) in enumerate(zip(node.get("quiz") or [], c.get("quiz") or [], strict=True)):
        if q["id"] in seen:
            raise reader.fail(
                f"duplicate question id {q['id']!r}", _line(q_node, "id", 0), f"quiz[{i}].id"
            )
        seen.add(q["id"])
        questions.append(reader.question(q_node, q, f"quiz[{i}]"))
    match = re.match(r"^(\d+)-(.*)\.yaml$", path.name)
    if match and match.group(2) != c["id"]:
        raise reader.fail(
            f"the file name says {match.group(2)!r} but id is {c['id']!r}",
            _line(node, "id", 1),
            "id",
        )
    return Lesson(
        c["id"],
        c["title"],
        c["mesh"],
        c["summary"],
        c["minutes"],
        reader.actions(node.get("topology") or [], c.get("topology") or [], "topology"),
        tuple(steps),
        tuple(questions),
        reader.actions(node.get("cleanup") or [], c.get("cleanup") or [], "cleanup"),
        path,
        int(match.group(1)) if match else 0,
    )


def lesson_paths(root: Path | None = None) -> list[Path]:
    root = root or lessons_dir()
    return sorted(p for p in root.glob("*.yaml") if p.is_file())


def load_lessons(root: Path | None = None) -> list[Lesson]:
    return [load_lesson(p) for p in lesson_paths(root)]


def find_lesson(name: str, root: Path | None = None) -> Lesson:
    """A lesson by id, number (``4`` or ``04``) or path."""
    candidate = Path(name)
    if candidate.suffix == ".yaml" and candidate.is_file():
        return load_lesson(candidate)
    paths = lesson_paths(root)
    for path in paths:
        match = re.match(r"^(\d+)-(.*)\.yaml$", path.name)
        if match and (
            name in (match.group(2), match.group(1))
            or (name.isdigit() and int(name) == int(match.group(1)))
        ):
            return load_lesson(path)
    ids = ", ".join(re.sub(r"^\d+-|\.yaml$", "", p.name) for p in paths)
    raise MeshtutorError(f"no lesson {name!r}; lessons: {ids}")


# --- semantic validation ---------------------------------------------------------------------


def apply_action_to_cluster(cluster: Cluster, action: Action) -> None:
    """Replay a state-changing action on a policy-engine cluster (no traffic)."""
    from meshtutor.lessons.state import changed_resource

    a = action.args
    if action.kind == "install":
        cluster.apply(load_file(a["path"]))
    elif action.kind == "apply":
        cluster.apply(load_file(a["path"], default_namespace=a.get("namespace")))
    elif action.kind == "delete":
        cluster.delete(load_file(a["path"], default_namespace=a.get("namespace")))
    elif action.kind in ("label", "annotate"):
        cluster.apply([changed_resource(cluster, action)])
    elif action.kind == "restart":
        cluster.restart(a["namespace"], a["name"])


def validate_lesson(lesson: Lesson) -> list[str]:
    """Replay the lesson on the policy engine; raise ``LessonError`` on the first problem.
    Returns notes (things not checked, e.g. expectations after a clock jump)."""
    from meshtutor.lessons.checks import check_prediction

    notes: list[str] = []
    source = str(lesson.path)

    def fail(message: str, line: int, field: str) -> LessonError:
        return LessonError(message, source=source, line=line, field=field)

    cluster = Cluster(lesson.mesh)
    clock_moved = False

    def run(actions: tuple[Action, ...], field: str) -> None:
        nonlocal clock_moved
        for i, action in enumerate(actions):
            try:
                apply_action_to_cluster(cluster, action)
                if action.kind == "clock":
                    clock_moved = True
                for probe in action.args.get("probes", ()):
                    from meshtutor.policy.predict import predict

                    predict(cluster, probe)
                if (
                    action.kind == "certs"
                    and cluster.pod_for(action.args["namespace"], action.args["name"]) is None
                ):
                    raise ProbeSpecError(
                        f"no workload {action.args['namespace']}/{action.args['name']}"
                    )
            except (ManifestError, ClusterStateError, ProbeSpecError) as exc:
                raise fail(str(exc), action.line, f"{field}[{i}]") from None

    def check(expect: tuple[Expectation, ...], field: str) -> list[str]:
        failures = []
        for i, e in enumerate(expect):
            try:
                problem = check_prediction(cluster, e)
            except ProbeSpecError as exc:
                raise fail(str(exc), e.line, f"{field}[{i}]") from None
            if problem:
                failures.append(f"{field}[{i}] (line {e.line}): {problem}")
        return failures

    run(lesson.topology, "topology")
    for index, step in enumerate(lesson.steps):
        field = f"steps[{index}]"
        run(step.actions, f"{field}.actions")
        failures = check(step.expect, f"{field}.expect")
        if failures and step.solution:
            run(step.solution, f"{field}.solution")
            failures = check(step.expect, f"{field}.expect")
        if failures:
            if clock_moved:
                notes.append(
                    f"step {step.id}: expectations after a clock jump are checked only "
                    "when the lesson runs"
                )
            else:
                raise fail(
                    f"step {step.id!r}: the policy engine disagrees: {failures[0]}"
                    + ("" if step.solution else " (add a solution if the learner must act)"),
                    step.line,
                    field,
                )
    if len(lesson.quiz) < 3:
        raise fail(
            f"a lesson needs at least 3 quiz questions, this one has {len(lesson.quiz)}", 1, "quiz"
        )
    if not any(q.type in ("predict", "manifest") for q in lesson.quiz):
        raise fail("a lesson needs at least one predict or manifest question", 1, "quiz")
    # Quiz questions run on a fresh cluster: the topology, then the question's own setup.
    fresh = Cluster(lesson.mesh)
    for action in lesson.topology:
        apply_action_to_cluster(fresh, action)
    clock_moved = False
    for i, q in enumerate(lesson.quiz):
        field = f"quiz[{i}]"
        saved = cluster
        cluster = fresh.copy()
        try:
            run(q.setup, f"{field}.setup")
            if q.type == "predict":
                from meshtutor.lessons.quiz import predict_choice

                try:
                    answer = predict_choice(cluster, q)
                except ProbeSpecError as exc:
                    raise fail(str(exc), q.line, f"{field}.probe") from None
                if clock_moved:
                    notes.append(
                        f"quiz {q.id}: a clock jump in setup is checked only when the lesson runs"
                    )
                elif answer not in q.choices:
                    raise fail(
                        f"the policy engine predicts {answer!r}, which is not among the "
                        f"choices {list(q.choices)}",
                        q.line,
                        f"{field}.choices",
                    )
            if q.type == "manifest":
                try:
                    docs = load_yaml(q.solution, source=f"{source} {field}.solution")
                    cluster.apply(docs)
                except (ManifestError, ClusterStateError) as exc:
                    raise fail(
                        f"the solution does not apply: {exc}", q.line, f"{field}.solution"
                    ) from None
                failures = check(q.expect, f"{field}.expect")
                if failures and not clock_moved:
                    raise fail(
                        f"the solution does not pass: {failures[0]}", q.line, f"{field}.solution"
                    )
        finally:
            cluster = saved
    return notes


def validate_path(path: Path | None = None) -> list[tuple[Path, list[str]]]:
    """Validate a lesson file or every lesson in a folder (default: the curriculum)."""
    paths = [path] if path is not None and path.is_file() else lesson_paths(path)
    if not paths:
        raise MeshtutorError(f"no lesson files (*.yaml) in {path or lessons_dir()}")
    results = []
    ids: dict[str, Path] = {}
    for p in paths:
        lesson = load_lesson(p)
        if lesson.id in ids:
            raise LessonError(
                f"lesson id {lesson.id!r} is also used by {ids[lesson.id]}",
                source=str(p),
                line=1,
                field="id",
            )
        ids[lesson.id] = p
        results.append((p, validate_lesson(lesson)))
    return results


__all__ = [
    "LessonError",
    "find_lesson",
    "load_lesson",
    "load_lessons",
    "validate_lesson",
    "validate_path",
]
