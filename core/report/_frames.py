"""Frame strips for the report: RGB frames -> small inline JPEG thumbnails (Pillow).

A thumbnail is at most :data:`THUMB_H` px high and :data:`THUMB_W` px wide (aspect kept), JPEG quality
:data:`QUALITY`: a few kB each, so a strip of N frames costs about N * 3-10 kB per camera.
"""

from __future__ import annotations

import base64
import io

import numpy as np

THUMB_H = 120
THUMB_W = 200
QUALITY = 80
MAX_FRAMES = 24


def to_pil(rgb: np.ndarray):
    """``uint8 [H, W, C]`` (C = 1, 3 or 4; other dtypes such as mono16 scaled to 8 bits) -> a PIL image in
    mode RGB or L (the one conversion the HTML strips and the Rerun recording share)."""
    from PIL import Image

    a = np.asarray(rgb)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:  # e.g. mono16: scale to 8 bits
        a = a.astype(np.float64)
        hi = float(a.max()) if a.size else 0.0
        a = (a / hi * 255.0 if hi > 0 else a).astype(np.uint8)
    img = Image.fromarray(a)
    return img if img.mode in ("RGB", "L") else img.convert("RGB")


def thumbnail_b64(rgb: np.ndarray) -> str:
    """``uint8 [H, W, C]`` (C = 1, 3 or 4) -> base64 JPEG of at most THUMB_W x THUMB_H."""
    img = to_pil(rgb)
    img.thumbnail((THUMB_W, THUMB_H))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=QUALITY)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """``k`` (at most ``n``) evenly spaced positions in ``0 .. n-1``, first and last included."""
    k = max(0, min(int(k), int(n), MAX_FRAMES))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k == 1:
        return np.zeros(1, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))
