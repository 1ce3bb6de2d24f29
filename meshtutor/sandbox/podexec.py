"""A sandbox pod's container as ``kubectl exec`` meets it: its environment, its files, and its
network, for the commands ``meshtutor.kubeapi.shell`` runs in it.

``curl`` is the real curl, run with the learner's arguments and routed as that container's
traffic flows in a pod (``meshtutor.sandbox.probe.route``, the rule probes use):

- an application container of a pod with a sidecar is captured: curl goes through the
  sidecar's outbound listener (``--proxy``, standing in for iptables' redirect);
- the ``istio-proxy`` container runs as uid 1337, which Istio's iptables rules never redirect
  (istio/istio tools/istio-iptables/pkg/capture/run.go; GoogleCloudPlatform/istio-samples
  security-intro shows ``-c istio-proxy -- curl`` to a STRICT service ending ``000``, exit 56),
  and a pod without a sidecar has nothing to capture: curl connects straight to the
  destination pod's port (``--connect-to``), where NetworkPolicy and the server's sidecar
  decide;
- ``localhost`` is the pod's own loopback: never captured (run.go "Skip redirection for
  Envoy-aware applications and container-to-container traffic ... localhost"), it reaches the
  pod's own application ports.

Host names resolve as in the pod: cluster DNS (``name``, ``name.ns``, ``name.ns.svc``,
``name.ns.svc.cluster.local``), pod addresses, and anything else fails as an unknown name
(curl's exit 6). curl binds the pod's address so the other side knows who called.

A pod's curl is not a curl on the learner's machine: options that would leave the sandbox
(``--proxy``, ``--interface``, ``--unix-socket``, ``--connect-to``, ``--resolve``, ``-K``) or
write the learner's files (``-o FILE``, ``-O``, ``-D FILE``, ``-c FILE``...) are refused the
way curl refuses a bad option (exit 2), only ``http://`` and ``https://`` are spoken, and
files an option reads (``-d @FILE``, ``--cacert FILE``, ``-T FILE``) come from the pod's
own view (:meth:`SandboxPodHost.read_file`), never from the machine. curl runs with an empty
home, no proxy variables and no ``.curlrc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import posixpath
import re
import socket
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from meshtutor.policy import netpol
from meshtutor.policy.mtls import CLUSTER_DOMAIN
from meshtutor.sandbox.probe import Route, curl_path, route, route_options

if TYPE_CHECKING:
    from meshtutor.policy.cluster import PodState
    from meshtutor.sandbox.mesh import Sandbox

__all__ = ["MAX_CURL_OUTPUT", "SandboxPodHost", "curl_options"]

#: kind's Service range and its API server's and cluster DNS's addresses (kubeadm: the first
#: and the tenth address of the Service subnet).
KUBERNETES_SERVICE_HOST = "10.96.0.1"
CLUSTER_DNS = "10.96.0.10"
#: The most a pod's curl may print to stdout before it is stopped (exit 23, as curl's own
#: "Failure writing output"): 4,000 times the largest page the sample apps serve.
MAX_CURL_OUTPUT = 64 * 1024 * 1024
_MAX_STDERR = 1024 * 1024
_LOCAL_NAMES = ("localhost", "localhost.", "127.0.0.1")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# --- curl's options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CurlOptions:
    """The options of the installed curl: long name → takes an argument; short → long."""

    long: dict[str, bool]
    short: dict[str, str]


_HELP_LINE = re.compile(r"^\s*(?:-(\S), )?--([A-Za-z0-9][\w.-]*)(\s+<)?")


@functools.cache
def curl_options(curl: str) -> CurlOptions:
    """Read the installed curl's options from ``curl --help all`` (once per process), so
    the learner's arguments are split as that curl splits them."""
    out = subprocess.run(
        [curl, "--help", "all"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    long: dict[str, bool] = {}
    short: dict[str, str] = {}
    for line in out.splitlines():
        match = _HELP_LINE.match(line)
        if match is None:
            continue
        letter, name, argument = match.groups()
        long[name] = argument is not None
        if letter:
            short[letter] = name
    return CurlOptions(long, short)


_WHY_ROUTING = "a pod's connections go where the pod's network sends them"
_WHY_FILES = "a pod's files are not on this machine; write to - (stdout) or /dev/null"
#: Options a pod's curl may not have, and why (curl-style ``option X: why``, exit 2).
_REFUSED = {
    "proxy": _WHY_ROUTING,
    "preproxy": _WHY_ROUTING,
    "socks4": _WHY_ROUTING,
    "socks4a": _WHY_ROUTING,
    "socks5": _WHY_ROUTING,
    "socks5-hostname": _WHY_ROUTING,
    "interface": _WHY_ROUTING,
    "unix-socket": _WHY_ROUTING,
    "abstract-unix-socket": _WHY_ROUTING,
    "connect-to": _WHY_ROUTING,
    "resolve": _WHY_ROUTING,
    "dns-servers": _WHY_ROUTING,
    "dns-interface": _WHY_ROUTING,
    "dns-ipv4-addr": _WHY_ROUTING,
    "dns-ipv6-addr": _WHY_ROUTING,
    "doh-url": _WHY_ROUTING,
    "ipfs-gateway": _WHY_ROUTING,
    "config": "the sandbox runs curl with the arguments given, from no config file",
    "netrc-file": "the sandbox's pods have no .netrc",
    "variable": "not available in the sandbox",
    "libcurl": _WHY_FILES,
    "output-dir": _WHY_FILES,
    "remote-name": _WHY_FILES,
    "remote-name-all": _WHY_FILES,
    "hsts": _WHY_FILES,
    "alt-svc": _WHY_FILES,
    "ssl-sessions": _WHY_FILES,
    "capath": "give a CA file of the pod with --cacert",
    "engine": "not available in the sandbox",
    "egd-file": "not available in the sandbox",
    "random-file": "not available in the sandbox",
    "knownhosts": "the sandbox's pods speak only http:// and https://",
    "pubkey": "the sandbox's pods speak only http:// and https://",
}
#: Options whose argument names a file curl writes; only these paths leave no file behind.
_OUTPUTS = {"output", "dump-header", "cookie-jar", "trace", "trace-ascii", "stderr", "etag-save"}
_NO_FILE = {"-", "/dev/null", "/dev/stdout", "/dev/stderr"}
#: Options whose argument is a file curl reads (taken from the pod's own files).
_INPUTS = {"cacert", "cert", "key", "crlfile", "upload-file", "etag-compare", "pinnedpubkey"}
#: Options whose ``@FILE`` argument is a file curl reads.
_AT_FILE = {"data", "data-ascii", "data-binary", "json", "header", "write-out"}


def _refused(long: str) -> str | None:
    if long.startswith(("proxy", "expand-")):
        return _WHY_ROUTING if long.startswith("proxy") else "not available in the sandbox"
    return _REFUSED.get(long)


class CurlUsageError(Exception):
    """An argument the sandbox refuses: the message is curl's style, the exit code 2."""


@dataclass
class _Segment:
    """The arguments up to one ``--next``, the URLs among them."""

    args: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


class _Files:
    """Pod files handed to curl as files of a private temporary folder."""

    def __init__(self, host: SandboxPodHost, folder: Path) -> None:
        self.host, self.folder = host, folder
        self.mapped: list[tuple[str, str]] = []

    def path(self, given: str) -> str:
        if given in ("-", ""):
            return given  # stdin (or curl's own complaint about nothing)
        pod_path = posixpath.normpath(posixpath.join("/", given))
        local = self.folder / f"pod-file-{len(self.mapped)}"
        data = self.host.read_file(pod_path)
        if data is not None:
            local.write_bytes(data)
        # Missing: a path that does not exist, so curl reports it in its own words.
        self.mapped.append((given, str(local)))
        return str(local)


def _at_file(value: str, files: _Files) -> str:
    return "@" + files.path(value[1:]) if value.startswith("@") and value != "@-" else value


def _urlencoded(value: str, files: _Files) -> str:
    """``--data-urlencode`` / ``--url-query``: ``[name]@file`` reads a file; ``=`` first means
    the rest is content (curl's tool_getparam.c data_urlencode)."""
    at, eq = value.find("@"), value.find("=")
    if at < 0 or (0 <= eq < at):
        return value
    return value[: at + 1] + files.path(value[at + 1 :])


def _form(value: str, files: _Files) -> str:
    """``-F name=@file[;type=…]`` and ``name=<file``: the file is read."""
    name, eq, rest = value.partition("=")
    if not eq or not rest.startswith(("@", "<")):
        return value
    path, semi, params = rest[1:].partition(";")
    return f"{name}={rest[0]}{files.path(path)}{semi}{params}"


def _argument(long: str, given: str, value: str, files: _Files) -> str:
    """The argument curl gets for ``long``: pod files mapped, refused outputs refused."""
    if long in _OUTPUTS:
        allowed = _NO_FILE | ({"%"} if long.startswith("trace") else set())
        if value not in allowed:
            raise CurlUsageError(f"curl: option {given}: {_WHY_FILES}")
        return value
    if long == "write-out" and "%output{" in value:
        raise CurlUsageError(f"curl: option {given}: {_WHY_FILES}")
    if long in _INPUTS:
        if long == "pinnedpubkey" and value.startswith("sha256//"):
            return value
        if long == "upload-file" and value in (".", "-"):
            return value
        if long == "cert" and ":" in value:
            path, colon, password = value.partition(":")
            return files.path(path) + colon + password
        return files.path(value)
    if long in _AT_FILE:
        return _at_file(value, files)
    if long in ("data-urlencode", "url-query"):
        return _urlencoded(value, files)
    if long == "form":
        return _form(value, files)
    if long == "cookie" and "=" not in value:
        return files.path(value)  # curl reads cookies from a file when there is no '='
    return value


def _plan(args: list[str], options: CurlOptions, files: _Files) -> list[_Segment]:
    """Split the learner's curl arguments as curl does, refusing what a pod cannot do."""
    segments = [_Segment()]
    i = 0
    options_end = False

    def take(long: str, given: str, attached: str | None) -> None:
        nonlocal i
        refused = _refused(long)
        if refused is not None:
            raise CurlUsageError(f"curl: option {given}: {refused}")
        segment = segments[-1]
        if long == "next":
            segments.append(_Segment())
            return
        if not options.long.get(long, False):
            segment.args.append(f"--{long}")
            return
        if attached is None:
            i += 1
            if i >= len(args):
                raise CurlUsageError(f"curl: option {given}: requires parameter")
            attached = args[i]
        value = _argument(long, given, attached, files)
        if long == "url":
            segment.urls.append(value)
        segment.args += [f"--{long}", value]

    while i < len(args):
        word = args[i]
        if options_end or not word.startswith("-") or word == "-":
            segments[-1].urls.append(word)
            segments[-1].args.append(word)
        elif word == "--":
            options_end = True
        elif word.startswith("--"):
            name = word[2:]
            if name not in options.long:
                negated = name.removeprefix("no-")
                if name.startswith("no-") and options.long.get(negated) is False:
                    if _refused(negated) is None:
                        segments[-1].args.append(word)
                    i += 1
                    continue
                # Exact names only: an older curl would take an abbreviation (--prox).
                raise CurlUsageError(f"curl: option {word}: is unknown")
            take(name, word, None)
        else:
            letters = word[1:]
            for n, letter in enumerate(letters):
                long = options.short.get(letter)
                if long is None:
                    raise CurlUsageError(f"curl: option -{letter}: is unknown")
                if options.long.get(long, False):
                    rest = letters[n + 1 :]
                    take(long, f"-{letter}", rest or None)
                    break
                take(long, f"-{letter}", None)
        i += 1
    return segments


# --- URLs -----------------------------------------------------------------------------------------

#: curl guesses the scheme of a URL without one from its host's first label (tool_operate.c /
#: urlapi.c guess_scheme); everything else is http.
_GUESSED = {
    "ftp": "ftp",
    "dict": "dict",
    "ldap": "ldap",
    "imap": "imap",
    "smtp": "smtp",
    "pop3": "pop3",
}


def _host_port(url: str) -> tuple[str, int] | None:
    """The host and port an http(s) URL connects to, or None for other schemes, globs, IPv6
    addresses and what does not parse (the cluster-wide routes and curl's own errors cover
    those)."""
    if any(ch in url for ch in "{}[]"):
        return None
    text = url if "://" in url else f"http://{url}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if "://" not in url:
        scheme = _GUESSED.get(host.split(".", 1)[0] if "." in host else "", scheme)
    if scheme not in ("http", "https") or not host or ":" in host:
        return None
    return host, port or (443 if scheme == "https" else 80)


# --- the pod ----------------------------------------------------------------------------------


class SandboxPodHost:
    """One container of one running sandbox pod, as ``meshtutor.kubeapi.shell.PodHost``.

    ``pod_name`` is the pod's API name (``sleep-7d9f8c5b6d-x2kqz``), its hostname;
    ``api_ca_pem`` the sandbox API's CA, mounted as the service account's ``ca.crt``.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        pod_state: PodState,
        container: str,
        pod_name: str | None = None,
        *,
        api_ca_pem: bytes | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.state = pod_state
        self.container = container
        self.pod = pod_name or pod_state.name
        self.namespace = pod_state.namespace
        self._api_ca_pem = api_ca_pem
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def _proxy_container(self) -> str:
        return "istio-proxy" if self.sandbox.mesh == "istio" else "linkerd-proxy"

    @property
    def captured(self) -> bool:
        """Whether this container's outbound traffic goes through the pod's sidecar."""
        return self.state.sidecar is not None and self.container != self._proxy_container

    # --- environment and files ---------------------------------------------------------------

    def environ(self) -> dict[str, str]:
        """What ``env`` prints in the container: the image's PATH and HOME, the hostname, the
        ``kubernetes`` Service's variables (kubelet's service links), and for a proxy
        container the variables its injector sets (istio injection-template.yaml; linkerd2
        charts/partials/templates/_proxy.tpl)."""
        env = {
            "PATH": PATH,
            "HOSTNAME": self.pod,
            "HOME": "/root",
            "KUBERNETES_SERVICE_HOST": KUBERNETES_SERVICE_HOST,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "KUBERNETES_PORT": f"tcp://{KUBERNETES_SERVICE_HOST}:443",
            "KUBERNETES_PORT_443_TCP": f"tcp://{KUBERNETES_SERVICE_HOST}:443",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": "443",
            "KUBERNETES_PORT_443_TCP_ADDR": KUBERNETES_SERVICE_HOST,
        }
        state = self.state
        if self.container == "istio-proxy":
            apps = ",".join(c.name for c in state.spec.containers)
            env |= {
                "HOME": "/home/istio-proxy",
                "PILOT_CERT_PROVIDER": "istiod",
                "CA_ADDR": "istiod.istio-system.svc:15012",
                "POD_NAME": self.pod,
                "POD_NAMESPACE": self.namespace,
                "INSTANCE_IP": state.ip,
                "SERVICE_ACCOUNT": state.service_account,
                "ISTIO_META_APP_CONTAINERS": apps,
                "ISTIO_META_CLUSTER_ID": "Kubernetes",
                "ISTIO_META_INTERCEPTION_MODE": "REDIRECT",
                "ISTIO_META_WORKLOAD_NAME": state.deployment,
                "ISTIO_META_OWNER": (
                    f"kubernetes://apis/apps/v1/namespaces/{self.namespace}/deployments/"
                    f"{state.deployment}"
                ),
                "ISTIO_META_MESH_ID": CLUSTER_DOMAIN,
                "TRUST_DOMAIN": CLUSTER_DOMAIN,
            }
        elif self.container == "linkerd-proxy":
            from meshtutor.policy.linkerd import linkerd_identity

            env |= {
                "LINKERD2_PROXY_IDENTITY_DIR": "/var/run/linkerd/identity/end-entity",
                "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS": self._root_pem().decode("ascii"),
                "LINKERD2_PROXY_IDENTITY_LOCAL_NAME": linkerd_identity(
                    self.namespace, state.service_account
                ),
            }
        return env

    def _root_pem(self) -> bytes:
        return bytes(self.sandbox.ca.root_pem)

    def read_file(self, path: str) -> bytes | None:
        """The container's view of ``path`` (normalised), or None where the pod has no such
        file. Kubelet writes ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf``
        (pkg/kubelet/kubelet_pods.go ``managedHostsFileContent``; ClusterFirst DNS with
        ``ndots:5``); the service account volume holds the namespace and the API's CA. The
        proxies' own files are where the injectors mount them: ``istio-proxy`` has the mesh
        root at ``/var/run/secrets/istio/root-cert.pem`` (the ``istio-ca-root-cert``
        ConfigMap) and the pod's labels and annotations under ``/etc/istio/pod`` (downward
        API); its workload certificate lives in Envoy's memory, delivered over SDS through
        ``/var/run/secrets/workload-spiffe-uds/socket``, so no file holds it. ``linkerd-proxy``
        keeps its private key and CSR in ``/var/run/linkerd/identity/end-entity``
        (``key.p8``, ``csr.der``: linkerd2 proxy-identity/main.go)."""
        path = posixpath.normpath(posixpath.join("/", path))
        state = self.state
        if path == "/etc/hostname":
            return f"{self.pod}\n".encode()
        if path == "/etc/hosts":
            return (
                "# Kubernetes-managed hosts file.\n"
                "127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\n"
                "fe00::0\tip6-mcastprefix\n"
                "fe00::1\tip6-allnodes\n"
                "fe00::2\tip6-allrouters\n"
                f"{state.ip}\t{self.pod}\n"
            ).encode()
        if path == "/etc/resolv.conf":
            return (
                f"search {self.namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} "
                f"{CLUSTER_DOMAIN}\nnameserver {CLUSTER_DNS}\noptions ndots:5\n"
            ).encode()
        account = "/var/run/secrets/kubernetes.io/serviceaccount"
        if path == f"{account}/namespace":
            return self.namespace.encode()
        if path == f"{account}/ca.crt" and self._api_ca_pem is not None:
            return self._api_ca_pem
        if self.container == "istio-proxy":
            if path == "/var/run/secrets/istio/root-cert.pem":
                return self._root_pem()
            if path in ("/etc/istio/pod/labels", "/etc/istio/pod/annotations"):
                values = state.labels if path.endswith("labels") else state.annotations
                return _downward(values)
        if self.container == "linkerd-proxy":
            folder = "/var/run/linkerd/identity/end-entity"
            if path in (f"{folder}/key.p8", f"{folder}/csr.der"):
                return self._linkerd_identity_file(path.rsplit("/", 1)[1])
        return None

    def _linkerd_identity_file(self, name: str) -> bytes | None:
        runtime = self.sandbox.runtime(self.state)
        if runtime.credential is None:
            return None
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import NameOID

        key = runtime.credential.current.private_key
        if name == "key.p8":
            return bytes(
                key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        from meshtutor.policy.linkerd import linkerd_identity

        identity = linkerd_identity(self.namespace, self.state.service_account)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        return bytes(csr.public_bytes(serialization.Encoding.DER))

    # --- network ----------------------------------------------------------------------------

    async def _route(self, host: str, port: int) -> Route | None:
        """``route()``, except that an address no pod has is not a name to look up: the
        connection goes nowhere and times out, as on a cluster network."""
        found = await route(self.sandbox, self.state, self.captured, host, port)
        if found is None and _is_ip(host):
            return Route("connect", "127.0.0.1", self.sandbox.blackhole_port)
        return found

    def _local(self, port: int) -> tuple[str, int]:
        """The pod's own port ``port`` on its loopback: the app's listener, or a refusal."""
        app = self.sandbox.runtime(self.state).apps.get(port)
        if app is not None:
            return app.host, app.port
        return "127.0.0.1", self.sandbox.refusing_port()

    def _is_local(self, host: str) -> bool:
        return host in _LOCAL_NAMES or host in (self.pod, self.pod.lower(), self.state.name)

    async def curl(self, argv: list[str], stdin: bytes) -> tuple[bytes, bytes, int]:
        """Run the real curl with ``argv`` (``argv[0]`` is the command name) as this container
        would: ``(stdout, stderr, exit code)``. Cancelling the call stops curl."""
        curl = curl_path()
        if curl is None:
            return (
                b"",
                b"curl: not found on this machine: meshtutor runs the real curl for a pod's "
                b"curl; install curl (apt install curl, dnf install curl, brew install curl)\n",
                127,
            )
        with tempfile.TemporaryDirectory(prefix="meshtutor-pod-") as folder:
            files = _Files(self, Path(folder))
            try:
                segments = _plan(list(argv[1:]), curl_options(curl), files)
            except CurlUsageError as exc:
                hint = "curl: try 'curl --help' or 'curl --manual' for more information\n"
                return b"", f"{exc}\n{hint}".encode(), 2
            # -q first: no .curlrc (the empty HOME has none either).
            args, rewrites = ["-q"], {local: given for given, local in files.mapped}
            for n, segment in enumerate(segments):
                if n:
                    args.append("--next")  # curl forgets the routing options at each --next
                args += segment.args
                args += await self._routing(segment.urls, rewrites)
            out, err, code = await _run(curl, args, stdin, folder)
        return out, _rewrite(err, rewrites), code

    async def _routing(self, urls: Iterable[str], rewrites: dict[str, str]) -> list[str]:
        """The options that route one ``--next`` segment's URLs (and where they redirect)."""
        sb, source = self.sandbox, self.state
        options = ["--proto", "=http,https", "--proto-redir", "=http,https"]
        if sb.aliases:
            options += ["--interface", source.ip]
        targets = dict.fromkeys(t for t in map(_host_port, urls) if t is not None)
        # curl's --connect-to entries, first match wins: each URL's own route, the pod's own
        # names, then (uncaptured) every name and address of the cluster and a catch-all.
        entries: list[str] = []
        # Names the pod resolves itself, before any sidecar sees a packet: localhost, its own
        # hostname, and names cluster DNS does not answer (or cannot, under NetworkPolicy).
        noproxy = [*_LOCAL_NAMES, self.pod]
        for host, port in targets:
            if self._is_local(host):
                local = self._local(port)
                rewrites[f"{local[0]} port {local[1]}"] = f"{host} port {port}"
                continue  # _local_map() has it
            found = await self._route(host, port)
            if found is not None and found.kind == "proxy":
                continue
            noproxy.append(host)
            if found is None:
                rewrites[f"{host}.invalid"] = host
            else:
                rewrites[f"{found.host} port {found.port}"] = f"{host} port {port}"
            entries += route_options(found, host, port)[1::2]
        entries += self._local_map()
        if self.captured and netpol.dns_allowed(sb.cluster, source).allowed:
            # Everything else through the sidecar. No catch-all here: with a proxy set, curl
            # would tunnel (CONNECT) to a --connect-to target instead of asking for the URL.
            runtime = sb.runtime(source)
            assert runtime.outbound_port is not None
            sidecar = Route("proxy", source.ip, runtime.outbound_port)
            options += [*route_options(sidecar, "", 0), "--noproxy", ",".join(noproxy)]
        else:
            entries += await self._cluster_map()
        return options + [word for entry in entries for word in ("--connect-to", entry)]

    def _local_map(self) -> list[str]:
        """The pod's own names on every port: its applications' ports, else refused. Also
        what a redirect to ``localhost`` meets, so it never reaches this machine's."""
        sb, runtime = self.sandbox, self.sandbox.runtime(self.state)
        refusing = sb.refusing_port()
        entries = []
        for name in dict.fromkeys([*_LOCAL_NAMES, self.pod, self.state.name]):
            entries += [
                f"{name}:{port}:{app.host}:{app.port}" for port, app in runtime.apps.items()
            ]
            entries.append(f"{name}::127.0.0.1:{refusing}")
        return entries

    async def _cluster_map(self) -> list[str]:
        """``--connect-to`` entries for every name cluster DNS answers and every pod address, and a
        last entry sending any other name to one that never resolves: so redirects (``-L``)
        and URL globs land where the pod's would, and nothing reaches this machine."""
        sb, source = self.sandbox, self.state
        if not netpol.dns_allowed(sb.cluster, source).allowed:
            return [f"::127.0.0.1:{sb.blackhole_port}"]  # lookups time out
        entries: list[str] = []
        for service in sb.cluster.services():
            ns, name = service.namespace, service.name
            names = [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"]
            if ns == source.namespace:
                names.insert(0, name)
            for svc_port in service.ports:
                found = await self._route(names[-1], svc_port.port)
                if found is not None:
                    entries += [f"{n}:{svc_port.port}:{found.host}:{found.port}" for n in names]
            entries += [f"{n}::127.0.0.1:{sb.blackhole_port}" for n in names]
        for pod in sb.cluster.pods():
            ports = {p.container_port for c in pod.spec.containers for p in c.ports}
            for port in sorted(ports):
                found = await self._route(pod.ip, port)
                if found is not None:
                    entries.append(f"{pod.ip}:{port}:{found.host}:{found.port}")
        entries.append("::unknown-to-cluster-dns.invalid:")
        return entries

    async def connect(
        self, host: str, port: int, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``host:port`` as this container opens one (for nc, wget,
        openssl s_client). A captured container's connection goes through its sidecar (a
        ``CONNECT`` tunnel through the outbound listener, so the sidecar's mTLS and policy
        apply, and the connection is accepted at once as iptables' redirect accepts it); an
        uncaptured one goes straight to the destination pod's port, after NetworkPolicy (a
        dropped connection never connects: ``TimeoutError`` after ``timeout``). Raises
        ``socket.gaierror`` for a name cluster DNS does not know, ``ConnectionRefusedError``,
        ``TimeoutError`` — OSErrors, as a socket would."""
        sb, source = self.sandbox, self.state
        host = host.lower()
        local_addr = (source.ip, 0) if sb.aliases else None
        if self._is_local(host):
            target = self._local(port)
            return await _open(target, timeout, None)
        found = await self._route(host, port)
        if found is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if found.kind == "connect":
            dropped = found.port == sb.blackhole_port
            if found.target is not None and found.target_port is not None:
                dropped = dropped or not all(
                    check.allowed
                    for check in (
                        netpol.egress_allowed(sb.cluster, source, found.target, found.target_port),
                        netpol.ingress_allowed(sb.cluster, source, found.target, found.target_port),
                    )
                )
            if dropped:
                await asyncio.sleep(timeout)
                raise TimeoutError(f"connect to {host} port {port}: timed out")
            return await _open((found.host, found.port), timeout, local_addr)
        reader, writer = await _open((found.host, found.port), timeout, local_addr)
        writer.write(
            f"CONNECT {_authority(host, port)} HTTP/1.1\r\nHost: {_authority(host, port)}\r\n\r\n".encode()
        )
        tunnel = asyncio.StreamReader()
        task = asyncio.get_running_loop().create_task(_pump_tunnel(reader, tunnel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return tunnel, writer


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _open(
    target: tuple[str, int], timeout: float, local_addr: tuple[str, int] | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(target[0], target[1], local_addr=local_addr)
    except TimeoutError:
        raise TimeoutError("connect timed out") from None


async def _pump_tunnel(upstream: asyncio.StreamReader, tunnel: asyncio.StreamReader) -> None:
    """Hand the tunnel's bytes on once the sidecar has opened it; when it answers anything but
    ``200`` (no endpoint, a dropped upstream), the connection just ends, as the sidecar that
    accepted it closes it."""
    try:
        head = await upstream.readuntil(b"\r\n\r\n")
        if head.split(b" ", 2)[1:2] != [b"200"]:
            tunnel.feed_eof()
            return
        while chunk := await upstream.read(65536):
            tunnel.feed_data(chunk)
        tunnel.feed_eof()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        tunnel.feed_eof()
    except OSError as exc:
        tunnel.set_exception(exc)


def _downward(values: dict[str, str]) -> bytes:
    """A downward API file of a map: ``key="value"`` lines sorted by key, values quoted as
    Go's %q (kubernetes pkg/fieldpath FormatMap)."""
    import json

    return "".join(f"{k}={json.dumps(values[k])}\n" for k in sorted(values)).encode()


def _rewrite(err: bytes, rewrites: dict[str, str]) -> bytes:
    """curl's messages with the names the learner typed: its unknown host, the pod file
    given, the service host and port instead of the sandbox address behind them."""
    text = err.decode("utf-8", "surrogateescape")
    for sandbox_text in sorted(rewrites, key=len, reverse=True):
        text = text.replace(sandbox_text, rewrites[sandbox_text])
    return text.encode("utf-8", "surrogateescape")


async def _run(curl: str, args: list[str], stdin: bytes, folder: str) -> tuple[bytes, bytes, int]:
    """curl with an empty home and environment (no proxy variables, no key log file), in a
    private folder; stdout bounded by :data:`MAX_CURL_OUTPUT`; killed if cancelled."""
    env = {"PATH": os.environ.get("PATH", PATH), "HOME": folder}
    process = await asyncio.create_subprocess_exec(
        curl,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=folder,
    )
    assert process.stdin and process.stdout and process.stderr

    async def feed() -> None:
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.write(stdin)
            await process.stdin.drain()
            process.stdin.close()

    async def collect(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
        chunks, size = [], 0
        while chunk := await stream.read(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                process.kill()  # its other pipe then ends too
                return b"".join(chunks)[:limit], True
        return b"".join(chunks), False

    try:
        _, (out, overflow), (err, _) = await asyncio.gather(
            feed(), collect(process.stdout, MAX_CURL_OUTPUT), collect(process.stderr, _MAX_STDERR)
        )
        code = await process.wait()
        if overflow:
            return out, err + b"curl: (23) Failure writing output to destination\n", 23
        return out, err, code
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
