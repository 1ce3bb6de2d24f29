"""curl, wget, nc and openssl in a pod: the container's traffic, never the host's.

* **curl** is the real curl, run by :meth:`PodHost.curl` with the sandbox's routing options.
  Its command line is checked here first against curl's own option table
  (``src/tool_getparam.c``): options that would reach the machine meshtutor runs on (its
  files: ``-K``, ``--cacert``, ``--unix-socket``, ``-o /etc/x``…; its network outside the
  mesh: ``--resolve``, ``--connect-to``, ``-x``, ``--interface``…) are refused with curl's
  exit code 2, file arguments (``-d @f``, ``-T f``, ``-H @f``, ``-w @f``, ``-o f``) are read
  from or written to the *pod's* files, and ``--proto =http,https`` is appended last, so no
  URL (however curl globs or redirects it) reaches ``file:``, ``dict:`` or ``gopher:``. A
  ``file://`` URL is answered from the pod's files, as curl in the pod would.
* **wget** (busybox's) speaks HTTP/1.1 itself over :meth:`PodHost.connect`, with busybox's
  request (``User-Agent: Wget``, ``Connection: close``) and messages (``networking/wget.c``).
* **nc** is busybox's ``nc_bloaty.c`` (Alpine builds NC_110_COMPAT) or, in the Ubuntu-based
  istio-proxy image, OpenBSD netcat's messages; both stream stdin to the connection and back.
* **openssl** (istio-proxy only: Alpine's curl image has none) offers ``s_client`` with the
  certificate chain the server sent, read from the handshake itself, and ``version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import posixpath
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from meshtutor.kubeapi.shell import limits
from meshtutor.kubeapi.shell.coreutils import UsageError, bad_usage, getopt
from meshtutor.kubeapi.shell.images import words
from meshtutor.kubeapi.shell.runtime import Proc, decode, encode, program
from meshtutor.kubeapi.shell.streams import Output

__all__ = ["CurlPlan", "plan_curl"]

if TYPE_CHECKING:
    from cryptography import x509

ReadFile = Callable[[str], bytes | None]
CheckWritable = Callable[[str], None]

# --- curl ----------------------------------------------------------------------------------

ALLOWED_PROTOCOLS = "=http,https"
UNAVAILABLE = "is not available in meshtutor's sandbox pods"

# Long options taking an argument whose value is safe as given.
_CURL_VALUE_OK = words(
    """
    aws-sigv4 cert-type ciphers connect-timeout continue-at create-file-mode curves data-raw
    delegation ech expect100-timeout form-string ftp-account ftp-alternative-to-user
    ftp-method ftp-ssl-ccc-mode happy-eyeballs-timeout-ms haproxy-clientip hostpubmd5
    hostpubsha256 httpsig-algo httpsig-headers httpsig-keyid ip-tos keepalive-cnt
    keepalive-time key-type limit-rate login-options mail-auth mail-from mail-rcpt
    max-filesize max-redirs max-time noproxy oauth2-bearer parallel-max parallel-max-host
    pass proto proto-default proto-redir proxy-cert-type proxy-ciphers proxy-header
    proxy-key-type proxy-pass proxy-service-name proxy-tls13-ciphers proxy-tlsauthtype
    proxy-tlspassword proxy-tlsuser proxy-user quote range rate referer request
    request-target retry retry-delay retry-max-time sasl-authzid service-name sigalgs
    socks5-gssapi-service speed-limit speed-time telnet-option tftp-blksize tls-max
    tls13-ciphers tlsauthtype tlspassword tlsuser trace-config upload-flags user-agent
    vlan-priority krb krb4 pinnedpubkey proxy-pinnedpubkey
    """
)
# Options taking an argument that may name a file to read ("@file", a file path).
_CURL_VALUE_FILE_IN = words(
    """
    data data-ascii data-binary data-urlencode json url-query header write-out upload-file
    cookie form user url
    """
)
# Options taking an argument that names a file to write; only these targets are allowed.
_CURL_VALUE_FILE_OUT = frozenset(
    ["output", "dump-header", "cookie-jar", "trace", "trace-ascii", "stderr", "libcurl"]
)
_STREAM_TARGETS = frozenset({"-", "%", "/dev/null", "/dev/stdout", "/dev/stderr"})
# Options with an argument that would read the host's files, use its network, or change
# where the container's traffic goes.
_CURL_VALUE_REFUSED = words(
    """
    abstract-unix-socket alt-svc cacert capath cert config connect-to crlfile dns-interface
    dns-ipv4-addr dns-ipv6-addr dns-servers doh-url egd-file engine etag-compare etag-save
    ftp-port hsts httpsig-key interface ipfs-gateway key knownhosts local-port netrc-file
    output-dir preproxy proxy proxy-cacert proxy-capath proxy-cert proxy-crlfile proxy-key
    proxy1.0 pubkey random-file resolve socks4 socks4a socks5 socks5-hostname ssl-sessions
    time-cond unix-socket variable expand-url expand-data
    """
)
_CURL_FLAGS = words(
    """
    alpn anyauth append basic buffer ca-native cert-status clobber compressed compressed-ssh
    crlf digest disable disable-eprt disable-epsv disallow-username-in-url doh-cert-status
    doh-insecure dump-ca-embed eprt epsv fail fail-early fail-with-body false-start follow
    form-escape ftp-create-dirs ftp-pasv ftp-pret ftp-skip-pasv-ip ftp-ssl ftp-ssl-ccc
    ftp-ssl-control ftp-ssl-reqd get globoff haproxy-protocol head help http0.9 http1.0
    http1.1 http2 http2-prior-knowledge http3 http3-only ignore-content-length include
    insecure ipv4 ipv6 junk-session-cookies keepalive list-only location location-trusted
    mail-rcpt-allowfails manual metalink mptcp negotiate no-buffer npn ntlm ntlm-wb out-null
    parallel parallel-immediate path-as-is post301 post302 post303 progress-bar
    progress-meter proxy-anyauth proxy-basic proxy-ca-native proxy-digest proxy-http2
    proxy-http3 proxy-insecure proxy-negotiate proxy-ntlm proxy-ssl-allow-beast
    proxy-ssl-auto-client-cert proxy-tlsv1 proxytunnel raw remote-time remove-on-error
    retry-all-errors retry-connrefused sasl-ir sessionid show-error show-headers silent
    skip-existing socks5-basic socks5-gssapi socks5-gssapi-nec ssl ssl-allow-beast
    ssl-auto-client-cert ssl-no-revoke ssl-reqd ssl-revoke-best-effort sslv2 sslv3
    styled-output suppress-connect-headers tcp-fastopen tcp-nodelay tftp-no-options
    tls-earlydata tlsv1 tlsv1.0 tlsv1.1 tlsv1.2 tlsv1.3 tr-encoding trace-ids trace-time
    use-ascii verbose version xattr
    """
)
# Flags that write files named after the URL, or read the host user's ~/.netrc.
_CURL_FLAGS_REFUSED = words(
    """
    netrc netrc-optional remote-name remote-name-all remote-header-name next create-dirs
    """
)
_CURL_SHORT = {
    "a": "append", "b": "cookie", "c": "cookie-jar", "d": "data", "e": "referer", "f": "fail",
    "g": "globoff", "h": "help", "i": "include", "j": "junk-session-cookies", "k": "insecure",
    "l": "list-only", "m": "max-time", "n": "netrc", "o": "output", "p": "proxytunnel",
    "q": "disable", "r": "range", "s": "silent", "t": "telnet-option", "u": "user",
    "v": "verbose", "w": "write-out", "x": "proxy", "y": "speed-time", "z": "time-cond",
    "A": "user-agent", "B": "use-ascii", "C": "continue-at", "D": "dump-header", "E": "cert",
    "F": "form", "G": "get", "H": "header", "I": "head", "J": "remote-header-name",
    "K": "config", "L": "location", "M": "manual", "N": "no-buffer", "O": "remote-name",
    "P": "ftp-port", "Q": "quote", "R": "remote-time", "S": "show-error", "T": "upload-file",
    "U": "proxy-user", "V": "version", "X": "request", "Y": "speed-limit", "Z": "parallel",
    "0": "http1.0", "1": "tlsv1", "2": "sslv2", "3": "sslv3", "4": "ipv4", "6": "ipv6",
    "#": "progress-bar", ":": "next",
}  # fmt: skip
_CURL_TAKES_VALUE = (
    _CURL_VALUE_OK | _CURL_VALUE_FILE_IN | _CURL_VALUE_FILE_OUT | _CURL_VALUE_REFUSED
)
_CURL_LONG = _CURL_TAKES_VALUE | _CURL_FLAGS | _CURL_FLAGS_REFUSED
_DATA_OPTIONS = frozenset({"data", "data-ascii", "data-binary", "json"})


class CurlRefused(Exception):
    """A command line curl would reject (or that would leave the pod): message, exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class CurlPlan:
    """What to hand the host's curl, and what the pod does around it."""

    argv: list[str] = field(default_factory=lambda: ["curl"])
    reads_stdin: bool = False
    stdin: bytes | None = None  # a pod file fed as curl's stdin (-T f, --data-binary @f)
    output_file: str | None = None  # curl's stdout goes to this pod file (-o f)
    urls: list[str] = field(default_factory=list)
    wants_write_out: bool = False
    warnings: list[str] = field(default_factory=list)  # printed before curl runs


