"""Cameras stored as images in the data parquet (LeRobot's ``image`` dtype).

The dataset under test is ../shared/data/lerobot/pusht_sim_v30 re-stored the way LeRobot stores an
image feature (``use_videos=False``): every decoded video frame PNG-encoded into the data parquet as
Hugging Face ``datasets``' Image struct ``{bytes, path}``, the feature's dtype ``image``, no videos.
PNG is lossless, so its samples must equal the video dataset's exactly, windows and padding included;
and, where $PRF_LEROBOT_PYTHON names a Python with lerobot, LeRobot's own samples of it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import prf
from prf.errors import DataFileError
from prf.info import describe

SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "lerobot" / "pusht_sim_v30"
CAM = "observation.image"
DTS = {CAM: [-0.2, -0.1, 0.0], "observation.state": [-0.1, 0.0], "action": [0.0, 0.1, 0.2, 0.3]}
LEROBOT_PYTHON = os.environ.get("PRF_LEROBOT_PYTHON")
READBACK = Path(__file__).parent / "tools" / "lerobot_readback.py"


def _png(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def make_image_dataset(dst: Path, *, corrupt_row: int | None = None) -> Path:
    """pusht_sim_v30 with its camera moved from AV1 video into the data parquet as PNG images."""
    video_ds = prf.open_dataset(SRC)
    frames = video_ds.get_batch(np.arange(len(video_ds)))[CAM]  # uint8 [N, 96, 96, 3], dataset order
    shutil.copytree(SRC / "meta", dst / "meta")
    info = json.loads((dst / "meta" / "info.json").read_text())
    info["features"][CAM] = {"dtype": "image", "shape": [96, 96, 3], "names": ["height", "width", "channel"]}
    info["total_videos"] = 0
    (dst / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    for ep_file in (dst / "meta" / "episodes").rglob("*.parquet"):
        t = pq.read_table(ep_file)
        pq.write_table(t.drop_columns([c for c in t.column_names if c.startswith("videos/")]), ep_file)
    for src_file in sorted((SRC / "data").rglob("*.parquet")):
        t = pq.read_table(src_file)
        png = [_png(frames[int(i)]) for i in t.column("index").to_numpy()]
        if corrupt_row is not None:
            png[corrupt_row] = png[corrupt_row][:40]  # a truncated PNG
        images = pa.array([{"bytes": b, "path": None} for b in png],
                          type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        t = t.append_column(CAM, images)
        hf = json.loads(t.schema.metadata[b"huggingface"])
        hf["info"]["features"][CAM] = {"_type": "Image"}
        t = t.replace_schema_metadata({b"huggingface": json.dumps(hf).encode()})
        out = dst / src_file.relative_to(SRC)
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, out)
    return dst


@pytest.fixture(scope="module")
def image_root(module_tmp) -> Path:
    return make_image_dataset(module_tmp("img") / "pusht_images")


def _assert_batches_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if k == "task":
            assert list(a[k]) == list(b[k])
        else:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_image_dataset_opens_and_info_describes_it(image_root):
    ds = prf.open_dataset(image_root)
    assert ds.cameras == [CAM] and ds.image_cameras == [CAM] and ds.video_cameras == []
    s = ds[5]
    assert s[CAM].dtype == np.uint8 and s[CAM].shape == (96, 96, 3)
    d = describe(ds.meta)
    assert {f["key"]: f["dtype"] for f in d["features"]}[CAM] == "image" and d["cameras"] == []
    assert d["episodes_present"] == d["episodes"] == 24


def test_image_samples_equal_the_video_datasets_with_windows(image_root):
    vid = prf.open_dataset(SRC, delta_timestamps=DTS)
    img = prf.open_dataset(image_root, delta_timestamps=DTS)
    assert len(img) == len(vid)
    rng = np.random.default_rng(0)
    idx = np.concatenate([[0, 1, len(img) - 1], vid.episode_starts[:3], rng.integers(0, len(img), 40)])
    a, b = img.get_batch(idx), vid.get_batch(idx)
    assert a[CAM].shape == (idx.size, 3, 96, 96, 3)
    assert a[f"{CAM}_is_pad"][0].tolist() == [True, True, False]  # clamped at the episode start
    _assert_batches_equal(a, b)


def test_image_dataset_through_the_loader_with_workers(image_root, tmp_path):
    img = prf.open_dataset(image_root, delta_timestamps=DTS)
    vid = prf.open_dataset(SRC, delta_timestamps=DTS)
    got = list(img.loader(64, shuffle=True, seed=3, num_workers=2))
    want = list(vid.loader(64, shuffle=True, seed=3, num_workers=2))
    assert len(got) == len(want)
    for a, b in zip(got[:5], want[:5]):
        _assert_batches_equal(a, b)
    # the frame cache holds video frames only; image cameras still come from the parquet
    cached = next(iter(img.loader(64, shuffle=True, seed=3, cache_dir=tmp_path / "cache")))
    _assert_batches_equal(cached, want[0])


def test_corrupt_image_names_episode_frame_and_camera(tmp_path):
    root = make_image_dataset(tmp_path / "bad", corrupt_row=7)
    ds = prf.open_dataset(root)
    assert ds[6][CAM].shape == (96, 96, 3)
    with pytest.raises(DataFileError, match=r"episode 0, frame 7, camera 'observation.image'"):
        ds[7]


def test_missing_image_bytes_is_a_clear_error(tmp_path):
    root = make_image_dataset(tmp_path / "nobytes")
    f = next((root / "data").rglob("*.parquet"))
    t = pq.read_table(f)
    col = t.column(CAM).combine_chunks()
    paths = pa.array([{"bytes": None, "path": f"frame_{i}.png"} for i in range(len(col))], type=col.type)
    pq.write_table(t.set_column(t.column_names.index(CAM), CAM, paths), f)
    with pytest.raises(DataFileError, match="no embedded image bytes"):
        prf.open_dataset(root)


@pytest.mark.skipif(not LEROBOT_PYTHON or not Path(LEROBOT_PYTHON).is_file(),
                    reason="set PRF_LEROBOT_PYTHON to a Python with lerobot (../shared/lerobot-reference.md)")
def test_image_samples_equal_lerobots(image_root, tmp_path):
    ds = prf.open_dataset(image_root, delta_timestamps=DTS)
    idx = [0, 1, 2, 150, 151, len(ds) // 2, len(ds) - 1]
    out = tmp_path / "lr.npz"
    r = subprocess.run([LEROBOT_PYTHON, str(READBACK), str(image_root), str(out), *map(str, idx),
                        f"--delta-timestamps={json.dumps(DTS)}"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    lr = dict(np.load(out))
    b = ds.get_batch(idx)
    compared = 0
    for key, ref in lr.items():
        if key.startswith("__") or key == "task":
            continue
        got = b[key]
        assert got.shape == ref.shape, key
        np.testing.assert_array_equal(got, ref.astype(got.dtype), err_msg=key)  # PNG: frames exact too
        compared += 1
    assert {CAM, f"{CAM}_is_pad", "observation.state", "action_is_pad"} <= set(lr) and compared >= 8


def test_demo_trains_on_an_image_dataset(image_root):
    pytest.importorskip("torch")
    from prf.torch.demo import run_demo

    out = run_demo(image_root, steps=12, batch_size=16, num_workers=1, progress=False)
    assert out["camera"] == CAM and out["steps"] == 12 and np.isfinite(out["loss_last"])
