"""The text and system utilities of a pod's image: busybox's for Alpine, GNU's for Ubuntu.

Only what tutorials pipe curl's output through and what a learner types to look around:
echo, printf, test, cat, grep, head, tail, wc, sort, uniq, tr, cut, tee, base64, seq, env,
printenv, hostname, id, whoami, date, ls, uname, which, basename, dirname, sleep, true, false.
Output formats and messages are busybox's (``coreutils/*.c``, ``findutils/grep.c``) unless
the image is the Ubuntu-based istio-proxy, where they differ in a way a learner would notice
(GNU's ``cat: F: No such file or directory``). Inputs stream: ``grep`` prints each matching
line as soon as it arrives.
"""

from __future__ import annotations

import asyncio
import base64 as b64
import errno
import math
import platform
import posixpath
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import re2

from meshtutor.kubeapi.shell import limits
from meshtutor.kubeapi.shell.images import words
from meshtutor.kubeapi.shell.runtime import Proc, decode, encode, program
from meshtutor.kubeapi.shell.streams import Source

__all__ = ["getopt", "translate_regex", "unescape"]

Options = dict[str, list[str]]


class UsageError(Exception):
    pass


def getopt(
    args: list[str], spec: str, long: dict[str, str] | None = None
) -> tuple[Options, list[str]]:
    """Short options as getopt does them (bundled, ``-n5`` or ``-n 5``), operands permuted.

    ``spec`` lists the letters; a letter followed by ``:`` takes an argument. ``long`` maps
    long names to letters (``None``-valued letters are accepted and ignored).
    """
    opts: Options = {}
    operands: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            operands.extend(args[i:])
            break
        if arg.startswith("--") and long is not None:
            name, eq, value = arg[2:].partition("=")
            letter = long.get(name)
            if letter is None:
                raise UsageError(f"unrecognized option: {arg}")
            if letter and letter + ":" in spec:
                if not eq:
                    if i >= len(args):
                        raise UsageError(f"option requires an argument: {name}")
                    value = args[i]
                    i += 1
                opts.setdefault(letter, []).append(value)
            elif letter:
                opts.setdefault(letter, []).append("")
            continue
        if not arg.startswith("-") or arg == "-":
            operands.append(arg)
            continue
        j = 1
        while j < len(arg):
            letter = arg[j]
            k = spec.find(letter)
            if k < 0 or letter == ":":
                raise UsageError(f"unrecognized option: {letter}")
            if spec[k + 1 : k + 2] == ":":
                value = arg[j + 1 :]
                if not value:
                    if i >= len(args):
                        raise UsageError(f"option requires an argument: {letter}")
                    value = args[i]
                    i += 1
                opts.setdefault(letter, []).append(value)
                break
            opts.setdefault(letter, []).append("")
            j += 1
    return opts, operands


async def bad_usage(proc: Proc, err: UsageError, usage: str) -> int:
    await proc.error(str(err))
    return await proc.usage(usage)


async def lines_of(source: Source) -> AsyncIterator[bytes]:
    while line := await source.readline():
        yield line


class Inputs:
    """A utility's file operands (stdin when none); missing files are reported and skipped."""

    def __init__(
        self, proc: Proc, names: list[str], *, quoted: bool, headers: bool = False
    ) -> None:
        self.proc = proc
        self.names = names or ["-"]
        self.quoted = quoted
        self.headers = headers  # head and tail's "==> NAME <==" before each
        self.failed = False

    async def each(self) -> AsyncIterator[tuple[str, Source]]:
        proc = self.proc
        first = True
        for name in self.names:
            if self.headers:
                label = "standard input" if name == "-" else name
                await proc.out(("" if first else "\n") + f"==> {label} <==\n")
                first = False
            source = await proc.read_input(name)
            if source is None:
                is_dir = proc.files.is_dir(proc.path(name))
                await proc.open_error(
                    name, errno.EISDIR if is_dir else errno.ENOENT, quoted=self.quoted
                )
                self.failed = True
                continue
            yield name, source

    @property
    def status(self) -> int:
        return 1 if self.failed else 0


# --- escapes -----------------------------------------------------------------------------------

_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_ESCAPE = re.compile(r"\\(0[0-7]{0,3}|[1-7][0-7]{0,2}|x[0-9a-fA-F]{1,2}|.)", re.DOTALL)


def unescape(text: str, *, octal_needs_zero: bool) -> tuple[str, bool]:
    """Backslash escapes of ``echo -e`` (``\\0NNN``) or printf (``\\NNN``); True if ``\\c``."""
    out: list[str] = []
    pos = 0
    for m in _ESCAPE.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        code = m.group(1)
        if code == "c":
            return "".join(out), True
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
        elif code == "\\":
            out.append("\\")
        elif code[0] == "x":
            out.append(chr(int(code[1:], 16)))
        elif code[0].isdigit() and (code[0] == "0" or not octal_needs_zero):
            digits = code[1:] if code[0] == "0" and octal_needs_zero else code
            out.append(chr(int(digits or "0", 8) & 0xFF))
        else:
            out.append("\\" + code)
    out.append(text[pos:])
    return "".join(out), False


# --- echo, printf, test, true, false, pwd -----------------------------------------------------


