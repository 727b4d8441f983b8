"""Durable writes that flush beside the work (durable.StreamingFile): the data arrives
whole, a flush that fails is never lost, and no fd is closed under a flush."""

from __future__ import annotations

import errno
import os
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
                    reason="Linux: unnamed files are named through /proc/self/fd")
def test_a_name_the_destination_refuses_keeps_proc_links_in_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link that fails for the destination's own reason (here a name too long) fails the
    same way through linkat: its error is the answer, and /proc links stay in use. (Any
    failure used to turn them off for the process; for a user without
    CAP_DAC_READ_SEARCH every later restore in the window then failed.)"""
    monkeypatch.setattr(durable, "_proc_links", True)
    fd = os.open(tmp_path, os.O_TMPFILE | os.O_WRONLY, 0o600)
    try:
        os.write(fd, b"kept")
        with pytest.raises(OSError) as refused:
            durable._link_fd(fd, tmp_path / ("x" * 300))
        assert refused.value.errno == errno.ENAMETOOLONG
        assert durable._proc_links is True
        durable._link_fd(fd, tmp_path / "named")
    finally:
        os.close(fd)
    assert (tmp_path / "named").read_bytes() == b"kept"
