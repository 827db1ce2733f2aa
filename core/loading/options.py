"""Options shared by :class:`prf.Loader` and the framework adapters: frozen, validated, slotted
dataclasses, so one definition of each option (its type, default, allowed values, error text) serves
the loader and every adapter instead of keyword lists repeated in each.

- :class:`ReadOptions`: what a pass reads: ``batch_size``, ``shuffle``, ``seed``, ``drop_last``.
- :class:`ShardOptions`: this process's shard: ``rank``, ``world_size``, ``drop_last`` (of the
  shards, as ``DistributedSampler``), ``shard_mode``.
- :class:`DecodeOptions`: how batches are produced: ``num_workers``, ``prefetch``, ``decode_window``.

Every constructor validates its values and raises :class:`prf.errors.OptionsError` (a ``ValueError``)
naming the option, the value and the allowed values. :func:`merge_options` combines an option object
with a loader's keyword arguments (what ``Loader(...)`` does, and what adapters can call).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Mapping, get_args

from ..errors import OptionsError

ShardMode = Literal["strided", "blocked"]
SHARD_MODES: tuple[str, ...] = get_args(ShardMode)


def _int(name: str, value: Any, *, minimum: int | None = None, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        allowed = f"an int >= {minimum}" if minimum is not None else "an int"
        raise OptionsError(f"{name} must be {allowed}{' or None' if allow_none else ''}, got {value!r}")
    v = int(value.__index__()) if not isinstance(value, int) else int(value)
    if minimum is not None and v < minimum:
        raise OptionsError(f"{name} must be >= {minimum}{' or None' if allow_none else ''}, got {v}")
    return v


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise OptionsError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses normalise their own fields this way


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What one pass over the data delivers.

    Attributes:
        batch_size: samples per batch (>= 1).
        shuffle: a uniform shuffle per epoch (when no ``sampler`` is given).
        seed: seed of the shuffle and of the per-batch transform randomness (any int).
        drop_last: drop the epoch's last batch when it is incomplete.

    Raises:
        OptionsError: a value outside the allowed ones.
    """

    batch_size: int = 1
    shuffle: bool = False
    seed: int = 0
    drop_last: bool = False

    def __post_init__(self) -> None:
        _set(self, "batch_size", _int("batch_size", self.batch_size, minimum=1))
        _set(self, "shuffle", _bool("shuffle", self.shuffle))
        _set(self, "seed", _int("seed", self.seed))
        _set(self, "drop_last", _bool("drop_last", self.drop_last))


@dataclass(frozen=True, slots=True)
class ShardOptions:
    """This process's shard of every epoch (see :mod:`prf.sampling`).

    Attributes:
        rank, world_size: the shard; ``None``: from ``torch.distributed`` when initialised, else the
            ``RANK`` / ``WORLD_SIZE`` environment variables, else ``(0, 1)``.
        drop_last: cut the epoch's order to a multiple of ``world_size`` instead of padding it by
            repetition (``DistributedSampler``'s ``drop_last``).
        shard_mode: ``"strided"`` (rank r takes positions r, r + world_size, ...) or ``"blocked"``
            (the r-th contiguous block); ``None``: the sampler's own (blocked for the episode-chunk
            and episode-pool samplers, strided otherwise).

    Raises:
        OptionsError: a value outside the allowed ones, or ``rank >= world_size``.
    """

    rank: int | None = None
    world_size: int | None = None
    drop_last: bool = False
    shard_mode: ShardMode | None = None

    def __post_init__(self) -> None:
        _set(self, "rank", _int("rank", self.rank, minimum=0, allow_none=True))
        _set(self, "world_size", _int("world_size", self.world_size, minimum=1, allow_none=True))
        _set(self, "drop_last", _bool("drop_last", self.drop_last))
        if self.shard_mode is not None and self.shard_mode not in SHARD_MODES:
            raise OptionsError(f"shard_mode must be one of {SHARD_MODES} or None, got {self.shard_mode!r}")
        if self.rank is not None and self.world_size is not None and self.rank >= self.world_size:
            raise OptionsError(f"rank must be in 0 .. world_size - 1 = {self.world_size - 1}, got {self.rank}")


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """How a loader produces batches.

    Attributes:
        num_workers: decode threads (>= 0; 0: batches are assembled in the iterating thread). The
            threads are started by the first iterator and live until :meth:`prf.Loader.close` (or the
            loader is garbage collected), across epochs, like torch's ``persistent_workers=True``.
        prefetch: batches in flight per worker (>= 1).
        decode_window: batches planned and decoded together (>= 1); ``None``: ``2 * prefetch *
            max(1, num_workers)`` for decoding backends, ``max(1, num_workers)`` for copy-only ones
            (the frame cache).

    Raises:
        OptionsError: a value outside the allowed ones.
    """

    num_workers: int = 0
    prefetch: int = 2
    decode_window: int | None = None

    def __post_init__(self) -> None:
        _set(self, "num_workers", _int("num_workers", self.num_workers, minimum=0))
        _set(self, "prefetch", _int("prefetch", self.prefetch, minimum=1))
        _set(self, "decode_window", _int("decode_window", self.decode_window, minimum=1, allow_none=True))


_GROUPS: dict[str, type] = {"read": ReadOptions, "shard": ShardOptions, "decode": DecodeOptions}
#: loader keyword -> (option group, field); ``drop_last`` is the batches' (ReadOptions)
KEYWORDS: dict[str, tuple[str, str]] = {
    "batch_size": ("read", "batch_size"),
    "shuffle": ("read", "shuffle"),
    "seed": ("read", "seed"),
    "drop_last": ("read", "drop_last"),
    "rank": ("shard", "rank"),
    "world_size": ("shard", "world_size"),
    "shard_mode": ("shard", "shard_mode"),
    "num_workers": ("decode", "num_workers"),
    "prefetch": ("decode", "prefetch"),
    "decode_window": ("decode", "decode_window"),
}


def merge_options(group: str, given: Any, keywords: Mapping[str, Any]) -> Any:
    """The ``group`` options (``"read"``, ``"shard"``, ``"decode"``) from an option object and/or
    keywords (``None`` values are "not given").

    Raises:
        OptionsError: ``given`` is not the group's class, or a keyword sets a field the option object
            sets to another value.
        TypeError: ``given`` is of the wrong type.
    """
    cls = _GROUPS[group]
    if given is not None and not isinstance(given, cls):
        raise TypeError(f"{group}= takes a prf.loading.options.{cls.__name__}, got {type(given).__name__}")
    fields = {k: v for k, v in keywords.items() if v is not None and KEYWORDS.get(k, (None,))[0] == group}
    if given is None:
        return cls(**{KEYWORDS[k][1]: v for k, v in fields.items()})
    default = cls()
    clash = [k for k, v in fields.items()
             if getattr(given, KEYWORDS[k][1]) != getattr(default, KEYWORDS[k][1]) and getattr(given, KEYWORDS[k][1]) != v]
    if clash:
        raise OptionsError(
            f"{', '.join(clash)} given both as keyword(s) and in {group}={given!r} with other values; give each once"
        )
    return dataclasses.replace(given, **{KEYWORDS[k][1]: v for k, v in fields.items()})


__all__ = ["ReadOptions", "ShardOptions", "DecodeOptions", "ShardMode", "SHARD_MODES", "KEYWORDS", "merge_options"]
