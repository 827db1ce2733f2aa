"""Keras adapter: prf batches as a ``keras.utils.PyDataset`` (any Keras 3 backend) and as ``tf.data``.

- :class:`PyDataset`: a ``keras.utils.PyDataset`` whose item ``k`` is batch ``k`` of the current epoch
  in prf's order; ``on_epoch_end`` (called by ``model.fit``) moves to the next epoch's order. Works
  with the TensorFlow, JAX and PyTorch backends; Keras's ``workers``/``use_multiprocessing`` apply.
- :func:`to_tf_dataset`: a ``tf.data.Dataset`` of the same batches with an exact ``element_spec``
  (:func:`output_signature`); built on ``tf.data.Dataset.range``, so its iterators checkpoint with
  ``tf.train.Checkpoint`` and resume exactly.

What a batch is (both): with ``targets`` (and optionally ``inputs``) a tuple ``(inputs, targets)``
as ``model.fit`` expects; without them the whole prf batch dict. A selection is a key (one array),
a list of keys (a dict keyed by them) or a mapping ``{model input name: prf key}``. Arrays keep prf's
dtypes and channels-last layout (cameras ``uint8 [B, H, W, C]``, ``[B, T, H, W, C]`` with a window),
which is Keras's default ``image_data_format``. ``task`` is ``list[str]`` in the PyDataset and
``tf.string [B]`` in ``tf.data``.

Pass ``shuffle=False`` to ``model.fit`` to keep prf's batch order (Keras shuffles the order of a
PyDataset's batches by default; prf shuffles samples with its own seeded sampler).

Install with ``pip install prf[keras]`` (Keras 3 and TensorFlow for ``tf.data``).
"""

from __future__ import annotations

try:
    import keras
except ImportError as e:  # pragma: no cover - exercised only without keras
    raise ImportError("prf.keras needs Keras 3: pip install 'prf[keras]'") from e
if int(keras.__version__.split(".")[0]) < 3:  # pragma: no cover
    raise ImportError(f"prf.keras needs Keras 3 (found {keras.__version__}): pip install 'prf[keras]'")

import weakref
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

import prf as _prf
from prf.loading._batches import EpochBatches

Selection = Union[str, Sequence[str], Mapping[str, str], None]


def _open(source: Any, open_kwargs: dict[str, Any] | None) -> _prf.Dataset:
    if isinstance(source, _prf.Dataset):
        if open_kwargs:
            raise TypeError("open_kwargs are only accepted with a path or repo id")
        return source
    return _prf.open_dataset(source, **(open_kwargs or {}))


def _pick(batch: dict[str, Any], sel: Selection) -> Any:
    if isinstance(sel, str):
        return batch[sel]
    if isinstance(sel, Mapping):
        return {name: batch[key] for name, key in sel.items()}
    return {key: batch[key] for key in sel}


def _check_selection(keys: Sequence[str], sel: Selection, what: str) -> None:
    wanted = [sel] if isinstance(sel, str) else list(sel.values()) if isinstance(sel, Mapping) else list(sel or [])
    unknown = [k for k in wanted if k not in keys]
    if unknown:
        raise KeyError(f"{what} {unknown} are not keys of the batches; keys: {list(keys)}")


def split_batch(batch: dict[str, Any], inputs: Selection = None, targets: Selection = None) -> Any:
    """A prf batch as Keras's ``(inputs, targets)`` (see the module docstring); ``inputs=None`` with
    ``targets`` takes every key but the targets and ``task``; neither: the batch dict itself."""
    if inputs is None and targets is None:
        return batch
    if inputs is None:
        tkeys = {targets} if isinstance(targets, str) else set(targets.values() if isinstance(targets, Mapping) else targets)
        inputs = [k for k in batch if k not in tkeys and k != "task"]
    x = _pick(batch, inputs)
    return (x,) if targets is None else (x, _pick(batch, targets))


