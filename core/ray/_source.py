"""``prf.ray.read_dataset``: a LeRobot dataset as a Ray Data ``Dataset`` whose rows are prf's samples.

Planning (on the driver): the dataset is opened once with :func:`prf.open_dataset` (every open check
runs there, so a bad dataset or option fails before any task starts). Its selected episodes are cut
into *units* at the episode boundaries that are also video boundaries for every selected camera: the
camera's file changes there, or the episode starts on a keyframe of the file it shares with the
episode before (v3.0 shards written by LeRobot start every episode on a keyframe; v2.x has one file
per episode). A unit is never split, so no file's GOP is decoded by two tasks. Read tasks are
consecutive units packed to about equal frame counts (as many as Ray asks for, at most one per unit).

Reading (in each task): the task reopens the dataset with ``episodes=`` its own episodes and takes
its positions in order through :meth:`prf.Dataset.get_batch`, so each block's frames are planned by
file and GOP and decoded in one forward pass (:mod:`prf.plan`). A small frame memo (``_RecentFrames``)
keeps the frames of the previous batch, so a window reaching back into it (``delta_timestamps`` with
negative offsets) reuses them: every frame a task needs is decoded once, in order. Rows are exactly
``ds[i]`` of the whole dataset (a window is clamped within its own episode, which the task holds
whole), including ``index``, ``episode_index`` and ``frame_index`` to identify them.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .._open import open_dataset
from ..dataset import Dataset
from ..decode import DecodeBackend, VideoIndex, resolve_backend
from ..errors import OptionsError

#: default target bytes of one block (the frames dominate); Ray's own default target is 128 MiB
BLOCK_BYTES = 64 * 2**20


class _RecentFrames(DecodeBackend):
    """A backend that serves frames the previous :meth:`decode_frames_list` call of the same file
    decoded (kept from the lowest frame the latest call asked for on), and asks ``inner`` for the
    rest. One task's thread uses it; ``decoded`` counts the frames ``inner`` decoded per file."""

    def __init__(self, inner: DecodeBackend):
        self.inner = inner
        self.name = f"recent({inner.name})"
        self.capabilities = inner.capabilities
        self._memo: dict[str, OrderedDict[int, np.ndarray]] = {}
        self.decoded: dict[str, int] = {}

    def index(self, path: str | Path) -> VideoIndex:
        return self.inner.index(path)

    def decode_frames_list(self, path: str | Path, frames: np.ndarray) -> list[np.ndarray]:
        key = str(path)
        want = np.asarray(frames, dtype=np.int64)
        memo = self._memo.setdefault(key, OrderedDict())
        missing = np.array([f for f in want.tolist() if f not in memo], dtype=np.int64)
        if missing.size:
            src = self.inner.decode_frames_list(path, missing)
            for k, f in enumerate(missing.tolist()):
                memo[f] = np.array(src[k], copy=True) if not isinstance(src, list) else src[k]
            self.decoded[key] = self.decoded.get(key, 0) + int(missing.size)
        out = [memo[f] for f in want.tolist()]
        if want.size:
            low = int(want.min())
            for f in [f for f in memo if f < low]:
                del memo[f]
        return out

    def close(self) -> None:
        self._memo.clear()
        self.inner.close()


def _starts_on_keyframe(ds: Dataset, camera: str, ordinal: int) -> bool:
    """Whether the episode at ``ordinal`` (of the episodes table) starts on a keyframe of its video
    file for ``camera`` (then a task boundary there makes no GOP decoded by two tasks)."""
    table = ds.meta.episode_table
    path = ds.meta.path(table.video_files[camera][int(table.video_file[camera][ordinal])])
    index = ds.backend.index(str(path))
    frame, _ = index.nearest(np.array([float(table.from_timestamp[camera][ordinal])]))
    f = int(frame[0])
    return int(index.gop_start[f]) == f


