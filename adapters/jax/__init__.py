"""JAX adapter: prf datasets as Grain data sources and pipelines, batches as ``jax.Array``.

- :class:`DataSource`: a Grain ``RandomAccessDataSource`` of samples (``__len__``, thread-safe and
  deterministic ``__getitem__``, ``__repr__``, picklable; batched ``_getitems`` that decodes each
  video file once for the whole request).
- :func:`map_dataset`: a ``grain.MapDataset`` in prf's order (the same samples, in the same order,
  as ``ds.loader(...)`` for a given ``(seed, epoch, rank, world_size)``); of samples, or of batches
  read with prf's batched decode. Continue it with ``.map``, ``.batch``, ``.repeat``,
  ``.to_iter_dataset()``, ``.mp_prefetch()``; its iterators checkpoint with ``get_state``/``set_state``.
- :class:`Sampler`: a Grain sampler with prf's order for ``grain.DataLoader`` (sharded by
  ``ShardOptions`` / ``ShardByJaxProcess`` exactly as prf shards by rank).
- :func:`data_loader`: ``grain.DataLoader(data_source=DataSource, sampler=..., shard_options=
  ShardByJaxProcess(), operations=[..., Batch])``; ``order="grain"`` uses Grain's own
  ``IndexSampler`` (Grain's shuffle and contiguous shards) instead of prf's order.
- :func:`collate` (a Grain ``batch_fn``) and :func:`to_jax` (NumPy batch -> ``jax.Array`` dict).

Pipelines produce NumPy (cheap to move between Grain's worker processes); convert at the end with
``.map(prf.jax.to_jax)`` or call :func:`to_jax` in the training loop. JAX's default
(``jax_enable_x64`` off) turns ``int64`` features into ``int32``; everything else keeps its dtype.

Grain (0.2.x) reads its absl flags when it starts worker processes (``mp_prefetch``,
``DataLoader(worker_count>0)``) and raises ``UnparsedFlagAccessError`` in programs that do not run
under ``absl.app.run``; importing ``prf.jax`` marks absl's flags parsed (with their defaults) when
nothing parsed them yet, so those work in plain scripts and notebooks.

Install with ``pip install prf[jax]``.
"""

from __future__ import annotations

try:
    import grain
    import jax
except ImportError as e:  # pragma: no cover - exercised only without jax/grain
    raise ImportError("prf.jax needs JAX and Grain: pip install 'prf[jax]'") from e

import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import prf as _prf
from prf.loading._batches import EpochBatches


def _absl_flags_defaults() -> None:
    """See the module docstring: let Grain read its absl flags' defaults outside ``absl.app.run``."""
    try:
        from absl import flags
    except ImportError:  # pragma: no cover - grain depends on absl
        return
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


_absl_flags_defaults()


def _open(source: Any, open_kwargs: dict[str, Any] | None) -> _prf.Dataset:
    if isinstance(source, DataSource):
        source = source.dataset
    if isinstance(source, _prf.Dataset):
        if open_kwargs:
            raise TypeError("open_kwargs are only accepted with a path or repo id")
        return source
    return _prf.open_dataset(source, **(open_kwargs or {}))


