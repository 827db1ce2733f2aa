"""``prf.open_dataset``: resolve a source (local folder or Hub repo id) and open it."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tqdm.auto import tqdm

from .dataset import Dataset
from .decode import DecodeBackend
from .errors import DatasetError, MetadataError, OptionsError, StreamError, VideoError
from .format import DatasetMeta
from .stream import register_root, warm as stream_warm

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _needed_files(meta: DatasetMeta, episodes: list[int] | None, cameras: list[str] | None) -> list[str]:
    """Relative paths of the data and video files of ``episodes`` (default: all) and ``cameras``."""
    return meta.files_of(episodes, cameras)


def remote_cache_dir() -> Path:
    """``$PRF_CACHE/remote``, else ``~/.cache/prf/remote``: local copies of datasets opened by URL."""
    return Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf")) / "remote"


def _fetch_url(url: str, episodes: list[int] | None, cameras: list[str] | None) -> tuple[Path, DatasetMeta | None]:
    """A local copy of the dataset at an fsspec URL (``meta/`` and the selected episodes' files), and
    its metadata when it was read here."""
    try:
        import fsspec
    except ImportError:
        raise ImportError(f"{url!r}: opening a dataset by URL needs fsspec: pip install 'prf[hub]'") from None
    fs, root = fsspec.core.url_to_fs(url)
    root = root.rstrip("/")
    if "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)):
        return Path(root), None
    local = remote_cache_dir() / hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:16] / Path(root).name
    meta = _fetch_meta(fs, root, local, url)
    files = _needed_files(meta, episodes, cameras)  # paths the metadata gives (checked to stay inside)
    for rel in tqdm(files, desc=f"fetch {Path(root).name}", unit="file", disable=len(files) < 2):
        _download(fs, f"{root}/{rel}", local / rel)
    return local, meta


def _fetch_meta(fs, root: str, local: Path, url: str) -> DatasetMeta:
    """``meta/`` of the dataset at ``root`` on ``fs`` copied into ``local`` (whole files: they are small)."""
    try:
        meta_files = [f for f in fs.find(f"{root}/meta") if not fs.isdir(f)]
    except FileNotFoundError:
        meta_files = []
    if not meta_files:
        raise MetadataError(f"{url}: no meta/ folder there; not a LeRobot dataset")
    for f in meta_files:
        _download(fs, f, local / Path(f).relative_to(Path(root)))
    return DatasetMeta(local)


def _stream_url(url: str) -> tuple[Path, DatasetMeta]:
    """A streamed dataset's mirror root (``meta/`` fetched once, plus the marker naming ``url``; the data
    and video files stay on the server and are read by byte range, see :mod:`prf.stream`)."""
    try:
        import fsspec
    except ImportError:
        raise ImportError(f"{url!r}: streaming a dataset needs fsspec: pip install 'prf[hub]'") from None
    url = url.rstrip("/")
    fs, root = fsspec.core.url_to_fs(url)
    root = root.rstrip("/")
    local = remote_cache_dir() / (hashlib.sha1(url.encode()).hexdigest()[:16] + "-stream") / (Path(root).name or "ds")
    with _mirror_lock(local.parent):  # processes opening the same URL at once (Ray tasks on one node)
        if local.is_dir():  # meta/ of an earlier open: fetched again (it is small, and may have changed)
            for f in (local / "meta").rglob("*"):
                if f.is_file():
                    f.unlink()
        meta = _fetch_meta(fs, root, local, url)
    register_root(local, url)
    return local, meta


class _mirror_lock:
    """An exclusive ``flock`` on ``folder/.lock`` (blocking; none where ``fcntl`` is missing): one
    process at a time refreshes a streamed dataset's ``meta/`` mirror and reads it."""

    def __init__(self, folder: Path):
        self.folder, self.fd = folder, None

    def __enter__(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.folder / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock


def _download(fs, src: str, dst: Path) -> None:
    """Copy ``src`` to ``dst`` unless a copy of the same size is there; atomic (temp file, rename)."""
    size = fs.size(src)
    if dst.is_file() and size is not None and dst.stat().st_size == size:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    try:
        fs.get_file(src, str(tmp))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_source(
    source: str | Path,
    revision: str | None = None,
    *,
    episodes: Iterable[int] | None = None,
    cameras: Iterable[str] | None = None,
) -> Path:
    """A local dataset root for ``source``: an existing folder; an fsspec URL (``s3://bucket/ds``,
    ``gs://``, ``https://``, ...: ``meta/`` and the selected files copied into
    :func:`remote_cache_dir`, again only when their size changed); or a Hugging Face Hub dataset repo
    id (``"lerobot/pusht"``) downloaded with ``huggingface_hub.snapshot_download`` into its cache.

    A repo is fetched in two steps, as LeRobot does: ``meta/`` first, then only the data and video
    files of ``episodes`` (default: all) and ``cameras`` (default: all), both from the commit the
    first step resolved (a repo updated in between cannot mix two versions). Files already in the
    cache are not downloaded again.

    Args:
        source: a folder, or a repo id ``owner/name``.
        revision: branch, tag or commit on the Hub (default: the repo's default branch).
        episodes, cameras: what to download from a repo (ignored for a folder).

    Raises:
        MetadataError: the folder does not exist and ``source`` is not a repo id; or the repo's
            ``meta/`` is not a LeRobot dataset's.
        ImportError: a repo id was given and ``huggingface_hub`` is not installed (``pip install prf[hub]``).
        DatasetError: the repo cannot be fetched (offline, no such repo, network); names repo and cause.
    """
    return _resolve(source, revision, None if episodes is None else [int(e) for e in episodes],
                    None if cameras is None else list(cameras))[0]


def _resolve(source: str | Path, revision: str | None, episodes: list[int] | None,
             cameras: list[str] | None) -> tuple[Path, DatasetMeta | None]:
    """:func:`resolve_source`, plus the metadata when fetching had to read it (else ``None``)."""
    text = str(source)
    if _URL.match(text):
        return _fetch_url(text, episodes, cameras)
    path = Path(source).expanduser()
    if path.exists():
        return path, None
    if not (_REPO_ID.match(text) and not text.startswith((".", "/"))):
        raise MetadataError(f"{source}: no such dataset folder (and not a Hub repo id like 'owner/name')")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ImportError(
            f"{text!r} is not a local folder; to download it from the Hugging Face Hub install "
            f"the hub extra: pip install 'prf[hub]'"
        ) from None
    root = Path(_hub_download(snapshot_download, text, revision, ["meta/**"]))
    if _COMMIT.match(root.name):
        revision = root.name  # the snapshot folder is named by the commit it resolved
    meta = DatasetMeta(root)
    files = _needed_files(meta, episodes, cameras)
    if files:
        _hub_download(snapshot_download, text, revision, files)
    return root, meta


def _hub_download(snapshot_download, repo_id: str, revision: str | None, patterns: list[str]) -> str:
    """``snapshot_download`` of a dataset repo; its failures (offline, no such repo, network, auth)
    become one :class:`DatasetError` naming the repo and the cause."""
    try:
        return snapshot_download(repo_id=repo_id, repo_type="dataset", revision=revision, allow_patterns=patterns)
    except Exception as e:  # noqa: BLE001 - huggingface_hub raises many types (HTTP, offline, OS, value)
        cause = " ".join(str(e).split()) or type(e).__name__
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        hint = " (HF_HUB_OFFLINE is set and the repo is not in the local cache)" if offline else ""
        rev = f" at revision {revision!r}" if revision else ""
        raise DatasetError(f"{repo_id}: cannot fetch the dataset from the Hugging Face Hub{rev}{hint}: "
                           f"{type(e).__name__}: {cause}") from None


def open_dataset(
    source: str | Path,
    *,
    episodes: Iterable[int] | None = None,
    delta_timestamps: Mapping[str, Sequence[float]] | None = None,
    tolerance_s: float = 1e-4,
    cameras: Iterable[str] | None = None,
    backend: str | DecodeBackend = "pyav",
    device: str = "cpu",
    revision: str | None = None,
    root: str | Path | None = None,
    video_backend: str | None = None,
    image_transforms: Any = None,
    streaming: bool = False,
    goal: str | Iterable[str] | Mapping[str, int | None] | None = None,
) -> Dataset:
    """Open a LeRobot dataset (format v2.0, v2.1 or v3.0) for training.

    Args:
        source: dataset root folder, an fsspec URL, or a Hub repo id (both need ``prf[hub]``; only
            ``meta/`` and the files of ``episodes`` and ``cameras`` are fetched, see
            :func:`resolve_source`).
        episodes: episode indices to use (default: all in the episodes table), or a SQL query over
            the dataset's views selecting them (``"SELECT episode_index FROM episodes WHERE length >
            100"``, needs ``prf[query]``; see :func:`prf.sql`) or a query's result table. A partial
            download opens with the episodes whose files are present.
        delta_timestamps: ``{feature key: [seconds, ...]}`` windows, as LeRobot's ``delta_timestamps``.
        tolerance_s: how far (seconds) a window offset may be off the fps grid and a video frame's pts
            from its requested time, as LeRobot's ``tolerance_s``.
        cameras: camera keys to decode (default: all; ``[]`` decodes none).
        backend: decode backend: ``"pyav"`` (default), ``"torchcodec"``, ``"auto"`` (the fastest
            available), or an instance of :class:`prf.DecodeBackend`.
        device: where the torchcodec backend decodes (``"cuda"``: NVDEC; not for AV1 on A100/H100).
        revision: Hub revision when ``source`` is a repo id.
        root: LeRobot's name for the local folder (``LeRobotDataset(repo_id, root=...)``): when given,
            the dataset is opened from there and ``source`` is only its name (a repo id).
        video_backend: LeRobot's name for ``backend`` (``"pyav"``, ``"torchcodec"``).
        image_transforms: LeRobot's name for image transforms applied to every camera: a
            :mod:`prf.transforms` transform (on ``uint8`` frames); the result is then the view
            ``ds.with_transforms(transform=image_transforms)`` (see :meth:`prf.Dataset.with_transforms`).
        streaming: for an fsspec URL (``https://``, ``s3://``, ``gs://``, ``hf://``...) or a Hub repo id
            (read as ``hf://datasets/<id>@<revision>``): fetch ``meta/`` only, and read the data and
            video files by byte range as samples need them (:mod:`prf.stream`: parquet row groups of
            the selected episodes, each mp4's sample tables once, then the GOPs a decode needs,
            fetched concurrently into a bounded LRU, ``PRF_STREAM_CACHE_MB``). Nothing is downloaded
            whole. Decoding is PyAV's (``backend="pyav"``). ``ds.loader(shuffle=True)`` then draws
            with :class:`prf.sampling.EpisodePoolSampler` (decode locality is fetch locality).
            Ignored for a local folder.
        goal: goal-conditioning: a non-camera feature key or a selected camera, or a list of them,
            each sample gaining ``{key}.goal`` = the key at its episode's last frame
            (``goal="observation.state"`` -> ``observation.state.goal`` ``float32 [D]``, ``[B, D]`` in
            batches; a camera's goal image ``uint8 [H, W, C]``); or a mapping ``{key: k}``: the key
            ``k`` frames ahead, clamped at the episode's last frame (``min(frame + k, last)``;
            ``None`` = the last frame). Not windowed by ``delta_timestamps`` nor transformed by
            ``transform=``; ``normalize={"observation.state.goal": "mean_std"}`` normalizes it with the
            key's statistics.

    Returns:
        A :class:`prf.Dataset`; ``ds[i]`` is a dict of NumPy arrays (cameras ``uint8 [H, W, C]``,
        ``[T, H, W, C]`` with a window).

    Raises:
        MetadataError, UnsupportedVersionError, UnsafePathError: bad metadata.
        MissingFilesError: files of the selected episodes are absent (lists them, and the episodes
            that are present).
        DataFileError: a parquet file is corrupt or disagrees with the metadata.
        DeltaTimestampsError: a ``delta_timestamps`` value is off the fps grid or names no feature.
        OptionsError: ``backend`` and ``video_backend`` name different backends; a ``goal`` key is not
            a non-camera feature or selected camera, or its ``k`` is not an int >= 0 / ``None``.
        QueryError: an ``episodes`` query fails.
        StreamError: streaming, a file could not be fetched after retries, or changed on the server.
    """
    if video_backend is not None:
        if backend not in ("pyav", video_backend):
            raise OptionsError(f"backend={backend!r} and video_backend={video_backend!r} disagree; give one of them")
        backend = video_backend
    if root is not None:
        source = root  # LeRobot: repo_id names the dataset, root is where it is
    if episodes is not None and not isinstance(episodes, (list, tuple, range)) and not hasattr(episodes, "__array__"):
        if isinstance(episodes, str) or type(episodes).__module__.startswith("pyarrow"):
            # by design the one upward reach of this layer: a SQL selection of episodes (prf.query)
            from .query import resolve_episodes

            episodes = resolve_episodes(source, episodes)
    episodes = None if episodes is None else [int(e) for e in episodes]
    cameras = None if cameras is None else list(cameras)
    text = str(source)
    streamed = False
    if streaming and not Path(text).expanduser().exists() and (_URL.match(text) or _REPO_ID.match(text)):
        if not _URL.match(text):
            text = f"hf://datasets/{text}" + (f"@{revision}" if revision else "")
        root, meta = _stream_url(text)
        streamed = True
        try:  # every selected file's version and mp4 sample tables, fetched concurrently
            stream_warm([meta.path(f) for f in meta.files_of(episodes, cameras)])
        except (StreamError, VideoError):
            pass  # reported, with the file named, where the dataset opens or reads it
        if backend != "pyav" and not isinstance(backend, DecodeBackend):
            raise ValueError(f"{text}: a streamed dataset decodes with backend='pyav' (got {backend!r})")
    else:
        root, meta = _resolve(source, revision, episodes, cameras)
    meta = meta or DatasetMeta(root)
    ds = Dataset(
        meta,
        episodes=episodes,
        delta_timestamps=delta_timestamps,
        tolerance_s=tolerance_s,
        cameras=cameras,
        backend=backend,
        device=device,
        goal=goal,
    )
    ds.streaming = streamed
    return ds if image_transforms is None else ds.with_transforms(transform=image_transforms)


def as_dataset(source: Any, **open_kwargs: Any) -> Dataset:
    """The dataset an adapter was given: one rule for every API taking "a folder, Hub repo id, URL or
    an open dataset" (``prf.torch.Dataset``, ``prf.mlx.loader``, ``prf.jax.map_dataset``, ...).

    Args:
        source: an open :class:`prf.Dataset`, or a view of one that declares ``is_dataset_view``
            (``ds.with_transforms(...)``: its batch transforms are kept), returned as is; an adapter
            object wrapping one in its ``dataset`` attribute (``prf.torch.Dataset``,
            ``prf.jax.DataSource``: unwrapped); else
            anything :func:`open_dataset` opens.
        **open_kwargs: :func:`open_dataset` options (``episodes``, ``delta_timestamps``, ...).

    Raises:
        TypeError: ``open_kwargs`` given with an already open dataset (they would be ignored).
        and what :func:`open_dataset` raises.
    """
    inner = getattr(source, "dataset", None)
    view = getattr(type(source), "is_dataset_view", False) and isinstance(inner, Dataset)
    if not isinstance(source, Dataset) and isinstance(inner, Dataset) and not view:
        source = inner
    if isinstance(source, Dataset) or view:
        if open_kwargs:
            raise TypeError(f"open options {sorted(open_kwargs)} are only accepted with a path, repo id or URL, "
                            f"not with an open {source!r}")
        return source
    return open_dataset(source, **open_kwargs)
