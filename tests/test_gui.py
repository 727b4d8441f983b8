"""The desktop app driven like a user would, with real widgets offscreen (pytest-qt)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from cssm_desktop.config import Config, load_config
from cssm_desktop.engine import Engine
from cssm_desktop.errors import CssmError
from cssm_desktop.gui import workers
from cssm_desktop.gui.context import AppContext
from cssm_desktop.gui.jobs import State
from cssm_desktop.gui.main_window import MainWindow
from cssm_desktop.gui.settings_dialog import SettingsDialog
from cssm_desktop.gui.unlock_dialog import UnlockDialog

from .conftest import FAST_KDF, PASSWORD, S3Server, folder_stores, free_port, write_config


@pytest.fixture(autouse=True)
def main_thread_gc(translated):
    """As in the app: collect garbage (and Qt objects in it) on the UI thread only, with
    the app's translations."""
    from cssm_desktop.gui.gcguard import MainThreadGC

    guard = MainThreadGC()
    yield
    workers.wait_all()
    guard.stop()


@pytest.fixture(autouse=True)
def qt_settings(tmp_path: Path) -> None:
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      str(tmp_path / "qsettings"))


@pytest.fixture
def ctx(tmp_path: Path) -> AppContext:
    cfg_file = write_config(tmp_path / "config.toml",
                            Config(stores=folder_stores(tmp_path / "stores"), threshold=3))
    Engine(load_config(cfg_file), tmp_path / "catalog.sqlite").init(PASSWORD, kdf=FAST_KDF)
    return AppContext(config_file=cfg_file, catalog_file=tmp_path / "catalog.sqlite")


@pytest.fixture
def window(qtbot, ctx: AppContext):
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.vault_ready, timeout=20_000):
        win.show()
    yield win
    win.queue.cancel_all()
    workers.wait_all()


def _drop(widget, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)


def _files(tmp_path: Path, sizes: dict[str, int]) -> list[Path]:
    folder = tmp_path / "input"
    folder.mkdir(exist_ok=True)
    out = []
    for name, size in sizes.items():
        (folder / name).write_bytes(os.urandom(size))
        out.append(folder / name)
    return out


def test_dropped_files_run_to_done_with_progress(qtbot, window: MainWindow, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.Worker, "EMIT_EVERY", 0.0)
    window.engine.unlock(PASSWORD)
    paths = _files(tmp_path, {"a.txt": 10, "b.bin": 300_000, "big.bin": 24 * 1024 * 1024})
    partial: list[int] = []

    def seen(*_args: object) -> None:
        partial.extend(j.done for j in window.queue.jobs if 0 < j.done < j.size)

    window.queue_model.dataChanged.connect(seen)
    with qtbot.waitSignal(window.queue.all_finished, timeout=60_000):
        _drop(window.drop, paths)
    assert [j.state for j in window.queue.jobs] == [State.DONE] * 3
    assert window.statusBar().currentMessage() == "3 files stored"
    assert partial, "no progress was reported before the end"
    qtbot.waitUntil(lambda: window.files.source.rowCount() == 3, timeout=10_000)
    assert sorted(e.name for e in window.files.source.entries) == ["a.txt", "b.bin", "big.bin"]


def test_counts_read_as_english_one_file_two_files() -> None:
    """Qt shows "%n file(s)" as written unless a translation gives the forms; the app
    installs English ones (build_scripts/english_plurals.py), kept current here."""
    import subprocess
    import sys

    from PySide6.QtCore import QCoreApplication

    def tr(context: str, text: str, n: int) -> str:
        return QCoreApplication.translate(context, text, "", n)

    assert tr("MainWindow", "%n file(s) stored", 1) == "1 file stored"
    assert tr("MainWindow", "%n file(s) stored", 2) == "2 files stored"
    assert tr("RestoreDialog", "%n file(s) already exist in %1. Replace them with the stored "
              "copies? (No keeps them as they are.)", 1) == \
        "1 file already exists in %1. Replace it with the stored copy? (No keeps it as it is.)"
    script = Path(__file__).parent.parent / "build_scripts" / "english_plurals.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_locked_vault_asks_for_the_password_on_first_upload(qtbot, window: MainWindow,
                                                           tmp_path: Path) -> None:
    (path,) = _files(tmp_path, {"f.txt": 1000})

    answered: list[UnlockDialog] = []

    def answer() -> None:  # the dialog runs its own event loop: answer from a timer
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, UnlockDialog) and not answered:
            answered.append(dialog)
            qtbot.keyClicks(dialog.password, PASSWORD)
            qtbot.keyClick(dialog.password, Qt.Key.Key_Return)

    poll = QTimer()
    poll.timeout.connect(answer)
    poll.start(20)
    with qtbot.waitSignal(window.queue.all_finished, timeout=30_000):
        window.add_paths([path])
    poll.stop()
    assert answered
    assert window.queue.jobs[0].state is State.DONE
    assert window.engine.unlocked


