"""Snapshots of protected folders (as `cssm snapshots --json`)."""

from __future__ import annotations

from fastapi import APIRouter

from ...snapshots.restore import iso
from ..deps import EngineDep
from ..models import SnapshotOut

router = APIRouter(prefix="/v1", tags=["history"])


@router.get("/snapshots", response_model=list[SnapshotOut])
def snapshots(engine: EngineDep) -> list[SnapshotOut]:
    if engine.unlocked:
        engine.follow()   # what other computers backed up counts
    return [SnapshotOut(id=s.id, time=iso(s.time_ns), host=s.host, paths=[s.root],
                        files=s.files, size=s.size, failed=s.failed)
            for s in engine.snapshots()]
