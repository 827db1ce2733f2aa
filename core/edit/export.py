"""Export episodes as plain files (RoboTrace's ``encode_episode`` layout): per episode a folder with one
trimmed mp4 per camera (remuxed from the dataset's video; re-encoded only where the episode starts
inside a GOP; for a codec prf cannot encode, e.g. HEVC, copied from that GOP's keyframe instead, so
the mp4 starts with ``leading_frames`` frames before the episode's first, at ``first_frame_time_s``
in metadata.json's ``cameras``), ``sensors.npz`` (``observation.*`` features that are not cameras), ``actions.npz``
(``action*`` features), ``other.npz`` (any other non-index feature, e.g. ``next.reward``), each with
``timestamps_ns`` (int64, the episode's ``timestamp`` column in nanoseconds), and ``metadata.json``
with provenance: source, codebase version, revision, episode, length, fps, tasks, cameras and
outcome columns (``next.*``: numeric ones summed, booleans as any/last).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pyarrow.parquet as pq

from .._atomic import replace_dir, temp_dir_for
from ..errors import EditError, PrfError
from ..format.layout import INDEX_FEATURES
from ._common import open_source, resolve_episodes
from ._remux import ShardWriter, SourceVideo


def _to_numpy(col) -> np.ndarray | None:
    """A numeric column (scalars or nested fixed-size lists) as ``[N, *shape]``; None for others."""
    import pyarrow as pa

    arr = col.combine_chunks()
    shape = []
    while pa.types.is_fixed_size_list(arr.type):
        shape.append(arr.type.list_size)
        arr = arr.flatten()
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type)):
        return None
    return arr.to_numpy(zero_copy_only=False).reshape(len(col), *shape)


def _safe(key: str) -> str:
    return key.replace("/", "_")


def export_episode(meta, episode: int, out: Path) -> dict[str, Any]:
    """Write one episode's folder at ``out`` (atomically: built beside it, then renamed)."""
    ep = meta.episodes[episode]
    meta.check_files([episode])
    tmp = temp_dir_for(out)
    tmp.mkdir(parents=True)
    try:
        cols = [k for k, f in meta.features.items() if not f.is_video]
        path = meta.path(ep.data_path)
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[c for c in cols if c in names], page_checksum_verification=True)
        e = table.column("episode_index").to_numpy()
        rows = np.flatnonzero(e == episode)
        table = table.take(rows)
        if table.num_rows != ep.length:
            raise EditError(f"{path}: episode {episode} has {table.num_rows} rows, its metadata says {ep.length}")
        ts = table.column("timestamp").to_numpy().astype(np.float64)
        ts_ns = np.round(ts * 1e9).astype(np.int64)
        groups: dict[str, dict[str, np.ndarray]] = {"sensors": {}, "actions": {}, "other": {}}
        outcomes: dict[str, Any] = {}
        for k in table.column_names:
            if k in INDEX_FEATURES or meta.features.get(k) is None or meta.features[k].is_camera:
                continue
            col = table.column(k)
            a = _to_numpy(col)
            if a is None:
                continue
            if a.dtype == object:
                continue
            g = "sensors" if k.startswith("observation.") else "actions" if k.startswith("action") else "other"
            groups[g][k] = a
            if k.startswith("next."):
                outcomes[k] = ({"any": bool(a.any()), "last": bool(a.reshape(len(a), -1)[-1].all())}
                               if a.dtype == bool else {"sum": float(a.sum())})
        for g, arrays in groups.items():
            if arrays:
                np.savez(tmp / f"{g}.npz", timestamps_ns=ts_ns, **arrays)
        cams = {}
        for key in meta.video_keys:
            ref = ep.videos[key]
            src = SourceVideo(meta.path(ref.path))
            try:
                f0, d = src.index.nearest(np.array([ref.from_timestamp]))
                f0 = int(f0[0])
                w = ShardWriter(tmp / f"{_safe(key)}.mp4", src, meta.fps)
                try:
                    first_time = w.add_span(src, f0, f0 + ep.length)
                finally:
                    w.close()
            finally:
                src.close()
            cams[key] = {"file": f"{_safe(key)}.mp4", "frames": ep.length, "codec": src.index.codec,
                         "reencoded_frames": w.reencoded_frames, "leading_frames": round(first_time * meta.fps),
                         "first_frame_time_s": first_time,
                         "source_file": ref.path,
                         "source_from_timestamp": ref.from_timestamp}
        from .append import revisions

        info = {
            "source": str(Path(meta.root).resolve()),
            "codebase_version": meta.codebase_version,
            "revision": len(revisions(meta.root)),
            "episode": episode,
            "length": ep.length,
            "fps": meta.fps,
            "robot_type": meta.robot_type,
            "tasks": list(ep.tasks),
            "cameras": cams,
            "arrays": {g: sorted(a) for g, a in groups.items() if a},
            "outcomes": outcomes,
            "timestamps_ns": [int(ts_ns[0]), int(ts_ns[-1])],
        }
        (tmp / "metadata.json").write_text(json.dumps(info, indent=2))
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def export_episodes(source: str | Path, out: str | Path, episodes: Iterable[int] | int | str, *,
                    stop_on_error: bool = False, overwrite: bool = False,
                    progress: Callable[[int, int, int, BaseException | None], None] | bool | None = None
                    ) -> dict[str, Any]:
    """Export ``episodes`` of the dataset at ``source`` into ``out/episode_{E:06d}/`` (see the module
    docstring for the files).

    Args:
        episodes: indices, one index, or a SQL query selecting them.
        stop_on_error: re-raise the first episode's error; by default an episode that fails is
            reported in the result and the others are still exported.
        progress: ``callback(done, total, episode, error_or_None)`` after each episode; ``True`` for a
            tqdm bar on stderr.

    Returns:
        ``{"output", "exported": [episodes], "failed": {episode: message}}``.

    Raises:
        EditError: unknown episodes, an existing episode folder (without ``overwrite``), ``out``
            inside the source. With ``stop_on_error``: the failing episode's error.
    """
    meta = open_source(source)
    out = Path(out)
    if out.resolve() == Path(meta.root).resolve() or Path(meta.root).resolve() in out.resolve().parents:
        raise EditError(f"{out}: the export folder is inside the source dataset {meta.root}")
    eps = resolve_episodes(meta, episodes, "episodes to export")
    if not eps:
        raise EditError(f"{meta.root}: no episodes to export")
    out.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(eps), desc=f"export {Path(meta.root).name}", unit="episode")
    done: list[int] = []
    failed: dict[int, str] = {}
    try:
        for n, e in enumerate(eps, 1):
            dst = out / f"episode_{e:06d}"
            err: BaseException | None = None
            try:
                if dst.exists() and not overwrite:
                    raise EditError(f"{dst}: already exists (pass overwrite=True)")
                export_episode(meta, e, dst)
                done.append(e)
            except PrfError as ex:
                if stop_on_error:
                    raise
                err = ex
                failed[e] = str(ex)
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(n, len(eps), e, err)
    finally:
        if bar is not None:
            bar.close()
    return {"output": str(out), "exported": done, "failed": failed}