def test_unlock_dialog_says_wrong_password(qtbot, ctx: AppContext) -> None:
    ctx.engine.vault()
    dialog = UnlockDialog(ctx.engine)
    qtbot.addWidget(dialog)
    qtbot.keyClicks(dialog.password, "not it")
    dialog.show()
    qtbot.keyClick(dialog.password, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.error.isVisible() and "wrong password" in dialog.error.text(),
                    timeout=10_000)
    assert not ctx.engine.unlocked and dialog.password.isEnabled()


def test_cancel_mid_upload_stores_nothing(qtbot, window: MainWindow, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.Worker, "EMIT_EVERY", 0.0)
    window.engine.unlock(PASSWORD)
    (path,) = _files(tmp_path, {"huge.bin": 96 * 1024 * 1024})

    def cancel_when_moving(*_args: object) -> None:
        job = window.queue.jobs[0]
        if job.state is State.RUNNING and job.done > 0:
            window.queue.cancel(0)

    window.queue_model.dataChanged.connect(cancel_when_moving)
    with qtbot.waitSignal(window.queue.all_finished, timeout=60_000):
        window.add_paths([path])
    assert window.queue.jobs[0].state is State.CANCELLED
    assert window.engine.entries() == []
    leftovers = [p for p in (tmp_path / "stores").rglob("*") if p.is_file() and p.name != "vault"]
    assert leftovers == []


def _store_one(qtbot, window: MainWindow, tmp_path: Path) -> tuple[bytes, object]:
    window.engine.unlock(PASSWORD)
    (path,) = _files(tmp_path, {"report ✓.pdf": 700_001})
    with qtbot.waitSignal(window.queue.all_finished, timeout=30_000):
        window.add_paths([path])
    qtbot.waitUntil(lambda: window.files.source.rowCount() == 1, timeout=10_000)
    window.engine.lock()
    return path.read_bytes(), window.files.source.entries[0]


def test_restore_with_the_right_password(qtbot, window: MainWindow, tmp_path: Path) -> None:
    data, entry = _store_one(qtbot, window, tmp_path)
    dest = tmp_path / "restore"
    dest.mkdir()
    dialog = window.open_restore([entry], destination=dest)
    assert dialog.password.isVisible()
    qtbot.keyClicks(dialog.password, PASSWORD)
    with qtbot.waitSignal(dialog.restored, timeout=30_000):
        qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
    assert (dest / "report ✓.pdf").read_bytes() == data
    assert "1 restored" in dialog.status.text()


def test_restore_with_a_wrong_password_writes_nothing(qtbot, window: MainWindow,
                                                      tmp_path: Path) -> None:
    _, entry = _store_one(qtbot, window, tmp_path)
    dest = tmp_path / "restore"
    dest.mkdir()
    dialog = window.open_restore([entry], destination=dest)
    qtbot.keyClicks(dialog.password, "Correct Horse")
    qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "wrong password" in dialog.status.text(), timeout=10_000)
    assert list(dest.iterdir()) == []
    assert dialog.ok.isEnabled()


