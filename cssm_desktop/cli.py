"""`cssm`: the engine for scripts and servers. One clear line on stderr per error."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__, cli_history, cli_kit, cli_serve
from .catalog import SAFE, Entry, newest_per_name
from .cli_progress import ProgressBar
from .config import config_path, load_config, log_dir, set_secret
from .core import erasure
from .core.gc import Garbage
from .core.status import STATE_WORDS, PieceState, look_as_json, risk_text
from .core.verify import FileReport, StoreCheck
from .engine import Duplicate, Engine
from .errors import (
    CatalogError,
    CssmError,
    DestinationExists,
    InputError,
    MissingSecret,
    NotFound,
    NoVault,
    log_text,
)
from .paths import FOLDER, TAKEN, Excludes, in_the_way, list_sources, printable
from .units import age, count, human

log = logging.getLogger("cssm_desktop.cli")   # also when run as `python -m`

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141    # 128 + SIGPIPE, what a shell reports for a closed pipe
TWINS_LISTED = 10   # files already stored, named one a line up to this many


class Passwords:
    """--password-stdin, else $CSSM_PASSWORD, else a prompt without echo on a terminal."""

    def __init__(self, from_stdin: bool) -> None:
        self._from_stdin = from_stdin

    def _stdin(self) -> str:
        line = sys.stdin.readline()
        if not line:
            raise CssmError("--password-stdin: no password on standard input")
        # One line ending (\n or \r\n) ends the password; anything else belongs to it.
        return line.removesuffix("\n").removesuffix("\r")

    def _prompt(self, prompt: str) -> str:
        if not sys.stdin.isatty():
            raise CssmError("no password: use --password-stdin or set CSSM_PASSWORD")
        return getpass.getpass(prompt)

    def current(self) -> str:
        if self._from_stdin:
            return self._stdin()
        env = os.environ.get("CSSM_PASSWORD")
        if env is not None:
            return env
        return self._prompt("Vault password: ")

    def new(self, env_vars: tuple[str, ...] = ("CSSM_NEW_PASSWORD",)) -> str:
        if self._from_stdin:
            return self._stdin()
        for var in env_vars:
            if (env := os.environ.get(var)) is not None:
                return env
        first = self._prompt("New vault password: ")
        if self._prompt("Repeat the new password: ") != first:
            raise CssmError("the two passwords differ; nothing was changed")
        return first


def _hours(text: str) -> float:
    """A grace period: a finite number of hours, 0 or more (-1, nan and inf were taken)."""
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of hours: {text!r}") from None
    if not math.isfinite(hours) or hours < 0:
        raise argparse.ArgumentTypeError(f"hours must be 0 or more: {text!r}")
    return hours


def as_json(obj: object) -> str:
    """UTF-8 text as it is; a name whose bytes are not UTF-8 makes the line ASCII with
    \\udcXX escapes: still valid JSON, read back by Python to the very same name (raw
    bytes in the output would make it no JSON at all)."""
    text = json.dumps(obj, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj)
    return text


def _engine(args: argparse.Namespace) -> Engine:
    cfg = load_config(config_path(args.config))
    limits = getattr(args, "limit_rate", None)
    if limits is not None:   # this run only, over the settings' limits
        cfg.upload_limit, cfg.download_limit = (rate or None for rate in limits)
    args.engine = Engine(cfg)   # kept: an interrupt asks it what was kept
    return args.engine


def _kept_uploads(args: argparse.Namespace) -> bool:
    """Whether an interrupted put left uploads a later put goes on with (S3 stores keep
    them; folder stores write a part again): the Ctrl+C hint offered --discard always."""
    engine = getattr(args, "engine", None)
    try:
        return engine is not None and engine.unlocked and bool(engine.unfinished())
    except CssmError:
        return False


def _limits(text: str) -> tuple[int, int]:
    from .stores.ratelimit import parse_limits

    try:
        return parse_limits(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _unlock(engine: Engine, args: argparse.Namespace) -> None:
    engine.unlock(args.passwords.current())


def cmd_init(args: argparse.Namespace) -> int:
    engine = _engine(args)
    # A new vault's password is the one later commands read: CSSM_PASSWORD comes first.
    vault = engine.init(args.passwords.new(("CSSM_PASSWORD", "CSSM_NEW_PASSWORD")))
    print(f"created vault {vault.id_hex} on {vault.n} stores, {vault.k} of {vault.n} needed "
          "to restore")
    return 0


def cmd_put(args: argparse.Namespace) -> int:
    engine = _engine(args)
    if args.discard:
        _unlock(engine, args)
        return _discard_unfinished(engine, args.paths)
    exclude = Excludes.read(args.exclude, args.exclude_file)
    if args.dry_run:
        return _put_dry_run(engine, args, exclude)
    bar = ProgressBar.unless_quiet(args)
    mode = Duplicate.REPLACE if args.replace else Duplicate.AGAIN if args.again \
        else Duplicate.SKIP
    results = engine.put(args.paths, listener=bar, duplicates=mode,
                         password=args.passwords.current(), exclude=exclude,
                         links=not args.skip_links)
    failed = 0
    twins = [r for r in results if r.error is None and r.duplicate_of is not None]
    # A line per file already stored only while they are few: an unchanged tree of
    # 20,000 files printed 20,001 lines.
    each_twin = len(twins) <= TWINS_LISTED and not args.quiet
    for r in results:
        if r.error is not None:
            failed += 1
            msg = str(r.error)
            if str(r.source) not in msg:
                msg = f"{r.source}: {msg}"
            print(f"cssm: error: {printable(msg)}", file=sys.stderr)
        elif r.duplicate_of is not None:
            if each_twin:
                print(f"skipped  {printable(str(r.source))}: already stored as "
                      f"{r.duplicate_of.id[:12]} (same name and content)", file=sys.stderr)
        elif r.skipped:
            print(f"skipped  {printable(str(r.source))}: {r.skipped}", file=sys.stderr)
        elif not args.json and not args.quiet:
            assert r.stored is not None
            print(f"{r.stored.id_hex}  {printable(str(r.source))}")
            for old in r.replaced:
                print(f"removed  {old}  (older copy of {printable(r.name)})")
    if twins:
        print(f"{count(len(twins), 'file was', 'files were')} already stored with the same "
              "name and content: nothing sent for "
              f"{'it' if len(twins) == 1 else 'them'}; --again stores a second copy, "
              "--replace stores anew and removes the old one", file=sys.stderr)
    short = [r.stored for r in results if r.stored is not None and r.stored.missing]
    if short:
        # Each store with what it said (a full disk is full, not "not reachable").
        why = {name: reason for s in short for name, reason in s.left}
        without = ", ".join(f"{m} ({printable(why[m])})" if m in why else m
                            for m in sorted({m for s in short for m in s.missing}))
        print(f"cssm: warning: {count(len(short), 'file')} stored without {without}: at "
              "risk until `cssm repair` writes their parts there", file=sys.stderr)
    if not results:
        print("nothing to store: no files under " + ", ".join(
            printable(str(p)) for p in args.paths), file=sys.stderr)
    if args.json:
        print(as_json([{"id": r.stored.id_hex, "name": r.stored.name, "size": r.stored.size}
                       for r in results if r.stored]))
    return EXIT_ERROR if failed else 0


def cmd_completion(args: argparse.Namespace) -> int:
    """Generated from this very parser by shtab, so it never lags behind the commands."""
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    """The log's last lines, and its path (as the window's View > Log shows it)."""
    from .logs import current_log_file

    path = current_log_file() or log_dir() / "cssm.log"
    print(f"log: {path}", file=sys.stderr)
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))   # enough for any N people ask for
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        print("(nothing logged yet)", file=sys.stderr)
        return 0
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for line in lines[-max(0, args.lines):] if args.lines > 0 else []:
        print(printable(line))
    return 0


def _put_dry_run(engine: Engine, args: argparse.Namespace, exclude: Excludes) -> int:
    """What a put would store, under which names, and what it would leave out: nothing is
    read, sent or unlocked."""
    total = stored = 0
    failed = False
    for path in args.paths:
        sources, left_out = list_sources([path], engine.own_folders(), exclude=exclude,
                                         links=not args.skip_links)
        for s in left_out:
            failed = failed or s.asked
            print(f"{'cssm: error' if s.asked else 'skipped '}  {printable(str(s.path))}: "
                  f"{s.reason}", file=sys.stderr)
        for source in sources:
            stored += 1
            total += source.size
            if not args.quiet:
                print(f"would store  {human(source.size):>10}  {printable(source.name)}")
    print(f"{count(stored, 'file')} ({human(total)}) would be stored", file=sys.stderr)
    return EXIT_ERROR if failed else 0


def _discard_unfinished(engine: Engine, paths: list[Path]) -> int:
    """`put --discard`: drop the unfinished uploads of these files, parts and journal."""
    journals = engine.journals()
    failed = 0
    for path in paths:
        journal = journals.find(path)
        if journal is None:
            print(f"cssm: error: no unfinished upload of {printable(str(path))}",
                  file=sys.stderr)
            failed += 1
            continue
        held = journal.held
        away = engine.discard_unfinished(journal)
        print(f"discarded  {printable(journal.source)}  ({human(held)} sent before)")
        if away:
            print(f"cssm: warning: could not reach {', '.join(sorted(away))}: `cssm gc` "
                  "removes what is left there", file=sys.stderr)
    return EXIT_ERROR if failed else 0


def cmd_ls(args: argparse.Namespace) -> int:
    engine = _engine(args)
    cli_history.catch_up(engine, args)
    entries = engine.entries()
    if not args.all:   # one row per name: the newest version (`cssm versions` the rest)
        entries = newest_per_name(entries)
    if args.json:
        print(as_json([e.as_json() for e in entries]))
        return 0
    if not entries:
        print("no files stored (on a new machine: `cssm catalog rebuild`)", file=sys.stderr)
        return 0
    print(f"{'ID':<12}  {'SIZE':>10}  {'STORED AT':<20}  {'HEALTH':<9}  NAME")
    for e in entries:
        j = e.as_json()
        print(f"{e.id[:12]}  {human(e.size):>10}  {str(j['stored_at'])[:19]:<20}  "
              f"{e.health:<9}  {printable(e.name)}")
    at_risk = sum(e.health != SAFE for e in entries)
    if at_risk:
        print(f"{at_risk} of {len(entries)} files not safe: `cssm stores status` shows the "
              "stores, `cssm repair` mends what it can", file=sys.stderr)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    engine = _engine(args)
    engine.restore_modes = not args.no_modes
    if args.at is not None:
        if args.output == "-" or args.dry_run:
            raise InputError("--at restores into a folder: -o - and --dry-run are for "
                             "stored files")
        return cli_history.get_at(engine, args)
    entries, folder = engine.select(args.refs)
    if args.output == "-":   # to standard output: one file, its bytes and nothing else
        if len(entries) != 1 or folder:
            raise InputError("-o - writes one file to standard output; "
                             + (f"{printable(args.refs[0])} is a folder" if folder else
                                f"these name {count(len(entries), 'file')}"))
        _unlock(engine, args)
        engine.get_to_stream(entries[0], sys.stdout.buffer,
                             listener=ProgressBar(enabled=False if args.quiet else None))
        return 0
    if args.dry_run:
        return _get_dry_run(engine, args, entries, folder)
    if len(entries) == 1 and not folder:
        return _get_one(engine, args, entries[0])
    # Several files, or a folder: DEST is a folder, names keep their folders under it;
    # one password, one line per file, and what was left alone is said.
    dest = (args.output or ".").rstrip("/\\") + "/"
    if in_the_way(Path(dest)) == TAKEN:   # a file (or a link to none) where the folder goes
        raise InputError(f"cannot restore into {printable(dest[:-1])}: it is a file; "
                         "several files, or a folder, restore into a folder")
    plan = []
    targets = []
    skipped = 0
    rows: list[dict[str, object]] = []
    for entry, target in zip(entries, engine.tree_targets(entries, dest), strict=True):
        why = _left_alone(target, args.force)
        if why is not None:
            skipped += 1
            rows.append({"id": entry.id, "name": entry.name, "path": str(target),
                         "status": "skipped", "error": why})
            if not args.json and not args.quiet:
                print(f"skipped  {printable(entry.name)}: {printable(str(target))} {why}",
                      file=sys.stderr)
            continue
        plan.append(entry)
        targets.append(target)
    failed = 0
    if plan:
        bar = ProgressBar.unless_quiet(args)
        for entry, got in engine.get_many(plan, dest, force=args.force, listener=bar,
                                          password=args.passwords.current(), targets=targets):
            ok = isinstance(got, Path)
            rows.append({"id": entry.id, "name": entry.name,
                         "path": str(got) if ok else None,
                         "status": "restored" if ok else "failed",
                         "error": None if ok else str(got)})
            if ok:
                if not args.json and not args.quiet:
                    print(f"restored {printable(entry.name)} -> {printable(str(got))}")
            else:
                failed += 1
                print(f"cssm: error: {printable(entry.name)}: {got}", file=sys.stderr)
    summary = f"{len(plan) - failed} restored, {skipped} skipped, {failed} failed"
    if args.json:
        print(as_json(rows))
    elif not args.quiet:
        print(summary)
    elif skipped or failed:   # quiet: said only when not everything was restored
        print(summary, file=sys.stderr)
    return EXIT_ERROR if failed else 0


def _left_alone(target: Path, force: bool) -> str | None:
    """Why a restore leaves `target` as it is (a folder there always; a file without
    --force), or None when it writes it."""
    met = in_the_way(target)
    if met == FOLDER:
        return "a folder is there"
    if met == TAKEN and not force:
        return "exists (--force replaces it)"
    return None


def _get_dry_run(engine: Engine, args: argparse.Namespace, entries: list[Entry],
                 folder: bool) -> int:
    """Where each file would go and what would be left alone; nothing is read from the
    stores, nothing written, no password asked."""
    if len(entries) == 1 and not folder:
        targets = [engine.destination(entries[0].name, args.output)]
    else:
        targets = engine.tree_targets(entries, (args.output or ".").rstrip("/\\") + "/")
    would = skipped = 0
    for entry, target in zip(entries, targets, strict=True):
        why = _left_alone(target, args.force)
        if why is not None:
            skipped += 1
            print(f"would skip     {printable(entry.name)}: {printable(str(target))} {why}")
        else:
            would += 1
            print(f"would restore  {printable(entry.name)} -> {printable(str(target))}"
                  + ("  (replacing it)" if in_the_way(target) == TAKEN else ""))
    print(f"{count(would, 'file')} would be restored, {skipped} skipped", file=sys.stderr)
    return 0


def _get_one(engine: Engine, args: argparse.Namespace, entry: Entry) -> int:
    dest = args.output
    target = engine.destination(entry.name, dest)
    met = in_the_way(target)   # as for a tree: a folder never, a file only with --force
    if met == FOLDER or (met == TAKEN and not args.force):
        raise DestinationExists(str(target), folder=met == FOLDER)
    _unlock(engine, args)
    path = engine.get(entry, dest, force=args.force,
                      listener=ProgressBar.unless_quiet(args))
    if args.json:
        print(as_json([{"id": entry.id, "name": entry.name, "path": str(path),
                        "status": "restored", "error": None}]))
    elif not args.quiet:
        print(f"restored {printable(entry.name)} -> {printable(str(path))}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    """Files and folders; says what goes and asks (--yes for scripts); the password is
    checked for every removal (D1: a file stored alone went with a wrong password and no
    question); one batch, one record per pack."""
    engine = _engine(args)
    entries, _folder = engine.select(args.refs, every=True)
    total = sum(e.size for e in entries)
    what = f"{count(len(entries), 'file')} ({human(total)})"
    shown = entries if len(entries) <= 10 or args.dry_run else entries[:5]
    for e in shown:
        print(f"{'would remove' if args.dry_run else 'to remove'}  {e.id[:12]}  "
              f"{printable(e.name)}", file=sys.stdout if args.dry_run else sys.stderr)
    if len(shown) < len(entries):
        print(f"… and {len(entries) - len(shown)} more", file=sys.stderr)
    held = engine.held_by_snapshots([e.id for e in entries])
    if held:
        print(f"cssm: warning: {count(len(held), 'of these is', 'of these are')} in "
              "snapshots: restoring those snapshots will miss them (`cssm forget` drops "
              "old versions by itself)", file=sys.stderr)
    if args.dry_run:
        print(f"{what} would be removed from every store")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise InputError(f"rm removes {what} from every store: it asks first, and "
                             "there is no terminal to ask on; give --yes to remove them "
                             "without asking")
        answer = input(f"Remove {what} from every store? This cannot be undone. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed", file=sys.stderr)
            return EXIT_ERROR
    _unlock(engine, args)   # every removal proves the password, whatever the file
    status = 0
    removed = 0
    results = engine.remove_many([e.id for e in entries])
    rows = []
    for e in entries:
        left = results[e.id]
        where = ", ".join(f"{s} ({r})" for s, r in left.items())
        gone = len(left) < e.k   # k stores may still hold metadata: it could be restored
        rows.append({"id": e.id, "name": e.name, "removed": gone, "not_cleaned": left})
        if not gone:
            status = EXIT_ERROR
            print(f"cssm: error: {printable(e.name)} could not be removed from enough "
                  f"stores: {where}", file=sys.stderr)
            continue
        removed += 1
        if not args.quiet and not args.json:
            print(f"removed {e.id}  {printable(e.name)}")
        if left:
            print(f"cssm: warning: not cleaned on {where}; `cssm gc` will finish",
                  file=sys.stderr)
    if args.json:
        print(as_json(rows))
    elif len(entries) > 1:
        print(f"{removed} of {len(entries)} removed", file=sys.stderr)
    return status


_CELL = {PieceState.OK: "ok", PieceState.MISSING: "MISSING", PieceState.DAMAGED: "DAMAGED",
         PieceState.UNREACHABLE: "DOWN", PieceState.FOREIGN: "FOREIGN",
         PieceState.EMPTY: "EMPTY"}


def _cell(check: StoreCheck) -> str:
    return _CELL[check.state]


def _print_checks(rows: list[tuple[str, str, FileReport | CssmError]]) -> None:
    reports = [r for _, _, r in rows if isinstance(r, FileReport)]
    names = [c.store for c in reports[0].checks] if reports else []
    width = max([7, *(len(n) for n in names)])
    print(f"{'ID':<12}  " + "  ".join(f"{n:<{width}}" for n in names) + "  NAME")
    problems = []
    for fid, name, report in rows:
        if not isinstance(report, FileReport):
            print(f"{fid[:12]}  LOST: {report}  {printable(name)}")
            continue
        print(f"{fid[:12]}  " + "  ".join(f"{_cell(c):<{width}}" for c in report.checks)
              + f"  {printable(name)}")
        problems += [f"  {fid[:12]} {c.store}: {c.problem}" for c in report.checks if not c.ok]
    if problems:
        print("problems:")
        print("\n".join(problems))


def cmd_verify(args: argparse.Namespace) -> int:
    engine = _engine(args)
    _unlock(engine, args)
    results = engine.verify(args.refs or None, listener=ProgressBar(
        report_damage=False, enabled=False if args.json else None))
    # Counted in files: a pack's row stands for every file in it.
    total = sum(e.files for e, _ in results)
    healthy = sum(e.files for e, r in results if isinstance(r, FileReport) and r.healthy)
    lost = sum(e.files for e, r in results
               if not isinstance(r, FileReport) or not r.restorable)
    degraded = total - healthy - lost
    # Snapshots are checked as objects like files; they count apart (no files of their own).
    snaps = [r for e, r in results if e.files == 0]
    bad_snaps = sum(not isinstance(r, FileReport) or not r.healthy for r in snaps)
    if args.json:
        print(as_json([_verdict(engine, e, r) for e, r in results]))
    else:
        _print_checks([(engine.shown_id(e), e.name, r) for e, r in results])
        print(f"verified {total} files: {healthy} safe, {degraded} at risk "
              f"(restorable; run `cssm repair`), {lost} lost"
              + (f"; {count(len(snaps), 'snapshot')}, {len(snaps) - bad_snaps} safe"
                 if snaps else ""))
    return 0 if healthy == total and not bad_snaps else EXIT_ERROR


def _verdict(engine: Engine, entry: Entry, report: FileReport | CssmError) -> dict[str, object]:
    """A row of verify --json: what a script needs to act on one file (or one pack)."""
    row: dict[str, object] = {"id": engine.shown_id(entry), "name": entry.name,
                              "files": entry.files}
    if not isinstance(report, FileReport):
        return {**row, "health": "lost", "error": str(report), "stores": {}}
    health = "safe" if report.healthy else "at risk" if report.restorable else "lost"
    return {**row, "health": health, "error": None,
            "stores": {c.store: _CELL[c.state] for c in report.checks}}


def cmd_repair(args: argparse.Namespace) -> int:
    engine = _engine(args)
    _unlock(engine, args)
    adopted, results = engine.repair(args.refs or None, listener=ProgressBar(
        report_damage=False, enabled=False if args.json else None))
    say = (lambda *_a, **_k: None) if args.json else print
    for name in adopted:
        say(f"store {name!r}: vault header written (it was empty, damaged or stale)")
    bad = 0   # counted in files: a pack's row stands for every file in it
    bad_snaps = 0   # snapshot rows (no files of their own)
    rows = []
    for entry, res in results:
        shown = engine.shown_id(entry)   # (a one-file pack: a catalog look)
        row = {"id": shown, "name": entry.name, "files": entry.files,
               "rebuilt": [], "safe": False, "error": None}
        rows.append(row)
        if isinstance(res, CssmError):
            bad += entry.files
            bad_snaps += entry.files == 0
            row["error"] = str(res)
            say(f"cssm: error: {printable(entry.name)}: {res}", file=sys.stderr)
        elif res.after.healthy:
            row |= {"rebuilt": list(res.rebuilt), "safe": True}
            if res.rebuilt:
                say(f"repaired {shown[:12]}  {printable(entry.name)}: "
                    f"rebuilt on {', '.join(res.rebuilt)}")
        else:
            # What was checked just now says so: unreachable or foreign stores could not
            # be written, so the file is not whole, whatever else was rebuilt.
            bad += entry.files
            bad_snaps += entry.files == 0
            left = "; ".join(f"{c.store}: {c.problem}" for c in res.after.checks if not c.ok)
            row |= {"rebuilt": list(res.rebuilt), "error": f"still at risk ({left})"}
            say(f"cssm: error: {printable(entry.name)}: still at risk ({left})",
                file=sys.stderr)
    total = sum(e.files for e, _ in results)
    if args.json:
        print(as_json({"headers_written": adopted, "files": rows}))
    else:
        print(f"{total - bad} of {total} files safe"
              + (f"; {count(bad_snaps, 'snapshot')} not" if bad_snaps else ""))
    return 0 if bad == 0 and not bad_snaps else EXIT_ERROR


def cmd_gc(args: argparse.Namespace) -> int:
    engine = _engine(args)
    _unlock(engine, args)   # gc decides on authenticated metadata only
    report = engine.gc(grace_seconds=args.grace_hours * 3600, dry_run=args.dry_run)
    if args.json:
        def items(found: list[Garbage]) -> list[dict[str, object]]:
            return [{"store": i.store, "key": i.key, "size": i.size, "age_seconds": i.age,
                     "reason": i.reason} for i in found]

        print(as_json({
            "dry_run": args.dry_run, "removed": items(report.found),
            "left_alone": items(report.young), "kept_for_resume": items(report.resumable),
            "repacked": [{"pack": r.old, "new_pack": r.new, "kept": len(r.kept),
                          "removed": r.removed, "freed": r.freed, "done": r.done,
                          "error": r.why or None} for r in report.repacked],
            "incomplete": report.incomplete, "failed": report.failed,
            "stores_left_as_they_are": report.unlisted}))
        return EXIT_ERROR if report.failed or any(r.why for r in report.repacked) else 0
    verb = "would remove" if args.dry_run else "removed"
    for item in report.found:
        print(f"{verb}  {item.store}: {item.key}  ({human(item.size)}, {age(item.age)} old, "
              f"{item.reason})")
    for item in report.young:
        print(f"left alone  {item.store}: {item.key}  ({human(item.size)}, {age(item.age)} "
              f"old, {item.reason}; younger than {args.grace_hours:g} h, maybe still running "
              "elsewhere)")
    for item in report.resumable:
        print(f"kept  {item.store}: {item.key}  ({human(item.size)}, {age(item.age)} old, "
              f"{printable(item.reason)}: the same `cssm put` goes on with it, "
              "`cssm put --discard` drops it)")
    for r in report.repacked:
        if r.why:
            print(f"cssm: error: could not repack {r.old[:12]}: {r.why}", file=sys.stderr)
            continue
        what = f"{r.removed} removed files ({human(r.freed)})"
        kept = f"{len(r.kept)} kept" + (f" in {r.new[:12]}" if r.new else "")
        print(f"{'would repack' if args.dry_run else 'repacked'}  pack {r.old[:12]}: "
              f"{what} give their space back, {kept}")
    if report.incomplete:
        print(f"{len(report.incomplete)} files are restorable but not on every store: "
              "run `cssm repair`")
    for what, why in report.failed.items():
        print(f"cssm: error: could not remove {what}: {why}", file=sys.stderr)
    for name, why in report.unlisted.items():
        print(f"cssm: warning: store {name} was left as it is: {printable(why)}",
              file=sys.stderr)
    total = sum(i.size for i in report.found)
    print(f"{verb} {len(report.found)} objects, {human(total)}")
    return EXIT_ERROR if report.failed or any(r.why for r in report.repacked) else 0


def cmd_catalog_rebuild(args: argparse.Namespace) -> int:
    engine = _engine(args)
    _unlock(engine, args)
    count, unreadable = engine.rebuild_catalog(listener=ProgressBar(report_damage=False))
    for fid, why in unreadable.items():
        print(f"cssm: warning: file {fid[:12]} could not be read: {why}", file=sys.stderr)
    print(f"catalog rebuilt: {count} files")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    engine = _engine(args)
    old = args.passwords.current()
    engine.unlock(old)  # fails early on a wrong password, before asking for the new one
    new = args.passwords.new()
    engine.change_password(new)
    print("password changed on every store")
    return 0


def cmd_stores_list(args: argparse.Namespace) -> int:
    cfg = load_config(config_path(args.config))
    for s in cfg.stores:
        where = s.path if s.type == "folder" else (
            f"s3://{s.bucket}/{s.prefix or ''} {s.endpoint_url or 'AWS'}")
        slot = f"#{s.index + 1}" if s.index is not None else "-"
        print(f"{s.name:<16} {slot:<4} {s.type:<6} {where}")
    # The vault's own n and k once recorded; before that, what `init` would make.
    n, k = cfg.shape or (len(cfg.stores), cfg.threshold)
    print(f"threshold: {k} of {n}")
    return 0


_STATE = STATE_WORDS


def cmd_stores_status(args: argparse.Namespace) -> int:
    engine = _engine(args)
    look = engine.check_stores(count_bytes=True)
    if args.json:
        print(as_json(look_as_json(look)))
        return EXIT_ERROR if look.down or isinstance(look.problem, CssmError) else 0
    width = max(8, *(len(r.name) for r in look.reports))
    print(f"{'STORE':<{width}}  {'#':<3}  {'STATE':<7}  {'HELD':>10}  WHY")
    for r in look.reports:
        slot = f"#{r.index + 1}" if r.index is not None else "-"
        held = human(r.held) if r.held is not None else "?"
        print(f"{r.name:<{width}}  {slot:<3}  {_STATE[r.state]:<7}  {held:>10}  {r.reason}")
    if isinstance(look.problem, CssmError):
        print(f"cssm: error: {look.problem}{_hint(look.problem)}", file=sys.stderr)
        return EXIT_ERROR
    text = risk_text(len(look.down), look.n, look.k)
    if look.down:
        print(text, file=sys.stderr)
        return EXIT_ERROR
    print(text)
    return 0


def cmd_stores_replace(args: argparse.Namespace) -> int:
    engine = _engine(args)
    _unlock(engine, args)
    if engine.store_is_healthy(args.old) and not args.yes:
        # D2: a healthy, reachable store was replaced without a word; every file was at
        # risk until a repair.
        question = (f"store {args.old!r} is reachable and healthy: replacing it puts every "
                    "file at risk until `cssm repair` has rebuilt its parts")
        if not sys.stdin.isatty():
            raise InputError(question + "; give --yes to replace it anyway")
        if input(question + ". Replace it? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing replaced", file=sys.stderr)
            return EXIT_ERROR
    index = engine.replace_store(args.old, args.new)
    print(f"store {args.new!r} now holds store #{index + 1} of the vault in place of "
          f"{args.old!r}, which was removed from the config; run `cssm repair` to rebuild "
          "its parts")
    return 0


def cmd_stores_test(args: argparse.Namespace) -> int:
    engine = _engine(args)
    bad = 0
    for name, desc, err in engine.test_stores():
        if err:
            bad += 1
            print(f"FAIL  {name}: {err}")
        else:
            print(f"ok    {name}: {desc}")
    return EXIT_ERROR if bad else 0


def cmd_stores_secret(args: argparse.Namespace) -> int:
    cfg = load_config(config_path(args.config))
    store = next((s for s in cfg.stores if s.name == args.name), None)
    if store is None or store.type != "s3":
        raise CssmError(f"no S3 store named {args.name!r} in {cfg.where()}")
    if sys.stdin.isatty():
        secret = getpass.getpass(f"Secret access key for {args.name}: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise CssmError("no secret given; nothing was stored")
    set_secret(args.name, secret)
    print(f"secret for {args.name!r} saved in the OS keyring")
    return 0


def _hint(exc: CssmError) -> str:
    """What to type next, in this face's words (the engine names no command or flag)."""
    if isinstance(exc, DestinationExists):
        return "" if exc.folder else "; use --force to overwrite"
    if isinstance(exc, NotFound):
        return " (try `cssm ls`, or `cssm catalog rebuild` on a new machine)"
    if isinstance(exc, NoVault):
        return "; run `cssm init` first"
    if isinstance(exc, MissingSecret):
        return f" (save it with `cssm stores secret {exc.store}`)"
    if isinstance(exc, CatalogError):
        return " (it is only a cache: delete it and run `cssm catalog rebuild`)"
    return ""


