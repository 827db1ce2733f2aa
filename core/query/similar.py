"""``prf.similar``: nearest frames by z-normalized state and/or action, through a usearch HNSW index
(built once per dataset and feature set, cached under ``$PRF_CACHE/similar``), with exact search as the
reference.

Vectors: for each frame, the concatenation of the ``by`` features, each dimension z-normalized with the
dataset-wide mean and std of the present frames (dimensions with std 0 are left unscaled). Distance:
Euclidean in those units. Memory: ``frames x dims x 4`` bytes for the vectors (560 MB for 10M frames x
14 dims) plus the index.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ..errors import QueryError
from ._frames import iter_batches
from .scores import _meta_of


def similar_cache_dir() -> Path:
    """``$PRF_CACHE/similar``, else ``~/.cache/prf/similar``: cached nearest-neighbour indexes."""
    return Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf")) / "similar"


def frame_vectors(meta, by: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vectors float32 [N, D] z-normalized, episode_index int64 [N], frame_index int64 [N])`` of every
    present frame, in data-file order."""
    for k in by:
        f = meta.features.get(k)
        if f is None or f.is_camera:
            raise QueryError(f"{meta.root}: by={list(by)}: {k!r} is not a non-camera feature "
                             f"(features: {[x for x, y in meta.features.items() if not y.is_camera]})")
    vecs, eps, fis = [], [], []
    for _f, b in iter_batches(meta, ["episode_index", "frame_index", *by]):
        n = len(b["episode_index"])
        vecs.append(np.concatenate([b[k].astype(np.float32).reshape(n, -1) for k in by], axis=1))
        eps.append(b["episode_index"].astype(np.int64))
        fis.append(b["frame_index"].astype(np.int64))
    if not vecs:
        raise QueryError(f"{meta.root}: no data file is present")
    x = np.concatenate(vecs)
    mu = x.mean(0, dtype=np.float64)
    sd = x.std(0, dtype=np.float64)
    sd[sd == 0] = 1.0
    x = ((x - mu) / sd).astype(np.float32)
    return x, np.concatenate(eps), np.concatenate(fis)


def _key(meta, by: Sequence[str]) -> str:
    h = hashlib.sha1(str(Path(meta.root).resolve()).encode())
    h.update(repr(list(by)).encode())
    for e in sorted({meta.path(ep.data_path) for ep in meta.episodes.values()}):
        if e.is_file():
            st = e.stat()
            h.update(f"{e.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _ann_index(x: np.ndarray, path: Path):
    try:
        from usearch.index import Index
    except ImportError:
        raise ImportError("approximate search needs usearch: pip install 'prf[query]' (or pass exact=True)") from None
    index = Index(ndim=x.shape[1], metric="l2sq", dtype="f32", connectivity=16, expansion_add=128, expansion_search=64)
    if path.is_file():
        index.load(str(path))
        if len(index) == len(x):
            return index
        index = Index(ndim=x.shape[1], metric="l2sq", dtype="f32", connectivity=16, expansion_add=128,
                      expansion_search=64)
    index.add(np.arange(len(x), dtype=np.uint64), x, threads=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        index.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return index


def exact_neighbours(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` nearest vectors to each query ``q [M, D]`` by Euclidean distance (ties by row),
    and the distances: ``(int64 [M, k], float64 [M, k])``."""
    q = np.atleast_2d(q).astype(np.float64)
    out_i = np.empty((len(q), k), np.int64)
    out_d = np.empty((len(q), k))
    sq = (x.astype(np.float64) ** 2).sum(1)
    for j, v in enumerate(q):
        d2 = np.maximum(sq - 2.0 * (x @ v) + (v * v).sum(), 0.0)
        part = np.argpartition(d2, min(k, len(d2) - 1))[:k] if len(d2) > k else np.arange(len(d2))
        order = part[np.lexsort((part, d2[part]))]
        out_i[j, :len(order)] = order
        out_d[j, :len(order)] = np.sqrt(d2[order])
    return out_i, out_d


def similar(
    source: Any,
    *,
    episode: int,
    frame: int,
    k: int = 10,
    by: Sequence[str] = ("observation.state",),
    exact: bool = False,
    cache_dir: str | Path | None = None,
) -> pa.Table:
    """The ``k`` frames nearest to frame ``frame`` (its ``frame_index``) of episode ``episode``, by
    z-normalized ``by`` features; the query frame itself is left out.

    Returns:
        ``pyarrow.Table`` with ``episode_index``, ``frame_index``, ``distance`` (Euclidean, dataset std
        units), ascending by distance.

    Raises:
        QueryError: the episode/frame is not present, a ``by`` key is not a non-camera feature, or
            ``k < 1``.
        ImportError: usearch is missing (``pip install 'prf[query]'``) and ``exact`` is false.
    """
    meta = _meta_of(source)
    by = list(by)
    if k < 1:
        raise QueryError(f"{meta.root}: k must be >= 1, got {k}")
    x, eps, fis = frame_vectors(meta, by)
    hit = np.flatnonzero((eps == episode) & (fis == frame))
    if hit.size == 0:
        raise QueryError(f"{meta.root}: episode {episode}, frame {frame} is not a frame of the present data files")
    row = int(hit[0])
    want = min(k + 1, len(x))
    if exact:
        rows, dist = exact_neighbours(x, x[row], want)
        rows, dist = rows[0], dist[0]
    else:
        index = _ann_index(x, Path(cache_dir or similar_cache_dir()) / f"{_key(meta, by)}.usearch")
        m = index.search(x[row], want)
        rows = np.asarray(m.keys, np.int64)
        dist = np.sqrt(np.maximum(np.asarray(m.distances, np.float64), 0.0))
    keep = rows != row
    rows, dist = rows[keep][:k], dist[keep][:k]
    return pa.table({"episode_index": pa.array(eps[rows]), "frame_index": pa.array(fis[rows]),
                     "distance": pa.array(dist, pa.float64())})
