"""A drop-in for LeRobot's ``LeRobotDataset``: change one import.

    # from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from prf.torch import LeRobotDataset, LeRobotDatasetMetadata

:class:`LeRobotDataset` takes LeRobot 0.4.4's constructor arguments and returns LeRobot's items
(``lerobot/datasets/lerobot_dataset.py``, ``LeRobotDataset.__getitem__``): a dict of torch tensors with
every feature of the data parquet (float32 / int64 / bool; a shape-``[1]`` feature as a scalar tensor,
``[T, ...]`` with a ``delta_timestamps`` window), ``{key}_is_pad`` bool ``[T]`` for every windowed key,
cameras as float32 ``[C, H, W]`` in ``[0, 1]`` (``[T, C, H, W]`` with a window; ``frame.float() / 255``
as LeRobot's decoders compute it, so bit-equal to LeRobot's output for the same decoded frame), then
``image_transforms`` applied to each camera's tensor, and ``task`` the task string.

Sampling, decoding and windows are prf's (:func:`prf.open_dataset` wrapped by
:class:`prf.torch.Dataset`): ``DataLoader`` batches go through ``__getitems__``, one batched decode per
batch (each video file decoded in one pass), in any number of worker processes. v2.0 and v2.1
datasets open too (LeRobot 0.4.4 asks to convert them first).

What differs from LeRobot, on purpose:
- Recording (``add_frame``, ``save_episode``, ``push_to_hub``...) is not part of the drop-in; write
  datasets with :func:`prf.write_lerobot_dataset`. ``batch_encoding_size`` is accepted and unused.
- ``root=None``: the dataset is read from ``$HF_LEROBOT_HOME/{repo_id}`` when it is there (LeRobot's
  local copy), else fetched from the Hub into huggingface_hub's cache (only ``meta/`` and the selected
  episodes' files; ``force_cache_sync`` does not apply: files are fetched when missing).
- ``video_backend``: ``"pyav"`` and ``"video_reader"`` decode with PyAV, ``"torchcodec"`` with
  torchcodec; ``None`` is prf's default (PyAV; LeRobot picks torchcodec where installed). Frames are
  the same (LeRobot's two backends and prf's agree bit-exactly on every shared oracle).
- ``download_videos=False`` opens without cameras (LeRobot would fail on the first item).
- ``hf_dataset`` (the ``datasets.Dataset``) does not exist; columns are in ``dataset.dataset`` (a
  :class:`prf.Dataset`: ``column(key)``, ``get_batch(indices)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

import prf as _prf

from . import Dataset as _TorchDataset
from . import to_torch

#: LeRobot's ``video_backend`` names -> prf's decode backends
_BACKENDS = {None: "pyav", "pyav": "pyav", "video_reader": "pyav", "torchcodec": "torchcodec"}


def _lerobot_home() -> Path:
    """LeRobot's local dataset folder (``lerobot.utils.constants.HF_LEROBOT_HOME``)."""
    home = os.environ.get("HF_LEROBOT_HOME")
    if home:
        return Path(home).expanduser()
    hf_home = os.environ.get("HF_HOME", str(Path("~") / ".cache" / "huggingface"))
    return Path(hf_home).expanduser() / "lerobot"


def _source(repo_id: str, root: str | Path | None) -> str | Path:
    if root is not None:
        return Path(root)
    local = _lerobot_home() / repo_id
    return local if (local / "meta" / "info.json").is_file() else repo_id


class EpisodesTable:
    """The episodes table as LeRobot's ``meta.episodes`` (a ``datasets.Dataset``) is used: ``t[i]`` a
    row dict (position ``i`` in table order), ``t["column"]`` a list of values, ``len(t)``, iteration
    over rows, ``column_names``.

    Columns: ``episode_index``, ``tasks`` (list of str), ``length``, ``dataset_from_index``,
    ``dataset_to_index`` (global ``index`` range ``[from, to)``), and per camera
    ``videos/{key}/from_timestamp`` / ``videos/{key}/to_timestamp`` (seconds in its video file).
    """

    def __init__(self, meta: _prf.DatasetMeta):
        rows: list[dict[str, Any]] = []
        for e, ep in meta.episodes.items():
            row: dict[str, Any] = {
                "episode_index": int(e), "tasks": list(ep.tasks), "length": int(ep.length),
                "dataset_from_index": int(ep.dataset_from_index), "dataset_to_index": int(ep.dataset_to_index),
            }
            for key, ref in ep.videos.items():
                row[f"videos/{key}/from_timestamp"] = float(ref.from_timestamp)
                row[f"videos/{key}/to_timestamp"] = float(ref.to_timestamp)
            rows.append(row)
        self._rows = rows
        self.column_names: list[str] = list(rows[0]) if rows else []

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._rows)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            if key not in self.column_names:
                raise KeyError(f"episodes table has no column {key!r}; columns: {self.column_names}")
            return [r.get(key) for r in self._rows]
        return self._rows[int(key)]

    def __repr__(self) -> str:
        return f"EpisodesTable(num_rows={len(self)}, columns={self.column_names})"