@program("echo")
async def echo(proc: Proc) -> int:
    args = proc.argv[1:]
    newline = True
    escapes = proc.flavour == "dash"  # dash's echo always interprets escapes
    flags = "n" if proc.flavour == "dash" else "neE"
    while args and re.fullmatch(f"-[{flags}]+", args[0]):
        for flag in args.pop(0)[1:]:
            if flag == "n":
                newline = False
            else:
                escapes = flag == "e"
    text = " ".join(args)
    if escapes:
        text, stop = unescape(text, octal_needs_zero=True)
        if stop:
            newline = False
    await proc.out(text + ("\n" if newline else ""))
    return 0


_CONVERSION = re.compile(r"%([-+ #0]*)(\d*|\*)(?:\.(\d*|\*))?([diouxXeEfFgGcsb%])")


@program("printf")
async def printf(proc: Proc) -> int:
    if len(proc.argv) < 2:
        return await proc.usage("FORMAT [ARG]...")
    fmt, args = proc.argv[1], proc.argv[2:]
    # (is_error, text) in order, so that a bad number's message lands where printf says it.
    pieces: list[tuple[bool, str]] = []

    def number(text: str, floating: bool) -> float | int:
        try:
            if text[:1] in ("'", '"'):
                return ord(text[1]) if len(text) > 1 else 0
            if floating:
                return float(text) if text else 0.0
            base = 16 if text.lower().lstrip("-").startswith("0x") else 10
            return int(text or "0", base)
        except ValueError:
            message = f"invalid number '{text}'" if proc.busybox else f"{text}: invalid number"
            pieces.append((True, message))
            return 0

    while True:
        consumed = 0
        pos = 0
        stop = False
        for m in _CONVERSION.finditer(fmt):
            literal, stop = unescape(fmt[pos : m.start()], octal_needs_zero=False)
            pieces.append((False, literal))
            pos = m.end()
            if stop:
                break
            flags, width, precision, conv = m.groups()
            if conv == "%":
                pieces.append((False, "%"))
                continue
            if width == "*":
                width = str(int(number(args[consumed], False))) if consumed < len(args) else ""
                consumed += 1
            if precision == "*":
                precision = str(int(number(args[consumed], False))) if consumed < len(args) else ""
                consumed += 1
            arg = args[consumed] if consumed < len(args) else ""
            consumed += 1
            width = str(min(int(width), limits.MAX_FIELD_WIDTH)) if width else ""
            if precision:
                precision = str(min(int(precision), limits.MAX_FIELD_WIDTH))
            spec = "%" + flags + width + ("." + precision if precision is not None else "")
            if conv in "sb":
                if conv == "b":
                    arg, stop = unescape(arg, octal_needs_zero=True)
                pieces.append((False, (spec + "s") % arg))
                if stop:
                    break
            elif conv == "c":
                pieces.append((False, (spec + "s") % arg[:1]))
            elif conv in "eEfFgG":
                pieces.append((False, (spec + conv) % number(arg, True)))
            else:
                value = int(number(arg, False))
                pieces.append((False, (spec + ("d" if conv in "iu" else conv)) % value))
        else:
            literal, stop = unescape(fmt[pos:], octal_needs_zero=False)
            pieces.append((False, literal))
        if stop or consumed == 0 or consumed >= len(args):
            break
        args = args[consumed:]
    status = 0
    for is_error, text in pieces:
        if is_error:
            status = 1
            await proc.error(text)
        elif text:
            await proc.out(text)
    return status


class TestError(Exception):
    pass


@program("test", "[")
async def test(proc: Proc) -> int:
    args = proc.argv[1:]
    if proc.command == "[":
        if not args or args[-1] != "]":
            await proc.error("missing ]")
            return 2
        args = args[:-1]
    try:
        return 0 if _Test(proc, args).evaluate() else 1
    except RecursionError:
        await proc.error("expression too deeply nested")
        return 2
    except TestError as e:
        await proc.error(str(e))
        return 2


