"""A dataset's data files as Arrow tables: declared-schema checks, casts to the declared dtypes, and an
on-disk Arrow IPC cache that is memory-mapped, so the frames of a large dataset are never copied into
the process at open.

What the dataset layer gets per data file is a list of :class:`Piece` s (the rows of one or more whole
episodes each, every column a NumPy *view* of an Arrow buffer) and the file's episode runs (which rows
each episode occupies), from one of two readers:

- :func:`open_cached`: the file's declared columns converted once into ``$PRF_CACHE/arrow`` (default
  ``~/.cache/prf/arrow``) as an Arrow IPC file, one record batch per piece (cut at episode boundaries),
  keyed by the source's absolute path, size and mtime and the declared schema; rebuilt when any of
  them changes (the stale entry of that path is removed). Opening it maps the file: nothing is read
  until a batch gathers rows. This is what LeRobot's Hugging Face ``datasets`` cache does.
- :func:`read_in_memory`: the file's row groups that hold the selected episodes (``episode_index``
  statistics pushed down), read into memory; for small selections and for v2.x per-episode files.

Both check the parquet schema against ``info.json`` first (:func:`check_schema`) and cast every value
to its declared dtype (``float64`` stored, ``float32`` declared -> ``float32``, as LeRobot's
``datasets.Features`` cast does); ``timestamp`` is always ``float32``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import DataFileError, SchemaError
from ..stream import open_input

#: bump when the cache layout changes (old entries are then ignored and replaced).
CACHE_FORMAT = 2
#: bytes per record batch (piece) of a cache file (its rows rounded up to the end of an episode); the
#: cache build holds about one piece in memory at a time.
PIECE_BYTES = 128 * 2**20

_INDEX_DTYPES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                 "task_index": "int64"}


@dataclass(frozen=True)
class ColumnSpec:
    """How one non-camera column is delivered: ``dtype`` (NumPy name, or ``"string"``) and the
    declared ``shape`` (``()`` for a scalar per frame)."""

    key: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def is_string(self) -> bool:
        return self.dtype in ("string", "str")

    @property
    def itemsize(self) -> int:
        try:
            return np.dtype(self.dtype).itemsize
        except TypeError:
            return 8


def column_specs(features: Mapping[str, Any], index_keys: Sequence[str]) -> dict[str, ColumnSpec]:
    """The non-camera columns a dataset delivers: every declared non-camera feature, then the index
    columns (``timestamp`` ``float32``, the others ``int64``), whatever ``info.json`` declares for them."""
    out: dict[str, ColumnSpec] = {}
    for k, f in features.items():
        if f.is_camera:
            continue
        dtype = _INDEX_DTYPES.get(k, f.dtype)
        out[k] = ColumnSpec(k, dtype, tuple(f.shape))
    for k in index_keys:
        if k not in out:
            out[k] = ColumnSpec(k, _INDEX_DTYPES.get(k, "int64"), (1,))
    return out


def cache_root() -> Path:
    """``$PRF_CACHE/arrow``, else ``~/.cache/prf/arrow``: where :func:`open_cached` keeps its files."""
    return Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf")) / "arrow"


# ---- Arrow -> NumPy -----------------------------------------------------------------------------------
_NP_OF = {pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64, pa.uint8(): np.uint8,
          pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64, pa.float16(): np.float16,
          pa.float32(): np.float32, pa.float64(): np.float64}


def to_numpy(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as NumPy: a zero-copy view for null-free numbers, else a copy.

    (pyarrow's own ``to_numpy`` imports pandas on first use, half a second of every open.)"""
    arr = _one_chunk(arr)
    t = arr.type
    dt = _NP_OF.get(t)
    if dt is not None and arr.null_count == 0:
        if len(arr) == 0:
            return np.zeros(0, dt)
        return np.frombuffer(arr.buffers()[1], dtype=dt, count=len(arr), offset=arr.offset * np.dtype(dt).itemsize)
    if pa.types.is_boolean(t) and arr.null_count == 0:
        if len(arr) == 0:
            return np.zeros(0, bool)
        bits = np.unpackbits(np.frombuffer(arr.buffers()[1], np.uint8), bitorder="little")
        return bits[arr.offset:arr.offset + len(arr)].astype(bool)
    return arr.to_numpy(zero_copy_only=False)


