"""JAX adapter: prf datasets as Grain data sources and pipelines, batches as ``jax.Array``.

- :class:`DataSource`: a Grain ``RandomAccessDataSource`` of samples (``__len__``, thread-safe and
  deterministic ``__getitem__``, ``__repr__``, picklable; Grain's batched read, where Grain uses it,
  decodes each video file once for the whole request).
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

Importing ``prf.jax`` changes nothing process-wide. Grain's worker processes need absl's flags parsed:
:func:`map_dataset` and :func:`data_loader` (``worker_count > 0``) mark them parsed with their
defaults when nothing parsed them (:func:`use_absl_flag_defaults`, also callable directly).

Install with ``pip install prf[jax]`` (the monorepo bundles this adapter) or, over a core-only prf,
``pip install ./adapters/jax`` (``prf-jax``). Registered as the ``jax`` adapter plugin (entry-point
group ``prf.adapters``): ``ds.loader(..., output="jax")`` yields ``jax.Array`` batches.
"""

from __future__ import annotations

try:
    import grain  # noqa: F401
    import jax  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without jax/grain
    raise ImportError("prf.jax needs JAX and Grain: pip install 'prf[jax]'") from e

from typing import Any

from prf.loading import ConvertedLoader, Loader

from ._convert import collate, to_jax
from ._order import Sampler
from ._pipelines import data_loader, map_dataset, use_absl_flag_defaults
from ._source import DataSource


def wrap_loader(inner: Loader) -> ConvertedLoader:
    """A :class:`prf.Loader` whose batches are ``jax.Array`` dicts (:func:`to_jax`, default device);
    length, epochs and state are the loader's. What ``ds.loader(..., output="jax")`` returns."""
    return ConvertedLoader(inner, to_jax, "prf.jax.loader")


def convert_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """The adapter-plugin protocol's conversion (prf._plugins): :func:`to_jax` to the default device."""
    return to_jax(batch)


__all__ = ["DataSource", "Sampler", "map_dataset", "data_loader", "collate", "to_jax", "use_absl_flag_defaults",
           "wrap_loader", "convert_batch"]
