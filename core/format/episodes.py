"""The episodes table as columns: one NumPy array per field, built vectorised from ``meta/episodes``
(v3.0 parquet) or ``meta/episodes.jsonl`` (v2.x), and a lazy :class:`Episodes` mapping that builds an
:class:`Episode` record only when one is asked for. Memory grows with the number of episodes only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._json import read_jsonl
from .layout import episodes_files
from ._paths import format_template, safe_join
from ..errors import DataFileError, MetadataError


@dataclass(frozen=True)
class VideoRef:
    """Where one episode's frames of one camera live: ``path`` relative to the root, and the span
    ``[from_timestamp, to_timestamp)`` in seconds inside that file (v2.x: from 0)."""

    path: str
    from_timestamp: float
    to_timestamp: float


@dataclass(frozen=True)
class Episode:
    """One episode of the episodes table.

    ``dataset_from_index``/``dataset_to_index`` are the global ``index`` range ``[from, to)``.
    ``data_path`` is relative to the dataset root; ``videos`` maps camera key -> :class:`VideoRef`.
    """

    episode_index: int
    length: int
    dataset_from_index: int
    dataset_to_index: int
    tasks: tuple[str, ...]
    data_path: str
    videos: Mapping[str, VideoRef]


class EpisodeTable:
    """The episodes table, column-wise, sorted by ``episode_index`` (``E`` rows).

    Attributes:
        index: ``int64 [E]`` episode indices, ascending, unique.
        length: ``int64 [E]`` frames per episode.
        dataset_from_index, dataset_to_index: ``int64 [E]`` global ``index`` range ``[from, to)``.
        data_files: data parquet paths relative to the root (each checked to stay inside it).
        data_file: ``int64 [E]`` position of each episode's data file in ``data_files``.
        video_files: per camera key, the mp4 paths relative to the root.
        video_file: per camera key, ``int64 [E]`` position in ``video_files[key]``.
        from_timestamp, to_timestamp: per camera key, ``float64 [E]`` seconds inside the file.
        tasks: per episode, its task strings (an Arrow list column, or a list of tuples), or ``None``.
    """

    def __init__(self, index, length, dataset_from_index, dataset_to_index, data_files, data_file,
                 video_files, video_file, from_timestamp, to_timestamp, tasks):
        self.index = index
        self.length = length
        self.dataset_from_index = dataset_from_index
        self.dataset_to_index = dataset_to_index
        self.data_files: list[str] = data_files
        self.data_file = data_file
        self.video_files: dict[str, list[str]] = video_files
        self.video_file: dict[str, np.ndarray] = video_file
        self.from_timestamp: dict[str, np.ndarray] = from_timestamp
        self.to_timestamp: dict[str, np.ndarray] = to_timestamp
        self.tasks = tasks

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def ordinals(self, episodes: Sequence[int] | np.ndarray) -> np.ndarray:
        """``int64``: the row of each episode index (``-1`` where it is not in the table)."""
        e = np.asarray(episodes, dtype=np.int64)
        pos = np.searchsorted(self.index, e)
        pos = np.minimum(pos, max(len(self) - 1, 0))
        found = (self.index[pos] == e) if len(self) else np.zeros(e.shape, bool)
        return np.where(found, pos, -1).astype(np.int64)

    def episode(self, row: int) -> Episode:
        """The :class:`Episode` record of table row ``row``."""
        videos = {
            k: VideoRef(self.video_files[k][int(self.video_file[k][row])], float(self.from_timestamp[k][row]),
                        float(self.to_timestamp[k][row]))
            for k in self.video_files
        }
        if self.tasks is None:
            tasks: tuple[str, ...] = ()
        elif isinstance(self.tasks, list):
            tasks = self.tasks[row]
        else:
            tasks = tuple(self.tasks[row].as_py() or ())
        return Episode(
            episode_index=int(self.index[row]), length=int(self.length[row]),
            dataset_from_index=int(self.dataset_from_index[row]), dataset_to_index=int(self.dataset_to_index[row]),
            tasks=tasks, data_path=self.data_files[int(self.data_file[row])], videos=videos,
        )


class Episodes(Mapping):
    """``episode_index -> Episode``, ascending, over an :class:`EpisodeTable`; each record is built when
    it is looked up (nothing per episode is held besides the table's columns)."""

    def __init__(self, table: EpisodeTable):
        self.table = table

    def __getitem__(self, e: int) -> Episode:
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer)):
            raise KeyError(e)
        row = int(self.table.ordinals([int(e)])[0])
        if row < 0:
            raise KeyError(e)
        return self.table.episode(row)

    def __contains__(self, e: object) -> bool:
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer)):
            return False
        return bool(self.table.ordinals([int(e)])[0] >= 0)

    def __iter__(self) -> Iterator[int]:
        return iter(self.table.index.tolist())

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        idx = self.table.index
        span = f"{int(idx[0])}..{int(idx[-1])}" if len(idx) else "none"
        return f"Episodes({len(idx)} episodes: {span})"


