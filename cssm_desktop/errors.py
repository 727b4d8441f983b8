"""One exception type per failure a user can act on; every message is meant to be shown."""

from __future__ import annotations

import re

from .text import printable


class CssmError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(CssmError):
    """The configuration file is missing, unreadable or inconsistent."""


class FormatError(CssmError):
    """A stored object is not in a format this version can read (or was tampered with)."""


class WrongPassword(CssmError):
    def __init__(self, message: str = "wrong password: the vault key could not be "
                                      "unlocked") -> None:
        super().__init__(message)


class VaultError(CssmError):
    """The stores do not hold one consistent vault (none, or two different ones)."""


class NoVault(VaultError):
    """No configured store holds a vault: none was created yet (or the wrong stores)."""


class CatalogError(CssmError):
    """The local catalog cannot be opened; it is a cache the stores can rebuild."""


class StoreError(CssmError):
    """A store could not be reached or refused an operation."""

    def __init__(self, store: str, message: str, code: str | None = None) -> None:
        # A store's own words (an S3 error message) may hold newlines or escapes: one
        # escaped line, so it cannot forge lines on the terminal or in the log.
        message = printable(message)
        super().__init__(f"store {store!r}: {message}")
        self.store = store
        self.reason = message
        self.code = code   # the store's own error code (S3's), for decisions; never text


SLOW = "slow"   # StoreError.code: the store answered too slowly and was left behind


def too_slow(store: str) -> StoreError:
    """What a store left behind by a read that went on without it is reported as."""
    return StoreError(store, "answers far more slowly than the others; left behind "
                             "(the others were used)", SLOW)


def secret_variable(store_name: str) -> str:
    """The environment variable that holds a store's secret key on a machine without a
    keyring (a server, a container): CSSM_SECRET_ and the store's name in capitals, every
    other character an underscore ("wasabi-1" -> CSSM_SECRET_WASABI_1)."""
    return "CSSM_SECRET_" + re.sub(r"[^A-Z0-9]", "_", store_name.upper())


class MissingSecret(StoreError):
    """An S3 store names an access key whose secret is not in the OS keyring."""

    def __init__(self, store: str) -> None:
        super().__init__(store, f"no secret key in the keyring for this store (`cssm stores "
                                f"secret {store}` saves it; or set "
                                f"{secret_variable(store)})")


class ObjectNotFound(StoreError):
    def __init__(self, store: str, key: str) -> None:
        super().__init__(store, f"object {key} not found")
        self.key = key


# StoreError.code of an object too large for the store (S3's 10,000 parts): the file's
# fault, not the store's; trying again, or another store, cannot help.
TOO_LARGE = "TooManyParts"
# StoreError.code of a store that did not answer (no connection, a timeout, a 5xx after
# every retry): it may answer again in a while (stores/outage.py waits for it).
UNREACHABLE = "Unreachable"


class NotEnoughStores(CssmError):
    """Fewer than k stores gave usable pieces; says which ones failed and why."""

    def __init__(self, available: int, needed: int, failures: dict[str, str] | None = None,
                 what: str = "restore") -> None:
        self.available = available
        self.needed = needed
        self.failures = dict(failures or {})
        detail = "; ".join(f"{s}: {r}" for s, r in sorted(self.failures.items()))
        msg = f"cannot {what}: only {available} of the {needed} stores needed are usable"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class ForeignFile(CssmError):
    """Metadata that authenticates but names another n or k than the vault's: a file no
    one restores, repairs or lists (a store that knows the password can seal any k; a
    k = 1 file would be one store's alone)."""

    def __init__(self, file_id: str, stores: dict[str, str]) -> None:
        self.held = "; ".join(f"{name}: {why}" for name, why in sorted(stores.items()))
        super().__init__(f"file {file_id[:12]} is foreign ({self.held}): not this vault's, "
                         "so it is neither listed, restored nor repaired")
        self.file_id = file_id
        self.stores = stores


class DamagedPart(CssmError):
    """A part (or metadata object) failed authentication or is truncated."""

    def __init__(self, store: str, file_id: str, reason: str) -> None:
        super().__init__(f"damaged part of file {file_id} on store {store!r}: {reason}")
        self.store = store
        self.file_id = file_id
        self.reason = reason


class IntegrityError(CssmError):
    """The restored bytes do not match the SHA-256 recorded at upload."""


class DestinationExists(CssmError):
    def __init__(self, path: str, folder: bool = False) -> None:
        super().__init__(f"{path} is a folder; a restored file never replaces a folder"
                         if folder else f"{path} exists")
        self.path = path
        self.folder = folder


class Cancelled(CssmError):
    """`keep`: stopped to go on later (the app closing), not given up: a journaled
    upload stays for a resume."""

    def __init__(self, keep: bool = False) -> None:
        super().__init__("cancelled")
        self.keep = keep


class Locked(CssmError):
    """The vault key is needed and not held (unlock first)."""


class NotFound(CssmError):
    """No stored file matches the given id or name."""


class InputError(CssmError):
    """A file given to put cannot be read."""


class SourceChanged(InputError):
    """What was being stored changed (or a body ended early or ran long) as it was read:
    nothing of it was kept. A backup tries such a file once more."""


def log_text(exc: BaseException) -> str:
    """What the log may say of an error: the kind, and for store errors the store and what
    it answered. Messages naming the user's files or paths stay out of the log file."""
    if isinstance(exc, StoreError | DamagedPart | NotEnoughStores | WrongPassword | VaultError
                  | Cancelled):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