class _Test:
    UNARY = words(
        """
        -n -z -e -f -d -r -w -x -s -L -h -b -c -p -S -t -g -u -k -O -G
        """
    )
    BINARY = frozenset(
        ["=", "==", "!=", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "-ef", "<", ">"]
    )

    def __init__(self, proc: Proc, args: list[str]) -> None:
        self.proc = proc
        self.args = args
        self.i = 0

    def evaluate(self) -> bool:
        args = self.args
        if not args:
            return False
        if len(args) == 1:
            return args[0] != ""
        if len(args) == 2:
            if args[0] == "!":
                return args[1] == ""
            if args[0] in self.UNARY:
                return self.unary(args[0], args[1])
            raise TestError(f"{args[0]}: unknown operand")
        if len(args) == 3 and args[1] in self.BINARY:
            return self.binary(args[0], args[1], args[2])
        value = self.or_expr()
        if self.i != len(args):
            raise TestError(f"{args[self.i]}: unknown operand")
        return value

    def take(self) -> str:
        if self.i >= len(self.args):
            raise TestError("argument expected")
        self.i += 1
        return self.args[self.i - 1]

    def peek(self, offset: int = 0) -> str | None:
        j = self.i + offset
        return self.args[j] if j < len(self.args) else None

    def or_expr(self) -> bool:
        value = self.and_expr()
        while self.peek() == "-o":
            self.i += 1
            value = self.and_expr() or value
        return value

    def and_expr(self) -> bool:
        value = self.not_expr()
        while self.peek() == "-a":
            self.i += 1
            value = self.not_expr() and value
        return value

    def not_expr(self) -> bool:
        if self.peek() == "!":
            self.i += 1
            return not self.not_expr()
        return self.primary()

    def primary(self) -> bool:
        if (self.peek() == "(" and self.peek(2) != ")") or (
            self.peek() == "(" and self.peek(1) == "("
        ):
            self.i += 1
            value = self.or_expr()
            if self.take() != ")":
                raise TestError("closing paren expected")
            return value
        token = self.take()
        if token in self.UNARY and self.peek() is not None:
            return self.unary(token, self.take())
        op = self.peek()
        if op in self.BINARY and self.peek(1) is not None:
            self.i += 1
            return self.binary(token, op, self.take())
        return token != ""

    def integer(self, text: str) -> int:
        stripped = text.strip()
        if not re.fullmatch(r"[-+]?\d+", stripped):
            raise TestError(
                f"{text}: bad number" if self.proc.busybox else "integer expression expected"
            )
        return int(stripped)

    def unary(self, op: str, arg: str) -> bool:
        if op == "-n":
            return arg != ""
        if op == "-z":
            return arg == ""
        if op == "-t":
            return self.proc.session.tty and arg in ("0", "1", "2")
        files = self.proc.files
        path = self.proc.path(arg) if arg else ""
        if not path:
            return False
        data = files.read(path)
        is_dir = files.is_dir(path)
        if op == "-e" or op == "-r":
            return data is not None or is_dir
        if op == "-f":
            return data is not None and not is_dir
        if op == "-d":
            return is_dir
        if op == "-s":
            return bool(data) or is_dir
        if op == "-x":
            return is_dir or self.proc.image.find(path) is not None
        if op == "-w":
            try:
                files.check_writable(path)
            except OSError:
                return False
            return True
        return False

    def binary(self, left: str, op: str, right: str) -> bool:
        if op in ("=", "=="):
            return left == right
        if op == "!=":
            return left != right
        if op == "<":
            return left < right
        if op == ">":
            return left > right
        if op in ("-nt", "-ot", "-ef"):
            return False
        a, b = self.integer(left), self.integer(right)
        return {
            "-eq": a == b,
            "-ne": a != b,
            "-lt": a < b,
            "-le": a <= b,
            "-gt": a > b,
            "-ge": a >= b,
        }[op]


@program("true")
async def true(proc: Proc) -> int:
    return 0


@program("false")
async def false(proc: Proc) -> int:
    return 1


@program("pwd")
async def pwd(proc: Proc) -> int:
    await proc.out(proc.cwd + "\n")
    return 0


# --- files and text ----------------------------------------------------------------------------


@program("cat")
async def cat(proc: Proc) -> int:
    try:
        opts, names = getopt(proc.argv[1:], "nbuvteA")
    except UsageError as e:
        return await bad_usage(proc, e, "[-nbvteA] [FILE]...")
    number = "n" in opts or "b" in opts
    count = 0
    operands = Inputs(proc, names, quoted=True)
    async for _, source in operands.each():
        if not number:
            while chunk := await source.read(65536):
                await proc.out(chunk)
            continue
        async for line in lines_of(source):
            if "b" in opts and line.strip() == b"":
                await proc.out(line)
                continue
            count += 1
            await proc.out(f"{count:6d}\t".encode() + line)
    return operands.status


_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v",
    "blank": " \\t",
    "punct": "!-/:-@\\[-`{-~",
    "xdigit": "0-9A-Fa-f",
    "print": " -~",
    "graph": "!-~",
    "cntrl": "\\x00-\\x1f\\x7f",
}


def _bracket(pattern: str, i: int) -> tuple[str, int]:
    """A POSIX bracket expression starting at ``pattern[i] == '['``, as a Python class."""
    j = i + 1
    out = ["["]
    if pattern[j : j + 1] == "^":
        out.append("^")
        j += 1
    if pattern[j : j + 1] == "]":
        out.append("\\]")
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        if pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            if end < 0 or pattern[j + 2 : end] not in _CLASSES:
                raise re.error("invalid character class")
            out.append(_CLASSES[pattern[j + 2 : end]])
            j = end + 2
            continue
        c = pattern[j]
        out.append("\\" + c if c in "\\[" else c)
        j += 1
    if j >= len(pattern):
        raise re.error("unterminated [")
    out.append("]")
    return "".join(out), j + 1


def translate_regex(pattern: str, *, extended: bool) -> str:
    """A POSIX basic (grep) or extended (grep -E) regular expression as Python's ``re``."""
    out: list[str] = []
    i = 0
    special_in_bre = "(){}|+?"
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            n = pattern[i + 1]
            if n in "<>":
                out.append("\\b")
            elif n.isdigit() or n in "wWsSbB":
                out.append("\\" + n)
            elif not extended and n in special_in_bre:
                out.append(n)
            else:
                out.append(re.escape(n))
            i += 2
            continue
        if c == "[":
            text, i = _bracket(pattern, i)
            out.append(text)
            continue
        if not extended and c in special_in_bre:
            out.append("\\" + c)
        elif not extended and c == "*" and (not out or out[-1] in ("^", "")):
            out.append("\\*")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def compile_regex(sources: list[str], *, ignore_case: bool, words: bool) -> Any:
    """One RE2 program for grep's patterns, with POSIX's leftmost-longest matches.

    RE2, not Python's ``re``: a learner's pattern runs on the sandbox's event loop, and a
    backtracking engine takes exponential time on ``grep -E '(a*)*b'`` over a line of a's
    (24 a's: 2 s; 40: days), freezing every pod and, in a classroom, every attendee. RE2 is
    linear in the input. What it cannot do (back-references: ``\\(a\\)\\1``) is a bad regex.
    """
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.longest_match = True
    options.log_errors = False  # RE2 logs to the process's stderr otherwise
    joined = "|".join(f"(?:{s})" for s in sources)
    if words:
        joined = rf"\b(?:{joined})\b"
    return re2.compile(joined.encode(), options)


