"""The POSIX sh grammar a pod's shell understands, parsed into frozen dataclasses.

Why a hand-written recursive-descent parser: ``bashlex`` (the one maintained Python shell
parser) is GPL-3.0-or-later, which meshtutor (Apache-2.0) cannot ship, and parses bash rather
than the busybox ash of the sample images; ``shlex`` splits words but knows neither ``$( )``
nesting, here-documents nor compound commands. The subset below is what mesh tutorials type:
quoting, parameters (``$x ${x:-d} ${#x} ${x%pat}``), ``$( )``, backquotes, ``$(( ))``, pipes,
``&& || ; &``, redirections, here-documents, ``if``/``for``/``while``/``until``/``case``,
``{ }`` and ``( )``. The error messages are busybox ash's (``shell/ash.c``:
``raise_error_unexpected_syntax`` and ``tokname``), e.g. ``syntax error: unexpected "fi"``.

Input that ends in the middle of a command raises :class:`ShellSyntaxError` with
``incomplete=True``, so an interactive shell can print ``PS2`` and read one more line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from meshtutor.kubeapi.shell import limits

__all__ = [
    "AndOr",
    "Arith",
    "Case",
    "CmdSub",
    "Command",
    "For",
    "FuncDef",
    "Group",
    "HereDoc",
    "If",
    "Lit",
    "Loop",
    "Param",
    "Pipeline",
    "Redir",
    "Seq",
    "ShellSyntaxError",
    "Simple",
    "Tilde",
    "Word",
    "commands",
    "parse",
    "parse_text",
]


class ShellSyntaxError(Exception):
    """A script the shell cannot parse; ``message`` is ash's text after ``syntax error: ``.

    For an unexpected token, ``found`` is ash's name for it (``"fi"``, ``end of file``),
    ``token`` its text and ``expecting`` the keyword ash expected, so that dash and bash
    can word the same error their way; ``quote`` is the unterminated quote character.
    """

    def __init__(
        self,
        message: str,
        *,
        incomplete: bool = False,
        line: int = 1,
        found: str | None = None,
        token: str | None = None,
        expecting: str | None = None,
        quote: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.incomplete = incomplete
        self.line = line
        self.found = found
        self.token = token
        self.expecting = expecting
        self.quote = quote


# --- the tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    """Literal text; ``quoted`` text is neither split into fields nor globbed."""

    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Tilde:
    """A leading unquoted ``~``: the home directory."""


@dataclass(frozen=True)
class Param:
    """``$name`` or ``${name OP word}``; ``op`` is ``None``, ``len`` or one of :data:`PARAM_OPS`."""

    name: str
    op: str | None = None
    arg: Word | None = None
    quoted: bool = False


@dataclass(frozen=True)
class CmdSub:
    """``$( … )`` or a backquoted command."""

    body: Seq
    quoted: bool = False


@dataclass(frozen=True)
class Arith:
    """``$(( … ))``: the text is expanded like a double-quoted string, then evaluated."""

    text: str
    quoted: bool = False


Part = Lit | Tilde | Param | CmdSub | Arith


@dataclass(frozen=True)
class Word:
    parts: tuple[Part, ...]
    raw: str

    @property
    def plain(self) -> str | None:
        """The word's text when it is one unquoted literal (keywords, names), else None."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Lit) and not self.parts[0].quoted:
            return self.parts[0].text
        return None

    @property
    def has_quotes(self) -> bool:
        return any(isinstance(p, Lit) and p.quoted for p in self.parts)


@dataclass
class HereDoc:
    """A here-document: the body is read after the next newline, hence mutable."""

    delimiter: str
    expand: bool
    strip_tabs: bool
    body: str = ""


@dataclass(frozen=True)
class Redir:
    """``fd op target``: ops ``< > >> >| <> <& >& &>`` and ``<<`` (here-document)."""

    fd: int
    op: str
    target: Word | None
    heredoc: HereDoc | None = None


