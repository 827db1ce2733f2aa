"""Split a dataset into several by episode (LeRobot's ``split_dataset``), e.g. train/val."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import EditError
from ._build import Pick, write_dataset
from ._common import atomic_dir, check_output, open_source, resolve_episodes, wrap_errors


def split_episodes(episodes: Sequence[int], splits: Mapping[str, float | Sequence[int]], seed: int | None = None
                   ) -> dict[str, list[int]]:
    """Episode lists per split name. Fractions follow LeRobot's ``_fractions_to_episode_indices``:
    ``int(N * fraction)`` episodes per split in order (a split that gets none is left out), the last
    split takes the rest; with ``seed`` the episodes are first shuffled by ``numpy.random.default_rng
    (seed)`` (each split's list is then sorted). Lists are taken as given.

    Raises:
        EditError: fractions summing over 1, mixed fractions and lists, an empty list, overlaps.
    """
    if not splits:
        raise EditError("no splits given")
    values = list(splits.values())
    if all(isinstance(v, (float, int)) and not isinstance(v, bool) for v in values):
        fr = {k: float(v) for k, v in splits.items()}
        if any(v < 0 for v in fr.values()) or sum(fr.values()) > 1.0 + 1e-9:
            raise EditError(f"split fractions must be >= 0 and sum to <= 1, got {fr}")
        order = list(episodes)
        if seed is not None:
            order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
        out: dict[str, list[int]] = {}
        pos, names, n = 0, list(fr), len(order)
        for name in names:
            k = int(n * fr[name])
            if k == 0:
                continue
            end = n if name == names[-1] else pos + k
            out[name] = sorted(order[pos:end])
            pos = end
        if not out:
            raise EditError(f"split fractions {fr} give every split 0 of {n} episodes")
        return out
    if any(isinstance(v, (float, int)) for v in values):
        raise EditError("give every split as a fraction or every split as an episode list")
    out = {k: [int(e) for e in v] for k, v in splits.items()}
    seen: set[int] = set()
    for k, v in out.items():
        if not v:
            raise EditError(f"split {k!r} has no episodes")
        dup = seen & set(v)
        if dup:
            raise EditError(f"episode(s) {sorted(dup)[:10]} appear in more than one split (again in {k!r})")
        seen |= set(v)
    return out


@wrap_errors
def split_dataset(source: str | Path, out_dir: str | Path, splits: Mapping[str, float | Sequence[int]], *,
                  seed: int | None = None, overwrite: bool = False, compact: bool = False,
                  progress: bool = True) -> dict[str, Any]:
    """Write one LeRobot v3.0 dataset per split name under ``out_dir`` (``out_dir/train``,
    ``out_dir/val``...). Each is built as :func:`prf.delete_episodes` builds its output (episodes
    renumbered in order, ``index`` re-based, tasks reduced, stats re-aggregated, videos remuxed).
    ``out_dir`` appears whole or not at all (built in a temporary folder beside it).

    Args:
        splits: ``{"train": 0.9, "val": 0.1}`` or ``{"train": [0, 1, 2], "val": [3]}`` (see
            :func:`split_episodes`).
        seed: shuffle before taking fractions (LeRobot takes them in order, which ``seed=None`` keeps).

    Raises:
        EditError: bad splits, unknown episodes, ``out_dir`` inside the source or existing.
    """
    meta = open_source(source)
    out_dir = check_output(out_dir, [meta], overwrite=overwrite)
    eps = list(meta.episodes)
    parts = split_episodes(eps, splits, seed)
    for name, v in parts.items():
        resolve_episodes(meta, v, f"split {name!r}")
        if not name or "/" in name or name.startswith("."):
            raise EditError(f"split name {name!r} is not a folder name")
    order = {e: i for i, e in enumerate(eps)}
    summary: dict[str, Any] = {"output": str(out_dir), "splits": {}}
    with atomic_dir(out_dir) as tmp:
        for name, v in parts.items():
            picks = [Pick(0, e) for e in sorted(v, key=order.__getitem__)]
            root = tmp / name
            root.mkdir()
            s = write_dataset(root, [meta], picks, compact=compact, progress=progress, desc=f"split {name}")
            summary["splits"][name] = {"episodes_from_source": sorted(v), **s}
    return summary
