"""Image transform kernels: hand-written NumPy vs OpenCV (opencv-python-headless) vs Pillow.

Decides which library prf.transforms uses. Batches of uint8 RGB frames, one call per batch, median of
several runs, one thread (cv2.setNumThreads(1), as inside prf's decode workers). Run:

    python benches/bench_transforms.py            # prints markdown tables (ms per batch)

Results on the project's CPU machine (2 cores; cv2 5.0.0, Pillow 13.0.0, numpy 2.4.6; batch 32,
one thread, median of 5; ms per batch). OpenCV is 10-300x faster than NumPy and 3-10x faster than
Pillow on every kernel, so prf.transforms uses it:

| op | frames | NumPy | OpenCV | Pillow |
|---|---|---|---|---|
| resize bilinear 1/2 | 96x96 | 8.26 | 0.29 | 2.82 |
| resize area 1/2 | 96x96 | 14.90 | 0.22 | 2.67 |
| resize bilinear x1.5 | 96x96 | 61.63 | 1.54 | 10.34 |
| rotate bilinear | 96x96 | 45.80 | 2.11 | 9.97 |
| hue shift | 96x96 | 122.81 | 5.59 | 17.64 |
| resize bilinear 1/2 | 480x640 | 274.34 | 7.41 | 85.34 |
| resize area 1/2 | 480x640 | 332.12 | 8.87 | 45.80 |
| resize bilinear x1.5 | 480x640 | 2125.03 | 79.78 | 364.08 |
| rotate bilinear | 480x640 | 1843.46 | 90.43 | 295.74 |
| hue shift | 480x640 | 3295.48 | 143.98 | 434.07 |

prf.transforms pipelines, same machine, ms per batch of 32 (96x96 | 360x640): RandomCrop(88, pad 4)
+ HFlip 1.2 | 3.7; ColorJitter(0.3, 0.3, 0.3) 1.1 | 19.8; ColorJitter(0.3, 0.3, 0.3, hue=0.05) 5.1 |
113.7 (the float HSV hue round trip dominates); RandomRotation(10) 1.8 | 61.7; Resize(1/2, area) 0.2 | 4.8.

(Pillow's hue path is uint8 HSV, coarser than the float HSV of the other two; its BILINEAR resize
antialiases when shrinking, unlike OpenCV's INTER_LINEAR: use ``interpolation="area"`` to shrink.)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _timeit(fn, repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


# ---- NumPy references ------------------------------------------------------------------------------
def np_resize_bilinear(x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    b, h, w, c = x.shape
    ys = (np.arange(oh) + 0.5) * h / oh - 0.5
    xs = (np.arange(ow) + 0.5) * w / ow - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy = np.clip(ys - y0, 0, 1).astype(np.float32)[None, :, None, None]
    wx = np.clip(xs - x0, 0, 1).astype(np.float32)[None, None, :, None]
    f = x.astype(np.float32)
    top = f[:, y0][:, :, x0] * (1 - wx) + f[:, y0][:, :, x1] * wx
    bot = f[:, y1][:, :, x0] * (1 - wx) + f[:, y1][:, :, x1] * wx
    return np.clip(top * (1 - wy) + bot * wy + 0.5, 0, 255).astype(np.uint8)


def np_resize_area_int(x: np.ndarray, k: int) -> np.ndarray:
    b, h, w, c = x.shape
    return (x.reshape(b, h // k, k, w // k, k, c).mean(axis=(2, 4)) + 0.5).astype(np.uint8)


def np_rotate(x: np.ndarray, angles: np.ndarray) -> np.ndarray:
    b, h, w, c = x.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(x)
    for i, a in enumerate(np.deg2rad(angles)):
        ca, sa = np.cos(a), np.sin(a)
        sx = ca * (xx - cx) - sa * (yy - cy) + cx
        sy = sa * (xx - cx) + ca * (yy - cy) + cy
        x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
        fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
        img = np.pad(x[i].astype(np.float32), ((1, 2), (1, 2), (0, 0)))
        x0c, y0c = np.clip(x0 + 1, 0, w + 1), np.clip(y0 + 1, 0, h + 1)
        v = (img[y0c, x0c] * (1 - fx) * (1 - fy) + img[y0c, x0c + 1] * fx * (1 - fy)
             + img[y0c + 1, x0c] * (1 - fx) * fy + img[y0c + 1, x0c + 1] * fx * fy)
        out[i] = np.clip(v + 0.5, 0, 255).astype(np.uint8)
    return out


def np_hue(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    f = x.astype(np.float32) / 255.0
    r, g, bl = f[..., 0], f[..., 1], f[..., 2]
    mx, mn = f.max(-1), f.min(-1)
    d = mx - mn
    safe = np.where(d == 0, 1, d)
    h = np.where(mx == r, ((g - bl) / safe) % 6, np.where(mx == g, (bl - r) / safe + 2, (r - g) / safe + 4)) / 6
    h = np.where(d == 0, 0, h)
    s = np.where(mx == 0, 0, d / np.where(mx == 0, 1, mx))
    h = (h + shift[:, None, None]) % 1.0
    v = mx
    i = np.floor(h * 6)
    fr = h * 6 - i
    p, q, t = v * (1 - s), v * (1 - s * fr), v * (1 - s * (1 - fr))
    i = i.astype(int) % 6
    out = np.select(
        [i[..., None] == k for k in range(6)],
        [np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))],
    )
    return (out * 255 + 0.5).astype(np.uint8)


# ---- OpenCV ----------------------------------------------------------------------------------------
def cv_resize(x, oh, ow, interp):
    import cv2

    return np.stack([cv2.resize(f, (ow, oh), interpolation=interp) for f in x])


def cv_rotate(x, angles):
    import cv2

    h, w = x.shape[1:3]
    out = np.empty_like(x)
    for i, a in enumerate(angles):
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(a), 1.0)
        out[i] = cv2.warpAffine(x[i], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out


def cv_hue(x, shift):
    import cv2

    out = np.empty_like(x)
    for i in range(x.shape[0]):
        hsv = cv2.cvtColor(x[i].astype(np.float32) * (1 / 255.0), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + shift[i] * 360.0) % 360.0
        out[i] = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


# ---- Pillow ----------------------------------------------------------------------------------------
def pil_resize(x, oh, ow, resample):
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((ow, oh), resample)) for f in x])


def pil_rotate(x, angles):
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).rotate(float(a), Image.BILINEAR)) for f, a in zip(x, angles)])


def pil_hue(x, shift):
    from PIL import Image

    out = []
    for f, s in zip(x, shift):
        hsv = np.asarray(Image.fromarray(f).convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(s * 255))) % 256
        out.append(np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import cv2
    from PIL import Image

    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    print(f"cv2 {cv2.__version__}, Pillow {Image.__version__ if hasattr(Image, '__version__') else ''}, "
          f"numpy {np.__version__}; batch {args.batch}; ms per batch (median of {args.repeat})\n")
    print("| op | frames | NumPy | OpenCV | Pillow |")
    print("|---|---|---|---|---|")
    for h, w in ((96, 96), (480, 640)):
        x = rng.integers(0, 256, (args.batch, h, w, 3), dtype=np.uint8)
        angles = rng.uniform(-15, 15, args.batch)
        shift = rng.uniform(-0.1, 0.1, args.batch)
        oh, ow = h // 2, w // 2
        rows = {
            "resize bilinear 1/2": (lambda: np_resize_bilinear(x, oh, ow), lambda: cv_resize(x, oh, ow, cv2.INTER_LINEAR),
                                    lambda: pil_resize(x, oh, ow, Image.BILINEAR)),
            "resize area 1/2": (lambda: np_resize_area_int(x, 2), lambda: cv_resize(x, oh, ow, cv2.INTER_AREA),
                                lambda: pil_resize(x, oh, ow, Image.BOX)),
            "resize bilinear x1.5": (lambda: np_resize_bilinear(x, h * 3 // 2, w * 3 // 2),
                                     lambda: cv_resize(x, h * 3 // 2, w * 3 // 2, cv2.INTER_LINEAR),
                                     lambda: pil_resize(x, h * 3 // 2, w * 3 // 2, Image.BILINEAR)),
            "rotate bilinear": (lambda: np_rotate(x, angles), lambda: cv_rotate(x, angles), lambda: pil_rotate(x, angles)),
            "hue shift": (lambda: np_hue(x, shift), lambda: cv_hue(x, shift), lambda: pil_hue(x, shift)),
        }
        for name, fns in rows.items():
            t = [_timeit(f, args.repeat) for f in fns]
            print(f"| {name} | {h}x{w} | {t[0]:.2f} | {t[1]:.2f} | {t[2]:.2f} |")

    from prf import transforms as T

    print(f"\nprf.transforms pipelines (OpenCV kernels), ms per batch of {args.batch}:\n")
    print("| pipeline | frames | ms |")
    print("|---|---|---|")
    pipes = {
        "RandomCrop(pad 4) + HFlip": T.Compose([T.RandomCrop(88, padding=4),
                                                 T.RandomHorizontalFlip()]),
        "ColorJitter(0.3, 0.3, 0.3, 0.05)": T.ColorJitter(0.3, 0.3, 0.3, 0.05),
        "ColorJitter(0.3, 0.3, 0.3) (no hue)": T.ColorJitter(0.3, 0.3, 0.3),
        "RandomRotation(10)": T.RandomRotation(10),
        "Resize(short side 1/2, area)": None,
    }
    for h, w in ((96, 96), (360, 640)):
        x = rng.integers(0, 256, (args.batch, h, w, 3), dtype=np.uint8)
        for name, t in pipes.items():
            t = t if t is not None else T.Resize(min(h, w) // 2, "area")
            ms = _timeit(lambda: t(x, 0), args.repeat)
            print(f"| {name} | {h}x{w} | {ms:.2f} |")


if __name__ == "__main__":
    main()
