"""`cssm kit export|test` and `cssm connect --kit`: the recovery kit for scripts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import InputError
from .paths import printable
from .units import count


def cmd_kit_export(args: argparse.Namespace) -> int:
    from . import cli
    from .recovery.kit import make_kit, save_json, text_block

    if not (args.output or args.json_file or args.text):
        raise InputError("say where: -o kit.pdf, --json kit.json or --text")
    engine = cli._engine(args)
    password = args.passwords.current()
    engine.unlock(password)   # a kit is made by someone who knows the password
    vault = engine.vault()
    kdf = next(iter(vault.headers.values())).kdf   # (an unlock authenticated them)
    kit = make_kit(engine.config, vault.vault_id, vault.n, vault.k, kdf, password,
                   with_credentials=args.with_credentials)
    if args.json_file:
        save_json(kit, Path(args.json_file))
        print(f"wrote {printable(args.json_file)}", file=sys.stderr)
    if args.output:
        from .gui.recovery_print import write_pdf

        write_pdf(kit, Path(args.output))
        print(f"wrote {printable(args.output)}", file=sys.stderr)
    if args.text:
        print(text_block(kit))
    if args.with_credentials:
        print("cssm: warning: this kit holds the stores' credentials, sealed under the "
              "password: keep it as safe as the password", file=sys.stderr)
    return 0


def _kit(path: str):  # type: ignore[no-untyped-def]
    from .recovery.kit import parse_kit, read_kit_file

    if path == "-":
        return parse_kit(sys.stdin.read())
    return read_kit_file(Path(path))


def cmd_kit_test(args: argparse.Namespace) -> int:
    from .recovery.connect import connect

    kit = _kit(args.file)
    got = connect(kit, args.passwords.current(), None, test_only=True)
    for name, why in got.flagged.items():
        print(f"store {name}: {why}", file=sys.stderr)
    print(f"the kit and the password open vault {kit.vault_id}: {len(got.good)} of {kit.n} "
          f"stores match ({kit.k} needed); nothing was changed")
    return 1 if got.flagged else 0


def cmd_connect(args: argparse.Namespace) -> int:
    from .config import config_path, load_config
    from .errors import ConfigError
    from .recovery.connect import connect

    target = config_path(args.config)
    kit = _kit(args.kit)
    if target.exists() and not args.force:
        try:
            existing = load_config(target).vault
        except ConfigError:
            existing = None
        if existing != kit.vault_id:
            raise InputError(f"{printable(str(target))} already holds other settings; "
                             "--force replaces them (or --config NEW.toml)")
    from .cli_progress import ProgressBar

    got = connect(kit, args.passwords.current(), target, listener=ProgressBar())
    for name, why in got.flagged.items():
        print(f"cssm: warning: store {name} left out: {why}", file=sys.stderr)
    print(f"connected to vault {kit.vault_id}: {len(got.good)} of {kit.n} stores match; "
          f"{count(got.files, 'file')} and {count(got.snapshots, 'snapshot')} listed "
          f"(settings in {printable(str(target))})")
    for fid, why in got.unreadable.items():
        print(f"cssm: warning: {fid[:12]} not listed: {why}", file=sys.stderr)
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    sp = add("kit", None, "the recovery kit: one sheet and the password bring everything "
                          "back on a new computer")
    ksub = sp.add_subparsers(dest="sub", required=True, metavar="{export,test}")
    ex = ksub.add_parser("export", parents=[common], help="write the kit (asks the password)")
    ex.add_argument("-o", "--output", metavar="FILE.pdf", help="a printable PDF")
    ex.add_argument("--json", dest="json_file", metavar="FILE", help="its JSON (FORMAT.md 11)")
    ex.add_argument("--text", action="store_true", help="print its text block")
    ex.add_argument("--with-credentials", action="store_true",
                    help="include the S3 stores' secret keys, sealed under the password "
                         "(then the kit and the password are all a new computer needs; "
                         "keep it as safe as the password)")
    ex.set_defaults(func=cmd_kit_export)
    te = ksub.add_parser("test", parents=[common],
                         help="check that a kit and the password open the vault; change "
                              "nothing")
    te.add_argument("file", metavar="FILE", help="the kit's JSON or text block (- reads "
                                                 "standard input)")
    te.set_defaults(func=cmd_kit_test)
    sp = add("connect", cmd_connect, "set this computer up from a recovery kit: stores, "
                                     "keys, the file list")
    sp.add_argument("--kit", required=True, metavar="FILE",
                    help="the kit's JSON or text block (- reads standard input)")
    sp.add_argument("--force", action="store_true",
                    help="replace settings already here for another vault")