class _Parser(argparse.ArgumentParser):
    """A usage error is one line too (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                        help="configuration file (default: $CSSM_CONFIG, then the user config "
                             "dir)")
    common.add_argument("--password-stdin", action="store_true", default=argparse.SUPPRESS,
                        help="read the password (for passwd: old, then new) from standard input")
    common.add_argument("--limit-rate", type=_limits, default=argparse.SUPPRESS,
                        metavar="RATE",
                        help="bandwidth limit for S3 stores, in bytes per second: 2M, 500k "
                             "(both ways), or UP:DOWN (0 is none); the settings' "
                             "upload_limit/download_limit otherwise")
    p = _Parser(prog="cssm", parents=[common],
                                description="Encrypted k-of-n storage across S3 buckets and "
                                            "folders.")
    p.add_argument("--version", action="version",
                   version=f"cssm {__version__} (erasure kernel: {erasure.kernel()})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn, help_: str, **kw) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_, **kw)
        sp.set_defaults(func=fn)
        return sp

    add("init", cmd_init, "create the vault on every configured store")
    sp = add("put", cmd_put, "store files and folders")
    sp.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    sp.add_argument("--json", action="store_true", help="print a JSON list of stored files")
    sp.add_argument("-q", "--quiet", action="store_true",
                    help="no line per stored file and no progress: only errors, warnings "
                         "and a summary")
    sp.add_argument("-e", "--exclude", action="append", default=[], metavar="PATTERN",
                    help="leave out what matches: a name anywhere (*.tmp, node_modules), a "
                         "path from the folder's own name (photos/raw/*), folders only "
                         "with a trailing / (cache/); repeatable")
    sp.add_argument("--exclude-file", action="append", default=[], type=Path,
                    metavar="FILE", help="patterns as for --exclude, one a line (# notes)")
    sp.add_argument("-n", "--dry-run", action="store_true",
                    help="list what would be stored and under which names; store nothing")
    sp.add_argument("--skip-links", action="store_true",
                    help="leave out symbolic links inside folders (by default they are "
                         "stored as links, never followed)")
    twin = sp.add_mutually_exclusive_group()
    twin.add_argument("--again", action="store_true",
                      help="store a file even if the same name and content are stored "
                           "(default: skip it and say so)")
    twin.add_argument("--replace", action="store_true",
                      help="store it anew and remove older copies of the same name")
    twin.add_argument("--discard", action="store_true",
                      help="store nothing: drop the unfinished uploads of these files (an "
                           "interrupted put of the same file otherwise goes on with it)")
    sp = add("completion", cmd_completion, "print a completion script for your shell "
                                            "(bash: `source <(cssm completion bash)`)")
    sp.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    sp = add("log", cmd_log, "show the end of the log (what was stored, restored, repaired "
                              "and what failed; never names or passwords) and where it is")
    sp.add_argument("-n", "--lines", type=int, default=40, metavar="N",
                    help="how many lines (default: 40)")
    sp = add("ls", cmd_ls, "list stored files (the newest version of each name)")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("-a", "--all", action="store_true",
                    help="every version of each name, not only the newest")
    sp = add("get", cmd_get, "restore stored files, or every file under a stored folder")
    sp.add_argument("refs", nargs="+", metavar="ID|NAME|FOLDER")
    sp.add_argument("-o", "--output", metavar="DEST",
                    help="for one file: the file to write, or a folder to write into (an "
                         "existing one, or one written with a trailing /); for several or "
                         "a folder: the folder they go into, names keeping their folders "
                         "(default: current folder); - writes one file to standard output")
    sp.add_argument("--force", action="store_true", help="overwrite an existing file")
    sp.add_argument("--json", action="store_true",
                    help="print a JSON list: id, name, path, status (restored, skipped, "
                         "failed), error")
    sp.add_argument("-q", "--quiet", action="store_true",
                    help="no line per file and no progress: only errors, and a summary "
                         "when not everything was restored")
    sp.add_argument("-n", "--dry-run", action="store_true",
                    help="say where each file would go and what would be left alone; "
                         "restore nothing")
    sp.add_argument("--no-modes", action="store_true",
                    help="restore files owner-only (0600), not with the permission bits "
                         "they had when stored")
    sp.add_argument("--at", metavar="TIME|SNAPSHOT",
                    help="as it was then: the newest snapshot at or before TIME "
                         "(2026-11-30, 2026-11-30T14:00) holding it, or that snapshot; a "
                         "file no snapshot holds: its newest version by then")
    sp = add("rm", cmd_rm, "delete stored files or folders from every store (asks first)")
    sp.add_argument("refs", nargs="+", metavar="ID|NAME|FOLDER")
    sp.add_argument("-y", "--yes", action="store_true",
                    help="remove without asking (for scripts)")
    sp.add_argument("-n", "--dry-run", action="store_true",
                    help="list what would be removed, remove nothing")
    sp.add_argument("-q", "--quiet", action="store_true", help="no line per removed file")
    sp.add_argument("--json", action="store_true",
                    help="print a JSON list: id, name, removed, stores not cleaned")
    sp = add("verify", cmd_verify, "check every part on every store; exit 0 only if all "
                                   "are healthy")
    sp.add_argument("refs", nargs="*", metavar="ID|NAME|FOLDER")
    sp.add_argument("--json", action="store_true",
                    help="print a JSON list: id, name, files, health, each store's state")
    sp = add("repair", cmd_repair, "rebuild missing or damaged parts from k healthy stores")
    sp.add_argument("refs", nargs="*", metavar="ID|NAME|FOLDER")
    sp.add_argument("--json", action="store_true",
                    help="print JSON: headers written, and per file what was rebuilt")
    sp = add("gc", cmd_gc, "remove what interrupted or cancelled uploads left behind")
    sp.add_argument("--dry-run", action="store_true", help="list what would be removed")
    sp.add_argument("--json", action="store_true", help="print what was found as JSON")
    sp.add_argument("--grace-hours", type=_hours, default=48.0, metavar="H",
                    help="leave anything younger alone (default: 48)")
    cli_history.add_commands(add, common)
    cli_serve.add_command(add)
    cli_kit.add_commands(add, common)
    sp = add("catalog", None, "the local catalog")  # type: ignore[arg-type]
    csub = sp.add_subparsers(dest="sub", required=True, metavar="rebuild")
    c = csub.add_parser("rebuild", parents=[common], help="rebuild it from the stores")
    c.set_defaults(func=cmd_catalog_rebuild)
    add("passwd", cmd_passwd, "change the vault password (no data is rewritten)")
    sp = add("stores", None, "show or check the configured stores")  # type: ignore[arg-type]
    ssub = sp.add_subparsers(dest="sub", required=True,
                             metavar="{list,status,test,secret,replace}")
    ssub.add_parser("list", parents=[common], help="show stores").set_defaults(
        func=cmd_stores_list)
    status = ssub.add_parser("status", parents=[common],
                             help="look at each store now: reachable, down, damaged; bytes "
                                  "held; exit 0 only if all are usable")
    status.add_argument("--json", action="store_true", help="print it as JSON")
    status.set_defaults(func=cmd_stores_status)
    ssub.add_parser("test", parents=[common], help="check each store").set_defaults(
        func=cmd_stores_test)
    sec = ssub.add_parser("secret", parents=[common],
                          help="save an S3 store's secret key in the OS keyring (read from "
                               "the terminal, or one line of standard input)")
    sec.add_argument("name", metavar="STORE")
    sec.set_defaults(func=cmd_stores_secret)
    rep = ssub.add_parser("replace", parents=[common],
                          help="let an empty store (already in the config) take the place of a "
                               "lost one; `cssm repair` then rebuilds its parts")
    rep.add_argument("old", metavar="OLD")
    rep.add_argument("new", metavar="NEW")
    rep.add_argument("-y", "--yes", action="store_true",
                     help="replace a store that is still healthy without asking")
    rep.set_defaults(func=cmd_stores_replace)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.config = getattr(args, "config", None)
    args.passwords = Passwords(getattr(args, "password_stdin", False))
    from .allocator import keep_freed_buffers
    from .keyring_setup import choose_backend
    from .logs import setup_logging

    keep_freed_buffers()
    setup_logging()
    choose_backend()
    interrupts = Interrupts()
    previous = interrupts.install()
    try:
        code = args.func(args)
        sys.stdout.flush()   # a closed pipe shows here, not in the interpreter's exit
        return code
    except CssmError as exc:
        log.error("%s failed: %s", args.command, log_text(exc))
        print(f"cssm: error: {exc}{_hint(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if args.command == "put" and _kept_uploads(args):
            print("\ncssm: interrupted; the same `cssm put` goes on where it stopped "
                  "(`cssm put --discard FILE` drops what was sent)", file=sys.stderr)
        else:
            print("\ncssm: interrupted; nothing partial was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `cssm ls | head`: the reader has gone; say nothing more, like other tools.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:   # a bug: one line here, the stack in the log
        log.error("%s crashed: %s\n%s", args.command, type(exc).__name__,
                  "".join(traceback.format_tb(exc.__traceback__)))
        print(f"cssm: error: unexpected {type(exc).__name__} (a bug; the log has the "
              "details)", file=sys.stderr)
        return EXIT_ERROR
    finally:
        interrupts.restore(previous)   # (for callers in the same process: tests)


class Interrupts:
    """Ctrl+C: the first stops the command, which then removes what it wrote; a second
    one while it does so is said, not obeyed (two Ctrl+C 0.05-0.3 s apart left temporary
    parts of up to 121 MiB in folder stores); a third ends at once (gc removes what is
    left after its grace period)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _signum: int, _frame: object) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt
        if self.count == 2:
            print("\ncssm: removing what the interrupted command wrote; Ctrl+C once more "
                  "to leave it for `cssm gc`", file=sys.stderr)
            return
        os._exit(EXIT_INTERRUPTED)

    def install(self) -> object:
        if threading.current_thread() is not threading.main_thread():
            return None
        return signal.signal(signal.SIGINT, self)

    def restore(self, previous: object) -> None:
        """After the command: as before; once interrupted, further Ctrl+C are ignored
        while the process ends (one arriving then killed it by the signal, not 130)."""
        if previous is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN if self.count
                          else previous)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
