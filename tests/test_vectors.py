"""A second implementation of docs/FORMAT.md, written from the document alone.

It builds vaults of both format versions (version 1: 2-of-3; version 2: 3-of-5 with an
empty file, 2-of-4 read from parity alone, headers after a password change) from fixed
inputs with nothing but `cryptography` and `zfec`
(its own GF(256) arithmetic with log tables, its own byte packing), then checks that the
engine restores the file from it, and that the bytes equal docs/test-vectors.json.
Set CSSM_REGEN_VECTORS=1 to rewrite that file after a deliberate format change.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
import zfec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cssm_desktop.config import Config
from cssm_desktop.engine import Engine
from cssm_desktop.errors import CssmError

from .conftest import PASSWORD as CONF_PASSWORD
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


def seal_parts(data: bytes, k: int, n: int, b_size: int, part_keys: list[bytes],
               headers: list[bytes]) -> list[bytes]:
    """FORMAT.md section 6: stripes, zfec blocks, each sealed with its part's key (both
    versions: version 2 passes the data already padded to data_len)."""
    stripes = max(1, -(-len(data) // (k * b_size)))
    parts = list(headers)
    encoder = zfec.Encoder(k, n)
    for s in range(stripes):
        chunk = data[s * k * b_size:(s + 1) * k * b_size]
        last = s == stripes - 1
        b = -(-len(chunk) // k) if last else b_size
        chunk = chunk.ljust(k * b, b"\0")
        blocks = encoder.encode([chunk[j * b:(j + 1) * b] for j in range(k)])
        nonce_s = s.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        for i in range(n):
            parts[i] += AESGCM(part_keys[i]).encrypt(nonce_s, bytes(blocks[i]), headers[i])
    return parts


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

    parts = seal_parts(PLAIN, K, N, B, part_keys, [header(b"CSDP", i) for i in range(N)])
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


# ---------------------------------------------------------------- version 2


@dataclass(frozen=True)
class Spec:
    """One version 2 vault: fixed keys and nonces, files given by (name, bytes)."""

    n: int
    k: int
    vault_id: bytes
    files: tuple[tuple[str, bytes], ...]
    password: str = "vector password"
    salt: bytes = bytes(range(16))
    block: int = 16

    def vmk(self) -> bytes:
        return hashlib.sha256(b"vmk" + self.vault_id).digest()


def padme(size: int) -> int:
    """FORMAT.md section 6, written from the text."""
    if size <= 1024:
        return 1024
    e = size.bit_length() - 1
    s_ = e.bit_length()
    step = 1 << (e - s_)
    return -(-size // step) * step


def shamir_split_k(secret: bytes, k: int, n: int, seed: bytes) -> dict[int, bytes]:
    coeffs = [hashlib.sha256(b"coefficient %d " % j + seed).digest() for j in range(1, k)]
    out = {}
    for xx in range(1, n + 1):
        share = bytearray()
        for pos, s_byte in enumerate(secret):
            acc, power = s_byte, 1
            for c in coeffs:
                power = mul(power, xx)
                acc ^= mul(c[pos], power)
            share.append(acc)
        out[xx] = bytes(share)
    return out


# Intermediate values of every step, as the writer computed them (published in
# docs/test-vectors.json, "intermediate"), so a reader's mismatch can be traced to its step.
TRACE: dict[str, dict[str, object]] = {}


def vault_headers(spec: Spec, password: str, salt: bytes, tag: int) -> dict[str, bytes]:
    pk = Argon2id(salt=salt, length=32, iterations=T, lanes=P, memory_cost=M).derive(
        password.encode())
    TRACE.setdefault(spec.vault_id.hex(), {})[f"pk ({password})"] = pk.hex()
    TRACE[spec.vault_id.hex()]["vmk"] = spec.vmk().hex()
    out = {}
    for i in range(spec.n):
        ad = (b"CSVH" + bytes([2]) + spec.vault_id + bytes([spec.n, spec.k, i, 1])
              + struct.pack(">III", M, T, P) + salt)
        out[f"{i}:{spec.vault_id.hex()}/vault"] = ad + nonce(tag + i) + AESGCM(pk).encrypt(
            nonce(tag + i), spec.vmk(), ad)
    return out


def build_v2(spec: Spec) -> dict[str, bytes]:
    """Every object of a version 2 vault, keyed `<store index>:<key>`."""
    objects = vault_headers(spec, spec.password, spec.salt, 0x10)
    for number, (name, plain) in enumerate(spec.files):
        fid = hashlib.sha256(b"file %d" % number).digest()[:16]
        objects.update(file_objects(spec, fid, plain, name.encode(), 0, b"", MTIME))
    return objects


def file_objects(spec: Spec, fid: bytes, plain: bytes, raw_name: bytes, kind: int,
                 tail: bytes, mtime: int) -> dict[str, bytes]:
    """Sections 4-6 for one file id: a file (kind 0), or a pack (kind 1, `tail` its
    index offset)."""
    n, k, b_size, vid = spec.n, spec.k, spec.block, spec.vault_id
    objects = {}
    ck = hashlib.sha256(b"ck" + fid).digest()

    def header(magic: bytes, i: int) -> bytes:
        return magic + bytes([2]) + vid + fid + bytes([n, k]) + struct.pack(">I", b_size) \
            + bytes([i])

    part_keys = [hashlib.sha256(b"part key %d" % i + fid).digest() for i in range(n)]
    data_len = padme(len(plain))
    box = (bytes([2, kind, n]) + b"".join(part_keys)
           + struct.pack(">QQqq", len(plain), data_len, mtime, STORED)
           + hashlib.sha256(plain).digest() + struct.pack(">H", len(raw_name)) + raw_name
           + tail)
    box += bytes(-len(box) % 256)
    sealed_box = AESGCM(ck).encrypt(nonce(0x20), box, header(b"CSMD", 0)[:43])
    shares = shamir_split_k(ck, k, n, fid)
    trace: dict[str, object] = {
        "ck": ck.hex(), "data_len": padme(len(plain)), "key_box": box.hex(),
        "common_header": header(b"CSMD", 0)[:43].hex(),
        "part_keys": [key.hex() for key in part_keys],
        "shares (x: y bytes)": {str(x): y.hex() for x, y in shares.items()},
        "share_keys (store index: SK_i)": {}}
    TRACE.setdefault(vid.hex(), {})[f"file {fid.hex()}"] = trace
    for i in range(n):
        h = header(b"CSMD", i)
        sk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                  info=b"cssm-v1 share key" + vid + fid + bytes([i])).derive(spec.vmk())
        trace["share_keys (store index: SK_i)"][str(i)] = sk.hex()  # type: ignore[index]
        objects[f"{i}:{vid.hex()}/meta/{fid.hex()}"] = (
            h + nonce(0x30 + i) + AESGCM(sk).encrypt(nonce(0x30 + i), shares[i + 1], h)
            + nonce(0x20) + struct.pack(">I", len(sealed_box)) + sealed_box)
    data = plain + bytes(data_len - len(plain))   # version 2: zeros to data_len
    parts = seal_parts(data, k, n, b_size, part_keys, [header(b"CSDP", i) for i in range(n)])
    for i in range(n):
        objects[f"{i}:{vid.hex()}/data/{fid.hex()}"] = parts[i]
    return objects


def pack_objects(spec: Spec, members: list[tuple[str, bytes]], removed: set[int]
                 ) -> dict[str, bytes]:
    """Section 6a: a pack of `members`, and (7a) a removal record for those in `removed`."""
    pid = hashlib.sha256(b"pack").digest()[:16]
    content, index = b"", [b"CSPX" + struct.pack(">I", len(members))]
    ids = [hashlib.sha256(b"member %d" % i).digest()[:16] for i in range(len(members))]
    for mid, (name, data) in zip(ids, members, strict=True):
        index.append(mid + struct.pack(">QQq", len(content), len(data), MTIME)
                     + hashlib.sha256(data).digest() + struct.pack(">H", len(name.encode()))
                     + name.encode())
        content += data
    offset = len(content)
    objects = file_objects(spec, pid, content + b"".join(index), b"", 1,
                           struct.pack(">Q", offset), 0)
    rk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
              info=b"cssm-v2 removal key" + spec.vault_id + pid).derive(spec.vmk())
    TRACE.setdefault(spec.vault_id.hex(), {})[f"removal_key {pid.hex()}"] = rk.hex()
    head = b"CSGR" + bytes([2]) + spec.vault_id + pid
    gone = sorted(ids[i] for i in removed)
    record = head + nonce(0x60) + AESGCM(rk).encrypt(
        nonce(0x60), struct.pack(">I", len(gone)) + b"".join(gone), head)
    for i in range(spec.n):
        objects[f"{i}:{spec.vault_id.hex()}/gone/{pid.hex()}/{'ab' * 16}"] = record
    return objects


THREE_OF_FIVE = Spec(5, 3, bytes.fromhex("11112222333344445555666677778888"),
                     ((NAME, PLAIN), ("vectors/empty", b"")))
PARITY_ONLY = Spec(4, 2, bytes.fromhex("99990000aaaabbbbccccddddeeeeffff"),
                   (("vectors/parity.txt", PLAIN * 3),))
NEW_PASSWORD, NEW_SALT = "changed password", bytes(range(16, 32))
# A pack of four members, the second removed (sections 6a, 7a).
PACK_VAULT = Spec(5, 3, bytes.fromhex("0123456789abcdef0123456789abcdef"), ())
PACK_MEMBERS = [("docs/a.txt", PLAIN), ("docs/b.txt", b"b" * 5000), ("c.txt", b""),
                ("docs/d.bin", bytes(range(256)) * 7)]


def snapshot_objects(spec: Spec) -> dict[str, bytes]:
    """Section 6b: a snapshot of the pack's members 0, 2 and 3 (the removed one is not in
    it), stored as a file of kind 3 whose id is first 16 bytes of SHA-256(b'snapshot')."""
    sid = hashlib.sha256(b"snapshot").digest()[:16]
    ids = [hashlib.sha256(b"member %d" % i).digest()[:16] for i in range(len(PACK_MEMBERS))]

    def text(value: str) -> bytes:
        return struct.pack(">H", len(value.encode())) + value.encode()

    chosen = sorted((PACK_MEMBERS[i][0], i) for i in (0, 2, 3))
    content = (b"CSSN" + bytes([1]) + struct.pack(">qII", STORED, 0, len(chosen))
               + text("host") + text("/home/me/docs") + text("docs"))
    for name, i in chosen:
        data = PACK_MEMBERS[i][1]
        content += (ids[i] + struct.pack(">QqqQIH", len(data), MTIME, MTIME, 1000 + i,
                                         0o100640, len(name.encode())) + name.encode())
    return file_objects(spec, sid, content, b"", 3, b"", STORED)


def _write(cfg: Config, objects: dict[str, bytes]) -> None:
    for key, blob in objects.items():
        index, name = key.split(":", 1)
        path = Path(cfg.stores[int(index)].path or "") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)


def _restore_all(cfg: Config, tmp_path: Path, password: str, lost: tuple[int, ...],
                 spec: Spec) -> None:
    import shutil

    for i in lost:
        shutil.rmtree(Path(cfg.stores[i].path or ""))
    engine = Engine(cfg, catalog_path=tmp_path / f"catalog-{lost}.sqlite")
    engine.unlock(password)
    count, unreadable = engine.rebuild_catalog()
    assert (count, unreadable) == (len(spec.files), {})
    for entry in engine.entries():
        want = dict(spec.files)[entry.name]
        out = engine.get(entry, tmp_path / f"out-{entry.id}")
        assert out.read_bytes() == want and entry.size == len(want)


def test_version_2_three_of_five_and_an_empty_file(tmp_path: Path) -> None:
    cfg = Config(stores=folder_stores(tmp_path / "stores", 5), threshold=3)
    _write(cfg, build_v2(THREE_OF_FIVE))
    # Stores 1 and 2 lost: every stripe decodes from one data part and both parities.
    _restore_all(cfg, tmp_path, THREE_OF_FIVE.password, (0, 1), THREE_OF_FIVE)


def test_version_2_parity_only_decode(tmp_path: Path) -> None:
    cfg = Config(stores=folder_stores(tmp_path / "stores", 4), threshold=2)
    _write(cfg, build_v2(PARITY_ONLY))
    _restore_all(cfg, tmp_path, PARITY_ONLY.password, (0, 1), PARITY_ONLY)


def test_version_2_headers_after_a_password_change(tmp_path: Path) -> None:
    from cssm_desktop.errors import WrongPassword

    cfg = Config(stores=folder_stores(tmp_path / "stores", 5), threshold=3)
    _write(cfg, {**build_v2(THREE_OF_FIVE),
                 **vault_headers(THREE_OF_FIVE, NEW_PASSWORD, NEW_SALT, 0x50)})
    with pytest.raises(WrongPassword):
        Engine(cfg, catalog_path=tmp_path / "c.sqlite").unlock(THREE_OF_FIVE.password)
    _restore_all(cfg, tmp_path, NEW_PASSWORD, (), THREE_OF_FIVE)


def test_version_2_pack_with_a_removed_member(tmp_path: Path) -> None:
    """A pack and a removal record written from FORMAT.md alone: the engine lists the
    members not removed and restores each, byte for byte, from 3 of 5 stores."""
    members, spec = PACK_MEMBERS, PACK_VAULT
    cfg = Config(stores=folder_stores(tmp_path / "stores", 5), threshold=3)
    _write(cfg, {**vault_headers(spec, spec.password, spec.salt, 0x10),
                 **pack_objects(spec, members, removed={1})})
    import shutil

    for i in (0, 3):
        shutil.rmtree(Path(cfg.stores[i].path or ""))
    engine = Engine(cfg, catalog_path=tmp_path / "c.sqlite")
    engine.unlock(spec.password)
    assert engine.rebuild_catalog() == (3, {})
    entries = engine.entries()
    assert sorted(e.name for e in entries) == ["c.txt", "docs/a.txt", "docs/d.bin"]
    rows = engine.get_many(entries, tmp_path / "out")
    for entry, got in rows:
        assert isinstance(got, Path) and got.read_bytes() == dict(members)[entry.name]
        assert got.stat().st_mtime_ns == MTIME


def test_version_2_snapshot_of_a_pack(tmp_path: Path) -> None:
    """A snapshot written from FORMAT.md 6b alone: the engine lists it and restores its
    tree with the records' modes, from 3 of 5 stores."""
    import shutil

    spec = PACK_VAULT
    cfg = Config(stores=folder_stores(tmp_path / "stores", 5), threshold=3)
    _write(cfg, {**vault_headers(spec, spec.password, spec.salt, 0x10),
                 **pack_objects(spec, PACK_MEMBERS, removed={1}), **snapshot_objects(spec)})
    for i in (1, 4):
        shutil.rmtree(Path(cfg.stores[i].path or ""))
    engine = Engine(cfg, catalog_path=tmp_path / "c.sqlite")
    engine.unlock(spec.password)
    assert engine.rebuild_catalog() == (3, {})
    (snap,) = engine.snapshots()
    assert (snap.host, snap.root, snap.files, snap.time_ns) == ("host", "/home/me/docs", 3,
                                                                 STORED)
    rows = engine.restore_snapshot(snap, tmp_path / "out")
    assert [r.name for r, _ in rows] == ["c.txt", "docs/a.txt", "docs/d.bin"]
    for rec, got in rows:
        assert isinstance(got, Path) and got.read_bytes() == dict(PACK_MEMBERS)[rec.name]
        assert got.stat().st_mode & 0o777 == 0o640


