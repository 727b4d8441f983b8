"""A restorer written from docs/FORMAT.md alone (no engine code): it reads the folder
stores of a vault and returns every file's name and bytes.

It uses `cryptography` (Argon2id, HKDF, AES-GCM), `zfec` and the standard library, and
follows the document step by step: vault headers (3), keys (2), metadata and key box
(4, 5), parts (6), packs (6a) and removal records with their quorum (7a). It trusts the
n and k it is given (the document's "binding"), as a reader with local state does.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import unicodedata
from collections import Counter
from pathlib import Path

import zfec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def _gf_mul(a: int, b: int) -> int:
    """GF(2^8) with 0x11B (section 2, Shamir), bit by bit."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a = ((a << 1) ^ 0x11B) if a & 0x80 else a << 1
        b >>= 1
    return out


def _gf_inv(a: int) -> int:
    return next(x for x in range(1, 256) if _gf_mul(a, x) == 1)


def _combine(shares: dict[int, bytes]) -> bytes:
    """Lagrange interpolation at 0 over the shares' x-coordinates."""
    xs = list(shares)
    out = bytearray(32)
    for xj in xs:
        num, den = 1, 1
        for xm in xs:
            if xm != xj:
                num = _gf_mul(num, xm)
                den = _gf_mul(den, xm ^ xj)
        weight = _gf_mul(num, _gf_inv(den))
        for pos, y in enumerate(shares[xj]):
            out[pos] ^= _gf_mul(weight, y)
    return bytes(out)


