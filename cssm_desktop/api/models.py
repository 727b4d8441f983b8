"""What the API answers, as pydantic models: the OpenAPI document is made from them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str = Field(description="stable, for programs: not_found, locked, bad_input, ...")
    message: str = Field(description="one line for people")


class ErrorOut(BaseModel):
    error: ErrorBody


class FileOut(BaseModel):
    id: str
    name: str
    size: int
    stored_at: str = Field(description="ISO 8601, UTC")
    mtime: str
    n: int
    k: int
    health: str = Field(description="safe, at risk or lost")
    damaged_stores: list[str]
    versions: int = Field(1, description="stored versions of this name")


class FileList(BaseModel):
    files: list[FileOut]
    total: int
    offset: int
    limit: int


class Removed(BaseModel):
    id: str
    removed: bool
    not_cleaned: dict[str, str]


class StoreOut(BaseModel):
    name: str
    index: int | None
    state: str = Field(description="ok, DOWN, DAMAGED, FOREIGN or EMPTY")
    reason: str
    held: int | None


class StoresOut(BaseModel):
    stores: list[StoreOut]
    n: int | None
    k: int | None
    down: list[str]
    problem: str | None
    sentence: str = Field(description="what it means for the files, as the window says it")


class HealthOut(BaseModel):
    sentence: str
    unlocked: bool
    files: int
    safe: int
    at_risk: int
    lost: int
    stores_down: list[str]


class Password(BaseModel):
    password: str = Field(min_length=1, max_length=4096)


class LockState(BaseModel):
    unlocked: bool


class Progress(BaseModel):
    done: int
    total: int
    item: str


class JobOut(BaseModel):
    id: str
    kind: str
    state: str = Field(description="running, cancelling, cancelled, succeeded, failed")
    started: float
    ended: float | None
    progress: Progress
    result: Any = None
    error: dict[str, str] | None = None
    events: int = Field(description="events so far (long-poll /events?after=N)")


class JobEvents(BaseModel):
    events: list[dict[str, Any]]
    next: int
    state: str


class GcRequest(BaseModel):
    grace_hours: float = Field(48.0, ge=0, le=24 * 365)
    dry_run: bool = False


class SnapshotOut(BaseModel):
    id: str
    time: str
    host: str
    paths: list[str]
    files: int
    size: int
    failed: int


class VersionOut(BaseModel):
    id: str
    time: str
    size: int
    health: str