def _published() -> dict[str, dict[str, object]]:
    TRACE.clear()
    v1 = {key: blob.hex() for key, blob in sorted(build().items())}
    v2 = {f"3-of-5 {key}": blob.hex() for key, blob in sorted(build_v2(THREE_OF_FIVE).items())}
    v2 |= {f"after password change {key}": blob.hex() for key, blob in sorted(
        vault_headers(THREE_OF_FIVE, NEW_PASSWORD, NEW_SALT, 0x50).items())}
    v2 |= {f"2-of-4 {key}": blob.hex() for key, blob in sorted(build_v2(PARITY_ONLY).items())}
    v2 |= {f"pack {key}": blob.hex() for key, blob in sorted(
        {**vault_headers(PACK_VAULT, PACK_VAULT.password, PACK_VAULT.salt, 0x10),
         **pack_objects(PACK_VAULT, PACK_MEMBERS, removed={1}),
         **snapshot_objects(PACK_VAULT)}.items())}
    inputs_v1 = {
        "password": PASSWORD, "salt": SALT.hex(), "argon2id": {"m": M, "t": T, "p": P},
        "vmk": VMK.hex(), "ck": CK.hex(), "vault_id": VAULT_ID.hex(),
        "file_id": FILE_ID.hex(), "n": N, "k": K, "block_size": B,
        "plaintext": PLAIN.decode(), "name": NAME, "mtime_ns": MTIME, "stored_at_ns": STORED,
        "nonces": "vault header i: 12 x (0x10+i); share i: 12 x (0x30+i); key box: 12 x 0x20",
        "part_keys": "SHA-256(b'part key %d' % i)",
        "shamir_a1": "SHA-256(b'coefficients'), one coefficient per byte of CK"}
    inputs_v2 = {
        "password": THREE_OF_FIVE.password, "salt": THREE_OF_FIVE.salt.hex(),
        "new_password": NEW_PASSWORD, "new_salt": NEW_SALT.hex(),
        "argon2id": {"m": M, "t": T, "p": P}, "block_size": 16,
        "vaults": {"3-of-5": {"vault_id": THREE_OF_FIVE.vault_id.hex(),
                              "files": {name: data.decode() for name, data in
                                        THREE_OF_FIVE.files}},
                   "2-of-4": {"vault_id": PARITY_ONLY.vault_id.hex(),
                              "files": {name: data.decode() for name, data in
                                        PARITY_ONLY.files}},
                   "pack": {"vault_id": PACK_VAULT.vault_id.hex(),
                            "members": {name: data.hex() for name, data in PACK_MEMBERS},
                            "removed": [PACK_MEMBERS[1][0]]}},
        "pack": "pack id: first 16 bytes of SHA-256(b'pack'); member ids: first 16 bytes of "
                "SHA-256(b'member %d' % i); every member's time mtime_ns; the pack's keys "
                "as a file's, from the pack id; removal record nonce 12 x 0x60, "
                "object name gone/<pack id>/" + "ab" * 16,
        "snapshot": "in the pack vault: id first 16 bytes of SHA-256(b'snapshot'), keys as "
                    "a file's from that id; time stored_at_ns; host 'host', root "
                    "'/home/me/docs', label 'docs'; records of members 0, 2, 3 by name, "
                    "ctime mtime_ns, inode 1000 + member number, mode 0o100640",
        "vmk": "SHA-256(b'vmk' + vault id)",
        "file_id": "first 16 bytes of SHA-256(b'file %d' % number), files numbered from 0",
        "ck": "SHA-256(b'ck' + file id)",
        "part_keys": "SHA-256(b'part key %d' % i + file id)",
        "shamir": "a_j = SHA-256(b'coefficient %d ' % j + file id), one coefficient per byte",
        "mtime_ns": MTIME, "stored_at_ns": STORED,
        "nonces": "vault header i: 12 x (0x10+i), after the password change 12 x (0x50+i); "
                  "share i: 12 x (0x30+i); key box: 12 x 0x20"}
    return {"version 1": {"inputs": inputs_v1, "objects": v1},
            "version 2": {"inputs": inputs_v2, "objects": v2,
                          "intermediate": {vid: dict(sorted(values.items()))
                                           for vid, values in sorted(TRACE.items())}}}


