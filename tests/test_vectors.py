"""A second implementation of docs/FORMAT.md, written from the document alone.

It builds a 2-of-3 vault from fixed inputs with nothing but `cryptography` and `zfec`
(its own GF(256) arithmetic with log tables, its own byte packing), then checks that the
engine restores the file from it, and that the bytes equal docs/test-vectors.json.
Set CSSM_REGEN_VECTORS=1 to rewrite that file after a deliberate format change.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import zfec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cssm_desktop.config import Config
from cssm_desktop.engine import Engine

from .conftest import folder_stores

VECTORS = Path(__file__).resolve().parent.parent / "docs" / "test-vectors.json"

PASSWORD = "vector password"
SALT = bytes(range(16))
M, T, P = 1024, 1, 1
VMK = hashlib.sha256(b"vmk").digest()
CK = hashlib.sha256(b"ck").digest()
VAULT_ID = bytes.fromhex("00112233445566778899aabbccddeeff")
FILE_ID = bytes.fromhex("f0e1d2c3b4a5968778695a4b3c2d1e0f")
N, K, B = 3, 2, 16
PLAIN = b"CSSM test vector: the quick brown fox jumps over the lazy dog"
NAME = "vectors/fox.txt"
MTIME, STORED = 1_700_000_000_000_000_000, 1_800_000_000_000_000_000


def nonce(tag: int) -> bytes:
    return bytes([tag]) * 12


# GF(2^8), poly 0x11B, generator 3: log/exp tables (the engine multiplies bit by bit).
EXP = [0] * 512
LOG = [0] * 256
x = 1
for e in range(255):
    EXP[e] = x
    LOG[x] = e
    x ^= (x << 1) ^ (0x11B if x & 0x80 else 0)  # x * 3
    x &= 0xFF
for e in range(255, 512):
    EXP[e] = EXP[e - 255]


def mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]


def shamir_split(secret: bytes) -> dict[int, bytes]:
    coeffs = hashlib.sha256(b"coefficients").digest()  # a_1 per byte (k = 2)
    return {xx: bytes(s ^ mul(coeffs[pos], xx) for pos, s in enumerate(secret))
            for xx in range(1, N + 1)}


def build() -> dict[str, bytes]:
    """All objects of the vault, keyed `<store index>:<key>`."""
    objects: dict[str, bytes] = {}
    pk = Argon2id(salt=SALT, length=32, iterations=T, lanes=P, memory_cost=M).derive(
        PASSWORD.encode())
    for i in range(N):
        ad = (b"CSVH" + bytes([1]) + VAULT_ID + bytes([N, K, i, 1])
              + struct.pack(">III", M, T, P) + SALT)
        objects[f"{i}:{VAULT_ID.hex()}/vault"] = ad + nonce(0x10 + i) + AESGCM(pk).encrypt(
            nonce(0x10 + i), VMK, ad)

    def header(magic: bytes, i: int) -> bytes:
        return magic + bytes([1]) + VAULT_ID + FILE_ID + bytes([N, K]) + struct.pack(">I", B) \
            + bytes([i])

    part_keys = [hashlib.sha256(b"part key %d" % i).digest() for i in range(N)]
    box = (bytes([1, N]) + b"".join(part_keys) + struct.pack(">Qqq", len(PLAIN), MTIME, STORED)
           + hashlib.sha256(PLAIN).digest() + struct.pack(">H", len(NAME.encode()))
           + NAME.encode())
    common = header(b"CSMD", 0)[:43]
    sealed_box = AESGCM(CK).encrypt(nonce(0x20), box, common)
    shares = shamir_split(CK)
    for i in range(N):
        h = header(b"CSMD", i)
        sk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                  info=b"cssm-v1 share key" + VAULT_ID + FILE_ID + bytes([i])).derive(VMK)
        objects[f"{i}:{VAULT_ID.hex()}/meta/{FILE_ID.hex()}"] = (
            h + nonce(0x30 + i) + AESGCM(sk).encrypt(nonce(0x30 + i), shares[i + 1], h)
            + nonce(0x20) + struct.pack(">I", len(sealed_box)) + sealed_box)

    stripes = max(1, -(-len(PLAIN) // (K * B)))
    parts = [header(b"CSDP", i) for i in range(N)]
    encoder = zfec.Encoder(K, N)
    for s in range(stripes):
        chunk = PLAIN[s * K * B:(s + 1) * K * B]
        last = s == stripes - 1
        b = -(-len(chunk) // K) if last else B
        chunk = chunk.ljust(K * b, b"\0")
        blocks = encoder.encode([chunk[j * b:(j + 1) * b] for j in range(K)])
        for i in range(N):
            nonce_s = s.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
            parts[i] += AESGCM(part_keys[i]).encrypt(nonce_s, bytes(blocks[i]), header(b"CSDP", i))
    for i in range(N):
        objects[f"{i}:{VAULT_ID.hex()}/data/{FILE_ID.hex()}"] = parts[i]
    return objects


def test_engine_reads_what_the_document_describes(tmp_path: Path) -> None:
    objects = build()
    cfg = Config(stores=folder_stores(tmp_path / "stores", N), threshold=K)
    for key, blob in objects.items():
        index, name = key.split(":", 1)
        path = Path(cfg.stores[int(index)].path or "") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    # Lose one store: the document's k-of-n promise, exercised with the parity part.
    import shutil

    shutil.rmtree(Path(cfg.stores[0].path or ""))
    engine = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    engine.unlock(PASSWORD)
    count, unreadable = engine.rebuild_catalog()
    assert (count, unreadable) == (1, {})
    (entry,) = engine.entries()
    assert (entry.id, entry.name, entry.size, entry.mtime_ns, entry.stored_at_ns) == (
        FILE_ID.hex(), NAME, len(PLAIN), MTIME, STORED)
    out = engine.get(entry, tmp_path / "out.txt")
    assert out.read_bytes() == PLAIN


def test_published_vectors_match() -> None:
    got = {key: blob.hex() for key, blob in sorted(build().items())}
    if os.environ.get("CSSM_REGEN_VECTORS"):
        VECTORS.write_text(json.dumps({"inputs": {
            "password": PASSWORD, "salt": SALT.hex(), "argon2id": {"m": M, "t": T, "p": P},
            "vmk": VMK.hex(), "ck": CK.hex(), "vault_id": VAULT_ID.hex(),
            "file_id": FILE_ID.hex(), "n": N, "k": K, "block_size": B,
            "plaintext": PLAIN.decode(), "name": NAME, "mtime_ns": MTIME, "stored_at_ns": STORED,
            "nonces": "vault header i: 12 x (0x10+i); share i: 12 x (0x30+i); key box: 12 x 0x20",
            "part_keys": "SHA-256(b'part key %d' % i)",
            "shamir_a1": "SHA-256(b'coefficients'), one coefficient per byte of CK"},
            "objects": got}, indent=2) + "\n")
    published = json.loads(VECTORS.read_text())["objects"]
    assert published == got
