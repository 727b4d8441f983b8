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
