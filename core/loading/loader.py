"""The NumPy batch loader: a sampler's order cut into batches, assembled by a pool of decode workers.

Workers are threads: PyAV releases the GIL while decoding and converting frames, and batch assembly
is NumPy, so threads scale on the cores without copying decoded frames between processes. Batches
are delivered in sampler order whatever the number of workers; an error in a worker is raised in the
caller (the original exception, with its traceback).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np

from ._malloc import tune_malloc
from ..decode import DecodeBackend
from .plan import BatchPlan, DecodedFrames, allocate, assemble, decode_tasks
from ..errors import SamplerError
from ..sampling import EpisodePoolSampler, Sampler, SequentialSampler, ShuffleSampler, undelivered


class Loader:
    """Iterate a :class:`prf.Dataset` in batches of NumPy arrays.

    Args:
        dataset: the dataset.
        batch_size: samples per batch.
        shuffle: uniform shuffle per epoch (ignored when ``sampler`` is given).
        seed: seed of the shuffle; the order depends only on ``(seed, epoch)`` (and rank/world_size).
        drop_last: drop the last incomplete batch.
        num_workers: decode threads (0: assemble batches in the calling thread).
        prefetch: batches in flight per worker.
        decode_window: batches planned and decoded together (default ``2 * prefetch * max(1, num_workers)``):
            their camera frames are merged per file, deduplicated and decoded GOP by GOP, so frames
            shared by overlapping windows or neighbouring samples are decoded once.
        sampler: a :class:`prf.sampling.Sampler` (default: sequential, or shuffle with ``shuffle=True``).
        rank, world_size: distributed shard (default: from torch.distributed / ``RANK``, ``WORLD_SIZE``).
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

    Each batch is ``{key: ndarray [B, ...]}`` (cameras ``uint8 [B, H, W, C]`` / ``[B, T, H, W, C]``),
    ``{key}_is_pad`` ``bool [B, T]``, and ``"task"`` as ``list[str]``.

    Epochs: iterating uses the current epoch (:meth:`set_epoch`); a pass that runs to its end moves
    the loader to the next epoch. :meth:`state_dict` taken between batches resumes with the next
    undelivered batch.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        num_workers: int = 0,
        prefetch: int = 2,
        decode_window: int | None = None,
        sampler: Sampler | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        normalize: Any = None,
        stats: Any = None,
        transform: Any = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0 or prefetch < 1:
            raise ValueError("num_workers must be >= 0 and prefetch >= 1")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)
        self.num_workers = int(num_workers)
        self.prefetch = int(prefetch)
        self.decode_window = None if decode_window is None else max(1, int(decode_window))
        if sampler is None and shuffle and getattr(dataset, "streaming", False):
            # a streamed dataset shuffles by episode pools: decode locality is fetch locality
            sampler = EpisodePoolSampler(dataset, seed=seed, rank=rank, world_size=world_size)
        if sampler is None:
            cls = ShuffleSampler if shuffle else SequentialSampler
            sampler = cls(len(dataset), seed=seed, rank=rank, world_size=world_size)
        self.sampler = sampler
        self.seed = int(seed)
        cameras = list(getattr(dataset, "cameras", []) or [])
        self._transform = None
        if transform is not None:
            from .transforms import CameraTransforms

            self._transform = CameraTransforms(transform, cameras)
        self._normalizer = None
        if normalize:
            from .normalize import Normalizer

            self._normalizer = Normalizer(normalize, dataset.stats() if stats is None else stats, cameras=cameras)
        self._skip_batches = 0  # batches of the current epoch already delivered (resume)
        self._delivered = 0
        # elastic resume: how the current epoch ran before, [(world_size, samples per rank), ...]
        self._segments: list[tuple[int, int]] = []

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration follows (restarts at its first batch)."""
        self.sampler.set_epoch(epoch)
        self._skip_batches = 0
        self._delivered = 0
        self._segments = []

    def __len__(self) -> int:
        """Batches of the current epoch (after an elastic resume: of what is left of it)."""
        n = len(self._rank_order(None)) if self._segments else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _rank_order(self, epoch: int | None) -> np.ndarray:
        """This rank's positions for ``epoch``; for the epoch an elastic resume started in, this rank's
        shard of what no rank had delivered (see :func:`prf.sampling.undelivered`)."""
        s = self.sampler
        if self._segments and (epoch is None or int(epoch) == s.epoch):
            rest = undelivered(s.global_order(s.epoch), self._segments, s.shard_mode, s.drop_last)
            return s.shard(rest)
        return s.indices(epoch)

    def batch_indices(self, epoch: int | None = None) -> list[np.ndarray]:
        """The epoch's batches as arrays of dataset positions (what :meth:`__iter__` will load)."""
        order = self._rank_order(epoch)
        bs = self.batch_size
        stop = (order.size // bs) * bs if self.drop_last else order.size
        return [order[i : i + bs] for i in range(0, stop, bs)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if getattr(self.dataset, "cameras", None):
            tune_malloc()  # see prf.loading._malloc: 2.6x faster decoding of large frames on 2 threads
        batches = self.batch_indices()
        skip = self._skip_batches
        self._delivered = skip
        todo = list(enumerate(batches))[skip:]
        epoch = self.sampler.epoch
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="prf-decode") if self.num_workers else _Inline()
        windows = self._windows(todo)
        in_flight: deque[list[Future]] = deque()
        try:
            for _ in range(2):  # the window being delivered and the next one
                w = next(windows, None)
                if w is not None:
                    in_flight.append(self._submit_window(pool, epoch, w))
            while in_flight:
                futures = in_flight.popleft()
                for j, fut in enumerate(futures):
                    if j == 0:
                        w = next(windows, None)
                        if w is not None:
                            in_flight.append(self._submit_window(pool, epoch, w))
                    batch = fut.result()
                    self._delivered += 1
                    yield batch
        finally:
            for futures in in_flight:
                for f in futures:
                    f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        # the pass ran to its end: the next iteration is the next epoch
        self.set_epoch(self.sampler.epoch + 1)

    def _windows(self, todo: list[tuple[int, np.ndarray]]) -> Iterator[list[tuple[int, np.ndarray]]]:
        """Consecutive batches decoded together: ``decode_window`` of them (default: ``2 * prefetch``
        per worker)."""
        size = self.decode_window
        if size is None:
            # Decoding: 2 * prefetch batches per worker (measured: +20% for the episode-pool order on
            # 640x360). A backend that only copies frames (the frame cache) gains nothing from locality
            # and loses to memory churn: 1 batch per worker (5x faster on so101 from the cache).
            backend = getattr(self.dataset, "backend", None)  # any object with get_batch() works
            copy_only = isinstance(backend, DecodeBackend) and backend.capabilities.copy_only
            size = max(1, self.num_workers) * (1 if copy_only else self.prefetch * 2)
        for i in range(0, len(todo), size):
            yield todo[i : i + size]

    def _submit_window(self, pool: Any, epoch: int, items: list[tuple[int, np.ndarray]]) -> list[Future]:
        """Plan the window's batches, submit its decode tasks, then one finishing job per batch.

        Finishing jobs wait for the window's decode tasks; the pool runs jobs in submission order, so a
        waiting job only ever waits for tasks already taken by other workers (no deadlock)."""
        ds = self.dataset
        if not hasattr(ds, "plan"):  # any object with get_batch() works, batch by batch
            return [pool.submit(self._load, epoch, b, idx) for b, idx in items]
        try:
            plans = [ds.plan(idx) for _, idx in items]
            tasks = decode_tasks(plans, ds.backend.index, split=max(1, self.num_workers))
            shapes = [ds.frame_shapes(p) for p in plans]
        except BaseException as e:  # surfaces in order, when the window's first batch is due
            failed: Future = Future()
            failed.set_exception(e)
            return [failed] * len(items)
        decode_futs = [pool.submit(ds.decode_task, t) for t in tasks]
        # Copy-only backends (the frame cache): batch memory from the loader's thread (see plan.allocate;
        # measured 2-3x steadier there). Decoding backends allocate in the workers (measured faster there).
        copy_only = ds.backend.capabilities.copy_only
        arrays = [allocate(p, sh) if copy_only else None for p, sh in zip(plans, shapes)]

        def finish(batch_no: int, plan: BatchPlan, shape: dict, out: dict) -> dict[str, Any]:
            decoded = DecodedFrames()
            for t, f in zip(tasks, decode_futs):
                decoded.add(t, f.result())
            return self._finish(assemble(plan, decoded, shape, out), epoch, batch_no)

        return [pool.submit(finish, b, p, sh, a) for (b, _), p, sh, a in zip(items, plans, shapes, arrays)]

    def batch(self, epoch: int, batch_no: int) -> dict[str, Any]:
        """Batch ``batch_no`` of ``epoch`` as iterating that epoch delivers it (the same samples, the
        same per-batch transform randomness), assembled on its own in the calling thread; for adapters
        whose framework asks for batches by index (Keras, tf.data, Grain, torch workers). Thread-safe;
        each epoch's order is computed once (two epochs are kept).

        Raises:
            IndexError: ``batch_no`` is not in ``0 .. len(self.batch_indices(epoch)) - 1``.
        """
        from ._batches import EpochBatches

        by_index = self.__dict__.get("_by_index")
        if by_index is None:
            by_index = self.__dict__.setdefault("_by_index", EpochBatches(self))
        return self._load(int(epoch), int(batch_no), by_index.indices(int(epoch), int(batch_no)))

    def _load(self, epoch: int, batch_no: int, indices: np.ndarray) -> dict[str, Any]:
        """Assemble batch ``batch_no`` of ``epoch`` on its own (no window); used by adapters whose
        framework runs its own workers."""
        return self._finish(self.dataset.get_batch(indices), epoch, batch_no)

    def _finish(self, batch: dict[str, Any], epoch: int, batch_no: int) -> dict[str, Any]:
        """Transforms then normalization (runs in a worker). Per-batch randomness is drawn from
        ``(seed, rank, epoch, batch_no)`` only, so a resumed run repeats it exactly."""
        if self._transform is not None:
            batch = self._transform(batch, key=(self.seed, self.sampler.rank, int(epoch), int(batch_no)))
        if self._normalizer is not None:
            batch = self._normalizer(batch)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands: epoch, batches delivered in it, and the sampler's state (plain
        JSON-able values)."""
        state = {
            "epoch": self.sampler.epoch,
            "batches_delivered": self._delivered,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "sampler": self.sampler.state_dict(),
        }
        if self._segments:
            state["elastic_segments"] = [list(seg) for seg in self._segments]
        return state

    def load_state_dict(self, state: dict[str, Any], *, elastic: bool = False) -> None:
        """Resume: the next iteration starts with the first batch not delivered before ``state``.

        Args:
            state: from :meth:`state_dict`.
            elastic: allow a state taken with another ``world_size`` (or by another rank): the rest
                of that epoch is what no rank had delivered, re-sharded over this run's ranks with the
                sampler's pad/drop policy; later epochs are as usual. Assumes every rank of the earlier
                run had delivered the same number of batches (synchronous data-parallel training
                checkpoints all ranks at one step). Transforms' per-batch randomness follows the new
                batch numbers.

        Raises:
            ValueError: another ``batch_size``.
            SamplerError: another kind of sampler or dataset size; another rank or world size
                without ``elastic=True``.
        """
        if int(state.get("batch_size", self.batch_size)) != self.batch_size:
            raise ValueError(
                f"the state was taken with batch_size={state['batch_size']}, this loader has {self.batch_size}"
            )
        sampler_state = dict(state["sampler"])
        segments = [(int(w), int(n)) for w, n in state.get("elastic_segments", [])]
        skip = int(state["batches_delivered"])
        old_ws = int(sampler_state.get("world_size", self.sampler.world_size))
        if elastic:
            if old_ws != self.sampler.world_size:
                segments.append((old_ws, skip * self.batch_size))
                skip = 0
            sampler_state["rank"], sampler_state["world_size"] = self.sampler.rank, self.sampler.world_size
        elif old_ws != self.sampler.world_size:
            raise SamplerError(
                f"cannot resume: the state was taken with world_size={old_ws}, this loader has "
                f"world_size={self.sampler.world_size}; load_state_dict(state, elastic=True) re-shards "
                f"the rest of the epoch over the new ranks"
            )
        self.seed = int(state.get("seed", self.seed))
        self.sampler.load_state_dict(sampler_state)
        self.sampler.set_epoch(int(state["epoch"]))
        self._segments = segments
        self._skip_batches = skip
        self._delivered = skip

    def __repr__(self) -> str:
        return (
            f"prf.Loader(batch_size={self.batch_size}, batches={len(self)}, num_workers={self.num_workers}, "
            f"sampler={self.sampler!r})"
        )


class ConvertedLoader:
    """A :class:`Loader` whose batches pass through ``convert`` (an adapter's NumPy -> framework
    conversion); length, epochs and checkpoint state are the inner loader's."""

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

    def __iter__(self) -> Iterator[Any]:
        for batch in self.inner:
            yield self.convert(batch)

    def __len__(self) -> int:
        return len(self.inner)

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __repr__(self) -> str:
        return f"{self._name}({self.inner!r})"


class _Inline:
    """An executor that runs each job at submission (``num_workers=0``)."""

    def submit(self, fn: Any, *args: Any) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - delivered through the future, as a pool would
            f.set_exception(e)
        return f

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass
