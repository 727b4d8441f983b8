"""Local paths at the edges: which files a put takes, and where a stored name restores to.

Both faces use these, so a folder dropped on the window and `cssm put` of the same folder
store the same files under the same names, and skip the same things for the same reasons.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import FormatError, InputError
from .text import printable

LINK_SKIPPED = "symbolic link, not followed"
OWN_SKIPPED = "one of this app's own folders (a store, or where the app keeps its data)"
SPECIAL_SKIPPED = "not a regular file (a FIFO, socket or device)"


FILE, LINK, DIR = "file", "link", "dir"   # what a Source is (a folder: only an empty one)


@dataclass(slots=True)   # one per file: not frozen, whose __init__ costs ~3 us more
class Source:
    # The file's path as the system takes it. A string: a Path per file was a third of
    # the time of listing 20,000 small files, and opening it made a string again.
    path: str
    name: str       # the stored name: POSIX-style, relative, the folder's own name first
    size: int
    # FILE; LINK, a symbolic link inside a folder (stored as a link: its target, never
    # what it points to); DIR, an empty folder (others come back with their files).
    kind: str = FILE
    # What the listing's lstat said (0: not looked at): a backup compares these with its
    # last snapshot, as restic's fileChanged does, before it reads a byte.
    mtime_ns: int = 0
    ctime_ns: int = 0
    ino: int = 0
    mode: int = 0


class Excludes:
    """What a put leaves out on purpose (`--exclude`, an exclude file), as restic and
    rsync users write it: a pattern without a slash matches a file or folder of that name
    anywhere (`*.tmp`, `node_modules`); one with a slash matches the stored path from the
    folder's own name (`photos/raw/*`); a trailing slash matches folders only (`cache/`).
    A folder that matches is not entered at all."""

    def __init__(self, patterns: list[str]) -> None:
        self.names: list[tuple[str, bool]] = []   # (pattern, folders only)
        self.paths: list[tuple[str, bool]] = []
        for raw in patterns:
            pattern = raw.strip()
            if not pattern or pattern.startswith("#"):
                continue
            folders = pattern.endswith("/")
            pattern = pattern.rstrip("/").lstrip("/")
            (self.paths if "/" in pattern else self.names).append((pattern, folders))

    def __bool__(self) -> bool:
        return bool(self.names or self.paths)

    def __call__(self, name: str, folder: bool) -> bool:
        """Whether the stored path `name` (POSIX, from the folder's own name) is left out."""
        base = name.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(base, p) for p, only in self.names
                   if folder or not only) or \
            any(fnmatch.fnmatchcase(name, p) for p, only in self.paths if folder or not only)

    @classmethod
    def read(cls, patterns: list[str], files: list[Path]) -> Excludes:
        """Patterns given one by one, and those of exclude files (one a line, # notes)."""
        lines = list(patterns)
        for f in files:
            try:
                lines += f.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
            except OSError as exc:
                raise InputError(f"cannot read exclude file {printable(str(f))}: "
                                 f"{exc.strerror or exc}") from exc
        return cls(lines)


NOTHING_EXCLUDED = Excludes([])


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str
    asked: bool = False   # the path was given by name: not storing it is an error


def _unreadable(path: Path, exc: OSError, asked: bool = False,
                default: str = "unreadable") -> Skipped:
    """Left out because the system refused it, in the system's own words."""
    return Skipped(path, (exc.strerror or default).lower(), asked=asked)


def list_sources(paths: list[Path], own: frozenset[str] = frozenset(),
                 stop: threading.Event | None = None,
                 exclude: Excludes = NOTHING_EXCLUDED, links: bool = True
                 ) -> tuple[list[Source], list[Skipped]]:
    """The regular files under `paths`, and what was left out and why.

    A path given by name may be a link to a file (the user pointed at it); inside folders
    links are never followed: a link to a file inside the folder would store it twice under
    the target's name, a link out of it would store what the user did not choose, and a
    loop would never end. They are stored as links (`links`), or skipped; empty folders
    are listed too (as DIR). FIFOs, sockets and devices are skipped, never opened (opening a
    FIFO blocks until a writer comes). Folders in `own` (real paths: the stores' folders,
    the app's data) are never stored into the vault itself. `stop` ends the listing at
    the next folder (what was found so far is returned). What `exclude` matches is left
    out without a word (a path given by name is always taken).
    """
    files: list[Source] = []
    skipped: list[Skipped] = []
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            why = "symbolic link that leads nowhere" if path.is_symlink() else \
                "no such file or folder"
            skipped.append(Skipped(path, why, asked=True))
            continue
        except OSError as exc:
            skipped.append(_unreadable(path, exc, asked=True, default="cannot be read"))
            continue
        if stat.S_ISREG(st.st_mode):
            files.append(Source(str(path), path.name or "file", st.st_size, FILE,
                                st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode))
        elif stat.S_ISDIR(st.st_mode):
            if os.path.realpath(path) in own:
                skipped.append(Skipped(path, OWN_SKIPPED, asked=True))
            else:
                _walk(path, files, skipped, own, stop, exclude, links)
        else:
            skipped.append(Skipped(path, SPECIAL_SKIPPED, asked=True))
    return files, skipped