def test_restore_leaves_a_folder_in_the_way_alone_and_says_so(
        qtbot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The question counts only files it could replace; a folder where a file goes is
    never replaced, never asked about, and named in the report."""
    window.engine.unlock(PASSWORD)
    paths = _files(tmp_path, {"a.txt": 10, "b.txt": 20, "c.txt": 30})
    with qtbot.waitSignal(window.queue.all_finished, timeout=30_000):
        window.add_paths(paths)
    qtbot.waitUntil(lambda: window.files.source.rowCount() == 3, timeout=10_000)
    dest = tmp_path / "restore"
    (dest / "a.txt").mkdir(parents=True)        # a folder in the way
    (dest / "b.txt").write_bytes(b"mine")       # a file in the way
    asked: list[str] = []

    def yes(_parent: object, _title: str, text: str, *_a: object) -> QMessageBox.StandardButton:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", yes)
    dialog = window.open_restore(window.files.source.entries, destination=dest)
    with qtbot.waitSignal(dialog.restored, timeout=30_000):
        qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
    assert len(asked) == 1 and "b.txt already exists" in asked[0]
    assert dialog.status.text() == "✔ 2 restored, 1 left alone (a folder is in the way)."
    assert "a.txt is a folder; a restored file never replaces a folder" in \
        dialog.report.toPlainText()
    assert (dest / "a.txt").is_dir() and list((dest / "a.txt").iterdir()) == []
    assert (dest / "b.txt").read_bytes() == paths[1].read_bytes()
    assert (dest / "c.txt").read_bytes() == paths[2].read_bytes()


def test_restore_asks_before_replacing(qtbot, window: MainWindow, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data, entry = _store_one(qtbot, window, tmp_path)
    window.engine.unlock(PASSWORD)
    dest = tmp_path / "restore"
    dest.mkdir()
    (dest / "report ✓.pdf").write_bytes(b"mine")
    asked: list[str] = []

    def no(_parent: object, _title: str, text: str, *_a: object) -> QMessageBox.StandardButton:
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", no)
    dialog = window.open_restore([entry], destination=dest)
    qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
    assert asked and "already exists" in asked[0]
    assert "every file was skipped" in dialog.status.text()
    assert (dest / "report ✓.pdf").read_bytes() == b"mine"
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *_a: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(dialog.restored, timeout=30_000):
        qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
    assert (dest / "report ✓.pdf").read_bytes() == data


def test_settings_round_trip_keeps_secrets_out_of_the_file(
        qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_keyring) -> None:
    from PySide6.QtWidgets import QFileDialog

    folder = tmp_path / "usb"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_a, **_k: str(folder))
    dialog = SettingsDialog(None)
    qtbot.addWidget(dialog)
    qtbot.mouseClick(dialog.add_s3_button, Qt.MouseButton.LeftButton)
    fields = dialog.s3_fields
    fields["name"].clear()
    qtbot.keyClicks(fields["name"], "wasabi")
    qtbot.keyClicks(fields["bucket"], "my-cssm-bucket")
    qtbot.keyClicks(fields["endpoint_url"], "https://s3.example.com")
    qtbot.keyClicks(fields["access_key_id"], "AKIAEXAMPLE")
    qtbot.keyClicks(dialog.secret, "top-secret-value")
    dialog._add("folder")
    dialog.buttons.accepted.emit()
    assert dialog.saved_config is not None and dialog.result() == SettingsDialog.DialogCode.Accepted
    assert dialog.saved_config.threshold == 2  # capped at n
    ctx = AppContext(config_file=tmp_path / "c.toml", catalog_file=tmp_path / "c.sqlite")
    ctx.save(dialog.saved_config)
    text = (tmp_path / "c.toml").read_text()
    assert "my-cssm-bucket" in text and str(folder) in text
    assert "top-secret-value" not in text
    assert memory_keyring.secrets[("cssm-desktop", "wasabi")] == "top-secret-value"

    # Edit: rename the bucket store, remove the folder, add another folder.
    again = SettingsDialog(ctx.config)
    qtbot.addWidget(again)
    again.list.setCurrentRow(0)
    assert "keyring" in again.secret.placeholderText()
    again.s3_fields["name"].clear()
    qtbot.keyClicks(again.s3_fields["name"], "wasabi-eu")
    again.list.setCurrentRow(1)
    again._remove()
    again._add("folder")
    again.save()
    assert again.saved_config is not None
    ctx.save(again.saved_config)
    stores = load_config(tmp_path / "c.toml").stores
    assert [(s.name, s.type) for s in stores] == [("wasabi-eu", "s3"), ("folder1", "folder")]
    assert memory_keyring.secrets[("cssm-desktop", "wasabi-eu")] == "top-secret-value"


def test_settings_refuses_invalid_input(qtbot) -> None:
    dialog = SettingsDialog(None)
    qtbot.addWidget(dialog)
    dialog._add("s3")
    qtbot.keyClicks(dialog.s3_fields["bucket"], "Bad_Bucket")
    dialog.save()
    assert dialog.saved_config is None and "at least 2 stores" in dialog.error.text()
    dialog._add("s3")
    qtbot.keyClicks(dialog.s3_fields["bucket"], "fine-bucket")
    dialog.save()
    assert dialog.saved_config is None and "not a valid bucket name" in dialog.error.text()


def _test_connection(qtbot, server: S3Server, bucket: str, secret: str | None = None,
                     endpoint: str | None = None) -> str:
    dialog = SettingsDialog(None)
    qtbot.addWidget(dialog)
    dialog._add("s3")
    qtbot.keyClicks(dialog.s3_fields["bucket"], bucket)
    qtbot.keyClicks(dialog.s3_fields["endpoint_url"], endpoint or server.endpoint)
    qtbot.keyClicks(dialog.s3_fields["region"], "us-east-1")
    qtbot.keyClicks(dialog.s3_fields["access_key_id"], server.access_key)
    qtbot.keyClicks(dialog.secret, secret or server.secret_key)
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.test_result.text()[:1] in "✔✖" and
                    dialog.test_result.text() != "", timeout=30_000)
    return dialog.test_result.text()


def test_test_connection_messages(qtbot, moto_server: S3Server, rclone_server: S3Server) -> None:
    (bucket,) = moto_server.make_buckets(f"gui-{os.getpid()}-{time.time_ns() % 10**6}", 1)
    assert _test_connection(qtbot, moto_server, bucket).startswith("✔ Works")
    assert "no such bucket 'missing-bucket-zz'" in _test_connection(qtbot, moto_server,
                                                                    "missing-bucket-zz")
    closed = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach endpoint" in _test_connection(qtbot, moto_server, bucket,
                                                       endpoint=closed)
    (rbucket,) = rclone_server.make_buckets(f"gui-{time.time_ns() % 10**6}", 1)
    assert "bad credentials" in _test_connection(qtbot, rclone_server, rbucket, secret="nope")


def test_first_run_shows_welcome_then_a_local_vault(qtbot, tmp_path: Path) -> None:
    ctx = AppContext(config_file=tmp_path / "none.toml", catalog_file=tmp_path / "c.sqlite")
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    win.show()
    assert win.pages.currentWidget() is win.welcome
    with qtbot.waitSignals([win.vault_ready, win.stores_checked], timeout=30_000):
        win.create_local_vault(PASSWORD, root=tmp_path / "local")
    assert win.pages.currentIndex() == 1 and win.engine.unlocked
    assert len(load_config(tmp_path / "none.toml").stores) == 5
    assert "5 of 5 stores reachable" in win.stores_label.text()
    assert [win.stores_view.item(r, 3).text() for r in range(5)] == ["✔ reachable"] * 5
    assert win.banner.isHidden()
    workers.wait_all()


def test_the_window_stays_responsive_during_a_256_mib_upload(qtbot, window: MainWindow,
                                                            tmp_path: Path) -> None:
    window.engine.unlock(PASSWORD)
    (path,) = _files(tmp_path, {"large.bin": 256 * 1024 * 1024})
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    probe = QTimer()
    probe.setInterval(10)
    probe.timeout.connect(tick)
    probe.start()
    with qtbot.waitSignal(window.queue.all_finished, timeout=120_000):
        window.add_paths([path])
    probe.stop()
    assert window.queue.jobs[0].state is State.DONE
    assert len(gaps) > 20
    # A person notices a stall, not one late tick. On this shared 2-core machine the GIL
    # is handed between the UI and the pipeline threads every few ms, and the release
    # before this one already showed single ticks of 50-85 ms (measured, 3 runs); a
    # "max < 100 ms" bound flaked on one 101 ms tick. What it must catch is the UI
    # thread doing the work itself, which shows as seconds: ticks on time as a rule
    # (median), and no stall of a quarter second.
    ordered = sorted(gaps)
    median = ordered[len(ordered) // 2]
    assert median < 0.02, f"half the ticks were later than {median * 1000:.0f} ms"
    assert max(gaps) < 0.25, f"event loop blocked for {max(gaps) * 1000:.0f} ms"


def test_closing_with_running_uploads_asks_and_keeps_them_for_the_next_start(
        qtbot, window: MainWindow, tmp_path: Path) -> None:
    window.engine.unlock(PASSWORD)
    path = tmp_path / "slow.bin"
    with open(path, "wb") as fh:   # sparse: quick to make, seconds to store
        fh.truncate(1024 * 1024 * 1024)
    with qtbot.waitSignal(window.queue.added, timeout=10_000):
        window.add_paths([path])
    qtbot.waitUntil(lambda: window.queue.jobs[0].done > 0, timeout=20_000)
    window.close()
    box = window._quit_box
    assert box is not None and box.isVisible() and window.isVisible()
    assert box.text() == ("1 upload is not finished. Cancel it and quit? Nothing "
                          "half-stored is kept; add it again later.")
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    assert not window.isVisible()
    qtbot.waitUntil(lambda: window.queue.jobs[0].worker is None, timeout=30_000)
    workers.wait_all()
    assert window.queue.jobs[0].state is State.WAITING    # stopped, not given up
    stored = [p for p in (tmp_path / "stores").rglob("*")
              if p.is_file() and ("/data/" in p.as_posix() or "/meta/" in p.as_posix())]
    assert stored == []   # nothing of it is listed or committed in any store
    assert window.engine.entries() == []
    # Folder stores only: nothing can go on, so nothing is journaled (S3: test_gui_network)
    assert list((tmp_path / "uploads").rglob("*.json")) == []


def test_selftest_command_passes(tmp_path: Path) -> None:
    """`cssm-desktop --selftest`, as the packaged app runs it, in its own process."""
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "c"), XDG_DATA_HOME=str(tmp_path / "d"),
               XDG_STATE_HOME=str(tmp_path / "s"))
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "cssm_desktop",
                        "--selftest"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "selftest ok" in r.stdout
    assert not (tmp_path / "c" / "cssm-desktop").exists()  # the user's config was not touched


_EXIT_PROBE = """
import sys, shiboken6
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from cssm_desktop.gui import app, main_window

made = []
init = main_window.MainWindow.__init__
def recording_init(self, *args, **kwargs):
    init(self, *args, **kwargs)
    made.append(self)  # a strong reference, like a reference cycle would hold
    QTimer.singleShot(0, QApplication.quit)  # a user closing the window at once
main_window.MainWindow.__init__ = recording_init

args = sys.argv[1:]
if "--fail-upload" in args:  # the self-test failing half-way, an upload still running
    args.remove("--fail-upload")
    wait_for = app.wait_for
    def failing_wait(signal, timeout_s, what):
        if what == "the upload":
            raise TimeoutError("timed out waiting for the upload (injected)")
        return wait_for(signal, timeout_s, what)
    app.wait_for = failing_wait

code = app.main(args)
alive = [w for w in made if shiboken6.isValid(w)]
print("windows", len(made), "alive", len(alive), "qapp", QApplication.instance() is not None)
sys.exit(code)
"""


@pytest.mark.parametrize("args", [["--selftest"], ["--selftest", "--fail-upload"], []],
                         ids=["selftest", "selftest-fails", "window"])
def test_windows_are_gone_before_the_application(tmp_path: Path, args: list[str]) -> None:
    """A window that outlived main() (held by a cycle) was destroyed by the interpreter's
    last collection, after the QApplication: a segfault at quit, now and then (seen in CI).
    Every window must be destroyed, then the application, before main() returns."""
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")  # HOME, XDG: isolated_home's
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", _EXIT_PROBE, *args],
                       env=env, capture_output=True, text=True, timeout=300)
    failing = "--fail-upload" in args
    assert r.returncode == (1 if failing else 0), r.stderr
    assert "windows 1 alive 0 qapp False" in r.stdout
    if failing:
        assert "selftest FAILED: timed out waiting for the upload (injected)" in r.stderr
    # Where a native crash would leave its stacks: stderr for the self-test, else a file.
    assert bool(list(tmp_path.rglob("crash.log"))) == (args == [])


def test_wait_all_ends_threads_without_an_event_loop(qapp) -> None:
    """At quit the UI thread blocks in wait_all(); a worker's thread must still stop (a
    queued quit() would wait for that very event loop, and Qt aborts at exit)."""
    thread = workers.start(workers.Call(lambda: 42))
    workers.wait_all(3000)
    assert not thread.isRunning()


def test_lost_laptop_rebuilds_the_list_and_verify_shows_health(
        qtbot, window: MainWindow, ctx: AppContext, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _store_one(qtbot, window, tmp_path)
    # A new computer: same settings, empty catalog.
    fresh = AppContext(config_file=ctx.config_file, catalog_file=tmp_path / "new.sqlite")
    win = MainWindow(fresh)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.vault_ready, timeout=20_000):
        win.show()
    assert win.files.source.rowCount() == 0
    win.engine.unlock(PASSWORD)
    win.rebuild_catalog()
    qtbot.waitUntil(lambda: win.files.source.rowCount() == 1, timeout=30_000)
    assert [e.name for e in win.files.source.entries] == ["report ✓.pdf"]
    # Damage one part; Vault > Verify marks the file at risk in the list and says why.
    vid = win.engine.vault().id_hex
    part = next((tmp_path / "stores" / "store5" / vid / "data").iterdir())
    part.write_bytes(b"rotten")
    dialog = win.verify_all()
    assert dialog is not None
    with qtbot.waitSignal(dialog.ended, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: win.files.source.entries[0].health == "at risk", timeout=30_000)
    assert "0 of 1 files safe" in dialog.summary.text()
    row = dialog.rows.topLevelItem(0)
    assert (row.text(0), row.text(1)) == ("report ✓.pdf", "⚠ at risk") and "store5" in row.text(2)
    dialog.close()
    dialog = win.repair_all()
    with qtbot.waitSignal(dialog.ended, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: win.files.source.entries[0].health == "safe", timeout=30_000)
    assert "all 1 files are safe" in dialog.summary.text() and "1 were repaired" in \
        dialog.summary.text()
    assert dialog.rows.topLevelItem(0).text(1) == "✔ repaired"
    assert "Repair done" in win.statusBar().currentMessage()
    dialog.close()
    # A store gone: the stores panel and the list say so at the next check, and repair
    # cannot make the file whole and says so instead of "finished".
    import shutil

    shutil.rmtree(tmp_path / "stores" / "store4")
    with qtbot.waitSignal(win.stores_checked, timeout=30_000):
        win.refresh()
    assert "4 of 5 stores reachable" in win.stores_label.text()
    assert win.stores_view.item(3, 3).text() == "✖ unreachable"
    assert win.banner.isVisible() and "1 of 5 stores not usable" in win.banner.text.text()
    qtbot.waitUntil(lambda: win.files.source.entries[0].health == "at risk", timeout=30_000)
    dialog = win.repair_all()
    with qtbot.waitSignal(dialog.ended, timeout=30_000):
        pass
    assert "1 at risk" in dialog.summary.text()
    assert "store4" in dialog.rows.topLevelItem(0).text(2)
    dialog.close()
    workers.wait_all()


def test_replace_in_settings_lets_repair_rebuild_a_lost_store(
        qtbot, window: MainWindow, ctx: AppContext, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from PySide6.QtWidgets import QFileDialog

    _store_one(qtbot, window, tmp_path)
    shutil.rmtree(tmp_path / "stores" / "store3")          # the USB disk died
    new_disk = tmp_path / "new-usb"
    new_disk.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_a, **_k: str(new_disk))
    asked: list[str] = []

    def yes(_parent, _title, text, *_a):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", yes)
    dialog = SettingsDialog(ctx.config)
    qtbot.addWidget(dialog)
    dialog._add("folder")                  # a store not (yet) part of the vault
    assert not dialog.replace_button.isEnabled()
    dialog._remove()
    dialog.list.setCurrentRow(2)
    assert dialog.replace_button.isEnabled()
    qtbot.mouseClick(dialog.replace_button, Qt.MouseButton.LeftButton)
    assert "store 3 of the vault" in asked[0]
    assert dialog.folder_path.text() == str(new_disk) and dialog.replaced == ["store3"]
    dialog.save()
    saved = dialog.saved_config
    assert saved is not None and saved.vault == ctx.config.vault
    assert (saved.stores[2].name, saved.stores[2].index, saved.stores[2].path) == (
        "store3", 2, str(new_disk))
    ctx.save(saved)
    engine = Engine(load_config(ctx.config_file), tmp_path / "catalog.sqlite")
    engine.unlock(PASSWORD)
    healed, ((_, result),) = engine.repair()
    assert healed == ["store3"] and not isinstance(result, CssmError) and result.after.healthy
    vid = engine.vault().id_hex
    assert (new_disk / vid / "vault").exists() and any((new_disk / vid / "data").iterdir())
    workers.wait_all()


def test_a_shut_queue_starts_nothing_that_arrives_late(qtbot, window: MainWindow,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """At quit (or a failed self-test) a folder listing still running delivers its files
    after the queue was cancelled; they must not start uploads into a closing window."""
    # Should the test fail, the window's close must not wait on a "quit anyway?" prompt.
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *_a, **_k: QMessageBox.StandardButton.Yes)
    window.engine.unlock(PASSWORD)
    window.queue.paused = False
    window.queue.shut()
    window._update_lock()            # unlocking again must not reopen a shut queue
    (path,) = _files(tmp_path, {"late.bin": 1000})
    window._queue_files(([(path, "late.bin", 1000)], []))
    assert [j.state for j in window.queue.jobs] == [State.WAITING]
    assert all(j.worker is None for j in window.queue.jobs)
    window.queue.cancel_all()        # nothing pending: closing the window asks nothing


@pytest.mark.parametrize("action", ["verify_all", "repair_all", "rebuild_catalog"])
def test_cancel_reaches_every_long_vault_job(qtbot, window: MainWindow, action: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify, Repair and Rebuild run as jobs: their dialog shows file N of M, and its
    Cancel (and Esc) reaches the engine call; the dialog stays until the job has ended."""
    from PySide6.QtWidgets import QDialogButtonBox

    from cssm_desktop.core.progress import Step

    window.engine.unlock(PASSWORD)
    started: list[object] = []

    def job(listener, cancel, **_kw):
        started.append(cancel)
        listener(Step("work", 3, 10, "taxes.pdf"))
        if not cancel._event.wait(30):   # a long job, until told to stop
            raise AssertionError("the job was never cancelled")
        cancel.check()

    method = {"verify_all": "verify", "repair_all": "repair",
              "rebuild_catalog": "rebuild_catalog"}[action]
    monkeypatch.setattr(window.engine, method, job)
    dialog = getattr(window, action)()
    qtbot.waitUntil(lambda: bool(started), timeout=10_000)
    qtbot.waitUntil(lambda: (dialog.bar.maximum(), dialog.bar.value()) == (10, 3),
                    timeout=10_000)
    assert "file 4 of 10: taxes.pdf" in dialog.label.text()
    cancel_button = dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel)
    assert cancel_button is not None
    with qtbot.waitSignal(dialog.ended, timeout=5_000) as ended:
        qtbot.keyClick(dialog, Qt.Key.Key_Escape)    # Esc: stop the job, not just hide
        assert dialog.isVisible()
    assert ended.args == [None] and started[0].cancelled
    assert "Stopped" in dialog.summary.text()
    assert dialog.buttons.button(QDialogButtonBox.StandardButton.Close) is not None
    workers.wait_all()