def _units(ds: Dataset) -> list[tuple[list[int], int]]:
    """``(episodes, frames)`` of each unit of ``ds`` (see the module doc), in dataset order: a new unit
    starts at an episode whose every selected video camera either changes file or starts on a
    keyframe of the file it shares with the episode before (LeRobot's writer starts every episode on
    one); so no GOP is decoded by two read tasks. Without a video camera, each episode is a unit."""
    table = ds.meta.episode_table
    ords = table.ordinals(ds.episodes)
    cams = ds.video_cameras
    keys = np.stack([table.video_file[c][ords] for c in cams], 1) if cams else None
    lengths = ds.episode_lengths
    units: list[tuple[list[int], int]] = []
    for j, e in enumerate(ds.episodes):
        new = j == 0 or keys is None
        if not new:
            shared = [c for k, c in enumerate(cams) if keys[j, k] == keys[j - 1, k]]
            new = all(_starts_on_keyframe(ds, c, int(ords[j])) for c in shared)
        if new:
            units.append(([int(e)], int(lengths[j])))
        else:
            units[-1] = (units[-1][0] + [int(e)], units[-1][1] + int(lengths[j]))
    return units


def _pack(units: list[tuple[list[int], int]], n_tasks: int) -> list[tuple[list[int], int]]:
    """Consecutive units packed into at most ``n_tasks`` groups of about equal frame counts."""
    n_tasks = max(1, min(int(n_tasks), len(units)))
    total = sum(n for _, n in units)
    groups: list[tuple[list[int], int]] = []
    done = 0
    for eps, n in units:
        k = len(groups)
        # start a new group when this one reached its share of the frames, and units remain for the rest
        if groups and k < n_tasks and done >= total * k / n_tasks:
            groups.append((list(eps), n))
        elif groups:
            groups[-1] = (groups[-1][0] + list(eps), groups[-1][1] + n)
        else:
            groups.append((list(eps), n))
        done += n
    return groups


def _row_bytes(ds: Dataset) -> int:
    """Estimated bytes of one row: declared feature shapes times window lengths (frames dominate)."""
    total = 0
    for key, f in ds.meta.features.items():
        if key in ds.meta.camera_keys and key not in ds.cameras:
            continue
        t = len(ds.delta_indices.get(key, [0]))
        shape = [int(s) for s in (f.shape or [1])]
        if key in ds.cameras:
            item = 1
        else:
            try:
                item = np.dtype(f.dtype).itemsize
            except TypeError:
                item = 8
        total += t * item * int(np.prod(shape)) + (t if key in ds.delta_indices else 0)
    return max(total, 1)


def _block(batch: Mapping[str, Any]) -> Any:
    """A Ray block (Arrow table; multi-dimensional arrays as Ray's tensor columns) from a prf batch."""
    from ray.data.block import BlockAccessor

    cols = {k: (np.asarray(v, dtype=object) if isinstance(v, list) else v) for k, v in batch.items()}
    return BlockAccessor.batch_to_block(cols)


def read_group(source: Any, episodes: Sequence[int], open_kwargs: Mapping[str, Any], rows_per_block: int,
               stats: dict[str, Any] | None = None, columns: Sequence[str] | None = None) -> Iterator[Any]:
    """The blocks of one read task: the samples of ``episodes`` (whole episodes, dataset order), only
    the keys ``columns`` when given.

    ``stats`` (optional): filled with ``{"decoded": {path: frames decoded}, "rows": n}`` (for tests).
    """
    kw = dict(open_kwargs)
    backend = kw.pop("backend", "pyav")
    inner = backend if isinstance(backend, DecodeBackend) else resolve_backend(backend, device=kw.get("device", "cpu"))
    recent = _RecentFrames(inner)
    ds = open_dataset(source, episodes=list(episodes), backend=recent, **kw)
    n = len(ds)
    try:
        for a in range(0, n, rows_per_block):
            batch = ds.get_batch(np.arange(a, min(n, a + rows_per_block), dtype=np.int64))
            yield _block(batch if columns is None else {k: batch[k] for k in columns})
    finally:
        recent.close()
    if stats is not None:
        stats["decoded"] = dict(recent.decoded)
        stats["rows"] = n


