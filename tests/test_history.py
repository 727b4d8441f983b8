"""Protected folders, snapshots, versions, retention, leases and the follow (issue 24)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cssm_desktop.config import Config, load_config
from cssm_desktop.core.layout import lease_prefix
from cssm_desktop.engine import Engine
from cssm_desktop.errors import FormatError, InputError
from cssm_desktop.snapshots import manifest
from cssm_desktop.snapshots.lease import EXCLUSIVE, SHARED, Lease, LeaseHeld, live_leases
from cssm_desktop.snapshots.manifest import Record, Snapshot
from cssm_desktop.snapshots.protect import ProtectedFolder
from cssm_desktop.snapshots.retention import SMART, Policy, apply_policy, parse_duration
from cssm_desktop.snapshots.schedule import Scheduler, Watcher, next_run

from .conftest import PASSWORD, folder_stores
from .test_cli import Cli, cli  # noqa: F401  (the fixture)


def _tree(root: Path) -> dict[str, tuple[str, bytes | str, int, int]]:
    """Every entry under root: kind, bytes or link target, permission bits, mtime."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath, name)
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p), 0, st.st_mtime_ns)
            elif p.is_dir():
                if not os.listdir(p):
                    out[rel] = ("dir", b"", st.st_mode & 0o777, st.st_mtime_ns)
            else:
                out[rel] = ("file", p.read_bytes(), st.st_mode & 0o777, st.st_mtime_ns)
    return out


def _make_folder(root: Path) -> Path:
    src = root / "docs"
    (src / "sub").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "a.txt").write_text("first")
    (src / "sub" / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))   # stored alone
    os.chmod(src / "a.txt", 0o751)
    os.symlink("a.txt", src / "link")
    return src


def test_a_file_edited_three_times_has_three_versions_and_each_snapshot_restores_exactly(
        folder_engine: Engine, tmp_path: Path) -> None:
    src = _make_folder(tmp_path)
    states = []
    for i, text in enumerate(("first", "second!", "third, longer")):
        (src / "a.txt").write_text(text)
        os.utime(src / "a.txt", ns=(10**18 + i, 10**18 + i))
        result = folder_engine.backup(src)
        assert not result.failed
        states.append((result.snapshot, _tree(src)))
    versions = folder_engine.versions("docs/a.txt")
    assert [v.size for v in versions] == [13, 7, 5]   # newest first
    assert folder_engine.resolve("docs/a.txt").id == versions[0].id   # get NAME: newest
    for snap, tree in states:
        out = tmp_path / f"out-{snap.id[:6]}"
        results = folder_engine.restore_snapshot(snap, out)
        assert all(isinstance(p, Path) for _, p in results)
        assert _tree(out / "docs") == tree   # bytes, modes, times, empty folder, link


def test_an_unchanged_folder_is_not_read_again_and_a_change_is_stored_alone(
        folder_engine: Engine, tmp_path: Path) -> None:
    src = _make_folder(tmp_path)
    first = folder_engine.backup(src)
    assert first.new == 4 and first.unchanged == 0
    again = folder_engine.backup(src)
    assert (again.new, again.unchanged, again.same_content) == (0, 4, 0)
    os.utime(src / "a.txt", ns=(1, 1))   # touched, same bytes: read, found stored
    (src / "sub" / "new.txt").write_text("new")
    third = folder_engine.backup(src)
    assert (third.new, third.unchanged, third.same_content) == (1, 3, 1)
    assert third.snapshot is not None and third.snapshot.files == 5


def test_a_second_computer_sees_snapshots_and_removals_without_a_rebuild(
        folder_engine: Engine, tmp_path: Path) -> None:
    src = _make_folder(tmp_path)
    folder_engine.backup(src)
    (src / "a.txt").write_text("changed")
    folder_engine.backup(src)
    other = Engine(Config(stores=folder_stores(tmp_path / "stores"), threshold=3),
                   catalog_path=tmp_path / "other.sqlite")
    other.unlock(PASSWORD)
    got = other.follow()
    assert got.snapshots == 2 and len(other.snapshots()) == 2
    assert {e.name for e in other.entries()} == {e.name for e in folder_engine.entries()}
    assert other.follow().files == 0   # nothing opened twice
    folder_engine.forget(Policy(last=1))
    again = other.follow()
    assert again.gone == 2 and len(other.snapshots()) == 1   # a snapshot, an old version
    assert len(other.versions("docs/a.txt")) == 1


