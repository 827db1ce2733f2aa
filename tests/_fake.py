"""An in-memory stand-in for prf.Dataset with the attributes samplers and the Loader use, so the
property tests can try thousands of episode layouts in seconds (no parquet, no video)."""

from __future__ import annotations

import numpy as np

from prf.format import Episode


class _Meta:
    def __init__(self, episodes: dict[int, Episode], tasks: dict[int, str]):
        self.episodes = episodes
        self.tasks = tasks
        self.root = "<fake>"


class FakeDataset:
    """``lengths[i]`` frames for episode ``ids[i]``; episode ``e`` has task ``e % n_tasks``.

    ``get_batch`` returns ``index`` (the position), ``episode_index``, ``frame_index``, ``task`` and,
    with ``camera=True``, a ``uint8 [B, 8, 10, 3]`` frame per sample whose pixels encode the position.
    """

    def __init__(self, lengths, ids=None, n_tasks: int = 2, camera: bool = False):
        self._lengths = np.asarray(lengths, dtype=np.int64)
        self.episodes = list(range(len(lengths))) if ids is None else [int(i) for i in ids]
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)[:-1]]).astype(np.int64)
        self.row_episode = np.repeat(np.arange(len(lengths)), self._lengths)
        self.cameras = ["cam"] if camera else []
        tasks = {t: f"task {t}" for t in range(n_tasks)}
        self._task = np.array([self.episodes[o] % n_tasks for o in self.row_episode], dtype=np.int64)
        eps = {}
        for o, e in enumerate(self.episodes):
            s, n = int(self._starts[o]), int(self._lengths[o])
            eps[e] = Episode(e, n, s, s + n, (tasks[e % n_tasks],), "", {})
        self.meta = _Meta(eps, tasks)

    def __len__(self) -> int:
        return int(self._lengths.sum())

    @property
    def episode_starts(self):
        return self._starts

    @property
    def episode_lengths(self):
        return self._lengths

    def column(self, key):
        if key == "task_index":
            return self._task
        raise KeyError(key)

    def get_batch(self, indices):
        pos = np.asarray(indices, dtype=np.int64)
        out = {
            "index": pos.copy(),
            "episode_index": np.array([self.episodes[o] for o in self.row_episode[pos]], dtype=np.int64),
            "frame_index": pos - self._starts[self.row_episode[pos]],
            "task": [self.meta.tasks[int(t)] for t in self._task[pos]],
        }
        if self.cameras:
            img = np.empty((pos.size, 8, 10, 3), np.uint8)
            img[:] = (pos % 251).astype(np.uint8)[:, None, None, None]
            img[:, :, :5, 1] = 7
            out["cam"] = img
        return out
