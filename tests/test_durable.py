"""Durable writes that flush beside the work (durable.StreamingFile): the data arrives
whole, a flush that fails is never lost, and no fd is closed under a flush."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from cssm_desktop import durable
from cssm_desktop.engine import Engine
from cssm_desktop.errors import InputError


def test_a_large_file_is_flushed_on_the_way_and_arrives_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = durable._DATASYNC
    assert real is not None

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)
    monkeypatch.setattr(durable, "_DATASYNC", counting)
    monkeypatch.setattr(durable, "FLUSH_EVERY", 64 * 1024)
    data = os.urandom(1024 * 1024 + 7)
    out = durable.StreamingFile(tmp_path / "f.bin")
    for i in range(0, len(data), 10_000):
        out.write(data[i:i + 10_000])
    out.sync_and_close()
    assert (tmp_path / "f.bin").read_bytes() == data
    assert calls     # flushed while writing, not only at the end


def test_the_fd_stays_open_until_the_flush_returns(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def slow(fd: int) -> None:
        started.set()
        release.wait(10)
        try:
            os.fstat(fd)
            seen.append(True)
        except OSError:
            seen.append(False)
    monkeypatch.setattr(durable, "_DATASYNC", slow)
    monkeypatch.setattr(durable, "FLUSH_EVERY", 1)
    out = durable.StreamingFile(tmp_path / "f.bin")
    out.write(b"x" * 10)
    assert started.wait(10)
    closer = threading.Thread(target=out.sync_and_close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()        # waits for the flush: the fd is not closed under it
    release.set()
    closer.join(10)
    assert seen == [True]


@pytest.mark.parametrize("size", [600_000, 1_500_000], ids=["in a pack", "alone"])
def test_a_failed_background_flush_fails_the_restore_and_leaves_no_file(
        folder_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        size: int) -> None:
    """Linux reports a writeback error to one fsync only: the flush that met it must pass
    it on, or the final fsync would say all is well. (A small file, restored from its
    pack, was named before the error surfaced.)"""
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(size))
    folder_engine.put([src])

    def failing(_fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(durable, "_DATASYNC", failing)
    monkeypatch.setattr(durable, "FLUSH_EVERY", 64 * 1024)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="Input/output error"):
        folder_engine.get(folder_engine.resolve("f.bin"), out / "f.bin")
    assert list(out.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir() or not getattr(os, "O_TMPFILE", 0),
                    reason="Linux: unnamed files are named through linkat")
@pytest.mark.parametrize("empty_path_first", [True, False])
def test_a_name_the_destination_refuses_keeps_the_way_of_linking_in_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_path_first: bool) -> None:
    """A link that fails for the destination's own reason (here a name too long) fails the
    same way both ways: its error is the answer, and the way in use stays. (Any failure
    used to turn /proc links off for the process; for a user without
    CAP_DAC_READ_SEARCH on a kernel before 6.10 every later restore in the window then
    failed.) And both ways work here: /proc links did not (os.link, EXDEV every time)."""
    monkeypatch.setattr(durable, "_empty_path_first", empty_path_first)
    fd = os.open(tmp_path, os.O_TMPFILE | os.O_WRONLY, 0o600)
    try:
        os.write(fd, b"kept")
        with pytest.raises(OSError) as refused:
            durable._link_fd(fd, tmp_path / ("x" * 300))
        assert refused.value.errno == errno.ENAMETOOLONG
        assert durable._empty_path_first is empty_path_first
        durable._link_fd(fd, tmp_path / "named")
        assert durable._empty_path_first is empty_path_first
    finally:
        os.close(fd)
    assert (tmp_path / "named").read_bytes() == b"kept"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir() or not getattr(os, "O_TMPFILE", 0),
                    reason="Linux: unnamed files are named through linkat")
def test_where_linkat_with_an_empty_path_is_refused_files_still_get_names_through_proc(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels before 6.10 refuse AT_EMPTY_PATH to a user without CAP_DAC_READ_SEARCH
    (ENOENT): restores there must name their unnamed files through /proc, not fall back
    to named temporary files (which a killed restore leaves behind)."""
    libc = durable._c_library()

    class OldKernel:
        """libc whose linkat refuses AT_EMPTY_PATH, as those kernels do (ENOENT)."""

        def linkat(self, dirfd: int, src: bytes, newdirfd: int, dest: bytes,
                   flags: int) -> int:
            if flags & 0x1000:
                ctypes.set_errno(errno.ENOENT)
                return -1
            return int(libc.linkat(dirfd, src, newdirfd, dest, flags))

    monkeypatch.setattr(durable, "_c_library", OldKernel)
    monkeypatch.setattr(durable, "_empty_path_first", True)
    monkeypatch.setattr(durable, "_unnamed_ok", {})
    out = tmp_path / "out"
    out.mkdir()
    pending = durable.PendingFile(out / "a.txt")
    assert pending.out.path is None       # an unnamed file, not a named temporary one
    pending.write(b"a")
    pending.publish(overwrite=False, mtime_ns=10**18)
    assert [p.name for p in out.iterdir()] == ["a.txt"]
    assert (out / "a.txt").read_bytes() == b"a"
    assert durable._unnamed_ok == {os.stat(out).st_dev: True}   # once per file system
    assert durable._empty_path_first is False     # /proc links from now on
    again = durable.PendingFile(out / "b.txt")
    again.write(b"b")
    again.publish(overwrite=False, mtime_ns=10**18)
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]