def _link(full: str, name: str, files: list[Source], skipped: list[Skipped],
          links: bool, st: os.stat_result | None = None) -> None:
    """A symbolic link inside a folder: stored as a link (its target), or skipped."""
    if not links:
        skipped.append(Skipped(Path(full), LINK_SKIPPED))
        return
    try:
        target = os.readlink(full)
    except OSError as exc:
        skipped.append(_unreadable(Path(full), exc))
        return
    if st is None:
        files.append(Source(full, name, len(os.fsencode(target)), LINK))
    else:
        files.append(Source(full, name, len(os.fsencode(target)), LINK, st.st_mtime_ns,
                            st.st_ctime_ns, st.st_ino, st.st_mode))


def _walk(top: Path, files: list[Source], skipped: list[Skipped], own: frozenset[str],
          stop: threading.Event | None = None, exclude: Excludes = NOTHING_EXCLUDED,
          links: bool = True) -> None:
    # `..` or `.` name the folder by its own name (its names began "../", and lost it).
    top_name = Path(os.path.abspath(top)).name or "folder"

    def failed(exc: OSError) -> None:
        where = Path(exc.filename or top)
        # The folder the user named, unreadable as a whole, fails the put (it exited 0);
        # a folder inside it is skipped with the reason.
        skipped.append(_unreadable(where, exc,
                                   asked=os.path.abspath(where) == os.path.abspath(top)))

    for dirpath, dirs, names in os.walk(top, onerror=failed):
        if stop is not None and stop.is_set():
            return
        here = Path(dirpath)
        rel = here.relative_to(top)
        keep = []
        prefix = PurePosixPath(top_name, *rel.parts).as_posix() + "/"
        if not dirs and not names:   # an empty folder: kept, as its files keep the others
            files.append(Source(dirpath, prefix[:-1], 0, DIR))
            continue
        for d in sorted(dirs):
            if exclude and exclude(prefix + d, folder=True):
                continue
            try:
                link = stat.S_ISLNK(os.lstat(here / d).st_mode)
            except OSError as exc:   # a path past PATH_MAX (C2): that folder, not the put
                skipped.append(_unreadable(here / d, exc))
                continue
            if link:
                _link(os.path.join(dirpath, d), prefix + d, files, skipped, links)
            elif own and os.path.realpath(here / d) in own:
                skipped.append(Skipped(here / d, OWN_SKIPPED))
            else:
                keep.append(d)
        dirs[:] = keep
        # Strings per file: a Path and a PurePosixPath per file were most of the time of
        # listing 20,000 small files.
        for fname in sorted(names):
            if exclude and exclude(prefix + fname, folder=False):
                continue
            full = os.path.join(dirpath, fname)
            try:
                st = os.lstat(full)
            except OSError as exc:
                skipped.append(_unreadable(Path(full), exc))
                continue
            if stat.S_ISLNK(st.st_mode):
                _link(full, prefix + fname, files, skipped, links, st)
            elif not stat.S_ISREG(st.st_mode):
                skipped.append(Skipped(Path(full), SPECIAL_SKIPPED))
            else:
                files.append(Source(full, prefix + fname, st.st_size, FILE, st.st_mtime_ns,
                                    st.st_ctime_ns, st.st_ino, st.st_mode))


FOLDER = "folder"   # in_the_way(): a folder, or a link to one (a restore never replaces it)
TAKEN = "taken"     # in_the_way(): a file, a link, anything else (replaced when asked)


def in_the_way(target: Path) -> str | None:
    """What a restored file would meet at `target`: None (nothing), FOLDER or TAKEN.
    One look (lstat): most targets of a restore are not there yet. A target that cannot
    be looked at counts as free: writing it then says why."""
    try:
        st = os.lstat(target)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode) or (stat.S_ISLNK(st.st_mode) and target.is_dir()):
        return FOLDER
    return TAKEN


# Characters Windows does not allow in a file name; elsewhere only "/" and NUL are barred.
_WINDOWS_BAD = set('<>:"|?*\\') | {chr(c) for c in range(32)}
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}


def safe_relative(name: str, windows: bool = sys.platform == "win32") -> Path:
    """A stored name as a relative path that cannot climb out of the destination folder.

    Names are split on "/" only (that is how put writes them, on every system). A name
    like `a:b` or `a\\b` is one file on Linux and macOS; on Windows those characters are
    replaced, never taken as a drive or a separator.
    """
    return Path(*safe_parts(name, windows))


def safe_parts(name: str, windows: bool = sys.platform == "win32") -> list[str]:
    """safe_relative's parts (a tree restore joins them onto its folder in one step)."""
    parts = []
    for part in name.split("/"):
        if part in ("", ".", "..") or "\x00" in part:
            continue
        if windows:
            part = "".join("_" if c in _WINDOWS_BAD else c for c in part).rstrip(" .")
            if part.split(".")[0].upper() in _WINDOWS_RESERVED:
                part = "_" + part
            if not part:
                continue
        parts.append(part)
    if not parts:
        raise FormatError(f"stored name {printable(name)} is not usable as a file name")
    return parts




def check_stored_name(name: str) -> None:
    """A name given by another program (the local API): relative, POSIX, no empty, `.`
    or `..` part, no NUL, at most 4096 bytes; InputError otherwise (one that climbs out
    of a restore folder would be refused later; here it is refused before a byte goes)."""
    raw = name.encode("utf-8", "surrogateescape")
    if not name or len(raw) > 4096:
        raise InputError("a name is 1 to 4096 bytes")
    if "\x00" in name or name.startswith("/") or "\\" in name:
        raise InputError(f"{printable(name)} is not a relative name with / between folders")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise InputError(f"{printable(name)} has an empty, . or .. part")
