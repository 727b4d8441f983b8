"""The local index of stored files: a SQLite cache that `catalog rebuild` can recreate."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import prepare_dir
from .durable import private_file
from .errors import CatalogError
from .text import name_bytes, name_text

SCHEMA_VERSION = 5

# A file's health in the words both faces show (the window and `cssm` say the same).
SAFE = "safe"           # every store holds a good part
AT_RISK = "at risk"     # still >= k good stores, but some part is missing, damaged or
                        # on a store that is down: restorable, repair recommended
LOST = "lost"           # fewer than k good stores were found at the last check
MIN_ID_PREFIX = 6       # hex digits of a file id that name it (as `git` takes short ids)
_SEVERITY = {SAFE: 0, AT_RISK: 1, LOST: 2}


def health_of(damaged: int, n: int, k: int) -> str:
    """Safe with no bad store; at risk while k of n are still good; else lost."""
    if not damaged:
        return SAFE
    return AT_RISK if n - damaged >= k else LOST


def worst(*healths: str) -> str:
    return max(healths, key=lambda h: _SEVERITY.get(h, 2))


@dataclass(slots=True)   # one per file: not frozen, whose __init__ costs ~3 us more
class Entry:
    id: str
    name: str
    size: int
    mtime_ns: int
    stored_at_ns: int
    tag: str        # content_tag() of the file (keyed); '' until known
    n: int
    k: int
    health: str = SAFE
    damaged: str = ""   # comma-separated store names
    pack: str = ""      # the id of the pack that holds it (a small file); '' stored alone
    # Files this row stands for: 1, or for a pack's row in verify and repair (one check
    # of the pack) the files in it, so that "n files" counts files, not objects.
    files: int = 1

    @property
    def stored_as(self) -> str:
        """The file id the stores know: its pack's, or its own."""
        return self.pack or self.id

    @property
    def damaged_stores(self) -> list[str]:
        return [s for s in self.damaged.split(",") if s]

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "size": self.size,
                "stored_at": _iso(self.stored_at_ns), "mtime": _iso(self.mtime_ns),
                "n": self.n, "k": self.k, "health": self.health,
                "damaged_stores": self.damaged_stores}


def newest_per_name(entries: Iterable[Entry]) -> list[Entry]:
    """One copy of each name, the newest: what restoring into one folder takes (copies
    of one name would land on one path), in the order of their names."""
    newest: dict[str, Entry] = {}
    for e in entries:
        if e.name not in newest or e.stored_at_ns > newest[e.name].stored_at_ns:
            newest[e.name] = e
    return sorted(newest.values(), key=lambda e: e.name)


