"""Batch transforms: image transforms then normalization, applied the same way by every access path.

One :class:`BatchTransform` (image transforms of :mod:`prf.transforms` on the camera keys, then a
:class:`prf.Normalizer`) is what :class:`prf.Loader` applies in its workers and what map-style access
applies through :meth:`prf.Dataset.with_transforms` (``get_batch``, ``ds[i]``), so a framework
adapter never re-implements it. Randomness is reproducible in both:

- **per batch** (``bt(batch, key=(seed, rank, epoch, batch_no))``, the loader): the generator of each
  camera is ``numpy.random.default_rng([*key, crc32(camera)])``; the same batch gets the same
  augmentation after a resume, whatever the number of workers.
- **per sample** (``bt(batch, indices=idx, epoch=e)``, map-style access): sample ``i`` of the batch
  draws from ``numpy.random.default_rng([seed, epoch, idx[i], crc32(camera)])``, so ``ds[i]`` and row
  ``j`` of ``get_batch([..., i, ...])`` are the same augmented sample, in any process or worker. Call
  ``set_epoch`` on the view (as on a ``DistributedSampler``) for other augmentations per epoch; with
  ``seed=None`` every call draws fresh OS entropy instead (not reproducible).

Image transforms run on ``uint8`` NumPy frames (OpenCV); a batch of other arrays (torch tensors ...)
is viewed as NumPy for them and returned as the input's type. Normalization computes with the input
array's own library (see :mod:`prf.loading.normalize`), so a torch batch stays torch.

How an adapter applies it (map-style)::

    bt = BatchTransform.for_dataset(ds, transform=..., normalize=..., stats=...)   # or view.transforms
    batch = bt(ds.get_batch(idx), indices=idx, epoch=epoch)                        # NumPy in, NumPy out
    # ... then convert (prf.torch.to_torch(batch)); or convert first: torch in, torch out
"""

from __future__ import annotations

import zlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .. import _profile
from ..plan import item
from ..errors import OptionsError
from .normalize import Normalizer, array_namespace, as_array_like


def _camera_key(camera: str) -> int:
    return zlib.crc32(camera.encode("utf-8"))