class Store:
    def __init__(self, root: Path, index: int) -> None:
        self.root, self.index = root, index

    def get(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def names(self, folder: str) -> list[str]:
        path = self.root / folder
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def _vmk(stores: list[Store], vault: str, password: str) -> bytes:
    """Section 3: unwrap VMK with the password (NFC), from any header that opens."""
    pw = unicodedata.normalize("NFC", password).encode()
    for store in stores:
        raw = store.get(f"{vault}/vault")
        if raw is None or len(raw) != 113 or raw[:4] != b"CSVH":
            continue
        m, t, p = struct.unpack(">III", raw[25:37])
        pk = Argon2id(salt=raw[37:53], length=32, iterations=t, lanes=p,
                      memory_cost=m).derive(pw)
        try:
            return AESGCM(pk).decrypt(raw[53:65], raw[65:113], raw[:53])
        except InvalidTag:
            continue
    raise ValueError("no vault header opens with this password")


def _open_file(stores: list[Store], vault: str, fid: str, vmk: bytes, n: int, k: int
               ) -> tuple[bytes, bytes, list[bytes]] | None:
    """Sections 4-5: (key box plaintext, common header C, part keys), or None."""
    found: dict[int, tuple[bytes, bytes]] = {}
    boxes: dict[bytes, tuple[bytes, bytes]] = {}
    for store in stores:
        raw = store.get(f"{vault}/meta/{fid}")
        if raw is None or raw[:4] != b"CSMD" or len(raw) < 120:
            continue
        h = raw[:44]
        if h[5:21].hex() != vault or h[21:37].hex() != fid or h[43] != store.index \
                or (h[37], h[38]) != (n, k):
            continue
        sk = _hkdf(vmk, b"cssm-v1 share key" + bytes.fromhex(vault) + bytes.fromhex(fid)
                   + bytes([store.index]))
        try:
            share = AESGCM(sk).decrypt(raw[44:56], raw[56:104], h)
        except InvalidTag:
            continue
        (length,) = struct.unpack(">I", raw[116:120])
        found[store.index + 1] = (share, raw[:43])
        boxes[raw[:43]] = (raw[104:116], raw[120:120 + length])
    for subset in itertools.combinations(sorted(found), k):
        ck = _combine({x: found[x][0] for x in subset})
        common = found[subset[0]][1]
        box_nonce, sealed = boxes[common]
        try:
            box = AESGCM(ck).decrypt(box_nonce, sealed, common)
        except InvalidTag:
            continue
        keys = [box[3 + 32 * i: 35 + 32 * i] for i in range(n)] if box[0] == 2 else \
            [box[2 + 32 * i: 34 + 32 * i] for i in range(n)]
        return box, common, keys
    return None


def _content(stores: list[Store], vault: str, fid: str, common: bytes, keys: list[bytes],
             data_len: int, n: int, k: int) -> bytes:
    """Section 6: every stripe from any k parts whose blocks open."""
    block = struct.unpack(">I", common[39:43])[0]
    stripes = max(1, -(-data_len // (k * block)))
    parts = {s.index: s.get(f"{vault}/data/{fid}") for s in stores}
    decoder = zfec.Decoder(k, n)
    out = bytearray()
    for s in range(stripes):
        last = s == stripes - 1
        size = -(-(data_len - s * k * block) // k) if last else block
        nonce = s.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        got: dict[int, bytes] = {}
        for i, part in sorted(parts.items()):
            if part is None or len(got) == k:
                continue
            head = common[:4].replace(b"CSMD", b"CSDP") + common[4:43] + bytes([i])
            start = 44 + s * (block + 16)
            try:
                got[i] = AESGCM(keys[i]).decrypt(nonce, part[start:start + size + 16], head)
            except InvalidTag:
                continue
        if len(got) < k:
            raise ValueError(f"stripe {s} of {fid}: fewer than k good blocks")
        order = sorted(got)
        blocks = decoder.decode([got[i] for i in order], order)
        out += b"".join(bytes(b) for b in blocks)
    return bytes(out[:data_len])


def restore_all(roots: dict[int, Path], vault: str, password: str, n: int, k: int,
                modes: dict[str, int] | None = None) -> dict[str, bytes]:
    """name -> bytes of every file of the vault, from the stores given (index -> folder).
    For a name stored more than once, the copy stored last (section 6a, 7a). `modes`, if
    given, gets each file's permission bits where they were recorded (sections 5, 6a)."""
    stores = [Store(root, index) for index, root in roots.items()]
    vmk = _vmk(stores, vault, password)
    ids = sorted({name for s in stores for name in s.names(f"{vault}/meta")})
    newest: dict[str, tuple[int, bytes, int]] = {}

    def keep(name: str, stored: int, data: bytes, mode: int = -1) -> None:
        if name not in newest or newest[name][0] < stored:
            newest[name] = (stored, data, mode)

    for fid in ids:
        opened = _open_file(stores, vault, fid, vmk, n, k)
        if opened is None:
            continue
        box, common, keys = opened
        if box[0] == 1:   # version 1: no kind, data_len = size
            off = 2 + 32 * n
            size, _mtime, stored = struct.unpack(">Qqq", box[off:off + 24])
            digest = box[off + 24:off + 56]
            (name_len,) = struct.unpack(">H", box[off + 56:off + 58])
            raw_name = box[off + 58:off + 58 + name_len]
            name, kind, data_len = raw_name.decode("utf-8", "surrogateescape"), 0, size
        else:
            kind, off = box[1], 3 + 32 * n
            size, data_len, _mtime, stored = struct.unpack(">QQqq", box[off:off + 32])
            digest = box[off + 32:off + 64]
            (name_len,) = struct.unpack(">H", box[off + 64:off + 66])
            name = box[off + 66:off + 66 + name_len].decode("utf-8", "surrogateescape")
            tail = off + 66 + name_len
        content = _content(stores, vault, fid, common, keys, data_len, n, k)[:size]
        assert hashlib.sha256(content).digest() == digest, fid
        if kind == 3:   # a snapshot (section 6b): listed by snapshots(), not a file
            continue
        if kind in (0, 2):   # a file; kind 2 has its permission bits after the name
            mode = struct.unpack(">I", box[tail:tail + 4])[0] if kind == 2 else -1
            keep(name, stored, content, mode)
            continue
        (index_offset,) = struct.unpack(">Q", box[tail:tail + 8])
        removed = _removed(stores, vault, fid, vmk, k)
        index = content[index_offset:]
        assert index[:4] in (b"CSPX", b"CSPM")
        with_modes = index[:4] == b"CSPM"   # 4 bytes of mode after each entry's name length
        (count,) = struct.unpack(">I", index[4:8])
        pos = 8
        for _ in range(count):
            mid = index[pos:pos + 16]
            m_off, m_size, _m_time = struct.unpack(">QQq", index[pos + 16:pos + 40])
            m_digest = index[pos + 40:pos + 72]
            (m_len,) = struct.unpack(">H", index[pos + 72:pos + 74])
            pos += 74
            m_mode = -1
            if with_modes:
                (m_mode,) = struct.unpack(">I", index[pos:pos + 4])
                pos += 4
            m_name = index[pos:pos + m_len].decode("utf-8", "surrogateescape")
            pos += m_len
            data = content[m_off:m_off + m_size]
            assert hashlib.sha256(data).digest() == m_digest
            if mid not in removed:
                keep(m_name, stored, data, m_mode)
    if modes is not None:
        modes.update({name: mode for name, (_s, _d, mode) in newest.items() if mode >= 0})
    return {name: data for name, (_stored, data, _mode) in newest.items()}


def snapshots(roots: dict[int, Path], vault: str, password: str, n: int, k: int
              ) -> dict[str, dict[str, object]]:
    """Section 6b: snapshot id -> its time, host, root, label and records (entry id hex,
    name, size, mtime, mode)."""
    stores = [Store(root, index) for index, root in roots.items()]
    vmk = _vmk(stores, vault, password)
    out: dict[str, dict[str, object]] = {}
    for fid in sorted({name for s in stores for name in s.names(f"{vault}/meta")}):
        opened = _open_file(stores, vault, fid, vmk, n, k)
        if opened is None or opened[0][0] != 2 or opened[0][1] != 3:
            continue
        box, common, keys = opened
        off = 3 + 32 * n
        size, data_len = struct.unpack(">QQ", box[off:off + 16])
        content = _content(stores, vault, fid, common, keys, data_len, n, k)[:size]
        assert hashlib.sha256(content).digest() == box[off + 32:off + 64]
        assert content[:4] == b"CSSN" and content[4] == 1
        time_ns, failed, count = struct.unpack(">qII", content[5:21])
        pos, texts = 21, []
        for _ in range(3):
            (length,) = struct.unpack(">H", content[pos:pos + 2])
            texts.append(content[pos + 2:pos + 2 + length].decode("utf-8", "surrogateescape"))
            pos += 2 + length
        records = []
        for _ in range(count):
            eid = content[pos:pos + 16].hex()
            r_size, mtime, _ctime, _ino, mode, name_len = struct.unpack(
                ">QqqQIH", content[pos + 16:pos + 54])
            name = content[pos + 54:pos + 54 + name_len].decode("utf-8", "surrogateescape")
            pos += 54 + name_len
            records.append({"id": eid, "name": name, "size": r_size, "mtime": mtime,
                            "mode": mode})
        assert pos == len(content)
        out[fid] = {"time": time_ns, "failed": failed, "host": texts[0], "root": texts[1],
                    "label": texts[2], "records": records}
    return out


def _removed(stores: list[Store], vault: str, pack: str, vmk: bytes, k: int) -> set[bytes]:
    """Section 7a: members that authentic records on at least k stores name."""
    rk = _hkdf(vmk, b"cssm-v2 removal key" + bytes.fromhex(vault) + bytes.fromhex(pack))
    votes: Counter[bytes] = Counter()
    for store in stores:
        named: set[bytes] = set()
        for record in store.names(f"{vault}/gone/{pack}"):
            raw = store.get(f"{vault}/gone/{pack}/{record}")
            if raw is None or raw[:4] != b"CSGR" or raw[5:21].hex() != vault \
                    or raw[21:37].hex() != pack:
                continue
            try:
                body = AESGCM(rk).decrypt(raw[37:49], raw[49:], raw[:37])
            except InvalidTag:
                continue
            (count,) = struct.unpack(">I", body[:4])
            named |= {body[4 + 16 * i: 20 + 16 * i] for i in range(count)}
        votes.update(named)
    return {mid for mid, count in votes.items() if count >= k}
