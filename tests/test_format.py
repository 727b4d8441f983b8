"""Object layouts: round trips, tamper detection, parsers that only raise FormatError."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cssm_desktop.core.format import (
    HEADER_LEN,
    META_MAGIC,
    PART_MAGIC,
    TAG_LEN,
    VAULT_HEADER_LEN,
    FileHeader,
    KeyBox,
    MetaObject,
    VaultHeader,
    block_nonce,
    padded_length,
    part_size,
    seal_key_box,
    stripe_count,
)
from cssm_desktop.core.keys import password_key
from cssm_desktop.errors import FormatError, WrongPassword

from .conftest import FAST_KDF


def _vault_header(password: str = "pw") -> tuple[VaultHeader, bytes]:
    vmk = os.urandom(32)
    salt = os.urandom(16)
    pk = password_key(password, salt, FAST_KDF)
    return VaultHeader.seal(vmk, pk, os.urandom(16), 5, 3, 2, FAST_KDF, salt), vmk


def test_vault_header_round_trip_and_unlock() -> None:
    header, vmk = _vault_header()
    raw = header.to_bytes()
    assert len(raw) == VAULT_HEADER_LEN
    parsed = VaultHeader.parse(raw)
    assert parsed == header
    assert parsed.unlock("pw") == vmk
    with pytest.raises(WrongPassword):
        parsed.unlock("not the password")


def test_every_byte_of_the_vault_header_is_authenticated() -> None:
    header, _ = _vault_header()
    raw = header.to_bytes()
    for pos in range(len(raw)):
        tampered = bytearray(raw)
        tampered[pos] ^= 0x01
        with pytest.raises((FormatError, WrongPassword)):
            VaultHeader.parse(bytes(tampered)).unlock("pw")


def _meta(vmk: bytes) -> tuple[MetaObject, bytes, KeyBox]:
    ck = os.urandom(32)
    header = FileHeader(META_MAGIC, os.urandom(16), os.urandom(16), 5, 3, 4096, 1)
    box = KeyBox(tuple(os.urandom(32) for _ in range(5)), 12345, 1, 2, os.urandom(32),
                 "Fotos/Ümlaut ✓.jpg")
    nonce, sealed = seal_key_box(ck, header, box)
    return MetaObject.seal(header, vmk, os.urandom(32), nonce, sealed), ck, box


def test_meta_object_round_trip() -> None:
    vmk = os.urandom(32)
    meta, ck, box = _meta(vmk)
    parsed = MetaObject.parse(meta.to_bytes())
    assert parsed == meta
    assert parsed.open_share(vmk) is not None
    assert parsed.open_box(ck) == box
    assert parsed.open_share(os.urandom(32)) is None  # another vault's key


def test_every_byte_of_the_meta_object_is_authenticated() -> None:
    vmk = os.urandom(32)
    meta, ck, _ = _meta(vmk)
    raw = meta.to_bytes()
    for pos in range(len(raw)):
        tampered = bytearray(raw)
        tampered[pos] ^= 0x80
        try:
            parsed = MetaObject.parse(bytes(tampered))
        except FormatError:
            continue
        # Byte flips land in the share or the key box; one of them must fail to open.
        assert parsed.open_share(vmk) is None or parsed.open_box(ck) is None, pos


def test_key_box_is_the_same_in_every_store_copy() -> None:
    vmk = os.urandom(32)
    meta, ck, box = _meta(vmk)
    other = MetaObject.seal(meta.header.with_index(4), vmk, os.urandom(32), meta.box_nonce,
                            meta.sealed_box)
    assert other.open_box(ck) == box


def test_stream_nonces_never_repeat_and_flag_the_last_block() -> None:
    nonces = {block_nonce(s, False) for s in range(5000)}
    nonces |= {block_nonce(s, True) for s in range(5000)}
    assert len(nonces) == 10000
    assert all(len(n) == 12 for n in nonces)
    assert block_nonce(7, True)[-1] == 1 and block_nonce(7, False)[-1] == 0
    with pytest.raises(FormatError):
        block_nonce(1 << 88, False)


@pytest.mark.parametrize(("size", "stripes", "last"), [
    (0, 1, 0), (1, 1, 1), (3 * 4096, 1, 4096), (3 * 4096 + 1, 2, 1), (10 * 4096, 4, 1366)])
def test_geometry(size: int, stripes: int, last: int) -> None:
    assert stripe_count(size, 3, 4096) == stripes
    expected = HEADER_LEN + (stripes - 1) * (4096 + TAG_LEN) + last + TAG_LEN
    assert part_size(size, 3, 4096) == expected


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_parsers_raise_only_format_errors(data: bytes) -> None:
    for parse in (VaultHeader.parse, MetaObject.parse, lambda d: KeyBox.parse(d, 5, 1),
                  lambda d: KeyBox.parse(d, 5, 2), lambda d: FileHeader.parse(d, PART_MAGIC)):
        with contextlib.suppress(FormatError):
            parse(data)


@settings(max_examples=300)
@given(st.data())
def test_mutated_headers_raise_only_format_errors(data: st.DataObject) -> None:
    header, _ = _vault_header()
    raw = bytearray(header.to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        VaultHeader.parse(bytes(raw))


@pytest.mark.parametrize(("size", "padded"), [
    (0, 1024), (1, 1024), (1024, 1024), (1025, 1088), (4096, 4096), (5000, 5120),
    (1 << 30, 1 << 30), ((1 << 30) + 1, (1 << 30) + (1 << 25)),
    (1_000_000, 1_015_808)])
def test_padme_rounds_up_by_at_most_twelve_percent(size: int, padded: int) -> None:
    assert padded_length(size) == padded


@settings(max_examples=500)
@given(st.integers(1025, 1 << 50))
def test_padme_bounds(size: int) -> None:
    padded = padded_length(size)
    assert size <= padded <= size * 1.12
    assert padded_length(padded) == padded   # padded sizes are fixed points


def test_key_box_names_leak_only_a_bucket_of_length() -> None:
    sizes: dict[int, set[int]] = {}
    for length in range(1, 300):
        box = KeyBox(tuple(bytes(32) for _ in range(5)), 1, 1, 2, bytes(32), "a" * length)
        raw = box.to_bytes()
        sizes.setdefault(len(raw), set()).add(length)
        assert KeyBox.parse(raw, 5, 2) == box
    # 229 fixed bytes at n = 5: names of 1-27 bytes look alike, then 28-283, ...
    assert sizes == {256: set(range(1, 28)), 512: set(range(28, 284)),
                     768: set(range(284, 300))}
    padded = bytearray(box.to_bytes())
    padded[-1] = 1   # padding must be zeros: one canonical encoding per box
    with pytest.raises(FormatError):
        KeyBox.parse(bytes(padded), 5, 2)


def test_version_1_key_boxes_still_parse() -> None:
    box = KeyBox(tuple(bytes([i]) * 32 for i in range(3)), 10, 1, 2, bytes(32), "a.txt",
                 data_len=10)
    raw = box.to_bytes(version=1)
    assert len(raw) == 2 + 3 * 32 + 8 + 8 + 8 + 32 + 2 + 5
    assert KeyBox.parse(raw, 3, 1) == box
    with pytest.raises(FormatError):
        KeyBox.parse(raw, 3, 2)
