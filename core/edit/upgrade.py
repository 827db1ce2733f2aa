"""v2.0 / v2.1 -> v3.0 with LeRobot's converter semantics (``convert_dataset_v21_to_v30``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..errors import EditError
from ._build import Pick, write_dataset
from ._common import atomic_dir, check_output, open_source, resolve_episodes, wrap_errors


@wrap_errors
def upgrade_dataset(source: str | Path, out: str | Path, *, episodes: Iterable[int] | None = None,
                    overwrite: bool = False, compact: bool = False, progress: bool = True,
                    data_files_size_in_mb: float | None = None, video_files_size_in_mb: float | None = None
                    ) -> dict[str, Any]:
    """Convert a v2.0/v2.1 dataset (one parquet and one mp4 per episode) to LeRobot v3.0 at ``out``.

    As LeRobot's converter: per-episode files concatenated into shards (data up to
    ``data_files_size_in_mb``, default 100; video up to ``video_files_size_in_mb``, default 200), each
    episode's ``from_timestamp``/``to_timestamp`` its offset in the shard, ``episodes_stats.jsonl``
    flattened into the ``stats/{feature}/{stat}`` columns of ``meta/episodes`` (v2.0, which stores no
    per-episode stats, gets them computed from the data), ``tasks.jsonl`` -> ``tasks.parquet``. The
    videos are remuxed (no re-encode: every v2 episode video starts on a keyframe).

    Args:
        episodes: convert only these (e.g. the episodes present in a partial download); they are
            renumbered from 0.

    Raises:
        EditError: the source is already v3.0, unknown episodes, ``out`` inside the source.
        MissingFilesError: files of the converted episodes are absent (it lists the present episodes).
    """
    meta = open_source(source)
    if meta.is_v3:
        raise EditError(f"{meta.root}: already {meta.codebase_version}; nothing to upgrade")
    out = check_output(out, [meta], overwrite=overwrite)
    eps = list(meta.episodes) if episodes is None else resolve_episodes(meta, episodes)
    if not eps:
        raise EditError(f"{meta.root}: no episodes to convert")
    with atomic_dir(out) as tmp:
        summary = write_dataset(tmp, [meta], [Pick(0, e) for e in eps], compact=compact, progress=progress,
                                desc=f"upgrade -> {out.name}", data_files_size_in_mb=data_files_size_in_mb,
                                video_files_size_in_mb=video_files_size_in_mb)
    return {"output": str(out), "from_version": meta.codebase_version, **summary}
