"""Open decoders kept per thread and per process, bounded, closed explicitly (fork-safe).

A decoder belongs to the thread that opened it (FFmpeg contexts are not thread-safe) and to the
process that opened it: after a fork the child must neither reuse the parent's FFmpeg state nor free
it (closing a decoder whose threads stayed in the parent blocks forever), so inherited tables are
kept alive, unused, for the life of the child.

Each backend instance owns one :class:`DecoderPool`: a registry (under a lock) of its per-thread
tables, so :meth:`DecoderPool.close_all` can close every decoder the instance opened in every thread
of this process; the tables of threads that have exited are closed when the next thread registers.
Each table is an LRU bounded in count (``max_open``) and in estimated bytes (``max_open_bytes``).

Estimated bytes of one open decoder (:func:`decoder_bytes`): ``20 x W x H x 1.5`` (20 YUV 4:2:0 frame
buffers: up to 16 reference frames for H.264/HEVC, 8 for AV1, plus the decoder's output pool and one
RGB conversion buffer) ``+ 1 MiB`` (container, demuxer and codec state). 96x96: 1.3 MiB; 640x360:
7.6 MiB; 1920x1080: 60 MiB. An upper bound: measured RSS per open decoder of so101's 640x360 AV1 (GOP 2)
was 2.1 MiB with PyAV and 1.7 MiB with torchcodec. Defaults: 64 decoders and 256 MiB per thread, so two worker threads hold at
most 512 MiB of decoders whatever the number of files (a 10,000-file dataset included).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import Counter, OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator

#: defaults of every decoding backend (per thread)
DEFAULT_MAX_OPEN = 64  # the bytes bound below is what limits large frames (33 decoders of 640x360)
DEFAULT_MAX_OPEN_BYTES = 256 * 2**20

_INHERITED: list = []  # tables inherited across fork: kept alive, never used or freed in the child
_POOLS: "weakref.WeakSet[DecoderPool]" = weakref.WeakSet()


def decoder_bytes(width: int, height: int) -> int:
    """Estimated memory of one open decoder of ``width x height`` frames (see the module docstring)."""
    return int(20 * width * height * 3 // 2 + 2**20)


class _Table:
    """One thread's open decoders: ``path -> (decoder, estimated bytes)``, least recently used first."""

    __slots__ = ("open", "bytes", "lock", "thread", "pid", "generation", "closed")

    def __init__(self, thread: threading.Thread, generation: int):
        self.open: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()  # held by the owning thread while it decodes; close_all waits on it
        self.thread = thread
        self.pid = os.getpid()
        self.generation = generation
        self.closed = False  # set (under lock) once the pool has closed this table: never reused


class DecoderPool:
    """The open decoders of one backend instance (see the module docstring).

    Args:
        close: closes one decoder (called exactly once per opened decoder, by the pool).
        max_open: decoders kept per thread (least recently used closed first); at least 1.
        max_open_bytes: estimated bytes of decoders kept per thread (the most recent one is kept even
            when it alone is larger).
    """

    def __init__(self, close: Callable[[Any], None], max_open: int = DEFAULT_MAX_OPEN,
                 max_open_bytes: int = DEFAULT_MAX_OPEN_BYTES):
        if int(max_open) < 1:
            raise ValueError(f"max_open must be >= 1, got {max_open}")
        self._close = close
        self.max_open = int(max_open)
        self.max_open_bytes = int(max_open_bytes)
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._tables: dict[int, _Table] = {}  # id(table) -> table, this process's live tables
        self._generation = 0
        self._pid = os.getpid()
        self.opens = 0
        self.opens_per_path: Counter[str] = Counter()

    def _after_fork_in_child(self) -> None:
        """In a forked child: set the parent's tables aside (never used, never closed) and start empty.
        Locks are new: one may have been held by a parent thread that does not exist here."""
        _INHERITED.append(list(self._tables.values()))
        self._reset()

    # ---- the calling thread's table ---------------------------------------------------------------
    def _table(self) -> _Table:
        t = getattr(self._local, "table", None)
        if t is not None and t.pid == os.getpid() and t.generation == self._generation:
            return t
        if self._pid != os.getpid():  # forked without the at-fork hook (not expected on CPython/POSIX)
            self._after_fork_in_child()
        dead: list[_Table] = []
        with self._lock:
            t = _Table(threading.current_thread(), self._generation)
            self._tables[id(t)] = t
            for key, other in list(self._tables.items()):
                if not other.thread.is_alive():
                    dead.append(self._tables.pop(key))
        self._local.table = t
        for other in dead:  # a worker thread that exited without close_thread()
            self._close_table(other)
        return t

    @contextmanager
    def use(self, path: str, open_: Callable[[str], tuple[Any, int]]) -> Iterator[Any]:
        """The calling thread's open decoder of ``path`` (``open_(path) -> (decoder, bytes)`` on a
        miss), held for the ``with`` block; least recently used decoders beyond the bounds are closed."""
        while True:
            t = self._table()
            t.lock.acquire()
            if not t.closed:
                break
            t.lock.release()  # close_all() closed it between _table() and here: take a fresh one
            self._local.table = None
        try:
            got = t.open.get(path)
            if got is None:
                dec, nbytes = open_(path)
                t.open[path] = (dec, int(nbytes))
                t.bytes += int(nbytes)
                with self._lock:
                    self.opens += 1
                    self.opens_per_path[path] += 1
                while len(t.open) > 1 and (len(t.open) > self.max_open or t.bytes > self.max_open_bytes):
                    _, (old, old_bytes) = t.open.popitem(last=False)
                    t.bytes -= old_bytes
                    self._close(old)
            else:
                t.open.move_to_end(path)
                dec = got[0]
            yield dec
        finally:
            t.lock.release()

    def drop(self, path: str) -> None:
        """Close the calling thread's decoder of ``path`` (after an error left it in an unknown state)."""
        t = self._table()
        with t.lock:
            got = t.open.pop(path, None)
            if got is not None:
                t.bytes -= got[1]
                self._close(got[0])

    # ---- closing ----------------------------------------------------------------------------------
    def _close_table(self, t: _Table) -> None:
        with t.lock:  # waits for the owning thread's decode in flight
            t.closed = True
            while t.open:
                _, (dec, _) = t.open.popitem(last=False)
                self._close(dec)
            t.bytes = 0

    def close_thread(self) -> None:
        """Close the calling thread's decoders (a worker thread about to exit)."""
        t = getattr(self._local, "table", None)
        if t is None or t.pid != os.getpid():
            return
        with self._lock:
            self._tables.pop(id(t), None)
        self._local.table = None
        self._close_table(t)

    def close_all(self) -> None:
        """Close every decoder of this pool in every thread of this process (never a parent's)."""
        if self._pid != os.getpid():
            self._after_fork_in_child()
            return
        with self._lock:
            tables = list(self._tables.values())
            self._tables.clear()
            self._generation += 1  # every thread registers a fresh table on its next use
        for t in tables:
            self._close_table(t)

    def stats(self) -> dict[str, Any]:
        if self._pid != os.getpid():
            self._after_fork_in_child()
        with self._lock:
            tables = list(self._tables.values())
            opens, per_path = self.opens, dict(self.opens_per_path)
        return {"decoder_opens": opens, "decoders_open": sum(len(t.open) for t in tables),
                "decoder_bytes": sum(t.bytes for t in tables), "opens_per_path": per_path,
                "threads": sum(1 for t in tables if t.open)}


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
