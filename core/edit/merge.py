"""Merge datasets with the same features and fps into one (LeRobot's ``merge_datasets``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import EditError
from ._build import Pick, write_dataset
from ._common import atomic_dir, check_compatible, check_output, open_source, wrap_errors


@wrap_errors
def merge_datasets(sources: Sequence[str | Path], out: str | Path, *, overwrite: bool = False,
                   compact: bool = False, progress: bool = True) -> dict[str, Any]:
    """Concatenate the episodes of ``sources`` (in that order) into one LeRobot v3.0 dataset at ``out``.

    As LeRobot 0.4.4's ``aggregate_datasets``: every source must have the same fps, robot_type and
    features; tasks are the union in order of first appearance and ``task_index`` remapped; episode
    indices and ``index`` re-based (source k's episodes follow source k-1's); video spans keep their
    frames (remuxed; a source shard kept whole is copied) with ``from_timestamp`` offsets into the
    output shards; stats re-aggregated (from the per-episode stats, which is the same as LeRobot's
    aggregation of the sources' ``stats.json``).

    Raises:
        EditError: fewer than 2 sources, a difference in fps / robot_type / features (named), ``out``
            inside a source.
    """
    if len(sources) < 2:
        raise EditError(f"merge needs at least 2 datasets, got {len(sources)}")
    metas = [open_source(s) for s in sources]
    roots = [Path(m.root).resolve() for m in metas]
    if len(set(roots)) != len(roots):
        raise EditError(f"merge: a dataset is given twice ({[str(r) for r in roots]})")
    check_compatible(metas, "merge")
    out = check_output(out, metas, overwrite=overwrite)
    picks = [Pick(i, e) for i, m in enumerate(metas) for e in m.episodes]
    with atomic_dir(out) as tmp:
        summary = write_dataset(tmp, metas, picks, compact=compact, progress=progress, desc=f"merge -> {out.name}")
    return {"output": str(out), "sources": [str(m.root) for m in metas], **summary}