# ---- schema --------------------------------------------------------------------------------------------
def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _leaf(t: pa.DataType) -> tuple[pa.DataType, list[int | None]]:
    dims: list[int | None] = []
    while _is_list(t):
        dims.append(t.list_size if pa.types.is_fixed_size_list(t) else None)
        t = t.value_type
    return t, dims


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _target_value_type(spec: ColumnSpec) -> pa.DataType:
    if spec.dtype == "bool":
        return pa.uint8()  # stored as bytes, delivered as a NumPy bool view (Arrow packs bools in bits)
    return pa.from_numpy_dtype(np.dtype(spec.dtype))


def check_schema(path: Path, schema: pa.Schema, specs: Mapping[str, ColumnSpec], image_keys: Sequence[str]) -> None:
    """Compare a data file's parquet schema with the declared features.

    ``specs`` are the columns the file must hold (derived index columns left out, see
    :func:`derived_keys`).

    Raises:
        DataFileError: a declared feature column, ``timestamp`` or ``episode_index`` is missing; an image column is neither ``struct<bytes, path>``
            nor binary.
        SchemaError: a column's values per frame (fixed-size lists, from the schema) differ from the
            declared shape, a scalar is stored where a shape of several values is declared, or its
            values cannot be cast to the declared dtype (text where numbers are declared...).
    """
    names = schema.names
    missing = [k for k in list(specs) + list(image_keys) if k not in names]
    required = [k for k in missing if k in _INDEX_DTYPES]
    declared = [k for k in missing if k not in _INDEX_DTYPES]
    if declared:
        raise DataFileError(f"{path}: column(s) {declared} declared as features in info.json are missing")
    if required:
        raise DataFileError(f"{path}: column(s) {required}, which every LeRobot data file holds, are missing")
    for key, spec in specs.items():
        leaf, dims = _leaf(schema.field(key).type)
        if spec.is_string:
            if not (pa.types.is_string(leaf) or pa.types.is_large_string(leaf)):
                raise SchemaError(f"{path}: column {key!r} holds {leaf} values; info.json declares {spec.dtype!r}")
            continue
        try:
            np.dtype(spec.dtype)
        except TypeError:
            raise SchemaError(f"{path}: feature {key!r} has a dtype {spec.dtype!r} prf cannot read") from None
        if not _numeric(leaf):
            raise SchemaError(f"{path}: column {key!r} holds {leaf} values; info.json declares {spec.dtype!r} "
                              f"with shape {list(spec.shape)}")
        if not dims:
            if spec.elements != 1:
                raise SchemaError(f"{path}: column {key!r} holds one value per frame where info.json says "
                                  f"shape {list(spec.shape)}")
        elif all(d is not None for d in dims):
            n = int(np.prod(dims))
            if n != spec.elements:
                raise SchemaError(f"{path}: column {key!r} holds a list of {n} values per frame where info.json "
                                  f"says shape {list(spec.shape)}")
    for key in image_keys:
        t = schema.field(key).type
        if not ((pa.types.is_struct(t) and t.get_field_index("bytes") >= 0) or pa.types.is_binary(t)
                or pa.types.is_large_binary(t)):
            raise DataFileError(f"{path}: image column {key!r} has type {t}; expected struct<bytes, path> or binary")


def _target_type(spec: ColumnSpec, stored: pa.DataType) -> pa.DataType:
    if spec.is_string:
        return stored
    vt = _target_value_type(spec)
    return pa.list_(vt, spec.elements) if _is_list(stored) else vt


def _convert(arr: pa.Array, spec: ColumnSpec, path: Path) -> pa.Array:
    """One column of a batch in its delivered form: nulls refused, list sizes checked, values cast."""
    key = spec.key
    if arr.null_count:
        raise DataFileError(f"{path}: column {key!r} has {arr.null_count} null value(s)")
    if spec.is_string:
        return arr
    n = len(arr)
    values = arr
    per_row = 1
    while _is_list(values.type):
        lengths = to_numpy(pc.list_value_length(values)) if len(values) else np.zeros(0, np.int64)
        if lengths.size and lengths.min() != lengths.max():
            j = int(np.argmax(lengths != lengths[0]))
            raise SchemaError(f"{path}: column {key!r} has lists of different lengths ({int(lengths[0])} and "
                              f"{int(lengths[j])} values) where info.json says shape {list(spec.shape)}")
        per_row *= int(lengths[0]) if lengths.size else spec.elements
        values = values.flatten()
        if values.null_count:
            raise DataFileError(f"{path}: column {key!r} has {values.null_count} null value(s) inside its lists")
    listed = values is not arr
    if listed and n and per_row != spec.elements:
        raise SchemaError(f"{path}: column {key!r} holds a list of {per_row} values per frame where info.json "
                          f"says shape {list(spec.shape)}")
    vt = _target_value_type(spec)
    if values.type != vt:
        try:
            lossy_ok = pa.types.is_floating(vt) or pa.types.is_boolean(values.type)
            values = values.cast(vt, safe=not lossy_ok)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise SchemaError(f"{path}: column {key!r}: its {values.type} values cannot be cast to the declared "
                              f"{spec.dtype} ({e})") from None
    if not listed:
        return values
    return pa.FixedSizeListArray.from_arrays(values, spec.elements)


