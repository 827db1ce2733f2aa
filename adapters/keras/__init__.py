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

Install with ``pip install prf[keras]`` (Keras 3 and TensorFlow for ``tf.data``; the monorepo bundles
this adapter) or, over a core-only prf, ``pip install ./adapters/keras`` (``prf-keras``). Registered as
the ``keras`` adapter plugin (entry-point group ``prf.adapters``): ``ds.loader(..., output="keras")``
yields batches of the Keras backend's tensors (``keras.ops.convert_to_tensor``). Importing it sets no
environment variable: choose the backend with ``KERAS_BACKEND`` before importing Keras, as Keras says.
"""

from __future__ import annotations

try:
    import keras
except ImportError as e:  # pragma: no cover - exercised only without keras
    raise ImportError("prf.keras needs Keras 3: pip install 'prf[keras]'") from e
if int(keras.__version__.split(".")[0]) < 3:  # pragma: no cover
    raise ImportError(f"prf.keras needs Keras 3 (found {keras.__version__}): pip install 'prf[keras]'")

from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

import prf as _prf
from prf.loading import ConvertedLoader, Loader

Selection = Union[str, Sequence[str], Mapping[str, str], None]


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
        source: a dataset folder / Hub repo id / URL (opened with ``open_kwargs``), or a
            :class:`prf.Dataset` (see :func:`prf.as_dataset`).
        batch_size: samples per batch.
        inputs, targets: what a batch is (module docstring); both ``None``: the prf batch dict.
        epoch: the epoch ``self[k]`` reads; :meth:`on_epoch_end` adds one.
        workers, use_multiprocessing, max_queue_size: Keras's ``PyDataset`` options.
        **loader_kwargs: :meth:`prf.Dataset.loader` options (``shuffle``, ``seed``, ``drop_last``,
            ``sampler``, ``rank``, ``world_size``, ``transform``, ``normalize``, ...), applied as the
            loader applies them.

    ``self[k]`` is batch ``k`` of ``ds.loader(batch_size, ...)`` at epoch :attr:`epoch` (arrays
    ``[B, ...]``, NumPy; :meth:`prf.Loader.batch`); ``len(self)`` batches per epoch. To resume
    mid-epoch, :meth:`set_epoch` and start reading at the first undelivered ``k``.

    Raises:
        IndexError: ``k`` outside ``0 .. len(self) - 1``.
        KeyError: ``inputs``/``targets`` name keys the batches do not have.
    """

    def __init__(self, source: str | Path | _prf.Dataset, batch_size: int = 1, *, inputs: Selection = None,
                 targets: Selection = None, epoch: int = 0, open_kwargs: dict[str, Any] | None = None,
                 workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10,
                 **loader_kwargs: Any):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        ds = _prf.as_dataset(source, **(open_kwargs or {}))
        self._loader = ds.loader(batch_size, **loader_kwargs)
        _prf.sampling.require_fixed_length(self._loader.sampler, "prf.keras.PyDataset")
        keys = list(_sample_spec(ds, loader_kwargs))
        _check_selection(keys, inputs, "inputs")
        _check_selection(keys, targets, "targets")
        self.inputs, self.targets = inputs, targets
        self.epoch = int(epoch)

    @property
    def dataset(self) -> _prf.Dataset:
        return self._loader.dataset

    def __len__(self) -> int:
        return len(self._loader)

    def __getitem__(self, index: int) -> Any:
        n = len(self._loader)
        if not 0 <= int(index) < n:
            raise IndexError(f"batch {index} out of range: {n} batches per epoch")
        return split_batch(self._loader.batch(self.epoch, int(index)), self.inputs, self.targets)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def on_epoch_end(self) -> None:
        """Called by Keras after each epoch: the next epoch follows its own order."""
        self.epoch += 1

    def __repr__(self) -> str:
        return f"prf.keras.PyDataset({self._loader!r}, epoch={self.epoch})"


# loader options that do not change what one sample looks like (left out of the one-sample loader)
_NOT_SHAPE = ("drop_last", "num_workers", "prefetch", "decode_window")


