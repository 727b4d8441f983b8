"""A rotating log file in the user log dir. Messages name stores and object ids, never secrets."""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import TextIO

from .config import log_dir, prepare_dir


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """Every log file, the rotated ones too, readable by its owner only."""

    def _open(self):  # type: ignore[no-untyped-def]
        return open(self.baseFilename, self.mode, encoding=self.encoding,
                    errors=self.errors, opener=_private)


def current_log_file() -> Path | None:
    """The file this process logs to (the handler's own, whatever the environment says
    now), or None when it logs nowhere."""
    for handler in logging.getLogger("cssm_desktop").handlers:
        if isinstance(handler, logging.handlers.RotatingFileHandler):
            return Path(handler.baseFilename)
    return None


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Returns the log file, or None when the log dir cannot be written (logging then off)."""
    path = log_dir() / "cssm.log"
    try:
        prepare_dir(path.parent)
        if path.exists():
            os.chmod(path, 0o600)   # written by an older version with the umask's mode
        handler = _PrivateRotatingHandler(path, maxBytes=2 * 1024 * 1024, backupCount=3,
                                          encoding="utf-8")
    except OSError:
        # No log here: and nothing of it on stderr either (Python's last-resort handler
        # printed "get failed: InputError" under the one error line).
        logging.getLogger("cssm_desktop").addHandler(logging.NullHandler())
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("cssm_desktop")
    root.setLevel(level)
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers):
        root.addHandler(handler)
    return path


_crash_file: TextIO | None = None  # faulthandler writes to its descriptor: keep it open


def enable_crash_traces(log_file: Path | None, to_stderr: bool = False) -> None:
    """On a native crash (a segfault in Qt, say) dump every thread's Python stack: to
    stderr when asked (the self-test, read by CI), else next to the log file, since a
    windowed app has no console to print to. Stacks hold code locations, no data."""
    global _crash_file
    if to_stderr and sys.stderr is not None:
        faulthandler.enable(sys.stderr)
    elif log_file is not None:
        try:
            _crash_file = open(log_file.with_name("crash.log"), "a",  # noqa: SIM115
                               encoding="utf-8", opener=_private)
        except OSError:
            return
        faulthandler.enable(_crash_file)