def _refuse(label: str, what: str = UNAVAILABLE) -> CurlRefused:
    return CurlRefused(
        f"curl: option {label}: {what}\n"
        "curl: try 'curl --help' or 'curl --manual' for more information\n"
    )


def _spelling(label: str, name: str) -> str:
    """How to pass an option on: short as typed, long by its full name (no abbreviation)."""
    return label if not label.startswith("--") else f"--{name}"


def _resolve_long(name: str) -> str:
    """A long option by its exact name, or an unambiguous prefix (curl 7's rule)."""
    base = name[3:] if name.startswith("no-") and name[3:] in _CURL_FLAGS else name
    if base in _CURL_LONG:
        return base
    matches = [n for n in _CURL_LONG if n.startswith(base)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise _refuse(f"--{name}", "is ambiguous")
    raise _refuse(f"--{name}", "is unknown")


def _split_options(args: list[str]) -> list[tuple[str, str, str | None]]:
    """``(label, long name, value)`` per option, ``("", "url", URL)`` per URL, in order."""
    out: list[tuple[str, str, str | None]] = []
    i = 0
    end_of_options = False
    while i < len(args):
        arg = args[i]
        i += 1
        if end_of_options or not arg.startswith("-") or arg == "-":
            out.append(("", "url", arg))
            continue
        if arg == "--":
            end_of_options = True
            continue
        if arg.startswith("--"):
            name, eq, inline = arg[2:].partition("=")
            long = _resolve_long(name)
            label = f"--{name}"
            if long in _CURL_TAKES_VALUE:
                if eq:
                    value = inline
                elif i < len(args):
                    value = args[i]
                    i += 1
                else:
                    raise _refuse(label, "requires parameter")
                out.append((label, long, value))
            else:
                out.append(
                    (label, ("no-" if name.startswith("no-") and long != name else "") + long, None)
                )
            continue
        j = 1
        while j < len(arg):
            letter = arg[j]
            long_name = _CURL_SHORT.get(letter)
            label = f"-{letter}"
            if long_name is None:
                raise _refuse(label, "is unknown")
            if long_name in _CURL_TAKES_VALUE:
                value = arg[j + 1 :]
                if not value:
                    if i >= len(args):
                        raise _refuse(label, "requires parameter")
                    value = args[i]
                    i += 1
                out.append((label, long_name, value))
                break
            out.append((label, long_name, None))
            j += 1
    return out


def plan_curl(argv: list[str], read_file: ReadFile, writable: CheckWritable) -> CurlPlan:
    """Check a curl command line and map its file arguments to the pod's files.

    ``read_file(path)`` reads a pod file (None if missing); ``writable(path)`` raises the
    OSError a pod would for writing ``path``.
    """
    plan = CurlPlan()
    stdin_users = 0
    for label, name, value in _split_options(argv[1:]):
        base = name[3:] if name.startswith("no-") else name
        if name == "url":
            assert value is not None
            _check_url(value)
            plan.urls.append(value)
            plan.argv.append(value)
            continue
        if value is None:
            if base in _CURL_FLAGS_REFUSED:
                raise _refuse(label)
            plan.argv.append(_spelling(label, name))
            continue
        if base in _CURL_VALUE_REFUSED:
            raise _refuse(label)
        if base == "write-out":
            if "%output{" in value:
                raise _refuse(label)
            plan.wants_write_out = True
        if base == "url":
            _check_url(value)
            plan.urls.append(value)
        if base == "user" and ":" not in value:
            value += ":"  # curl would prompt for the password on the host's terminal
        if base in _CURL_VALUE_FILE_OUT:
            if value in _STREAM_TARGETS:
                plan.argv += [_spelling(label, name), value]
                continue
            if base != "output":
                raise _refuse(label)
            if plan.output_file is not None:
                raise _refuse(label, "more than one output file " + UNAVAILABLE)
            try:
                writable(value)
            except OSError as e:
                raise CurlRefused(
                    f"Warning: Failed to open the file {value}: {e.strerror}\n"
                    "curl: (23) Failure writing output to destination\n",
                    23,
                ) from None
            plan.output_file = value
            plan.argv += [_spelling(label, name), "-"]
            continue
        if base in _CURL_VALUE_FILE_IN:
            mapped = _map_file_argument(label, base, value, read_file, plan)
            if mapped is _STDIN:
                stdin_users += 1
                stdin_value = "-" if base in ("upload-file", "cookie") else "@-"
                plan.argv += [_spelling(label, name), stdin_value]
                continue
            plan.argv += [_spelling(label, name), mapped]
            continue
        plan.argv += [_spelling(label, name), value]
    if plan.output_file is not None and (plan.wants_write_out or len(plan.urls) > 1):
        raise _refuse("-o", "writing a file with more than the body " + UNAVAILABLE)
    if stdin_users > 1:
        raise _refuse("@-", "more than one input read from stdin " + UNAVAILABLE)
    plan.reads_stdin = stdin_users == 1 and plan.stdin is None
    plan.argv += ["--proto", ALLOWED_PROTOCOLS, "--proto-redir", ALLOWED_PROTOCOLS]
    return plan


_STDIN = "\0stdin"


def _map_file_argument(
    label: str,
    base: str,
    value: str,
    read_file: ReadFile,
    plan: CurlPlan,
) -> str:
    """The value to pass for an option that may name a file; _STDIN if curl reads stdin."""
    if base == "url" or base == "user":
        return value
    if base == "form":
        if "@" in value or "<" in value:
            raise _refuse(label, "with a file " + UNAVAILABLE)
        return value
    if base == "cookie":
        if "=" in value:
            return value
        if value == "-":
            return _STDIN
        raise _refuse(label, "with a file " + UNAVAILABLE)
    if base == "upload-file":
        if value in ("-", "."):
            return _STDIN
        content = read_file(value)
        if content is None:
            raise CurlRefused(
                f"curl: Can't open '{value}'!\ncurl: try 'curl --help' or 'curl --manual' for more information\n",
                26,
            )
        plan.stdin = content
        return _STDIN
    # "@file" forms: data*, json, url-query, header, write-out; data-urlencode also "name@file".
    if base in ("data-urlencode", "url-query"):
        name, at, path = value.partition("@")
        if not at or "=" in name:
            return value
    elif not value.startswith("@"):
        return value
    else:
        name, path = "", value[1:]
    if path == "-":
        return _STDIN
    content = read_file(path)
    if content is None:
        if base in _DATA_OPTIONS:
            # curl warns and posts nothing (tool_getparam.c, "Couldn't read data from file").
            plan.warnings.append(
                f'Warning: Couldn\'t read data from file "{path}", this makes an empty POST.\n'
            )
            return ""
        raise _refuse(label, "error encountered when reading a file")
    if base == "data-binary" and plan.stdin is None:
        plan.stdin = content
        return _STDIN
    text = decode(content)
    if "\0" in text:
        raise _refuse(label, "with binary data " + UNAVAILABLE)
    if base in ("data", "data-ascii"):
        return "".join(text.split("\r")).replace("\n", "") if not text.startswith("@") else text
    if base in ("data-urlencode", "url-query"):
        return f"{name}={text}"
    if base == "header":
        return text.splitlines()[0] if text.strip() else ""
    return text


_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*)://")


