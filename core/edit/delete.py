"""Delete episodes: a new v3.0 dataset without them (LeRobot's ``delete_episodes``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..errors import EditError
from ._build import Pick, write_dataset
from ._common import atomic_dir, check_output, open_source, resolve_episodes, wrap_errors


@wrap_errors
def delete_episodes(source: str | Path, out: str | Path, episodes: Iterable[int] | str, *,
                    overwrite: bool = False, compact: bool = False, progress: bool = True) -> dict[str, Any]:
    """Write the dataset at ``source`` without ``episodes`` to ``out`` (LeRobot v3.0, whatever the
    source's version).

    Kept episodes are renumbered ``0..K-1`` in their order, ``index`` re-based from 0, tasks reduced to
    the ones kept episodes use (in order of first use) and ``task_index`` remapped; per-episode stats
    are carried over and ``meta/stats.json`` re-aggregated from them, as LeRobot 0.4.4's
    ``delete_episodes``. Videos are remuxed, not re-encoded (see :mod:`prf.edit._remux`); a source
    video shard whose episodes are all kept is copied as is.

    Args:
        source: dataset folder (v2.0, v2.1 or v3.0).
        out: the new dataset's folder; built in a temporary folder beside it and renamed at the end.
        episodes: episode indices to delete, or a SQL query selecting them
            (``"SELECT episode_index FROM episodes WHERE length < 50"``, needs ``prf[query]``).
        compact: store float columns with BYTE_STREAM_SPLIT + zstd (see :func:`prf.format.layout.write_parquet`).

    Returns:
        a summary: ``episodes``, ``frames``, ``tasks`` of the output, ``deleted``, ``copied_files`` (video
        shards copied whole), ``remuxed_frames``, ``reencoded_frames``, ``padded_frames`` (copied
        only because a GOP of a codec prf cannot encode, e.g. HEVC, could not be cut; no episode refers to
        them), ``data_files``, ``video_files``.

    Raises:
        EditError: no episode given, an unknown episode, every episode deleted, ``out`` inside the
            source or existing. MissingFilesError: a kept episode's files are absent.
    """
    meta = open_source(source)
    out = check_output(out, [meta], overwrite=overwrite)
    drop = set(resolve_episodes(meta, episodes, "episodes to delete"))
    if not drop:
        raise EditError(f"{meta.root}: no episodes to delete")
    keep = [e for e in meta.episodes if e not in drop]
    if not keep:
        raise EditError(f"{meta.root}: deleting all {len(drop)} episodes would leave an empty dataset")
    with atomic_dir(out) as tmp:
        summary = write_dataset(tmp, [meta], [Pick(0, e) for e in keep], compact=compact, progress=progress,
                                desc=f"delete -> {out.name}")
    return {"output": str(out), "deleted": sorted(drop), **summary}
