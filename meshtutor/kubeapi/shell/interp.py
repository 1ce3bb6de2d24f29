"""The shell itself: busybox ash (and, for the istio-proxy image, dash and bash) run in-process.

Every command runs as an asyncio task of meshtutor's own process: builtins change the shell's
state, programs are the functions registered in :mod:`runtime`, pipeline stages run
concurrently through bounded :class:`~streams.Pipe` objects, so ``curl … | grep`` and
``cat | nc`` stream. Nothing here starts a host process; the network is reached only through
the session's :class:`~runtime.PodHost`.

Error messages follow ``ash_vmsg`` in busybox ``shell/ash.c``: ``ARG0: `` then, when a command
name is set (a builtin running, or a script/``-c … NAME``), ``NAME: `` and, outside an
interactive shell, ``line N: ``. dash prints ``ARG0: N: ``, bash ``ARG0: line N: `` and says
``command not found`` instead of ``not found``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import fnmatch
import os
import posixpath
import random
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, ClassVar, Literal

from meshtutor.kubeapi.shell import limits
from meshtutor.kubeapi.shell.images import Flavour, words
from meshtutor.kubeapi.shell.runtime import (
    IO,
    PROGRAMS,
    ForkError,
    Proc,
    Session,
    decode,
    encode,
    program,
    run_proc,
)
from meshtutor.kubeapi.shell.streams import (
    Collector,
    NullOutput,
    Output,
    OutputLimit,
    Pipe,
    Source,
    Terminal,
)
from meshtutor.kubeapi.shell.syntax import (
    AndOr,
    Arith,
    Case,
    CmdSub,
    Command,
    For,
    FuncDef,
    If,
    Lit,
    Loop,
    Param,
    Pipeline,
    Redir,
    Seq,
    ShellSyntaxError,
    Simple,
    Tilde,
    Word,
    commands,
    parse_text,
)

__all__ = ["Shell", "ShellAbort", "ShellExit"]

# How the shell got its commands: `sh -c`, `sh FILE`, a pipe, or a terminal.
Mode = Literal["c", "file", "stdin", "interactive"]


class ShellExit(Exception):
    """``exit``: ends the (sub)shell with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class ShellAbort(ShellExit):
    """An error that ends a non-interactive shell; an interactive one reads the next line."""