def _check_url(url: str) -> None:
    m = _SCHEME.match(url)
    if m and m.group(1).lower() not in ("http", "https", "file"):
        raise CurlRefused(
            f'curl: (1) Protocol "{m.group(1)}" not supported or disabled in libcurl\n', 1
        )


@program("curl")
async def curl(proc: Proc) -> int:
    files = proc.files

    def read_file(path: str) -> bytes | None:
        full = proc.path(path)
        return None if files.is_dir(full) else files.read(full)

    def writable(path: str) -> None:
        files.check_writable(proc.path(path))

    try:
        plan = plan_curl(proc.argv, read_file, writable)
    except CurlRefused as refused:
        await proc.io.stderr.write(encode(refused.message))
        return refused.code
    file_urls = [u for u in plan.urls if u.lower().startswith("file://")]
    if file_urls:
        if len(file_urls) != len(plan.urls):
            await proc.io.stderr.write(
                b"curl: (1) mixing file:// and network URLs " + encode(UNAVAILABLE) + b"\n"
            )
            return 2
        return await _curl_files(proc, file_urls)
    for warning in plan.warnings:
        await proc.io.stderr.write(encode(warning))
    stdin = plan.stdin if plan.stdin is not None else b""
    if plan.reads_stdin:
        stdin = await proc.io.stdin.read_all(limits.MAX_STDIN)
    out, err, code = await proc.session.host.curl(plan.argv, stdin)
    if plan.output_file is not None:
        try:
            target = files.open_write(proc.path(plan.output_file), append=False)
            await target.write(out)
        except OSError:
            err += b"curl: (23) Failure writing output to destination\n"
            code = code or 23
    else:
        await proc.out(out)
    await proc.io.stderr.write(err)
    return code


