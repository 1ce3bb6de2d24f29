"""Commands in a sandbox pod's container: the real curl, routed as the container's traffic
flows, on a real sandbox (Istio's "Mutual TLS Migration" namespaces: foo with sidecars and a
namespace-wide STRICT PeerAuthentication, legacy without sidecars).

What a learner sees must be what the same ``kubectl exec`` prints on a cluster: ``200`` from
the sleep container in foo (its sidecar speaks mTLS), ``000`` / exit 56 from legacy's sleep
(plaintext reset by the STRICT server) and from foo's ``istio-proxy`` container, whose uid
1337 Istio never redirects (GoogleCloudPlatform/istio-samples security-intro/README.md:
``kubectl exec ... -c istio-proxy -- curl http://frontend:80/ -o /dev/null -s -w
'%{http_code}'`` gives ``000`` and "command terminated with exit code 56" under STRICT;
istio/istio tools/istio-iptables/pkg/capture/run.go, the ``--uid-owner 1337 -j RETURN`` rule).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from meshtutor.model import load_file, load_yaml
from meshtutor.policy import Probe
from meshtutor.sandbox import podexec
from meshtutor.sandbox.mesh import Sandbox
from meshtutor.sandbox.podexec import SandboxPodHost
from meshtutor.sandbox.probe import run_probe

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests/samples"
DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

STRICT_FOO = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec: {mtls: {mode: STRICT}}
"""
CODE = ["-s", "-o", "/dev/null", "-w", "%{http_code}\n"]


def _run(body: Callable[[Sandbox], Awaitable[None]], mesh: str = "istio") -> None:
    async def main() -> None:
        async with Sandbox(mesh) as sb:  # type: ignore[arg-type]
            if mesh == "istio":
                docs = load_file(SAMPLES / "namespaces.yaml")
                for ns in ("foo", "legacy"):
                    docs += load_file(SAMPLES / "sleep.yaml", default_namespace=ns)
                    docs += load_file(SAMPLES / "httpbin.yaml", default_namespace=ns)
                await sb.apply(docs)
                await sb.apply(load_yaml(STRICT_FOO, source="strict.yaml"))
            await body(sb)

    asyncio.run(main())


def _host(sb: Sandbox, ns: str, deployment: str, container: str | None = None) -> SandboxPodHost:
    pod = sb.cluster.pod_for(ns, deployment)
    assert pod is not None
    return SandboxPodHost(sb, pod, container or pod.default_container, f"{deployment}-7d9f8c-x2kqz")


async def _curl(host: SandboxPodHost, *args: str, stdin: bytes = b"") -> tuple[str, str, int]:
    out, err, code = await host.curl(["curl", *args], stdin)
    return out.decode(), err.decode(), code