@dataclass(frozen=True)
class Simple:
    assigns: tuple[tuple[str, Word], ...]
    words: tuple[Word, ...]
    redirs: tuple[Redir, ...]
    line: int


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[Command, ...]
    negate: bool = False


@dataclass(frozen=True)
class AndOr:
    first: Pipeline
    rest: tuple[tuple[str, Pipeline], ...] = ()


@dataclass(frozen=True)
class Seq:
    """A list of and-or lists; the flag is True for ``&`` (run in the background)."""

    items: tuple[tuple[AndOr, bool], ...] = ()


@dataclass(frozen=True)
class If:
    arms: tuple[tuple[Seq, Seq], ...]
    orelse: Seq | None
    redirs: tuple[Redir, ...] = ()


@dataclass(frozen=True)
class For:
    var: str
    words: tuple[Word, ...] | None
    body: Seq
    redirs: tuple[Redir, ...] = ()


@dataclass(frozen=True)
class Loop:
    until: bool
    cond: Seq
    body: Seq
    redirs: tuple[Redir, ...] = ()


@dataclass(frozen=True)
class Case:
    word: Word
    arms: tuple[tuple[tuple[Word, ...], Seq], ...]
    redirs: tuple[Redir, ...] = ()


@dataclass(frozen=True)
class Group:
    body: Seq
    subshell: bool
    redirs: tuple[Redir, ...] = ()


@dataclass(frozen=True)
class FuncDef:
    """``name() compound-command``."""

    name: str
    body: Command
    redirs: tuple[Redir, ...] = ()


Command = Simple | If | For | Loop | Case | Group | FuncDef

