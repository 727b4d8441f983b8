"""`cssm-desktop`: start the window (or run the self-test)."""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import (
    QCoreApplication,
    QEventLoop,
    QSettings,
    QTimer,
    QTranslator,
    SignalInstance,
)
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle, QWidget

from .. import __version__
from ..allocator import keep_freed_buffers
from ..keyring_setup import choose_backend
from ..logs import enable_crash_traces, setup_logging
from . import focus_ring, lagprobe, workers
from .gcguard import MainThreadGC


def wait_for(signal: SignalInstance, timeout_s: float, what: str) -> Any:
    """Run the event loop until `signal` fires; its arguments, or TimeoutError."""
    loop = QEventLoop()
    got: list[Any] = []

    def fired(*args: Any) -> None:
        got.append(args)
        loop.quit()

    signal.connect(fired)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(fired)
    if not got:
        raise TimeoutError(f"timed out waiting for {what}")
    return got[0]


def release(app: QApplication, *widgets: QWidget) -> None:
    """Destroy windows now, while the QApplication exists.

    A window caught in a reference cycle (a lambda slot that holds `self`) outlives its
    last variable; left to the interpreter's final collection it is destroyed after the
    QApplication, and Qt crashes at quit.
    """
    # Results delivered now may start no new work (queues are shut first), but a late one
    # (a folder listing, say) is delivered by processEvents: wait again until none runs.
    for _ in range(3):
        workers.wait_all()
        app.processEvents()  # deliver thread_done: finished workers are released here
        if not workers.running():
            break
    for widget in widgets:
        if shiboken6.isValid(widget):
            shiboken6.delete(widget)
    gc.collect()  # the Python halves of those cycles, and the catalog they hold open


def shut_down(app: QApplication, guard: MainThreadGC, widgets: Sequence[QWidget]) -> None:
    """Everything Qt, in an order Qt survives, before the interpreter starts tearing down."""
    release(app, *widgets)
    guard.stop()
    app.shutdown()


def selftest(app: QApplication) -> int:
    """The real window, a temporary 3-of-5 vault of folders, a drop, a restore."""
    from .context import AppContext
    from .main_window import MainWindow

    with tempfile.TemporaryDirectory(prefix="cssm-selftest-") as tmp_name:
        tmp = Path(tmp_name)
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp))
        ctx = AppContext(config_file=tmp / "config.toml", catalog_file=tmp / "catalog.sqlite")
        window = MainWindow(ctx)
        try:
            size = _store_and_restore(window, tmp)
        finally:
            window.queue.shut()  # on failure: no close prompt, no upload left running
            release(app, window)  # before the temporary folder goes: the catalog lives there
        print(f"cssm-desktop selftest ok: {size} bytes stored in a 3-of-5 vault of "
              "folders and restored identical; backed up, and the snapshot listed through "
              "the local API", flush=True)
        return 0


def _store_and_restore(window: Any, tmp: Path) -> int:
    from .jobs import State

    window.show()
    password = secrets.token_urlsafe(18)
    window.create_local_vault(password, root=tmp / "stores")
    wait_for(window.vault_ready, 60, "the new vault")
    source = tmp / "input" / "selftest ✓.bin"
    source.parent.mkdir()
    data = os.urandom(3 * 1024 * 1024 + 12345)
    source.write_bytes(data)
    window.add_paths([source])  # the same handler a real drop calls
    wait_for(window.queue.all_finished, 120, "the upload")
    job = window.queue.jobs[-1]
    if job.state is not State.DONE:
        raise RuntimeError(f"upload {job.state.value}: {job.error}")
    wait_for(window.files_loaded, 30, "the file list")
    entries = [e for e in window.files.source.entries if e.name == source.name]
    if not entries:
        raise RuntimeError("the stored file is not listed")
    window.engine.lock()  # so the restore dialog asks for the password, as for a user
    out = tmp / "restored"
    out.mkdir()
    dialog = window.open_restore(entries, destination=out)
    dialog.password.setText(password)
    dialog.start()
    (paths,) = wait_for(dialog.restored, 120, "the restore")
    if Path(paths[0]).read_bytes() != data:
        raise RuntimeError("restored bytes differ from the original")
    dialog.close()
    _backup_and_serve(window, source.parent)
    window.close()
    return len(data)


