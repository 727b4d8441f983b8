"""The vault: unlock, lock, the stores and the health, in the window's words."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...catalog import AT_RISK, LOST, SAFE
from ...core.status import look_as_json
from ..deps import EngineDep
from ..jobs import LOCK
from ..models import ErrorOut, HealthOut, LockState, Password, StoresOut

router = APIRouter(prefix="/v1", tags=["vault"])


@router.post("/unlock", response_model=LockState,
             responses={401: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def unlock(engine: EngineDep, body: Password, request: Request) -> LockState:
    """The same vault the window uses: unlocked here, it is unlocked there."""
    engine.unlock(body.password)
    request.app.state.jobs.tell(LOCK)
    return LockState(unlocked=engine.unlocked)


@router.post("/lock", response_model=LockState)
def lock(engine: EngineDep, request: Request) -> LockState:
    engine.lock()
    request.app.state.jobs.tell(LOCK)
    return LockState(unlocked=False)


@router.get("/stores", response_model=StoresOut)
def stores(engine: EngineDep) -> StoresOut:
    """A fresh look at every store: the states and sentence of `cssm stores status`."""
    return StoresOut(**look_as_json(engine.check_stores(count_bytes=True)))  # type: ignore[arg-type]


@router.get("/health", response_model=HealthOut)
def health(engine: EngineDep) -> HealthOut:
    look = engine.check_stores(count_bytes=False)
    entries = engine.entries()
    counts = {h: sum(e.health == h for e in entries) for h in (SAFE, AT_RISK, LOST)}
    return HealthOut(sentence=str(look_as_json(look)["sentence"]), unlocked=engine.unlocked,
                     files=len(entries), safe=counts[SAFE], at_risk=counts[AT_RISK],
                     lost=counts[LOST], stores_down=sorted(look.down))
