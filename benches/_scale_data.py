"""Generated LeRobot v3.0 datasets for ``bench_scale.py`` (and the scale tests): no-camera datasets of
any size written directly with pyarrow in the layout LeRobot 0.4.4 reads (``data/chunk-000/file-XXX.parquet``
shards of about 100 MB, ``meta/episodes/chunk-000/file-000.parquet``, ``meta/tasks.parquet``,
``meta/info.json``, ``meta/stats.json``), and a camera dataset written with prf's own writer.

Plain NumPy + pyarrow (no prf import for the no-camera datasets), so the tests can use it too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
_INDEX = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
TASKS = ["pick the cube", "place the cube", "push the block", "open the drawer"]


def bench_data_dir() -> Path:
    """``$PRF_BENCH_DATA``, else ``~/.cache/prf/bench``."""
    return Path(os.environ.get("PRF_BENCH_DATA", Path.home() / ".cache" / "prf" / "bench"))


def _write_tasks(path: Path) -> None:
    pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [], "columns": [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
        {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object", "metadata": None}],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0"}
    t = pa.table({"task_index": pa.array(range(len(TASKS)), pa.int64()), "__index_level_0__": pa.array(TASKS)})
    pq.write_table(t.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), path)


def _stats(x: np.ndarray) -> dict:
    x = x.reshape(len(x), -1).astype(np.float64)
    return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(), "count": [len(x)]}


_QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def _add_episode_stats(out: dict[str, list], cols: dict[str, np.ndarray], offsets: np.ndarray,
                       lengths: np.ndarray) -> None:
    """Append per-episode stats rows (lists, as LeRobot's episodes table holds them) for episodes at
    ``offsets`` (row offsets within ``cols``) with ``lengths``."""
    for key, a in cols.items():
        x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
        mn, mx = np.minimum.reduceat(x, offsets), np.maximum.reduceat(x, offsets)
        mean = np.add.reduceat(x, offsets) / lengths[:, None]
        var = np.maximum(np.add.reduceat(x * x, offsets) / lengths[:, None] - mean**2, 0.0)
        qs = [np.quantile(x[o:o + n], list(_QUANTILES.values()), axis=0) for o, n in zip(offsets, lengths)]
        cols_out = {"min": mn, "max": mx, "mean": mean, "std": np.sqrt(var)}
        for stat, v in cols_out.items():
            out.setdefault(f"stats/{key}/{stat}", []).extend(v.tolist())
        out.setdefault(f"stats/{key}/count", []).extend([[int(n)] for n in lengths])
        for j, q in enumerate(_QUANTILES):
            out.setdefault(f"stats/{key}/{q}", []).extend([qv[j].tolist() for qv in qs])


def generate_nocam(root: Path, frames: int, *, dim: int = 14, fps: int = 30, mean_length: int = 100,
                   rows_per_file: int = 700_000, row_group_size: int = 100_000, seed: int = 0,
                   episode_stats: bool = False) -> Path:
    """A v3.0 dataset of about ``frames`` frames (episodes of ``mean_length`` +- 20 frames),
    ``observation.state`` and ``action`` ``float32 [dim]``, no cameras. Written to a temporary folder
    and renamed into place (an interrupted generation leaves nothing at ``root``). ``episode_stats``:
    also the per-episode ``stats/<feature>/<stat>`` columns LeRobot writes (min, max, mean, std, count,
    q01..q99 of every feature, index columns included), as a dataset prf or LeRobot can append to."""
    root = Path(root)
    if (root / "meta" / "info.json").is_file():
        return root
    rng = np.random.default_rng(seed)
    n_eps = max(1, frames // mean_length)
    lengths = rng.integers(mean_length - 20, mean_length + 21, n_eps).astype(np.int64)
    lengths[-1] = max(1, lengths[-1] + frames - int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    total = int(lengths.sum())
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    task_of = (np.arange(n_eps) % len(TASKS)).astype(np.int64)
    # episodes go to a data file until it holds rows_per_file rows
    file_of = np.minimum(starts // rows_per_file, 999).astype(np.int64)
    fields = [pa.field("observation.state", pa.list_(pa.float32(), dim)), pa.field("action", pa.list_(pa.float32(), dim)),
              pa.field("timestamp", pa.float32()), pa.field("frame_index", pa.int64()),
              pa.field("episode_index", pa.int64()), pa.field("index", pa.int64()), pa.field("task_index", pa.int64())]
    hf = {"info": {"features": {
        "observation.state": {"feature": {"dtype": "float32", "_type": "Value"}, "length": dim, "_type": "List"},
        "action": {"feature": {"dtype": "float32", "_type": "Value"}, "length": dim, "_type": "List"},
        **{k: {"dtype": v["dtype"], "_type": "Value"} for k, v in _INDEX.items()}}}}
    schema = pa.schema(fields, metadata={"huggingface": json.dumps(hf)})
    sums = {k: [0.0, 0.0, None, None, 0] for k in ("observation.state", "action")}
    ep_stats: dict[str, list] = {}
    for f in np.unique(file_of).tolist():
        eps = np.flatnonzero(file_of == f)
        lo, hi = int(starts[eps[0]]), int(starts[eps[-1]] + lengths[eps[-1]])
        n = hi - lo
        ep_col = np.repeat(eps, lengths[eps]).astype(np.int64)
        frame = np.arange(lo, hi, dtype=np.int64) - starts[ep_col]
        cols = {
            "observation.state": rng.standard_normal((n, dim), dtype=np.float32),
            "action": rng.standard_normal((n, dim), dtype=np.float32),
        }
        for k, a in cols.items():
            s = sums[k]
            s[0] = s[0] + a.sum(0, dtype=np.float64)
            s[1] = s[1] + (a.astype(np.float64) ** 2).sum(0)
            s[2] = a.min(0) if s[2] is None else np.minimum(s[2], a.min(0))
            s[3] = a.max(0) if s[3] is None else np.maximum(s[3], a.max(0))
            s[4] += n
        arrays = [pa.FixedSizeListArray.from_arrays(pa.array(cols[k].reshape(-1)), dim) for k in ("observation.state", "action")]
        arrays += [pa.array((frame / fps).astype(np.float32)), pa.array(frame), pa.array(ep_col),
                   pa.array(np.arange(lo, hi, dtype=np.int64)), pa.array(task_of[ep_col])]
        if episode_stats:
            named = dict(cols, timestamp=(frame / fps).astype(np.float32), frame_index=frame, episode_index=ep_col,
                         index=np.arange(lo, hi, dtype=np.int64), task_index=task_of[ep_col])
            _add_episode_stats(ep_stats, named, (starts[eps] - lo).astype(np.int64), lengths[eps])
        path = tmp / DATA_PATH.format(chunk_index=0, file_index=f)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path, row_group_size=row_group_size)
    episodes = pa.table({
        "episode_index": pa.array(np.arange(n_eps, dtype=np.int64)),
        "tasks": pa.array([[TASKS[t]] for t in task_of.tolist()], pa.list_(pa.string())),
        "length": pa.array(lengths),
        "data/chunk_index": pa.array(np.zeros(n_eps, np.int64)),
        "data/file_index": pa.array(file_of),
        "dataset_from_index": pa.array(starts.astype(np.int64)),
        "dataset_to_index": pa.array((starts + lengths).astype(np.int64)),
        **{name: pa.array(v, pa.list_(pa.int64() if name.endswith("/count") else pa.float64()))
           for name, v in ep_stats.items()},
        "meta/episodes/chunk_index": pa.array(np.zeros(n_eps, np.int64)),
        "meta/episodes/file_index": pa.array(np.zeros(n_eps, np.int64)),
    })
    pq.write_table(episodes, tmp / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    _write_tasks(tmp / "meta" / "tasks.parquet")
    stats = {}
    for k, (s1, s2, mn, mx, n) in sums.items():
        mean = s1 / n
        stats[k] = {"min": mn.tolist(), "max": mx.tolist(), "mean": mean.tolist(),
                    "std": np.sqrt(np.maximum(s2 / n - mean**2, 0)).tolist(), "count": [n]}
    features = {
        "observation.state": {"dtype": "float32", "shape": [dim], "names": [f"s{i}" for i in range(dim)]},
        "action": {"dtype": "float32", "shape": [dim], "names": [f"a{i}" for i in range(dim)]},
        **_INDEX,
    }
    info = {"codebase_version": "v3.0", "robot_type": "bench", "total_episodes": n_eps, "total_frames": total,
            "total_tasks": len(TASKS), "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{n_eps}"},
            "data_path": DATA_PATH, "video_path": None, "features": features}
    (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    (tmp / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
    root.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, root)
    return root


def generate_camera(root: Path, frames: int, *, size: int = 64, fps: int = 30, mean_length: int = 100,
                    video_files_size_in_mb: float = 0.25, seed: int = 0) -> Path:
    """A v3.0 dataset of about ``frames`` frames with one ``size x size`` video camera
    (``observation.images.cam``) in many small mp4 shards, ``observation.state``/``action``
    ``float32 [6]``; written with prf's own writer (what LeRobot 0.4.4 reads, tests/test_writer_lerobot_readback)."""
    root = Path(root)
    if (root / "meta" / "info.json").is_file():
        return root
    import prf

    rng = np.random.default_rng(seed)
    n_eps = max(1, frames // mean_length)
    lengths = rng.integers(mean_length - 20, mean_length + 21, n_eps)
    yy, xx = np.mgrid[0:size, 0:size]

    def episodes():
        for e, n in enumerate(lengths.tolist()):
            t = np.arange(n)[:, None, None]
            base = ((xx[None] + yy[None] + 3 * t + 7 * e) % 256).astype(np.uint8)
            img = np.stack([base, np.roll(base, 5, axis=1), (255 - base)], axis=-1)
            yield {"observation.images.cam": img,
                   "observation.state": rng.standard_normal((n, 6), dtype=np.float32),
                   "action": rng.standard_normal((n, 6), dtype=np.float32),
                   "task": TASKS[e % len(TASKS)]}

    return prf.write_lerobot_dataset(
        root, {"observation.images.cam": {"dtype": "video", "shape": [size, size, 3]},
               "observation.state": {"dtype": "float32", "shape": [6]},
               "action": {"dtype": "float32", "shape": [6]}},
        episodes(), fps, video_files_size_in_mb=video_files_size_in_mb, progress=False)
