"""``RoboticsDataFrame``: the topics of a robot log as Arrow tables on one time axis (``log_time``,
``int64`` nanoseconds), with slicing, as-of alignment and resampling.

Every topic is an Arrow table whose first column is ``log_time`` (sorted ascending), as
:func:`prf.convert_log` writes them. :meth:`RoboticsDataFrame.align` and
:meth:`RoboticsDataFrame.resample` put every topic on one shared time index; such an *aligned* frame
turns into one wide table (``log_time`` + ``"{topic}/{column}"`` columns) with :meth:`to_arrow` /
:meth:`to_pandas`.

As-of matching is NumPy ``searchsorted`` on the sorted ``int64`` times plus one Arrow ``take`` per topic
(measured against polars' and DuckDB's as-of joins in ``benches/bench_ingest.py``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import DataFrameError, LogError
from ._sink import COMPRESSION, _StatsAccumulator
from .._atomic import replace_dir, temp_dir_for

DIRECTIONS = ("backward", "forward", "nearest")
METHODS = ("linear", "nearest", "previous")
#: the column holding, in an aligned/resampled topic, the log_time of the message each row came from.
SOURCE_TIME = "source_log_time"


class RoboticsDataFrame:
    """A time-indexed view of a robot log: ``{topic: pyarrow.Table}``, each with ``log_time`` first.

    Build one with :meth:`from_log` (convert a log in a temporary folder and load it),
    :meth:`from_converted` (a :func:`prf.convert_log` output folder, or a :meth:`save`\\ d frame) or
    from tables directly.

    Args:
        tables: ``{topic: table}``; each table needs an ``int64`` ``log_time`` column (ns). Tables not
            sorted by ``log_time`` are sorted (stably).
        metadata: free-form metadata (a converted log's ``metadata.json``).
        aligned: the tables share one time index (set by :meth:`align` and :meth:`resample`).

    Raises:
        DataFrameError: a table lacks an ``int64`` ``log_time`` column, or ``aligned`` tables differ in
            their times.
    """

    def __init__(self, tables: Mapping[str, pa.Table], *, metadata: Mapping[str, Any] | None = None,
                 aligned: bool = False):
        self._tables: dict[str, pa.Table] = {}
        self._times: dict[str, np.ndarray] = {}
        for topic, t in tables.items():
            if not isinstance(t, pa.Table):
                raise DataFrameError(f"topic {topic!r}: expected a pyarrow.Table, got {type(t).__name__}")
            if "log_time" not in t.column_names:
                raise DataFrameError(f"topic {topic!r}: no 'log_time' column (columns: {t.column_names[:8]})")
            if not pa.types.is_integer(t.schema.field("log_time").type):
                raise DataFrameError(f"topic {topic!r}: 'log_time' must be int64 nanoseconds, "
                                     f"got {t.schema.field('log_time').type}")
            if t.column("log_time").null_count:
                raise DataFrameError(f"topic {topic!r}: 'log_time' has nulls")
            times = np.asarray(t.column("log_time").to_numpy(), dtype=np.int64)
            if len(times) > 1 and np.any(times[1:] < times[:-1]):
                order = np.argsort(times, kind="stable")
                t, times = t.take(pa.array(order)), times[order]
            self._tables[topic] = t
            self._times[topic] = times
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.aligned = bool(aligned)
        self.report = None
        if self.aligned and self._tables:
            first = next(iter(self._times.values()))
            for topic, times in self._times.items():
                if not np.array_equal(times, first):
                    raise DataFrameError(f"aligned=True but topic {topic!r} has different log_time values")

    # ---- construction ------------------------------------------------------------------------------
    @classmethod
    def from_log(cls, path: str | Path, *, topics: Iterable[str] | None = None, start: int | None = None,
                 end: int | None = None, progress: bool = True) -> "RoboticsDataFrame":
        """Convert a log (see :func:`prf.convert_log`) in a temporary folder and load every converted
        topic into memory. The conversion report is kept as ``.report``.

        Raises:
            The errors of :func:`prf.convert_log`.
        """
        from .convert import convert_log

        with tempfile.TemporaryDirectory(prefix="prf-rdf-") as d:
            report = convert_log(path, Path(d) / "converted", topics=topics, start=start, end=end, progress=progress)
            df = cls.from_converted(Path(d) / "converted", memory_map=False)
        df.report = report
        return df

    @classmethod
    def from_converted(cls, directory: str | Path, *, memory_map: bool = True) -> "RoboticsDataFrame":
        """Load a folder written by :func:`prf.convert_log` or :meth:`save`.

        Raises:
            LogError: no ``metadata.json``, or it is malformed, or a topic file is missing.
        """
        from .convert import FORMAT_NAME, METADATA_FILE

        d = Path(directory)
        meta_path = d / METADATA_FILE
        if not meta_path.is_file():
            raise LogError(f"{d}: no {METADATA_FILE}; not a folder written by prf.convert_log or RoboticsDataFrame.save")
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as e:
            raise LogError(f"{meta_path}: not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME or not isinstance(meta.get("topics"), dict):
            raise LogError(f"{meta_path}: not a prf converted-log metadata file (format {meta.get('format')!r})")
        tables = {}
        for topic, entry in meta["topics"].items():
            f = entry.get("file")
            if not f:
                continue
            p = d / f
            if not p.is_file() or Path(f).name != f:
                raise LogError(f"{d}: the file {f!r} of topic {topic!r} is missing")
            tables[topic] = pq.read_table(p, memory_map=memory_map)
        return cls(tables, metadata=meta, aligned=bool(meta.get("aligned", False)))

    # ---- access --------------------------------------------------------------------------------------
    @property
    def topics(self) -> list[str]:
        """Topic names (those with a table)."""
        return list(self._tables)

    def __getitem__(self, topic: str) -> pa.Table:
        return self._tables[self._check_topic(topic)]

    def __contains__(self, topic: object) -> bool:
        return topic in self._tables

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def times(self, topic: str) -> np.ndarray:
        """``int64 [N]`` log times (ns) of ``topic``, ascending."""
        return self._times[self._check_topic(topic)]

    def _check_topic(self, topic: str) -> str:
        if topic not in self._tables:
            raise DataFrameError(f"unknown topic {topic!r}; topics: {self.topics}")
        return topic

    def time_range(self) -> tuple[int, int]:
        """``(first, last)`` log_time (ns) over all topics, both inclusive.

        Raises:
            DataFrameError: no topic has any row.
        """
        firsts = [int(t[0]) for t in self._times.values() if len(t)]
        lasts = [int(t[-1]) for t in self._times.values() if len(t)]
        if not firsts:
            raise DataFrameError("the frame has no messages: no time range")
        return min(firsts), max(lasts)

    def __repr__(self) -> str:
        rows = {t: len(x) for t, x in self._times.items()}
        return f"RoboticsDataFrame(topics={len(rows)}, rows={sum(rows.values())}, aligned={self.aligned})"

    # ---- operations ----------------------------------------------------------------------------------
    def slice(self, start_ns: int | None = None, end_ns: int | None = None) -> "RoboticsDataFrame":
        """Rows with ``start_ns <= log_time < end_ns`` in every topic (``None`` = open end)."""
        out = {}
        for topic, t in self._tables.items():
            times = self._times[topic]
            i0 = 0 if start_ns is None else int(np.searchsorted(times, start_ns, side="left"))
            i1 = len(times) if end_ns is None else int(np.searchsorted(times, end_ns, side="left"))
            out[topic] = t.slice(i0, max(0, i1 - i0))
        return self._derived(out, self.aligned)

    def align(self, reference_topic: str, tolerance_ns: int | None, direction: str = "backward", *,
              topics: Iterable[str] | None = None) -> "RoboticsDataFrame":
        """As-of join of every topic onto the reference topic's timestamps.

        For each reference time ``t``: ``"backward"`` takes the last message with ``log_time <= t``,
        ``"forward"`` the first with ``log_time >= t``, ``"nearest"`` the closer of the two (the earlier
        on a tie; among equal times the last one backward, the first forward). A match farther than
        ``tolerance_ns`` from ``t`` (``None``: no limit) gives a null row (NaN in pandas).

        Returns:
            An aligned frame: every topic has the reference's ``log_time``, a ``source_log_time``
            column (the matched message's log_time, null without a match) and its own columns.

        Raises:
            DataFrameError: unknown topic or direction, negative tolerance.
        """
        ref = self.times(reference_topic)
        if direction not in DIRECTIONS:
            raise DataFrameError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        tol = _check_tolerance(tolerance_ns)
        out = {}
        for topic in self._select(topics, must_include=None):
            idx = asof_indices(self._times[topic], ref, tol, direction)
            out[topic] = self._take(topic, idx, ref)
        return self._derived(out, True)

    def resample(self, period_ns: int, method: str = "linear", *, start: int | None = None, end: int | None = None,
                 tolerance_ns: int | None = None, topics: Iterable[str] | None = None) -> "RoboticsDataFrame":
        """Every topic on the grid ``start, start + period_ns, ...`` up to ``end`` (inclusive).

        ``method``: ``"linear"`` interpolates floating-point columns (scalars, fixed-size lists, and
        lists whose length is the same in every row) between the samples around each grid time and
        holds the previous sample's value for every other column (integers, strings, ...);
        ``"previous"`` takes the last sample at or before the grid time (zero-order hold);
        ``"nearest"`` the closest sample (the earlier on a tie). No extrapolation: grid times before a
        topic's first sample (and, for linear, after its last) are null. With ``tolerance_ns``, a grid
        time farther than that from the sample(s) it uses is null too.

        Args:
            period_ns: grid step (ns), > 0.
            start, end: grid bounds (ns); default :meth:`time_range`.

        Returns:
            An aligned frame (``log_time`` = the grid, ``source_log_time`` = the sample used, for linear
            the one at or before the grid time).

        Raises:
            DataFrameError: bad period, method or tolerance, or an empty frame without bounds.
        """
        if not isinstance(period_ns, (int, np.integer)) or period_ns <= 0:
            raise DataFrameError(f"period_ns must be a positive integer (ns), got {period_ns!r}")
        if method not in METHODS:
            raise DataFrameError(f"method must be one of {METHODS}, got {method!r}")
        tol = _check_tolerance(tolerance_ns)
        if start is None or end is None:
            lo, hi = self.time_range()
            start = lo if start is None else start
            end = hi if end is None else end
        if end < start:
            raise DataFrameError(f"end {end} is before start {start}")
        grid = np.arange(int(start), int(end) + 1, int(period_ns), dtype=np.int64)
        return self.resample_at(grid, method, tolerance_ns=tol, topics=topics)

    def resample_at(self, grid: np.ndarray, method: str = "linear", *, tolerance_ns: int | None = None,
                    topics: Iterable[str] | None = None) -> "RoboticsDataFrame":
        """:meth:`resample` onto explicit times: ``grid`` ``int64 [G]`` ns, ascending.

        Raises:
            DataFrameError: bad method or tolerance, or ``grid`` not ascending.
        """
        if method not in METHODS:
            raise DataFrameError(f"method must be one of {METHODS}, got {method!r}")
        tol = _check_tolerance(tolerance_ns)
        grid = np.asarray(grid, dtype=np.int64)
        if len(grid) > 1 and np.any(np.diff(grid) < 0):
            raise DataFrameError("grid times must be ascending")
        out = {}
        for topic in self._select(topics, must_include=None):
            times = self._times[topic]
            if method == "previous":
                out[topic] = self._take(topic, asof_indices(times, grid, tol, "backward"), grid)
            elif method == "nearest":
                out[topic] = self._take(topic, asof_indices(times, grid, tol, "nearest"), grid)
            else:
                out[topic] = self._linear(topic, grid, tol)
        return self._derived(out, True)

    # ---- output --------------------------------------------------------------------------------------
    def to_arrow(self, topic: str | None = None) -> pa.Table:
        """One topic's table, or (no ``topic``) one wide table for an aligned frame: ``log_time`` then
        ``"{topic}/{column}"`` for every topic's columns.

        Raises:
            DataFrameError: no ``topic`` and the frame is not aligned (and has more than one topic).
        """
        if topic is not None:
            return self[topic]
        if not self._tables:
            return pa.table({"log_time": pa.array([], pa.int64())})
        if not self.aligned and len(self._tables) > 1:
            raise DataFrameError("the topics have different timestamps: call align(...) or resample(...) first, "
                                 "or pass topic=")
        first = next(iter(self._tables.values()))
        cols, names = [first.column("log_time")], ["log_time"]
        for name, t in self._tables.items():
            for c in t.column_names:
                if c == "log_time":
                    continue
                cols.append(t.column(c))
                names.append(f"{name}/{c}")
        return pa.Table.from_arrays(cols, names=names)

    def to_pandas(self, topic: str | None = None) -> Any:
        """:meth:`to_arrow` as a ``pandas.DataFrame`` indexed by ``log_time`` (int64 ns); nulls become NaN
        (numeric) or None. Needs pandas."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise ImportError("RoboticsDataFrame.to_pandas needs pandas: pip install pandas") from None
        df = self.to_arrow(topic).to_pandas()
        return df.set_index("log_time")

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write the frame as a converted-log folder (one Parquet per topic, ``metadata.json``,
        ``stats.json``) that :meth:`from_converted` reads back; atomic (temporary folder, then rename).

        Raises:
            LogError: ``directory`` exists and ``overwrite`` is false.
        """
        from .._version import __version__
        from .convert import FORMAT_NAME, FORMAT_VERSION, METADATA_FILE, STATS_FILE, topic_file_name

        out = Path(directory)
        if out.exists() and not overwrite:
            raise LogError(f"{out}: already exists (pass overwrite=True to replace it)")
        tmp = temp_dir_for(out)
        tmp.mkdir(parents=True)
        try:
            used: set[str] = set()
            old = self.metadata.get("topics", {}) if isinstance(self.metadata.get("topics"), dict) else {}
            topics, stats = {}, {}
            for name, t in self._tables.items():
                f = topic_file_name(name, used)
                pq.write_table(t, tmp / f, compression=COMPRESSION)
                prev = old.get(name, {})
                topics[name] = {
                    "topic": name, "message_type": prev.get("message_type"), "encoding": prev.get("encoding"),
                    "schema_encoding": prev.get("schema_encoding"), "schema": prev.get("schema"),
                    "file": f, "count": t.num_rows, "columns": {fl.name: str(fl.type) for fl in t.schema},
                }
                acc = _StatsAccumulator()
                acc.update(t)
                stats[name] = acc.to_json()
            rng = None
            try:
                rng = list(self.time_range())
            except DataFrameError:
                pass
            meta = {
                "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created_by": f"prf {__version__}",
                "source": self.metadata.get("source"), "aligned": self.aligned, "time_range": rng, "topics": topics,
            }
            (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2))
            (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2))
            replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    # ---- helpers -------------------------------------------------------------------------------------
    def _derived(self, tables: dict[str, pa.Table], aligned: bool) -> "RoboticsDataFrame":
        df = RoboticsDataFrame(tables, metadata=self.metadata, aligned=aligned)
        df.report = self.report
        return df

    def _select(self, topics: Iterable[str] | None, must_include: str | None) -> list[str]:
        if topics is None:
            return self.topics
        chosen = [self._check_topic(t) for t in topics]
        if must_include is not None and must_include not in chosen:
            chosen.insert(0, must_include)
        return chosen

    def _take(self, topic: str, idx: np.ndarray, grid: np.ndarray) -> pa.Table:
        t = self._tables[topic]
        mask = idx < 0
        taken = t.take(pa.array(np.where(mask, 0, idx), mask=mask)) if len(t) else _null_rows(t.schema, len(idx))
        cols = [pa.array(grid, pa.int64()), taken.column("log_time")]
        names = ["log_time", SOURCE_TIME]
        for c in t.column_names:
            if c in ("log_time", SOURCE_TIME):
                continue
            cols.append(taken.column(c))
            names.append(c)
        return pa.Table.from_arrays(cols, names=names)

    def _linear(self, topic: str, grid: np.ndarray, tol: int | None) -> pa.Table:
        t, times = self._tables[topic], self._times[topic]
        n = len(times)
        if n == 0:
            return self._take(topic, np.full(len(grid), -1, dtype=np.int64), grid)
        left = np.searchsorted(times, grid, side="right") - 1
        li = np.clip(left, 0, n - 1)
        ri = np.clip(left + 1, 0, n - 1)
        exact = (left >= 0) & (times[li] == grid)
        valid = (left >= 0) & (exact | (left + 1 < n))
        if tol is not None:
            valid &= exact | (((grid - times[li]) <= tol) & ((times[ri] - grid) <= tol))
        between = valid & ~exact
        frac = np.zeros(len(grid), dtype=np.float64)
        dt = (times[ri] - times[li])[between].astype(np.float64)
        frac[between] = (grid - times[li])[between].astype(np.float64) / dt
        taken = self._take(topic, np.where(valid, left, -1), grid)
        cols, names = [], []
        for name in taken.column_names:
            col = taken.column(name)
            if name not in ("log_time", SOURCE_TIME):
                interp = _interpolate(t.column(name), li, np.where(between, ri, li), frac, valid)
                if interp is not None:
                    col = interp
            cols.append(col)
            names.append(name)
        return pa.Table.from_arrays(cols, names=names)


def _check_tolerance(tol: int | None) -> int | None:
    if tol is None:
        return None
    if not isinstance(tol, (int, np.integer)) or tol < 0:
        raise DataFrameError(f"tolerance_ns must be a non-negative integer (ns) or None, got {tol!r}")
    return int(tol)


def asof_indices(times: np.ndarray, query: np.ndarray, tolerance_ns: int | None, direction: str) -> np.ndarray:
    """For each query time, the index into sorted ``times`` of its as-of match, or -1.

    Args:
        times: ``int64 [N]`` ascending.
        query: ``int64 [Q]``.
        tolerance_ns: the largest allowed ``|time - query|`` (``None``: any).
        direction: ``"backward"`` (last ``time <= query``), ``"forward"`` (first ``time >= query``),
            ``"nearest"`` (closer of both; the backward one on a tie).

    Returns:
        ``int64 [Q]``.
    """
    times = np.asarray(times, dtype=np.int64)
    query = np.asarray(query, dtype=np.int64)
    n = len(times)
    if n == 0:
        return np.full(len(query), -1, dtype=np.int64)
    if direction in ("backward", "nearest"):
        b = np.searchsorted(times, query, side="right") - 1
        vb = b >= 0
        db = query - times[np.maximum(b, 0)]
        if tolerance_ns is not None:
            vb &= db <= tolerance_ns
        if direction == "backward":
            return np.where(vb, b, -1).astype(np.int64, copy=False)
    f = np.searchsorted(times, query, side="left")
    vf = f < n
    df = times[np.minimum(f, n - 1)] - query
    if tolerance_ns is not None:
        vf &= df <= tolerance_ns
    if direction == "forward":
        return np.where(vf, f, -1).astype(np.int64, copy=False)
    use_f = vf & (~vb | (df < db))
    return np.where(use_f, f, np.where(vb, b, -1)).astype(np.int64, copy=False)


def _null_rows(schema: pa.Schema, n: int) -> pa.Table:
    return pa.Table.from_arrays([pa.nulls(n, f.type) for f in schema], schema=schema)


def _float_matrix(col: pa.ChunkedArray) -> tuple[np.ndarray, str, int] | None:
    """``(float64 [N, K], kind, K)`` of a floating column (scalar, fixed-size list, equal-length list)."""
    t = col.type
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_floating(t):
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(-1, 1), "scalar", 1
    if (pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)) \
            and pa.types.is_floating(t.value_type):
        if arr.null_count:
            return None
        if pa.types.is_fixed_size_list(t):
            k = t.list_size
            kind = "fixed"
        else:
            lengths = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
            if len(lengths) == 0 or np.any(lengths != lengths[0]):
                return None
            k = int(lengths[0])
            kind = "list"
        flat = arr.flatten()
        m = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(len(arr), k)
        return m, kind, k
    return None


def _interpolate(col: pa.ChunkedArray, li: np.ndarray, ri: np.ndarray, frac: np.ndarray, valid: np.ndarray
                 ) -> pa.Array | None:
    """Linear interpolation ``v[li] + frac * (v[ri] - v[li])`` of a floating column (``v[li]`` exactly
    where ``frac`` is 0); rows not ``valid`` are null. ``None`` for columns that are not floating."""
    fm = _float_matrix(col)
    if fm is None:
        return None
    m, kind, k = fm
    v0, v1 = m[li], m[ri]
    f = frac[:, None]
    with np.errstate(invalid="ignore"):
        out = np.where(f == 0.0, v0, v0 + f * (v1 - v0))
    t = col.type
    value_type = t if kind == "scalar" else t.value_type
    out = out.astype(value_type.to_pandas_dtype(), copy=False)
    mask = ~valid
    if kind == "scalar":
        return pa.array(out[:, 0], type=value_type, mask=mask)
    values = pa.array(out.reshape(-1), type=value_type)
    if kind == "fixed":
        arr = pa.FixedSizeListArray.from_arrays(values, k)
    else:
        offsets = pa.array(np.arange(0, (len(out) + 1) * k, k, dtype=np.int32))
        arr = pa.ListArray.from_arrays(offsets, values, type=t if pa.types.is_list(t) else None)
    if mask.any():
        arr = pc.if_else(pa.array(mask), pa.nulls(len(arr), arr.type), arr)
    return arr
