"""Worker threads for zfec, which releases the GIL: coding two stripes at once uses both cores."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zfec

WORKERS = 2
_local = threading.local()


def _coder(cls: type, k: int, n: int) -> Any:
    """One coder per thread, class and geometry: zfec documents no thread safety, so
    none is shared between threads."""
    coders = _local.__dict__.setdefault("coders", {})
    key = (cls, k, n)
    if key not in coders:
        coders[key] = cls(k, n)
    return coders[key]


def encoder(k: int, n: int) -> zfec.Encoder:
    return _coder(zfec.Encoder, k, n)


def decoder(k: int, n: int) -> zfec.Decoder:
    return _coder(zfec.Decoder, k, n)


def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(WORKERS, thread_name_prefix="cssm-zfec")