class TestRouting:
    def test_the_tutorial_matrix(self) -> None:
        async def body(sb: Sandbox) -> None:
            url = "http://httpbin.foo:8000/ip"
            cases = {
                ("foo", "sleep", None): ("200\n", 0),  # captured: its sidecar speaks mTLS
                ("legacy", "sleep", None): ("000\n", 56),  # no sidecar: plaintext, reset
                ("foo", "sleep", "istio-proxy"): ("000\n", 56),  # uid 1337 bypasses it
            }
            for (ns, deployment, container), expected in cases.items():
                out, err, code = await _curl(_host(sb, ns, deployment, container), *CODE, url)
                assert (out, code) == expected, (ns, container, err)
                assert err == ""  # -s: curl prints nothing else, as kubectl exec shows

        _run(body)

    def test_short_name_and_fqdn_resolve_in_the_pods_namespace(self) -> None:
        async def body(sb: Sandbox) -> None:
            legacy = _host(sb, "legacy", "sleep")
            for url in (
                "http://httpbin:8000/ip",
                "httpbin.legacy:8000/ip",  # no scheme: curl's http
                "http://httpbin.legacy.svc.cluster.local:8000/ip",
            ):
                out, err, code = await _curl(legacy, "-sS", url)
                assert code == 0, (url, err)
                assert json.loads(out)["origin"] == legacy.state.ip  # the pod's own address

        _run(body)

    def test_unknown_host_is_curls_exit_6(self) -> None:
        async def body(sb: Sandbox) -> None:
            for ns in ("foo", "legacy"):  # captured or not, the pod's DNS answers first
                out, err, code = await _curl(_host(sb, ns, "sleep"), "-sS", "http://nosuch:8000/")
                assert (out, err, code) == ("", "curl: (6) Could not resolve host: nosuch\n", 6)
            # httpbin.foo is a name in foo, not in legacy's search path as a short name.
            out, err, code = await _curl(_host(sb, "foo", "sleep"), "-sS", "http://legacy/")
            assert code == 6

        _run(body)

    def test_several_urls_and_next(self) -> None:
        async def body(sb: Sandbox) -> None:
            legacy = _host(sb, "legacy", "sleep")
            out, _, code = await _curl(
                legacy, "-s", "-o", "/dev/null", "-w", "%{http_code} ",
                "http://httpbin:8000/status/418", "http://httpbin.foo:8000/ip",
                "--next", "-s", "-w", "%{http_code}\n", "-o", "/dev/null", "http://nosuch/",
            )  # fmt: skip
            assert out == "418 000 000\n"
            assert code == 6  # curl exits with the last transfer's error

        _run(body)

    def test_pod_address(self) -> None:
        """A pod IP reaches that pod, as predict() has it (an unknown name before the shared
        routing rule: curl said "Could not resolve host")."""

        async def body(sb: Sandbox) -> None:
            target = sb.cluster.pod_for("legacy", "httpbin")
            assert target is not None
            out, err, code = await _curl(
                _host(sb, "legacy", "sleep"), "-sS", f"http://{target.ip}:8080/ip"
            )
            assert code == 0, err
            assert json.loads(out)["origin"] == sb.cluster.pod_for("legacy", "sleep").ip  # type: ignore[union-attr]
            probe = Probe("legacy", "sleep", f"http://{target.ip}:8080/ip", timeout=2)
            result = await run_probe(sb, probe)
            assert (result.http_code, result.exit_code) == ("200", 0), result.stderr
            assert result.matches_prediction

        _run(body)

    def test_localhost_is_the_pods_own_loopback(self) -> None:
        async def body(sb: Sandbox) -> None:
            httpbin = _host(sb, "foo", "httpbin")
            out, err, code = await _curl(httpbin, "-sS", "http://localhost:8080/ip")
            assert code == 0, err
            assert json.loads(out)["origin"] == httpbin.state.ip
            _, err, code = await _curl(_host(sb, "foo", "sleep"), "-sS", "localhost:8080/")
            assert code == 7
            assert err.startswith("curl: (7) Failed to connect to localhost port 8080")

        _run(body)

    def test_globs_land_on_cluster_names_and_never_on_this_machine(self) -> None:
        """URLs meshtutor cannot read ahead (curl's globs; where a redirect goes) still
        resolve as in the pod: cluster names through the cluster, localhost to the pod's own
        ports, anything else nowhere. A listener on this machine's loopback sees nothing."""

        async def body(sb: Sandbox) -> None:
            connections: list[object] = []

            async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                connections.append(writer.get_extra_info("peername"))
                writer.close()

            server = await asyncio.start_server(record, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                legacy = _host(sb, "legacy", "sleep")
                out, _, code = await _curl(
                    legacy, "-s", "-w", " %{http_code}\n", "http://{httpbin,nosuch}:8000/ip"
                )
                assert '"origin"' in out and out.endswith(" 200\n 000\n"), out
                assert code == 6
                for host in (legacy, _host(sb, "foo", "sleep"), _host(sb, "foo", "httpbin")):
                    _, _, code = await _curl(
                        host, "-s", "--max-time", "2", f"http://{{localhost,127.0.0.1}}:{port}/"
                    )
                    assert code == 7, host.state.display  # the pod's own loopback refuses
                    _, _, code = await _curl(host, "-s", "--max-time", "1", f"127.0.0.1:{port}")
                    assert code == 7
            finally:
                server.close()
                await server.wait_closed()
            assert connections == []

        _run(body)


class TestRefused:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["-x", "http://10.0.0.1:3128"], "option -x: a pod's connections go where"),
            (["--proxy", "http://10.0.0.1:3128"], "option --proxy: a pod's connections go"),
            (["--socks5", "127.0.0.1:1080"], "option --socks5: a pod's connections go"),
            (["--interface", "lo"], "option --interface: a pod's connections go"),
            (["--unix-socket", "/var/run/docker.sock"], "option --unix-socket: a pod's"),
            (["--connect-to", "::127.0.0.1:22"], "option --connect-to: a pod's connections"),
            (["--resolve", "httpbin:8000:127.0.0.1"], "option --resolve: a pod's connections"),
            (["-o", "/tmp/out"], "option -o: a pod's files are not on this machine"),
            (["-so/tmp/out"], "option -o: a pod's files are not on this machine"),
            (["-O"], "option -O: a pod's files are not on this machine"),
            (["-D", "headers.txt"], "option -D: a pod's files are not on this machine"),
            (["-c", "jar"], "option -c: a pod's files are not on this machine"),
            (["-K", "/etc/passwd"], "option -K: the sandbox runs curl with the arguments"),
            (["--prox", "http://a"], "option --prox: is unknown"),  # curl 7 took it for --proxy
            (["-W"], "option -W: is unknown"),
        ],
    )
    def test_option(self, args: list[str], message: str) -> None:
        async def body(sb: Sandbox) -> None:
            out, err, code = await _curl(_host(sb, "legacy", "sleep"), *args, "http://httpbin/")
            assert (out, code) == ("", 2)
            first, second = err.splitlines()
            assert first.startswith(f"curl: {message}")
            assert second == "curl: try 'curl --help' or 'curl --manual' for more information"

        _run(body)

    def test_allowed_outputs_and_file_urls(self) -> None:
        async def body(sb: Sandbox) -> None:
            legacy = _host(sb, "legacy", "sleep")
            out, _, code = await _curl(legacy, "-s", "-o", "/dev/null", "-D", "-", "httpbin:8000/")
            assert code == 0 and out.startswith("HTTP/1.1 200")
            out, err, code = await _curl(legacy, "-sS", "file:///etc/passwd")
            assert (out, code) == ("", 1)
            assert 'Protocol "file" not supported or disabled' in err

        _run(body)

    def test_files_come_from_the_pod(self) -> None:
        """``-d @FILE`` sends the pod's file; the learner's /etc/passwd is not in a pod."""

        async def body(sb: Sandbox) -> None:
            legacy = _host(sb, "legacy", "sleep")
            out, err, code = await _curl(
                legacy, "-sS", "-d", "@/etc/hostname", "http://httpbin:8000/post"
            )
            assert code == 0, err
            assert json.loads(out)["form"] == {"sleep-7d9f8c-x2kqz": [""]}
            out, err, code = await _curl(
                legacy, "-sS", "-T", "/etc/passwd", "http://httpbin:8000/put"
            )
            assert code == 26  # curl: "Failed to open/read local data from file/application"
            assert "/etc/passwd" in err and "meshtutor-pod-" not in err

        _run(body)