GREP_LONG = {
    "ignore-case": "i",
    "invert-match": "v",
    "count": "c",
    "quiet": "q",
    "silent": "q",
    "extended-regexp": "E",
    "fixed-strings": "F",
    "line-number": "n",
    "only-matching": "o",
    "word-regexp": "w",
    "line-regexp": "x",
    "files-with-matches": "l",
    "no-filename": "h",
    "with-filename": "H",
    "no-messages": "s",
    "regexp": "e",
    "max-count": "m",
    "line-buffered": "",
    "color": "",
    "colour": "",
}


@program("grep", "egrep", "fgrep")
async def grep(proc: Proc) -> int:
    try:
        opts, operands = getopt(proc.argv[1:], "ivcqEFnowxlLhHsre:f:m:", GREP_LONG)
    except UsageError as e:
        await bad_usage(proc, e, "[-HhnlLoqvsrwFEcix] [-m N] [-e PTRN]... [FILE]...")
        return 2
    patterns = opts.get("e", [])
    if not patterns:
        if not operands:
            await proc.usage("[-HhnlLoqvsrwFEcix] [-m N] [-e PTRN]... [FILE]...")
            return 2
        patterns = [operands.pop(0)]
    extended = "E" in opts or proc.command == "egrep"
    fixed = "F" in opts or proc.command == "fgrep"
    try:
        sources = [
            re.escape(p) if fixed else translate_regex(p, extended=extended) for p in patterns
        ]
        regex = compile_regex(sources, ignore_case="i" in opts, words="w" in opts)
    except (re.error, re2.error):
        await proc.error(f"bad regex '{patterns[0]}'")
        return 2
    invert, quiet, count_only = "v" in opts, "q" in opts, "c" in opts
    max_count = int(opts["m"][-1]) if "m" in opts and opts["m"][-1].isdigit() else None
    show_names = ("H" in opts or len(operands) > 1) and "h" not in opts
    matched_any = False
    errors = False
    for name in operands or ["-"]:
        source = await proc.read_input(name)
        if source is None:
            errors = True
            if "s" not in opts:
                missing = proc.files.is_dir(proc.path(name))
                await proc.open_error(name, errno.EISDIR if missing else errno.ENOENT)
            continue
        label = "(standard input)" if name == "-" else name
        prefix = f"{label}:".encode() if show_names else b""
        count = 0
        number = 0
        async for line in lines_of(source):
            number += 1
            body = line[:-1] if line.endswith(b"\n") else line
            found = regex.fullmatch(body) if "x" in opts else regex.search(body)
            if bool(found) == invert:
                continue
            count += 1
            matched_any = True
            if quiet:
                return 0
            if "l" in opts:
                break
            if not count_only and "L" not in opts:
                head = prefix + (f"{number}:".encode() if "n" in opts else b"")
                if "o" in opts and not invert:
                    for m in regex.finditer(body):
                        if m.group():
                            await proc.out(head + m.group() + b"\n")
                else:
                    await proc.out(head + body + b"\n")
            if max_count is not None and count >= max_count:
                break
        if count_only:
            await proc.out(prefix + f"{count}\n".encode())
        if "l" in opts and count:
            await proc.out(label + "\n")
        if "L" in opts and not count:
            await proc.out(label + "\n")
    if errors and not (quiet and matched_any):
        return 2
    return 0 if matched_any else 1


def _count_option(args: list[str]) -> list[str]:
    """``head -5`` and ``tail -5``: the historical form of ``-n 5``."""
    return [("-n" + a[1:]) if re.fullmatch(r"-\d+", a) else a for a in args]


@program("head")
async def head(proc: Proc) -> int:
    try:
        opts, names = getopt(_count_option(proc.argv[1:]), "n:c:qv")
    except UsageError as e:
        return await bad_usage(proc, e, "[OPTIONS] [FILE]...")
    try:
        lines = int(opts["n"][-1]) if "n" in opts else 10
        size = int(opts["c"][-1]) if "c" in opts else None
    except ValueError:
        await proc.error(f"invalid number '{(opts.get('n') or opts.get('c') or [''])[-1]}'")
        return 1
    headers = (len(names) > 1 and "q" not in opts) or "v" in opts
    operands = Inputs(proc, names, quoted=False, headers=headers)
    async for _, source in operands.each():
        if size is not None:
            left = max(size, 0)
            while left and (chunk := await source.read(min(left, 65536))):
                await proc.out(chunk)
                left -= len(chunk)
            continue
        for _ in range(max(lines, 0)):
            line = await source.readline()
            if not line:
                break
            await proc.out(line)
    return operands.status


@program("tail")
async def tail(proc: Proc) -> int:
    try:
        opts, names = getopt(_count_option(proc.argv[1:]), "n:c:fFqvs:")
    except UsageError as e:
        return await bad_usage(proc, e, "[OPTIONS] [FILE]...")
    spec = opts["n"][-1] if "n" in opts else "10"
    from_start = spec.startswith("+")
    try:
        count = int(spec.lstrip("+-"))
    except ValueError:
        await proc.error(f"invalid number '{spec}'")
        return 1
    headers = (len(names) > 1 and "q" not in opts) or "v" in opts
    operands = Inputs(proc, names, quoted=True, headers=headers)
    async for _, source in operands.each():
        if "c" in opts:
            size = int(opts["c"][-1].lstrip("+-") or 0)
            tail_bytes = bytearray()
            while chunk := await source.read(65536):
                tail_bytes += chunk
                del tail_bytes[: max(len(tail_bytes) - max(size, 0), 0)]
            await proc.out(bytes(tail_bytes))
            continue
        if from_start:
            number = 0
            async for line in lines_of(source):
                number += 1
                if number >= count:
                    await proc.out(line)
            continue
        kept: deque[bytes] = deque(maxlen=count or None)
        held = 0
        async for line in lines_of(source):
            if count:
                if len(kept) == kept.maxlen:
                    held -= len(kept[0])
                kept.append(line)
                held += len(line)
                while held > limits.MAX_BUFFER:  # the last N lines do not all fit: keep the end
                    held -= len(kept.popleft())
        await proc.out(b"".join(kept))
    return operands.status