class PyDataset(keras.utils.PyDataset):
    """A ``keras.utils.PyDataset`` of prf batches (any Keras 3 backend).

    Args:
        source: a dataset folder / Hub repo id (opened with ``open_kwargs``), or a :class:`prf.Dataset`.
        batch_size: samples per batch.
        inputs, targets: what a batch is (module docstring); both ``None``: the prf batch dict.
        shuffle, seed, drop_last, sampler, rank, world_size: as :class:`prf.Loader`.
        epoch: the epoch ``self[k]`` reads; :meth:`on_epoch_end` adds one.
        workers, use_multiprocessing, max_queue_size: Keras's ``PyDataset`` options.
        **loader_kwargs: further :class:`prf.Loader` options (e.g. per-batch transforms), applied as
            the loader applies them.

    ``self[k]`` is batch ``k`` of ``ds.loader(batch_size, ...)`` at epoch :attr:`epoch` (arrays
    ``[B, ...]``, NumPy); ``len(self)`` batches per epoch. To resume mid-epoch, :meth:`set_epoch` and
    start reading at the first undelivered ``k``.

    Raises:
        IndexError: ``k`` outside ``0 .. len(self) - 1``.
    """

    def __init__(self, source: str | Path | _prf.Dataset, batch_size: int = 1, *, inputs: Selection = None,
                 targets: Selection = None, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                 sampler: Any = None, rank: int | None = None, world_size: int | None = None, epoch: int = 0,
                 open_kwargs: dict[str, Any] | None = None, workers: int = 1, use_multiprocessing: bool = False,
                 max_queue_size: int = 10, **loader_kwargs: Any):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        ds = _open(source, open_kwargs)
        loader = ds.loader(batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, sampler=sampler,
                           rank=rank, world_size=world_size, **loader_kwargs)
        self._batches = EpochBatches(loader)
        keys = list(_sample_spec(loader))
        _check_selection(keys, inputs, "inputs")
        _check_selection(keys, targets, "targets")
        self.inputs, self.targets = inputs, targets
        self.epoch = int(epoch)

    @property
    def dataset(self) -> _prf.Dataset:
        return self._batches.dataset

    def __len__(self) -> int:
        return len(self._batches)

    def __getitem__(self, index: int) -> Any:
        n = len(self._batches)
        if not 0 <= int(index) < n:
            raise IndexError(f"batch {index} out of range: {n} batches per epoch")
        return split_batch(self._batches.load(self.epoch, int(index)), self.inputs, self.targets)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def on_epoch_end(self) -> None:
        """Called by Keras after each epoch: the next epoch follows its own order."""
        self.epoch += 1

    def __repr__(self) -> str:
        return f"prf.keras.PyDataset({self._batches.loader!r}, epoch={self.epoch})"


