"""The engine every edit runs on: a list of picks (source dataset, source episode) -> a v3.0 dataset.

Output episode ``i`` is pick ``i`` (plus the start offsets of an append). Data rows are read per
source file with Arrow, filtered to the picked episodes and re-indexed (:mod:`._tables`); videos are
remuxed span by span (:mod:`._remux`), and a source video file kept whole and in order is copied as a
shard of its own (LeRobot does the same). Per-episode stats are carried over from the source
(v3.0 ``stats/*`` columns, v2.1 ``episodes_stats.jsonl``; computed from the data where a v2.0 source
has none), and the dataset stats re-aggregated from them as LeRobot's ``aggregate_stats`` does.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ..errors import EditError
from ..format import DatasetMeta
from ..format import layout
from ..stats import EpisodeStatsColumns, feature_stats, read_episode_stats_columns, stats_to_json
from . import _tables
from ._remux import ShardWriter, SourceVideo


@dataclass(frozen=True)
class Pick:
    """Output episode taken from ``sources[source]``'s episode ``episode``."""

    source: int
    episode: int


@dataclass
class Start:
    """Where the new episodes go: first episode index, first global ``index``, next shard numbers,
    and the tasks already present (an append continues an existing dataset; a fresh build starts at 0)."""

    episode: int = 0
    index: int = 0
    data_shard: int = 0
    video_shard: dict[str, int] = field(default_factory=dict)
    episodes_shard: int = 0
    tasks: list[str] = field(default_factory=list)


@dataclass
class Built:
    """What :func:`build` wrote: the episodes table, each new episode's stats, the tasks (old + new),
    and counters for the summary."""

    episodes: pa.Table
    episode_stats: EpisodeStatsColumns
    tasks: list[str]
    frames: int
    counters: dict[str, int]


