"""PyTorch adapter: prf datasets as ``torch.utils.data`` datasets, batches as tensors.

- :class:`Dataset`: a map-style ``torch.utils.data.Dataset``; works with ``DataLoader`` (any
  ``num_workers``, ``shuffle``, ``DistributedSampler``). Implements ``__getitems__`` so a
  ``DataLoader`` batch is assembled by prf's batched decode (each video file decoded in one pass).
- :func:`to_torch`: a NumPy batch (from ``prf.Loader``) as tensors without copying
  (``torch.from_numpy``).
- :func:`loader`: prf's own threaded loader, yielding tensor batches.
- :func:`to_lerobot_images`: ``uint8 [..., H, W, C]`` frames as LeRobot's ``float32 [..., C, H, W]`` in [0, 1].
- :class:`TorchSampler`: a prf sampler (chunks, weights, episode filters, rank shards) as a torch
  ``Sampler``; :class:`BatchIterableDataset`: batches sharded by rank and DataLoader worker. Both
  resume exactly under torchdata's ``StatefulDataLoader``.

Install with ``pip install prf[torch]`` (the monorepo bundles this adapter) or, over a core-only prf,
``pip install ./adapters/torch`` (the ``prf-torch`` distribution). Registered as the ``torch`` adapter
plugin (entry-point group ``prf.adapters``: ``ds.loader(..., output="torch")``) and the ``prf demo``
command (group ``prf.commands``).
"""

from __future__ import annotations

try:
    import torch
    import torch.utils.data as _tud
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("prf.torch needs PyTorch: pip install 'prf[torch]'") from e

from pathlib import Path
from typing import Any, Iterator

import numpy as np

import prf as _prf
from prf.loading import ConvertedLoader, Loader


def to_torch(batch: dict[str, Any]) -> dict[str, Any]:
    """Convert every NumPy array of a batch or sample to a tensor sharing its memory.

    Non-array values (the ``task`` strings) pass through. Read-only arrays are copied (torch tensors
    must be writable).
    """
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, np.ndarray) and v.dtype != object:
            out[k] = torch.from_numpy(v if v.flags.writeable else v.copy())
        elif isinstance(v, np.generic):
            out[k] = torch.as_tensor(v)
        else:
            out[k] = v
    return out


def to_lerobot_images(frames: torch.Tensor) -> torch.Tensor:
    """``uint8 [..., H, W, C]`` -> LeRobot's ``float32 [..., C, H, W]`` in ``[0, 1]`` (a new tensor)."""
    return frames.movedim(-1, -3).to(torch.float32).div_(255.0)


class Dataset(_tud.Dataset):
    """A map-style ``torch.utils.data.Dataset`` over a LeRobot dataset.

    Args:
        source: a dataset folder / Hub repo id, or an already opened :class:`prf.Dataset`.
        **open_kwargs: passed to :func:`prf.open_dataset` (``episodes``, ``delta_timestamps``,
            ``tolerance_s``, ``cameras``, ``backend``).

    ``ds[i]`` is LeRobot's sample as tensors: cameras ``uint8 [H, W, C]`` (``[T, H, W, C]`` with a
    window; see :func:`to_lerobot_images` for LeRobot's float CHW layout), ``{key}_is_pad`` bool,
    ``task`` a str.
    """

    def __init__(self, source: str | Path | _prf.Dataset, **open_kwargs: Any):
        self.dataset = _prf.as_dataset(source, **open_kwargs)

    @property
    def meta(self) -> _prf.DatasetMeta:
        return self.dataset.meta

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return to_torch(self.dataset[int(i)])

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """Batched fetch used by ``DataLoader``: one batched decode, split into samples."""
        batch = to_torch(self.dataset.get_batch(np.asarray(indices, dtype=np.int64)))
        return [{k: v[j] for k, v in batch.items()} for j in range(len(indices))]

    def __repr__(self) -> str:
        return f"prf.torch.Dataset({self.dataset!r})"


def wrap_loader(inner: Loader) -> ConvertedLoader:
    """A :class:`prf.Loader` whose batches are tensors (:func:`to_torch`); length, epochs and state are
    the loader's. What ``ds.loader(..., output="torch")`` returns."""
    return ConvertedLoader(inner, to_torch, "prf.torch.loader")


def loader(dataset: _prf.Dataset | Dataset, batch_size: int = 1, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """prf's threaded loader (:meth:`prf.Dataset.loader`, every option) yielding batches of tensors."""
    return wrap_loader(_prf.as_dataset(dataset).loader(batch_size, **kwargs))


convert_batch = to_torch  # the adapter-plugin protocol (prf._plugins)


from ._stateful import BatchIterableDataset, TorchSampler  # noqa: E402
from .lerobot import LeRobotDataset, LeRobotDatasetMetadata  # noqa: E402  (drop-in for LeRobot's)

__all__ = ["Dataset", "to_torch", "to_lerobot_images", "loader", "wrap_loader", "convert_batch", "TorchSampler",
           "BatchIterableDataset", "LeRobotDataset", "LeRobotDatasetMetadata"]
