"""The documentation scenarios, reproduced with real traffic in the sandbox.

Istio's "Mutual TLS Migration" and "Authentication Policy" tasks (namespaces foo and bar with
sidecars, legacy without), DestinationRule conflicts, AuthorizationPolicy, the Online Boutique
istio-proxy probe, a Linkerd namespace meshed by annotation + restart, and a NetworkPolicy that
lets A reach B but drops C. Every probe also checks the observation against the prediction.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from meshtutor.model import load_file, load_yaml
from meshtutor.policy import Probe
from meshtutor.sandbox.mesh import Sandbox
from meshtutor.sandbox.probe import run_probe, run_probes

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests/samples"
BOUTIQUE = ROOT / "manifests/online-boutique"
DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.skipif(
    subprocess.run(["sh", "-c", "command -v curl"], capture_output=True).returncode != 0,
    reason="curl is not installed",
)


def _task_topology() -> list[Any]:
    docs = load_file(SAMPLES / "namespaces.yaml")
    for ns in ("foo", "bar", "legacy"):
        docs += load_file(SAMPLES / "sleep.yaml", default_namespace=ns)
        docs += load_file(SAMPLES / "httpbin.yaml", default_namespace=ns)
    return docs


MATRIX = [(src, dst) for src in ("foo", "bar", "legacy") for dst in ("foo", "bar", "legacy")]


def _run(body: Callable[[Sandbox], Awaitable[None]], mesh: str = "istio") -> None:
    async def main() -> None:
        async with Sandbox(mesh) as sb:  # type: ignore[arg-type]
            await body(sb)

    asyncio.run(main())


async def _matrix(sb: Sandbox) -> dict[tuple[str, str], tuple[str, int]]:
    probes = [
        Probe(src, "sleep", f"http://httpbin.{dst}:8000/ip", timeout=2) for src, dst in MATRIX
    ]
    results = await run_probes(sb, probes)
    for r in results:
        assert r.matches_prediction, (
            r.probe.describe(),
            r.http_code,
            r.exit_code,
            r.mtls,
            r.prediction.http_code,
            r.prediction.exit_code,
        )
        assert r.prober == "curl"
    return {pair: (r.http_code, r.exit_code) for pair, r in zip(MATRIX, results, strict=True)}


def _yaml(text: str) -> list[Any]:
    return load_yaml(text, source="test.yaml")


class TestIstioTasks:
    def test_mutual_tls_migration(self) -> None:
        """Everything answers 200 until a mesh-wide STRICT policy; then only legacy's plaintext
        is reset (000, exit 56), as the task's test.sh asserts."""

        async def body(sb: Sandbox) -> None:
            await sb.apply(_task_topology())
            assert set((await _matrix(sb)).values()) == {("200", 0)}
            await sb.apply(
                _yaml("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
""")
            )
            after = await _matrix(sb)
            for (src, dst), outcome in after.items():
                expected = ("000", 56) if src == "legacy" and dst != "legacy" else ("200", 0)
                assert outcome == expected, (src, dst)

        _run(body)

    def test_namespace_workload_and_port_policies(self) -> None:
        async def body(sb: Sandbox) -> None:
            await sb.apply(_task_topology())
            await sb.apply(
                _yaml("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec: {mtls: {mode: STRICT}}
""")
            )
            m = await _matrix(sb)
            assert m[("legacy", "foo")] == ("000", 56)
            assert m[("legacy", "bar")] == ("200", 0)
            # Workload STRICT on bar/httpbin, with port 8080 (the container port) opened again.
            await sb.apply(
                _yaml("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: httpbin, namespace: bar}
spec:
  selector: {matchLabels: {app: httpbin}}
  mtls: {mode: STRICT}
""")
            )
            assert (await _matrix(sb))[("legacy", "bar")] == ("000", 56)
            await sb.apply(
                _yaml("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: httpbin, namespace: bar}
spec:
  selector: {matchLabels: {app: httpbin}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
""")
            )
            m = await _matrix(sb)
            assert m[("legacy", "bar")] == ("200", 0)
            assert m[("foo", "bar")] == ("200", 0)  # auto mTLS honours DISABLE: plaintext

        _run(body)

    def test_destination_rule_conflicts_give_503(self) -> None:
        async def body(sb: Sandbox) -> None:
            await sb.apply(_task_topology())
            await sb.apply(
                _yaml("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: bar}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bad-rule, namespace: foo}
spec:
  host: httpbin.bar.svc.cluster.local
  trafficPolicy: {tls: {mode: DISABLE}}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: to-legacy, namespace: foo}
spec:
  host: httpbin.legacy.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
""")
            )
            plain, to_legacy = await run_probes(
                sb,
                [
                    Probe("foo", "sleep", "http://httpbin.bar:8000/ip"),
                    Probe("foo", "sleep", "http://httpbin.legacy:8000/ip"),
                ],
            )
            for r in (plain, to_legacy):
                assert (r.http_code, r.exit_code) == ("503", 0)
                assert r.body.startswith(
                    "upstream connect error or disconnect/reset before headers."
                )
                assert r.matches_prediction
            assert "DestinationRule foo/bad-rule" in "\n".join(plain.prediction.explanation_lines)

        _run(body)

    def test_authorization_policy_403(self) -> None:
        async def body(sb: Sandbox) -> None:
            await sb.apply(_task_topology())
            await sb.apply(
                _yaml("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-foo-sleep-get, namespace: bar}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/foo/sa/sleep"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/ip", "/headers"]}}]
""")
            )
            ok, post, legacy = await run_probes(
                sb,
                [
                    Probe("foo", "sleep", "http://httpbin.bar:8000/headers"),
                    Probe("foo", "sleep", "http://httpbin.bar:8000/anything", method="POST"),
                    Probe("legacy", "sleep", "http://httpbin.bar:8000/ip"),
                ],
            )
            assert (ok.http_code, ok.mtls) == ("200", True)
            # httpbin echoes the XFCC header the server sidecar added: the caller's identity.
            headers = json.loads(ok.body)["headers"]
            assert (
                "URI=spiffe://cluster.local/ns/foo/sa/sleep"
                in headers["X-Forwarded-Client-Cert"][0]
            )
            for denied in (post, legacy):
                assert (denied.http_code, denied.exit_code, denied.body) == (
                    "403",
                    0,
                    "RBAC: access denied",
                )
                assert denied.matches_prediction

        _run(body)


