"""Feature statistics in LeRobot's layout: ``min``, ``max``, ``mean``, ``std``, ``count`` and quantiles
``q01``, ``q10``, ``q50``, ``q90``, ``q99``.

Numeric features reduce over frames (axis 0) and keep their feature shape (scalars become ``[1]``).
Camera features are per channel on values scaled to ``[0, 1]``, shaped ``[C, 1, 1]`` as LeRobot's
``compute_episode_stats`` stores them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def feature_stats(values: np.ndarray, *, is_camera: bool = False) -> dict[str, np.ndarray]:
    """Statistics of one feature over the frames of ``values``.

    Args:
        values: ``[N, ...]`` numeric values, or ``uint8 [N, H, W, C]`` frames when ``is_camera``.

    Returns:
        ``{stat: float64 array}``; ``count`` is ``int64 [1]``.
    """
    v = np.asarray(values)
    if is_camera:
        x = v.astype(np.float64).reshape(-1, v.shape[-1]) / 255.0  # [N*H*W, C]
        keep = (v.shape[-1], 1, 1)
    else:
        x = v.astype(np.float64).reshape(v.shape[0], -1)
        keep = v.shape[1:] or (1,)
    out = {
        "min": x.min(axis=0).reshape(keep),
        "max": x.max(axis=0).reshape(keep),
        "mean": x.mean(axis=0).reshape(keep),
        "std": x.std(axis=0).reshape(keep),
        "count": np.array([v.shape[0]], dtype=np.int64),
    }
    qs = np.quantile(x, list(QUANTILES.values()), axis=0)
    for j, name in enumerate(QUANTILES):
        out[name] = qs[j].reshape(keep)
    return out


def aggregate_stats(per_episode: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, np.ndarray]]:
    """Combine per-episode statistics into dataset statistics (as LeRobot's ``aggregate_stats``):
    min of mins, max of maxes, count-weighted mean, pooled variance, count-weighted quantiles."""
    eps = list(per_episode)
    keys = sorted({k for e in eps for k in e})
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        parts = [e[key] for e in eps if key in e]
        counts = np.array([float(np.asarray(p["count"]).reshape(-1)[0]) for p in parts])
        w = counts / counts.sum()

        def wsum(name: str) -> np.ndarray:
            return sum(wi * np.asarray(p[name], dtype=np.float64) for wi, p in zip(w, parts))

        mean = wsum("mean")
        var = sum(
            wi * (np.asarray(p["std"], dtype=np.float64) ** 2 + (np.asarray(p["mean"], dtype=np.float64) - mean) ** 2)
            for wi, p in zip(w, parts)
        )
        agg = {
            "min": np.min([np.asarray(p["min"], dtype=np.float64) for p in parts], axis=0),
            "max": np.max([np.asarray(p["max"], dtype=np.float64) for p in parts], axis=0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": np.array([int(counts.sum())], dtype=np.int64),
        }
        for q in QUANTILES:
            if all(q in p for p in parts):
                agg[q] = wsum(q)
        out[key] = agg
    return out


def stats_to_json(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stats with arrays turned into nested lists (for ``stats.json``)."""
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}
