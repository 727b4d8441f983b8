"""The settings file (TOML), where things live on disk, and secrets in the OS keyring."""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import platformdirs

from .core.vault import Binding
from .errors import ConfigError, CssmError, StoreError, secret_variable
from .snapshots.protect import ProtectedFolder

APP_NAME = "cssm-desktop"
KEYRING_SERVICE = "cssm-desktop"
DEFAULT_THRESHOLD = 3

MAX_OUTAGE_WAIT = 24 * 3600   # a day: past that, a store is not "down for a while"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
# AWS bucket naming rules (3-63 chars, lowercase, digits, dots, hyphens).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $CSSM_CONFIG, else the platform's user config dir."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("CSSM_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def own_dirs() -> set[Path]:
    """The folders that are this app's alone: kept owner-only (0700)."""
    dirs = {data_dir(), log_dir(), config_path(None).parent}
    dirs |= {d.parent for d in (log_dir(),) if d.parent.name == APP_NAME}
    return dirs


def prepare_dir(path: Path) -> None:
    """Create a folder for our files owner-only, tightening it (and its app folder) when it
    is one of ours."""
    from .durable import private_dir

    own = own_dirs()
    for folder in (path.parent, path):
        if folder in own:
            private_dir(folder, tighten=True)
    private_dir(path, tighten=path in own)


@dataclass
class StoreConfig:
    name: str
    type: str
    path: str | None = None
    bucket: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    prefix: str | None = None
    access_key_id: str | None = None
    profile: str | None = None
    # The vault index this store holds (0-based, FORMAT.md's i), recorded by init, by the
    # first unlock on a new machine and by `stores replace`; never taken from the store.
    index: int | None = None

    def validate(self) -> None:
        if not _NAME_RE.match(self.name or ""):
            raise ConfigError(f"store name {self.name!r}: use 1-64 letters, digits, space . _ -")
        if self.type == "folder":
            if not self.path:
                raise ConfigError(f"store {self.name!r}: a folder store needs `path`")
        elif self.type == "s3":
            if not self.bucket:
                raise ConfigError(f"store {self.name!r}: an S3 store needs `bucket`")
            if not _BUCKET_RE.match(self.bucket) or ".." in self.bucket:
                raise ConfigError(f"store {self.name!r}: bucket {self.bucket!r} is not a valid "
                                  "bucket name (3-63 lowercase letters, digits, dots, hyphens)")
            if self.endpoint_url and not self.endpoint_url.startswith(("http://", "https://")):
                raise ConfigError(f"store {self.name!r}: endpoint_url must start with https://")
        else:
            raise ConfigError(f"store {self.name!r}: type must be 'folder' or 's3', "
                              f"not {self.type!r}")


