"""``kubectl logs`` in the sandbox: what each container's log shows after real curl probes.

Sources of the formats checked here:

- Istio's access log: the TEXT format istiod installs when ``meshConfig.accessLogFile`` is set
  (``EnvoyTextLogFormat``, istio/istio ``pilot/pkg/model/telemetry_logging.go``) and the
  example lines of the Istio docs task "Envoy Access Logs" (istio.io ``content/en/docs/tasks/
  observability/logs/access-log/index.md``): ``"GET /status/418 HTTP/1.1" 418 - via_upstream
  - "-" 0 135 4 4 ... outbound|8000||httpbin.foo.svc.cluster.local`` in sleep's proxy and the
  same request id with ``inbound|...||`` in httpbin's.
- Envoy's details: ``rbac_access_denied_matched_policy[<policy>|none]`` (envoy
  ``source/extensions/filters/common/rbac/utility.cc``, ``responseDetail``), policy names
  ``ns[NS]-policy[NAME]-rule[N]`` (istio ``pilot/pkg/security/authz/builder``),
  ``upstream_reset_before_response_started{<reason>[,<transport failure>]}`` and the reset
  reason -> flag table (envoy ``source/common/router/router.cc``), ``NR
  filter_chain_not_found`` for plaintext at a STRICT listener, ``UH no_healthy_upstream``;
  retries of connect failures (``URX``) from Istio's default retry policy (istio
  ``pilot/pkg/networking/core/route/retry/retry.go``).
- linkerd-proxy: start-up lines (linkerd2-proxy ``linkerd2-proxy/src/main.rs``), "Request
  denied" (``linkerd/app/inbound/src/policy/http.rs``), the Apache-style access log only with
  ``config.linkerd.io/access-log`` (linkerd website ``features/access-logging.md``,
  ``linkerd/tracing/src/access_log.rs``).
- go-httpbin v2.15.0: ``msg="go-httpbin listening on http://0.0.0.0:8080"`` and one line per
  request (``httpbin/cmd/cmd.go``, ``httpbin/middleware.go`` StdLogObserver).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from meshtutor.errors import ClusterStateError
from meshtutor.model import load_file, load_yaml
from meshtutor.policy import Probe
from meshtutor.policy.cluster import PodState
from meshtutor.sandbox.mesh import Sandbox
from meshtutor.sandbox.podlog import MAX_LINE_CHARS, MAX_LINES, ContainerLog
from meshtutor.sandbox.probe import run_probes

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests/samples"

pytestmark = pytest.mark.skipif(
    subprocess.run(["sh", "-c", "command -v curl"], capture_output=True).returncode != 0,
    reason="curl is not installed",
)

# One access log line of Istio's default TEXT format, the fields this file checks named.
ENVOY_LINE = re.compile(
    r'^\[(?P<start>\S+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" '
    r"(?P<code>\d+) (?P<flags>\S+) (?P<details>\S+) (?P<termination>\S+) "
    r'"(?P<transport>[^"]*)" (?P<received>\d+) (?P<sent>\d+) (?P<duration>\d+) (?P<service>\S+) '
    r'"(?P<xff>[^"]*)" "(?P<agent>[^"]*)" "(?P<request_id>[^"]*)" "(?P<authority>[^"]*)" '
    r'"(?P<upstream_host>[^"]*)" (?P<cluster>\S+) (?P<upstream_local>\S+) '
    r"(?P<downstream_local>\S+) (?P<downstream_remote>\S+) (?P<sni>\S+) (?P<route>\S+)$"
)


def _run(body: Callable[[Sandbox], Awaitable[None]], mesh: str = "istio") -> None:
    async def main() -> None:
        async with Sandbox(mesh) as sb:  # type: ignore[arg-type]
            await body(sb)

    asyncio.run(main())


async def _topology(sb: Sandbox, *namespaces: str) -> None:
    docs = load_file(SAMPLES / "namespaces.yaml")
    for ns in namespaces:
        docs += load_file(SAMPLES / "sleep.yaml", default_namespace=ns)
        docs += load_file(SAMPLES / "httpbin.yaml", default_namespace=ns)
    await sb.apply(docs)


def _pod(sb: Sandbox, namespace: str, deployment: str) -> PodState:
    return next(p for p in sb.cluster.pods(namespace) if p.deployment == deployment)


def _access(sb: Sandbox, namespace: str, deployment: str) -> list[dict[str, Any]]:
    """The access log lines of the pod's istio-proxy, parsed (start-up lines skipped)."""
    text = sb.pod_log(_pod(sb, namespace, deployment), "istio-proxy")
    found = []
    for line in text.splitlines():
        match = ENVOY_LINE.match(line)
        if match:
            found.append(match.groupdict())
    return found