def test_quitting_stops_every_job_within_one_bound(qapp) -> None:
    """At exit every running job is told to stop first, then all are waited for with one
    overall bound (it used to wait up to 30 s per thread, one after the other)."""
    import time as _time

    def job(listener, cancel):
        if not cancel._event.wait(60):
            raise AssertionError("never cancelled")
        cancel.check()

    threads = [workers.start(workers.Job(job)) for _ in range(3)]
    started = _time.monotonic()
    workers.cancel_all()
    workers.wait_all(10_000)
    assert all(not t.isRunning() for t in threads)
    assert _time.monotonic() - started < 5


def test_a_failed_restore_shows_no_full_bar_and_no_folder_to_open(
        qtbot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """B8: a restore that failed showed 100% and offered Open folder; and Open folder did
    nothing, silently, where no file manager opens."""

    from PySide6.QtGui import QDesktopServices
    from PySide6.QtWidgets import QDialogButtonBox

    _, entry = _store_one(qtbot, window, tmp_path)
    for name in ("store1", "store2", "store3"):   # 3 of 5 parts gone: not restorable
        part = (tmp_path / "stores" / name / window.engine.vault().id_hex / "data"
                / (entry.pack or entry.id))   # a small file: its pack
        part.unlink()
    dest = tmp_path / "restore"
    dest.mkdir()
    dialog = window.open_restore([entry], destination=dest)
    qtbot.keyClicks(dialog.password, PASSWORD)
    with qtbot.waitSignal(dialog.restored, timeout=30_000):
        qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
    assert "1 failed" in dialog.status.text() and "0 restored" in dialog.status.text()
    assert not dialog.bar.isVisible()
    labels = [b.text() for b in dialog.buttons.buttons()]
    assert "&Open folder" not in labels and dialog.buttons.button(
        QDialogButtonBox.StandardButton.Close) is not None
    assert not list(dest.iterdir())
    # Where no file manager opens, the folder is named instead of nothing happening.
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda _url: False)
    assert dialog.open_folder() is False
    assert str(dest) in dialog.report.toPlainText()