def _convert_image(arr: pa.Array, key: str, path: Path) -> pa.Array:
    if pa.types.is_struct(arr.type):
        if arr.null_count:
            raise DataFileError(f"{path}: camera {key!r}: {arr.null_count} row(s) have no embedded image bytes")
        arr = arr.field("bytes")
    sizes = pc.binary_length(arr)
    empty = pc.or_kleene(pc.is_null(sizes), pc.equal(sizes, 0))
    if pc.any(empty).as_py():
        row = int(np.argmax(to_numpy(empty)))
        raise DataFileError(f"{path}: camera {key!r}: row {row} has no embedded image bytes (images stored as "
                            f"separate files are not supported)")
    return arr.cast(pa.large_binary())


def _convert_table(t: pa.Table | pa.RecordBatch, specs: Mapping[str, ColumnSpec], image_keys: Sequence[str],
                   path: Path) -> pa.Table:
    cols, names = [], []
    for k, spec in specs.items():
        c = t.column(k)
        c = c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
        cols.append(_convert(c, spec, path))
        names.append(k)
    for k in image_keys:
        c = t.column(k)
        c = c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
        cols.append(_convert_image(c, k, path))
        names.append(k)
    return pa.Table.from_arrays(cols, names=names)


# ---- pieces --------------------------------------------------------------------------------------------
class Piece:
    """Rows of whole episodes of one data file: ``arrays[key]`` NumPy ``[rows, *shape]`` (scalars
    ``[rows]``) viewing the Arrow buffers, ``images[key]`` the encoded images (Arrow binary)."""

    __slots__ = ("rows", "arrays", "images")

    def __init__(self, table: pa.Table | pa.RecordBatch, specs: Mapping[str, ColumnSpec], image_keys: Sequence[str]):
        self.rows = table.num_rows
        self.arrays: dict[str, np.ndarray] = {}
        for k, spec in specs.items():
            self.arrays[k] = _numpy_view(_one_chunk(table.column(k)), spec, self.rows)
        self.images: dict[str, pa.Array] = {k: _one_chunk(table.column(k)) for k in image_keys}

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values()) + sum(a.nbytes for a in self.images.values())


def _one_chunk(col: Any) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _numpy_view(arr: pa.Array, spec: ColumnSpec, rows: int) -> np.ndarray:
    if spec.is_string:
        return np.asarray(arr.to_pylist(), dtype=object)
    listed = pa.types.is_fixed_size_list(arr.type)
    values = arr.flatten() if listed else arr
    out = to_numpy(values)
    if spec.dtype == "bool":
        out = out.view(np.bool_)
    if not listed:
        return out
    trailing = spec.shape if spec.shape and int(np.prod(spec.shape)) == spec.elements else (spec.elements,)
    return out.reshape((rows, *trailing))


# ---- episode runs --------------------------------------------------------------------------------------
def episode_runs(ep: np.ndarray) -> np.ndarray:
    """``int64 [R, 3]``: (episode_index, first row, rows) of each run of equal ``episode_index``."""
    ep = np.asarray(ep, dtype=np.int64)
    n = ep.shape[0]
    if n == 0:
        return np.zeros((0, 3), np.int64)
    starts = np.concatenate([[0], np.flatnonzero(ep[1:] != ep[:-1]) + 1])
    lengths = np.diff(np.concatenate([starts, [n]]))
    return np.stack([ep[starts], starts, lengths], axis=1).astype(np.int64)


