"""goal=: ``{key}.goal`` is the key at the episode's last frame (or ``k`` frames ahead, clamped at it),
checked against the parquet's own numbers (NumPy over each episode's rows) on real datasets, through
ds[i], get_batch, loader batches (with a CurriculumSampler) and the torch adapter."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prf
from prf.errors import OptionsError

from conftest import dataset_path

DATASETS = ["so101_wrist_v30", "aloha_multicam_v30"]
KEYS = ("observation.state", "action")


def parquet_rows(name: str) -> dict[str, np.ndarray]:
    """Every data row of the dataset, read with pyarrow alone, sorted by ``index``."""
    root = dataset_path(name)
    files = sorted((root / "data").rglob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f, columns=["index", "episode_index", "frame_index", *KEYS]) for f in files])
    table = table.sort_by("index")
    out = {k: table[k].to_numpy() for k in ("index", "episode_index", "frame_index")}
    for k in KEYS:
        out[k] = np.stack(table[k].to_numpy(zero_copy_only=False)).astype(np.float32)
    return out


def expected_goal(rows: dict[str, np.ndarray], key: str, k: int | None) -> np.ndarray:
    """Per row: ``key`` at the row of its episode whose frame_index is ``min(frame + k, last)``."""
    out = np.empty_like(rows[key])
    for e in np.unique(rows["episode_index"]):
        sel = np.flatnonzero(rows["episode_index"] == e)
        frames = rows["frame_index"][sel]
        last = frames.max()
        want = np.full(sel.size, last) if k is None else np.minimum(frames + k, last)
        by_frame = {int(f): i for f, i in zip(frames, sel)}
        out[sel] = rows[key][[by_frame[int(f)] for f in want]]
    return out


@pytest.mark.parametrize("name", DATASETS)
def test_goal_values_equal_the_parquet(name):
    rows = parquet_rows(name)
    ds = prf.open_dataset(dataset_path(name), cameras=[], goal={"observation.state": None, "action": 7})
    batch = ds.get_batch(np.arange(len(ds)))
    np.testing.assert_array_equal(batch["index"], rows["index"])  # the whole dataset, in index order
    for key, k in (("observation.state", None), ("action", 7)):
        g = batch[f"{key}.goal"]
        assert g.dtype == np.float32 and g.shape == rows[key].shape, (key, g.shape)
        np.testing.assert_array_equal(g, expected_goal(rows, key, k), err_msg=f"{name} {key}.goal k={k}")
    if name == "aloha_multicam_v30":  # its state moves (so101_wrist_v30's barely does): the goal is not the frame
        assert (batch["observation.state.goal"] != batch["observation.state"]).any(axis=1).mean() > 0.5
    # ds[i] is the same value, shape [D]
    last = int(np.flatnonzero(rows["episode_index"] == rows["episode_index"][0]).max())
    for i in (0, 5, last, len(ds) - 1):
        s = ds[i]
        assert s["observation.state.goal"].shape == (rows["observation.state"].shape[1],)
        np.testing.assert_array_equal(s["observation.state.goal"], expected_goal(rows, "observation.state", None)[i])
    np.testing.assert_array_equal(ds[last]["observation.state.goal"], rows["observation.state"][last])


def test_goal_k_zero_is_the_frame_itself_and_a_list_means_the_last_frame():
    name = "so101_wrist_v30"
    ds = prf.open_dataset(dataset_path(name), cameras=[], goal={"action": 0})
    b = ds.get_batch(np.arange(0, len(ds), 13))
    np.testing.assert_array_equal(b["action.goal"], b["action"])
    rows = parquet_rows(name)
    ds2 = prf.open_dataset(dataset_path(name), cameras=[], goal=["observation.state"])
    idx = np.arange(3, len(ds2), 11)
    np.testing.assert_array_equal(ds2.get_batch(idx)["observation.state.goal"],
                                  expected_goal(rows, "observation.state", None)[idx])
    assert "observation.state.goal" in prf.open_dataset(dataset_path(name), cameras=[], goal="observation.state")[0]


def test_goal_in_loader_batches_with_windows_cameras_and_curriculum():
    """With a delta_timestamps window on the same key and a camera, the goal stays ``[B, D]``; loader
    batches from a CurriculumSampler carry the goal of each sample's own episode."""
    name = "aloha_multicam_v30"
    rows = parquet_rows(name)
    want = expected_goal(rows, "observation.state", 20)
    meta = prf.DatasetMeta(dataset_path(name))
    cam = meta.camera_keys[0]
    ds = prf.open_dataset(dataset_path(name), cameras=[cam], goal={"observation.state": 20},
                          delta_timestamps={"observation.state": [-1 / meta.fps, 0.0]})
    sampler = prf.CurriculumSampler(ds, "length", start=0.5, warmup_epochs=2, seed=3)
    loader = ds.loader(8, sampler=sampler, num_workers=2)
    seen = 0
    for batch in loader:
        g = batch["observation.state.goal"]
        assert g.shape == (batch["index"].size, rows["observation.state"].shape[1]) and g.dtype == np.float32
        assert batch["observation.state"].shape[1] == 2  # the window is there, the goal is not windowed
        np.testing.assert_array_equal(g, want[batch["index"]])
        assert batch[cam].ndim == 4
        seen += batch["index"].size
        if seen >= 48:
            break
    assert seen >= 48