def _jax_rank_world_size(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None:
        rank = jax.process_index()
    if world_size is None:
        world_size = jax.process_count()
    return int(rank), int(world_size)


# ---- samples and batches ----------------------------------------------------------------------------
def _split(batch: dict[str, Any], n: int) -> list[dict[str, Any]]:
    return [{k: (v[j] if k == "task" else v[j, ...]) for k, v in batch.items()} for j in range(n)]


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a prf batch: arrays ``[B, ...]`` (``np.stack``), ``task`` as ``list[str]``.

    A Grain ``batch_fn``: ``ds.batch(32, batch_fn=prf.jax.collate)``."""
    if not samples:
        raise ValueError("collate needs at least one sample")
    out: dict[str, Any] = {}
    for k, v in samples[0].items():
        if isinstance(v, str):
            out[k] = [s[k] for s in samples]
        else:
            out[k] = np.stack([s[k] for s in samples])
    return out


def to_jax(batch: dict[str, Any], sharding: Any = None) -> dict[str, Any]:
    """A NumPy batch (or sample) as ``jax.Array`` values.

    Args:
        batch: ``{key: ndarray}`` from prf (strings such as ``task`` pass through as ``list[str]``).
        sharding: ``None``: ``jax.device_put`` to the default device. A ``jax.sharding.Sharding``:
            each value becomes a global array from this process's rows
            (``jax.make_array_from_process_local_data``), for multi-host data parallelism.

    Returns:
        ``{key: jax.Array}`` with the same shapes; dtypes as NumPy's except ``int64``/``float64`` ->
        ``int32``/``float32`` unless ``jax_enable_x64`` is set (JAX's canonical types).
    """
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, (np.ndarray, np.generic)) and v.dtype.kind in "biuf":
            if sharding is None:
                out[k] = jax.device_put(v)
            else:
                out[k] = jax.make_array_from_process_local_data(sharding, np.asarray(v))
        elif isinstance(v, np.ndarray):  # strings batched by Grain's default batch_fn
            out[k] = [str(x) for x in v.reshape(-1).tolist()]
        else:
            out[k] = v
    return out


# ---- the data source --------------------------------------------------------------------------------
class DataSource(grain.sources.RandomAccessDataSource):
    """A Grain ``RandomAccessDataSource`` over a LeRobot dataset: record ``i`` is ``ds[i]``.

    Args:
        source: a dataset folder / Hub repo id (opened with ``**open_kwargs``), or a :class:`prf.Dataset`.
        **open_kwargs: :func:`prf.open_dataset` options (``delta_timestamps``, ``episodes``, ...).

    Records are dicts of NumPy arrays (cameras ``uint8 [H, W, C]``, ``[T, H, W, C]`` with a window,
    ``{key}_is_pad`` ``bool [T]``, ``task`` a ``str``). ``__getitem__`` is deterministic and
    thread-safe (decoders are per thread); the source pickles without open files, so Grain's worker
    processes reopen videos themselves. ``_getitems`` (Grain's batched read) assembles the request
    with one batched decode.
    """

    def __init__(self, source: str | Path | _prf.Dataset, **open_kwargs: Any):
        self.dataset = _open(source, open_kwargs)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset[int(index)]

    def _getitems(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return _split(self.dataset.get_batch(idx), idx.size)

    def get_batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """Records ``indices`` as one prf batch (``{key: ndarray [B, ...]}``, ``task`` list[str])."""
        return self.dataset.get_batch(np.asarray(indices, dtype=np.int64))

    def __repr__(self) -> str:
        # Grain compares repr(data_source) when restoring a DataLoader checkpoint: keep it stable.
        ds = self.dataset
        return (
            f"prf.jax.DataSource(root={str(ds.meta.root)!r}, frames={len(ds)}, episodes={ds.episodes!r}, "
            f"cameras={ds.cameras!r}, delta_timestamps={ds.delta_timestamps!r}, tolerance_s={ds.tolerance_s})"
        )


# ---- MapDataset pipelines in prf's order ------------------------------------------------------------
class _OrderCache:
    """Pickles without its per-epoch order cache and lock (rebuilt lazily in the unpickled copy)."""

    _orders: OrderedDict
    _lock: Any

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_orders"], state["_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class _PrfOrderMapDataset(_OrderCache, grain.MapDataset):
    """The parent's records in prf's sampler order for this rank; index ``e * len + i`` is record ``i``
    of epoch ``first_epoch + e`` (so ``.repeat()`` continues with the next epochs, as Grain's shuffle)."""

    def __init__(self, parent: grain.MapDataset, loader: Any, first_epoch: int):
        super().__init__(parent)
        self._loader = loader
        self._first_epoch = int(first_epoch)
        self._length = len(loader.sampler)
        self._orders: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._length

    def __str__(self) -> str:
        return f"PrfOrderMapDataset(first_epoch={self._first_epoch})"

    def _order(self, epoch: int) -> np.ndarray:
        with self._lock:
            got = self._orders.get(epoch)
        if got is None:
            got = self._loader.sampler.indices(epoch)
            with self._lock:
                self._orders[epoch] = got
                while len(self._orders) > 2:
                    self._orders.popitem(last=False)
        return got

    def _parent_index(self, index: int) -> int:
        e, i = divmod(int(index), self._length)
        return int(self._order(self._first_epoch + e)[i]) + e * len(self._parent)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        with self._stats.record_self_time():
            j = self._parent_index(index)
        return self._parent[j]

    def _getitems(self, indices: Sequence[int]):
        return self._parent._getitems([self._parent_index(i) for i in indices])  # noqa: SLF001 - Grain's batched read


class _PrfBatchMapDataset(grain.MapDataset):
    """prf's batches for this rank: index ``e * len + k`` is batch ``k`` of epoch ``first_epoch + e``,
    assembled by the loader's batched decode (and its per-batch hook)."""

    def __init__(self, batches: EpochBatches, first_epoch: int):
        super().__init__([])
        self._batches = batches
        self._first_epoch = int(first_epoch)
        self._length = len(batches)

    def __len__(self) -> int:
        return self._length

    def __str__(self) -> str:
        return f"PrfBatchMapDataset(batch_size={self._batches.batch_size}, first_epoch={self._first_epoch})"

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        e, k = divmod(int(index), self._length)
        return self._batches.load(self._first_epoch + e, k)


def map_dataset(
    source: str | Path | _prf.Dataset | DataSource,
    batch_size: int | None = None,
    *,
    epoch: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    sampler: Any = None,
    rank: int | None = None,
    world_size: int | None = None,
    open_kwargs: dict[str, Any] | None = None,
    **loader_kwargs: Any,
) -> grain.MapDataset:
    """A ``grain.MapDataset`` over a dataset in prf's order for this JAX process.

    Args:
        source: a dataset folder / Hub repo id (opened with ``open_kwargs``), a :class:`prf.Dataset`
            or a :class:`DataSource`.
        batch_size: ``None``: records are samples (``grain.MapDataset.source(DataSource(ds))`` put in
            prf's order; batch them with ``.batch(n, batch_fn=prf.jax.collate)``). An int: records are
            batches ``{key: ndarray [B, ...]}`` (``task`` list[str]) read with one batched decode,
            identical to ``ds.loader(batch_size, ...)``'s.
        epoch: the epoch of the first ``len(result)`` records; later indices (``.repeat()``) are the
            next epochs, each in its own order.
        shuffle, seed, drop_last, sampler: as :class:`prf.Loader` (``drop_last`` only with ``batch_size``).
        rank, world_size: this shard (default ``jax.process_index()``, ``jax.process_count()``);
            sharded as prf's samplers shard (``DistributedSampler``-style, equal length per rank).
        **loader_kwargs: further :class:`prf.Loader` options (per-batch transforms), with ``batch_size``.

    Returns:
        a ``grain.MapDataset`` of NumPy records; ``.to_iter_dataset()`` iterators support
        ``get_state``/``set_state`` and ``.mp_prefetch()``.
    """
    ds = _open(source, open_kwargs)
    rank, world_size = _jax_rank_world_size(rank, world_size)
    if batch_size is None and (drop_last or loader_kwargs):
        raise ValueError("drop_last and per-batch loader options need batch_size (records are samples without it)")
    loader = ds.loader(batch_size or 1, shuffle=shuffle, seed=seed, drop_last=drop_last, sampler=sampler,
                       rank=rank, world_size=world_size, **loader_kwargs)
    if batch_size is None:
        src = source if isinstance(source, DataSource) else DataSource(ds)
        return _PrfOrderMapDataset(grain.MapDataset.source(src), loader, epoch)
    return _PrfBatchMapDataset(EpochBatches(loader), epoch)


# ---- grain.DataLoader -------------------------------------------------------------------------------
class Sampler(_OrderCache):
    """A Grain sampler (for ``grain.DataLoader``) that visits records in prf's order.

    Args:
        num_records: dataset length (or pass ``loader``).
        shard_options: ``grain.sharding.ShardOptions`` of this process (e.g. ``ShardByJaxProcess()``);
            ``drop_remainder=True`` drops the tail instead of padding.
        shuffle, seed: prf's shuffle (``numpy.random.default_rng([seed, epoch])``), not Grain's.
        num_epochs: epochs to run (``None``: forever).
        epoch: the first epoch (its order), e.g. to start a fresh loader at a known epoch.
        sampler: a prf sampler to use instead of ``shuffle``/``seed`` (its ``rank``/``world_size``
            must match ``shard_options``).

    Global index ``g`` is position ``g mod P`` of epoch ``epoch + g // P`` of the padded global order
    (``P = world_size * per-rank length``). ``grain.DataLoader`` reads indices ``i * shard_count +
    shard_index``, so each process gets exactly prf's rank shard, epoch after epoch.
    """

    def __init__(self, num_records: int | None = None, *, shard_options: Any = None, shuffle: bool = False,
                 seed: int = 0, num_epochs: int | None = 1, epoch: int = 0, sampler: Any = None):
        from prf.sampling import SequentialSampler, ShuffleSampler

        shard_options = grain.sharding.NoSharding() if shard_options is None else shard_options
        self._shard_options = shard_options
        rank, ws = int(shard_options.shard_index), int(shard_options.shard_count)
        if sampler is None:
            if num_records is None:
                raise TypeError("Sampler needs num_records or sampler")
            cls = ShuffleSampler if shuffle else SequentialSampler
            sampler = cls(int(num_records), seed=seed, rank=rank, world_size=ws,
                          drop_last=bool(shard_options.drop_remainder))
        elif (sampler.rank, sampler.world_size) != (rank, ws):
            raise ValueError(
                f"the prf sampler is rank {sampler.rank} of {sampler.world_size}, shard_options say "
                f"{rank} of {ws}"
            )
        if num_epochs is not None and num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1 or None, got {num_epochs}")
        self._sampler = sampler
        self._num_epochs = num_epochs
        self._first_epoch = int(epoch)
        self._per_rank = len(sampler)
        self._epoch_len = self._per_rank * ws
        self._seed = int(getattr(sampler, "seed", seed))
        self._ranks: dict[int, Any] = {rank: sampler}
        self._orders: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sys.maxsize if self._num_epochs is None else self._num_epochs * self._epoch_len

    def __repr__(self) -> str:
        # Grain compares repr(sampler) when restoring a DataLoader checkpoint.
        return (
            f"prf.jax.Sampler({self._sampler!r}, epoch={self._first_epoch}, num_epochs={self._num_epochs}, "
            f"shard_options={self._shard_options!r})"
        )

    def _order(self, rank: int, epoch: int) -> np.ndarray:
        key = (rank, epoch)
        with self._lock:
            got = self._orders.get(key)
            s = self._ranks.get(rank)
            if s is None:
                import copy

                s = copy.copy(self._sampler)
                s.rank = rank
                self._ranks[rank] = s
        if got is None:
            got = s.indices(epoch)
            with self._lock:
                self._orders[key] = got
                while len(self._orders) > 4:
                    self._orders.popitem(last=False)
        return got

    def __getitem__(self, index: int) -> Any:
        if index < 0 or index >= len(self):
            raise IndexError(f"record index {index} out of range 0..{len(self) - 1}")
        epoch, j = divmod(int(index), self._epoch_len)
        i, rank = divmod(j, self._shard_options.shard_count)
        key = int(self._order(rank, self._first_epoch + epoch)[i])
        rng = np.random.Generator(np.random.Philox(key=self._seed + int(index)))
        return grain.RecordMetadata(index=int(index), record_key=key, rng=rng)


def data_loader(
    source: str | Path | _prf.Dataset | DataSource,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    num_epochs: int | None = 1,
    epoch: int = 0,
    drop_last: bool = False,
    sampler: Any = None,
    shard_options: Any = None,
    operations: Sequence[Any] = (),
    worker_count: int = 0,
    worker_buffer_size: int = 1,
    read_options: Any = None,
    order: str = "prf",
    open_kwargs: dict[str, Any] | None = None,
) -> grain.DataLoader:
    """A ``grain.DataLoader`` of batches over a dataset.

    Args:
        source: a folder / repo id (opened with ``open_kwargs``), a :class:`prf.Dataset` or a :class:`DataSource`.
        batch_size: samples per batch (Grain's ``Batch`` with :func:`collate`).
        shuffle, seed, num_epochs, epoch: the sampler's (``epoch``: the first epoch's order). Grain batches across epoch boundaries when
            ``num_epochs > 1`` (as Grain does); prf's own loader batches within an epoch.
        drop_last: drop the last incomplete batch (Grain's ``drop_remainder``).
        sampler: a prf sampler to follow instead of ``shuffle``/``seed`` (``order="prf"`` only; its
            rank and world size must match ``shard_options``).
        shard_options: default ``grain.sharding.ShardByJaxProcess()``.
        operations: Grain transformations applied per record before batching.
        worker_count, worker_buffer_size, read_options: as ``grain.DataLoader`` (``worker_count > 0``
            runs the pipeline in worker processes with ``mp_prefetch``; Grain then gives worker ``w``
            every ``worker_count``-th record and batches per worker, so batches hold other samples
            than prf's loader's, though each epoch holds the same ones; for identical batches in worker
            processes use ``map_dataset(batch_size).to_iter_dataset().mp_prefetch()``). ``read_options`` defaults to
            2 reader threads and a prefetch buffer of two batches.
        order: ``"prf"`` (default): :class:`Sampler`, prf's order and rank shards, the same samples
            as ``ds.loader(...)``. ``"grain"``: ``grain.samplers.IndexSampler`` (Grain's shuffle and
            contiguous shards; ``seed`` must then fit in 32 bits).

    Returns:
        a ``grain.DataLoader``; its iterator supports ``get_state``/``set_state``.
    """
    ds = _open(source, open_kwargs)
    src = source if isinstance(source, DataSource) else DataSource(ds)
    if shard_options is None:
        shard_options = grain.sharding.ShardByJaxProcess()
    if order == "prf":
        grain_sampler: Any = Sampler(len(ds), shard_options=shard_options, shuffle=shuffle, seed=seed,
                                     num_epochs=num_epochs, epoch=epoch, sampler=sampler)
    elif order == "grain":
        if sampler is not None or epoch:
            raise ValueError("sampler= and epoch= need order='prf'")
        grain_sampler = grain.samplers.IndexSampler(len(ds), shard_options=shard_options, shuffle=shuffle,
                                                    num_epochs=num_epochs, seed=seed)
    else:
        raise ValueError(f"order must be 'prf' or 'grain', got {order!r}")
    if read_options is None:
        read_options = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2 * batch_size)
    ops = list(operations) + [grain.transforms.Batch(batch_size, drop_remainder=drop_last, batch_fn=collate)]
    return grain.DataLoader(data_source=src, sampler=grain_sampler, operations=ops, worker_count=worker_count,
                            worker_buffer_size=worker_buffer_size, shard_options=shard_options,
                            read_options=read_options)


__all__ = ["DataSource", "Sampler", "map_dataset", "data_loader", "collate", "to_jax"]