def locate_episodes(path: Path, runs: np.ndarray, episodes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``int64 [k]``: the first row of each of ``episodes`` in a file with these ``runs``, checking that
    each is there with ``lengths`` rows, contiguous.

    Raises:
        DataFileError: an episode's rows are not contiguous, or their count differs from the episodes table.
    """
    run_ep = runs[:, 0]
    uniq, counts = np.unique(run_ep, return_counts=True)
    split = uniq[counts > 1]
    if split.size:
        hit = np.isin(episodes, split)
        if hit.any():
            raise DataFileError(f"{path}: the rows of episode {int(episodes[np.argmax(hit)])} are not contiguous")
    order = np.argsort(run_ep, kind="stable")
    sorted_ep = run_ep[order]
    pos = np.searchsorted(sorted_ep, episodes)
    pos_c = np.minimum(pos, max(len(sorted_ep) - 1, 0))
    found = (pos < len(sorted_ep)) & (sorted_ep[pos_c] == episodes) if len(sorted_ep) else np.zeros(len(episodes), bool)
    got = np.where(found, runs[order[pos_c], 2] if len(sorted_ep) else 0, 0)
    bad = got != lengths
    if bad.any():
        j = int(np.argmax(bad))
        raise DataFileError(f"{path}: episode {int(episodes[j])} has {int(got[j])} rows, the episodes table says "
                            f"{int(lengths[j])}")
    return np.where(found, runs[order[pos_c], 1] if len(sorted_ep) else 0, 0).astype(np.int64)


# ---- per-file summaries --------------------------------------------------------------------------------
def derived_keys(schema: pa.Schema, derivable: Sequence[str]) -> list[str]:
    """The ``derivable`` index columns a data file does not hold (delivered derived, as LeRobot fills them)."""
    return [k for k in derivable if k not in schema.names]


@dataclass(frozen=True)
class FileSummary:
    """What a data file's open checks need, computed once per file (stored in its Arrow cache entry).

    Attributes:
        dts: ``float64 [R, 2]``: per episode run (rows of :func:`episode_runs`), the smallest and largest
            difference between consecutive ``timestamp`` values (``float32`` differences, as LeRobot's
            ``check_timestamps_sync``); ``(+inf, -inf)`` for a run of one frame, NaN where a timestamp is NaN.
        tasks: ``int64 [K, 2]``: the distinct ``(episode_index, task_index)`` pairs of the file's rows
            (``[0, 2]`` when the file has no ``task_index`` column).
    """

    dts: np.ndarray
    tasks: np.ndarray

    def to_metadata(self) -> dict[bytes, bytes]:
        return {b"prf.dts": np.ascontiguousarray(self.dts, np.float64).tobytes(),
                b"prf.tasks": np.ascontiguousarray(self.tasks, np.int64).tobytes()}

    @classmethod
    def from_metadata(cls, md: Mapping[bytes, bytes]) -> "FileSummary":
        return cls(np.frombuffer(md[b"prf.dts"], np.float64).reshape(-1, 2),
                   np.frombuffer(md[b"prf.tasks"], np.int64).reshape(-1, 2))


class _SummaryBuilder:
    """A :class:`FileSummary` built from a file's rows in order, one batch at a time (the Arrow cache
    build never holds a whole column): per-run step min/max merged across batches, ``(episode,
    task_index)`` pairs taken where either changes. Vectorised per batch."""

    def __init__(self, runs: np.ndarray):
        self.runs = runs
        self.starts = runs[:, 1].astype(np.int64)
        self.last = (runs[:, 1] + runs[:, 2] - 1).astype(np.int64)  # each run's last row
        self.lo = np.full(len(runs), np.inf)
        self.hi = np.full(len(runs), -np.inf)
        self.row = 0  # rows seen so far
        self.prev_ts: np.float32 | None = None
        self.prev_pair: tuple[int, int] | None = None
        self.keys: list[np.ndarray] = []

    def add(self, ts: np.ndarray | None, ep: np.ndarray, task: np.ndarray | None) -> None:
        n = len(ep)
        if not n:
            return
        b0 = self.row
        if ts is not None and len(self.runs):
            ts = np.asarray(ts, np.float32).reshape(-1)
            full = ts if self.prev_ts is None else np.concatenate([[self.prev_ts], ts])
            first = b0 if self.prev_ts is None else b0 - 1  # the row each step starts from
            if len(full) > 1:
                d = np.diff(full).astype(np.float64)  # float32 steps, as LeRobot's check
                i = np.arange(first, first + len(d), dtype=np.int64)
                # the run of each step's row, runs being contiguous row ranges: O(rows), no search
                r0, r1 = np.searchsorted(self.starts, [i[0], i[-1]], side="right") - 1
                lo_row = np.maximum(self.starts[r0:r1 + 1], i[0])
                hi_row = np.minimum(self.last[r0:r1 + 1], i[-1])
                rid = np.repeat(np.arange(r0, r1 + 1, dtype=np.int64), hi_row - lo_row + 1)
                ok = i != self.last[rid]
                d, rid = d[ok], rid[ok]
                if len(d):
                    cut = np.concatenate([[0], np.flatnonzero(np.diff(rid)) + 1])
                    ids = rid[cut]
                    self.lo[ids] = np.minimum(self.lo[ids], np.minimum.reduceat(d, cut))
                    self.hi[ids] = np.maximum(self.hi[ids], np.maximum.reduceat(d, cut))
            self.prev_ts = ts[-1]
        if task is not None:
            ep = np.asarray(ep, np.int64).reshape(-1)
            task = np.asarray(task, np.int64).reshape(-1)
            change = np.ones(n, bool)
            change[1:] = (ep[1:] != ep[:-1]) | (task[1:] != task[:-1])
            if self.prev_pair is not None and (int(ep[0]), int(task[0])) == self.prev_pair:
                change[0] = False
            self.keys.append(np.stack([ep[change], task[change]], axis=1))
            self.prev_pair = (int(ep[-1]), int(task[-1]))
        self.row += n

    def result(self) -> FileSummary:
        dts = np.stack([self.lo, self.hi], axis=1) if len(self.runs) else np.zeros((0, 2), np.float64)
        pairs = np.concatenate(self.keys) if self.keys else np.zeros((0, 2), np.int64)
        if len(pairs):
            pairs = np.unique(pairs, axis=0) if len(pairs) < 4096 else task_pairs(pairs[:, 0], pairs[:, 1])
        return FileSummary(dts, pairs.astype(np.int64).reshape(-1, 2))


def timestamp_steps(ts: np.ndarray | None, runs: np.ndarray) -> np.ndarray:
    """``float64 [R, 2]``: smallest and largest step between consecutive timestamps in each run (see
    :class:`FileSummary`); vectorised."""
    b = _SummaryBuilder(runs)
    if ts is not None:
        b.add(ts, np.zeros(len(ts), np.int64), None)
    return b.result().dts


def task_pairs(ep: np.ndarray, task: np.ndarray | None) -> np.ndarray:
    """``int64 [K, 2]``: the distinct ``(episode_index, task_index)`` pairs of rows (vectorised)."""
    if task is None or len(ep) == 0:
        return np.zeros((0, 2), np.int64)
    ep = np.asarray(ep, np.int64)
    task = np.asarray(task, np.int64)
    if ep.min() >= 0 and ep.max() < 2**31 and task.min() >= -(2**31) and task.max() < 2**31:
        key = np.unique((ep << 32) | (task + 2**31))
        return np.stack([key >> 32, (key & 0xFFFFFFFF) - 2**31], axis=1).astype(np.int64)
    return np.unique(np.stack([ep, task], axis=1), axis=0).astype(np.int64)


def summarize(ts: np.ndarray | None, ep: np.ndarray, task: np.ndarray | None, runs: np.ndarray) -> FileSummary:
    """The :class:`FileSummary` of a file's whole columns (``runs`` from its ``episode_index``)."""
    b = _SummaryBuilder(runs)
    b.add(ts, ep, task)
    return b.result()


