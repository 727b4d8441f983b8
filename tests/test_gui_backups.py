"""The Backups place: protect a folder from the window, backed up by itself (at once, and
after a change), its snapshots listed and restored as of one; a file's history."""

from __future__ import annotations

import os
import socket
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt

from cssm_desktop.config import load_config
from cssm_desktop.gui.main_window import MainWindow

from .conftest import PASSWORD
from .test_gui import ctx, main_thread_gc, qt_settings, window  # noqa: F401


def _folder(tmp_path: Path) -> Path:
    src = tmp_path / "Notes"
    (src / "deep").mkdir(parents=True)
    (src / "todo.txt").write_text("milk")
    (src / "deep" / "plan.md").write_text("# plan")
    (src / "empty").mkdir()
    return src


def _select(win: MainWindow, name: str) -> None:
    view = win.files
    source = view.source.entries.index(next(e for e in view.source.entries if e.name == name))
    view.selectRow(view.proxy.mapFromSource(view.source.index(source, 0)).row())


def test_a_protected_folder_is_backed_up_by_itself_and_restores_as_of_a_snapshot(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: F811
    window.engine.unlock(PASSWORD)
    window._update_lock()
    runner, page = window.backups, window.backups_page
    runner._settle = 0.3   # the watcher's quiet period, short for the test
    window.show_place("backups")
    assert "No protected folders" in page.folders.empty_hint()
    src = _folder(tmp_path)
    with qtbot.waitSignal(runner.finished, timeout=30_000) as first:
        assert page.protect_folder(str(src))
    assert load_config(window.ctx.config_file).protect[0].path == str(src)
    assert first.args[1].snapshot.files == 3
    assert page.folders.rowCount() == 1 and page.list.rowCount() == 1
    assert "Backed up" in page.state.text()
    # A change: the watcher notices, and once the folder is quiet a backup runs.
    runner.timer.setInterval(100)
    (src / "todo.txt").write_text("milk, eggs")
    with qtbot.waitSignal(runner.finished, timeout=30_000) as second:
        pass
    assert second.args[1].new == 1 and second.args[1].unchanged == 2
    qtbot.waitUntil(lambda: page.list.rowCount() == 2, timeout=10_000)
    # Files shows one row a name, with its history one step away.
    qtbot.waitUntil(lambda: any(e.name == "Notes/todo.txt" and e.size == 10
                                for e in window.files.source.entries), timeout=10_000)
    rows = [e for e in window.files.source.entries if e.name == "Notes/todo.txt"]
    assert len(rows) == 1 and "2 versions" in window.files.source.data(
        window.files.source.index(window.files.source.entries.index(rows[0]), 2))
    window.show_place("files")
    window.as_folders.setChecked(False)
    _select(window, "Notes/todo.txt")
    dialog = window.show_versions()
    assert dialog is not None and dialog.table.rowCount() == 2
    assert dialog.chosen().size == len("milk, eggs")   # newest first
    dialog.close()
    # Restore as of the first snapshot: the folder as it was then.
    page.list.selectRow(1)   # newest first: row 1 is the older one
    snap = page.chosen_snapshot()
    assert snap is not None and snap.id == first.args[1].snapshot.id
    out = tmp_path / "then"
    out.mkdir()
    task = window.restore_snapshot(snap, str(out))
    assert task is not None
    with qtbot.waitSignal(task.ended, timeout=30_000):
        pass
    assert "3 of 3 restored" in task.summary.text()
    task.close()
    assert (out / "Notes" / "todo.txt").read_text() == "milk"
    assert (out / "Notes" / "empty").is_dir()
    # Deleting a name deletes every version of it.
    assert len(window.versions_of("Notes/todo.txt")) == 2


def test_backups_wait_for_the_vault_to_be_unlocked(qtbot, window: MainWindow,  # noqa: F811
                                                   tmp_path: Path) -> None:
    page = window.backups_page
    assert not window.engine.unlocked
    page.protect_folder(str(_folder(tmp_path)))
    assert window.backups.running is None   # nothing runs without the key
    assert "unlocked" in page.state.text()
    page.back_up_now()
    assert "Unlock the vault first" in page.state.text()
    page.refresh()
    assert "wait for the vault" in page.state.text()
    with qtbot.waitSignal(window.backups.finished, timeout=30_000):
        window.engine.unlock(PASSWORD)
        window._update_lock()   # what an unlock does: the missed backup runs at once
    assert "wait for the vault" not in page.state.text()


def test_the_protect_button_and_its_mnemonic_open_the_folder_chooser(
        qtbot, window: MainWindow, tmp_path: Path,  # noqa: F811
        monkeypatch) -> None:
    """Found under Xvfb: Alt+P (and a click) did nothing: the button's `checked` came in
    as the folder to protect."""
    from PySide6.QtWidgets import QFileDialog

    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: asked.append("asked") or ""))
    window.show_place("backups")
    button = window.backups_page.protect_button
    assert button.shortcut().toString() == "Alt+P"   # (offscreen Qt routes no mnemonics)
    button.click()
    assert asked == ["asked"]