def _sample_spec(ds: _prf.Dataset, loader_kwargs: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per key of the batches of ``ds.loader(..., **loader_kwargs)``: one sample's shape and the
    dtype, from the first batch of the same loader with ``batch_size=1`` (so per-batch transforms and
    normalization are accounted for)."""
    one = ds.loader(1, **{k: v for k, v in loader_kwargs.items() if k not in _NOT_SHAPE}).batch(0, 0)
    return {k: ((), np.dtype(object)) if k == "task" else (tuple(v.shape[1:]), v.dtype) for k, v in one.items()}


def output_signature(source: Any, batch_size: int, *, inputs: Selection = None, targets: Selection = None,
                     open_kwargs: dict[str, Any] | None = None, **loader_kwargs: Any) -> Any:
    """The exact ``tf.TensorSpec`` structure of :func:`to_tf_dataset`'s batches (same arguments).

    The batch axis is ``batch_size`` when every batch is full (``drop_last``, or the rank's sample
    count a multiple of ``batch_size``), else ``None``. ``task`` is ``tf.string [B]``.
    """
    for only_tf_data in ("epoch", "num_epochs", "num_parallel_calls", "prefetch"):
        loader_kwargs.pop(only_tf_data, None)
    ds = _prf.as_dataset(source, **(open_kwargs or {}))
    return _signature(ds, batch_size, loader_kwargs, inputs, targets)


def _signature(ds: _prf.Dataset, batch_size: int, loader_kwargs: dict[str, Any], inputs: Selection,
               targets: Selection) -> Any:
    import tensorflow as tf

    loader = ds.loader(batch_size, **loader_kwargs)
    full = loader.drop_last or len(loader.sampler) % batch_size == 0
    b = batch_size if full else None
    spec: dict[str, Any] = {}
    for k, (shape, dtype) in _sample_spec(ds, loader_kwargs).items():
        tf_dtype = tf.string if k == "task" else tf.as_dtype(dtype)
        spec[k] = tf.TensorSpec((b, *shape), tf_dtype)
    return split_batch(spec, inputs, targets) if (inputs or targets) else spec


def to_tf_dataset(
    source: str | Path | _prf.Dataset,
    batch_size: int = 1,
    *,
    inputs: Selection = None,
    targets: Selection = None,
    epoch: int = 0,
    num_epochs: int | None = 1,
    num_parallel_calls: int | None = None,
    prefetch: int | None = None,
    open_kwargs: dict[str, Any] | None = None,
    **loader_kwargs: Any,
) -> Any:
    """A ``tf.data.Dataset`` of prf batches.

    Args:
        source, batch_size, inputs, targets, open_kwargs: as :class:`PyDataset`.
        epoch: the first epoch; ``num_epochs`` epochs follow, each in its own order (``None``: forever,
            then give ``model.fit`` a ``steps_per_epoch``).
        num_parallel_calls: batches decoded in parallel (default ``tf.data.AUTOTUNE``); the order stays
            prf's (``deterministic=True``).
        prefetch: batches prefetched (default ``tf.data.AUTOTUNE``; 0: none).
        **loader_kwargs: :meth:`prf.Dataset.loader` options (``shuffle``, ``seed``, ``drop_last``,
            ``sampler``, ``rank``, ``world_size``, transforms, ...), applied as the loader applies them.

    Returns:
        ``tf.data.Dataset`` whose ``element_spec`` is :func:`output_signature`: the prf batch dict, or
        ``(inputs, targets)``. Its iterators save and restore with ``tf.train.Checkpoint(iterator=it)``.

    Raises:
        KeyError: ``inputs``/``targets`` name keys the batches do not have.
    """
    import tensorflow as tf

    ds = _prf.as_dataset(source, **(open_kwargs or {}))
    loader = ds.loader(batch_size, **loader_kwargs)
    _prf.sampling.require_fixed_length(loader.sampler, "prf.keras.to_tf_dataset")
    nb = len(loader)
    full_spec = _signature(ds, batch_size, loader_kwargs, None, None)
    keys = list(full_spec)
    _check_selection(keys, inputs, "inputs")
    _check_selection(keys, targets, "targets")
    first = int(epoch)

    def load(i: np.int64) -> list[np.ndarray]:
        e, k = divmod(int(i), nb)
        b = loader.batch(first + e, k)
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


def convert_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """A NumPy batch's arrays as the Keras backend's tensors (``keras.ops.convert_to_tensor``);
    ``task`` passes through. The adapter-plugin protocol's conversion (prf._plugins)."""
    return {k: keras.ops.convert_to_tensor(v) if isinstance(v, np.ndarray) and v.dtype.kind in "biuf" else v
            for k, v in batch.items()}


def wrap_loader(inner: Loader) -> ConvertedLoader:
    """A :class:`prf.Loader` whose batches are Keras backend tensors (:func:`convert_batch`); what
    ``ds.loader(..., output="keras")`` returns."""
    return ConvertedLoader(inner, convert_batch, "prf.keras.loader")


__all__ = ["PyDataset", "to_tf_dataset", "output_signature", "split_batch", "convert_batch", "wrap_loader"]
