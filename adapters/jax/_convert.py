"""NumPy batches <-> samples, and NumPy -> ``jax.Array``: :func:`collate` (a Grain ``batch_fn``) and
:func:`to_jax`."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np


def split(batch: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """A prf batch (``[B, ...]`` arrays, ``task`` list[str]) as ``n`` samples."""
    return [{k: (v[j] if k == "task" else v[j, ...]) for k, v in batch.items()} for j in range(n)]


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a prf batch: arrays ``[B, ...]`` (``np.stack``), ``task`` as ``list[str]``.

    A Grain ``batch_fn``: ``ds.batch(32, batch_fn=prf.jax.collate)``.

    Raises:
        ValueError: no samples.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    out: dict[str, Any] = {}
    for k, v in samples[0].items():
        if isinstance(v, str):
            out[k] = [s[k] for s in samples]
        else:
            out[k] = np.stack([s[k] for s in samples])
    return out


def to_jax(batch: dict[str, Any], sharding: Any = None) -> dict[str, Any]:
    """A NumPy batch (or sample) as ``jax.Array`` values.

    Args:
        batch: ``{key: ndarray}`` from prf (strings such as ``task`` pass through as ``list[str]``).
        sharding: ``None``: ``jax.device_put`` to the default device. A ``jax.sharding.Sharding``:
            each value becomes a global array from this process's rows
            (``jax.make_array_from_process_local_data``), for multi-host data parallelism.

    Returns:
        ``{key: jax.Array}`` with the same shapes; dtypes as NumPy's except ``int64``/``float64`` ->
        ``int32``/``float32`` unless ``jax_enable_x64`` is set (JAX's canonical types).
    """
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, (np.ndarray, np.generic)) and v.dtype.kind in "biuf":
            if sharding is None:
                out[k] = jax.device_put(v)
            else:
                out[k] = jax.make_array_from_process_local_data(sharding, np.asarray(v))
        elif isinstance(v, np.ndarray):  # strings batched by Grain's default batch_fn
            out[k] = [str(x) for x in v.reshape(-1).tolist()]
        else:
            out[k] = v
    return out
