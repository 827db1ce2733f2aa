"""What every edit shares: opening a source, checking an output path, building atomically, and the
checks that two datasets can be combined (merge, append)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .._atomic import replace_dir, temp_dir_for
from ..errors import EditError, PrfError
from ..format import DatasetMeta


def open_source(source: str | Path | DatasetMeta) -> DatasetMeta:
    """The metadata of a local dataset folder (or a :class:`DatasetMeta` as given)."""
    if isinstance(source, DatasetMeta):
        return source
    return DatasetMeta(Path(source))


def check_output(out: str | Path, sources: Iterable[DatasetMeta], *, overwrite: bool = False) -> Path:
    """``out`` as a path, refused when it is a source, inside one, contains one, or exists.

    Raises:
        EditError: see above.
    """
    out = Path(out)
    o = out.resolve()
    for meta in sources:
        s = Path(meta.root).resolve()
        if o == s or s in o.parents:
            raise EditError(f"{out}: the output is inside the source dataset {meta.root}; choose a folder outside it")
        if o in s.parents:
            raise EditError(f"{out}: the output folder contains the source dataset {meta.root}")
    if out.exists() and not overwrite:
        raise EditError(f"{out}: already exists (pass overwrite=True / --overwrite to replace it)")
    return out


@contextlib.contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out``, renamed to ``out`` when the block ends without error and
    removed otherwise (an interrupt included). A ``kill -9`` leaves only the hidden temporary folder
    (``.OUT.prf-tmp-<pid>-*``, removed by the next edit to ``out`` once that process is gone), never ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_for(out)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_episodes(meta: DatasetMeta, episodes: Any, what: str = "episodes") -> list[int]:
    """Episode indices from a list/range/int, or a SQL query (``"SELECT episode_index FROM episodes
    WHERE ..."``, through :func:`prf.query.resolve_episodes`).

    Raises:
        EditError: an episode is not in the dataset, or the list is empty.
    """
    if isinstance(episodes, str):
        from ..query import resolve_episodes as _sql

        eps = [int(e) for e in _sql(meta.root, episodes)]
    elif isinstance(episodes, int):
        eps = [episodes]
    else:
        eps = [int(e) for e in episodes]
    unknown = sorted(set(eps) - set(meta.episodes))
    if unknown:
        raise EditError(f"{meta.root}: unknown episode(s) {unknown[:20]} in {what}; the dataset has "
                        f"{len(meta.episodes)} episodes ({_range_text(list(meta.episodes))})")
    return eps


def _range_text(eps: Sequence[int]) -> str:
    if not eps:
        return "none"
    if list(eps) == list(range(eps[0], eps[0] + len(eps))):
        return f"{eps[0]}..{eps[-1]}"
    return ", ".join(map(str, eps[:10])) + (" ..." if len(eps) > 10 else "")


def check_compatible(metas: Sequence[DatasetMeta], what: str = "merge") -> None:
    """Refuse datasets that LeRobot's ``aggregate_datasets`` would refuse: another fps, robot_type or
    features; the message names the dataset and the difference.

    Raises:
        EditError
    """
    first = metas[0]
    for m in metas[1:]:
        if m.fps != first.fps:
            raise EditError(f"cannot {what} {m.root} with {first.root}: fps {m.fps} != {first.fps}")
        if m.robot_type != first.robot_type:
            raise EditError(f"cannot {what} {m.root} with {first.root}: robot_type {m.robot_type!r} != "
                            f"{first.robot_type!r}")
        diff = features_difference(first.info["features"], m.info["features"])
        if diff:
            raise EditError(f"cannot {what} {m.root} with {first.root}: features differ: {diff}")


def features_difference(a: dict, b: dict) -> str:
    """A readable description of how two ``info.json`` feature dicts differ ('' when equal)."""
    parts = []
    only_a = [k for k in a if k not in b]
    only_b = [k for k in b if k not in a]
    if only_a:
        parts.append(f"only in the first: {only_a}")
    if only_b:
        parts.append(f"only in the second: {only_b}")
    for k in a:
        if k in b and a[k] != b[k]:
            fa, fb = a[k], b[k]
            fields = sorted({*fa, *fb})
            what = [f"{f} {fa.get(f)!r} vs {fb.get(f)!r}" for f in fields if fa.get(f) != fb.get(f)]
            parts.append(f"{k!r}: " + "; ".join(what))
    return ", ".join(parts)


def wrap_errors(fn):
    """Turn unexpected failures into :class:`EditError` (prf errors pass through)."""
    import functools

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PrfError:
            raise
        except OSError as e:
            raise EditError(f"{fn.__name__}: {e}") from e

    return inner


def link_tree(src: Path, dst: Path) -> int:
    """Hard-link every file of ``src`` into a new tree ``dst`` (copy where linking fails); returns the
    number of files. The editors never write into a linked file: they unlink it and write a new one."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            s, d = Path(dirpath) / name, dst / rel / name
            try:
                os.link(s, d)
            except OSError:
                shutil.copy2(s, d)
            n += 1
    return n