async def _curl_files(proc: Proc, urls: list[str]) -> int:
    for url in urls:
        path = unquote(urlsplit(url).path)
        data = proc.files.read(path)
        if data is None or proc.files.is_dir(path):
            await proc.io.stderr.write(encode(f"curl: (37) Couldn't open file {path}\n"))
            return 37
        await proc.out(data)
    return 0


# --- connections ---------------------------------------------------------------------------


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host, int(port) if port else default_port


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _peer(writer: asyncio.StreamWriter, port: int) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{port}" if isinstance(peer, tuple) else f"?:{port}"


async def _connect(
    proc: Proc, host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await proc.session.host.connect(host, port, timeout)
    except TimeoutError:
        raise TimeoutError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT)) from None


# --- wget ----------------------------------------------------------------------------------

WGET_LONG = {
    "quiet": "q",
    "output-document": "O",
    "timeout": "T",
    "user-agent": "U",
    "header": "H",
    "post-data": "D",
    "spider": "s",
    "server-response": "S",
    "no-check-certificate": "k",
    "continue": "c",
    "directory-prefix": "P",
    "tries": "t",
    "proxy": "Y",
    "no-verbose": "",
}


class _WgetError(Exception):
    pass


@program("wget")
async def wget(proc: Proc) -> int:
    try:
        opts, urls = getopt(proc.argv[1:], "qO:T:U:H:D:sSkcP:t:Y:", WGET_LONG)
    except UsageError as e:
        return await bad_usage(
            proc,
            e,
            "[-cqS] [--spider] [-O FILE] [-o LOGFILE] [--header STR]\n\t[--post-data STR | --post-file FILE] [-Y on/off]\n\t[-P DIR] [-U AGENT] [-T SEC] URL...",
        )
    if not urls:
        return await proc.usage("[-cqS] [--spider] [-O FILE] [-o LOGFILE] [--header STR] URL...")
    quiet = "q" in opts
    timeout = float(opts["T"][-1]) if "T" in opts else limits.CONNECT_TIMEOUT
    try:
        for url in urls:
            await _wget_one(proc, url, opts, quiet, timeout)
    except _WgetError as e:
        await proc.error(str(e))
        return 1
    return 0


