"""The built-in apps over real loopback sockets, probed with real curl where curl is installed.

Every status code a server sends must be the one the policy engine predicts
(``response_status``); the table test below checks that over one keep-alive connection.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from meshtutor.model.k8s import Container, ContainerPort
from meshtutor.policy.apps import App, app_for, response_status
from meshtutor.sandbox.apps import AppServer, canonical_header_name
from meshtutor.sandbox.http import HTTPParseError, Response, read_response

POD_IP = "127.42.0.9"
CLIENT_IP = "127.42.0.5"

HTTPBIN = app_for(
    Container("httpbin", "docker.io/mccutchen/go-httpbin:v2.15.0", (ContainerPort(8080),))
)
ECHO = app_for(Container("server", "gcr.io/google-samples/microservices-demo/frontend:v0.10.1"))
CLIENT = app_for(Container("curl", "curlimages/curl:8.5.0", command=("sleep", "infinity")))


def _can_bind(address: str) -> bool:
    # The whole 127.0.0.0/8 block is loopback on Linux only (DESIGN §5).
    try:
        with socket.socket() as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


needs_pod_ips = pytest.mark.skipif(
    not (_can_bind(POD_IP) and _can_bind(CLIENT_IP)), reason="127.0.0.0/8 is not all loopback"
)
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def run(test: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        # asyncio.timeout, not wait_for: no extra task, so tests can count the tasks left.
        async with asyncio.timeout(10):
            await test()

    asyncio.run(main())


@asynccontextmanager
async def serving(
    app: App = HTTPBIN, host: str = "127.0.0.1", pod: str = "httpbin-7d9c", ns: str = "foo"
) -> AsyncIterator[AppServer]:
    server = await AppServer.start(app, host, pod_name=pod, namespace=ns)
    try:
        yield server
    finally:
        await server.close()


async def curl(*args: str) -> tuple[int, str, str]:
    """curl's exit code, the HTTP code it reports, and the body."""
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-s",
        "--max-time",
        "5",
        "-w",
        "\n%{http_code}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    body, _, code = out.decode().rpartition("\n")
    return proc.returncode or 0, code, body


async def exchange(server: AppServer, raw: bytes, method: str = "GET") -> Response:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(raw)
        return await read_response(reader, head_only_for=method)
    finally:
        writer.close()


@needs_curl
class TestHttpbinWithCurl:
    def test_ip_is_the_tcp_peer(self) -> None:
        async def test() -> None:
            async with serving() as server:
                exit_code, code, body = await curl(f"http://127.0.0.1:{server.port}/ip")
                assert (exit_code, code) == (0, "200")
                assert json.loads(body) == {"origin": "127.0.0.1"}

        run(test)

    @needs_pod_ips
    def test_ip_is_the_source_pod_address(self) -> None:
        async def test() -> None:
            async with serving(host=POD_IP) as server:
                assert server.host == POD_IP
                url = f"http://{POD_IP}:{server.port}/ip"
                _, code, body = await curl("--interface", CLIENT_IP, url)
                assert code == "200"
                assert json.loads(body) == {"origin": CLIENT_IP}

        run(test)

    @needs_pod_ips
    def test_ip_prefers_the_first_x_forwarded_for_entry(self) -> None:
        async def test() -> None:
            async with serving(host=POD_IP) as server:
                url = f"http://{POD_IP}:{server.port}/ip"
                xff = "X-Forwarded-For: 10.244.1.7, 127.0.0.6"
                _, _, body = await curl("--interface", CLIENT_IP, "-H", xff, url)
                assert json.loads(body) == {"origin": "10.244.1.7"}

        run(test)

    def test_headers_shows_a_sent_header_in_go_httpbin_shape(self) -> None:
        async def test() -> None:
            async with serving() as server:
                url = f"http://127.0.0.1:{server.port}/headers"
                _, code, body = await curl("-H", "x-b3-sampled: 1", "-H", "X-Dup: a", url)
                headers = json.loads(body)["headers"]
                assert code == "200"
                assert headers["X-B3-Sampled"] == ["1"]
                assert headers["Host"] == [f"127.0.0.1:{server.port}"]
                assert headers["User-Agent"][0].startswith("curl/")
                assert list(headers) == sorted(headers)

        run(test)

    def test_get_through_curl_as_proxy_uses_the_absolute_url(self) -> None:
        async def test() -> None:
            async with serving() as server:
                proxy = f"http://127.0.0.1:{server.port}"
                _, code, body = await curl("-x", proxy, "http://httpbin.foo:8000/get?a=1&a=2")
                doc = json.loads(body)
                assert code == "200"
                assert doc["args"] == {"a": ["1", "2"]}
                assert doc["url"] == "http://httpbin.foo:8000/get?a=1&a=2"
                assert doc["headers"]["Host"] == ["httpbin.foo:8000"]
                assert (doc["method"], doc["origin"]) == ("GET", "127.0.0.1")

        run(test)

    def test_status_418(self) -> None:
        async def test() -> None:
            async with serving() as server:
                result = await curl(f"http://127.0.0.1:{server.port}/status/418")
                assert result == (0, "418", "")

        run(test)

    def test_unknown_path_is_404_as_predicted(self) -> None:
        async def test() -> None:
            async with serving() as server:
                _, code, _ = await curl(f"http://127.0.0.1:{server.port}/no/such/path")
                assert code == "404" == str(response_status(HTTPBIN, "GET", "/no/such/path"))

        run(test)

    def test_post_to_get_is_405(self) -> None:
        async def test() -> None:
            async with serving() as server:
                _, code, _ = await curl("-X", "POST", f"http://127.0.0.1:{server.port}/get")
                assert code == "405"

        run(test)

    def test_anything_echoes_a_form_post(self) -> None:
        async def test() -> None:
            async with serving() as server:
                url = f"http://127.0.0.1:{server.port}/anything/x?q=1"
                _, code, body = await curl("-d", "user=alice", url)
                doc = json.loads(body)
                assert code == "200"
                assert (doc["method"], doc["data"], doc["form"]) == (
                    "POST",
                    "user=alice",
                    {"user": ["alice"]},
                )
                assert doc["args"] == {"q": ["1"]}

        run(test)

    def test_post_json(self) -> None:
        async def test() -> None:
            async with serving() as server:
                _, code, body = await curl(
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    '{"a": [1, 2]}',
                    f"http://127.0.0.1:{server.port}/post",
                )
                assert code == "200"
                assert json.loads(body)["json"] == {"a": [1, 2]}

        run(test)

    def test_head_gets_headers_only(self) -> None:
        async def test() -> None:
            async with serving() as server:
                exit_code, code, body = await curl("-I", f"http://127.0.0.1:{server.port}/get")
                assert (exit_code, code) == (0, "200")
                assert "content-length:" in body.lower()
                assert "{" not in body

        run(test)

    def test_tls_to_the_plaintext_app_fails_at_once(self) -> None:
        # curl sees a plaintext 400 where it expected a ServerHello: exit 35 straight away,
        # not a hang until --max-time (exit 28).
        async def test() -> None:
            async with serving() as server:
                started = time.monotonic()
                exit_code, code, _ = await curl("-k", f"https://127.0.0.1:{server.port}/ip")
                assert (exit_code, code) == (35, "000")
                assert time.monotonic() - started < 2

        run(test)

    def test_status_100_is_reported_as_predicted(self) -> None:
        # An interim code cannot end an exchange: curl reports it and exits 52 (empty reply).
        async def test() -> None:
            async with serving() as server:
                exit_code, code, _ = await curl(f"http://127.0.0.1:{server.port}/status/100")
                assert (exit_code, code) == (52, "100")

        run(test)


