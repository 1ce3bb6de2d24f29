"""Text we did not write ourselves, shown as the characters it is.

Textual and Rich read a ``str`` as markup almost everywhere: ``Static``/``Label`` content,
``DataTable`` cells and column labels, ``Option``/``RadioButton``/``SelectionList`` prompts,
``notify()``, Rich ``Table`` cells, command palette hits. An attendee's name, a failure message,
a hint, a lesson or step title, a certificate's subject or a TLS server name may hold
brackets, and then ``[/]`` raises ``MarkupError`` while rendering (which ends the app), and
``[@click=app.quit]q[/]`` or ``[link=…]`` become live actions on the instructor's screen.

So every such string goes through :func:`plain` (a ``rich.text.Text``, which nothing parses,
accepted wherever a renderable or ``ContentText`` is), or :func:`escape` where an API only
takes markup (the command palette). Both also replace control characters but newline and tab:
an ESC in a failure message would otherwise reach the terminal as an escape sequence (Textual
passes ESC through; it strips only BEL, BS, VT, FF and CR).

``PlainTextApp`` makes every notification plain text, wherever it is raised from, and ``run``
exits non-zero when the app ended on an unhandled exception.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from rich.style import StyleType
from rich.text import Text
from textual import markup
from textual.app import App
from textual.notifications import SeverityLevel

ReturnType = TypeVar("ReturnType")

# C0 controls but newline and tab, DEL and the C1 controls (ESC's 8-bit twin CSI is 0x9b).
_CONTROLS = {
    code: "\ufffd" for code in (*range(0x20), *range(0x7F, 0xA0)) if chr(code) not in "\n\t"
}


def clean(value: object) -> str:
    """``value`` as a string with control characters shown as U+FFFD."""
    return str(value).translate(_CONTROLS)


def plain(value: object, style: StyleType = "") -> Text:
    """``value`` as plain text (optionally in one ``style``): never parsed as markup."""
    return Text(clean(value), style=style)


def escape(value: object) -> str:
    """``value`` as markup that shows it literally, for APIs that only take markup."""
    return markup.escape(clean(value))


class PlainTextApp(App[ReturnType]):
    """An app whose notifications are plain text and whose crash is a non-zero exit."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification as plain text (``markup`` is ignored): the ones meshtutor raises
        carry hints, names and error messages that came from the network or from files."""
        super().notify(
            clean(message), title=clean(title), severity=severity, timeout=timeout, markup=False
        )

    def run_or_exit(self) -> ReturnType | None:
        """``run()``, then exit with the app's return code when it is not 0. Textual's
        ``run()`` returns normally after an unhandled exception (it prints the traceback and
        sets ``return_code`` to 1), so a command that only called it exited 0 on a crash."""
        result = self.run()
        if self.return_code:
            sys.exit(self.return_code)
        return result