def output_features(src: DatasetMeta, keep: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``info.json`` feature declarations of the output: ``keep`` (default every feature) plus the index
    columns, in the source's order."""
    raw = src.info["features"]
    if keep is None:
        keys = list(raw)
    else:
        keep = list(keep)
        unknown = [k for k in keep if k not in raw]
        if unknown:
            raise EditError(f"{src.root}: no feature(s) {unknown} (features: {list(raw)})")
        keys = [k for k in raw if k in keep or k in layout.INDEX_FEATURES]
    out = {k: dict(raw[k]) for k in keys}
    for k, spec in layout.INDEX_FEATURES.items():
        out.setdefault(k, dict(spec))
    return out


def build(root: Path, sources: Sequence[DatasetMeta], picks: Sequence[Pick], features: Mapping[str, Any], *,
          start: Start | None = None, chunks_size: int = layout.DEFAULT_CHUNKS_SIZE,
          data_files_size_in_mb: float = layout.DEFAULT_DATA_FILE_SIZE_IN_MB,
          video_files_size_in_mb: float = layout.DEFAULT_VIDEO_FILE_SIZE_IN_MB, compact: bool = False,
          progress: bool = True, desc: str = "edit") -> Built:
    """Write the data shards, video shards and a ``meta/episodes`` file of ``picks`` under ``root``.

    Raises:
        EditError: an episode's rows disagree with its metadata, a video span is off the file's frames.
        MissingFilesError, VideoError, DataFileError: a source file is missing or unreadable.
    """
    start = start or Start()
    root = Path(root)
    for meta in {id(m): m for m in (sources[p.source] for p in picks)}.values():
        meta.check_files(sorted({p.episode for p in picks if sources[p.source] is meta}))
    cameras = [k for k, f in features.items() if f.get("dtype") == "video"]
    bar = tqdm(total=len(picks) * (1 + len(cameras)), desc=desc, unit="episode", disable=not progress)
    try:
        pt = _PickTable(sources, picks)
        tasks, luts = _tasks(sources, pt, start.tasks)
        data_loc, rows_per, frames, n_data = _write_data(root, sources, picks, pt, features, start, luts, tasks,
                                                         chunks_size, data_files_size_in_mb, compact, bar)
        video_loc: dict[str, dict[str, list]] = {}
        counters = {"copied_files": 0, "remuxed_frames": 0, "reencoded_frames": 0, "padded_frames": 0,
                    "video_files": 0}
        for key in cameras:
            video_loc[key] = _write_videos(root, key, sources, picks, rows_per, start.video_shard.get(key, 0),
                                           chunks_size, video_files_size_in_mb, counters, bar)
        per_stats = _rebase_index_stats(_episode_stats(sources, picks, pt, features), pt, data_loc, start.episode)
    finally:
        bar.close()
    n = len(picks)
    rows: dict[str, list] = {
        "episode_index": list(range(start.episode, start.episode + n)),
        "tasks": [list(pt.tasks[i]) or [tasks[t] for t in data_loc["tasks"][i]] for i in range(len(picks))],
        "length": list(rows_per),
        "data/chunk_index": data_loc["chunk"],
        "data/file_index": data_loc["file"],
        "dataset_from_index": data_loc["from"],
        "dataset_to_index": data_loc["to"],
    }
    for key in cameras:
        for col in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
            rows[f"videos/{key}/{col}"] = video_loc[key][col]
    c, f = layout.chunk_file(start.episodes_shard, chunks_size)
    rows["meta/episodes/chunk_index"] = [c] * n
    rows["meta/episodes/file_index"] = [f] * n
    stat_keys = [k for k in features]
    table = _tables.episodes_table(rows, per_stats.arrow_columns(stat_keys))
    layout.write_parquet(table, root / layout.episodes_path(start.episodes_shard, chunks_size))
    counters["data_files"] = n_data
    return Built(table, per_stats, tasks, frames, counters)


class _PickTable:
    """Per pick, the columns of its source episode's row (length, global start, data file, tasks), read
    from the episode tables at once: an :class:`Episode` record per pick costs ~20 us, seconds for
    100k episodes."""

    def __init__(self, sources: Sequence[DatasetMeta], picks: Sequence[Pick]):
        n = len(picks)
        self.source = np.array([p.source for p in picks], dtype=np.int64)
        self.length = np.zeros(n, dtype=np.int64)
        self.dataset_from_index = np.zeros(n, dtype=np.int64)
        self.data_path: list[str] = [""] * n
        self.tasks: list[tuple[str, ...]] = [()] * n
        for s, meta in enumerate(sources):
            where = np.flatnonzero(self.source == s)
            if not where.size:
                continue
            t = meta.episode_table
            rows = t.ordinals([picks[i].episode for i in where])
            if (rows < 0).any():
                bad = [picks[i].episode for i, r in zip(where, rows) if r < 0]
                raise EditError(f"{meta.root}: unknown episode(s) {bad[:10]}")
            self.length[where] = t.length[rows]
            self.dataset_from_index[where] = t.dataset_from_index[rows]
            files = t.data_file[rows]
            if t.tasks is None:
                tasks: list = [()] * len(rows)
            elif isinstance(t.tasks, list):
                tasks = [tuple(t.tasks[r]) for r in rows]
            else:
                tasks = [tuple(x or ()) for x in t.tasks.take(rows).to_pylist()]
            for k, i in enumerate(where.tolist()):
                self.data_path[i] = t.data_files[int(files[k])]
                self.tasks[i] = tasks[k]


def _tasks(sources: Sequence[DatasetMeta], pt: _PickTable, existing: Sequence[str]
           ) -> tuple[list[str], list[np.ndarray]]:
    """Output tasks (``existing`` first, then the picked episodes' tasks in order of first use; every
    task of a source whose episodes list none) and per source a lookup old task_index -> new (-1: not
    yet known; rows that use such a task add it, see :func:`_write_data`)."""
    tasks = list(existing)
    seen = set(tasks)
    for s, names in zip(pt.source.tolist(), pt.tasks):
        meta = sources[s]
        for t in names or tuple(meta.tasks[i] for i in sorted(meta.tasks)):
            if t not in seen:
                seen.add(t)
                tasks.append(t)
    luts = []
    for meta in sources:
        lut = np.full(max(meta.tasks, default=-1) + 1, -1, dtype=np.int64)
        pos = {t: i for i, t in enumerate(tasks)}
        for ti, text in meta.tasks.items():
            lut[ti] = pos.get(text, -1)
        luts.append(lut)
    return tasks, luts


def _groups(picks: Sequence[Pick], pt: _PickTable) -> list[tuple[int, str, list[int]]]:
    """Consecutive picks from one source data file: ``(source, data_path, [pick positions])``."""
    out: list[tuple[int, str, list[int]]] = []
    for i, p in enumerate(picks):
        path = pt.data_path[i]
        if out and out[-1][0] == p.source and out[-1][1] == path:
            out[-1][2].append(i)
        else:
            out.append((p.source, path, [i]))
    return out


def _write_data(root: Path, sources, picks, pt: _PickTable, features, start: Start, luts, tasks: list[str], chunks_size: int,
                data_mb: float, compact: bool, bar) -> tuple[dict[str, list], list[int], int, int]:
    columns = [k for k, f in features.items() if f.get("dtype") != "video"]
    passthrough: dict[str, pa.Field] = {}
    schema = None
    loc: dict[str, list] = {"chunk": [], "file": [], "from": [], "to": [], "tasks": [], "task_stats": []}
    rows_per: list[int] = []
    pending: list[pa.Table] = []
    pending_bytes = 0
    shard = start.data_shard
    index = start.index
    n_files = 0
    limit = data_mb * 2**20

    def flush() -> None:
        nonlocal pending, pending_bytes, shard, n_files
        if pending:
            layout.write_parquet(pa.concat_tables(pending), root / layout.data_path(shard, chunks_size), compact=compact)
            pending, pending_bytes = [], 0
            shard += 1
            n_files += 1

    for s, rel, positions in _groups(picks, pt):
        meta = sources[s]
        path = meta.path(rel)
        file_cols = pq.read_schema(path).names
        missing = [c for c in columns if c not in file_cols and c not in layout.INDEX_FEATURES]
        if missing:
            raise EditError(f"{path}: declared feature column(s) {missing} are missing")
        table = pq.read_table(path, columns=[c for c in columns if c in file_cols], page_checksum_verification=True)
        if schema is None:
            passthrough = {f.name: f for f in table.schema}
            schema = layout.data_schema(features, passthrough)
        eps = [picks[i].episode for i in positions]
        sub, counts = _tables.select_rows(table, eps, path)
        for i, e, c in zip(positions, eps, counts):
            want = int(pt.length[i])
            if int(c) != want:
                raise EditError(f"{path}: episode {e} has {int(c)} rows, its metadata says length {want}")
        lut = luts[s]
        if "task_index" in sub.column_names and sub.num_rows:
            ti = sub.column("task_index").to_numpy()
            if ti.max() >= lut.size or ti.min() < 0:
                raise EditError(f"{path}: task_index {int(ti.max())} is not in {meta.root}'s tasks")
            unknown = np.unique(ti[lut[ti] < 0])
            for t in unknown:  # a task the episodes table does not list but rows use
                tasks.append(meta.tasks[int(t)])
                lut[int(t)] = len(tasks) - 1
        new_ep = np.repeat(np.array([start.episode + i for i in positions], dtype=np.int64), counts)
        sub = _tables.conform(_tables.reindex(sub, new_ep, index, lut), schema, path)
        c, f = layout.chunk_file(shard, chunks_size)
        offset = index
        ti = sub.column("task_index").to_numpy() if "task_index" in sub.column_names else None
        used = _episode_task_indices(ti, counts, positions, start.episode)
        row = 0
        for i, cnt in zip(positions, counts):
            loc["chunk"].append(c)
            loc["file"].append(f)
            loc["from"].append(offset)
            loc["to"].append(offset + int(cnt))
            loc["tasks"].append(used.get(start.episode + i, []))
            # an episode whose rows use several tasks: its task_index stats from the remapped rows
            loc["task_stats"].append(feature_stats(ti[row:row + int(cnt)]) if len(loc["tasks"][-1]) > 1 else None)
            row += int(cnt)
            rows_per.append(int(cnt))
            offset += int(cnt)
        index = offset
        pending.append(sub)
        pending_bytes += sub.nbytes
        if pending_bytes >= limit:
            flush()
        bar.update(len(positions))
    flush()
    return loc, rows_per, index - start.index, n_files


def _episode_task_indices(ti: np.ndarray | None, counts, positions, first: int) -> dict[int, list[int]]:
    """New task indices each (new) episode's rows use, in ascending order (``ti``: the ``task_index``
    of the episodes' rows one after the other, ``counts`` rows each; None: no such column)."""
    if ti is None or not ti.size:
        return {}
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    nz = counts > 0
    lo = np.full(len(counts), -1, dtype=np.int64)
    hi = np.full(len(counts), -1, dtype=np.int64)
    if nz.any():
        lo[nz] = np.minimum.reduceat(ti, starts[nz])
        hi[nz] = np.maximum.reduceat(ti, starts[nz])
    out: dict[int, list[int]] = {}
    for k, i in enumerate(positions):
        if not nz[k]:
            continue
        if lo[k] == hi[k]:  # one task (the usual case): no sort of the rows
            out[first + i] = [int(lo[k])]
        else:
            out[first + i] = [int(t) for t in np.unique(ti[starts[k]:starts[k] + counts[k]])]
    return out


def _write_videos(root: Path, key: str, sources, picks, lengths: list[int], first_shard: int, chunks_size: int,
                  video_mb: float, counters: dict[str, int], bar) -> dict[str, list]:
    loc: dict[str, list] = {"chunk_index": [], "file_index": [], "from_timestamp": [], "to_timestamp": []}
    spans = []
    for p, n in zip(picks, lengths):
        meta = sources[p.source]
        ref = meta.episodes[p.episode].videos.get(key)
        if ref is None:
            raise EditError(f"{meta.root}: episode {p.episode} has no video for camera {key!r}")
        spans.append((meta, meta.path(ref.path), ref, n, p))
    shard = first_shard
    writer: ShardWriter | None = None
    src: SourceVideo | None = None
    limit = video_mb * 2**20
    i = 0
    try:
        while i < len(spans):
            meta, path, ref, n, p = spans[i]
            if src is None or src.path != str(path):
                if src is not None:
                    src.close()
                src = SourceVideo(path)
            idx = src.index
            f0 = _first_frame(src, ref, meta, p)
            # a run of picks covering the whole file in order: copy the file as a shard of its own (only
            # a run starting at frame 0 can; scanning from every pick made a file of k picks cost k^2)
            j, f = i, f0
            while (f0 == 0 and j < len(spans) and str(spans[j][1]) == str(path)
                   and _first_frame(src, spans[j][2], spans[j][0], spans[j][4]) == f):
                f += spans[j][3]
                j += 1
            if meta.is_v3 and f0 == 0 and f == idx.num_frames:
                if writer is not None:
                    writer.close()
                    writer, shard = None, shard + 1
                dst = root / layout.video_path(key, shard, chunks_size)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dst)
                c, fi = layout.chunk_file(shard, chunks_size)
                for k in range(i, j):
                    r = spans[k][2]
                    loc["chunk_index"].append(c)
                    loc["file_index"].append(fi)
                    loc["from_timestamp"].append(float(r.from_timestamp))
                    loc["to_timestamp"].append(float(r.to_timestamp))
                shard += 1
                counters["copied_files"] += 1
                counters["video_files"] += 1
                bar.update(j - i)
                i = j
                continue
            if writer is not None and writer.bytes >= limit:
                writer.close()
                writer, shard = None, shard + 1
            if writer is None:
                writer = ShardWriter(root / layout.video_path(key, shard, chunks_size), src, meta.fps)
                counters["video_files"] += 1
            if (idx.width, idx.height) != (writer.width, writer.height):
                raise EditError(f"{path}: camera {key!r} is {idx.width}x{idx.height}, the output shard "
                                f"{writer.width}x{writer.height}")
            if f0 + n > idx.num_frames:
                raise EditError(f"{path}: episode {p.episode} of {meta.root} needs frames {f0}..{f0 + n - 1}, "
                                f"the video has {idx.num_frames}")
            # picks that follow each other in the source file go in as one span: no cut between them,
            # so nothing to re-encode there (an episode start that is not a keyframe is no GOP boundary)
            run = [(ref, f0, n)]
            j = i + 1
            while j < len(spans) and str(spans[j][1]) == str(path) and spans[j][0] is meta:
                fj = _first_frame(src, spans[j][2], spans[j][0], spans[j][4])
                if fj != run[-1][1] + run[-1][2]:
                    break
                run.append((spans[j][2], fj, spans[j][3]))
                j += 1
            f_end = run[-1][1] + run[-1][2]
            if f_end > idx.num_frames:
                raise EditError(f"{path}: episode {spans[j - 1][4].episode} of {meta.root} needs frames up to "
                                f"{f_end - 1}, the video has {idx.num_frames}")
            before, pad_before = writer.reencoded_frames, writer.padded_frames
            t = writer.add_span(src, f0, f_end)
            counters["reencoded_frames"] += writer.reencoded_frames - before
            counters["padded_frames"] += writer.padded_frames - pad_before
            counters["remuxed_frames"] += f_end - f0 - (writer.reencoded_frames - before)
            t_f0 = float(Fraction(int(idx.pts[f0])) * src.time_base)
            c, fi = layout.chunk_file(shard, chunks_size)
            for r, fk, nk in run:
                # output time of the pick's from_timestamp (keeps the source's sub-frame offset to the pts)
                start_k = t + float(r.from_timestamp) - t_f0
                loc["chunk_index"].append(c)
                loc["file_index"].append(fi)
                loc["from_timestamp"].append(start_k)
                loc["to_timestamp"].append(start_k + nk / meta.fps)
            bar.update(len(run))
            i = j
        if writer is not None:
            writer.close()
            writer = None
    finally:
        if writer is not None:
            writer.abort()
        if src is not None:
            src.close()
    return loc


