"""Start at login, so protected folders are backed up without opening the app: an XDG
autostart entry on Linux, a LaunchAgent on macOS, the Run key on Windows. The app starts
hidden in the tray (`--background`)."""

from __future__ import annotations

import os
import plistlib
import sys
from pathlib import Path

from PySide6.QtCore import QSettings

from ..durable import atomic_write_bytes

NAME = "cssm-desktop"
_RUN_KEY = r"HKEY_CURRENT_USER\Software\Microsoft\Windows\CurrentVersion\Run"


def command() -> list[str]:
    """How this very app is started again: the bundle's executable, or Python and the
    module."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--background"]
    return [sys.executable, "-m", "cssm_desktop.gui.app", "--background"]


def _linux_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autostart" / f"{NAME}.desktop"


def _mac_file() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / "org.cssm.desktop.plist"


def enabled() -> bool:
    if sys.platform == "win32":
        return QSettings(_RUN_KEY, QSettings.Format.NativeFormat).contains("CSSM Desktop")
    return (_mac_file() if sys.platform == "darwin" else _linux_file()).exists()


def set_enabled(on: bool) -> None:
    if sys.platform == "win32":
        settings = QSettings(_RUN_KEY, QSettings.Format.NativeFormat)
        if on:
            settings.setValue("CSSM Desktop", " ".join(f'"{c}"' for c in command()))
        else:
            settings.remove("CSSM Desktop")
        return
    path = _mac_file() if sys.platform == "darwin" else _linux_file()
    if not on:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if sys.platform == "darwin":
        data = plistlib.dumps({"Label": "org.cssm.desktop", "ProgramArguments": command(),
                               "RunAtLoad": True})
    else:
        exec_line = " ".join(_quoted(c) for c in command())
        data = ("[Desktop Entry]\nType=Application\nName=CSSM Desktop\n"
                "Comment=Backs up protected folders\n"
                f"Exec={exec_line}\nX-GNOME-Autostart-enabled=true\n").encode()
    atomic_write_bytes(path, data)


def _quoted(arg: str) -> str:
    """The Desktop Entry spec's quoting for an Exec argument."""
    if not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`'):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") \
        .replace("$", "\\$")
    return f'"{escaped}"'