def test_tab_from_the_filter_goes_to_the_list_it_filtered(qtbot, window: MainWindow  # noqa: F811
                                                          ) -> None:
    """Found under Xvfb: Ctrl+F, a name, Tab landed on Restore, not on the list."""
    window.show_place("files")
    window.as_folders.setChecked(False)
    assert window.filter.nextInFocusChain() in (window.tree, window.files) or \
        window.filter.nextInFocusChain().isAncestorOf(window.files)
    chain = []
    widget = window.filter
    for _ in range(6):
        widget = widget.nextInFocusChain()
        chain.append(widget)
    assert window.files in chain[:3]


def test_the_window_follows_another_computers_backups_and_says_when_one_is_stale(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: F811
    """A second computer (another catalog over the same stores) backs up; this window
    catches up within its next follow (every minute), and a folder left unbacked for
    three intervals is said once."""
    from cssm_desktop.config import load_config
    from cssm_desktop.engine import Engine

    window.engine.unlock(PASSWORD)
    window._update_lock()
    other = Engine(load_config(window.ctx.config_file), tmp_path / "other.sqlite")
    other.unlock(PASSWORD)
    other.backup(_folder(tmp_path))
    with qtbot.waitSignal(window.backups.followed, timeout=30_000) as got:
        window.backups.follow()
    assert got.args[0].snapshots == 1
    qtbot.waitUntil(lambda: window.backups_page.list.rowCount() == 1, timeout=10_000)
    # Stale: protected, last backed up four hours ago, every hour... a day at least.
    runner = window.backups
    window.backups_page.protect_folder(str(tmp_path / "Notes"))
    qtbot.waitUntil(lambda: runner.running is None, timeout=30_000)
    import time as _time

    runner._scheduler.last[str(tmp_path / "Notes")] = int((_time.time() - 30 * 3600) * 1e9)
    stale: list[str] = []
    runner.stale.connect(lambda p, _h: stale.append(p))
    runner._say_stale()
    runner._say_stale()
    assert stale == [str(tmp_path / "Notes")]   # once


def test_start_at_login_writes_and_removes_the_autostart_entry(
        qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    entry = tmp_path / "xdg" / "autostart" / "cssm-desktop.desktop"
    box = window.backups_page.at_login
    box.setChecked(False)
    box.setChecked(True)
    text = entry.read_text()
    assert "Exec=" in text and "--background" in text
    box.setChecked(False)
    assert not entry.exists()


def test_the_windows_api_switch_serves_the_same_engine(qtbot, window: MainWindow  # noqa: F811
                                                       ) -> None:
    """Turned on in the window, the API answers with the window's engine: an unlock
    through it is the window's unlock, and a file stored through it is listed."""
    import copy

    import httpx

    from cssm_desktop.config import load_config

    cfg_api = "127.0.0.1:0"

    cfg = copy.deepcopy(window.ctx.config)
    cfg.api = cfg_api
    window.ctx.save(cfg)
    window.apply_api()
    server = window.api_server
    assert server is not None and window.api_action.isChecked()
    assert load_config(window.ctx.config_file).api == cfg_api
    client = httpx.Client(base_url=server.url, headers={"Authorization":
                                                        f"Bearer {server.token}"})
    assert window.lock_label.text() == "Vault locked"
    assert client.post("/v1/unlock", json={"password": PASSWORD}).json()["unlocked"]
    assert window.engine.unlocked
    qtbot.waitUntil(lambda: window.lock_label.text() == "Vault unlocked", timeout=5000)
    assert client.post("/v1/files", params={"name": "via-api.txt"},
                       content=b"x").status_code == 201
    assert any(e.name == "via-api.txt" for e in window.engine.entries())
    # The window's list follows (it said "No files stored yet" under Xvfb).
    qtbot.waitUntil(lambda: [e.name for e in window._all_entries] == ["via-api.txt"],
                    timeout=10000)
    # The window's Activity shows what the API was asked (issue 25), from the service's
    # threads to the GUI's, and cancels it as DELETE /v1/jobs/ID does.
    window.show_place("activity")
    assert window.api_box.isVisible()
    table = window.api_jobs.table
    qtbot.waitUntil(lambda: [(table.data(table.index(r, 0)), table.data(table.index(r, 2)))
                             for r in range(table.rowCount())]
                    == [("Store via-api.txt", "done")], timeout=10000)
    assert table.data(table.index(0, 1)) == "1 B of 1 B"
    # A program that sends 1 KiB of 1 MiB and stalls: running here, and Delete cancels it.
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.settimeout(30)
        raw.sendall(f"POST /v1/files?name=stalled.bin HTTP/1.1\r\nHost: 127.0.0.1:"
                    f"{server.port}\r\nAuthorization: Bearer {server.token}\r\n"
                    "Content-Length: 1048576\r\n\r\n".encode() + b"x" * 1024)
        qtbot.waitUntil(lambda: table.rowCount() == 2
                        and table.data(table.index(1, 2)) == "running", timeout=10000)
        assert table.data(table.index(1, 0)) == "Store stalled.bin"
        assert window.places.item(window.places.row_of("activity")).text().endswith("(1)")
        window.api_jobs.setFocus()
        window.api_jobs.selectRow(1)
        qtbot.keyClick(window.api_jobs, Qt.Key.Key_Delete)
        answer = raw.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 409")
    qtbot.waitUntil(lambda: table.data(table.index(1, 2)) == "cancelled", timeout=10000)
    assert not [e for e in window.engine.entries() if e.name == "stalled.bin"]
    client.delete(f"/v1/files/{window._all_entries[0].id}")
    qtbot.waitUntil(lambda: window._all_entries == [], timeout=10000)
    client.post("/v1/lock")
    qtbot.waitUntil(lambda: window.lock_label.text() == "Vault locked", timeout=5000)
    window.toggle_api(False)
    assert window.api_server is None and not window.api_action.isChecked()
    assert load_config(window.ctx.config_file).api is None
    window.api_jobs.table.clear_finished()
    window.apply_api()
    assert not window.api_box.isVisible()   # off, and nothing listed


def test_what_to_keep_previews_exactly_what_it_would_drop_then_saves_the_rule(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: F811
    from cssm_desktop.config import load_config

    window.engine.unlock(PASSWORD)
    window._update_lock()
    src = _folder(tmp_path)
    page = window.backups_page
    with qtbot.waitSignal(window.backups.finished, timeout=30_000):
        page.protect_folder(str(src))
    qtbot.waitUntil(lambda: window.backups.running is None, timeout=30_000)
    (src / "todo.txt").write_text("changed")
    with qtbot.waitSignal(window.backups.finished, timeout=30_000):
        page.back_up_now()
    qtbot.waitUntil(lambda: page.list.rowCount() == 2, timeout=30_000)
    dialog = page.edit_retention()
    assert dialog.preset.currentIndex() == 0 and not dialog.boxes["last"].isEnabled()
    assert "Drops 0 of 2" in dialog.summary.text()   # smart keeps both (both recent)
    dialog.preset.setCurrentIndex(1)
    for key, box in dialog.boxes.items():
        box.setValue(1 if key == "last" else 0)
    plan = dialog.preview()
    assert "Drops 1 of 2 snapshots and 1 older version" in dialog.summary.text()
    assert [d.keep for d in plan.decisions] == [True, False]
    before = len(window.engine.snapshots())
    dialog.save()
    assert load_config(window.ctx.config_file).protect[0].keep_last == 1
    assert len(window.engine.snapshots()) == before   # a preview and a save drop nothing
