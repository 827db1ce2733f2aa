"""A seekable, read-only file object over a remote file's cached byte ranges, for PyAV
(``av.open(fileobj)``) and pyarrow (``pq.ParquetFile(fileobj)``).

``short_reads=True`` (PyAV): a read returns the cached bytes from the position when there are some,
and fetches only when the position itself is not cached, so a demuxer's read-ahead buffer does not
turn into requests for bytes it never parses. ``short_reads=False`` (pyarrow): a read returns every
requested byte (the gaps fetched in one merged call). ``zero`` ranges are read as zero bytes without
fetching (the packet payload of an mp4 while its sample tables are indexed).
"""

from __future__ import annotations

import bisect
import io
import os
from typing import Sequence

from ._ranges import STORE
from ._source import Source


class RemoteFile(io.RawIOBase):
    """Read-only binary file over ``source`` (see the module docstring). Not shared between threads."""

    def __init__(self, source: Source, *, short_reads: bool = False, zero: Sequence[tuple[int, int]] = ()):
        super().__init__()
        self.source = source
        self.name = source.url
        self.size = source.size
        self._pos = 0
        self._short = short_reads
        self._zero = sorted(zero)
        self._zero_starts = [a for a, _ in self._zero]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = int(pos)
        return self._pos

    def readinto(self, b) -> int:
        n = self._read_into(memoryview(b).cast("B"))
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(self.size - self._pos, 0)
        buf = bytearray(min(size, max(self.size - self._pos, 0)))
        n = self.readinto(buf) if buf else 0
        return bytes(buf[:n])

    def readall(self) -> bytes:
        return self.read(-1)

    def _read_into(self, out: memoryview) -> int:
        self.source.check()
        a = self._pos
        b = min(a + len(out), self.size)
        if b <= a:
            return 0
        if self._zero:
            i = bisect.bisect_right(self._zero_starts, a) - 1
            if i >= 0 and self._zero[i][1] > a:  # inside a zeroed range
                n = min(b, self._zero[i][1]) - a
                out[:n] = bytes(n)
                return n
            if i + 1 < len(self._zero):
                b = min(b, self._zero[i + 1][0])
        got = STORE.read(self.source, a, b, short=self._short)
        out[: len(got)] = got
        return len(got)
