"""``prf.log_to_lerobot``: a robot log (or a :class:`RoboticsDataFrame`) -> a LeRobot v3.0 dataset.

Chosen topics are resampled onto the dataset's frame grid (``fps``): state and action columns with
``method`` (linear interpolation by default), camera images by the last image at or before each frame
time (images are never interpolated). Image topics, raw (``sensor_msgs/Image``) or compressed (JPEG /
PNG ``sensor_msgs/CompressedImage``), become video features. The dataset is written by
:func:`prf.write_lerobot_dataset` (atomic; frames are decoded and encoded one episode at a time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataFrameError, WriteError
from ._images import image_reader
from .dataframe import RoboticsDataFrame, asof_indices

_SKIP_PREFIXES = ("header.",)
_SKIP_COLUMNS = ("log_time", "publish_time", "source_log_time")


def _load(source: Any, needed: Callable[[Path], list[str] | None] | None = None, progress: bool = True
          ) -> RoboticsDataFrame:
    if isinstance(source, RoboticsDataFrame):
        return source
    p = Path(source)
    from .convert import METADATA_FILE

    if p.is_dir() and (p / METADATA_FILE).is_file():
        return RoboticsDataFrame.from_converted(p)
    topics = needed(p) if needed is not None else None
    return RoboticsDataFrame.from_log(p, topics=topics, progress=progress)


def _log_topics(path: Path) -> list[str] | None:
    """Topic names of an indexed log without converting it (None when the log has no index)."""
    from .convert import open_log

    try:
        with open_log(path) as log:
            if not log.counts_known:
                return None
            return sorted({s.topic for s in log.streams.values()})
    except Exception:  # noqa: BLE001 - the conversion reports the real error
        return None


def resolve_spec(spec: Any, topics: Sequence[str], columns: Mapping[str, Sequence[str]] | None = None
                 ) -> tuple[str, str | None]:
    """``"topic"`` -> ``(topic, None)`` (all its numeric columns); ``"topic/column"`` or
    ``("topic", "column")`` -> ``(topic, column)``. The topic is the longest topic name that prefixes
    the spec (topic names contain ``/`` themselves, e.g. ``"/joint_states/position"``).

    Raises:
        DataFrameError: no topic matches (or the column is not in the topic).
    """
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        topic, col = str(spec[0]), str(spec[1])
        if topic not in topics:
            raise DataFrameError(f"unknown topic {topic!r} in {spec!r}; topics: {list(topics)}")
        if columns is not None and col not in columns[topic]:
            raise DataFrameError(f"topic {topic!r} has no column {col!r}; columns: {list(columns[topic])}")
        return topic, col
    s = str(spec)
    if s in topics:
        return s, None
    best = None
    for t in topics:
        if s.startswith(t.rstrip("/") + "/") and (best is None or len(t) > len(best)):
            col = s[len(t.rstrip("/")) + 1:]
            if columns is None or col in columns[t]:
                best = t
    if best is None:
        raise DataFrameError(f"{s!r} names no topic or 'topic/column' of the log; topics: {list(topics)}")
    return best, s[len(best.rstrip("/")) + 1:]


def _numeric_columns(table: pa.Table) -> list[str]:
    out = []
    for f in table.schema:
        if f.name in _SKIP_COLUMNS or f.name.startswith(_SKIP_PREFIXES):
            continue
        t = f.type
        inner = t.value_type if (pa.types.is_fixed_size_list(t) or pa.types.is_list(t)) else t
        if pa.types.is_floating(inner) or pa.types.is_integer(inner):
            out.append(f.name)
    return out


def _matrix(col: pa.ChunkedArray, where: str) -> np.ndarray:
    """``float64 [N, K]`` of a numeric column (scalar, fixed-size list, equal-length list); nulls raise."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        first = int(np.flatnonzero(np.asarray(arr.is_null().to_numpy(zero_copy_only=False)))[0])
        raise DataFrameError(f"{where}: no value at frame {first} (no sample near that time; widen the "
                             f"tolerance or shorten the time range)")
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(-1, 1)
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
        if len(lengths) and np.any(lengths != lengths[0]):
            raise DataFrameError(f"{where}: arrays of different lengths ({sorted(set(lengths.tolist()))[:5]})")
        k = int(lengths[0]) if len(lengths) else (t.list_size if pa.types.is_fixed_size_list(t) else 0)
        flat = arr.flatten()
        return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(len(arr), k)
    raise DataFrameError(f"{where}: column of type {t} is not numeric")


def _names(table: pa.Table, col: str, k: int) -> list[str]:
    if k == 1 and not (pa.types.is_fixed_size_list(table.schema.field(col).type)
                       or pa.types.is_list(table.schema.field(col).type)):
        return [col]
    if "name" in table.column_names and pa.types.is_list(table.schema.field("name").type) and table.num_rows:
        first = table.column("name")[0].as_py()
        if isinstance(first, list) and len(first) == k and all(isinstance(x, str) for x in first):
            return [f"{n}.{col}" for n in first]
    return [f"{col}.{i}" for i in range(k)]