def _tasks_frame(tasks: Mapping[int, str]) -> Any:
    """``meta.tasks`` as LeRobot 0.4.4 loads it: a pandas DataFrame indexed by the task string with a
    ``task_index`` column (``tasks.iloc[task_index].name`` is the task). A dict ``{task: task_index}``
    where pandas is not installed."""
    order = sorted(tasks)
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with every LeRobot install
        return {tasks[i]: i for i in order}
    return pd.DataFrame({"task_index": order}, index=pd.Index([tasks[i] for i in order]))


class LeRobotDatasetMetadata:
    """LeRobot's ``LeRobotDatasetMetadata`` for reading: ``info`` (info.json), ``fps``, ``features``
    (info.json's feature dicts), ``stats`` (``{feature: {stat: np.ndarray}}``, from ``meta/stats.json``
    cast as LeRobot's ``cast_stats_to_numpy`` does; for datasets without it, prf's aggregate of the
    per-episode stats), ``episodes`` (:class:`EpisodesTable`), ``tasks`` (pandas DataFrame indexed by
    task), ``total_frames``, ``total_episodes``, ``total_tasks``, ``video_keys``, ``image_keys``,
    ``camera_keys``, ``names``, ``shapes``, ``robot_type``, ``data_path``, ``video_path``, ``root``,
    ``repo_id``, ``revision``.

    Raises:
        prf.errors.DatasetError (and subclasses): missing or malformed metadata, a Hub repo that
            cannot be fetched.
    """

    def __init__(self, repo_id: str, root: str | Path | None = None, revision: str | None = None,
                 force_cache_sync: bool = False, metadata_buffer_size: int = 10, *,
                 _meta: _prf.DatasetMeta | None = None, _dataset: _prf.Dataset | None = None):
        self.repo_id = repo_id
        self.revision = revision
        if _meta is None:
            from prf._open import resolve_source

            _meta = _prf.DatasetMeta(resolve_source(_source(repo_id, root), revision, episodes=[], cameras=[]))
        self._meta = _meta
        self._dataset = _dataset
        self._stats: dict[str, dict[str, np.ndarray]] | None = None
        self.root = Path(_meta.root)
        self.info: dict[str, Any] = _meta.info
        self.episodes = EpisodesTable(_meta)
        self.tasks = _tasks_frame(_meta.tasks)

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        if self._stats is None:
            raw = self._meta.stats()
            if raw:
                self._stats = {k: {s: np.array(v) for s, v in d.items()} for k, d in raw.items()}
            elif self._dataset is not None:
                self._stats = self._dataset.stats()
            else:
                self._stats = {}
        return self._stats

    fps = property(lambda self: self.info["fps"], doc="frames per second (info.json)")
    features = property(lambda self: self.info["features"], doc="info.json's features")
    robot_type = property(lambda self: self.info.get("robot_type"))
    data_path = property(lambda self: self.info.get("data_path"))
    video_path = property(lambda self: self.info.get("video_path"))
    total_episodes = property(lambda self: self.info["total_episodes"])
    total_frames = property(lambda self: self.info["total_frames"])
    total_tasks = property(lambda self: self.info.get("total_tasks", len(self._meta.tasks)))
    chunks_size = property(lambda self: self.info.get("chunks_size"))

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "image"]

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] in ("video", "image")]

    @property
    def names(self) -> dict[str, Any]:
        return {k: f.get("names") for k, f in self.features.items()}

    @property
    def shapes(self) -> dict[str, tuple]:
        return {k: tuple(f["shape"]) for k, f in self.features.items()}

    def get_task_index(self, task: str) -> int | None:
        return next((i for i, t in self._meta.tasks.items() if t == task), None)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({{\n    Repository ID: '{self.repo_id}',\n    Total episodes: "
                f"'{self.total_episodes}',\n    Total frames: '{self.total_frames}',\n    Features: "
                f"'{list(self.features)}',\n}})',\n")


class LeRobotDataset(_TorchDataset):
    """LeRobot 0.4.4's ``LeRobotDataset`` (reading), on prf's loader. See the module docstring for
    the item format and what differs.

    Args:
        repo_id: the dataset's Hub id (a name only, when ``root`` is given).
        root: the dataset folder (default: ``$HF_LEROBOT_HOME/{repo_id}`` if present, else the Hub).
        episodes: episode indices to load; items are then addressed by position in the selection.
        image_transforms: applied to each camera's float tensor (``[C, H, W]``, ``[T, C, H, W]`` with a
            window) of every item, as LeRobot does (e.g. torchvision ``v2`` transforms).
        delta_timestamps: ``{key: [seconds, ...]}`` windows (LeRobot's semantics: offsets on the fps grid
            within ``tolerance_s``, clamped to the episode, ``{key}_is_pad``).
        tolerance_s: as LeRobot's (window offsets and video frame times).
        revision: Hub revision.
        force_cache_sync, batch_encoding_size: accepted for LeRobot's signature; no effect.
        download_videos: ``False`` opens without cameras.
        video_backend: ``"pyav"`` / ``"video_reader"`` (PyAV) or ``"torchcodec"``; ``None``: PyAV.

    Raises:
        prf.errors.DatasetError (MetadataError, MissingFilesError...), DeltaTimestampsError: as
            :func:`prf.open_dataset`; ValueError: an unknown ``video_backend``.
    """

    def __init__(
        self,
        repo_id: str,
        root: str | Path | None = None,
        episodes: list[int] | None = None,
        image_transforms: Callable | None = None,
        delta_timestamps: dict[str, list[float]] | None = None,
        tolerance_s: float = 1e-4,
        revision: str | None = None,
        force_cache_sync: bool = False,
        download_videos: bool = True,
        video_backend: str | None = None,
        batch_encoding_size: int = 1,
        **_recording_options: Any,
    ):
        if video_backend not in _BACKENDS:
            raise ValueError(f"video_backend {video_backend!r} is not one of {sorted(k for k in _BACKENDS if k)}")
        self.repo_id = repo_id
        self.image_transforms = image_transforms
        self.delta_timestamps = delta_timestamps
        self.episodes = episodes
        self.tolerance_s = tolerance_s
        self.revision = revision
        self.video_backend = video_backend or "pyav"
        self.batch_encoding_size = batch_encoding_size
        ds = _prf.open_dataset(
            _source(repo_id, root), episodes=episodes, delta_timestamps=delta_timestamps, tolerance_s=tolerance_s,
            cameras=None if download_videos else [], backend=_BACKENDS[video_backend], revision=revision,
        )
        super().__init__(ds)
        self.root = Path(ds.meta.root)
        self.meta = LeRobotDatasetMetadata(repo_id, self.root, revision, _meta=ds.meta, _dataset=ds)
        self.delta_indices = (
            {k: [int(v) for v in offs] for k, offs in ds.delta_indices.items()} if delta_timestamps else None
        )
        self._cameras = list(ds.cameras)

    # ---- LeRobot's attributes -------------------------------------------------------------------
    @property
    def meta(self) -> LeRobotDatasetMetadata:  # type: ignore[override]
        return self._lerobot_meta

    @meta.setter
    def meta(self, value: LeRobotDatasetMetadata) -> None:
        self._lerobot_meta = value

    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def num_frames(self) -> int:
        """Frames of the selected episodes (``len(self)``)."""
        return len(self.dataset)

    @property
    def num_episodes(self) -> int:
        return len(self.episodes) if self.episodes is not None else self.meta.total_episodes

    @property
    def features(self) -> dict[str, dict]:
        return self.meta.features

    # ---- items ----------------------------------------------------------------------------------
    def _to_lerobot(self, sample: dict[str, Any], batched: bool) -> dict[str, Any]:
        """prf's tensors -> LeRobot's: cameras uint8 ``[..., H, W, C]`` -> float32 ``[..., C, H, W]`` / 255
        (LeRobot's key order: cameras first, then the parquet columns, pads, task)."""
        out: dict[str, Any] = {}
        for cam in self._cameras:
            out[cam] = sample[cam].movedim(-1, -3).to(torch.float32).div_(255.0)
        pads = [k for k in sample if k.endswith("_is_pad")]
        for k, v in sample.items():
            if k not in out and k != "task" and k not in pads:
                out[k] = v
        for k in pads:
            out[k] = sample[k]
        if "task" in sample:
            out["task"] = sample["task"]
        return out

    def _transform(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.image_transforms is not None:
            for cam in self._cameras:
                item[cam] = self.image_transforms(item[cam])
        return item

    def __getitem__(self, idx: int) -> dict[str, Any]:
        """LeRobot's item for position ``idx`` (see the module docstring)."""
        if isinstance(idx, torch.Tensor):
            idx = int(idx.item())
        n = len(self)
        i = int(idx)
        if i < -n or i >= n:
            raise IndexError(f"index {idx} is out of range for a dataset of {n} frames")
        item = self._to_lerobot(to_torch(self.dataset[i % n]), batched=False)
        return self._transform(item)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """What ``DataLoader`` calls for a batch: one batched decode, then LeRobot's items."""
        idx = np.asarray([int(i) for i in indices], dtype=np.int64)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"indices {idx[(idx < -n) | (idx >= n)][:5].tolist()} are out of range for "
                             f"a dataset of {n} frames")
        batch = self._to_lerobot(to_torch(self.dataset.get_batch(idx % n if idx.size else idx)), batched=True)
        return [self._transform({k: (str(v[j]) if k == "task" else v[j]) for k, v in batch.items()})
                for j in range(len(idx))]

    def __len__(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({{\n    Repository ID: '{self.repo_id}',\n    Number of selected "
                f"episodes: '{self.num_episodes}',\n    Number of selected samples: '{self.num_frames}',\n"
                f"    Features: '{list(self.features)}',\n}})',\n")


__all__ = ["LeRobotDataset", "LeRobotDatasetMetadata", "EpisodesTable"]
