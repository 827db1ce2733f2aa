"""The signals a report or recording shows: a dataset's numeric features with their element names,
a converted log topic's numeric columns."""

from __future__ import annotations

from typing import Any

import numpy as np

#: columns of a dataset that are indices, not signals
INDEX_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def numeric_features(meta: Any) -> list[Any]:
    """The dataset's numeric non-index features (state, action, rewards...), in ``info.json`` order."""
    out = []
    for f in meta.features.values():
        if f.key in INDEX_KEYS or f.is_video or f.dtype in ("image", "video", "string"):
            continue
        try:
            kind = np.dtype(f.dtype).kind
        except TypeError:
            continue
        if kind in "fiub":
            out.append(f)
    return out


def joint_names(f: Any) -> list[str]:
    """One name per element of feature ``f``: ``info.json``'s ``names`` when they match its size, else
    ``key[i]``."""
    n = int(np.prod(f.shape)) if f.shape else 1
    names = list(f.names or [])
    if len(names) != n:
        names = [f"{f.key}[{i}]" for i in range(n)]
    return names


def numeric_columns(table: Any, cap: int) -> tuple[dict[str, np.ndarray], int]:
    """``{panel name: float64 [n]}`` of a topic's numeric columns (fixed-length numeric lists: one per
    element), at most ``cap``; and how many were left out."""
    import pyarrow as pa

    out: dict[str, np.ndarray] = {}
    left = 0
    for name in table.column_names:
        if name in ("log_time", "publish_time"):
            continue
        col = table.column(name)
        t = col.type
        arr = None
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            arr = {name: col.to_numpy(zero_copy_only=False).astype(np.float64)}
        elif (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and (
                pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
            flat = col.combine_chunks()
            if flat.null_count:
                continue
            lens = np.asarray(flat.value_lengths().to_numpy(zero_copy_only=False)) if not pa.types.is_fixed_size_list(t) \
                else np.full(len(flat), t.list_size)
            if lens.size and (lens == lens[0]).all() and 0 < lens[0] <= 16:
                vals = np.asarray(flat.flatten().to_numpy(zero_copy_only=False), dtype=np.float64).reshape(len(flat), -1)
                arr = {f"{name}[{i}]": vals[:, i] for i in range(vals.shape[1])}
        if arr is None:
            continue
        for k, v in arr.items():
            if len(out) < cap:
                out[k] = v
            else:
                left += 1
    return out, left
