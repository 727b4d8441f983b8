"""A person with five empty S3 buckets and nothing else: from the first window to a stored
and restored file, in the window alone (issue: your own buckets from the window). Real S3
servers (moto and `rclone serve s3`), real widgets offscreen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from cssm_desktop.config import Config
from cssm_desktop.gui import workers
from cssm_desktop.gui.context import AppContext
from cssm_desktop.gui.jobs import State
from cssm_desktop.gui.main_window import MainWindow
from cssm_desktop.gui.welcome import NewPasswordDialog

from .conftest import S3Server, write_config
from .test_gui import _drop, main_thread_gc, qt_settings  # noqa: F401  (Qt as the app runs it)
from .test_s3 import _s3_config

SERVERS = ["moto_server", "rclone_server"]   # two real S3 implementations

NEW_PASSWORD = "five empty buckets and a long password"


def _window_on_empty_buckets(qtbot, s3: S3Server, tmp_path: Path) -> MainWindow:
    """The app started on five empty buckets (their keys in the test keyring), after its
    first look at them."""
    cfg = _s3_config(s3)
    cfg_file = write_config(tmp_path / "config.toml", Config(stores=cfg.stores, threshold=3))
    window = MainWindow(AppContext(config_file=cfg_file,
                                   catalog_file=tmp_path / "catalog.sqlite"))
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.stores_checked, timeout=30_000):
        window.show()
    return window


def _new_vault_dialog() -> NewPasswordDialog:
    dialogs = [w for w in QApplication.topLevelWidgets()
               if isinstance(w, NewPasswordDialog) and w.isVisible()]
    assert len(dialogs) == 1
    return dialogs[0]


@pytest.mark.parametrize("server", SERVERS)
def test_five_empty_buckets_to_a_restored_file_in_the_window(
        qtbot, request: pytest.FixtureRequest, server: str, tmp_path: Path) -> None:
    window = _window_on_empty_buckets(qtbot, request.getfixturevalue(server), tmp_path)
    # The window says what is true (reachable, no vault) and offers the way on.
    assert window.banner.isVisible()
    assert "reachable and hold no vault yet" in window.banner.text.text()
    assert window.banner.create.isVisible() and not window.banner.repair.isVisible()
    assert "not usable" not in window.banner.text.text()
    assert window.stores_label.text() == "No vault yet"
    # Create it: how many stores a file needs, and the password twice.
    qtbot.mouseClick(window.banner.create, Qt.MouseButton.LeftButton)
    dialog = _new_vault_dialog()
    assert dialog.needed is not None and dialog.needed.value() == 3
    assert "Any 3 of the 5 stores" in dialog.meaning.text()
    assert QApplication.focusWidget() is dialog.needed or not dialog.isActiveWindow()
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    qtbot.keyClicks(dialog.first, NEW_PASSWORD)
    assert not ok.isEnabled()   # not repeated yet
    qtbot.keyClicks(dialog.second, NEW_PASSWORD)
    assert ok.isEnabled()
    with qtbot.waitSignal(window.vault_ready, timeout=60_000):
        qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=30_000)
    assert window.stores_label.text() == "5 of 5 stores reachable"
    assert window.ctx.config is not None and window.ctx.config.vault is not None
    assert (window.ctx.config.vault_n, window.ctx.config.vault_k) == (5, 3)
    # Drop a file: it is stored at once (the vault was created unlocked).
    source = tmp_path / "input" / "notes.txt"
    source.parent.mkdir()
    source.write_bytes(os.urandom(200_000))
    with qtbot.waitSignal(window.queue.all_finished, timeout=60_000):
        _drop(window.drop, [source])
    assert [j.state for j in window.queue.jobs] == [State.DONE]
    qtbot.waitUntil(lambda: window.files.source.rowCount() == 1, timeout=10_000)
    # And restore it.
    window.engine.lock()
    dest = tmp_path / "restored"
    dest.mkdir()
    restore = window.open_restore(window.files.source.entries, destination=dest)
    qtbot.keyClicks(restore.password, NEW_PASSWORD)
    with qtbot.waitSignal(restore.restored, timeout=60_000):
        qtbot.mouseClick(restore.ok, Qt.MouseButton.LeftButton)
    assert (dest / "notes.txt").read_bytes() == source.read_bytes()
    window.queue.cancel_all()
    workers.wait_all()


def test_a_drop_before_the_vault_exists_offers_to_create_it(qtbot, moto_server: S3Server,
                                                             tmp_path: Path) -> None:
    window = _window_on_empty_buckets(qtbot, moto_server, tmp_path)
    source = tmp_path / "a.txt"
    source.write_bytes(b"a")
    _drop(window.drop, [source])
    qtbot.waitUntil(lambda: any(isinstance(w, NewPasswordDialog) and w.isVisible()
                                for w in QApplication.topLevelWidgets()), timeout=10_000)
    dialog = _new_vault_dialog()
    dialog.reject()
    assert [j.state for j in window.queue.jobs] == [State.WAITING]   # nothing lost
    window.queue.cancel_all()
    workers.wait_all()


@pytest.fixture(autouse=True)
def _no_leftover_dialogs(qtbot):
    yield
    for w in QApplication.topLevelWidgets():
        if isinstance(w, NewPasswordDialog):
            w.close()


def test_drops_are_taken_as_copies_never_moves(qtbot) -> None:
    """B4: a drop offering Copy|Move (proposed: Move) was accepted as Move; a source that
    deletes what was moved would lose the user's files. One offering only Move is refused."""
    from PySide6.QtCore import QMimeData, QPoint, QPointF, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    from cssm_desktop.gui.dropzone import DropZone

    zone = DropZone()
    qtbot.addWidget(zone)
    got: list[object] = []
    zone.dropped.connect(got.append)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile("/tmp/some-file.txt")])
    both = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    enter = QDragEnterEvent(QPoint(5, 5), both, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    enter.setDropAction(Qt.DropAction.MoveAction)
    QApplication.sendEvent(zone, enter)
    assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction
    drop = QDropEvent(QPointF(5, 5), both, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    drop.setDropAction(Qt.DropAction.MoveAction)
    QApplication.sendEvent(zone, drop)
    assert drop.isAccepted() and drop.dropAction() == Qt.DropAction.CopyAction
    assert len(got) == 1
    move_only = QDropEvent(QPointF(5, 5), Qt.DropAction.MoveAction, mime,
                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(zone, move_only)
    assert not move_only.isAccepted() and len(got) == 1
