"""``prf.score_episodes``: per-episode quality scores (one row per episode, a ``pyarrow.Table``).

The names of the first five follow PyRoboFrames' episode quality scoring (``state_variance``,
``action_magnitude``, ``motion_smoothness``, ``sharpness``, ``diversity``); the formulas are the ones
below (PyRoboFrames does not specify them). ``s`` is ``observation.state`` ``[T, D]``, ``a`` is
``action`` ``[T, D]`` of one episode ordered by ``frame_index``; ``mu``/``sigma`` are the dataset-wide
per-dimension mean/std of the present episodes (a first pass over the data files); ``fps`` is info.json's.

============================ ======================================================== ==================
column                       formula                                                  units
============================ ======================================================== ==================
``length``                   rows of the episode                                      frames
``duration_s``               ``length / fps``                                         s
``state_variance``           ``mean_d var_t(s[:, d])`` (population variance)          state units^2
``action_magnitude``         ``mean_t ||a_t||_2``                                     action units
``motion_smoothness``        jerk: ``mean_t ||diff(a, 3)_t||_2 * fps^3`` (third       action units / s^3
                             finite difference; higher = less smooth; null if T < 4)
``idle_fraction``            fraction of steps t=1..T-1 with ``max_d |s_t - s_{t-1}|_d  fraction [0, 1]
                             / sigma_d < idle_tol`` (dims with sigma_d = 0 ignored;
                             ``action`` when there is no state)
``dropped_frames``           ``sum_t max(0, round(dt_t * fps) - 1)`` over timestamp   frames
                             steps ``dt_t`` (frames missing from the grid)
``duplicated_frames``        steps with ``dt_t < 0.5 / fps`` (repeated timestamps)     frames
``gripper_events``           open/close transitions of every state (else action)      events
                             element whose name contains "gripper": hysteresis at
                             ``lo + (0.5 -+ 0.1) * (hi - lo)`` of its dataset range;
                             null when no name says gripper
``diversity``                mean Euclidean distance from the episode's descriptor    dataset std units
                             (mean over t of ``(x - mu) / sigma``, x = [s, a]) to the
                             other episodes' descriptors; null with one episode
``sharpness/{camera}``       mean over ``samples`` evenly spaced frames of the         grey level^2
                             variance of the 4-neighbour Laplacian of the grey image
                             (0.299 R + 0.587 G + 0.114 B, 0-255; interior pixels),
                             Pech-Pacheco et al. 2000 "Diatom autofocusing in
                             brightfield microscopy"
``frozen_fraction/{camera}`` fraction of ``samples`` consecutive frame pairs (t, t+1)  fraction [0, 1]
                             whose mean absolute difference is < ``frozen_tol``
                             (identical frames up to coding noise)
============================ ======================================================== ==================

Memory: the data files are read in record batches (``batch_rows`` rows) and one episode at a time;
only per-episode descriptors are kept, so a 10M-frame dataset scores in bounded memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from ..format import DatasetMeta
from ._frames import iter_batches, iter_episodes


def _meta_of(source: Any) -> DatasetMeta:
    if isinstance(source, DatasetMeta):
        return source
    meta = getattr(source, "meta", None)
    if isinstance(meta, DatasetMeta):
        return meta
    return DatasetMeta(Path(source).expanduser())


def _gripper_dims(meta: DatasetMeta, key: str | None) -> list[int]:
    if key is None or meta.features[key].names is None:
        return []
    return [i for i, n in enumerate(meta.features[key].names) if "gripper" in n.lower()]


def _moments(meta: DatasetMeta, keys: list[str], batch_rows: int) -> dict[str, dict[str, np.ndarray]]:
    """Dataset-wide per-dimension mean, std, min, max of ``keys`` (one streaming pass)."""
    acc: dict[str, dict[str, np.ndarray]] = {}
    for _f, b in iter_batches(meta, keys, batch_rows):
        for k in keys:
            if k not in b or not len(b[k]):
                continue
            x = b[k].astype(np.float64).reshape(len(b[k]), -1)
            a = acc.setdefault(k, {"n": np.zeros(1), "sum": np.zeros(x.shape[1]), "sq": np.zeros(x.shape[1]),
                                   "min": np.full(x.shape[1], np.inf), "max": np.full(x.shape[1], -np.inf)})
            a["n"] += len(x)
            a["sum"] += x.sum(0)
            a["sq"] += np.square(x).sum(0)
            a["min"] = np.minimum(a["min"], x.min(0))
            a["max"] = np.maximum(a["max"], x.max(0))
    out = {}
    for k, a in acc.items():
        mean = a["sum"] / a["n"][0]
        var = np.maximum(a["sq"] / a["n"][0] - mean**2, 0.0)
        out[k] = {"mean": mean, "std": np.sqrt(var), "min": a["min"], "max": a["max"]}
    return out


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (kernel ``[[0,1,0],[1,-4,1],[0,1,0]]``) of a grey image
    ``float [H, W]`` over its interior pixels; 0.0 for images under 3x3."""
    g = np.asarray(gray, np.float64)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def _gray(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    if rgb.shape[-1] == 1:
        return rgb[..., 0]
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _hysteresis_events(x: np.ndarray, lo: float, hi: float) -> int:
    """Transitions between "open" (above ``lo + 0.6 (hi - lo)``) and "closed" (below ``lo + 0.4 (hi - lo)``)."""
    if hi <= lo or x.size < 2:
        return 0
    state = np.where(x > lo + 0.6 * (hi - lo), 1, np.where(x < lo + 0.4 * (hi - lo), -1, 0))
    s = state[state != 0]
    return int((s[1:] != s[:-1]).sum()) if s.size > 1 else 0


def _camera_scores(meta: DatasetMeta, backend, e: int, key: str, length: int, timestamps: np.ndarray,
                   samples: int, frozen_tol: float, tolerance_s: float) -> tuple[float, float]:
    ref = meta.episodes[e].videos[key]
    path = meta.path(ref.path)
    if not path.is_file() or length < 1:
        return float("nan"), float("nan")
    pos = np.unique(np.linspace(0, max(length - 2, 0), num=min(samples, max(length - 1, 1))).round().astype(np.int64))
    pairs = np.unique(np.concatenate([pos, np.minimum(pos + 1, length - 1)]))
    frames, _ = backend.decode(path, ref.from_timestamp + timestamps[pairs].astype(np.float64), tolerance_s)
    by_pos = {int(p): f for p, f in zip(pairs, frames)}
    sharp = float(np.mean([laplacian_variance(_gray(by_pos[int(p)])) for p in pos]))
    if length < 2:
        return sharp, float("nan")
    frozen = [np.abs(by_pos[int(p)].astype(np.int16) - by_pos[int(p) + 1].astype(np.int16)).mean() < frozen_tol
              for p in pos]
    return sharp, float(np.mean(frozen))


def score_episodes(
    source: Any,
    *,
    cameras: Iterable[str] | None = None,
    samples: int = 8,
    idle_tol: float = 1e-3,
    frozen_tol: float = 0.5,
    tolerance_s: float = 1e-4,
    batch_rows: int = 1 << 20,
) -> pa.Table:
    """Quality scores of every episode whose data file is present, one row per episode (columns and
    formulas in the module doc), sorted by ``episode_index``.

    Args:
        source: dataset folder, :class:`prf.DatasetMeta` or :class:`prf.Dataset`.
        cameras: video cameras to score (default: all; ``[]``: none, so no video is decoded).
        samples: frames (and frame pairs) decoded per episode and camera for the camera scores.
        idle_tol: per-step change, in dataset std units, under which a step counts as idle.
        frozen_tol: mean absolute pixel difference (0-255) under which two frames count as identical.
        tolerance_s: how far a decoded frame may be from the row's timestamp.
        batch_rows: rows per record batch read from the data files (the memory bound).

    Raises:
        MetadataError, DataFileError: bad metadata or an unreadable data file.
        VideoError, TimestampError: a sampled camera frame cannot be decoded.
    """
    meta = _meta_of(source)
    fps = float(meta.fps)
    s_key = "observation.state" if "observation.state" in meta.features else None
    a_key = "action" if "action" in meta.features else None
    vec_keys = [k for k in (s_key, a_key) if k is not None]
    cams = meta.video_keys if cameras is None else [c for c in cameras if c in meta.video_keys]
    mom = _moments(meta, vec_keys, batch_rows)
    g_key = s_key if _gripper_dims(meta, s_key) else (a_key if _gripper_dims(meta, a_key) else None)
    g_dims = _gripper_dims(meta, g_key)
    idle_key = s_key or a_key
    backend = None
    if cams:
        from ..decode import get_backend

        backend = get_backend("pyav")
    rows: dict[str, list] = {k: [] for k in (
        "episode_index", "length", "duration_s", "state_variance", "action_magnitude", "motion_smoothness",
        "idle_fraction", "dropped_frames", "duplicated_frames", "gripper_events")}
    for c in cams:
        rows[f"sharpness/{c}"] = []
        rows[f"frozen_fraction/{c}"] = []
    descriptors: list[np.ndarray] = []
    nan = float("nan")
    for e, d in iter_episodes(meta, ["timestamp", *vec_keys], batch_rows):
        n = int(d["frame_index"].size)
        rows["episode_index"].append(e)
        rows["length"].append(n)
        rows["duration_s"].append(n / fps)
        s = d[s_key].astype(np.float64).reshape(n, -1) if s_key in d else None
        a = d[a_key].astype(np.float64).reshape(n, -1) if a_key in d else None
        rows["state_variance"].append(float(s.var(0).mean()) if s is not None and n and s.shape[1] else nan)
        rows["action_magnitude"].append(float(np.linalg.norm(a, axis=1).mean()) if a is not None and n else nan)
        rows["motion_smoothness"].append(
            float(np.linalg.norm(np.diff(a, 3, axis=0), axis=1).mean() * fps**3) if a is not None and n >= 4 else nan)
        x = d.get(idle_key)
        if x is not None and n >= 2:
            sigma = mom[idle_key]["std"]
            live = sigma > 0
            if live.any():
                step = np.abs(np.diff(x.astype(np.float64).reshape(n, -1)[:, live], axis=0)) / sigma[live]
                rows["idle_fraction"].append(float((step.max(1) < idle_tol).mean()))
            else:
                rows["idle_fraction"].append(1.0)
        else:
            rows["idle_fraction"].append(nan)
        ts = d["timestamp"].astype(np.float64)
        dt = np.diff(ts)
        rows["dropped_frames"].append(int(np.maximum(np.rint(dt * fps) - 1, 0).sum()) if dt.size else 0)
        rows["duplicated_frames"].append(int((dt < 0.5 / fps).sum()))
        if g_key is not None and g_key in d:
            g = d[g_key].astype(np.float64).reshape(n, -1)
            lo, hi = mom[g_key]["min"], mom[g_key]["max"]
            rows["gripper_events"].append(sum(_hysteresis_events(g[:, i], lo[i], hi[i]) for i in g_dims))
        else:
            rows["gripper_events"].append(None)
        parts = []
        for k in vec_keys:
            if k in d and n:
                sd = np.where(mom[k]["std"] > 0, mom[k]["std"], 1.0)
                parts.append(((d[k].astype(np.float64).reshape(n, -1) - mom[k]["mean"]) / sd).mean(0))
        descriptors.append(np.concatenate(parts) if parts else np.zeros(0))
        for c in cams:
            sharp, frozen = _camera_scores(meta, backend, e, c, n, d["timestamp"], samples, frozen_tol, tolerance_s)
            rows[f"sharpness/{c}"].append(sharp)
            rows[f"frozen_fraction/{c}"].append(frozen)
    rows["diversity"] = _diversity(descriptors)
    order = np.argsort(np.asarray(rows["episode_index"], np.int64), kind="stable")
    types = {"episode_index": pa.int64(), "length": pa.int64(), "dropped_frames": pa.int64(),
             "duplicated_frames": pa.int64(), "gripper_events": pa.int64()}
    cols = {}
    for k, v in rows.items():
        v = [v[i] for i in order]
        t = types.get(k, pa.float64())
        if t == pa.float64():
            v = [None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x) for x in v]
        cols[k] = pa.array(v, t)
    return pa.table(cols)


def _diversity(desc: list[np.ndarray]) -> list[float]:
    """Mean distance from each descriptor to the others (null for a single episode), in blocks of
    rows so memory stays O(block x episodes)."""
    n = len(desc)
    if n < 2 or not desc[0].size:
        return [float("nan")] * n
    x = np.stack(desc)
    sq = (x * x).sum(1)
    out = np.empty(n)
    for i in range(0, n, 1024):
        blk = x[i:i + 1024]
        d2 = sq[i:i + 1024, None] + sq[None, :] - 2.0 * blk @ x.T
        dist = np.sqrt(np.maximum(d2, 0.0))
        dist[np.arange(len(blk)), np.arange(i, i + len(blk))] = 0.0
        out[i:i + 1024] = dist.sum(1) / (n - 1)
    return out.tolist()