class TestPodView:
    def test_files_and_environment(self) -> None:
        async def body(sb: Sandbox) -> None:
            sleep = _host(sb, "foo", "sleep")
            assert sleep.read_file("/etc/hostname") == b"sleep-7d9f8c-x2kqz\n"
            assert sleep.read_file("/etc/resolv.conf") == (
                b"search foo.svc.cluster.local svc.cluster.local cluster.local\n"
                b"nameserver 10.96.0.10\noptions ndots:5\n"
            )
            hosts = sleep.read_file("/etc/../etc/hosts")
            assert hosts is not None
            assert hosts.startswith(b"# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
            assert hosts.endswith(f"{sleep.state.ip}\tsleep-7d9f8c-x2kqz\n".encode())
            env = sleep.environ()
            assert env["HOSTNAME"] == "sleep-7d9f8c-x2kqz"
            assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
            assert sleep.read_file("/var/run/secrets/istio/root-cert.pem") is None
            proxy = _host(sb, "foo", "sleep", "istio-proxy")
            assert proxy.read_file("/var/run/secrets/istio/root-cert.pem") == sb.ca.root_pem
            assert proxy.environ()["INSTANCE_IP"] == sleep.state.ip
            assert proxy.read_file("/etc/istio/pod/labels") == (
                b'app="sleep"\nsecurity.istio.io/tlsMode="istio"\n'
            )
            assert proxy.read_file("/etc/passwd") is None

        _run(body)

    def test_linkerd_proxy_identity_files(self) -> None:
        from cryptography.hazmat.primitives import serialization

        async def body(sb: Sandbox) -> None:
            await sb.apply(load_file(DATA / "linkerd-emojivoto.yaml"))
            await sb.apply(
                load_yaml(
                    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: emojivoto\n"
                    "  annotations: {linkerd.io/inject: enabled}\n",
                    source="ns.yaml",
                )
            )
            await sb.restart("emojivoto", "web")
            proxy = _host(sb, "emojivoto", "web", "linkerd-proxy")
            folder = proxy.environ()["LINKERD2_PROXY_IDENTITY_DIR"]
            assert folder == "/var/run/linkerd/identity/end-entity"
            key = proxy.read_file(f"{folder}/key.p8")
            assert key is not None
            loaded = serialization.load_der_private_key(key, password=None)
            credential = sb.runtime(proxy.state).credential
            assert loaded.public_key() == credential.current.private_key.public_key()
            assert proxy.environ()["LINKERD2_PROXY_IDENTITY_LOCAL_NAME"] == (
                "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
            )

        _run(body, mesh="linkerd")


class TestConnect:
    def test_through_the_sidecar_or_straight(self) -> None:
        """nc's view: the captured container's bytes cross its sidecar's mTLS and reach the
        STRICT server; legacy's plaintext is reset by the server's sidecar."""

        async def body(sb: Sandbox) -> None:
            request = b"GET /ip HTTP/1.0\r\nHost: httpbin.foo\r\n\r\n"
            reader, writer = await _host(sb, "foo", "sleep").connect("httpbin.foo", 8000, 5)
            writer.write(request)
            assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200 OK")
            writer.close()
            reader, writer = await _host(sb, "legacy", "sleep").connect("httpbin.foo", 8000, 5)
            writer.write(request)
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 10)
            writer.close()
            with pytest.raises(socket.gaierror):
                await _host(sb, "legacy", "sleep").connect("nosuch", 80, 5)

        _run(body)

    def test_networkpolicy_drop_never_connects(self) -> None:
        async def body(sb: Sandbox) -> None:
            await sb.apply(load_file(DATA / "netpol-abc.yaml"))
            _, writer = await _host(sb, "np", "a").connect("b", 8000, 5)
            writer.close()
            with pytest.raises(TimeoutError):
                await _host(sb, "np", "c").connect("b", 8000, 0.2)

        _run(body)


