"""The conformance harness: one way to drive every adapter, so one suite checks them all.

(Not a conftest.py: tests/ imports helpers with ``from conftest import ...``, and a second conftest
module would shadow that one.)

Each :class:`Harness` runs a dataset through one adapter the way that framework's users would
(``DataLoader``, Grain iterators, ``tf.data`` iterators, Keras's ``PyDataset`` indexing ...) for a
given configuration ``(batch_size, shuffle, seed, epoch, rank, world_size, drop_last, sampler)``,
resumes with the framework's own mechanism, and converts batches back to NumPy. The reference is
built from the core's primitives only: the sampler's order and ``Dataset.get_batch``.

An adapter whose framework is not installed is skipped with the reason; with ``CI`` set (as
``.ci/run`` runs) a missing framework is a failure instead, so CI skips none.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import prf
from prf.sampling import Sampler, SequentialSampler, ShuffleSampler

REPO = Path(__file__).resolve().parents[1]
LEROBOT = (REPO / ".." / "shared" / "data" / "lerobot").resolve()
DATASETS = ["so101_wrist_v30", "pusht_sim_v30"]


def windows(meta: prf.DatasetMeta) -> dict[str, list[float]]:
    """The oracle's windows: every camera and the state ``[-1/fps, 0]``, the action 16 frames ahead."""
    fps = meta.fps
    dt = {c: [-1 / fps, 0.0] for c in meta.camera_keys}
    dt["observation.state"] = [-1 / fps, 0.0]
    dt["action"] = [i / fps for i in range(16)]
    return dt


_OPENED: dict[tuple[str, bool], prf.Dataset] = {}


def open_conf(name: str, cameras: bool = True) -> prf.Dataset:
    """A shared dataset opened with windows (``cameras=False``: no camera decoded, for whole epochs)."""
    key = (name, cameras)
    if key not in _OPENED:
        root = LEROBOT / name
        if not (root / "meta" / "info.json").is_file():
            pytest.fail(f"test data {root} is missing: ../shared/data must sit beside the repo")
        meta = prf.DatasetMeta(root)
        dt = windows(meta)
        if not cameras:
            dt = {k: v for k, v in dt.items() if k not in meta.camera_keys}
        _OPENED[key] = prf.open_dataset(root, delta_timestamps=dt, cameras=None if cameras else [])
    return _OPENED[key]


class FixedSampler(Sampler):
    """A prf sampler with a given global order (to put episode boundaries into a batch)."""

    def __init__(self, num_samples: int, order: np.ndarray, **kw: Any):
        super().__init__(num_samples, **kw)
        self.order = np.asarray(order, dtype=np.int64)

    def global_order(self, epoch: int) -> np.ndarray:
        return self.order

    def __len__(self) -> int:
        n, ws = self.order.size, self.world_size
        return n // ws if self.drop_last else -(-n // ws)


@dataclass
class Cfg:
    batch_size: int = 4
    shuffle: bool = False
    seed: int = 0
    epoch: int = 0
    rank: int = 0
    world_size: int = 1
    drop_last: bool = False
    order: np.ndarray | None = None  # a FixedSampler's global order

    def sampler(self, ds: prf.Dataset) -> Sampler:
        kw = dict(seed=self.seed, rank=self.rank, world_size=self.world_size)
        if self.order is not None:
            s: Sampler = FixedSampler(len(ds), self.order, **kw)
        else:
            s = (ShuffleSampler if self.shuffle else SequentialSampler)(len(ds), **kw)
        s.set_epoch(self.epoch)
        return s

    def loader_kwargs(self, ds: prf.Dataset) -> dict[str, Any]:
        """prf.Loader options: a sampler only for a fixed order, else shuffle/seed/rank/world_size."""
        if self.order is not None:
            return dict(sampler=self.sampler(ds), drop_last=self.drop_last)
        return dict(shuffle=self.shuffle, seed=self.seed, rank=self.rank, world_size=self.world_size,
                    drop_last=self.drop_last)