class _Return(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _LoopControl(Exception):
    def __init__(self, kind: str, count: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.count = count


class _RedirectError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


FORK_FAILED = "can't fork: Resource temporarily unavailable"
# A word is a pattern when it has `*`, `?` or a bracket expression that closes (`[` alone,
# the test command, is not one).
GLOB_CHARS = re.compile(r"[*?]|\[.*\]")
ARITH_TOKEN = re.compile(
    r"\s*(0[xX][0-9a-fA-F]+|\d+|[A-Za-z_][A-Za-z0-9_]*|\*\*|\+\+|--|<<|>>|<=|>=|==|!=|"
    r"&&|\|\||[-+*/%]=|[-+*/%()<>!~&|^=?:])"
)
INT64 = 1 << 64


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _unescape_glob(pattern: str) -> str:
    return re.sub(r"\[([*?\[])\]", r"\1", pattern)


def _ifs_split(value: str, ifs: str) -> tuple[list[str], bool, bool]:
    """Field splitting: the pieces, and whether the value starts / ends with a separator."""
    if not ifs or not value:
        return ([value] if value else []), False, False
    white = "".join(c for c in ifs if c in " \t\n")
    other = "".join(c for c in ifs if c not in " \t\n")
    starts, ends = value[0] in ifs, value[-1] in ifs
    ws = f"[{re.escape(white)}]*" if white else ""
    seps = []
    if other:
        seps.append(f"{ws}[{re.escape(other)}]{ws}")
    if white:
        seps.append(f"[{re.escape(white)}]+")
    pieces = re.split("|".join(seps), value.strip(white))
    if pieces and pieces[-1] == "" and value.rstrip(white)[-1:] in other:
        pieces.pop()
    return pieces, starts, ends


async def gather_all(coros: Iterable[Coroutine[Any, Any, int]]) -> list[int]:
    """Run concurrently; if one fails, cancel the others (a pipeline dies as a whole)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class Shell:
    """One shell process: variables, positional parameters, status, and its flavour."""

    def __init__(
        self,
        session: Session,
        *,
        arg0: str,
        params: list[str],
        env: dict[str, str],
        cwd: str,
        flavour: Flavour,
        depth: int,
        mode: Mode = "c",
        script_name: str | None = None,
        interactive: bool = False,
    ) -> None:
        self.session = session
        self.arg0 = arg0
        self.params = params
        self.vars: dict[str, str] = dict(env)
        self.exported: set[str] = set(env)
        self.vars["PWD"] = cwd
        self.vars.setdefault("IFS", " \t\n")
        self.vars.setdefault("PS2", "> ")
        self.vars.setdefault("OPTIND", "1")
        self.vars.setdefault("PPID", "0")
        self.flavour: Flavour = flavour
        self.depth = depth
        self.mode: Mode = "interactive" if interactive else mode
        self.applet = posixpath.basename(arg0)
        # ash's `commandname`: the script's name (`sh -c CMD NAME`, `sh FILE`), and while a
        # builtin runs, the builtin's name; messages name it (ash_vmsg).
        self.script_name = script_name
        self.builtin_name: str | None = None
        self.interactive = interactive
        # ash numbers the lines of a -c string from 0 (setinputstring takes LINENO, 0 then).
        self.line_offset = -1 if flavour == "ash" and mode == "c" else 0
        self.source = ""  # the text being run, for bash's quoting of a bad line
        self.status = 0
        self.subst_status: int | None = None
        self.lineno = 1
        self.errexit = False
        self.xtrace = False
        self.pipefail = False
        self.conditions = 0
        self.loops = 0
        self.pid = 7 + depth  # what `echo $$` shows; a container's pids are small
        self.last_job = 0
        self.functions: dict[str, Command] = {}
        self.calls = 0
        self.exit_trap: str | None = None
        self.expanding = 0

    # -- state --

    @property
    def cwd(self) -> str:
        return self.vars.get("PWD", "/")

    def fork(self) -> Shell:
        if self.depth + 1 > limits.MAX_DEPTH:
            raise ForkError
        child = copy.copy(self)
        child.vars = dict(self.vars)
        child.exported = set(self.exported)
        child.params = list(self.params)
        child.functions = dict(self.functions)
        child.depth = self.depth + 1
        child.pid = self.pid
        return child

    def setvar(self, name: str, value: str, *, export: bool = False) -> None:
        size = sum(len(k) + len(v) for k, v in self.vars.items()) - len(self.vars.get(name, ""))
        if size + len(name) + len(value) > limits.MAX_VARIABLES:
            raise OutputLimit
        self.vars[name] = value
        if export:
            self.exported.add(name)

    def environment(self) -> dict[str, str]:
        return {k: self.vars[k] for k in self.exported if k in self.vars}

    def getparam(self, name: str) -> str | None:
        if name.isdigit():
            index = int(name)
            if index == 0:
                return self.arg0
            return self.params[index - 1] if index <= len(self.params) else None
        if name == "#":
            return str(len(self.params))
        if name == "?":
            return str(self.status)
        if name == "$":
            return str(self.pid)
        if name == "!":
            return str(self.last_job) if self.last_job else None
        if name == "-":
            flags = ("e" if self.errexit else "") + ("x" if self.xtrace else "")
            flags += "i" if self.interactive else ""
            return flags + ("c" if self.mode == "c" else "s" if self.mode != "file" else "")
        if name in ("@", "*"):
            sep = self.vars.get("IFS", " \t\n")[:1] if name == "*" else " "
            return sep.join(self.params)
        if name == "RANDOM" and "RANDOM" not in self.vars:
            return str(random.randrange(32768))
        if name == "LINENO":
            return str(self.lineno)
        return self.vars.get(name)

    # -- messages --

    @property
    def line(self) -> int:
        """The line number messages show."""
        return self.lineno + self.line_offset

    def prefix(self) -> str:
        """What precedes an error message: ``ARG0: [NAME: ][line N: ]`` in each shell's way."""
        if self.flavour == "dash":
            return f"{self.arg0}: {self.line}: " + (
                f"{self.builtin_name}: " if self.builtin_name else ""
            )
        if self.flavour == "bash":
            text = f"{self.arg0}: "
            if self.mode == "file":
                text += f"line {self.line}: "
            return text + (f"{self.builtin_name}: " if self.builtin_name else "")
        text = f"{self.arg0}: "
        name = self.builtin_name or self.script_name
        if name is not None:
            if name != self.arg0:
                text += f"{name}: "
            if not self.interactive:
                text += f"line {self.line}: "
        return text

    async def error(self, io: IO, message: str) -> None:
        with contextlib.suppress(BrokenPipeError):
            await io.stderr.write(encode(self.prefix() + message + "\n"))

    async def syntax_error(self, io: IO, err: ShellSyntaxError) -> None:
        self.lineno = err.line
        if self.flavour == "dash":
            if err.found is not None:
                text = f"{err.found} unexpected"
                if err.expecting is not None:
                    text += f' (expecting "{err.expecting}")'
            else:
                text = err.message[0].upper() + err.message[1:]
            await self.error(io, "Syntax error: " + text)
            return
        if self.flavour == "bash":
            where = f"{self.arg0}: " + ("" if self.interactive else f"-c: line {self.line}: ")
            if self.mode == "file":
                where = f"{self.script_name}: line {self.line}: "
            if err.quote is not None:
                lines = [f"unexpected EOF while looking for matching `{err.quote}'"]
            elif err.found is not None and err.found != "end of file":
                lines = [f"syntax error near unexpected token `{err.token}'"]
                source = self.source.split("\n")
                if not self.interactive and 0 < err.line <= len(source):
                    lines.append(f"`{source[err.line - 1]}'")
            else:
                lines = ["syntax error: unexpected end of file"]
            text = "".join(where + line + "\n" for line in lines)
            with contextlib.suppress(BrokenPipeError):
                await io.stderr.write(encode(text))
            return
        await self.error(io, "syntax error: " + err.message)

    async def not_found(self, io: IO, name: str) -> None:
        if self.flavour == "bash":
            await io.stderr.write(encode(f"{self.prefix()}{name}: command not found\n"))
        else:
            await self.error(io, f"{name}: not found")

    def redirect_message(self, action: str, target: str, err: int) -> tuple[str, int]:
        """A redirection that failed (``open`` or ``create``): the message and the status."""
        if self.flavour == "bash":
            return f"{target}: {os.strerror(err)}", 1
        if self.flavour == "dash":
            if err == errno.ENOENT:
                reason = "Directory nonexistent" if action == "create" else "No such file"
            else:
                reason = os.strerror(err)
            return f"cannot {action} {target}: {reason}", 2
        # ash: errmsg() words ENOENT its own way; the status is 1 (checked with busybox).
        if err == errno.ENOENT:
            reason = "nonexistent directory" if action == "create" else "no such file"
        else:
            reason = os.strerror(err)
        return f"can't {action} {target}: {reason}", 1

    # -- running scripts --

    async def run_script(self, text: str, io: IO) -> int:
        """A whole script (``-c``, a file, ``eval``): parsed and run a line at a time."""
        if len(text) > limits.MAX_SCRIPT:
            await self.error(io, "Argument list too long")
            return 2
        self.source = text
        try:
            for seq in commands(text):
                await self.run_seq(seq, io)
        except ShellSyntaxError as err:
            await self.syntax_error(io, err)
            self.status = 2
            raise ShellAbort(2) from None
        return self.status

    async def main(self, text: str, io: IO) -> int:
        """Run a script as a shell process does: exit and errors end it with their status."""
        try:
            return await self.run_script(text, io)
        except ShellExit as e:
            return e.status

    async def run_stream(self, stdin: Source, io: IO) -> int:
        """``sh`` reading commands from a pipe (``kubectl exec -i`` without ``-t``): no prompt."""
        text = ""
        try:
            while True:
                line = await stdin.readline(limits.MAX_SCRIPT)
                if not line:
                    if text.strip():
                        await self.run_script(text, io)
                    return self.status
                text += decode(line)
                try:
                    parsed = list(commands(text, interactive=True))
                except ShellSyntaxError as err:
                    if err.incomplete and len(text) < limits.MAX_SCRIPT:
                        continue
                    await self.syntax_error(io, err)
                    return 2
                text = ""
                for seq in parsed:
                    await self.run_seq(seq, io)
        except ShellExit as e:
            return e.status

    def prompt(self, name: str) -> str:
        """PS1/PS2 with the backslash escapes busybox's FANCY_PROMPT and bash understand."""
        text = self.vars.get(name, "")
        home = self.vars.get("HOME", "")
        cwd = self.cwd
        if home and (cwd == home or cwd.startswith(home.rstrip("/") + "/")):
            cwd = "~" + cwd[len(home.rstrip("/")) :]
        host = self.session.host.pod
        image = self.session.image
        replacements = {
            "w": cwd,
            "W": posixpath.basename(self.cwd) or "/",
            "h": host.split(".")[0],
            "H": host,
            "u": image.user,
            "$": "#" if image.uid == 0 else "$",
            "s": posixpath.basename(self.arg0),
            "n": "\n",
            "\\": "\\",
        }
        return re.sub(r"\\(.)", lambda m: replacements.get(m.group(1), m.group(0)), text)

    async def run_interactive(self, io: IO, terminal: Terminal | None) -> int:
        """An interactive shell: a prompt on stderr (the tty), errors do not end it."""
        source = io.stdin
        while True:
            text = ""
            prompt = "PS1"
            while True:
                await io.stderr.write(encode(self.prompt(prompt)))
                if terminal is not None:
                    terminal.on_interrupt = None  # Ctrl-C at the prompt edits the line
                    got = await terminal.read_line()
                    if got is None:  # Ctrl-C at the prompt
                        text = ""
                        prompt = "PS1"
                        continue
                    line = got
                else:
                    line = await source.readline(limits.MAX_LINE)
                if not line:
                    if text.strip():
                        await self.syntax_error(io, ShellSyntaxError("unexpected end of file"))
                        return 2
                    return self.status
                text += decode(line)
                try:
                    parsed = list(commands(text, interactive=True))
                except ShellSyntaxError as err:
                    if err.incomplete and len(text) < limits.MAX_SCRIPT:
                        prompt = "PS2"
                        continue
                    await self.syntax_error(io, err)
                    self.status = 2
                    break
                try:
                    await self.run_foreground(parsed, io, terminal)
                except ShellAbort:
                    pass
                except ShellExit as e:
                    return e.status
                break

    async def run_foreground(self, parsed: list[Seq], io: IO, terminal: Terminal | None) -> None:
        """Run what was typed; Ctrl-C cancels it, as SIGINT kills the foreground job."""

        async def job() -> None:
            for seq in parsed:
                await self.run_seq(seq, io)

        task = asyncio.ensure_future(job())
        if terminal is not None:
            terminal.on_interrupt = task.cancel
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            self.status = 130
        finally:
            if terminal is not None:
                terminal.on_interrupt = None

    # -- commands --

    async def run_seq(self, seq: Seq, io: IO) -> int:
        for and_or, background in seq.items:
            if background:
                await self.start_job(and_or, io)
            else:
                await self.run_and_or(and_or, io)
        return self.status

    async def run_condition(self, seq: Seq, io: IO) -> int:
        self.conditions += 1
        try:
            return await self.run_seq(seq, io)
        finally:
            self.conditions -= 1

    async def run_and_or(self, and_or: AndOr, io: IO) -> int:
        status = await self.run_pipeline(and_or.first, io, condition=bool(and_or.rest))
        for i, (op, pipeline) in enumerate(and_or.rest):
            if (op == "&&") == (status == 0):
                last = i == len(and_or.rest) - 1
                status = await self.run_pipeline(pipeline, io, condition=not last)
        self.status = status
        return status

    async def run_pipeline(self, pipeline: Pipeline, io: IO, *, condition: bool = False) -> int:
        guarded = condition or pipeline.negate
        if guarded:
            self.conditions += 1
        try:
            if len(pipeline.commands) == 1:
                status = await self.run_command(pipeline.commands[0], io)
            else:
                status = await self.run_stages(pipeline.commands, io)
        finally:
            if guarded:
                self.conditions -= 1
        if pipeline.negate:
            status = int(status == 0)
        self.status = status
        if self.errexit and status != 0 and not guarded and self.conditions == 0:
            raise ShellExit(status)
        return status

    async def run_stages(self, stages: tuple[Command, ...], io: IO) -> int:
        n = len(stages)
        pipes = [Pipe() for _ in range(n - 1)]

        async def stage(i: int) -> int:
            stdin = io.stdin if i == 0 else Source(pipes[i - 1])
            stdout: Output = io.stdout if i == n - 1 else pipes[i]
            try:
                with self.session.process():
                    sub = self.fork()
                    return await sub.run_command(stages[i], IO(stdin, stdout, io.stderr))
            except ShellExit as e:
                return e.status
            except BrokenPipeError:
                return 128 + 13
            except ForkError:
                await self.error(io, FORK_FAILED)
                return 2
            finally:
                if i < n - 1:
                    pipes[i].close_write()
                if i > 0:
                    pipes[i - 1].close_read()

        statuses = await gather_all(stage(i) for i in range(n))
        if self.pipefail:
            return next((s for s in reversed(statuses) if s), 0)
        return statuses[-1]

    async def start_job(self, and_or: AndOr, io: IO) -> None:
        """``cmd &``: stdin is /dev/null, as in a shell without job control."""
        session = self.session
        try:
            if session.processes >= limits.MAX_PROCESSES:
                raise ForkError
            sub = self.fork()
        except ForkError:
            await self.error(io, FORK_FAILED)
            self.status = 2
            return
        session.processes += 1

        async def job() -> int:
            try:
                return await sub.run_and_or(and_or, IO(Source(), io.stdout, io.stderr))
            except ShellExit as e:
                return e.status
            except BrokenPipeError:
                return 128 + 13
            finally:
                session.processes -= 1

        task = asyncio.ensure_future(job())
        session.jobs.add(task)
        task.add_done_callback(session.jobs.discard)
        self.last_job = self.pid + 10 + len(session.jobs)
        self.status = 0

    async def run_command(self, command: Command, io: IO) -> int:
        if isinstance(command, Simple):
            return await self.run_simple(command, io)
        if isinstance(command, FuncDef):
            self.functions[command.name] = command.body
            self.status = 0
            return 0
        try:
            io = await self.redirect(command.redirs, io)
        except _RedirectError as e:
            await self.error(io, e.message)
            self.status = e.status
            return e.status
        if isinstance(command, If):
            for cond, body in command.arms:
                if await self.run_condition(cond, io) == 0:
                    return await self.run_seq(body, io)
            if command.orelse is not None:
                return await self.run_seq(command.orelse, io)
            self.status = 0
            return 0
        if isinstance(command, For):
            return await self.run_for(command, io)
        if isinstance(command, Loop):
            return await self.run_loop(command, io)
        if isinstance(command, Case):
            return await self.run_case(command, io)
        if command.subshell:
            try:
                status = await self.fork().run_seq(command.body, io)
            except ShellExit as e:
                status = e.status
            except ForkError:
                await self.error(io, FORK_FAILED)
                status = 2
            self.status = status
            return status
        return await self.run_seq(command.body, io)

    async def run_for(self, command: For, io: IO) -> int:
        if command.words is None:
            items = list(self.params)
        else:
            items = [field for word in command.words for field in await self.expand(word, io)]
        self.status = 0
        self.loops += 1
        try:
            for item in items:
                await self.session.tick()
                self.setvar(command.var, item)
                if await self.run_round(command.body, io):
                    break
        finally:
            self.loops -= 1
        return self.status

    async def run_round(self, body: Seq, io: IO) -> bool:
        """One round of a loop's body; True when ``break`` ends the loop."""
        try:
            await self.run_seq(body, io)
        except _LoopControl as control:
            if control.count > 1:  # `break 2`: the enclosing loop handles the rest
                control.count -= 1
                raise
            return control.kind == "break"
        return False

    async def run_loop(self, command: Loop, io: IO) -> int:
        status = 0
        self.loops += 1
        try:
            while True:
                await self.session.tick()
                if (await self.run_condition(command.cond, io) == 0) == command.until:
                    break
                if await self.run_round(command.body, io):
                    break
                status = self.status
        finally:
            self.loops -= 1
        self.status = status
        return status

    async def run_case(self, command: Case, io: IO) -> int:
        subject, _ = await self.expand_both(command.word, io)
        for patterns, body in command.arms:
            for pattern in patterns:
                _, glob = await self.expand_both(pattern, io)
                if fnmatch.fnmatchcase(subject, glob):
                    return await self.run_seq(body, io)
        self.status = 0
        return 0

    async def run_simple(self, command: Simple, io: IO) -> int:
        await self.session.tick()
        self.lineno = command.line
        self.subst_status = None
        argv = [field for word in command.words for field in await self.expand(word, io)]
        assigns = [(name, await self.expand_str(value, io)) for name, value in command.assigns]
        try:
            io = await self.redirect(command.redirs, io)
        except _RedirectError as e:
            await self.error(io, e.message)
            self.status = e.status
            return e.status
        if not argv:
            for name, value in assigns:
                self.setvar(name, value)
            self.status = self.subst_status or 0
            return self.status
        if self.xtrace:
            await io.stderr.write(encode("+ " + " ".join(argv) + "\n"))
        self.status = await self.invoke(argv, assigns, io)
        return self.status

    async def invoke(self, argv: list[str], assigns: list[tuple[str, str]], io: IO) -> int:
        name = argv[0]
        builtin = BUILTINS.get(name)
        if name in self.functions and name not in SPECIAL_BUILTINS:
            for var, value in assigns:
                self.setvar(var, value)
            return await self.call(name, argv[1:], io)
        if builtin is not None:
            for var, value in assigns:
                self.setvar(var, value)
            saved = self.builtin_name
            self.builtin_name = name
            try:
                return await builtin(self, argv, io)
            finally:
                self.builtin_name = saved
        found = self.session.image.find(name)
        if found is None:
            await self.not_found(io, name)
            return 127
        env = self.environment()
        env.update(assigns)
        try:
            return await self.session.run_program(found, argv, env, io, self.cwd, self.depth + 1)
        except ForkError:
            await self.error(io, FORK_FAILED)
            return 2

    async def call(self, name: str, args: list[str], io: IO) -> int:
        """A shell function: its own positional parameters, ``return`` ends it."""
        if self.calls >= limits.MAX_DEPTH * 4:
            await self.error(io, "out of memory")  # ash's stack would run out first
            raise ShellAbort(2)
        saved = self.params
        self.params = list(args)
        self.calls += 1
        try:
            return await self.run_command(self.functions[name], io)
        except _Return as r:
            self.status = r.status
            return r.status
        finally:
            self.calls -= 1
            self.params = saved

    def proc(self, argv: list[str], io: IO) -> Proc:
        """A builtin utility (echo, printf, test) runs as a program inside the shell."""
        return Proc(argv, self.environment(), io, self.session, self.cwd, self.depth, self.flavour)

    # -- redirections --

    async def redirect(self, redirs: tuple[Redir, ...], io: IO) -> IO:
        if not redirs:
            return io
        fds: dict[int, Source | Output] = {0: io.stdin, 1: io.stdout, 2: io.stderr}
        files = self.session.files
        for redir in redirs:
            if redir.heredoc is not None:
                doc = redir.heredoc
                body = await self.expand_str(parse_text(doc.body), io) if doc.expand else doc.body
                fds[redir.fd] = Source(data=encode(body))
                continue
            assert redir.target is not None
            target = await self.expand_str(redir.target, io)
            op = redir.op
            if op in (">&", "<&") and (target.isdigit() or target == "-"):
                if target == "-":
                    fds[redir.fd] = Source() if op == "<&" else NullOutput()
                elif int(target) in fds:
                    fds[redir.fd] = fds[int(target)]
                else:
                    raise _RedirectError(f"{target}: Bad file descriptor", 2)
                continue
            path = posixpath.normpath(posixpath.join(self.cwd, target)) if target else ""
            if op in ("<", "<>", "<&"):
                if path == "/dev/stdin":
                    continue
                data = files.read(path) if path else None
                if data is None or files.is_dir(path):
                    err = errno.EISDIR if path and files.is_dir(path) else errno.ENOENT
                    raise _RedirectError(*self.redirect_message("open", target, err))
                fds[redir.fd] = Source(data=data)
                continue
            out = self.open_output(path, target, append=op == ">>", fds=fds)
            if op in ("&>", ">&"):
                fds[1] = fds[2] = out
            else:
                fds[redir.fd] = out
        stdin, stdout, stderr = fds[0], fds[1], fds[2]
        return IO(
            stdin if isinstance(stdin, Source) else Source(),
            stdout if not isinstance(stdout, Source) else NullOutput(),
            stderr if not isinstance(stderr, Source) else NullOutput(),
        )

    def open_output(
        self, path: str, target: str, *, append: bool, fds: dict[int, Source | Output]
    ) -> Output:
        if path == "/dev/null":
            return NullOutput()
        if path in ("/dev/stdout", "/dev/stderr", "/dev/tty"):
            chosen = fds[2 if path == "/dev/stderr" else 1]
            return chosen if not isinstance(chosen, Source) else NullOutput()
        try:
            if not path:
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
            return self.session.files.open_write(path, append=append)
        except OSError as e:
            message, status = self.redirect_message("create", target, e.errno or errno.EIO)
            raise _RedirectError(message, status) from None

    # -- expansions --

    async def expand(self, word: Word, io: IO) -> list[str]:
        """A word's fields: parameters, substitutions, field splitting and globbing."""
        fields: list[str] = []
        text: list[str] = []
        pattern: list[str] = []
        started = False
        globbing = False
        ifs = self.vars.get("IFS", " \t\n")

        def end_field() -> None:
            nonlocal started, globbing
            value = "".join(text)
            if globbing:
                fields.extend(self.glob("".join(pattern), value))
            else:
                fields.append(value)
            text.clear()
            pattern.clear()
            started = globbing = False

        for part in word.parts:
            if isinstance(part, Lit):
                text.append(part.text)
                if part.quoted:
                    pattern.append(_escape_glob(part.text))
                    started = True
                else:
                    pattern.append(part.text)
                    started = started or bool(part.text)
                    globbing = globbing or bool(GLOB_CHARS.search(part.text))
                continue
            if isinstance(part, Param) and part.quoted and part.op is None and part.name == "@":
                for i, param in enumerate(self.params):
                    if i:
                        end_field()
                    text.append(param)
                    pattern.append(_escape_glob(param))
                    started = True
                continue
            value = await self.expand_part(part, io)
            if isinstance(part, Tilde) or part.quoted:
                text.append(value)
                pattern.append(_escape_glob(value))
                started = True
                continue
            pieces, starts, ends = _ifs_split(value, ifs)
            if starts and started:
                end_field()
            for i, piece in enumerate(pieces):
                if i:
                    end_field()
                text.append(piece)
                pattern.append(piece)
                started = True
                globbing = globbing or bool(GLOB_CHARS.search(piece))
            if ends and pieces and started:
                end_field()
        if started:
            end_field()
        return fields

    async def expand_both(self, word: Word, io: IO) -> tuple[str, str]:
        """A word as one string, and as a glob pattern (quoted parts match literally)."""
        text: list[str] = []
        pattern: list[str] = []
        for part in word.parts:
            if isinstance(part, Lit):
                text.append(part.text)
                pattern.append(_escape_glob(part.text) if part.quoted else part.text)
            else:
                value = await self.expand_part(part, io)
                text.append(value)
                quoted = isinstance(part, Tilde) or part.quoted
                pattern.append(_escape_glob(value) if quoted else value)
        return "".join(text), "".join(pattern)

    async def expand_str(self, word: Word, io: IO) -> str:
        return (await self.expand_both(word, io))[0]

    def glob(self, pattern: str, literal: str) -> list[str]:
        directory, _, base = pattern.rpartition("/")
        if GLOB_CHARS.search(directory.replace("[*]", "").replace("[?]", "").replace("[[]", "")):
            return [literal]
        prefix = _unescape_glob(directory) + "/" if "/" in pattern else ""
        where = posixpath.normpath(posixpath.join(self.cwd, prefix or "."))
        names = self.session.files.listdir(where) or []
        matches = [
            prefix + name
            for name in names
            if fnmatch.fnmatchcase(name, base) and (not name.startswith(".") or base[:1] == ".")
        ]
        return sorted(matches) or [literal]

    async def expand_part(self, part: Tilde | Param | CmdSub | Arith, io: IO) -> str:
        self.expanding += 1
        try:
            if self.expanding > limits.MAX_NESTING:
                # ${a:-${b:-…}} and $(( $(( … )) )) recurse; a pod's shell would run out.
                await self.error(io, "out of memory")
                raise ShellAbort(2)
            return await self._expand_part(part, io)
        finally:
            self.expanding -= 1

    async def _expand_part(self, part: Tilde | Param | CmdSub | Arith, io: IO) -> str:
        if isinstance(part, Tilde):
            return self.vars.get("HOME", self.session.image.home)
        if isinstance(part, CmdSub):
            return await self.substitute(part.body, io)
        if isinstance(part, Arith):
            return str(await self.arith(part.text, io))
        return await self.param(part, io)

    async def param(self, part: Param, io: IO) -> str:
        name, op = part.name, part.op
        value = self.getparam(name)
        if op is None:
            return value or ""
        if op == "len":
            return str(len(value or ""))
        unset = value is None or (op.startswith(":") and value == "")
        assert part.arg is not None
        if op in (":-", "-"):
            return await self.expand_str(part.arg, io) if unset else value or ""
        if op in (":=", "="):
            if unset:
                value = await self.expand_str(part.arg, io)
                self.setvar(name, value)
            return value or ""
        if op in (":+", "+"):
            return "" if unset else await self.expand_str(part.arg, io)
        if op in (":?", "?"):
            if unset:
                default = "parameter not set" + (" or null" if op == ":?" else "")
                message = await self.expand_str(part.arg, io) or default
                await self.error(io, f"{name}: {message}")
                raise ShellAbort(2)
            return value or ""
        _, glob = await self.expand_both(part.arg, io)
        v = value or ""
        if op in ("#", "##"):
            ends = range(len(v) + 1) if op == "#" else range(len(v), -1, -1)
            for i in ends:
                if fnmatch.fnmatchcase(v[:i], glob):
                    return v[i:]
            return v
        starts = range(len(v), -1, -1) if op == "%" else range(len(v) + 1)
        for i in starts:
            if fnmatch.fnmatchcase(v[i:], glob):
                return v[:i]
        return v

    async def substitute(self, body: Seq, io: IO) -> str:
        """``$( … )``: run in a subshell, keep its output without trailing newlines."""
        collector = Collector()
        try:
            sub = self.fork()
            status = await sub.run_seq(body, IO(io.stdin, collector, io.stderr))
        except ShellExit as e:
            status = e.status
        except ForkError:
            await self.error(io, FORK_FAILED)
            status = 2
        except OutputLimit:
            await self.error(io, "out of memory")
            raise ShellExit(2) from None
        self.subst_status = status
        return decode(bytes(collector.data)).rstrip("\n")

    async def arith(self, text: str, io: IO) -> int:
        expanded = await self.expand_str(parse_text(text), io)
        try:
            return _Arith(expanded, self).evaluate()
        except ZeroDivisionError:
            await self.error(io, "divide by zero")
        except (ValueError, IndexError, RecursionError):
            await self.error(io, "arithmetic syntax error")
        raise ShellAbort(2)


class _Arith:
    """``$(( ))``: C integer arithmetic on 64 bits, as ash computes it."""

    BINARY: ClassVar[dict[str, tuple[int, Callable[[int, int], int]]]] = {
        "||": (1, lambda a, b: int(bool(a) or bool(b))),
        "&&": (2, lambda a, b: int(bool(a) and bool(b))),
        "|": (3, lambda a, b: a | b),
        "^": (4, lambda a, b: a ^ b),
        "&": (5, lambda a, b: a & b),
        "==": (6, lambda a, b: int(a == b)),
        "!=": (6, lambda a, b: int(a != b)),
        "<": (7, lambda a, b: int(a < b)),
        "<=": (7, lambda a, b: int(a <= b)),
        ">": (7, lambda a, b: int(a > b)),
        ">=": (7, lambda a, b: int(a >= b)),
        "<<": (8, lambda a, b: a << (b & 63)),
        ">>": (8, lambda a, b: a >> (b & 63)),
        "+": (9, lambda a, b: a + b),
        "-": (9, lambda a, b: a - b),
        "*": (10, lambda a, b: a * b),
        "/": (10, lambda a, b: _cdiv(a, b)),
        "%": (10, lambda a, b: a - b * _cdiv(a, b)),
    }

    def __init__(self, text: str, shell: Shell) -> None:
        self.tokens: list[str] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = ARITH_TOKEN.match(text, pos)
            if m is None:
                raise ValueError(text)
            self.tokens.append(m.group(1))
            pos = m.end()
        self.i = 0
        self.shell = shell

    def evaluate(self) -> int:
        if not self.tokens:
            return 0
        value = self.assignment()
        if self.i != len(self.tokens):
            raise ValueError("trailing tokens")
        return value

    def peek(self) -> str:
        return self.tokens[self.i] if self.i < len(self.tokens) else ""

    def assignment(self) -> int:
        if (
            self.i + 1 < len(self.tokens)
            and re.fullmatch(r"[A-Za-z_]\w*", self.tokens[self.i])
            and self.tokens[self.i + 1] in ("=", "+=", "-=", "*=", "/=", "%=")
        ):
            name, op = self.tokens[self.i], self.tokens[self.i + 1]
            self.i += 2
            value = self.assignment()
            if op != "=":
                value = _wrap(self.BINARY[op[0]][1](self.variable(name), value))
            self.shell.setvar(name, str(value))
            return value
        condition = self.binary(1)
        if self.peek() != "?":
            return condition
        self.i += 1
        yes = self.assignment()
        if self.peek() != ":":
            raise ValueError("missing :")
        self.i += 1
        no = self.assignment()
        return yes if condition else no

    def binary(self, level: int) -> int:
        if level > 10:
            return self.power()
        left = self.binary(level + 1)
        while (op := self.peek()) in self.BINARY and self.BINARY[op][0] == level:
            self.i += 1
            right = self.binary(level + 1)
            left = _wrap(self.BINARY[op][1](left, right))
        return left

    def power(self) -> int:
        base = self.unary()
        if self.peek() == "**":
            self.i += 1
            exponent = self.power()  # right-associative
            if exponent < 0:
                raise ValueError("exponent less than 0")
            return _wrap(pow(base, exponent, INT64))
        return base

    def unary(self) -> int:
        token = self.peek()
        self.i += 1
        if token in ("++", "--") and re.fullmatch(r"[A-Za-z_]\w*", self.peek()):
            name = self.peek()
            self.i += 1
            value = _wrap(self.variable(name) + (1 if token == "++" else -1))
            self.shell.setvar(name, str(value))
            return value
        if re.fullmatch(r"[A-Za-z_]\w*", token) and self.peek() in ("++", "--"):
            step = 1 if self.peek() == "++" else -1
            self.i += 1
            value = self.variable(token)
            self.shell.setvar(token, str(_wrap(value + step)))
            return value
        if token == "-":
            return _wrap(-self.unary())
        if token == "+":
            return self.unary()
        if token == "!":
            return int(not self.unary())
        if token == "~":
            return _wrap(~self.unary())
        if token == "(":
            value = self.assignment()
            if self.peek() != ")":
                raise ValueError("missing )")
            self.i += 1
            return value
        if token[:1].isdigit():
            return _wrap(_number(token))
        if re.fullmatch(r"[A-Za-z_]\w*", token):
            return self.variable(token)
        raise ValueError(token)

    def variable(self, name: str) -> int:
        value = (self.shell.getparam(name) or "").strip()
        return _wrap(_number(value)) if value else 0


def _number(token: str) -> int:
    if token.lower().startswith("0x"):
        return int(token, 16)
    if len(token) > 1 and token.startswith("0"):
        return int(token, 8)
    return int(token, 10)


def _cdiv(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _wrap(value: int) -> int:
    value %= INT64
    return value - INT64 if value >= INT64 // 2 else value


# --- builtins ----------------------------------------------------------------------------------

Builtin = Callable[[Shell, list[str], IO], Awaitable[int]]
BUILTINS: dict[str, Builtin] = {}
# POSIX special builtins: found before functions.
SPECIAL_BUILTINS = words(
    """
    break : continue . eval exec exit export readonly return set shift trap unset
    """
)


def builtin(*names: str) -> Callable[[Builtin], Builtin]:
    def register(fn: Builtin) -> Builtin:
        for name in names:
            BUILTINS[name] = fn
        return fn

    return register


@builtin("echo", "printf", "test", "[", "true", "false", "pwd")
async def _utility(shell: Shell, argv: list[str], io: IO) -> int:
    proc = shell.proc(argv, io)
    # A builtin's messages: busybox's applet code prints the shell's applet name ("sh: …"),
    # dash and bash their usual prefix with the builtin's name.
    proc.label = shell.applet if shell.flavour == "ash" else shell.prefix().removesuffix(": ")
    return await run_proc(PROGRAMS[argv[0]], proc)


@builtin(":")
async def _colon(shell: Shell, argv: list[str], io: IO) -> int:
    return 0


@builtin("return")
async def _return(shell: Shell, argv: list[str], io: IO) -> int:
    status = shell.status
    if len(argv) > 1:
        parsed = _number_arg(argv[1])
        if parsed is None:
            await _illegal_number(shell, io, argv[1])
            raise ShellAbort(2)
        status = parsed & 255
    if shell.calls:
        raise _Return(status)
    raise ShellExit(status)  # outside a function, as at the end of a script


@builtin("local")
async def _local(shell: Shell, argv: list[str], io: IO) -> int:
    for item in argv[1:]:
        name, eq, value = item.partition("=")
        shell.setvar(name, value if eq else shell.vars.get(name, ""))
    return 0


def _number_arg(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d+", text) else None


async def _illegal_number(shell: Shell, io: IO, text: str) -> None:
    if shell.flavour == "bash":
        await shell.error(io, f"{text}: numeric argument required")
    else:
        await shell.error(io, f"Illegal number: {text}")


@builtin("exit")
async def _exit(shell: Shell, argv: list[str], io: IO) -> int:
    if len(argv) > 1:
        value = _number_arg(argv[1])
        if value is None:
            await _illegal_number(shell, io, argv[1])
            raise ShellAbort(2)
        raise ShellExit(value & 255)
    raise ShellExit(shell.status)


@builtin("break", "continue")
async def _break(shell: Shell, argv: list[str], io: IO) -> int:
    count = 1
    if len(argv) > 1:
        parsed = _number_arg(argv[1])
        if not parsed:
            await _illegal_number(shell, io, argv[1])
            raise ShellAbort(2)
        count = parsed
    if shell.loops == 0:
        return 0
    raise _LoopControl(argv[0], min(count, shell.loops))


@builtin("cd")
async def _cd(shell: Shell, argv: list[str], io: IO) -> int:
    target = argv[1] if len(argv) > 1 else shell.vars.get("HOME", "/")
    if target == "-":
        target = shell.vars.get("OLDPWD", shell.cwd)
        await io.stdout.write(encode(target + "\n"))
    path = posixpath.normpath(posixpath.join(shell.cwd, target)).replace("//", "/")
    files = shell.session.files
    if not files.is_dir(path):
        reason = "Not a directory" if files.read(path) is not None else "No such file or directory"
        if shell.flavour == "bash":
            await shell.error(io, f"{target}: {reason}")
            return 1
        if shell.flavour == "dash":
            await shell.error(io, f"can't cd to {target}")
        else:
            await shell.error(io, f"can't cd to {target}: {reason}")
        return 2
    shell.vars["OLDPWD"] = shell.cwd
    shell.vars["PWD"] = path
    return 0


@builtin("export", "readonly")
async def _export(shell: Shell, argv: list[str], io: IO) -> int:
    names = [a for a in argv[1:] if not a.startswith("-")]
    if not names:
        lines = [
            f"export {k}='{shell.vars[k]}'\n" for k in sorted(shell.exported) if k in shell.vars
        ]
        await io.stdout.write(encode("".join(lines)))
        return 0
    for item in names:
        name, eq, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            await shell.error(io, f"{item}: bad variable name")
            return 2
        if eq:
            shell.setvar(name, value)
        if argv[0] == "export":
            shell.exported.add(name)
    return 0


@builtin("unset")
async def _unset(shell: Shell, argv: list[str], io: IO) -> int:
    for name in argv[1:]:
        if not name.startswith("-"):
            shell.vars.pop(name, None)
            shell.exported.discard(name)
    return 0


@builtin("set")
async def _set(shell: Shell, argv: list[str], io: IO) -> int:
    args = argv[1:]
    if not args:
        lines = [f"{k}='{v}'\n" for k, v in sorted(shell.vars.items())]
        await io.stdout.write(encode("".join(lines)))
        return 0
    while args:
        arg = args[0]
        if arg == "--":
            shell.params = args[1:]
            return 0
        if arg[:1] not in ("-", "+") or arg in ("-", "+"):
            shell.params = args
            return 0
        args.pop(0)
        on = arg[0] == "-"
        if arg[1:] == "o":
            option = args.pop(0) if args else ""
            if option == "pipefail":
                shell.pipefail = on
            elif option == "errexit":
                shell.errexit = on
            elif option == "xtrace":
                shell.xtrace = on
            continue
        for flag in arg[1:]:
            if flag == "e":
                shell.errexit = on
            elif flag == "x":
                shell.xtrace = on
            elif flag not in "uvfnmCabh":
                await shell.error(io, f"illegal option {arg[0]}{flag}")
                return 2
    return 0


@builtin("shift")
async def _shift(shell: Shell, argv: list[str], io: IO) -> int:
    count = _number_arg(argv[1]) if len(argv) > 1 else 1
    if count is None:
        await _illegal_number(shell, io, argv[1])
        raise ShellAbort(2)
    if count > len(shell.params):
        return 1  # ash says nothing
    shell.params = shell.params[count:]
    return 0


@builtin("eval")
async def _eval(shell: Shell, argv: list[str], io: IO) -> int:
    if shell.depth + 1 > limits.MAX_DEPTH:
        await shell.error(io, FORK_FAILED)
        return 2
    # The eval'd text's lines count on from the eval's own line (setinputstring).
    saved = (shell.lineno, shell.line_offset, shell.source)
    shell.line_offset = shell.line - 1
    shell.depth += 1
    try:
        return await shell.run_script(" ".join(argv[1:]), io)
    finally:
        shell.depth -= 1
        shell.lineno, shell.line_offset, shell.source = saved


@builtin(".", "source")
async def _source(shell: Shell, argv: list[str], io: IO) -> int:
    if len(argv) < 2:
        return 0
    data = shell.session.files.read(posixpath.join(shell.cwd, argv[1]))
    if data is None:
        await shell.error(io, f"can't open '{argv[1]}': No such file or directory")
        raise ShellAbort(2)
    return await _eval(shell, ["eval", decode(data)], io)


@builtin("read")
async def _read(shell: Shell, argv: list[str], io: IO) -> int:
    raw = False
    names: list[str] = []
    args = argv[1:]
    while args:
        arg = args.pop(0)
        if arg == "-r":
            raw = True
        elif arg == "-p" and args:
            await io.stderr.write(encode(args.pop(0)))
        else:
            names.append(arg)
    line = decode(await io.stdin.readline())
    if not line:
        for name in names or ["REPLY"]:
            shell.setvar(name, "")
        return 1
    text = line[:-1] if line.endswith("\n") else line
    if not raw:
        text = re.sub(r"\\(.)", r"\1", text.replace("\\\n", ""))
    names = names or ["REPLY"]
    if names == ["REPLY"] and len(argv) == 1:
        shell.setvar("REPLY", text)
        return 0
    ifs = shell.vars.get("IFS", " \t\n")
    white = "".join(c for c in ifs if c in " \t\n")
    rest = text.strip(white)
    for i, name in enumerate(names):
        if i == len(names) - 1:
            shell.setvar(name, rest.strip(white))
            break
        pieces = re.split(f"[{re.escape(ifs)}]+", rest, maxsplit=1) if ifs else [rest]
        shell.setvar(name, pieces[0])
        rest = pieces[1] if len(pieces) > 1 else ""
    return 0 if line.endswith("\n") else 1


@builtin("wait")
async def _wait(shell: Shell, argv: list[str], io: IO) -> int:
    await shell.session.wait_jobs()
    return 0


@builtin("exec")
async def _exec(shell: Shell, argv: list[str], io: IO) -> int:
    if len(argv) == 1:
        return 0
    raise ShellExit(await shell.invoke(argv[1:], [], io))


@builtin("command", "type")
async def _command(shell: Shell, argv: list[str], io: IO) -> int:
    args = argv[1:]
    verbose = argv[0] == "type"
    if args[:1] in (["-v"], ["-V"]):
        verbose = args[0] == "-V" or verbose
        args = args[1:]
    elif argv[0] == "command":
        return await shell.invoke(args, [], io) if args else 0
    status = 0
    image = shell.session.image
    for name in args:
        found = image.find(name)
        if name in BUILTINS:
            text = f"{name} is a shell builtin" if verbose else name
        elif found is not None:
            location = image.location(found) if "/" not in name else name
            text = f"{name} is {location}" if verbose else location
        elif name in shell.functions:
            text = f"{name} is a function" if verbose else name
        else:
            if verbose:
                await io.stdout.write(encode(f"{name}: not found\n"))
            status = 1 if shell.flavour == "bash" else 127
            continue
        await io.stdout.write(encode(text + "\n"))
    return status


@builtin("trap")
async def _trap(shell: Shell, argv: list[str], io: IO) -> int:
    """Only the EXIT trap means something here: a pod's shell gets no signals."""
    if len(argv) >= 3 and any(s in ("EXIT", "0") for s in argv[2:]):
        shell.exit_trap = None if argv[1] in ("", "-") else argv[1]
    return 0


@builtin("umask", "ulimit", "hash", "alias", "unalias")
async def _accepted(shell: Shell, argv: list[str], io: IO) -> int:
    """Accepted and without effect: a pod's shell has no file modes or limits to set."""
    if argv[0] == "umask" and len(argv) == 1:
        await io.stdout.write(b"0022\n")
    elif argv[0] == "ulimit" and len(argv) <= 2:
        await io.stdout.write(b"unlimited\n")
    return 0


# --- sh, ash, dash, bash as programs -----------------------------------------------------------


@program("sh", "ash", "dash", "bash")
async def sh_program(proc: Proc) -> int:
    image = proc.image
    name = proc.command
    flavour: Flavour
    if name == "bash":
        flavour = "bash"
    elif name == "dash" or (name == "sh" and image.shell == "dash"):
        flavour = "dash"
    else:
        flavour = "ash"
    args = proc.argv[1:]
    command: str | None = None
    want_c = interactive = stdin_mode = login = errexit = False
    while args and args[0][:1] in ("-", "+") and args[0] not in ("-", "+"):
        arg = args.pop(0)
        if arg == "--":
            break
        if arg in ("--login", "-login"):
            login = True
            continue
        if arg.startswith("--"):
            continue
        for flag in arg[1:]:
            if flag == "c":
                want_c = True
            elif flag == "i":
                interactive = True
            elif flag == "s":
                stdin_mode = True
            elif flag == "l":
                login = True
            elif flag == "e":
                errexit = True
            elif flag not in "xuvfnmCabh":
                await proc.io.stderr.write(encode(f"{proc.argv[0]}: illegal option -{flag}\n"))
                return 2
    arg0 = proc.argv[0]
    script_name: str | None = None
    script: str | None = None
    if want_c:
        if not args:
            await proc.io.stderr.write(encode(f"{arg0}: -c requires an argument\n"))
            return 2
        command = args.pop(0)
        if args:
            arg0 = script_name = args.pop(0)
    elif args and not stdin_mode:
        data = proc.files.read(proc.path(args[0]))
        if data is None:
            await proc.io.stderr.write(
                encode(f"{arg0}: can't open '{args[0]}': No such file or directory\n")
            )
            return 2
        script = decode(data)
        arg0 = script_name = args.pop(0)
    session = proc.session
    terminal = session.terminal if session.tty else None
    reads_stdin = command is None and script is None
    if reads_stdin and terminal is not None:
        interactive = True
    env = dict(proc.env)
    env.setdefault("HOME", image.home)
    shell = Shell(
        session,
        arg0=arg0,
        params=args,
        env=env,
        cwd=proc.cwd,
        flavour=flavour,
        depth=proc.depth,
        mode="c" if command is not None else "file" if script is not None else "stdin",
        script_name=script_name,
        interactive=interactive and reads_stdin,
    )
    shell.errexit = errexit
    if "PS1" not in env:
        shell.vars["PS1"] = _default_prompt(flavour, image.prompt, login)
    try:
        if command is not None:
            status = await shell.main(command, proc.io)
        elif script is not None:
            status = await shell.main(script, proc.io)
        elif shell.interactive:
            status = await shell.run_interactive(proc.io, terminal)
        else:
            status = await shell.run_stream(proc.io.stdin, proc.io)
        if shell.exit_trap is not None:
            trap, shell.exit_trap = shell.exit_trap, None
            shell.status = status
            with contextlib.suppress(ShellExit):
                await shell.run_script(trap, proc.io)
        return status
    except (OutputLimit, RecursionError):
        # Variables past limits.MAX_VARIABLES, or a script that recursed past Python's stack:
        # what ash says when malloc fails, and it dies.
        await shell.error(proc.io, "out of memory")
        return 2


def _default_prompt(flavour: Flavour, image_prompt: str, login: bool) -> str:
    if flavour == "bash":
        # Ubuntu's /etc/bash.bashrc, which an interactive bash reads.
        return "\\u@\\h:\\w\\$ "
    if flavour == "ash" and login:
        # Alpine's /etc/profile, which a login shell (sh -l) reads.
        return "\\h:\\w\\$ "
    return image_prompt if flavour == "ash" else "$ "
