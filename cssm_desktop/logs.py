"""A rotating log file in the user log dir. Messages name stores and object ids, never secrets."""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import sys
from pathlib import Path
from typing import TextIO

from .config import log_dir


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Returns the log file, or None when the log dir cannot be written (logging then off)."""
    path = log_dir() / "cssm.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=2 * 1024 * 1024,
                                                       backupCount=3, encoding="utf-8")
    except OSError:
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
            _crash_file = open(log_file.with_name("crash.log"), "a", encoding="utf-8")  # noqa: SIM115
        except OSError:
            return
        faulthandler.enable(_crash_file)
