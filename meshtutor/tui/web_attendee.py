"""One browser attendee's app: ``python -m meshtutor.tui.web_attendee JOIN_URL NAME``.

``meshtutor classroom serve --web`` (``meshtutor/tui/web_server.py``) starts one of these per
browser, with ``MESHTUTOR_HOME`` set to that browser's own directory, so the classroom client's
outbox and attendee token survive a reload. It runs the normal app joined to the classroom.

It must never outlive the server, even one killed with SIGKILL (which runs no cleanup): the
first lines ask the kernel for SIGKILL when the parent dies (``PR_SET_PDEATHSIG``, Linux), then
check the parent is still the server (whose pid the server put in the environment), which
closes the race of a server dying before the request was made. Where prctl is missing, a
thread watches the parent id instead. Only the standard library is imported before that.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PARENT_ENV = "MESHTUTOR_WEB_SERVER_PID"


def die_with_parent() -> None:
    """In an app started by the web server: end when the server ends, however it ends.
    SIGKILL, not SIGTERM: nobody is left to see a graceful exit, and what the app must keep
    (the classroom outbox, progress) is already committed to SQLite."""
    expected = os.environ.get(PARENT_ENV)
    if not expected or not expected.isdigit():
        return
    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1  # <linux/prctl.h>
        libc = ctypes.CDLL(None, use_errno=True)
        # Fires when the thread that forked us ends: the server forks from its event loop,
        # which is its main thread, alive as long as the server.
        armed = libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != int(expected):  # the server died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(int(expected),), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    die_with_parent()  # first: nothing before it may outlive a killed server
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.exit("usage: python -m meshtutor.tui.web_attendee JOIN_URL NAME")
    from meshtutor.tui.app import run_app

    run_app(join=args[0], name=args[1])


if __name__ == "__main__":
    main()
