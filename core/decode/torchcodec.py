"""torchcodec decode backend (optional: ``pip install torchcodec``; needs the system FFmpeg libraries).

Frames of one file are fetched in one batched ``VideoDecoder.get_frames_at(indices=...)`` call (frame
indices in presentation order, which is the order of prf's packet index). ``device="cuda"`` passes
through to NVDEC where a GPU and a CUDA build of torchcodec exist; frames are then copied back to host
memory, since prf's batches are NumPy. NVDEC on A100/H100 does not decode AV1 (LeRobot's default
codec): use ``device="cpu"`` for AV1 datasets there.

Decoders are kept per thread (LRU-bounded in count and estimated bytes) and released explicitly
(:meth:`TorchCodecBackend.close`, LRU eviction: the pool drops its only reference, which frees the
decoder at once; torchcodec's ``VideoDecoder`` has no ``close()``).

torch and torchcodec are imported when the backend is first used, never by ``import prf``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import VideoError
from ._base import BackendCapabilities, _PooledBackend
from ._index import VideoIndex, get_index
from ._per_thread import DEFAULT_MAX_OPEN, DEFAULT_MAX_OPEN_BYTES, decoder_bytes


def torchcodec_available() -> bool:
    """Whether torchcodec imports and loads its FFmpeg libraries here."""
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure (missing wheel, missing FFmpeg libs) means unavailable
        return False
    return True


class TorchCodecBackend(_PooledBackend):
    """Decode frames with torchcodec's ``VideoDecoder``.

    Args:
        device: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"`` (NVDEC).
        num_ffmpeg_threads: FFmpeg threads per decoder (1: loaders parallelise across workers).
        max_open: decoders kept per thread (least recently used are released).
        max_open_bytes: estimated bytes of decoders kept per thread (default 128 MiB; see
            :func:`prf.decode._per_thread.decoder_bytes`).

    Raises (on first use):
        ImportError: torchcodec is not installed or cannot load FFmpeg.
    """

    name = "torchcodec"

    def __init__(self, device: str = "cpu", num_ffmpeg_threads: int = 1, max_open: int = DEFAULT_MAX_OPEN,
                 max_open_bytes: int = DEFAULT_MAX_OPEN_BYTES):
        self.device = str(device)
        self.num_ffmpeg_threads = int(num_ffmpeg_threads)
        super().__init__(max_open=max_open, max_open_bytes=max_open_bytes)

    @property
    def capabilities(self) -> BackendCapabilities:  # type: ignore[override]
        return BackendCapabilities(copy_only=False, direct_copy=False, device=self.device)

    def index(self, path: str | Path) -> VideoIndex:
        """The file's packet index (see :func:`prf.decode.get_index`)."""
        return get_index(path)

    def _open_decoder(self, path: str) -> tuple[object, int]:
        try:
            from torchcodec.decoders import VideoDecoder
        except ImportError as e:
            raise ImportError(
                "backend='torchcodec' needs torchcodec (pip install torchcodec, plus the system FFmpeg "
                f"libraries): {e}"
            ) from e
        index = self.index(path)
        try:
            dec = VideoDecoder(path, seek_mode="exact", device=self.device, dimension_order="NHWC",
                               num_ffmpeg_threads=self.num_ffmpeg_threads)
        except (RuntimeError, ValueError) as e:
            raise VideoError(f"{path}: torchcodec cannot open it ({e})") from None
        return dec, decoder_bytes(index.width, index.height)

    @staticmethod
    def _close_decoder(decoder: object) -> None:
        pass  # the pool has dropped its reference: the only one, so the decoder is freed now

    def decode_frames_list(self, path: str | Path, frames: np.ndarray) -> list[np.ndarray]:
        """``uint8 [H, W, 3]`` frames for ascending unique indices (one batched torchcodec call).

        Raises:
            VideoError: the file cannot be opened or a frame cannot be decoded.
        """
        path = str(path)
        want = np.asarray(frames, dtype=np.int64)
        if want.size == 0:
            return []
        with self._decoders.use(path, self._open_decoder) as dec:
            try:
                batch = dec.get_frames_at(indices=want.tolist()).data
            except (RuntimeError, IndexError, ValueError) as e:
                raise VideoError(f"{path}: torchcodec failed to decode frames {want[:5].tolist()}... ({e})") from None
        arr = batch.cpu().numpy() if batch.device.type != "cpu" else batch.numpy()
        return list(arr)
