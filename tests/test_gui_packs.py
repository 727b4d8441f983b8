"""Many small files in the window (issue: many small files): they go up as packs, show as
a folder tree, and a folder restores as a whole, on real widgets and a real vault."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt

from cssm_desktop.gui.jobs import State
from cssm_desktop.gui.main_window import MainWindow
from cssm_desktop.gui.restore_dialog import RestoreDialog

from .conftest import PASSWORD
from .test_gui import ctx, main_thread_gc, qt_settings, window  # noqa: F401
from .test_gui_status import _stored, _upload
from .test_packs import make_tree, read_tree


def _find(win: MainWindow, *names: str):  # type: ignore[no-untyped-def]
    """The tree's index of a folder path, one name per level."""
    model = win.tree.source
    index = None
    parent = QModelIndex()
    for name in names:
        index = next(model.index(r, 0, parent) for r in range(model.rowCount(parent))
                     if model.node(model.index(r, 0, parent)).name == name)
        parent = index
    return index


def _restore(qtbot, win: MainWindow, index: QModelIndex, out: Path) -> RestoreDialog:
    """Select a folder of the tree, Restore…, into `out`; the dialog once it is done."""
    win.tree.selectionModel().select(
        index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        | QItemSelectionModel.SelectionFlag.Rows)
    dialog = win.restore_selected()
    assert dialog is not None
    dialog.dest.setText(str(out))
    with qtbot.waitSignal(dialog.restored, timeout=60_000):
        dialog.start()
    return dialog


