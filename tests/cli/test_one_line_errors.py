"""Hostile input on every command gives one line naming the file, exit code 2, no traceback.

Issue 13 items 10 (alias bombs on every path that reads YAML) and 14 (inputs that gave a
traceback). Most commands run in-process through ``meshtutor.cli.main``, as the shell would
call it; the ones that read a device or talk to a prompt run as real processes.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshtutor.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzzkit import billion_laughs

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests/samples"
SLEEP_FOO = ["-f", str(SAMPLES / "namespaces.yaml"), "-f", str(SAMPLES / "sleep.yaml"), "-n", "foo"]
BIG = "9" * 5000


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one error line (asserting there is exactly one and no traceback)."""
        assert self.code == 2, (self.code, self.out, self.err)
        assert "Traceback" not in self.out + self.err
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


def meshtutor(*args: str, input: str | bytes | None = None) -> Result:
    """``meshtutor ARGS`` in this process; an uncaught exception fails the test."""
    with CliRunner().isolation(input=input) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Result(code, out.getvalue().decode(), err.getvalue().decode())


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def process(*args: str, input: str | None = None) -> Result:
    """A real ``python -m meshtutor`` with 1 GiB of address space and a minute at most:
    reading /dev/zero forever fails fast instead of taking the machine down."""
    done = subprocess.run(
        [sys.executable, "-m", "meshtutor", *args],
        capture_output=True,
        text=True,
        input=input,
        cwd=ROOT,
        timeout=60,
        preexec_fn=_limit_memory,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


BOMB = billion_laughs()
BOMB_LINE = 9  # e: the first level whose aliases pass 10,000 nodes

LESSON = textwrap.dedent("""\
    id: hostile
    title: A lesson
    mesh: istio
    summary: Nothing much.
    minutes: 5
    topology:
      - apply: samples/namespaces.yaml
    steps:
      - id: one
        title: One
        prose: One.
    """)


class TestAliasBombs:
    """Item 10: the bomb is refused on every path that reads YAML, at the line of the alias."""

    def test_explain(self, tmp_path: Path) -> None:
        path = write(tmp_path / "bomb.yaml", BOMB)
        error = meshtutor("explain", "-f", path, "foo/sleep=http://x/").error
        assert error.startswith(f"meshtutor: {path}:{BOMB_LINE}: the alias *d at column")
        assert "more than 10,000 nodes" in error

    def test_sandbox_probe(self, tmp_path: Path) -> None:
        path = write(tmp_path / "bomb.yaml", BOMB)
        error = meshtutor("sandbox", "probe", "-f", path, "foo/sleep=http://x/").error
        assert error.startswith(f"meshtutor: {path}:{BOMB_LINE}: ")

    def test_probe_file(self, tmp_path: Path) -> None:
        probes = write(
            tmp_path / "probes.yaml",
            "- &p {from: foo/sleep, url: 'http://x/'}\n"
            + "".join(
                f"- &p{i} [{', '.join(['*p' if i == 0 else f'*p{i - 1}'] * 9)}]\n" for i in range(8)
            ),
        )
        error = meshtutor("explain", *SLEEP_FOO, "--probes", probes).error
        assert error.startswith(f"meshtutor: {probes}:") and "alias" in error

    def test_lesson_file(self, tmp_path: Path) -> None:
        lesson = write(tmp_path / "bomb.yaml", LESSON + "quiz: " + BOMB.split("status:", 1)[1])
        for args in (["lesson", "validate", lesson], ["run", lesson, "--auto"]):
            error = meshtutor(*args).error
            assert error.startswith(f"meshtutor: {lesson}:") and "alias" in error

    def test_mesh_config_inside_a_configmap(self, tmp_path: Path) -> None:
        """policy/cluster.py reads the ``mesh`` key of istio-system/istio as YAML."""
        body = textwrap.indent(BOMB.split("status:\n", 1)[1], "  ")
        path = write(
            tmp_path / "mesh.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
            "data:\n  mesh: |\n" + textwrap.indent(body, "  "),
        )
        error = meshtutor("explain", "-f", path, "foo/sleep=http://x/").error
        assert error.startswith(f"meshtutor: {path}:1, document 1, field data.mesh: ")
        assert "line 5 of the mesh config: the alias *d" in error

    def test_kubeconfig(self, tmp_path: Path) -> None:
        from meshtutor.backends.kube import KubeError, resolve_target

        path = write(
            tmp_path / "kubeconfig",
            "apiVersion: v1\nkind: Config\ncurrent-context: kind-x\n"
            "contexts: [{name: kind-x, context: {cluster: x}}]\n"
            "clusters: [{name: x, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
            + "preferences:\n"
            + textwrap.indent(BOMB.split("status:\n", 1)[1], ""),
        )
        with pytest.raises(KubeError, match=rf"^{path}:\d+: .*alias"):
            resolve_target(path)


class TestNumbers:
    """Item 14: a 5,000-digit integer anywhere in YAML."""

    def test_in_a_manifest(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "big.yaml",
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: foo}}\n"
            f"spec:\n  ports:\n  - port: {BIG}\n",
        )
        error = meshtutor("explain", "-f", path, "foo/sleep=http://x/").error
        assert error.startswith(f"meshtutor: {path}:6: this number has 5,000 digits")

    def test_in_a_probe_file(self, tmp_path: Path) -> None:
        probes = write(
            tmp_path / "p.yaml", f"- from: foo/sleep\n  url: http://x/\n  timeout: {BIG}\n"
        )
        error = meshtutor("explain", *SLEEP_FOO, "--probes", probes).error
        assert error.startswith(f"meshtutor: {probes}:3: ")

    def test_in_a_lesson(self, tmp_path: Path) -> None:
        lesson = write(tmp_path / "l.yaml", LESSON.replace("minutes: 5", f"minutes: {BIG}"))
        error = meshtutor("lesson", "validate", lesson).error
        assert error.startswith(f"meshtutor: {lesson}:5: ")