def _summary_of_piece(piece: "Piece", runs: np.ndarray) -> FileSummary:
    a = piece.arrays
    ts, task = a.get("timestamp"), a.get("task_index")
    return summarize(None if ts is None else ts.reshape(-1), a["episode_index"].reshape(-1),
                     None if task is None else task.reshape(-1), runs)


def scan_file(path: Path) -> tuple[FileSummary, np.ndarray]:
    """``(summary, runs)`` of a data file from its ``timestamp``, ``episode_index`` and ``task_index``
    columns alone (v2.x episode files at open).

    Raises:
        DataFileError: the file is not readable parquet, or ``episode_index`` has nulls.
    """
    pf = _parquet(path)
    names = pf.schema_arrow.names
    cols = [c for c in ("timestamp", "episode_index", "task_index") if c in names]
    try:
        t = pf.read(columns=cols)
    except (pa.ArrowException, OSError) as e:
        raise DataFileError(f"{path}: cannot be read as parquet ({e})") from None
    if "episode_index" not in names:
        raise DataFileError(f"{path}: column(s) ['episode_index'], which every LeRobot data file holds, are missing")
    if t.column("episode_index").null_count or not pa.types.is_integer(_leaf(t.column("episode_index").type)[0]):
        raise DataFileError(f"{path}: column 'episode_index' has null or non-integer values")
    ep = _flat_numpy(t.column("episode_index")).astype(np.int64, copy=False)
    ts = task = None
    if "timestamp" in names:
        c = t.column("timestamp")
        if c.null_count or not _numeric(_leaf(c.type)[0]):
            raise DataFileError(f"{path}: column 'timestamp' has null or non-numeric values ({c.type})")
        ts = _flat_numpy(c).astype(np.float32, copy=False)
    if "task_index" in names:
        c = t.column("task_index")
        if c.null_count or not pa.types.is_integer(_leaf(c.type)[0]):
            raise DataFileError(f"{path}: column 'task_index' has null or non-integer values ({c.type})")
        task = _flat_numpy(c).astype(np.int64, copy=False)
    runs = episode_runs(ep)
    return summarize(ts, ep, task, runs), runs


