"""Delete a file from every store: metadata first, so a crash half-way leaves only
unreferenced data for `cssm gc`, never a file that looks whole and is not."""

from __future__ import annotations

import logging

from ..stores.base import Store
from . import parallel
from .layout import data_key, meta_key
from .vault import Vault

log = logging.getLogger(__name__)


def remove_everywhere(vault: Vault, file_id: bytes) -> dict[str, str]:
    """Best effort on every reachable store; returns store name -> why it failed."""
    keys = (meta_key(vault.vault_id, file_id), data_key(vault.vault_id, file_id))

    def delete(store: Store) -> None:
        for key in keys:
            store.delete(key)

    stores = list(vault.stores.values())
    failures = parallel.reasons([s.name for s in stores], parallel.each(delete, stores))
    for name, reason in failures.items():
        log.warning("could not remove file %s from store %s: %s", file_id.hex(), name, reason)
    return failures
