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
    x, _mu, _sd, eps, fis = _frame_vectors(meta, by)
    return x, eps, fis


def _frame_vectors(meta, by: Sequence[str]):
    """:func:`frame_vectors` and the per-dimension ``mean``, ``std`` (float64 [D]) it normalized with."""
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
    return x, mu, sd, np.concatenate(eps), np.concatenate(fis)


def _key(meta, by: Sequence[str]) -> str:
    h = hashlib.sha1(str(Path(meta.root).resolve()).encode())
    h.update(repr(list(by)).encode())
    for e in sorted({meta.path(ep.data_path) for ep in meta.episodes.values()}):
        if e.is_file():
            st = e.stat()
            h.update(f"{e.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _require_usearch() -> None:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        raise ImportError("approximate search needs usearch: pip install 'prf[query]' (or pass exact=True)") from None


def _check_k(root: Any, k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise QueryError(f"{root}: k must be an int >= 1, got {k!r}")


def _new_ann_index(ndim: int):
    from usearch.index import Index

    return Index(ndim=ndim, metric="l2sq", dtype="f32", connectivity=16, expansion_add=128, expansion_search=64)


def _ann_index(x: np.ndarray, path: Path, threads: int = 1):
    """The usearch HNSW index of ``x`` cached at ``path`` (loaded when it holds ``len(x)`` vectors,
    else built with ``threads`` threads, ``0``: all cores, and saved atomically)."""
    _require_usearch()
    index = _new_ann_index(x.shape[1])
    if path.is_file():
        index.load(str(path))
        if len(index) == len(x):
            return index
        index = _new_ann_index(x.shape[1])
    index.add(np.arange(len(x), dtype=np.uint64), x, threads=int(threads))
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


class SimilarityIndex:
    """Nearest frames of a dataset by z-normalized ``by`` features, built (or loaded) once and queried
    many times: the vectors are read and normalized in the constructor, the usearch index loaded from
    the cache (or built and cached) at the first search; each :meth:`query` / :meth:`search` is then one
    index search (under 1 ms at 1M frames, BENCHMARKS.md) instead of :func:`similar`'s full re-read per
    call.

    Args:
        source: a dataset root, :class:`prf.DatasetMeta` or :class:`prf.Dataset`.
        by: the non-camera features whose concatenated values are compared.
        exact: exact search (NumPy; no index, no usearch) instead of the approximate index.
        cache_dir: where the index is cached (default :func:`similar_cache_dir`); a cached index is
            reused while the dataset's data files keep their size and mtime.
        threads: index build threads (``0``: all cores). ``1`` (default) builds the same graph every
            time; more threads build faster with a graph that can differ from build to build.

    Attributes:
        vectors: ``float32 [N, D]``, the normalized vectors, in data-file order.
        mean, std: ``float64 [D]``, the normalization (``std`` 1 where a dimension is constant).
        episode_index, frame_index: ``int64 [N]``, the frame of each vector.

    Raises:
        QueryError: a ``by`` key is not a non-camera feature, or no data file is present.
        ImportError: usearch is missing (``pip install 'prf[query]'``) and ``exact`` is false.
    """

    __slots__ = ("root", "by", "exact", "vectors", "mean", "std", "episode_index", "frame_index", "_index",
                 "_index_path", "_threads", "_span", "_keys", "_order")

    def __init__(self, source: Any, *, by: Sequence[str] = ("observation.state",), exact: bool = False,
                 cache_dir: str | Path | None = None, threads: int = 1):
        meta = _meta_of(source)
        self.root, self.by, self.exact = meta.root, list(by), bool(exact)
        self.vectors, self.mean, self.std, self.episode_index, self.frame_index = _frame_vectors(meta, self.by)
        self._span = int(self.frame_index.max()) + 1
        self._keys = self.episode_index * self._span + self.frame_index
        self._order = np.argsort(self._keys, kind="stable")
        self._index = None
        self._index_path = None if self.exact else Path(cache_dir or similar_cache_dir()) / f"{_key(meta, self.by)}.usearch"
        self._threads = int(threads)
        if not self.exact:
            _require_usearch()

    def __len__(self) -> int:
        return len(self.vectors)

    def row(self, episode: int, frame: int) -> int:
        """The row of frame ``frame`` (its ``frame_index``) of episode ``episode`` in :attr:`vectors`.

        Raises:
            QueryError: no such frame in the present data files.
        """
        key = int(episode) * self._span + int(frame)
        j = int(np.searchsorted(self._keys, key, sorter=self._order))
        if not (0 <= frame < self._span) or j >= len(self._order) or self._keys[self._order[j]] != key:
            raise QueryError(f"{self.root}: episode {episode}, frame {frame} is not a frame of the present data files")
        return int(self._order[j])

    def _nearest(self, q: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        if self.exact:
            return exact_neighbours(self.vectors, q, want)
        if self._index is None:
            self._index = _ann_index(self.vectors, self._index_path, self._threads)
        keys = np.zeros((len(q), want), np.int64)
        dist = np.zeros((len(q), want))
        counts = np.zeros(len(q), np.int64)
        for j, m in enumerate([self._index.search(q[0], want)] if len(q) == 1 else self._index.search(q, want)):
            n = counts[j] = min(len(m.keys), want)
            keys[j, :n] = np.asarray(m.keys, np.int64)[:n]
            dist[j, :n] = np.sqrt(np.maximum(np.asarray(m.distances, np.float64)[:n], 0.0))
        short = np.flatnonzero(counts < want)
        if short.size:  # the graph search found fewer than asked (rare): those queries answered exactly
            keys[short], dist[short] = exact_neighbours(self.vectors, q[short], want)
        return keys, dist

    def query(self, episode: int, frame: int, k: int = 10) -> pa.Table:
        """The ``k`` frames nearest to frame ``frame`` of episode ``episode``, the frame itself left out.

        Returns:
            ``pyarrow.Table``: ``episode_index``, ``frame_index`` (int64), ``distance`` (float64, in
            dataset std units), ascending by distance.

        Raises:
            QueryError: the frame is not present, or ``k < 1``.
        """
        _check_k(self.root, k)
        row = self.row(episode, frame)
        rows, dist = self._nearest(self.vectors[row:row + 1], min(k + 1, len(self)))
        rows, dist = rows[0], dist[0]
        keep = rows != row
        return self._table(rows[keep][:k], dist[keep][:k])

    def search(self, values: Any, k: int = 10) -> pa.Table:
        """The ``k`` frames nearest to each query in ``values``: ``[M, D]`` (or ``[D]``) raw values of the
        ``by`` features concatenated in order (normalized here with :attr:`mean` / :attr:`std`).

        Returns:
            ``pyarrow.Table``: ``query`` (int64, the row of ``values``), ``episode_index``, ``frame_index``,
            ``distance``; per query ascending by distance.

        Raises:
            QueryError: ``values`` does not have ``D`` columns, or ``k < 1``.
        """
        _check_k(self.root, k)
        q = np.atleast_2d(np.asarray(values, np.float64))
        if q.ndim != 2 or q.shape[1] != self.vectors.shape[1]:
            raise QueryError(f"{self.root}: search values of shape {np.shape(values)}; expected [M, "
                             f"{self.vectors.shape[1]}] (the {self.by} values concatenated)")
        q = ((q - self.mean) / self.std).astype(np.float32)
        rows, dist = self._nearest(q, min(k, len(self)))
        t = self._table(rows.reshape(-1), dist.reshape(-1))
        return t.add_column(0, "query", pa.array(np.repeat(np.arange(len(q), dtype=np.int64), rows.shape[1])))

    def _table(self, rows: np.ndarray, dist: np.ndarray) -> pa.Table:
        return pa.table({"episode_index": pa.array(self.episode_index[rows]),
                         "frame_index": pa.array(self.frame_index[rows]), "distance": pa.array(dist, pa.float64())})

    def __repr__(self) -> str:
        return (f"SimilarityIndex(root={str(self.root)!r}, by={self.by}, frames={len(self)}, "
                f"{'exact' if self.exact else 'usearch HNSW'})")


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
    z-normalized ``by`` features; the query frame itself is left out. One call reads every frame's
    vector and loads (or builds) the index: for many queries, build one :class:`SimilarityIndex`.

    Returns:
        ``pyarrow.Table`` with ``episode_index``, ``frame_index``, ``distance`` (Euclidean, dataset std
        units), ascending by distance.

    Raises:
        QueryError: the episode/frame is not present, a ``by`` key is not a non-camera feature, or
            ``k < 1``.
        ImportError: usearch is missing (``pip install 'prf[query]'``) and ``exact`` is false.
    """
    meta = _meta_of(source)
    _check_k(meta.root, k)
    return SimilarityIndex(meta, by=by, exact=exact, cache_dir=cache_dir).query(episode, frame, k)
