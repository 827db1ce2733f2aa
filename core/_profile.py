"""Stage timers for the loader profile (:meth:`prf.Loader.profile`, ``prf profile``).

Off by default: every instrumented site asks :func:`stage` / :func:`count`, which look up one
thread-local attribute and return a shared no-op object when no profile is recording in the calling
thread (measured: ~0.1 us per call, a few calls per batch). While a :class:`Recorder` is active in a
thread (:meth:`Recorder.active`, or a worker job run through :func:`run_as`), stages are timed with
``time.perf_counter`` into that thread's own accumulators (no lock on the hot path); the recorder
merges them when asked (:meth:`Recorder.snapshot`).

Stage times are *exclusive*: a stage entered inside another pauses the outer one, so the stages of
one thread add up to the time that thread spent inside any stage (e.g. the loader's main thread:
planning, parquet rows, waiting for workers, conversion; with ``num_workers=0`` also decoding, which
then runs in the calling thread).
"""

from __future__ import annotations

import threading
from time import perf_counter
from typing import Any, Callable

_local = threading.local()


class _ThreadStats:
    """One thread's accumulators: exclusive seconds and calls per stage, and counters."""

    __slots__ = ("name", "times", "calls", "counts", "_stack")

    def __init__(self, name: str):
        self.name = name
        self.times: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._stack: list[list[Any]] = []

    def enter(self, name: str) -> None:
        now = perf_counter()
        st = self._stack
        if st:  # pause the enclosing stage
            top = st[-1]
            self.times[top[0]] = self.times.get(top[0], 0.0) + (now - top[1])
        st.append([name, now])

    def exit(self) -> None:
        now = perf_counter()
        name, t0 = self._stack.pop()
        self.times[name] = self.times.get(name, 0.0) + (now - t0)
        self.calls[name] = self.calls.get(name, 0) + 1
        if self._stack:  # resume the enclosing stage
            self._stack[-1][1] = now


class _Stage:
    __slots__ = ("ts", "name")

    def __init__(self, ts: _ThreadStats, name: str):
        self.ts = ts
        self.name = name

    def __enter__(self) -> None:
        self.ts.enter(self.name)

    def __exit__(self, *exc: Any) -> None:
        self.ts.exit()


class _Null:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NULL = _Null()


class Recorder:
    """Accumulates stage times and counters from every thread it is active in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[int, _ThreadStats] = {}
        self.main_thread = threading.get_ident()

    def _stats_for_this_thread(self) -> _ThreadStats:
        ident = threading.get_ident()
        with self._lock:
            ts = self._threads.get(ident)
            if ts is None:
                ts = self._threads[ident] = _ThreadStats(threading.current_thread().name)
        return ts

    def active(self) -> "_Activation":
        """``with rec.active():`` records the calling thread's stages into this recorder."""
        return _Activation(self)

    def snapshot(self) -> dict[str, Any]:
        """``{"main": {stage: [seconds, calls]}, "workers": {thread name: {stage: [seconds, calls]}},
        "counts": {name: total over threads}}`` (copies; stages still running are not included)."""
        with self._lock:
            items = list(self._threads.items())
        main: dict[str, list] = {}
        workers: dict[str, dict[str, list]] = {}
        counts: dict[str, int] = {}
        for ident, ts in items:
            times, calls = dict(ts.times), dict(ts.calls)
            per = {k: [times[k], calls.get(k, 0)] for k in times}
            if ident == self.main_thread:
                main = per
            else:
                workers[ts.name] = per
            for k, v in list(ts.counts.items()):
                counts[k] = counts.get(k, 0) + v
        return {"main": main, "workers": workers, "counts": counts}


class _Activation:
    __slots__ = ("rec", "prev")

    def __init__(self, rec: Recorder):
        self.rec = rec
        self.prev: Any = None

    def __enter__(self) -> Recorder:
        self.prev = (getattr(_local, "ts", None), getattr(_local, "rec", None))
        _local.ts = self.rec._stats_for_this_thread()
        _local.rec = self.rec
        return self.rec

    def __exit__(self, *exc: Any) -> None:
        _local.ts, _local.rec = self.prev


def current() -> Recorder | None:
    """The recorder active in the calling thread, or ``None`` (the default: nothing is recorded)."""
    return getattr(_local, "rec", None) if getattr(_local, "ts", None) is not None else None


def stage(name: str) -> Any:
    """``with stage("planning"):`` times the block into the calling thread's active recorder (a no-op
    without one)."""
    ts = getattr(_local, "ts", None)
    return _NULL if ts is None else _Stage(ts, name)


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to counter ``name`` of the active recorder (a no-op without one)."""
    ts = getattr(_local, "ts", None)
    if ts is not None:
        ts.counts[name] = ts.counts.get(name, 0) + int(n)


def run_as(rec: Recorder, name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in the calling (worker) thread with ``rec`` active, timed as stage ``name``."""
    prev_ts, prev_rec = getattr(_local, "ts", None), getattr(_local, "rec", None)
    ts = rec._stats_for_this_thread()
    _local.ts, _local.rec = ts, rec
    ts.enter(name)
    try:
        return fn(*args)
    finally:
        ts.exit()
        _local.ts, _local.rec = prev_ts, prev_rec