def _episode_grids(t0: int, t1: int, fps: int, split: Any) -> list[np.ndarray]:
    def grid(a: int, b: int) -> np.ndarray:
        """Frame times from ``a`` while ``<= b`` (both ns): ``a + floor(k * 1e9 / fps)``."""
        # k frames with floor(k * 1e9 / fps) <= b - a, i.e. k * 1e9 < (b - a + 1) * fps
        n = -(-(b - a + 1) * fps // 10**9) if b >= a else 0
        return a + (np.arange(n, dtype=np.int64) * 10**9) // fps

    if split is None:
        return [grid(t0, t1)]
    if isinstance(split, (int, np.integer)) and not isinstance(split, bool):
        if split <= 0:
            raise DataFrameError(f"episode_split as a frame count must be positive, got {split}")
        g = grid(t0, t1)
        return [g[i:i + int(split)] for i in range(0, len(g), int(split))]
    grids = []
    for span in split:
        try:
            a, b = int(span[0]), int(span[1])
        except (TypeError, ValueError, IndexError):
            raise DataFrameError(f"episode_split spans must be (start_ns, end_ns) pairs, got {span!r}") from None
        lo, hi = max(a, t0), min(b - 1, t1)
        g = grid(lo, hi)
        if len(g) == 0:
            raise DataFrameError(f"episode span ({a}, {b}) holds no frame inside the data's time range "
                                 f"[{t0}, {t1}]")
        grids.append(g)
    return grids


def log_to_lerobot(
    source: Any,
    root: str | Path,
    *,
    fps: int,
    state: Sequence[Any],
    action: Sequence[Any] | None = None,
    cameras: Mapping[str, str] | None = None,
    episode_split: Any = None,
    task: str | Sequence[str] = "",
    robot_type: str | None = None,
    method: str = "linear",
    tolerance_ns: int | None = None,
    video_codec: str = "auto",
    overwrite: bool = False,
    compact: bool = False,
    progress: bool = True,
) -> Path:
    """Write a LeRobot v3.0 dataset from a robot log.

    Args:
        source: a log path (MCAP, ROS bag; converted with :func:`prf.convert_log`, only the topics
            needed where the log has an index), a converted folder, or a :class:`RoboticsDataFrame`.
        root: the dataset folder to write.
        fps: frames per second of the dataset; frame ``k`` of an episode starting at ``t0`` is the log
            at ``t0 + floor(k * 1e9 / fps)`` ns.
        state: the ``observation.state`` vector, in order: ``"topic"`` (all its numeric columns except
            ``header.*`` and times), ``"topic/column"`` or ``("topic", "column")``; array columns add one
            element per entry (named from a ``name`` column when the topic has one, as
            ``sensor_msgs/JointState`` does). Stored as ``float32 [D]``.
        action: the ``action`` vector, the same way (optional).
        cameras: ``{camera key: image topic}``, e.g. ``{"observation.images.front": "/camera/image_raw"}``;
            raw or JPEG/PNG compressed images, or compressed video (``foxglove.CompressedVideo``: H.264,
            H.265, VP9, AV1, one frame per message, decoded in order), stored as video (``uint8 [H, W, 3]``).
        episode_split: ``None`` (one episode), an int (episodes of at most that many frames), or
            ``[(start_ns, end_ns), ...]`` (one episode per span, ``start <= t < end``).
        task: the task string, or one per episode.
        method: ``"linear"``, ``"previous"`` or ``"nearest"`` resampling of state and action (see
            :meth:`RoboticsDataFrame.resample`).
        tolerance_ns: the largest gap between a frame time and the sample(s) it uses (``None``: any).
        video_codec, overwrite, compact, progress: as :func:`prf.write_lerobot_dataset`.

    The frames span the time where every chosen topic has data: from the latest first message to the
    earliest last message among them.

    Returns:
        The dataset root.

    Raises:
        DataFrameError: a spec names no topic/column, a column is not numeric or has arrays of changing
            length, the topics do not overlap in time, a frame has no sample within ``tolerance_ns``, an
            image cannot be decoded.
        WriteError: the dataset cannot be written (nothing is left at ``root``).
    """
    if not isinstance(fps, (int, np.integer)) or fps <= 0:
        raise DataFrameError(f"fps must be a positive integer, got {fps!r}")
    cameras = dict(cameras or {})
    specs = {"observation.state": list(state), **({"action": list(action)} if action else {})}
    if not specs["observation.state"]:
        raise DataFrameError("state must name at least one topic or column")

    def needed(p: Path) -> list[str] | None:
        names = _log_topics(p)
        if names is None:
            return None
        used = {resolve_spec(s, names)[0] for v in specs.values() for s in v} | set(cameras.values())
        missing = [t for t in cameras.values() if t not in names]
        if missing:
            raise DataFrameError(f"camera topic(s) {missing} are not in {p}; topics: {names}")
        return sorted(used)

    df = _load(source, needed, progress)
    columns = {t: df[t].column_names for t in df.topics}
    resolved = {key: [resolve_spec(s, df.topics, columns) for s in v] for key, v in specs.items()}
    for cam, topic in cameras.items():
        if topic not in df:
            raise DataFrameError(f"camera {cam!r}: unknown topic {topic!r}; topics: {df.topics}")
    used = sorted({t for v in resolved.values() for t, _ in v} | set(cameras.values()))
    firsts, lasts = [], []
    for t in used:
        times = df.times(t)
        if not len(times):
            raise DataFrameError(f"topic {t!r} has no messages")
        firsts.append(int(times[0]))
        lasts.append(int(times[-1]))
    t0, t1 = max(firsts), min(lasts)
    if t1 < t0:
        raise DataFrameError(f"the topics {used} do not overlap in time (latest start {t0} > earliest end {t1})")
    grids = _episode_grids(t0, t1, int(fps), episode_split)
    tasks_list = [task] * len(grids) if isinstance(task, str) else list(task)
    if len(tasks_list) != len(grids):
        raise DataFrameError(f"{len(tasks_list)} task(s) for {len(grids)} episode(s)")

    # feature layout from the full grid
    state_topics = sorted({t for v in resolved.values() for t, _ in v})
    features: dict[str, dict[str, Any]] = {}
    expanded: dict[str, list[tuple[str, str]]] = {}
    probe = df.resample_at(grids[0][:2], method, topics=state_topics)
    for key, items in resolved.items():
        names: list[str] = []
        cols: list[tuple[str, str]] = []
        for topic, col in items:
            for c in ([col] if col is not None else _numeric_columns(df[topic])):
                k = _matrix(probe[topic].column(c), f"{topic}/{c}").shape[1]
                names += _names(df[topic], c, k)
                cols.append((topic, c))
        if not cols:
            raise DataFrameError(f"{key}: the topics {items} have no numeric columns")
        features[key] = {"dtype": "float32", "shape": [len(names)], "names": names}
        expanded[key] = cols
    readers = {}
    for cam, topic in cameras.items():
        readers[cam] = image_reader(df[topic], topic)
        first = readers[cam](0)
        features[cam] = {"dtype": "video", "shape": list(first.shape), "names": ["height", "width", "channels"]}

    def episodes() -> Iterator[dict[str, Any]]:
        for e, grid in enumerate(grids):
            rs = df.resample_at(grid, method, tolerance_ns=tolerance_ns, topics=state_topics)
            ep: dict[str, Any] = {"task": tasks_list[e]}
            for key, cols in expanded.items():
                mats = [_matrix(rs[t].column(c), f"episode {e}, {key} from {t}/{c}") for t, c in cols]
                vec = np.concatenate(mats, axis=1).astype(np.float32)
                if vec.shape[1] != features[key]["shape"][0]:
                    raise DataFrameError(f"episode {e}: {key} has {vec.shape[1]} values per frame, the first "
                                         f"frames had {features[key]['shape'][0]}")
                ep[key] = vec
            for cam, topic in cameras.items():
                idx = asof_indices(df.times(topic), grid, tolerance_ns, "backward")
                if np.any(idx < 0):
                    k = int(np.flatnonzero(idx < 0)[0])
                    raise DataFrameError(f"episode {e}: camera {cam!r} ({topic}) has no image at or before frame "
                                         f"{k} within the tolerance")
                ep[cam] = _frames(readers[cam], idx, features[cam]["shape"], cam)
            yield ep

    from ..writer import write_lerobot_dataset

    tasks_unique = list(dict.fromkeys(tasks_list))
    return write_lerobot_dataset(root, features, episodes(), int(fps), tasks=tasks_unique, robot_type=robot_type,
                                 video_codec=video_codec, overwrite=overwrite, compact=compact,
                                 progress=progress)


def _frames(read: Any, idx: np.ndarray, shape: list[int], cam: str) -> Iterable[np.ndarray]:
    """Decoded frames for rows ``idx`` (each distinct image decoded once in a row)."""

    class _Frames:
        def __len__(self) -> int:
            return len(idx)

        def __iter__(self) -> Iterator[np.ndarray]:
            last_i, last = -1, None
            for i in idx:
                if i != last_i:
                    last, last_i = read(int(i)), int(i)
                    if list(last.shape) != list(shape):
                        raise WriteError(f"camera {cam!r}: image {int(i)} is {last.shape}, the first image was "
                                         f"{tuple(shape)}")
                yield last

    return _Frames()