def scan_files(paths: Sequence[Path], root: Path) -> list[tuple[FileSummary, np.ndarray] | None]:
    """:func:`scan_file` of many files (v2.x episode files at open): ``None`` for a file that cannot be
    read (left to its first use, which names it). Results are kept in ``$PRF_CACHE/arrow`` per dataset
    ``root``, keyed by each file's size and mtime, so a warm open only stats the files; missing ones are
    scanned on a few threads (parquet decoding releases the GIL)."""
    store = cache_root() / f"v2scan-{hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]}.json"
    try:
        known = json.loads(store.read_text()) if store.is_file() else {}
        if known.get("format") != CACHE_FORMAT:
            known = {}
    except (OSError, ValueError):
        known = {}
    files: dict[str, list] = known.get("files", {})
    out: list[tuple[FileSummary, np.ndarray] | None] = [None] * len(paths)
    todo = []
    for j, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError:
            continue
        got = files.get(str(p))
        if got is not None and got[0] == st.st_size and got[1] == st.st_mtime_ns:
            out[j] = (FileSummary(np.asarray(got[2], np.float64).reshape(-1, 2), np.asarray(got[3], np.int64).reshape(-1, 2)),
                      np.asarray(got[4], np.int64).reshape(-1, 3))
        else:
            todo.append((j, p, st))
    if not todo:
        return out

    def one(item):
        j, p, st = item
        try:
            return j, p, st, scan_file(p)
        except DataFileError:
            return j, p, st, None

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        for j, p, st, res in pool.map(one, todo):
            out[j] = res
            if res is not None:
                summary, runs = res
                files[str(p)] = [st.st_size, st.st_mtime_ns, summary.dts.tolist(), summary.tasks.tolist(),
                                 runs.tolist()]
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_name(f".{store.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": CACHE_FORMAT, "files": files}))
        os.replace(tmp, store)
    except OSError:
        pass  # a read-only cache folder: scanned again next time
    return out


