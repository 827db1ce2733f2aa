"""prf.edit on the shared datasets: prf's reading of every edit equals its reading of the source
episodes (tests/_edit_cases.py), the tables are re-indexed as LeRobot's tools do, bad input is a typed
error, a kill -9 mid-edit leaves the source intact and no output, appends are revisioned and locked,
exports hold the episode."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import prf
from _edit_cases import ALOHA, G1, PUSHT21, PUSHT30, SO101, build_cases, compare, expected, sample_indices
from prf.errors import EditError, MissingFilesError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cases(module_tmp):
    return build_cases(module_tmp("edits"))


def test_prf_reads_every_edit_as_its_source(cases):
    for name, (root, mapping, reencoded) in cases.items():
        meta = prf.DatasetMeta(root)
        assert meta.codebase_version == "v3.0" and meta.total_episodes == len(mapping), name
        idx = sample_indices(root, per_episode=5)
        got = prf.open_dataset(root).get_batch(idx)
        compare(got, expected(root, mapping, idx), meta.camera_keys, reencoded, name)


def test_every_edit_validates(cases):
    """prf.validate finds no error in any edit: totals, index continuity, timestamps, video spans and the
    per-episode stats of the re-indexed columns (episode_index, index, task_index) against the rows."""
    pytest.importorskip("duckdb")
    for name, (root, _, _) in cases.items():
        errors = [f for f in prf.validate(root).findings if f.severity == "error"]
        assert not errors, (name, errors[:3])


def test_reindexed_stats_describe_the_output_rows(cases):
    root = cases["delete_aloha"][0]
    meta = prf.DatasetMeta(root)
    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    eps = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pydict()
    for row, e in enumerate(eps["episode_index"]):
        ep = meta.episodes[e]
        assert eps["stats/episode_index/min"][row] == [e] == eps["stats/episode_index/max"][row]
        assert eps["stats/index/min"][row] == [ep.dataset_from_index]
        assert eps["stats/index/max"][row] == [ep.dataset_to_index - 1]
        rows = data["task_index"][ep.dataset_from_index:ep.dataset_to_index]
        assert eps["stats/task_index/mean"][row] == [pytest.approx(np.mean(rows))]
    stats = json.loads((root / "meta" / "stats.json").read_text())
    assert stats["index"]["max"] == [meta.total_frames - 1] and stats["episode_index"]["max"] == [9]


def test_comparison_can_fail(cases):
    root, mapping, _ = cases["delete_aloha"]
    idx = sample_indices(root)
    got = prf.open_dataset(root).get_batch(idx)
    shifted = mapping[1:] + mapping[:1]
    with pytest.raises(AssertionError):
        compare(got, expected(root, shifted, idx), prf.DatasetMeta(root).camera_keys, False, "shifted")


def test_every_frame_of_an_edit(cases):
    """All frames, not a sample: the remuxed aloha delete (3 cameras, episodes mid-shard) and the
    re-encoded GOPs of the odd-length dataset."""
    for name in ("delete_aloha", "delete_odd", "delete_odd_h264", "delete_odd_hevc", "upgrade_g1"):
        if name not in cases:  # delete_odd_hevc needs libx265 in the PyAV build
            continue
        root, mapping, reencoded = cases[name]
        n = prf.DatasetMeta(root).total_frames
        idx = list(range(n))
        got = prf.open_dataset(root).get_batch(idx)
        compare(got, expected(root, mapping, idx), prf.DatasetMeta(root).camera_keys, reencoded, name)


def test_tables_are_reindexed_as_lerobot(cases):
    root = cases["delete_aloha"][0]
    meta = prf.DatasetMeta(root)
    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet")
    assert np.array_equal(data.column("index").to_numpy(), np.arange(meta.total_frames))
    ep = data.column("episode_index").to_numpy()
    assert list(np.unique(ep)) == list(range(10)) and np.all(np.diff(ep) >= 0)
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 10 and info["total_frames"] == meta.total_frames
    assert info["splits"] == {"train": "0:10"} and info["total_tasks"] == len(meta.tasks)
    starts = [e.dataset_from_index for e in meta.episodes.values()]
    assert starts[0] == 0 and all(a.dataset_to_index == b.dataset_from_index
                                  for a, b in zip(list(meta.episodes.values()), list(meta.episodes.values())[1:]))
    # tasks: only those the kept episodes use, indices 0..T-1, rows point at the right string
    src = prf.DatasetMeta(ALOHA)
    kept = [e for e in range(12) if e not in (0, 5)]
    used = []
    for e in kept:
        for t in src.episodes[e].tasks:
            if t not in used:
                used.append(t)
    assert [meta.tasks[i] for i in sorted(meta.tasks)] == used
    # stats: carried per episode, aggregated as LeRobot's aggregate_stats
    from prf.stats import aggregate_stats, read_episode_stats

    per_src, per_out = read_episode_stats(src), read_episode_stats(meta)
    for new, old in enumerate(kept):
        for k in ("observation.state", "observation.images.top"):
            for s in ("mean", "std", "min", "max", "q50", "count"):
                assert np.array_equal(per_out[new][k][s], per_src[old][k][s]), (k, s)
    agg = aggregate_stats([per_src[e] for e in kept])
    stored = json.loads((root / "meta" / "stats.json").read_text())
    for k in ("observation.state", "action", "observation.images.top"):
        np.testing.assert_allclose(np.asarray(stored[k]["mean"]), agg[k]["mean"], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(stored[k]["std"]), agg[k]["std"], rtol=1e-12)
        assert stored[k]["count"] == agg[k]["count"].tolist()


def test_remux_copies_whole_shards_and_keeps_sizes(cases):
    root = cases["delete_aloha"][0]
    # aloha's top camera is in 3 shards; episodes 0 and 5 are in the first two, the third is copied
    src_files = sorted((ALOHA / "videos" / "observation.images.top").rglob("*.mp4"))
    out_files = sorted((root / "videos" / "observation.images.top").rglob("*.mp4"))
    assert len(out_files) >= 2
    assert any(f.read_bytes() == src_files[-1].read_bytes() for f in out_files)


def test_subset_drops_features_and_cameras(cases):
    meta = prf.DatasetMeta(cases["subset_aloha"][0])
    assert "observation.images.angle" not in meta.features and not (meta.root / "videos" / "observation.images.angle").exists()
    meta = prf.DatasetMeta(cases["subset_so101"][0])
    assert "action" not in meta.features
    assert "action" not in pq.read_schema(meta.root / "data" / "chunk-000" / "file-000.parquet").names
    assert not any(c.startswith("stats/action/") for c in
                   pq.read_schema(meta.root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").names)


def test_split_fractions_and_seed():
    from prf.edit import split_episodes

    eps = list(range(10))
    assert split_episodes(eps, {"train": 0.8, "val": 0.2}) == {"train": list(range(8)), "val": [8, 9]}
    a = split_episodes(eps, {"train": 0.7, "val": 0.3}, seed=3)
    assert a == split_episodes(eps, {"train": 0.7, "val": 0.3}, seed=3)
    assert sorted(a["train"] + a["val"]) == eps and len(a["train"]) == 7
    assert a != split_episodes(eps, {"train": 0.7, "val": 0.3}, seed=4)
    with pytest.raises(EditError, match="sum"):
        split_episodes(eps, {"a": 0.8, "b": 0.5})
    with pytest.raises(EditError, match="more than one split"):
        split_episodes(eps, {"a": [1, 2], "b": [2]})


def test_upgrade_layout(cases):
    root = cases["upgrade_pusht"][0]
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and "total_chunks" not in info
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert len(list((root / "data").rglob("*.parquet"))) == 1  # 24 per-episode files concatenated
    assert len(list((root / "videos").rglob("*.mp4"))) == 1
    meta = prf.DatasetMeta(root)
    ends = [(e.videos["observation.image"].from_timestamp, e.videos["observation.image"].to_timestamp)
            for e in meta.episodes.values()]
    assert ends[0][0] == 0 and all(abs(a[1] - b[0]) < 1e-9 for a, b in zip(ends, ends[1:]))
    names = pq.read_schema(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").names
    assert "stats/observation.image/mean" in names and "stats/action/std" in names  # v2.1 has no quantiles


def test_upgrade_v20_computes_the_stats_v21_stores(cases):
    """v2.0 stores no per-episode stats: the upgrade computes them from the data as LeRobot's converter
    does. Those LeRobot stored in pusht_sim_v21 (computed on the frames before encoding) are the reference:
    numeric features equal, the camera's per-channel values within what video encoding changes."""
    from prf.stats import read_episode_stats

    root = cases["upgrade_pusht_v20"][0]
    assert prf.DatasetMeta(root).codebase_version == "v3.0"
    got, ref = read_episode_stats(prf.DatasetMeta(root)), read_episode_stats(prf.DatasetMeta(PUSHT21))
    assert sorted(got) == [0, 1, 2, 3]
    for new, old in enumerate([0, 3, 4, 9]):
        for key in ("observation.state", "action"):
            for stat in ("min", "max", "mean", "std"):
                np.testing.assert_allclose(got[new][key][stat], ref[old][key][stat], rtol=1e-5, atol=1e-5,
                                           err_msg=f"episode {old} {key} {stat}")
        assert got[new]["action"]["count"].item() == ref[old]["action"]["count"].item()
        for stat in ("mean", "std"):
            np.testing.assert_allclose(got[new]["observation.image"][stat], ref[old]["observation.image"][stat],
                                       atol=0.02, err_msg=f"episode {old} image {stat}")
        assert got[new]["episode_index"]["min"].item() == new  # re-based to the output rows


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_input_is_a_typed_error(tmp_path):
    with pytest.raises(EditError, match="empty dataset"):
        prf.delete_episodes(SO101, tmp_path / "o", list(range(6)), progress=False)
    with pytest.raises(EditError, match=r"unknown episode\(s\) \[6, 40\]"):
        prf.delete_episodes(SO101, tmp_path / "o", [1, 6, 40], progress=False)
    with pytest.raises(EditError, match="inside the source"):
        prf.delete_episodes(SO101, SO101 / "derived", [1], progress=False)
    with pytest.raises(EditError, match="inside the source"):
        prf.delete_episodes(SO101, SO101, [1], progress=False)
    with pytest.raises(EditError, match="fps 30 != 10"):
        prf.merge_datasets([PUSHT30, SO101], tmp_path / "m", progress=False)
    with pytest.raises(EditError, match=r"robot_type"):
        prf.merge_datasets([ALOHA, SO101], tmp_path / "m", progress=False)
    with pytest.raises(MissingFilesError):
        prf.upgrade_dataset(G1, tmp_path / "g", progress=False)  # partial download: episodes 1, 2 only
    with pytest.raises(EditError, match="already v3.0"):
        prf.upgrade_dataset(SO101, tmp_path / "u", progress=False)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_merge_names_the_feature_difference(cases, tmp_path):
    with pytest.raises(EditError, match=r"only in the first: \['observation.images.angle'\]"):
        prf.merge_datasets([ALOHA, cases["subset_aloha"][0]], tmp_path / "m", progress=False)
    root = tmp_path / "shape"
    shutil.copytree(cases["subset_g1"][0], root)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["action"]["shape"] = [13]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(EditError, match=r"'action': shape \[26\] vs \[13\]"):
        prf.merge_datasets([cases["subset_g1"][0], root], tmp_path / "m", progress=False)


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