@dataclass
class Config:
    stores: list[StoreConfig] = field(default_factory=list)
    threshold: int = DEFAULT_THRESHOLD
    # Stores a new file must reach (None: n-1, and never fewer than k+1; core/put.py).
    put_min_stores: int | None = None
    # Seconds a put waits for a store that stops answering (None: stores/outage.py's
    # DEFAULT_WAIT); after it, the store is left and the file is stored at risk.
    outage_wait: int | None = None
    # Bytes per second for all S3 transfers each way (stores/ratelimit.py); None: none.
    upload_limit: int | None = None
    download_limit: int | None = None
    path: Path | None = None
    vault: str | None = None    # the vault id (hex) the stores' indexes belong to
    # The vault's n and k, recorded with the binding: from then on no store decides them.
    vault_n: int | None = None
    vault_k: int | None = None
    # Folders backed up by themselves (snapshots/protect.py), as [[protect]] tables.
    protect: list[ProtectedFolder] = field(default_factory=list)
    # Where the window serves the local API (api/server.py), e.g. "127.0.0.1:8765";
    # None: it does not.
    api: str | None = None

    def protected(self, path: str | os.PathLike[str]) -> ProtectedFolder | None:
        want = os.path.abspath(os.path.expanduser(path))
        return next((p for p in self.protect if os.path.abspath(p.path) == want), None)

    @property
    def outage_seconds(self) -> float:
        """How long a put waits for a silent store: the setting, or the default."""
        from .stores.outage import DEFAULT_WAIT

        return DEFAULT_WAIT if self.outage_wait is None else self.outage_wait

    def tuning_only(self, other: Config) -> bool:
        """`other` differs from this only in settings a running engine takes over as it
        runs (network: limits, outage wait), not in stores or vault."""
        import dataclasses

        def core(cfg: Config) -> Config:
            return dataclasses.replace(cfg, path=None, **dict.fromkeys(_TUNING))
        return core(self) == core(other)

    def binding(self) -> Binding | None:
        if self.vault is None:
            return None
        return Binding(bytes.fromhex(self.vault),
                       {s.name: s.index for s in self.stores if s.index is not None},
                       self.vault_n, self.vault_k)

    @property
    def shape(self) -> tuple[int, int] | None:
        """(n, k) as recorded (or written by the user), else None."""
        if self.vault_n is None or self.vault_k is None:
            return None
        return self.vault_n, self.vault_k

    def record_binding(self, binding: Binding) -> None:
        """Take the vault's binding over (after init, a first unlock, a replace)."""
        self.vault = binding.vault_id.hex()
        self.vault_n, self.vault_k = binding.n, binding.k
        for store in self.stores:
            store.index = binding.indexes.get(store.name)

    def folder(self, store: StoreConfig) -> Path:
        """A folder store's path: `~` and `$VARS` expanded, and a relative path taken from
        the config file's folder (never from wherever the command happens to run)."""
        assert store.path is not None
        path = Path(os.path.expandvars(os.path.expanduser(store.path)))
        if not path.is_absolute():
            base = self.path.parent if self.path is not None else Path.cwd()
            path = base / path
        return Path(os.path.normpath(path))

    def location(self, store: StoreConfig) -> str:
        """Where a store keeps its objects, to tell two stores at one place apart."""
        if store.type == "folder":
            return os.path.normcase(os.path.realpath(self.folder(store)))
        return f"s3 {store.endpoint_url or 'aws'} {store.bucket} {(store.prefix or '').strip('/')}"

    def validate(self) -> None:
        n = len(self.stores)
        if n < 2:
            raise ConfigError(f"{self.where()}: configure at least 2 stores (found {n})")
        if n > 16:
            raise ConfigError(f"{self.where()}: at most 16 stores (found {n})")
        if not 1 <= self.threshold <= n:
            raise ConfigError(f"{self.where()}: threshold must be between 1 and {n}")
        if self.put_min_stores is not None and not 1 <= self.put_min_stores <= n:
            raise ConfigError(f"{self.where()}: put_min_stores must be between 1 and {n} "
                              f"(it is never taken below threshold + 1)")
        if self.outage_wait is not None and not 0 <= self.outage_wait <= MAX_OUTAGE_WAIT:
            raise ConfigError(f"{self.where()}: outage_wait must be between 0 and "
                              f"{MAX_OUTAGE_WAIT} seconds")
        seen: set[str] = set()
        indexes: dict[int, str] = {}
        for store in self.stores:
            store.validate()
            if store.name in seen:
                raise ConfigError(f"{self.where()}: two stores are named {store.name!r}")
            seen.add(store.name)
            if store.index is None:
                continue
            if not 0 <= store.index < 16:
                raise ConfigError(f"{self.where()}: store {store.name!r}: index must be "
                                  "between 0 and 15")
            if store.index in indexes:
                raise ConfigError(f"{self.where()}: stores {indexes[store.index]!r} and "
                                  f"{store.name!r} are both bound to index {store.index}")
            indexes[store.index] = store.name
        places: dict[str, str] = {}
        for store in self.stores:
            place = self.location(store)
            if place in places:
                raise ConfigError(f"{self.where()}: stores {places[place]!r} and {store.name!r} "
                                  "are the same place; each store must be a different folder "
                                  "or bucket, or losing one loses both")
            places[place] = store.name
        if self.vault is not None and not re.fullmatch(r"[0-9a-f]{32}", self.vault):
            raise ConfigError(f"{self.where()}: vault must be 32 lowercase hex digits")
        if indexes and self.vault is None:
            raise ConfigError(f"{self.where()}: store indexes are set but `vault` is not")
        if (self.vault_n is None) != (self.vault_k is None):
            raise ConfigError(f"{self.where()}: vault_n and vault_k go together")
        if self.vault_n is not None and self.vault_k is not None:
            from .core.format import check_geometry

            try:
                check_geometry(self.vault_n, self.vault_k)
            except CssmError as exc:
                raise ConfigError(f"{self.where()}: vault_n, vault_k: {exc}") from None

    def where(self) -> str:
        return str(self.path) if self.path else "config"


