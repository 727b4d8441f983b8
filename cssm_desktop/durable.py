"""Files written so that a crash leaves the old state or the new one, never a mix."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"
# Hand written data to the kernel's writeback every few MiB (Linux): the disk then works
# while we encode instead of all at once in the final fsync, and bytes we will not read
# again do not push the user's own files out of the page cache.
WRITEBACK_EVERY = 8 * 1024 * 1024
_FADVISE = getattr(os, "posix_fadvise", None)
# And make it durable beside the work, not all after it: a final fsync of 1 GiB cost
# ~1.2 s here (the virtual disk flushes its cache then, however early writeback began),
# while the pipeline sat idle. An fdatasync on a helper thread once FLUSH_EVERY new bytes
# are written and the previous one has returned (so never more than one, and no faster
# than the disk takes them) leaves the final fsync a few hundredths of a second: a
# restore of 1 GiB, warm, went from 3.6 to 2.5 s (medians of 4; 16 MiB: 2.8, 64: 2.8).
FLUSH_EVERY = 8 * 1024 * 1024
_DATASYNC = getattr(os, "fdatasync", None)


def fsync_dir(path: str | Path) -> None:
    """Make a rename durable; directories cannot be opened this way on Windows."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}-{path.name}")


class StreamingFile:
    """An unbuffered, exclusive-create file for large sequential writes; fsync on close."""

    def __init__(self, path: Path | None, mode: int = 0o666, fd: int | None = None) -> None:
        """Creates `path`; or adopts an open `fd` (path None: an unnamed file)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        self.path = path
        if fd is None:
            assert path is not None
            fd = os.open(path, flags, mode)
        self._fd: int | None = fd
        self._written = 0
        self._advised = 0
        self._flushed = 0
        self._flusher: threading.Thread | None = None
        self._flush_error: OSError | None = None

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._written += len(data)
        if _FADVISE and self._written - self._advised >= WRITEBACK_EVERY:
            _FADVISE(self._fd, self._advised, self._written - self._advised,
                     os.POSIX_FADV_DONTNEED)
            self._advised = self._written
        if _DATASYNC and self._written - self._flushed >= FLUSH_EVERY and (
                self._flusher is None or not self._flusher.is_alive()):
            self._flushed = self._written
            flusher = threading.Thread(target=self._datasync, args=(self._fd,),
                                       name="cssm-flush", daemon=True)
            flusher.start()
            self._flusher = flusher   # only a started thread is ever joined

    def _datasync(self, fd: int) -> None:
        try:
            assert _DATASYNC is not None
            _DATASYNC(fd)
        except OSError as exc:   # kept for sync(): the kernel reports it to one caller only
            self._flush_error = exc

    def settle(self) -> None:
        """Wait for a flush in progress (before the fd closes); raise what it met."""
        # A Ctrl+C can land between making the thread and starting it (C3: joining it
        # raised RuntimeError, "unexpected", exit 1 instead of 130): never started, never
        # joined.
        if self._flusher is not None and self._flusher.ident is not None:
            self._flusher.join()
        self._flusher = None
        if self._flush_error is not None:
            error, self._flush_error = self._flush_error, None
            raise error

    def sync(self) -> None:
        """fsync (after the background flush): what was written is on the disk."""
        self.settle()
        os.fsync(self.fd)

    @property
    def fd(self) -> int:
        assert self._fd is not None
        return self._fd

    def close(self) -> None:
        """Close without syncing (the data was made durable another way)."""
        assert self._fd is not None
        try:
            self.settle()
        finally:
            fd, self._fd = self._fd, None
            os.close(fd)

    def sync_and_close(self) -> None:
        assert self._fd is not None
        try:
            self.sync()
        finally:
            fd, self._fd = self._fd, None
            os.close(fd)

    def discard(self) -> None:
        """Close (if open) and delete; for failures and cancels."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.settle()
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


def private_dir(path: Path, tighten: bool = False) -> None:
    """Create `path` readable by its owner only; with `tighten`, also make an existing one
    so (only for folders that are ours alone, never a folder the user named)."""
    missing = []
    folder = path
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    # Every level made here is the owner's only, not just the last (mkdir(parents=True)
    # makes the others 0755).
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):
            level.mkdir(mode=0o700)
    if not path.is_dir():
        path.mkdir(mode=0o700)   # raises what is in the way
    if tighten and os.name != "nt":
        os.chmod(path, 0o700)


