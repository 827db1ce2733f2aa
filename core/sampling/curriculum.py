"""Curriculum sampling: episodes ordered by a per-episode score, the pool growing from easy to hard.

:class:`CurriculumSampler` (a pool of the easiest episodes, growing) and
:class:`CurriculumWeightedSampler` (draws weighted towards the easy episodes, the weighting fading)
follow the protocol of :mod:`prf.sampling.samplers` (order a pure function of ``(seed, epoch, rank,
world_size)``, strided sharding, ``set_epoch`` / ``state_dict`` / ``load_state_dict``); only :class:`CurriculumSampler`'s epoch length changes with the epoch (the pool's
frames) unless it is given ``num_samples``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import SamplerError
from .samplers import Sampler, _runs_to_positions, _Selection

#: the episode attributes a score may be named by (``scores="length"``): numeric fields of
#: :class:`prf.Episode`, the episodes table's columns
EPISODE_COLUMNS = ("length", "dataset_from_index", "dataset_to_index")


class CurriculumSampler(Sampler):
    """Easy episodes first: each epoch draws from the easiest fraction of the selected episodes by a
    per-episode score, the fraction growing linearly to all episodes over ``warmup_epochs``.

    Schedule (``E`` selected episodes, epoch ``e >= 0``)::

        f(e) = 1                                                   if warmup_epochs == 0
        f(e) = min(1, start + (1 - start) * e / warmup_epochs)     otherwise
        k(e) = min(E, max(1, ceil(f(e) * E - 1e-9)))               episodes in the pool

    The episodes are ranked easy -> hard by score (``easy="low"``: ascending score; ``"high"``:
    descending; ties by ascending ``episode_index``); the pool of epoch ``e`` is the first ``k(e)`` of
    that ranking, so pools are nested and from epoch ``warmup_epochs`` on every episode is in it. The
    epoch's order is every frame of the pooled episodes once, permuted by
    ``numpy.random.default_rng([seed, epoch])`` (``shuffle=True``), or with ``shuffle=False`` the
    pooled episodes in rank order (easiest first), each episode's frames in order.

    ``len(sampler)`` is this rank's share of the *current* epoch's pool (it grows with the epoch, so
    ``len(loader)`` does too); ``num_samples`` is the number of selected frames (the pool from
    ``warmup_epochs`` on). With ``num_samples=N`` every epoch has ``N`` positions instead (for
    frameworks that assume one epoch length, e.g. Grain through :mod:`prf.jax`): the pool's order
    above repeated, each repetition drawn anew from the same generator (with ``shuffle=False`` the
    same rank order again), cut at ``N``; then a frame can be on two ranks or twice on one when ``N``
    exceeds the pool's frames. Sharding is strided as :class:`prf.sampling.Sampler`'s (padding by
    repeating the order's first positions, or ``drop_last``): the ranks together cover the pool,
    each position once before padding. :meth:`state_dict` carries ``start``, ``warmup_epochs``,
    ``easy``, ``shuffle``, ``num_samples`` (as ``fixed_samples``) and a digest of the ranking
    (``ranking_sha1``); resuming with other scores
    is refused (:class:`prf.errors.SamplerError`).

    Args:
        dataset: a :class:`prf.Dataset`.
        scores: one score per episode, any of:

            - a ``pyarrow.Table`` (or a pandas DataFrame) with an ``episode_index`` column and the
              score in ``column``: :func:`prf.score_episodes`' table (``column="motion_smoothness"``),
              or a :func:`prf.sql` result (``prf.sql(ds, "SELECT episode_index, length AS score FROM
              episodes")``); rows of unselected episodes are ignored;
            - a mapping ``{episode_index: score}``;
            - a sequence / array, one score per selected episode in ascending ``episode_index``;
            - the name of an episodes-table column (``"length"``: shorter episodes first).

        column: the score column of a table (default: its only column besides ``episode_index``).
        easy: ``"low"`` (default: a low score is easy, e.g. ``length``, ``motion_smoothness`` as jerk)
            or ``"high"``.
        start: ``f(0)``, the fraction of episodes in the first epoch's pool, in ``(0, 1]``.
        warmup_epochs: epochs until the pool holds every episode (``0``: all from the start).
        shuffle: permute the pooled frames per epoch (default), else rank order.
        num_samples: positions per epoch over all ranks (default: the pool's frames, growing).
        episodes, predicate: episode selection (see :func:`prf.sampling.select_episodes`).
        seed, rank, world_size, drop_last: as :class:`prf.sampling.Sampler`.

    Attributes:
        episodes: the selected episode indices, ascending; scores: ``float64 [E]`` their scores;
        ranking: the selected episode indices easy -> hard.

    Raises:
        SamplerError: a selected episode has no score, or a NaN / non-numeric one; ``column`` is not
            in the table (or is ambiguous); ``easy``, ``start``, ``warmup_epochs`` or ``num_samples`` out
            of range; or
            see :func:`prf.sampling.select_episodes`.
    """

    resume_params = ("start", "warmup_epochs", "easy", "shuffle", "ranking_sha1", "fixed_samples")

    def __init__(
        self,
        dataset: Any,
        scores: Any,
        *,
        column: str | None = None,
        easy: str = "low",
        start: float = 0.25,
        warmup_epochs: int = 10,
        shuffle: bool = True,
        num_samples: int | None = None,
        episodes: Iterable[int] | None = None,
        predicate: Callable[[Any], bool] | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ):
        if easy not in ("low", "high"):
            raise SamplerError(f"easy must be 'low' or 'high', got {easy!r}")
        if isinstance(start, bool) or not isinstance(start, (int, float)) or not 0.0 < float(start) <= 1.0:
            raise SamplerError(f"start must be a fraction in (0, 1], got {start!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, (int, np.integer)) or warmup_epochs < 0:
            raise SamplerError(f"warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
        if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer))
                                        or num_samples < 1):
            raise SamplerError(f"num_samples must be None or an int >= 1, got {num_samples!r}")
        sel = _Selection(dataset, episodes, predicate)
        super().__init__(sel.positions.size, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
        #: ``num_samples=``: positions per epoch (``None``: the pool's frames)
        self.fixed_samples = None if num_samples is None else int(num_samples)
        self.episodes = sel.ids
        self.easy = easy
        self.start = float(start)
        self.warmup_epochs = int(warmup_epochs)
        self.shuffle = bool(shuffle)
        self.scores = _episode_scores(dataset, sel.ids, scores, column)
        key = self.scores if easy == "low" else -self.scores
        ids = np.asarray(sel.ids, dtype=np.int64)
        self._rank = np.lexsort((ids, key))  # ordinals into the selection, easy -> hard
        self.ranking = ids[self._rank].tolist()
        self.ranking_sha1 = hashlib.sha1(np.asarray(self.ranking, dtype="<i8").tobytes()).hexdigest()
        self._starts, self._lengths = sel.starts, sel.lengths
        self._cum = np.concatenate([[0], np.cumsum(sel.lengths[self._rank])]).astype(np.int64)

    # ---- the schedule ---------------------------------------------------------------------------
    def fraction(self, epoch: int) -> float:
        """``f(epoch)``: the scheduled fraction of episodes in the pool (see the class docstring)."""
        if self.warmup_epochs == 0:
            return 1.0
        return min(1.0, self.start + (1.0 - self.start) * int(epoch) / self.warmup_epochs)

    def pool_size(self, epoch: int) -> int:
        """``k(epoch)``: episodes in the epoch's pool."""
        n = len(self.episodes)
        return min(n, max(1, math.ceil(self.fraction(epoch) * n - 1e-9)))

    def pool(self, epoch: int) -> list[int]:
        """The episode indices in the epoch's pool, easy -> hard."""
        return self.ranking[: self.pool_size(epoch)]

    def pool_frames(self, epoch: int) -> int:
        """Frames of the epoch's pool (the length of :meth:`global_order`)."""
        return int(self._cum[self.pool_size(epoch)])

    # ---- the order ------------------------------------------------------------------------------
    @property
    def fixed_length(self) -> bool:  # type: ignore[override]
        """Whether every epoch has the same length (only with ``num_samples=``)."""
        return self.fixed_samples is not None or self.pool_size(0) == len(self.episodes)

    def epoch_samples(self, epoch: int) -> int:
        """Positions of the epoch's order over all ranks (``num_samples=``, else the pool's frames)."""
        return self.pool_frames(epoch) if self.fixed_samples is None else self.fixed_samples

    def global_order(self, epoch: int) -> np.ndarray:
        chosen = self._rank[: self.pool_size(epoch)]
        positions = _runs_to_positions(self._starts[chosen], self._lengths[chosen])
        rng = np.random.default_rng([self.seed, int(epoch)]) if self.shuffle else None
        n = self.epoch_samples(epoch)
        reps = -(-n // positions.size)
        parts = [positions[rng.permutation(positions.size)] if rng is not None else positions for _ in range(reps)]
        return (parts[0] if reps == 1 else np.concatenate(parts))[:n]

    def __len__(self) -> int:
        n, ws = self.epoch_samples(self.epoch), self.world_size
        return n // ws if self.drop_last else -(-n // ws)

    def __repr__(self) -> str:
        return (
            f"CurriculumSampler(episodes={len(self.episodes)}, easy={self.easy!r}, start={self.start}, "
            f"warmup_epochs={self.warmup_epochs}, epoch={self.epoch} (pool {self.pool_size(self.epoch)} "
            f"episodes), seed={self.seed}, rank={self.rank}, world_size={self.world_size})"
        )



class CurriculumWeightedSampler(Sampler):
    """A soft curriculum: every epoch draws ``num_samples`` frames (with replacement) from all selected
    episodes, weighted towards the easy ones by a per-episode score, the weighting fading to uniform
    over frames by ``warmup_epochs``.

    Schedule (``E`` selected episodes ranked easy -> hard as in :class:`CurriculumSampler`, episode
    of rank ``r`` at ``u = r / (E - 1)``, ``u = 0`` when ``E == 1``; epoch ``e >= 0``)::

        beta(e) = 0                                          if warmup_epochs == 0
        beta(e) = beta0 * max(0, 1 - e / warmup_epochs)      otherwise
        p(frame) ∝ exp(-beta(e) * u(episode of the frame))

    so the easiest episode's frames are ``exp(beta0)`` times as likely as the hardest's at epoch 0, and
    from epoch ``warmup_epochs`` on every frame is equally likely. Draws come from
    ``numpy.random.default_rng([seed, epoch]).choice``; ranks take disjoint draws (strided sharding,
    as :class:`prf.sampling.WeightedSampler`), so a frame can appear on two ranks. Every epoch has
    ``num_samples`` positions (``fixed_length``: usable with Grain and Keras).

    Args:
        dataset, scores, column, easy: as :class:`CurriculumSampler`.
        beta0: the log odds of the easiest over the hardest episode's frames at epoch 0 (>= 0).
        warmup_epochs: epochs until the draws are uniform (``0``: uniform from the start).
        num_samples: draws per epoch over all ranks (default: the number of selected frames).
        episodes, predicate, seed, rank, world_size, drop_last: as :class:`prf.sampling.Sampler`.

    Attributes:
        episodes, scores, ranking: as :class:`CurriculumSampler`.

    Raises:
        SamplerError: as :class:`CurriculumSampler`; ``beta0 < 0`` or not finite.
    """

    resume_params = ("beta0", "warmup_epochs", "easy", "ranking_sha1")

    def __init__(
        self,
        dataset: Any,
        scores: Any,
        *,
        column: str | None = None,
        easy: str = "low",
        beta0: float = 3.0,
        warmup_epochs: int = 10,
        num_samples: int | None = None,
        episodes: Iterable[int] | None = None,
        predicate: Callable[[Any], bool] | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ):
        if isinstance(beta0, bool) or not isinstance(beta0, (int, float)) or not math.isfinite(beta0) or beta0 < 0:
            raise SamplerError(f"beta0 must be a finite number >= 0, got {beta0!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, (int, np.integer)) or warmup_epochs < 0:
            raise SamplerError(f"warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
        if easy not in ("low", "high"):
            raise SamplerError(f"easy must be 'low' or 'high', got {easy!r}")
        sel = _Selection(dataset, episodes, predicate)
        n = sel.positions.size if num_samples is None else num_samples
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SamplerError(f"num_samples must be None or an int >= 1, got {num_samples!r}")
        super().__init__(int(n), seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
        self.episodes = sel.ids
        self.easy = easy
        self.beta0 = float(beta0)
        self.warmup_epochs = int(warmup_epochs)
        self.positions = sel.positions
        self.scores = _episode_scores(dataset, sel.ids, scores, column)
        ids = np.asarray(sel.ids, dtype=np.int64)
        order = np.lexsort((ids, self.scores if easy == "low" else -self.scores))
        self.ranking = ids[order].tolist()
        self.ranking_sha1 = hashlib.sha1(np.asarray(self.ranking, dtype="<i8").tobytes()).hexdigest()
        u = np.empty(len(ids), dtype=np.float64)
        u[order] = np.arange(len(ids)) / max(len(ids) - 1, 1)
        self._u_frame = np.repeat(u, sel.lengths)

    def beta(self, epoch: int) -> float:
        """``beta(epoch)`` of the schedule."""
        if self.warmup_epochs == 0:
            return 0.0
        return self.beta0 * max(0.0, 1.0 - int(epoch) / self.warmup_epochs)

    def probabilities(self, epoch: int) -> np.ndarray:
        """``float64 [N]``: the draw probability of each selected frame (``positions``) at ``epoch``."""
        w = np.exp(-self.beta(epoch) * self._u_frame)
        return w / w.sum()

    def global_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(epoch)])
        draw = rng.choice(self.positions.size, size=self.num_samples, replace=True, p=self.probabilities(epoch))
        return self.positions[draw].astype(np.int64)

def _as_float(values: Sequence[Any], what: str) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise SamplerError(f"{what}: score {v!r} is not a number") from None
    return out


def _column_list(table: Any, name: str) -> list[Any]:
    col = table[name]
    if hasattr(col, "to_pylist"):  # pyarrow
        return col.to_pylist()
    if hasattr(col, "tolist"):  # pandas / numpy
        return col.tolist()
    return list(col)


def _episode_scores(dataset: Any, ids: list[int], scores: Any, column: str | None) -> np.ndarray:
    """``float64 [E]``: the score of each selected episode (``ids`` ascending)."""
    if isinstance(scores, str):
        if scores not in EPISODE_COLUMNS:
            raise SamplerError(
                f"scores={scores!r} is not an episodes-table column ({', '.join(EPISODE_COLUMNS)}); pass a "
                f"table (prf.score_episodes(ds), a prf.sql result) with column=, a mapping or an array"
            )
        table = dataset.meta.episodes
        values = _as_float([getattr(table[e], scores) for e in ids], f"episodes column {scores!r}")
        return _check_finite(values, ids, f"episodes column {scores!r}")
    names = getattr(scores, "column_names", None)
    if names is None and hasattr(scores, "columns") and hasattr(scores, "__getitem__") and not isinstance(scores, Mapping):
        names = [str(c) for c in scores.columns]  # a pandas DataFrame
    if names is not None:
        names = list(names)
        if "episode_index" not in names:
            raise SamplerError(f"the scores table has no episode_index column (columns: {names})")
        if column is None:
            rest = [c for c in names if c != "episode_index"]
            if len(rest) != 1:
                raise SamplerError(f"the scores table has columns {rest} besides episode_index: name one with column=")
            column = rest[0]
        if column not in names:
            raise SamplerError(f"the scores table has no column {column!r} (columns: {names})")
        eps = _column_list(scores, "episode_index")
        vals = _as_float(_column_list(scores, column), f"scores column {column!r}")
        mapping: dict[int, float] = {}
        for e, v in zip(eps, vals.tolist()):
            if e is None:
                continue
            if int(e) in mapping:
                raise SamplerError(f"the scores table has episode_index {int(e)} twice")
            mapping[int(e)] = v
        return _from_mapping(mapping, ids, f"scores column {column!r}")
    if isinstance(scores, Mapping):
        mapping = {}
        for k, v in scores.items():
            mapping[int(k)] = _as_float([v], f"the score of episode {k}")[0]
        return _from_mapping(mapping, ids, "scores")
    values = _as_float(list(np.asarray(scores, dtype=object).reshape(-1)), "scores")
    if values.size != len(ids):
        raise SamplerError(f"{values.size} scores for {len(ids)} selected episodes (one per episode, ascending)")
    return _check_finite(values, ids, "scores")


def _from_mapping(mapping: Mapping[int, float], ids: list[int], what: str) -> np.ndarray:
    missing = [e for e in ids if e not in mapping]
    if missing:
        raise SamplerError(
            f"{what}: {len(missing)} selected episode(s) have no score ({missing[:20]}); score them or leave "
            f"them out with episodes="
        )
    return _check_finite(np.array([mapping[e] for e in ids], dtype=np.float64), ids, what)


def _check_finite(values: np.ndarray, ids: list[int], what: str) -> np.ndarray:
    bad = np.isnan(values)
    if bad.any():
        eps = [ids[i] for i in np.flatnonzero(bad)[:20].tolist()]
        raise SamplerError(
            f"{what}: the score of {int(bad.sum())} episode(s) is missing or NaN ({eps}); fill it or leave "
            f"them out with episodes="
        )
    return values