def _yaml(text: str) -> list[Any]:
    return load_yaml(text, source="test.yaml")


class TestIstioAccessLog:
    def test_a_200_shows_one_outbound_line_at_the_client_and_one_inbound_at_the_server(
        self,
    ) -> None:
        """The docs task's pair of lines: sleep's proxy logs the request to
        ``outbound|8000||httpbin.foo.svc.cluster.local``, httpbin's to its inbound cluster,
        both with code, ``-`` flags, ``via_upstream`` and the same x-request-id; httpbin's own
        container logs the request it served (go-httpbin's StdLogObserver)."""

        async def body(sb: Sandbox) -> None:
            await _topology(sb, "foo")
            [result] = await run_probes(sb, [Probe("foo", "sleep", "http://httpbin.foo:8000/ip")])
            assert result.http_code == "200"
            [client] = _access(sb, "foo", "sleep")
            [server] = _access(sb, "foo", "httpbin")
            for line in (client, server):
                assert (line["method"], line["path"], line["protocol"]) == (
                    "GET",
                    "/ip",
                    "HTTP/1.1",
                )
                assert (line["code"], line["flags"], line["details"]) == (
                    "200",
                    "-",
                    "via_upstream",
                )
                assert line["authority"] == "httpbin.foo:8000"
                assert line["agent"].startswith("curl/")
                assert line["route"] == "default"
            httpbin = _pod(sb, "foo", "httpbin")
            assert client["cluster"] == "outbound|8000||httpbin.foo.svc.cluster.local"
            assert client["upstream_host"] == f"{httpbin.ip}:8080"
            assert server["cluster"] == "inbound|8080||"
            assert server["downstream_local"] == f"{httpbin.ip}:8080"
            assert server["sni"] == "outbound_.8000_._.httpbin.foo.svc.cluster.local"
            assert client["request_id"] == server["request_id"] != "-"
            # The client proxy's upstream connection is the server proxy's downstream one.
            assert client["upstream_local"] == server["downstream_remote"]
            assert int(client["sent"]) == int(server["sent"]) > 0

            app = sb.pod_log(httpbin, "httpbin").splitlines()
            assert app[0].endswith('msg="go-httpbin listening on http://0.0.0.0:8080"')
            assert len(app) == 2
            assert 'level=INFO msg="200 GET /ip ' in app[1]
            assert "status=200 method=GET uri=/ip" in app[1]
            # The sleep container runs `sleep`: it prints nothing.
            assert sb.pod_log(_pod(sb, "foo", "sleep"), "sleep") == ""

        _run(body)

    def test_strict_refuses_plaintext_with_nr_filter_chain_not_found(self) -> None:
        """Plaintext from a pod without sidecar into a STRICT listener: curl gets a reset
        (56) and the server's Envoy logs ``"- - -" 0 NR filter_chain_not_found`` with the
        client's address; a meshed client whose DestinationRule disables TLS logs ``503 UC
        upstream_reset_before_response_started{connection_termination}``."""

        async def body(sb: Sandbox) -> None:
            await _topology(sb, "foo", "legacy")
            await sb.apply(
                _yaml("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: plain, namespace: foo}
spec:
  host: httpbin.foo.svc.cluster.local
  trafficPolicy: {tls: {mode: DISABLE}}
""")
            )
            legacy, meshed = await run_probes(
                sb,
                [
                    Probe("legacy", "sleep", "http://httpbin.foo:8000/ip"),
                    Probe("foo", "sleep", "http://httpbin.foo:8000/ip"),
                ],
            )
            assert (legacy.http_code, legacy.exit_code) == ("000", 56)
            assert meshed.http_code == "503"
            server = _access(sb, "foo", "httpbin")
            assert len(server) == 2
            assert all(
                (s["method"], s["code"], s["flags"], s["details"])
                == ("-", "0", "NR", "filter_chain_not_found")
                for s in server
            )
            legacy_ip = _pod(sb, "legacy", "sleep").ip
            assert any(s["downstream_remote"].startswith(f"{legacy_ip}:") for s in server)
            [client] = _access(sb, "foo", "sleep")
            assert (client["code"], client["flags"], client["details"]) == (
                "503",
                "UC",
                "upstream_reset_before_response_started{connection_termination}",
            )
            assert client["sent"] == str(len(meshed.body))
            # No request reached the app.
            assert len(sb.pod_log(_pod(sb, "foo", "httpbin"), "httpbin").splitlines()) == 1

        _run(body)

    def test_authorization_policy_denial_names_the_policy(self) -> None:
        """An ALLOW policy that does not match: ``403 - rbac_access_denied_matched_policy
        [none]`` with the 19 bytes of "RBAC: access denied" at the server; a DENY policy that
        matches names its rule; the client's proxy just relays the 403 (``via_upstream``)."""

        async def body(sb: Sandbox) -> None:
            await _topology(sb, "foo")
            await sb.apply(
                _yaml("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-post, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules: [{to: [{operation: {methods: ["POST"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-anything, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/headers"]}}]
  - to: [{operation: {paths: ["/anything"]}}]