def test_forget_drops_what_the_preview_says_and_never_a_names_newest_version(
        folder_engine: Engine, tmp_path: Path) -> None:
    src = _make_folder(tmp_path)
    for text in ("one", "two", "three"):
        (src / "a.txt").write_text(text)
        folder_engine.backup(src)
    (src / "a.txt").unlink()   # gone from the folder: its last version stays
    folder_engine.backup(src)
    plan = folder_engine.plan_forget(Policy(last=1))
    assert len(plan.dropped) == 3
    assert sorted(e.size for e in plan.versions) == [3, 3]   # one, two; not "three"
    before = {e.id for e in folder_engine.entries()}
    result = folder_engine.forget(Policy(last=1))
    assert result.snapshots_removed == 3 and result.versions_removed == 2
    after = {e.id for e in folder_engine.entries()}
    assert before - after == {e.id for e in plan.versions}
    assert [v.size for v in folder_engine.versions("docs/a.txt")] == [5]
    # The kept snapshot still restores whole, and the rebuilt catalog agrees.
    kept = folder_engine.snapshots()
    assert len(kept) == 1
    out = tmp_path / "out"
    assert all(isinstance(p, Path) for _, p in folder_engine.restore_snapshot(kept[0], out))
    folder_engine.rebuild_catalog()
    assert len(folder_engine.snapshots()) == 1 and {e.id for e in folder_engine.entries()} \
        == after


def test_a_prune_waits_for_no_one_it_refuses_while_a_backup_holds_a_lease(
        folder_engine: Engine, tmp_path: Path) -> None:
    vault = folder_engine.vault()
    with Lease(vault, SHARED):
        with pytest.raises(LeaseHeld, match="backing up"), Lease(vault, EXCLUSIVE):
            pass
        with Lease(vault, SHARED):   # two backups at once are fine
            assert len(live_leases(vault)) == 2
    with Lease(vault, EXCLUSIVE), pytest.raises(LeaseHeld, match="pruning"):
        folder_engine.backup(_make_folder(tmp_path))
    assert live_leases(vault) == []   # given back
    # An expired lease, and bytes a store wrote itself, count for nothing.
    with Lease(vault, SHARED, seconds=-1):
        assert live_leases(vault) == []
    store = next(iter(vault.stores.values()))
    store.put_bytes(lease_prefix(vault.vault_id) + "ab" * 16, b"CSLS" + os.urandom(80))
    with Lease(vault, EXCLUSIVE):
        pass


def test_retention_counts_only_periods_that_hold_a_snapshot() -> None:
    base = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def snap(days: float, sid: str) -> Snapshot:
        t = base + timedelta(days=days)
        return Snapshot(sid, int(t.timestamp() * 1e9), "h", "/f", "f")

    # Daily snapshots with a gap: days 0-4, then 20-22.
    snaps = [snap(d, f"s{d}") for d in (0, 1, 2, 3, 4, 20, 21, 22)]
    keep = {d.snapshot.id for d in apply_policy(snaps, Policy(daily=5), UTC) if d.keep}
    assert keep == {"s22", "s21", "s20", "s4", "s3"}
    keep = {d.snapshot.id for d in apply_policy(snaps, Policy(last=2), UTC) if d.keep}
    assert keep == {"s22", "s21"}
    keep = {d.snapshot.id for d in
            apply_policy(snaps, Policy(within_s=parse_duration("2d")), UTC) if d.keep}
    assert keep == {"s22", "s21", "s20"}   # from the newest, not from now
    # Two snapshots in one day: the newest of the day is the one kept.
    two = [snap(0, "early"), snap(0.1, "late")]
    assert [d.snapshot.id for d in apply_policy(two, Policy(daily=1), UTC) if d.keep] == \
        ["late"]
    # Monthly 12 with three months: unused periods keep the oldest too.
    months = [snap(0, "jan"), snap(31, "feb"), snap(59, "mar"), snap(60, "mar2")]
    keep = {d.snapshot.id for d in apply_policy(months, Policy(monthly=12), UTC) if d.keep}
    assert keep == {"mar2", "feb", "jan"}
    with pytest.raises(InputError, match="keeps nothing"):
        apply_policy(snaps, Policy())
    # Every group keeps its newest, whatever the rule.
    other = Snapshot("o1", snaps[0].time_ns, "h", "/other", "other")
    kept = {d.snapshot.id for d in apply_policy([*snaps, other], Policy(last=1), UTC)
            if d.keep}
    assert kept == {"s22", "o1"}
    assert not SMART.empty()