# ---- loading -----------------------------------------------------------------------------------------
def _np(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    from .tables import to_numpy

    return to_numpy(col)


def _numeric_column(table: pa.Table, name: str, where: Path, expected: str) -> np.ndarray:
    """Column ``name`` as NumPy: present, no nulls, integer or floating type (else MetadataError)."""
    if name not in table.column_names:
        raise MetadataError(f"{where}: the episodes table has no column {name!r} (columns: {table.column_names[:12]})")
    col = table.column(name)
    if col.null_count:
        raise MetadataError(f"{where}: column {name!r} has {col.null_count} null value(s)")
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise MetadataError(f"{where}: column {name!r} has type {col.type}, expected {expected}")
    return _np(col)


def _int_column(table: pa.Table, name: str, where: Path) -> np.ndarray:
    arr = _numeric_column(table, name, where, "integers")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise MetadataError(f"{where}: column {name!r} holds non-integer values")
    return arr.astype(np.int64)


def _float_column(table: pa.Table, name: str, where: Path) -> np.ndarray:
    arr = _numeric_column(table, name, where, "numbers").astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise MetadataError(f"{where}: column {name!r} holds NaN or infinite values")
    return arr


def _files_from_pairs(chunk: np.ndarray, file: np.ndarray, template: Any, root: Path, what: str,
                      **extra: Any) -> tuple[list[str], np.ndarray]:
    """Unique ``(chunk_index, file_index)`` pairs -> filled templates (checked safe), and each row's one."""
    if len(chunk) and (chunk.min() < 0 or file.min() < 0):
        raise MetadataError(f"{root / 'meta' / 'episodes'}: negative {what} chunk/file index")
    if len(chunk) and (chunk.max() >= 2**31 or file.max() >= 2**31):
        raise MetadataError(f"{root / 'meta' / 'episodes'}: {what} chunk/file index out of range")
    uniq, inverse = np.unique((chunk << 32) | file, return_inverse=True)
    paths = []
    for c, f in zip((uniq >> 32).tolist(), (uniq & 0xFFFFFFFF).tolist()):
        rel = format_template(template, root, what, chunk_index=int(c), file_index=int(f), **extra)
        safe_join(root, rel, what)
        paths.append(rel)
    return paths, inverse.reshape(-1).astype(np.int64)


def load_episodes_v3(root: Path, info: Mapping[str, Any], video_keys: Sequence[str]) -> EpisodeTable:
    """The v3.0 episodes table from ``meta/episodes/chunk-*/file-*.parquet`` (``stats/*`` columns are
    not read).

    Raises:
        MetadataError: no table, a required column missing, null or of the wrong type, duplicate episodes.
        DataFileError: a table file is not readable parquet.
        UnsafePathError: a data or video path would leave the root.
    """
    ep_dir = root / "meta" / "episodes"
    files = episodes_files(root)
    if not files:
        raise MetadataError(f"{ep_dir}: no episode tables (chunk-*/file-*.parquet)")
    info_path = root / "meta" / "info.json"
    if "data_path" not in info:
        raise MetadataError(f"{info_path}: required field 'data_path' is missing")
    data_tmpl = info["data_path"]
    video_tmpl = info.get("video_path")
    if video_keys and video_tmpl is None:
        raise MetadataError(f"{info_path}: the dataset has video features but no 'video_path'")
    wanted = ["episode_index", "length", "dataset_from_index", "dataset_to_index", "data/chunk_index",
              "data/file_index", "tasks"]
    for k in video_keys:
        wanted += [f"videos/{k}/chunk_index", f"videos/{k}/file_index", f"videos/{k}/from_timestamp",
                   f"videos/{k}/to_timestamp"]
    tables = []
    for f in files:
        try:
            pf = pq.ParquetFile(f, page_checksum_verification=True)
            names = pf.schema_arrow.names
            tables.append(pf.read(columns=[c for c in wanted if c in names]))
        except (pa.ArrowException, OSError) as e:
            raise DataFileError(f"{f}: cannot be read as parquet ({e})") from None
    try:
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except pa.ArrowException as e:
        raise MetadataError(f"{ep_dir}: the episode table files have incompatible columns ({e})") from None
    where = ep_dir
    if table.num_rows == 0:
        raise MetadataError(f"{where}: the episodes table is empty")
    index = _int_column(table, "episode_index", where)
    order = np.argsort(index, kind="stable")
    index = index[order]
    dup = np.flatnonzero(np.diff(index) == 0)
    if dup.size:
        raise MetadataError(f"{where}: episode {int(index[dup[0]])} appears more than once in the episodes table")
    table = table.take(pa.array(order)) if not np.array_equal(order, np.arange(len(order))) else table
    length = _int_column(table, "length", where)
    if (length < 0).any():
        e = int(index[np.argmax(length < 0)])
        raise MetadataError(f"{where}: episode {e} has a negative length")
    start = _int_column(table, "dataset_from_index", where)
    stop = _int_column(table, "dataset_to_index", where)
    data_files, data_file = _files_from_pairs(_int_column(table, "data/chunk_index", where),
                                              _int_column(table, "data/file_index", where),
                                              data_tmpl, root, "data_path")
    video_files, video_file, from_ts, to_ts = {}, {}, {}, {}
    for k in video_keys:
        video_files[k], video_file[k] = _files_from_pairs(
            _int_column(table, f"videos/{k}/chunk_index", where), _int_column(table, f"videos/{k}/file_index", where),
            video_tmpl, root, "video_path", video_key=k)
        from_ts[k] = _float_column(table, f"videos/{k}/from_timestamp", where)
        to_ts[k] = _float_column(table, f"videos/{k}/to_timestamp", where)
    tasks = None
    if "tasks" in table.column_names:
        col = table.column("tasks")
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            tasks = col.combine_chunks()
    return EpisodeTable(index, length, start, stop, data_files, data_file, video_files, video_file, from_ts, to_ts,
                        tasks)


def _read_jsonl_rows(path: Path) -> list[dict[str, Any]]:
    rows = read_jsonl(path)
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise MetadataError(f"{path}: row {n}: expected a JSON object, got {type(row).__name__}")
    return rows


def load_episodes_v2(root: Path, info: Mapping[str, Any], video_keys: Sequence[str], fps: float,
                     chunks_size: int) -> EpisodeTable:
    """The v2.x episodes table from ``meta/episodes.jsonl``: one data file (and one mp4 per camera) per
    episode, each video from ``from_timestamp = 0``; ``dataset_from_index`` the cumulative lengths.

    Raises:
        MetadataError: the file is missing or a row malformed (no valid ``episode_index``), duplicates.
        UnsafePathError: a path would leave the root.
    """
    path = root / "meta" / "episodes.jsonl"
    info_path = root / "meta" / "info.json"
    rows = _read_jsonl_rows(path)
    if not rows:
        raise MetadataError(f"{path}: the episodes table is empty")
    if "data_path" not in info:
        raise MetadataError(f"{info_path}: required field 'data_path' is missing")
    data_tmpl = info["data_path"]
    video_tmpl = info.get("video_path")
    if video_keys and video_tmpl is None:
        raise MetadataError(f"{info_path}: the dataset has video features but no 'video_path'")

    def as_int(n: int, r: Mapping[str, Any], key: str) -> int:
        v = r.get(key)
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v)
                or abs(v) >= 2**62):
            what = "missing" if key not in r else f"{v!r:.40}, not an integer"
            raise MetadataError(f"{path}: row {n} (episode {r.get('episode_index')!r:.20}): {key!r} is {what}")
        return int(v)

    def as_tasks(n: int, r: Mapping[str, Any]) -> tuple[str, ...]:
        v = r.get("tasks")
        if v is None:
            return ()
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            raise MetadataError(f"{path}: row {n} (episode {r.get('episode_index')!r:.20}): 'tasks' must be a "
                                f"list of strings, got {v!r:.60}")
        return tuple(v)

    index = np.array([as_int(n, r, "episode_index") for n, r in enumerate(rows, 1)], dtype=np.int64)
    length = np.array([as_int(n, r, "length") for n, r in enumerate(rows, 1)], dtype=np.int64)
    row_tasks = [as_tasks(n, r) for n, r in enumerate(rows, 1)]
    order = np.argsort(index, kind="stable")
    index, length = index[order], length[order]
    dup = np.flatnonzero(np.diff(index) == 0)
    if dup.size:
        raise MetadataError(f"{path}: episode {int(index[dup[0]])} appears more than once")
    if (length < 0).any():
        raise MetadataError(f"{path}: episode {int(index[np.argmax(length < 0)])} has a negative length")
    tasks = [row_tasks[i] for i in order.tolist()]
    start = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    chunk = index // chunks_size
    data_files = []
    for e, c in zip(index.tolist(), chunk.tolist()):
        rel = format_template(data_tmpl, root, "data_path", episode_chunk=c, episode_index=e)
        safe_join(root, rel, f"data path of episode {e}")
        data_files.append(rel)
    video_files, video_file, from_ts, to_ts = {}, {}, {}, {}
    for k in video_keys:
        files = []
        for e, c in zip(index.tolist(), chunk.tolist()):
            rel = format_template(video_tmpl, root, "video_path", episode_chunk=c, episode_index=e, video_key=k)
            safe_join(root, rel, f"video path of episode {e}, camera {k!r}")
            files.append(rel)
        video_files[k] = files
        video_file[k] = np.arange(len(index), dtype=np.int64)
        from_ts[k] = np.zeros(len(index), np.float64)
        to_ts[k] = length / float(fps)
    return EpisodeTable(index, length, start, start + length, data_files, np.arange(len(index), dtype=np.int64),
                        video_files, video_file, from_ts, to_ts, tasks)
