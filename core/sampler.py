"""Samplers: the order in which a loader visits dataset positions.

Every sampler's order is a pure function of ``(seed, epoch, rank, world_size)``. Distributed sharding
follows ``torch.utils.data.DistributedSampler``: the global order is padded by repeating its first
indices up to a multiple of ``world_size`` (or truncated with ``drop_last=True``), and rank ``r``
takes every ``world_size``-th index starting at ``r``, so every rank has the same number of samples
and, before padding, no index is on two ranks.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterator

import numpy as np


def default_rank_world_size() -> tuple[int, int]:
    """``(rank, world_size)``: from ``torch.distributed`` when it is imported and initialised, else
    from the ``RANK``/``WORLD_SIZE`` environment variables (as set by ``torchrun``), else ``(0, 1)``."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return int(dist.get_rank()), int(dist.get_world_size())
        except Exception:  # noqa: BLE001 - a half-initialised torch must not break sampling
            pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class Sampler:
    """Base sampler over ``num_samples`` dataset positions.

    Subclasses implement :meth:`global_order` (the whole epoch's order before sharding).

    Args:
        num_samples: dataset length.
        seed: base seed; the epoch's randomness is drawn from ``(seed, epoch)``.
        rank, world_size: this process's shard (default: :func:`default_rank_world_size`).
        drop_last: drop the tail so shards are equal without padding (as ``DistributedSampler``).
    """

    def __init__(
        self,
        num_samples: int,
        *,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ):
        if rank is None or world_size is None:
            r, w = default_rank_world_size()
            rank = r if rank is None else rank
            world_size = w if world_size is None else world_size
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid rank {rank} for world_size {world_size}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    def global_order(self, epoch: int) -> np.ndarray:
        """``int64 [num_samples]``: the epoch's order over all ranks."""
        raise NotImplementedError

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """``int64 [len(self)]``: this rank's positions for ``epoch`` (default: the current epoch)."""
        order = self.global_order(self.epoch if epoch is None else int(epoch))
        ws = self.world_size
        if ws > 1 or self.drop_last:
            n = order.size
            total = (n // ws) * ws if self.drop_last else -(-n // ws) * ws
            if total > n and n:
                order = np.concatenate([order, np.resize(order, total - n)])
            order = order[:total][self.rank :: ws]
        return order

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        n, ws = self.num_samples, self.world_size
        return n // ws if self.drop_last else -(-n // ws)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seed": self.seed, "rank": self.rank, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.seed = int(state.get("seed", self.seed))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_samples={self.num_samples}, seed={self.seed}, epoch={self.epoch}, "
            f"rank={self.rank}, world_size={self.world_size})"
        )


class SequentialSampler(Sampler):
    """Positions in dataset order, ``0 .. num_samples - 1``."""

    def global_order(self, epoch: int) -> np.ndarray:
        return np.arange(self.num_samples, dtype=np.int64)


class ShuffleSampler(Sampler):
    """A uniform random permutation per epoch, drawn from ``numpy.random.default_rng([seed, epoch])``."""

    def global_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(epoch)])
        return rng.permutation(self.num_samples).astype(np.int64)
