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
