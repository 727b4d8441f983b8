"""The window on real networks: pausing the queue keeps what was sent; uploads an earlier
run left are offered for Resume or Discard (real S3 behind the shaped proxy)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from cssm_desktop.gui import workers
from cssm_desktop.gui.context import AppContext
from cssm_desktop.gui.jobs import State
from cssm_desktop.gui.main_window import MainWindow
from cssm_desktop.gui.unfinished_dialog import UnfinishedDialog
from cssm_desktop.units import human

from .conftest import PASSWORD, write_config
from .test_gui import ctx, main_thread_gc, qt_settings, window  # noqa: F401  (fixtures)
from .test_network import SIZE, World, _interrupted, world  # noqa: F401  (fixture)


def test_pause_stops_the_upload_keeps_it_and_resume_goes_on(qtbot, window: MainWindow,  # noqa: F811
                                                            tmp_path: Path) -> None:
    window.engine.unlock(PASSWORD)
    window._update_lock()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(96 * 1024 * 1024))
    paused: list[bool] = []

    def pause_at_first_progress(row: int) -> None:
        job = window.queue.jobs[row]
        if not paused and job.state is State.RUNNING and job.done > 0:
            paused.append(True)
            window.pause_action.trigger()      # as Ctrl+P does

    window.queue.changed.connect(pause_at_first_progress)
    assert window.pause_action.shortcut().toString() == "Ctrl+P"
    window.add_paths([big])
    try:
        qtbot.waitUntil(lambda: bool(paused) and window.queue.jobs[0].state is State.WAITING
                        and window.queue.jobs[0].worker is None, timeout=60_000)
    except BaseException:   # no paused job left for the window's close to ask about
        window.queue.held = False
        window.queue.cancel_all()
        raise
    assert window.queue.held and window.pause_action.isChecked()
    assert window.held_label.isVisibleTo(window)
    model = window.queue_view.model()
    status = next(c for c in range(model.columnCount()) if model.headerData(
        c, Qt.Orientation.Horizontal) == "Status")
    assert model.index(0, status).data() == "paused"
    assert window.engine.entries() == []
    # Folder stores write a part again: nothing to journal (S3 below, and test_network).
    assert window.engine.unfinished() == []
    with qtbot.waitSignal(window.queue.all_finished, timeout=120_000):
        window.pause_action.trigger()
    assert window.queue.jobs[0].state is State.DONE
    assert not window.held_label.isVisibleTo(window)
    assert [e.name for e in window.engine.entries()] == ["big.bin"]
    assert window.engine.unfinished() == []


def _unlocked_window(qtbot, world: World) -> MainWindow:  # noqa: F811
    """The window over the world's stores, shown and unlocked as a person would."""
    win = MainWindow(AppContext(config_file=world.cfg_file, catalog_file=world.root
                                / "home/.local/share/cssm-desktop/catalog.sqlite"))
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.vault_ready, timeout=30_000):
        win.show()
    win.engine.unlock(PASSWORD)
    win._update_lock()    # what an unlock in the window ends with: the offer comes once
    return win


@pytest.mark.parametrize("world", ["moto"], indirect=True)
def test_the_window_offers_unfinished_uploads_to_resume_or_discard(
        qtbot, world: World, tmp_path: Path) -> None:  # noqa: F811
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    for f in (a, b):
        f.write_bytes(os.urandom(SIZE))
        _interrupted(world, f)
    assert len(world.journals()) == 2
    win = _unlocked_window(qtbot, world)
    try:
        _offer_resume_discard(qtbot, win, world, a, b)
    finally:   # nothing pending for the window's close to ask about
        win.queue.cancel_all()
        qtbot.waitUntil(lambda: not win.queue.pending(), timeout=30_000)
        workers.wait_all()


def _offer_resume_discard(qtbot, win: MainWindow, world: World, a: Path, b: Path  # noqa: F811
                          ) -> None:
    qtbot.waitUntil(lambda: win.findChild(UnfinishedDialog) is not None, timeout=10_000)
    dialog = win.findChild(UnfinishedDialog)
    assert dialog.isVisible() and dialog.table.rowCount() == 2
    files = [dialog.table.item(r, 0).text() for r in range(2)]
    assert sorted(files) == [str(a), str(b)]
    dialog.table.clearSelection()
    dialog.table.selectRow(files.index(str(b)))
    qtbot.mouseClick(dialog.discard_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(world.journals()) == 1, timeout=30_000)
    qtbot.waitUntil(lambda: len(world.uploads()) == len(win.engine.unfinished()[0]
                                                        .uploads()), timeout=30_000)
    later = next(a for a in win.findChildren(QAction) if a.text() == "&Unfinished uploads…")
    later.trigger()   # the menu entry brings the list back
    dialog = [d for d in win.findChildren(UnfinishedDialog) if d.isVisible()][-1]
    assert dialog.table.rowCount() == 1
    assert dialog.resume_button.isDefault()
    with qtbot.waitSignal(win.queue.all_finished, timeout=120_000):
        qtbot.keyClick(dialog.table, Qt.Key.Key_Return)   # Enter: the default, Resume
    assert [e.name for e in win.engine.entries()] == ["a.bin"]
    assert world.journals() == [] and world.uploads() == []


