"""Atomic replacement of an output folder: everything is written to a temporary folder beside the
destination, which is renamed into place at the end (a reader never sees a half-written folder)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def temp_dir_for(dst: Path) -> Path:
    """A fresh temporary folder path beside ``dst`` (same filesystem, so the final rename is atomic)."""
    return dst.parent / f".{dst.name}.prf-tmp-{uuid.uuid4().hex[:8]}"


def replace_dir(tmp: Path, dst: Path) -> None:
    """Move the finished ``tmp`` to ``dst``; an existing ``dst`` is renamed aside first, then removed."""
    if dst.exists():
        trash = dst.parent / f".{dst.name}.prf-old-{uuid.uuid4().hex[:8]}"
        os.rename(dst, trash)
        os.rename(tmp, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, dst)