""")
            )
            get, post = await run_probes(
                sb,
                [
                    Probe("foo", "sleep", "http://httpbin.foo:8000/get"),
                    Probe("foo", "sleep", "http://httpbin.foo:8000/anything", method="POST"),
                ],
            )
            assert (get.http_code, post.http_code) == ("403", "403")
            by_path = {s["path"]: s for s in _access(sb, "foo", "httpbin")}
            assert by_path["/get"]["details"] == "rbac_access_denied_matched_policy[none]"
            assert by_path["/anything"]["details"] == (
                "rbac_access_denied_matched_policy[ns[foo]-policy[no-anything]-rule[1]]"
            )
            for line in by_path.values():
                assert (line["code"], line["flags"], line["sent"]) == ("403", "-", "19")
                assert line["upstream_host"] == "-"
            for line in _access(sb, "foo", "sleep"):
                assert (line["code"], line["details"]) == ("403", "via_upstream")

        _run(body)

    def test_upstream_failures_carry_envoys_flags(self) -> None:
        """``ISTIO_MUTUAL`` to a pod without sidecar fails the TLS handshake: ``503 UF,URX``
        with the TLS error as transport failure reason, and the reason in the details agrees
        with the body curl printed; a Service without endpoints: ``503 UH
        no_healthy_upstream``."""

        async def body(sb: Sandbox) -> None:
            await _topology(sb, "foo", "legacy")
            await sb.apply(
                _yaml("""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: to-legacy, namespace: foo}
spec:
  host: httpbin.legacy.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: v1
kind: Service
metadata: {name: nobody, namespace: foo}
spec:
  selector: {app: nobody}
  ports: [{name: http, port: 8000, targetPort: 8080}]
