"""``prf.stream``: byte-range access to the files of a dataset opened with
``prf.open_dataset(url, streaming=True)``, for the format (parquet), dataset and decode (mp4) layers.

Local paths under a streamed dataset's mirror root (see :mod:`prf.stream._source`) stand for remote
files; the functions here are what the readers call instead of the filesystem:

- :func:`remote_url` / :func:`is_remote`: whether a path is streamed, and its URL.
- :func:`open_input`: a path for a local file, else a seekable :class:`RemoteFile` (pyarrow, PyAV).
- :func:`file_version`: ``(url, size, etag)`` identifying the remote file's version (cache keys).
- :func:`packet_table`, :func:`prefetch_frames`: an mp4's packets from its sample tables, and the
  concurrent fetch of the GOPs a decode needs.
- :func:`stream_stats`, :func:`clear_cache`, :func:`configure`: counters and the range cache.

Memory: one LRU of fetched ranges per process, capped at ``PRF_STREAM_CACHE_MB`` (default 512 MiB;
:func:`configure`). Faults: retries with backoff, then :class:`prf.errors.StreamError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from . import _mp4
from ._file import RemoteFile
from ._mp4 import PacketTable, gop_ranges, packet_table as _packet_table
from ._ranges import STORE
from ._source import MARKER, register_root, remote_url, source
from ._transport import Version, transport_stats

__all__ = ["MARKER", "PacketTable", "RemoteFile", "Version", "clear_cache", "configure", "file_version",
           "is_remote", "is_file", "open_input", "packet_table", "prefetch_frames", "prefetch_ranges", "register_root", "remote_url",
           "stream_stats", "warm"]


def is_remote(path: str | Path) -> bool:
    """Whether ``path`` is a file of a streamed dataset (read by byte range from its URL)."""
    return remote_url(path) is not None


def open_input(path: str | Path, *, short_reads: bool = False):
    """``path`` itself when local, else a :class:`RemoteFile` over its URL (a new object per call).

    Raises:
        StreamError: the remote file is missing or cannot be reached."""
    url = remote_url(path)
    if url is None:
        return path
    return RemoteFile(source(url), short_reads=short_reads)


def is_file(path: str | Path) -> bool:
    """``Path(path).is_file()`` for a local path; for a streamed one whether the server has it (its
    version is captured now: one HEAD request, once per file and process).

    Raises:
        StreamError: the server keeps failing (after retries) or refuses the request otherwise than
            with 404 / 410."""
    url = remote_url(path)
    if url is None:
        return Path(path).is_file()
    from ..errors import StreamError

    try:
        source(url).version
    except StreamError as e:
        if getattr(e, "missing", False):  # 404 / 410 / no such object: absent
            return False
        raise  # the server keeps failing: not "missing"
    return True


def file_version(path: str | Path) -> tuple[str, int, str] | None:
    """``(url, size, etag or "")`` of a streamed file (``None`` for a local one): what a cache of
    anything derived from the file is keyed by."""
    url = remote_url(path)
    if url is None:
        return None
    v = source(url).version
    return url, v.size, v.etag or ""


def packet_table(path: str | Path) -> PacketTable:
    """The packet table of a streamed mp4 (see :mod:`prf.stream._mp4`).

    Raises:
        VideoError: not a demuxable video. StreamError: it could not be fetched."""
    url = remote_url(path)
    if url is None:
        raise ValueError(f"{path}: not a streamed file")
    return _packet_table(source(url))


def prefetch_frames(path: str | Path, frames: np.ndarray) -> int:
    """Fetch (concurrently, merged) the GOPs holding ``frames`` of a streamed video before decoding;
    returns the number of ranges asked for (0 for a local file).

    Raises:
        StreamError: a fetch failed after its retries, or the file changed on the server."""
    url = remote_url(path)
    if url is None:
        return 0
    src = source(url)
    src.check()  # a file seen to change serves no more bytes, cached or not
    ranges = gop_ranges(_packet_table(src), frames)
    STORE.fetch(src, ranges)
    return len(ranges)


def prefetch_ranges(path: str | Path, ranges: Iterable[tuple[int, int]]) -> None:
    """Fetch byte ranges ``[start, end)`` of a streamed file into the range cache."""
    url = remote_url(path)
    if url is not None:
        STORE.fetch(source(url), list(ranges))


def warm(paths: Iterable[str | Path], workers: int = 16) -> None:
    """Capture the version of every streamed file of ``paths`` and build the packet table of every mp4
    among them, ``workers`` files at a time (what the first batch would otherwise do file by file).

    Raises:
        StreamError, VideoError: as :func:`file_version` and :func:`packet_table`."""
    from concurrent.futures import ThreadPoolExecutor

    urls = [u for u in (remote_url(p) for p in paths) if u is not None]

    def one(url: str) -> None:
        src = source(url)
        src.version
        if url.lower().endswith(".mp4"):
            _packet_table(src)

    if urls:
        with ThreadPoolExecutor(min(workers, len(urls)), thread_name_prefix="prf-stream-warm") as pool:
            list(pool.map(one, urls))


def stream_stats(reset: bool = False) -> dict[str, int]:
    """``requests``, ``bytes`` (fetched payload), ``retries`` of this process, and ``cached_bytes``."""
    out = transport_stats(reset)
    out["cached_bytes"] = STORE.bytes
    return out


def clear_cache() -> None:
    """Drop every cached range and mp4 packet table (the next reads fetch again)."""
    STORE.clear()
    _mp4._TABLES.clear()


def configure(cache_bytes: int | None = None) -> None:
    """Set the range cache's cap in bytes (default ``PRF_STREAM_CACHE_MB`` MiB, 512)."""
    if cache_bytes is not None:
        STORE.cap_bytes = int(cache_bytes)