def _iso(ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")


_COLUMNS = "id, name, size, mtime_ns, stored_at_ns, tag, n, k, health, damaged, pack"
_MARKS = ",".join("?" * 12)


class Catalog:
    """One SQLite file for every vault; rows are keyed by (vault id, file id). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            prepare_dir(path.parent)
            # Names and sizes of the user's files: owner-only, like its journal files,
            # which SQLite creates with the database's permissions.
            private_file(path)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            for journal in ("-wal", "-shm"):
                side = path.with_name(path.name + journal)
                if side.exists():
                    private_file(side)
            self._migrate()
        except OSError as exc:
            raise CatalogError(f"catalog {path} cannot be opened: {exc.strerror}") from exc
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog {path} cannot be opened: {exc}") from exc
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"catalog schema {version} is newer than this version")
        if version < 1:
            self._db.executescript("""
                BEGIN;
                CREATE TABLE IF NOT EXISTS files (
                    vault_id TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,
                    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                    stored_at_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,
                    n INTEGER NOT NULL, k INTEGER NOT NULL,
                    health TEXT NOT NULL, damaged TEXT NOT NULL DEFAULT '',
                    PRIMARY KEY (vault_id, id));
                CREATE INDEX IF NOT EXISTS files_name ON files (vault_id, name);
                PRAGMA user_version = 1;
                COMMIT;""")
            version = 1
        if version < 2:
            # The first release kept each file's plain SHA-256, which confirms a guess
            # about its content; the keyed tag replaces it (filled in by put and rebuild).
            self._db.executescript("""
                BEGIN;
                ALTER TABLE files RENAME COLUMN sha256 TO tag;
                UPDATE files SET tag = '';
                PRAGMA user_version = 2;
                COMMIT;""")
            self._db.execute("VACUUM")   # no old hash left in free pages
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            version = 2
        if version < 3:
            # Health in the words the faces use ("healthy"/"degraded" said too little).
            self._db.executescript("""
                BEGIN;
                UPDATE files SET health = 'safe' WHERE health = 'healthy';
                UPDATE files SET health = 'at risk' WHERE health = 'degraded';
                PRAGMA user_version = 3;
                COMMIT;""")
        if version < 4:
            # Small files live in packs: the pack's id is where the stores know them.
            self._db.executescript("""
                BEGIN;
                ALTER TABLE files ADD COLUMN pack TEXT NOT NULL DEFAULT '';
                CREATE INDEX IF NOT EXISTS files_pack ON files (vault_id, pack);
                PRAGMA user_version = 4;
                COMMIT;""")
        if version < 5:
            # History: snapshots of protected folders, what each holds, and every object
            # id already looked at (the catalog follows the stores without a rebuild).
            self._db.executescript("""
                BEGIN;
                CREATE TABLE IF NOT EXISTS snapshots (
                    vault_id TEXT NOT NULL, id TEXT NOT NULL, time_ns INTEGER NOT NULL,
                    host BLOB NOT NULL, root BLOB NOT NULL, label BLOB NOT NULL,
                    files INTEGER NOT NULL, size INTEGER NOT NULL, failed INTEGER NOT NULL,
                    n INTEGER NOT NULL, k INTEGER NOT NULL, health TEXT NOT NULL,
                    damaged TEXT NOT NULL DEFAULT '',
                    PRIMARY KEY (vault_id, id));
                CREATE INDEX IF NOT EXISTS snapshots_time ON snapshots (vault_id, time_ns);
                CREATE TABLE IF NOT EXISTS snapshot_records (
                    vault_id TEXT NOT NULL, snapshot_id TEXT NOT NULL, entry_id TEXT NOT NULL,
                    name BLOB NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                    mode INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, ino INTEGER NOT NULL);
                CREATE INDEX IF NOT EXISTS records_of
                    ON snapshot_records (vault_id, snapshot_id);
                CREATE INDEX IF NOT EXISTS records_entry
                    ON snapshot_records (vault_id, entry_id);
                CREATE TABLE IF NOT EXISTS seen (
                    vault_id TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (vault_id, id));
                CREATE TABLE IF NOT EXISTS state (
                    vault_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                    PRIMARY KEY (vault_id, key));
                PRAGMA user_version = 5;
                COMMIT;""")

    def close(self) -> None:
        self._db.close()

    def query(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        """For the history's tables (snapshots/history.py), under the same lock."""
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def write(self, statements: Iterable[tuple[str, Iterable[tuple[object, ...]]]]) -> None:
        """(sql, rows) pairs in one transaction: all of them, or none."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for sql, rows in statements:
                    self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def add(self, vault_id: str, entry: Entry) -> None:
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO files (vault_id, {_COLUMNS}) "
                             f"VALUES ({_MARKS})", (vault_id, *_row(entry)))

    def replace_all(self, vault_id: str, entries: Iterable[Entry]) -> None:
        self._write_many(vault_id, entries, replace_vault=True)

    def add_many(self, vault_id: str, entries: Iterable[Entry]) -> None:
        self._write_many(vault_id, entries)

    def _write_many(self, vault_id: str, entries: Iterable[Entry],
                    replace_vault: bool = False) -> None:
        """One transaction: a list of thousands is written at once, or not at all."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if replace_vault:
                    self._db.execute("DELETE FROM files WHERE vault_id = ?", (vault_id,))
                self._db.executemany(f"INSERT OR REPLACE INTO files (vault_id, {_COLUMNS}) "
                                     f"VALUES ({_MARKS})",
                                     [(vault_id, *_row(e)) for e in entries])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def entries(self, vault_id: str) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM files WHERE vault_id = ? "
                                    "ORDER BY name, stored_at_ns", (vault_id,)).fetchall()
        return [_entry(row) for row in rows]

    def find(self, vault_id: str, ref: str) -> list[Entry]:
        """By full id, by an id prefix of 6+ hex digits, or by exact name."""
        name = _db_name(ref)
        prefix = ref if isinstance(name, str) else ""   # not text: no id either
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM files WHERE vault_id = ? AND (id = ? OR name = ? "
                f"OR (length(?) >= {MIN_ID_PREFIX} AND substr(id, 1, length(?)) = lower(?))) "
                "ORDER BY stored_at_ns", (vault_id, prefix.lower(), name, prefix, prefix,
                                          prefix)).fetchall()
        return [_entry(row) for row in rows]

    def in_pack(self, vault_id: str, pack_id: str) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM files WHERE vault_id = ? AND "
                                    "pack = ?", (vault_id, pack_id)).fetchall()
        return [_entry(row) for row in rows]

    def move_to_pack(self, vault_id: str, ids: Iterable[str], pack_id: str) -> None:
        with self._lock:
            self._db.executemany("UPDATE files SET pack = ? WHERE vault_id = ? AND id = ?",
                                 [(pack_id, vault_id, i) for i in ids])

    def set_health_of_pack(self, vault_id: str, pack_id: str, health: str,
                           damaged: Iterable[str]) -> None:
        with self._lock:
            self._db.execute("UPDATE files SET health = ?, damaged = ? WHERE vault_id = ? "
                             "AND pack = ?", (health, ",".join(sorted(damaged)), vault_id,
                                              pack_id))

    def named(self, vault_id: str, name: str) -> list[Entry]:
        """The copies stored under exactly this name, oldest first (by its index)."""
        return self.named_many(vault_id, [name]).get(name, [])

    def named_many(self, vault_id: str, names: Iterable[str]) -> dict[str, list[Entry]]:
        """named() for a batch: the names that are stored, in a few queries instead of one
        per file (a put of thousands of small files asked thousands of times)."""
        wanted = list(dict.fromkeys(names))
        found: dict[str, list[Entry]] = {}
        with self._lock:
            for at in range(0, len(wanted), 500):   # below SQLite's bound-variable limit
                chunk = wanted[at:at + 500]
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM files WHERE vault_id = ? AND name IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY stored_at_ns",
                    (vault_id, *map(_db_name, chunk))).fetchall()
                for row in rows:
                    entry = _entry(row)
                    found.setdefault(entry.name, []).append(entry)
        return found

    def remove(self, vault_id: str, file_id: str) -> None:
        self.remove_many(vault_id, [file_id])

    def remove_many(self, vault_id: str, file_ids: Iterable[str]) -> None:
        """One transaction for all (one per file took a commit each)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("DELETE FROM files WHERE vault_id = ? AND id = ?",
                                     ((vault_id, fid) for fid in file_ids))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def by_ids(self, vault_id: str, file_ids: Iterable[str]) -> dict[str, Entry]:
        """The entries of these ids, a few queries for any number of them."""
        wanted = list(dict.fromkeys(file_ids))
        found: dict[str, Entry] = {}
        with self._lock:
            for at in range(0, len(wanted), 500):
                chunk = wanted[at:at + 500]
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM files WHERE vault_id = ? AND id IN "
                    f"({','.join('?' * len(chunk))})", (vault_id, *chunk)).fetchall()
                found.update((row[0], _entry(row)) for row in rows)
        return found

    def set_health(self, vault_id: str, file_id: str, health: str, damaged: Iterable[str]) -> None:
        with self._lock:
            self._db.execute("UPDATE files SET health = ?, damaged = ? WHERE vault_id = ? "
                             "AND id = ?", (health, ",".join(sorted(damaged)), vault_id, file_id))


def _db_name(name: str) -> str | bytes:
    """SQLite text must be UTF-8: a name the file system gave as other bytes (kept by
    Python as surrogates) is stored as a BLOB of those bytes, and comes back the same."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name_bytes(name)
    return name


def _entry(row: tuple[Any, ...]) -> Entry:
    if isinstance(row[1], bytes):
        row = (row[0], name_text(row[1]), *row[2:])
    return Entry(*row)


def _row(e: Entry) -> tuple[object, ...]:
    return (e.id, _db_name(e.name), e.size, e.mtime_ns, e.stored_at_ns, e.tag, e.n, e.k, e.health,
            e.damaged, e.pack)
