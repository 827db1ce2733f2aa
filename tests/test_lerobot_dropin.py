"""Issue 11 item 16: ``prf.torch.LeRobotDataset``, a drop-in for LeRobot 0.4.4's ``LeRobotDataset``.

Items equal LeRobot's oracles (../shared/data/lerobot/*/oracle.npz) in LeRobot's own format (frames
float32 [T, C, H, W] = uint8 / 255, bit-equal); the DataLoader with workers and LeRobot's
EpisodeAwareSampler; a LeRobot-style training loop that runs unchanged with the import swapped (with
LeRobot itself too when $PRF_LEROBOT_PYTHON names a Python with lerobot installed).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import prf.torch  # noqa: E402
from conftest import ORACLE_DATASETS, REPO, dataset_path  # noqa: E402
from prf.torch import LeRobotDataset, LeRobotDatasetMetadata  # noqa: E402

LOOP = REPO / "tests" / "tools" / "lerobot_style_train.py"
LEROBOT_PYTHON = os.environ.get("PRF_LEROBOT_PYTHON")
TORCH_DTYPES = {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool, "float64": torch.float64}


def _open(name, **kw):
    root = dataset_path(name)
    oj = json.loads((root / "oracle.json").read_text())
    ds = LeRobotDataset(f"local/{name}", root=root, delta_timestamps=oj["delta_timestamps"],
                        episodes=oj.get("episodes_filter"), **kw)
    return ds, np.load(root / "oracle.npz"), oj


def _check_item(item, o, j, cams, largest):
    for key in o.files:
        if key in ("indices", "dataset_position") or "@" in key or key.startswith("lerobot0"):
            continue
        ref = o[key][j]
        got = item[key]
        if key == "task":
            assert isinstance(got, str) and got == str(ref)
        elif key in cams:
            assert got.dtype == torch.float32 and tuple(got.shape) == ref.shape  # [T, C, H, W]
            # LeRobot's float conversion of the same uint8 frame: frame.float() / 255, bit-equal
            want = torch.from_numpy(ref).to(torch.float32) / 255
            diff = (got * 255).round().to(torch.int16) - torch.from_numpy(ref).to(torch.int16)
            largest[key] = max(largest.get(key, 0), int(diff.abs().max()))
            assert torch.equal(got, want), f"{key}: max |diff| {int(diff.abs().max())} on 0-255"
        else:
            assert isinstance(got, torch.Tensor) and got.dtype == TORCH_DTYPES[str(ref.dtype)], (key, got.dtype)
            assert tuple(got.shape) == ref.shape, (key, tuple(got.shape), ref.shape)
            assert torch.equal(got, torch.as_tensor(np.array(ref))), key


@pytest.mark.parametrize("name", ORACLE_DATASETS)
def test_items_equal_lerobot_oracle(name, record_property):
    ds, o, _oj = _open(name)
    cams = ds.meta.camera_keys
    idx = [int(i) for i in o["indices"]]
    largest: dict[str, int] = {}
    for start in range(0, len(idx), 10):  # DataLoader's batched path (__getitems__)
        for j, item in zip(range(start, start + 10), ds.__getitems__(idx[start:start + 10])):
            _check_item(item, o, j, cams, largest)
    for j in (0, 7, len(idx) - 1):  # and the single-item path
        _check_item(ds[idx[j]], o, j, cams, largest)
    print(f"{name}: largest |diff| per camera on 0-255: {largest}")
    for k, v in largest.items():
        record_property(f"{k}_max_abs_diff", v)


def test_signature_is_lerobots():
    params = inspect.signature(LeRobotDataset).parameters
    want = {"repo_id": inspect.Parameter.empty, "root": None, "episodes": None, "image_transforms": None,
            "delta_timestamps": None, "tolerance_s": 1e-4, "revision": None, "force_cache_sync": False,
            "download_videos": True, "video_backend": None, "batch_encoding_size": 1}
    assert list(params)[:len(want)] == list(want)
    assert {k: params[k].default for k in want} == want
    mp = inspect.signature(LeRobotDatasetMetadata).parameters
    assert list(mp)[:4] == ["repo_id", "root", "revision", "force_cache_sync"]


def test_attributes_as_lerobot():
    root = dataset_path("aloha_multicam_v30")
    info = json.loads((root / "meta" / "info.json").read_text())
    stats_json = json.loads((root / "meta" / "stats.json").read_text())
    ds = LeRobotDataset("local/aloha", root=root, episodes=[1, 4])
    m = ds.meta
    assert m.fps == ds.fps == info["fps"] and m.features == ds.features == info["features"]
    assert (m.total_frames, m.total_episodes) == (info["total_frames"], info["total_episodes"])
    assert m.video_keys == m.camera_keys == [k for k, f in info["features"].items() if f["dtype"] == "video"]
    lengths = m.episodes["length"]
    assert ds.num_episodes == 2 and ds.num_frames == len(ds) == lengths[1] + lengths[4]
    assert len(m.episodes) == info["total_episodes"] and m.episodes[4]["episode_index"] == 4
    assert m.episodes["dataset_to_index"][3] == m.episodes["dataset_from_index"][4]
    assert list(m.tasks.index) == [m.tasks.index[i] for i in m.tasks["task_index"]]  # iloc[task_index].name
    for key in ("action", "observation.state", m.camera_keys[0]):
        for s in ("mean", "std", "min", "max"):
            assert isinstance(m.stats[key][s], np.ndarray)
            assert np.array_equal(m.stats[key][s], np.array(stats_json[key][s]))
    assert m.stats[m.camera_keys[0]]["mean"].shape == (3, 1, 1)
    assert ds.delta_indices is None and "local/aloha" in repr(ds)
    item = ds[0]
    assert int(item["episode_index"]) == 1 and item[m.camera_keys[0]].shape[0] == 3  # CHW
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_image_transforms_applied_as_lerobot():
    """LeRobot applies image_transforms to each camera's float tensor of the item ([T, C, H, W] with a
    window), after the frames are decoded and before the task is added."""
    seen = []

    def transform(x):
        seen.append(tuple(x.shape))
        return x.flip(-1) * 0.5

    root = dataset_path("pusht_sim_v30")
    dts = {"observation.image": [-0.1, 0.0]}
    plain = LeRobotDataset("local/pusht", root=root, delta_timestamps=dts)
    tds = LeRobotDataset("local/pusht", root=root, delta_timestamps=dts, image_transforms=transform)
    a, b = plain[42], tds[42]
    assert torch.equal(b["observation.image"], a["observation.image"].flip(-1) * 0.5)
    assert torch.equal(b["action"], a["action"]) and seen == [(2, 3, 96, 96)]
    batch = tds.__getitems__([1, 2, 3])
    assert len(seen) == 4 and torch.equal(batch[0]["observation.image"], plain[1]["observation.image"].flip(-1) * 0.5)


def _episode_aware_indices(from_idx, to_idx, episodes=None, drop_n_first_frames=0, drop_n_last_frames=0):
    """The index list of LeRobot 0.4.4's EpisodeAwareSampler (lerobot/datasets/sampler.py), as its
    constructor builds it."""
    out = []
    for episode_idx, (start, end) in enumerate(zip(from_idx, to_idx, strict=True)):
        if episodes is None or episode_idx in episodes:
            out.extend(range(start + drop_n_first_frames, end - drop_n_last_frames))
    return out


def test_dataloader_with_workers_and_episode_aware_sampler():
    root = dataset_path("pusht_sim_v30")
    ds = LeRobotDataset("local/pusht", root=root, delta_timestamps={"action": [i / 10 for i in range(8)]})
    indices = _episode_aware_indices(ds.meta.episodes["dataset_from_index"], ds.meta.episodes["dataset_to_index"],
                                     episodes=ds.episodes, drop_n_last_frames=7)
    assert len(indices) == 3850 - 24 * 7
    g = torch.Generator().manual_seed(0)
    order = [indices[i] for i in torch.randperm(len(indices), generator=g)][:48]
    dl = torch.utils.data.DataLoader(ds, batch_size=16, sampler=order, num_workers=2)
    batches = list(dl)
    assert len(batches) == 3
    for b, batch in enumerate(batches):
        want = torch.utils.data.default_collate([ds[i] for i in order[16 * b:16 * (b + 1)]])
        assert batch.keys() == want.keys()
        for k in want:
            if k == "task":
                assert batch[k] == want[k]
            else:
                assert torch.equal(batch[k], want[k]), k
        assert batch["observation.image"].shape == (16, 3, 96, 96) and batch["action"].shape == (16, 8, 2)
        assert not batch["action_is_pad"].any()  # the sampler dropped the last 7 frames of each episode
        assert batch["index"].tolist() == order[16 * b:16 * (b + 1)]


def _run_loop(python, root, steps=3):
    r = subprocess.run([python, str(LOOP), "--impl", "lerobot" if python == LEROBOT_PYTHON else "prf",
                        "--root", str(root), "--steps", str(steps)], capture_output=True, text=True, timeout=900,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_lerobot_style_training_loop_runs_with_prf():
    out = _run_loop(sys.executable, dataset_path("pusht_sim_v30"))
    assert out["impl"] == "prf" and len(out["losses"]) == 3 and np.isfinite(out["losses"]).all()
    assert out["losses"][-1] < out["losses"][0]


@pytest.mark.skipif(not LEROBOT_PYTHON or not Path(LEROBOT_PYTHON).is_file(),
                    reason="set PRF_LEROBOT_PYTHON to a Python with lerobot 0.4.4 installed "
                           "(../shared/lerobot-reference.md) to run the same loop with LeRobot's own dataset")
@pytest.mark.parametrize("name", ["pusht_sim_v30", "aloha_multicam_v30"])
def test_training_loop_same_with_lerobot(name):
    """The same script with only the import swapped: the same batches (sampler order, values) and the
    same losses."""
    root = dataset_path(name)
    mine, theirs = _run_loop(sys.executable, root), _run_loop(LEROBOT_PYTHON, root)
    assert theirs["impl"] == "lerobot"
    assert mine["batches"] == theirs["batches"]
    assert mine["losses"] == theirs["losses"]
