"""A pod container's shell: what `kubectl exec POD -c CONTAINER -- ARGV` runs in the sandbox.

The expected strings are the sample images' own, checked in their sources:

* busybox ash (curlimages/curl is Alpine; Alpine's busybox config has FEATURE_EDITING_FANCY_PROMPT,
  NC_110_COMPAT, ASH_BASH_COMPAT): ``shell/ash.c`` ``ash_vmsg`` (``sh: NAME: not found``, exit
  127 from ``shellexec``), ``raise_error_unexpected_syntax`` / ``tokname`` (``syntax error:
  unexpected "fi"``), ``initvar`` (``PS1=\\w \\$ `` → ``~ $ `` in curl_user's home),
  ``procargs`` (interactive only when stdin and stdout are ttys); ``networking/nc_bloaty.c``;
  ``networking/wget.c``; ``libbb/xconnect.c``; ``coreutils/wc.c``.
* curl/curl-container ``create_base_image.sh``: ``adduser -S curl_user -G curl_group``, workdir
  ``/home/curl_user`` (uid 100, gid 101 on Alpine).
* istio/istio ``docker/Dockerfile.base`` (proxyv2's debug base: Ubuntu, curl, ``useradd --uid
  1337 istio-proxy``) and linkerd/linkerd2 ``Dockerfile-proxy`` (distroless: no shell at all).
* kubernetes ``staging/src/k8s.io/kubelet/pkg/cri/streaming/remotecommand/exec.go``: a command
  that cannot start is an ``InternalError`` Status (``error executing command in container:``),
  not an exit code; containerd and runc add ``failed to exec in container: failed to start exec
  …: OCI runtime exec failed: exec failed: unable to start container process: exec: "bash":
  executable file not found in $PATH: unknown``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import pytest

from meshtutor.kubeapi import shell
from meshtutor.kubeapi.shell import ExecStartError, run

T = TypeVar("T")

CurlAnswer = tuple[bytes, bytes, int]


class Out:
    """An exec output stream: collects what the container wrote."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.changed = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.data += data
        self.changed.set()

    async def wait_for(self, text: bytes) -> None:
        while text not in self.data:
            self.changed.clear()
            await self.changed.wait()

    @property
    def text(self) -> str:
        return self.data.decode()


