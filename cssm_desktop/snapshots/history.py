"""The catalog's tables of snapshots: a cache of what the stores hold, like its file list
(`catalog rebuild` and the follow recreate them)."""

from __future__ import annotations

from collections.abc import Iterable

from ..catalog import Catalog
from ..text import name_bytes, name_text
from .manifest import Record, Snapshot

_SNAP = "id, time_ns, host, root, label, files, size, failed"


def _b(text: str) -> bytes:
    return name_bytes(text)


def _snapshot(row: tuple) -> Snapshot:
    sid, time_ns, host, root, label, files, size, failed = row
    return Snapshot(sid, time_ns, name_text(host), name_text(root), name_text(label), [],
                    failed, files, size)


class History:
    def __init__(self, catalog: Catalog, vault_id: str) -> None:
        self.catalog = catalog
        self.vault_id = vault_id

    def add(self, snap: Snapshot, n: int, k: int, health: str, damaged: str = "") -> None:
        v = self.vault_id
        self.catalog.write([
            ("DELETE FROM snapshot_records WHERE vault_id = ? AND snapshot_id = ?",
             [(v, snap.id)]),
            ("INSERT OR REPLACE INTO snapshots (vault_id, id, time_ns, host, root, label, "
             "files, size, failed, n, k, health, damaged) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
             [(v, snap.id, snap.time_ns, _b(snap.host), _b(snap.root), _b(snap.label),
               len(snap.records), sum(r.size for r in snap.records), snap.failed, n, k,
               health, damaged)]),
            ("INSERT INTO snapshot_records (vault_id, snapshot_id, entry_id, name, size, "
             "mtime_ns, mode, ctime_ns, ino) VALUES (?,?,?,?,?,?,?,?,?)",
             [(v, snap.id, r.entry_id, _b(r.name), r.size, r.mtime_ns, r.mode, r.ctime_ns,
               r.ino) for r in snap.records]),
            ("INSERT OR IGNORE INTO seen (vault_id, id) VALUES (?, ?)", [(v, snap.id)]),
        ])

    def snapshots(self) -> list[Snapshot]:
        """Oldest first, records not loaded (listing a thousand costs one query)."""
        rows = self.catalog.query(f"SELECT {_SNAP} FROM snapshots WHERE vault_id = ? "
                                  "ORDER BY time_ns, id", (self.vault_id,))
        return [_snapshot(r) for r in rows]

    def get(self, snapshot_id: str) -> Snapshot | None:
        rows = self.catalog.query(f"SELECT {_SNAP} FROM snapshots WHERE vault_id = ? AND "
                                  "id = ?", (self.vault_id, snapshot_id))
        return _snapshot(rows[0]) if rows else None

    def find(self, prefix: str) -> list[Snapshot]:
        """By id or an id prefix (as files are found)."""
        rows = self.catalog.query(
            f"SELECT {_SNAP} FROM snapshots WHERE vault_id = ? AND substr(id, 1, ?) = ? "
            "ORDER BY time_ns", (self.vault_id, len(prefix), prefix.lower()))
        return [_snapshot(r) for r in rows]

    def records(self, snapshot_id: str) -> list[Record]:
        rows = self.catalog.query(
            "SELECT entry_id, name, size, mtime_ns, mode, ctime_ns, ino FROM "
            "snapshot_records WHERE vault_id = ? AND snapshot_id = ? ORDER BY name",
            (self.vault_id, snapshot_id))
        return [Record(e, name_text(n), s, m, mode, c, i) for e, n, s, m, mode, c, i in rows]

    def with_records(self, snap: Snapshot) -> Snapshot:
        snap.records = self.records(snap.id)
        return snap

    def latest(self, host: str, root: str) -> Snapshot | None:
        rows = self.catalog.query(
            f"SELECT {_SNAP} FROM snapshots WHERE vault_id = ? AND host = ? AND root = ? "
            "ORDER BY time_ns DESC LIMIT 1", (self.vault_id, _b(host), _b(root)))
        return self.with_records(_snapshot(rows[0])) if rows else None

    def remove(self, ids: Iterable[str]) -> None:
        v = self.vault_id
        rows = [(v, i) for i in ids]
        self.catalog.write([
            ("DELETE FROM snapshot_records WHERE vault_id = ? AND snapshot_id = ?", rows),
            ("DELETE FROM snapshots WHERE vault_id = ? AND id = ?", rows),
        ])

    def referenced(self, snapshot_ids: Iterable[str] | None = None) -> set[str]:
        """Entry ids the given snapshots (all, by default) hold."""
        if snapshot_ids is None:
            rows = self.catalog.query("SELECT DISTINCT entry_id FROM snapshot_records WHERE "
                                      "vault_id = ?", (self.vault_id,))
            return {r[0] for r in rows}
        out: set[str] = set()
        for sid in snapshot_ids:
            out.update(r[0] for r in self.catalog.query(
                "SELECT entry_id FROM snapshot_records WHERE vault_id = ? AND "
                "snapshot_id = ?", (self.vault_id, sid)))
        return out

    def holding(self, entry_ids: Iterable[str]) -> set[str]:
        """The ids among these that a snapshot names."""
        wanted = list(dict.fromkeys(entry_ids))
        out: set[str] = set()
        for at in range(0, len(wanted), 500):
            chunk = wanted[at:at + 500]
            out.update(r[0] for r in self.catalog.query(
                "SELECT DISTINCT entry_id FROM snapshot_records WHERE vault_id = ? AND "
                f"entry_id IN ({','.join('?' * len(chunk))})", (self.vault_id, *chunk)))
        return out

    def set_health(self, snapshot_id: str, health: str, damaged: Iterable[str]) -> None:
        self.catalog.write([("UPDATE snapshots SET health = ?, damaged = ? WHERE vault_id = ? "
                             "AND id = ?", [(health, ",".join(sorted(damaged)),
                                             self.vault_id, snapshot_id)])])

    def health(self) -> dict[str, tuple[str, str, int, int]]:
        """Snapshot id -> (health, damaged stores, n, k)."""
        rows = self.catalog.query("SELECT id, health, damaged, n, k FROM snapshots WHERE "
                                  "vault_id = ?", (self.vault_id,))
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    # ------------------------------------------------------------ small state

    def get_value(self, key: str) -> str:
        rows = self.catalog.query("SELECT value FROM state WHERE vault_id = ? AND key = ?",
                                  (self.vault_id, key))
        return rows[0][0] if rows else ""

    def set_value(self, key: str, value: str) -> None:
        self.catalog.write([("INSERT OR REPLACE INTO state (vault_id, key, value) "
                             "VALUES (?, ?, ?)", [(self.vault_id, key, value)])])

    # ------------------------------------------------------------ what follow looked at

    def stored_ids(self) -> set[str]:
        """Every object id the catalog lists: files stored alone, packs, snapshots (one
        query; loading 20,000 entries to learn this took most of `cssm snapshots`)."""
        rows = self.catalog.query(
            "SELECT DISTINCT CASE pack WHEN '' THEN id ELSE pack END FROM files WHERE "
            "vault_id = ? UNION SELECT id FROM snapshots WHERE vault_id = ?",
            (self.vault_id, self.vault_id))
        return {r[0] for r in rows}

    def seen(self) -> set[str]:
        rows = self.catalog.query("SELECT id FROM seen WHERE vault_id = ?", (self.vault_id,))
        return {r[0] for r in rows}

    def mark_seen(self, ids: Iterable[str]) -> None:
        self.catalog.write([("INSERT OR IGNORE INTO seen (vault_id, id) VALUES (?, ?)",
                             [(self.vault_id, i) for i in ids])])

    def forget_seen(self, ids: Iterable[str]) -> None:
        self.catalog.write([("DELETE FROM seen WHERE vault_id = ? AND id = ?",
                             [(self.vault_id, i) for i in ids])])

    def clear(self) -> None:
        """Before a rebuild fills them again from the stores."""
        v = [(self.vault_id,)]
        self.catalog.write([("DELETE FROM snapshot_records WHERE vault_id = ?", v),
                            ("DELETE FROM snapshots WHERE vault_id = ?", v),
                            ("DELETE FROM seen WHERE vault_id = ?", v)])
