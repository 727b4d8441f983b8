"""A stored file's content as a stream of checked bytes, whole or a byte range, for
faces that send it on (the local API's download): the file's size and SHA-256 are known
before the first byte goes out, every block authenticates as it is decoded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InputError, IntegrityError, NotFound
from .format import S_FILE
from .get import OpenedFile, open_file
from .pack import open_pack, read_members, stream_range
from .progress import CancelToken
from .vault import Vault


@dataclass
class Content:
    size: int
    sha256: bytes
    _vault: Vault
    _opened: OpenedFile | None = None   # a file stored alone
    _data: bytes | None = None          # a pack member (under 1 MiB), read and checked

    def chunks(self, start: int = 0, end: int | None = None,
               cancel: CancelToken | None = None) -> Iterator[bytes]:
        """content[start:end], in pieces of at most a stripe."""
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return
        if self._data is not None:
            yield self._data[start:end]
            return
        assert self._opened is not None
        for offset, piece in stream_range(self._vault, self._opened, start, end,
                                          cancel=cancel):
            lo, hi = max(start - offset, 0), min(end - offset, len(piece))
            if lo < hi:
                yield piece[lo:hi]


def open_content(vault: Vault, file_id: str, pack_id: str = "",
                 cancel: CancelToken | None = None) -> Content:
    if not pack_id:
        opened = open_file(vault, bytes.fromhex(file_id))
        return Content(opened.box.size, opened.box.sha256, vault, _opened=opened)
    pack = open_pack(vault, bytes.fromhex(pack_id), cancel=cancel)
    member = pack.member(bytes.fromhex(file_id))
    if member is None:
        raise NotFound("the file is no longer in its pack (removed on another computer?)")
    if member.kind != S_FILE:
        raise InputError("a folder or link has no content to send")
    for _m, data in read_members(vault, pack, [member], cancel=cancel):
        if isinstance(data, IntegrityError):
            raise data
        return Content(member.size, member.sha256, vault, _data=bytes(data))
    raise NotFound("the file could not be read from its pack")
