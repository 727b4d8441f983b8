"""Shamir's secret sharing over GF(2^8), byte by byte.

Written here rather than taken from a library: the maintained Python packages either
work over GF(2^128) with 16-byte secrets only (pycryptodome) or add mnemonic encodings
we do not want (shamir-mnemonic). The field is the AES one (x^8+x^4+x^3+x+1) and
multiplication is done bit by bit with no secret-indexed table, so other
implementations can reproduce FORMAT.md's test vectors from this file alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from ..errors import FormatError


def gf_mul(a: int, b: int) -> int:
    """Multiply in GF(2^8) modulo 0x11B with a fixed number of steps."""
    result = 0
    for _ in range(8):
        result ^= -(b & 1) & a
        carry = -((a >> 7) & 1) & 0x1B
        a = ((a << 1) & 0xFF) ^ carry
        b >>= 1
    return result


def gf_inv(a: int) -> int:
    """a^254 = a^-1 in GF(2^8)."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(256)")
    result, base, exp = 1, a, 254
    while exp:
        if exp & 1:
            result = gf_mul(result, base)
        base = gf_mul(base, base)
        exp >>= 1
    return result


def split(secret: bytes, k: int, n: int) -> dict[int, bytes]:
    """Split into n shares at x = 1..n; any k rebuild the secret, k-1 reveal nothing."""
    if not 1 <= k <= n <= 255:
        raise ValueError(f"need 1 <= k <= n <= 255, got k={k}, n={n}")
    shares = {x: bytearray(len(secret)) for x in range(1, n + 1)}
    for pos, byte in enumerate(secret):
        coeffs = [byte, *secrets.token_bytes(k - 1)]
        for x in range(1, n + 1):
            y = 0
            for c in reversed(coeffs):  # Horner
                y = gf_mul(y, x) ^ c
            shares[x][pos] = y
    return {x: bytes(v) for x, v in shares.items()}


def combine(shares: Mapping[int, bytes]) -> bytes:
    """The secret: interpolation at x = 0 over exactly the shares given."""
    return interpolate(shares, 0)


def interpolate(shares: Mapping[int, bytes], at: int) -> bytes:
    """Lagrange interpolation at `at`: 0 gives the secret, another x the share for it
    (how repair recreates a lost share that agrees with the surviving ones)."""
    if not shares:
        raise FormatError("no shares to combine")
    xs = list(shares)
    if len(set(xs)) != len(xs) or any(not 1 <= x <= 255 for x in xs):
        raise FormatError("share indexes must be distinct and in 1..255")
    lengths = {len(v) for v in shares.values()}
    if len(lengths) != 1:
        raise FormatError("shares differ in length")
    (length,) = lengths
    # l_j(at) = prod_{m != j} (at - x_m) / (x_j - x_m); minus is xor in GF(2^8).
    basis = {}
    for j in xs:
        num, den = 1, 1
        for m in xs:
            if m != j:
                num = gf_mul(num, at ^ m)
                den = gf_mul(den, m ^ j)
        basis[j] = gf_mul(num, gf_inv(den))
    out = bytearray(length)
    for j, y in shares.items():
        lj = basis[j]
        for pos in range(length):
            out[pos] ^= gf_mul(y[pos], lj)
    return bytes(out)
