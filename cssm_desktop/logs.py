"""A rotating log file in the user log dir. Messages name stores and object ids, never secrets."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

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