class TestOnlineBoutique:
    def test_istio_proxy_probe_through_the_cli(self, tmp_path: Path) -> None:
        def probe(*files: Path) -> dict[str, Any]:
            args = [sys.executable, "-m", "meshtutor", "sandbox", "probe", "--json"]
            for f in files:
                args += ["-f", str(f)]
            args.append("demo/productcatalogservice:istio-proxy=http://frontend:80/")
            out = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
            assert out.returncode == 0, out.stderr
            (result,) = json.loads(out.stdout)
            return result

        before = probe(BOUTIQUE / "demo.yaml")
        assert (before["http_code"], before["exit_code"], before["prober"]) == ("200", 0, "curl")
        after = probe(BOUTIQUE / "demo.yaml", BOUTIQUE / "strict-namespace.yaml")
        assert (after["http_code"], after["exit_code"]) == ("000", 56)
        assert after["stderr"] == "curl: (56) Recv failure: Connection reset by peer"
        for result in (before, after):
            assert result["matches_prediction"] is True
            assert result["predicted_http_code"] == result["http_code"]
            assert result["predicted_exit_code"] == result["exit_code"]


class TestLinkerd:
    def test_inject_namespace_then_restart(self) -> None:
        async def body(sb: Sandbox) -> None:
            await sb.apply(load_file(DATA / "linkerd-emojivoto.yaml"))
            probe = Probe("emojivoto", "web", "http://voting-svc:8080/anything")
            before = await run_probe(sb, probe)
            assert (before.http_code, before.mtls) == ("200", False)
            # Annotating the namespace changes nothing for running pods...
            await sb.apply(
                _yaml("""
apiVersion: v1
kind: Namespace
metadata:
  name: emojivoto
  annotations: {linkerd.io/inject: enabled}
""")
            )
            still = await run_probe(sb, probe)
            assert (still.http_code, still.mtls) == ("200", False)
            # ...until they are restarted, as the injector only sees new pods.
            await sb.restart("emojivoto", "web")
            await sb.restart("emojivoto", "voting")
            after = await run_probe(sb, probe)
            assert (after.http_code, after.mtls) == ("200", True)
            assert (
                after.client_identity
                == "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
            )
            assert (
                after.server_identity
                == "voting.emojivoto.serviceaccount.identity.linkerd.cluster.local"
            )
            headers = json.loads(after.body)["headers"]
            assert headers["L5d-Client-Id"] == [after.client_identity]
            for r in (before, still, after):
                assert r.matches_prediction

        _run(body, mesh="linkerd")

    def test_server_and_authorization_policy(self) -> None:
        async def body(sb: Sandbox) -> None:
            docs = load_file(DATA / "linkerd-emojivoto.yaml")
            await sb.apply(docs)
            await sb.apply(
                _yaml("""
apiVersion: v1
kind: Namespace
metadata:
  name: emojivoto
  annotations: {linkerd.io/inject: enabled}
""")
            )
            for name in ("web", "voting", "vote-bot"):
                await sb.restart("emojivoto", name)
            await sb.apply(
                _yaml("""
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: voting-grpc, namespace: emojivoto}
spec:
  podSelector: {matchLabels: {app: voting-svc}}
  port: grpc
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: voting-from-web, namespace: emojivoto}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: voting-grpc}
  requiredAuthenticationRefs:
  - {kind: ServiceAccount, name: web}
""")
            )
            web, bot = await run_probes(
                sb,
                [
                    Probe("emojivoto", "web", "http://voting-svc:8080/anything"),
                    Probe("emojivoto", "vote-bot", "http://voting-svc:8080/anything"),
                ],
            )
            assert (web.http_code, web.mtls) == ("200", True)
            assert (bot.http_code, bot.exit_code, bot.mtls) == ("403", 0, True)
            assert web.matches_prediction and bot.matches_prediction

        _run(body, mesh="linkerd")


