"""prf.ray bulk jobs on a real local Ray cluster (127.0.0.1, 2 CPUs): outputs equal the single-process
path's (per topic: files, row counts and values; the same v3.0 dataset read back; the same scores),
episodes in sorted path order whatever the scheduling, a worker killed (SIGKILL) mid-job retried by
Ray with the output complete and nothing duplicated, and ``--ray`` on ``prf convert`` / ``prf score``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import _logs
import prf
from _ray_cluster import ray_or_skip, shared_cluster
from conftest import SHARED_DATA, dataset_path

ray = ray_or_skip()
import prf.ray  # noqa: E402

FPS = 20
LERO = dict(fps=FPS, state=["/joint_states/position"], action=["/cmd_vel/linear.x"],
            cameras={"observation.images.cam": "/camera/compressed"}, task="reach")


@pytest.fixture(scope="module")
def cluster(request):
    yield from shared_cluster(request.config)


@pytest.fixture(scope="module")
def logs(module_tmp):
    """Three generated robot logs of different lengths (a ROS 2 bag folder, a ROS 1 bag, an MCAP) and
    the shared MCAP logs."""
    d = module_tmp("logs")
    _logs.write_ros2_bag(d / "c_ros2", "mcap", n_joint=60, n_image=20)
    _logs.write_ros1_bag(d / "a_ros1.bag", "lz4", n_joint=40, n_image=14)
    _logs.write_ros2_bag(d / "b_sqlite", "sqlite3", n_joint=80, n_image=26)
    shared = [SHARED_DATA / "mcap" / "lichtblick_json" / "example.mcap",
              SHARED_DATA / "mcap" / "lichtblick_json" / "example_logs.mcap"]
    return [d / "c_ros2", d / "a_ros1.bag", d / "b_sqlite"], shared


def _assert_same_conversion(a: Path, b: Path) -> None:
    """Two converted-log folders hold the same topics, files, rows and values."""
    ma, mb = (json.loads((p / "metadata.json").read_text()) for p in (a, b))
    assert ma["topics"] == mb["topics"]
    files = sorted(p.name for p in a.glob("*.parquet"))
    assert files == sorted(p.name for p in b.glob("*.parquet")) and files
    for f in files:
        ta, tb = pq.read_table(a / f), pq.read_table(b / f)
        assert ta.num_rows == tb.num_rows and ta.equals(tb), f
    assert json.loads((a / "stats.json").read_text()) == json.loads((b / "stats.json").read_text())


def _assert_same_dataset(a: Path, b: Path) -> None:
    """Two LeRobot datasets read back equal: metadata, every sample (frames bit-equal: the videos are
    the same streams, remuxed)."""
    da, db = prf.open_dataset(a), prf.open_dataset(b)
    assert da.meta.codebase_version == db.meta.codebase_version == "v3.0"
    assert len(da) == len(db) and da.episodes == db.episodes and da.meta.tasks == db.meta.tasks
    assert [e.length for e in da.meta.episodes.values()] == [e.length for e in db.meta.episodes.values()]
    ba, bb = da.get_batch(np.arange(len(da))), db.get_batch(np.arange(len(db)))
    for k in ba:
        if k == "task":
            assert list(ba[k]) == list(bb[k])
        else:
            assert np.array_equal(ba[k], bb[k]), k


def _single_lerobot(paths, out: Path) -> Path:
    """The single-process path: each log to a dataset (sorted path order), then merged."""
    parts = [prf.log_to_lerobot(p, out.parent / f"{out.name}-part{k}", progress=False, **LERO)
             for k, p in enumerate(sorted(paths, key=str))]
    return prf.merge_datasets(parts, out, progress=False) and out


def test_convert_logs_equal_single_process(cluster, logs, tmp_path):
    made, shared = logs
    paths = made + shared
    reports = prf.ray.convert_logs(paths, tmp_path / "out")
    assert [r.source for r in reports] == [str(p) for p in paths]
    for p, r in zip(paths, reports):
        name = p.name if p.is_dir() else p.stem
        single = prf.convert_log(p, tmp_path / "single" / name, progress=False)
        assert r.complete == single.complete and r.messages_written == single.messages_written > 0
        _assert_same_conversion(tmp_path / "out" / name, tmp_path / "single" / name)
    with pytest.raises(prf.errors.LogError, match="already exist"):
        prf.ray.convert_logs(paths[:1], tmp_path / "out")


def test_logs_to_lerobot_equal_single_process_in_path_order(cluster, logs, tmp_path):
    made, _ = logs
    shuffled = [made[2], made[0], made[1]]
    out = prf.ray.logs_to_lerobot(shuffled, tmp_path / "ds", **LERO)
    single = _single_lerobot(made, tmp_path / "single")
    _assert_same_dataset(out, single)
    ds = prf.open_dataset(out)
    # sorted path order: a_ros1 (40 joint msgs), b_sqlite (80), c_ros2 (60): lengths follow
    lengths = [e.length for e in ds.meta.episodes.values()]
    assert len(lengths) == 3 and lengths[1] > lengths[2] > lengths[0]
    assert not list(tmp_path.glob(".ds.prf-parts-*"))


def test_worker_killed_mid_job_is_retried(cluster, logs, tmp_path):
    """Each task's worker is SIGKILLed once (convert: before the rename that finishes its output, so
    its files are left in a temporary folder; logs_to_lerobot: after its part is written, before the
    task returns). Ray reruns each task; the outputs equal the single-process path's, with nothing
    left over or duplicated."""
    import ray.cloudpickle

    import _ray_faults

    made, _ = logs
    markers = tmp_path / "markers"
    markers.mkdir()
    ray.cloudpickle.register_pickle_by_value(_ray_faults)
    ray.shutdown()
    cluster.connect(runtime_env={"worker_process_setup_hook": _ray_faults.kill_once_hook(str(markers), str(tmp_path / "out"))})
    try:
        reports = prf.ray.convert_logs(made, tmp_path / "out")
        out = prf.ray.logs_to_lerobot(made, tmp_path / "ds", **LERO)
    finally:
        ray.shutdown()
        cluster.connect()
    assert len(list(markers.glob("convert-*"))) == 3 and len(list(markers.glob("lerobot-*"))) == 3  # all killed once
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name if p.is_dir() else p.stem for p in made)  # no temporary folder left
    for p, r in zip(made, reports):
        name = p.name if p.is_dir() else p.stem
        prf.convert_log(p, tmp_path / "single" / name, progress=False)
        assert r.complete
        _assert_same_conversion(tmp_path / "out" / name, tmp_path / "single" / name)
    _assert_same_dataset(out, _single_lerobot(made, tmp_path / "single_ds"))
    ds = prf.open_dataset(out)
    idx = ds.column("index")
    assert len(ds.episodes) == 3 and np.unique(idx).size == idx.size == len(ds)


def test_score_equal_single_process(cluster):
    sources = [dataset_path("pusht_sim_v30"), dataset_path("rebot_novideo_v30")]
    tables = prf.ray.score(sources, samples=4)
    for s, t in zip(sources, tables):
        assert t.equals(prf.score_episodes(s, samples=4)), s


def test_cli_ray_flags(cluster, logs, tmp_path, capsys):
    from prf.cli import main

    made, _ = logs
    address = cluster.address
    assert main(["convert", str(made[0]), str(made[1]), str(tmp_path / "out"), "--ray", address, "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in reports] == [str(made[0]), str(made[1])] and all(r["complete"] for r in reports)
    _assert_same_conversion(tmp_path / "out" / made[0].name,
                            Path(prf.convert_log(made[0], tmp_path / "single", progress=False).out_dir))
    assert main(["convert", str(made[0]), str(made[1]), str(tmp_path / "x")]) == 2  # several logs need --ray
    capsys.readouterr()
    sources = [str(dataset_path("pusht_sim_v30")), str(dataset_path("rebot_novideo_v30"))]
    assert main(["score", *sources, "--ray", address, "--json", "--no-cameras"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for s in sources:
        want = prf.score_episodes(s, cameras=[])
        mine = [r for r in rows if r["dataset"] == s]
        assert [r["episode_index"] for r in mine] == want.column("episode_index").to_pylist()
        assert [r["length"] for r in mine] == want.column("length").to_pylist()


def test_a_bad_log_is_named_and_the_others_are_written(cluster, logs, tmp_path):
    """A prf error in one task is not retried: after the job, one error names that log; the other logs'
    outputs are complete."""
    made, _ = logs
    bad = tmp_path / "broken.mcap"
    bad.write_bytes(b"not a log at all" * 64)
    with pytest.raises(prf.errors.PrfError, match="broken.mcap") as err:
        prf.ray.convert_logs([made[0], bad], tmp_path / "out")
    assert "1 of 2 task(s) failed" in str(err.value)
    _assert_same_conversion(tmp_path / "out" / made[0].name,
                            Path(prf.convert_log(made[0], tmp_path / "single", progress=False).out_dir))
    assert not (tmp_path / "out" / "broken").exists()
    from prf.cli import main

    assert main(["convert", str(tmp_path / "nope.mcap"), str(tmp_path / "o2"), "--ray", cluster.address]) == 1
