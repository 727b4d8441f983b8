"""A new computer from a kit and the password: the stores configured and bound by the
kit (an impostor, a swapped index, a forged header is refused or flagged, never
believed), sealed credentials into the keyring, the file list rebuilt."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config import keep_secret_for_session, save_config, set_secret
from ..core.progress import CancelToken, Listener, ignore
from ..core.status import StoreState
from ..engine import Engine
from ..errors import CssmError, NotEnoughStores, StoreError
from .kit import Kit, config_of, open_credentials

log = logging.getLogger(__name__)


@dataclass
class Connected:
    good: list[str] = field(default_factory=list)               # stores that match
    flagged: dict[str, str] = field(default_factory=dict)       # store -> why not
    files: int = 0
    snapshots: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)


def connect(kit: Kit, password: str, config_file: Path | None, catalog: Path | None = None,
            test_only: bool = False, listener: Listener = ignore,
            cancel: CancelToken | None = None) -> Connected:
    """`test_only`: nothing is written (no settings, no keyring, no catalog kept)."""
    secrets = open_credentials(kit, password)
    for name, secret in secrets.items():
        keep_secret_for_session(name, secret)   # for this run; the keyring below
    cfg = config_of(kit)
    cfg.path = config_file
    engine = Engine(cfg, catalog)
    try:
        engine.unlock(password)
        look = engine.check_stores(count_bytes=False)
        out = Connected()
        for report in look.reports:
            if report.state is StoreState.REACHABLE:
                out.good.append(report.name)
            else:
                why = {StoreState.FOREIGN: "its header claims another place in the vault "
                                           "than the kit says",
                       StoreState.DAMAGED: "its header does not match the kit (another "
                                           "vault's, or forged)",
                       StoreState.EMPTY: "it holds no header of this vault",
                       StoreState.UNREACHABLE: "not reachable"}.get(report.state, "")
                out.flagged[report.name] = f"{why}: {report.reason}" if report.reason else why
        if len(out.good) < kit.k:
            raise NotEnoughStores(len(out.good), kit.k, out.flagged,
                                  what="open the vault the kit describes")
        if test_only:
            return out
        assert config_file is not None
        save_config(cfg, config_file)
        for name, secret in secrets.items():
            try:
                set_secret(name, secret)
            except (CssmError, StoreError) as exc:   # no keyring: kept for this session
                log.warning("kit: secret of store %s not saved in a keyring: %s", name,
                            type(exc).__name__)
        out.files, out.unreadable = engine.rebuild_catalog(listener, cancel)
        out.snapshots = len(engine.snapshots())
        return out
    finally:
        engine.lock()