def test_a_dropped_folder_goes_up_in_packs_and_restores_as_a_folder(
        qtbot, window: MainWindow, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    window.engine.unlock(PASSWORD)
    tree = make_tree(tmp_path / "Docs", 300, folders=3)
    big = tmp_path / "Docs" / "big.bin"
    big.write_bytes(b"\x07" * (2 << 20))
    tree["Docs/big.bin"] = big.read_bytes()
    _upload(qtbot, window, [tmp_path / "Docs"])
    assert [j.state for j in window.queue.jobs] == [State.DONE] * 301
    _stored(qtbot, window, 301)
    entries = window.engine.entries()
    assert len({e.pack for e in entries if e.pack}) == 1      # 300 small files: one pack
    assert [e.name for e in entries if not e.pack] == ["Docs/big.bin"]
    # The tree: one top folder, opened; its folders first, with counts and sizes.
    assert window.files_stack.currentWidget() is window.tree
    top = _find(window, "Docs")
    assert window.tree.isExpanded(top)
    assert "(301 files)" in window.tree.source.data(top)
    sub = _find(window, "Docs", "d01")
    assert window.tree.source.data(sub).startswith("d01/")
    # Select a folder, Restore…: every file under it, one progress, "n restored".
    out = tmp_path / "out"
    dialog = _restore(qtbot, window, sub, out)
    assert len(dialog.entries) == 100 and "100 restored" in dialog.status.text()
    assert read_tree(out) == {k: v for k, v in tree.items() if k.startswith("Docs/d01/")}
    dialog.close()
    # Typing a filter shows the flat list, clearing it brings the tree back.
    window.filter.setText("f0001")
    assert window.files_stack.currentWidget() is window.files
    window.filter.setText("")
    assert window.files_stack.currentWidget() is window.tree
    # Enter on a folder opens it; it does not start a restore of everything in it.
    window.tree.setFocus()
    window.tree.setCurrentIndex(_find(window, "Docs", "d02"))
    qtbot.keyClick(window.tree, Qt.Key.Key_Return)
    assert not any(d.isVisible() for d in window.findChildren(RestoreDialog))


def test_cancelling_one_small_file_does_not_cancel_its_neighbours(
        qtbot, window: MainWindow, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    window.engine.unlock(PASSWORD)
    make_tree(tmp_path / "C", 20, folders=1)
    real = window.engine.put_small
    held = threading.Event()
    calls: list[int] = []

    def put_small(sources, listener, cancel, **kw):  # type: ignore[no-untyped-def]
        calls.append(len(sources))
        if len(calls) == 1:                   # the first pack waits until one is cancelled
            held.set()
            assert cancel._event.wait(30), "never cancelled"
        return real(sources, listener, cancel, **kw)

    monkeypatch.setattr(window.engine, "put_small", put_small)
    with qtbot.waitSignal(window.queue.all_finished, timeout=60_000):
        window.add_paths([tmp_path / "C"])
        qtbot.waitUntil(held.is_set, timeout=20_000)
        window.queue.cancel(3)
    states = [j.state for j in window.queue.jobs]
    assert states[3] is State.CANCELLED
    assert states[:3] + states[4:] == [State.DONE] * 19
    assert calls == [20, 19]                   # one pack, then the 19 again as one
    _stored(qtbot, window, 19)


def test_a_folder_of_thousands_finishes_in_linear_work(
        qtbot, window: MainWindow, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by hand under Xvfb: 400 files froze the window when their pack finished
    (each file's end looked over the whole queue again: O(n^2) and worse). The work per
    finished pack is now linear; counted here, not timed."""
    from cssm_desktop.gui.jobs import JobQueue

    window.engine.unlock(PASSWORD)
    make_tree(tmp_path / "Many", 3000, folders=30, size=(1, 40))
    scans = {"active": 0}
    real_active = JobQueue.active

    def counted(self):  # type: ignore[no-untyped-def]
        scans["active"] += 1
        return real_active(self)

    monkeypatch.setattr(JobQueue, "active", counted)
    # The list's own reads: its header sized columns by asking up to 1,000 rows at each
    # row's change, and it looked for the running row over the whole queue each time
    # (13 million reads for 600 files; this test took 3-5 minutes, the window froze).
    from cssm_desktop.gui.queue_model import QueueModel
    real_data = QueueModel.data

    def data_counted(self, *args):  # type: ignore[no-untyped-def]
        scans["data"] = scans.get("data", 0) + 1
        return real_data(self, *args)

    monkeypatch.setattr(QueueModel, "data", data_counted)
    rows: list[int] = []
    window.queue.changed.connect(rows.append)
    _upload(qtbot, window, [tmp_path / "Many"])
    assert [j.state for j in window.queue.jobs] == [State.DONE] * 3000
    assert scans["active"] < 100          # was ~3,000 per finished file
    assert scans.get("data", 0) < 100 * 3000
    assert len(rows) <= 2 * 3000 + 10     # started and ended: two signals per file
    _stored(qtbot, window, 3000)


def test_a_new_file_list_keeps_the_folders_open_and_selected(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: F811
    """Found by hand: after a restore the list is read again, and the selection was gone
    ("Select the files to restore" on a second Ctrl+R)."""
    window.engine.unlock(PASSWORD)
    make_tree(tmp_path / "K", 30, folders=3)
    _upload(qtbot, window, [tmp_path / "K"])
    _stored(qtbot, window, 30)
    sub = _find(window, "K", "d02")
    window.tree.expand(sub)
    window.tree.selectionModel().select(
        sub, QItemSelectionModel.SelectionFlag.ClearAndSelect
        | QItemSelectionModel.SelectionFlag.Rows)
    window.tree.set_entries(window.engine.entries())
    again = _find(window, "K", "d02")
    assert window.tree.isExpanded(again)
    assert [e.name for e in window.tree.selected_entries()] == sorted(
        f"K/d02/f{i:05d}.txt" for i in range(2, 30, 3))


def test_deleting_a_folder_then_clean_up_gives_the_space_back(
        qtbot, window: MainWindow, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    window.engine.unlock(PASSWORD)
    make_tree(tmp_path / "D", 60, folders=2, size=(4000, 4000))
    _upload(qtbot, window, [tmp_path / "D"])
    _stored(qtbot, window, 60)
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **_k: asked.append(a[2]) or
                        QMessageBox.StandardButton.Yes)
    window.tree.setFocus()
    window.tree.selectionModel().select(
        _find(window, "D", "d00"), QItemSelectionModel.SelectionFlag.ClearAndSelect
        | QItemSelectionModel.SelectionFlag.Rows)
    window.delete_selected()
    assert asked and asked[0].startswith("Delete 30 files (117.2 KiB)")
    _stored(qtbot, window, 30)
    dialog = window.clean_up()
    assert dialog is not None
    with qtbot.waitSignal(dialog.ended, timeout=30_000):
        pass
    assert "given back" in dialog.summary.text()
    row = dialog.rows.topLevelItem(0)
    assert row.text(1).strip() == "repacked" and "30 removed files" in row.text(2)
    dialog.close()
    assert {e.pack for e in window.engine.entries()} != {""}
    assert len(window.engine.entries()) == 30


def test_the_windows_summaries_count_files_in_packs() -> None:
    from cssm_desktop.catalog import Entry
    from cssm_desktop.errors import NotEnoughStores, StoreError
    from cssm_desktop.gui.controller import repair_rows

    pack = Entry("p" * 32, "a.txt and 39 more small files", 4000, 0, 0, "", 5, 3,
                 pack="p" * 32, files=40)
    alone = Entry("f" * 32, "big.bin", 10, 0, 0, "", 5, 3)
    summary, rows = repair_rows([(pack, NotEnoughStores(2, 3, {"s1": "gone"})),
                                 (alone, StoreError("s2", "down"))])
    assert summary == ("0 of 41 files safe, 1 at risk (restorable; Repair, or bring the "
                       "stores back), 40 lost (fewer than the needed stores hold good parts).")
    assert [r.files for r in rows] == [40, 1]


def test_restoring_a_folder_takes_the_newest_copy_of_each_name(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: F811
    """Two copies of one name would land on one path: the folder restore takes the newest
    (as `cssm get FOLDER`), and says nothing failed."""
    window.engine.unlock(PASSWORD)
    tree = make_tree(tmp_path / "Docs", 12, folders=2, size=(1, 300))
    _upload(qtbot, window, [tmp_path / "Docs"])
    changed = tmp_path / "Docs" / "d01" / "f00001.txt"
    changed.write_bytes(b"the second version")
    _upload(qtbot, window, [tmp_path / "Docs"])     # only the changed file goes up again
    _stored(qtbot, window, 12)   # one row a name: the newest of its two versions
    qtbot.waitUntil(lambda: len(window._all_entries) == 13, timeout=20_000)
    out = tmp_path / "out"
    dialog = _restore(qtbot, window, _find(window, "Docs"), out)
    assert len(dialog.entries) == 12 and dialog.status.text() == "✔ 12 restored."
    tree["Docs/d01/f00001.txt"] = b"the second version"
    assert read_tree(out) == tree
    dialog.close()