_SLOW_EDIT = """
import sys, time
import prf, prf.edit._build as b
orig = b._first_frame
def slow(*a, **k):  # called for every video span, remuxed or copied
    print("SPAN", flush=True)
    time.sleep(0.1)
    return orig(*a, **k)
b._first_frame = slow
op, src, out = sys.argv[1:4]
if op == "delete":
    prf.delete_episodes(src, out, [0], progress=False)
else:
    prf.append_episodes(out, src, progress=False)
"""


@pytest.mark.parametrize("op", ["delete", "append"])
def test_kill_9_mid_edit_leaves_source_and_no_output(tmp_path, op):
    src = tmp_path / "src"
    shutil.copytree(ALOHA, src)
    before = _tree_digest(src)
    out = tmp_path / "out"
    if op == "append":
        shutil.copytree(ALOHA, out)
        out_before = _tree_digest(out)
    p = subprocess.Popen([sys.executable, "-c", _SLOW_EDIT, op, str(src), str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # a few spans into the video rewrite: data already written to the temp folder
            line = p.stdout.readline()
            assert line.startswith("SPAN"), p.stderr.read()[-2000:]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert _tree_digest(src) == before
    temps = [q for q in tmp_path.iterdir() if ".prf-tmp-" in q.name]
    assert temps and all(q.name.startswith(".") for q in temps)  # only hidden debris, never the output name
    assert all(f"-{p.pid}-" in q.name for q in temps)  # the killed writer's own folder
    if op == "delete":
        assert not out.exists()
        # the next write to the same output removes the dead writer's folder (prf._atomic.sweep_stale)
        prf.delete_episodes(src, out, [0], progress=False)
        assert prf.DatasetMeta(out).total_episodes == 11
    else:
        assert _tree_digest(out) == out_before  # the dataset is the old one, not a mix
        # the lock died with the process: a new append goes through (and sweeps the dead one's folder)
        rec = prf.append_episodes(out, src, episodes=[0], progress=False)
        assert rec["revision"] == 1 and prf.DatasetMeta(out).total_episodes == 13
    # no temporary folder is left (the append's flock file .out.prf-lock stays, as lock files do)
    assert [q for q in tmp_path.iterdir() if ".prf-tmp-" in q.name or ".prf-old-" in q.name] == []


# ---- append: revisions and lock -----------------------------------------------------------------
def test_append_revisions_and_lock(tmp_path):
    dst = tmp_path / "dst"
    shutil.copytree(PUSHT30, dst)
    old_files = _tree_digest(dst)
    r1 = prf.append_episodes(dst, PUSHT21, episodes=[0, 1], progress=False)
    r2 = prf.append_episodes(dst, PUSHT21, episodes=[2], progress=False)
    assert (r1["revision"], r1["episodes"], r2["revision"], r2["episodes"]) == (1, [24, 26], 2, [26, 27])
    now = _tree_digest(dst)
    changed = [k for k, v in old_files.items() if now.get(k) != v]
    assert sorted(changed) == ["meta/info.json", "meta/stats.json", "meta/tasks.parquet"]  # no shard rewritten
    assert [r["revision"] for r in prf.edit.revisions(dst)] == [1, 2]
    for rev, n in [(0, 24), (1, 26), (2, 27)]:
        ds = prf.edit.open_revision(dst, rev)
        assert len(ds.episodes) == n
    ds0 = prf.edit.open_revision(dst, 0)
    src = prf.open_dataset(PUSHT30)
    assert len(ds0) == len(src)
    np.testing.assert_allclose(ds0.stats()["action"]["mean"], src.stats()["action"]["mean"], rtol=1e-9)
    with pytest.raises(EditError, match="no revision 5"):
        prf.edit.open_revision(dst, 5)
    # a second writer is refused while the first holds the lock
    with prf.edit.dataset_lock(dst):
        with pytest.raises(EditError, match="locked by another writer"):
            prf.append_episodes(dst, PUSHT21, episodes=[3], progress=False)
    assert prf.DatasetMeta(dst).total_episodes == 27
    with pytest.raises(EditError, match="fps"):
        prf.append_episodes(dst, SO101, progress=False)


def test_append_stats_equal_a_fresh_aggregation(cases):
    from prf.stats import aggregate_stats, read_episode_stats

    root = cases["append_pusht"][0]
    per = read_episode_stats(prf.DatasetMeta(root))
    agg = aggregate_stats(list(per.values()))
    stored = json.loads((root / "meta" / "stats.json").read_text())
    # the old part comes from LeRobot's stats.json (its std was computed in float32): 1e-6, not exact
    for k in ("action", "observation.state", "next.reward"):
        np.testing.assert_allclose(stored[k]["mean"], agg[k]["mean"], rtol=1e-6)
        np.testing.assert_allclose(stored[k]["std"], agg[k]["std"], rtol=1e-6)
        assert stored[k]["count"] == agg[k]["count"].tolist()


# ---- export ---------------------------------------------------------------------------------------
def test_export_episode(tmp_path):
    calls = []
    res = prf.export_episodes(ALOHA, tmp_path / "x", [3, 4], progress=lambda *a: calls.append(a))
    assert res["exported"] == [3, 4] and not res["failed"] and [c[:3] for c in calls] == [(1, 2, 3), (2, 2, 4)]
    d = tmp_path / "x" / "episode_000004"
    meta = json.loads((d / "metadata.json").read_text())
    src = prf.open_dataset(ALOHA, episodes=[4])
    assert meta["episode"] == 4 and meta["length"] == len(src) and meta["tasks"] == list(src.meta.episodes[4].tasks)
    s = np.load(d / "sensors.npz")
    a = np.load(d / "actions.npz")
    assert np.array_equal(s["observation.state"], src.column("observation.state"))
    assert np.array_equal(a["action"], src.column("action"))
    assert np.array_equal(s["timestamps_ns"], np.round(src.column("timestamp").astype(np.float64) * 1e9).astype(np.int64))
    from prf.decode import PyAVBackend

    be = PyAVBackend()
    for key in src.meta.video_keys:
        f = d / meta["cameras"][key]["file"]
        frames, _ = be.decode(str(f), np.arange(len(src)) / src.fps)
        ref = src.get_batch(list(range(len(src))))[key]
        assert np.array_equal(frames, ref), key


def test_export_hevc_episode_starting_inside_a_gop(cases, tmp_path):
    """HEVC (no prf encoder): the trimmed mp4 starts at the GOP's keyframe; metadata.json says how many
    frames lead the episode and where its first frame is; from there the frames are the source's."""
    if "delete_odd_hevc" not in cases:
        pytest.skip("this PyAV build has no libx265")
    hevc = cases["delete_odd_hevc"][1][0][0]
    prf.export_episodes(hevc, tmp_path / "x", [1], progress=False)  # episode 1: frames 11..18, GOP at 8
    d = tmp_path / "x" / "episode_000001"
    cam = json.loads((d / "metadata.json").read_text())["cameras"]["observation.images.cam"]
    assert cam["reencoded_frames"] == 0 and cam["leading_frames"] == 3
    assert cam["first_frame_time_s"] == pytest.approx(0.3)
    from prf.decode import PyAVBackend

    src = prf.open_dataset(hevc, episodes=[1])
    frames, _ = PyAVBackend().decode(str(d / cam["file"]), 0.3 + np.arange(len(src)) / src.fps)
    assert np.array_equal(frames, src.get_batch(list(range(len(src))))["observation.images.cam"])


def test_open_gop_hevc_delete(tmp_path):
    """Open-GOP HEVC (x265's default): the output's first packet, a keyframe whose source dts lies
    frames before its pts, gets a dts one frame before the next packet's, so the stream keeps its fps
    (prf's reader checks it against info.json) and every frame is the source's."""
    import av

    from _edit_cases import _src, odd_hevc_dataset

    if "libx265" not in av.codecs_available:
        pytest.skip("this PyAV build has no libx265")
    src = odd_hevc_dataset(tmp_path / "open", open_gop=True)
    r = prf.delete_episodes(src, tmp_path / "d", [0], progress=False)
    assert r["reencoded_frames"] == 0 and r["padded_frames"] == 1, r  # episode 1 starts at frame 11, GOP 10
    out = tmp_path / "d"
    mp4 = next((out / "videos").rglob("*.mp4"))
    with av.open(str(mp4)) as c:
        assert float(c.streams.video[0].average_rate) == pytest.approx(10, rel=1e-3)
    n = prf.DatasetMeta(out).total_frames
    got = prf.open_dataset(out).get_batch(list(range(n)))
    compare(got, expected(out, _src(src, [1, 2, 3, 4]), list(range(n))), ["observation.images.cam"], False, "open")


def test_export_outcomes_and_errors(tmp_path):
    res = prf.export_episodes(PUSHT21, tmp_path / "x", [2], progress=False)
    meta = json.loads((tmp_path / "x" / "episode_000002" / "metadata.json").read_text())
    ds = prf.open_dataset(PUSHT21, episodes=[2])
    assert meta["outcomes"]["next.reward"]["sum"] == pytest.approx(float(ds.column("next.reward").sum()))
    assert meta["outcomes"]["next.success"]["any"] == bool(ds.column("next.success").any())
    # an episode whose files are missing fails alone; the others are exported
    res = prf.export_episodes(G1, tmp_path / "g", [0, 1, 2], progress=False)
    assert res["exported"] == [1, 2] and list(res["failed"]) == [0]
    with pytest.raises(MissingFilesError):
        prf.export_episodes(G1, tmp_path / "g2", [0, 1], stop_on_error=True, progress=False)


# ---- compact writes -----------------------------------------------------------------------------
def test_compact_write_is_smaller_and_equal(cases):
    plain = cases["delete_aloha"][0]
    tmp = plain.parent / "compact_same_episodes"
    prf.delete_episodes(ALOHA, tmp, [0, 5], compact=True, progress=False)
    a = pq.read_table(plain / "data" / "chunk-000" / "file-000.parquet")
    b = pq.read_table(tmp / "data" / "chunk-000" / "file-000.parquet")
    assert a.equals(b.cast(a.schema))
    col = pq.ParquetFile(tmp / "data" / "chunk-000" / "file-000.parquet").metadata.row_group(0)
    encs = {col.column(i).path_in_schema: col.column(i).encodings for i in range(col.num_columns)}
    assert "BYTE_STREAM_SPLIT" in encs["action.list.element"]
    assert (tmp / "data" / "chunk-000" / "file-000.parquet").stat().st_size < \
        (plain / "data" / "chunk-000" / "file-000.parquet").stat().st_size


# ---- CLI -----------------------------------------------------------------------------------------
def _prf(*args):
    return subprocess.run([sys.executable, "-m", "prf.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_cli(tmp_path):
    r = _prf("edit", "delete", SO101, tmp_path / "d", "--episodes", "1,5", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["episodes"] == 4 and prf.DatasetMeta(tmp_path / "d").total_episodes == 4
    r = _prf("edit", "delete", SO101, tmp_path / "d2", "--episodes", "1,99", "--quiet")
    assert r.returncode == 1 and "unknown episode(s) [99]" in r.stderr and not (tmp_path / "d2").exists()
    r = _prf("edit", "split", SO101, tmp_path / "s", "--fractions", "train=0.5,val=0.5", "--seed", "0", "--json",
             "--quiet")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["train", "val"]
    r = _prf("edit", "merge", tmp_path / "m", tmp_path / "s" / "train", tmp_path / "s" / "val", "--quiet")
    assert r.returncode == 0 and prf.DatasetMeta(tmp_path / "m").total_episodes == 6
    r = _prf("edit", "merge", tmp_path / "m2", SO101, PUSHT30, "--quiet")
    assert r.returncode == 1 and "fps" in r.stderr
    r = _prf("edit", "append", tmp_path / "m", tmp_path / "d", "--json", "--quiet")
    assert r.returncode == 0 and json.loads(r.stdout)["revision"] == 1
    r = _prf("upgrade", PUSHT21, tmp_path / "u", "--quiet")
    assert r.returncode == 0 and prf.DatasetMeta(tmp_path / "u").is_v3
    r = _prf("export", PUSHT30, "--episode", "3", tmp_path / "x", "--quiet", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["exported"] == [3]
    assert _prf("edit", "delete", SO101).returncode == 2
    assert _prf("edit", "split", SO101, tmp_path / "s3", "--fractions", "train").returncode == 2
