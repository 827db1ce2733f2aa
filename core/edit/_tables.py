"""Arrow rewrites of a dataset's tables: data rows of kept episodes with re-based ``episode_index``,
``index`` and ``task_index`` (vectorised, no per-row Python), the ``meta/episodes`` table, and the
per-episode stats columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import EditError


def select_rows(table: pa.Table, episodes: Sequence[int], path: Path) -> tuple[pa.Table, np.ndarray]:
    """The rows of ``episodes`` (source episode indices) in that order, each episode's rows in file
    order; and the row count per episode.

    Raises:
        EditError: the file has no ``episode_index`` column.
    """
    if "episode_index" not in table.column_names:
        raise EditError(f"{path}: no 'episode_index' column")
    ep = table.column("episode_index").to_numpy()
    eps = np.asarray(episodes, dtype=np.int64)
    if ep.size and eps.size == 1:
        rows = np.flatnonzero(ep == eps[0])
        counts = np.array([rows.size])
    else:
        hi = int(max(ep.max(initial=0), eps.max(initial=0))) + 1
        pos = np.full(hi, -1, dtype=np.int64)
        pos[eps] = np.arange(eps.size)
        key = pos[ep]
        rows = np.flatnonzero(key >= 0)
        order = np.argsort(key[rows], kind="stable")
        rows = rows[order]
        counts = np.bincount(key[rows], minlength=eps.size)
    if rows.size == table.num_rows and np.all(rows[:-1] < rows[1:]):
        return table, counts  # every row, in file order: no copy
    return table.take(pa.array(rows)), counts


def reindex(table: pa.Table, new_episode: np.ndarray, start_index: int, task_lut: np.ndarray) -> pa.Table:
    """Replace ``episode_index`` (``new_episode``, one per row), ``index`` (``start_index`` onwards) and
    ``task_index`` (through ``task_lut``: old index -> new) of ``table``."""
    n = table.num_rows
    cols = {
        "episode_index": pa.array(np.asarray(new_episode, dtype=np.int64)),
        "index": pa.array(np.arange(start_index, start_index + n, dtype=np.int64)),
    }
    if "task_index" in table.column_names:
        ti = table.column("task_index").to_numpy()
        cols["task_index"] = pa.array(task_lut[ti].astype(np.int64))
    for name, arr in cols.items():
        i = table.schema.get_field_index(name)
        if i < 0:
            table = table.append_column(name, arr)
        else:
            table = table.set_column(i, pa.field(name, pa.int64()), arr)
    return table


def conform(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    """``table`` with ``schema``'s columns, in its order and types (variable lists become fixed-size
    lists, ``list<x>[1]`` becomes a scalar).

    Raises:
        EditError: a column is missing or cannot be converted.
    """
    arrays = []
    for field in schema:
        if field.name not in table.column_names:
            raise EditError(f"{path}: column {field.name!r} is missing")
        col = table.column(field.name)
        if not col.type.equals(field.type):
            try:
                if (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type)) and not (
                    pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type)
                ):
                    col = pc.list_flatten(col)
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise EditError(f"{path}: column {field.name!r} of type {col.type} cannot be stored as "
                                f"{field.type} ({e})") from None
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=schema)


def episodes_table(rows: Mapping[str, Sequence[Any]], stats: Mapping[str, pa.Array]) -> pa.Table:
    """The ``meta/episodes`` table in LeRobot's column order: location columns, ``stats/*``, then
    ``meta/episodes/chunk_index`` and ``file_index``."""
    cols: dict[str, Any] = {}
    meta_cols = {k: v for k, v in rows.items() if k.startswith("meta/episodes/")}
    for k, v in rows.items():
        if k in meta_cols:
            continue
        if k == "tasks":
            cols[k] = pa.array(list(v), pa.list_(pa.string()))
        elif k.endswith("_timestamp"):
            cols[k] = pa.array(np.asarray(v, dtype=np.float64))
        else:
            cols[k] = pa.array(np.asarray(v, dtype=np.int64))
    cols.update(stats)
    for k, v in meta_cols.items():
        cols[k] = pa.array(np.asarray(v, dtype=np.int64))
    return pa.table(cols)
