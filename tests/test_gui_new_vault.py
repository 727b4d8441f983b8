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


@pytest.mark.parametrize("server", SERVERS)
def test_the_provider_step_takes_the_keys_once_makes_the_buckets_and_tests_them(
        qtbot, request: pytest.FixtureRequest, server: str, memory_keyring) -> None:
    """B11: five buckets at one provider took the endpoint, region and keys five times."""
    from cssm_desktop.config import get_secret
    from cssm_desktop.gui.provider_dialog import ProviderDialog
    from cssm_desktop.gui.settings_dialog import SettingsDialog

    s3: S3Server = request.getfixturevalue(server)
    settings = SettingsDialog(None)
    qtbot.addWidget(settings)
    settings.show()
    dialog = settings.add_provider()
    assert isinstance(dialog, ProviderDialog)
    assert QApplication.focusWidget() is dialog.kind or not dialog.isActiveWindow()
    qtbot.keyClicks(dialog.endpoint, s3.endpoint)
    qtbot.keyClicks(dialog.region, "us-east-1")
    qtbot.keyClicks(dialog.key_id, s3.access_key)
    # A wrong secret first (rclone checks signatures): nothing is added, each bucket says why.
    if server == "rclone_server":
        qtbot.keyClicks(dialog.secret_edit, "wrong")
        qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.ok.isEnabled(), timeout=30_000)
        assert dialog.isVisible() and "nothing was added" in dialog.result.text()
        assert dialog.result.text().count("✖") == 5 and settings.stores == []
        dialog.secret_edit.clear()
    qtbot.keyClicks(dialog.secret_edit, s3.secret_key)
    buckets = [b for b in dialog.buckets.toPlainText().split("\n") if b]
    assert len(buckets) == 5 and dialog.make.isChecked()
    with qtbot.waitSignal(dialog.accepted, timeout=60_000):
        qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
    assert [s.bucket for s in settings.stores] == buckets
    assert {(s.endpoint_url, s.access_key_id) for s in settings.stores} == {
        (s3.endpoint, s3.access_key)}
    assert settings.list.count() == 5 and "5 buckets added and tested" in \
        settings.test_result.text()
    made = {b["Name"] for b in s3.client().list_buckets()["Buckets"]}
    assert set(buckets) <= made
    settings.save()
    assert settings.saved_config is not None and len(settings.saved_config.stores) == 5
    assert all(get_secret(s.name) == s3.secret_key for s in settings.stores)


def test_without_a_keyring_the_secrets_of_one_provider_are_asked_about_once(
        qtbot, monkeypatch: pytest.MonkeyPatch, memory_keyring) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from cssm_desktop.config import StoreConfig, get_secret
    from cssm_desktop.errors import StoreError
    from cssm_desktop.gui import settings_dialog

    def no_keyring(name: str, _secret: str) -> None:
        raise StoreError(name, "no keyring backend")

    monkeypatch.setattr(settings_dialog, "set_secret", no_keyring)
    settings = settings_dialog.SettingsDialog(None)
    qtbot.addWidget(settings)
    for i in range(5):
        settings.stores.append(StoreConfig(name=f"b{i}", type="s3", bucket=f"bucket-{i}",
                                           access_key_id="KEY"))
        settings.secrets[i] = "one secret"
    asked: list[str] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            asked.append(box.text())
            box.button(QMessageBox.StandardButton.Yes).click()
        if len(asked) < 6 and settings.saved_config is None:
            QTimer.singleShot(50, answer)

    QTimer.singleShot(50, answer)
    settings.save()
    assert len(asked) == 1 and "“b0”, “b1”, “b2”, “b3”, “b4”" in asked[0]
    assert all(get_secret(f"b{i}") == "one secret" for i in range(5))   # this session


def test_first_run_goes_from_the_provider_step_to_the_new_vault_dialog(
        qtbot, moto_server: S3Server, tmp_path: Path) -> None:
    """"Add my buckets" opens Settings with the provider step up; once saved stores answer
    holding no vault, the new-vault dialog comes by itself (once)."""
    from cssm_desktop.gui.provider_dialog import ProviderDialog
    from cssm_desktop.gui.settings_dialog import SettingsDialog

    settings = SettingsDialog(None, provider_first=True)
    qtbot.addWidget(settings)
    settings.show()
    qtbot.waitUntil(lambda: isinstance(settings.provider, ProviderDialog)
                    and settings.provider.isVisible(), timeout=5_000)
    settings.provider.reject()
    window = _window_on_empty_buckets(qtbot, moto_server, tmp_path)
    assert not any(isinstance(w, NewPasswordDialog) and w.isVisible()
                   for w in QApplication.topLevelWidgets())   # not unasked
    window._offer_create = True   # what "Add my buckets" sets before Settings
    with qtbot.waitSignal(window.stores_checked, timeout=30_000):
        window.check_stores()
    dialog = _new_vault_dialog()
    dialog.reject()
    with qtbot.waitSignal(window.stores_checked, timeout=30_000):
        window.check_stores()
    assert not any(isinstance(w, NewPasswordDialog) and w.isVisible()
                   for w in QApplication.topLevelWidgets())   # once
    workers.wait_all()