def test_the_quit_question_goes_when_the_uploads_finish_and_the_window_quits(
        qtbot, window: MainWindow, tmp_path: Path) -> None:
    """B6: the question "1 upload is not finished" stayed up after the upload finished."""
    window.engine.unlock(PASSWORD)
    window.queue.hold(True)   # the upload waits while the question is asked
    (path,) = _files(tmp_path, {"q.bin": 300_000})
    with qtbot.waitSignal(window.queue.added, timeout=10_000):
        window.add_paths([path])
    window.close()
    box = window._quit_box
    assert box is not None and box.isVisible() and window.isVisible()
    assert "1 upload is not finished" in box.text()
    with qtbot.waitSignal(window.queue.all_finished, timeout=30_000):
        window.queue.hold(False)
    assert window._quit_box is None and not box.isVisible()
    assert not window.isVisible()   # it quit, as asked, with nothing left to ask about
    assert [j.state for j in window.queue.jobs] == [State.DONE]


def test_the_log_window_says_where_the_log_file_is(qtbot, tmp_path: Path) -> None:
    from PySide6.QtWidgets import QLabel

    from cssm_desktop.gui.logview import LogDialog

    log_file = tmp_path / "logs" / "cssm.log"
    dialog = LogDialog(log_file)
    qtbot.addWidget(dialog)
    assert any(str(log_file) in label.text() for label in dialog.findChildren(QLabel))