def _first_frame(src: SourceVideo, ref, meta: DatasetMeta, p: Pick) -> int:
    f, d = src.index.nearest(np.array([float(ref.from_timestamp)]))
    if d[0] > 0.5 / meta.fps:
        raise EditError(f"{src.path}: episode {p.episode} of {meta.root} starts at {ref.from_timestamp:.6f}s, "
                        f"{d[0]:.6f}s away from the nearest frame")
    return int(f[0])


def _episode_stats(sources: Sequence[DatasetMeta], picks: Sequence[Pick], pt: _PickTable,
                   features: Mapping[str, Any]) -> EpisodeStatsColumns:
    """Each pick's stored per-episode stats (computed from the data where a source stores none, as
    v2.0), in pick order, for the output's features; read column-wise (no object per episode)."""
    parts, order = [], []
    for s, meta in enumerate(sources):
        where = np.flatnonzero(pt.source == s)
        if not where.size:
            continue
        eps = [picks[i].episode for i in where]
        cols = read_episode_stats_columns(meta, eps)
        have = np.zeros(len(eps), dtype=bool)
        for ok in cols.present.values():
            have |= ok
        if not have.all():  # none stored (v2.0): computed, as LeRobot's converter does
            missing = [e for e, h in zip(eps, have) if not h]
            computed = _compute_stats(meta, missing)
            fill = EpisodeStatsColumns.from_dicts([computed[e] for e in missing])
            # row j: its stored row where it has one, else its computed row (after the stored ones)
            cols = EpisodeStatsColumns.concat([cols, fill]).take(
                np.where(have, np.arange(len(eps)), len(eps) + np.cumsum(~have) - 1))
        parts.append(cols)
        order.append(where)
    allc = EpisodeStatsColumns.concat(parts)
    return allc.take(np.argsort(np.concatenate(order), kind="stable")).select(features)


