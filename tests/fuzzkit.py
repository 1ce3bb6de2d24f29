"""Hostile inputs for meshtutor's entry points, shared by the fuzz tests and bench/fuzz_inputs.py.

Four kinds of input, each a Hypothesis strategy producing the bytes of one file:

* ``manifest``: structured mutations of the shipped manifests (a field replaced by a hostile
  value, deleted, nulled, wrapped, renamed), text mutations, random documents of every kind;
* ``probes``: probe files (``--probes``) with random and hostile fields, and text mutations;
* ``lesson``: structured and text mutations of the shipped lessons;
* ``certs``: certificate inputs for ``certs -f``: damaged PEM, DER, base64, Envoy JSON dumps.

:func:`check` runs the real command for one input, in this process through
``meshtutor.cli.main`` (as the shell would call it), and returns what is wrong with the
outcome: an exit code other than 0 or 2, a traceback, or an error that is not one line naming
the file.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import strategies as st

from meshtutor.cli import main

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_PATHS = sorted((ROOT / "manifests").rglob("*.yaml"))
LESSON_PATHS = sorted((ROOT / "lessons").glob("*.yaml"))
SAMPLES = [p.read_text() for p in MANIFEST_PATHS]

# --- random documents (from tests/model/test_loader_fuzz.py) ----------------------------------

FIELD_NAMES = sorted(
    {
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "namespace",
        "labels",
        "annotations",
        "spec",
        "selector",
        "matchLabels",
        "matchExpressions",
        "key",
        "operator",
        "values",
        "mtls",
        "mode",
        "portLevelMtls",
        "host",
        "trafficPolicy",
        "tls",
        "portLevelSettings",
        "port",
        "number",
        "rules",
        "from",
        "to",
        "when",
        "source",
        "operation",
        "principals",
        "namespaces",
        "paths",
        "methods",
        "ports",
        "action",
        "provider",
        "podSelector",
        "namespaceSelector",
        "ipBlock",
        "cidr",
        "except",
        "ingress",
        "egress",
        "policyTypes",
        "containers",
        "image",
        "template",
        "replicas",
        "targetPort",
        "containerPort",
        "targetRef",
        "requiredAuthenticationRefs",
        "identities",
        "networks",
        "accessPolicy",
        "proxyProtocol",
        "parentRefs",
        "matches",
        "data",
        "items",
        "exportTo",
        "subsets",
        "client",
        "server",
        "meshTLS",
        "unauthenticated",
    }
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 70000),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "STRICT",
            "PERMISSIVE",
            "DISABLE",
            "ISTIO_MUTUAL",
            "ALLOW",
            "DENY",
            "CUSTOM",
            "In",
            "Exists",
            "TCP",
            "8080",
            "http",
            "*",
            "cluster.local/ns/foo/sa/sleep",
            "10.0.0.0/8",
            "foo",
            "",
            "Server",
            "Namespace",
            "HTTPRoute",
        ]
    ),
    st.text(max_size=12),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELD_NAMES), st.integers(0, 9000)), children, max_size=5
        ),
    ),
    max_leaves=25,
)


def _api_kinds() -> list[tuple[str, str]]:
    from meshtutor.model.loader import KINDS

    return [(f"{k.group}/{v}" if k.group else v, k.kind) for k in KINDS for v in k.versions]


API_KINDS = _api_kinds()


@st.composite
def documents(draw: st.DrawFn) -> str:
    """One random document of a kind meshtutor models, as YAML text."""
    api_version, kind = draw(st.sampled_from(API_KINDS))
    doc = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": draw(st.one_of(st.just({"name": "x", "namespace": "foo"}), TREES)),
    }
    extra = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), TREES, max_size=3))
    doc.update(extra)
    return yaml.safe_dump(doc, sort_keys=False)


@st.composite
def text_mutations(draw: st.DrawFn, text: str) -> str:
    """Delete, duplicate or replace a slice of ``text``, as a typo would."""
    start = draw(st.integers(0, max(len(text) - 1, 0)))
    end = draw(st.integers(start, min(len(text), start + 30)))
    action = draw(st.sampled_from(["delete", "dup", "replace"]))
    if action == "delete":
        return text[:start] + text[end:]
    if action == "dup":
        return text[:end] + text[start:end] + text[end:]
    return text[:start] + draw(st.text(max_size=8)) + text[end:]


# --- hostile values ----------------------------------------------------------------------------

BOMB_HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb, namespace: foo}\n"


def billion_laughs(levels: int = 9, head: str = BOMB_HEAD) -> str:
    """The alias bomb of issue 13 item 10 under ``status``: level a holds nine strings, each
    next level nine aliases of the one before. Nine levels are ~400 bytes that expand to
    435 million nodes; the fifth level (e, line 9) is the one that passes 10,000."""
    names = "abcdefghijklmnop"
    lines = [head, "status:\n", f"  a: &a [{','.join(['lol'] * 9)}]\n"]
    for level in range(1, levels):
        refs = ",".join([f"*{names[level - 1]}"] * 9)
        lines.append(f"  {names[level]}: &{names[level]} [{refs}]\n")
    return "".join(lines)


def _bomb(tag: str) -> str:
    levels = [f"&{tag}0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for i in range(1, 9):
        levels.append(f"&{tag}{i} [{','.join([f'*{tag}{i - 1}'] * 9)}]")
    return "[" + ", ".join(levels) + "]"


# Placeholders a structured mutation can put anywhere; they become YAML that safe_dump cannot
# write (a 5,000-digit integer, aliases, tags) when the tree is turned back into text.
SNIPPETS: dict[str, Callable[[int], str]] = {
    "__BIGINT__": lambda n: "9" * 5000,
    "__BOMB__": lambda n: _bomb(f"b{n}x"),
    "__RECURSIVE__": lambda n: f"&r{n}x [1, *r{n}x]",
    "__DEEP__": lambda n: "[" * 150 + "]" * 150,
    "__DEEPMAP__": lambda n: "{a: " * 150 + "1" + "}" * 150,
    "__BADINT__": lambda n: "!!int abc",
    "__BADTIME__": lambda n: "!!timestamp 2001-02-30",
    "__BADBOOL__": lambda n: "!!bool maybe",
    "__PYTHON__": lambda n: "!!python/object/apply:os.system [echo]",
    "__SET__": lambda n: "!!set {a: null}",
    "__UNDEFINED__": lambda n: f"*nope{n}",
    "__MERGE__": lambda n: "{<<: [1, 2]}",
    "__BINARY__": lambda n: "!!binary '@@@'",
}

HOSTILE_STRINGS = [
    "",
    " ",
    "-",
    "*",
    "x" * 300,
    "../../../../etc/passwd",
    "/etc/passwd",
    "/dev/zero",
    "samples/../../lessons/01-tls-vs-mtls.yaml",
    "http://[::1",
    "http://httpbin.bar:99999/",
    "spiffe://cluster.local/ns/foo/sa/sleep",
    "cluster.local/ns/*/sa/*",
    "0.0.0.0/0",
    "10.0.0.0/33",
    "::/0",
    "1.2.3.4/abc",
    "+99999y",
    "+1h",
    "ünïcödé",
    "\u202e",
    "a\nb",
    "${HOME}",
    "[a]",
    "%",
    "0",
    "65536",
    "-1",
    "foo/sleep=http://httpbin.bar:8000/ip",
    "FOO/Sleep",
]
HOSTILE_NUMBERS = [0, -1, 1, 65535, 65536, 2**31, 2**63, 2**64, 10**30, 0.5, 1e308]
HOSTILE = st.one_of(
    st.sampled_from(list(SNIPPETS)),
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(HOSTILE_NUMBERS),
    st.sampled_from([None, True, False, [], {}, float("inf"), float("nan")]),
    TREES,
)


def _slots(tree: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in ``tree``, iteratively (a mutation may nest deep)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                out.append((node, key))
                stack.append(value)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                out.append((node, index))
                stack.append(value)
    return out


@st.composite
def mutated_trees(draw: st.DrawFn, docs: list[Any]) -> list[Any]:
    """One to three structured mutations of parsed documents: a value replaced by a hostile
    one or by another value of the same documents (plausible, so it reaches the policy
    engine), deleted, nulled, wrapped in a list, or its key renamed."""
    docs = json.loads(json.dumps(docs, default=str))  # a deep copy the mutations may change
    for _ in range(draw(st.integers(1, 3))):
        slots = [s for doc in docs for s in _slots(doc, [])]
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        op = draw(
            st.sampled_from(
                ["hostile", "hostile", "swap", "swap", "swap", "delete", "null", "wrap", "rename"]
            )
        )
        if op == "hostile":
            container[key] = draw(HOSTILE)
        elif op == "swap":
            other, other_key = draw(st.sampled_from(slots))
            container[key] = json.loads(json.dumps(other[other_key]))
        elif op == "delete":
            del container[key]
        elif op == "null":
            container[key] = None
        elif op == "wrap":
            container[key] = [container[key]]
        elif isinstance(container, dict):
            value = container.pop(key)
            container[draw(st.sampled_from([*FIELD_NAMES, *SNIPPETS]))] = value
    return docs


def _expand(text: str, snippets: dict[str, Callable[[int], str]]) -> str:
    counter = 0

    def expand(match: re.Match[str]) -> str:
        nonlocal counter
        counter += 1
        return snippets[match.group(0)](counter)

    return re.sub("|".join(snippets), expand, text)


def as_yaml(docs: list[Any]) -> str:
    """The documents as YAML, each placeholder replaced by its hostile YAML."""
    return _expand(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True), SNIPPETS)


JSON_SNIPPETS: dict[str, Callable[[int], str]] = {
    '"__BIGINT__"': lambda n: "9" * 5000,
    '"__DEEP__"': lambda n: "[" * 1500 + "]" * 1500,
    '"__DEEPMAP__"': lambda n: '{"a": ' * 1500 + "1" + "}" * 1500,
}


def as_json(docs: list[Any]) -> str:
    """The first document as JSON, with the placeholders JSON can hold made hostile."""
    return _expand(json.dumps(docs[0] if docs else None, default=str), JSON_SNIPPETS)


def tree_mutations(docs: list[Any]) -> st.SearchStrategy[str]:
    return mutated_trees(docs).map(as_yaml)


def _encoded(text: str) -> st.SearchStrategy[bytes]:
    """The text as UTF-8, one time in ten with two bytes that are not UTF-8 in it."""
    data = text.encode("utf-8")
    return st.sampled_from([False] * 9 + [True]).flatmap(
        lambda broken: (
            st.integers(0, len(data)).map(lambda i: data[:i] + b"\xff\xfe" + data[i:])
            if broken
            else st.just(data)
        )
    )


def _with_snippet(text: str) -> st.SearchStrategy[str]:
    lines = text.splitlines(keepends=True)
    return st.tuples(st.integers(0, len(lines)), st.sampled_from(sorted(SNIPPETS))).map(
        lambda t: (
            "".join(lines[: t[0]]) + "status: " + SNIPPETS[t[1]](0) + "\n" + "".join(lines[t[0] :])
        )
    )


def _parsed(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


# --- the four kinds -----------------------------------------------------------------------------


def _shipped_mutations(texts: list[str]) -> list[st.SearchStrategy[str]]:
    """Structured mutations (twice as often), text mutations and snippets of shipped files."""
    shipped = st.sampled_from(texts)
    structured = shipped.flatmap(lambda t: tree_mutations(_parsed(t)))
    return [structured, structured, shipped.flatmap(text_mutations), shipped.flatmap(_with_snippet)]


def manifest_inputs() -> st.SearchStrategy[bytes]:
    texts = st.one_of(
        *_shipped_mutations(SAMPLES),
        documents(),
        TREES.map(lambda t: yaml.safe_dump(t)),
    )
    return texts.flatmap(_encoded)


SOURCES = [
    "foo/sleep",
    "bar/sleep",
    "legacy/sleep",
    "foo/sleep:istio-proxy",
    "foo/httpbin",
    "outside",
    "nope/x",
    "FOO/sleep",
    "foo/",
    "/sleep",
]
URLS = [
    "http://httpbin.bar:8000/ip",
    "http://httpbin.foo:8000/headers",
    "http://httpbin:8000/",
    "https://shop.example.com/",
    "http://sleep.legacy/",
    "http://[::1",
    "ftp://x/",
    "http://httpbin.bar:99999/",
    "http://" + "a" * 300 + "/",
    "http://10.0.0.1:8000/",
    "httpbin.bar",
]
PROBE_FIELDS = {
    "from": st.one_of(st.sampled_from(SOURCES), HOSTILE),
    "url": st.one_of(st.sampled_from(URLS), HOSTILE),
    "container": st.one_of(st.sampled_from(["istio-proxy", "sleep", "nope"]), HOSTILE),
    "method": st.one_of(st.sampled_from(["GET", "POST", "get", "BREW"]), HOSTILE),
    "headers": st.one_of(
        st.dictionaries(st.sampled_from(["Host", "x-user", ""]), HOSTILE, max_size=2), HOSTILE
    ),
    "timeout": st.one_of(st.sampled_from([0.5, 1, 0, -1, "1s", 10**30]), HOSTILE),
    "insecure": st.one_of(st.booleans(), HOSTILE),
    "cacert": st.one_of(
        st.sampled_from(["edge/public-ca.pem", "/dev/zero", "nope.pem", "samples", "/dev/null"]),
        HOSTILE,
    ),
    "extra": HOSTILE,
}


@st.composite
def probe_entries(draw: st.DrawFn) -> dict[str, Any]:
    entry = {"from": draw(st.sampled_from(SOURCES)), "url": draw(st.sampled_from(URLS))}
    for name in draw(st.lists(st.sampled_from(sorted(PROBE_FIELDS)), max_size=3, unique=True)):
        entry[name] = draw(PROBE_FIELDS[name])
    return entry


def probe_inputs() -> st.SearchStrategy[bytes]:
    valid = "- from: foo/sleep\n  url: http://httpbin.bar:8000/ip\n- from: legacy/sleep\n  url: http://httpbin.foo:8000/\n"
    texts = st.one_of(
        st.lists(probe_entries(), min_size=1, max_size=3).flatmap(
            lambda entries: tree_mutations([entries])
        ),
        st.lists(probe_entries(), min_size=1, max_size=3).map(lambda entries: as_yaml([entries])),
        text_mutations(valid),
        _with_snippet(valid),
        TREES.map(lambda t: yaml.safe_dump(t)),
    )
    return texts.flatmap(_encoded)


LESSONS = [p.read_text() for p in LESSON_PATHS]


def lesson_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(*_shipped_mutations(LESSONS)).flatmap(_encoded)


def _chain_pem() -> bytes:
    from meshtutor.pki.ca import MeshCA

    ca = MeshCA.create("istio", intermediate=True)
    credential = ca.credential("foo", "sleep")
    from meshtutor.pki.inspection import describe_credential

    return describe_credential(credential).chain.pem.encode()


PEM = _chain_pem()


def _envoy_dump(pem: bytes) -> dict[str, Any]:
    from cryptography.hazmat.primitives.serialization import Encoding

    from meshtutor.pki import load_certificates

    certs = load_certificates(pem)
    b64 = [base64.b64encode(c.public_bytes(Encoding.PEM)).decode() for c in certs]
    return {
        "dynamicActiveSecrets": [
            {
                "name": "default",
                "secret": {"tlsCertificate": {"certificateChain": {"inlineBytes": b64[0]}}},
            },
            {
                "name": "ROOTCA",
                "secret": {"validationContext": {"trustedCa": {"inlineBytes": b64[-1]}}},
            },
        ]
    }


def _der(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    from meshtutor.pki import load_certificates

    return b"".join(c.public_bytes(Encoding.DER) for c in load_certificates(pem))


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if op == "flip" and data:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif op == "truncate":
            data = data[:at]
        elif op == "insert":
            data = data[:at] + draw(st.binary(max_size=16)) + data[at:]
        else:
            data = data[:at] + data[at + draw(st.integers(1, 64)) :]
    return data


def cert_inputs() -> st.SearchStrategy[bytes]:
    dump = _envoy_dump(PEM)
    der = _der(PEM)
    return st.one_of(
        byte_mutations(PEM),
        byte_mutations(der),
        byte_mutations(base64.b64encode(PEM)),
        byte_mutations(json.dumps(dump).encode()),
        mutated_trees([dump]).map(lambda docs: as_json(docs).encode()),
        st.sampled_from(
            [
                b"",
                b"{" + b'"a":{' * 2000 + b"}" * 2001,
                b"[" * 5000 + b"]" * 5000,
                b'{"configs": [{"x": ' + b"9" * 5000 + b"}]}",
                b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                b"\x30\x84\xff\xff\xff\xff",
                b"\x30\x82",
                base64.b64encode(b"\x30\x03\x02\x01\x01"),
            ]
        ),
        st.binary(max_size=200),
    )


STRATEGIES: dict[str, Callable[[], st.SearchStrategy[bytes]]] = {
    "manifest": manifest_inputs,
    "probes": probe_inputs,
    "lesson": lesson_inputs,
    "certs": cert_inputs,
}


# --- running the entry points -------------------------------------------------------------------


def _base_topology() -> str:
    """foo and bar injected, legacy not, sleep and httpbin in each, and the namespaces the
    shipped manifests use, so that mutated manifests apply and probes reach the engine."""
    docs: list[Any] = []
    for ns, injected in [
        ("foo", True),
        ("bar", True),
        ("legacy", False),
        ("demo", True),
        ("shop", True),
        ("store", True),
        ("istio-system", False),
        ("ingress-nginx", False),
    ]:
        labels = {"istio-injection": "enabled"} if injected else {}
        docs.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
        )
    for ns in ("foo", "bar", "legacy"):
        for sample in ("sleep.yaml", "httpbin.yaml"):
            for doc in _parsed((ROOT / "manifests/samples" / sample).read_text()):
                doc["metadata"]["namespace"] = ns
                docs.append(doc)
    return yaml.safe_dump_all(docs, sort_keys=False)


BASE_TOPOLOGY = _base_topology()
PROBES = ["foo/sleep=http://httpbin.bar:8000/ip", "legacy/sleep=http://httpbin.foo:8000/headers"]


@dataclass
class Outcome:
    kind: str
    command: list[str]
    code: int
    out: str
    err: str
    problem: str | None


class Hang(BaseException):
    """A command did not finish in time (BaseException: nothing in meshtutor may swallow it)."""


HANG_SECONDS = 60


def _hang(signum: int, frame: Any) -> None:
    signal.alarm(HANG_SECONDS)  # again, in case the clean-up after this one hangs too
    raise Hang(f"no answer in {HANG_SECONDS} s")


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``meshtutor ARGS`` in this process: exit code, stdout, stderr (a traceback in stderr
    when something escaped main(), or a Hang after ``HANG_SECONDS``)."""
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(HANG_SECONDS)
    try:
        with CliRunner().isolation(env=env) as (out, err, _):
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # what the user would see: a traceback, exit 1
                code = 1
                err.write(traceback.format_exc().encode())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")


