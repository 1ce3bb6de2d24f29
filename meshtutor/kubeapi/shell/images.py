"""The container images a sandbox pod's containers behave as, and the files they can see.

Three images cover what mesh tutorials exec into, each checked against its build files:

* ``curlimages/curl`` (Istio's ``sleep``/``curl`` samples, Linkerd's docs): Alpine with busybox
  and curl (curl/curl-container ``create_base_image.sh``: ``adduser -S curl_user -G curl_group``
  → uid 100, gid 101, shell ``/bin/false`` per busybox ``adduser.c``; workdir
  ``/home/curl_user``; ``CURL_CA_BUNDLE=/cacert.pem``). No ``bash``, no ``openssl``. Every
  container that is not a proxy behaves as this image: it is the one tutorials exec into.
* ``istio/proxyv2`` (the ``istio-proxy`` sidecar): the debug base is Ubuntu with curl, netcat
  and openssl, user ``istio-proxy`` uid 1337 (istio/istio ``docker/Dockerfile.base``); /bin/sh
  is dash, bash exists; the injected container has ``readOnlyRootFilesystem: true`` and
  writable emptyDirs at ``/etc/istio/proxy`` and ``/var/lib/istio/data``, and sees the mesh
  root at ``/var/run/secrets/istio``, its token under ``/var/run/secrets/tokens`` and the
  pod's labels under ``/etc/istio/pod`` (istio/istio ``manifests/charts/istio-control/
  istio-discovery/files/injection-template.yaml``).
* ``linkerd/proxy`` (the ``linkerd-proxy`` sidecar): distroless plus ``/bin/sleep``
  (linkerd/linkerd2 ``Dockerfile-proxy``): no shell, no curl; uid 2102 from the injector.

Files come from three places, first match wins: what the session wrote (``/tmp``, the home
directory), what the pod provides (:meth:`PodHost.read_file`: ``/etc/hosts``, the service
account token, the proxy's certificates), and the image's own files (``/etc/passwd``…).
Nothing ever reads or writes the machine meshtutor runs on.
"""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from meshtutor.kubeapi.shell import limits

__all__ = [
    "CURL_IMAGE",
    "ISTIO_PROXY_IMAGE",
    "LINKERD_PROXY_IMAGE",
    "Image",
    "PodFiles",
    "image_for",
]

Flavour = Literal["ash", "dash", "bash"]


class FileHost(Protocol):
    pod: str
    container: str

    def read_file(self, path: str) -> bytes | None: ...


def words(text: str) -> frozenset[str]:
    """A set of names written as one string, as the tables below (and their sources) list them."""
    return frozenset(text.split())


BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
STANDARD_PATH = ":".join(BIN_DIRS)

# What every pod's containers get from the kubelet and the runtime.
POD_FILES = (
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
)

# The kubelet's header for a pod's /etc/hosts (pkg/kubelet/kubelet_pods.go managedHostsHeader
# and the localhost entries), used when the sandbox does not provide the file itself.
DEFAULT_HOSTS = (
    b"# Kubernetes-managed hosts file.\n"
    b"127.0.0.1\tlocalhost\n"
    b"::1\tlocalhost ip6-localhost ip6-loopback\n"
    b"fe00::0\tip6-localnet\n"
    b"fe00::0\tip6-mcastprefix\n"
)

BUSYBOX_BIN = words(
    """
    ash base64 cat date echo egrep false fgrep grep hostname ls printenv pwd sh sleep true
    uname
    """
)
CORE_PROGRAMS = words(
    """
    sh cat grep egrep fgrep head tail wc env printenv hostname sleep true false echo printf
    test [ ls id whoami date seq sort uniq tr cut tee base64 uname pwd which basename
    dirname
    """
)