@program("wc")
async def wc(proc: Proc) -> int:
    try:
        opts, names = getopt(proc.argv[1:], "lwmcL")
    except UsageError as e:
        return await bad_usage(proc, e, "[-cmlwL] [FILE]...")
    kinds = [k for k in "lwmcL" if k in opts] or ["l", "w", "c"]
    totals = dict.fromkeys(kinds, 0)
    rows = 0
    single = len(names) <= 1 and len(kinds) == 1
    operands = Inputs(proc, names, quoted=False)
    async for name, source in operands.each():
        counts = await _wc_count(source, "L" in kinds)
        await proc.out(_wc_row(counts, kinds, None if name == "-" else name, single))
        for k in kinds:
            totals[k] = max(totals[k], counts[k]) if k == "L" else totals[k] + counts[k]
        rows += 1
    if rows > 1:
        await proc.out(_wc_row(totals, kinds, "total", False))
    return operands.status


async def _wc_count(source: Source, longest: bool) -> dict[str, int]:
    """Lines, words, characters, bytes and (when asked) the longest line, chunk by chunk."""
    counts = dict.fromkeys("lwmcL", 0)
    in_word = False
    line_length = 0
    while chunk := await source.read(65536):
        counts["l"] += chunk.count(b"\n")
        counts["c"] += len(chunk)
        counts["m"] += len(chunk) - sum(1 for b in chunk if 0x80 <= b < 0xC0)
        pieces = chunk.split()
        if pieces:
            counts["w"] += len(pieces) - (1 if in_word and not chunk[:1].isspace() else 0)
        in_word = not chunk[-1:].isspace() and (bool(pieces) or in_word)
        if longest:
            for line in chunk.split(b"\n")[:-1]:
                counts["L"] = max(counts["L"], line_length + len(decode(line)))
                line_length = 0
            line_length += len(decode(chunk.rsplit(b"\n", 1)[-1]))
    counts["L"] = max(counts["L"], line_length)
    return counts


def _wc_row(counts: dict[str, int], kinds: list[str], name: str | None, single: bool) -> str:
    # coreutils/wc.c: "%9u" then " %9u", or a bare "%u" for one count of one input.
    text = str(counts[kinds[0]]) if single else " ".join(f"{counts[k]:9d}" for k in kinds)
    return text + (f" {name}\n" if name is not None else "\n")


@program("sort")
async def sort(proc: Proc) -> int:
    try:
        opts, names = getopt(proc.argv[1:], "nrufbk:t:")
    except UsageError as e:
        return await bad_usage(proc, e, "[-nrufb] [FILE]...")
    lines: list[bytes] = []
    operands = Inputs(proc, names, quoted=True)
    held = 0
    async for _, source in operands.each():
        data = await source.read_all(limits.MAX_BUFFER + 1)
        held += len(data)
        if held > limits.MAX_BUFFER:
            await proc.error("out of memory")
            return 1
        lines.extend(data.splitlines())

    def key(line: bytes) -> tuple[float, bytes]:
        text = line.lower() if "f" in opts else line
        if "b" in opts:
            text = text.lstrip()
        if "n" in opts:
            m = re.match(rb"\s*(-?\d+(?:\.\d+)?)", line)
            return (float(m.group(1)) if m else 0.0, text)
        return (0.0, text)

    lines.sort(key=key, reverse="r" in opts)
    if "u" in opts:
        seen: set[tuple[float, bytes]] = set()
        unique = []
        for line in lines:
            if key(line) not in seen:
                seen.add(key(line))
                unique.append(line)
        lines = unique
    await proc.out(b"".join(line + b"\n" for line in lines))
    return operands.status


@program("uniq")
async def uniq(proc: Proc) -> int:
    try:
        opts, names = getopt(proc.argv[1:], "cdui")
    except UsageError as e:
        return await bad_usage(proc, e, "[-cdui] [INPUT]")
    source = await proc.read_input(names[0] if names else "-")
    if source is None:
        await proc.open_error(names[0], quoted=True)
        return 1
    previous: bytes | None = None
    count = 0

    async def emit() -> None:
        if previous is None:
            return
        if ("d" in opts and count < 2) or ("u" in opts and count > 1):
            return
        await proc.out((f"{count:7d} ".encode() if "c" in opts else b"") + previous + b"\n")

    async for line in lines_of(source):
        body = line.rstrip(b"\n")
        same = previous is not None and (
            body.lower() == previous.lower() if "i" in opts else body == previous
        )
        if same:
            count += 1
            continue
        await emit()
        previous, count = body, 1
    await emit()
    return 0