def _backup_and_serve(window: Any, folder: Path) -> None:
    """What a bundle could lack without an import error at start: a backup (snapshots,
    watchdog), and one request through the local API (uvicorn, FastAPI, pydantic)."""
    import json
    import urllib.request

    from ..api.server import ApiServer
    from ..snapshots.schedule import Watcher

    Watcher([str(folder)], settle=1).stop()
    result = window.engine.backup(folder)
    if result.snapshot is None or result.snapshot.files != 1:
        raise RuntimeError("the backup made no snapshot of the file")
    server = ApiServer(lambda: window.engine, "127.0.0.1:0",
                       token_path=folder.parent / "api-token")
    server.start()
    try:
        request = urllib.request.Request(f"{server.url}/v1/snapshots", headers={
            "Authorization": f"Bearer {server.token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            listed = json.loads(answer.read())
        if [s["id"] for s in listed] != [result.snapshot.id]:
            raise RuntimeError("the local API did not list the snapshot")
    finally:
        server.stop()


ASSETS = Path(__file__).resolve().parent / "assets"


def install_translations(app: QCoreApplication) -> bool:
    """English plural forms, so "%n file(s)" reads "1 file" and "2 files": without a
    translation that gives them Qt shows such a text as written. The forms come from
    build_scripts/english_plurals.py (Qt's numerus forms, not plurals made by hand)."""
    translator = QTranslator(app)   # the application keeps it
    if not translator.load(str(ASSETS / "cssm_en.qm")):
        return False
    return app.installTranslator(translator)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cssm-desktop", description="CSSM Desktop")
    parser.add_argument("--config", type=Path, help="configuration file")
    parser.add_argument("--selftest", action="store_true",
                        help="store and restore a generated file through the real window, "
                             "in a temporary vault; exit 0 on success")
    parser.add_argument("--background", action="store_true",
                        help="start in the system tray (as at login), the window hidden")
    parser.add_argument("--version", action="version", version=f"cssm-desktop {__version__}")
    args, qt_args = parser.parse_known_args(argv)
    QCoreApplication.setOrganizationName("cssm-desktop")
    QCoreApplication.setApplicationName("CSSM Desktop")
    QCoreApplication.setApplicationVersion(__version__)
    app = QApplication([sys.argv[0], *qt_args])
    install_translations(app)
    focus_ring.install(app)
    # The UI thread waits for the GIL behind the upload's threads at most this long
    # between two of its steps (5 ms by default, several in a row under a busy pipeline:
    # key presses waited over 100 ms during a 3 GiB upload; bench/ui_lag.py).
    sys.setswitchinterval(0.001)
    lagprobe.install(app)
    icon = ASSETS / "cssm-desktop.png"
    app.setWindowIcon(QIcon(str(icon)) if icon.exists()
                      else app.style().standardIcon(QStyle.StandardPixmap.SP_DriveNetIcon))
    keep_freed_buffers()
    log_file = setup_logging()
    enable_crash_traces(log_file, to_stderr=args.selftest)
    choose_backend()
    guard = MainThreadGC(app)
    windows: list[QWidget] = []
    try:
        if args.selftest:
            try:
                return selftest(app)
            except Exception as exc:
                print(f"cssm-desktop selftest FAILED: {exc}", file=sys.stderr)
                return 1
        from ..config import config_path
        from .context import AppContext
        from .main_window import MainWindow
        from .single import SingleInstance

        single = SingleInstance(config_path(args.config))
        if not single.acquire():
            print("CSSM Desktop is already running; its window was brought to the front.",
                  file=sys.stderr)
            return 0
        try:
            window = MainWindow(AppContext(config_file=args.config), log_file)
            windows.append(window)
            single.wake.connect(window.bring_to_front)
            if not (args.background and window.start_in_tray()):
                window.show()
            return app.exec()
        finally:
            single.release()
    finally:
        shut_down(app, guard, windows)


if __name__ == "__main__":
    sys.exit(main())
