"""Worker threads for zfec, which releases the GIL: coding two stripes at once uses both cores."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import zfec

WORKERS = 2
_local = threading.local()


def encoder(k: int, n: int) -> zfec.Encoder:
    """One encoder per thread and geometry; zfec documents no thread safety, so none is shared."""
    key = ("enc", k, n)
    coder = getattr(_local, "coders", {}).get(key)
    if coder is None:
        coder = zfec.Encoder(k, n)
        _local.__dict__.setdefault("coders", {})[key] = coder
    return coder


def decoder(k: int, n: int) -> zfec.Decoder:
    key = ("dec", k, n)
    coder = getattr(_local, "coders", {}).get(key)
    if coder is None:
        coder = zfec.Decoder(k, n)
        _local.__dict__.setdefault("coders", {})[key] = coder
    return coder


def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(WORKERS, thread_name_prefix="cssm-zfec")