def _tr_set(spec: str) -> list[str]:
    text, _ = unescape(spec, octal_needs_zero=False)
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("[:", i) and ":]" in text[i:]:
            end = text.index(":]", i)
            name = text[i + 2 : end]
            if name in _CLASSES:
                chars = re.findall(f"[{_CLASSES[name]}]", "".join(map(chr, range(128))))
                out.extend(chars)
                i = end + 2
                continue
        if i + 2 < len(text) and text[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(text[i]), ord(text[i + 2]) + 1))
            i += 3
            continue
        out.append(text[i])
        i += 1
    return out


@program("tr")
async def tr(proc: Proc) -> int:
    try:
        opts, sets = getopt(proc.argv[1:], "dscC")
    except UsageError as e:
        return await bad_usage(proc, e, "[-cds] STRING1 [STRING2]")
    if not sets or (len(sets) < 2 and "d" not in opts and "s" not in opts):
        return await proc.usage("[-cds] STRING1 [STRING2]")
    first = _tr_set(sets[0])
    second = _tr_set(sets[1]) if len(sets) > 1 else []
    complement = "c" in opts or "C" in opts
    if "d" in opts:
        keep = set(first)
        table: dict[int, int | None] = {}
        squeeze = set(second if "s" in opts else [])

        def convert(text: str) -> str:
            kept = "".join(c for c in text if (c in keep) == complement)
            return _squeeze(kept, squeeze) if squeeze else kept

    else:
        if second:
            second += [second[-1]] * (len(first) - len(second))
        table = {ord(a): ord(b) for a, b in zip(first, second, strict=False)} if second else {}
        squeeze = set(second or first) if "s" in opts else set()

        def convert(text: str) -> str:
            if complement and second:
                text = "".join(c if c in first else second[-1] for c in text)
            else:
                text = text.translate(table)
            return _squeeze(text, squeeze) if squeeze else text

    source = proc.io.stdin
    while chunk := await source.read(65536):
        await proc.out(encode(convert(decode(chunk))))
    return 0


def _squeeze(text: str, chars: set[str]) -> str:
    out: list[str] = []
    for c in text:
        if out and out[-1] == c and c in chars:
            continue
        out.append(c)
    return "".join(out)


def _ranges(spec: str) -> list[tuple[int, int]]:
    ranges = []
    for item in spec.split(","):
        start, dash, end = item.partition("-")
        lo = int(start) if start else 1
        hi = (int(end) if end else 1 << 30) if dash else lo
        if lo < 1 or hi < lo:
            raise ValueError(item)
        ranges.append((lo, hi))
    return ranges


@program("cut")
async def cut(proc: Proc) -> int:
    try:
        opts, names = getopt(proc.argv[1:], "d:f:c:b:sn")
        chosen = opts.get("f") or opts.get("c") or opts.get("b")
        if not chosen:
            raise UsageError("must specify a list of bytes, characters, or fields")
        ranges = _ranges(chosen[-1])
    except (UsageError, ValueError) as e:
        if isinstance(e, UsageError):
            return await bad_usage(proc, e, "[OPTIONS] [FILE]...")
        await proc.error("invalid byte, character or field list")
        return 1
    delim = (opts.get("d") or ["\t"])[-1][:1] or "\t"

    def wanted(i: int) -> bool:
        return any(lo <= i <= hi for lo, hi in ranges)

    operands = Inputs(proc, names, quoted=True)
    async for _, source in operands.each():
        async for line in lines_of(source):
            text = decode(line.rstrip(b"\n"))
            if "f" in opts:
                if delim not in text:
                    if "s" not in opts:
                        await proc.out(encode(text) + b"\n")
                    continue
                fields = text.split(delim)
                picked = [f for i, f in enumerate(fields, 1) if wanted(i)]
                await proc.out(encode(delim.join(picked)) + b"\n")
            else:
                picked = [c for i, c in enumerate(text, 1) if wanted(i)]
                await proc.out(encode("".join(picked)) + b"\n")
    return operands.status


@program("tee")
async def tee(proc: Proc) -> int:
    try:
        opts, names = getopt(proc.argv[1:], "ai")
    except UsageError as e:
        return await bad_usage(proc, e, "[-ai] [FILE]...")
    outputs = []
    status = 0
    for name in names:
        try:
            outputs.append(proc.open_output(name, append="a" in opts))
        except OSError as e:
            await proc.error(f"{name}: {e.strerror}")
            status = 1
    while chunk := await proc.io.stdin.read(65536):
        await proc.out(chunk)
        for out in outputs:
            await out.write(chunk)
    return status


@program("base64")
async def base64(proc: Proc) -> int:
    try:
        opts, names = getopt(proc.argv[1:], "dw:i")
    except UsageError as e:
        return await bad_usage(proc, e, "[-d] [-w COL] [FILE]")
    source = await proc.read_input(names[0] if names else "-")
    if source is None:
        await proc.open_error(names[0], quoted=True)
        return 1
    data = await source.read_all(limits.MAX_BUFFER + 1)
    if len(data) > limits.MAX_BUFFER:
        await proc.error("out of memory")
        return 1
    if "d" in opts:
        try:
            await proc.out(b64.b64decode(re.sub(rb"\s", b"", data), validate=True))
        except ValueError:
            await proc.error("invalid input")
            return 1
        return 0
    text = b64.b64encode(data)
    width = int(opts["w"][-1]) if "w" in opts and opts["w"][-1].isdigit() else 76
    if width:
        text = b"\n".join(text[i : i + width] for i in range(0, len(text), width))
    await proc.out(text + b"\n" if text else b"")
    return 0


# --- numbers and time --------------------------------------------------------------------------