class TestNetworkPolicy:
    def test_a_reaches_b_but_c_times_out(self) -> None:
        async def body(sb: Sandbox) -> None:
            await sb.apply(load_file(DATA / "netpol-abc.yaml"))
            a, c = await run_probes(
                sb,
                [
                    Probe("np", "a", "http://b:8000/ip", timeout=1),
                    Probe("np", "c", "http://b:8000/ip", timeout=1),
                ],
            )
            assert (a.http_code, a.exit_code) == ("200", 0)
            assert json.loads(a.body)["origin"] == sb.cluster.pod_for("np", "a").ip  # type: ignore[union-attr]
            assert (c.http_code, c.exit_code) == ("000", 28)
            assert "timed out" in c.stderr
            assert a.matches_prediction and c.matches_prediction
            assert "NetworkPolicy np/b-from-a" in "\n".join(c.prediction.explanation_lines)

        _run(body)


class TestClock:
    def test_rotation_and_an_expired_root(self) -> None:
        from datetime import timedelta

        from meshtutor.pki import ManualClock

        async def main() -> None:
            async with Sandbox("istio", clock=ManualClock()) as sb:
                await sb.apply(load_file(BOUTIQUE / "demo.yaml"))
                probe = Probe("demo", "productcatalogservice", "http://frontend:80/")
                assert (await run_probe(sb, probe)).mtls
                # Istio renews at half of a 24 h lifetime: two pods, one rotation each.
                assert sb.advance_clock(timedelta(hours=13)) == 2
                assert (await run_probe(sb, probe)).http_code == "200"
                # Past the root's 10 years nothing can be trusted any more.
                sb.advance_clock(timedelta(days=3700))
                broken = await run_probe(sb, probe)
                assert (broken.http_code, broken.mtls) == ("503", False)
                assert broken.matches_prediction
                assert "expired" in (broken.handshake_error or "")
                assert any(
                    "cannot be trusted" in line and "expired" in line
                    for line in broken.prediction.explanation_lines
                )

        asyncio.run(main())


