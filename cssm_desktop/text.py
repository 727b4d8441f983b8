"""Text that came from outside (a file name, a store's error message) made safe to print."""

from __future__ import annotations

import unicodedata


def name_bytes(name: str) -> bytes:
    """A stored name's bytes: UTF-8, and where the file system gave bytes that are not
    UTF-8 (a POSIX name from an old disk, kept by Python as surrogates), those bytes as
    they were. A name that has no bytes (a lone UTF-16 surrogate from Windows) raises
    UnicodeEncodeError."""
    return name.encode("utf-8", "surrogateescape")


def name_text(raw: bytes) -> str:
    """The inverse of name_bytes: bytes that are not UTF-8 come back as the same
    surrogates, so the file is restored under the very bytes it had."""
    return raw.decode("utf-8", "surrogateescape")


def printable(name: str) -> str:
    """A name (or a store's words) for one line of terminal output, unambiguous. A name
    with nothing to escape is shown as it is; one with a control character (a newline),
    a byte that is not UTF-8 (kept as a surrogate: shown as that byte, \\xff) or another
    unprintable character is shown quoted, 'new\\nline', with backslashes and quotes
    escaped inside. So a name that holds a real backslash and n (shown bare) never looks
    like one with a newline; a bare name never starts with a quote."""
    if name.isprintable() and not name.startswith("'"):   # the common case, at C speed
        return name
    out = []
    for c in name:
        code = ord(c)
        if c in "\\'":
            out.append("\\" + c)
        elif 0xDC80 <= code <= 0xDCFF:        # os.fsdecode's stand-in for a raw byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif c.isprintable() or c == " ":
            out.append(c)
        elif unicodedata.category(c) == "Cc":
            out.append(repr(c)[1:-1])          # \\n, \\t, \\x1b
        else:
            out.append(f"\\u{code:04x}")
    return "'" + "".join(out) + "'"