async def _wget_one(
    proc: Proc, url: str, opts: dict[str, list[str]], quiet: bool, timeout: float
) -> None:
    target_name = opts["O"][-1] if "O" in opts else None
    for _ in range(16):
        scheme, _, rest = url.partition("://")
        if not _ or scheme.lower() not in ("http", "https"):
            if not _:
                scheme, rest = "http", url
            else:
                raise _WgetError(f"not an http or ftp url: {url}")
        https = scheme.lower() == "https"
        hostport, _slash, path = rest.partition("/")
        host, port = _split_host_port(hostport, 443 if https else 80)
        if target_name is None:
            target_name = posixpath.basename(path.split("?")[0]) or "index.html"
        try:
            reader, writer = await _connect(proc, host, port, timeout)
        except socket.gaierror:
            raise _WgetError(f"bad address '{host}'") from None
        except TimeoutError:
            raise _WgetError("download timed out") from None
        except OSError as e:
            reason = os.strerror(e.errno) if e.errno else str(e)
            raise _WgetError(f"can't connect to remote host ({host}): {reason}") from None
        try:
            if not quiet:
                await proc.io.stderr.write(
                    encode(f"Connecting to {hostport} ({_peer(writer, port)})\n")
                )
            if https:
                if "k" not in opts:
                    await proc.error("note: TLS certificate validation not implemented")
                await writer.start_tls(_insecure_context(), server_hostname=host)
            post = opts.get("D", [None])[-1]
            lines = [
                f"{'POST' if post is not None else 'GET'} /{path} HTTP/1.1",
                f"Host: {hostport}",
                f"User-Agent: {(opts.get('U') or ['Wget'])[-1]}",
                "Connection: close",
                *opts.get("H", []),
            ]
            if post is not None:
                lines += [
                    "Content-Type: application/x-www-form-urlencoded",
                    f"Content-Length: {len(encode(post))}",
                ]
            writer.write(encode("\r\n".join(lines) + "\r\n\r\n" + (post or "")))
            await writer.drain()
            status_line, headers = await _read_head(reader, timeout)
            if "S" in opts:
                shown = "".join(
                    f"  {h}\n" for h in [status_line, *(f"{k}: {v}" for k, v in headers)]
                )
                await proc.io.stderr.write(encode(shown))
            status = (
                int(status_line.split()[1])
                if len(status_line.split()) > 1 and status_line.split()[1].isdigit()
                else 0
            )
            location = next((v for k, v in headers if k == "location"), None)
            if status in (301, 302, 303, 307, 308) and location:
                url = (
                    location
                    if "://" in location
                    else f"{scheme}://{hostport}{location if location.startswith('/') else '/' + location}"
                )
                continue
            if not 200 <= status <= 204:
                raise _WgetError(f"server returned error: {status_line}")
            if "s" in opts:
                if not quiet:
                    await proc.io.stderr.write(b"remote file exists\n")
                return
            await _wget_body(proc, reader, headers, target_name, quiet, timeout)
            return
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            reason = getattr(e, "strerror", None) or "Connection reset by peer"
            raise _WgetError(f"error getting response: {reason}") from None
        except TimeoutError:
            raise _WgetError("download timed out") from None
        except ssl.SSLError as e:
            raise _WgetError(f"TLS error: {e.reason or e}") from None
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    raise _WgetError("too many redirections")


async def _read_head(
    reader: asyncio.StreamReader, timeout: float
) -> tuple[str, list[tuple[str, str]]]:
    async def line() -> str:
        raw = await asyncio.wait_for(reader.readline(), timeout)
        if not raw:
            raise ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
        return re.sub(r"[\x00-\x1f].*", "", decode(raw), flags=re.DOTALL)

    status = await line()
    while status.split()[1:2] in (["100"], []) and status:
        while await line():
            pass
        status = await line()
    headers = []
    count = 0
    while text := await line():
        name, _, value = text.partition(":")
        headers.append((name.strip().lower(), value.strip()))
        count += 1
        if count > 100:
            raise ConnectionResetError(errno.EPROTO, "too many headers")
    return status, headers


