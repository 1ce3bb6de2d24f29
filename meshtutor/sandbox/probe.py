"""Probes in the sandbox: a real ``curl`` process per probe, as ``kubectl exec`` would run it.

The curl line is built the way the traffic would flow in a pod: a captured container's curl
goes through its sidecar (``--proxy``, standing in for iptables capture), an uncaptured one
connects straight to the destination pod (``--connect-to``). curl always binds the source pod's
address (``--interface``) so the other side knows who is calling, as pod IPs do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import time
import uuid
from typing import TYPE_CHECKING, Literal, NamedTuple

from meshtutor.backends.base import Prober, ProbeResult, gathered
from meshtutor.backends.curl import curl_args, parse_output
from meshtutor.policy import netpol
from meshtutor.policy.cluster import PodState
from meshtutor.policy.predict import (
    CURL_ERRORS,
    predict,
    resolve_service,
    resolve_source,
    service_endpoints,
)
from meshtutor.policy.probe import Probe
from meshtutor.sandbox.proxy import PROBE_HEADER

if TYPE_CHECKING:
    from meshtutor.sandbox.mesh import Sandbox


def curl_path() -> str | None:
    return shutil.which("curl")


class Route(NamedTuple):
    """How a connection from a pod's container reaches ``host:port``: through its sidecar's
    outbound listener as an HTTP proxy (``kind`` "proxy", standing in for iptables capture), or
    straight to an address (``kind`` "connect"): the destination pod's port, or a stand-in
    that drops (``sb.blackhole_port``) or refuses (``sb.refusing_port()``) the connection.
    ``target`` and ``target_port`` name the destination pod when the route goes to one."""

    kind: Literal["proxy", "connect"]
    host: str
    port: int
    target: PodState | None = None
    target_port: int | None = None


async def route(
    sb: Sandbox, source: PodState, captured: bool, host: str, port: int
) -> Route | None:
    """The one routing rule of the sandbox, for probes and for commands run in a pod
    (``meshtutor.sandbox.podexec``): cluster DNS (blocked by NetworkPolicy → lookups time
    out; an unknown name → None, curl's exit 6), then a captured container's sidecar, or the
    Service's first endpoint / the pod address for an uncaptured one. NetworkPolicy itself is
    enforced where the connection lands (the pod port), by the source address."""
    if not netpol.dns_allowed(sb.cluster, source).allowed:
        return Route("connect", "127.0.0.1", sb.blackhole_port)  # lookups time out
    direct = sb.cluster.pod_by_ip(host)
    service = None if direct is not None else resolve_service(sb.cluster, host, source.namespace)[0]
    if direct is None and service is None:
        return None
    runtime = sb.runtime(source)
    if captured:
        assert runtime.outbound_port is not None
        return Route("proxy", source.ip, runtime.outbound_port)
    if service is None:
        assert direct is not None
        # A pod address, as predict() takes it: straight to that pod's port.
        entry_host, entry_port = await sb.entry(sb.runtime(direct), port)
        return Route("connect", entry_host, entry_port, direct, port)
    svc_port = service.port(port)
    if svc_port is None:
        return Route("connect", "127.0.0.1", sb.blackhole_port)  # nothing answers there
    endpoints = service_endpoints(sb.cluster, service, svc_port)
    if not endpoints:
        return Route("connect", "127.0.0.1", sb.refusing_port())
    target, target_port = endpoints[0]
    entry_host, entry_port = await sb.entry(sb.runtime(target), target_port)
    return Route("connect", entry_host, entry_port, target, target_port)


def route_options(found: Route | None, host: str, port: int) -> list[str]:
    """curl's options for one URL host and port on ``found``: ``--proxy`` to the sidecar,
    ``--connect-to`` the address, or, for a name cluster DNS does not know, ``--connect-to``
    a name that never resolves (".invalid", RFC 6761) on any port, so curl fails as it would
    in the pod (exit 6), fast and offline, while the URL and Host header stay as typed."""
    if found is None:
        return ["--connect-to", f"{host}::{host}.invalid:"]
    if found.kind == "proxy":
        return ["--proxy", f"http://{found.host}:{found.port}"]
    return ["--connect-to", f"{host}:{port}:{found.host}:{found.port}"]


async def _target_address(sb: Sandbox, probe: Probe, captured: bool) -> Route | None:
    """How curl reaches the probe's URL, or None when the host name does not resolve."""
    source, _ = resolve_source(sb.cluster, probe)
    url = probe.parsed_url
    return await route(sb, source, captured, url.host, url.port)


async def _outside_address(sb: Sandbox, probe: Probe) -> Route | None:
    """Where an outside curl connects: the Service's external address (a real listener that
    forwards like kube-proxy); a refusing port where the pod has nothing listening."""
    from meshtutor.policy import edge
    from meshtutor.policy.ingress import outside_service

    url = probe.parsed_url
    found = outside_service(sb.cluster, url.host, url.port)
    if found is None:
        return None
    service, svc_port = found
    endpoints = service_endpoints(sb.cluster, service, svc_port)
    if not endpoints:
        return Route("connect", "127.0.0.1", sb.refusing_port())
    target, port = endpoints[0]
    if edge.role_of(target) == "istio-gateway" and not edge.gateway_listens(
        sb.cluster, target, port
    ):
        return Route("connect", "127.0.0.1", sb.refusing_port())  # Envoy has no listener there
    number = svc_port.port if service.type == "LoadBalancer" else edge.node_port(service, svc_port)
    listener = sb.external.listener(service, number)
    if listener is None:
        await sb.external.sync()
        listener = sb.external.listener(service, number)
    if listener is None:  # pragma: no cover - sync always creates it
        return Route("connect", "127.0.0.1", sb.refusing_port())
    return Route("connect", listener[0], listener[1])


def resolve_cacert(path: str) -> str:
    """curl's --cacert file: as given, else relative to the shipped manifests."""
    from pathlib import Path

    from meshtutor.errors import ProbeSpecError
    from meshtutor.paths import manifests_dir

    candidate = Path(path).expanduser()
    if candidate.is_file():
        return str(candidate)
    shipped = manifests_dir() / path.removeprefix("manifests/")
    if shipped.is_file():
        return str(shipped)
    raise ProbeSpecError(f"--cacert {path}: no such file (a PEM CA bundle)")


def _captured(sb: Sandbox, probe: Probe) -> tuple[bool, str]:
    if probe.outside:
        return False, ""
    source, container = resolve_source(sb.cluster, probe)
    proxy_container = "istio-proxy" if sb.mesh == "istio" else "linkerd-proxy"
    return source.sidecar is not None and container != proxy_container, container


def curl_command(sb: Sandbox, probe: Probe, found: Route | None, probe_id: str) -> list[str]:
    url = probe.parsed_url
    # -q first: ignore ~/.curlrc. The probe id lets the sidecars tie what they saw to it.
    args = [*curl_args(probe, extra=["-q"]), "-H", f"{PROBE_HEADER}: {probe_id}"]
    if probe.cacert:
        args += ["--cacert", resolve_cacert(probe.cacert)]
    args += route_options(found, url.host, url.port)
    if sb.aliases:
        if probe.outside:
            from meshtutor.sandbox.edge import OUTSIDE_LOOPBACK

            args += ["--interface", OUTSIDE_LOOPBACK]
        else:
            args += ["--interface", resolve_source(sb.cluster, probe)[0].ip]
    args.append(probe.url)
    return args


def _display_command(probe: Probe, container: str, address: str | None = None) -> str:
    """What the learner would type on a real cluster (or, outside, on their machine)."""
    if probe.outside:
        url = probe.parsed_url
        line = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"]
        if probe.method != "GET":
            line += ["-X", probe.method]
        for name, value in probe.headers.items():
            line += ["-H", f"{name}: {value}"]
        if probe.insecure:
            line.append("-k")
        if probe.cacert:
            line += ["--cacert", probe.cacert]
        if address:
            line += ["--resolve", f"{url.host}:{url.port}:{address}"]
        line += ["--max-time", f"{probe.effective_timeout:g}", probe.url]
        return shlex.join(line)
    parts = [
        "kubectl",
        "exec",
        "-n",
        probe.source_namespace,
        f"deploy/{probe.source_deployment}",
        "-c",
        container,
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ]
    if probe.method != "GET":
        parts += ["-X", probe.method]
    for name, value in probe.headers.items():
        parts += ["-H", f"{name}: {value}"]
    parts += ["--max-time", f"{probe.effective_timeout:g}", probe.url]
    return shlex.join(parts)


async def run_probe(sb: Sandbox, probe: Probe, *, use_curl: bool | None = None) -> ProbeResult:
    """Run one probe for real and compare it with the policy engine's prediction."""
    # Also validates the probe (ProbeSpecError) before any traffic.
    prediction = predict(
        sb.cluster, probe, certificates=sb.certificate_problem, edge_trust=sb.edge_trust
    )
    captured, container = _captured(sb, probe)
    if probe.outside:
        found = await _outside_address(sb, probe)
    else:
        found = await _target_address(sb, probe, captured)
    probe_id = uuid.uuid4().hex[:16]
    curl = curl_path() if use_curl is not False else None
    started = time.perf_counter()
    if curl is not None:
        code, exit_code, stderr, body = await _run_curl(sb, probe, found, probe_id, curl)
        prober: Prober = "curl"
    else:
        code, exit_code, stderr, body = await _run_builtin(sb, probe, found, probe_id)
        prober = "builtin"
    elapsed = (time.perf_counter() - started) * 1000
    if found is None and stderr:
        stderr = stderr.replace(f"{probe.parsed_url.host}.invalid", probe.parsed_url.host)
    event = sb.events.pop(probe_id, None)
    mtls = bool(event and event.mtls)
    return ProbeResult(
        probe=probe,
        container=container,
        http_code=code,
        exit_code=exit_code,
        stderr=stderr,
        body=body,
        mtls=mtls,
        client_identity=event.client_identity if event and mtls else None,
        server_identity=event.server_identity if event and mtls else None,
        prediction=prediction,
        prober=prober,
        duration_ms=elapsed,
        command=_display_command(probe, container, _external_ip(sb, probe)),
        handshake=event.handshake if event else None,
        handshake_error=event.handshake_error if event else None,
        edge_handshake=event.edge_handshake if event else None,
    )


def _external_ip(sb: Sandbox, probe: Probe) -> str | None:
    if not probe.outside:
        return None
    from meshtutor.policy.ingress import outside_service

    url = probe.parsed_url
    found = outside_service(sb.cluster, url.host, url.port)
    return sb.external.address(found[0]) if found else None


async def _run_curl(
    sb: Sandbox, probe: Probe, found: Route | None, probe_id: str, curl: str
) -> tuple[str, int, str, str]:
    args = curl_command(sb, probe, found, probe_id)
    args[0] = curl
    # curl honours *_proxy variables and ~/.curlrc (-q skips the latter); neither belongs here.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await process.communicate()
    body, code = parse_output(out.decode("utf-8", "replace"))
    lines = err.decode("utf-8", "replace").strip().splitlines()
    # curl's own line ("curl: (60) ..."), not the advice it prints after it.
    own = [line for line in lines if line.startswith("curl: (")]
    stderr = own[0] if own else (lines[-1] if lines else "")
    return code, int(process.returncode or 0), stderr, body


async def _run_builtin(
    sb: Sandbox, probe: Probe, found: Route | None, probe_id: str
) -> tuple[str, int, str, str]:
    """The same request without curl (when it is not installed), mapping failures to the exit
    codes curl would use."""
    from meshtutor.sandbox.http import HTTPParseError, Request, read_response

    url = probe.parsed_url
    local: str | None = None
    if sb.aliases:
        if probe.outside:
            from meshtutor.sandbox.edge import OUTSIDE_LOOPBACK

            local = OUTSIDE_LOOPBACK
        else:
            local = resolve_source(sb.cluster, probe)[0].ip

    def fail(code: int) -> tuple[str, int, str, str]:
        message = CURL_ERRORS.get(code, "failed").format(
            host=url.host, port=url.port, ms=int(probe.effective_timeout * 1000)
        )
        return "000", code, f"curl: ({code}) {message}", ""

    if found is None:
        return fail(6)
    if url.scheme == "https" and found.kind == "connect":
        return fail(35)
    target = url.path_with_query if found.kind == "connect" else probe.url
    headers = [
        ("Host", url.authority),
        ("User-Agent", "meshtutor-builtin"),
        ("Accept", "*/*"),
        (PROBE_HEADER, probe_id),
        *probe.headers.items(),
    ]
    request = Request(probe.method, target, headers=list(headers))
    try:
        async with asyncio.timeout(probe.effective_timeout):
            reader, writer = await asyncio.open_connection(
                found.host, found.port, local_addr=(local, 0) if local else None
            )
            try:
                writer.write(request.to_bytes(origin_form=False))
                await writer.drain()
                response = await read_response(reader, head_only_for=probe.method)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except TimeoutError:
        return fail(28)
    except ConnectionRefusedError:
        return fail(7)
    except ConnectionResetError:
        return fail(56)
    except (HTTPParseError, asyncio.IncompleteReadError):
        return fail(52)
    except OSError:
        return fail(56)
    return str(response.status), 0, "", response.body.decode("utf-8", "replace")


async def run_probes(
    sb: Sandbox, probes: list[Probe], *, parallel: int = 16, use_curl: bool | None = None
) -> list[ProbeResult]:
    """Run probes concurrently (at most ``parallel`` curl processes at once), in order."""
    limit = asyncio.Semaphore(parallel)

    async def one(probe: Probe) -> ProbeResult:
        async with limit:
            return await run_probe(sb, probe, use_curl=use_curl)

    return gathered(await asyncio.gather(*(one(p) for p in probes), return_exceptions=True))