def run_positions(runs: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """``int64 [k]``: the run (row of ``runs``) of each of ``episodes`` (``-1`` where absent; episodes
    split over several runs are refused by :func:`locate_episodes` first)."""
    run_ep = runs[:, 0]
    if not len(run_ep):
        return np.full(len(episodes), -1, np.int64)
    order = np.argsort(run_ep, kind="stable")
    sorted_ep = run_ep[order]
    pos = np.minimum(np.searchsorted(sorted_ep, episodes), len(sorted_ep) - 1)
    return np.where(sorted_ep[pos] == episodes, order[pos], -1).astype(np.int64)


# ---- readers -------------------------------------------------------------------------------------------
def _parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(open_input(path), pre_buffer=True,  # a streamed file: by byte range
                              page_checksum_verification=True)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as e:
        raise DataFileError(f"{path}: cannot be read as parquet ({e})") from None


def _row_groups_with(pf: pq.ParquetFile, episodes: np.ndarray) -> list[int]:
    """The row groups whose ``episode_index`` min/max statistics may hold one of ``episodes`` (sorted)."""
    md = pf.metadata
    col = pf.schema_arrow.get_field_index("episode_index")
    leaf = [i for i in range(md.num_columns) if md.schema.column(i).path == "episode_index"]
    keep = []
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(leaf[0]).statistics if leaf and col >= 0 else None
        if st is None or not st.has_min_max:
            keep.append(g)
            continue
        i = np.searchsorted(episodes, st.min)
        if i < len(episodes) and episodes[i] <= st.max:
            keep.append(g)
    return keep


def read_in_memory(path: Path, specs: Mapping[str, ColumnSpec], image_keys: Sequence[str],
                   episodes: np.ndarray | None = None) -> tuple[Piece, np.ndarray, FileSummary]:
    """The rows of a data file's row groups that may hold ``episodes`` (sorted; default all), converted,
    in memory: ``(piece, runs, summary)`` (see :func:`episode_runs`, :class:`FileSummary`).

    Raises:
        DataFileError, SchemaError: see :func:`check_schema`; the file is not readable parquet.
    """
    pf = _parquet(path)
    check_schema(path, pf.schema_arrow, specs, image_keys)
    groups = None if episodes is None else _row_groups_with(pf, np.asarray(episodes, dtype=np.int64))
    cols = list(specs) + list(image_keys)
    try:
        t = pf.read(columns=cols) if groups is None else pf.read_row_groups(groups, columns=cols)
    except (pa.ArrowException, OSError) as e:
        raise DataFileError(f"{path}: cannot be read as parquet ({e})") from None
    t = _convert_table(t, specs, image_keys, path)
    ep = _episode_column_of(t)
    piece, runs = Piece(t, specs, image_keys), episode_runs(ep)
    return piece, runs, _summary_of_piece(piece, runs)


def _episode_column_of(t: pa.Table) -> np.ndarray:
    return to_numpy(t.column("episode_index")).astype(np.int64, copy=False)


def _cache_key(path: Path, specs: Mapping[str, ColumnSpec], image_keys: Sequence[str]) -> tuple[str, str]:
    st = os.stat(path)
    src = str(Path(path).resolve())
    spec = [[s.key, s.dtype, list(s.shape)] for s in specs.values()]
    key = json.dumps([CACHE_FORMAT, src, st.st_size, st.st_mtime_ns, spec, list(image_keys)])
    return src, key


def cache_path(path: Path, specs: Mapping[str, ColumnSpec], image_keys: Sequence[str]) -> Path:
    """Where the cache of ``path`` (in its current size and mtime, for this schema) lives."""
    src, key = _cache_key(path, specs, image_keys)
    h = hashlib.sha1(src.encode()).hexdigest()[:16]
    return cache_root() / f"{h}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.arrow"


def open_cached(path: Path, specs: Mapping[str, ColumnSpec], image_keys: Sequence[str]
                ) -> tuple[list[Piece], np.ndarray, np.ndarray, FileSummary]:
    """A data file through the memory-mapped Arrow cache (built first when absent or stale).

    Returns:
        ``(pieces, piece_starts int64 [P], runs int64 [R, 3], summary)``: the pieces in file order, the
        file row each starts at, the file's episode runs, and its :class:`FileSummary` (computed when
        the entry was built, read from the entry's metadata).

    Raises:
        DataFileError, SchemaError: see :func:`check_schema`; the file is not readable parquet.
    """
    cp = cache_path(path, specs, image_keys)
    _, key = _cache_key(path, specs, image_keys)
    for attempt in (0, 1):
        if not cp.is_file():
            _build_cache(path, cp, key, specs, image_keys)
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(cp), "r"))
            md = reader.schema.metadata or {}
            if md.get(b"prf.source") != key.encode():
                raise ValueError("cache entry of another source")
            runs = np.frombuffer(md[b"prf.runs"], dtype=np.int64).reshape(-1, 3)
            starts = np.frombuffer(md[b"prf.starts"], dtype=np.int64)
            summary = FileSummary.from_metadata(md)
            if len(summary.dts) != len(runs):
                raise ValueError("cache entry inconsistent")
            pieces = [Piece(reader.get_batch(i), specs, image_keys) for i in range(reader.num_record_batches)]
            if len(pieces) != len(starts):
                raise ValueError("cache entry incomplete")
            return pieces, starts, runs, summary
        except (pa.ArrowException, OSError, ValueError, KeyError):
            if attempt:
                raise DataFileError(f"{path}: its Arrow cache {cp} cannot be read (remove it)") from None
            cp.unlink(missing_ok=True)  # a damaged entry: build it again
    raise AssertionError("unreachable")


