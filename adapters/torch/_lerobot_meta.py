"""LeRobot 0.4.4's ``LeRobotDatasetMetadata`` over prf's metadata model (the ``meta`` of
:class:`prf.torch.LeRobotDataset`; see :mod:`prf.torch.lerobot`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

import prf as _prf


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
            _meta = _prf.DatasetMeta(_prf.resolve_source(_source(repo_id, root), revision, episodes=[], cameras=[]))
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
