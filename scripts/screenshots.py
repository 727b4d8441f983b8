#!/usr/bin/env python3
"""Render the real widgets offscreen into docs/*.png (run after any GUI change).

A temporary vault of five folders holds a few real files; the upload queue is caught
mid-way by filling its jobs with progress figures, so the picture shows a live queue.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def dark_palette() -> object:
    """What a dark system theme hands the app; the widgets use palette roles only."""
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    for role, color in ((QPalette.ColorRole.Window, "#2b2b2b"),
                        (QPalette.ColorRole.WindowText, "#e6e6e6"),
                        (QPalette.ColorRole.Base, "#1e1e1e"),
                        (QPalette.ColorRole.AlternateBase, "#262626"),
                        (QPalette.ColorRole.Text, "#e6e6e6"),
                        (QPalette.ColorRole.Button, "#353535"),
                        (QPalette.ColorRole.ButtonText, "#e6e6e6"),
                        (QPalette.ColorRole.Highlight, "#2f6fd6"),
                        (QPalette.ColorRole.HighlightedText, "#ffffff"),
                        (QPalette.ColorRole.Mid, "#5a5a5a"),
                        (QPalette.ColorRole.PlaceholderText, "#8a8a8a")):
        palette.setColor(role, QColor(color))
    return palette


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cssm-shots-"))
    for var, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "config"),
                     ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state")):
        os.environ[var] = str(tmp / sub)
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("cssm-desktop")
    QCoreApplication.setApplicationName("CSSM Desktop")
    app = QApplication([])
    app.setStyle("Fusion")
    from cssm_desktop.config import Config, StoreConfig
    from cssm_desktop.gui import workers
    from cssm_desktop.gui.app import install_translations, wait_for

    install_translations(app)   # as the app: "2 uploads", not "2 upload(s)"
    from cssm_desktop.gui.context import AppContext
    from cssm_desktop.gui.jobs import Job, State
    from cssm_desktop.gui.main_window import MainWindow
    from cssm_desktop.gui.restore_dialog import RestoreDialog
    from cssm_desktop.gui.settings_dialog import SettingsDialog

    out = ROOT / "docs"
    docs = {}

    # First run
    ctx = AppContext(config_file=tmp / "first.toml", catalog_file=tmp / "first.sqlite")
    window = MainWindow(ctx)
    window.resize(980, 640)
    window.show()
    app.processEvents()
    docs["first-run.png"] = window.grab()
    window.close()

    # Five empty stores: the window offers to create the vault there.
    from cssm_desktop.config import save_config
    from cssm_desktop.gui.welcome import NewPasswordDialog

    empty = [StoreConfig(f"bucket-{i}", "folder", path=str(tmp / "empty" / f"bucket-{i}"))
             for i in range(1, 6)]
    for store in empty:
        Path(store.path or "").mkdir(parents=True)
    save_config(Config(stores=empty, threshold=3), tmp / "empty.toml")
    ctx = AppContext(config_file=tmp / "empty.toml", catalog_file=tmp / "empty.sqlite")
    window = MainWindow(ctx)
    window.resize(980, 640)
    window.show()
    wait_for(window.stores_checked, 30, "stores")
    app.processEvents()
    docs["new-vault-banner.png"] = window.grab()
    created = window.create_vault_here()
    assert isinstance(created, NewPasswordDialog)
    created.first.setText("correct horse battery staple")
    created.second.setText("correct horse battery staple")
    app.processEvents()
    docs["new-vault-dialog.png"] = created.grab()
    created.reject()
    window.close()
    workers.wait_all()

    # A vault with files, and a queue in progress
    ctx = AppContext(config_file=tmp / "config.toml", catalog_file=tmp / "catalog.sqlite")
    window = MainWindow(ctx)
    window.resize(1000, 700)
    window.show()
    window.create_local_vault("screenshot password", root=tmp / "stores")
    wait_for(window.stores_checked, 60, "vault and stores")
    src = tmp / "Documents"
    (src / "Taxes 2026").mkdir(parents=True)
    for name, size in (("Taxes 2026/return.pdf", 412_000), ("Taxes 2026/receipts.zip", 3_100_000),
                       ("family-photos.tar", 5_800_000), ("passport scan.jpg", 870_000),
                       ("notes.md", 12_400)):
        (src / name).write_bytes(os.urandom(size))
    (src / "Letters").mkdir()
    for i in range(40):   # small files: they go up together, as one pack
        (src / "Letters" / f"letter-{i + 1:02d}.txt").write_bytes(os.urandom(2_000 + 97 * i))
    window.add_paths([src])
    wait_for(window.queue.all_finished, 120, "uploads")
    wait_for(window.files_loaded, 30, "files")
    window.check_stores()
    wait_for(window.stores_checked, 30, "stores")
    window.queue.clear_finished()

    # Backups: the folder protected, backed up, changed, backed up again.
    window.show_place("backups")
    window.backups_page.protect_folder(str(src))
    wait_for(window.backups.finished, 60, "first backup")
    (src / "notes.md").write_bytes(os.urandom(13_100))
    window.backups_page.back_up_now()
    wait_for(window.backups.finished, 60, "second backup")
    app.processEvents()
    window.backups_page.list.selectRow(0)
    app.processEvents()
    docs["backups.png"] = window.grab()
    window.refresh_files()   # (the backups' own refresh may have come already)
    wait_for(window.files_loaded, 30, "files")

    # The stores place in each state: all reachable, one disk away, two away.
    window.show_place("stores")
    app.processEvents()
    docs["stores-ok.png"] = window.grab()
    stores = tmp / "stores"
    for shot, away in (("stores-one-down.png", ["store-4"]),
                       ("stores-two-down.png", ["store-4", "store-2"])):
        for name in away:
            if (stores / name).exists():
                (stores / name).rename(tmp / name)
        window.check_stores()
        wait_for(window.stores_checked, 30, "stores")
        wait_for(window.files_loaded, 30, "files")
        docs[shot] = window.grab()
    dialog = window.repair_all()
    wait_for(dialog.ended, 60, "repair")
    app.processEvents()
    docs["repair-result.png"] = dialog.grab()
    dialog.close()
    for name in ("store-4", "store-2"):
        (tmp / name).rename(stores / name)
    window.check_stores()
    wait_for(window.stores_checked, 30, "stores")
    dialog = window.repair_all()   # the disks are back: repair makes every file safe
    wait_for(dialog.ended, 60, "repair")
    dialog.close()
    window.refresh_files()
    wait_for(window.files_loaded, 30, "files")
    now = time.monotonic()
    jobs = [Job(Path("/home/ana/Videos/holiday-2026.mkv"), "holiday-2026.mkv", 2_400_000_000,
                State.RUNNING, 1_130_000_000, started=now - 9.5),
            Job(Path("/home/ana/Music/album.flac"), "album.flac", 310_000_000, State.RUNNING,
                250_000_000, started=now - 2.4),
            Job(Path("/home/ana/thesis.pdf"), "thesis.pdf", 8_200_000, State.DONE, 8_200_000,
                started=now - 3, ended=now - 2.6),
            Job(Path("/home/ana/backup.img"), "backup.img", 16_000_000_000)]
    queue = window.queue
    queue.paused = True
    window.engine.unlock("screenshot password")
    queue.engine = window.engine
    queue.replace_jobs(jobs)
    # The repair's summary (taken with two stores away) times out after 15 s in the app;
    # the stores are back now, so it would contradict the picture.
    window.statusBar().clearMessage()
    window.show_place("files")
    window._badge()
    queue.paused = False
    queue.pending = lambda: [j for j in jobs if j.state in (State.WAITING, State.RUNNING)]
    window._badge()
    window.activity.update_now()
    app.processEvents()
    docs["main-window.png"] = window.grab()
    # What other programs asked through the local API, beside the window's own uploads.
    from cssm_desktop.api.jobs import SUCCEEDED, ApiJob

    t = time.time()
    for api_job in (
            ApiJob("upload-1", "upload", SUCCEEDED, t - 300, t - 299, 2_300_000, 2_300_000,
                   "scans/2026-12-01 invoice.pdf"),
            ApiJob("verify-2", "verify", SUCCEEDED, t - 240, t - 200, 412, 412),
            ApiJob("download-3", "download", SUCCEEDED, t - 60, t - 59, 2_300_000,
                   2_300_000, "scans/2026-12-01 invoice.pdf"),
            ApiJob("upload-4", "upload", started=t - 4, done=61_000_000, total=148_000_000,
                   item="scanner/page-0007.tiff")):
        window.api_jobs.table.show(api_job)
    window.api_where.setText("Local API on http://127.0.0.1:8765 (token in "
                             "~/.local/share/cssm-desktop/api-token)")
    window.api_box.setVisible(True)
    window.show_place("activity")
    window._badge()
    app.processEvents()
    docs["activity.png"] = window.grab()
    light = app.palette()
    app.setPalette(dark_palette())
    app.processEvents()
    docs["main-window-dark.png"] = window.grab()
    app.setPalette(light)
    # An upload waiting for a store that stopped answering.
    jobs[1].stalled, jobs[1].stalled_since, jobs[1].stalled_limit = (
        "local-3", time.monotonic() - 47, 300.0)
    window._store_silent("local-3", True)   # as the upload's signal says it
    window._tick_stalled()
    app.processEvents()
    docs["waiting-for-store.png"] = window.grab()
    window._stall_timer.stop()
    jobs[1].stalled = ""
    window._store_silent("local-3", False)
    window.show_place("files")

    entries = window.files.source.entries[:2]
    window.engine.lock()
    dialog = RestoreDialog(window.engine, entries, window, tmp / "restore")
    dialog.show()
    app.processEvents()
    docs["restore-dialog.png"] = dialog.grab()
    dialog.close()
    # A restore under way: how far, how fast, how long still (a clock of 4 s).
    from cssm_desktop.units import Rate

    dialog = RestoreDialog(window.engine, entries, window, tmp / "restore")
    dialog.show()
    dialog.bar.show()
    dialog.rate = Rate(clock=iter([100.0, 104.0]).__next__)
    dialog._progress(0, 2_400_000_000)
    dialog._progress(620_000_000, 2_400_000_000)
    dialog._say(dialog.tr("Restoring %n file(s)…", "", 2))
    app.processEvents()
    docs["restore-running.png"] = dialog.grab()
    dialog.close()

    cfg = Config(stores=[
        StoreConfig("usb-disk", "folder", path="/media/ana/USB/cssm"),
        StoreConfig("wasabi", "s3", bucket="ana-cssm", region="eu-central-1",
                    endpoint_url="https://s3.eu-central-1.wasabisys.com",
                    access_key_id="AKIAEXAMPLE7Q"),
        StoreConfig("b2", "s3", bucket="ana-cssm-b2", endpoint_url="https://s3.us-west-004.backblazeb2.com",
                    access_key_id="004a1b2c3d"),
        StoreConfig("r2", "s3", bucket="ana-cssm", endpoint_url="https://example.r2.cloudflarestorage.com",
                    access_key_id="r2key"),
        StoreConfig("nas", "folder", path="/mnt/nas/cssm")], threshold=3,
        vault="5f1c0de2a9b84e7d93c6a0b1e2f3a4b5")
    for index, store in enumerate(cfg.stores):   # an existing vault: each store bound
        store.index = index
    settings = SettingsDialog(cfg, window)
    settings.list.setCurrentRow(1)
    settings.test_result.setText("✔ Works: a probe was written, read back and deleted.")
    settings.show()
    app.processEvents()
    docs["settings-dialog.png"] = settings.grab()
    settings.close()
    # The provider step: keys once, then the bucket names.
    settings = SettingsDialog(None, window)
    settings.show()
    provider = settings.add_provider()
    provider.kind.setCurrentText("Wasabi")
    provider.endpoint.setText("https://s3.eu-central-1.wasabisys.com")
    provider.region.setText("eu-central-1")
    provider.key_id.setText("AKIAEXAMPLE7Q")
    provider.secret_edit.setText("example secret key")
    provider.buckets.setPlainText("\n".join(f"ana-cssm-{i}" for i in range(1, 6)))
    app.processEvents()
    docs["provider-dialog.png"] = provider.grab()
    provider.close()
    settings.close()
    # Uploads an earlier run left (real journals; the stores are not needed to list them)
    import time as _time

    from cssm_desktop.core.journal import Identity, Journals
    from cssm_desktop.gui.unfinished_dialog import UnfinishedDialog
    from cssm_desktop.stores.base import UploadState

    journals = Journals(tmp / "uploads", bytes(32), bytes(16))
    shown = []
    for name, size, parts, hours in (("Videos/holiday-2026.mp4", 4_200_000_000, 96, 20),
                                     ("Backups/laptop-disk.img", 21_000_000_000, 410, 1)):
        j = journals.start(Path("/home/ana") / name, name, Identity(size, 0, 0, 1, 1),
                           os.urandom(16), 5, 3, 256 * 1024, tuple(bytes(32) for _ in range(5)),
                           _time.time() - hours * 3600)
        for index in range(5):
            j.record(index, UploadState("u", tuple((n, "e", 5 << 20) for n in range(1, parts))))
        shown.append(j)
    unfinished = UnfinishedDialog(shown, window)
    unfinished.show()
    app.processEvents()
    docs["unfinished-uploads.png"] = unfinished.grab()
    unfinished.close()
    queue.replace_jobs([])
    window.close()
    workers.wait_all()

    for name, pixmap in docs.items():
        pixmap.save(str(out / name))
        print(f"wrote docs/{name} ({pixmap.width()}x{pixmap.height()})")


if __name__ == "__main__":
    main()