def test_private_dir_makes_every_level_it_creates_owner_only(tmp_path: Path) -> None:
    """uploads/<vault>/ and downloads/<vault>/<file>/ were made 0755 above the last level."""
    from cssm_desktop.durable import private_dir

    old = os.umask(0o022)
    try:
        private_dir(tmp_path / "data" / "downloads" / "vault" / "file")
    finally:
        os.umask(old)
    for level in ("data", "data/downloads", "data/downloads/vault",
                  "data/downloads/vault/file"):
        assert stat.S_IMODE((tmp_path / level).stat().st_mode) == 0o700, level


def test_a_flusher_made_but_not_started_is_not_joined(tmp_path: Path) -> None:
    """C3: Ctrl+C between making the flush thread and starting it: closing joined it and
    raised RuntimeError ("unexpected", exit 1, not 130)."""
    out = durable.StreamingFile(tmp_path / "f.bin")
    out.write(b"x" * 100)
    out._flusher = threading.Thread(target=lambda: None)   # as an interrupt leaves it
    out.close()
    assert (tmp_path / "f.bin").read_bytes() == b"x" * 100


def test_the_probe_is_named_in_the_apps_folder_never_among_restored_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by test_kill.py: a restore killed between naming the probe and removing it
    left `.tmp-…-probe` among the user's files. It is named in the data folder now (same
    file system), once per file system, and a later start removes one left there."""
    if not getattr(os, "O_TMPFILE", 0):
        pytest.skip("no O_TMPFILE here")
    home, dest = tmp_path / "data", tmp_path / "restore" / "deep"
    home.mkdir()
    dest.mkdir(parents=True)
    (home / ".tmp-0123456789abcdef-probe").write_bytes(b"")   # a killed run's
    durable.set_probe_home(home)
    assert list(home.iterdir()) == []
    monkeypatch.setattr(durable, "_unnamed_ok", {})
    named: list[Path] = []
    real = durable._link_fd
    monkeypatch.setattr(durable, "_link_fd", lambda fd, name: (named.append(Path(name)),
                                                               real(fd, name))[1])
    for folder in (dest, dest.parent):
        pending = durable.PendingFile(folder / "a.txt")
        pending.write(b"a")
        pending.publish(overwrite=False, mtime_ns=10**18)
    probes = [p for p in named if p.name.endswith("-probe")]
    assert [p.parent for p in probes] == [home]   # one probe, in the app's folder