""")
            )
            tls, empty = await run_probes(
                sb,
                [
                    Probe("foo", "sleep", "http://httpbin.legacy:8000/ip"),
                    Probe("foo", "sleep", "http://nobody:8000/ip"),
                ],
            )
            assert (tls.http_code, empty.http_code) == ("503", "503")
            lines = {s["authority"]: s for s in _access(sb, "foo", "sleep")}
            failed = lines["httpbin.legacy:8000"]
            assert failed["flags"] == "UF,URX"
            assert failed["details"].startswith(
                "upstream_reset_before_response_started{connection_failure,TLS_error:"
            )
            assert failed["transport"].startswith("TLS_error:")
            reason = tls.body.split("reset reason: ", 1)[1]
            assert failed["details"].endswith(
                "," + reason.split(", transport failure reason: ")[1].replace(" ", "_") + "}"
            )
            unhealthy = lines["nobody:8000"]
            assert (unhealthy["flags"], unhealthy["details"], unhealthy["sent"]) == (
                "UH",
                "no_healthy_upstream",
                "19",
            )
            assert unhealthy["upstream_host"] == "-"

        _run(body)


class TestPodLifecycle:
    def test_a_restarted_deployments_new_pod_starts_with_an_empty_access_log(self) -> None:
        """``kubectl rollout restart``: the new pod's containers start new logs (start-up
        lines only); the old pod is gone, so asking for its log is an error, and a follower of
        the old log gets the end of the stream."""

        async def body(sb: Sandbox) -> None:
            await _topology(sb, "foo")
            await run_probes(sb, [Probe("foo", "sleep", "http://httpbin.foo:8000/ip")])
            old = _pod(sb, "foo", "httpbin")
            assert len(_access(sb, "foo", "httpbin")) == 1
            follower = sb.follow_log(old, "istio-proxy")
            await sb.restart("foo", "httpbin")
            new = _pod(sb, "foo", "httpbin")
            assert new.created != old.created
            assert _access(sb, "foo", "httpbin") == []
            assert "Envoy proxy is ready" in sb.pod_log(new, "istio-proxy")
            assert len(sb.pod_log(new, "httpbin").splitlines()) == 1
            assert follower.get_nowait() == ""
            with pytest.raises(ClusterStateError, match="not running"):
                sb.pod_log(old, "istio-proxy")
            with pytest.raises(ClusterStateError, match="container nope is not valid for pod"):
                sb.pod_log(new, "nope")

        _run(body)

    def test_follow_log_gets_new_lines_until_unfollowed(self) -> None:
        """``kubectl logs -f``: the queue gets each new line once, with its newline; after
        ``unfollow_log`` it gets nothing more."""

        async def body(sb: Sandbox) -> None:
            await _topology(sb, "foo")
            pod = _pod(sb, "foo", "httpbin")
            before = sb.pod_log(pod, "httpbin")
            queue = sb.follow_log(pod, "httpbin")
            await run_probes(sb, [Probe("foo", "sleep", "http://httpbin.foo:8000/uuid")])
            line = queue.get_nowait()
            assert line.endswith("\n") and 'msg="200 GET /uuid ' in line
            assert sb.pod_log(pod, "httpbin") == before + line
            # --timestamps: the same lines, each with when it was written.
            stamped = sb.pod_log_lines(pod, "httpbin")
            assert "".join(f"{e.text}\n" for e in stamped) == before + line
            assert stamped[0].time <= stamped[-1].time
            sb.unfollow_log(queue)
            await run_probes(sb, [Probe("foo", "sleep", "http://httpbin.foo:8000/uuid")])
            assert queue.empty()

        _run(body)

    def test_the_ring_is_bounded(self) -> None:
        """A container keeps its last MAX_LINES lines, each at most MAX_LINE_CHARS, with
        control characters escaped; a follower that never reads keeps a bounded queue."""
        log = ContainerLog()
        queue = log.follow()
        for n in range(MAX_LINES + 10):
            log.write(f"line {n}")
        lines = log.text().splitlines()
        assert len(lines) == MAX_LINES
        assert (lines[0], lines[-1]) == ("line 10", f"line {MAX_LINES + 9}")
        assert queue.qsize() == MAX_LINES
        log.write("x" * (MAX_LINE_CHARS * 3))
        log.write("evil \x1b[2J path\tand tab")
        last_two = log.text().splitlines()[-2:]
        assert last_two == ["x" * MAX_LINE_CHARS, "evil \\x1b[2J path\tand tab"]
        log.close()
        assert list(queue._queue)[-1] == ""  # type: ignore[attr-defined]


class TestLinkerd:
    def test_access_log_only_with_the_annotation_and_denials_logged(self) -> None:
        """linkerd-proxy starts with its INFO lines, logs no request by default, writes the
        Apache-style access line for each inbound request when the namespace asks for it,
        and logs "Request denied" when its policy refuses one."""

        async def body(sb: Sandbox) -> None:
            await sb.apply(
                _yaml("""