def test_a_snapshot_a_store_tampers_with_is_refused_in_one_clear_error() -> None:
    snap = Snapshot("", 123, "host", "/home/me/docs", "docs",
                    [Record("00" * 16, "docs/a", 3, 5, 0o100644),
                     Record("11" * 16, "docs/l", 1, 5, 0o120777)])
    data = manifest.encode(snap)
    back = manifest.parse(data, "ff" * 16)
    assert back.records == snap.records and back.root == snap.root
    for bad in (data[:-1], data + b"x", b"XXXX" + data[4:], data[:20]):
        with pytest.raises(FormatError):
            manifest.parse(bad, "ff" * 16)
    twice = Snapshot("", 1, "h", "/r", "r", [snap.records[0], snap.records[0]])
    with pytest.raises(FormatError, match="twice"):
        manifest.parse(manifest.encode(twice), "ff" * 16)


def test_the_schedule_catches_up_a_missed_run_and_backs_up_soon_after_a_change(
        tmp_path: Path) -> None:
    now = 1_000_000.0
    assert next_run(None, 3600, now) == now                       # never: at once
    assert next_run(int((now - 7200) * 1e9), 3600, now) == now    # missed: at once
    assert next_run(int((now - 600) * 1e9), 3600, now) == now + 3000
    folder = tmp_path / "watched"
    folder.mkdir()
    ran: list[str] = []
    sched = Scheduler([ProtectedFolder(str(folder), "1h")], lambda f: ran.append(f.path) or 0,
                      last={str(folder): time.time_ns()}, watch=False)
    assert sched.run_due() == 0   # backed up a moment ago: not due
    watcher = Watcher([str(folder)], settle=0.2)
    try:
        (folder / "new.txt").write_text("x")
        deadline = time.monotonic() + 10
        changed: list[str] = []
        while not changed and time.monotonic() < deadline:
            changed = watcher.quiet()
            time.sleep(0.05)   # polling a condition, not waiting for work to finish
        assert changed == [str(folder)]
    finally:
        watcher.stop()
    assert sched.run_due(changed) == 1 and ran == [str(folder)]


def test_the_cli_protects_backs_up_lists_and_restores_as_of(cli: Cli,  # noqa: F811
                                                           tmp_path: Path) -> None:
    src = _make_folder(tmp_path)
    code, out, err = cli("protect", "add", str(src), "--every", "30m", "-e", "*.tmp",
                         "--keep-daily", "7")
    assert code == 0 and "every 30m" in out and "7 daily" in out
    cfg = load_config(cli.config)
    assert cfg.protect[0].path == str(src) and cfg.protect[0].keep_daily == 7
    code, out, _ = cli("protect", "add", str(src))
    assert code == 1
    code, out, _ = cli("backup")
    assert code == 0 and out.startswith("snapshot ")
    first_id = out.split()[1]
    (src / "a.txt").write_text("edited")
    (src / "junk.tmp").write_text("left out")
    code, out, _ = cli("backup", "--json")
    assert code == 0 and json.loads(out)[0]["new"] == 1
    code, out, _ = cli("snapshots", "--json")
    snaps = json.loads(out)
    assert snaps[0]["id"] == first_id and len(snaps) == 2
    assert snaps[0]["paths"] == [str(src)] and snaps[0]["time"].endswith("+00:00")
    code, out, _ = cli("versions", "docs/a.txt", "--json")
    assert [v["size"] for v in json.loads(out)] == [6, 5]
    code, out, _ = cli("ls")
    assert out.count("docs/a.txt") == 1 and "junk.tmp" not in out
    code, out, _ = cli("ls", "--all")
    assert out.count("docs/a.txt") == 2
    code, out, err = cli("get", "docs", "--at", first_id, "-o", str(tmp_path / "then"))
    assert code == 0, err
    assert (tmp_path / "then" / "docs" / "a.txt").read_text() == "first"
    assert os.readlink(tmp_path / "then" / "docs" / "link") == "a.txt"
    code, out, err = cli("get", "docs/a.txt", "--at", "1999-01-01", "-o", str(tmp_path / "x"))
    assert code == 1 and "no version" in err and len(err.strip().splitlines()) == 1
    code, out, _ = cli("forget", "--keep-last", "1", "--dry-run", "--json")
    plan = json.loads(out)[0]
    assert len(plan["remove"]) == 1 and len(plan["versions"]) == 1
    assert len(json.loads(cli("snapshots", "--json")[1])) == 2   # a dry run drops nothing
    code, out, _ = cli("forget")   # the folder's own rule (7 daily)
    assert code == 0 and "keep 7 daily" in out
    code, out, err = cli("rm", "docs/a.txt", "--dry-run")
    assert code == 0 and "in snapshots" in err
    code, out, _ = cli("protect", "remove", str(src))
    assert code == 0 and load_config(cli.config).protect == []
    with pytest.raises(SystemExit) as exited:   # a usage error: argparse's exit 2
        cli("forget", "--keep-within", "soon")
    assert exited.value.code == 2


