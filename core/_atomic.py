"""Atomic replacement of an output folder: everything is written to a temporary folder beside the
destination, which is renamed into place at the end (a reader never sees a half-written folder).

A temporary folder is named ``.OUT.prf-tmp-<pid>-<random>`` (and a replaced output, while it is being
removed, ``.OUT.prf-old-<pid>-<random>``). A process killed mid-write (``kill -9``) leaves its folder
behind; the next write to the same ``OUT`` removes every such folder whose process is gone (same host),
so debris never accumulates and never has the output's name.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

_DEBRIS = re.compile(r"^\.(?P<name>.+)\.prf-(?:tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale(dst: Path) -> list[Path]:
    """Remove the temporary folders of earlier writes to ``dst`` whose writing process has exited
    (killed before it could clean up); returns what was removed. Folders of live processes stay."""
    removed = []
    try:
        siblings = list(dst.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        m = _DEBRIS.match(p.name)
        if m and m["name"] == dst.name and not _alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def temp_dir_for(dst: Path) -> Path:
    """A fresh temporary folder path beside ``dst`` (same filesystem, so the final rename is atomic);
    stale ones left by killed writers of ``dst`` are removed first (:func:`sweep_stale`)."""
    dst = Path(dst)
    sweep_stale(dst)
    return dst.parent / f".{dst.name}.prf-tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def replace_dir(tmp: Path, dst: Path) -> None:
    """Move the finished ``tmp`` to ``dst``; an existing ``dst`` is renamed aside first, then removed."""
    if dst.exists():
        trash = dst.parent / f".{dst.name}.prf-old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(dst, trash)
        os.rename(tmp, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, dst)
