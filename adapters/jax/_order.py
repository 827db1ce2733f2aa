"""prf's sampler order as Grain objects, on Grain's public API: a ``DatasetSelectionMap`` (samples in
prf's order, ``MapDataset.select_from_datasets``), a ``MapWithIndex`` (batch ``k`` of an epoch,
``MapDataset.range(n).map_with_index``), and :class:`Sampler` (``grain.DataLoader``'s sampler).

Index ``e * len + i`` is record (or batch) ``i`` of epoch ``first_epoch + e``, so ``.repeat()``
continues with the next epochs, each in its own order, as Grain's own shuffle does."""

from __future__ import annotations

import copy
import sys
import threading
from collections import OrderedDict
from typing import Any

import grain
import numpy as np

from prf.sampling import require_fixed_length


class _Orders:
    """A small per-key cache of sampler orders; pickles without it (rebuilt in the unpickled copy,
    e.g. in Grain's worker processes)."""

    def __init__(self, keep: int):
        self._keep = keep
        self._orders: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Any) -> np.ndarray:
        with self._lock:
            got = self._orders.get(key)
        if got is None:
            got = compute()
            with self._lock:
                self._orders[key] = got
                while len(self._orders) > self._keep:
                    self._orders.popitem(last=False)
        return got

    def __getstate__(self) -> dict[str, Any]:
        return {"keep": self._keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["keep"])


class EpochOrder(grain.transforms.DatasetSelectionMap):
    """Index ``e * len + i`` -> ``(0, position i of epoch first_epoch + e in the loader's sampler order)``."""

    def __init__(self, loader: Any, first_epoch: int):
        require_fixed_length(loader.sampler, "prf.jax (Grain)")
        self._sampler = loader.sampler
        self._first_epoch = int(first_epoch)
        self._length = len(loader.sampler)
        self._orders = _Orders(2)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[int, int]:
        e, i = divmod(int(index), self._length)
        epoch = self._first_epoch + e
        return 0, int(self._orders.get(epoch, lambda: self._sampler.indices(epoch))[i])

    def __repr__(self) -> str:
        return f"prf.jax.EpochOrder({self._sampler!r}, first_epoch={self._first_epoch})"


class BatchAt(grain.transforms.MapWithIndex):
    """Element ``e * n + k`` -> batch ``k`` of epoch ``first_epoch + e`` (:meth:`prf.Loader.batch`)."""

    def __init__(self, loader: Any, first_epoch: int):
        require_fixed_length(loader.sampler, "prf.jax (Grain)")
        self._loader = loader
        self._first_epoch = int(first_epoch)
        self._n = len(loader)

    def map_with_index(self, index: int, element: Any) -> dict[str, Any]:
        e, k = divmod(int(index), self._n)
        return self._loader.batch(self._first_epoch + e, k)

    def __repr__(self) -> str:
        return f"prf.jax.BatchAt({self._loader!r}, first_epoch={self._first_epoch})"


class Sampler:
    """A Grain sampler (for ``grain.DataLoader``) that visits records in prf's order.

    Args:
        num_records: dataset length (or pass ``sampler``).
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

    Raises:
        TypeError: neither ``num_records`` nor ``sampler``.
        ValueError: ``sampler``'s shard differs from ``shard_options``; ``num_epochs < 1``.
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
        require_fixed_length(sampler, "prf.jax.Sampler (Grain)")
        self._sampler = sampler
        self._num_epochs = num_epochs
        self._first_epoch = int(epoch)
        self._epoch_len = len(sampler) * ws
        self._seed = int(getattr(sampler, "seed", seed))
        self._ranks: dict[int, Any] = {rank: sampler}
        self._ranks_lock = threading.Lock()
        self._orders = _Orders(4)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_ranks_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._ranks_lock = threading.Lock()

    def __len__(self) -> int:
        return sys.maxsize if self._num_epochs is None else self._num_epochs * self._epoch_len

    def __repr__(self) -> str:
        # Grain compares repr(sampler) when restoring a DataLoader checkpoint.
        return (
            f"prf.jax.Sampler({self._sampler!r}, epoch={self._first_epoch}, num_epochs={self._num_epochs}, "
            f"shard_options={self._shard_options!r})"
        )

    def _rank_sampler(self, rank: int) -> Any:
        with self._ranks_lock:
            s = self._ranks.get(rank)
            if s is None:
                s = copy.copy(self._sampler)
                s.rank = rank
                self._ranks[rank] = s
        return s

    def __getitem__(self, index: int) -> Any:
        if index < 0 or index >= len(self):
            raise IndexError(f"record index {index} out of range 0..{len(self) - 1}")
        epoch, j = divmod(int(index), self._epoch_len)
        i, rank = divmod(j, self._shard_options.shard_count)
        epoch += self._first_epoch
        order = self._orders.get((rank, epoch), lambda: self._rank_sampler(rank).indices(epoch))
        rng = np.random.Generator(np.random.Philox(key=self._seed + int(index)))
        return grain.RecordMetadata(index=int(index), record_key=int(order[i]), rng=rng)
