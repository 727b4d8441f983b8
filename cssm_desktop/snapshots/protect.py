"""A protected folder as the settings file keeps it (`[[protect]]` tables)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import ConfigError, InputError
from .retention import PERIODS, SMART, Policy, duration_words, parse_duration

DEFAULT_EVERY = "1h"
KEEP_KEYS = ("keep_last", *(f"keep_{p}" for p in PERIODS))
KEYS = {"path", "every", "exclude", "keep_within", *KEEP_KEYS}


@dataclass
class ProtectedFolder:
    path: str                       # absolute, as the user chose it
    every: str = DEFAULT_EVERY      # how often it is backed up (also soon after changes)
    exclude: list[str] = field(default_factory=list)
    keep_last: int = 0              # all zero and no keep_within: the smart default
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: str = ""

    @property
    def every_seconds(self) -> float:
        return parse_duration(self.every)

    @property
    def policy(self) -> Policy:
        custom = Policy(self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly,
                        self.keep_monthly, self.keep_yearly,
                        parse_duration(self.keep_within) if self.keep_within else 0.0)
        return SMART if custom.empty() else custom

    def set_policy(self, policy: Policy) -> None:
        for key in ("last", *PERIODS):
            setattr(self, f"keep_{key}", policy.count(key))
        self.keep_within = duration_words(policy.within_s) if policy.within_s else ""

    def as_table(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "every": self.every}
        if self.exclude:
            out["exclude"] = list(self.exclude)
        for key in KEEP_KEYS:
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.keep_within:
            out["keep_within"] = self.keep_within
        return out

    @classmethod
    def from_table(cls, table: object, where: str) -> ProtectedFolder:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: not a table")
        bad = set(table) - KEYS
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
        path = table.get("path")
        if not isinstance(path, str) or not os.path.isabs(os.path.expanduser(path)):
            raise ConfigError(f"{where}: `path` must be a folder's absolute path")
        every = table.get("every", DEFAULT_EVERY)
        exclude = table.get("exclude", [])
        if not isinstance(exclude, list) or any(not isinstance(p, str) for p in exclude):
            raise ConfigError(f"{where}: `exclude` is a list of patterns")
        numbers = {}
        for key in KEEP_KEYS:
            value = table.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{where}: {key} must be a whole number, 0 or more")
            numbers[key] = value
        within = table.get("keep_within", "")
        if not isinstance(every, str) or not isinstance(within, str):
            raise ConfigError(f"{where}: `every` and `keep_within` are durations (1h, 7d)")
        out = cls(os.path.expanduser(path), every, list(exclude), keep_within=within,
                  **numbers)
        try:
            if out.every_seconds < 60:
                raise ConfigError(f"{where}: `every` must be at least a minute")
            out.policy  # noqa: B018  (parses keep_within)
        except InputError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return out
