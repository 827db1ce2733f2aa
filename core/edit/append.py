"""Append episodes to an existing v3.0 dataset in place, one revision per append.

An append never rewrites an existing shard: the new rows go to new data shards, the new frames to new
video shards, the new episode rows to a new ``meta/episodes`` file; ``info.json``, ``stats.json`` and
``tasks.parquet`` (existing task indices unchanged, new tasks after them) are replaced. The new state is
assembled in a temporary folder beside the dataset holding hard links to the unchanged files (no data
is copied), then swapped in by renaming, so a reader sees the old dataset or the new one, never a mix,
and an interrupted append leaves the old one.

Revisions: ``meta/revisions.jsonl`` gets one line per append (``revision`` counter from 1, ``time``
UTC ISO 8601, ``operation``, ``source``, the episode and frame ranges added, totals after, tasks and
files added). Revision 0 is the dataset before the first append. Appends only add episodes, so
revision r is the first ``total_episodes`` episodes of that record: :func:`open_revision` opens it.

A second writer is refused: an append holds an exclusive ``flock`` on ``.NAME.prf-lock`` beside the
dataset (released by the OS even when the process is killed).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator

from .._atomic import replace_dir, temp_dir_for
from ..errors import EditError
from ..format import DatasetMeta, layout
from ..stats import EpisodeStatsColumns, read_episode_stats_columns, stats_to_json
from ._build import Pick, Start, build, output_features
from ._common import check_compatible, link_tree, open_source, resolve_episodes, wrap_errors

REVISIONS = "meta/revisions.jsonl"


@contextlib.contextmanager
def dataset_lock(root: Path) -> Iterator[Path]:
    """Hold the exclusive edit lock of the dataset at ``root``.

    Raises:
        EditError: another process holds it (its pid is named when it wrote one).
    """
    import fcntl

    root = Path(root)
    lock = root.parent / f".{root.name}.prf-lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise EditError(f"{root}: locked by another writer (pid {holder}, lock file {lock}); wait for it "
                            f"to finish, edits are never interleaved") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield lock
    finally:
        os.close(fd)  # closing releases the flock


def revisions(root: str | Path) -> list[dict[str, Any]]:
    """The revision records of a dataset (``meta/revisions.jsonl``), oldest first; ``[]`` when it was
    never appended to."""
    p = Path(root) / REVISIONS
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def revision_episodes(root: str | Path, revision: int) -> list[int]:
    """Episode indices of the dataset as it was at ``revision`` (0: before the first append).

    Raises:
        EditError: no such revision.
    """
    recs = revisions(root)
    meta = DatasetMeta(Path(root))
    if revision == len(recs):
        return list(meta.episodes)
    if not 0 <= revision < len(recs):
        raise EditError(f"{root}: no revision {revision} (revisions 0..{len(recs)})")
    n = recs[revision]["episodes"][0]  # the next append started here
    return [e for e in meta.episodes if e < n]


def open_revision(root: str | Path, revision: int, **kwargs: Any):
    """:func:`prf.open_dataset` of the dataset as it was at ``revision`` (its first episodes; stats of
    that selection via ``ds.stats()``)."""
    from .._open import open_dataset

    return open_dataset(root, episodes=revision_episodes(root, revision), **kwargs)


def _next_shard(root: Path, pattern: str, chunks_size: int) -> int:
    best = -1
    for p in root.glob(pattern):
        try:
            chunk = int(p.parent.name.split("-")[1])
            file = int(p.stem.split("-")[1])
        except (IndexError, ValueError):
            continue
        best = max(best, layout.shard_number(chunk, file, chunks_size))
    return best + 1


@wrap_errors
def append_episodes(dst: str | Path, source: str | Path, *, episodes: Iterable[int] | str | None = None,
                    compact: bool = False, progress: bool = True) -> dict[str, Any]:
    """Append ``source``'s episodes (all, or ``episodes``) to the v3.0 dataset at ``dst``, in place.

    The new episodes get indices after ``dst``'s, ``index`` continues from its ``total_frames``, new
    tasks are added after the existing ones, per-episode stats are carried over and ``stats.json``
    re-aggregated (the stored dataset stats combined with the new episodes' as LeRobot's
    ``aggregate_stats`` does). See the module docstring for atomicity, revisions and the lock.

    Returns:
        the revision record written.

    Raises:
        EditError: ``dst`` is not v3.0, the datasets differ in fps / robot_type / features, ``dst`` is
            locked by another writer, ``source`` is ``dst``.
    """
    dst = Path(dst)
    src = open_source(source)
    if Path(src.root).resolve() == dst.resolve():
        raise EditError(f"{dst}: cannot append a dataset to itself")
    with dataset_lock(dst):
        meta = DatasetMeta(dst)
        if not meta.is_v3:
            raise EditError(f"{dst}: appending needs a v3.0 dataset, this one is {meta.codebase_version} "
                            f"(prf upgrade it first)")
        check_compatible([meta, src], "append")
        eps = list(src.episodes) if episodes is None else resolve_episodes(src, episodes)
        if not eps:
            raise EditError(f"{src.root}: no episodes to append")
        chunks = int(meta.info.get("chunks_size") or layout.DEFAULT_CHUNKS_SIZE)
        data_mb = float(meta.info.get("data_files_size_in_mb") or layout.DEFAULT_DATA_FILE_SIZE_IN_MB)
        video_mb = float(meta.info.get("video_files_size_in_mb") or layout.DEFAULT_VIDEO_FILE_SIZE_IN_MB)
        feats = output_features(meta, None)
        first_ep = max(meta.episodes, default=-1) + 1
        first_index = max((e.dataset_to_index for e in meta.episodes.values()), default=0)
        start = Start(
            episode=first_ep, index=first_index,
            data_shard=_next_shard(dst, "data/chunk-*/file-*.parquet", chunks),
            video_shard={k: _next_shard(dst, f"videos/{k}/chunk-*/file-*.mp4", chunks) for k in meta.video_keys},
            episodes_shard=_next_shard(dst, "meta/episodes/chunk-*/file-*.parquet", chunks),
            tasks=[meta.tasks[i] for i in sorted(meta.tasks)],
        )
        if sorted(meta.tasks) != list(range(len(meta.tasks))):
            raise EditError(f"{dst}: task indices are not 0..{len(meta.tasks) - 1}; cannot add tasks after them")
        tmp = temp_dir_for(dst)
        try:
            link_tree(dst, tmp)
            before = {p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file()}
            built = build(tmp, [src], [Pick(0, e) for e in eps], feats, start=start, chunks_size=chunks,
                          data_files_size_in_mb=data_mb, video_files_size_in_mb=video_mb, compact=compact,
                          progress=progress, desc=f"append -> {dst.name}")
            _match_episode_schema(tmp, meta, built.episodes, start.episodes_shard, chunks)
            total_eps = first_ep + len(eps)
            total_frames = first_index + built.frames
            stats = _combined_stats(meta, built.episode_stats)
            info = dict(meta.info)
            info.update({"total_episodes": total_eps, "total_frames": total_frames, "total_tasks": len(built.tasks),
                         "splits": {"train": f"0:{total_eps}"}})
            _replace(tmp / "meta" / "info.json", json.dumps(info, indent=4))
            _replace(tmp / "meta" / "stats.json", json.dumps(stats_to_json(stats), indent=4))
            tasks_path = tmp / layout.TASKS_PATH
            tasks_path.unlink(missing_ok=True)
            layout.write_tasks(tasks_path, built.tasks)
            added = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()
                           and p.relative_to(tmp) not in before)
            old = revisions(dst)
            record = {
                "revision": len(old) + 1,
                "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "operation": "append",
                "source": str(src.root),
                "source_episodes": eps,
                "episodes": [first_ep, total_eps],
                "frames": [first_index, total_frames],
                "total_episodes": total_eps,
                "total_frames": total_frames,
                "tasks_added": built.tasks[len(start.tasks):],
                "files_added": added,
            }
            text = "".join(json.dumps(r) + "\n" for r in [*old, record])
            _replace(tmp / REVISIONS, text)
            replace_dir(tmp, dst)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return record


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to a fresh file at ``path`` (unlinking a hard link there first: the old
    dataset's file must stay as it was)."""
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _match_episode_schema(tmp: Path, meta: DatasetMeta, table, shard: int, chunks: int) -> None:
    """Give the new ``meta/episodes`` file the existing files' schema (LeRobot loads them as one
    dataset, so their columns must agree)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    existing = layout.episodes_files(meta.root)
    if not existing:
        return
    schema = pq.read_schema(existing[0])
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            try:
                col = col.cast(f.type) if not col.type.equals(f.type) else col
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise EditError(f"{existing[0]}: column {f.name!r} ({f.type}) cannot hold the appended "
                                f"episodes' values ({col.type}: {e})") from None
            cols.append(col)
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    extra = [c for c in table.column_names if c not in schema.names]
    if extra:
        raise EditError(f"{meta.root}: the appended episodes have columns {extra[:5]} the episodes table lacks")
    out = pa.Table.from_arrays(cols, schema=schema.remove_metadata())
    layout.write_parquet(out, tmp / layout.episodes_path(shard, chunks))


def _combined_stats(meta: DatasetMeta, new: EpisodeStatsColumns) -> dict:
    stored = meta.stats()
    if stored and all(isinstance(v, dict) and "count" in v for v in stored.values()):
        import numpy as np

        old = {k: {s: np.asarray(x, dtype=np.int64 if s == "count" else np.float64) for s, x in d.items()
                   if x is not None} for k, d in stored.items()}
        return EpisodeStatsColumns.concat([EpisodeStatsColumns.from_dicts([old]), new]).aggregate()
    return EpisodeStatsColumns.concat([read_episode_stats_columns(meta), new]).aggregate()
