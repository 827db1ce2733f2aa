"""torchcodec decode backend (optional: ``pip install torchcodec``; needs the system FFmpeg libraries).

Frames of one file are fetched in one batched ``VideoDecoder.get_frames_at(indices=...)`` call (frame
indices in presentation order, which is the order of prf's packet index). ``device="cuda"`` passes
through to NVDEC where a GPU and a CUDA build of torchcodec exist; frames are then copied back to host
memory, since prf's batches are NumPy. NVDEC on A100/H100 does not decode AV1 (LeRobot's default
codec): use ``device="cpu"`` for AV1 datasets there.

torch and torchcodec are imported when the backend is first used, never by ``import prf``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import VideoError
from ._index import VideoIndex, get_index
from ._per_thread import DecoderTable


def torchcodec_available() -> bool:
    """Whether torchcodec imports and loads its FFmpeg libraries here."""
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure (missing wheel, missing FFmpeg libs) means unavailable
        return False
    return True


class TorchCodecBackend:
    """Decode frames with torchcodec's ``VideoDecoder``.

    Args:
        device: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"`` (NVDEC).
        num_ffmpeg_threads: FFmpeg threads per decoder (1: loaders parallelise across workers).
        max_open: decoders kept per thread.

    Raises (on first use):
        ImportError: torchcodec is not installed or cannot load FFmpeg.
    """

    name = "torchcodec"

    def __init__(self, device: str = "cpu", num_ffmpeg_threads: int = 1, max_open: int = 16):
        self.device = str(device)
        self.num_ffmpeg_threads = int(num_ffmpeg_threads)
        self.max_open = int(max_open)
        self._decoders = DecoderTable()

    def __getstate__(self):
        return {"device": self.device, "num_ffmpeg_threads": self.num_ffmpeg_threads, "max_open": self.max_open}

    def __setstate__(self, state):
        self.__init__(**state)

    def index(self, path: str | Path) -> VideoIndex:
        return get_index(path)

    def _decoder(self, path: str):
        cache = self._decoders.current()
        dec = cache.get(path)
        if dec is None:
            try:
                from torchcodec.decoders import VideoDecoder
            except ImportError as e:
                raise ImportError(
                    "backend='torchcodec' needs torchcodec (pip install torchcodec, plus the system FFmpeg "
                    f"libraries): {e}"
                ) from e
            try:
                dec = VideoDecoder(path, seek_mode="exact", device=self.device, dimension_order="NHWC",
                                   num_ffmpeg_threads=self.num_ffmpeg_threads)
            except (RuntimeError, ValueError) as e:
                raise VideoError(f"{path}: torchcodec cannot open it ({e})") from None
            cache[path] = dec
            while len(cache) > self.max_open:
                cache.popitem(last=False)
        else:
            cache.move_to_end(path)
        return dec

    def decode_frames_list(self, path: str | Path, frames: np.ndarray) -> list[np.ndarray]:
        """``uint8 [H, W, 3]`` frames for ascending unique indices (one batched torchcodec call)."""
        path = str(path)
        want = np.asarray(frames, dtype=np.int64)
        if want.size == 0:
            return []
        dec = self._decoder(path)
        try:
            batch = dec.get_frames_at(indices=want.tolist()).data
        except (RuntimeError, IndexError, ValueError) as e:
            raise VideoError(f"{path}: torchcodec failed to decode frames {want[:5].tolist()}... ({e})") from None
        arr = batch.cpu().numpy() if batch.device.type != "cpu" else batch.numpy()
        return list(arr)

    def decode_frames(self, path: str | Path, frame_indices: np.ndarray) -> np.ndarray:
        want = np.asarray(frame_indices, dtype=np.int64)
        idx = self.index(path)
        if want.size and (want.min() < 0 or want.max() >= idx.num_frames):
            raise VideoError(f"{path}: frame index out of range 0..{idx.num_frames - 1}")
        unique, inverse = np.unique(want, return_inverse=True)
        frames = self.decode_frames_list(path, unique)
        out = np.empty((want.size, idx.height, idx.width, 3), dtype=np.uint8)
        for j, slot in enumerate(inverse):
            out[j] = frames[slot]
        return out

    def decode(self, path: str | Path, timestamps: np.ndarray, tolerance_s: float | None = None):
        idx = self.index(path)
        frames = idx.lookup(np.asarray(timestamps, dtype=np.float64), tolerance_s)
        return self.decode_frames(path, frames), idx.times[frames]