class Keys:
    """kubectl's stdin stream: fed piece by piece, like a websocket's stdin channel."""

    def __init__(self, *chunks: bytes, close: bool = True) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.pending = b""
        self.eof = False
        for chunk in chunks:
            self.feed(chunk)
        if close:
            self.close()

    def feed(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def close(self) -> None:
        self.queue.put_nowait(b"")

    async def read(self, n: int) -> bytes:
        if not self.pending and not self.eof:
            self.pending = await self.queue.get()
            if not self.pending:
                self.eof = True
        data, self.pending = self.pending[:n], self.pending[n:]
        return data


class FakeHost:
    """A pod container: canned curl answers, real loopback sockets for connect()."""

    def __init__(
        self,
        *,
        container: str = "sleep",
        pod: str = "sleep-7c8f9d6b5-x2kqj",
        namespace: str = "foo",
        curl: CurlAnswer | Callable[[list[str], bytes], CurlAnswer] = (b"", b"", 0),
        ports: dict[tuple[str, int], int] | None = None,
        files: dict[str, bytes] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.pod = pod
        self.namespace = namespace
        self.container = container
        self._curl = curl
        self.ports = ports or {}
        self.files = files or {}
        self.env = env if env is not None else {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
        self.curl_calls: list[tuple[list[str], bytes]] = []

    def environ(self) -> dict[str, str]:
        return dict(self.env)

    def read_file(self, path: str) -> bytes | None:
        return self.files.get(path)

    async def curl(self, argv: list[str], stdin: bytes) -> tuple[bytes, bytes, int]:
        self.curl_calls.append((list(argv), stdin))
        if callable(self._curl):
            return self._curl(argv, stdin)
        return self._curl

    async def connect(
        self, host: str, port: int, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        real = self.ports.get((host, port))
        if real is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", real), timeout)


class Result:
    def __init__(self, code: int, out: Out, err: Out) -> None:
        self.code = code
        self.out = out.text
        self.err = err.text

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


def arun(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(make(), 30)

    return asyncio.run(main())


async def aexec(
    argv: Sequence[str],
    host: FakeHost | None = None,
    stdin: Keys | None = None,
    *,
    tty: bool = False,
) -> Result:
    out, err = Out(), Out()
    code = await run(list(argv), host or FakeHost(), stdin, out, err, tty=tty)
    return Result(code, out, err)


def kexec(
    argv: Sequence[str],
    host: FakeHost | None = None,
    stdin: bytes | None = None,
    *,
    tty: bool = False,
) -> Result:
    return arun(lambda: aexec(argv, host, None if stdin is None else Keys(stdin), tty=tty))


def sh(script: str, host: FakeHost | None = None, stdin: bytes | None = None) -> Result:
    return kexec(["sh", "-c", script], host, stdin)


# --- argv[0]: what the container has ---------------------------------------------------------


def test_bash_is_not_in_the_alpine_curl_image() -> None:
    """containerd + runc refuse to start it; the kubelet answers with an InternalError Status."""
    with pytest.raises(ExecStartError) as caught:
        kexec(["bash"])
    message = caught.value.message
    assert message.startswith(
        "error executing command in container: failed to exec in container: failed to start exec "
    )
    assert message.endswith(
        ': OCI runtime exec failed: exec failed: unable to start container process: exec: "bash": '
        "executable file not found in $PATH: unknown"
    )
    assert caught.value.status()["reason"] == "InternalError"
    assert caught.value.status()["code"] == 500
    assert caught.value.status()["message"].startswith("Internal error occurred: error executing")


def test_an_absolute_path_that_does_not_exist() -> None:
    with pytest.raises(ExecStartError) as caught:
        kexec(["/bin/bash", "-c", "true"])
    assert caught.value.message.endswith(
        'exec: "/bin/bash": stat /bin/bash: no such file or directory: unknown'
    )


@pytest.mark.parametrize("argv0", ["sh", "/bin/sh", "ash", "/usr/bin/curl", "curl", "env"])
def test_the_image_s_programs_start(argv0: str) -> None:
    result = kexec([argv0, "--version"] if "curl" in argv0 else [argv0, "-c", "true"])
    assert result.code == 0 or "curl" not in argv0


def test_a_command_the_shell_does_not_know_is_busybox_s_not_found() -> None:
    result = sh("nosuchcommand --flag")
    assert (result.code, result.err) == (127, "sh: nosuchcommand: not found\n")
    assert kexec(["/bin/sh", "-c", "bash"]).err == "/bin/sh: bash: not found\n"
    # POSIX: the word after -c's string is $0, and ash then names the line, counting a -c
    # string's lines from 0 (setinputstring takes LINENO, which is 0 before any command).
    assert kexec(["sh", "-c", "true\nnope", "probe"]).err == "probe: line 1: nope: not found\n"


def test_an_argument_longer_than_linux_takes() -> None:
    with pytest.raises(ExecStartError) as caught:
        kexec(["sh", "-c", ": " + "a" * (200 * 1024)])
    assert caught.value.message.endswith(
        "unable to start container process: exec /bin/sh: argument list too long: unknown"
    )


def test_the_linkerd_proxy_image_has_no_shell() -> None:
    host = FakeHost(container="linkerd-proxy")
    with pytest.raises(ExecStartError, match=r'exec: "sh": executable file not found in \$PATH'):
        kexec(["sh"], host)
    with pytest.raises(ExecStartError, match=r'exec: "id": executable file not found'):
        kexec(["id"], host)
    assert kexec(["/bin/sleep", "0"], host).code == 0  # the one program it has


# --- sh grammar ---------------------------------------------------------------------------------


def test_quotes_and_parameters() -> None:
    result = sh("""x='a  b'; echo $x "$x" '$x' \\$x ${x} "${y:-dflt}" "${#x}" a"b"'c'""")
    assert result.out == "a b a  b $x $x a b dflt 4 abc\n"


def test_status_and_lists() -> None:
    script = (
        "false; echo $?; true && echo and; false || echo or; false && echo no; ! false; echo $?"
    )
    assert sh(script).out == "1\nand\nor\n0\n"


def test_command_substitution_and_backquotes() -> None:
    assert sh("echo $(echo a   b) `echo c` \"$(printf 'x\\n\\n')\"").out == "a b c x\n"
    assert sh("echo $(echo $(echo nested))").out == "nested\n"


def test_if_for_while_and_seq() -> None:
    script = (
        "for i in $(seq 1 3); do echo n$i; done\n"
        'if [ "$i" = 3 ]; then echo three; elif true; then echo no; else echo no; fi\n'
        "n=0; while [ $n -lt 2 ]; do n=$((n + 1)); done; echo n=$n\n"
        "case $n in 1) echo one;; 2|3) echo two-or-three;; *) echo other;; esac"
    )
    assert sh(script).out == "n1\nn2\nn3\nthree\nn=2\ntwo-or-three\n"


def test_exit_status_ends_the_shell() -> None:
    result = sh("echo before; exit 3; echo after")
    assert (result.code, result.out) == (3, "before\n")
    assert sh("(exit 4); echo $?").out == "4\n"


def test_syntax_errors_are_busybox_s() -> None:
    assert sh("if true; then echo x").err == (
        'sh: syntax error: unexpected end of file (expecting "fi")\n'
    )
    assert sh("echo 'abc").err == "sh: syntax error: unterminated quoted string\n"
    result = sh("echo a; fi")
    assert (result.code, result.out, result.err) == (2, "", 'sh: syntax error: unexpected "fi"\n')
    assert sh("echo )").err == 'sh: syntax error: unexpected ")"\n'


def test_dash_and_bash_in_istio_proxy_word_errors_their_own_way() -> None:
    """proxyv2's Ubuntu base: /bin/sh is dash; checked against dash 0.5.12 and bash 5.2."""
    host = FakeHost(container="istio-proxy")
    assert kexec(["sh", "-c", "if true; then echo"], host).err == (
        'sh: 1: Syntax error: end of file unexpected (expecting "fi")\n'
    )
    assert kexec(["sh", "-c", "cd /nope"], host).err == "sh: 1: cd: can't cd to /nope\n"
    # The injected istio-proxy container has readOnlyRootFilesystem: true.
    result = kexec(["sh", "-c", "echo x > /tmp/x; echo $?"], host)
    assert (result.out, result.err) == (
        "2\n",
        "sh: 1: cannot create /tmp/x: Read-only file system\n",
    )
    assert kexec(["bash", "-c", "nope"], host).err == "bash: nope: command not found\n"
    assert kexec(["bash", "-c", "echo )"], host).err == (
        "bash: -c: line 1: syntax error near unexpected token `)'\nbash: -c: line 1: `echo )'\n"
    )
    assert kexec(["bash", "-c", "cd /nope"], host).err == (
        "bash: cd: /nope: No such file or directory\n"
    )
    interactive = kexec(["bash"], host, stdin=b"exit\r", tty=True)
    assert interactive.out == "istio-proxy@sleep-7c8f9d6b5-x2kqj:/$ exit\r\n"


def test_functions_here_documents_and_traps() -> None:
    script = (
        'greet() { echo "hi $1"; return 3; }; greet pod; echo $?\n'
        "cat <<EOF\n$HOME $((6 * 7))\nEOF\n"
        "cat <<'EOF'\n$HOME\nEOF\n"
        "trap 'echo bye' EXIT; echo $'a\\tb'"
    )
    assert sh(script).out == "hi pod\n3\n/home/curl_user 42\n$HOME\na\tb\nbye\n"


def test_redirections() -> None:
    script = (
        "echo gone >/dev/null; echo err >&2 2>/dev/null; "
        "{ echo out; echo err2 >&2; } 2>&1 | grep err2; "
        "echo saved > /tmp/f; echo more >> /tmp/f; cat /tmp/f; cat < /dev/null; "
        "nosuch 2>/dev/null; echo $?"
    )
    result = sh(script)
    assert result.out == "err2\nsaved\nmore\n127\n"
    assert result.err == "err\n"


def test_files_outside_the_writable_directories() -> None:
    result = sh("echo x > /etc/motd; echo $?; cat < /nonexistent")
    assert result.err == (
        "sh: can't create /etc/motd: Permission denied\nsh: can't open /nonexistent: no such file\n"
    )
    assert result.out == "1\n"  # busybox 1.35's ash gives 1 (dash gives 2)


def test_each_exec_has_its_own_tmp() -> None:
    sh("echo secret > /tmp/f")
    result = sh("cat /tmp/f")
    assert (result.code, result.err) == (1, "cat: can't open '/tmp/f': No such file or directory\n")


# --- commands -----------------------------------------------------------------------------------


def test_echo_printf_cat() -> None:
    assert sh("echo -n a; echo -e 'b\\tc'; printf '%s=%d\\n' x 4 y 5").out == "ab\tc\nx=4\ny=5\n"
    assert sh("printf 'line1\\nline2\\n' | cat -n").out == "     1\tline1\n     2\tline2\n"


def test_grep() -> None:
    text = "Hello world\nhello again\nbye\n"
    assert sh("grep -i hello", stdin=text.encode()).out == "Hello world\nhello again\n"
    assert sh("grep -v hello", stdin=text.encode()).out == "Hello world\nbye\n"
    assert sh("grep -c -i hello", stdin=text.encode()).out == "2\n"
    assert sh("grep -q bye && echo found", stdin=text.encode()).out == "found\n"
    assert sh("grep -E 'wor|aga'", stdin=text.encode()).out == "Hello world\nhello again\n"
    result = sh("grep nothing; echo $?", stdin=text.encode())
    assert result.out == "1\n"
    assert sh("grep x /nope").err == "grep: /nope: No such file or directory\n"
    assert sh("grep -o -E 'a|ab'", stdin=b"xab\n").out == "ab\n"  # POSIX: leftmost-longest


def test_grep_cannot_be_made_to_backtrack_forever() -> None:
    """A backtracking engine needs days for this line; the pod's grep answers at once."""
    result = sh("grep -c -E '(a*)*b'", stdin=b"a" * 5000 + b"\n")
    assert (result.code, result.out) == (1, "0\n")


def test_head_tail_wc() -> None:
    data = b"1\n2\n3\n4\n5\n"
    assert sh("head -n 2", stdin=data).out == "1\n2\n"
    assert sh("head -2", stdin=data).out == "1\n2\n"
    assert sh("tail -n 2", stdin=data).out == "4\n5\n"
    assert sh("tail -n +4", stdin=data).out == "4\n5\n"
    assert sh("wc -l", stdin=data).out == "5\n"
    assert sh("wc", stdin=data).out == "        5         5        10\n"


def test_env_printenv_hostname_id() -> None:
    host = FakeHost(env={"GREETING": "hi"})
    result = sh("env | grep -c GREETING=hi; printenv GREETING; hostname; id; whoami", host)
    assert result.out == (
        "1\nhi\nsleep-7c8f9d6b5-x2kqj\n"
        "uid=100(curl_user) gid=101(curl_group) groups=101(curl_group)\ncurl_user\n"
    )
    assert sh("printenv NOPE; echo $?").out == "1\n"
    assert sh("echo $HOME; pwd").out == "/home/curl_user\n/home/curl_user\n"


def test_istio_proxy_runs_as_1337() -> None:
    host = FakeHost(container="istio-proxy")
    assert kexec(["id"], host).out == (
        "uid=1337(istio-proxy) gid=1337(istio-proxy) groups=1337(istio-proxy)\n"
    )
    # proxyv2's debug base is Ubuntu: /bin/sh is dash, and bash exists.
    assert kexec(["bash", "-c", "echo $0"], host).out == "bash\n"
    assert kexec(["sh", "-c", "nope"], host).err == "sh: 1: nope: not found\n"


def test_test_and_brackets() -> None:
    script = (
        "[ 1 -lt 2 ] && echo lt; test -n x && echo n; [ -z '' ] && echo z; "
        "[ a != a ] || echo ne; [ -f /etc/hosts ] && echo file; [ -d /tmp ] && echo dir; "
        "[ 1 = 1 -a 2 = 2 ] && echo and"
    )
    assert sh(script).out == "lt\nn\nz\nne\nfile\ndir\nand\n"


def test_ls_shows_the_pod_s_own_files() -> None:
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    host = FakeHost(
        files={token: b"eyJ...", "/var/run/secrets/kubernetes.io/serviceaccount/namespace": b"foo"}
    )
    result = sh("ls /var/run/secrets/kubernetes.io/serviceaccount; cat ../../etc/hostname", host)
    assert result.out == "namespace\ntoken\nsleep-7c8f9d6b5-x2kqj\n"
    assert sh("ls /nope").err == "ls: /nope: No such file or directory\n"


def test_date_and_sleep() -> None:
    result = sh("date +%Y | grep -c -E '^[0-9]{4}$'; sleep 0.01 && echo slept; true; false")
    assert (result.code, result.out) == (1, "1\nslept\n")


def test_sort_uniq_tr_cut() -> None:
    data = b"b v1\na v2\nb v1\n"
    assert sh("cut -d ' ' -f 2 | sort | uniq -c", stdin=data).out == "      2 v1\n      1 v2\n"
    assert sh("tr a-z A-Z", stdin=b"abc\n").out == "ABC\n"


# --- the network: curl, wget, nc ----------------------------------------------------------------


def test_curl_goes_to_the_host_and_its_exit_code_comes_back() -> None:
    host = FakeHost(curl=(b"000", b"", 56))
    result = kexec(
        ["curl", "http://frontend:80/", "-o", "/dev/null", "-s", "-w", "%{http_code}\\n"], host
    )
    assert (result.code, result.out) == (56, "000")
    argv, stdin = host.curl_calls[0]
    assert argv[:6] == ["curl", "http://frontend:80/", "-o", "/dev/null", "-s", "-w"]
    assert stdin == b""
    assert sh('curl -s http://frontend/; echo " rc=$?"', host).out == "000 rc=56\n"


def test_curl_output_goes_through_a_pipe() -> None:
    host = FakeHost(curl=(b"hello world\nbye\n", b"", 0))
    result = sh("curl -s http://helloworld:5000/hello | grep hello", host)
    assert (result.code, result.out) == (0, "hello world\n")


def test_curl_reads_stdin_only_when_asked() -> None:
    host = FakeHost(curl=(b"ok", b"", 0))
    sh("echo '{\"a\":1}' | curl -s -d @- http://httpbin:8000/post", host)
    assert host.curl_calls[0][1] == b'{"a":1}\n'


def test_curl_cannot_reach_the_host_s_files_or_sockets() -> None:
    host = FakeHost(curl=(b"ok", b"", 0))
    result = sh("curl -s --unix-socket /var/run/docker.sock http://x/containers/json", host)
    assert result.code == 2
    assert result.err.startswith("curl: option --unix-socket: ")
    result = sh("curl -s dict://x/", host)
    assert (result.code, result.err) == (
        1,
        'curl: (1) Protocol "dict" not supported or disabled in libcurl\n',
    )
    # file:// is the pod's file, as curl in the pod reads it; never the host's.
    result = sh("curl -s file:///etc/passwd | grep -c curl_user; curl -s file:///nope", host)
    assert (result.out, result.err) == ("1\n", "curl: (37) Couldn't open file /nope\n")
    result = sh("curl -sK /etc/curlrc http://x/", host)
    assert result.code == 2
    assert host.curl_calls == []
    # File arguments are read from the pod's view, never the host's.
    sh("echo payload > /tmp/body; curl -s --data-binary @/tmp/body http://httpbin/post", host)
    argv, stdin = host.curl_calls[-1]
    assert "@/tmp/body" not in argv
    assert stdin == b"payload\n"
    result = sh("curl -s -d @/tmp/missing http://httpbin/post", host)
    assert result.err.startswith(
        'Warning: Couldn\'t read data from file "/tmp/missing", this makes an empty POST.\n'
    )
    # What the host adds last wins: no protocol but HTTP(S), whatever the URL globs to.
    assert argv[-4:] == ["--proto", "=http,https", "--proto-redir", "=http,https"]


def test_curl_output_file_lands_in_the_pod_s_tmp() -> None:
    host = FakeHost(curl=(b"<html>", b"", 0))
    assert sh("curl -s -o /tmp/page http://x/ && cat /tmp/page", host).out == "<html>"
    assert ["-o", "/tmp/page"] not in [host.curl_calls[0][0][i : i + 2] for i in range(8)]


async def _echo_server(prefix: bytes) -> tuple[asyncio.Server, int]:
    """Istio's tcp-echo sample: answers each line with the prefix and the line."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(prefix + line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nc_pipes_stdin_to_the_service_and_back() -> None:
    async def go() -> Result:
        server, port = await _echo_server(b"hello ")
        async with server:
            host = FakeHost(ports={("tcp-echo", 9000): port})
            return await aexec(["sh", "-c", 'echo "port 9000" | nc tcp-echo 9000'], host)

    result = arun(go)
    assert (result.code, result.out) == (0, "hello port 9000\n")


def test_nc_zero_io_and_verbose() -> None:
    async def go() -> tuple[Result, Result, Result]:
        server, port = await _echo_server(b"")
        async with server:
            host = FakeHost(ports={("tcp-echo", 9000): port, ("gone", 9000): _closed_port()})
            return (
                await aexec(["nc", "-z", "tcp-echo", "9000"], host),
                await aexec(["nc", "-v", "-z", "-w", "1", "tcp-echo", "9000"], host),
                await aexec(["sh", "-c", "nc -z gone 9000; echo $?; nc nowhere 1"], host),
            )

    quiet, verbose, failed = arun(go)
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")
    assert verbose.code == 0
    assert verbose.err.startswith("tcp-echo (") and verbose.err.endswith(") open\n")
    assert failed.out == "1\n"
    assert failed.err == "nc: bad address 'nowhere'\n"


def test_wget_speaks_http_itself() -> None:
    async def http_server() -> tuple[asyncio.Server, int, list[bytes]]:
        seen: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head)
            if head.startswith(b"GET /deny "):
                writer.write(
                    b"HTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\n\r\nRBAC: access denied"
                )
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nhello\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1], seen

    async def go() -> tuple[Result, Result, Result, Result, list[bytes], Result]:
        server, port, seen = await http_server()
        async with server:
            host = FakeHost(ports={("httpbin", 8000): port, ("gone", 80): _closed_port()})
            return (
                await aexec(["wget", "-qO-", "http://httpbin:8000/get"], host),
                await aexec(["wget", "-O", "-", "http://httpbin:8000/get"], host),
                await aexec(["wget", "-qO-", "http://httpbin:8000/deny"], host),
                await aexec(["wget", "-qO-", "http://gone/"], host),
                seen,
                await aexec(["sh", "-c", "wget -q http://httpbin:8000/get && cat get"], host),
            )

    quiet, loud, denied, refused, seen, saved = arun(go)
    assert saved.out == "hello\n"  # saved as the URL's last segment, in the home directory
    assert (quiet.code, quiet.out, quiet.err) == (0, "hello\n", "")
    assert seen[0].startswith(b"GET /get HTTP/1.1\r\nHost: httpbin:8000\r\nUser-Agent: Wget\r\n")
    assert loud.out == "hello\n"
    assert loud.err.startswith("Connecting to httpbin:8000 (")
    assert "writing to stdout\n" in loud.err and loud.err.endswith("written to stdout\n")
    assert (denied.code, denied.err) == (1, "wget: server returned error: HTTP/1.1 403 Forbidden\n")
    assert refused.code == 1
    assert refused.err.startswith("wget: can't connect to remote host (")
    assert refused.err.endswith("): Connection refused\n")


def test_openssl_s_client_in_istio_proxy() -> None:
    from meshtutor.pki import MeshCA, server_context

    ca = MeshCA.create("istio")
    httpbin = ca.credential("foo", "httpbin")

    async def go() -> tuple[Result, Result]:
        ctx = server_context(httpbin)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        async with server:
            port = server.sockets[0].getsockname()[1]
            host = FakeHost(container="istio-proxy", ports={("httpbin.foo", 8000): port})
            return (
                await aexec(
                    ["openssl", "s_client", "-showcerts", "-connect", "httpbin.foo:8000"],
                    host,
                    Keys(),
                ),
                await aexec(["sh", "-c", "openssl version"], FakeHost()),
            )

    result, alpine = arun(go)
    assert result.out.startswith("CONNECTED(00000003)\n")
    assert "Certificate chain\n 0 s:\n   i:O = cluster.local\n" in result.out
    # The leaf and the mesh root: the sidecar completes its chain from its trust store.
    assert " 1 s:O = cluster.local\n   i:O = cluster.local\n" in result.out
    assert result.out.count("-----BEGIN CERTIFICATE-----") == 2
    assert "Verify return code: 19 (self-signed certificate in certificate chain)\n" in result.out
    assert alpine.err == "sh: openssl: not found\n"
    assert isinstance(ssl.OPENSSL_VERSION, str)


# --- pipes stream; interactive shells ------------------------------------------------------------


def test_a_pipeline_streams_before_its_input_ends() -> None:
    async def go() -> tuple[str, int]:
        keys = Keys(close=False)
        out, err = Out(), Out()
        task = asyncio.create_task(run(["sh", "-c", "cat | grep x"], FakeHost(), keys, out, err))
        keys.feed(b"x1\ny\n")
        await out.wait_for(b"x1\n")  # before stdin is closed
        seen = out.text
        keys.feed(b"x2\n")
        keys.close()
        return seen, await task

    seen, code = arun(go)
    assert (seen, code) == ("x1\n", 0)


def test_sh_with_stdin_but_no_tty_has_no_prompt() -> None:
    result = kexec(["sh"], stdin=b"echo a\nfor i in 1 2\ndo echo $i\ndone\nexit 4\necho never\n")
    assert (result.code, result.out, result.err) == (4, "a\n1\n2\n", "")


def test_interactive_shell_with_a_tty() -> None:
    keys = b"echp\x7fo hi\rif true\rthen echo yes\rfi\rnope\rexit 5\r"
    result = kexec(["sh"], stdin=keys, tty=True)
    assert result.code == 5
    assert result.out == (
        "~ $ echp\b \bo hi\r\nhi\r\n"
        "~ $ if true\r\n> then echo yes\r\n> fi\r\nyes\r\n"
        "~ $ nope\r\nsh: nope: not found\r\n"
        "~ $ exit 5\r\n"
    )
    assert result.err == ""  # a tty merges stderr into stdout


def test_ctrl_c_interrupts_the_foreground_command_and_ctrl_d_ends_the_shell() -> None:
    async def go() -> Result:
        keys = Keys(close=False)
        out, err = Out(), Out()
        task = asyncio.create_task(run(["sh"], FakeHost(), keys, out, err, tty=True))
        keys.feed(b"sleep 1000\r")
        await out.wait_for(b"sleep 1000\r\n")
        keys.feed(b"\x03")
        await out.wait_for(b"^C\r\n~ $ ")
        keys.feed(b"echo $?\rfalse\r\x04")
        return Result(await task, out, err)

    result = arun(go)
    assert result.out.endswith("~ $ echo $?\r\n130\r\n~ $ false\r\n~ $ ")
    assert result.code == 1  # Ctrl-D: the shell ends with the last command's status


def test_ctrl_c_ends_a_program_run_with_a_tty() -> None:
    """`kubectl exec -it POD -- sleep 1000` then Ctrl-C: SIGINT, exit 130."""

    async def go() -> Result:
        keys = Keys(close=False)
        out, err = Out(), Out()
        task = asyncio.create_task(run(["sleep", "1000"], FakeHost(), keys, out, err, tty=True))
        await asyncio.sleep(0)  # let it start; no output to wait for
        keys.feed(b"\x03")
        return Result(await task, out, err)

    result = arun(go)
    assert (result.code, result.out) == (130, "^C\r\n")


# --- limits -------------------------------------------------------------------------------------


def test_an_endless_loop_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell.limits, "MAX_STEPS", 2000)
    result = sh("while true; do :; done; echo never")
    assert result.code == 2
    assert result.out == ""
    assert "2000 commands" in result.err


def test_command_substitution_output_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell.limits, "MAX_SUBSTITUTION", 1000)
    result = sh("x=$(seq 1 100000); echo never")
    assert (result.code, result.out, result.err) == (2, "", "sh: out of memory\n")


def test_variables_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell.limits, "MAX_VARIABLES", 1000)
    result = sh("x=$(seq 1 300); echo never")
    assert (result.code, result.out, result.err) == (2, "", "sh: out of memory\n")


def test_background_jobs_are_bounded() -> None:
    result = sh("for i in $(seq 1 200); do sleep 0.1 & done; wait; echo done")
    assert result.out == "done\n"
    assert "sh: can't fork: Resource temporarily unavailable\n" in result.err


def test_the_tmp_directory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell.limits, "MAX_FILE_BYTES", 100)
    result = sh("seq 1 1000 > /tmp/big; echo $?")
    assert result.out == "1\n"
    assert result.err == "seq: write error: No space left on device\n"


def test_sleep_is_cancelled_with_the_session() -> None:
    async def go() -> bool:
        task = asyncio.create_task(run(["sleep", "infinity"], FakeHost(), None, Out(), Out()))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert arun(go)


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    result = sh("(" * 500 + "true" + ")" * 500)
    assert result.code == 2
    assert result.err.startswith("sh: syntax error: ")


HOSTILE = [
    "${a:-" * 400 + "x" + "}" * 400,
    "echo $((" + "(" * 5000 + "1" + ")" * 5000 + "))",
    "[ " + "! " * 5000 + "x ]",
    "printf '%999999999s|%.999999999d' x 1 | wc -c",
    "echo $((1 << 99999)) $((2 ** 999999999)) $((-9223372036854775807 - 1))",
    "echo $(( $(( $(( $(( 1 )) )) )) ))",
    "x=$(" * 60 + "echo" + ")" * 60,
    "f() { f; }; f",
    "echo \x00\x01\x7f\xff 'unterminated",
    "cat <<EOF",
    'x=$(seq 1 40000); eval ": $x $x"',
    "`" * 3,
    "${",
    "$(",
    "case x in",
    "for",
    "exec 9>&8; echo $? >&7",
    "yes; sed; awk; python3 -c 1; apk add curl",
    "echo x > /dev/sda; cat /proc/self/environ; ls /proc; cd /root; echo $?",
    "tail -c 5 /dev/zero; head -c 3 /dev/null; seq 1 100000 | tail -n 1",
]


@pytest.mark.parametrize("script", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_scripts_end_with_a_status(script: str) -> None:
    """Whatever a learner types, the exec ends with an exit status: no exception, no hang."""
    result = sh(script)
    assert isinstance(result.code, int)
    assert 0 <= result.code <= 255
