"""The app's link to lessons and the sandbox, independent of any widget.

Everything that touches the cluster runs on a ``BackgroundLoop``; the screens await results
and never block. A session can warm a lesson's sandbox before the learner opens it, so the first
screen of a lesson is ready at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from meshtutor.backends.thread import BackgroundLoop
from meshtutor.lessons.model import Lesson
from meshtutor.lessons.progress import Progress
from meshtutor.lessons.runner import BackendFactory, LessonRunner, default_backend
from meshtutor.policy.probe import Probe

T = TypeVar("T")

MAX_SOURCES = 9
MAX_TARGETS = 9


@dataclass(frozen=True)
class MatrixSpec:
    sources: tuple[str, ...]  # NS/DEPLOY[:CONTAINER]
    urls: tuple[str, ...]

    def probes(self) -> list[Probe]:
        return [Probe.parse(f"{source}={url}") for source in self.sources for url in self.urls]


def default_matrix(cluster: Any) -> MatrixSpec:
    """Client pods (curl, sleep) × every Service with a listening endpoint, first port each."""
    from meshtutor.policy.apps import app_for, listener_for
    from meshtutor.policy.edge import role_of
    from meshtutor.policy.predict import service_endpoints

    sources = []
    for pod in cluster.pods():
        if all(app_for(c).kind == "client" for c in pod.spec.containers):
            sources.append(f"{pod.namespace}/{pod.deployment}")
    urls = []
    for service in cluster.services():
        for port in service.ports[:1]:
            endpoints = service_endpoints(cluster, service, port)
            if endpoints and role_of(endpoints[0][0]):
                continue  # an ingress: reached from outside, by host name, not in the matrix
            if endpoints and listener_for(endpoints[0][0].spec.containers, endpoints[0][1]):
                path = (
                    "/ip"
                    if any("httpbin" in c.image for c in endpoints[0][0].spec.containers)
                    else "/"
                )
                urls.append(f"http://{service.name}.{service.namespace}:{port.port}{path}")
    return MatrixSpec(tuple(sources[:MAX_SOURCES]), tuple(urls[:MAX_TARGETS]))


def _qualified(url: str, namespace: str) -> str:
    """``http://frontend:80/`` probed from ``demo`` as ``http://frontend.demo:80/``: the matrix
    sends every URL from every source, and a short name resolves in each source's own
    namespace (so from any other namespace it would only show "no DNS")."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or host == "localhost" or "." in host or ":" in host:
        return url
    netloc = f"{host}.{namespace}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


def lesson_matrix(lesson: Any, cluster: Any) -> MatrixSpec:
    """The matrix a lesson is about: its own matrix action if it has one, else the sources and
    URLs its probes use, topped up with the default matrix's client pods and services."""
    for step in lesson.steps:
        for action in step.actions:
            if action.kind == "matrix":
                return MatrixSpec(tuple(action.args["sources"]), tuple(action.args["urls"]))
    sources: list[str] = []
    urls: list[str] = []
    probes = [p for step in lesson.steps for a in step.actions for p in a.args.get("probes", ())]
    probes += [e.probe for step in lesson.steps for e in step.expect if e.probe is not None]
    for probe in probes:
        if probe.outside:
            continue  # the matrix is pods × services; outside probes show in their steps
        source = probe.source + (f":{probe.container}" if probe.container else "")
        if source not in sources and cluster.pod_for(
            probe.source_namespace, probe.source_deployment
        ):
            sources.append(source)
        url = _qualified(probe.url, probe.source_namespace)
        if url not in urls and probe.method == "GET" and not probe.headers:
            urls.append(url)
    fallback = default_matrix(cluster)
    for source in fallback.sources:
        if source not in sources:
            sources.append(source)
    for url in fallback.urls:
        if url not in urls:
            urls.append(url)
    return MatrixSpec(tuple(sources[:MAX_SOURCES]), tuple(urls[:MAX_TARGETS]))


class Session:
    def __init__(
        self, *, progress: Progress | None = None, backend_factory: BackendFactory = default_backend
    ) -> None:
        self.bg = BackgroundLoop()
        self.progress = progress
        self.backend_factory = backend_factory
        self.runner: LessonRunner | None = None
        self._warm: tuple[str, Any] | None = None  # (lesson id, future of a started runner)

    def run(self, coro: Coroutine[Any, Any, T]) -> Any:
        return self.bg.run(coro)

    def warm(self, lesson: Lesson) -> Future[Any] | None:
        """Start a lesson's sandbox in the background (before the learner opens it); the
        future is done when the sandbox is ready to probe (None if one is already warming)."""
        if self._warm is not None:
            return None
        runner = LessonRunner(lesson, progress=self.progress, backend_factory=self.backend_factory)
        future = self.bg.submit(runner.start(resume=True))
        self._warm = (lesson.id, (runner, future))
        return future

    async def open(self, lesson: Lesson) -> LessonRunner:
        """The runner for ``lesson``, started (reusing a warmed one)."""
        if self.runner is not None and self.runner.lesson.id != lesson.id:
            await self.close_lesson()
        if self.runner is not None:
            return self.runner
        import asyncio

        runner: LessonRunner

        if self._warm is not None and self._warm[0] == lesson.id:
            runner, future = self._warm[1]
            self._warm = None
            await asyncio.wrap_future(future)
        else:
            if self._warm is not None:
                stale, future = self._warm[1]
                self._warm = None
                await asyncio.wrap_future(future)
                await self.run(stale.stop())
            runner = LessonRunner(
                lesson, progress=self.progress, backend_factory=self.backend_factory
            )
            await self.run(runner.start(resume=True))
        self.runner = runner
        return runner

    async def close_lesson(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await self.run(runner.stop())

    def shutdown(self) -> None:
        """Stop every sandbox and the background loop (blocking; used at exit)."""
        for runner in [self.runner, self._warm[1][0] if self._warm else None]:
            if runner is not None:
                with contextlib.suppress(Exception):
                    self.bg.call(runner.stop(), timeout=10)
        self.bg.stop()
