"""Distributed, worker-sharded and resumable loading through ``torch.utils.data``.

- :class:`TorchSampler`: any :mod:`prf.sampling` sampler as a ``torch.utils.data.Sampler`` of
  positions, for ``DataLoader(prf.torch.Dataset(...), sampler=...)``; stateful, so torchdata's
  ``StatefulDataLoader`` resumes it exactly (epoch and position).
- :class:`BatchIterableDataset`: a ``torch.utils.data.IterableDataset`` of whole batches (prf's
  batched decode, transforms, normalization) for ``DataLoader(..., batch_size=None, num_workers=W)``.
  Rank ``r`` takes its sampler shard; within it, worker ``w`` takes batches ``w, w + W, w + 2W, ...``,
  so no two (rank, worker) pairs deliver the same batch, and the DataLoader's round-robin over workers
  delivers the batches in prf's order whatever ``W`` is (the same batches as :class:`prf.Loader`).
  Its iterator is stateful: ``StatefulDataLoader`` checkpoints resume with the next undelivered batch.

Epochs follow ``torch.utils.data.DistributedSampler``'s convention: call ``set_epoch(epoch)`` before
each epoch (the worker processes copy the dataset when an epoch's iteration starts, so
``persistent_workers=True`` would keep the first epoch's order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import torch.utils.data as _tud

import prf as _prf
from prf.errors import SamplerError
from prf.sampling import Sampler as _PrfSampler


class TorchSampler(_tud.Sampler):
    """A prf sampler as a ``torch.utils.data.Sampler`` yielding dataset positions (ints).

    Args:
        sampler: a :class:`prf.Sampler` (its rank/world_size shard is what this yields).

    ``set_epoch(e)`` selects the epoch (as ``DistributedSampler``); :meth:`state_dict` holds the
    prf sampler's state and how many positions the current pass has yielded, so a
    ``StatefulDataLoader`` restored from it continues with the next position.
    """

    def __init__(self, sampler: _PrfSampler):
        if not isinstance(sampler, _PrfSampler):
            raise TypeError(f"TorchSampler wraps a prf.Sampler, got {type(sampler).__name__}")
        self.sampler = sampler
        self._yielded = 0
        self._resume_at = 0

    def __len__(self) -> int:
        return len(self.sampler)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; selecting another epoch than the current one drops a pending resume."""
        if int(epoch) != self.sampler.epoch:
            self._resume_at = 0
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        order = self.sampler.indices()
        start, self._resume_at = self._resume_at, 0
        self._yielded = start
        for i in order[start:].tolist():
            self._yielded += 1
            yield i

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "yielded": self._yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self._resume_at = self._yielded = int(state["yielded"])

    def __repr__(self) -> str:
        return f"prf.torch.TorchSampler({self.sampler!r})"


class BatchIterableDataset(_tud.IterableDataset):
    """An ``IterableDataset`` of whole batches, sharded by rank and by DataLoader worker.

    Args:
        source: a :class:`prf.Dataset`, or a dataset folder / Hub repo id / URL (opened with
            ``open_kwargs``, see :func:`prf.as_dataset`).
        batch_size: samples per batch.
        open_kwargs: :func:`prf.open_dataset` options (only with a path).
        **loader_kwargs: :meth:`prf.Dataset.loader` options (``shuffle``, ``seed``, ``drop_last``,
            ``sampler``, ``rank``, ``world_size``, ``normalize``, ``stats``, ``transform``, ...);
            rank/world_size default to ``torch.distributed`` when initialised, else
            ``RANK``/``WORLD_SIZE``. Batches are assembled in the DataLoader's workers
            (:meth:`prf.Loader.batch`), so the loader's own ``num_workers`` is unused.

    Use with ``torch.utils.data.DataLoader(ds, batch_size=None, num_workers=W)`` or torchdata's
    ``StatefulDataLoader`` (same arguments). Each item is a batch dict of tensors
    (``torch.from_numpy``; cameras ``uint8 [B, H, W, C]``, ``task`` a list of str).
    """

    def __init__(self, source: str | Path | _prf.Dataset, batch_size: int, *,
                 open_kwargs: dict[str, Any] | None = None, **loader_kwargs: Any):
        self.loader = _prf.as_dataset(source, **(open_kwargs or {})).loader(batch_size, **loader_kwargs)

    @property
    def dataset(self) -> _prf.Dataset:
        return self.loader.dataset

    @property
    def sampler(self) -> _PrfSampler:
        return self.loader.sampler

    @property
    def epoch(self) -> int:
        return self.loader.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration follows (call before creating the iterator)."""
        self.loader.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        """Batches this rank delivers per epoch (over all workers)."""
        return len(self.loader)

    def __iter__(self) -> "_BatchIterator":
        info = _tud.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return _BatchIterator(self, worker, workers)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "sampler": self.loader.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.sampler.load_state_dict(state["sampler"])
        self.loader.sampler.set_epoch(int(state["epoch"]))

    def __repr__(self) -> str:
        return f"prf.torch.BatchIterableDataset({self.loader!r})"


class _BatchIterator:
    """One worker's share of an epoch: batches ``worker, worker + workers, ...``; stateful."""

    def __init__(self, owner: BatchIterableDataset, worker: int, workers: int):
        self.owner = owner
        self.worker = worker
        self.workers = workers
        self.epoch = owner.epoch
        self._plan()
        self.next = 0  # position in self.batch_nos

    def _plan(self) -> None:
        n = len(self.owner.loader.batch_indices(self.epoch))
        self.batch_nos = list(range(self.worker, n, self.workers))

    def __iter__(self) -> "_BatchIterator":
        return self

    def __next__(self) -> dict[str, Any]:
        from . import to_torch

        if self.next >= len(self.batch_nos):
            raise StopIteration
        b = self.batch_nos[self.next]
        batch = self.owner.loader.batch(self.epoch, b)
        self.next += 1
        return to_torch(batch)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "worker": self.worker, "workers": self.workers, "next": self.next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["workers"]) != self.workers or int(state["worker"]) != self.worker:
            raise SamplerError(
                f"cannot resume: the state was taken with worker {state['worker']} of {state['workers']}, "
                f"this iterator is worker {self.worker} of {self.workers} (use the same num_workers)"
            )
        if int(state["epoch"]) != self.epoch:
            self.epoch = int(state["epoch"])
            self._plan()
        self.next = int(state["next"])


__all__ = ["TorchSampler", "BatchIterableDataset"]