apiVersion: v1
kind: Namespace
metadata:
  name: logged
  annotations: {linkerd.io/inject: enabled, config.linkerd.io/access-log: apache}
---
apiVersion: v1
kind: Namespace
metadata:
  name: quiet
  annotations:
    linkerd.io/inject: enabled
    config.linkerd.io/default-inbound-policy: all-authenticated
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
""")
            )
            docs = []
            for ns in ("logged", "quiet", "legacy"):
                docs += load_file(SAMPLES / "sleep.yaml", default_namespace=ns)
                docs += load_file(SAMPLES / "httpbin.yaml", default_namespace=ns)
            await sb.apply(docs)
            meshed, plain, denied = await run_probes(
                sb,
                [
                    Probe("quiet", "sleep", "http://httpbin.logged:8000/ip"),
                    Probe("legacy", "sleep", "http://httpbin.logged:8000/get"),
                    Probe("legacy", "sleep", "http://httpbin.quiet:8000/get"),
                ],
            )
            assert (meshed.http_code, plain.http_code, denied.http_code) == ("200", "200", "403")
            logged = sb.pod_log(_pod(sb, "logged", "httpbin"), "linkerd-proxy").splitlines()
            assert re.match(
                r"^\[ +\d+\.\d{6}s\]  INFO ThreadId\(01\) linkerd2_proxy: release ", logged[0]
            )
            assert any(
                "Certified identity id=httpbin.logged.serviceaccount.identity.linkerd."
                "cluster.local" in line
                for line in logged
            )
            access = [line for line in logged if not line.startswith("[")]
            quiet_sleep = _pod(sb, "quiet", "sleep")
            legacy_sleep = _pod(sb, "legacy", "sleep")
            assert len(access) == 2
            # Probes run in parallel: the two lines come in either order.
            [h2] = [line for line in access if "HTTP/2.0" in line]
            [h1] = [line for line in access if "HTTP/1.1" in line]
            assert re.match(
                rf"^{re.escape(quiet_sleep.ip)}:\d+ "
                r"sleep\.quiet\.serviceaccount\.identity\.linkerd\.cluster\.local - "
                r'\[\S+Z\] "GET http://httpbin\.logged:8000/ip HTTP/2\.0" 200$',
                h2,
            )
            assert re.match(
                rf'^{re.escape(legacy_sleep.ip)}:\d+ - - \[\S+Z\] "GET /get HTTP/1\.1" 200$', h1
            )
            quiet = sb.pod_log(_pod(sb, "quiet", "httpbin"), "linkerd-proxy").splitlines()
            assert all(line.startswith("[") for line in quiet)  # no access log there
            [refused] = [line for line in quiet if "Request denied" in line]
            assert "inbound:server{port=8080}: linkerd_app_inbound::policy::http: " in refused
            assert "server.kind=default server.name=all-authenticated" in refused
            assert refused.endswith(f"client.tls=None(NoClientHello) client.ip={legacy_sleep.ip}")
            assert any(
                "HTTP/1.1 request failed error=client" in line
                and line.endswith(
                    "unauthorized request on route error.sources="
                    "[unauthorized request on route] path=/get"
                )
                for line in quiet
            )

        _run(body, mesh="linkerd")


GATEWAY_ROUTES = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop.example.com", "old.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: demo}
spec:
  hosts: ["shop.example.com"]
  gateways: ["istio-system/gw"]
  http:
  - match: [{uri: {prefix: /static}}]
    directResponse: {status: 418}
  - match: [{uri: {prefix: /missing}}]
    route: [{destination: {host: nothing-here}}]
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: frontend, port: {number: 80}}}]
"""