@dataclass(frozen=True)
class Image:
    name: str
    shell: Flavour | None  # what /bin/sh is; None: no shell at all
    programs: frozenset[str]
    tools: Literal["busybox", "gnu"]
    user: str
    uid: int
    group: str
    gid: int
    home: str
    workdir: str
    env: Mapping[str, str]
    files: Mapping[str, bytes]
    extra_paths: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    read_only: bool = False  # the root filesystem (readOnlyRootFilesystem)
    prompt: str = "$ "
    locations: Mapping[str, str] = field(default_factory=dict)

    def location(self, program: str) -> str:
        """Where ``program`` lives, for ``which`` and for ``ls /bin``."""
        return self.locations.get(program, "/usr/bin") + "/" + program

    def find(self, name: str) -> str | None:
        """The program ``name`` (a bare name or a path) starts, or None if there is none.

        A path must name a program's own location (``/usr/bin/curl``) or, for busybox's
        applets and a distro's usual links, any of the standard directories.
        """
        if "/" not in name:
            return name if name in self.programs else None
        directory, base = posixpath.split(posixpath.normpath(name))
        if base in self.programs and directory in BIN_DIRS:
            return base
        return None


def _passwd(*entries: str) -> bytes:
    return ("\n".join(entries) + "\n").encode()


CURL_IMAGE = Image(
    name="curlimages/curl",
    shell="ash",
    programs=CORE_PROGRAMS | {"ash", "curl", "wget", "nc"},
    tools="busybox",
    user="curl_user",
    uid=100,
    group="curl_group",
    gid=101,
    home="/home/curl_user",
    workdir="/home/curl_user",
    env={"CURL_CA_BUNDLE": "/cacert.pem"},
    files={
        "/etc/passwd": _passwd(
            "root:x:0:0:root:/root:/bin/sh",
            "nobody:x:65534:65534:nobody:/:/sbin/nologin",
            "curl_user:x:100:101:Linux User,,,:/home/curl_user:/bin/false",
        ),
        "/etc/group": _passwd("root:x:0:root", "nogroup:x:65533:", "curl_group:x:101:curl_user"),
        "/etc/os-release": (
            b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.22.1\n'
            b'PRETTY_NAME="Alpine Linux v3.22"\nHOME_URL="https://alpinelinux.org/"\n'
        ),
        "/etc/alpine-release": b"3.22.1\n",
    },
    writable=("/tmp", "/home/curl_user"),
    prompt="\\w \\$ ",  # busybox ash initvar() with FEATURE_EDITING_FANCY_PROMPT
    locations={
        **{name: "/bin" for name in BUSYBOX_BIN},
        "curl": "/usr/bin",
    },
)

ISTIO_PROXY_IMAGE = Image(
    name="istio/proxyv2",
    shell="dash",
    programs=CORE_PROGRAMS | {"dash", "bash", "curl", "nc", "openssl"},
    tools="gnu",
    user="istio-proxy",
    uid=1337,
    group="istio-proxy",
    gid=1337,
    home="/home/istio-proxy",
    workdir="/",
    env={},
    files={
        "/etc/passwd": _passwd(
            "root:x:0:0:root:/root:/bin/bash",
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
            "istio-proxy:x:1337:1337::/home/istio-proxy:/bin/sh",
        ),
        "/etc/group": _passwd("root:x:0:", "istio-proxy:x:1337:"),
        "/etc/os-release": (
            b'PRETTY_NAME="Ubuntu 24.04 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\n'
        ),
    },
    extra_paths=(
        "/var/run/secrets/istio/root-cert.pem",
        "/var/run/secrets/tokens/istio-token",
        "/etc/istio/pod/labels",
        "/etc/istio/pod/annotations",
    ),
    writable=("/etc/istio/proxy", "/var/lib/istio/data"),
    read_only=True,
    prompt="$ ",  # dash's default for a non-root user
    locations={"sh": "/bin", "dash": "/bin", "bash": "/bin", "cat": "/bin", "ls": "/bin"},
)

LINKERD_PROXY_IMAGE = Image(
    name="linkerd/proxy",
    shell=None,
    programs=frozenset({"sleep"}),
    tools="gnu",
    user="2102",
    uid=2102,
    group="2102",
    gid=2102,
    home="/",
    workdir="/",
    env={},
    files={},
    read_only=True,
    locations={"sleep": "/bin"},
)


