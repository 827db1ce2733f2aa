"""Image transforms: dtype/shape contracts on [B, H, W, C] and windowed [B, T, H, W, C] frames, one
parameter draw per sample shared by its window, seeded reproducibility, and each op's values."""

from __future__ import annotations

import numpy as np
import pytest

import prf
from prf import transforms as T

from _fake import FakeDataset
from conftest import uint8_frames

RANDOM = [
    T.RandomCrop(20, padding=3),
    T.RandomHorizontalFlip(),
    T.RandomRotation(20),
    T.ColorJitter(0.4, 0.4, 0.4, 0.1),
    T.Compose([T.Resize(30), T.RandomCrop((24, 28)), T.ColorJitter(brightness=0.3)]),
]
ALL = RANDOM + [T.Resize((17, 23)), T.Resize(16, "area"), T.CenterCrop((20, 30)), T.Resize(40, "bicubic"),
                T.Resize(11, "nearest")]


def frames(b=6, h=32, w=48, seed=0):
    return uint8_frames(b, h, w, seed=seed)


@pytest.mark.parametrize("t", ALL, ids=repr)
def test_dtype_and_shape_contracts(t):
    x = frames()
    y = t(x, 0)
    assert y.dtype == np.uint8 and y.ndim == 4 and y.shape[0] == 6 and y.shape[-1] == 3
    win = np.stack([x, x[::-1], x], axis=1)  # [B, T=3, H, W, C]
    yw = t(win, 0)
    assert yw.dtype == np.uint8 and yw.shape == (6, 3) + y.shape[1:]
    single = t(x[0], 0)
    assert single.shape == y.shape[1:]
    assert t(x[:0], 0).shape[0] == 0


@pytest.mark.parametrize("t", RANDOM, ids=repr)
def test_one_draw_per_sample_shared_by_its_window_and_seeded(t):
    x = frames(8)
    win = np.repeat(x[:, None], 4, axis=1)  # the same frame 4 times per sample
    y = t(win, np.random.default_rng(5))
    for k in range(1, 4):
        np.testing.assert_array_equal(y[:, k], y[:, 0])
    # the window's frames got exactly what the sample alone gets with the same generator state
    np.testing.assert_array_equal(t(x, np.random.default_rng(5)), y[:, 0])
    np.testing.assert_array_equal(t(win, 5), y)  # int seed == default_rng(seed)
    others = [t(win, s) for s in (6, 7)]
    assert any(not np.array_equal(o, y) for o in others)
    # samples get different parameters: identical inputs give different outputs somewhere
    same = np.repeat(x[:1], 8, axis=0)
    out = t(same, 1)
    assert any(not np.array_equal(out[0], out[i]) for i in range(1, 8))


def test_resize_matches_references():
    x = frames(3, 40, 60)
    # int: the shorter side becomes 20, aspect kept (torchvision's convention)
    assert T.Resize(20)(x).shape == (3, 20, 30, 3)
    assert T.Resize(20)(x.transpose(0, 2, 1, 3)).shape == (3, 30, 20, 3)
    # area by an integer factor: the mean of each 2x2 block
    area = T.Resize((20, 30), "area")(x).astype(int)
    blocks = x.reshape(3, 20, 2, 30, 2, 3).astype(float).mean(axis=(2, 4))
    assert np.abs(area - blocks).max() <= 1
    # bilinear, half-pixel centres: a NumPy reference
    oh, ow = 27, 41
    ys = np.clip((np.arange(oh) + 0.5) * 40 / oh - 0.5, 0, 39)
    xs = np.clip((np.arange(ow) + 0.5) * 60 / ow - 0.5, 0, 59)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, 39), np.minimum(x0 + 1, 59)
    wy, wx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    f = x.astype(float)
    ref = (f[:, y0][:, :, x0] * (1 - wx) + f[:, y0][:, :, x1] * wx) * (1 - wy) + \
          (f[:, y1][:, :, x0] * (1 - wx) + f[:, y1][:, :, x1] * wx) * wy
    got = T.Resize((oh, ow))(x).astype(float)
    assert np.abs(got - ref).max() <= 1.0
    np.testing.assert_array_equal(T.Resize((40, 60))(x), x)
    one = np.ascontiguousarray(x[..., :1])
    assert T.Resize((20, 30))(one).shape == (3, 20, 30, 1)


