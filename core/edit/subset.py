"""Keep a subset of episodes and/or features (cameras included): a new v3.0 dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..errors import EditError
from ..format.layout import INDEX_FEATURES
from ._build import Pick, write_dataset
from ._common import atomic_dir, check_output, open_source, resolve_episodes, wrap_errors


@wrap_errors
def subset_dataset(source: str | Path, out: str | Path, *, episodes: Iterable[int] | str | None = None,
                   features: Iterable[str] | None = None, drop_features: Iterable[str] | None = None,
                   overwrite: bool = False, compact: bool = False, progress: bool = True) -> dict[str, Any]:
    """Write ``episodes`` (default: all) with only ``features`` (or all but ``drop_features``) of the
    dataset at ``source`` to ``out`` as LeRobot v3.0. Cameras are features: dropping one drops its
    videos, keeping one remuxes them. Index columns are always kept. Same re-indexing and stats as
    :func:`prf.delete_episodes`; LeRobot's ``modify_features(remove_features=...)`` for features.

    Raises:
        EditError: unknown episodes or features, nothing left, an index column dropped, ``out`` inside
            the source or existing.
    """
    meta = open_source(source)
    out = check_output(out, [meta], overwrite=overwrite)
    eps = list(meta.episodes) if episodes is None else resolve_episodes(meta, episodes)
    if not eps:
        raise EditError(f"{meta.root}: no episodes selected")
    order = {e: i for i, e in enumerate(meta.episodes)}
    eps = sorted(set(eps), key=order.__getitem__)
    keep = None
    declared = list(meta.info["features"])
    if features is not None and drop_features is not None:
        raise EditError("give features= or drop_features=, not both")
    if features is not None:
        keep = list(features)
    elif drop_features is not None:
        drop = list(drop_features)
        unknown = [k for k in drop if k not in declared]
        if unknown:
            raise EditError(f"{meta.root}: no feature(s) {unknown} to drop (features: {declared})")
        bad = [k for k in drop if k in INDEX_FEATURES]
        if bad:
            raise EditError(f"{meta.root}: index column(s) {bad} cannot be dropped")
        keep = [k for k in declared if k not in drop]
    if keep is not None and not [k for k in keep if k not in INDEX_FEATURES]:
        raise EditError(f"{meta.root}: no feature would be left besides the index columns")
    with atomic_dir(out) as tmp:
        summary = write_dataset(tmp, [meta], [Pick(0, e) for e in eps], features=keep, compact=compact,
                                progress=progress, desc=f"subset -> {out.name}")
    return {"output": str(out), **summary}
