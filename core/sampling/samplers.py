"""Samplers: the order in which a loader visits dataset positions.

Every sampler's order is a pure function of ``(seed, epoch, rank, world_size)``. Distributed sharding
follows ``torch.utils.data.DistributedSampler``: the global order is padded by repeating its first
indices up to a multiple of ``world_size`` (or truncated with ``drop_last=True``), and rank ``r``
takes every ``world_size``-th index starting at ``r``, so every rank has the same number of samples
and, before padding, no index is on two ranks. Samplers whose order is made of contiguous runs
(:class:`EpisodeChunkSampler`) shard in blocks instead: rank ``r`` takes the ``r``-th contiguous
``len(self)`` positions of the padded (or truncated) order, so runs stay contiguous on a rank.

Samplers (all share that sharding and the ``set_epoch`` / ``state_dict`` / ``load_state_dict`` protocol):

- :class:`SequentialSampler`, :class:`ShuffleSampler`: every position, in order or permuted.
- :class:`FilteredSampler`: the frames of chosen episodes (a list, a predicate over the episodes
  table, or one side of :func:`train_val_split`), in order or shuffled.
- :class:`EpisodeChunkSampler`: contiguous in-episode chunks of ``chunk_size`` frames, shuffled as units.
- :class:`WeightedSampler`: draws with probabilities from per-episode, per-task or per-frame weights.
- :class:`prf.sampling.CurriculumSampler` (:mod:`prf.sampling.curriculum`): the frames of the easiest
  episodes by a score, the pool growing to all episodes as epochs advance;
  :class:`prf.sampling.CurriculumWeightedSampler`: draws weighted towards the easy episodes, fading.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import SamplerError


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


def _shard_positions(n: int, rank: int, world_size: int, mode: str, drop_last: bool) -> np.ndarray:
    """``int64``: positions into an order of ``n`` that ``rank`` takes (see :meth:`Sampler.shard`)."""
    ws = world_size
    if ws == 1 and not drop_last:
        return np.arange(n, dtype=np.int64)
    total = (n // ws) * ws if drop_last else -(-n // ws) * ws
    padded = np.arange(total, dtype=np.int64) % max(n, 1)
    if mode == "blocked":
        per = total // ws
        return padded[rank * per : (rank + 1) * per]
    return padded[rank::ws]


def undelivered(order: np.ndarray, segments: Sequence[tuple[int, int]], shard_mode: str,
                drop_last: bool) -> np.ndarray:
    """What is left of an epoch's ``order`` after training ran in ``segments``: each
    ``(world_size, samples_per_rank)`` means every rank of that world size took the first
    ``samples_per_rank`` positions of its shard of what was left (the elastic resume of
    :meth:`prf.Loader.load_state_dict`). A padding position delivered counts its original as seen.

    Returns:
        ``int64``: the undelivered entries of ``order``, in order.
    """
    rest = np.asarray(order, dtype=np.int64)
    for world_size, per_rank in segments:
        n = rest.size
        if not n:
            break
        seen = np.zeros(n, dtype=bool)
        for r in range(int(world_size)):
            seen[_shard_positions(n, r, int(world_size), shard_mode, drop_last)[: int(per_rank)]] = True
        rest = rest[~seen]
    return rest


class Sampler:
    """Base sampler over ``num_samples`` dataset positions.

    Subclasses implement :meth:`global_order` (the whole epoch's order before sharding).

    Args:
        num_samples: dataset length.
        seed: base seed; the epoch's randomness is drawn from ``(seed, epoch)``.
        rank, world_size: this process's shard (default: :func:`default_rank_world_size`).
        drop_last: drop the tail so shards are equal without padding (as ``DistributedSampler``).
    """

    #: ``"strided"`` (rank r takes positions r, r + world_size, ... as ``DistributedSampler``) or
    #: ``"blocked"`` (rank r takes the r-th contiguous block).
    shard_mode = "strided"
    #: attributes that shape the order beyond the base ones: saved in :meth:`state_dict` and required
    #: to match on :meth:`load_state_dict`
    resume_params: tuple[str, ...] = ()
    #: every epoch has ``len(self)`` positions (:class:`prf.sampling.CurriculumSampler` without
    #: ``num_samples`` does not: its epochs grow); see :func:`require_fixed_length`
    fixed_length = True

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
        return self.shard(self.global_order(self.epoch if epoch is None else int(epoch)))

    def shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's part of ``order`` (padded by wrapping around, or with ``drop_last`` cut, to equal
        shards, as ``DistributedSampler``)."""
        return order[_shard_positions(order.size, self.rank, self.world_size, self.shard_mode, self.drop_last)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        n, ws = self.num_samples, self.world_size
        return n // ws if self.drop_last else -(-n // ws)

    def state_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "epoch": self.epoch,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_samples": self.num_samples,
            **{name: getattr(self, name) for name in self.resume_params},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            SamplerError: the state was taken by another kind of sampler, another shard (rank,
                world_size), over another number of samples or with another of the sampler's
                :attr:`resume_params`: resuming it would not continue the same order.
        """
        for key, mine in (("type", type(self).__name__), ("rank", self.rank), ("world_size", self.world_size),
                          ("num_samples", self.num_samples),
                          *((name, getattr(self, name)) for name in self.resume_params)):
            if key in state and state[key] != mine:
                raise SamplerError(
                    f"cannot resume {type(self).__name__}: the state has {key}={state[key]!r}, this sampler "
                    f"has {key}={mine!r}"
                )
        self.epoch = int(state["epoch"])
        self.seed = int(state.get("seed", self.seed))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_samples={self.num_samples}, seed={self.seed}, epoch={self.epoch}, "
            f"rank={self.rank}, world_size={self.world_size})"
        )


def require_fixed_length(sampler: Any, user: str) -> None:
    """For code that assumes every epoch has ``len(sampler)`` positions (Grain's and tf.data's index
    spaces ``epoch * len + i``): refuse a sampler whose epoch length changes with the epoch.

    Raises:
        SamplerError: ``sampler.fixed_length`` is false (names ``user`` and the fix).
    """
    if not getattr(sampler, "fixed_length", True):
        raise SamplerError(
            f"{user} needs one epoch length for every epoch, but {type(sampler).__name__}'s epochs change "
            f"length ({sampler!r}); give it a fixed one (CurriculumSampler(..., num_samples=N)) or use "
            f"prf.Loader / prf.torch, which follow each epoch's own length"
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


# ---- episode-aware samplers ---------------------------------------------------------------------
def select_episodes(
    dataset: Any,
    episodes: Iterable[int] | None = None,
    predicate: Callable[[Any], bool] | None = None,
) -> list[int]:
    """The ``episode_index`` values of ``dataset``'s episodes chosen by a list and/or a predicate.

    Args:
        dataset: a :class:`prf.Dataset` (its selected episodes are the candidates).
        episodes: episode indices to keep (default: all of the dataset's).
        predicate: called with each candidate's :class:`prf.Episode` record of the episodes table
            (``episode_index``, ``length``, ``tasks``, ``dataset_from_index``...); keeps it when true.

    Returns:
        The chosen episode indices, ascending.

    Raises:
        SamplerError: an episode is not in the dataset, or nothing is selected.
    """
    ids = [int(e) for e in dataset.episodes]
    chosen = ids
    if episodes is not None:
        want = {int(e) for e in episodes}
        unknown = sorted(want - set(ids))
        if unknown:
            raise SamplerError(
                f"episode(s) {unknown[:20]} are not in the dataset (it has {len(ids)} episodes: "
                f"{ids[:10]}{'...' if len(ids) > 10 else ''})"
            )
        chosen = [e for e in ids if e in want]
    if predicate is not None:
        table = dataset.meta.episodes
        chosen = [e for e in chosen if predicate(table[e])]
    if not chosen:
        raise SamplerError("the episode selection (episodes= / predicate=) selects no episode")
    return chosen


def train_val_split(
    dataset: Any | Sequence[int], val_fraction: float, *, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Split episodes (not frames) into train and validation sets, reproducibly from ``seed``.

    The episodes are permuted by ``numpy.random.default_rng(seed)``; the first
    ``round(val_fraction * E)`` (at least one when ``val_fraction > 0``, at most ``E - 1`` when
    ``val_fraction < 1``) are validation. Pass each side as ``episodes=`` to a sampler.

    Args:
        dataset: a :class:`prf.Dataset` (its episodes) or a sequence of episode indices.
        val_fraction: share of episodes for validation, in ``[0, 1]``.

    Returns:
        ``(train_episodes, val_episodes)``, each ascending; disjoint, together all episodes.

    Raises:
        SamplerError: ``val_fraction`` is outside ``[0, 1]`` or there are no episodes.
    """
    ids = [int(e) for e in (dataset.episodes if hasattr(dataset, "episodes") else dataset)]
    if not 0.0 <= float(val_fraction) <= 1.0:
        raise SamplerError(f"val_fraction must be in [0, 1], got {val_fraction}")
    if not ids:
        raise SamplerError("train_val_split: no episodes to split")
    n = len(ids)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if val_fraction < 1:
        n_val = min(n_val, n - 1)
    perm = np.random.default_rng(int(seed)).permutation(n)
    val = sorted(ids[i] for i in perm[:n_val])
    train = sorted(ids[i] for i in perm[n_val:])
    return train, val


def _runs_to_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``int64``: the concatenation of ``arange(s, s + l)`` for each run."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.repeat(np.asarray(starts, dtype=np.int64) - offsets, lengths) + np.arange(total, dtype=np.int64)


class _Selection:
    """The selected episodes of a dataset: ids, positions of their first frames, lengths."""

    def __init__(self, dataset: Any, episodes: Iterable[int] | None, predicate: Callable[[Any], bool] | None):
        all_ids = [int(e) for e in dataset.episodes]
        ordinal = {e: i for i, e in enumerate(all_ids)}
        self.ids = select_episodes(dataset, episodes, predicate)
        o = np.array([ordinal[e] for e in self.ids], dtype=np.int64)
        self.starts = np.asarray(dataset.episode_starts, dtype=np.int64)[o]
        self.lengths = np.asarray(dataset.episode_lengths, dtype=np.int64)[o]
        self.positions = _runs_to_positions(self.starts, self.lengths)


class FilteredSampler(Sampler):
    """The frames of selected episodes, in dataset order or shuffled per epoch.

    Args:
        dataset: a :class:`prf.Dataset`.
        episodes: episode indices to keep (see :func:`select_episodes`; e.g. one side of
            :func:`train_val_split`).
        predicate: keep the episodes whose :class:`prf.Episode` record makes it true.
        shuffle: permute the selected frames per epoch (``numpy.random.default_rng([seed, epoch])``).
        seed, rank, world_size, drop_last: as :class:`Sampler`.

    Attributes:
        episodes: the selected episode indices; positions: ``int64 [N]`` their frames' positions.

    Raises:
        SamplerError: see :func:`select_episodes`.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        episodes: Iterable[int] | None = None,
        predicate: Callable[[Any], bool] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ):
        sel = _Selection(dataset, episodes, predicate)
        super().__init__(sel.positions.size, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
        self.episodes = sel.ids
        self.positions = sel.positions
        self.shuffle = bool(shuffle)

    def global_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return self.positions.copy()
        return self.positions[np.random.default_rng([self.seed, int(epoch)]).permutation(self.positions.size)]


class EpisodeChunkSampler(Sampler):
    """Contiguous in-episode chunks of ``chunk_size`` frames, shuffled as units (sequence-friendly).

    Each selected episode is cut at its first frame and every ``chunk_size`` frames after it (its
    last chunk may be shorter); no chunk crosses an episode boundary. An epoch visits every chunk
    once, frames in order within a chunk, chunks permuted by ``numpy.random.default_rng([seed,
    epoch])`` (or in dataset order with ``shuffle=False``).

    Sharding is blocked: the epoch's order is padded with its own first positions up to a multiple of
    ``world_size`` (truncated with ``drop_last``) and rank ``r`` takes the ``r``-th contiguous block,
    so a rank sees whole chunks except possibly the first and last of its block, which are cut
    (still within one episode).

    Args:
        dataset: a :class:`prf.Dataset`.
        chunk_size: frames per chunk (>= 1).
        episodes, predicate: episode selection (see :func:`select_episodes`).
        shuffle, seed, rank, world_size, drop_last: as :class:`Sampler`.

    Attributes:
        chunk_starts, chunk_lengths: ``int64 [K]`` the chunks, in dataset order.

    Raises:
        SamplerError: ``chunk_size < 1``, or see :func:`select_episodes`.
    """

    shard_mode = "blocked"
    resume_params = ("chunk_size",)

    def __init__(
        self,
        dataset: Any,
        chunk_size: int,
        *,
        episodes: Iterable[int] | None = None,
        predicate: Callable[[Any], bool] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ):
        if int(chunk_size) < 1:
            raise SamplerError(f"chunk_size must be >= 1, got {chunk_size}")
        sel = _Selection(dataset, episodes, predicate)
        super().__init__(sel.positions.size, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
        self.chunk_size = int(chunk_size)
        self.episodes = sel.ids
        self.positions = sel.positions
        self.shuffle = bool(shuffle)
        n_chunks = -(-sel.lengths // self.chunk_size)
        within = _runs_to_positions(np.zeros_like(n_chunks), n_chunks)  # 0..n_chunks[e]-1 per episode
        ep_of_chunk = np.repeat(np.arange(len(sel.ids)), n_chunks)
        offset = within * self.chunk_size
        self.chunk_starts = sel.starts[ep_of_chunk] + offset
        self.chunk_lengths = np.minimum(self.chunk_size, sel.lengths[ep_of_chunk] - offset)

    def global_order(self, epoch: int) -> np.ndarray:
        k = self.chunk_starts.size
        perm = np.random.default_rng([self.seed, int(epoch)]).permutation(k) if self.shuffle else np.arange(k)
        return _runs_to_positions(self.chunk_starts[perm], self.chunk_lengths[perm])


class EpisodePoolSampler(Sampler):
    """A shuffle that keeps decode locality: episodes are drawn at random ``pool_size`` at a time, the
    frames of the episodes in the pool are emitted in uniformly random order, then the pool is refilled
    with the next ``pool_size`` episodes.

    ``pool_size`` is the randomness knob: a batch holds frames of at most ``pool_size`` episodes (plus
    the next pool's at a pool boundary), so the loader decodes many frames of the same GOPs and files
    together; ``pool_size >= number of episodes`` is a uniform shuffle. Order: the episode permutation
    and the frame keys are drawn from ``numpy.random.default_rng([seed, epoch])``.

    Sharding is blocked (rank ``r`` takes the ``r``-th contiguous block of the padded order), so each
    rank works on its own pools.

    Args:
        dataset: a :class:`prf.Dataset`.
        pool_size: episodes per pool (>= 1).
        episodes, predicate: episode selection (see :func:`select_episodes`).
        seed, rank, world_size, drop_last: as :class:`Sampler`.

    Raises:
        SamplerError: ``pool_size < 1``, or see :func:`select_episodes`.
    """

    shard_mode = "blocked"
    resume_params = ("pool_size",)

    def __init__(
        self,
        dataset: Any,
        pool_size: int = 8,
        *,
        episodes: Iterable[int] | None = None,
        predicate: Callable[[Any], bool] | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ):
        if int(pool_size) < 1:
            raise SamplerError(f"pool_size must be >= 1, got {pool_size}")
        sel = _Selection(dataset, episodes, predicate)
        super().__init__(sel.positions.size, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
        self.pool_size = int(pool_size)
        self.episodes = sel.ids
        self._starts, self._lengths = sel.starts, sel.lengths
        self._episode_of = np.repeat(np.arange(len(sel.ids)), sel.lengths)
        self.positions = sel.positions

    def global_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(epoch)])
        perm = rng.permutation(len(self.episodes))
        pool_of_episode = np.empty(len(self.episodes), dtype=np.int64)
        pool_of_episode[perm] = np.arange(len(self.episodes)) // self.pool_size
        key = pool_of_episode[self._episode_of] + rng.random(self.positions.size)
        return self.positions[np.argsort(key, kind="stable")]


def distinct_episodes_per_batch(order: np.ndarray, row_episode: np.ndarray, batch_size: int) -> float:
    """Shuffle quality: the mean number of distinct episodes in the batches of ``order``
    (``row_episode[i]`` is the episode of position ``i``)."""
    eps = row_episode[np.asarray(order, dtype=np.int64)]
    counts = [np.unique(eps[i : i + batch_size]).size for i in range(0, eps.size, batch_size)]
    return float(np.mean(counts)) if counts else 0.0


class WeightedSampler(Sampler):
    """Draws ``num_samples`` frames per epoch with probabilities from weights (balanced sampling).

    ``by="episode"``: ``weights`` gives each episode's share of the draws (its frames equally
    likely within it), so equal weights balance short and long episodes. ``by="task"``: each task's
    share (frames by their ``task_index``), e.g. equal weights balance the tasks. ``by="frame"``:
    one weight per selected frame (as ``torch.utils.data.WeightedRandomSampler``). A mapping may
    leave keys out (weight 0). Draws come from ``numpy.random.default_rng([seed, epoch]).choice``;
    ranks take disjoint draws (strided sharding), so with replacement a frame can appear on two ranks.

    Args:
        dataset: a :class:`prf.Dataset`.
        weights: mapping ``{episode_index | task_index | task string: weight}`` or a sequence (per
            selected episode in ascending order, per ``task_index``, or per selected frame).
        by: ``"episode"``, ``"task"`` or ``"frame"``.
        num_samples: draws per epoch over all ranks (default: number of selected frames).
        replacement: draw with replacement (default, as LeRobot's weighted sampling); without, at most
            the number of frames with non-zero weight.
        episodes, predicate: episode selection (see :func:`select_episodes`).
        seed, rank, world_size, drop_last: as :class:`Sampler`.

    Attributes:
        probabilities: ``float64 [N]`` the draw probability of each selected frame (``positions``).

    Raises:
        SamplerError: unknown keys, negative or non-finite weights, all weights zero, a sequence of
            the wrong length, or more draws without replacement than drawable frames.
    """

    def __init__(
        self,
        dataset: Any,
        weights: Mapping[Any, float] | Sequence[float] | np.ndarray,
        *,
        by: str = "episode",
        num_samples: int | None = None,
        replacement: bool = True,
        episodes: Iterable[int] | None = None,
        predicate: Callable[[Any], bool] | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ):
        sel = _Selection(dataset, episodes, predicate)
        self.episodes = sel.ids
        self.positions = sel.positions
        self.by = by
        self.replacement = bool(replacement)
        self.probabilities = self._probabilities(dataset, sel, weights, by)
        n = sel.positions.size if num_samples is None else int(num_samples)
        if n < 0:
            raise SamplerError(f"num_samples must be >= 0, got {num_samples}")
        drawable = int(np.count_nonzero(self.probabilities))
        if not self.replacement and n > drawable:
            raise SamplerError(
                f"cannot draw {n} samples without replacement: only {drawable} frames have a non-zero weight"
            )
        super().__init__(n, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)

    @staticmethod
    def _probabilities(dataset: Any, sel: _Selection, weights: Any, by: str) -> np.ndarray:
        def check(w: np.ndarray, what: str) -> np.ndarray:
            w = np.asarray(w, dtype=np.float64)
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise SamplerError(f"{what} weights must be finite and >= 0")
            return w

        if by == "episode":
            if isinstance(weights, Mapping):
                unknown = sorted(set(int(k) for k in weights) - set(sel.ids))
                if unknown:
                    raise SamplerError(f"weights name episode(s) {unknown[:20]} that are not selected")
                w_ep = check([float(weights.get(e, weights.get(str(e), 0.0))) for e in sel.ids], "episode")
            else:
                w_ep = check(weights, "episode").reshape(-1)
                if w_ep.size != len(sel.ids):
                    raise SamplerError(f"{w_ep.size} episode weights for {len(sel.ids)} selected episodes")
            per_frame = np.repeat(np.divide(w_ep, np.maximum(sel.lengths, 1)), sel.lengths)
        elif by == "task":
            task = np.asarray(dataset.column("task_index")).reshape(len(dataset), -1)[:, 0][sel.positions]
            tasks = getattr(dataset.meta, "tasks", {})
            if isinstance(weights, Mapping):
                by_text = {str(v): int(k) for k, v in tasks.items()}
                w_task: dict[int, float] = {}
                for k, v in weights.items():
                    if isinstance(k, str) and not k.lstrip("-").isdigit():
                        if k not in by_text:
                            raise SamplerError(f"weights name task {k!r}, which is not a task of the dataset")
                        w_task[by_text[k]] = float(v)
                    else:
                        if int(k) not in tasks and int(k) not in set(task.tolist()):
                            raise SamplerError(f"weights name task_index {k}, which is not a task of the dataset")
                        w_task[int(k)] = float(v)
                table = check([w_task.get(int(t), 0.0) for t in range(int(task.max()) + 1)], "task")
            else:
                table = check(weights, "task").reshape(-1)
                if table.size <= int(task.max()):
                    raise SamplerError(f"{table.size} task weights, but task_index goes up to {int(task.max())}")
            counts = np.bincount(task, minlength=table.size).astype(np.float64)
            per_frame = table[task] / counts[task]
        elif by == "frame":
            per_frame = check(weights, "frame").reshape(-1)
            if per_frame.size != sel.positions.size:
                raise SamplerError(f"{per_frame.size} frame weights for {sel.positions.size} selected frames")
        else:
            raise SamplerError(f"by must be 'episode', 'task' or 'frame', got {by!r}")
        total = per_frame.sum()
        if not total > 0:
            raise SamplerError("all weights are zero: nothing can be drawn")
        return per_frame / total

    def global_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(epoch)])
        draw = rng.choice(self.positions.size, size=self.num_samples, replace=self.replacement, p=self.probabilities)
        return self.positions[draw].astype(np.int64)
