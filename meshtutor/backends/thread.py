"""Run a backend (and the lesson runner) on an event loop of its own, in a background thread.

The sandbox's sidecars do real TLS handshakes and spawn curl processes; on the UI's event loop
that CPU work would stall rendering. So the UI hands coroutines to this thread and awaits their
results without ever blocking.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """An asyncio loop in a daemon thread. ``await bg.run(coro)`` from any other loop."""

    def __init__(self, name: str = "meshtutor-sandbox") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Schedule ``coro`` on the background loop; await the result from the caller's loop."""
        return asyncio.wrap_future(self.submit(coro))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        """Blocking variant, for code that is not async (tests, shutdown)."""
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