class BatchTransform:
    """Image transforms, then normalization, for batches of one dataset.

    Args:
        transform: a :class:`prf.transforms.Transform` for every camera, or ``{camera_key: Transform}``.
        normalize: ``{key: mode}`` (see :class:`prf.Normalizer`); normalized keys become ``float32``.
        stats: the statistics ``normalize`` uses (required with ``normalize``; see :meth:`for_dataset`).
        cameras: the dataset's camera keys (frames are scaled to ``[0, 1]`` before normalizing).
        seed: seed of map-style (per-sample) randomness; ``None``: fresh OS entropy on every call.

    Raises:
        ValueError / TypeError: see :class:`prf.transforms.CameraTransforms`.
        StatsError: see :class:`prf.Normalizer`.
        OptionsError: ``normalize`` without ``stats``.
    """

    def __init__(self, *, transform: Any = None, normalize: Mapping[str, str] | None = None,
                 stats: Mapping[str, Any] | None = None, cameras: Iterable[str] = (), seed: int | None = 0):
        cams = list(cameras)
        self.cameras = cams
        self.seed = None if seed is None else int(seed)
        self.camera_transforms = None
        if transform is not None:
            from .transforms import CameraTransforms

            self.camera_transforms = CameraTransforms(transform, cams)
        self.normalizer: Normalizer | None = None
        if normalize:
            if isinstance(normalize, Normalizer):
                self.normalizer = normalize
            else:
                if stats is None:
                    raise OptionsError("normalize= needs stats= (BatchTransform.for_dataset uses the dataset's)")
                self.normalizer = Normalizer(normalize, stats, cameras=cams)

    @classmethod
    def for_dataset(cls, dataset: Any, *, transform: Any = None, normalize: Mapping[str, str] | None = None,
                    stats: Mapping[str, Any] | None = None, seed: int | None = 0) -> "BatchTransform":
        """A transform for ``dataset``'s batches: its cameras, and its stored stats when ``normalize``
        is given without ``stats`` (:meth:`prf.Dataset.stats`)."""
        cams = list(getattr(dataset, "cameras", []) or [])
        if normalize and stats is None and not isinstance(normalize, Normalizer):
            stats = dataset.stats()
        return cls(transform=transform, normalize=normalize, stats=stats, cameras=cams, seed=seed)

    @property
    def is_identity(self) -> bool:
        return self.camera_transforms is None and self.normalizer is None

    def __call__(self, batch: dict[str, Any], *, key: Sequence[int] | None = None,
                 indices: Sequence[int] | np.ndarray | None = None, epoch: int = 0) -> dict[str, Any]:
        """The transformed batch (a new dict; the input is not modified).

        Args:
            batch: ``{key: array [B, ...]}`` (NumPy, or another array library's arrays).
            key: per-batch randomness ``(seed, rank, epoch, batch_no)`` (the loader's).
            indices: the batch's dataset positions (map-style): per-sample randomness from
                ``(self.seed, epoch, index)``. One of ``key`` / ``indices`` is needed when there are
                image transforms.
            epoch: see ``indices``.
        """
        out = dict(batch)
        ct = self.camera_transforms
        if ct is not None:
            if key is None and indices is None:
                raise OptionsError("BatchTransform with image transforms needs key= (per batch) or indices= (per sample)")
            for cam, t in ct.by_camera.items():
                if cam not in out:
                    continue
                x = out[cam]
                frames = np.asarray(x)
                if key is not None:
                    entropy = [int(k) & 0xFFFFFFFFFFFFFFFF for k in key] + [_camera_key(cam)]
                    y = t(frames, np.random.default_rng(entropy))
                else:
                    y = self._per_sample(t, frames, indices, epoch, cam)
                out[cam] = y if array_namespace(x) is None else as_array_like(y, x)
        if self.normalizer is not None:
            with _profile.stage("normalize"):
                out = self.normalizer(out)
        return out

    def _per_sample(self, t: Any, frames: np.ndarray, indices: Any, epoch: int, cam: str) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size != frames.shape[0]:
            raise OptionsError(f"indices has {idx.size} positions, the batch's {cam!r} has {frames.shape[0]} samples")
        parts = []
        for j, i in enumerate(idx.tolist()):
            if self.seed is None:
                rng = np.random.default_rng()
            else:
                rng = np.random.default_rng([self.seed & 0xFFFFFFFFFFFFFFFF, int(epoch), int(i), _camera_key(cam)])
            parts.append(t(frames[j : j + 1], rng))
        if not parts:
            return frames
        return np.concatenate(parts)

    def sample(self, sample: dict[str, Any], index: int, *, epoch: int = 0) -> dict[str, Any]:
        """One sample (no batch axis), transformed as row ``index`` of a batch would be."""
        batch = {k: ([v] if isinstance(v, str) else v[None]) for k, v in sample.items()}
        out = self(batch, indices=np.array([index], dtype=np.int64), epoch=epoch)
        return {k: (v[0] if isinstance(v, list) else v[0, ...]) for k, v in out.items()}

    def __repr__(self) -> str:
        return (f"prf.loading.BatchTransform(transform={self.camera_transforms!r}, "
                f"normalize={self.normalizer!r}, seed={self.seed})")


class TransformedDataset:
    """A view of a dataset whose ``get_batch`` / ``ds[i]`` apply a :class:`BatchTransform` per sample
    (see :meth:`prf.Dataset.with_transforms`); every other attribute is the dataset's.

    ``view.loader(...)`` is ``dataset.loader(..., transforms=view.transforms)``: the loader applies the
    same transform with its per-batch randomness (``(seed, rank, epoch, batch_no)``).
    """

    #: adapters take this view as a dataset (``prf.as_dataset`` keeps it, with its transforms)
    is_dataset_view = True

    def __init__(self, dataset: Any, transforms: BatchTransform, epoch: int = 0):
        self.dataset = dataset
        self.transforms = transforms
        self.epoch = int(epoch)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("dataset", "transforms", "epoch"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "transforms": self.transforms, "epoch": self.epoch}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that keys the per-sample randomness (as ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """``dataset.get_batch(indices)`` transformed (see :class:`BatchTransform`, per sample)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return self.transforms(self.dataset.get_batch(idx), indices=idx, epoch=self.epoch)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return item(self, i)

    def loader(self, batch_size: int = 1, **kwargs: Any) -> Any:
        if "transforms" in kwargs or "transform" in kwargs or "normalize" in kwargs:
            raise OptionsError("this view already has its transforms; call loader() on the view's .dataset to give others")
        return self.dataset.loader(batch_size, transforms=self.transforms, **kwargs)

    def __repr__(self) -> str:
        return f"prf.TransformedDataset({self.dataset!r}, {self.transforms!r})"


__all__ = ["BatchTransform", "TransformedDataset"]