def _duration(text: str) -> float:
    m = re.fullmatch(r"(inf(?:inity)?|\d*\.?\d+(?:[eE][-+]?\d+)?)([smhd]?)", text, re.IGNORECASE)
    if m is None:
        raise ValueError(text)
    value = math.inf if m.group(1).lower().startswith("inf") else float(m.group(1))
    return value * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@program("sleep")
async def sleep(proc: Proc) -> int:
    args = proc.argv[1:]
    if not args:
        return await proc.usage("[N]...")
    total = 0.0
    for arg in args:
        try:
            total += _duration(arg)
        except ValueError:
            message = (
                f"invalid number '{arg}'" if proc.busybox else f"invalid time interval '{arg}'"
            )
            await proc.error(message)
            return 1
    await asyncio.sleep(min(total, limits.MAX_SLEEP))
    return 0


@program("seq")
async def seq(proc: Proc) -> int:
    try:
        opts, args = getopt([a for a in proc.argv[1:]], "ws:f:")
    except UsageError as e:
        return await bad_usage(proc, e, "[-w] [-s SEP] [FIRST [INC]] LAST")
    if not 1 <= len(args) <= 3:
        return await proc.usage("[-w] [-s SEP] [FIRST [INC]] LAST")
    try:
        numbers = [float(a) for a in args]
    except ValueError:
        if proc.busybox:
            return await proc.usage("[-w] [-s SEP] [FIRST [INC]] LAST")
        bad = next(a for a in args if not re.fullmatch(r"-?\d*\.?\d+", a))
        await proc.error(f"invalid floating point argument: '{bad}'")
        return 1
    first, step, last = (
        (1.0, 1.0, numbers[0])
        if len(numbers) == 1
        else ((numbers[0], 1.0, numbers[1]) if len(numbers) == 2 else tuple(numbers))
    )
    if step == 0:
        return 1
    places = max((len(a.partition(".")[2]) for a in args), default=0)
    width = max(len(f"{n:.{places}f}") for n in (first, last)) if "w" in opts else 0
    sep = encode((opts.get("s") or ["\n"])[-1])
    batch: list[bytes] = []
    index = 0
    value = first
    first_out = True
    while (step > 0 and value <= last + 1e-9) or (step < 0 and value >= last - 1e-9):
        text = f"{value:0{width}.{places}f}"
        batch.append(text.encode() if first_out else sep + text.encode())
        first_out = False
        if len(batch) >= 512:
            await proc.out(b"".join(batch))
            batch.clear()
            await proc.session.tick()  # an endless seq counts, and pauses, like a loop
        index += 1
        value = first + index * step
    await proc.out(b"".join(batch) + (b"\n" if not first_out else b""))
    return 0


def _strftime(now: datetime, fmt: str) -> str:
    # %e (space-padded day) is not portable in Python's strftime.
    return now.strftime(fmt.replace("%e", f"{now.day:2d}").replace("%-d", str(now.day)))


@program("date")
async def date(proc: Proc) -> int:
    now = datetime.now(UTC)
    fmt = "%a %b %e %H:%M:%S %Z %Y"
    for arg in proc.argv[1:]:
        if arg.startswith("+"):
            fmt = arg[1:]
        elif arg == "-R":
            fmt = "%a, %d %b %Y %H:%M:%S +0000"
        elif arg.startswith("-I"):
            fmt = "%Y-%m-%dT%H:%M:%S+00:00" if "seconds" in arg else "%Y-%m-%d"
        elif arg not in ("-u", "--utc"):
            await proc.error(f"invalid date '{arg}'")
            return 1
    await proc.out(_strftime(now, fmt) + "\n")
    return 0


# --- who and where -----------------------------------------------------------------------------


@program("env")
async def env(proc: Proc) -> int:
    args = proc.argv[1:]
    environ = dict(proc.env)
    while args and args[0].startswith("-"):
        arg = args.pop(0)
        if arg in ("-i", "-", "--ignore-environment"):
            environ = {}
        elif arg == "-u" and args:
            environ.pop(args.pop(0), None)
        elif arg == "--":
            break
        else:
            await proc.error(f"unrecognized option: {arg}")
            return await proc.usage("[-i] [-u NAME] [NAME=VALUE]... [PROG ARGS]")
    while args and re.match(r"[^=]+=", args[0]):
        name, _, value = args.pop(0).partition("=")
        environ[name] = value
    if not args:
        await proc.out("".join(f"{k}={v}\n" for k, v in environ.items()))
        return 0
    found = proc.image.find(args[0])
    if found is None:
        if proc.busybox:
            await proc.error(f"can't execute '{args[0]}': No such file or directory")
        else:
            await proc.error(f"'{args[0]}': No such file or directory")
        return 127
    return await proc.session.run_program(found, args, environ, proc.io, proc.cwd, proc.depth + 1)


@program("printenv")
async def printenv(proc: Proc) -> int:
    names = proc.argv[1:]
    if not names:
        await proc.out("".join(f"{k}={v}\n" for k, v in proc.env.items()))
        return 0
    status = 0
    for name in names:
        if name in proc.env:
            await proc.out(proc.env[name] + "\n")
        else:
            status = 1
    return status


@program("hostname")
async def hostname(proc: Proc) -> int:
    name = proc.session.host.pod
    args = proc.argv[1:]
    if "-i" in args or "-I" in args:
        hosts = decode(proc.files.read("/etc/hosts") or b"")
        addresses = [
            fields[0]
            for line in hosts.splitlines()
            if (fields := line.split("#")[0].split()) and name in fields[1:]
        ]
        if not addresses:
            await proc.error(
                f"{name}: Name or service not known" if not proc.busybox else "bad address"
            )
            return 1
        await proc.out(" ".join(addresses) + "\n")
        return 0
    if "-s" in args:
        name = name.split(".")[0]
    await proc.out(name + "\n")
    return 0


