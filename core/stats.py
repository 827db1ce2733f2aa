"""Feature statistics in LeRobot's layout: ``min``, ``max``, ``mean``, ``std``, ``count`` and quantiles
``q01``, ``q10``, ``q50``, ``q90``, ``q99``.

Numeric features reduce over frames (axis 0) and keep their feature shape (scalars become ``[1]``).
Camera features are per channel on values scaled to ``[0, 1]``, shaped ``[C, 1, 1]`` as LeRobot's
``compute_episode_stats`` stores them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import StatsError
from .format.layout import episodes_files

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def feature_stats(values: np.ndarray, *, is_camera: bool = False, quantiles: str = "exact") -> dict[str, np.ndarray]:
    """Statistics of one feature over the frames of ``values``.

    Args:
        values: ``[N, ...]`` numeric values, or ``uint8 [N, H, W, C]`` frames when ``is_camera``.
        quantiles: ``"exact"`` (``numpy.quantile``) or ``"histogram"`` (LeRobot's estimate from a
            5000-bin histogram over ``[min, max]``, see :func:`histogram_quantiles`).

    Returns:
        ``{stat: float64 array}``; ``count`` is ``int64 [1]``.
    """
    v = np.asarray(values)
    if is_camera and v.dtype == np.uint8 and quantiles == "histogram":
        st = _uint8_channel_stats(v, list(QUANTILES.values()))
        out = {k: st[k].reshape(v.shape[-1], 1, 1) for k in ("min", "max", "mean", "std")}
        out["count"] = np.array([v.shape[0]], dtype=np.int64)
        for name in QUANTILES:
            out[name] = st[name].reshape(v.shape[-1], 1, 1)
        return out
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
    if quantiles == "histogram":
        qs = histogram_quantiles(x, list(QUANTILES.values()))
    elif quantiles == "exact" and is_camera and v.dtype == np.uint8:
        qs = _uint8_exact_quantiles(v, list(QUANTILES.values()))  # = np.quantile(x, ...), without the sort
    elif quantiles == "exact":
        qs = np.quantile(x, list(QUANTILES.values()), axis=0)
    else:
        raise ValueError(f"quantiles must be 'exact' or 'histogram', got {quantiles!r}")
    for j, name in enumerate(QUANTILES):
        out[name] = qs[j].reshape(keep)
    return out


def aggregate_stats(per_episode: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, np.ndarray]]:
    """Combine per-episode statistics into dataset statistics (as LeRobot's ``aggregate_stats``):
    min of mins, max of maxes, count-weighted mean, pooled variance, count-weighted quantiles (a
    quantile only where every episode has it); keys in sorted order. See
    :meth:`EpisodeStatsColumns.aggregate`, which this calls."""
    return EpisodeStatsColumns.from_dicts(list(per_episode)).aggregate()


def stats_to_json(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stats with arrays turned into nested lists (for ``stats.json``)."""
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


HISTOGRAM_BINS = 5000


def histogram_quantiles(x: np.ndarray, qs: Sequence[float], bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """Quantiles per column of ``x [N, D]`` estimated as LeRobot's ``RunningQuantileStats`` does for one
    batch: a ``bins``-bin histogram over ``[min - 1e-10, max + 1e-10]``, the first bin whose cumulative
    count reaches ``q * N``, linear interpolation inside it. With fewer than 2 rows every quantile is
    the mean (as LeRobot). Resolution: one bin, ``(max - min) / bins``.

    Returns:
        ``float64 [len(qs), D]``.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    out = np.empty((len(qs), d), dtype=np.float64)
    if n < 2:
        out[:] = x.mean(axis=0) if n else np.nan
        return out
    for j in range(d):
        col = x[:, j]
        edges = np.linspace(col.min() - 1e-10, col.max() + 1e-10, bins + 1)
        hist, _ = np.histogram(col, bins=edges)
        out[:, j] = _quantiles_from_histogram(hist, edges, n, qs)
    return out


def _quantiles_from_histogram(hist: np.ndarray, edges: np.ndarray, n: int, qs: Sequence[float]) -> np.ndarray:
    cum = np.cumsum(hist)
    bins = hist.size
    out = np.empty(len(qs), dtype=np.float64)
    for i, q in enumerate(qs):
        target = q * n
        k = int(np.searchsorted(cum, target))
        if k == 0:
            out[i] = edges[0]
        elif k >= bins:
            out[i] = edges[-1]
        else:
            before = cum[k - 1]
            inside = cum[k] - before
            out[i] = edges[k] if inside == 0 else edges[k] + (target - before) / inside * (edges[k + 1] - edges[k])
    return out


def _uint8_exact_quantiles(frames: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """``float64 [len(qs), C]``: ``np.quantile(frames / 255, qs, axis=0)`` (method "linear") per channel of
    ``uint8 [..., C]`` frames, from 256-value counts instead of a sort of every pixel: the order
    statistics are read off the cumulative counts and interpolated with NumPy's own formula (virtual
    index ``(n - 1) q``, ``a + (b - a) g``, or ``b - (b - a)(1 - g)`` for ``g >= 0.5``), so the values
    are the same bits."""
    c = frames.shape[-1]
    flat = np.ascontiguousarray(frames).reshape(-1, c)
    n = flat.shape[0]
    q = np.asarray(qs, dtype=np.float64)
    virtual = (n - 1) * q
    prev = np.floor(virtual)
    gamma = virtual - prev
    lo_rank = np.clip(prev, 0, n - 1).astype(np.int64)
    hi_rank = np.clip(prev + 1, 0, n - 1).astype(np.int64)
    out = np.empty((len(q), c))
    for j in range(c):
        cum = np.cumsum(np.bincount(flat[:, j], minlength=256))
        a = np.searchsorted(cum, lo_rank, side="right").astype(np.float64) / 255.0
        b = np.searchsorted(cum, hi_rank, side="right").astype(np.float64) / 255.0
        d = b - a
        out[:, j] = np.where(gamma >= 0.5, b - d * (1 - gamma), a + d * gamma)
    return out


def _uint8_channel_stats(frames: np.ndarray, qs: Sequence[float], bins: int = HISTOGRAM_BINS) -> dict[str, np.ndarray]:
    """Per-channel stats of ``uint8 [..., C]`` frames on the ``[0, 1]`` scale from 256-value counts
    (exact mean/std/min/max; quantiles as :func:`histogram_quantiles` on the raw values / 255)."""
    c = frames.shape[-1]
    flat = np.ascontiguousarray(frames).reshape(-1, c)
    n = flat.shape[0]
    values = np.arange(256, dtype=np.float64)
    res = {name: np.empty(c) for name in ("min", "max", "mean", "std")}
    qv = np.empty((len(qs), c))
    for j in range(c):
        counts = np.bincount(flat[:, j], minlength=256).astype(np.float64)
        present = np.flatnonzero(counts)
        mean = counts @ values / n
        var = counts @ (values - mean) ** 2 / n
        lo, hi = float(present[0]), float(present[-1])
        res["min"][j], res["max"][j], res["mean"][j], res["std"][j] = lo, hi, mean, np.sqrt(var)
        if n < 2:
            qv[:, j] = mean
            continue
        edges = np.linspace(lo - 1e-10, hi + 1e-10, bins + 1)
        idx = np.clip(np.searchsorted(edges, values[present], side="right") - 1, 0, bins - 1)
        hist = np.bincount(idx, weights=counts[present], minlength=bins)
        qv[:, j] = _quantiles_from_histogram(hist, edges, n, qs)
    out = {k: v / 255.0 for k, v in res.items()}
    for i, name in enumerate(QUANTILES):
        out[name] = qv[i] / 255.0
    return out


# ---- stored statistics ----------------------------------------------------------------------------
def _as_arrays(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, d in stats.items():
        if not isinstance(d, Mapping):
            continue
        out[key] = {
            name: np.asarray(v, dtype=np.int64 if name == "count" else np.float64)
            for name, v in d.items()
            if v is not None
        }
    return out


def read_episode_stats(meta: Any) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """Per-episode statistics stored with a dataset: v3.0's ``stats/<key>/<stat>`` columns of
    ``meta/episodes``, v2.1's ``meta/episodes_stats.jsonl``; ``{}`` when there are none (v2.0).

    Returns:
        ``{episode_index: {key: {stat: ndarray}}}`` (``count`` ``int64``, other stats ``float64``).

    Raises:
        StatsError: a stats file cannot be read.
    """
    root = Path(meta.root)
    out: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    if getattr(meta, "is_v3", False):
        import pyarrow.parquet as pq

        for f in episodes_files(root):
            try:
                names = pq.read_schema(f).names
                cols = [c for c in names if c.startswith("stats/")]
                if not cols:
                    continue
                table = pq.read_table(f, columns=["episode_index"] + cols, page_checksum_verification=True)
            except Exception as e:  # noqa: BLE001 - any read failure becomes a StatsError naming the file
                raise StatsError(f"{f}: cannot read the per-episode stats columns ({e})") from None
            eps = table.column("episode_index").to_pylist()
            for c in cols:
                _, rest = c.split("/", 1)
                key, stat = rest.rsplit("/", 1)
                for e, v in zip(eps, table.column(c).to_pylist()):
                    if v is not None:
                        out.setdefault(int(e), {}).setdefault(key, {})[stat] = np.asarray(
                            v, dtype=np.int64 if stat == "count" else np.float64
                        )
        return out
    path = root / "meta" / "episodes_stats.jsonl"
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    out[int(row["episode_index"])] = _as_arrays(row["stats"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise StatsError(f"{path}:{n}: malformed episode stats row ({e})") from None
    return out


class EpisodeStatsColumns:
    """Per-episode statistics of ``n`` episodes held as columns, for datasets of many episodes
    (100k episodes are ~25M small arrays as ``{key: {stat: ndarray}}`` dicts; here, a few arrays).

    Attributes:
        n: number of episodes (rows).
        stats: ``{key: {stat: ndarray [n, *shape]}}`` (``count`` ``int64 [n, 1]``, others ``float64``);
            rows where the key is absent hold NaN (count 0).
        present: ``{key: bool [n]}``: the episode stores stats for that key.
        leaf: ``{key: {stat: Arrow type name}}`` the ``stats/*`` column is written with (``"double"``,
            ``"int64"``, ``"bool"``: as read from ``meta/episodes``, where LeRobot stores the min/max
            of integer and boolean features in their own type; default ``count`` int64, others double).
    """

    __slots__ = ("n", "stats", "present", "leaf")

    def __init__(self, n: int, stats: dict[str, dict[str, np.ndarray]], present: dict[str, np.ndarray],
                 leaf: dict[str, dict[str, str]] | None = None):
        self.n, self.stats, self.present = n, stats, present
        self.leaf = leaf or {}

    @classmethod
    def from_dicts(cls, per_episode: Sequence[Mapping[str, Mapping[str, Any]]]) -> "EpisodeStatsColumns":
        """From one ``{key: {stat: array}}`` per episode; a key keeps the stats every episode that has
        it stores."""
        n = len(per_episode)
        keys = list(dict.fromkeys(k for st in per_episode for k in st))
        stats: dict[str, dict[str, np.ndarray]] = {}
        present: dict[str, np.ndarray] = {}
        for k in keys:
            rows = [i for i, st in enumerate(per_episode) if k in st]
            names = [s for s in per_episode[rows[0]][k] if all(s in per_episode[i][k] for i in rows)]
            stats[k], present[k] = {}, np.zeros(n, dtype=bool)
            present[k][rows] = True
            for s in names:
                vals = np.stack([np.asarray(per_episode[i][k][s], dtype=np.float64) for i in rows])
                stats[k][s] = _scatter(vals, rows, n, s)
        return cls(n, stats, present)

    @classmethod
    def concat(cls, parts: Sequence["EpisodeStatsColumns"]) -> "EpisodeStatsColumns":
        """Rows of ``parts`` one after the other (a key or stat some parts lack is absent there)."""
        n = sum(p.n for p in parts)
        keys = list(dict.fromkeys(k for p in parts for k in p.stats))
        stats: dict[str, dict[str, np.ndarray]] = {}
        present: dict[str, np.ndarray] = {}
        for k in keys:
            have = [p for p in parts if k in p.stats]
            names = [s for s in have[0].stats[k] if all(s in p.stats[k] for p in have)]
            present[k] = np.concatenate([p.present[k] if k in p.stats else np.zeros(p.n, bool) for p in parts])
            stats[k] = {}
            for s in names:
                shape = have[0].stats[k][s].shape[1:]
                stats[k][s] = np.concatenate([
                    p.stats[k][s] if k in p.stats else _scatter(np.zeros((0, *shape)), [], p.n, s) for p in parts])
        leaf: dict[str, dict[str, str]] = {}
        for p in reversed(parts):  # the first part's types win
            for k, d in p.leaf.items():
                leaf.setdefault(k, {}).update(d)
        return cls(n, stats, present, leaf)

    def take(self, rows: Sequence[int] | np.ndarray) -> "EpisodeStatsColumns":
        rows = np.asarray(rows, dtype=np.int64)
        return EpisodeStatsColumns(len(rows), {k: {s: v[rows] for s, v in d.items()} for k, d in self.stats.items()},
                                   {k: v[rows] for k, v in self.present.items()}, self.leaf)

    def select(self, keys: Iterable[str]) -> "EpisodeStatsColumns":
        keep = [k for k in keys if k in self.stats]
        return EpisodeStatsColumns(self.n, {k: self.stats[k] for k in keep}, {k: self.present[k] for k in keep},
                                   self.leaf)

    def row(self, i: int) -> dict[str, dict[str, np.ndarray]]:
        """Episode ``i``'s stats as ``{key: {stat: ndarray}}`` (its present keys)."""
        return {k: {s: (v[i].astype(np.int64) if s == "count" else v[i]) for s, v in d.items()}
                for k, d in self.stats.items() if self.present[k][i]}

    def aggregate(self) -> dict[str, dict[str, np.ndarray]]:
        """Dataset statistics from these episodes, by LeRobot's ``aggregate_stats`` rules: min of mins,
        max of maxes, count-weighted mean, pooled variance, count-weighted quantiles; keys sorted."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for k in sorted(self.stats):
            d, rows = self.stats[k], self.present[k]
            if not rows.any() or "count" not in d:
                continue
            counts = d["count"][rows].reshape(int(rows.sum()), -1)[:, 0].astype(np.float64)  # [1] or scalar
            w = counts / counts.sum()

            def wsum(name: str) -> np.ndarray:
                return np.tensordot(w, d[name][rows], axes=1)

            mean = wsum("mean")
            agg = {
                "min": d["min"][rows].min(axis=0),
                "max": d["max"][rows].max(axis=0),
                "mean": mean,
                "std": np.sqrt(np.tensordot(w, d["std"][rows] ** 2 + (d["mean"][rows] - mean) ** 2, axes=1)),
                "count": np.array([int(counts.sum())], dtype=np.int64),
            }
            for q in QUANTILES:
                if q in d:
                    agg[q] = wsum(q)
            out[k] = agg
        return out

    def arrow_columns(self, keys: Sequence[str]) -> dict[str, Any]:
        """``stats/{key}/{stat}`` columns for ``meta/episodes`` as LeRobot writes them: nested lists
        shaped like the feature, values in :attr:`leaf`'s type (default float64, ``count`` int64);
        null where the episode has no stats for the key."""
        import pyarrow as pa

        out: dict[str, Any] = {}
        for k in keys:
            if k not in self.stats:
                continue
            mask = ~self.present[k]
            for s, v in self.stats[k].items():
                t = self.leaf.get(k, {}).get(s) or ("int64" if s == "count" else "double")
                if t != "double":
                    v = np.where(np.isnan(v), 0, v).astype(np.int64 if t == "int64" else np.bool_ if t == "bool"
                                                           else np.float64)
                out[f"stats/{k}/{s}"] = _nested_list(v, mask, pa)
        return out


def _scatter(vals: np.ndarray, rows: Sequence[int], n: int, stat: str) -> np.ndarray:
    out = np.full((n, *vals.shape[1:]), 0.0 if stat == "count" else np.nan)
    if len(rows):
        out[np.asarray(rows, dtype=np.int64)] = vals
    return out


def _nested_list(v: np.ndarray, null: np.ndarray, pa: Any) -> Any:
    """``v [n, d1, d2, ...]`` as an Arrow list<list<...>> column (rows in ``null`` null)."""
    arr = pa.array(v.reshape(-1))
    for size in reversed(v.shape[2:]):
        arr = pa.ListArray.from_arrays(pa.array(np.arange(0, len(arr) + 1, size, dtype=np.int32)), arr)
    inner = v.shape[1] if v.ndim > 1 else 1
    offsets = pa.array(np.arange(0, v.shape[0] * inner + 1, inner, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, arr, mask=pa.array(null) if null.any() else None)


def read_episode_stats_columns(meta: Any, episodes: Sequence[int] | None = None) -> EpisodeStatsColumns:
    """Stored per-episode statistics (as :func:`read_episode_stats`) of ``episodes`` (default: all, in
    the episodes table's order) as columns; a v3.0 ``meta/episodes`` is read column-wise (no Python
    object per episode). Episodes without stored stats have every key absent.

    Raises:
        StatsError: a stats file cannot be read, or an episode is not in the dataset.
    """
    eps = np.asarray(list(meta.episodes) if episodes is None else list(episodes), dtype=np.int64)
    if not getattr(meta, "is_v3", False):
        per = read_episode_stats(meta)
        return EpisodeStatsColumns.from_dicts([per.get(int(e), {}) for e in eps]) if len(eps) else \
            EpisodeStatsColumns(0, {}, {})
    index, full = _stored_stats_columns(Path(meta.root))
    if not len(index) or not full.stats:
        return EpisodeStatsColumns(len(eps), {}, {})
    order = np.argsort(index, kind="stable")
    pos = np.minimum(np.searchsorted(index[order], eps), len(index) - 1)
    found = index[order][pos] == eps
    out = full.take(np.where(found, order[pos], 0))
    if not found.all():
        for k, d in out.stats.items():
            out.present[k] = out.present[k] & found
            for stat, v in d.items():
                v[~found] = 0.0 if stat == "count" else np.nan
    return out


#: ``meta/episodes`` stats of the datasets read last: (root, file signature) -> (episode_index, columns)
_STORED: dict[tuple[str, tuple], tuple[np.ndarray, EpisodeStatsColumns]] = {}
_STORED_MAX_BYTES = 32 * 2**20  # larger stats tables are read each time, not kept


def _stored_stats_columns(root: Path) -> tuple[np.ndarray, EpisodeStatsColumns]:
    """Every row's stored ``stats/*`` of a v3.0 dataset (its ``episode_index`` column, and the stats as
    columns); kept for the last few datasets while their ``meta/episodes`` files are unchanged (a
    split reads one source's stats once for all its parts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = episodes_files(root)
    sig = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    hit = _STORED.get((str(root), sig))
    if hit is not None:
        return hit
    tables = []
    for f in files:
        try:
            names = pq.read_schema(f).names
            cols = [c for c in names if c.startswith("stats/")]
            tables.append(pq.read_table(f, columns=["episode_index"] + cols, page_checksum_verification=True))
        except Exception as e:  # noqa: BLE001 - any read failure becomes a StatsError naming the file
            raise StatsError(f"{f}: cannot read the per-episode stats columns ({e})") from None
    table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({"episode_index": []})
    index = table.column("episode_index").to_numpy().astype(np.int64)
    n = len(index)
    stats: dict[str, dict[str, np.ndarray]] = {}
    present: dict[str, np.ndarray] = {}
    leaf: dict[str, dict[str, str]] = {}
    for c in table.column_names:
        if not c.startswith("stats/") or not n:
            continue
        key, stat = c.split("/", 1)[1].rsplit("/", 1)
        vals, ok, leaf.setdefault(key, {})[stat] = _list_column_to_numpy(table.column(c).combine_chunks(), c)
        stats.setdefault(key, {})[stat] = np.where(ok.reshape(-1, *([1] * (vals.ndim - 1))), vals,
                                                   0.0 if stat == "count" else np.nan)
        present[key] = present.get(key, np.ones(n, bool)) & ok
    out = (index, EpisodeStatsColumns(n, stats, present, leaf))
    if sum(v.nbytes for d in stats.values() for v in d.values()) <= _STORED_MAX_BYTES:
        if len(_STORED) >= 4:
            _STORED.pop(next(iter(_STORED)))
        _STORED[(str(root), sig)] = out
    return out


def _list_column_to_numpy(arr: Any, name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """A (nested) list column of equal-shaped rows as ``float64 [n, *shape]``, its non-null mask and
    the Arrow type name of its values."""
    import pyarrow as pa

    n = len(arr)
    ok = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not ok.all():
        arr = arr.filter(pa.array(ok))
    shape: list[int] = []
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        lengths = arr.value_lengths().to_numpy(zero_copy_only=False) if len(arr) else np.zeros(0, np.int64)
        if len(lengths) and (lengths != lengths[0]).any():
            raise StatsError(f"{name}: per-episode stats of different shapes")
        shape.append(int(lengths[0]) if len(lengths) else 1)
        arr = arr.flatten()
    leaf = str(arr.type) if str(arr.type) in ("int64", "bool") else "double"
    flat = arr.to_numpy(zero_copy_only=False).astype(np.float64)
    out = np.zeros((n, *shape))
    if ok.any():
        out[ok] = flat.reshape(int(ok.sum()), *shape)
    return out, ok, leaf


def dataset_stats(dataset: Any, episodes: Iterable[int] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """The stored statistics of a dataset's selected episodes (see :meth:`prf.Dataset.stats`)."""
    meta = dataset.meta
    selected = [int(e) for e in dataset.episodes]
    if episodes is not None:
        want = sorted({int(e) for e in episodes})
        unknown = [e for e in want if e not in set(selected)]
        if unknown:
            raise StatsError(f"{meta.root}: stats of episode(s) {unknown[:20]}, which are not in the dataset's selection")
        selected = want
    whole = set(selected) == set(meta.episodes)
    stored = meta.stats()
    if whole and stored:
        return _as_arrays(stored)
    cols = read_episode_stats_columns(meta, selected)
    have = np.zeros(cols.n, dtype=bool)
    for ok in cols.present.values():
        have |= ok
    if cols.n and have.all():
        return cols.aggregate()
    if stored:
        warnings.warn(
            f"{meta.root}: no per-episode stats for the selected episodes; returning meta/stats.json, which "
            f"covers all {len(meta.episodes)} episodes (use prf.compute_stats(dataset) for the selection)",
            stacklevel=3,
        )
        return _as_arrays(stored)
    raise StatsError(
        f"{meta.root}: the dataset stores no statistics (no meta/stats.json, no per-episode stats); "
        f"compute them with prf.compute_stats(dataset)"
    )


# ---- computing statistics -------------------------------------------------------------------------
def lerobot_sample_indices(length: int) -> np.ndarray:
    """Which frames of an episode of ``length`` frames LeRobot's ``compute_episode_stats`` reads for
    camera stats: ``clip(int(length ** 0.75), 100, 10000)`` frames (all when fewer than 100),
    evenly spaced and rounded."""
    lo = min(100, length)
    num = max(lo, min(int(length**0.75), 10_000))
    return np.round(np.linspace(0, length - 1, num)).astype(np.int64)


def lerobot_downsample(frames: np.ndarray) -> np.ndarray:
    """Frames ``[N, H, W, C]`` strided as LeRobot's ``auto_downsample_height_width`` (target 150 px,
    only when the larger side is >= 300 px)."""
    h, w = frames.shape[1:3]
    if max(h, w) < 300:
        return frames
    k = int(w / 150) if w > h else int(h / 150)
    return frames[:, ::k, ::k]


def compute_stats(
    dataset: Any,
    *,
    episodes: Iterable[int] | None = None,
    per_episode: bool = False,
    progress: bool = True,
) -> Any:
    """Compute feature statistics as LeRobot's ``compute_episode_stats`` + ``aggregate_stats`` do.

    Per episode: numeric features over all frames (per element; ``float64``), cameras per channel on
    ``[0, 1]`` over the frames LeRobot samples (:func:`lerobot_sample_indices`, strided by
    :func:`lerobot_downsample`), quantiles ``q01..q99`` from LeRobot's 5000-bin histogram
    (:func:`histogram_quantiles`). Then aggregated over episodes (count-weighted mean, pooled std, min
    of mins, max of maxes, count-weighted quantiles). Camera frames are decoded from the videos, so
    camera stats differ slightly from stats LeRobot computed on the frames before encoding.

    Args:
        dataset: a :class:`prf.Dataset` (its ``delta_timestamps`` windows are ignored).
        episodes: a subset of the dataset's episodes (default: all of them).
        per_episode: also return the per-episode stats.
        progress: show a tqdm bar over episodes.

    Returns:
        ``{key: {stat: ndarray}}`` in LeRobot's layout (see :func:`feature_stats`), or
        ``(stats, {episode_index: stats})`` with ``per_episode``.

    Raises:
        StatsError: an episode is not in the dataset.
    """
    from tqdm.auto import tqdm

    meta = dataset.meta
    ids = [int(e) for e in dataset.episodes]
    if episodes is None:
        chosen = ids
    else:
        want = {int(e) for e in episodes}
        unknown = sorted(want - set(ids))
        if unknown:
            raise StatsError(f"{meta.root}: compute_stats for episode(s) {unknown[:20]}, which are not in the dataset")
        chosen = [e for e in ids if e in want]
    ordinal = {e: i for i, e in enumerate(ids)}
    keys = []
    for k, f in meta.features.items():
        if not f.is_camera and f.dtype != "string":
            keys.append(k)
    for k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        if k not in keys:
            keys.append(k)
    cameras = list(getattr(dataset, "cameras", []))
    frames_ds = dataset
    if cameras and getattr(dataset, "delta_timestamps", None):
        # the dataset's own class (no import of prf.dataset here: it imports this module for ds.stats())
        frames_ds = type(dataset)(meta, episodes=ids, cameras=cameras, backend=dataset.backend, tolerance_s=dataset.tolerance_s)
    starts = np.asarray(dataset.episode_starts)
    lengths = np.asarray(dataset.episode_lengths)
    per: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    columns = {k: np.asarray(dataset.column(k)) for k in keys}  # gathered once (column() builds a new array)
    for e in tqdm(chosen, desc=f"stats {Path(meta.root).name}", unit="episode", disable=not progress):
        o = ordinal[e]
        s, n = int(starts[o]), int(lengths[o])
        ep: dict[str, dict[str, np.ndarray]] = {}
        for k in keys:
            col = columns[k][s : s + n]
            if col.dtype == object:
                continue
            ep[k] = feature_stats(col, quantiles="histogram")
        if cameras and n:
            pos = s + lerobot_sample_indices(n)
            batch = frames_ds.get_batch(pos)
            for c in cameras:
                frames = lerobot_downsample(np.asarray(batch[c]))
                ep[c] = feature_stats(frames, is_camera=True, quantiles="histogram")
        per[e] = ep
    agg = aggregate_stats([per[e] for e in chosen])
    return (agg, per) if per_episode else agg
