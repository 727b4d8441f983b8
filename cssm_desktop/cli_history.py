"""`cssm protect`, `backup`, `snapshots`, `versions`, `forget` and `get --at`: the faces of
snapshots/ for scripts (restic's verbs are the model)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import Entry
from .cli_progress import ProgressBar
from .config import save_config
from .errors import CssmError, InputError, NotFound
from .paths import Excludes, printable
from .snapshots.manifest import Snapshot
from .snapshots.protect import ProtectedFolder
from .snapshots.restore import iso, parse_time, pick
from .snapshots.retention import PERIODS, Policy, duration_words, parse_duration
from .units import count, human

if TYPE_CHECKING:
    from .engine import Engine

EXIT_ERROR = 1
EXIT_PARTIAL = 3   # a snapshot was made but some files could not be read (restic's code)
Hooks = dict[str, Callable[..., object]]


def _cli() -> Hooks:
    from . import cli

    return {"engine": cli._engine, "unlock": cli._unlock, "json": cli.as_json}


def _password_at_hand(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "password_stdin", False)) or "CSSM_PASSWORD" in os.environ


def catch_up(engine: Engine, args: argparse.Namespace, unlock: bool = False) -> None:
    """Before listing: what other computers stored or removed counts. It needs the
    password; without one at hand (and not asked for), say what the list may lack."""
    if unlock or _password_at_hand(args):
        if not engine.unlocked:
            _cli()["unlock"](engine, args)
        got = engine.follow()
        if got.files or got.snapshots or got.gone:
            print(f"caught up with the stores: {count(got.files, 'file')} and "
                  f"{count(got.snapshots, 'snapshot')} new, {got.gone} gone",
                  file=sys.stderr)
        return
    from .snapshots.follow import unseen

    new = unseen(engine)
    if new:
        print(f"{count(new, 'object')} in the stores not in this list yet (from another "
              "computer?): with the password (CSSM_PASSWORD or --password-stdin) this "
              "command reads them", file=sys.stderr)


# ---------------------------------------------------------------- protect

def cmd_protect_add(args: argparse.Namespace) -> int:
    engine = _cli()["engine"](args)
    cfg = engine.config
    path = os.path.abspath(os.path.expanduser(args.path))
    if not os.path.isdir(path):
        raise InputError(f"{printable(path)} is not a folder")
    if cfg.protected(path) is not None:
        raise InputError(f"{printable(path)} is protected already (`cssm protect list`)")
    parse_duration(args.every)
    folder = ProtectedFolder(path, args.every, list(args.exclude))
    policy = _policy(args)
    if policy is not None:
        folder.set_policy(policy)
    cfg.protect.append(folder)
    assert cfg.path is not None
    save_config(cfg, cfg.path)
    print(f"protected {printable(path)}: backed up every {args.every}, keeping "
          f"{folder.policy.words()}; `cssm backup` runs it now")
    return 0


def cmd_protect_list(args: argparse.Namespace) -> int:
    engine = _cli()["engine"](args)
    folders = engine.config.protect
    last = {}
    try:
        for s in engine.snapshots():
            last[s.root] = s
    except CssmError:
        pass
    if args.json:
        print(_cli()["json"]([{**f.as_table(), "keep": f.policy.as_dict(),
                               "last_backup": iso(last[f.path].time_ns) if f.path in last
                               else None} for f in folders]))
        return 0
    if not folders:
        print("no protected folders (`cssm protect add FOLDER`)", file=sys.stderr)
        return 0
    for f in folders:
        when = iso(last[f.path].time_ns) if f.path in last else "never"
        print(f"{printable(f.path)}\n    every {f.every}, last backup {when}, keeps "
              f"{f.policy.words()}" + (f", leaves out {', '.join(f.exclude)}"
                                       if f.exclude else ""))
    return 0


def cmd_protect_remove(args: argparse.Namespace) -> int:
    engine = _cli()["engine"](args)
    cfg = engine.config
    folder = cfg.protected(args.path)
    if folder is None:
        raise NotFound(f"{printable(args.path)} is not a protected folder")
    cfg.protect.remove(folder)
    assert cfg.path is not None
    save_config(cfg, cfg.path)
    print(f"{printable(folder.path)} is no longer backed up; its snapshots stay (`cssm "
          "forget` drops them)")
    return 0


# ---------------------------------------------------------------- backup

def cmd_backup(args: argparse.Namespace) -> int:
    engine = _cli()["engine"](args)
    cfg = engine.config
    if args.paths:
        todo = [cfg.protected(p) or ProtectedFolder(os.path.abspath(p)) for p in args.paths]
    else:
        todo = list(cfg.protect)
        if not todo:
            raise InputError("no protected folders: `cssm protect add FOLDER`, or name a "
                             "folder: `cssm backup FOLDER`")
    _cli()["unlock"](engine, args)
    if args.watch:
        return _watch(engine, args, todo)
    worst = 0
    rows = []
    for folder in todo:
        code, row = _backup_one(engine, args, folder)
        worst = max(worst, code)
        rows.append(row)
    if args.json:
        print(_cli()["json"](rows))
    return worst


def _backup_one(engine: Engine, args: argparse.Namespace, folder: ProtectedFolder
                ) -> tuple[int, dict[str, object]]:
    exclude = Excludes.read(folder.exclude + list(args.exclude), [])
    bar = ProgressBar.unless_quiet(args)
    try:
        result = engine.backup(Path(folder.path), exclude, listener=bar)
    except CssmError as exc:
        print(f"cssm: error: {printable(folder.path)}: {exc}", file=sys.stderr)
        return EXIT_ERROR, {"path": folder.path, "snapshot": None, "error": str(exc)}
    snap = result.snapshot
    assert snap is not None
    for name, why in result.failed:
        print(f"cssm: error: {printable(name)}: {printable(why)}", file=sys.stderr)
    for s in result.skipped:
        if not args.quiet:
            print(f"skipped  {printable(str(s.path))}: {s.reason}", file=sys.stderr)
    if not args.json:
        print(f"snapshot {snap.id} of {printable(folder.path)}: "
              f"{count(snap.files, 'file')}, {human(snap.size)}; "
              f"{result.new} new ({human(result.sent_bytes)}), {result.unchanged} unchanged"
              + (f", {result.same_content} stored already" if result.same_content else "")
              + (f", {len(result.failed)} failed" if result.failed else ""))
    row = {"path": folder.path, "snapshot": snap.id, "time": iso(snap.time_ns),
           "files": snap.files, "size": snap.size, "new": result.new,
           "unchanged": result.unchanged, "failed": [n for n, _ in result.failed]}
    return (EXIT_PARTIAL if result.failed else 0), row


def _watch(engine: Engine, args: argparse.Namespace, todo: list[ProtectedFolder]) -> int:
    """Headless: a backup of each folder on its schedule and soon after changes, until
    Ctrl+C (the same scheduler the window runs)."""
    from .snapshots.schedule import Scheduler

    stop = threading.Event()
    def run(folder: ProtectedFolder) -> int:
        code = _backup_one(engine, args, folder)[0]
        if code != EXIT_ERROR:   # a rolling slice read back: all of it within a month
            rows = engine.verify_slice(min(1.0, folder.every_seconds / (30 * 86400)))
            bad = [e for e, r in rows if not getattr(r, "healthy", False)]
            if bad:
                print(f"cssm: warning: the rolling check found {count(len(bad), 'object')} "
                      "not safe: `cssm repair`", file=sys.stderr)
        return code

    sched = Scheduler(todo, run, engine=engine)
    print(f"watching {count(len(todo), 'folder')}; Ctrl+C stops", file=sys.stderr)
    try:
        sched.run(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


# ---------------------------------------------------------------- listing

def _snap_json(s: Snapshot) -> dict[str, object]:
    return {"id": s.id, "time": iso(s.time_ns), "host": s.host, "paths": [s.root],
            "files": s.files, "size": s.size, "failed": s.failed}


def cmd_snapshots(args: argparse.Namespace) -> int:
    engine = _cli()["engine"](args)
    catch_up(engine, args)
    snaps = engine.snapshots()
    if args.path:
        want = os.path.abspath(args.path)
        snaps = [s for s in snaps if s.root == want]
    if args.json:
        print(_cli()["json"]([_snap_json(s) for s in snaps]))
        return 0
    if not snaps:
        print("no snapshots (`cssm backup FOLDER` makes one)", file=sys.stderr)
        return 0
    print(f"{'ID':<12}  {'TIME (UTC)':<20}  {'FILES':>7}  {'SIZE':>10}  HOST / FOLDER")
    for s in snaps:
        print(f"{s.id[:12]}  {iso(s.time_ns)[:19]:<20}  {s.files:>7}  {human(s.size):>10}  "
              f"{printable(s.host)}:{printable(s.root)}"
              + (f"  ({s.failed} not read)" if s.failed else ""))
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    engine = _cli()["engine"](args)
    catch_up(engine, args)
    found = engine.versions(args.name)
    if not found:
        raise NotFound(f"no stored file named {printable(args.name)}")
    if args.json:
        print(_cli()["json"]([{"id": e.id, "time": e.as_json()["stored_at"], "size": e.size,
                               "mtime": e.as_json()["mtime"], "health": e.health}
                              for e in found]))
        return 0
    print(f"{'ID':<12}  {'STORED AT (UTC)':<20}  {'SIZE':>10}  HEALTH")
    for i, e in enumerate(found):
        print(f"{e.id[:12]}  {str(e.as_json()['stored_at'])[:19]:<20}  {human(e.size):>10}  "
              f"{e.health}" + ("  (newest: `cssm get NAME`)" if i == 0 else ""))
    return 0


# ---------------------------------------------------------------- forget

def _policy(args: argparse.Namespace) -> Policy | None:
    within = parse_duration(args.keep_within) if args.keep_within else 0.0
    policy = Policy(args.keep_last or 0, *(getattr(args, f"keep_{p}") or 0 for p in PERIODS),
                    within)
    return None if policy.empty() else policy


def cmd_forget(args: argparse.Namespace) -> int:
    engine = _cli()["engine"](args)
    _cli()["unlock"](engine, args)
    given = _policy(args)
    if given is not None:
        groups: list[tuple[Policy, str | None]] = [
            (given, os.path.abspath(args.path) if args.path else None)]
    else:
        folders = [f for f in engine.config.protect
                   if not args.path or f.path == os.path.abspath(args.path)]
        if not folders:
            raise InputError("say what to keep (--keep-last 10, --keep-daily 7, ...); "
                             "without it, each protected folder's own rule applies, and "
                             "there is none here")
        groups = [(f.policy, f.path) for f in folders]
    rows: list[dict[str, object]] = []
    for policy, root in groups:
        if args.dry_run:
            engine.follow()
            plan = engine.plan_forget(policy, root)
            removed = (len(plan.dropped), len(plan.versions))
        else:
            result = engine.forget(policy, root)
            plan = result.plan
            removed = (result.snapshots_removed, result.versions_removed)
            for store, why in result.failures.items():
                print(f"cssm: warning: store {store} not cleaned: {why} (`cssm gc` later)",
                      file=sys.stderr)
        rows.append(_forget_report(args, policy, root, plan, removed))
    if args.json:
        print(_cli()["json"](rows))
    return 0


def _forget_report(args: argparse.Namespace, policy: Policy, root: str | None, plan,
                   removed: tuple[int, int]) -> dict[str, object]:
    word = "would remove" if args.dry_run else "removed"
    if not args.json:
        print(f"applying {'' if root is None else printable(root) + ': '}keep "
              f"{policy.words()}")
        for d in plan.decisions:
            s = d.snapshot
            print(f"  {'keep' if d.keep else 'drop'}  {s.id[:12]}  {iso(s.time_ns)[:19]}  "
                  f"{printable(s.root)}" + (f"  ({', '.join(d.reasons)})" if d.keep else ""))
        print(f"{word} {count(removed[0], 'snapshot')} and {count(removed[1], 'older version')}"
              " no kept snapshot holds" + ("; `cssm gc` reclaims packed space" if removed[1]
                                            and not args.dry_run else ""))
    return {"path": root, "policy": policy.as_dict(), "dry_run": bool(args.dry_run),
            "keep": [{"id": d.snapshot.id, "time": iso(d.snapshot.time_ns),
                      "reasons": d.reasons} for d in plan.decisions if d.keep],
            "remove": [{"id": d.snapshot.id, "time": iso(d.snapshot.time_ns)}
                       for d in plan.decisions if not d.keep],
            "versions": [{"id": e.id, "name": e.name, "size": e.size} for e in plan.versions]}


# ---------------------------------------------------------------- get --at

def get_at(engine: Engine, args: argparse.Namespace) -> int:
    """`cssm get NAME|FOLDER --at TIME|SNAPSHOT`: as the newest snapshot at or before that
    time holding it had it; a file no snapshot holds, its newest version by then."""
    catch_up(engine, args, unlock=True)
    history = engine.history()
    ref = args.refs[0] if args.refs else ""
    if len(args.refs) > 1:
        raise InputError("--at restores one name or folder at a time")
    try:
        snap = pick(history, args.at, ref or None)
    except NotFound:
        if not ref:
            raise
        return _version_at(engine, args, ref)
    dest = (args.output or ".").rstrip("/\\") + "/"
    bar = ProgressBar.unless_quiet(args)
    results = engine.restore_snapshot(snap, dest, ref or None, force=args.force, listener=bar)
    failed = 0
    rows = []
    for rec, got in results:
        ok = isinstance(got, Path)
        failed += not ok
        rows.append({"id": rec.entry_id, "name": rec.name, "path": str(got) if ok else None,
                     "status": "restored" if ok else "failed",
                     "error": None if ok else str(got)})
        if not ok:
            print(f"cssm: error: {printable(rec.name)}: {got}", file=sys.stderr)
        elif not args.json and not args.quiet:
            print(f"restored {printable(rec.name)} -> {printable(str(got))}")
    if args.json:
        print(_cli()["json"](rows))
    elif not args.quiet or failed:
        print(f"{len(results) - failed} restored from snapshot {snap.id[:12]} of "
              f"{iso(snap.time_ns)[:19]} UTC, {failed} failed",
              file=sys.stderr if args.quiet else sys.stdout)
    return EXIT_ERROR if failed else 0


def _version_at(engine: Engine, args: argparse.Namespace, name: str) -> int:
    when = parse_time(args.at)
    older: list[Entry] = [e for e in engine.versions(name) if e.stored_at_ns <= when]
    if not older:
        raise NotFound(f"no version of {printable(name)} at or before {args.at}")
    from .cli import _get_one

    return _get_one(engine, args, older[0])


# ---------------------------------------------------------------- parser

def add_commands(add: Callable[..., argparse.ArgumentParser], common: argparse.ArgumentParser
                 ) -> None:
    sp = add("protect", None, "folders backed up by themselves, with their versions")
    psub = sp.add_subparsers(dest="sub", required=True, metavar="{add,list,remove}")
    pa = psub.add_parser("add", parents=[common], help="protect a folder")
    pa.add_argument("path", metavar="FOLDER")
    pa.add_argument("--every", default="1h", metavar="DURATION",
                    help="how often it is backed up (30m, 1h, 1d; default 1h)")
    pa.add_argument("-e", "--exclude", action="append", default=[], metavar="PATTERN",
                    help="leave out what matches (as for put); repeatable")
    _keep_flags(pa)
    pa.set_defaults(func=cmd_protect_add)
    pl = psub.add_parser("list", parents=[common], help="the protected folders")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_protect_list)
    pr = psub.add_parser("remove", parents=[common],
                         help="stop backing a folder up (its snapshots stay)")
    pr.add_argument("path", metavar="FOLDER")
    pr.set_defaults(func=cmd_protect_remove)
    sp = add("backup", cmd_backup, "back up protected folders now (or the folders named): "
                                   "what changed is stored, the tree recorded as a snapshot")
    sp.add_argument("paths", nargs="*", metavar="FOLDER")
    sp.add_argument("-e", "--exclude", action="append", default=[], metavar="PATTERN",
                    help="leave out what matches, besides the folder's own excludes")
    sp.add_argument("--json", action="store_true",
                    help="print a JSON list: path, snapshot, time, files, size, new, failed")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress, no skipped lines")
    sp.add_argument("--watch", action="store_true",
                    help="keep running: back up on each folder's schedule and soon after "
                         "changes (Ctrl+C stops)")
    sp = add("snapshots", cmd_snapshots, "list snapshots (catching up with other computers)")
    sp.add_argument("--path", metavar="FOLDER", help="only this folder's")
    sp.add_argument("--json", action="store_true",
                    help="a JSON list: id, time (UTC), host, paths, files, size")
    sp = add("versions", cmd_versions, "every stored version of a name, newest first")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--json", action="store_true", help="a JSON list: id, time, size")
    sp = add("forget", cmd_forget, "drop snapshots a retention rule does not keep, and the "
                                   "older versions only they held (then `cssm gc`)")
    _keep_flags(sp)
    sp.add_argument("--path", metavar="FOLDER", help="only this folder's snapshots")
    sp.add_argument("-n", "--dry-run", action="store_true",
                    help="show what would be kept and dropped; drop nothing")
    sp.add_argument("--json", action="store_true")


def _keep_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--keep-last", type=_count, metavar="N", help="the newest N snapshots")
    for p in PERIODS:
        sp.add_argument(f"--keep-{p}", type=_count, metavar="N",
                        help=f"the newest snapshot of each of the last N {p} periods that "
                             "have one")
    sp.add_argument("--keep-within", metavar="DURATION", type=_duration,
                    help="every snapshot within this of the newest (7d, 1y)")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _duration(text: str) -> str:
    try:
        return duration_words(parse_duration(text))
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