def test_the_uploads_list_keeps_the_work_in_view(qtbot, tmp_path: Path) -> None:
    """B3: the list shows ~3 rows; new uploads went in below the fold and the one running
    was never seen. The newest is in view while nothing runs; the running one at the top."""
    from PySide6.QtWidgets import QLineEdit, QVBoxLayout, QWidget

    from cssm_desktop.gui.jobs import JobQueue
    from cssm_desktop.gui.queue_view import QueueView

    queue = JobQueue()
    window = QWidget()
    qtbot.addWidget(window)
    elsewhere = QLineEdit()   # the user is elsewhere (in the list, it would not move)
    view = QueueView(queue)
    view.setFixedHeight(130)   # about three rows, as in the default window
    layout = QVBoxLayout(window)
    layout.addWidget(elsewhere)
    layout.addWidget(view)
    window.resize(600, 200)
    window.show()
    qtbot.waitExposed(window)
    elsewhere.setFocus()
    qtbot.waitUntil(lambda: not view.hasFocus(), timeout=5_000)

    def shown(row: int) -> bool:
        rect = view.visualRect(view.table.index(row, 0))
        return view.viewport().rect().contains(rect.center())

    queue.add([(tmp_path / f"f{i}", f"f{i}", 10) for i in range(30)])
    qtbot.waitUntil(lambda: shown(29), timeout=5_000)
    assert not shown(0)
    queue.jobs[12].state = State.RUNNING
    queue.changed.emit(12)
    qtbot.waitUntil(lambda: shown(12), timeout=5_000)
    queue.add([(tmp_path / "late", "late", 10)])
    qtbot.wait(50)   # the deferred follow of the new row has run
    assert shown(12) and not shown(30)   # the running one stays in view when more arrive