async def _wget_body(
    proc: Proc,
    reader: asyncio.StreamReader,
    headers: list[tuple[str, str]],
    name: str,
    quiet: bool,
    timeout: float,
) -> None:
    to_stdout = name == "-"
    out: Output = proc.io.stdout
    if not to_stdout:
        try:
            out = proc.open_output(name)
        except OSError as e:
            raise _WgetError(f"can't open '{name}': {e.strerror}") from None
    if not quiet:
        await proc.io.stderr.write(
            b"writing to stdout\n" if to_stdout else encode(f"saving to '{name}'\n")
        )
    length = next((int(v) for k, v in headers if k == "content-length" and v.isdigit()), None)
    chunked = any(k == "transfer-encoding" and v.lower() == "chunked" for k, v in headers)
    total = 0

    async def read(n: int) -> bytes:
        return await asyncio.wait_for(reader.read(n), timeout)

    if chunked:
        while True:
            size_line = await asyncio.wait_for(reader.readline(), timeout)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            data = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
            await out.write(data[:-2])
            total += size
    else:
        while length is None or total < length:
            data = await read(min(65536, length - total) if length is not None else 65536)
            if not data:
                if length is not None:
                    raise _WgetError("connection closed prematurely")
                break
            await out.write(data)
            total += len(data)
    if not quiet:
        curfile = posixpath.basename(name) or name
        if length is not None and not chunked:
            meter = f"{curfile} 100% |{'*' * 32}| {_size5(total)}  0:00:00 ETA\n"
        else:
            meter = f"{curfile} {_size5(total)} --:--:-- ETA\n"
        await proc.io.stderr.write(encode(meter))
        await proc.io.stderr.write(
            b"written to stdout\n" if to_stdout else encode(f"'{name}' saved\n")
        )


def _size5(n: int) -> str:
    """busybox's smart_ulltoa5: five columns, scaled by 1024 with a unit past 99999."""
    if n < 100000:
        return f"{n:5d}"
    units = "kMGTPEZY"
    value = float(n)
    for unit in units:
        value /= 1024
        if value < 1000:
            return f"{value:4.0f}{unit}" if value >= 10 else f"{value:3.1f}{unit}"
    return f"{value:4.0f}Y"


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --- nc ------------------------------------------------------------------------------------


@program("nc")
async def nc(proc: Proc) -> int:
    busybox = proc.busybox
    spec = (
        "np:s:ubvw:lki:o:ze:"
        if busybox
        else "46CDdFhklNnrStUuvzc:e:I:i:M:m:O:P:p:q:s:T:V:W:w:X:x:Z:"
    )
    try:
        opts, args = getopt(proc.argv[1:], spec)
    except UsageError as e:
        return await bad_usage(
            proc,
            e,
            "[OPTIONS] HOST PORT  - connect\nnc [OPTIONS] -l -p PORT [HOST] [PORT]  - listen",
        )
    if "l" in opts or "u" in opts or "e" in opts:
        flag = "-l" if "l" in opts else "-u" if "u" in opts else "-e"
        await proc.error(f"{flag}: listening, UDP and running programs {UNAVAILABLE}")
        return 1
    if len(args) != 2:
        return await proc.usage("[OPTIONS] HOST PORT  - connect")
    host, port_text = args
    verbose = len(opts.get("v", []))
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        await proc.error(
            f"bad port '{port_text}'" if busybox else f"port number invalid: {port_text}"
        )
        return 1
    port = int(port_text)
    wait = float(opts["w"][-1]) if "w" in opts else None
    try:
        reader, writer = await _connect(proc, host, port, wait or limits.CONNECT_TIMEOUT)
    except socket.gaierror as e:
        if busybox:
            await proc.error(f"bad address '{host}'")
        else:
            await proc.error(f'getaddrinfo for host "{host}" port {port}: {e.strerror}')
        return 1
    except OSError as e:
        err = e.errno or errno.ECONNREFUSED
        if busybox:
            if verbose > 1 or (verbose and err != errno.ECONNREFUSED):
                await proc.error(f"{host} ({host}:{port}): {os.strerror(err)}")
        elif verbose:
            await proc.error(f"connect to {host} port {port} (tcp) failed: {os.strerror(err)}")
        return 1
    try:
        if verbose:
            peer = _peer(writer, port)
            if busybox:
                await proc.io.stderr.write(encode(f"{host} ({peer}) open\n"))
            else:
                # OpenBSD netcat names the address only when it had to resolve a name.
                address = peer.rpartition(":")[0]
                shown = host if _is_address(host) else f"{host} ({address})"
                await proc.io.stderr.write(
                    encode(f"Connection to {shown} {port} port [tcp/*] succeeded!\n")
                )
        if "z" in opts:
            return 0
        shutdown = busybox or "N" in opts
        return await _shovel(proc, reader, writer, wait, shutdown)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _shovel(
    proc: Proc,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    wait: float | None,
    shutdown: bool,
) -> int:
    """nc's readwrite(): stdin to the network and the network to stdout, until both end."""
    stdin_done = asyncio.Event()

    async def upstream() -> None:
        try:
            while data := await proc.io.stdin.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            stdin_done.set()
            if shutdown and writer.can_write_eof():
                with contextlib.suppress(OSError):
                    writer.write_eof()

    async def downstream() -> None:
        while True:
            try:
                if wait is not None and stdin_done.is_set():
                    data = await asyncio.wait_for(reader.read(65536), wait)
                else:
                    data = await reader.read(65536)
            except (TimeoutError, ConnectionError):
                return
            if not data:
                return
            await proc.out(data)

    up = asyncio.ensure_future(upstream())
    try:
        await downstream()
        # busybox nc keeps reading stdin after the peer has gone (nc 1.10's loop).
        await up
    finally:
        up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await up
    return 0