_STORE_KEYS = {f.name for f in fields(StoreConfig)}
# Optional top-level settings that are whole numbers (Config fields of the same name).
_WHOLE_NUMBERS = ("put_min_stores", "outage_wait", "vault_n", "vault_k")
# Bandwidth limits: "2M", "500k", "1.5 MiB/s" or bytes per second (stores/ratelimit.py).
_RATES = ("upload_limit", "download_limit")
_TUNING = ("outage_wait", "protect", "api", *_RATES)


def _rate(value: object, key: str, where: str) -> int | None:
    from .stores.ratelimit import parse_rate

    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value or None
    if isinstance(value, str):
        try:
            return parse_rate(value) or None
        except ValueError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
    raise ConfigError(f"{where}: {key} must be a rate like \"2M\" (bytes per second)")


def load_config(path: Path) -> Config:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no configuration at {path}; create one (see README) "
                          "or pass --config") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_config(raw, path)


def parse_config(raw: bytes, path: Path | None = None) -> Config:
    where = str(path) if path else "config"
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    unknown = set(doc) - {"threshold", "store", "vault", "protect", "api", *_WHOLE_NUMBERS,
                          *_RATES}
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    threshold = doc.get("threshold", DEFAULT_THRESHOLD)
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise ConfigError(f"{where}: threshold must be a whole number")
    vault = doc.get("vault")
    if vault is not None and not isinstance(vault, str):
        raise ConfigError(f"{where}: vault must be a string")
    tables = doc.get("store", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: stores are written as [[store]] tables")
    stores = []
    for i, table in enumerate(tables, 1):
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: store #{i} is not a table")
        bad = set(table) - _STORE_KEYS
        if bad:
            raise ConfigError(f"{where}: store #{i}: unknown key(s) {', '.join(sorted(bad))}")
        index = table.get("index")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise ConfigError(f"{where}: store #{i}: index must be a whole number")
        if any(not isinstance(v, str) for key, v in table.items() if key != "index"):
            raise ConfigError(f"{where}: store #{i}: every value but index must be a string")
        if "name" not in table or "type" not in table:
            raise ConfigError(f"{where}: store #{i} needs `name` and `type`")
        stores.append(StoreConfig(**table))
    numbers = {}
    for key in _WHOLE_NUMBERS:
        value = doc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"{where}: {key} must be a whole number")
        numbers[key] = value
    for key in _RATES:
        numbers[key] = _rate(doc.get(key), key, where)
    api = doc.get("api")
    if api is not None and (not isinstance(api, str) or not re.fullmatch(
            r"[\w.\[\]:-]+:\d{1,5}", api)):
        raise ConfigError(f"{where}: api must be an address like \"127.0.0.1:8765\"")
    protect = doc.get("protect", [])
    if not isinstance(protect, list):
        raise ConfigError(f"{where}: protected folders are written as [[protect]] tables")
    folders = [ProtectedFolder.from_table(t, f"{where}: protected folder #{i}")
               for i, t in enumerate(protect, 1)]
    cfg = Config(stores=stores, threshold=threshold, path=path, vault=vault, protect=folders,
                 api=api, **numbers)
    cfg.validate()
    return cfg


