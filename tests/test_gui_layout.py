"""The window's places, the strip of running work, drops anywhere, empty lists that say
what to do, the focus ring, help, and a second drop of a stored file (B7)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QTextBrowser

from cssm_desktop.gui import focus_ring, workers
from cssm_desktop.gui.help import HelpDialog
from cssm_desktop.gui.jobs import State
from cssm_desktop.gui.main_window import MainWindow

from .conftest import PASSWORD
from .test_gui import _drop, _files, ctx, main_thread_gc, qt_settings, window  # noqa: F401


def _action(win: MainWindow, text: str) -> QAction:
    return next(a for a in win.findChildren(QAction) if a.text() == text)


def test_places_switch_by_keyboard_and_a_drop_anywhere_shows_the_uploads(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: F811
    places = [window.places.name(r) for r in range(window.places.count())]
    assert places == ["files", "backups", "activity", "stores"] and window.place() == "files"
    for shortcut, place in (("Alt+4", "stores"), ("Alt+3", "activity"), ("Alt+2", "backups"),
                            ("Alt+1", "files")):
        action = next(a for a in window.findChildren(QAction)
                      if a.shortcut().toString() == shortcut)
        action.trigger()
        assert window.place() == place
        assert window.sections.currentIndex() == window.places.row_of(place)
    window.show_place("stores")
    window.engine.unlock(PASSWORD)
    window._update_lock()
    paths = _files(tmp_path, {"a.txt": 10, "big.bin": 12 * 1024 * 1024})
    # Dropped on the page around the stores table, not on the drop zone.
    with qtbot.waitSignal(window.queue.added, timeout=10_000):
        _drop(window.sections.currentWidget().parentWidget(), paths)
    assert window.place() == "activity"   # the user watches them go
    assert window.places.item(2).text() == "Activity  (2)"
    window.activity.update_now()
    assert window.activity.isVisibleTo(window)
    assert window.activity.label.text().startswith("Uploading 2 files")
    assert not window.activity.button.isVisibleTo(window)   # already on Activity
    window.show_place("files")
    assert window.activity.button.isVisibleTo(window)
    qtbot.waitUntil(lambda: not window.queue.pending(), timeout=60_000)
    window.activity.update_now()
    assert not window.activity.isVisibleTo(window)
    assert window.places.item(2).text() == "Activity"
    assert [j.state for j in window.queue.jobs] == [State.DONE, State.DONE]


def test_a_drop_offering_only_move_is_refused_on_the_page_too(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: F811
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDragEnterEvent

    (path,) = _files(tmp_path, {"a.txt": 10})
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.MoveAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window.pages.currentWidget(), enter)
    assert not enter.isAccepted()


def test_empty_lists_say_what_to_do(qtbot, window: MainWindow) -> None:  # noqa: F811
    assert "Drop files or folders anywhere" in window.files.empty_hint()
    assert "Drop files or folders anywhere" in window.tree.empty_hint()
    assert window.queue_view.empty_hint().startswith("No uploads")
    window.filter.setText("report")
    assert window.files.empty_hint().startswith("No files stored yet")   # nothing at all
    window.files.source.set_entries([_entry("notes.txt")])
    assert window.files.empty_hint() == "No stored file's name contains “report”."
    window.filter.setText("a.b")   # as typed, not as a pattern
    assert window.files.empty_hint() == "No stored file's name contains “a.b”."


def _entry(name: str):  # type: ignore[no-untyped-def]
    from cssm_desktop.catalog import SAFE, Entry

    return Entry("00" * 16, name, 1, 0, 0, "", 5, 3, SAFE, "")


def test_the_focus_ring_follows_the_keyboard(qtbot, window: MainWindow) -> None:  # noqa: F811
    ring = focus_ring.install(QApplication.instance())
    try:
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
        window.filter.setFocus(Qt.FocusReason.TabFocusReason)
        qtbot.waitUntil(lambda: ring.ring.isVisible(), timeout=5_000)
        box = ring.ring.geometry()
        where = window.filter.mapTo(window, window.filter.rect().topLeft())
        assert box.contains(where) and box.width() > window.filter.width()
        window.show_place("stores")   # the field is hidden: no ring left around nothing
        qtbot.waitUntil(lambda: not ring.ring.isVisible() or (
            ring.ring.target is not window.filter and ring.ring.target.isVisible()),
            timeout=5_000)
        window.stores_view.setFocus(Qt.FocusReason.TabFocusReason)
        qtbot.waitUntil(lambda: ring.ring.isVisible(), timeout=5_000)
        assert ring.ring.target is window.stores_view
    finally:
        QApplication.instance().focusChanged.disconnect(ring._moved)


def test_help_is_in_the_app_and_about_points_to_it(qtbot, window: MainWindow) -> None:  # noqa: F811
    action = _action(window, "&How CSSM Desktop works")
    assert action.shortcut().toString() == "F1"
    dialog = window.show_help()
    assert isinstance(dialog, HelpDialog)
    text = dialog.findChild(QTextBrowser).toPlainText()
    assert "Create the vault here" in text and "cssm --help" in text
    dialog.close()


def test_a_stored_file_dropped_again_is_checked_not_sent(
        qtbot, window: MainWindow, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """B7: the second drop read the file for seconds at "uploading 0 B/s", then showed a
    full bar, though nothing was sent."""
    monkeypatch.setattr(workers.Worker, "EMIT_EVERY", 0.0)
    window.engine.unlock(PASSWORD)
    window._update_lock()
    (big,) = _files(tmp_path, {"big.bin": 24 * 1024 * 1024})
    with qtbot.waitSignal(window.queue.all_finished, timeout=60_000):
        window.add_paths([big])
    model = window.queue_view.model()
    columns = [model.headerData(c, Qt.Orientation.Horizontal) for c in
               range(model.columnCount())]
    seen: list[tuple[str, str, str]] = []

    def look(row: int) -> None:
        if row == 1 and window.queue.jobs[1].state is State.RUNNING:
            seen.append(tuple(model.index(1, columns.index(c)).data()  # type: ignore[arg-type]
                              for c in ("Progress", "Speed", "Status")))

    window.queue.changed.connect(look)
    with qtbot.waitSignal(window.queue.all_finished, timeout=60_000):
        window.add_paths([big])
    job = window.queue.jobs[1]
    assert job.state is State.SKIPPED
    checking = [s for s in seen if s[2] == "checking whether it is stored already"]
    assert checking and all(speed == "" for _, speed, _ in checking)
    assert checking[-1][0].startswith("read ")
    assert model.index(1, columns.index("Progress")).data() == "nothing sent"
    assert model.index(1, columns.index("Progress")).data(Qt.ItemDataRole.UserRole) == 0


def test_the_unlock_dialog_grows_for_its_error_line(qtbot, window: MainWindow) -> None:  # noqa: F811
    """B9: an error line appeared and the dialog kept its height: it and the text above
    it were cut in half."""
    from PySide6.QtWidgets import QLabel

    from cssm_desktop.gui.unlock_dialog import UnlockDialog

    window.engine.lock()
    dialog = UnlockDialog(window.engine, window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog._show_error("wrong password: the vault key could not be unlocked, whatever the "
                       "stores say")
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=5_000)
    QApplication.processEvents()
    for label in dialog.findChildren(QLabel):
        if label.isVisible() and label.wordWrap():
            assert label.height() >= label.heightForWidth(label.width()), label.text()
    dialog.reject()


def test_the_settings_note_on_secrets_says_what_is_true_here(
        qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QLabel

    from cssm_desktop.gui import settings_dialog

    texts = {}
    for usable in (True, False):
        monkeypatch.setattr(settings_dialog, "keyring_usable", lambda u=usable: u)
        dialog = settings_dialog.SettingsDialog(None)
        qtbot.addWidget(dialog)
        texts[usable] = {label.text() for label in dialog.findChildren(QLabel)}
    assert "Kept in the keyring, never in the settings file." in texts[True]
    assert "No keyring here: kept for this session only." in texts[False]
    assert not any("kept in the keyring" in t.lower() for t in texts[False])


def test_enter_on_the_row_the_keyboard_is_on_restores_it(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: F811
    """Tab into the list puts the cursor on a row without selecting it; Enter there did
    nothing (found walking the window under X)."""
    from PySide6.QtCore import QItemSelectionModel

    from cssm_desktop.gui.restore_dialog import RestoreDialog

    window.engine.unlock(PASSWORD)
    window._update_lock()
    (path,) = _files(tmp_path, {"report.bin": 5000})
    with qtbot.waitSignal(window.queue.all_finished, timeout=60_000):
        window.add_paths([path])
    qtbot.waitUntil(lambda: window.tree.model().rowCount() == 1, timeout=10_000)
    for view in (window.tree, window.files):
        window.as_folders.setChecked(view is window.tree)
        assert window.shown_files() is view
        view.clearSelection()
        view.selectionModel().setCurrentIndex(
            view.model().index(0, 0), QItemSelectionModel.SelectionFlag.NoUpdate)
        assert not view.selectionModel().selectedRows()
        assert [e.name for e in view.selected_entries()] == ["report.bin"]
        view.setFocus()
        qtbot.keyClick(view, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: any(d.isVisible() for d in window.findChildren(RestoreDialog)),
                        timeout=5_000)
        for dialog in window.findChildren(RestoreDialog):
            dialog.reject()
        qtbot.waitUntil(lambda: not any(d.isVisible()
                                        for d in window.findChildren(RestoreDialog)),
                        timeout=5_000)


def test_a_dropped_folder_keeps_its_links_and_empty_folders(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: F811
    """The window's uploads carry what a listing found: a link goes up as a link (in a
    pack, never opened: opening it would store what it points to), an empty folder too."""
    window.engine.unlock(PASSWORD)
    window._update_lock()
    tree = tmp_path / "drop"
    (tree / "empty").mkdir(parents=True)
    (tree / "real.txt").write_text("real")
    (tree / "link").symlink_to("/etc/hostname")
    with qtbot.waitSignal(window.queue.all_finished, timeout=60_000):
        _drop(window.drop, [tree])
    assert sorted((j.name, j.kind, j.state.name) for j in window.queue.jobs) == [
        ("drop/empty", "dir", "DONE"), ("drop/link", "link", "DONE"),
        ("drop/real.txt", "file", "DONE")]
    back = tmp_path / "back"
    entries = window.engine.entries()
    assert all(isinstance(got, Path) for _e, got in window.engine.get_many(entries, back))
    assert os.readlink(back / "drop" / "link") == "/etc/hostname"
    assert (back / "drop" / "empty").is_dir()


def test_typing_in_the_filter_writes_no_settings(qtbot, window: MainWindow,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each key typed in the filter saved a setting to disk on the UI thread: key presses
    waited up to 100-200 ms during a large upload (bench/ui_lag.py). Only the Folders
    toggle is remembered."""
    from PySide6.QtCore import QSettings

    writes: list[str] = []
    real = QSettings.setValue
    monkeypatch.setattr(QSettings, "setValue",
                        lambda self, key, value: (writes.append(key), real(self, key, value)))
    qtbot.keyClicks(window.filter, "holiday photos")
    window.filter.clear()
    assert writes == []
    window.as_folders.toggle()
    assert writes == ["files/folders"]