def reference(ds: prf.Dataset, cfg: Cfg, start: int = 0, count: int | None = None) -> list[dict[str, Any]]:
    """Batches ``start ..`` of the epoch from the core's primitives: sampler order + ``get_batch``."""
    order = cfg.sampler(ds).indices(cfg.epoch)
    bs = cfg.batch_size
    stop = (order.size // bs) * bs if cfg.drop_last else order.size
    chunks = [order[i : i + bs] for i in range(0, stop, bs)]
    chunks = chunks[start:] if count is None else chunks[start : start + count]
    return [ds.get_batch(c) for c in chunks]


def reference_indices(ds: prf.Dataset, cfg: Cfg) -> np.ndarray:
    order = cfg.sampler(ds).indices(cfg.epoch)
    if cfg.drop_last:
        order = order[: (order.size // cfg.batch_size) * cfg.batch_size]
    return order


# ---- harnesses ----------------------------------------------------------------------------------
@dataclass
class Harness:
    """How one adapter is driven. ``run`` returns batches as delivered (framework-native)."""

    name: str
    modules: tuple[str, ...]
    int64_as: str = "int64"  # what int64 features become (JAX: int32 without x64)

    def require(self) -> None:
        for m in self.modules:
            try:
                importlib.import_module(m)
            except ImportError as e:
                msg = f"{self.name}: framework not installed ({m}: {e}); pip install 'prf[all]'"
                if os.environ.get("CI"):
                    pytest.fail(msg + " -- CI must run every adapter")
                pytest.skip(msg)

    # -- to be provided per adapter
    def run(self, ds: prf.Dataset, cfg: Cfg, count: int | None = None, resume_after: int | None = None,
            tmp_path: Path | None = None) -> list[dict[str, Any]]:
        """``count`` batches of epoch ``cfg.epoch`` (all when None). With ``resume_after=k``: deliver
        ``k`` batches, save the framework's state, restore it into fresh objects and return what
        they deliver next (batches ``k ..``)."""
        raise NotImplementedError

    def to_numpy(self, value: Any) -> Any:
        return np.asarray(value)

    def task_list(self, value: Any) -> list[str]:
        return list(value)

    def is_native(self, value: Any) -> bool:
        """Whether a delivered array is the framework's own array type."""
        return isinstance(value, np.ndarray)

    def dtype_name(self, value: Any) -> str:
        return str(np.asarray(value).dtype)


def _take(it: Any, n: int | None) -> list[Any]:
    out = []
    for b in it:
        out.append(b)
        if n is not None and len(out) >= n:
            break
    return out


class NumpyHarness(Harness):
    def _loader(self, ds: prf.Dataset, cfg: Cfg, workers: int = 2) -> Any:
        loader = ds.loader(cfg.batch_size, num_workers=workers, prefetch=1, **cfg.loader_kwargs(ds))
        loader.set_epoch(cfg.epoch)
        return loader

    def _wrap(self, loader: Any) -> Any:
        return loader

    def run(self, ds, cfg, count=None, resume_after=None, tmp_path=None):
        loader = self._wrap(self._loader(ds, cfg))
        if resume_after is None:
            return _take(loader, count)
        it = iter(loader)
        for _ in range(resume_after):
            next(it)
        state = loader.state_dict()
        it.close()
        fresh = self._wrap(self._loader(ds, cfg))
        fresh.set_epoch(cfg.epoch + 7)  # the state, not this, decides where the resume starts
        fresh.load_state_dict(state)
        return _take(fresh, count)


class MlxHarness(NumpyHarness):
    def _wrap(self, loader):
        import prf.mlx

        return prf.mlx.Loader(loader)

    def to_numpy(self, value):
        return np.array(value)

    def is_native(self, value):
        import mlx.core as mx

        return isinstance(value, mx.array)

    def dtype_name(self, value):
        return str(value.dtype).removeprefix("mlx.core.")


def _torch_mp_context() -> Any:
    # The suite's process also runs JAX and TensorFlow threads: fork only from a clean server.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "prf", "prf.torch"])
    return ctx


class _TorchBase(Harness):
    def to_numpy(self, value):
        return value.numpy()

    def is_native(self, value):
        import torch

        return isinstance(value, torch.Tensor)

    def dtype_name(self, value):
        return str(value.dtype).removeprefix("torch.")


class TorchMapHarness(_TorchBase):
    """``prf.torch.Dataset`` in ``torch.utils.data.DataLoader(num_workers=2)``; the batch sampler is
    prf's order (a map-style dataset's order is its sampler's; resume = the sampler's position)."""

    def run(self, ds, cfg, count=None, resume_after=None, tmp_path=None):
        import torch.utils.data as tud

        import prf.torch

        order = reference_indices(ds, cfg)
        bs = cfg.batch_size
        batches = [order[i : i + bs].tolist() for i in range(0, order.size, bs)]
        start = resume_after or 0
        if count is not None:
            batches = batches[: start + count]
        dl = tud.DataLoader(prf.torch.Dataset(ds), batch_sampler=batches[start:], num_workers=2,
                            multiprocessing_context=_torch_mp_context(), collate_fn=_torch_collate)
        return list(dl)


def _torch_collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    import torch.utils.data as tud

    tasks = [s["task"] for s in samples]
    out = tud.default_collate([{k: v for k, v in s.items() if k != "task"} for s in samples])
    out["task"] = tasks
    return out


class TorchIterableHarness(_TorchBase):
    """``prf.torch.BatchIterableDataset`` (batches sharded by rank and DataLoader worker) in torchdata's
    ``StatefulDataLoader(batch_size=None, num_workers=2)``; resume with the loader's ``state_dict``."""

    def require(self) -> None:
        super().require()
        import prf.torch

        if not hasattr(prf.torch, "BatchIterableDataset"):
            msg = "prf.torch.BatchIterableDataset is not in this tree (it comes with the training branch)"
            if os.environ.get("CI"):
                pytest.fail(msg)
            pytest.skip(msg)

    def _loader(self, ds, cfg):
        from torchdata.stateful_dataloader import StatefulDataLoader

        import prf.torch

        ids = prf.torch.BatchIterableDataset(ds, cfg.batch_size, **cfg.loader_kwargs(ds))
        ids.set_epoch(cfg.epoch)
        return StatefulDataLoader(ids, batch_size=None, num_workers=2, multiprocessing_context=_torch_mp_context())

    def run(self, ds, cfg, count=None, resume_after=None, tmp_path=None):
        dl = self._loader(ds, cfg)
        if resume_after is None:
            return _take(dl, count)
        it = iter(dl)
        for _ in range(resume_after):
            next(it)
        state = dl.state_dict()
        del it
        fresh = self._loader(ds, cfg)
        fresh.load_state_dict(state)
        return _take(fresh, count)


class _JaxBase(Harness):
    def is_native(self, value):
        import jax

        return isinstance(value, jax.Array)

    def dtype_name(self, value):
        return str(value.dtype)


class GrainMapHarness(_JaxBase):
    """``prf.jax.map_dataset`` (batches) -> ``.to_iter_dataset()`` with reader threads; resume with
    the Grain iterator's ``get_state``/``set_state``; ``.map(prf.jax.to_jax)``."""

    def _iter(self, ds, cfg):
        import grain

        import prf.jax

        kw = cfg.loader_kwargs(ds)
        if "sampler" in kw:
            md = prf.jax.map_dataset(ds, cfg.batch_size, epoch=cfg.epoch, sampler=kw["sampler"],
                                     drop_last=cfg.drop_last)
        else:
            md = prf.jax.map_dataset(ds, cfg.batch_size, epoch=cfg.epoch, **kw)
        return iter(md.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)).map(prf.jax.to_jax))

    def run(self, ds, cfg, count=None, resume_after=None, tmp_path=None):
        it = self._iter(ds, cfg)
        if resume_after is None:
            return _take(it, count)
        for _ in range(resume_after):
            next(it)
        state = it.get_state()
        fresh = self._iter(ds, cfg)
        fresh.set_state(state)
        return _take(fresh, count)


class GrainLoaderHarness(_JaxBase):
    """``prf.jax.data_loader``: ``grain.DataLoader`` with ``prf.jax.Sampler`` and
    ``ShardOptions(rank, world_size)`` (what ``ShardByJaxProcess`` gives a JAX process)."""

    def _iter(self, ds, cfg):
        import grain

        import prf.jax

        opts = grain.sharding.ShardOptions(cfg.rank, cfg.world_size)
        if cfg.order is not None:
            dl = prf.jax.data_loader(ds, cfg.batch_size, sampler=cfg.sampler(ds), epoch=cfg.epoch,
                                     drop_last=cfg.drop_last, shard_options=opts)
        else:
            dl = prf.jax.data_loader(ds, cfg.batch_size, shuffle=cfg.shuffle, seed=cfg.seed, epoch=cfg.epoch,
                                     drop_last=cfg.drop_last, shard_options=opts)
        return iter(dl)

    def run(self, ds, cfg, count=None, resume_after=None, tmp_path=None):
        import prf.jax

        it = self._iter(ds, cfg)
        if resume_after is not None:
            for _ in range(resume_after):
                next(it)
            state = it.get_state()
            it = self._iter(ds, cfg)
            it.set_state(state)
        return [prf.jax.to_jax(b) for b in _take(it, count)]


class KerasPyDatasetHarness(Harness):
    """``prf.keras.PyDataset`` read as Keras's data adapter reads it (``self[k]`` in order), with
    ``on_epoch_end`` between epochs; resume = a fresh PyDataset read from the first undelivered ``k``."""

    def run(self, ds, cfg, count=None, resume_after=None, tmp_path=None):
        import prf.keras

        kw = cfg.loader_kwargs(ds)
        pyds = prf.keras.PyDataset(ds, cfg.batch_size, **kw)
        for _ in range(cfg.epoch):
            pyds.on_epoch_end()
        start = resume_after or 0
        stop = len(pyds) if count is None else min(len(pyds), start + count)
        return [pyds[k] for k in range(start, stop)]


class TfDataHarness(Harness):
    """``prf.keras.to_tf_dataset``; resume with ``tf.train.Checkpoint(iterator=...)``."""

    def _ds(self, ds, cfg):
        import prf.keras

        return prf.keras.to_tf_dataset(ds, cfg.batch_size, epoch=cfg.epoch, num_parallel_calls=2, prefetch=1,
                                       **cfg.loader_kwargs(ds))

    def run(self, ds, cfg, count=None, resume_after=None, tmp_path=None):
        import tensorflow as tf

        tfds = self._ds(ds, cfg)
        it = iter(tfds)
        if resume_after is not None:
            for _ in range(resume_after):
                next(it)
            path = tf.train.Checkpoint(iterator=it).save(str(tmp_path / "tfdata" / "ckpt"))
            it = iter(self._ds(ds, cfg))
            tf.train.Checkpoint(iterator=it).restore(path)
        return _take(it, count)

    def to_numpy(self, value):
        return value.numpy()

    def is_native(self, value):
        import tensorflow as tf

        return isinstance(value, tf.Tensor)

    def task_list(self, value):
        assert value.dtype.name == "string"
        return [t.decode() for t in value.numpy().tolist()]

    def dtype_name(self, value):
        return value.dtype.name


def _jax_int64() -> str:
    try:
        import jax

        return "int64" if jax.config.jax_enable_x64 else "int32"
    except ImportError:
        return "int32"


HARNESSES: list[Harness] = [
    NumpyHarness("numpy", ()),
    TorchMapHarness("torch-map", ("torch", "prf.torch")),
    TorchIterableHarness("torch-iterable", ("torch", "torchdata", "prf.torch")),
    MlxHarness("mlx", ("mlx.core", "prf.mlx")),
    GrainMapHarness("jax-grain-map", ("jax", "grain", "prf.jax"), int64_as="jax"),
    GrainLoaderHarness("jax-grain-dataloader", ("jax", "grain", "prf.jax"), int64_as="jax"),
    KerasPyDatasetHarness("keras-pydataset", ("keras", "prf.keras")),
    TfDataHarness("tf-data", ("tensorflow", "keras", "prf.keras")),
]
