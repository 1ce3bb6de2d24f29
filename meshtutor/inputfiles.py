"""Reading the files a user names, and checking the ones meshtutor writes for them.

Manifests (``-f``), lessons, probe files (``--probes``), CA bundles (``--cacert``) and
certificate dumps (``certs -f``) are all read here, so every one of them is:

* a regular file or a pipe (``-f <(kustomize build)``, ``-`` for stdin where the command
  takes it): a device such as ``/dev/zero`` or a terminal is refused before it is read;
* at most :data:`MAX_INPUT_BYTES`, read in bounded chunks, so nothing reads forever;
* UTF-8 where text is expected, with the line and column of the first byte that is not.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from meshtutor.errors import InputFileError

__all__ = [
    "MAX_INPUT_BYTES",
    "check_output_file",
    "decode_utf8",
    "parse_json",
    "read_bytes",
    "read_text",
]

#: The largest file meshtutor reads: 700 times the largest file it ships (a 22 KB lesson),
#: room for a whole mesh's manifests or an Envoy config dump.
MAX_INPUT_BYTES = 16 * 1024 * 1024

_CHUNK = 1 << 20


def _kind(mode: int) -> str | None:
    """What a non-readable file type is, or ``None`` for a regular file or a pipe."""
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"  # pragma: no cover - no other types on Linux or macOS


def _refuse(source: str, kind: str) -> InputFileError:
    return InputFileError(f"this is {kind}, not a file; pass a regular file", source=source)


def _read_fd(fd: int, source: str, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_large(source, limit)


def _too_large(source: str, limit: int) -> InputFileError:
    return InputFileError(
        f"this is larger than {limit // (1024 * 1024)} MiB, more than any manifest, lesson or "
        "certificate meshtutor reads",
        source=source,
    )


def read_bytes(
    path: str | os.PathLike[str], *, limit: int = MAX_INPUT_BYTES, stdin: bool = False
) -> bytes:
    """The bytes of a regular file or pipe (``-`` is stdin when ``stdin`` is true).

    Raises :class:`InputFileError` naming the file and saying what was wrong.
    """
    source = os.fspath(path)
    if stdin and source == "-":
        data: bytes = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise _too_large("<stdin>", limit)
        return data
    try:
        # stat first: opening a terminal or a FIFO without a writer could block.
        kind = _kind(os.stat(source).st_mode)
        if kind is not None:
            raise _refuse(source, kind)
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputFileError("no such file", source=source) from None
    except OSError as exc:
        raise InputFileError(f"cannot read the file: {exc.strerror}", source=source) from None
    try:
        kind = _kind(os.fstat(fd).st_mode)  # the file may have been swapped since the stat
        if kind is not None:
            raise _refuse(source, kind)
        return _read_fd(fd, source, limit)
    except OSError as exc:
        raise InputFileError(f"cannot read the file: {exc.strerror}", source=source) from None
    finally:
        os.close(fd)


def decode_utf8(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text, or an error with the line and column of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputFileError(
            f"byte 0x{data[exc.start]:02X} at column {column} is not UTF-8; save the file as "
            "UTF-8 text",
            source=source,
            line=line,
        ) from None


def read_text(
    path: str | os.PathLike[str], *, limit: int = MAX_INPUT_BYTES, stdin: bool = False
) -> str:
    """A UTF-8 text file, read as :func:`read_bytes` does."""
    data = read_bytes(path, limit=limit, stdin=stdin)
    return decode_utf8(data, "<stdin>" if stdin and os.fspath(path) == "-" else os.fspath(path))


#: Digits of a JSON integer, as for YAML (``meshtutor.model.yamlnodes.MAX_INT_DIGITS``):
#: Python refuses to convert more than 4,300, and no certificate dump holds more than 64 bits.
MAX_JSON_INT_DIGITS = 40


class _TooManyDigits(Exception):
    def __init__(self, digits: str) -> None:
        self.digits = digits


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise _TooManyDigits(text)
    return int(text)


def parse_json(data: str | bytes, source: str) -> Any:
    """Parse JSON from a user's file; every failure is an :class:`InputFileError` naming
    ``source`` and, where known, the line (json raises ValueError, RecursionError for deep
    nesting, and ValueError again for integers past Python's 4,300 digits)."""
    try:
        return json.loads(data, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"this is not valid JSON: {exc.msg} at column {exc.colno}",
            source=source,
            line=exc.lineno,
        ) from None
    except _TooManyDigits as exc:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        line = text.count("\n", 0, max(text.find(exc.digits), 0)) + 1
        raise InputFileError(
            f"this number has {len(exc.digits.lstrip('-')):,} digits; no certificate dump holds "
            "numbers that long",
            source=source,
            line=line,
        ) from None
    except RecursionError:
        raise InputFileError(
            "this JSON is nested deeper than any certificate dump (or Python) goes",
            source=source,
        ) from None
    except UnicodeDecodeError as exc:
        raise InputFileError(f"this is not UTF-8 JSON: {exc.reason}", source=source) from None


def check_output_file(path: str | os.PathLike[str], what: str) -> Path:
    """Refuse an output path that would put data somewhere the user did not expect.

    A symlink is refused (it could point anywhere, and key logs hold secrets), as is anything
    that exists and is not a regular file (``/dev/null``, a FIFO, a directory), and a path
    whose directory does not exist. Returns the path.
    """
    p = Path(path)
    source = os.fspath(path)
    try:
        mode = os.lstat(p).st_mode
    except FileNotFoundError:
        parent = p.parent
        if not parent.is_dir():
            raise InputFileError(
                f"cannot write the {what} here: the directory {os.fspath(parent)} does not exist",
                source=source,
            ) from None
        return p
    except OSError as exc:
        raise InputFileError(f"cannot write the {what}: {exc.strerror}", source=source) from None
    if stat.S_ISLNK(mode):
        raise InputFileError(
            f"this is a symbolic link; meshtutor writes the {what} only to a regular file, "
            "never through a link",
            source=source,
        )
    if not stat.S_ISREG(mode):
        kind = _kind(mode) or "not a regular file"
        raise InputFileError(f"this is {kind}; write the {what} to a regular file", source=source)
    return p
