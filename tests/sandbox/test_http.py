"""The sandbox's HTTP/1.1 reader and writer, fed the bytes curl and our proxies put on the wire."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from meshtutor.sandbox.http import (
    MAX_BODY,
    MAX_HEAD,
    HTTPParseError,
    Request,
    Response,
    make_response,
    read_request,
    read_response,
)

T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run one async step; StreamReaders must be created inside the loop, hence the factory."""

    async def main() -> T:
        return await asyncio.wait_for(make(), 5)

    return asyncio.run(main())


def parse(data: bytes, max_head: int = MAX_HEAD, max_body: int = MAX_BODY) -> Request | None:
    async def go() -> Request | None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_request(reader, max_head=max_head, max_body=max_body)

    return run(go)


def parse_all(data: bytes) -> list[Request]:
    async def go() -> list[Request]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        out = []
        while (request := await read_request(reader)) is not None:
            out.append(request)
        return out

    return run(go)


def parse_response(data: bytes, head_only_for: str | None = None) -> tuple[Response, bytes]:
    """The response, and whatever bytes were left unread after it."""

    async def go() -> tuple[Response, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        response = await read_response(reader, head_only_for=head_only_for)
        return response, await reader.read()

    return run(go)


CURL_GET = (
    b"GET /get?show_env=1&a=b HTTP/1.1\r\n"
    b"Host: httpbin.foo:8000\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n"
    b"X-B3-TraceId: abc\r\n"
    b"\r\n"
)


class TestReadRequest:
    def test_origin_form(self) -> None:
        request = parse(CURL_GET)
        assert request is not None
        assert (request.method, request.target, request.version) == (
            "GET",
            "/get?show_env=1&a=b",
            "HTTP/1.1",
        )
        assert request.path == "/get"
        assert request.query == "show_env=1&a=b"
        assert not request.is_absolute
        assert (request.host, request.port) == ("httpbin.foo", 8000)
        assert request.header("x-b3-traceid") == "abc"
        assert request.header("X-Missing") is None
        assert request.headers[3] == ("X-B3-TraceId", "abc")  # order and case kept
        assert request.keep_alive
        assert request.body == b""

    def test_absolute_form_as_a_proxy_receives_it(self) -> None:
        request = parse(
            b"GET http://httpbin.foo:8000/ip?x=1 HTTP/1.1\r\n"
            b"Host: httpbin.foo:8000\r\nProxy-Connection: Keep-Alive\r\n\r\n"
        )
        assert request is not None
        assert request.is_absolute
        assert (request.host, request.port) == ("httpbin.foo", 8000)
        assert (request.path, request.query) == ("/ip", "x=1")

    def test_absolute_form_default_port_and_empty_path(self) -> None:
        request = parse(b"GET http://web.bar HTTP/1.1\r\n\r\n")
        assert request is not None
        assert (request.host, request.port, request.path) == ("web.bar", 80, "/")

    def test_connect_authority_form(self) -> None:
        request = parse(b"CONNECT httpbin.foo:443 HTTP/1.1\r\nHost: httpbin.foo:443\r\n\r\n")
        assert request is not None
        assert request.method == "CONNECT"
        assert (request.host, request.port) == ("httpbin.foo", 443)
        assert request.path == ""
        assert not request.is_absolute

    def test_host_header_without_port_and_ipv6(self) -> None:
        plain = parse(b"GET / HTTP/1.1\r\nHost: HTTPBIN.foo\r\n\r\n")
        v6 = parse(b"GET / HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n")
        assert plain is not None and v6 is not None
        assert (plain.host, plain.port) == ("httpbin.foo", 80)
        assert (v6.host, v6.port) == ("::1", 9000)

    def test_content_length_body(self) -> None:
        request = parse(b"POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        assert request is not None
        assert request.body == b"hello"

    def test_chunked_body_with_extension_and_trailer(self) -> None:
        request = parse(
            b"POST /anything HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        assert request is not None
        assert request.body == b"hello world"

    def test_transfer_encoding_wins_over_content_length(self) -> None:
        request = parse(
            b"POST / HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\n\r\n"
        )
        assert request is not None
        assert request.body == b"ok"

    def test_pipelined_requests_then_clean_eof(self) -> None:
        requests = parse_all(
            b"GET /ip HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
            b"GET /headers HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        assert [(r.method, r.path, r.body) for r in requests] == [
            ("GET", "/ip", b""),
            ("POST", "/post", b"hi"),
            ("GET", "/headers", b""),
        ]
        assert [r.keep_alive for r in requests] == [True, True, False]

    def test_clean_eof_before_the_first_byte_is_none(self) -> None:
        assert parse(b"") is None

    def test_leading_blank_line_is_tolerated(self) -> None:
        request = parse(b"\r\nGET /ip HTTP/1.1\r\n\r\n")
        assert request is not None and request.path == "/ip"

    def test_bare_lf_line_endings_are_accepted(self) -> None:
        request = parse(b"GET /ip HTTP/1.1\nHost: a\n\n")
        assert request is not None and request.host == "a"

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls-client-hello"),
            pytest.param(b"GET /\r\n\r\n", id="http-0.9"),
            pytest.param(b"GET / HTTP/2.0\r\n\r\n", id="http-2-version"),
            pytest.param(b"GET  / HTTP/1.1\r\n\r\n", id="double-space"),
            pytest.param(b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", id="header-without-colon"),
            pytest.param(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", id="space-before-colon"),
            pytest.param(b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", id="obs-fold"),
            pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n", id="eof-in-head"),
            pytest.param(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", id="negative-length"),
            pytest.param(
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                id="conflicting-lengths",
            ),
            pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", id="short-body"),
            pytest.param(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk-size"
            ),
            pytest.param(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
                id="chunk-longer-than-size",
            ),
            pytest.param(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc", id="unframed-coding"
            ),
        ],
    )
    def test_garbage_is_a_parse_error(self, data: bytes) -> None:
        with pytest.raises(HTTPParseError):
            parse(data)

    def test_tls_hello_is_rejected_without_waiting_for_more_bytes(self) -> None:
        # A ClientHello has no newline; the client waits for a ServerHello, so waiting for a
        # line would deadlock until its timeout.
        async def go() -> None:
            reader = asyncio.StreamReader()
            reader.feed_data(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            with pytest.raises(HTTPParseError, match="not an HTTP request"):
                await asyncio.wait_for(read_request(reader), 1)

        run(go)

    def test_oversize_head(self) -> None:
        data = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
        with pytest.raises(HTTPParseError, match="too large"):
            parse(data, max_head=1024)
        assert parse(data, max_head=4096) is not None

    def test_oversize_head_beyond_the_stream_limit(self) -> None:
        with pytest.raises(HTTPParseError, match="too large"):
            parse(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n")

    @pytest.mark.parametrize(
        "data",
        [
            b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
        ],
        ids=["content-length", "chunked"],
    )
    def test_oversize_body(self, data: bytes) -> None:
        with pytest.raises(HTTPParseError, match="too large"):
            parse(data, max_body=10)
        assert parse(data, max_body=11) is not None


class TestRequest:
    @pytest.mark.parametrize(
        ("version", "connection", "expected"),
        [
            ("HTTP/1.1", None, True),
            ("HTTP/1.1", "close", False),
            ("HTTP/1.1", "Upgrade, Close", False),
            ("HTTP/1.0", None, False),
            ("HTTP/1.0", "Keep-Alive", True),
        ],
    )
    def test_keep_alive(self, version: str, connection: str | None, expected: bool) -> None:
        headers = [("Connection", connection)] if connection else []
        assert Request("GET", "/", version, headers).keep_alive is expected

    def test_with_headers_removes_case_insensitively_then_appends(self) -> None:
        request = Request("GET", "/", headers=[("Host", "a"), ("X-Forwarded-For", "1.2.3.4")])
        changed = request.with_headers(
            [("x-forwarded-client-cert", "By=spiffe://x")], {"x-forwarded-for"}
        )
        assert changed.headers == [("Host", "a"), ("x-forwarded-client-cert", "By=spiffe://x")]
        assert request.headers[1] == ("X-Forwarded-For", "1.2.3.4")  # the original is untouched

    def test_to_bytes_converts_absolute_form_to_origin_form(self) -> None:
        request = Request("GET", "http://httpbin.foo:8000/ip?x=1", headers=[("Accept", "*/*")])
        assert request.to_bytes() == (
            b"GET /ip?x=1 HTTP/1.1\r\nHost: httpbin.foo:8000\r\nAccept: */*\r\n\r\n"
        )
        assert request.to_bytes(origin_form=False).startswith(
            b"GET http://httpbin.foo:8000/ip?x=1 HTTP/1.1\r\nAccept: */*\r\n"
        )

    def test_round_trip_reframes_a_chunked_body(self) -> None:
        original = parse(
            b"PUT http://web.bar/put HTTP/1.1\r\nHost: web.bar\r\nX-Case: KeEp\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        assert original is not None
        wire = original.to_bytes()
        assert wire == (
            b"PUT /put HTTP/1.1\r\nHost: web.bar\r\nX-Case: KeEp\r\nContent-Length: 3\r\n\r\nabc"
        )
        again = parse(wire)
        assert again is not None
        assert (again.method, again.target, again.body) == ("PUT", "/put", b"abc")
        assert again.to_bytes() == wire

    def test_round_trip_keeps_every_byte_of_a_plain_request(self) -> None:
        request = parse(CURL_GET)
        assert request is not None
        assert request.to_bytes() == CURL_GET

    def test_empty_post_keeps_its_zero_content_length(self) -> None:
        request = parse(b"POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        assert request is not None
        assert request.to_bytes().endswith(b"Content-Length: 0\r\n\r\n")


class TestReadResponse:
    def test_content_length(self) -> None:
        response, rest = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: envoy\r\n\r\nokNEXT"
        )
        assert (response.status, response.reason, response.body) == (200, "OK", b"ok")
        assert response.header("server") == "envoy"
        assert rest == b"NEXT"

    def test_chunked(self) -> None:
        response, rest = parse_response(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"14\r\nRBAC: access denied\n\r\n0\r\n\r\nNEXT"
        )
        assert (response.status, response.body) == (403, b"RBAC: access denied\n")
        assert rest == b"NEXT"

    def test_until_eof(self) -> None:
        response, _ = parse_response(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        assert (response.version, response.body) == ("HTTP/1.0", b"all of it")

    def test_head_reads_no_body_despite_content_length(self) -> None:
        response, rest = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 249\r\n\r\nNEXT", head_only_for="HEAD"
        )
        assert response.body == b""
        assert response.header("content-length") == "249"
        assert rest == b"NEXT"

    def test_connect_success_has_no_body(self) -> None:
        response, rest = parse_response(
            b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01", head_only_for="CONNECT"
        )
        assert response.status == 200 and response.body == b""
        assert rest == b"\x16\x03\x01"

    def test_no_content_has_no_body(self) -> None:
        response, rest = parse_response(b"HTTP/1.1 204 No Content\r\n\r\nNEXT")
        assert response.body == b"" and rest == b"NEXT"

    def test_interim_responses_are_skipped(self) -> None:
        response, _ = parse_response(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
        )
        assert response.status == 201

    def test_missing_reason_phrase(self) -> None:
        response, _ = parse_response(b"HTTP/1.1 499\r\nContent-Length: 0\r\n\r\n")
        assert (response.status, response.reason) == (499, "")

    @pytest.mark.parametrize(
        "data",
        [b"", b"HTTP/1.1 200 OK\r\n", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2000 OK\r\n\r\n"],
        ids=["eof", "eof-in-head", "not-http", "bad-status"],
    )
    def test_malformed(self, data: bytes) -> None:
        with pytest.raises(HTTPParseError):
            parse_response(data)

    def test_to_bytes_round_trip(self) -> None:
        response, _ = parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nupstr\r\n0\r\n\r\n"
        )
        wire = response.to_bytes()
        assert wire == b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\n\r\nupstr"
        assert parse_response(wire)[0] == response.__class__(
            503, "Service Unavailable", [("content-length", "5")], b"upstr"
        )

    def test_to_bytes_head_only_keeps_the_headers(self) -> None:
        response = Response(200, "OK", [("Content-Length", "249")])
        assert (
            response.to_bytes(head_only=True) == b"HTTP/1.1 200 OK\r\nContent-Length: 249\r\n\r\n"
        )


class TestMakeResponse:
    def test_standard_headers_and_body(self) -> None:
        response, _ = parse_response(make_response(403, "RBAC: access denied"))
        assert (response.status, response.reason) == (403, "Forbidden")
        assert response.body == b"RBAC: access denied"
        assert response.header("content-length") == "19"
        assert response.header("content-type") == "text/plain"
        assert (response.header("date") or "").endswith("GMT")
        assert response.header("connection") is None

    def test_not_keep_alive_says_close(self) -> None:
        response, _ = parse_response(make_response(400, keep_alive=False))
        assert response.header("connection") == "close"

    def test_extra_headers_and_content_type_override(self) -> None:
        wire = make_response(
            200,
            b"{}",
            content_type="application/json",
            headers=[("Content-Type", "application/problem+json"), ("x-envoy-upstream", "1")],
        )
        response, _ = parse_response(wire)
        assert [v for k, v in response.headers if k.lower() == "content-type"] == [
            "application/problem+json"
        ]
        assert response.header("x-envoy-upstream") == "1"

    def test_no_content_has_no_length_and_no_body(self) -> None:
        wire = make_response(204, "ignored")
        assert wire.startswith(b"HTTP/1.1 204 No Content\r\n")
        assert b"content-length" not in wire
        assert wire.endswith(b"\r\n\r\n")

    def test_unnamed_status(self) -> None:
        assert make_response(499).startswith(b"HTTP/1.1 499 \r\n")
