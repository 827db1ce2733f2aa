"""Batches addressed by ``(epoch, batch number)``: the view of a :class:`prf.Loader` that framework
adapters use when their framework asks for batches by index (Keras ``PyDataset``, ``tf.data``, Grain
``MapDataset``, torch ``IterableDataset`` workers) instead of iterating the loader.

Batch ``k`` of epoch ``e`` is exactly the loader's: the same sampler order (a pure function of
``(seed, epoch, rank, world_size)``), the same ``drop_last``, and the loader's batch transform
(:meth:`prf.Loader.batch` is the public form of :meth:`EpochBatches.load`), so every adapter delivers
the very same samples. Private to prf's adapters.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np


class EpochBatches:
    """Thread-safe, index-addressed batches of a :class:`prf.Loader` (see the module docstring).

    Args:
        loader: the loader whose order, batch size, ``drop_last`` and per-batch hook are used; its own
            iteration state is not touched.
        cache_epochs: how many epochs' orders are kept (each is ``int64 [len(sampler)]``).
    """

    def __init__(self, loader: Any, cache_epochs: int = 2):
        self.loader = loader
        self._cache: OrderedDict[int, list[np.ndarray]] = OrderedDict()
        self._cache_epochs = max(1, int(cache_epochs))
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"loader": self.loader, "cache_epochs": self._cache_epochs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["loader"], state["cache_epochs"])

    @property
    def dataset(self) -> Any:
        return self.loader.dataset

    @property
    def batch_size(self) -> int:
        return self.loader.batch_size

    def __len__(self) -> int:
        """Batches per epoch (this rank's)."""
        return len(self.loader)

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's batches as ``int64`` arrays of dataset positions (cached)."""
        epoch = int(epoch)
        with self._lock:
            got = self._cache.get(epoch)
            if got is not None:
                self._cache.move_to_end(epoch)
                return got
        got = self.loader.batch_indices(epoch)
        with self._lock:
            self._cache[epoch] = got
            while len(self._cache) > self._cache_epochs:
                self._cache.popitem(last=False)
        return got

    def indices(self, epoch: int, batch_no: int) -> np.ndarray:
        """``int64 [B]`` dataset positions of batch ``batch_no`` of ``epoch``.

        Raises:
            IndexError: ``batch_no`` is not in ``0 .. len(self) - 1``.
        """
        batches = self.batches(epoch)
        if not 0 <= batch_no < len(batches):
            raise IndexError(f"batch {batch_no} out of range: epoch {epoch} has {len(batches)} batches")
        return batches[batch_no]

    def load(self, epoch: int, batch_no: int) -> dict[str, Any]:
        """Batch ``batch_no`` of ``epoch``, as the loader's iteration would deliver it."""
        return self.loader._load(int(epoch), int(batch_no), self.indices(epoch, batch_no))