def private_file(path: Path) -> None:
    """Create `path` (if missing) or tighten it to owner-only."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: readers see all or nothing. The file is
    the owner's only (a config names the user's buckets and folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name(path)
    out = StreamingFile(temp, 0o600)
    try:
        out.write(data)
        out.sync_and_close()
        os.replace(temp, path)
    except BaseException:
        out.discard()
        raise
    fsync_dir(path.parent)


_libc: Any = None
_empty_path_first = True   # until AT_EMPTY_PATH is refused where /proc links work


def _c_library() -> Any:
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


_AT_FDCWD, _AT_SYMLINK_FOLLOW, _AT_EMPTY_PATH = -100, 0x400, 0x1000


def _link_fd(fd: int, dest: Path) -> None:
    """Give an unnamed (O_TMPFILE) file a name: FileExistsError if `dest` is taken.

    Two ways, both linkat(2) through libc: the fd itself with AT_EMPTY_PATH (~30 us a
    link here; any user from Linux 6.10, before only with CAP_DAC_READ_SEARCH), or its
    /proc/self/fd link, followed (~40 us; any user, as open(2) shows, but not where /proc
    is missing). The first that works is kept for the process. (Python's os.link cannot
    do either: it calls link(2), which never follows the /proc link whatever
    follow_symlinks says, so that way failed with EXDEV every time.)
    """
    global _empty_path_first
    by_fd = (fd, b"", dest, _AT_EMPTY_PATH)
    by_proc = (_AT_FDCWD, b"/proc/self/fd/%d" % fd, dest, _AT_SYMLINK_FOLLOW)
    first, second = (by_fd, by_proc) if _empty_path_first else (by_proc, by_fd)
    try:
        _linkat(*first)
        return
    except FileExistsError:
        raise
    except OSError as first_error:
        # Only where the other way then succeeds is this one the trouble: from then on
        # the other. The destination's own fault (full, a name too long, a folder gone)
        # fails both, and nothing changes (any failure used to turn a way off for the
        # process, for good).
        try:
            _linkat(*second)
        except FileExistsError:
            raise
        except OSError as second_error:
            fd_error, proc_error = (first_error, second_error) if _empty_path_first \
                else (second_error, first_error)
            # The fd's words are the plain ones (/proc said EXDEV for a read-only folder
            # to a user here, the fd EACCES), unless the fd way is what is refused.
            if fd_error.errno in (errno.EPERM, errno.ENOENT) and \
                    proc_error.errno != fd_error.errno:
                raise proc_error from None
            raise fd_error from None
        _empty_path_first = not _empty_path_first


def _linkat(dirfd: int, src: bytes, dest: Path, flags: int) -> None:
    import ctypes

    if _c_library().linkat(dirfd, src, _AT_FDCWD, os.fsencode(dest), flags) != 0:
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, os.strerror(err), str(dest))
        raise OSError(err, os.strerror(err), str(dest))


def sync_file_system(fd: int) -> bool:
    """syncfs(2): everything written to the file system that holds `fd`, in one call
    (one journal commit instead of one per file). False where there is no syncfs."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return _c_library().syncfs(fd) == 0
    except (OSError, AttributeError):
        return False


def _folder_of(path: str | Path) -> str:
    """The folder of a file, as a string: a Path's `parent` is a new object to parse and
    hash each time, a tenth of a restore of many small files."""
    return os.path.dirname(path) or "."


# File systems (st_dev) known to take O_TMPFILE files that can be named later: probed
# once each, not once per folder (a tree restore made a probe in each new folder).
_unnamed_ok: dict[int, bool] = {}
# Where probes are named when it is on the same file system: the app's own data folder,
# so that a process killed between naming a probe and removing it leaves it there, never
# among the user's restored files (found by test_kill.py's tree restores).
_probe_home: str | None = None


