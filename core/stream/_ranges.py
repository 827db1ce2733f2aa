"""The fetched byte ranges of remote files: one bounded LRU in memory, shared by every file of this
process, filled by merged, concurrent range requests.

- Size cap: :data:`CACHE_BYTES` (``PRF_STREAM_CACHE_MB``, default 512 MiB) of payload in total; the least
  recently used ranges are dropped first (and fetched again when read again).
- A read of ``[a, b)`` serves what is cached and fetches only the gaps. Gaps closer than
  :data:`MERGE_GAP` bytes (32 KiB) are merged into one request (the bytes between are fetched too),
  requests longer than :data:`MAX_REQUEST` (8 MiB) are split, and the requests of one call run
  concurrently on a pool of :data:`CONCURRENCY` threads (``PRF_STREAM_CONCURRENCY``, default 16).
- A range another thread is already fetching is waited for, not fetched twice.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from ._source import Source

CACHE_BYTES = int(float(os.environ.get("PRF_STREAM_CACHE_MB", 512)) * 2**20)
MERGE_GAP = 32 * 1024
MAX_REQUEST = 8 * 2**20
CONCURRENCY = int(os.environ.get("PRF_STREAM_CONCURRENCY", 16))


class _Segments:
    """The cached segments of one file: sorted, non-overlapping ``[start, end)`` with their bytes."""

    __slots__ = ("starts", "ends", "data")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.data: list[bytes] = []

    def gaps(self, a: int, b: int) -> list[tuple[int, int]]:
        """The parts of ``[a, b)`` no segment covers."""
        out = []
        i = max(bisect.bisect_right(self.starts, a) - 1, 0)
        pos = a
        while i < len(self.starts) and self.starts[i] < b:
            s, e = self.starts[i], self.ends[i]
            if e > pos:
                if s > pos:
                    out.append((pos, s))
                pos = max(pos, e)
            i += 1
        if pos < b:
            out.append((pos, b))
        return out

    def assemble(self, a: int, b: int, short: bool) -> bytes | None:
        """Bytes ``[a, b)`` from contiguous segments; with ``short``, the cached prefix from ``a`` (at
        least one byte); ``None`` when ``a`` (or, without ``short``, any byte) is not cached."""
        i = bisect.bisect_right(self.starts, a) - 1
        if i < 0 or self.ends[i] <= a:
            return None
        parts = []
        pos = a
        while pos < b:
            if i >= len(self.starts) or self.starts[i] > pos or self.ends[i] <= pos:
                if short:
                    break
                return None
            s = self.starts[i]
            take = min(b, self.ends[i])
            parts.append(self.data[i][pos - s: take - s])
            pos = take
            i += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def insert(self, a: int, data: bytes) -> list[tuple[int, int]]:
        """Add ``data`` at ``a`` where nothing is cached yet; the ``(start, size)`` of each new segment."""
        added = []
        for s, e in self.gaps(a, a + len(data)):
            i = bisect.bisect_left(self.starts, s)
            self.starts.insert(i, s)
            self.ends.insert(i, e)
            self.data.insert(i, data[s - a: e - a] if (s, e) != (a, a + len(data)) else data)
            added.append((s, e - s))
        return added

    def remove(self, s: int) -> None:
        i = bisect.bisect_left(self.starts, s)
        if i < len(self.starts) and self.starts[i] == s:
            del self.starts[i], self.ends[i], self.data[i]


class RangeStore:
    """The process-wide LRU of fetched ranges (see the module docstring). Thread-safe."""

    def __init__(self, cap_bytes: int = CACHE_BYTES):
        self.cap_bytes = int(cap_bytes)
        self._lock = threading.Lock()
        self._files: dict[str, _Segments] = {}
        self._lru: OrderedDict[tuple[str, int], int] = OrderedDict()
        self.bytes = 0
        self._inflight: dict[str, list[tuple[int, int, threading.Event]]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()

    # ---- reads --------------------------------------------------------------------------------------
    def read(self, src: "Source", a: int, b: int, *, short: bool = False) -> bytes:
        """Bytes ``[a, b)`` of ``src`` (``short``: possibly fewer, at least one, from ``a``), fetching the
        missing parts.

        Raises:
            StreamError: a fetch failed after its retries, or the file changed on the server."""
        if b <= a:
            return b""
        for _ in range(3):
            got = self._get(src.url, a, b, short)
            if got is not None:
                return got
            self.fetch(src, [(a, b)])
        return src.fetch(a, b)  # the cap is smaller than this read: read past the cache

    def _get(self, url: str, a: int, b: int, short: bool) -> bytes | None:
        with self._lock:
            segs = self._files.get(url)
            if segs is None:
                return None
            got = segs.assemble(a, b, short)
            if got is not None:
                i = bisect.bisect_right(segs.starts, a) - 1
                while i < len(segs.starts) and segs.starts[i] < a + len(got):
                    self._lru.move_to_end((url, segs.starts[i]), last=True)
                    i += 1
            return got

    def cached(self, url: str, a: int, b: int) -> bool:
        """Whether every byte of ``[a, b)`` of ``url`` is cached now."""
        with self._lock:
            segs = self._files.get(url)
            return segs is not None and not segs.gaps(a, b)

    # ---- fetches ------------------------------------------------------------------------------------
    def fetch(self, src: "Source", ranges: Iterable[tuple[int, int]]) -> None:
        """Make ``ranges`` (``[start, end)`` each) of ``src`` cached: their gaps merged and split into
        requests that run concurrently; waits for ranges other threads are fetching.

        Raises:
            StreamError: a request failed after its retries, or the file changed on the server."""
        url = src.url
        wanted = sorted((max(0, a), min(b, src.size)) for a, b in ranges if b > a)
        mine: list[tuple[int, int, threading.Event]] = []
        waits: list[threading.Event] = []
        with self._lock:
            segs = self._files.setdefault(url, _Segments())
            flying = self._inflight.setdefault(url, [])
            gaps: list[tuple[int, int]] = []
            for a, b in wanted:
                for g in segs.gaps(a, b):
                    gaps += _subtract(g, flying, waits)

            def free(a: int, b: int) -> bool:  # a hole worth fetching with its neighbours: not cached, not in flight
                return segs.gaps(a, b) == [(a, b)] and not any(fa < b and fb > a for fa, fb, _ in flying)

            for a, b in _plan(gaps, free):
                ev = threading.Event()
                mine.append((a, b, ev))
                flying.append((a, b, ev))
        try:
            if len(mine) == 1:
                a, b, _ = mine[0]
                self._put(url, a, src.fetch(a, b))
            elif mine:
                futures = [self._executor().submit(src.fetch, a, b) for a, b, _ in mine]
                err = None
                for (a, _, _), f in zip(mine, futures):
                    try:
                        self._put(url, a, f.result())
                    except BaseException as e:  # noqa: BLE001 - re-raised below once all are done
                        err = err or e
                if err is not None:
                    raise err
        finally:
            with self._lock:
                flying = self._inflight.get(url, [])
                for m in mine:
                    if m in flying:
                        flying.remove(m)
                    m[2].set()
        for ev in waits:
            ev.wait()

    def _put(self, url: str, a: int, data: bytes) -> None:
        with self._lock:
            segs = self._files.setdefault(url, _Segments())
            for s, n in segs.insert(a, data):
                self._lru[(url, s)] = n
                self.bytes += n
            while self.bytes > self.cap_bytes and self._lru:
                (u, s), n = self._lru.popitem(last=False)
                self._files[u].remove(s)
                self.bytes -= n

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="prf-stream")
            self._pid = os.getpid()
        return self._pool

    def forget(self, url: str) -> None:
        """Drop every cached range of ``url``."""
        with self._lock:
            segs = self._files.pop(url, None)
            if segs is not None:
                for s in segs.starts:
                    self.bytes -= self._lru.pop((url, s), 0)

    def clear(self) -> None:
        """Drop every cached range."""
        with self._lock:
            self._files.clear()
            self._lru.clear()
            self.bytes = 0

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._inflight = {}
        self._pool = None


def _subtract(gap: tuple[int, int], flying: list[tuple[int, int, threading.Event]],
              waits: list[threading.Event]) -> list[tuple[int, int]]:
    """``gap`` minus the ranges in flight (their events appended to ``waits``)."""
    parts = [gap]
    for fa, fb, ev in flying:
        nxt = []
        for a, b in parts:
            if fb <= a or fa >= b:
                nxt.append((a, b))
                continue
            waits.append(ev)
            if a < fa:
                nxt.append((a, fa))
            if fb < b:
                nxt.append((fb, b))
        parts = nxt
    return parts


def _plan(gaps: list[tuple[int, int]], free=lambda a, b: True) -> list[tuple[int, int]]:
    """Requests for ``gaps``: sorted, merged across holes < :data:`MERGE_GAP` that are ``free`` (neither
    cached nor in flight: never fetched twice), split at :data:`MAX_REQUEST`."""
    merged: list[list[int]] = []
    for a, b in sorted(gaps):
        if merged and (a <= merged[-1][1] or (a - merged[-1][1] < MERGE_GAP and free(merged[-1][1], a))):
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out = []
    for a, b in merged:
        while b - a > MAX_REQUEST:
            out.append((a, a + MAX_REQUEST))
            a += MAX_REQUEST
        out.append((a, b))
    return out


STORE = RangeStore()


os.register_at_fork(after_in_child=STORE.after_fork)
