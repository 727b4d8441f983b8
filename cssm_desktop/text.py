"""Text that came from outside (a file name, a store's error message) made safe to print."""

from __future__ import annotations

import unicodedata


def printable(name: str) -> str:
    """A name for one line of terminal output: control characters (a newline in a file
    name) are shown escaped, so one file is always one line."""
    if name.isprintable():   # the common case, at C speed (spaces are printable)
        return name
    return "".join(c if c.isprintable() or c == " " else
                   repr(c)[1:-1] if unicodedata.category(c) == "Cc" else f"\\u{ord(c):04x}"
                   for c in name)
