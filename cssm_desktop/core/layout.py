"""Object names inside a store: everything of a vault lives under its random id."""

from __future__ import annotations

import os
import re

from .format import ID_LEN

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def new_id() -> bytes:
    return os.urandom(ID_LEN)


def vault_key(vault_id: bytes) -> str:
    return f"{vault_id.hex()}/vault"


def meta_prefix(vault_id: bytes) -> str:
    return f"{vault_id.hex()}/meta/"


def data_prefix(vault_id: bytes) -> str:
    return f"{vault_id.hex()}/data/"


def removal_prefix(vault_id: bytes) -> str:
    return f"{vault_id.hex()}/gone/"


def removal_key_name(vault_id: bytes, pack_id: bytes) -> str:
    return removal_prefix(vault_id) + pack_id.hex()


def meta_key(vault_id: bytes, file_id: bytes) -> str:
    return meta_prefix(vault_id) + file_id.hex()


def data_key(vault_id: bytes, file_id: bytes) -> str:
    return data_prefix(vault_id) + file_id.hex()


def id_from_key(key: str, prefix: str) -> bytes | None:
    """The file id of `<prefix><hex id>`, or None for anything else found in a store."""
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix):]
    return bytes.fromhex(rest) if _HEX_ID.match(rest) else None


def lease_prefix(vault_id: bytes) -> str:
    return f"{vault_id.hex()}/lease/"
