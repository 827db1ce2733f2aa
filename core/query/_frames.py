"""Reading frame columns of a dataset's data files as NumPy, one file (or record batch) at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataFileError
from ..format import DatasetMeta


def column_to_numpy(col: pa.Array | pa.ChunkedArray, key: str, path: Path) -> np.ndarray:
    """A numeric column as NumPy: scalars ``[N]``, fixed-size or equal-length lists ``[N, D]``."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_fixed_size_list(t):
        flat = col.flatten()
        return flat.to_numpy(zero_copy_only=False).reshape(len(col), t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        flat = col.flatten().to_numpy(zero_copy_only=False)
        if len(col) == 0:
            return flat.reshape(0, 0)
        if flat.size % len(col):
            raise DataFileError(f"{path}: column {key!r} holds lists of different lengths")
        return flat.reshape(len(col), -1)
    return col.to_numpy(zero_copy_only=False)


def iter_batches(meta: DatasetMeta, columns: list[str], batch_rows: int = 1 << 20
                 ) -> Iterator[tuple[Path, dict[str, np.ndarray]]]:
    """``(file, {column: array})`` for record batches of at most ``batch_rows`` rows of every present
    data file, in file order (memory bounded by one batch). Columns a file lacks are skipped."""
    files = sorted({meta.path(e.data_path) for e in meta.episodes.values() if meta.path(e.data_path).is_file()})
    for f in files:
        try:
            pf = pq.ParquetFile(f)
            have = [c for c in columns if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=batch_rows, columns=have):
                yield f, {k: column_to_numpy(batch.column(k), k, f) for k in have}
        except (pa.ArrowException, OSError) as e:
            raise DataFileError(f"{f}: cannot be read as parquet ({e})") from None


def iter_episodes(meta: DatasetMeta, columns: list[str], batch_rows: int = 1 << 20
                  ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(episode_index, {column: array})`` per episode present, rows ordered by ``frame_index``.

    Reads record batches and carries an episode over a batch boundary, so memory is bounded by one
    batch plus one episode. An episode's rows must be contiguous in one file (LeRobot's layout;
    ``prf.validate`` checks it); rows of one episode met again later are yielded again.
    """
    cols = list(dict.fromkeys(["episode_index", "frame_index", *columns]))
    carry: dict[str, np.ndarray] | None = None
    carry_file = None
    for f, b in iter_batches(meta, cols, batch_rows):
        if carry is not None and carry_file == f:
            b = {k: np.concatenate([carry[k], b[k]]) for k in b}
        elif carry is not None:
            yield from _split(carry)
        carry, carry_file = None, f
        ep = b["episode_index"]
        if ep.size == 0:
            continue
        last = ep[-1]
        diff = ep[::-1] != last
        tail = int(np.argmax(diff)) if diff.any() else ep.size  # rows of the last episode
        cut = ep.size - tail
        carry = {k: v[cut:] for k, v in b.items()}
        head = {k: v[:cut] for k, v in b.items()}
        if cut:
            yield from _split(head)
    if carry is not None:
        yield from _split(carry)


def _split(b: dict[str, np.ndarray]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    ep = b["episode_index"]
    starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
    ends = np.r_[starts[1:], ep.size]
    for s, e in zip(starts, ends):
        part = {k: v[s:e] for k, v in b.items()}
        order = np.argsort(part["frame_index"], kind="stable")
        if (np.diff(order) != 1).any():
            part = {k: v[order] for k, v in part.items()}
        yield int(ep[s]), part
