"""One in-memory model of a LeRobot dataset's metadata, for every format version in the wild.

Format versions read:

- ``v3.0``: ``meta/info.json``, ``meta/episodes/chunk-*/file-*.parquet`` (per-episode rows with data
  and video file indices, ``from_timestamp``/``to_timestamp`` into shared mp4 shards, and per-episode
  stats), ``meta/tasks.parquet``, ``meta/stats.json``.
- ``v2.1`` / ``v2.0``: ``meta/info.json``, ``meta/episodes.jsonl``, ``meta/tasks.jsonl``,
  ``meta/episodes_stats.jsonl`` (v2.1) or ``meta/stats.json`` (v2.0); one parquet and one mp4 per
  episode, so every episode's video starts at ``from_timestamp = 0``.

Everything maps onto :class:`DatasetMeta` with a table of :class:`Episode` records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._json import parse_json, read_jsonl, read_text
from ._paths import format_template, safe_join
from .episodes import Episode, Episodes, EpisodeTable, VideoRef, load_episodes_v2, load_episodes_v3
from ..stream import is_file as _is_file  # a streamed dataset's files: on the server
from ..errors import DataFileError, MetadataError, MissingFilesError, UnsupportedVersionError

#: codebase versions prf reads. v1.x datasets must first be converted with LeRobot's own converters.
SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")

#: feature dtypes whose values are camera frames.
CAMERA_DTYPES = ("video", "image")

#: columns every LeRobot frame row carries besides its declared features.
INDEX_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")

#: index columns a data file may lack (some v2.0 datasets have none of them, LeRobot 0.3.3 reads them):
#: prf derives them, as LeRobot's writer fills them (see :class:`prf.Dataset`).
DERIVABLE_KEYS = ("frame_index", "index", "task_index")

#: the largest ``fps`` accepted from ``info.json`` (beyond it frame arithmetic loses all precision).
MAX_FPS = 1e6



@dataclass(frozen=True)
class Feature:
    """One declared feature of ``info.json``.

    Attributes:
        key: feature name, e.g. ``"observation.state"``.
        dtype: LeRobot dtype string (``"float32"``, ``"int64"``, ``"bool"``, ``"video"``, ``"image"``...).
        shape: declared shape; cameras are ``(H, W, C)``.
        names: flat list of element names, whatever form ``info.json`` used (list, nested list,
            ``{"motors": [...]}``), or ``None``.
        info: the feature's ``info`` dict (video codec, pix_fmt, fps...) or ``{}``.
    """

    key: str
    dtype: str
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_camera(self) -> bool:
        return self.dtype in CAMERA_DTYPES

    @property
    def is_video(self) -> bool:
        return self.dtype == "video"


def flatten_names(names: Any) -> tuple[str, ...] | None:
    """Flatten ``names`` in any of LeRobot's forms to a tuple of strings (``None`` stays ``None``).

    ``["a", "b"]``, ``[["a", "b"]]`` and ``{"motors": ["a", "b"]}`` all give ``("a", "b")``.
    """
    if names is None:
        return None
    out: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, Mapping):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif x is not None:
            out.append(str(x))

    walk(names)
    return tuple(out)


class DatasetMeta:
    """Metadata of a LeRobot dataset (any supported format version) rooted at ``root``.

    Attributes:
        root: dataset folder.
        info: the raw ``info.json`` dict.
        codebase_version: ``"v2.0"``, ``"v2.1"`` or ``"v3.0"``.
        fps: frames per second of the data (and of every video).
        robot_type: ``info.json``'s ``robot_type`` (may be ``None``).
        features: declared features by key, in ``info.json`` order.
        tasks: task strings by ``task_index``.
        episode_table: the episodes table as columns (:class:`prf.format.EpisodeTable`, ``int64 [E]``
            arrays), built vectorised; what the dataset layer reads.
        episodes: ``episode_index -> Episode``, ascending: a lazy :class:`~collections.abc.Mapping`
            over ``episode_table`` (each :class:`Episode` built when looked up).

    Raises (from the constructor):
        MetadataError: ``info.json`` or an episodes/tasks file is missing or malformed.
        UnsupportedVersionError: ``codebase_version`` is not one of :data:`SUPPORTED_VERSIONS`.
        UnsafePathError: a path template would escape ``root``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not self.root.is_dir():
            raise MetadataError(f"{self.root}: not a directory (expected a LeRobot dataset root)")
        if not info_path.is_file():
            raise MetadataError(f"{info_path}: missing; {self.root} is not a LeRobot dataset")
        self.info: dict[str, Any] = _read_json(info_path)
        if not isinstance(self.info, dict):
            raise MetadataError(f"{info_path}: expected a JSON object")
        version = self.info.get("codebase_version")
        if version not in SUPPORTED_VERSIONS:
            hint = (
                " (convert it with LeRobot's v1->v2 conversion script first)"
                if isinstance(version, str) and version.startswith("v1")
                else ""
            )
            raise UnsupportedVersionError(
                f"{info_path}: codebase_version {version!r} is not supported; prf reads "
                f"{', '.join(SUPPORTED_VERSIONS)}{hint}"
            )
        self.codebase_version: str = version
        self.fps = _required(self.info, "fps", info_path)
        if (isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not math.isfinite(self.fps)
                or not 0 < self.fps <= MAX_FPS):
            raise MetadataError(f"{info_path}: fps must be a finite positive number of frames per second "
                                f"(at most {MAX_FPS:g}), got {self.fps!r}")
        self.robot_type = self.info.get("robot_type")
        self.features: dict[str, Feature] = _parse_features(_required(self.info, "features", info_path), info_path)
        self.chunks_size = self.info.get("chunks_size", 1000)
        if isinstance(self.chunks_size, bool) or not isinstance(self.chunks_size, int) or self.chunks_size <= 0:
            raise MetadataError(f"{info_path}: chunks_size must be a positive integer, got {self.chunks_size!r}")
        if self.is_v3:
            self.tasks = _load_tasks_v3(self.root)
            self.episode_table = load_episodes_v3(self.root, self.info, self.video_keys)
        else:
            self.tasks = _load_tasks_v2(self.root)
            self.episode_table = load_episodes_v2(self.root, self.info, self.video_keys, self.fps, self.chunks_size)
        self.episodes = Episodes(self.episode_table)
        self._stats: dict[str, Any] | None = None

    # ---- derived views -------------------------------------------------------------------------
    @property
    def is_v3(self) -> bool:
        return self.codebase_version == "v3.0"

    @property
    def camera_keys(self) -> list[str]:
        """Keys of camera features (``video`` and ``image`` dtypes), in ``info.json`` order."""
        return [k for k, f in self.features.items() if f.is_camera]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.is_video]

    @property
    def total_episodes(self) -> int:
        return len(self.episodes)

    @property
    def total_frames(self) -> int:
        return int(self.episode_table.length.sum())

    def episode_files(self, episode_index: int, cameras: Iterable[str] | None = None) -> list[Path]:
        """Absolute paths of the files one episode needs: its data parquet and its camera videos."""
        ep = self.episodes[episode_index]
        keys = self.video_keys if cameras is None else [k for k in cameras if k in ep.videos]
        return [self.path(ep.data_path)] + [self.path(ep.videos[k].path) for k in keys]

    def files_of(self, episodes: Iterable[int] | None = None, cameras: Iterable[str] | None = None) -> list[str]:
        """The distinct data and video files (relative paths, sorted) of ``episodes`` (default: all) and
        ``cameras`` (default: every video camera); unknown episodes are skipped."""
        t = self.episode_table
        rows = np.arange(len(t)) if episodes is None else t.ordinals(list(episodes))
        rows = rows[rows >= 0]
        keys = self.video_keys if cameras is None else [k for k in cameras if k in t.video_files]
        out = {t.data_files[i] for i in np.unique(t.data_file[rows]).tolist()}
        for k in keys:
            out.update(t.video_files[k][i] for i in np.unique(t.video_file[k][rows]).tolist())
        return sorted(out)

    def path(self, relative: str) -> Path:
        """Absolute path of a file named relative to the dataset root (already checked safe)."""
        return self.root / relative

    def check_files(self, episodes: Iterable[int], cameras: Iterable[str] | None = None) -> None:
        """Raise :class:`MissingFilesError` if any file of ``episodes`` is absent (each distinct file is
        checked once)."""
        t = self.episode_table
        rows = t.ordinals(list(episodes))
        rows = rows[rows >= 0]
        keys = self.video_keys if cameras is None else [k for k in cameras if k in t.video_files]
        cols = [(t.data_files, t.data_file)] + [(t.video_files[k], t.video_file[k]) for k in keys]
        missing: list[Path] = []
        bad_rows = np.zeros(len(t), dtype=bool)
        for files, of in cols:
            ids = np.unique(of[rows])
            absent = np.array([not _is_file(self.path(files[i])) for i in ids.tolist()], dtype=bool)
            if absent.any():
                missing += [self.path(files[i]) for i in ids[absent].tolist()]
                gone = np.zeros(len(files), dtype=bool)
                gone[ids[absent]] = True
                # the episodes outside the selection: check their files too, to list what is present
                others = np.setdiff1d(np.unique(of), ids)
                gone[others] = [not _is_file(self.path(files[i])) for i in others.tolist()]
                bad_rows |= gone[of]
        if missing:
            present = t.index[~bad_rows].tolist()
            raise MissingFilesError(self.root, missing, present)

    def stats(self) -> dict[str, Any]:
        """The dataset's stored statistics (``meta/stats.json``), or ``{}`` when there is none."""
        if self._stats is None:
            p = self.root / "meta" / "stats.json"
            self._stats = _read_json(p) if p.is_file() else {}
        return self._stats

    def __repr__(self) -> str:
        return (
            f"DatasetMeta(root={str(self.root)!r}, version={self.codebase_version}, fps={self.fps}, "
            f"episodes={self.total_episodes}, frames={self.total_frames}, cameras={self.camera_keys})"
        )