class TestManifests:
    def test_containers_null_is_refused_by_validation(self, tmp_path: Path) -> None:
        """It passed validation, then explain and sandbox probe raised IndexError."""
        path = write(
            tmp_path / "d.yaml",
            textwrap.dedent("""\
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: sleep, namespace: foo}
                spec:
                  selector: {matchLabels: {app: sleep}}
                  template:
                    metadata: {labels: {app: sleep}}
                    spec:
                      containers: null
                """),
        )
        for command in (["explain"], ["sandbox", "probe"]):
            error = meshtutor(
                *command, "-f", str(SAMPLES / "namespaces.yaml"), "-f", path, "foo/sleep=http://x/"
            ).error
            assert error.startswith(
                f"meshtutor: {path}:9, document 1, field spec.template.spec.containers: "
            )

    def test_a_value_with_a_newline_or_an_escape_stays_on_one_line(self, tmp_path: Path) -> None:
        """Errors quote what the user wrote: a newline split the error in two (fuzz test),
        an escape sequence would have reached the terminal."""
        path = write(
            tmp_path / "pa.yaml",
            'apiVersion: "a\\nb"\nkind: PeerAuthentication\nmetadata: {name: "x\\e[2J"}\n',
        )
        error = meshtutor("explain", "-f", path, "foo/sleep=http://x/").error
        assert "there is no PeerAuthentication in a\\nb; " in error
        lesson = write(tmp_path / "l.yaml", LESSON.replace("id: hostile", 'id: "\\e[31mred"'))
        error = meshtutor("lesson", "validate", lesson).error
        assert "\x1b" not in error and "\\x1b[31mred" in error

    def test_a_note_about_an_unmodelled_kind_is_printable(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "w.yaml",
            'apiVersion: example.com/v1\nkind: "W\\e[2Jidget"\nmetadata: {name: w, namespace: foo}\n',
        )
        result = meshtutor("explain", *SLEEP_FOO, "-f", path, "foo/sleep=http://sleep.foo/")
        assert result.code == 0
        assert f"note: {path}: W\\x1b[2Jidget foo/w is not simulated" in result.err

    @pytest.mark.parametrize("command", ["explain", "certs"])
    def test_dev_zero_is_refused_not_read_forever(self, command: str) -> None:
        error = process(
            command, "-f", "/dev/zero", *(["foo/sleep=http://x/"] * (command == "explain"))
        ).error
        assert "/dev/zero" in error and "character device" in error

    def test_a_pipe_still_works(self) -> None:
        """``-f <(kustomize build)`` hands meshtutor a pipe, not a regular file."""
        done = subprocess.run(
            [
                "bash",
                "-c",
                f"{sys.executable} -m meshtutor explain -f <(cat {SAMPLES}/namespaces.yaml) "
                f"-f <(cat {SAMPLES}/sleep.yaml) -n foo foo/sleep=http://sleep.foo/",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("sleep.foo to sleep.foo: ")

    def test_an_empty_probe_list(self, tmp_path: Path) -> None:
        """It fell through to the usage error for no probes at all: four lines, no file
        named (found by the fuzz test)."""
        probes = write(tmp_path / "p.yaml", "[]\n")
        error = meshtutor("explain", *SLEEP_FOO, "--probes", probes).error
        assert (
            error == f"meshtutor: {probes}: expected a YAML list of probes, each with from and url"
        )

    def test_a_probe_file_error_names_the_file_and_line(self, tmp_path: Path) -> None:
        """Errors found when the probe meets the cluster named only the probe (fuzz test)."""
        probes = write(
            tmp_path / "p.yaml",
            "- {from: foo/sleep, url: 'http://sleep.foo/'}\n- {from: nope/x, url: 'http://a/'}\n",
        )
        error = meshtutor("explain", *SLEEP_FOO, "--probes", probes).error
        assert error == (
            f"meshtutor: {probes}:2: probe nope/x=http://a/: namespace 'nope' does not exist"
        )

    def test_a_missing_cacert_among_probes_does_not_hang_the_sandbox(self, tmp_path: Path) -> None:
        """Found when curl ran, it cancelled the other probes while they started curl, and
        asyncio.run never returned (fuzz test; the process is killed after 60 s)."""
        probes = write(
            tmp_path / "p.yaml",
            "- {from: foo/sleep, url: 'http://sleep.foo/', cacert: /dev/null}\n"
            "- {from: foo/sleep, url: 'http://sleep.foo/'}\n",
        )
        error = process("sandbox", "probe", *SLEEP_FOO, "--probes", probes).error
        assert error == f"meshtutor: {probes}:1: --cacert /dev/null: no such file (a PEM CA bundle)"

    def test_non_utf8_probe_file(self, tmp_path: Path) -> None:
        probes = tmp_path / "p.yaml"
        probes.write_bytes(b"- from: foo/sleep\n  url: http://x/\xe9\n")
        error = meshtutor("explain", *SLEEP_FOO, "--probes", str(probes)).error
        assert (
            error
            == f"meshtutor: {probes}:2: byte 0xE9 at column 17 is not UTF-8; save the file as UTF-8 text"
        )


class TestCertificates:
    def test_json_nested_2000_deep(self, tmp_path: Path) -> None:
        path = write(tmp_path / "deep.json", '{"a":' * 2000 + "1" + "}" * 2000)
        error = meshtutor("certs", "-f", path).error
        assert error.startswith(f"meshtutor: {path}: ") and "nested" in error

    def test_json_with_a_5000_digit_number(self, tmp_path: Path) -> None:
        path = write(tmp_path / "big.json", '{"configs": [{"x": ' + BIG + "}]}")
        error = meshtutor("certs", "-f", path).error
        assert error.startswith(f"meshtutor: {path}:1: ") and "5,000 digits" in error

    def test_a_certificate_with_an_unknown_curve(self, tmp_path: Path) -> None:
        """cryptography reads the key only when asked: the tree view raised
        UnsupportedAlgorithm (found by the fuzz test)."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        pem = meshtutor("certs", "foo/sleep", "--pem").out.encode()
        der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
        prime256v1 = bytes.fromhex("06082a8648ce3d030107")
        assert prime256v1 in der
        path = tmp_path / "cert.der"
        path.write_bytes(der.replace(prime256v1, prime256v1[:-1] + b"\x63"))
        error = meshtutor("certs", "-f", str(path)).error
        assert error.startswith(f"meshtutor: {path}: certificate #1 is damaged")

    @pytest.mark.parametrize("at", ["+9000y", "+99999999999999999999999y", "-3000y", "9999-12-31"])
    def test_a_time_past_what_certificates_hold(self, at: str) -> None:
        error = meshtutor("certs", "foo/sleep", f"--at={at}").error
        assert "--at" in error and "between" in error


class TestLessons:
    def test_non_utf8_lesson(self, tmp_path: Path) -> None:
        lesson = tmp_path / "l.yaml"
        lesson.write_bytes(LESSON.replace("Nothing much.", "Caf\xe9").encode("latin-1"))
        for args in (["lesson", "validate", str(lesson)], ["run", str(lesson), "--auto"]):
            error = meshtutor(*args).error
            assert (
                error
                == f"meshtutor: {lesson}:4: byte 0xE9 at column 13 is not UTF-8; save the file as UTF-8 text"
            )

    @pytest.mark.parametrize(
        "target",
        ["../../../../../../../../etc/passwd", "/etc/passwd", "../outside.yaml", "link.yaml"],
    )
    def test_an_apply_path_that_leaves_manifests(self, tmp_path: Path, target: str) -> None:
        from meshtutor.lessons.loader import LessonError, load_lesson

        manifests = tmp_path / "manifests"
        manifests.mkdir()
        (tmp_path / "outside.yaml").write_text(BOMB)
        (manifests / "link.yaml").symlink_to(tmp_path / "outside.yaml")
        lesson = tmp_path / "l.yaml"
        lesson.write_text(LESSON.replace("samples/namespaces.yaml", target))
        with pytest.raises(LessonError) as exc:
            load_lesson(lesson, manifests=manifests)
        assert str(exc.value).startswith(f"{lesson}:7: topology[0].apply: ")
        assert "manifests" in str(exc.value)

    @pytest.mark.parametrize("cacert", ["/etc/ssl/certs/ca-certificates.crt", "edge/nope.pem"])
    def test_a_probe_cacert_outside_manifests_or_missing(self, tmp_path: Path, cacert: str) -> None:
        lesson = write(
            tmp_path / "l.yaml",
            LESSON
            + f"    actions:\n      - probe: outside=https://shop.example.com/ --cacert {cacert}\n",
        )
        error = meshtutor("lesson", "validate", lesson).error
        assert error.startswith(f"meshtutor: {lesson}:13: steps[0].actions[0].probe: --cacert file")

    def test_an_apply_path_that_leaves_manifests_on_the_command_line(self, tmp_path: Path) -> None:
        lesson = write(
            tmp_path / "l.yaml",
            LESSON.replace("samples/namespaces.yaml", "../../../../../../etc/passwd"),
        )
        error = meshtutor("lesson", "validate", lesson).error
        assert error.startswith(f"meshtutor: {lesson}:7: topology[0].apply: ")


class TestKeylog:
    """``sandbox probe --keylog`` writes TLS secrets: only to a regular file, as named."""

    def _probe(self, keylog: str) -> Result:
        return meshtutor(
            "sandbox", "probe", *SLEEP_FOO, "foo/sleep=http://sleep.foo/", "--keylog", keylog
        )

    def test_a_symlink_is_refused_and_its_target_never_created(self, tmp_path: Path) -> None:
        link = tmp_path / "keys.log"
        link.symlink_to(tmp_path / "elsewhere.log")
        error = self._probe(str(link)).error
        assert error.startswith(f"meshtutor: {link}: this is a symbolic link")
        assert not (tmp_path / "elsewhere.log").exists()

    def test_a_missing_directory(self, tmp_path: Path) -> None:
        path = tmp_path / "nowhere" / "keys.log"
        error = self._probe(str(path)).error
        assert error.startswith(f"meshtutor: {path}: ") and "does not exist" in error

    def test_dev_null(self) -> None:
        error = self._probe("/dev/null").error
        assert error.startswith("meshtutor: /dev/null: this is a character device")


def test_write_key_to_a_terminal_is_refused(tmp_path: Path) -> None:
    """``certs --write-key`` narrowed any file it opened to 0600 and wrote the key into it:
    as root, ``--write-key /dev/null`` would take /dev/null away from every other user. A
    pseudo-terminal of this test stands in for /dev/null (it is ours to damage)."""
    master, slave = os.openpty()
    try:
        device = os.ttyname(slave)
        mode = os.stat(device).st_mode
        error = meshtutor("certs", "foo/sleep", "--write-key", device).error
        assert error == f"meshtutor: cannot write the private key to {device}: not a regular file"
        assert os.stat(device).st_mode == mode
        os.set_blocking(master, False)
        with pytest.raises(BlockingIOError):
            os.read(master, 100)  # nothing was written to the terminal
    finally:
        os.close(master)
        os.close(slave)


class TestShell:
    """``sandbox shell`` prints a bad command's error and goes on."""

    def test_errors_do_not_end_the_shell(self) -> None:
        commands = [
            "clock +99999y",
            "clock +99999999999999999999999y",
            'probe "foo',
            "workloads",
            "quit",
        ]
        result = process("sandbox", "shell", *SLEEP_FOO, input="\n".join(commands) + "\n")
        assert result.code == 0, result.err
        assert "Traceback" not in result.out + result.err
        errors = [line for line in result.out.splitlines() if "error:" in line]
        assert len(errors) == 3, result.out
        assert "foo/sleep" in result.out.split(errors[-1], 1)[1]  # workloads ran after the errors


def test_no_file_descriptor_is_left_open(tmp_path: Path) -> None:
    """Refusals close what they opened (the reader stats before it opens)."""
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        meshtutor("explain", "-f", "/dev/null", "foo/sleep=http://x/")
    assert len(os.listdir("/proc/self/fd")) <= before


class TestReader:
    """meshtutor/inputfiles.py, which every command above reads through."""

    def test_the_size_bound_holds_for_files_and_stdin(self, tmp_path: Path) -> None:
        from meshtutor.errors import InputFileError
        from meshtutor.inputfiles import read_bytes

        path = tmp_path / "eleven"
        path.write_bytes(b"x" * 11)
        assert read_bytes(path, limit=11) == b"x" * 11
        with pytest.raises(InputFileError, match=r"eleven: this is larger than"):
            read_bytes(path, limit=10)
        with CliRunner().isolation(input=b"y" * 11), pytest.raises(InputFileError, match="<stdin>"):
            read_bytes("-", limit=10, stdin=True)

    def test_a_pipe_is_read_to_its_end(self, tmp_path: Path) -> None:
        from meshtutor.inputfiles import read_text

        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        writer = subprocess.Popen(["sh", "-c", f"printf 'kind: x\\n' > {fifo}"])
        assert read_text(fifo) == "kind: x\n"
        writer.wait(timeout=10)