def test_published_vectors_match() -> None:
    got = _published()
    if os.environ.get("CSSM_REGEN_VECTORS"):
        VECTORS.write_text(json.dumps(got, indent=2) + "\n")
    assert json.loads(VECTORS.read_text()) == got


def test_a_version_1_vault_repairs_in_version_1(tmp_path: Path) -> None:
    """A first-release vault and config (no binding): a lost part, a lost metadata object
    and an emptied store are rebuilt as version 1 objects, and the file restores from them."""
    import shutil

    objects = build()
    cfg = Config(stores=folder_stores(tmp_path / "stores", N), threshold=K)
    _write(cfg, objects)
    root = [Path(s.path or "") for s in cfg.stores]
    (root[1] / VAULT_ID.hex() / "data" / FILE_ID.hex()).unlink()
    (root[2] / VAULT_ID.hex() / "meta" / FILE_ID.hex()).unlink()
    engine = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    engine.unlock(PASSWORD)
    engine.rebuild_catalog()
    _, ((_, result),) = engine.repair()
    assert not isinstance(result, CssmError) and result.after.healthy
    assert cfg.vault == VAULT_ID.hex() and [s.index for s in cfg.stores] == [0, 1, 2]
    for i in range(N):
        for kind in ("data", "meta"):
            assert (root[i] / VAULT_ID.hex() / kind / FILE_ID.hex()).read_bytes()[4] == 1
    shutil.rmtree(root[0])
    root[0].mkdir()     # store 1's disk replaced by an empty one
    engine = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    engine.unlock(PASSWORD)
    healed, ((_, result),) = engine.repair()
    assert healed == ["store1"] and not isinstance(result, CssmError) and result.after.healthy
    assert (root[0] / VAULT_ID.hex() / "vault").read_bytes()[4] == 1
    shutil.rmtree(root[1])    # the rebuilt store and one original restore the file
    fresh = Engine(cfg, catalog_path=tmp_path / "other.sqlite")
    fresh.unlock(PASSWORD)
    fresh.rebuild_catalog()
    (entry,) = fresh.entries()
    assert fresh.get(entry, tmp_path / "out.txt").read_bytes() == PLAIN