def set_probe_home(folder: str | Path) -> None:
    """The app's data folder (the engine sets it); probes a killed run left there go."""
    global _probe_home
    _probe_home = os.fspath(folder)
    try:
        for entry in os.scandir(_probe_home):
            if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith("-probe"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
    except OSError:
        pass


def _unnamed_file(folder: str | Path, device: int | None = None) -> int | None:
    """An O_TMPFILE in `folder` if this system can later give it a name, else None.
    `device`: the folder's st_dev, if the caller knows it (saves a stat a file)."""
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if not tmpfile or not hasattr(os, "fsencode"):
        return None
    folder = os.fspath(folder)
    if device is None:
        try:
            device = os.stat(folder).st_dev
        except OSError:
            return None
    known = _unnamed_ok.get(device)
    if known is False:
        return None
    if known is None:
        where = folder
        with contextlib.suppress(OSError):
            if _probe_home is not None and os.stat(_probe_home).st_dev == device:
                where = _probe_home
        try:
            probe = os.open(where, tmpfile | os.O_WRONLY, 0o600)
        except OSError:  # not Linux, or a file system without O_TMPFILE
            return None
        try:
            name = temp_name(Path(where, "probe"))
            _link_fd(probe, name)
            name.unlink()
        except OSError:
            _unnamed_ok[device] = False
            return None
        finally:
            os.close(probe)
        _unnamed_ok[device] = True
    try:
        return os.open(folder, tmpfile | os.O_WRONLY, 0o600)
    except OSError:
        return None


class PendingFile:
    """A file that appears under its name only when complete, and never half-written.

    On Linux it is an unnamed O_TMPFILE in the destination folder: if the process is
    killed, the kernel frees it and nothing is left. Elsewhere it is a hidden temporary
    file beside the destination. Owner-only permissions either way.
    """

    def __init__(self, dest: Path, fd: int | None = None, folder: str | None = None,
                 mode: int = -1) -> None:
        """`fd`: an unnamed file already made in `dest`'s folder (MadeAhead), adopted;
        `folder`: that folder, if the caller has it; `mode`: the permission bits the file
        had when stored (else owner-only), set before it has a name."""
        self.dest = dest
        self.folder = folder or _folder_of(dest)
        if fd is None:
            fd = _unnamed_file(self.folder)
        self._anonymous = fd is not None
        if fd is not None:
            self.out = StreamingFile(None, fd=fd)
        else:
            self.out = StreamingFile(dest.with_name(
                f".{dest.name}.cssm-{secrets.token_hex(6)}.partial"), 0o600)
        if mode >= 0 and hasattr(os, "fchmod"):   # (no POSIX modes on Windows)
            try:
                os.fchmod(self.out.fd, mode & 0o777)
            except BaseException:
                self.discard()
                raise

    def write(self, data: bytes | memoryview) -> None:
        self.out.write(data)

    def stamp(self, mtime_ns: int) -> None:
        """Set the time before a caller syncs the file system for many files at once."""
        if self._anonymous:
            os.utime(self.out.fd, ns=(mtime_ns, mtime_ns))

    def publish(self, overwrite: bool, mtime_ns: int, sync_dir: bool = True,
                synced: bool = False) -> None:
        """fsync, then give it its name; without `overwrite` never replace a file.
        `sync_dir=False`: the caller fsyncs the folder once for many files; `synced`: the
        caller stamped it and made its data durable (sync_file_system)."""
        if self._anonymous:
            if not synced:
                os.utime(self.out.fd, ns=(mtime_ns, mtime_ns))
                self.out.sync()
            else:
                self.out.settle()   # a failed background flush, before the file has a name
            if overwrite:
                named = temp_name(self.dest)
                _link_fd(self.out.fd, named)
                try:
                    os.replace(named, self.dest)
                except OSError:   # a folder in the way, say: the temporary name goes
                    with contextlib.suppress(OSError):
                        named.unlink()
                    raise
            else:
                _link_fd(self.out.fd, self.dest)
            self.out.close()
        else:
            assert self.out.path is not None
            if synced:
                self.out.close()
            else:
                self.out.sync_and_close()
            os.utime(self.out.path, ns=(mtime_ns, mtime_ns))
            _rename_into_place(self.out.path, self.dest, overwrite)
        if sync_dir:
            fsync_dir(self.folder)

    def discard(self) -> None:
        self.out.discard()


def _rename_into_place(tmp: Path, dest: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError:  # file systems without hard links (FAT, some network shares)
        if dest.exists():
            raise FileExistsError(str(dest)) from None
        os.rename(tmp, dest)
        return
    tmp.unlink()


_MAKING, _TAKEN, _NONE = object(), object(), object()


@dataclass(slots=True)
class _Pace:
    """Files one side of MadeAhead made since it last judged their speed, and their CPU."""
    made: int = 0
    spent: float = 0.0


class MadeAhead:
    """The unnamed files of a restore, made ahead of their data on a thread of their own
    while making them is slow, and by the caller, as it takes them, while it is quick.

    Making an inode is kernel work, begun here while the key is derived and the pack is
    read (which need no file). Where it is slow (ext4 without a journal looks at every
    recently freed inode in turn: 0.3-0.5 ms a file after a large delete here, most of a
    restore of many small files) the thread keeps ahead and a second joins it: the calls
    release the GIL, so two make them in about half the time. Where it is quick (~10-50
    us) a thread beside the caller only hands the GIL back and forth (a futex wake or two
    a file: a 20,000-file restore took 3.4 s with one thread, 2.75 s with none), so the
    thread stops and the caller makes each file as it takes it. Slowness can begin
    part-way (the first files found clean inodes), so every SLOW_AFTER files made, on
    either side, are timed, and a thread starts again when they were slow.

    The caller `take`s each target's file as its data comes; a target that could not be
    made (no O_TMPFILE, a file in the way of its folder, no fds left) is the caller's to
    make, as without this, so every error is still met, and said, where the file is
    written. At most `ahead` files wait open. `close` closes what was never taken
    (unnamed: nothing is left) and removes the folders made here that stayed empty (a
    wrong password, a failed restore).
    """

    # A thread keeps on (and a second joins) while the last SLOW_AFTER files made took
    # over SLOW_MAKE seconds of CPU time each (thread_time: the kernel's work, not waits
    # for the GIL); below that a thread stops, and the caller makes its own.
    SLOW_AFTER, SLOW_MAKE = 16, 0.0002

    def __init__(self, targets: list[Path], ahead: int = 128, threads: int = 2) -> None:
        self._targets = targets
        self._index: dict[Path, int] = {}
        for i, t in enumerate(targets):
            self._index.setdefault(t, i)
        self._state: dict[int, object] = {}    # _MAKING, _TAKEN, _NONE or an fd
        self._next = 0
        self._waiting = 0                      # made, not yet taken
        self._ahead = ahead
        self._closed = False
        self._cond = threading.Condition()
        self._folders: list[str] = []          # made here
        self._ready: dict[str, int] = {}       # folders known to exist: their st_dev
        self._max_threads = threads if getattr(os, "O_TMPFILE", 0) else 0
        self._threads: list[threading.Thread] = []   # every thread started (close joins)
        self._running = 0                      # of them, still making
        self._pace = _Pace()                   # the caller's own files
        self._slow = False     # seen slow once: threads keep on (quick spells come and go)
        if self._max_threads:
            with self._cond:
                self._add_thread()

    def _add_thread(self) -> None:
        """(Under the lock, so that close() joins every thread there is.)"""
        if self._closed or self._running >= self._max_threads:
            return
        thread = threading.Thread(target=self._run, name="cssm-make", daemon=True)
        self._threads.append(thread)
        self._running += 1
        thread.start()

    def __enter__(self) -> MadeAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        pace = _Pace()
        while True:
            with self._cond:
                while not self._closed and self._waiting >= self._ahead:
                    self._cond.wait()
                if self._closed or self._next >= len(self._targets):
                    self._running -= 1
                    return
                i = self._next
                self._next += 1
                if i in self._state or self._index[self._targets[i]] != i:
                    continue          # taken already, or a second target of one path
                self._state[i] = _MAKING
                self._waiting += 1
            fd, slow = self._make_timed(_folder_of(self._targets[i]), pace)
            with self._cond:
                if fd is None:
                    self._waiting -= 1
                self._state[i] = _NONE if fd is None else fd
                self._cond.notify_all()
                if slow:
                    self._slow = True
                    self._add_thread()
                elif slow is False and not self._slow:
                    self._running -= 1     # quick: the caller makes its own
                    return

    def _make_timed(self, folder: str, pace: _Pace) -> tuple[int | None, bool | None]:
        """A file made in `folder` and counted in `pace`; every SLOW_AFTER files, whether
        they were slow (None in between)."""
        began = time.thread_time()
        fd = self._make(folder)
        pace.made += 1
        pace.spent += time.thread_time() - began
        if pace.made < self.SLOW_AFTER:
            return fd, None
        slow = pace.spent > self.SLOW_AFTER * self.SLOW_MAKE
        pace.made, pace.spent = 0, 0.0
        return fd, slow

    def _make(self, folder: str) -> int | None:
        if folder not in self._ready:
            missing: list[str] = []
            up = folder
            # A relative folder's walk ends at "" (the current folder): it once made
            # `isdir("")` false and gave up, so no file was made ahead for `-o out`.
            while up and not os.path.isdir(up):
                missing.append(up)
                if os.path.dirname(up) == up:
                    return None
                up = os.path.dirname(up)
            for f in reversed(missing):
                try:
                    os.mkdir(f)
                except FileExistsError:
                    continue          # the other thread made it, or a file is there (below)
                except OSError:
                    return None
                self._folders.append(f)
            try:
                self._ready[folder] = os.stat(folder).st_dev
            except OSError:
                return None
        return _unnamed_file(folder, self._ready[folder])

    def take(self, dest: Path) -> int | None:
        """`dest`'s unnamed file, or None: the caller makes it itself."""
        i = self._index.get(dest)
        if i is None:
            return None
        with self._cond:
            while self._state.get(i) is _MAKING:
                self._cond.wait()
            got = self._state.get(i)
            self._state[i] = _TAKEN
            if isinstance(got, int):
                self._waiting -= 1
                if self._running:
                    self._cond.notify_all()
                return got
            if got is not None or self._running or not self._max_threads:
                return None    # could not be made, or a thread is on its way past it
            self._next = max(self._next, i + 1)
        # No thread: made here, timed as a thread's are (a thread starts if it is slow).
        fd, slow = self._make_timed(_folder_of(dest), self._pace)
        if slow:
            with self._cond:
                self._slow = True
                self._add_thread()
        return fd

    def close(self) -> None:
        with self._cond:
            self._closed = True   # no thread is added from now on
            self._cond.notify_all()
        for t in list(self._threads):
            t.join()
        for i, got in self._state.items():
            if isinstance(got, int):
                os.close(got)
                self._state[i] = _TAKEN
        self._waiting = 0
        # Deepest first (two threads append in no set order); rmdir never removes content.
        for folder in sorted(self._folders, key=len, reverse=True):
            with contextlib.suppress(OSError):   # not empty: a file was restored there
                os.rmdir(folder)
        self._folders.clear()


class DurableBatch:
    """Many small files, each appearing whole under its name or not at all, made durable
    together: one syncfs per file system and batch instead of an fsync per file (each
    fsync is a journal commit: 20,000 files took 17 s that way, 6 s this way), then the
    names, then each folder once. At most `limit` files are open at a time."""

    def __init__(self, limit: int = 256, made: MadeAhead | None = None) -> None:
        self.limit = limit
        self.made = made
        self._open: list[tuple[object, PendingFile, bool, int]] = []
        self._folders: set[str] = set()
        self._made: set[str] = set()     # folders known to exist (made or found)
        self.done: list[tuple[object, Path | OSError]] = []

    def add(self, key: object, dest: Path, data: bytes, mtime_ns: int,
            overwrite: bool = False, mode: int = -1) -> None:
        """Write `data` for `dest`; its outcome (the path, or the OSError: FileExistsError
        when `dest` is taken, NotADirectoryError when a file is where a folder must be) is
        in `done` once the batch is flushed."""
        try:
            # No look first whether `dest` is taken: naming the file (a link) fails then,
            # and never replaces anything. Two stats a file were a tenth of a restore.
            folder = _folder_of(dest)
            fd = self.made.take(dest) if self.made is not None else None
            if fd is not None:
                self._made.add(folder)
            elif folder not in self._made:
                try:
                    os.makedirs(folder, exist_ok=True)
                except (FileExistsError, NotADirectoryError) as exc:   # a file is there
                    raise NotADirectoryError(folder) from exc
                self._made.add(folder)
            pending = PendingFile(dest, fd, folder, mode)
        except OSError as exc:
            self.done.append((key, exc))
            return
        try:
            pending.write(data)
            pending.stamp(mtime_ns)
        except OSError as exc:
            pending.discard()
            self.done.append((key, exc))
            return
        self._open.append((key, pending, overwrite, mtime_ns))
        if len(self._open) >= self.limit:
            self.flush()

    def flush(self) -> None:
        devices: dict[int, int] = {}
        folders: set[str] = set()
        for _, pending, _, _ in self._open:
            if pending.folder not in folders:    # a file is on its folder's file system
                folders.add(pending.folder)
                devices.setdefault(os.fstat(pending.out.fd).st_dev, pending.out.fd)
        synced = all([sync_file_system(fd) for fd in devices.values()])
        for key, pending, overwrite, mtime_ns in self._open:
            try:
                pending.publish(overwrite, mtime_ns, sync_dir=False, synced=synced)
            except OSError as exc:
                pending.discard()
                self.done.append((key, exc))
                continue
            self._folders.add(pending.folder)
            self.done.append((key, pending.dest))
        self._open.clear()

    def drain(self) -> list[tuple[object, Path | OSError]]:
        """The outcomes known so far (flushed files, and files that failed at once)."""
        done, self.done = self.done, []
        return done

    def close(self) -> list[tuple[object, Path | OSError]]:
        """Flush the rest, sync the folders once each; the outcomes not yet drained."""
        self.flush()
        for folder in self._folders:
            fsync_dir(folder)
        self._folders.clear()
        return self.drain()

    def discard(self) -> None:
        """On a cancel or failure: files not yet named are dropped."""
        for _, pending, _, _ in self._open:
            pending.discard()
        self._open.clear()
