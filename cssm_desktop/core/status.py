"""What the engine knows about each store and each stored piece, as types the faces
render in their own words (no face reads meaning out of a message's text)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class StoreState(Enum):
    """A configured store, as the last look at it found it."""

    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"   # not reached: disk unplugged, bucket gone, network down
    DAMAGED = "damaged"           # reached, but its vault header failed a check
    FOREIGN = "foreign"           # its header claims another index: never read or written
    EMPTY = "empty"               # reached, holds no vault: a replacement, until repair


@dataclass(frozen=True)
class StoreStatus:
    state: StoreState
    reason: str


@dataclass(frozen=True)
class StoreReport:
    """One row of the stores panel and of `cssm stores status`: what was just checked."""

    name: str
    kind: str                  # "folder /mnt/usb/cssm", "s3 https://… bucket"
    index: int | None          # the vault index bound to it (0-based), if any
    state: StoreState
    reason: str
    checked_at: float          # time.time() of the check
    held: int | None = None    # bytes of this vault on it, when counted


@dataclass(frozen=True)
class StoresLook:
    """One look at all stores, with what it means for the vault (n and k are 0 when no
    vault could be opened, and `problem` says why)."""

    reports: list[StoreReport]
    down: dict[str, str]       # the vault's stores not usable now, and why
    n: int
    k: int
    problem: Exception | None = None


class PieceState(Enum):
    """One store's metadata object or data part of one file."""

    OK = "ok"
    MISSING = "missing"           # the store answered: no such object
    DAMAGED = "damaged"           # present, but fails authentication, size or header checks
    UNREACHABLE = "unreachable"   # the store could not be read (see StoreState)
    FOREIGN = "foreign"
    EMPTY = "empty"


def piece_state_of(store: StoreState) -> PieceState:
    """A piece on a store that is not in use is as that store is."""
    return {StoreState.UNREACHABLE: PieceState.UNREACHABLE,
            StoreState.DAMAGED: PieceState.DAMAGED, StoreState.FOREIGN: PieceState.FOREIGN,
            StoreState.EMPTY: PieceState.EMPTY}.get(store, PieceState.UNREACHABLE)


def risk_text(down: int, n: int, k: int) -> str:
    """What `down` unusable stores of a k-of-n vault mean for the user's files: the same
    sentence in the window's banner and in `cssm stores status`."""
    spare = n - k - down
    head = f"{down} of {n} stores not usable"
    if down == 0:
        return f"all {n} stores reachable; any {k} restore a file"
    if spare > 0:
        return (f"{head}: files are still restorable; {spare} more can be lost "
                "before any file is")
    if spare == 0:
        return f"{head}: files are still restorable, but one more loss and files are lost"
    back = "one of them comes" if spare == -1 else f"{-spare} of them come"
    return f"{head}: files cannot be restored until {back} back"


# The words `cssm stores status` prints for each state (and the local API answers).
STATE_WORDS = {StoreState.REACHABLE: "ok", StoreState.UNREACHABLE: "DOWN",
               StoreState.DAMAGED: "DAMAGED", StoreState.FOREIGN: "FOREIGN",
               StoreState.EMPTY: "EMPTY"}


def look_as_json(look: StoresLook) -> dict[str, object]:
    """One look at the stores as the CLI's --json and the API give it, with the same
    sentence the window's banner says."""
    from ..errors import CssmError

    problem = look.problem if isinstance(look.problem, CssmError) else None
    return {"stores": [{"name": r.name, "index": r.index, "state": STATE_WORDS[r.state],
                        "reason": r.reason, "held": r.held} for r in look.reports],
            "n": look.n, "k": look.k, "down": sorted(look.down),
            "problem": str(problem) if problem is not None else None,
            "sentence": str(problem) if problem is not None else
            risk_text(len(look.down), look.n, look.k)}