# ---- helpers ---------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    return parse_json(read_text(path), path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = read_jsonl(path)
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise MetadataError(f"{path}: row {n} is not a JSON object: {row!r:.80}")
    return rows


def _required(d: Mapping[str, Any], key: str, path: Path) -> Any:
    if key not in d:
        raise MetadataError(f"{path}: required field {key!r} is missing")
    return d[key]


def _parse_features(raw: Any, path: Path) -> dict[str, Feature]:
    if not isinstance(raw, Mapping) or not raw:
        raise MetadataError(f"{path}: 'features' must be a non-empty object")
    out: dict[str, Feature] = {}
    for key, spec in raw.items():
        if not isinstance(spec, Mapping) or "dtype" not in spec:
            raise MetadataError(f"{path}: feature {key!r} has no dtype")
        shape = spec.get("shape") or []
        try:
            shape_t = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise MetadataError(f"{path}: feature {key!r} has a malformed shape {shape!r}") from None
        finfo = spec.get("info")
        if finfo is not None and not isinstance(finfo, Mapping):
            raise MetadataError(f"{path}: feature {key!r}: 'info' must be an object, got {type(finfo).__name__} "
                                f"{finfo!r:.60}")
        if not isinstance(spec["dtype"], str):
            raise MetadataError(f"{path}: feature {key!r}: dtype must be a string, got {spec['dtype']!r:.60}")
        if not isinstance(shape, (list, tuple)):
            raise MetadataError(f"{path}: feature {key!r} has a malformed shape {shape!r:.60}")
        out[key] = Feature(
            key=key,
            dtype=spec["dtype"],
            shape=shape_t,
            names=flatten_names(spec.get("names")),
            info=dict(finfo or {}),
        )
    return out


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read a parquet file, turning any failure into a :class:`DataFileError` naming the file.

    Page checksums (CRC-32, written by prf's writer) are verified where a page has one: a corrupted
    page is a :class:`DataFileError`, not silently changed values. Pages without a checksum (files
    written by LeRobot or other tools without ``write_page_checksum``) cannot be checked."""
    try:
        # (pq.read_table imports pandas: 0.5 s); page checksums verified where the writer stored them
        return pq.ParquetFile(path, page_checksum_verification=True).read(columns=columns)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as e:
        raise DataFileError(f"{path}: cannot be read as parquet ({e})") from None


def _task_index_values(values: list[Any], path: Path) -> np.ndarray:
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise MetadataError(f"{path}: task_index {bad[0]!r} is not an integer")
    idx = np.asarray(values, dtype=np.int64)
    uniq, counts = np.unique(idx, return_counts=True)
    if (counts > 1).any():
        raise MetadataError(f"{path}: task_index {int(uniq[np.argmax(counts > 1)])} appears "
                            f"{int(counts.max())} times; each task_index must name one task")
    return idx


def _load_tasks_v3(root: Path) -> dict[int, str]:
    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        raise MetadataError(f"{path}: missing")
    t = read_parquet(path)
    names = t.column_names
    if "task_index" not in names:
        raise MetadataError(f"{path}: no 'task_index' column (columns: {names})")
    # LeRobot writes the task string as the pandas index ('__index_level_0__'); accept a plain
    # 'task' column too.
    text_col = "task" if "task" in names else next((c for c in names if c != "task_index"), None)
    if text_col is None:
        raise MetadataError(f"{path}: no task text column (columns: {names})")
    col = t.column("task_index")
    if not pa.types.is_integer(col.type):
        raise MetadataError(f"{path}: column 'task_index' has type {col.type}, expected integers")
    if col.null_count:
        raise MetadataError(f"{path}: column 'task_index' has {col.null_count} null value(s)")
    idx = _task_index_values(col.to_pylist(), path)
    txt = t.column(text_col).to_pylist()
    if any(s is None for s in txt):
        raise MetadataError(f"{path}: a task has no text (null in {text_col!r})")
    return {int(i): str(s) for i, s in zip(idx.tolist(), txt)}


def _load_tasks_v2(root: Path) -> dict[int, str]:
    path = root / "meta" / "tasks.jsonl"
    rows = _read_jsonl(path)
    for row in rows:
        if "task_index" not in row or not isinstance(row.get("task"), str):
            raise MetadataError(f"{path}: malformed task row {row!r:.120} (needs task_index and a task string)")
    idx = _task_index_values([r["task_index"] for r in rows], path)
    return {int(i): r["task"] for i, r in zip(idx.tolist(), rows)}
