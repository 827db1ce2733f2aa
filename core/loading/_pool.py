"""A persistent FIFO pool of decode threads, owned by one :class:`prf.Loader`.

Unlike a ``ThreadPoolExecutor`` per pass, the threads live across epochs and iterators (torch's
``persistent_workers=True``), so the decoders each thread opened stay open (up to the backend's LRU
bound) instead of being re-opened every epoch. Jobs run in submission order (the loader's windows rely
on it: a batch's finishing job only waits for decode jobs submitted before it). Each thread runs
``on_thread_exit`` in itself when it leaves (closing the decoders it opened: FFmpeg contexts belong
to their thread). The threads hold no reference to the loader between jobs, so an unreferenced
loader is collected (and its finalizer shuts the pool down).
"""

from __future__ import annotations

import itertools
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

_IDS = itertools.count()
_STOP = object()


def _work(jobs: "queue.SimpleQueue[Any]", on_thread_exit: Callable[[], None] | None) -> None:
    try:
        while True:
            item = jobs.get()
            if item is _STOP:
                return
            fut, fn, args = item
            item = None
            if fut.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as e:  # noqa: BLE001 - delivered to the caller through the future
                    fn = args = None
                    fut.set_exception(e)
                else:
                    # Drop the job (its closure holds a whole decode window's frames) before the caller
                    # can see the result: the caller may release free memory right after it (the end
                    # of an epoch), and memory freed later would stay mapped.
                    fn = args = None
                    fut.set_result(result)
            # drop every reference to the job (and through it to the loader) before waiting again
            fut = fn = args = result = None  # noqa: F841
    finally:
        if on_thread_exit is not None:
            try:
                on_thread_exit()
            except Exception:  # noqa: BLE001 - closing decoders must never kill the interpreter's exit
                pass


class WorkerPool:
    """``num_workers`` daemon threads named ``prf-decode-<pool>-<i>``, started together on the first
    :meth:`submit`, stopped by :meth:`shutdown` (idempotent)."""

    def __init__(self, num_workers: int, on_thread_exit: Callable[[], None] | None = None):
        self.num_workers = int(num_workers)
        self._on_exit = on_thread_exit
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self.name = f"prf-decode-{next(_IDS)}"

    def _start(self) -> None:
        for i in range(self.num_workers):
            t = threading.Thread(target=_work, args=(self._jobs, self._on_exit), name=f"{self.name}-{i}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    @property
    def started(self) -> bool:
        return bool(self._threads)

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(*args)``; its result or exception arrives through the returned future.

        Raises:
            RuntimeError: the pool was shut down (the loader was closed).
        """
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the loader was closed: its worker threads are gone (create a new loader)")
            if not self._threads:
                self._start()
            self._jobs.put((fut, fn, args))
        return fut

    def shutdown(self, wait: bool = True) -> None:
        """Cancel the jobs not started, stop every thread (each closes its decoders on the way out) and,
        with ``wait``, join them (never the calling thread itself)."""
        with self._lock:
            if self._closed:
                threads = []
            else:
                self._closed = True
                threads = self._threads
                while True:  # cancel what no thread has taken yet
                    try:
                        item = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        item[0].cancel()
                for _ in threads:
                    self._jobs.put(_STOP)
        if wait:
            me = threading.current_thread()
            for t in threads:
                if t is not me:
                    t.join()


class InlinePool:
    """Runs each job at submission in the calling thread (``num_workers=0``)."""

    started = False
    threads: list = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - delivered through the future, as a pool would
            f.set_exception(e)
        return f

    def shutdown(self, wait: bool = True) -> None:
        pass