def test_verify_and_repair_cover_snapshots_and_say_when_one_is_not_safe(
        cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    import shutil

    src = _make_folder(tmp_path)
    assert cli("backup", str(src))[0] == 0
    snap_id = json.loads(cli("snapshots", "--json")[1])[0]["id"]
    code, out, _ = cli("verify")
    assert code == 0 and "1 snapshot, 1 safe" in out
    stores = tmp_path / "stores"
    for part in (stores / "store2").rglob(snap_id):
        part.unlink()   # the snapshot's part and metadata on one store
    code, out, _ = cli("verify")
    assert code == 1 and "1 snapshot, 0 safe" in out
    code, out, err = cli("repair")
    assert code == 0, err
    assert cli("verify")[0] == 0
    shutil.rmtree(stores / "store1")   # a store gone: repair cannot make it whole
    code, out, _ = cli("repair")
    assert code == 1


def test_rolling_slices_read_everything_back_in_turn(folder_engine: Engine,
                                                     tmp_path: Path) -> None:
    src = _make_folder(tmp_path)
    folder_engine.backup(src)
    (src / "a.txt").write_text("changed")
    folder_engine.backup(src)
    everything = {e.id for e in folder_engine._selection(None)}
    seen: list[str] = []
    for _ in range(len(everything)):
        rows = folder_engine.verify_slice(1 / len(everything))
        assert len(rows) == 1 and all(r.healthy for _, r in rows)
        seen += [e.id for e, _ in rows]
    assert set(seen) == everything   # each once, in turn
    assert folder_engine.verify_slice(1 / len(everything))[0][0].id == seen[0]   # wraps


def test_a_file_that_changes_during_a_backup_is_tried_again_never_stored_torn(
        folder_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The put refuses a file that changed as it was read (SourceChanged); the backup
    reads it once more as it is then, and its snapshot holds that."""
    from cssm_desktop.engine import PutResult
    from cssm_desktop.errors import SourceChanged

    src = _make_folder(tmp_path)
    real = folder_engine.put_sources
    calls: list[int] = []

    def changing(sources, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(sources))
        if len(calls) == 1:   # as if a.txt changed mid-read: the put kept nothing of it
            (src / "a.txt").write_text("written during the backup")
            out = real([s for s in sources if not s.name.endswith("a.txt")], *args,
                       **kwargs)
            torn = next(s for s in sources if s.name.endswith("a.txt"))
            out.insert([s.name for s in sources].index(torn.name),
                       PutResult(torn.path, torn.name, error=SourceChanged("changed")))
            return out
        return real(sources, *args, **kwargs)

    monkeypatch.setattr(folder_engine, "put_sources", changing)
    result = folder_engine.backup(src)
    assert calls == [4, 1] and not result.failed
    out = tmp_path / "out"
    folder_engine.restore_snapshot(result.snapshot, out)
    assert (out / "docs" / "a.txt").read_text() == "written during the backup"