def test_crops_and_flip_values():
    x = frames(5, 32, 48)
    np.testing.assert_array_equal(T.CenterCrop((20, 30))(x), x[:, 6:26, 9:39])
    with pytest.raises(ValueError, match="smaller than the crop"):
        T.CenterCrop(40)(x)
    y = T.RandomCrop((20, 30), padding=4)(x, 3)
    pad = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    for b in range(5):  # each output is a window of the padded input
        hits = [(i, j) for i in range(40 - 20 + 1) for j in range(56 - 30 + 1)
                if np.array_equal(pad[b, i : i + 20, j : j + 30], y[b])]
        assert hits, b
    np.testing.assert_array_equal(T.RandomCrop((32, 48))(x, 0), x)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x), x[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x), x)
    flipped = T.RandomHorizontalFlip(0.5)(np.repeat(x[:1], 400, axis=0), 0)
    share = np.mean([np.array_equal(f, x[0, :, ::-1]) for f in flipped])
    assert 0.4 < share < 0.6


def test_rotation_values():
    x = frames(4, 31, 31)
    np.testing.assert_array_equal(T.RandomRotation(0)(x, 0), x)
    r90 = T.RandomRotation((90, 90), interpolation="nearest")(x, 0)
    np.testing.assert_array_equal(r90, np.rot90(x, 1, axes=(1, 2)))  # positive = counter-clockwise
    r = T.RandomRotation((45, 45), fill=(255, 0, 0))(x, 0)
    np.testing.assert_array_equal(r[:, 0, 0], np.tile([255, 0, 0], (4, 1)))  # corners uncovered -> fill
    with pytest.raises(ValueError):
        T.RandomRotation(10, interpolation="area")


def test_color_jitter_values():
    x = frames(4)
    np.testing.assert_array_equal(T.ColorJitter()(x, 0), x)
    half = T.ColorJitter(brightness=(0.5, 0.5))(x, 0).astype(int)
    assert np.abs(half - x * 0.5).max() <= 0.5 + 1e-9
    grey = T.ColorJitter(saturation=(0.0, 0.0))(x, 0).astype(int)
    assert np.abs(grey - grey[..., :1]).max() <= 1
    luma = x.astype(float) @ [0.299, 0.587, 0.114]
    assert np.abs(grey[..., 0] - luma).max() <= 1
    flat = T.ColorJitter(contrast=(0.0, 0.0))(x, 0).astype(int)
    for b in range(4):  # contrast 0: the frame's mean grey everywhere
        assert np.abs(flat[b] - luma[b].mean()).max() <= 1
    red = np.zeros((2, 4, 4, 3), np.uint8)
    red[..., 0] = 255
    green = T.ColorJitter(hue=(1 / 3, 1 / 3))(red, 0)
    np.testing.assert_array_equal(green[..., 1], 255)
    assert green[..., [0, 2]].max() <= 1
    for bad in (dict(brightness=-0.1), dict(hue=0.6), dict(contrast=(2, 1))):
        with pytest.raises(ValueError):
            T.ColorJitter(**bad)
    with pytest.raises(ValueError, match="RGB"):
        T.ColorJitter(0.2)(np.zeros((2, 4, 4, 1), np.uint8), 0)


def test_input_checks():
    with pytest.raises(TypeError, match="uint8"):
        T.RandomHorizontalFlip()(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(TypeError):
        T.Compose([lambda x: x])
    ds = FakeDataset([5], camera=True)
    with pytest.raises(ValueError, match="not cameras"):
        prf.Loader(ds, 2, transform={"observation.images.nope": T.RandomHorizontalFlip()})
    with pytest.raises(ValueError, match="no camera"):
        prf.Loader(FakeDataset([5]), 2, transform=T.RandomHorizontalFlip())


def test_loader_transforms_each_camera_independently():
    ds = FakeDataset([40], camera=True)
    ds.cameras = ["cam", "cam2"]
    orig = ds.get_batch

    def two_cams(idx):
        b = orig(idx)
        b["cam2"] = b["cam"].copy()
        return b

    ds.get_batch = two_cams
    b = next(iter(prf.Loader(ds, 40, transform=T.RandomHorizontalFlip(), seed=1)))
    same = [np.array_equal(b["cam"][i], b["cam2"][i]) for i in range(40)]
    assert not all(same) and any(same)  # independent draws per camera
    only = next(iter(prf.Loader(ds, 40, transform={"cam2": T.RandomHorizontalFlip(1.0)}, seed=1)))
    np.testing.assert_array_equal(only["cam"], orig(np.arange(40))["cam"])
    np.testing.assert_array_equal(only["cam2"], orig(np.arange(40))["cam"][:, :, ::-1])