def _plan_source(source: Any, episodes: Iterable[int] | None, open_kwargs: dict[str, Any]
                 ) -> tuple[Any, Dataset, dict[str, Any]]:
    """``(what tasks open, the dataset opened on the driver, the open options tasks use)``."""
    if isinstance(source, Dataset):
        if open_kwargs or episodes is not None:
            raise TypeError("read_dataset(open prf.Dataset): give the options to open_dataset, not here")
        if getattr(source, "streaming", False):
            raise OptionsError(f"{source!r} is streamed: pass its URL to read_dataset (tasks open it themselves)")
        ds = source
        be = ds.backend
        while getattr(be, "inner", None) is not None:
            be = be.inner
        kw = {"delta_timestamps": ds.delta_timestamps or None, "tolerance_s": ds.tolerance_s,
              "cameras": list(ds.cameras), "backend": be.name if be.name in ("pyav", "torchcodec") else "pyav"}
        return str(ds.meta.root), ds, kw
    if hasattr(source, "get_batch") and hasattr(source, "dataset"):  # a view: with_transforms(...)
        raise TypeError("read_dataset takes a dataset source or a prf.Dataset, not a transformed view; "
                        "apply transforms in ray.data's map_batches")
    ds = open_dataset(source, episodes=episodes, **open_kwargs)
    target = str(source)
    if not getattr(ds, "streaming", False) and not open_kwargs.get("streaming"):
        # a folder, or a URL / repo id already resolved to a local copy: tasks open the resolved root
        # only when it is a local folder given as such (URLs are resolved again where the task runs)
        p = Path(target).expanduser()
        if p.exists():
            target = str(p.resolve())
    return target, ds, dict(open_kwargs)


