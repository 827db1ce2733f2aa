"""prf.score_episodes / prf score: constructed episodes rank as the scores say, hand-computed values on
a tiny episode, the scores view and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prf

from conftest import REPO, dataset_path, uint8_frames

L, FPS = 60, 30
NAMES = ["normal", "idle_half", "jerky", "frozen_camera", "bad_timestamps", "blurry", "outlier"]


def _episode(kind: str, seed: int) -> dict:
    t = np.arange(L) / FPS
    state = np.stack([np.sin(t * 2 + seed), np.cos(t * 3 + seed), 0.5 * t, np.zeros(L)], 1)
    state[:, 3] = np.where((np.arange(L) >= 15) & (np.arange(L) < 45), 0.0, 1.0)  # gripper: open, closed, open
    action = np.stack([np.sin(t * 2 + seed + 0.1), np.cos(t * 3 + seed + 0.1)], 1)
    frames = uint8_frames(L, seed=seed)
    if kind == "idle_half":
        state[L // 2:] = state[L // 2]
        action[L // 2:] = action[L // 2]
    if kind == "jerky":
        action = action + 0.3 * (-1.0) ** np.arange(L)[:, None]
    if kind == "frozen_camera":
        frames = np.repeat(frames[:1], L, axis=0)
    if kind == "blurry":
        frames = np.full((L, 32, 48, 3), 128, np.uint8) + (np.arange(L) % 8).astype(np.uint8)[:, None, None, None]
    if kind == "outlier":
        state[:, :3] += 10.0
    return {"observation.state": state.astype(np.float32), "action": action.astype(np.float32),
            "observation.images.cam": frames, "task": "reach"}


@pytest.fixture(scope="module")
def constructed(module_tmp):
    root = module_tmp("scores") / "ds"
    feats = {"observation.state": {"dtype": "float32", "shape": [4], "names": ["x", "y", "z", "gripper"]},
             "action": {"dtype": "float32", "shape": [2], "names": ["vx", "vy"]},
             "observation.images.cam": {"dtype": "video", "shape": [32, 48, 3]}}
    prf.write_lerobot_dataset(root, feats, (_episode(k, i) for i, k in enumerate(NAMES)), FPS, progress=False)
    data = root / "data/chunk-000/file-000.parquet"
    t = pq.read_table(data)
    ts = t.column("timestamp").to_numpy().copy()
    ep, fi = t.column("episode_index").to_numpy(), t.column("frame_index").to_numpy()
    m = ep == NAMES.index("bad_timestamps")
    ts[m & (fi == 10)] = ts[m & (fi == 9)]  # a duplicated timestamp
    ts[m & (fi >= 30)] += 2 / FPS  # two frames dropped
    i = t.column_names.index("timestamp")
    pq.write_table(t.set_column(i, t.schema.field(i), pa.array(ts, pa.float32())).replace_schema_metadata(t.schema.metadata), data)
    return root


def test_constructed_episodes_rank_as_expected(constructed):
    s = {r["episode_index"]: r for r in prf.score_episodes(constructed).to_pylist()}
    by = {k: s[i] for i, k in enumerate(NAMES)}
    col = lambda name: {k: by[k][name] for k in NAMES}  # noqa: E731

    idle = col("idle_fraction")
    assert max(idle, key=idle.get) == "idle_half" and 0.45 <= idle["idle_half"] <= 0.55
    assert all(v < 0.05 for k, v in idle.items() if k != "idle_half")
    jerk = col("motion_smoothness")
    assert max(jerk, key=jerk.get) == "jerky" and jerk["jerky"] > 10 * max(v for k, v in jerk.items() if k != "jerky")
    frozen = col("frozen_fraction/observation.images.cam")
    assert frozen["frozen_camera"] == 1.0 and all(v == 0.0 for k, v in frozen.items() if k not in ("frozen_camera", "blurry"))
    sharp = col("sharpness/observation.images.cam")
    assert min(sharp, key=sharp.get) == "blurry" and sharp["blurry"] < 0.1 * sharp["normal"]
    assert col("duplicated_frames") == {k: int(k == "bad_timestamps") for k in NAMES}
    # grid slots missing: frame 10 repeats 9's time (slot 10 empty) + the 2 frames dropped at frame 30
    assert col("dropped_frames") == {k: 3 * int(k == "bad_timestamps") for k in NAMES}
    gr = col("gripper_events")
    assert all(v == 2 for k, v in gr.items() if k != "idle_half") and gr["idle_half"] == 1  # frozen open after 30
    div = col("diversity")
    assert max(div, key=div.get) == "outlier"
    assert col("length") == {k: L for k in NAMES}
    # variance ordering: the idle half moves less
    sv = col("state_variance")
    assert sv["idle_half"] < sv["normal"]


def test_tiny_episode_hand_computed(tmp_path):
    root = tmp_path / "tiny"
    feats = {"observation.state": {"dtype": "float32", "shape": [1], "names": ["gripper"]},
             "action": {"dtype": "float32", "shape": [2]}}
    ep = {"observation.state": np.array([[0], [1], [1], [1], [3]], np.float32),
          "action": np.array([[3, 4], [0, 0], [3, 4], [0, 0], [6, 8]], np.float32), "task": "t"}
    prf.write_lerobot_dataset(root, feats, [ep], 10, progress=False)
    (r,) = prf.score_episodes(root).to_pylist()
    assert r["length"] == 5 and r["duration_s"] == pytest.approx(0.5)
    assert r["state_variance"] == pytest.approx(0.96)  # mean 1.2; squares 1.44+.04*3+3.24 = 4.8; / 5
    assert r["action_magnitude"] == pytest.approx(4.0)  # norms 5, 0, 5, 0, 10
    # third differences [-12,-16], [15,20]: norms 20, 25 -> 22.5 per step^3, x fps^3 = 1000
    assert r["motion_smoothness"] == pytest.approx(22500.0)
    assert r["idle_fraction"] == pytest.approx(0.5)  # steps 1, 0, 0, 2: two of four are zero
    assert r["gripper_events"] == 1  # range [0, 3]: closed below 1.2, open above 1.8: 0,1,1,1 closed, 3 open
    assert r["dropped_frames"] == 0 and r["duplicated_frames"] == 0
    assert r["diversity"] is None  # one episode: nothing to compare with


def test_laplacian_variance_by_hand():
    from prf.query import laplacian_variance

    g = np.zeros((3, 4))
    g[1, 1] = 1.0  # interior pixels (1,1) and (1,2): Laplacians -4 and 1 -> variance 6.25
    assert laplacian_variance(g) == pytest.approx(6.25)
    assert laplacian_variance(np.full((5, 5), 7.0)) == 0.0


def test_real_datasets_scores_and_view():
    root = dataset_path("aloha_multicam_v30")
    meta = prf.DatasetMeta(root)
    t = prf.score_episodes(root, cameras=[])
    assert t.column("episode_index").to_pylist() == list(meta.episodes)
    assert t.column("length").to_pylist() == [e.length for e in meta.episodes.values()]
    assert not [c for c in t.column_names if c.startswith("sharpness/")]
    # the scores view joins with the others
    r = prf.sql(root, "SELECT s.episode_index, s.length = e.length AS same FROM scores s JOIN episodes e USING (episode_index)")
    assert r.num_rows == 12 and all(r.column("same").to_pylist())
    # so101's recording holds one constant state: the scores say so
    so = prf.score_episodes(dataset_path("so101_wrist_v30"), samples=2).to_pylist()
    assert all(x["state_variance"] == 0.0 and x["idle_fraction"] == 1.0 for x in so)


def test_memory_bounded_batches(constructed):
    """Tiny record batches (episodes cut across batches) give the same scores as whole files."""
    a = prf.score_episodes(constructed, cameras=[]).to_pylist()
    b = prf.score_episodes(constructed, cameras=[], batch_rows=7).to_pylist()
    assert len(a) == len(b) == len(NAMES)
    for x, y in zip(a, b):  # equal up to the order of the float sums of the dataset-wide moments
        assert y == pytest.approx(x, rel=1e-12, abs=1e-12)


def test_cli_score_json():
    root = str(dataset_path("pusht_sim_v30"))
    r = subprocess.run([sys.executable, "-m", "prf.cli", "score", root, "--json", "--no-cameras"], capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["episode_index"] for x in rows] == list(range(24))
    assert all(isinstance(x["action_magnitude"], float) for x in rows)