class TestEdge:
    def test_the_ingress_gateway_logs_what_it_routed_and_what_it_answered_itself(self) -> None:
        """The gateway's Envoy writes one line per request: the proxied one names the
        outside client and the upstream cluster; its own answers carry Envoy's details
        (``404 NR route_not_found``, ``503 NC cluster_not_found``, ``direct_response``)."""

        async def body(sb: Sandbox) -> None:
            await sb.apply(load_file(ROOT / "manifests/components/istio-ingressgateway.yaml"))
            await sb.apply(load_file(ROOT / "manifests/online-boutique/demo.yaml"))
            await sb.apply(_yaml(GATEWAY_ROUTES))
            results = await run_probes(
                sb,
                [
                    Probe.from_outside("http://shop.example.com/", timeout=5),
                    Probe.from_outside("http://shop.example.com/static/logo.png", timeout=5),
                    Probe.from_outside("http://shop.example.com/missing", timeout=5),
                    Probe.from_outside("http://old.example.com/", timeout=5),
                ],
            )
            assert [r.http_code for r in results] == ["200", "418", "503", "404"]
            by_path = {
                (s["authority"], s["path"]): s
                for s in _access(sb, "istio-system", "istio-ingressgateway")
            }
            routed = by_path[("shop.example.com", "/")]
            assert (routed["code"], routed["details"]) == ("200", "via_upstream")
            assert routed["cluster"] == "outbound|80||frontend.demo.svc.cluster.local"
            assert routed["downstream_remote"].startswith("127.43.255.254:")
            own = {
                path: (s["code"], s["flags"], s["details"])
                for (host, path), s in by_path.items()
                if (host, path) != ("shop.example.com", "/")
            }
            assert own == {
                "/static/logo.png": ("418", "-", "direct_response"),
                "/missing": ("503", "NC", "cluster_not_found"),
                "/": ("404", "NR", "route_not_found"),
            }
            [inbound] = _access(sb, "demo", "frontend")
            assert inbound["request_id"] == routed["request_id"]

        _run(body)

    def test_ingress_nginx_writes_its_upstream_log_format(self) -> None:
        """The controller container logs each request in ingress-nginx's default
        ``log-format-upstream`` (internal/ingress/controller/config/config.go), naming the
        upstream ``<namespace>-<service>-<port>``."""

        async def body(sb: Sandbox) -> None:
            shop = ROOT / "manifests/lessons/linkerd-ingress"
            for path in (
                ROOT / "manifests/components/ingress-nginx.yaml",
                shop / "shop.yaml",
                shop / "ingress.yaml",
            ):
                await sb.apply(load_file(path))
            [result] = await run_probes(
                sb, [Probe.from_outside("http://shop.example.com/get", timeout=5)]
            )
            assert result.http_code == "200"
            controller = next(
                p for p in sb.cluster.pods("ingress-nginx") if "controller" in p.deployment
            )
            [line] = sb.pod_log(controller, controller.spec.containers[0].name).splitlines()
            web = _pod(sb, "shop", "web")
            assert re.match(
                r"^203\.0\.113\.10 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "
                r'"GET /get HTTP/1\.1" 200 (\d+) "-" "curl/[^"]+" \d+ \d+\.\d{3} '
                rf"\[shop-web-80\] \[\] {re.escape(web.ip)}:8080 \1 \d+\.\d{{3}} 200 [0-9a-f]{{32}}$",
                line,
            ), line

        _run(body, mesh="linkerd")