# --- openssl -------------------------------------------------------------------------------

OPENSSL_VERSION = "OpenSSL 3.0.13 30 Jan 2024 (Library: OpenSSL 3.0.13 30 Jan 2024)"
_VERIFY_TEXT = {
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
}


@program("openssl")
async def openssl(proc: Proc) -> int:
    args = proc.argv[1:]
    if not args or args[0] == "version":
        await proc.out(
            OPENSSL_VERSION.split(" (")[0] + "\n" if not args[1:] else OPENSSL_VERSION + "\n"
        )
        return 0
    if args[0] != "s_client":
        await proc.io.stderr.write(
            encode(f"Invalid command '{args[0]}'; type \"help\" for a list.\n")
        )
        return 1
    return await _s_client(proc, args[1:])


async def _s_client(proc: Proc, args: list[str]) -> int:
    from cryptography import x509

    from meshtutor.sandbox.handshake import HandshakeRecorder

    connect = "localhost:4433"
    servername: str | None = None
    showcerts = brief = quiet = False
    alpn: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        value = args[i + 1] if i + 1 < len(args) else None
        if (
            arg in ("-connect", "-servername", "-alpn", "-verify", "-CAfile", "-cert", "-key")
            and value is None
        ):
            await proc.io.stderr.write(
                encode(f"s_client: Option {arg} needs a value\ns_client: Use -help for summary.\n")
            )
            return 1
        if arg == "-connect":
            connect, i = value or connect, i + 2
        elif arg == "-servername":
            servername, i = value, i + 2
        elif arg == "-alpn":
            alpn, i = (value or "").split(","), i + 2
        elif arg in ("-verify", "-CAfile"):
            i += 2
        elif arg == "-showcerts":
            showcerts, i = True, i + 1
        elif arg == "-brief":
            brief, i = True, i + 1
        elif arg == "-quiet":
            quiet, i = True, i + 1
        elif arg in (
            "-tls1_2",
            "-tls1_3",
            "-no_tls1_3",
            "-ign_eof",
            "-crlf",
            "-state",
            "-prexit",
            "-noservername",
        ):
            if arg == "-noservername":
                servername = ""
            i += 1
        else:
            await proc.io.stderr.write(
                encode(f"s_client: Unknown option: {arg}\ns_client: Use -help for summary.\n")
            )
            return 1
    host, port = _split_host_port(connect, 443)
    try:
        _reader, writer = await _connect(proc, host, port, limits.CONNECT_TIMEOUT)
    except socket.gaierror as e:
        await proc.io.stderr.write(
            encode(f"BIO_lookup_ex:system lib:{e.strerror}\nconnect:errno=0\n")
        )
        return 1
    except OSError as e:
        await proc.io.stderr.write(
            encode(f"BIO_connect:{os.strerror(e.errno or 111)}\nconnect:errno={e.errno or 111}\n")
        )
        return 1
    await proc.out("CONNECTED(00000003)\n")
    ctx = _insecure_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    recorder = HandshakeRecorder(capacity=1)
    recorder.attach(ctx, side="client")
    # s_client sends the -connect host as SNI unless it is an address (OpenSSL 1.1.1+).
    sni = servername if servername is not None else (None if _is_address(host) else host)
    try:
        try:
            await writer.start_tls(ctx, server_hostname=sni or None)
        except (ssl.SSLError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
            if isinstance(e, ConnectionResetError):
                await proc.io.stderr.write(b"write:errno=104\n")
            else:
                await proc.io.stderr.write(encode(f"error:SSL routines::{reason}\n"))
            await proc.out(
                "---\nno peer certificate available\n---\nNo client certificate CA names sent\n---\n"
            )
            return 1
        ssl_object = writer.get_extra_info("ssl_object")
        trace = recorder.trace_for(ssl_object)
        chain = [x509.load_der_x509_certificate(der) for der in trace.server_certificates]
        code, lines = _verify_lines(chain)
        if not quiet:
            await proc.io.stderr.write(encode(lines))
        if not quiet and not brief:
            await proc.out(_describe_session(chain, ssl_object, showcerts, code))
        elif brief:
            version = ssl_object.version() if ssl_object else ""
            cipher = ssl_object.cipher()[0] if ssl_object and ssl_object.cipher() else ""
            await proc.io.stderr.write(
                encode(
                    f"CONNECTION ESTABLISHED\nProtocol version: {version}\nCiphersuite: {cipher}\nVerification error: {_VERIFY_TEXT.get(code, '')}\n---\n"
                )
            )
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            while data := await proc.io.stdin.read(65536):
                writer.write(data)
                await writer.drain()
        if not quiet:
            await proc.io.stderr.write(b"DONE\n")
        return 0
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _name(name: x509.Name) -> str:
    """A name as OpenSSL's default ``-nameopt`` prints it: ``C = US, O = Example, CN = x``."""
    return ", ".join(
        " + ".join(f"{attr.rfc4514_attribute_name} = {attr.value!s}" for attr in rdn)
        for rdn in name.rdns
    )


def _verify_lines(chain: list[x509.Certificate]) -> tuple[int, str]:
    """What s_client's verify callback prints, and the final code, with no trust store.

    The container trusts the distribution's public CAs, never the mesh's root, so a mesh
    chain never verifies: a self-signed top is X509_V_ERR 18 (alone) or 19, a missing
    issuer 20, and 21 when the leaf came alone.
    """
    if not chain:
        return 0, ""
    top = len(chain) - 1
    top_cert = chain[top]
    out: list[str] = []
    if top_cert.issuer == top_cert.subject:
        code = 18 if top == 0 else 19
        out += [
            f"depth={top} {_name(top_cert.subject)}",
            f"verify error:num={code}:{_VERIFY_TEXT[code]}",
        ]
        out.append("verify return:1")
    else:
        code = 20
        out += [f"depth={top} {_name(top_cert.subject)}", f"verify error:num=20:{_VERIFY_TEXT[20]}"]
        out.append("verify return:1")
        if top == 0:
            code = 21
            out += [f"depth=0 {_name(top_cert.subject)}", f"verify error:num=21:{_VERIFY_TEXT[21]}"]
            out.append("verify return:1")
    for depth in range(top, -1, -1):
        out += [f"depth={depth} {_name(chain[depth].subject)}", "verify return:1"]
    return code, "\n".join(out) + "\n"


def _openssl_time(when: datetime) -> str:
    value = when.astimezone(UTC)
    return value.strftime(f"%b {value.day:2d} %H:%M:%S %Y GMT")


def _key_text(cert: x509.Certificate) -> tuple[str, int]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "id-ecPublicKey", key.curve.key_size
    if isinstance(key, rsa.RSAPublicKey):
        return "rsaEncryption", key.key_size
    return type(key).__name__, 0


def _describe_session(
    chain: list[x509.Certificate], ssl_object: ssl.SSLObject | None, showcerts: bool, code: int
) -> str:
    """s_client's report on stdout (OpenSSL 3.0's layout, the parts a learner reads)."""
    from cryptography.hazmat.primitives import serialization

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode().rstrip("\n")

    lines = ["---", "Certificate chain"]
    for i, cert in enumerate(chain):
        kind, bits = _key_text(cert)
        sigalg = getattr(cert.signature_algorithm_oid, "_name", "unknown")
        lines += [
            f" {i} s:{_name(cert.subject)}",
            f"   i:{_name(cert.issuer)}",
            f"   a:PKEY: {kind}, {bits} (bit); sigalg: {sigalg}",
            f"   v:NotBefore: {_openssl_time(cert.not_valid_before_utc)}; "
            f"NotAfter: {_openssl_time(cert.not_valid_after_utc)}",
        ]
        if showcerts:
            lines.append(pem(cert))
    lines.append("---")
    if chain:
        leaf = chain[0]
        if not showcerts:
            lines += ["Server certificate", pem(leaf)]
        lines += [f"subject={_name(leaf.subject)}", f"issuer={_name(leaf.issuer)}", "---"]
    version = ssl_object.version() if ssl_object is not None else None
    cipher = ssl_object.cipher() if ssl_object is not None else None
    alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
    bits = _key_text(chain[0])[1] if chain else 0
    lines += [
        f"Verification error: {_VERIFY_TEXT[code]}" if code else "Verification: OK",
        "---",
        f"New, {version or '(NONE)'}, Cipher is {cipher[0] if cipher else '(NONE)'}",
        f"Server public key is {bits} bit",
        "Secure Renegotiation IS NOT supported",
        "Compression: NONE",
        "Expansion: NONE",
        f"ALPN protocol: {alpn}" if alpn else "No ALPN negotiated",
        "Early data was not sent",
        f"Verify return code: {code} ({_VERIFY_TEXT.get(code, 'ok')})",
        "---",
    ]
    return "\n".join(lines) + "\n"
