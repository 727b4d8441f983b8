"""Make, read and use a recovery kit. Its JSON is versioned and documented (FORMAT.md
11); the same data travels as a QR code and as a text block to paste. It never holds a
secret that reads a file without the password; store credentials only if asked, sealed
under a key derived from the password (Argon2id, the vault's own cost)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..config import Config, StoreConfig, get_secret
from ..core.keys import KdfParams, password_key
from ..errors import FormatError, InputError, WrongPassword

FORMAT_NAME = "cssm-recovery-kit"
VERSION = 1
TEXT_HEAD = "CSSM-KIT-1"
MAX_KIT = 256 * 1024
_STORE_KEYS = ("type", "endpoint_url", "region", "bucket", "prefix", "path", "profile",
               "access_key_id")


def fingerprint(vault_id: bytes, index: int, n: int, k: int) -> str:
    """What a store's authenticated vault header must say to be this kit's store `index`
    (its vault, its place, the vault's n and k); 16 hex digits to compare by eye."""
    return hashlib.sha256(b"cssm kit store" + vault_id + bytes([index, n, k])).hexdigest()[:16]


@dataclass
class KitStore:
    index: int
    name: str
    type: str
    fingerprint: str
    endpoint_url: str | None = None
    region: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    path: str | None = None
    profile: str | None = None
    access_key_id: str | None = None

    def where(self) -> str:
        if self.type == "folder":
            return f"folder {self.path}"
        return (f"S3 bucket {self.bucket}" + (f" (prefix {self.prefix})" if self.prefix else "")
                + f" at {self.endpoint_url or 'AWS'}" + (f", {self.region}" if self.region
                                                           else ""))


@dataclass
class Kit:
    vault_id: str
    n: int
    k: int
    kdf: dict[str, int]
    stores: list[KitStore]
    made: str = ""
    credentials: dict[str, str] | None = None   # {"salt", "nonce", "sealed"} (base64)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT_NAME, "version": VERSION,
                               "vault_id": self.vault_id, "n": self.n, "k": self.k,
                               "kdf": self.kdf, "made": self.made,
                               "stores": [{f.name: getattr(s, f.name) for f in fields(s)
                                           if getattr(s, f.name) is not None}
                                          for s in self.stores]}
        if self.credentials:
            out["credentials"] = self.credentials
        return out

    def compact(self) -> str:
        """The JSON the QR code holds: no spaces, keys in order."""
        return json.dumps(self.as_json(), separators=(",", ":"), sort_keys=True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_kit(cfg: Config, vault_id: bytes, n: int, k: int, kdf: KdfParams,
             password: str | None = None, with_credentials: bool = False) -> Kit:
    """From the settings' binding (which store holds which index: recorded locally, never
    taken from a store). `password` seals the stores' credentials when asked for."""
    binding = cfg.binding()
    if binding is None or binding.vault_id != vault_id:
        raise InputError("this computer has not recorded which store holds which part of "
                         "the vault yet: unlock it once, then make the kit")
    stores = []
    for sc in cfg.stores:
        index = binding.indexes.get(sc.name)
        if index is None:
            continue
        values = {key: getattr(sc, key) for key in _STORE_KEYS}
        if sc.type == "folder":
            values["path"] = str(cfg.folder(sc))
        stores.append(KitStore(index, sc.name, fingerprint=fingerprint(vault_id, index, n, k),
                               **values))
    stores.sort(key=lambda s: s.index)
    kit = Kit(vault_id.hex(), n, k, {"m": kdf.memory_kib, "t": kdf.iterations,
                                     "p": kdf.lanes},
              stores, made=datetime.now(UTC).isoformat(timespec="seconds"))
    if with_credentials:
        if password is None:
            raise InputError("sealing the credentials needs the password")
        secrets = {s.name: get_secret(s.name) for s in stores if s.access_key_id}
        kit.credentials = seal_credentials({n_: v for n_, v in secrets.items() if v},
                                           password, kdf, vault_id)
    return kit


def seal_credentials(secrets: dict[str, str], password: str, kdf: KdfParams,
                     vault_id: bytes) -> dict[str, str]:
    salt, nonce = os.urandom(16), os.urandom(12)
    key = password_key(password, salt, kdf)
    body = json.dumps(secrets, sort_keys=True).encode()
    sealed = AESGCM(key).encrypt(nonce, body, b"cssm-kit-credentials-v1" + vault_id)
    return {"salt": _b64(salt), "nonce": _b64(nonce), "sealed": _b64(sealed)}


def open_credentials(kit: Kit, password: str) -> dict[str, str]:
    if not kit.credentials:
        return {}
    try:
        salt = base64.b64decode(kit.credentials["salt"], validate=True)
        nonce = base64.b64decode(kit.credentials["nonce"], validate=True)
        sealed = base64.b64decode(kit.credentials["sealed"], validate=True)
    except (KeyError, ValueError) as exc:
        raise FormatError("the kit's sealed credentials are not readable") from exc
    params = KdfParams(memory_kib=kit.kdf["m"], iterations=kit.kdf["t"], lanes=kit.kdf["p"])
    params.check()
    if len(nonce) != 12 or len(salt) != 16:
        raise FormatError("the kit's sealed credentials are not readable")
    try:
        body = AESGCM(password_key(password, salt, params)).decrypt(
            nonce, sealed, b"cssm-kit-credentials-v1" + bytes.fromhex(kit.vault_id))
    except InvalidTag:
        raise WrongPassword("wrong password for this kit's sealed credentials") from None
    got = json.loads(body)
    if not isinstance(got, dict) or any(not isinstance(v, str) for v in got.values()):
        raise FormatError("the kit's sealed credentials are not readable")
    return got


# ---------------------------------------------------------------- reading

def parse_kit(data: bytes | str) -> Kit:
    """A kit file's JSON or its text block; FormatError for anything else."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if len(text) > MAX_KIT:
        raise FormatError("not a recovery kit (too large)")
    stripped = text.strip()
    if TEXT_HEAD in stripped and not stripped.startswith("{"):
        return _from_text(stripped)
    try:
        raw = json.loads(stripped)
    except ValueError:
        raise FormatError("not a recovery kit (neither its JSON nor its text block)") from None
    return _from_json(raw)


def _from_json(raw: Any) -> Kit:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise FormatError("not a recovery kit (no \"format\": \"cssm-recovery-kit\")")
    if raw.get("version") != VERSION:
        raise FormatError(f"recovery kit version {raw.get('version')} is not supported by "
                          "this version")
    try:
        vault_id = bytes.fromhex(raw["vault_id"])
        n, k = int(raw["n"]), int(raw["k"])
        kdf = {key: int(raw["kdf"][key]) for key in ("m", "t", "p")}
        stores = [KitStore(**{key: s[key] for key in s
                              if key in {f.name for f in fields(KitStore)}})
                  for s in raw["stores"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"recovery kit incomplete or malformed: {exc}") from None
    if len(vault_id) != 16 or not 1 <= k <= n <= 16 or len(stores) != n:
        raise FormatError("recovery kit: vault id, n, k or the store list do not fit")
    if sorted(s.index for s in stores) != list(range(n)):
        raise FormatError("recovery kit: the stores' indexes are not 0..n-1, each once")
    for s in stores:
        if s.fingerprint != fingerprint(vault_id, s.index, n, k):
            raise FormatError(f"recovery kit: store {s.name}'s fingerprint does not match "
                              "the kit's vault (the kit was altered or is damaged)")
        StoreConfig(s.name, s.type, s.path, s.bucket, s.endpoint_url, s.region,
                    s.prefix).validate()
    creds = raw.get("credentials")
    if creds is not None and not isinstance(creds, dict):
        raise FormatError("recovery kit: credentials malformed")
    return Kit(raw["vault_id"].lower(), n, k, kdf, stores, str(raw.get("made", "")), creds)


def text_block(kit: Kit) -> str:
    """The kit as lines to type or paste: a head, base64 of the deflated compact JSON,
    a CRC-32 to catch a typo."""
    data = zlib.compress(kit.compact().encode(), 9)
    body = base64.b32encode(data).decode().rstrip("=")
    crc = f"{zlib.crc32(data):08X}"
    lines = [body[i:i + 48] for i in range(0, len(body), 48)]
    return "\n".join([f"{TEXT_HEAD} {crc}", *lines, "END"])


def _from_text(text: str) -> Kit:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith(TEXT_HEAD))
        end = lines.index("END", start)
        crc = lines[start].split()[1]
    except (StopIteration, ValueError, IndexError):
        raise FormatError("the text block is cut off (from CSSM-KIT-1 to END)") from None
    body = "".join(ln.replace(" ", "") for ln in lines[start + 1:end]).upper()
    try:
        data = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        raise FormatError("the text block has a character that cannot be in it") from None
    if f"{zlib.crc32(data):08X}" != crc.upper():
        raise FormatError("the text block does not match its check (a typo?)")
    try:
        return _from_json(json.loads(zlib.decompress(data, bufsize=MAX_KIT)))
    except (zlib.error, ValueError):
        raise FormatError("the text block does not hold a kit") from None


def read_kit_file(path: Path) -> Kit:
    try:
        return parse_kit(path.read_bytes()[:MAX_KIT + 1])
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def save_json(kit: Kit, path: Path) -> None:
    from ..durable import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(kit.as_json(), indent=2) + "\n").encode())


def config_of(kit: Kit) -> Config:
    """The settings a new computer gets from the kit: every store, and the binding (which
    store holds which index, n and k) taken from the kit, not from what stores say."""
    stores = [StoreConfig(s.name, s.type, s.path, s.bucket, s.endpoint_url, s.region,
                          s.prefix, s.access_key_id, s.profile, index=s.index)
              for s in kit.stores]
    return Config(stores=stores, threshold=kit.k, vault=kit.vault_id, vault_n=kit.n,
                  vault_k=kit.k)
