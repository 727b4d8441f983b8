"""What the window works on: where the config lives, and the engine built from it."""

from __future__ import annotations

from pathlib import Path

from ..config import Config, config_path, data_dir, load_config, save_config
from ..engine import Engine, HeldKey
from ..errors import ConfigError


class AppContext:
    def __init__(self, config_file: Path | None = None, catalog_file: Path | None = None
                 ) -> None:
        self.config_file = config_path(config_file)
        self.catalog_file = catalog_file or data_dir() / "catalog.sqlite"
        self.engine: Engine | None = None
        self.config_error: str | None = None
        self.handover: HeldKey | None = None   # taken by the next open of the vault
        self.reload()

    @property
    def first_run(self) -> bool:
        return not self.config_file.exists()

    def reload(self) -> None:
        """Rebuild the engine from the file (after settings changed); locks the vault."""
        self.engine = None
        self.config_error = None
        if self.first_run:
            return
        try:
            self.engine = Engine(load_config(self.config_file), self.catalog_file)
        except ConfigError as exc:
            self.config_error = str(exc)

    def save(self, cfg: Config) -> None:
        if self.retunes(cfg):
            save_config(cfg, self.config_file)
            assert self.engine is not None
            self.engine.retune(cfg)   # the vault stays open, uploads go on
            return
        save_config(cfg, self.config_file)
        # The new engine starts locked; the key the old one held unlocks it again (the
        # same vault), so saving settings does not ask for the password at once (B10).
        self.handover = self.engine.held_key() if self.engine is not None else None
        if self.engine is not None:
            self.engine.lock()
        self.reload()

    def retunes(self, cfg: Config) -> bool:
        """Saving `cfg` only retunes the running engine (network settings changed)."""
        return self.engine is not None and self.engine.config.tuning_only(cfg)

    @property
    def config(self) -> Config | None:
        return self.engine.config if self.engine else None
