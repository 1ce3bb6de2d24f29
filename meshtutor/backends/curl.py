"""The curl command line meshtutor runs for a probe, and how its output is read back.

Shared by the sandbox (a local curl process) and real clusters (curl through ``exec``), so both
send the same request and parse the same way: the body on stdout, then a marker line with
curl's ``%{http_code}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshtutor.policy.probe import Probe

MARK = "\n__meshtutor_http_code__="


def curl_args(probe: Probe, *, extra: Sequence[str] = ()) -> list[str]:
    """``curl -s -S -w … --max-time T [-X M] [-H …] …`` without the URL (callers route it)."""
    args = [
        "curl",
        *extra,
        "-s",
        "-S",
        "-w",
        MARK + "%{http_code}",
        "--max-time",
        f"{probe.effective_timeout:g}",
    ]
    if probe.method != "GET":
        args += ["-X", probe.method]
    for name, value in probe.headers.items():
        args += ["-H", f"{name}: {value}"]
    if probe.insecure:
        args.append("-k")
    return args


def parse_output(stdout: str) -> tuple[str, str]:
    """(body, http_code) from what curl printed; ``000`` when the marker never came."""
    body, found, code = stdout.rpartition(MARK)
    if not found:
        return stdout, "000"
    return body, code.strip() or "000"
