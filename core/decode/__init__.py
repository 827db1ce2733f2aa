"""Decode backends: a small protocol and its implementations.

A backend turns (video file, timestamps) into RGB frames. All backends share the packet index of
:mod:`prf.decode._index` (pts + keyframes from demuxing) to map a timestamp to the exact frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ._index import VideoIndex, build_index, get_index
from .pyav import PyAVBackend


@runtime_checkable
class DecodeBackend(Protocol):
    """What a decode backend provides. Backends must be picklable and safe to use from several
    threads (each thread gets its own decoder state) and after a fork."""

    name: str

    def index(self, path: str | Path) -> VideoIndex:
        """Packet index of the file's first video stream."""

    def decode(
        self, path: str | Path, timestamps: np.ndarray, tolerance_s: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(frames uint8 [N, H, W, 3], pts float64 [N] seconds)`` nearest to ``timestamps``."""

    def decode_frames(self, path: str | Path, frame_indices: np.ndarray) -> np.ndarray:
        """``uint8 [N, H, W, 3]`` frames by index in presentation order."""

    def decode_frames_list(self, path: str | Path, frames: np.ndarray) -> list[np.ndarray]:
        """``uint8 [H, W, 3]`` frames for ascending unique indices, decoded in one forward pass."""


def get_backend(backend: str | DecodeBackend = "pyav") -> DecodeBackend:
    """Return a backend instance for a name (``"pyav"``) or pass an instance through.

    Raises:
        ValueError: the name is unknown.
    """
    if not isinstance(backend, str):
        return backend
    if backend in ("pyav", "auto"):
        return PyAVBackend()
    raise ValueError(f"unknown decode backend {backend!r}; available: 'pyav'")


__all__ = ["DecodeBackend", "PyAVBackend", "VideoIndex", "build_index", "get_index", "get_backend"]
