"""The NumPy batch loader: a sampler's order cut into batches, assembled by a pool of decode workers.

:class:`Loader` is configuration (dataset, sampler, option objects, batch transform) plus where the
next iteration starts; each ``iter(loader)`` is a :class:`LoaderIterator` that holds its own position
(epoch, batches delivered, elastic-resume history) with ``get_state()`` / ``reset(state)`` as
torchdata.nodes' ``BaseNode``, so two live iterators of one loader never share state.

Workers are threads: PyAV releases the GIL while decoding and converting frames, and batch assembly
is NumPy, so threads scale on the cores without copying decoded frames between processes. The threads
are persistent (started by the first iterator, kept across epochs and iterators until
:meth:`Loader.close`, the end of a ``with`` block, or garbage collection of the loader), so every
decoder a thread opens stays open for the next epoch (up to the backend's LRU bound) instead of one
new pool, and new decoders for every file, per epoch. Batches are delivered in sampler order whatever
the number of workers; an error in a worker is raised in the caller (the original exception, with its
traceback).
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict, deque
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from . import _backend
from .. import _profile
from ..decode._malloc import TRIM_EVERY_BATCHES, release_free_memory, tune_malloc
from ._pool import InlinePool, WorkerPool
from .batch_transform import BatchTransform, TransformedDataset
from .options import DecodeOptions, ReadOptions, ShardOptions, merge_options
from ..plan import BatchPlan, DecodedFrames, allocate, assemble, decode_tasks
from ..errors import OptionsError, ResumeError, SamplerError
from ..sampling import EpisodePoolSampler, Sampler, SequentialSampler, ShuffleSampler, undelivered

_STATE_KEYS = ("epoch", "batches_delivered", "batch_size", "seed", "sampler")


@dataclass
class _Start:
    """Where an iteration starts: an epoch, batches of it already delivered (resume) and the elastic
    history of that epoch ``[(world_size, samples per rank), ...]``."""

    epoch: int
    skip: int = 0
    segments: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class _Progress:
    """What one iterator has delivered (shared with its loader for ``loader.state_dict()``)."""

    start: _Start
    seed: int
    sampler_state: dict[str, Any]
    delivered: int
    done: bool = False


def _release(pool_box: list, backend: Any) -> None:
    """Finalizer of a :class:`Loader` (also :meth:`Loader.close`): stop the worker threads (each closes
    the decoders it opened), then release what the backend holds open. References no loader."""
    pool = pool_box[0] if pool_box else None
    pool_box.clear()
    if pool is not None:
        pool.shutdown(wait=True)
    if backend is not None:
        _backend.close(backend)


class Loader:
    """Iterate a :class:`prf.Dataset` in batches of NumPy arrays.

    Args:
        dataset: the dataset (or a :meth:`prf.Dataset.with_transforms` view: its transforms are used).
        batch_size: samples per batch (default 1).
        shuffle: uniform shuffle per epoch (ignored when ``sampler`` is given).
        seed: seed of the shuffle and of the transforms' randomness; the order depends only on
            ``(seed, epoch)`` (and rank/world_size).
        drop_last: drop the last incomplete batch.
        num_workers: decode threads (0: assemble batches in the calling thread); persistent, see below.
        prefetch: batches in flight per worker.
        decode_window: batches planned and decoded together (default ``2 * prefetch * max(1, num_workers)``):
            their camera frames are merged per file, deduplicated and decoded GOP by GOP, so frames
            shared by overlapping windows or neighbouring samples are decoded once.
        sampler: a :class:`prf.sampling.Sampler` (default: sequential, or shuffle with ``shuffle=True``).
        rank, world_size: distributed shard (default: from torch.distributed / ``RANK``, ``WORLD_SIZE``).
        shard_mode: ``"strided"`` or ``"blocked"`` for the default sampler (see :class:`ShardOptions`).
        normalize: ``{key: mode}`` with modes ``"mean_std"``, ``"min_max"``, ``"quantiles"``,
            ``"quantile10"``, ``"identity"`` (LeRobot's normalization modes; see :mod:`prf.normalize`).
            Normalized keys become ``float32``; cameras are scaled to ``[0, 1]`` first, as LeRobot's
            stats are. Applied after ``transform``.
        stats: the statistics ``normalize`` uses (default: ``dataset.stats()``, the stored stats of the
            selected episodes; see :func:`prf.compute_stats` for datasets without them).
        transform: an image transform of :mod:`prf.transforms` applied to every camera, or
            ``{camera_key: transform}``; runs in the workers on ``uint8`` frames, with per-sample
            randomness drawn from ``(seed, rank, epoch, batch number, camera)`` only, so a resumed run
            repeats it exactly.
        read, shard, decode: the same options as objects (:class:`ReadOptions`, :class:`ShardOptions`,
            :class:`DecodeOptions` of :mod:`prf.loading.options`), shared with the adapters; a keyword
            may complete an object but not contradict it.
        transforms: a :class:`prf.loading.BatchTransform` instead of ``transform``/``normalize``/``stats``.

    Raises:
        OptionsError: an option outside its allowed values (the message lists them), or given twice.

    Each batch is ``{key: ndarray [B, ...]}`` (cameras ``uint8 [B, H, W, C]`` / ``[B, T, H, W, C]``),
    ``{key}_is_pad`` ``bool [B, T]``, and ``"task"`` as ``list[str]``.

    Iteration and epochs: ``iter(loader)`` is a :class:`LoaderIterator` over one epoch, starting where
    the loader stands: the first batch of the current epoch (:meth:`set_epoch`), or the batch that
    :meth:`load_state_dict` named. An iterator that runs to its end moves the loader to the next epoch
    (unless :meth:`set_epoch` / :meth:`load_state_dict` moved it meanwhile), so ``for batch in loader``
    in a loop runs epoch after epoch. Breaking out of a ``for`` loop leaves the epoch unfinished and the
    loader where it was: the next ``iter(loader)`` starts the same epoch again at the same point (as
    torch's ``DataLoader``); to continue, keep the iterator and call ``next`` on it, or
    ``load_state_dict(loader.state_dict())`` first. Several live iterators each deliver their own
    complete sequence. :meth:`state_dict` is the most recent iterator's position (taken between
    batches it resumes with the next undelivered batch).

    Resources: the worker threads start with the first iterator and live across epochs and iterators,
    with the decoders each opened (up to the backend's LRU bound). :meth:`close`, leaving a ``with``
    block, or garbage collection of an unreferenced loader stops them (each thread closes its decoders)
    and releases the backend's open files (``backend.close()``). A closed loader cannot iterate again.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = None,
        *,
        shuffle: bool | None = None,
        seed: int | None = None,
        drop_last: bool | None = None,
        num_workers: int | None = None,
        prefetch: int | None = None,
        decode_window: int | None = None,
        sampler: Sampler | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        shard_mode: str | None = None,
        normalize: Any = None,
        stats: Any = None,
        transform: Any = None,
        read: ReadOptions | None = None,
        shard: ShardOptions | None = None,
        decode: DecodeOptions | None = None,
        transforms: BatchTransform | None = None,
    ):
        kw = dict(batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, num_workers=num_workers,
                  prefetch=prefetch, decode_window=decode_window, rank=rank, world_size=world_size,
                  shard_mode=shard_mode)
        self.read = merge_options("read", read, kw)
        self.shard = merge_options("shard", shard, kw)
        self.decode = merge_options("decode", decode, kw)
        if isinstance(dataset, TransformedDataset):
            if transforms is not None:
                raise OptionsError("the dataset view already has transforms; give transforms= or the view, not both")
            dataset, transforms = dataset.dataset, dataset.transforms
        self.dataset = dataset
        if sampler is None and self.read.shuffle and getattr(dataset, "streaming", False):
            # a streamed dataset shuffles by episode pools: decode locality is fetch locality
            sampler = EpisodePoolSampler(dataset, seed=self.read.seed, rank=self.shard.rank,
                                         world_size=self.shard.world_size, drop_last=self.shard.drop_last)
        if sampler is None:
            cls = ShuffleSampler if self.read.shuffle else SequentialSampler
            sampler = cls(len(dataset), seed=self.read.seed, rank=self.shard.rank, world_size=self.shard.world_size,
                          drop_last=self.shard.drop_last)
            if self.shard.shard_mode is not None:
                sampler.shard_mode = self.shard.shard_mode
        elif not isinstance(sampler, Sampler) and not hasattr(sampler, "global_order"):
            raise OptionsError(f"sampler must be a prf.sampling.Sampler, got {type(sampler).__name__}")
        self.sampler = sampler
        if transforms is not None:
            if transform is not None or normalize:
                raise OptionsError("give transforms= (a BatchTransform) or transform=/normalize=, not both")
            if not isinstance(transforms, BatchTransform):
                raise TypeError(f"transforms= takes a prf.loading.BatchTransform, got {type(transforms).__name__}")
            self.transforms: BatchTransform | None = transforms
        elif transform is not None or normalize:
            self.transforms = BatchTransform.for_dataset(dataset, transform=transform, normalize=normalize, stats=stats)
        else:
            self.transforms = None
        self._start = _Start(int(sampler.epoch))
        self._generation = 0  # bumped whenever the start point moves
        self._progress: _Progress | None = None  # the most recent iterator's
        self._orders: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()  # batch_indices cache (Loader.batch)
        self._orders_lock = threading.Lock()
        self._pool_box: list = []  # [WorkerPool] once started (a list, so the finalizer sees the pool)
        self._pool_lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _release, self._pool_box, getattr(dataset, "backend", None))

    # ---- configuration, as attributes ----------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.read.batch_size

    @property
    def drop_last(self) -> bool:
        return self.read.drop_last

    @property
    def seed(self) -> int:
        return self.read.seed

    @property
    def num_workers(self) -> int:
        return self.decode.num_workers

    @property
    def prefetch(self) -> int:
        return self.decode.prefetch

    @property
    def decode_window(self) -> int | None:
        return self.decode.decode_window

    @property
    def epoch(self) -> int:
        """The epoch the next iterator starts in."""
        return self.sampler.epoch

    @property
    def _decodes(self) -> bool:
        """Whether batches decode camera frames (then malloc is tuned and trimmed; see prf.decode._malloc)."""
        return bool(getattr(self.dataset, "cameras", None))

    # ---- start point -----------------------------------------------------------------------------------
    def _current_start(self) -> _Start:
        """The start point, re-read if the sampler's epoch was set directly (adapters do)."""
        if self._start.epoch != self.sampler.epoch:
            self._start = _Start(int(self.sampler.epoch))
            self._generation += 1
        return self._start

    def _move_start(self, start: _Start) -> None:
        self.sampler.set_epoch(start.epoch)
        self._start = start
        self._generation += 1
        self._progress = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iterator follows (from its first batch).

        Raises:
            ResumeError: ``epoch`` is not an int >= 0.
        """
        self._move_start(_Start(_check_int("epoch", epoch, 0)))

    def __len__(self) -> int:
        """Batches of the current epoch (after an elastic resume: of what is left of it)."""
        start = self._current_start()
        n = len(self._rank_order(start.epoch, start.segments)) if start.segments else len(self.sampler)
        return self._n_batches(n)

    def _n_batches(self, n: int) -> int:
        bs = self.batch_size
        return n // bs if self.drop_last else -(-n // bs)

    def _rank_order(self, epoch: int, segments: list[tuple[int, int]], sampler: Any = None) -> np.ndarray:
        """This rank's positions for ``epoch``; with elastic ``segments``: this rank's shard of what no
        rank had delivered (see :func:`prf.sampling.undelivered`)."""
        s = self.sampler if sampler is None else sampler
        if segments:
            rest = undelivered(s.global_order(int(epoch)), segments, s.shard_mode, s.drop_last)
            return s.shard(rest)
        return s.indices(int(epoch))

    def _batches_of(self, order: np.ndarray) -> list[np.ndarray]:
        bs = self.batch_size
        stop = (order.size // bs) * bs if self.drop_last else order.size
        return [order[i : i + bs] for i in range(0, stop, bs)]

    def batch_indices(self, epoch: int | None = None) -> list[np.ndarray]:
        """The epoch's batches as arrays of dataset positions (what an iterator will load; for the
        epoch an elastic resume starts in, what is left of it)."""
        start = self._current_start()
        e = start.epoch if epoch is None else int(epoch)
        return self._batches_of(self._rank_order(e, start.segments if e == start.epoch else []))

    def batch(self, epoch: int, batch_no: int) -> dict[str, Any]:
        """Batch ``batch_no`` of ``epoch``, exactly as an iterator delivers it (same samples, same
        transforms and their randomness), assembled on its own in the calling thread (no window, no
        worker): for adapters whose framework runs its own workers (Keras, tf.data, Grain, torch
        ``IterableDataset``). Thread-safe; epoch orders are cached (the last two).

        Raises:
            IndexError: ``batch_no`` is not in ``0 .. len(batches of epoch) - 1``.
        """
        epoch, batch_no = int(epoch), int(batch_no)
        batches = self._cached_batches(epoch)
        if not 0 <= batch_no < len(batches):
            raise IndexError(f"batch {batch_no} out of range: epoch {epoch} has {len(batches)} batches")
        return self._load(epoch, batch_no, batches[batch_no])

    def _cached_batches(self, epoch: int) -> list[np.ndarray]:
        start = self._current_start()
        key = (epoch, self.sampler.seed, tuple(start.segments) if epoch == start.epoch else ())
        with self._orders_lock:
            got = self._orders.get(key)
            if got is not None:
                self._orders.move_to_end(key)
                return got
        got = self.batch_indices(epoch)
        with self._orders_lock:
            self._orders[key] = got
            while len(self._orders) > 2:
                self._orders.popitem(last=False)
        return got

    # ---- iteration ---------------------------------------------------------------------------------------
    def __iter__(self) -> "LoaderIterator":
        return LoaderIterator(self)

    def _pool(self) -> Any:
        if self._closed:
            raise RuntimeError("this loader was closed (close() / the end of its with-block); create a new one")
        if not self.num_workers:
            return InlinePool()
        with self._pool_lock:
            if not self._pool_box:
                backend = getattr(self.dataset, "backend", None)
                self._pool_box.append(WorkerPool(self.num_workers, _thread_exit_hook(backend)))
            return self._pool_box[0]

    def _pipeline(self, epoch: int, todo: list[tuple[int, np.ndarray]], seed: int, rank: int) -> Iterator[dict]:
        """The batches of ``todo`` (``(batch_no, positions)``), decoded window by window in the pool."""
        if getattr(self.dataset, "cameras", None):
            tune_malloc()  # see prf.decode._malloc: 2.6x faster decoding of large frames on 2 threads
        pool = self._pool()
        windows = self._windows(todo)
        in_flight: deque[list[Future | None]] = deque()
        try:
            for _ in range(2):  # the window being delivered and the next one
                w = next(windows, None)
                if w is not None:
                    with _profile.stage("planning"):
                        in_flight.append(self._submit_window(pool, epoch, w, seed, rank))
            while in_flight:
                futures = in_flight[0]
                for j, fut in enumerate(futures):
                    if j == 0:
                        w = next(windows, None)
                        if w is not None:
                            with _profile.stage("planning"):  # plans and submits the window (no-op unprofiled)
                                in_flight.append(self._submit_window(pool, epoch, w, seed, rank))
                    with _profile.stage("waiting for workers"):
                        batch = fut.result()
                    futures[j] = None  # the batch is the caller's now
                    yield batch
                in_flight.popleft()
        finally:  # closed early (break, reset, garbage collection): cancel what no worker has started
            for futures in in_flight:
                for f in futures:
                    if f is not None:
                        f.cancel()

    def _windows(self, todo: list[tuple[int, np.ndarray]]) -> Iterator[list[tuple[int, np.ndarray]]]:
        """Consecutive batches decoded together: ``decode_window`` of them (default: ``2 * prefetch``
        per worker)."""
        size = self.decode_window
        if size is None:
            # Decoding: 2 * prefetch batches per worker (measured: +20% for the episode-pool order on
            # 640x360). A backend that only copies frames (the frame cache) gains nothing from locality
            # and loses to memory churn: 1 batch per worker (5x faster on so101 from the cache).
            per_worker = 1 if _backend.copy_only(getattr(self.dataset, "backend", None)) else self.prefetch * 2
            size = max(1, self.num_workers) * per_worker
        for i in range(0, len(todo), size):
            yield todo[i : i + size]

    def _submit_window(self, pool: Any, epoch: int, items: list[tuple[int, np.ndarray]], seed: int,
                       rank: int) -> list[Future]:
        """Plan the window's batches, submit its decode tasks, then one finishing job per batch.

        Finishing jobs wait for the window's decode tasks; the pool runs jobs in submission order, so a
        waiting job only ever waits for tasks already taken by other workers (no deadlock, also with
        several iterators sharing the pool)."""
        ds = self.dataset
        transforms = self.transforms  # jobs reference no loader: an abandoned one is collected at once
        rec = _profile.current()  # None unless Loader.profile() runs: then jobs are timed (prf._profile)
        if not hasattr(ds, "plan"):  # any object with get_batch() works, batch by batch
            if rec is not None:
                return [pool.submit(_profile.run_as, rec, "get_batch", _get_batch_job, ds, transforms, idx,
                                    (seed, rank, epoch, b)) for b, idx in items]
            return [pool.submit(_get_batch_job, ds, transforms, idx, (seed, rank, epoch, b)) for b, idx in items]
        try:
            plans = [ds.plan(idx) for _, idx in items]
            tasks = decode_tasks(plans, ds.backend.index, split=max(1, self.num_workers))
            shapes = [ds.frame_shapes(p) for p in plans]
        except BaseException as e:  # surfaces in order, when the window's first batch is due
            failed: Future = Future()
            failed.set_exception(e)
            return [failed] * len(items)
        if rec is None:
            decode_futs = [pool.submit(ds.decode_task, t) for t in tasks]
        else:
            cam_of = {path: key for p in plans for key, req in p.cameras.items() for path in req.paths}
            decode_futs = [pool.submit(_profile.run_as, rec, f"decode {cam_of.get(t.path, '?')}", _decode_job, ds, t)
                           for t in tasks]
        # Copy-only backends (the frame cache): batch memory from the loader's thread (see plan.allocate;
        # measured 2-3x steadier there). Decoding backends allocate in the workers (measured faster there).
        copy = _backend.copy_only(ds.backend)
        arrays = [allocate(p, sh) if copy else None for p, sh in zip(plans, shapes)]

        def finish_job(batch_no: int, plan: BatchPlan, shape: dict, out: dict) -> dict[str, Any]:
            decoded = DecodedFrames()
            with _profile.stage("waiting for decode"):
                for t, f in zip(tasks, decode_futs):
                    decoded.add(t, f.result())
            _profile.count("frames_assembled", plan.frame_count())
            return _apply(transforms, assemble(plan, decoded, shape, out), (seed, rank, epoch, batch_no))

        if rec is not None:
            return [pool.submit(_profile.run_as, rec, "assemble", finish_job, b, p, sh, a)
                    for (b, _), p, sh, a in zip(items, plans, shapes, arrays)]
        return [pool.submit(finish_job, b, p, sh, a) for (b, _), p, sh, a in zip(items, plans, shapes, arrays)]

    def _load(self, epoch: int, batch_no: int, indices: np.ndarray, seed: int | None = None,
              rank: int | None = None) -> dict[str, Any]:
        """Assemble batch ``batch_no`` of ``epoch`` (positions ``indices``) on its own; see :meth:`batch`
        (kept for adapters that pass the positions themselves)."""
        return self._finish(self.dataset.get_batch(indices), epoch, batch_no, seed, rank)

    def _finish(self, batch: dict[str, Any], epoch: int, batch_no: int, seed: int | None = None,
                rank: int | None = None) -> dict[str, Any]:
        """The batch transform (runs in a worker). Per-batch randomness is drawn from
        ``(seed, rank, epoch, batch_no)`` only, so a resumed run repeats it exactly."""
        s = self.seed if seed is None else seed
        r = self.sampler.rank if rank is None else rank
        return _apply(self.transforms, batch, (s, r, epoch, batch_no))

    def profile(self, batches: int = 20, *, convert: Any = None) -> dict[str, Any]:
        """Run ``batches`` batches of the current epoch through a new iterator with stage timers on and
        return where the time went (the loader's position does not move; see :mod:`prf.loading.profile`
        for the keys: per-stage seconds of the calling thread adding up to ``wall_s``, per-worker stage
        seconds, frames decoded vs delivered, decoder/frame-cache hits, samples/s).

        Args:
            batches: how many batches to time (fewer when the epoch has fewer).
            convert: a batch conversion to time as stage ``"convert"`` (a framework adapter's; the
                adapters' wrapped loaders pass theirs).
        """
        from .profile import profile_loader

        return profile_loader(self, batches, convert=convert)

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands: the most recent iterator's position (epoch, batches delivered in
        it, the sampler's state; plain JSON-able values), or, before any iterator or after
        :meth:`set_epoch` / :meth:`load_state_dict`, where the next iterator starts."""
        if self._progress is not None:
            return _state_of(self._progress, self.batch_size)
        start = self._current_start()
        return _state_of(_Progress(start, self.seed, self.sampler.state_dict(), start.skip), self.batch_size)

    def load_state_dict(self, state: Mapping[str, Any], *, elastic: bool = False) -> None:
        """Resume: the next iterator starts with the first batch not delivered before ``state``.

        Args:
            state: from :meth:`state_dict` (or ``LoaderIterator.get_state``).
            elastic: allow a state taken with another ``world_size`` (or by another rank): the rest
                of that epoch is what no rank had delivered, re-sharded over this run's ranks with the
                sampler's pad/drop policy; later epochs are as usual. Assumes every rank of the earlier
                run had delivered the same number of batches (synchronous data-parallel training
                checkpoints all ranks at one step). Transforms' per-batch randomness follows the new
                batch numbers.

        Raises:
            ResumeError (a ``SamplerError`` and ``ValueError``): ``state`` is not a dict (e.g. still a
                JSON string), lacks a key, has a value of the wrong type or range (a negative epoch, a
                ``batches_delivered`` below 0 or beyond the epoch's batches, ``sampler=None``), was
                taken with another ``batch_size``, or with another world size without ``elastic=True``.
            SamplerError: the state belongs to another kind of sampler or dataset size.
        """
        self._parse_state(state, elastic=elastic, sampler=copy.copy(self.sampler))  # validate: raises, changes nothing
        sampler, start, seed = self._parse_state(state, elastic=elastic, sampler=self.sampler)
        if seed != self.seed:
            import dataclasses

            self.read = dataclasses.replace(self.read, seed=seed)
        self._move_start(start)

    def _parse_state(self, state: Any, *, elastic: bool, sampler: Any) -> tuple[Any, _Start, int]:
        """Validate ``state`` and load its sampler part into ``sampler``; ``(sampler, start, seed)``."""
        if isinstance(state, (str, bytes)):
            raise ResumeError(
                f"cannot resume from a {type(state).__name__}: the state must be the dict state_dict() returned "
                f"(json.loads a JSON checkpoint first)"
            )
        if not isinstance(state, Mapping):
            raise ResumeError(f"cannot resume: the state must be a dict from state_dict(), got {type(state).__name__}")
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ResumeError(
                f"cannot resume: the state lacks key(s) {missing} (a loader state has {list(_STATE_KEYS)}, "
                f"and elastic_segments after an elastic resume); got keys {sorted(map(str, state))}"
            )
        bs = _check_int("batch_size", state["batch_size"], 1)
        if bs != self.batch_size:
            raise ResumeError(
                f"cannot resume: the state was taken with batch_size={bs}, this loader has "
                f"batch_size={self.batch_size}: batch numbers (and with them the order) would differ"
            )
        epoch = _check_int("epoch", state["epoch"], 0)
        skip = _check_int("batches_delivered", state["batches_delivered"], 0)
        seed = _check_int("seed", state["seed"], None)
        sampler_state = state["sampler"]
        if not isinstance(sampler_state, Mapping):
            raise ResumeError(
                f"cannot resume: state['sampler'] must be the sampler's state dict, got "
                f"{type(sampler_state).__name__ if sampler_state is not None else None}"
            )
        sampler_state = dict(sampler_state)
        raw_segments = state.get("elastic_segments", [])
        if not isinstance(raw_segments, (list, tuple)) or not all(
                isinstance(s, (list, tuple)) and len(s) == 2 for s in raw_segments):
            raise ResumeError(f"cannot resume: elastic_segments must be a list of [world_size, samples], got {raw_segments!r}")
        segments = [(_check_int("elastic_segments world_size", w, 1), _check_int("elastic_segments samples", n, 0))
                    for w, n in raw_segments]
        old_ws = _check_int("sampler world_size", sampler_state.get("world_size", sampler.world_size), 1)
        ws_changed = old_ws != sampler.world_size
        if not elastic and ws_changed:
            raise ResumeError(
                f"cannot resume: the state was taken with world_size={old_ws}, this loader has "
                f"world_size={sampler.world_size}; load_state_dict(state, elastic=True) re-shards "
                f"the rest of the epoch over the new ranks"
            )
        if elastic:
            sampler_state["rank"], sampler_state["world_size"] = sampler.rank, sampler.world_size
        sampler_state.setdefault("epoch", epoch)
        try:
            sampler.load_state_dict(sampler_state)
        except SamplerError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise ResumeError(f"cannot resume: state['sampler'] is malformed ({type(e).__name__}: {e})") from None
        sampler.set_epoch(epoch)
        # how many batches the state's run had in that epoch: batches_delivered must be within it
        if ws_changed:
            rest = undelivered(sampler.global_order(epoch), segments, sampler.shard_mode, sampler.drop_last)
            n = rest.size // old_ws if sampler.drop_last else -(-rest.size // old_ws)
        else:
            n = len(self._rank_order(epoch, segments, sampler))
        available = self._n_batches(n)
        if skip > available:
            raise ResumeError(
                f"cannot resume: batches_delivered={skip}, but epoch {epoch} has only {available} batches of "
                f"{self.batch_size} for this rank (the state belongs to another dataset, sampler or loader)"
            )
        if elastic and ws_changed:
            segments = segments + [(old_ws, skip * self.batch_size)]
            skip = 0
        return sampler, _Start(epoch, skip, segments), seed

    # ---- resources -----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker threads (each closes the decoders it opened), release the backend's open
        decoders and files (``backend.close()``) and this loader's caches. Idempotent; iterating a
        closed loader raises ``RuntimeError``. Called by ``with`` and by garbage collection."""
        self._closed = True
        with self._orders_lock:
            self._orders.clear()
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def worker_threads(self) -> list[threading.Thread]:
        """The live worker threads (empty before the first iterator and after :meth:`close`)."""
        return [t for t in (self._pool_box[0].threads if self._pool_box else []) if t.is_alive()]

    # ---- pickling (adapters send loaders to worker processes): configuration only ------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "read": self.read, "shard": self.shard, "decode": self.decode,
                "sampler": self.sampler, "transforms": self.transforms, "start": self._current_start()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["dataset"], read=state["read"], shard=state["shard"], decode=state["decode"],
                      sampler=state["sampler"], transforms=state["transforms"])
        self._start = state["start"]

    def __repr__(self) -> str:
        return (
            f"prf.Loader(batch_size={self.batch_size}, batches={len(self)}, num_workers={self.num_workers}, "
            f"sampler={self.sampler!r})"
        )


def _apply(transforms: BatchTransform | None, batch: dict[str, Any], key: tuple) -> dict[str, Any]:
    """The batch transform with the per-batch key ``(seed, rank, epoch, batch_no)``."""
    if transforms is None:
        return batch
    with _profile.stage("transforms"):
        return transforms(batch, key=tuple(int(k) for k in key))


def _decode_job(ds: Any, task: Any) -> Any:
    """``ds.decode_task(task)``, counted (the profiled path only; see Loader.profile)."""
    frames = ds.decode_task(task)
    _profile.count("frames_decoded", task.frames.size)
    _profile.count("decode_tasks")
    return frames


def _get_batch_job(ds: Any, transforms: BatchTransform | None, indices: np.ndarray, key: tuple) -> dict[str, Any]:
    return _apply(transforms, ds.get_batch(indices), key)


def _thread_exit_hook(backend: Any):
    if backend is None:
        return None

    def hook() -> None:
        _backend.close_thread_decoders(backend)

    return hook


def _check_int(name: str, value: Any, minimum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ResumeError(f"cannot resume: {name} must be an int, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ResumeError(f"cannot resume: {name} must be >= {minimum}, got {int(value)}")
    return int(value)


def _state_of(p: _Progress, batch_size: int) -> dict[str, Any]:
    if p.done:  # a finished pass: the next undelivered batch is the next epoch's first
        epoch, delivered, segments = p.start.epoch + 1, 0, []
    else:
        epoch, delivered, segments = p.start.epoch, p.delivered, p.start.segments
    sampler_state = dict(p.sampler_state)
    sampler_state["epoch"] = epoch
    state = {"epoch": epoch, "batches_delivered": delivered, "batch_size": batch_size, "seed": p.seed,
             "sampler": sampler_state}
    if segments:
        state["elastic_segments"] = [list(seg) for seg in segments]
    return state


class LoaderIterator:
    """One pass (one epoch, or what is left of it) of a :class:`Loader`; ``iter(loader)`` makes one.

    ``next(it)`` is the next batch; :meth:`get_state` where it stands (the same dict as
    ``Loader.state_dict``: taken between batches it resumes with the next undelivered one; after the
    last batch it is the next epoch's start); :meth:`reset` restarts it at the loader's start point or
    at a given state, as torchdata.nodes' ``BaseNode.reset(initial_state)``. An iterator that runs to
    its end moves its loader to the next epoch (unless the loader's start point was moved since).
    Batches in flight are cancelled when the iterator is reset, closed or garbage collected; the
    loader's worker threads stay.
    """

    def __init__(self, loader: Loader, initial_state: Mapping[str, Any] | None = None):
        self._loader = loader
        self._stream: Iterator[dict] | None = None
        self.reset(initial_state)

    def reset(self, initial_state: Mapping[str, Any] | None = None) -> None:
        """Restart: at the loader's start point (``None``), or at ``initial_state`` (a
        :meth:`get_state` / ``Loader.state_dict`` dict, validated as ``Loader.load_state_dict`` does,
        same world size). Affects this iterator only.

        Raises:
            ResumeError, SamplerError: see :meth:`Loader.load_state_dict`.
        """
        self.close()
        lo = self._loader
        if initial_state is None:
            start = lo._current_start()
            sampler, seed, gen = lo.sampler, lo.seed, lo._generation
        else:
            sampler, start, seed = lo._parse_state(initial_state, elastic=False, sampler=copy.copy(lo.sampler))
            gen = -1  # a pass from a given state does not move the loader
        self._sampler = sampler
        self._generation = gen
        self._progress = _Progress(start, seed, sampler.state_dict(), start.skip)
        lo._progress = self._progress
        batches = lo._batches_of(lo._rank_order(start.epoch, start.segments, sampler))
        self._todo = list(enumerate(batches))[start.skip :]
        self._len = len(batches)

    @property
    def epoch(self) -> int:
        return self._progress.start.epoch

    def __iter__(self) -> "LoaderIterator":
        return self

    def __len__(self) -> int:
        """Batches of this pass's epoch (after an elastic resume: of what is left of it)."""
        return self._len

    def __next__(self) -> dict[str, Any]:
        p = self._progress
        if p.done:
            raise StopIteration
        if self._stream is None:
            self._stream = self._loader._pipeline(p.start.epoch, self._todo, p.seed, self._sampler.rank)
        try:
            batch = next(self._stream)
        except CancelledError:
            if self._loader.closed:
                raise RuntimeError("the loader was closed while this iterator was running") from None
            raise
        except StopIteration:
            self._stream = None
            p.done = True
            if self._loader._decodes:
                with _profile.stage("release memory"):
                    release_free_memory()  # see prf.decode._malloc: RSS stays flat epoch after epoch
            lo = self._loader
            lo._progress = p
            if self._generation == lo._generation:  # nobody moved the loader meanwhile: next epoch
                lo._start = _Start(p.start.epoch + 1)
                lo.sampler.set_epoch(p.start.epoch + 1)
                lo._generation += 1
            raise
        p.delivered += 1
        self._loader._progress = p
        if p.delivered % TRIM_EVERY_BATCHES == 0 and self._loader._decodes:
            with _profile.stage("release memory"):
                release_free_memory()
        return batch

    def get_state(self) -> dict[str, Any]:
        """Where this iterator stands (plain JSON-able values; see the class docstring)."""
        return _state_of(self._progress, self._loader.batch_size)

    def close(self) -> None:
        """Cancel the batches in flight (the loader's threads stay; see :meth:`Loader.close`)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def __repr__(self) -> str:
        p = self._progress
        return f"prf.LoaderIterator(epoch={p.start.epoch}, delivered={p.delivered}, of={self._len}, done={p.done})"


class ConvertedLoader:
    """A :class:`Loader` whose batches pass through ``convert`` (an adapter's NumPy -> framework
    conversion); length, epochs, checkpoint state, ``close`` / ``with`` are the inner loader's."""

    def __init__(self, inner: Loader, convert: Any, name: str = "prf.ConvertedLoader"):
        self.inner = inner
        self.convert = convert
        self._name = name

    @property
    def dataset(self) -> Any:
        return self.inner.dataset

    @property
    def epoch(self) -> int:
        return self.inner.epoch

    def __iter__(self) -> "ConvertedIterator":
        return ConvertedIterator(iter(self.inner), self.convert)

    def __len__(self) -> int:
        return len(self.inner)

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any], *, elastic: bool = False) -> None:
        self.inner.load_state_dict(state, elastic=elastic)

    def batch(self, epoch: int, batch_no: int) -> Any:
        return self.convert(self.inner.batch(epoch, batch_no))

    def profile(self, batches: int = 20) -> dict[str, Any]:
        """:meth:`Loader.profile` with this loader's conversion timed as stage ``"convert"``."""
        return self.inner.profile(batches, convert=self.convert)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> "ConvertedLoader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{self._name}({self.inner!r})"


class ConvertedIterator:
    """A :class:`LoaderIterator` whose batches pass through ``convert``; same ``get_state`` / ``reset``."""

    def __init__(self, inner: LoaderIterator, convert: Any):
        self.inner = inner
        self.convert = convert

    def __iter__(self) -> "ConvertedIterator":
        return self

    def __next__(self) -> Any:
        return self.convert(next(self.inner))

    def __len__(self) -> int:
        return len(self.inner)

    def get_state(self) -> dict[str, Any]:
        return self.inner.get_state()

    def reset(self, initial_state: Mapping[str, Any] | None = None) -> None:
        self.inner.reset(initial_state)

    def close(self) -> None:
        self.inner.close()
