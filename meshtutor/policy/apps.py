"""What the application inside a container does, decided by its image (DESIGN §2).

The sandbox runs these apps for real; the policy engine uses the same rules to predict them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from meshtutor.model.k8s import Container

AppKind = Literal["httpbin", "client", "echo"]

_CLIENT_IMAGE = re.compile(r"(^|/)(curl|sleep|busybox|netshoot|alpine)([:@]|$)|curlimages/")
_HTTPBIN_PATHS = re.compile(
    r"^/($|ip$|headers$|get$|user-agent$|uuid$|anything(/.*)?$|status/\d{3}$|delay/\d+(\.\d+)?$|"
    r"post$|put$|patch$|delete$|json$|html$|bytes/\d+$)"
)


@dataclass(frozen=True)
class App:
    kind: AppKind
    ports: tuple[int, ...]
    container: str

    @property
    def description(self) -> str:
        if self.kind == "httpbin":
            return f"an httpbin server on port {', '.join(map(str, self.ports))}"
        if self.kind == "client":
            return "a client-only container (it listens on no port)"
        return f"an HTTP echo server on port(s) {', '.join(map(str, self.ports))}"


def app_for(container: Container) -> App:
    """The built-in app a container runs, and the ports it listens on."""
    image = container.image.lower()
    if "httpbin" in image:
        # go-httpbin listens on 8080; the classic kennethreitz/httpbin image on 80.
        port = 8080 if "go-httpbin" in image or "mccutchen" in image else 80
        return App("httpbin", (port,), container.name)
    if _CLIENT_IMAGE.search(image) or container.command[:1] in (("/bin/sleep",), ("sleep",)):
        return App("client", (), container.name)
    return App(
        "echo",
        tuple(p.container_port for p in container.ports if p.protocol == "TCP"),
        container.name,
    )


def listener_for(containers: tuple[Container, ...], port: int) -> App | None:
    """The app that listens on ``port`` in a pod, if any."""
    for container in containers:
        app = app_for(container)
        if port in app.ports:
            return app
    return None


def response_status(app: App, method: str, path: str) -> int:
    """The status code the app answers for a request that reached it."""
    if app.kind == "echo":
        return 200
    match = re.match(r"^/status/(\d{3})$", path)
    if match:
        return int(match.group(1))
    if not _HTTPBIN_PATHS.match(path):
        return 404
    method_paths = {"/post": "POST", "/put": "PUT", "/patch": "PATCH", "/delete": "DELETE"}
    if path in method_paths and method != method_paths[path]:
        return 405
    # go-httpbin v2 restricts only these to GET/HEAD; /ip, /headers, ... take any method.
    if path in ("/", "/get") and method not in ("GET", "HEAD"):
        return 405
    return 200
