"""prf.validate / prf validate: every shared dataset validates clean (or with its known finding), and each
check fires on a copy of a shared dataset with one defect made in the test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("duckdb")

import prf
from prf.query import CHECKS

from conftest import DATASETS, REPO, dataset_path, edit_info

DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"


def _edit_parquet(path, fn):
    """Rewrite a parquet file with ``fn(table) -> table`` (keeps the schema metadata)."""
    t = pq.read_table(path)
    out = fn(t)
    pq.write_table(out.replace_schema_metadata(t.schema.metadata), path)


def _set_col(t, name, values):
    i = t.column_names.index(name)
    return t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))


def _checks(rep, severity="error"):
    return {f.check for f in rep.findings if f.severity == severity}


@pytest.mark.parametrize("name", DATASETS)
def test_shared_datasets_validate_clean(name):
    rep = prf.validate(dataset_path(name))
    if name == "g1_cam_high_v21_subset":  # a partial download: files of 98 of its 100 episodes are absent
        assert {f.check for f in rep.findings} == {"files.missing"} and not rep.ok
        assert sorted(f.episode for f in rep.findings) == [e for e in range(100) if e not in (1, 2)]
    else:
        assert rep.ok and rep.findings == [], rep.format_text()
    assert set(rep.checks) <= set(CHECKS) and {"index.continuity", "timestamps.grid", "stats.consistent"} <= set(rep.checks)


def test_info_totals(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    edit_info(root, total_frames=3851)
    rep = prf.validate(root)
    assert _checks(rep) == {"info.totals"}
    (f,) = rep.findings
    assert f.file == "meta/info.json" and "3851" in f.message


def test_files_missing_every_video(copy_dataset):
    root = copy_dataset("so101_wrist_v30")  # the case `prf info --strict` let through: no episode has its video
    shutil.rmtree(root / "videos")
    rep = prf.validate(root)
    assert _checks(rep) == {"files.missing"}
    assert sorted(f.episode for f in rep.findings) == list(range(6))
    assert all(f.file == "videos/observation.images.wrist/chunk-000/file-000.mp4" for f in rep.findings)


def test_files_orphan_is_a_warning(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    shutil.copy(root / DATA, root / "data/chunk-000/file-007.parquet")
    rep = prf.validate(root)
    assert rep.ok and [(f.check, f.severity, f.file) for f in rep.findings] == [
        ("files.orphan", "warning", "data/chunk-000/file-007.parquet")]


def test_schema_features(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["action"]["shape"] = [3]
    info["features"]["next.reward"]["dtype"] = "int64"
    edit_info(root, features=info["features"])
    rep = prf.validate(root, videos=False)
    assert _checks(rep) == {"schema.features"}
    msgs = " | ".join(f.message for f in rep.findings)
    assert "'action' is declared shape [3]" in msgs and "'next.reward' is declared int64" in msgs


def test_schema_missing_column(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    _edit_parquet(root / DATA, lambda t: t.drop_columns(["next.done"]))
    rep = prf.validate(root, videos=False)
    assert "schema.features" in _checks(rep)
    assert any("'next.done' is not a column" in f.message and f.file == DATA for f in rep.findings)


def test_video_fps_and_shape(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["observation.image"]["shape"] = [64, 96, 3]
    edit_info(root, features=info["features"], fps=20)
    rep = prf.validate(root)
    assert {"video.fps", "video.shape"} <= _checks(rep)
    fps = rep.by_check("video.fps")
    assert len(fps) == 24 and "info.json fps is 20" in fps[0].message and fps[0].file.endswith(".mp4")
    assert "96x96" in rep.by_check("video.shape")[0].message
    assert "timestamps.grid" in _checks(rep)  # the rows' timestamps are on a 10 fps grid, not 20


def test_index_continuity_frame_index(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    _edit_parquet(root / DATA, lambda t: _set_col(t, "frame_index", np.where(
        t.column("episode_index").to_numpy() == 3, t.column("frame_index").to_numpy() + 1, t.column("frame_index").to_numpy())))
    rep = prf.validate(root, videos=False)
    # frame_index's stored stats no longer match either: the same defect, seen by stats.consistent
    assert _checks(rep) == {"index.continuity", "stats.consistent", "timestamps.grid"}  # the grid moved with it
    assert all("'frame_index'" in f.message for f in rep.by_check("stats.consistent"))
    f = [f for f in rep.by_check("index.continuity")]
    assert [x.episode for x in f] == [3] and "frame_index is not 0.." in f[0].message


def test_index_continuity_orphan_rows_and_order(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    def fn(t):
        ep = t.column("episode_index").to_numpy().copy()
        ep[-5:] = 99  # rows of an episode the table does not list
        t = _set_col(t, "episode_index", ep)
        return t.take(pa.array(np.r_[np.arange(10, 20), np.arange(10), np.arange(20, t.num_rows)]))  # rows out of order
    _edit_parquet(root / DATA, fn)
    rep = prf.validate(root, videos=False)
    msgs = [f.message for f in rep.by_check("index.continuity")]
    assert any("episode_index 99" in m and "orphan rows" in m for m in msgs)
    assert any("not in index order" in m for m in msgs)


def test_index_continuity_episode_ranges(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    _edit_parquet(root / EPISODES, lambda t: _set_col(t, "dataset_to_index", [
        v + (1 if e == 5 else 0) for e, v in zip(t.column("episode_index").to_pylist(), t.column("dataset_to_index").to_pylist())]))
    rep = prf.validate(root, videos=False)
    eps = sorted({f.episode for f in rep.by_check("index.continuity")})
    assert eps == [5, 6]  # 5's range is longer than its length; 6 no longer follows it


def test_timestamps_off_grid(copy_dataset):
    root = copy_dataset("so101_wrist_v30")  # as the real v2.1 dataset whose timestamps sit up to 0.5 s off
    def fn(t):
        ts = t.column("timestamp").to_numpy().copy()
        m = (t.column("episode_index").to_numpy() == 1) & (t.column("frame_index").to_numpy() >= 100)
        ts[m] += 0.51  # (an exact 0.5 s = 15 frames would silently give later frames)
        return _set_col(t, "timestamp", ts)
    _edit_parquet(root / DATA, fn)
    rep = prf.validate(root, videos=False)
    assert _checks(rep) == {"timestamps.grid", "stats.consistent"}  # timestamp's stored stats too
    assert all("'timestamp'" in f.message for f in rep.by_check("stats.consistent"))
    (f,) = rep.by_check("timestamps.grid")
    assert f.episode == 1 and f.file == DATA and f"{386 - 100} timestamps" in f.message and "worst 0.51" in f.message
    # training would fail on it: opening the episode raises TimestampError (the open-time check, as
    # LeRobot's check_timestamps_sync), naming the episode and the tolerance that would accept it
    with pytest.raises(prf.errors.TimestampError, match=r"episode 1.*tolerance_s=0\.51"):
        prf.open_dataset(root, episodes=[1])
    prf.open_dataset(root, episodes=[0])[50]


def test_video_frames_short_video(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    vid = root / "videos/chunk-000/observation.image"
    shutil.copy(vid / "episode_000002.mp4", vid / "episode_000000.mp4")  # 153 frames for a 198-frame episode
    rep = prf.validate(root)
    assert _checks(rep) == {"video.frames"}
    (f,) = rep.findings
    assert f.episode == 0 and f.file == "videos/chunk-000/observation.image/episode_000000.mp4"
    assert "45 of 198 rows have no video frame" in f.message


def test_video_frames_span_off_by_half_a_frame(copy_dataset):
    root = copy_dataset("aloha_multicam_v30")
    key = "videos/observation.images.top/from_timestamp"
    _edit_parquet(root / EPISODES, lambda t: _set_col(t, key, [
        v + (0.5 / 30 if e == 4 else 0.0) for e, v in zip(t.column("episode_index").to_pylist(), t.column(key).to_pylist())]))
    rep = prf.validate(root)
    assert _checks(rep) == {"video.frames"} and [f.episode for f in rep.findings] == [4]
    assert "'observation.images.top'" in rep.findings[0].message


def test_stats_missing_and_inconsistent(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    stats = json.loads((root / "meta/stats.json").read_text())
    (root / "meta/stats.json").unlink()
    rep = prf.validate(root, videos=False)
    assert rep.ok and [(f.check, f.severity) for f in rep.findings] == [("stats.present", "warning")]
    stats["action"]["max"] = [v * 2 + 1 for v in stats["action"]["max"]]
    del stats["next.reward"]["std"]
    (root / "meta/stats.json").write_text(json.dumps(stats))
    rep = prf.validate(root, videos=False)
    assert _checks(rep) == {"stats.consistent"} and _checks(rep, "warning") == {"stats.present"}
    assert "'action'" in rep.by_check("stats.consistent")[0].message


def test_stats_per_episode_inconsistent(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    key = "stats/observation.state/min"
    _edit_parquet(root / EPISODES, lambda t: _set_col(t, key, [
        [x - 5 for x in v] if e == 7 else v for e, v in zip(t.column("episode_index").to_pylist(), t.column(key).to_pylist())]))
    rep = prf.validate(root, videos=False)
    assert _checks(rep) == {"stats.consistent"} and [f.episode for f in rep.findings] == [7]


@pytest.mark.parametrize("stat, change", [("mean", lambda v: [x + 1.0 for x in v]),
                                          ("std", lambda v: [x * 3 + 1 for x in v]),
                                          ("count", lambda v: [v[0] + 1])])
def test_stats_per_episode_mean_std_count(copy_dataset, stat, change):
    """A stored per-episode mean, std or count that its rows do not give (v3.0 stats/* columns)."""
    root = copy_dataset("pusht_sim_v30")
    key = f"stats/action/{stat}"
    _edit_parquet(root / EPISODES, lambda t: _set_col(t, key, [
        change(v) if e == 4 else v for e, v in zip(t.column("episode_index").to_pylist(), t.column(key).to_pylist())]))
    rep = prf.validate(root, videos=False)
    assert _checks(rep) == {"stats.consistent"} and [f.episode for f in rep.findings] == [4]
    assert "'action'" in rep.findings[0].message and f"{stat} " in rep.findings[0].message
    assert rep.findings[0].file == "data/chunk-000/file-000.parquet"


def test_stats_per_episode_v21(copy_dataset):
    """v2.1's episodes_stats.jsonl is compared with each episode's rows too (it was not before)."""
    root = copy_dataset("pusht_sim_v21")
    path = root / "meta/episodes_stats.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    assert prf.validate(root, videos=False).ok
    for r in rows:
        if r["episode_index"] == 9:
            r["stats"]["observation.state"]["mean"] = [x + 3 for x in r["stats"]["observation.state"]["mean"]]
        if r["episode_index"] == 2:
            r["stats"]["action"]["max"] = [x + 1 for x in r["stats"]["action"]["max"]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = prf.validate(root, videos=False)
    assert _checks(rep) == {"stats.consistent"} and sorted(f.episode for f in rep.findings) == [2, 9]
    msg = {f.episode: f.message for f in rep.findings}
    assert "'observation.state'" in msg[9] and "mean" in msg[9] and "'action'" in msg[2] and "max" in msg[2]
    assert {f.file for f in rep.findings} == {"data/chunk-000/episode_000002.parquet", "data/chunk-000/episode_000009.parquet"}
    path.write_text("{broken\n")
    rep = prf.validate(root, videos=False)
    assert not rep.ok and [f.check for f in rep.findings] == ["meta.readable"]  # a report, not a raise
    assert "episodes_stats.jsonl" in rep.findings[0].message and "malformed" in rep.findings[0].message


def test_meta_unreadable(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    (root / "meta/info.json").write_text("{not json")
    rep = prf.validate(root)
    assert not rep.ok and [f.check for f in rep.findings] == ["meta.readable"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "prf.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_cli_validate_json_and_exit_codes(copy_dataset, tmp_path):
    r = _cli("validate", str(dataset_path("pusht_sim_v30")), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["findings"] == []
    root = copy_dataset("pusht_sim_v30")
    edit_info(root, total_episodes=25)
    r = _cli("validate", str(root), "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["ok"] is False
    assert out["findings"] == [{"check": "info.totals", "severity": "error", "file": "meta/info.json", "episode": None,
                                "message": "info.json total_episodes is 25, the episodes table gives 24"}]
    assert _cli("validate", str(tmp_path / "nope"), "--json").returncode == 2
    assert _cli("validate").returncode == 2


def test_prf_written_dataset_is_clean(small_dataset):
    """What prf's writer stores (per-episode stats included) passes every check, the new per-episode
    mean/std/count comparison among them."""
    rep = prf.validate(small_dataset)
    assert rep.findings == [] and "stats.consistent" in rep.checks


def test_episode_stats_check_flags_exactly_the_changed_episode(tmp_path_factory):
    """Hypothesis: for prf-written datasets of random episode lengths and values (large offsets too,
    where float32 stats lose digits), validate is clean; moving one episode's stored mean of one
    dimension by well over the tolerance flags that episode, and only it."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=6), offset=st.sampled_from([0.0, 1e3, -5e4]),
           seed=st.integers(0, 2**16), pick=st.integers(0, 5), dim=st.integers(0, 2))
    def run(lengths, offset, seed, pick, dim):
        rng = np.random.default_rng(seed)
        root = tmp_path_factory.mktemp("hyp") / "ds"
        feats = {"observation.state": {"dtype": "float32", "shape": [3]}}
        eps = [{"observation.state": (offset + rng.normal(size=(n, 3)) * rng.choice([0.0, 1e-3, 10.0])).astype(np.float32),
                "task": "t"} for n in lengths]
        prf.write_lerobot_dataset(root, feats, eps, 10, progress=False)
        rep = prf.validate(root, videos=False)
        assert rep.findings == [], rep.findings
        e = pick % len(lengths)
        key = "stats/observation.state/mean"

        def shift(t):
            vals = t.column(key).to_pylist()
            vals[e] = [v + (1.0 + abs(v)) * 1e-2 if j == dim else v for j, v in enumerate(vals[e])]
            return _set_col(t, key, vals)

        _edit_parquet(root / EPISODES, shift)
        rep = prf.validate(root, videos=False)
        assert [(f.check, f.episode) for f in rep.findings] == [("stats.consistent", e)], rep.findings
        shutil.rmtree(root.parent)

    run()