@pytest.mark.parametrize("world", ["moto"], indirect=True)
def test_rows_and_status_bar_say_which_store_an_upload_waits_for(
        qtbot, world: World, tmp_path: Path) -> None:  # noqa: F811
    world.cfg.outage_wait = 120
    write_config(world.cfg_file, world.cfg)
    win = _unlocked_window(qtbot, world)
    earlier = tmp_path / "earlier.bin"
    earlier.write_bytes(os.urandom(100_000))
    (stored,) = win.engine.put([earlier])
    assert stored.stored is not None
    win.refresh_files()
    qtbot.waitUntil(lambda: [e.health for e in win.files.source.entries] == ["safe"],
                    timeout=10_000)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SIZE))
    cut: list[bool] = []

    def cut_at_first_progress(row: int) -> None:
        if not cut and win.queue.jobs[row].done > 0:
            cut.append(True)
            world.proxies[0].down()

    win.queue.changed.connect(cut_at_first_progress)
    model = win.queue_view.model()
    status = next(c for c in range(model.columnCount()) if model.headerData(
        c, Qt.Orientation.Horizontal) == "Status")
    win.add_paths([big])
    try:
        qtbot.waitUntil(lambda: str(model.index(0, status).data()).startswith(
            "waiting for store “net1”… "), timeout=60_000)
        assert win.stalled_label.isVisibleTo(win)
        assert win.stalled_label.text().startswith("Waiting for store “net1” (")
        assert "after 2 min" in win.stalled_label.toolTip()
        # The stores' table does not go on saying "reachable" from the look at start.
        qtbot.waitUntil(lambda: win.stores_summary.text() == "4 of 5 stores reachable",
                        timeout=5_000)
        # Files stored before follow: with a store silent they are at risk, said at once.
        qtbot.waitUntil(lambda: [e.health for e in win.files.source.entries] == ["at risk"],
                        timeout=5_000)
        # The time since counts up while it waits.
        first = model.index(0, status).data()
        qtbot.waitUntil(lambda: model.index(0, status).data() != first, timeout=5_000)
        with qtbot.waitSignal(win.queue.all_finished, timeout=120_000):
            world.proxies[0].up()
    finally:   # nothing pending for the window's close to ask about
        world.proxies[0].up()
        win.queue.cancel_all()
        qtbot.waitUntil(lambda: not win.queue.pending(), timeout=30_000)
        workers.wait_all()
    assert win.queue.jobs[0].state is State.DONE
    assert not win.stalled_label.isVisibleTo(win)
    assert win.stores_summary.text() == "5 of 5 stores reachable"
    qtbot.waitUntil(lambda: {e.health for e in win.files.source.entries} == {"safe"},
                    timeout=5_000)
    entry = win.engine.resolve("big.bin")
    assert entry.health == "safe" and not entry.damaged


@pytest.mark.parametrize("world", ["moto"], indirect=True)
def test_a_paused_s3_upload_shows_what_was_kept_and_no_inflated_speed(
        qtbot, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """B5: a paused S3 upload showed 0 B though the stores kept most of it, and going on
    it showed 0 B, then a speed counting the kept bytes as sent in a second."""
    monkeypatch.setattr(workers.Worker, "EMIT_EVERY", 0.0)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(SIZE))
    win = _unlocked_window(qtbot, world)
    model = win.queue_view.model()
    columns = [model.headerData(c, Qt.Orientation.Horizontal) for c in
               range(model.columnCount())]
    progress, status = columns.index("Progress"), columns.index("Status")
    paused: list[int] = []

    def pause_past_half(row: int) -> None:
        job = win.queue.jobs[row]
        if not paused and job.state is State.RUNNING and job.done > SIZE // 2:
            paused.append(job.done)
            win.pause_action.trigger()

    win.queue.changed.connect(pause_past_half)
    try:
        win.add_paths([src])
        qtbot.waitUntil(lambda: bool(paused) and win.queue.jobs[0].state is State.WAITING
                        and win.queue.jobs[0].worker is None, timeout=60_000)
        job = win.queue.jobs[0]
        assert job.kept >= paused[0] > 0
        assert model.index(0, progress).data().startswith(human(job.kept))
        assert model.index(0, status).data() == f"paused, {human(job.kept)} kept"
        seen: list[tuple[int, float, float]] = []
        win.queue.changed.connect(lambda _r: seen.append(
            (job.shown, job.speed, time.monotonic() - job.started)) if job.started else None)
        with qtbot.waitSignal(win.queue.all_finished, timeout=120_000):
            win.pause_action.trigger()
        assert job.state is State.DONE and job.kept > 0   # the stores' word on resume
        assert seen and min(shown for shown, _, _ in seen) >= min(paused[0], job.kept)
        # No speed counts the kept bytes: what it says was sent fits in what was left.
        assert all(speed * took <= (SIZE - job.kept) * 1.05 for _, speed, took in seen)
    finally:
        win.queue.held = False
        win.queue.cancel_all()
        qtbot.waitUntil(lambda: not win.queue.pending(), timeout=30_000)
        workers.wait_all()