def _rebase_index_stats(per: EpisodeStatsColumns, pt: _PickTable, data_loc: Mapping[str, list],
                        first_episode: int) -> EpisodeStatsColumns:
    """Per-episode stats of the re-indexed columns as the output rows have them: ``episode_index``
    (constant: the new episode index), ``index`` (shifted by the episode's new start), ``task_index``
    (the remapped task; computed from the rows where an episode uses several). LeRobot 0.4.4's
    ``delete_episodes`` carries these over unchanged, so they describe the source rows, and a check
    of stats against the data (``prf.validate``) would flag them; every other feature's stats are the
    source's, as LeRobot's."""
    n = len(pt.length)
    delta = np.asarray(data_loc["from"], dtype=np.int64) - pt.dataset_from_index
    if "episode_index" in per.stats:
        _set_constant(per.stats["episode_index"], np.arange(first_episode, first_episode + n), slice(None))
    if "index" in per.stats:
        for name, v in per.stats["index"].items():
            if name not in ("std", "count"):
                v += delta.reshape(-1, *([1] * (v.ndim - 1)))
    if "task_index" in per.stats:
        d = per.stats["task_index"]
        single = np.array([len(t) == 1 for t in data_loc["tasks"]], dtype=bool)
        first = np.array([t[0] if t else -1 for t in data_loc["tasks"]], dtype=np.float64)
        _set_constant(d, first[single], single)
        for i, st in enumerate(data_loc["task_stats"]):
            if st is not None:
                for name, v in d.items():
                    if name in st:
                        v[i] = np.asarray(st[name], dtype=np.float64).reshape(v.shape[1:])
    return per