@needs_curl
@needs_pod_ips
class TestEchoWithCurl:
    def test_any_path_and_method_is_200_with_the_pod_name(self) -> None:
        async def test() -> None:
            async with serving(ECHO, POD_IP, pod="frontend-5f7b", ns="boutique") as server:
                url = f"http://{POD_IP}:{server.port}/status/503?x=1"
                _, code, body = await curl("-i", "-X", "DELETE", "--interface", CLIENT_IP, url)
                head, _, payload = body.partition("\r\n\r\n")
                doc = json.loads(payload)
                assert code == "200"
                assert "x-meshtutor-pod: frontend-5f7b.boutique" in head
                assert doc["pod"] == "frontend-5f7b"
                assert doc["namespace"] == "boutique"
                assert (doc["method"], doc["path"], doc["origin"]) == (
                    "DELETE",
                    "/status/503",
                    CLIENT_IP,
                )
                assert doc["headers"]["Host"] == [f"{POD_IP}:{server.port}"]

        run(test)


PREDICTION_TABLE = [
    ("GET", "/"),
    ("GET", "/ip"),
    ("HEAD", "/ip"),
    ("POST", "/ip"),
    ("GET", "/headers"),
    ("GET", "/get"),
    ("PUT", "/get"),
    ("GET", "/user-agent"),
    ("GET", "/uuid"),
    ("PATCH", "/anything"),
    ("OPTIONS", "/anything/deep/path"),
    ("HEAD", "/anything"),
    ("POST", "/post"),
    ("GET", "/post"),
    ("HEAD", "/post"),
    ("PUT", "/put"),
    ("PATCH", "/patch"),
    ("DELETE", "/delete"),
    ("GET", "/delete"),
    ("GET", "/json"),
    ("GET", "/html"),
    ("GET", "/bytes/64"),
    ("GET", "/delay/0"),
    ("GET", "/status/200"),
    ("GET", "/status/204"),
    ("GET", "/status/302"),
    ("POST", "/status/503"),
    ("HEAD", "/status/404"),
    ("GET", "/status/abc"),
    ("GET", "/nope"),
    ("GET", "/ipx"),
]


