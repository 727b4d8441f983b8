"""`cssm serve`: the local HTTP API in the foreground (a server, a NAS, a CI job)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from .errors import InputError


def cmd_serve(args: argparse.Namespace) -> int:
    from . import cli
    from .api.server import ApiServer, read_token, token_file

    engine = cli._engine(args)
    if args.rotate_token:
        read_token(rotate=True)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise InputError("TLS needs both --tls-cert and --tls-key")
    server = ApiServer(lambda: engine, args.address,
                       (args.tls_cert, args.tls_key) if args.tls_cert else None)
    if args.password_at_start or "CSSM_PASSWORD" in os.environ or \
            getattr(args, "password_stdin", False):
        cli._unlock(engine, args)
    server.bind()
    print(f"serving the CSSM API on {server.url} (token in {token_file()}; vault "
          f"{'unlocked' if engine.unlocked else 'locked: POST /v1/unlock'}); Ctrl+C stops",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        engine.lock()
    return 0


def add_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    sp = add("serve", cmd_serve, "serve the local HTTP API (loopback, a bearer token; "
                                 "see README) until Ctrl+C")
    sp.add_argument("--address", default="127.0.0.1:8765", metavar="HOST:PORT",
                    help="where to listen (default 127.0.0.1:8765; port 0: a free one); "
                         "anything but loopback needs --tls-cert and --tls-key")
    sp.add_argument("--tls-cert", metavar="FILE", help="certificate (PEM) for TLS")
    sp.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    sp.add_argument("--rotate-token", action="store_true",
                    help="make a new token first (the old one stops working)")
    sp.add_argument("--unlock", dest="password_at_start", action="store_true",
                    help="ask for the password at start (CSSM_PASSWORD, --password-stdin "
                         "or the terminal); without it, clients POST /v1/unlock")