def _datasource_class():
    """The Ray ``Datasource`` class (built on first use, so importing this module needs no Ray)."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class LeRobotPrfDatasource(Datasource):
        """Ray Data source of prf samples (see :mod:`prf.ray._source`)."""

        def __init__(self, target: Any, ds: Dataset, open_kwargs: dict[str, Any], rows_per_block: int | None,
                     columns: Sequence[str] | None = None):
            super().__init__()
            self._columns = None if columns is None else list(columns)
            self._target = target
            self._open_kwargs = open_kwargs
            self._units = _units(ds)
            self._row_bytes = _row_bytes(ds)
            self._rows = len(ds)
            self._rows_per_block = int(rows_per_block) if rows_per_block else max(
                1, min(1024, BLOCK_BYTES // self._row_bytes))
            self._name = Path(str(target).rstrip("/")).name or "dataset"

        def get_name(self) -> str:
            return f"prf({self._name})"

        def estimate_inmemory_data_size(self) -> int:
            return self._rows * self._row_bytes

        @property
        def units(self) -> list[tuple[list[int], int]]:
            """``(episodes, frames)`` per unit (see the module doc)."""
            return list(self._units)

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            tasks = []
            target, kw, rpb, cols = self._target, self._open_kwargs, self._rows_per_block, self._columns
            for eps, n in _pack(self._units, parallelism if parallelism and parallelism > 0 else len(self._units)):
                meta = BlockMetadata(num_rows=n, size_bytes=n * self._row_bytes, input_files=None, exec_stats=None)

                def read(eps=eps):
                    return read_group(target, eps, kw, rpb, columns=cols)

                try:
                    tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
                except TypeError:  # an older Ray without per_task_row_limit
                    tasks.append(ReadTask(read, meta))
            return tasks

    return LeRobotPrfDatasource


def datasource(source: Any, *, episodes: Iterable[int] | None = None, rows_per_block: int | None = None,
               columns: Sequence[str] | None = None, **open_kwargs: Any) -> Any:
    """The Ray ``Datasource`` behind :func:`read_dataset` (for ``ray.data.read_datasource``).

    Raises:
        KeyError: ``columns`` names a key the samples do not have.
    """
    target, ds, kw = _plan_source(source, episodes, open_kwargs)
    if columns is not None:
        keys = list(ds.plan(np.zeros(1, np.int64)).data) + list(ds.cameras)
        unknown = [c for c in columns if c not in keys]
        if unknown:
            raise KeyError(f"{ds.meta.root}: columns {unknown} are not keys of the samples (keys: {keys})")
    return _datasource_class()(target, ds, kw, rows_per_block, columns)


def read_dataset(
    source: Any,
    *,
    episodes: Iterable[int] | None = None,
    delta_timestamps: Mapping[str, Sequence[float]] | None = None,
    cameras: Iterable[str] | None = None,
    tolerance_s: float = 1e-4,
    backend: str = "pyav",
    streaming: bool = False,
    revision: str | None = None,
    columns: Sequence[str] | None = None,
    rows_per_block: int | None = None,
    override_num_blocks: int | None = None,
    ray_remote_args: Mapping[str, Any] | None = None,
) -> Any:
    """A LeRobot dataset (v2.0/v2.1/v3.0) as a ``ray.data.Dataset`` whose rows are prf's samples.

    Row ``i`` (in dataset order; Ray keeps it with ``DataContext.execution_options.preserve_order``,
    and every row carries ``index``, ``episode_index`` and ``frame_index``) equals ``ds[i]`` of
    ``open_dataset(source, ...)`` with the same options: every non-camera feature
    (``observation.state`` ``float32 [D]``...), ``timestamp`` ``float32`` (s), the index columns
    ``int64``, ``task`` (str), cameras ``uint8 [H, W, C]``, and with a ``delta_timestamps`` window
    ``[T, ...]`` (cameras ``[T, H, W, C]``) plus ``{key}_is_pad`` ``bool [T]``. Multi-dimensional
    values are Ray tensor columns: ``iter_torch_batches()`` gives ``torch.uint8 [B, (T,) H, W, C]``
    (leave out the ``task`` strings, which torch cannot hold: ``columns=`` or ``.drop_columns(["task"])``;
    ``task_index`` is there).

    Read tasks are groups of whole episodes aligned to the video files (see :mod:`prf.ray._source`),
    each decoding its frames once, in order. Remote sources: an fsspec URL or Hub repo id with
    ``streaming=True`` (each task streams its own episodes' byte ranges, :mod:`prf.stream`) or without
    (each task fetches its episodes' files into its node's cache). A local folder must be at the same
    path on every node (a shared file system). Ray Train: pass the result as ``datasets={"train":
    ds}``; ``DataConfig`` shards it with ``streaming_split`` (each worker gets whole blocks).

    Args:
        source: dataset folder, fsspec URL, Hub repo id, or an open :class:`prf.Dataset` (not streamed;
            its options are used and the other options must be left out).
        episodes, delta_timestamps, cameras, tolerance_s, backend, streaming, revision: as
            :func:`prf.open_dataset`.
        columns: keep only these keys of the samples (default: all).
        rows_per_block: samples per block (default: about 64 MiB of samples, at most 1024).
        override_num_blocks: read tasks to ask for (default: Ray's choice, at most one per unit).
        ray_remote_args: Ray options of the read tasks (``num_cpus``, ``memory``, ...).

    Raises:
        ImportError: Ray Data is not installed (``pip install 'prf[ray]'``).
        KeyError: ``columns`` names a key the samples do not have.
        and what :func:`prf.open_dataset` raises, on the driver, before any task runs.
    """
    try:
        import ray.data
    except ImportError:
        raise ImportError("prf.ray needs Ray Data: pip install 'prf[ray]'") from None
    kw: dict[str, Any] = {}
    if not isinstance(source, Dataset):
        kw = {"delta_timestamps": delta_timestamps, "cameras": None if cameras is None else list(cameras),
              "tolerance_s": tolerance_s, "backend": backend}
        if streaming:
            kw["streaming"] = True
        if revision is not None:
            kw["revision"] = revision
    src = datasource(source, episodes=episodes, rows_per_block=rows_per_block, columns=columns, **kw)
    # the read tasks' resources as read_datasource's own parameters (its ray_remote_args is deprecated
    # since Ray 2.60); anything else still goes through ray_remote_args
    remote = dict(ray_remote_args or {})
    named = {k: remote.pop(k) for k in _NAMED_REMOTE_ARGS if k in remote}
    if remote:
        named["ray_remote_args"] = remote
    return ray.data.read_datasource(src, override_num_blocks=override_num_blocks, **named)


#: ``ray_remote_args`` keys that ``ray.data.read_datasource`` takes as parameters of its own
_NAMED_REMOTE_ARGS = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "runtime_env",
                      "label_selector", "max_calls")
