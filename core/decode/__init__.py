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
from .torchcodec import TorchCodecBackend, torchcodec_available


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


def get_backend(backend: str | DecodeBackend = "pyav", device: str = "cpu") -> DecodeBackend:
    """Return a backend instance for a name or pass an instance through.

    Names: ``"pyav"`` (default, always available), ``"torchcodec"`` (optional; ``device="cuda"`` for
    NVDEC), ``"auto"``: torchcodec where it imports, else PyAV (a :class:`prf.Dataset` resolves
    ``"auto"`` by frame size first: see ``Dataset.AUTO_TORCHCODEC_MAX_PIXELS``).

    Raises:
        ValueError: the name is unknown.
        ImportError: ``"torchcodec"`` was asked for and is not importable.
    """
    if not isinstance(backend, str):
        return backend
    if backend == "auto":
        backend = "torchcodec" if torchcodec_available() else "pyav"
    if backend == "pyav":
        if device != "cpu":
            raise ValueError("the pyav backend decodes on the CPU; use backend='torchcodec' for device='cuda'")
        return PyAVBackend()
    if backend == "torchcodec":
        if not torchcodec_available():
            raise ImportError("backend='torchcodec' needs torchcodec: pip install torchcodec (and FFmpeg libraries)")
        return TorchCodecBackend(device=device)
    raise ValueError(f"unknown decode backend {backend!r}; available: 'pyav', 'torchcodec', 'auto'")


__all__ = ["DecodeBackend", "PyAVBackend", "TorchCodecBackend", "VideoIndex", "build_index", "get_index",
           "get_backend", "torchcodec_available"]