PARAM_OPS = (":-", ":=", ":+", ":?", "-", "=", "+", "?", "##", "#", "%%", "%")
SPECIAL_PARAMS = "@*#?$!-0"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
REDIR_OPS = frozenset({"<", ">", ">>", ">|", "<>", "<&", ">&", "&>", "<<", "<<-"})
# Longest first, so that `>>` wins over `>`.
OPERATORS = (
    "<<-",
    "&&",
    "||",
    ";;",
    "<<",
    ">>",
    ">|",
    "<>",
    "<&",
    ">&",
    "&>",
    ";",
    "&",
    "|",
    "(",
    ")",
    "<",
    ">",
)
WORD_STOPS = " \t\n;&|<>()"
ANSI_C_ESCAPE = re.compile(r"\\([0-7]{1,3}|x[0-9a-fA-F]{1,2}|.)", re.DOTALL)
ANSI_C = {
    "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
    "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip
IO_NUMBER = re.compile(r"\d+(?=[<>])")
DIGITS = re.compile(r"\d+")
# Words that may not start a simple command: ash reports them as unexpected.
CLOSERS = frozenset({"then", "else", "elif", "fi", "do", "done", "esac", "}"})
# ash's token names (tokname_array): end of file, newline and words unquoted, the rest quoted.


@dataclass(frozen=True)
class Token:
    kind: str  # "word" | "op" | "newline" | "eof"
    text: str
    word: Word | None = None
    fd: int | None = None
    line: int = 1


# --- lexer ---------------------------------------------------------------------------------


@dataclass
class _Lexer:
    src: str
    interactive: bool = False
    depth: int = 0
    pos: int = 0
    line: int = 1
    heredocs: list[HereDoc] = field(default_factory=list)

    def error(
        self, message: str, *, incomplete: bool = False, quote: str | None = None
    ) -> ShellSyntaxError:
        return ShellSyntaxError(message, incomplete=incomplete, line=self.line, quote=quote)

    def at_end(self) -> bool:
        return self.pos >= len(self.src)

    def char(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.src[i] if i < len(self.src) else ""

    def next_token(self) -> Token:
        src = self.src
        while True:
            c = self.char()
            if c in (" ", "\t"):
                self.pos += 1
            elif c == "\\" and self.char(1) == "\n":
                self.pos += 2
                self.line += 1
                if self.at_end() and self.interactive:
                    raise self.error("unexpected end of file", incomplete=True)
            elif c == "#":
                end = src.find("\n", self.pos)
                self.pos = len(src) if end < 0 else end
            else:
                break
        line = self.line
        if self.at_end():
            if self.heredocs:
                if self.interactive:
                    raise self.error("unexpected end of file", incomplete=True)
                self.heredocs.clear()  # a here-document cut off by the end: empty
            return Token("eof", "", line=line)
        c = src[self.pos]
        if c == "\n":
            self.pos += 1
            self.line += 1
            self._read_heredocs()
            return Token("newline", "\n", line=line)
        fd = None
        digits = IO_NUMBER.match(src, self.pos)
        if digits:
            fd = int(digits.group()) if len(digits.group()) < 4 else 10_000
            self.pos += len(digits.group())
        for op in OPERATORS:
            if src.startswith(op, self.pos):
                self.pos += len(op)
                return Token("op", op, fd=fd, line=line)
        word = self.read_word(WORD_STOPS)
        return Token("word", word.raw, word=word, line=line)

    def _read_heredocs(self) -> None:
        pending, self.heredocs = self.heredocs, []
        for doc in pending:
            lines: list[str] = []
            while True:
                if self.at_end():
                    if self.interactive:
                        raise self.error("unexpected end of file", incomplete=True)
                    break
                end = self.src.find("\n", self.pos)
                text = self.src[self.pos : len(self.src) if end < 0 else end]
                self.pos = len(self.src) if end < 0 else end + 1
                self.line += 1
                if doc.strip_tabs:
                    text = text.lstrip("\t")
                if text == doc.delimiter:
                    break
                lines.append(text + ("\n" if end >= 0 else ""))
            doc.body = "".join(lines)

    # -- words --

    def read_word(self, stops: str) -> Word:
        start = self.pos
        parts: list[Part] = []
        lit: list[str] = []

        def flush() -> None:
            if lit:
                parts.append(Lit("".join(lit)))
                lit.clear()

        src = self.src
        while self.pos < len(src):
            c = src[self.pos]
            if c in stops:
                break
            if c == "\\":
                nxt = self.char(1)
                if nxt == "\n":
                    self.pos += 2
                    self.line += 1
                    if self.at_end() and self.interactive:
                        raise self.error("unexpected end of file", incomplete=True)
                elif nxt:
                    flush()
                    parts.append(Lit(nxt, True))
                    self.pos += 2
                else:
                    lit.append("\\")
                    self.pos += 1
            elif c == "'":
                end = src.find("'", self.pos + 1)
                if end < 0:
                    raise self.error("unterminated quoted string", incomplete=True, quote="'")
                flush()
                text = src[self.pos + 1 : end]
                self.line += text.count("\n")
                parts.append(Lit(text, True))
                self.pos = end + 1
            elif c == '"':
                flush()
                parts.extend(self._read_dquote())
            elif c == "$":
                flush()
                parts.append(self._read_dollar(quoted=False))
            elif c == "`":
                flush()
                parts.append(self._read_backquote(quoted=False))
            elif c == "~" and self.pos == start and stops == WORD_STOPS:
                after = self.char(1)
                if after in ("", "/") or after in stops:
                    flush()
                    parts.append(Tilde())
                else:
                    lit.append(c)
                self.pos += 1
            else:
                if c == "\n":
                    self.line += 1
                lit.append(c)
                self.pos += 1
        flush()
        return Word(tuple(parts), src[start : self.pos])

    def _read_dquote(self) -> list[Part]:
        self.pos += 1  # the opening quote
        parts: list[Part] = [Lit("", True)]
        lit: list[str] = []

        def flush() -> None:
            if lit:
                parts.append(Lit("".join(lit), True))
                lit.clear()

        src = self.src
        while True:
            if self.pos >= len(src):
                raise self.error("unterminated quoted string", incomplete=True, quote='"')
            c = src[self.pos]
            if c == '"':
                self.pos += 1
                break
            if c == "\\":
                nxt = self.char(1)
                if nxt == "\n":
                    self.pos += 2
                    self.line += 1
                    continue
                if nxt in ("$", "`", '"', "\\"):
                    lit.append(nxt)
                    self.pos += 2
                    continue
                lit.append("\\")
                self.pos += 1
            elif c == "$":
                flush()
                parts.append(self._read_dollar(quoted=True))
            elif c == "`":
                flush()
                parts.append(self._read_backquote(quoted=True))
            else:
                if c == "\n":
                    self.line += 1
                lit.append(c)
                self.pos += 1
        flush()
        return parts

    def _read_dollar(self, *, quoted: bool) -> Part:
        src = self.src
        nxt = self.char(1)
        if nxt == "(" and self.char(2) == "(":
            end = self._arith_end(self.pos + 3)
            if end is not None:
                text = src[self.pos + 3 : end]
                self.pos = end + 2
                return Arith(text, quoted)
        if nxt == "(":
            self.pos += 2
            body = _Parser(self).parse_substitution()
            return CmdSub(body, quoted)
        if nxt == "{":
            return self._read_braced(quoted)
        if nxt == "'" and not quoted:
            return self._read_ansi_c()
        if nxt and (nxt.isalpha() or nxt == "_"):
            m = NAME.match(src, self.pos + 1)
            assert m is not None
            self.pos = m.end()
            return Param(m.group(), quoted=quoted)
        if nxt and (nxt.isdigit() or nxt in SPECIAL_PARAMS):
            self.pos += 2
            return Param(nxt, quoted=quoted)
        self.pos += 1
        return Lit("$", quoted)

    def _read_ansi_c(self) -> Part:
        """``$'…'``: backslash escapes as in C (ash's bash compatibility)."""
        src = self.src
        i = self.pos + 2
        out: list[str] = []
        while True:
            if i >= len(src):
                raise self.error("unterminated quoted string", incomplete=True, quote="'")
            c = src[i]
            if c == "'":
                break
            if c == "\\" and i + 1 < len(src):
                m = ANSI_C_ESCAPE.match(src, i)
                assert m is not None
                code = m.group(1)
                if code[0] in "01234567":
                    out.append(chr(int(code, 8) & 0xFF))
                elif code[0] == "x":
                    out.append(chr(int(code[1:], 16)))
                else:
                    out.append(ANSI_C.get(code, "\\" + code))
                i = m.end()
                continue
            out.append(c)
            i += 1
        self.pos = i + 1
        return Lit("".join(out), True)

    def _arith_end(self, i: int) -> int | None:
        """Where the ``))`` closing ``$((`` starts, or None for ``$( (…) )`` (a subshell)."""
        depth = 0
        src = self.src
        while i < len(src):
            c = src[i]
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    return i if src.startswith("))", i) else None
                depth -= 1
            i += 1
        raise self.error("missing '))'", incomplete=True)

    def _read_braced(self, quoted: bool) -> Part:
        src = self.src
        self.pos += 2  # "${"
        length = False
        if self.char() == "#" and self.char(1) not in ("}", ""):
            length = True
            self.pos += 1
        m = NAME.match(src, self.pos)
        if m:
            name = m.group()
            self.pos = m.end()
        elif self.char().isdigit():
            m = DIGITS.match(src, self.pos)
            assert m is not None
            name = m.group()
            self.pos = m.end()
        elif self.char() and self.char() in SPECIAL_PARAMS:
            name = self.char()
            self.pos += 1
        elif self.at_end():
            raise self.error("missing '}'", incomplete=True)
        else:
            raise self.error("bad substitution")
        if length:
            if self.char() != "}":
                raise self.error("bad substitution")
            self.pos += 1
            return Param(name, "len", quoted=quoted)
        if self.char() == "}":
            self.pos += 1
            return Param(name, quoted=quoted)
        for op in PARAM_OPS:
            if src.startswith(op, self.pos):
                self.pos += len(op)
                arg = self.read_word("}")
                if self.char() != "}":
                    raise self.error("missing '}'", incomplete=True)
                self.pos += 1
                return Param(name, op, arg, quoted)
        if self.at_end():
            raise self.error("missing '}'", incomplete=True)
        raise self.error("bad substitution")

    def _read_backquote(self, *, quoted: bool) -> Part:
        self.pos += 1
        inner: list[str] = []
        src = self.src
        while True:
            if self.pos >= len(src):
                raise self.error("EOF in backquote substitution", incomplete=True)
            c = src[self.pos]
            if c == "`":
                self.pos += 1
                break
            if c == "\\" and self.pos + 1 < len(src):
                nxt = src[self.pos + 1]
                if nxt in ("$", "`", "\\") or (quoted and nxt == '"'):
                    inner.append(nxt)
                    self.pos += 2
                    continue
            if c == "\n":
                self.line += 1
            inner.append(c)
            self.pos += 1
        body = parse("".join(inner), depth=self.depth + 1)
        return CmdSub(body, quoted)


# --- parser --------------------------------------------------------------------------------


def _describe(tok: Token) -> str:
    if tok.kind == "eof":
        return "end of file"
    if tok.kind == "newline":
        return "newline"
    if tok.kind == "op":
        return "redirection" if tok.text in REDIR_OPS else f'"{tok.text}"'
    plain = tok.word.plain if tok.word else None
    if plain in CLOSERS or plain in ("if", "for", "while", "until", "case", "{", "!", "in"):
        return f'"{plain}"'
    return "word"


class _Parser:
    def __init__(self, lexer: _Lexer) -> None:
        self.lx = lexer
        self.tok: Token | None = None

    # -- tokens --

    def peek(self) -> Token:
        if self.tok is None:
            self.tok = self.lx.next_token()
        return self.tok

    def take(self) -> Token:
        tok = self.peek()
        self.tok = None
        return tok

    @staticmethod
    def is_kw(tok: Token, *names: str) -> bool:
        return tok.kind == "word" and tok.word is not None and tok.word.plain in names

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in ops

    def unexpected(self, tok: Token, expecting: str | None = None) -> ShellSyntaxError:
        found = _describe(tok)
        message = f"unexpected {found}"
        if expecting is not None:
            message += f' (expecting "{expecting}")'
        return ShellSyntaxError(
            message,
            incomplete=tok.kind == "eof",
            line=tok.line,
            found=found,
            token="newline" if tok.kind == "newline" else tok.text,
            expecting=expecting,
        )

    def expect_kw(self, name: str) -> None:
        tok = self.peek()
        if not self.is_kw(tok, name):
            raise self.unexpected(tok, name)
        self.take()

    def skip_newlines(self) -> None:
        while self.peek().kind == "newline":
            self.take()

    def nest(self) -> None:
        self.lx.depth += 1
        if self.lx.depth > limits.MAX_NESTING:
            raise ShellSyntaxError(
                f"more than {limits.MAX_NESTING} nested commands", line=self.lx.line
            )

    def unnest(self) -> None:
        self.lx.depth -= 1

    # -- grammar --

    def parse_line(self) -> Seq | None:
        """The next complete command (and-or lists up to a newline), or None at the end."""
        self.skip_newlines()
        if self.peek().kind == "eof":
            return None
        items: list[tuple[AndOr, bool]] = []
        while True:
            and_or = self.parse_and_or()
            tok = self.peek()
            if tok.kind == "op" and tok.text in (";", "&"):
                self.take()
                items.append((and_or, tok.text == "&"))
                if self.peek().kind in ("newline", "eof"):
                    break
            elif tok.kind in ("newline", "eof"):
                items.append((and_or, False))
                break
            else:
                raise self.unexpected(tok)
        return Seq(tuple(items))

    def parse_substitution(self) -> Seq:
        """The inside of ``$( … )``, up to and including the closing parenthesis."""
        self.nest()
        seq = self.parse_list(frozenset(), frozenset({")"}))
        tok = self.peek()
        if not (tok.kind == "op" and tok.text == ")"):
            raise self.unexpected(tok, ")")
        self.take()
        self.unnest()
        return seq

    def parse_list(self, stop_kw: frozenset[str], stop_op: frozenset[str]) -> Seq:
        items: list[tuple[AndOr, bool]] = []
        self.skip_newlines()
        while True:
            tok = self.peek()
            if (
                tok.kind == "eof"
                or (tok.kind == "op" and tok.text in stop_op)
                or (tok.kind == "word" and tok.word is not None and tok.word.plain in stop_kw)
            ):
                break
            and_or = self.parse_and_or()
            tok = self.peek()
            if tok.kind == "op" and tok.text in (";", "&"):
                self.take()
                items.append((and_or, tok.text == "&"))
                self.skip_newlines()
            elif tok.kind == "newline":
                items.append((and_or, False))
                self.skip_newlines()
            else:
                items.append((and_or, False))
                break
        return Seq(tuple(items))

    def parse_body(self, stop_kw: frozenset[str], stop_op: frozenset[str] = frozenset()) -> Seq:
        """A compound command's list, which ash requires to be non-empty."""
        seq = self.parse_list(stop_kw, stop_op)
        if not seq.items:
            raise self.unexpected(self.peek())
        return seq

    def parse_and_or(self) -> AndOr:
        first = self.parse_pipeline()
        rest: list[tuple[str, Pipeline]] = []
        while self.is_op("&&", "||"):
            op = self.take().text
            self.skip_newlines()
            rest.append((op, self.parse_pipeline()))
        return AndOr(first, tuple(rest))

    def parse_pipeline(self) -> Pipeline:
        negate = False
        if self.is_kw(self.peek(), "!"):
            self.take()
            negate = True
        commands = [self.parse_command()]
        while self.is_op("|"):
            self.take()
            self.skip_newlines()
            commands.append(self.parse_command())
        return Pipeline(tuple(commands), negate)

    def parse_command(self) -> Command:
        tok = self.peek()
        plain = tok.word.plain if tok.kind == "word" and tok.word is not None else None
        if plain in ("if", "for", "while", "until", "case", "{") or (
            tok.kind == "op" and tok.text == "("
        ):
            self.nest()
            if plain == "if":
                command: Command = self.parse_if()
            elif plain == "for":
                command = self.parse_for()
            elif plain in ("while", "until"):
                command = self.parse_loop()
            elif plain == "case":
                command = self.parse_case()
            elif plain == "{":
                self.take()
                body = self.parse_body(frozenset({"}"}))
                self.expect_kw("}")
                command = Group(body, subshell=False)
            else:
                self.take()
                body = self.parse_body(frozenset(), frozenset({")"}))
                if not self.is_op(")"):
                    raise self.unexpected(self.peek(), ")")
                self.take()
                command = Group(body, subshell=True)
            self.unnest()
            redirs = self.parse_redirs()
            if redirs:
                command = _with_redirs(command, redirs)
            return command
        if plain in CLOSERS:
            raise self.unexpected(tok)
        if tok.kind == "word" or (tok.kind == "op" and tok.text in REDIR_OPS):
            return self.parse_simple()
        raise self.unexpected(tok)

    def parse_redirs(self) -> tuple[Redir, ...]:
        redirs = []
        while self.is_op(*REDIR_OPS):
            redirs.append(self.parse_redir())
        return tuple(redirs)

    def parse_redir(self) -> Redir:
        tok = self.take()
        op = tok.text
        default_fd = 0 if op in ("<", "<>", "<&", "<<", "<<-") else 1
        fd = default_fd if tok.fd is None else tok.fd
        target = self.peek()
        if target.kind != "word" or target.word is None:
            raise self.unexpected(target)
        self.take()
        if op in ("<<", "<<-"):
            delimiter = (
                "".join(p.text for p in target.word.parts if isinstance(p, Lit)) or target.word.raw
            )
            doc = HereDoc(delimiter, expand=not _quoted(target.word), strip_tabs=op == "<<-")
            self.lx.heredocs.append(doc)
            return Redir(fd, "<<", None, doc)
        return Redir(fd, op, target.word)

    def parse_simple(self) -> Simple:
        line = self.peek().line
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirs: list[Redir] = []
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.text in REDIR_OPS:
                redirs.append(self.parse_redir())
                continue
            if tok.kind != "word" or tok.word is None:
                break
            self.take()
            if not words:
                assignment = _assignment(tok.word)
                if assignment is not None:
                    assigns.append(assignment)
                    continue
            words.append(tok.word)
        name = words[0].plain if len(words) == 1 and not assigns and not redirs else None
        if name is not None and NAME.fullmatch(name) and self.is_op("("):
            self.take()
            if not self.is_op(")"):
                raise self.unexpected(self.peek(), ")")
            self.take()
            self.skip_newlines()
            tok = self.peek()
            plain = tok.word.plain if tok.kind == "word" and tok.word is not None else None
            if plain not in ("if", "for", "while", "until", "case", "{") and not self.is_op("("):
                raise self.unexpected(tok)
            return FuncDef(name, self.parse_command())  # type: ignore[return-value]
        return Simple(tuple(assigns), tuple(words), tuple(redirs), line)

    def parse_if(self) -> If:
        self.take()
        arms: list[tuple[Seq, Seq]] = []
        orelse: Seq | None = None
        while True:
            cond = self.parse_body(frozenset({"then"}))
            self.expect_kw("then")
            body = self.parse_body(frozenset({"elif", "else", "fi"}))
            arms.append((cond, body))
            tok = self.peek()
            if self.is_kw(tok, "elif"):
                self.take()
                continue
            if self.is_kw(tok, "else"):
                self.take()
                orelse = self.parse_body(frozenset({"fi"}))
            break
        self.expect_kw("fi")
        return If(tuple(arms), orelse)

    def parse_for(self) -> For:
        self.take()
        tok = self.take()
        name = tok.word.plain if tok.kind == "word" and tok.word is not None else None
        if name is None or not NAME.fullmatch(name):
            if tok.kind == "eof":
                raise self.unexpected(tok)
            raise ShellSyntaxError("bad for loop variable", line=tok.line)
        words: list[Word] | None = None
        self.skip_newlines()
        if self.is_kw(self.peek(), "in"):
            self.take()
            words = []
            while True:
                tok = self.peek()
                if tok.kind == "word" and tok.word is not None:
                    words.append(tok.word)
                    self.take()
                elif (tok.kind == "op" and tok.text == ";") or tok.kind == "newline":
                    self.take()
                    break
                else:
                    raise self.unexpected(tok)
        elif self.is_op(";"):
            self.take()
        self.skip_newlines()
        self.expect_kw("do")
        body = self.parse_body(frozenset({"done"}))
        self.expect_kw("done")
        return For(name, None if words is None else tuple(words), body)

    def parse_loop(self) -> Loop:
        until = self.take().text == "until"
        cond = self.parse_body(frozenset({"do"}))
        self.expect_kw("do")
        body = self.parse_body(frozenset({"done"}))
        self.expect_kw("done")
        return Loop(until, cond, body)

    def parse_case(self) -> Case:
        self.take()
        tok = self.take()
        if tok.kind != "word" or tok.word is None:
            raise self.unexpected(tok)
        subject = tok.word
        self.skip_newlines()
        self.expect_kw("in")
        self.skip_newlines()
        arms: list[tuple[tuple[Word, ...], Seq]] = []
        while not self.is_kw(self.peek(), "esac"):
            if self.is_op("("):
                self.take()
            patterns: list[Word] = []
            while True:
                tok = self.take()
                if tok.kind != "word" or tok.word is None:
                    raise self.unexpected(tok)
                patterns.append(tok.word)
                if self.is_op("|"):
                    self.take()
                    continue
                break
            if not self.is_op(")"):
                raise self.unexpected(self.peek(), ")")
            self.take()
            body = self.parse_list(frozenset({"esac"}), frozenset({";;"}))
            arms.append((tuple(patterns), body))
            if self.is_op(";;"):
                self.take()
                self.skip_newlines()
            elif not self.is_kw(self.peek(), "esac"):
                raise self.unexpected(self.peek(), "esac")
        self.take()
        return Case(subject, tuple(arms))


def _quoted(word: Word) -> bool:
    return any(isinstance(p, Lit) and p.quoted for p in word.parts)


def _assignment(word: Word) -> tuple[str, Word] | None:
    first = word.parts[0] if word.parts else None
    if not isinstance(first, Lit) or first.quoted:
        return None
    m = ASSIGNMENT.match(first.text)
    if m is None:
        return None
    rest = first.text[m.end() :]
    parts: tuple[Part, ...] = ((Lit(rest),) if rest else ()) + word.parts[1:]
    return m.group(1), Word(parts, word.raw[m.end() :])


def _with_redirs(command: Command, redirs: tuple[Redir, ...]) -> Command:
    if isinstance(command, Simple):
        return command
    return type(command)(**{**command.__dict__, "redirs": command.redirs + redirs})


def parse(src: str, *, interactive: bool = False, depth: int = 0) -> Seq:
    """Parse a whole script; raises :class:`ShellSyntaxError`."""
    items: list[tuple[AndOr, bool]] = []
    for seq in commands(src, interactive=interactive, depth=depth):
        items.extend(seq.items)
    return Seq(tuple(items))


def commands(src: str, *, interactive: bool = False, depth: int = 0) -> Iterator[Seq]:
    """The script's complete commands, one line's worth at a time.

    ash parses and runs a script this way, so ``echo a`` on line 1 runs even when line 2 has a
    syntax error, and ``exit`` stops before later lines are parsed at all.
    """
    if depth > limits.MAX_NESTING:
        raise ShellSyntaxError(f"more than {limits.MAX_NESTING} nested commands")
    parser = _Parser(_Lexer(src, interactive=interactive, depth=depth))
    while True:
        try:
            seq = parser.parse_line()
        except RecursionError:
            raise ShellSyntaxError(f"more than {limits.MAX_NESTING} nested commands") from None
        if seq is None:
            return
        yield seq


def parse_text(src: str) -> Word:
    """Text expanded as inside double quotes (here-documents, ``$(( ))``): ``$``, ``\\``, `` ` ``."""
    lexer = _Lexer(src)
    parts: list[Part] = [Lit("", True)]
    lit: list[str] = []
    while lexer.pos < len(src):
        c = src[lexer.pos]
        if c == "\\" and lexer.char(1) in ("$", "`", "\\"):
            lit.append(lexer.char(1))
            lexer.pos += 2
        elif c in ("$", "`"):
            if lit:
                parts.append(Lit("".join(lit), True))
                lit.clear()
            part = (
                lexer._read_dollar(quoted=True) if c == "$" else lexer._read_backquote(quoted=True)
            )
            parts.append(part)
        else:
            lit.append(c)
            lexer.pos += 1
    if lit:
        parts.append(Lit("".join(lit), True))
    return Word(tuple(parts), src)
