""":class:`DataSource`: a Grain ``RandomAccessDataSource`` of a dataset's samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import grain
import numpy as np

import prf as _prf

from ._convert import split


class DataSource(grain.sources.RandomAccessDataSource):
    """A Grain ``RandomAccessDataSource`` over a LeRobot dataset: record ``i`` is ``ds[i]``.

    Args:
        source: a dataset folder / Hub repo id / URL (opened with ``**open_kwargs``), or a
            :class:`prf.Dataset` (see :func:`prf.as_dataset`).
        **open_kwargs: :func:`prf.open_dataset` options (``delta_timestamps``, ``episodes``, ...).

    Records are dicts of NumPy arrays (cameras ``uint8 [H, W, C]``, ``[T, H, W, C]`` with a window,
    ``{key}_is_pad`` ``bool [T]``, ``task`` a ``str``). ``__getitem__`` is deterministic and
    thread-safe (decoders are per thread); the source pickles without open files, so Grain's worker
    processes reopen videos themselves. ``_getitems`` is Grain's batched-read protocol
    (``SupportsBatchedReadRandomAccessDataSource``; Grain exports no public name for it, and calls it
    where it reads records in batches, e.g. ``MapDataset.batch`` with its batch-pushdown experiment):
    the request is assembled with one batched decode.
    """

    def __init__(self, source: str | Path | _prf.Dataset, **open_kwargs: Any):
        self.dataset = _prf.as_dataset(source, **open_kwargs)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset[int(index)]

    def _getitems(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return split(self.dataset.get_batch(idx), idx.size)

    def get_batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """Records ``indices`` as one prf batch (``{key: ndarray [B, ...]}``, ``task`` list[str])."""
        return self.dataset.get_batch(np.asarray(indices, dtype=np.int64))

    def __repr__(self) -> str:
        # Grain compares repr(data_source) when restoring a DataLoader checkpoint: keep it stable.
        ds = self.dataset
        return (
            f"prf.jax.DataSource(root={str(ds.meta.root)!r}, frames={len(ds)}, episodes={ds.episodes!r}, "
            f"cameras={ds.cameras!r}, delta_timestamps={ds.delta_timestamps!r}, tolerance_s={ds.tolerance_s})"
        )
