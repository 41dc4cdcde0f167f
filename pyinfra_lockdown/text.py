"""Host text on the operator's terminal."""
from __future__ import annotations


def printable(text: object) -> str:
    """``text`` for a terminal: every character that is not printable (escape sequences,
    carriage returns, newlines, C1 controls, bidi overrides...) as a Python escape. Host text
    (a main.cf value, a master.cf service name, a ufw comment, a log line) is written by
    whoever has root there."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