def _set_constant(d: dict[str, np.ndarray], values: np.ndarray, rows) -> None:
    """Stats of rows whose every frame has the value ``values[j]`` (``count`` kept)."""
    for name, v in d.items():
        if name != "count":
            v[rows] = 0.0 if name == "std" else values.reshape(-1, *([1] * (v.ndim - 1)))


def _compute_stats(meta: DatasetMeta, episodes: list[int]) -> dict[int, dict]:
    """Per-episode stats computed from the data (v2.0 sources store none), as LeRobot's converter does."""
    from .._open import open_dataset
    from ..stats import compute_stats

    ds = open_dataset(meta.root, episodes=episodes)
    _, per = compute_stats(ds, per_episode=True, progress=False)
    return per


def info_json(base: DatasetMeta, features: Mapping[str, Any], *, total_episodes: int, total_frames: int,
              total_tasks: int, chunks_size: int, data_mb: float, video_mb: float) -> dict[str, Any]:
    """``meta/info.json`` of the output: the source's, with v3.0's templates, totals and ``features``."""
    info = {k: v for k, v in base.info.items() if k not in ("total_chunks", "total_videos", "features")}
    has_video = any(f.get("dtype") == "video" for f in features.values())
    info.update({
        "codebase_version": layout.CODEBASE_VERSION,
        "total_episodes": total_episodes,
        "total_frames": total_frames,
        "total_tasks": total_tasks,
        "chunks_size": chunks_size,
        "data_files_size_in_mb": data_mb,
        "video_files_size_in_mb": video_mb,
        "splits": {"train": f"0:{total_episodes}"},
        "data_path": layout.DATA_PATH,
        "video_path": layout.VIDEO_PATH if has_video else None,
        "features": dict(features),
    })
    return info