@program("id")
async def id_(proc: Proc) -> int:
    image = proc.image
    try:
        opts, users = getopt(proc.argv[1:], "ugGnr")
    except UsageError as e:
        return await bad_usage(proc, e, "[-ugGnr] [USER]")
    if users and users[0] not in (image.user, str(image.uid)):
        if users[0] == "root":
            uid, user, gid, group = 0, "root", 0, "root"
        else:
            await proc.error(
                f"unknown user {users[0]}" if proc.busybox else f"'{users[0]}': no such user"
            )
            return 1
    else:
        uid, user, gid, group = image.uid, image.user, image.gid, image.group
    names = "n" in opts
    if "u" in opts:
        await proc.out(f"{user if names else uid}\n")
    elif "g" in opts or "G" in opts:
        await proc.out(f"{group if names else gid}\n")
    elif user == str(uid):  # no passwd entry: distroless' numeric user
        await proc.out(f"uid={uid} gid={gid} groups={gid}\n")
    else:
        await proc.out(f"uid={uid}({user}) gid={gid}({group}) groups={gid}({group})\n")
    return 0


@program("whoami")
async def whoami(proc: Proc) -> int:
    await proc.out(proc.image.user + "\n")
    return 0


@program("uname")
async def uname(proc: Proc) -> int:
    fields = {
        "s": "Linux",
        "n": proc.session.host.pod,
        "r": platform.release(),
        "v": "#1 SMP",
        "m": platform.machine() or "x86_64",
        "o": "Linux" if proc.busybox else "GNU/Linux",
    }
    flags = "".join(a[1:] for a in proc.argv[1:] if a.startswith("-"))
    if "a" in flags:
        flags = "snrvmo"
    chosen = [fields[f] for f in "snrvmo" if f in flags] or [fields["s"]]
    await proc.out(" ".join(chosen) + "\n")
    return 0


@program("which")
async def which(proc: Proc) -> int:
    status = 0
    for name in proc.argv[1:]:
        found = proc.image.find(name)
        if found is None:
            status = 1
            continue
        await proc.out((name if "/" in name else proc.image.location(found)) + "\n")
    return status


@program("basename")
async def basename(proc: Proc) -> int:
    args = proc.argv[1:]
    if not args:
        return await proc.usage("FILE [SUFFIX]")
    name = posixpath.basename(args[0].rstrip("/")) or "/"
    if len(args) > 1 and name.endswith(args[1]) and name != args[1]:
        name = name[: -len(args[1])]
    await proc.out(name + "\n")
    return 0


@program("dirname")
async def dirname(proc: Proc) -> int:
    args = proc.argv[1:]
    if not args:
        return await proc.usage("FILENAME")
    path = args[0].rstrip("/") or "/"
    await proc.out((posixpath.dirname(path) or ".") + "\n")
    return 0


_START = time.time()


@program("ls")
async def ls(proc: Proc) -> int:
    try:
        opts, names = getopt(proc.argv[1:], "laA1dhFRt")
    except UsageError as e:
        return await bad_usage(proc, e, "[-1AaCxdLHRFplinshrSXvctu] [FILE]...")
    files = proc.files
    status = 0
    listings: list[tuple[str, list[str]]] = []
    plain: list[str] = []
    for name in names or ["."]:
        path = proc.path(name)
        if files.is_dir(path) and "d" not in opts:
            entries = files.listdir(path) or []
            if "a" in opts:
                entries = [".", "..", *entries]
            listings.append((name, [posixpath.join(path, e) for e in entries]))
        elif files.exists(path):
            plain.append(name)
        else:
            reason = "No such file or directory"
            await proc.error(
                f"{name}: {reason}" if proc.busybox else f"cannot access '{name}': {reason}"
            )
            status = 1 if proc.busybox else 2
    blocks: list[str] = []
    if plain:
        blocks.append(_ls_block(proc, [(n, proc.path(n)) for n in plain], "l" in opts, "1" in opts))
    for name, paths in listings:
        block = _ls_block(
            proc, [(posixpath.basename(p) or p, p) for p in paths], "l" in opts, "1" in opts
        )
        if len(listings) + len(plain) > 1:
            block = f"{name}:\n" + block
        blocks.append(block)
    await proc.out("\n".join(blocks))
    return status


def _ls_block(proc: Proc, entries: list[tuple[str, str]], long: bool, one: bool) -> str:
    files = proc.files
    if not entries:
        return ""
    if not long:
        names = [name for name, _ in entries]
        if proc.session.tty and not one:
            return "  ".join(names) + "\n"
        return "".join(n + "\n" for n in names)
    stamp = time.strftime("%b %e %H:%M", time.gmtime(_START))
    lines = []
    for name, path in entries:
        if files.is_dir(path):
            mode, size = "drwxr-xr-x", 4096
        else:
            data = files.read(path) or b""
            executable = proc.image.find(path) is not None
            mode, size = ("-rwxr-xr-x" if executable else "-rw-r--r--"), len(data)
        owner = proc.image.user if path in files.written else "root"
        group = proc.image.group if path in files.written else "root"
        lines.append(f"{mode}    1 {owner:<8} {group:<8} {size:>9} {stamp} {name}\n")
    return "".join(lines)