def image_for(container: str, image: str | None = None) -> Image:
    """The image a container behaves as: by its image name when known, else by its name."""
    name = (image or "").lower()
    if "proxyv2" in name or (not name and container == "istio-proxy"):
        return ISTIO_PROXY_IMAGE
    if ("linkerd" in name and "proxy" in name) or (not name and container == "linkerd-proxy"):
        return LINKERD_PROXY_IMAGE
    return CURL_IMAGE


class PodFiles:
    """One exec session's view of the container's file system."""

    def __init__(self, image: Image, host: FileHost) -> None:
        self.image = image
        self.host = host
        self.written: dict[str, bytearray] = {}
        self._dirs: frozenset[str] | None = None  # cached; a write may add a directory

    # -- reading --

    def read(self, path: str) -> bytes | None:
        if path in self.written:
            return bytes(self.written[path])
        provided = self.host.read_file(path)
        if provided is not None:
            return provided
        if path in self.image.files:
            return self.image.files[path]
        if path == "/etc/hostname":
            return self.host.pod.encode() + b"\n"
        if path == "/etc/hosts":
            return DEFAULT_HOSTS
        if path in ("/dev/null", "/dev/zero"):
            return b""
        return None

    def _candidates(self) -> list[str]:
        return [*POD_FILES, *self.image.extra_paths, *self.image.files, *self.written]

    def directories(self) -> frozenset[str]:
        if self._dirs is None:
            self._dirs = frozenset(self._find_directories())
        return self._dirs

    def _find_directories(self) -> set[str]:
        dirs = {"/", "/tmp", "/etc", "/dev", "/proc", "/usr", "/var", "/var/run", "/home", "/root"}
        dirs.update(BIN_DIRS)
        dirs.update((self.image.home, self.image.workdir, *self.image.writable))
        for path in self._candidates():
            if self.read(path) is not None:
                parent = posixpath.dirname(path)
                while parent not in dirs:
                    dirs.add(parent)
                    parent = posixpath.dirname(parent)
        return dirs

    def is_dir(self, path: str) -> bool:
        return path in self.directories()

    def exists(self, path: str) -> bool:
        return self.read(path) is not None or self.is_dir(path)

    def listdir(self, path: str) -> list[str] | None:
        dirs = self.directories()
        if path not in dirs:
            return None
        names = {posixpath.basename(d) for d in dirs if d != "/" and posixpath.dirname(d) == path}
        for candidate in self._candidates():
            if posixpath.dirname(candidate) == path and self.read(candidate) is not None:
                names.add(posixpath.basename(candidate))
        for program in self.image.programs:
            if posixpath.dirname(self.image.location(program)) == path:
                names.add(program)
        if path == "/dev":
            names.update(("null", "stdin", "stdout", "stderr", "zero"))
        return sorted(names)

    # -- writing --

    def check_writable(self, path: str) -> None:
        """Raise the OSError ``open(path, O_WRONLY|O_CREAT)`` would raise in the container."""
        if self.is_dir(path):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        parent = posixpath.dirname(path)
        if not self.is_dir(parent):
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        if any(parent == w or parent.startswith(w + "/") for w in self.image.writable):
            return
        code = errno.EROFS if self.image.read_only else errno.EACCES
        raise OSError(code, os.strerror(code))

    def open_write(self, path: str, *, append: bool) -> FileOutput:
        self.check_writable(path)
        if path not in self.written:
            if len(self.written) >= limits.MAX_FILES:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written[path] = bytearray(self.read(path) or b"") if append else bytearray()
            self._dirs = None
        elif not append:
            self.written[path].clear()
        return FileOutput(self, path)

    def used(self) -> int:
        return sum(len(data) for data in self.written.values())


class FileOutput:
    """A file opened for writing in the session's file system, within its quota."""

    def __init__(self, files: PodFiles, path: str) -> None:
        self._files = files
        self._path = path

    async def write(self, data: bytes) -> None:
        room = limits.MAX_FILE_BYTES - self._files.used()
        target = self._files.written.setdefault(self._path, bytearray())
        target += data[: max(room, 0)]
        if len(data) > room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