def test_escape_in_settings_asks_before_throwing_edits_away(qtbot, ctx) -> None:
    """B10: Esc threw away unsaved store edits without asking."""
    dialog = SettingsDialog(ctx.config)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)            # nothing changed: closes, no question
    assert not dialog.isVisible() and dialog.discard_question is None
    dialog = SettingsDialog(ctx.config)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog._add("s3")                                      # an edit
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    box = dialog.discard_question
    assert box is not None and box.text() == "Discard your changes to the settings?"
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert dialog.isVisible()                              # back to editing
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    box = dialog.discard_question
    assert box is not None
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Discard), Qt.MouseButton.LeftButton)
    assert not dialog.isVisible() and dialog.saved_config is None


def test_replace_refuses_another_stores_folder_at_once(
        qtbot, ctx: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """B10: Replace… took another store's folder (or one inside it) and refused only at
    Save; a folder that is not empty is refused too. An empty one is taken."""
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QMessageBox, "question",
                        lambda *_a, **_k: QMessageBox.StandardButton.Yes)
    dialog = SettingsDialog(ctx.config)
    qtbot.addWidget(dialog)
    dialog.list.setCurrentRow(2)
    before = dialog.stores[2].path
    other = tmp_path / "stores" / "store1"
    inside = other / "sub"
    inside.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    for chosen, says in ((other, "folder of store “store1”"),
                         (inside, "folder of store “store1”"),
                         (full, "is not empty")):
        monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                            lambda *_a, c=chosen, **_k: str(c))
        qtbot.mouseClick(dialog.replace_button, Qt.MouseButton.LeftButton)
        assert says in dialog.test_result.text() and dialog.test_result.text()[0] == "✖"
        assert dialog.stores[2].path == before and dialog.replaced == []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_a, **_k: str(empty))
    qtbot.mouseClick(dialog.replace_button, Qt.MouseButton.LeftButton)
    assert dialog.stores[2].path == str(empty) and dialog.replaced == ["store3"]


def test_saving_settings_keeps_the_vault_unlocked(qtbot, window: MainWindow,
                                                  ctx: AppContext) -> None:
    """B10: saving Settings locked the vault, and the password was asked again at once."""
    window.engine.unlock(PASSWORD)
    window._update_lock()
    cfg = ctx.config
    cfg.stores[0].name = "first disk"     # not only tuning: the engine is rebuilt
    with qtbot.waitSignal(window.vault_ready, timeout=20_000):
        ctx.save(cfg)
        window.show_current_page()
    assert window.engine.config.stores[0].name == "first disk"
    assert window.engine.unlocked and window.lock_label.text() == "Vault unlocked"
    assert ctx.handover is None     # taken once
    window.engine.lock()            # locking forgets the password key as well
    assert window.engine.held_key() is None and window.engine.vault().pk is None
