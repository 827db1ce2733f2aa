""":func:`map_dataset` (a ``grain.MapDataset`` in prf's order) and :func:`data_loader` (a
``grain.DataLoader``), built from Grain's public API only; and :func:`use_absl_flag_defaults`, the one
place where ``prf.jax`` touches process-wide state."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import grain
import jax

import prf as _prf

from ._convert import collate
from ._order import BatchAt, EpochOrder, Sampler
from ._source import DataSource

_SAMPLE_ORDER_OPTIONS = {"shuffle", "seed", "sampler"}  # loader options that apply to records of samples


def use_absl_flag_defaults() -> bool:
    """Mark absl's flags parsed, with their defaults, unless something parsed them already.

    Grain (0.2.x) reads absl flags when it starts worker processes (``.mp_prefetch()``,
    ``grain.DataLoader(worker_count > 0)``) and raises ``UnparsedFlagAccessError`` in programs that do
    not run under ``absl.app.run`` (plain scripts, notebooks, pytest). A process-wide change, made
    only here: :func:`map_dataset` and :func:`data_loader` (with ``worker_count > 0``) call it, since
    their pipelines may start workers; call it yourself before ``mp_prefetch`` on a pipeline of your
    own built on :class:`DataSource`. Returns whether this call marked them.
    """
    from absl import flags  # a dependency of grain

    if flags.FLAGS.is_parsed():
        return False
    flags.FLAGS.mark_as_parsed()
    return True


def _jax_rank_world_size(rank: int | None, world_size: int | None) -> tuple[int, int]:
    return (jax.process_index() if rank is None else int(rank),
            jax.process_count() if world_size is None else int(world_size))


def map_dataset(
    source: str | Path | _prf.Dataset | DataSource,
    batch_size: int | None = None,
    *,
    epoch: int = 0,
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
            prf's order; batch them with ``.batch(n, batch_fn=prf.jax.collate)``; Grain 0.2 reads the
            samples of such a batch one by one unless its batch-pushdown experiment is on). An int: records are batches ``{key: ndarray [B, ...]}`` (``task``
            list[str]), identical to ``ds.loader(batch_size, ...)``'s (:meth:`prf.Loader.batch`).
        epoch: the epoch of the first ``len(result)`` records; later indices (``.repeat()``) are the
            next epochs, each in its own order.
        rank, world_size: this shard (default ``jax.process_index()``, ``jax.process_count()``);
            sharded as prf's samplers shard (``DistributedSampler``-style, equal length per rank).
        **loader_kwargs: :meth:`prf.Dataset.loader` options (``shuffle``, ``seed``, ``sampler``; with
            ``batch_size`` also ``drop_last``, ``transform``, ``normalize``, ...).

    Returns:
        a ``grain.MapDataset`` of NumPy records; ``.to_iter_dataset()`` iterators support
        ``get_state``/``set_state`` and ``.mp_prefetch()`` (see :func:`use_absl_flag_defaults`, which
        this calls).

    Raises:
        ValueError: per-batch options (``drop_last``, transforms, ...) without ``batch_size``.
    """
    ds = _prf.as_dataset(source, **(open_kwargs or {}))
    rank, world_size = _jax_rank_world_size(rank, world_size)
    per_batch = sorted(set(loader_kwargs) - _SAMPLE_ORDER_OPTIONS)
    if batch_size is None and per_batch:
        raise ValueError(f"{per_batch} need batch_size (records are samples without it)")
    use_absl_flag_defaults()
    loader = ds.loader(batch_size or 1, rank=rank, world_size=world_size, **loader_kwargs)
    if batch_size is None:
        src = source if isinstance(source, DataSource) else DataSource(ds)
        return grain.MapDataset.select_from_datasets([grain.MapDataset.source(src)], EpochOrder(loader, epoch))
    return grain.MapDataset.range(len(loader)).map_with_index(BatchAt(loader, epoch))


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
        shuffle, seed, num_epochs, epoch: the sampler's (``epoch``: the first epoch's order). Grain
            batches across epoch boundaries when ``num_epochs > 1`` (as Grain does); prf's own loader
            batches within an epoch.
        drop_last: drop the last incomplete batch (Grain's ``drop_remainder``).
        sampler: a prf sampler to follow instead of ``shuffle``/``seed`` (``order="prf"`` only; its
            rank and world size must match ``shard_options``).
        shard_options: default ``grain.sharding.ShardByJaxProcess()``.
        operations: Grain transformations applied per record before batching.
        worker_count, worker_buffer_size, read_options: as ``grain.DataLoader`` (``worker_count > 0``
            runs the pipeline in worker processes, and calls :func:`use_absl_flag_defaults`; Grain then
            gives worker ``w`` every ``worker_count``-th record and batches per worker, so batches hold
            other samples than prf's loader's, though each epoch holds the same ones; for identical
            batches in worker processes use ``map_dataset(batch_size).to_iter_dataset().mp_prefetch()``).
            ``read_options`` defaults to 2 reader threads and a prefetch buffer of two batches.
        order: ``"prf"`` (default): :class:`Sampler`, prf's order and rank shards, the same samples
            as ``ds.loader(...)``. ``"grain"``: ``grain.samplers.IndexSampler`` (Grain's shuffle and
            contiguous shards; ``seed`` must then fit in 32 bits).

    Returns:
        a ``grain.DataLoader``; its iterator supports ``get_state``/``set_state``.

    Raises:
        ValueError: an unknown ``order``; ``sampler``/``epoch`` with ``order="grain"``.
    """
    ds = _prf.as_dataset(source, **(open_kwargs or {}))
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
    if worker_count > 0:
        use_absl_flag_defaults()
    ops = list(operations) + [grain.transforms.Batch(batch_size, drop_remainder=drop_last, batch_fn=collate)]
    return grain.DataLoader(data_source=src, sampler=grain_sampler, operations=ops, worker_count=worker_count,
                            worker_buffer_size=worker_buffer_size, shard_options=shard_options,
                            read_options=read_options)