def dump_config(cfg: Config) -> str:
    """The config as TOML (tomli-w writes and escapes it; tomllib only reads)."""
    import tomli_w

    top: dict[str, object] = {"threshold": int(cfg.threshold)}
    for key in _WHOLE_NUMBERS:
        if getattr(cfg, key) is not None:
            top[key] = int(getattr(cfg, key))
    for key in _RATES:
        if getattr(cfg, key):
            from .stores.ratelimit import rate_text

            top[key] = rate_text(int(getattr(cfg, key)))
    if cfg.api:
        top["api"] = cfg.api
    if cfg.vault:
        top["vault"] = cfg.vault
    for key in ("vault_n", "vault_k"):   # after `vault`, where a reader looks for them
        if getattr(cfg, key) is not None:
            top[key] = top.pop(key)
    parts = ["# CSSM Desktop settings. Secret keys are kept in the OS keyring, not here.\n"
             "# `vault`, `vault_n`, `vault_k` and each store's `index` say what the vault is and\n"
             "# which store holds which part of it: set when it was created or first opened\n"
             "# here; do not edit by hand.\n",
             tomli_w.dumps(top)]
    for store in cfg.stores:   # always [[store]] tables, as the README shows them
        table = {f.name: getattr(store, f.name) for f in fields(StoreConfig)
                 if getattr(store, f.name) not in (None, "")}
        parts.append("\n[[store]]\n" + tomli_w.dumps(table))
    for folder in cfg.protect:
        parts.append("\n[[protect]]\n" + tomli_w.dumps(folder.as_table()))
    return "".join(parts)


def keep_comments(old: str, new: str, path: Path) -> str:
    """`new` written over `old` keeping what the user wrote there: their comments, blank
    lines and order, each value changed in place (init and `stores replace` rewrote the
    file and dropped every comment). Stores are matched by name; a store no longer there
    goes with its comments, a new one is added at the end. Anything that would not read
    back as `new` does gives `new` itself."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(old)
        fresh = tomlkit.parse(new)
    except TOMLKitError:
        return new
    for key in [k for k in doc if k != "store" and k not in fresh]:
        del doc[key]
    for key, value in fresh.items():
        if key != "store" and (key not in doc or doc[key] != value):
            doc[key] = value
    before = {str(t.get("name")): t for t in doc.get("store", [])}
    tables = tomlkit.aot()
    for table in fresh.get("store", []):
        kept = before.get(str(table.get("name")))
        if kept is None:
            tables.append(table)
            continue
        for key in [k for k in kept if k not in table]:
            del kept[key]
        for key, value in table.items():
            if key not in kept or kept[key] != value:
                kept[key] = value
        tables.append(kept)
    if "store" in doc:
        del doc["store"]
    if len(tables):
        doc["store"] = tables
    merged = tomlkit.dumps(doc)
    try:
        same = parse_config(merged.encode("utf-8"), path) == parse_config(new.encode("utf-8"),
                                                                          path)
    except ConfigError:
        same = False
    return merged if same else new


def save_config(cfg: Config, path: Path) -> None:
    """Validate, then write atomically (a crash leaves the old file or the new one)."""
    from .durable import atomic_write_bytes

    cfg.validate()
    text = dump_config(cfg)
    parse_config(text.encode("utf-8"), path)  # what we write must read back
    # No file yet (or not text): the new one as it is.
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = keep_comments(path.read_text(encoding="utf-8"), text, path)
    prepare_dir(path.parent)
    atomic_write_bytes(path, text.encode("utf-8"))
    cfg.path = path


# Secrets kept for this session only, when the OS keyring cannot hold them (never on disk).
_session_secrets: dict[str, str] = {}


def keep_secret_for_session(store_name: str, secret: str) -> None:
    _session_secrets[store_name] = secret


def get_secret(store_name: str) -> str | None:
    import keyring
    import keyring.errors

    from_env = os.environ.get(secret_variable(store_name))
    if from_env:   # chosen for this run: before the session's and the keyring's
        return from_env
    if store_name in _session_secrets:
        return _session_secrets[store_name]
    try:
        return keyring.get_password(KEYRING_SERVICE, store_name)
    except keyring.errors.KeyringError as exc:
        raise StoreError(store_name, f"the OS keyring is not available: {exc}") from exc


def set_secret(store_name: str, secret: str) -> None:
    import keyring
    import keyring.errors

    try:
        keyring.set_password(KEYRING_SERVICE, store_name, secret)
    except keyring.errors.KeyringError as exc:
        raise StoreError(store_name, f"the OS keyring is not available: {exc}") from exc
    _session_secrets.pop(store_name, None)