_SPECS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _sample_spec(loader: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per key of the loader's batches: one sample's shape and the dtype, from a one-sample batch
    assembled as the loader assembles batches (so its per-batch transforms are accounted for)."""
    cached = _SPECS.get(loader)
    if cached is None:
        one = loader._load(0, 0, np.array([0], dtype=np.int64))
        cached = {k: ((), np.dtype(object)) if k == "task" else (tuple(v.shape[1:]), v.dtype) for k, v in one.items()}
        _SPECS[loader] = cached
    return cached


def output_signature(source: Any, batch_size: int, *, inputs: Selection = None, targets: Selection = None,
                     drop_last: bool = False, **loader_kwargs: Any) -> Any:
    """The exact ``tf.TensorSpec`` structure of :func:`to_tf_dataset`'s batches (same arguments).

    The batch axis is ``batch_size`` when every batch is full (``drop_last``, or the rank's sample
    count a multiple of ``batch_size``), else ``None``. ``task`` is ``tf.string [B]``.
    """
    for only_tf_data in ("epoch", "num_epochs", "num_parallel_calls", "prefetch"):
        loader_kwargs.pop(only_tf_data, None)
    ds = source if isinstance(source, _prf.Dataset) else _open(source, loader_kwargs.pop("open_kwargs", None))
    return _signature(ds.loader(batch_size, drop_last=drop_last, **loader_kwargs), inputs, targets)


def _signature(loader: Any, inputs: Selection, targets: Selection) -> Any:
    import tensorflow as tf

    batch_size = loader.batch_size
    full = loader.drop_last or len(loader.sampler) % batch_size == 0
    b = batch_size if full else None
    spec: dict[str, Any] = {}
    for k, (shape, dtype) in _sample_spec(loader).items():
        tf_dtype = tf.string if k == "task" else tf.as_dtype(dtype)
        spec[k] = tf.TensorSpec((b, *shape), tf_dtype)
    return split_batch(spec, inputs, targets) if (inputs or targets) else spec


def to_tf_dataset(
    source: str | Path | _prf.Dataset,
    batch_size: int = 1,
    *,
    inputs: Selection = None,
    targets: Selection = None,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    sampler: Any = None,
    rank: int | None = None,
    world_size: int | None = None,
    epoch: int = 0,
    num_epochs: int | None = 1,
    num_parallel_calls: int | None = None,
    prefetch: int | None = None,
    open_kwargs: dict[str, Any] | None = None,
    **loader_kwargs: Any,
) -> Any:
    """A ``tf.data.Dataset`` of prf batches.

    Args:
        source, batch_size, inputs, targets, shuffle, seed, drop_last, sampler, rank, world_size:
            as :class:`PyDataset`.
        epoch: the first epoch; ``num_epochs`` epochs follow, each in its own order (``None``: forever,
            then give ``model.fit`` a ``steps_per_epoch``).
        num_parallel_calls: batches decoded in parallel (default ``tf.data.AUTOTUNE``); the order stays
            prf's (``deterministic=True``).
        prefetch: batches prefetched (default ``tf.data.AUTOTUNE``; 0: none).
        **loader_kwargs: further :class:`prf.Loader` options, applied as the loader applies them.

    Returns:
        ``tf.data.Dataset`` whose ``element_spec`` is :func:`output_signature`: the prf batch dict, or
        ``(inputs, targets)``. Its iterators save and restore with ``tf.train.Checkpoint(iterator=it)``.
    """
    import tensorflow as tf

    ds = _open(source, open_kwargs)
    loader = ds.loader(batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, sampler=sampler,
                       rank=rank, world_size=world_size, **loader_kwargs)
    batches = EpochBatches(loader)
    nb = len(batches)
    full_spec = _signature(loader, None, None)
    keys = list(full_spec)
    _check_selection(keys, inputs, "inputs")
    _check_selection(keys, targets, "targets")
    first = int(epoch)

    def load(i: np.int64) -> list[np.ndarray]:
        e, k = divmod(int(i), nb)
        b = batches.load(first + e, k)
        return [np.array([t.encode() for t in b[key]], dtype=object) if key == "task" else b[key] for key in keys]

    def to_element(i: Any) -> Any:
        flat = tf.numpy_function(load, [i], [full_spec[k].dtype for k in keys], stateful=False, name="prf_batch")
        batch = {k: tf.ensure_shape(v, full_spec[k].shape) for k, v in zip(keys, flat)}
        return split_batch(batch, inputs, targets) if (inputs or targets) else batch

    autotune = tf.data.AUTOTUNE
    index = tf.data.Dataset.counter() if num_epochs is None else tf.data.Dataset.range(int(num_epochs) * nb)
    out = index.map(to_element, num_parallel_calls=autotune if num_parallel_calls is None else num_parallel_calls,
                    deterministic=True)
    if prefetch != 0:
        out = out.prefetch(autotune if prefetch is None else prefetch)
    return out


__all__ = ["PyDataset", "to_tf_dataset", "output_signature", "split_batch"]
