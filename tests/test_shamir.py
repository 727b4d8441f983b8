"""Shamir over GF(256): any k shares rebuild, k-1 are consistent with every secret."""

from __future__ import annotations

import itertools
import os
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cssm_desktop.core import shamir
from cssm_desktop.errors import FormatError


def test_gf_mul_matches_fips197_example() -> None:
    # FIPS-197 section 4.2: {57} . {83} = {c1}, {57} . {13} = {fe}
    assert shamir.gf_mul(0x57, 0x83) == 0xC1
    assert shamir.gf_mul(0x57, 0x13) == 0xFE


def test_every_nonzero_element_has_an_inverse() -> None:
    for a in range(1, 256):
        assert shamir.gf_mul(a, shamir.gf_inv(a)) == 1
    with pytest.raises(ZeroDivisionError):
        shamir.gf_inv(0)


@given(secret=st.binary(min_size=1, max_size=40), n=st.integers(1, 16), data=st.data())
def test_any_k_of_n_shares_rebuild_the_secret(secret: bytes, n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, n))
    shares = shamir.split(secret, k, n)
    subset = data.draw(st.lists(st.sampled_from(sorted(shares)), min_size=k, max_size=n,
                                unique=True))
    assert shamir.combine({x: shares[x] for x in subset}) == secret


def test_all_subsets_of_3_of_5() -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, 3, 5)
    for subset in itertools.combinations(shares, 3):
        assert shamir.combine({x: shares[x] for x in subset}) == secret


def _interpolate(points: dict[int, bytes], at: int) -> bytes:
    """Lagrange evaluation at any x, to build the share a chosen secret would imply."""
    out = bytearray(len(next(iter(points.values()))))
    for j, y in points.items():
        num = den = 1
        for m in points:
            if m != j:
                num = shamir.gf_mul(num, m ^ at)
                den = shamir.gf_mul(den, m ^ j)
        lj = shamir.gf_mul(num, shamir.gf_inv(den))
        for pos in range(len(out)):
            out[pos] ^= shamir.gf_mul(y[pos], lj)
    return bytes(out)


@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 5), (4, 7)])
def test_k_minus_1_shares_are_consistent_with_any_secret(k: int, n: int) -> None:
    real = os.urandom(32)
    shares = shamir.split(real, k, n)
    known = {x: shares[x] for x in list(shares)[: k - 1]}
    for _ in range(20):
        other = os.urandom(32)
        # With the k-1 known shares and (0, other) a polynomial exists, so the missing
        # share it implies completes a valid set that rebuilds `other`.
        implied = _interpolate({0: other, **known}, n)
        assert shamir.combine({**known, n: implied}) == other


def test_single_share_bytes_are_uniform() -> None:
    counts: Counter[int] = Counter()
    for _ in range(64):
        counts.update(shamir.split(b"\x00" * 256, 2, 2)[1])
    # 16384 samples over 256 values: expect 64 each. Chi-square with 255 dof; 400 is far
    # beyond the 99.99th percentile (~350) yet catches a constant or biased share.
    chi2 = sum((counts[v] - 64) ** 2 / 64 for v in range(256))
    assert chi2 < 400


def test_combine_rejects_malformed_share_sets() -> None:
    with pytest.raises(FormatError):
        shamir.combine({})
    with pytest.raises(FormatError):
        shamir.combine({1: b"ab", 2: b"a"})
    with pytest.raises(FormatError):
        shamir.combine({0: b"ab", 2: b"ab"})
    with pytest.raises(ValueError):
        shamir.split(b"x", 4, 3)
