"""MLX adapter: prf batches as ``mlx.core.array`` dicts.

- :func:`loader`: prf's threaded loader (:class:`prf.Loader`, every option: ``shuffle``, ``seed``,
  ``drop_last``, ``num_workers``, ``prefetch``, ``sampler``, ``rank``, ``world_size``) yielding batches
  of ``mx.array``; same length, epochs (``set_epoch``) and resumable state (``state_dict``).
- :func:`to_mlx`: one NumPy batch or sample as ``mx.array`` values.

Arrays keep prf's layout and dtypes: cameras ``uint8 [B, H, W, C]`` (``[B, T, H, W, C]`` with a
window; MLX's convolutions are channels-last too), ``float32``/``int64`` features, ``bool``
``{key}_is_pad``; ``task`` stays a ``list[str]``. MLX runs on Apple silicon and, with the
``mlx[cpu]`` wheel, on Linux CPUs.

Install with ``pip install prf[mlx]`` (the monorepo bundles this adapter) or, over a core-only prf,
``pip install ./adapters/mlx`` (the ``prf-mlx`` distribution). Registered as the ``mlx`` adapter plugin
(entry-point group ``prf.adapters``): ``ds.loader(..., output="mlx")`` is :func:`wrap_loader`.
"""

from __future__ import annotations

try:
    import mlx.core as mx
except ImportError as e:  # pragma: no cover - exercised only without mlx
    raise ImportError("prf.mlx needs MLX: pip install 'prf[mlx]' (on Linux this installs mlx[cpu])") from e

from pathlib import Path
from typing import Any

import numpy as np

import prf as _prf
from prf.loading import ConvertedLoader

_ZERO_COPY: bool | None = None  # does this MLX build import NumPy memory without a copy?


def zero_copy_supported() -> bool:
    """Whether the installed MLX can wrap NumPy memory without copying (``mx.asarray(a, copy=False)``).

    Unified-memory builds can; MLX's Linux CPU build (0.32) cannot and copies (``mx.array``)."""
    global _ZERO_COPY
    if _ZERO_COPY is None:
        try:
            mx.asarray(np.zeros(4, np.uint8), copy=False)
            _ZERO_COPY = True
        except (TypeError, ValueError, RuntimeError, AttributeError):
            _ZERO_COPY = False
    return _ZERO_COPY


def _convert(v: np.ndarray) -> mx.array:
    if zero_copy_supported():
        try:
            return mx.asarray(v, copy=False)
        except ValueError:  # read-only or non-contiguous memory: fall back to a copy
            pass
    return mx.array(v)


def to_mlx(batch: dict[str, Any]) -> dict[str, Any]:
    """Every NumPy array of a batch or sample as an ``mx.array`` (same shape and dtype).

    Every dtype maps to the MLX dtype of the same name (``uint8``, ``bool``, ``int64``, ``float32``...).
    Strings (``task``) pass through as ``str`` / ``list[str]``.
    """
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            out[k] = _convert(v)
        elif isinstance(v, np.generic) and v.dtype.kind in "biuf":
            out[k] = mx.array(v)
        elif isinstance(v, np.ndarray):
            out[k] = v.tolist()
        else:
            out[k] = v
    return out


def loader(source: str | Path | _prf.Dataset, batch_size: int = 1, *, open_kwargs: dict[str, Any] | None = None,
           **loader_kwargs: Any) -> "Loader":
    """A stream of ``mx.array`` batches over a dataset.

    Args:
        source: a dataset folder / Hub repo id (opened with ``open_kwargs``), or a :class:`prf.Dataset`.
        batch_size: samples per batch.
        open_kwargs: :func:`prf.open_dataset` options (``delta_timestamps``, ``episodes``, ...).
        **loader_kwargs: :meth:`prf.Dataset.loader` options (``shuffle``, ``seed``, ``drop_last``,
            ``num_workers``, ``prefetch``, ``sampler``, ``rank``, ``world_size``, ``transform``, ...).

    Returns:
        a :class:`Loader`; ``for batch in it`` gives ``{key: mx.array [B, ...]}`` plus ``task``.
    """
    return Loader(_prf.as_dataset(source, **(open_kwargs or {})).loader(batch_size, **loader_kwargs))


class Loader(ConvertedLoader):
    """Wraps a :class:`prf.Loader`: the same batches, length, epochs and state, values as ``mx.array``."""

    def __init__(self, inner: Any):
        super().__init__(inner, to_mlx, "prf.mlx.Loader")


# the adapter-plugin protocol (prf._plugins)
convert_batch = to_mlx
wrap_loader = Loader

__all__ = ["loader", "Loader", "to_mlx", "zero_copy_supported", "convert_batch", "wrap_loader"]