def test_goal_through_the_torch_adapter():
    torch = pytest.importorskip("torch")
    import prf.torch as pt

    name = "so101_wrist_v30"
    rows = parquet_rows(name)
    want = expected_goal(rows, "observation.state", None)
    ds = prf.open_dataset(dataset_path(name), cameras=[], goal="observation.state")
    batch = next(iter(ds.loader(5, output="torch", shuffle=True, seed=1)))
    g = batch["observation.state.goal"]
    assert isinstance(g, torch.Tensor) and tuple(g.shape) == (5, want.shape[1]) and g.dtype == torch.float32
    np.testing.assert_array_equal(g.numpy(), want[batch["index"].numpy()])
    assert pt is not None


def test_goal_errors():
    path = dataset_path("so101_wrist_v30")
    meta = prf.DatasetMeta(path)
    with pytest.raises(OptionsError, match="not a non-camera feature"):
        prf.open_dataset(path, cameras=[], goal="observation.nothing")
    with pytest.raises(OptionsError, match="not a non-camera feature or selected camera"):
        prf.open_dataset(path, cameras=[], goal=meta.camera_keys[0])  # a camera that is not decoded
    with pytest.raises(OptionsError, match="int >= 0"):
        prf.open_dataset(path, cameras=[], goal={"action": -1})
    with pytest.raises(OptionsError, match="int >= 0"):
        prf.open_dataset(path, cameras=[], goal={"action": 1.5})


@pytest.mark.parametrize("name", DATASETS)
def test_goal_images_are_the_episode_last_or_kth_frame(name):
    """A camera goal (``{cam}.goal`` ``uint8 [H, W, C]``) is the very frame ds[j][cam] decodes for the
    goal row j (video cameras, through the decode plan); windows on the camera leave it one frame."""
    meta = prf.DatasetMeta(dataset_path(name))
    cam = meta.video_keys[-1]
    ds = prf.open_dataset(dataset_path(name), cameras=[cam], goal={cam: None, "action": 3},
                          delta_timestamps={cam: [-2 / meta.fps, 0.0]})
    plain = prf.open_dataset(dataset_path(name), cameras=[cam])
    starts, lengths = ds.episode_starts, ds.episode_lengths
    picks = [0, int(starts[1]) + 4, int(starts[1] + lengths[1] - 1), len(ds) - 2]
    b = ds.get_batch(np.array(picks))
    g = b[f"{cam}.goal"]
    assert g.dtype == np.uint8 and g.shape == (len(picks),) + plain[0][cam].shape
    assert b[cam].shape[1] == 2  # the camera's own window is there
    for j, i in enumerate(picks):
        o = int(ds.episode_of([i])[0])
        last = int(starts[o] + lengths[o] - 1)
        np.testing.assert_array_equal(g[j], plain[last][cam], err_msg=f"{name} sample {i}")
        np.testing.assert_array_equal(ds[i][f"{cam}.goal"], plain[last][cam])
    k_ds = prf.open_dataset(dataset_path(name), cameras=[cam], goal={cam: 25})
    batch = next(iter(k_ds.loader(6, num_workers=2, shuffle=True, seed=4)))
    index = plain.column("index").reshape(-1)
    for j, i in enumerate(batch["index"].tolist()):
        pos = int(np.searchsorted(index, i))
        o = int(plain.episode_of([pos])[0])
        want = min(pos + 25, int(starts[o] + lengths[o] - 1))
        np.testing.assert_array_equal(batch[f"{cam}.goal"][j], plain[want][cam])


def test_goal_normalized_with_its_key_statistics():
    """normalize={"observation.state.goal": "mean_std"} uses observation.state's stats: the normalized goal
    equals the normalized state of the episode's last frame."""
    name = "aloha_multicam_v30"
    ds = prf.open_dataset(dataset_path(name), cameras=[], goal="observation.state")
    st = ds.stats()["observation.state"]
    loader = ds.loader(16, normalize={"observation.state": "mean_std", "observation.state.goal": "mean_std"})
    rows = parquet_rows(name)
    raw_goal = expected_goal(rows, "observation.state", None)
    batch = next(iter(loader))
    want = (raw_goal[batch["index"]] - np.asarray(st["mean"], np.float32)) / (np.asarray(st["std"], np.float32)
                                                                          + np.float32(1e-8))
    np.testing.assert_allclose(batch["observation.state.goal"], want, rtol=1e-5, atol=1e-5)
    last = int(ds.episode_starts[0] + ds.episode_lengths[0] - 1)
    full = loader.transforms(ds.get_batch(np.array([0, last])), indices=np.array([0, last]))
    np.testing.assert_array_equal(full["observation.state.goal"][0], full["observation.state"][1])