def judge(
    code: int, out: str, err: str, names: list[str], *, failure_ok: str | None = None
) -> str | None:
    """What is wrong with an outcome, or ``None``. ``failure_ok`` is the text with which a
    command may exit 1 for a reason that is not an error (a probe that differs from the
    prediction, a lesson check that fails)."""
    if "Traceback" in out or "Traceback" in err:
        return "traceback: " + err.strip().splitlines()[-1][:200]
    if code == 1 and failure_ok and failure_ok in out + err:
        return None
    if code not in (0, 2):
        return f"exit code {code}: {err.strip()[:200]}"
    if code == 2:
        lines = [line for line in err.strip().splitlines() if not line.startswith("note: ")]
        if len(lines) != 1:
            return f"{len(lines)} error lines: {err.strip()[:300]}"
        if not any(name in lines[0] for name in names):
            return f"the error names neither the file nor the argument: {lines[0][:300]}"
    return None


def _first_workload(path: Path) -> list[str]:
    """A probe from the first Deployment to the first Service of a manifest that loads."""
    from meshtutor.errors import MeshtutorError
    from meshtutor.model import Deployment, Service, load_file

    try:
        docs = load_file(path)
    except MeshtutorError:
        return []
    deployment = next((d for d in docs if isinstance(d, Deployment)), None)
    service = next((d for d in docs if isinstance(d, Service) and d.ports), None)
    if deployment is None or service is None:
        return []
    port = service.ports[0].port
    return [
        f"{deployment.namespace}/{deployment.name}=http://{service.name}.{service.namespace}:{port}/"
    ]


