"""Bulk jobs on a Ray cluster: many robot logs converted or written to LeRobot, many datasets scored.

Every job is one Ray task per input (a log, a dataset), each running prf's own single-process
function (:func:`prf.convert_log`, :func:`prf.log_to_lerobot`, :func:`prf.score_episodes`), so a
job's outputs are the single-process path's. Tasks write atomically (a temporary folder renamed at
the end) and are idempotent, so a task whose worker died (a killed process, a lost node) is simply
run again by Ray (``max_retries``): the output is complete, with nothing duplicated (a dead attempt's
temporary folder is removed at the end of the job). An error of prf (a bad log, a bad dataset) is
not retried: the job waits for the other tasks, then raises one error naming every failed input.

A task finds its input and writes its output by path: on a multi-node cluster these paths must be on
a file system every node mounts at the same place (NFS, a FUSE-mounted bucket...).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import LogError, PrfError

#: Ray retries of a task whose worker died (system failures only; prf's errors are not retried)
MAX_RETRIES = 3


def connect(address: str | None = None) -> None:
    """Connect this process to a Ray cluster (``address``: ``"auto"``, ``"HOST:PORT"``,
    ``"ray://HOST:10001"``); with ``None``, keep the current connection or start a local Ray.

    Raises:
        ImportError: Ray is not installed (``pip install 'prf[ray]'``).
    """
    try:
        import ray
    except ImportError:
        raise ImportError("prf.ray needs Ray: pip install 'prf[ray]'") from None
    if ray.is_initialized():
        return
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)


def _run(fn: Callable[..., Any], calls: Sequence[tuple], what: Sequence[str], *, max_retries: int,
         ray_remote_args: Mapping[str, Any] | None) -> list[Any]:
    """``fn(*args)`` for every ``args`` of ``calls`` as Ray tasks; results in ``calls`` order.

    Raises:
        PrfError: one or more tasks raised a prf error (after all tasks finished), naming each.
    """
    import ray

    opts = {"max_retries": int(max_retries), "retry_exceptions": False, "num_cpus": 1}
    opts.update(ray_remote_args or {})
    remote = ray.remote(fn).options(**opts)
    refs = [remote.remote(*args) for args in calls]
    results: list[Any] = [None] * len(refs)
    failed: list[tuple[str, BaseException]] = []
    for k, ref in enumerate(refs):
        try:
            results[k] = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - collected, then raised as one error naming each input
            failed.append((what[k], e))
    if failed:
        first = failed[0][1]
        lines = "; ".join(f"{name}: {_cause(e)}" for name, e in failed[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        cls = type(_unwrap(first)) if isinstance(_unwrap(first), PrfError) else PrfError
        try:
            err = cls(f"{len(failed)} of {len(calls)} task(s) failed: {lines}{more}")
        except TypeError:
            err = PrfError(f"{len(failed)} of {len(calls)} task(s) failed: {lines}{more}")
        raise err from None
    return results


def _unwrap(e: BaseException) -> BaseException:
    cause = getattr(e, "cause", None)
    return cause if isinstance(cause, BaseException) else e


def _cause(e: BaseException) -> str:
    c = _unwrap(e)
    return " ".join(str(c).split()) or type(c).__name__


def _out_names(paths: Sequence[Path]) -> list[str]:
    """An output folder name per log: its name without suffix (a rosbag2 folder: its name); where two
    logs share one, their paths below the common parent, ``/`` written ``__``."""
    stems = [p.name if p.is_dir() else p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    common = Path(os.path.commonpath([str(p.resolve()) for p in paths]))
    names = []
    for p in paths:
        rel = p.resolve().relative_to(common) if p.resolve() != common else Path(p.name)
        rel = rel if p.is_dir() else rel.with_suffix("")
        names.append("__".join(rel.parts))
    if len(set(names)) != len(names):
        raise LogError(f"two logs would be written to the same output folder: {[str(p) for p in paths]}")
    return names


def _clean_temp(parent: Path, names: Iterable[str]) -> None:
    """Remove the temporary folders of ``parent/name`` that dead attempts left (see prf._atomic)."""
    for name in names:
        for stale in parent.glob(f".{name}.prf-tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _convert_task(path: str, out: str, options: dict[str, Any]) -> Any:
    import prf.ingest

    return prf.ingest.convert_log(path, out, overwrite=True, progress=False, **options)


def convert_logs(
    paths: Iterable[str | Path],
    out_dir: str | Path,
    *,
    topics: Iterable[str] | None = None,
    start: int | None = None,
    end: int | None = None,
    overwrite: bool = False,
    address: str | None = None,
    max_retries: int = MAX_RETRIES,
    ray_remote_args: Mapping[str, Any] | None = None,
) -> list[Any]:
    """Convert many robot logs to Parquet, one Ray task per log (each as :func:`prf.convert_log`, the
    ``prf convert`` of one log), into ``out_dir/<log name>/``.

    Args:
        paths: log files or rosbag2 folders. Output names: each log's name without its suffix; where
            two share one, their paths below their common folder with ``/`` as ``__``.
        out_dir: the folder of the outputs (created).
        topics, start, end: as :func:`prf.convert_log`, for every log.
        overwrite: replace outputs that exist (without it an existing output is an error, raised
            before any task starts).
        address: the Ray cluster (see :func:`connect`).
        max_retries: Ray retries of a task whose worker died.
        ray_remote_args: Ray options of the tasks (``num_cpus``, ``memory``, ``resources``...).

    Returns:
        The :class:`prf.ConversionReport` of each log, in ``paths`` order.

    Raises:
        LogError: an output exists (without ``overwrite``), two logs map to one output name; or after
            the job, the logs that failed (each named with its error; the others are written).
        FileNotFoundError: a log does not exist.
    """
    logs = [Path(p) for p in paths]
    missing = [str(p) for p in logs if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such log(s): {missing}")
    out_dir = Path(out_dir)
    names = _out_names(logs)
    outs = [out_dir / n for n in names]
    exist = [str(o) for o in outs if o.exists()]
    if exist and not overwrite:
        raise LogError(f"output(s) already exist (pass overwrite=True to replace them): {exist}")
    if start is not None and end is not None and end <= start:
        raise LogError(f"empty time range: start {start} >= end {end}")
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {"topics": None if topics is None else list(topics), "start": start, "end": end}
    connect(address)
    try:
        return _run(_convert_task, [(str(p), str(o), options) for p, o in zip(logs, outs)],
                    [str(p) for p in logs], max_retries=max_retries, ray_remote_args=ray_remote_args)
    finally:
        _clean_temp(out_dir, names)


def _lerobot_task(path: str, root: str, options: dict[str, Any]) -> str:
    import prf.ingest

    return str(prf.ingest.log_to_lerobot(path, root, overwrite=True, progress=False, **options))


def logs_to_lerobot(
    paths: Iterable[str | Path],
    out: str | Path,
    *,
    fps: int,
    state: Sequence[Any],
    action: Sequence[Any] | None = None,
    cameras: Mapping[str, str] | None = None,
    episode_split: Any = None,
    task: str = "",
    robot_type: str | None = None,
    method: str = "linear",
    tolerance_ns: int | None = None,
    video_codec: str = "auto",
    overwrite: bool = False,
    compact: bool = False,
    address: str | None = None,
    max_retries: int = MAX_RETRIES,
    ray_remote_args: Mapping[str, Any] | None = None,
) -> Path:
    """Many robot logs to one LeRobot v3.0 dataset: one Ray task per log writes that log's episodes
    (:func:`prf.log_to_lerobot`, the same options for every log) to a part dataset; the driver then
    joins the parts with :func:`prf.merge_datasets` in sorted path order. Episodes are therefore in
    path order whatever the scheduling: log 0's episodes first (``episode_index`` 0..), then log 1's...

    Args:
        paths: logs (or converted-log folders); sorted by their path string.
        out: the dataset folder to write (atomic; must not exist unless ``overwrite``).
        fps, state, action, cameras, episode_split, task, robot_type, method, tolerance_ns,
            video_codec: as :func:`prf.log_to_lerobot` (``task``: one string for every episode).
        compact: as :func:`prf.merge_datasets`.
        address, max_retries, ray_remote_args: as :func:`convert_logs`.

    Returns:
        The dataset root.

    Raises:
        WriteError: ``out`` exists (without ``overwrite``).
        DataFrameError, LogError: after the job, the logs that failed (each named); nothing is written.
        EditError: the parts cannot be merged (their features differ: the logs' topics differ).
    """
    from ..errors import WriteError

    logs = sorted((Path(p) for p in paths), key=str)
    if not logs:
        raise LogError("logs_to_lerobot: no logs given")
    missing = [str(p) for p in logs if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such log(s): {missing}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise WriteError(f"{out}: already exists (pass overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.prf-parts-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    options = {"fps": fps, "state": list(state), "action": None if action is None else list(action),
               "cameras": dict(cameras or {}), "episode_split": episode_split, "task": task,
               "robot_type": robot_type, "method": method, "tolerance_ns": tolerance_ns,
               "video_codec": video_codec}
    parts = [staging / f"{k:06d}" for k in range(len(logs))]
    connect(address)
    try:
        _run(_lerobot_task, [(str(p), str(r), options) for p, r in zip(logs, parts)], [str(p) for p in logs],
             max_retries=max_retries, ray_remote_args=ray_remote_args)
        if len(parts) == 1:
            from .._atomic import replace_dir

            replace_dir(parts[0], out)
        else:
            from ..edit import merge_datasets

            merge_datasets(parts, out, overwrite=overwrite, compact=compact, progress=False)
        return out
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _score_task(source: str, options: dict[str, Any]) -> Any:
    import prf.query

    return prf.query.score_episodes(source, **options)


def score(
    sources: Iterable[str | Path],
    *,
    cameras: Iterable[str] | None = None,
    samples: int = 8,
    idle_tol: float = 1e-3,
    frozen_tol: float = 0.5,
    tolerance_s: float = 1e-4,
    address: str | None = None,
    max_retries: int = MAX_RETRIES,
    ray_remote_args: Mapping[str, Any] | None = None,
) -> list[Any]:
    """Quality scores of many datasets, one Ray task per dataset (each :func:`prf.score_episodes`:
    its scores are dataset-wide statistics, so a dataset is scored whole, by one task).

    Returns:
        One ``pyarrow.Table`` per source, in ``sources`` order (the columns of :func:`prf.score_episodes`).

    Raises:
        MetadataError, DataFileError, VideoError...: after the job, the datasets that failed (each named).
    """
    srcs = [str(Path(s).resolve()) if Path(s).exists() else str(s) for s in sources]
    options = {"cameras": None if cameras is None else list(cameras), "samples": samples, "idle_tol": idle_tol,
               "frozen_tol": frozen_tol, "tolerance_s": tolerance_s}
    connect(address)
    return _run(_score_task, [(s, options) for s in srcs], srcs, max_retries=max_retries,
                ray_remote_args=ray_remote_args)
