"""The exceptions meshtutor raises for things a user can fix.

    MeshtutorError                 anything meshtutor reports to a user without a traceback
     ├── ManifestError             a YAML document is malformed or invalid (file, doc, line, field)
     ├── ProbeSpecError            a PROBE argument or probe file entry is wrong
     ├── ClusterStateError         a valid manifest cannot be applied to the cluster as it is
     ├── PKIError                  a certificate or key cannot be issued, parsed or verified
     └── InputFileError            a file the user named cannot be read or written as asked

Every message says what was wrong, where, and what was expected, in one line when possible.
"""

from __future__ import annotations


class MeshtutorError(Exception):
    """Base class: the CLI prints the message and exits with code 2.

    The message is always one printable line: messages quote what the user wrote, and a
    value with a newline (``apiVersion: "a\\nb"``) split the error in two, while one with an
    escape sequence could drive the learner's terminal. Control characters show escaped.
    """

    def __str__(self) -> str:
        return printable(super().__str__())


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class ManifestError(MeshtutorError):
    """A manifest document could not be loaded.

    ``source`` is the file name, ``document`` the 1-based document number in that file,
    ``line`` the 1-based line, ``field`` the dotted field path (``spec.mtls.mode``).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "<input>",
        document: int | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.document = document
        self.line = line
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.document is not None:
            parts.append(f"document {self.document}")
        if self.field:
            parts.append(f"field {self.field}")
        return ": ".join([", ".join(parts), self.reason])


class ProbeSpecError(MeshtutorError):
    """A probe (``NAMESPACE/DEPLOYMENT[:CONTAINER]=URL`` or a probe-file entry) is invalid."""


class ClusterStateError(MeshtutorError):
    """A manifest is valid but the cluster refuses it (e.g. its namespace does not exist)."""


class PKIError(MeshtutorError):
    """A certificate, key or chain could not be issued, parsed or verified."""


class InputFileError(MeshtutorError):
    """A file named by the user (or by a lesson) is not a readable regular file, too large,
    not UTF-8, or an output path meshtutor refuses to write. ``line`` is 1-based when known.

    Loaders that know more (the manifest's document, the lesson's field) re-raise it as their
    own error with ``reason`` and ``line``.
    """

    def __init__(self, reason: str, *, source: str, line: int | None = None) -> None:
        self.reason, self.source, self.line = reason, source, line
        super().__init__(f"{source}{f':{line}' if line else ''}: {reason}")