def check(kind: str, data: bytes, workdir: Path, *, sandbox: bool = False) -> list[Outcome]:
    """Run the entry points of ``kind`` on ``data``; one Outcome per command."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / ("input.json" if kind == "certs" else "input.yaml")
    path.write_bytes(data)
    base = workdir / "base.yaml"
    if not base.exists():
        base.write_text(BASE_TOPOLOGY)
    commands: list[list[str]] = []
    if kind == "manifest":
        probes = PROBES + _first_workload(path)
        commands.append(["explain", "-f", str(base), "-f", str(path), *probes])
        if sandbox:
            quick = workdir / "quick-probes.yaml"
            quick.write_text(
                yaml.safe_dump(
                    [
                        {"from": p.split("=")[0], "url": p.split("=", 1)[1], "timeout": 0.5}
                        for p in probes
                    ]
                )
            )
            commands.append(
                ["sandbox", "probe", "-f", str(base), "-f", str(path), "--probes", str(quick)]
            )
    elif kind == "probes":
        commands.append(["explain", "-f", str(base), "--probes", str(path)])
        if sandbox:
            commands.append(["sandbox", "probe", "-f", str(base), "--probes", str(path)])
    elif kind == "lesson":
        commands.append(["lesson", "validate", str(path)])
    elif kind == "certs":
        commands.append(["certs", "-f", str(path)])
        commands.append(["certs", "-f", str(path), "foo/sleep", "--json"])
    outcomes = [_run(kind, command, path) for command in commands]
    if kind == "lesson" and sandbox and outcomes[0].code == 0:
        # A lesson that validates also runs for real, unattended, on sandboxes.
        home = {"MESHTUTOR_HOME": str(workdir / "home")}
        outcomes.append(_run(kind, ["run", str(path), "--auto"], path, env=home))
    return outcomes


_FAILURE_OK = {"sandbox": "differ from the prediction", "run": "lesson(s) passed"}


def _run(kind: str, command: list[str], path: Path, env: dict[str, str] | None = None) -> Outcome:
    code, out, err = invoke(command, env)
    names = [str(path), *[c for c in command if "=" in c]]
    problem = judge(code, out, err, names, failure_ok=_FAILURE_OK.get(command[0]))
    return Outcome(kind, command, code, out, err, problem)
