"""Per-topic Parquet output: batches of flattened messages streamed to one file, with running stats.

A topic whose schema is known up front (ROS, protobuf) streams batches straight into a
``pyarrow.parquet.ParquetWriter``. A topic whose schema is inferred (JSON) writes each batch as a part
file; when the topic ends the parts' schemas are unified (ints widen to floats, conflicting columns
become JSON text) and the parts are copied into the topic's file. A topic whose messages arrived out of
``log_time`` order is sorted (stably) at the end, so every file is sorted by ``log_time``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._columns import TIME_COLUMNS, Flattener

_TIME_SCHEMA = [pa.field("log_time", pa.int64(), nullable=False), pa.field("publish_time", pa.int64(), nullable=False)]
COMPRESSION = "zstd"


class TopicSink:
    """Collect one topic's messages and write them to ``path``.

    Args:
        path: the topic's Parquet file.
        flattener: turns decoded messages into rows and rows into Arrow columns.
        work_dir: a scratch folder for part files (inferred schemas) and sorting.
        flush_rows, flush_bytes: a batch is written when it holds this many messages or raw bytes.
    """

    def __init__(self, path: Path, flattener: Flattener, work_dir: Path, *, flush_rows: int = 8192,
                 flush_bytes: int = 64 * 2**20):
        self.path, self.flattener, self.work_dir = Path(path), flattener, Path(work_dir)
        self.flush_rows, self.flush_bytes = flush_rows, flush_bytes
        self._rows: list[Any] = []
        self._log: list[int] = []
        self._pub: list[int] = []
        self._bytes = 0
        self._last = -(2**63)
        self.unsorted = False
        self.written = 0
        self.dropped = 0
        self.first_drop_error: str | None = None
        self.start: int | None = None
        self.end: int | None = None
        self._writer: pq.ParquetWriter | None = None
        self._parts: list[Path] = []
        self.stats = _StatsAccumulator()
        self.schema: pa.Schema | None = None

    def add(self, log_time: int, publish_time: int, msg: Any, nbytes: int) -> None:
        """Add one decoded message; raises whatever the flattener raises for a malformed message (the
        message is then not added)."""
        row = self.flattener.row(msg)
        self._rows.append(row)
        self._log.append(log_time)
        self._pub.append(publish_time)
        if log_time < self._last:
            self.unsorted = True
        self._last = log_time
        self._bytes += nbytes
        if len(self._rows) >= self.flush_rows or self._bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        body, dropped = self.flattener.to_table(self._rows)
        log, pub = self._log, self._pub
        if dropped:
            bad = {i for i, _ in dropped}
            log = [t for i, t in enumerate(log) if i not in bad]
            pub = [t for i, t in enumerate(pub) if i not in bad]
            self.dropped += len(dropped)
            self.first_drop_error = self.first_drop_error or dropped[0][1]
        table = pa.Table.from_arrays(
            [pa.array(log, pa.int64()), pa.array(pub, pa.int64()), *body.columns],
            schema=pa.schema(_TIME_SCHEMA + list(body.schema)),
        )
        self._rows, self._log, self._pub, self._bytes = [], [], [], 0
        self._write(table)

    def _write(self, table: pa.Table) -> None:
        n = table.num_rows
        if n:
            lt = table.column("log_time")
            lo, hi = pc.min(lt).as_py(), pc.max(lt).as_py()
            self.start = lo if self.start is None else min(self.start, lo)
            self.end = hi if self.end is None else max(self.end, hi)
            self.stats.update(table)
        self.written += n
        if self.flattener.schema is not None:
            if self._writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._writer = pq.ParquetWriter(self.path, table.schema, compression=COMPRESSION)
            self._writer.write_table(table)
        elif n:
            part = self.work_dir / f"part-{len(self._parts):06d}.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, part, compression=COMPRESSION)
            self._parts.append(part)

    def close(self) -> pa.Schema | None:
        """Write what is left, finish the file; returns its schema (``None``: no file, i.e. an inferred
        schema and no message)."""
        self.flush()
        if self.flattener.schema is not None:
            if self._writer is None:
                schema = pa.schema(_TIME_SCHEMA + list(self.flattener.schema))
                self.path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(schema.empty_table(), self.path, compression=COMPRESSION)
                self.schema = schema
            else:
                self.schema = self._writer.schema
                self._writer.close()
                self._writer = None
        elif self._parts:
            self.schema = _merge_parts(self._parts, self.path)
        else:
            return None
        if self.unsorted:
            t = pq.read_table(self.path)
            t = t.take(pc.sort_indices(t, sort_keys=[("log_time", "ascending")]))
            pq.write_table(t, self.path, compression=COMPRESSION)
        if self._parts:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        return self.schema

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the folder is removed anyway
                pass
            self._writer = None


def _merge_parts(parts: list[Path], path: Path) -> pa.Schema:
    schemas = [pq.read_schema(p) for p in parts]
    schema = unify_schemas(schemas)
    with pq.ParquetWriter(path, schema, compression=COMPRESSION) as w:
        for p in parts:
            w.write_table(conform(pq.read_table(p), schema))
    return schema


def unify_schemas(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for tables whose column types were inferred separately: ``int`` + ``float`` ->
    ``float64``, ``null`` + T -> T; columns whose types cannot be unified become JSON text."""
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowException, TypeError, ValueError):
        pass
    types: dict[str, list[pa.DataType]] = {}
    for s in schemas:
        for f in s:
            types.setdefault(f.name, []).append(f.type)
    fields = []
    for name, ts in types.items():
        try:
            t = pa.unify_schemas([pa.schema([pa.field(name, t)]) for t in ts], promote_options="permissive").field(name).type
        except (pa.ArrowException, TypeError, ValueError):
            t = pa.string()
        fields.append(pa.field(name, t))
    return pa.schema(fields)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns (missing ones null, others cast; uncastable as JSON text)."""
    cols = []
    for f in schema:
        if f.name not in table.column_names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        c = table.column(f.name)
        if c.type != f.type:
            try:
                c = c.cast(f.type)
            except (pa.ArrowException, TypeError, ValueError):
                c = pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str))
                              for v in c.to_pylist()], f.type)
        cols.append(c)
    return pa.Table.from_arrays(cols, schema=schema)


# ---- statistics ----------------------------------------------------------------------------------------
def _numeric_matrix(col: pa.ChunkedArray) -> np.ndarray | None:
    """``float64 [N, K]`` of a numeric or fixed-size-list-of-numeric column (nulls as NaN), else None."""
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        a = col.to_numpy(zero_copy_only=False)
        return np.asarray(a, dtype=np.float64).reshape(-1, 1)
    if pa.types.is_fixed_size_list(t) and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        k = t.list_size
        values = arr.values.slice(arr.offset * k, len(arr) * k)
        m = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(len(arr), k)
        if arr.null_count:
            m = m.copy()
            m[np.asarray(arr.is_null().to_numpy(zero_copy_only=False))] = np.nan
        return m
    return None


class _StatsAccumulator:
    """Running count / null_count / min / max / mean / std (population) per numeric column, merged
    batch by batch (Chan et al.'s parallel variance). All numeric columns of a batch are reduced in one
    NumPy pass."""

    def __init__(self) -> None:
        self.cols: dict[str, dict[str, Any]] = {}

    def update(self, table: pa.Table) -> None:
        names, mats, exact = [], [], {}
        for name in table.column_names:
            col = table.column(name)
            m = _numeric_matrix(col)
            if m is None:
                continue
            names.append((name, m.shape[1], not pa.types.is_fixed_size_list(col.type)))
            mats.append(m)
            if pa.types.is_integer(col.type) and len(col) > col.null_count:
                mm = pc.min_max(col)
                exact[name] = (mm["min"].as_py(), mm["max"].as_py())
        if not mats:
            return
        m = np.concatenate(mats, axis=1) if len(mats) > 1 else mats[0]
        valid = ~np.isnan(m)
        n_b = valid.sum(axis=0).astype(np.float64)
        filled = np.where(valid, m, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = filled.sum(axis=0) / np.maximum(n_b, 1)
            m2_b = (np.where(valid, m - mean_b, 0.0) ** 2).sum(axis=0)
            lo = np.where(n_b > 0, np.where(valid, m, np.inf).min(axis=0), np.nan)
            hi = np.where(n_b > 0, np.where(valid, m, -np.inf).max(axis=0), np.nan)
        nulls = (~valid).sum(axis=0)
        j = 0
        for name, k, scalar in names:
            sl = slice(j, j + k)
            j += k
            s = self.cols.get(name)
            if s is None:
                self.cols[name] = {"n": n_b[sl], "mean": mean_b[sl], "m2": m2_b[sl], "min": lo[sl], "max": hi[sl],
                                   "nulls": nulls[sl], "scalar": scalar and k == 1, "exact": exact.get(name)}
                continue
            n_a, nb = s["n"], n_b[sl]
            n = n_a + nb
            with np.errstate(invalid="ignore", divide="ignore"):
                delta = mean_b[sl] - s["mean"]
                s["mean"] = s["mean"] + delta * np.where(n > 0, nb / np.maximum(n, 1), 0.0)
                s["m2"] = s["m2"] + m2_b[sl] + delta**2 * np.where(n > 0, n_a * nb / np.maximum(n, 1), 0.0)
            s["n"] = n
            s["min"] = np.fmin(s["min"], lo[sl])
            s["max"] = np.fmax(s["max"], hi[sl])
            s["nulls"] = s["nulls"] + nulls[sl]
            if name in exact:
                old, new = s["exact"], exact[name]
                s["exact"] = new if old is None else (min(old[0], new[0]), max(old[1], new[1]))

    def to_json(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, s in self.cols.items():
            n = s["n"]
            with np.errstate(invalid="ignore", divide="ignore"):
                std = np.sqrt(np.where(n > 0, s["m2"] / np.maximum(n, 1), np.nan))
            mean = np.where(n > 0, s["mean"], np.nan)

            def val(a: np.ndarray, as_int: bool = False) -> Any:
                vals = [None if (not as_int and not np.isfinite(x)) else (int(x) if as_int else float(x)) for x in a]
                return vals[0] if s["scalar"] else vals

            d = {"count": val(n, True), "null_count": val(s["nulls"], True), "min": val(s["min"]),
                 "max": val(s["max"]), "mean": val(mean), "std": val(std)}
            if s["exact"] is not None and s["scalar"]:
                d["min"], d["max"] = s["exact"]
            out[name] = d
        return out


__all__ = ["TopicSink", "TIME_COLUMNS", "unify_schemas", "conform"]