def write_dataset(root: Path, sources: Sequence[DatasetMeta], picks: Sequence[Pick], *,
                  features: Sequence[str] | None = None, compact: bool = False, progress: bool = True,
                  desc: str = "edit", chunks_size: int | None = None, data_files_size_in_mb: float | None = None,
                  video_files_size_in_mb: float | None = None) -> dict[str, Any]:
    """A whole v3.0 dataset of ``picks`` at ``root`` (a fresh folder): shards, ``meta/episodes``,
    ``meta/tasks.parquet``, ``meta/info.json``, ``meta/stats.json``. Returns a summary dict."""
    if not picks:
        raise EditError("no episodes to write")
    base = sources[0]
    feats = output_features(base, features)
    chunks = int(chunks_size or base.info.get("chunks_size") or layout.DEFAULT_CHUNKS_SIZE)
    data_mb = float(data_files_size_in_mb or base.info.get("data_files_size_in_mb") or
                    layout.DEFAULT_DATA_FILE_SIZE_IN_MB)
    video_mb = float(video_files_size_in_mb or base.info.get("video_files_size_in_mb") or
                     layout.DEFAULT_VIDEO_FILE_SIZE_IN_MB)
    built = build(root, sources, picks, feats, chunks_size=chunks, data_files_size_in_mb=data_mb,
                  video_files_size_in_mb=video_mb, compact=compact, progress=progress, desc=desc)
    meta = root / "meta"
    layout.write_tasks(meta / "tasks.parquet", built.tasks)
    info = info_json(base, feats, total_episodes=len(picks), total_frames=built.frames, total_tasks=len(built.tasks),
                     chunks_size=chunks, data_mb=data_mb, video_mb=video_mb)
    (meta / "info.json").write_text(json.dumps(info, indent=4))
    stats = built.episode_stats.aggregate()
    (meta / "stats.json").write_text(json.dumps(stats_to_json(stats), indent=4))
    return {"episodes": len(picks), "frames": built.frames, "tasks": len(built.tasks), **built.counters}
