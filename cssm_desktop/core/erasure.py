"""Erasure coding: zfec's systematic Reed-Solomon code, computed by our GF(2^8) kernel.

zfec defines the code (its matrix over GF(2^8), x^8+x^4+x^3+x^2+1; docs/FORMAT.md) and stays
both the reference and the fallback. The coding matrices are read off zfec itself, by coding
unit vectors, so the bytes cannot drift from zfec's; `_gf256` then does the multiply-adds
3-15x faster than zfec's table kernel and without data-indexed lookups. Without the compiled
kernel (an install with no C compiler) zfec does everything, with the same results.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import zfec

try:
    from .. import _gf256
except ImportError:  # built without a C compiler: zfec's own kernel, same bytes
    _gf256 = None

log = logging.getLogger(__name__)
Block = bytes | memoryview


def kernel() -> str:
    """Which kernel codes (gfni, avx2, portable, or zfec), for `--version` and the benchmark."""
    return _gf256.kernel() if _gf256 is not None else "zfec"


def _choose(name: str | None) -> None:
    """CSSM_ERASURE_KERNEL=zfec|portable|avx2|gfni picks a kernel (benchmarks, bug hunts)."""
    global _gf256
    if not name:
        return
    if name == "zfec":
        _gf256 = None
    elif _gf256 is not None and name in _gf256.kernels():
        _gf256.kernel(name)
    else:
        log.warning("CSSM_ERASURE_KERNEL=%s is not available here; using %s", name, kernel())


_choose(os.environ.get("CSSM_ERASURE_KERNEL"))
NATIVE = _gf256 is not None
# Coding releases the GIL: a stripe per core at once, two at least (coding then overlaps
# the hashing and sealing stages), four at most (past that, the disk or network leads).
WORKERS = max(2, min(4, os.cpu_count() or 2))
_local = threading.local()


def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(WORKERS, thread_name_prefix="cssm-coding")


def _zfec(cls: type, k: int, n: int) -> Any:
    """One zfec coder per thread, class and geometry: zfec documents no thread safety."""
    coders = _local.__dict__.setdefault("coders", {})
    if (cls, k, n) not in coders:
        coders[(cls, k, n)] = cls(k, n)
    return coders[(cls, k, n)]


def _units(k: int) -> list[bytes]:
    """k blocks of k bytes; block j is 1 at byte j. Coding them yields matrix columns."""
    return [bytes(int(i == j) for i in range(k)) for j in range(k)]


@lru_cache(maxsize=64)
def _parity_matrix(k: int, n: int) -> bytes:
    """Rows k..n-1 of zfec's encoding matrix, row-major: parity r = sum_j M[r][j] * data_j."""
    return b"".join(zfec.Encoder(k, n).encode(_units(k), tuple(range(k, n))))


@lru_cache(maxsize=256)
def _recovery_matrix(k: int, n: int, present: tuple[int, ...]) -> tuple[tuple[int, ...], bytes]:
    """For the sorted share numbers `present`: the missing data blocks, and the rows that
    rebuild them from the present blocks (in `present` order)."""
    rows = zfec.Decoder(k, n).decode(_units(k), present)
    missing = tuple(j for j in range(k) if j not in present)
    return missing, b"".join(rows[j] for j in missing)


def encode(k: int, n: int, data: Sequence[Block]) -> list[Block]:
    """The n-k parity blocks of k equal-length data blocks."""
    if n == k:
        return []
    if _gf256 is None:
        return list(_zfec(zfec.Encoder, k, n).encode(tuple(data), tuple(range(k, n))))
    return _gf256.combine(_parity_matrix(k, n), n - k, data)


def decode(k: int, n: int, blocks: Sequence[Block], present: Sequence[int]) -> list[Block]:
    """The k data blocks, from k equal-length blocks with sorted share numbers `present`."""
    present = tuple(present)
    if present == tuple(range(k)):
        return list(blocks)
    if _gf256 is None:
        return list(_zfec(zfec.Decoder, k, n).decode(tuple(blocks), present))
    missing, matrix = _recovery_matrix(k, n, present)
    rebuilt = dict(zip(missing, _gf256.combine(matrix, len(missing), blocks), strict=True))
    given = dict(zip(present, blocks, strict=True))
    return [given[j] if j in given else rebuilt[j] for j in range(k)]