def _build_cache(path: Path, cp: Path, key: str, specs: Mapping[str, ColumnSpec], image_keys: Sequence[str]) -> None:
    pf = _parquet(path)
    check_schema(path, pf.schema_arrow, specs, image_keys)
    summary, runs = _summary_columns(pf, path, specs)
    n = int(runs[:, 2].sum()) if len(runs) else 0
    piece_rows = max(256, PIECE_BYTES // _row_bytes(pf, specs, image_keys))
    # pieces start at episode boundaries, about piece_rows rows apart
    _, first = np.unique(runs[:, 1] // piece_rows, return_index=True)
    starts = runs[first, 1].astype(np.int64) if len(runs) else np.zeros(0, np.int64)
    ends = np.concatenate([starts[1:], [n]]).astype(np.int64) if len(starts) else starts
    target = []
    stored = pf.schema_arrow
    for k, spec in specs.items():
        target.append(pa.field(k, _target_type(spec, stored.field(k).type)))
    for k in image_keys:
        target.append(pa.field(k, pa.large_binary()))
    schema = pa.schema(target, metadata={b"prf.source": key.encode(), b"prf.runs": runs.tobytes(),
                                         b"prf.starts": starts.tobytes(), **summary.to_metadata()})
    cp.parent.mkdir(parents=True, exist_ok=True)
    tmp = cp.with_name(f".{cp.name}.{os.getpid()}.tmp")
    cols = list(specs) + list(image_keys)
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
            buf: list[pa.Table] = []
            have = written = ci = 0
            for batch in pf.iter_batches(batch_size=int(min(piece_rows, 65536)), columns=cols):
                t = _convert_table(batch, specs, image_keys, path)
                buf.append(t)
                have += t.num_rows
                while ci < len(ends) and written + have >= ends[ci]:
                    cat = pa.concat_tables(buf) if len(buf) > 1 else buf[0]
                    k = int(ends[ci] - written)
                    head = cat.slice(0, k).combine_chunks().cast(schema.remove_metadata())
                    w.write_batch(head.to_batches(max_chunksize=max(k, 1))[0])
                    rest = cat.slice(k)
                    buf = [rest] if rest.num_rows else []
                    have -= k
                    written += k
                    ci += 1
        os.replace(tmp, cp)
    except (pa.ArrowException, OSError) as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, FileNotFoundError):
            raise
        raise DataFileError(f"{path}: cannot be read as parquet ({e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    pa.default_memory_pool().release_unused()  # hand the build's buffers back to the OS
    prefix = cp.name.split("-")[0] + "-"
    for old in cp.parent.glob(prefix + "*.arrow"):  # entries of older versions of this file
        if old != cp:
            old.unlink(missing_ok=True)


def _summary_columns(pf: pq.ParquetFile, path: Path, specs: Mapping[str, ColumnSpec]) -> tuple[FileSummary, np.ndarray]:
    """The file's :class:`FileSummary` and episode runs from its ``episode_index``, ``timestamp`` and
    ``task_index`` columns (``timestamp`` as the ``float32`` delivered), read once when its cache entry
    is built."""
    cols = [c for c in ("episode_index", "timestamp", "task_index") if c in specs]
    try:
        t = pf.read(columns=cols)
    except (pa.ArrowException, OSError) as e:
        raise DataFileError(f"{path}: cannot be read as parquet ({e})") from None
    got = {}
    for c in cols:
        col = t.column(c)
        if col.null_count:
            raise DataFileError(f"{path}: column {c!r} has {col.null_count} null value(s)")
        got[c] = _flat_numpy(_convert(_one_chunk(col), specs[c], path))
    ep = got["episode_index"].astype(np.int64, copy=False)
    runs = episode_runs(ep)
    return summarize(got.get("timestamp"), ep, got.get("task_index"), runs), runs


def _flat_numpy(col: Any) -> np.ndarray:
    """A column of one value per row (maybe stored as one-element lists) as a 1-D NumPy array."""
    arr = _one_chunk(col)
    while _is_list(arr.type):
        arr = arr.flatten()
    return to_numpy(arr)


def _row_bytes(pf: pq.ParquetFile, specs: Mapping[str, ColumnSpec], image_keys: Sequence[str]) -> int:
    """Estimated bytes of one converted row (image columns from the parquet's uncompressed sizes)."""
    n = sum(s.elements * s.itemsize for s in specs.values())
    md = pf.metadata
    if image_keys and md.num_rows:
        size = 0
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            for i in range(rg.num_columns):
                c = rg.column(i)
                if any(c.path_in_schema == k or c.path_in_schema.startswith(k + ".") for k in image_keys):
                    size += c.total_uncompressed_size
        n += size // md.num_rows
    return max(int(n), 1)


def estimated_bytes(specs: Mapping[str, ColumnSpec], frames: int) -> int:
    """Bytes the delivered non-camera columns of ``frames`` frames take in memory."""
    return int(frames) * sum(s.elements * s.itemsize for s in specs.values())