def test_an_independent_reader_restores_what_the_engine_wrote_from_any_k_stores(
        folder_engine: Engine, tmp_path: Path) -> None:
    """tests/independent_reader.py knows only docs/FORMAT.md: from every 3 of the 5
    stores it restores every file the engine stored (one stored alone, small ones in a
    pack, one of them removed), and nothing removed."""
    import itertools

    from . import independent_reader

    tree = tmp_path / "T"
    (tree / "sub").mkdir(parents=True)
    files = {"T/big.bin": os.urandom(1_200_000), "T/a.txt": b"alpha " * 100,
             "T/sub/b.txt": b"", "T/sub/gone.txt": b"removed later",
             "T/\u00e9t\u00e9.txt": "r\u00e9sum\u00e9".encode()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    os.chmod(tmp_path / "T/big.bin", 0o750)   # stored alone: its key box has the mode
    os.chmod(tmp_path / "T/a.txt", 0o444)     # in the pack: its index has it
    results = folder_engine.put([tree])
    assert all(r.stored is not None for r in results)
    folder_engine.remove(folder_engine.resolve("T/sub/gone.txt").id)
    del files["T/sub/gone.txt"]
    cfg = folder_engine.config
    vault = folder_engine.vault()
    roots = {sc.index: Path(sc.path or "") for sc in cfg.stores if sc.index is not None}
    for chosen in itertools.combinations(sorted(roots), 3):
        modes: dict[str, int] = {}
        got = independent_reader.restore_all({i: roots[i] for i in chosen}, vault.id_hex,
                                             CONF_PASSWORD, 5, 3, modes)
        assert got == files, chosen
        assert modes["T/big.bin"] == 0o100750 and modes["T/a.txt"] == 0o100444, modes
    # A backup's snapshot reads the same from FORMAT.md 6b.
    snap = folder_engine.backup(tree).snapshot
    assert snap is not None
    read = independent_reader.snapshots({i: roots[i] for i in (0, 2, 4)}, vault.id_hex,
                                        CONF_PASSWORD, 5, 3)
    assert list(read) == [snap.id]
    assert read[snap.id]["root"] == str(tree) and read[snap.id]["time"] == snap.time_ns
    assert [(r["id"], r["name"], r["mode"]) for r in read[snap.id]["records"]] == \
        [(r.entry_id, r.name, r.mode) for r in snap.records]