class TestProcess:
    def test_no_curl_on_the_machine(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        async def body(sb: Sandbox) -> None:
            monkeypatch.setenv("PATH", str(tmp_path))
            out, err, code = await _curl(_host(sb, "legacy", "sleep"), "http://httpbin/")
            assert (out, code) == ("", 127)
            assert err.startswith("curl: not found on this machine")
            assert "install curl" in err

        _run(body)

    def test_output_is_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(podexec, "MAX_CURL_OUTPUT", 10)

        async def body(sb: Sandbox) -> None:
            out, err, code = await _curl(_host(sb, "legacy", "sleep"), "-s", "httpbin:8000/ip")
            assert (len(out), code) == (10, 23)
            assert err == "curl: (23) Failure writing output to destination\n"

        _run(body)

    def test_cancelling_stops_curl(self) -> None:
        """A hanging curl (a dropped connection, no --max-time) ends with the exec."""

        async def body(sb: Sandbox) -> None:
            await sb.apply(load_file(DATA / "netpol-abc.yaml"))
            task = asyncio.create_task(_curl(_host(sb, "np", "c"), "-s", "http://b:8000/"))
            for _ in range(100):
                if _curl_children():
                    break
                await asyncio.sleep(0.05)
            assert _curl_children()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert _curl_children() == []

        _run(body)


def _curl_children() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields: list[Any] = stat[stat.rindex(")") + 2 :].split()
        if name == "curl" and int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.append(int(entry))
    return found