class TestSafety:
    def _listening(self) -> set[tuple[str, int]]:
        out = Path("/proc/net/tcp").read_text().splitlines()[1:]
        found = set()
        for line in out:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "0A":  # LISTEN
                continue
            host_hex, port_hex = local.split(":")
            host = socket.inet_ntoa(bytes.fromhex(host_hex)[::-1])
            found.add((host, int(port_hex, 16)))
        return found

    @pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
    def test_listeners_are_loopback_only_and_gone_after_stop(self) -> None:
        before = self._listening()
        during: set[tuple[str, int]] = set()

        async def main() -> None:
            nonlocal during
            async with Sandbox("istio") as sb:
                await sb.apply(_task_topology())
                await _matrix(sb)  # creates the pod-port listeners too
                during = self._listening() - before

        asyncio.run(main())
        assert len(during) >= 10
        assert all(host.startswith("127.") for host, _ in during), during
        after = self._listening()
        assert not (after & during), after & during


class TestBadInput:
    @pytest.mark.parametrize(
        "probe, message",
        [
            ("demo/nope=http://frontend/", "no workload demo/nope"),
            ("demo/frontend=http//frontend", "is not a URL"),
        ],
    )
    def test_one_line_error_and_exit_2(self, probe: str, message: str) -> None:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "meshtutor",
                "sandbox",
                "probe",
                "-f",
                str(BOUTIQUE / "demo.yaml"),
                probe,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert out.returncode == 2
        assert "Traceback" not in out.stderr
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0]

    def test_manifest_error(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 0}]\n"
        )
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "meshtutor",
                "sandbox",
                "probe",
                "-f",
                str(bad),
                "default/x=http://x/",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert f"{bad}:5, document 1, field spec.ports[0].port" in out.stderr


class TestProbers:
    def test_builtin_prober_without_curl_has_the_same_outcomes(self) -> None:
        async def body(sb: Sandbox) -> None:
            await sb.apply(_task_topology())
            await sb.apply(
                _yaml("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec: {mtls: {mode: STRICT}}
""")
            )
            probes = [
                Probe("bar", "sleep", "http://httpbin.foo:8000/ip"),
                Probe("legacy", "sleep", "http://httpbin.foo:8000/ip"),
                Probe("legacy", "sleep", "http://httpbin.bar:8000/status/418"),
                Probe("legacy", "sleep", "http://nosuch.bar:8000/"),
            ]
            for probe in probes:
                builtin = await run_probe(sb, probe, use_curl=False)
                real = await run_probe(sb, probe)
                assert builtin.prober == "builtin" and real.prober == "curl"
                assert (builtin.http_code, builtin.exit_code, builtin.mtls) == (
                    real.http_code,
                    real.exit_code,
                    real.mtls,
                ), probe.describe()
                assert builtin.matches_prediction

        _run(body)

    def test_keylog_file_for_wireshark(self, tmp_path: Path) -> None:
        keylog = tmp_path / "keys.log"
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "meshtutor",
                "sandbox",
                "probe",
                "--keylog",
                str(keylog),
                "-f",
                str(BOUTIQUE / "demo.yaml"),
                "demo/productcatalogservice=http://frontend:80/",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr
        lines = keylog.read_text().splitlines()
        assert any(line.startswith("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") for line in lines)
        assert any(line.startswith("SERVER_TRAFFIC_SECRET_0 ") for line in lines)
        assert keylog.stat().st_mode & 0o777 == 0o600


class TestExpiredCA:
    def test_pods_started_after_the_root_expired_fail_mtls_with_a_reason(self) -> None:
        from datetime import timedelta

        from meshtutor.pki import ManualClock

        async def main() -> None:
            async with Sandbox("istio", clock=ManualClock()) as sb:
                await sb.apply(load_file(BOUTIQUE / "demo.yaml"))
                sb.advance_clock(timedelta(days=3700))
                await sb.restart("demo", "frontend")  # no certificate can be issued now
                probe = Probe("demo", "productcatalogservice", "http://frontend:80/")
                result = await run_probe(sb, probe)
                assert (result.http_code, result.mtls) == ("503", False)
                assert result.matches_prediction
                assert any(
                    "cannot be trusted" in line or "certificate" in line
                    for line in result.prediction.explanation_lines
                )

        asyncio.run(main())
