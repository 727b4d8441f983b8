"""The recovery kit in the window: saved from Vault > Recovery kit… (the reminder goes),
and a new computer connected from the first page with the kit and the password."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from cssm_desktop.gui.context import AppContext
from cssm_desktop.gui.main_window import MainWindow

from .conftest import PASSWORD
from .test_gui import ctx, main_thread_gc, qt_settings, window  # noqa: F401


def test_a_kit_saved_in_the_window_connects_a_new_computer(qtbot, window: MainWindow,  # noqa: F811
                                                           tmp_path: Path) -> None:
    window.engine.unlock(PASSWORD)
    (tmp_path / "doc.txt").write_text("important")
    window.engine.put([tmp_path / "doc.txt"])
    window._remind_kit()
    assert window.kit_label.isVisibleTo(window)   # no kit yet: said
    dialog = window.recovery_kit()
    assert dialog is not None
    dialog.password.setText(PASSWORD)
    kit_file = tmp_path / "kit.json"
    with qtbot.waitSignal(dialog.saved, timeout=30_000):
        dialog.save("json", str(kit_file))
    assert not window.kit_label.isVisibleTo(window)
    pdf = tmp_path / "kit.pdf"
    with qtbot.waitSignal(dialog.saved, timeout=30_000):
        dialog.save("pdf", str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF")
    dialog.close()
    # A new computer: no settings; the first page connects with the kit.
    fresh = AppContext(config_file=tmp_path / "new" / "config.toml",
                       catalog_file=tmp_path / "new" / "catalog.sqlite")
    new = MainWindow(fresh)
    qtbot.addWidget(new)
    new.show()
    assert new.pages.currentIndex() == 0   # the welcome page
    connecting = new.connect_with_kit()
    connecting.open_file(str(kit_file))
    connecting.password.setText("wrong")
    connecting.run(test_only=True)
    qtbot.waitUntil(lambda: "wrong password" in connecting.status.text().lower(),
                    timeout=30_000)
    connecting.password.setText(PASSWORD)
    connecting.run(test_only=True)
    qtbot.waitUntil(lambda: "5 of 5 stores match" in connecting.status.text(), timeout=30_000)
    assert not fresh.config_file.exists()   # a test changes nothing
    with qtbot.waitSignal(connecting.connected, timeout=60_000) as got:
        connecting.run(test_only=False)
    assert got.args[0].files == 1
    assert fresh.config_file.exists() and new.pages.currentIndex() == 1
    new.close()


def _mnemonics(dialog) -> list[str]:  # type: ignore[no-untyped-def]
    """The Alt+letter of every button and buddied label in a dialog."""
    import re

    from PySide6.QtWidgets import QAbstractButton, QLabel

    texts = [b.text() for b in dialog.findChildren(QAbstractButton) if b.isVisibleTo(dialog)]
    texts += [lb.text() for lb in dialog.findChildren(QLabel) if lb.buddy() is not None]
    return [m.group(1).lower() for t in texts if (m := re.search(r"&([^&])", t))]


def test_the_kit_and_retention_dialogs_have_no_two_keys_alike(qtbot, window: MainWindow,  # noqa: F811
                                                               tmp_path: Path) -> None:
    """Found under Xvfb: Alt+P went to the password and to Save PDF at once; the typed
    path went into the password and Enter pressed Close."""
    from cssm_desktop.gui.kit_dialogs import ConnectKitDialog
    from cssm_desktop.gui.retention_dialog import RetentionDialog

    kit = window.recovery_kit()
    assert kit is not None and kit.pdf_button.isDefault()
    fresh = AppContext(config_file=tmp_path / "n" / "c.toml", catalog_file=tmp_path / "n.db")
    window.engine.unlock(PASSWORD)
    import copy

    cfg = copy.deepcopy(window.ctx.config)
    from cssm_desktop.snapshots.protect import ProtectedFolder

    cfg.protect.append(ProtectedFolder(str(tmp_path)))
    window.ctx.save(cfg)
    for dialog in (kit, ConnectKitDialog(fresh), RetentionDialog(window.ctx, str(tmp_path))):
        dialog.show()
        keys = _mnemonics(dialog)
        assert len(keys) == len(set(keys)), (type(dialog).__name__, sorted(keys))
        dialog.close()