def test_every_status_is_the_predicted_one_on_one_keep_alive_connection() -> None:
    async def test() -> None:
        async with serving() as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            observed = []
            for method, path in PREDICTION_TABLE:
                writer.write(f"{method} {path} HTTP/1.1\r\nHost: httpbin.foo\r\n\r\n".encode())
                response = await read_response(reader, head_only_for=method)
                observed.append((method, path, response.status))
                if 200 <= response.status < 300 and method != "HEAD":
                    content_type = response.header("content-type") or ""
                    if "json" in content_type:
                        json.loads(response.body)
            writer.close()
            expected = [(m, p, response_status(HTTPBIN, m, p)) for m, p in PREDICTION_TABLE]
            assert observed == expected

    run(test)


class TestHttpbinBodies:
    def test_bytes_is_capped_and_reproducible_with_a_seed(self) -> None:
        async def test() -> None:
            async with serving() as server:
                get = b"GET /bytes/%d?seed=7 HTTP/1.1\r\nHost: a\r\n\r\n"
                # Connection: close as well: the whole body must be flushed before the close.
                close = b"GET /bytes/1000000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                big = await exchange(server, close)
                first = await exchange(server, get % 32)
                second = await exchange(server, get % 32)
                assert len(big.body) == 100 * 1024
                assert big.header("content-type") == "application/octet-stream"
                assert len(first.body) == 32
                assert first.body == second.body

        run(test)

    def test_binary_body_is_a_data_url(self) -> None:
        async def test() -> None:
            async with serving() as server:
                raw = (
                    b"PUT /put HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Length: 3\r\n\r\n\x00\xff\x10"
                )
                doc = json.loads((await exchange(server, raw)).body)
                assert doc["data"] == "data:application/octet-stream;base64,AP8Q"

        run(test)

    def test_expect_100_continue_is_answered_before_the_body(self) -> None:
        async def test() -> None:
            async with serving() as server:
                reader, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(
                    b"POST /post HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                    b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
                )
                assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
                writer.write(b"hello")
                response = await read_response(reader)
                writer.close()
                assert response.status == 200
                assert json.loads(response.body)["data"] == "hello"

        run(test)

    def test_delay_waits(self) -> None:
        async def test() -> None:
            async with serving() as server:
                started = time.monotonic()
                response = await exchange(server, b"GET /delay/0.2 HTTP/1.1\r\nHost: a\r\n\r\n")
                assert response.status == 200
                assert time.monotonic() - started >= 0.2
                assert json.loads(response.body)["method"] == "GET"

        run(test)


class TestConnections:
    def test_malformed_request_gets_400_and_a_closed_connection(self) -> None:
        async def test() -> None:
            async with serving() as server:
                reader, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
                response = await read_response(reader)
                assert response.status == 400
                assert response.header("connection") == "close"
                assert await reader.read() == b""
                writer.close()

        run(test)

    def test_connection_close_is_honoured(self) -> None:
        async def test() -> None:
            async with serving() as server:
                reader, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(b"GET /ip HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                response = await read_response(reader)
                assert response.header("connection") == "close"
                assert await reader.read() == b""
                writer.close()

        run(test)

    def test_close_leaves_no_listener_no_connection_and_no_task(self) -> None:
        async def test() -> None:
            server = await AppServer.start(HTTPBIN, "127.0.0.1", pod_name="p", namespace="n")
            # One idle keep-alive connection and one request stuck in /delay.
            idle_reader, idle_writer = await asyncio.open_connection(server.host, server.port)
            idle_writer.write(b"GET /ip HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await read_response(idle_reader)).status == 200
            busy_reader, busy_writer = await asyncio.open_connection(server.host, server.port)
            busy_writer.write(b"GET /delay/10 HTTP/1.1\r\nHost: a\r\n\r\n")
            await asyncio.sleep(0.05)

            started = time.monotonic()
            await server.close()
            assert time.monotonic() - started < 1

            assert asyncio.all_tasks() == {asyncio.current_task()}
            for reader in (idle_reader, busy_reader):
                with pytest.raises((HTTPParseError, ConnectionError)):
                    await read_response(reader)
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(server.host, server.port)
            idle_writer.close()
            busy_writer.close()
            await server.close()  # closing twice is harmless

        run(test)

    def test_client_only_app_listens_on_nothing(self) -> None:
        async def test() -> None:
            assert CLIENT.kind == "client"
            with pytest.raises(ValueError, match="client-only"):
                await AppServer.start(CLIENT, "127.0.0.1", pod_name="sleep", namespace="foo")

        run(test)

    def test_fixed_port(self) -> None:
        async def test() -> None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
            async with serving(ECHO) as first:
                fixed = await AppServer.start(ECHO, "127.0.0.1", port, pod_name="a", namespace="b")
                assert fixed.port == port != first.port
                await fixed.close()

        run(test)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("x-forwarded-client-cert", "X-Forwarded-Client-Cert"),
        ("USER-AGENT", "User-Agent"),
        ("l5d-client-id", "L5d-Client-Id"),
        ("x-b3-traceid", "X-B3-Traceid"),
        ("bad header", "bad header"),
    ],
)
def test_canonical_header_name_is_gos(name: str, canonical: str) -> None:
    assert canonical_header_name(name) == canonical
