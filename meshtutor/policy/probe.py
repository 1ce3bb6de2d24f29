"""Probes: one curl from a source container to a URL, as a learner would type it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from meshtutor.errors import ProbeSpecError

#: curl's --max-time when the probe gives none. Shorter than Envoy's 10 s upstream connect
#: timeout, so a dropped connection ends as curl's own timeout (exit 28) on every path.
DEFAULT_TIMEOUT = 5.0

_SOURCE_RE = re.compile(r"^([a-z0-9][-a-z0-9]*)/([a-z0-9][-a-z0-9.]*)(?::([a-z0-9][-a-z0-9]*))?$")
_METHOD_RE = re.compile(r"^[A-Z]+$")


@dataclass(frozen=True)
class ParsedURL:
    scheme: str
    host: str
    port: int
    path: str  # path without the query
    query: str

    @property
    def authority(self) -> str:
        """The Host header curl sends: the port is left out when it is the scheme's default."""
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    @property
    def path_with_query(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


#: A host name as curl accepts it and cluster DNS could answer: ASCII letters, digits, '-', '_'
#: and dots (an IPv4 address is such a name too; an IPv6 one comes in brackets, with colons).
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


def parse_url(url: str) -> ParsedURL:
    """Split a probe URL; raise ``ProbeSpecError`` saying what a valid one looks like."""
    example = "expected a URL such as http://httpbin.foo:8000/ip"
    if not isinstance(url, str) or "://" not in url:
        raise ProbeSpecError(f"{url!r} is not a URL: {example}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ProbeSpecError(f"{url!r} is not a valid URL ({exc}): {example}") from None
    if parts.scheme not in ("http", "https"):
        raise ProbeSpecError(f"{url!r}: only http:// and https:// URLs can be probed")
    if not parts.hostname:
        raise ProbeSpecError(f"{url!r} has no host name: {example}")
    if parts.username or parts.password:
        raise ProbeSpecError(f"{url!r}: user names and passwords in URLs are not supported")
    if ":" not in parts.hostname and not _HOST_NAME.fullmatch(parts.hostname):
        # curl refuses such a host itself (exit 3, its urlapi.c hostname_check): it is a typo,
        # not a probe whose outcome the mesh decides.
        raise ProbeSpecError(
            f"{url!r}: the host {parts.hostname!r} is not a name DNS can hold; use letters, "
            "digits, '-' and '.' (a Service name such as httpbin.foo) or an IP address"
        )
    return ParsedURL(
        scheme=parts.scheme,
        host=parts.hostname.lower(),
        port=port or (443 if parts.scheme == "https" else 80),
        path=parts.path or "/",
        query=parts.query,
    )


OUTSIDE = "outside"


def _curl_options(tokens: list[str], where: str) -> dict[str, Any]:
    """The few curl options a probe may carry after its URL: ``-k``/``--insecure`` and
    ``--cacert FILE`` (for https:// at the edge)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("-k", "--insecure"):
            out["insecure"] = True
        elif token == "--cacert":
            if i + 1 >= len(tokens):
                raise ProbeSpecError(f"{where}: --cacert needs a file (a PEM CA bundle)")
            out["cacert"] = tokens[i + 1]
            i += 1
        else:
            raise ProbeSpecError(
                f"{where}: unknown curl option {token!r} after the URL; probes take -k "
                "(--insecure) and --cacert FILE"
            )
        i += 1
    return out


@dataclass(frozen=True)
class Probe:
    """A request from ``source_namespace/source_deployment`` (container ``container``, or the
    pod's default container) to ``url``, like ``kubectl exec ... -- curl -X METHOD -H ... URL``.

    An ``outside`` probe runs on the learner's machine instead, outside the cluster: its URL
    names a Service's external address (``http://frontend-external.demo/``) or a public host
    name an ingress serves (``https://shop.example.com/``). ``insecure`` (curl ``-k``) and
    ``cacert`` (curl ``--cacert``) say how curl trusts a server certificate at the edge.
    """

    source_namespace: str
    source_deployment: str
    url: str
    container: str | None = None
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    timeout: float | None = None
    insecure: bool = False
    cacert: str | None = None

    @classmethod
    def from_outside(cls, url: str, **options: Any) -> Probe:
        return cls("", OUTSIDE, url, **options)

    @property
    def outside(self) -> bool:
        return self.source_namespace == "" and self.source_deployment == OUTSIDE

    def __post_init__(self) -> None:
        parse_url(self.url)
        if self.outside and self.container:
            raise ProbeSpecError("an outside probe runs on your machine: it has no container")
        if not _METHOD_RE.match(self.method):
            raise ProbeSpecError(
                f"method {self.method!r} must be an HTTP method such as GET or POST"
            )
        if self.timeout is not None and not 0 < self.timeout <= 300:
            raise ProbeSpecError(f"timeout must be between 0 and 300 seconds, got {self.timeout}")

    @property
    def parsed_url(self) -> ParsedURL:
        return parse_url(self.url)

    @property
    def effective_timeout(self) -> float:
        return self.timeout if self.timeout is not None else DEFAULT_TIMEOUT

    @property
    def source(self) -> str:
        if self.outside:
            return OUTSIDE
        return f"{self.source_namespace}/{self.source_deployment}"

    @classmethod
    def parse(cls, text: str) -> Probe:
        """Parse ``NAMESPACE/DEPLOYMENT[:CONTAINER]=URL`` or ``outside=URL``; curl's ``-k`` and
        ``--cacert FILE`` may follow the URL."""
        form = (
            "expected NAMESPACE/DEPLOYMENT[:CONTAINER]=URL, e.g. foo/sleep=http://httpbin.bar:8000/ip,"
            " or outside=URL"
        )
        source, sep, url = text.partition("=")
        if not sep or not url:
            raise ProbeSpecError(f"probe {text!r}: {form}")
        url, *rest = url.split()
        options = _curl_options(rest, f"probe {text!r}")
        if source.strip() == OUTSIDE:
            try:
                return cls.from_outside(url.strip(), **options)
            except ProbeSpecError as exc:
                raise ProbeSpecError(f"probe {text!r}: {exc}") from None
        match = _SOURCE_RE.match(source.strip())
        if not match:
            raise ProbeSpecError(f"probe {text!r}: the source {source!r} is not valid; {form}")
        namespace, deployment, container = match.groups()
        try:
            return cls(namespace, deployment, url.strip(), container, **options)
        except ProbeSpecError as exc:
            raise ProbeSpecError(f"probe {text!r}: {exc}") from None

    @classmethod
    def from_entry(cls, entry: Any, where: str) -> Probe:
        """Build a probe from one entry of a probe file (``from``, ``container``, ``method``,
        ``url``, ``headers``, ``timeout``); ``where`` prefixes errors (file:line)."""
        allowed = {"from", "container", "method", "url", "headers", "timeout", "insecure", "cacert"}
        if not isinstance(entry, dict):
            raise ProbeSpecError(f"{where}: each probe must be a mapping with from and url")
        unknown = sorted(set(map(str, entry)) - allowed)
        if unknown:
            raise ProbeSpecError(
                f"{where}: unknown field {unknown[0]!r}; expected {', '.join(sorted(allowed))}"
            )
        for key in ("from", "url"):
            if not isinstance(entry.get(key), str) or not entry.get(key):
                raise ProbeSpecError(f"{where}: field {key!r} is required and must be a string")
        outside = entry["from"] == OUTSIDE
        match = _SOURCE_RE.match(entry["from"])
        if not outside and (not match or match.group(3)):
            raise ProbeSpecError(
                f"{where}: field 'from' must be NAMESPACE/DEPLOYMENT or outside, "
                f"got {entry['from']!r}"
            )
        insecure = entry.get("insecure", False)
        if not isinstance(insecure, bool):
            raise ProbeSpecError(f"{where}: field 'insecure' must be true or false (curl -k)")
        cacert = entry.get("cacert")
        if cacert is not None and (not isinstance(cacert, str) or not cacert):
            raise ProbeSpecError(f"{where}: field 'cacert' must be a file name (a PEM CA bundle)")
        container = entry.get("container")
        if container is not None and not isinstance(container, str):
            raise ProbeSpecError(f"{where}: field 'container' must be a string")
        method = entry.get("method", "GET")
        if not isinstance(method, str):
            raise ProbeSpecError(f"{where}: field 'method' must be a string such as GET")
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
            for k, v in headers.items()
        ):
            raise ProbeSpecError(f"{where}: field 'headers' must map header names to strings")
        timeout = entry.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
        ):
            raise ProbeSpecError(f"{where}: field 'timeout' must be a number of seconds")
        try:
            return cls(
                "" if outside else match.group(1),  # type: ignore[union-attr]
                OUTSIDE if outside else match.group(2),  # type: ignore[union-attr]
                entry["url"],
                container,
                method.upper(),
                {k: str(v) for k, v in headers.items()},
                float(timeout) if timeout is not None else None,
                insecure,
                cacert,
            )
        except ProbeSpecError as exc:
            raise ProbeSpecError(f"{where}: {exc}") from None

    def describe(self) -> str:
        options = (" -k" if self.insecure else "") + (
            f" --cacert {self.cacert}" if self.cacert else ""
        )
        return f"{self.source}{':' + self.container if self.container else ''}={self.url}{options}"
