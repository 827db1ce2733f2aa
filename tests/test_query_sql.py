"""SQL over datasets (prf.sql, prf query): views read the parquet files in place and agree with the
metadata and with NumPy over the same rows; several datasets in one query; converted logs; typed errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("duckdb")

import prf
from prf.errors import QueryError
from prf.query import resolve_episodes

from conftest import DATASETS, REPO, SHARED_DATA, dataset_path


def _numpy_frames(root, keys):
    """Every frame row of the dataset's present data files, read with pyarrow (no DuckDB)."""
    meta = prf.DatasetMeta(root)
    files = sorted({meta.path(e.data_path) for e in meta.episodes.values() if meta.path(e.data_path).is_file()})
    tables = [pq.read_table(f, columns=keys) for f in files]
    out = {}
    for k in keys:
        parts = []
        for t in tables:
            col = t.column(k).combine_chunks()
            if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
                parts.append(np.asarray(col.to_pylist(), dtype=np.float64))
            else:
                parts.append(col.to_numpy(zero_copy_only=False))
        out[k] = np.concatenate(parts)
    return out


@pytest.mark.parametrize("name", DATASETS)
def test_frame_counts_equal_episodes_table(name):
    root = dataset_path(name)
    meta = prf.DatasetMeta(root)
    t = prf.sql(root, """
        SELECT e.episode_index, e.length, e.files_present, count(f.index) AS n,
               min(f.index) AS lo, max(f.index) AS hi, e.dataset_from_index, e.dataset_to_index
        FROM episodes e LEFT JOIN frames f USING (episode_index)
        GROUP BY ALL ORDER BY e.episode_index""").to_pylist()
    assert [r["episode_index"] for r in t] == list(meta.episodes)
    present = [r for r in t if r["files_present"]]
    assert present, name
    for r in present:
        assert r["n"] == r["length"] == meta.episodes[r["episode_index"]].length, r
        assert (r["lo"], r["hi"] + 1) == (r["dataset_from_index"], r["dataset_to_index"]), r
    for r in t:
        if not r["files_present"]:
            assert r["n"] == 0
    if name == "g1_cam_high_v21_subset":  # a partial download: only episodes 1 and 2 have files
        assert [r["episode_index"] for r in present] == [1, 2] and len(t) == 100
    # the frames view has no camera column, every other column
    cols = prf.sql(root, "SELECT * FROM frames LIMIT 0").column_names
    assert not set(cols) & set(meta.camera_keys)
    assert {"timestamp", "frame_index", "episode_index", "index", "task_index", "action"} <= set(cols)


def test_root_with_glob_characters(tmp_path):
    """A dataset folder named like ``run[1]*`` (glob characters): the views read its files, not a
    pattern that matches nothing."""
    import shutil

    root = tmp_path / "run[1]*" / "rebot"
    shutil.copytree(dataset_path("rebot_novideo_v30"), root)
    meta = prf.DatasetMeta(root)
    t = prf.sql(root, "SELECT count(*) AS e, sum(length) AS n FROM episodes").to_pylist()[0]
    assert t == {"e": meta.total_episodes, "n": meta.total_frames}
    assert prf.sql(root, "SELECT count(*) AS n FROM frames").to_pylist()[0]["n"] == meta.total_frames


@pytest.mark.parametrize("name", DATASETS)
def test_per_episode_means_equal_numpy(name):
    root = dataset_path(name)
    meta = prf.DatasetMeta(root)
    dims = meta.features["action"].shape[0]
    sel = ", ".join(f"avg(action[{i + 1}]) AS a{i}, avg(\"observation.state\"[{i + 1}]) AS s{i}" for i in range(dims))
    got = prf.sql(root, f"SELECT episode_index, avg(timestamp) AS t, {sel} FROM frames GROUP BY 1 ORDER BY 1").to_pylist()
    f = _numpy_frames(root, ["episode_index", "timestamp", "action", "observation.state"])
    eps = np.unique(f["episode_index"])
    assert [r["episode_index"] for r in got] == eps.tolist()
    for r in got:
        m = f["episode_index"] == r["episode_index"]
        np.testing.assert_allclose([r[f"a{i}"] for i in range(dims)], f["action"][m].astype(np.float64).mean(0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose([r[f"s{i}"] for i in range(dims)], f["observation.state"][m].astype(np.float64).mean(0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r["t"], f["timestamp"][m].astype(np.float64).mean(), rtol=1e-9)


def test_query_selected_dataset_has_exactly_those_episodes():
    root = dataset_path("aloha_multicam_v30")
    q = "SELECT episode_index FROM episodes WHERE length > 150 AND list_contains(tasks, (SELECT task FROM tasks WHERE task_index = 0))"
    chosen = resolve_episodes(root, q)
    meta = prf.DatasetMeta(root)
    want = sorted(e for e, ep in meta.episodes.items() if ep.length > 150 and meta.tasks[0] in ep.tasks)
    assert chosen == want and 0 < len(want) < len(meta.episodes)
    ds = prf.open_dataset(root, episodes=chosen, cameras=[])
    assert list(ds.episodes) == want
    assert len(ds) == sum(meta.episodes[e].length for e in want)
    seen = {int(ds[i]["episode_index"]) for i in range(0, len(ds), 7)} | {int(ds[len(ds) - 1]["episode_index"])}
    assert seen == set(want)
    # a result table (its episode_index column) and a plain list select the same
    assert resolve_episodes(root, prf.sql(root, q.replace("episode_index", "length, episode_index", 1))) == want
    assert resolve_episodes(root, [3, 1]) == [3, 1]
    with pytest.raises(QueryError, match="episode_index"):
        resolve_episodes(root, "SELECT length, dataset_from_index FROM episodes")
    with pytest.raises(QueryError, match="not an episode index"):
        resolve_episodes(root, "SELECT 1.5")


def test_two_dataset_join():
    a, b = dataset_path("pusht_sim_v30"), dataset_path("pusht_sim_v21")
    r = prf.sql({"a": a, "b": b}, """
        SELECT count(*) AS n, sum((x.action = y.action)::INT) AS same_action,
               sum((x."observation.state" = y."observation.state")::INT) AS same_state,
               (SELECT count(*) FROM a.episodes) AS ea, (SELECT count(*) FROM b.episodes) AS eb
        FROM a.frames x JOIN b.frames y ON x.episode_index = y.episode_index AND x.frame_index = y.frame_index
        """).to_pylist()[0]
    assert r == {"n": 3850, "same_action": 3850, "same_state": 3850, "ea": 24, "eb": 24}
    # different datasets: the join on a key they do not share is empty; schema names are checked
    so, al = dataset_path("so101_wrist_v30"), dataset_path("aloha_multicam_v30")
    n = prf.sql({"so": so, "al": al}, "SELECT (SELECT count(*) FROM so.frames) AS s, (SELECT count(*) FROM al.frames) AS l").to_pylist()[0]
    assert n == {"s": 1782, "l": 2126}
    with pytest.raises(QueryError, match="identifier"):
        prf.sql({"a-b": so}, "SELECT 1")


def test_sql_error_is_typed_and_carries_duckdb_message():
    root = dataset_path("so101_wrist_v30")
    with pytest.raises(QueryError) as e:
        prf.sql(root, "SELECT no_such_column FROM frames")
    assert "no_such_column" in e.value.duckdb_message and str(root) in str(e.value)
    assert isinstance(e.value, prf.PrfError)
    with pytest.raises(QueryError):
        prf.sql(root, "   ")
    with pytest.raises(prf.errors.MetadataError, match="neither a LeRobot dataset"):
        prf.sql(REPO / "tests", "SELECT 1")


def test_converted_log_one_view_per_topic(tmp_path):
    pytest.importorskip("rosbags")
    bag = SHARED_DATA / "ros1bag" / "turtlesim_rosbagjs" / "fixtures" / "example.bag"
    out = tmp_path / "log"
    report = prf.convert_log(bag, out, progress=False)
    topics = prf.sql(out, "SELECT topic, view, count FROM topics ORDER BY topic").to_pylist()
    assert {t["topic"] for t in topics} == {n for n, t in report.topics.items() if t.file}
    for t in topics:
        n = prf.sql(out, f'SELECT count(*) AS n FROM "{t["view"]}"').column("n")[0].as_py()
        assert n == report.topics[t["topic"]].written == t["count"]
    assert any(t["view"] == "turtle1_cmd_vel" for t in topics)
    # a log and a dataset in one query
    r = prf.sql({"log": out, "ds": dataset_path("rebot_novideo_v30")},
                "SELECT (SELECT count(*) FROM log.turtle1_cmd_vel) AS c, (SELECT count(*) FROM ds.frames) AS f").to_pylist()
    assert r[0]["f"] == 871 and r[0]["c"] == report.topics["/turtle1/cmd_vel"].written


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "prf.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_cli_query_json_and_csv():
    root = str(dataset_path("pusht_sim_v30"))
    r = _cli("query", root, "SELECT episode_index, count(*) AS n FROM frames GROUP BY 1 ORDER BY 1", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    meta = prf.DatasetMeta(root)
    assert rows == [{"episode_index": e, "n": ep.length} for e, ep in meta.episodes.items()]
    r = _cli("query", root, "SELECT episode_index, tasks FROM episodes WHERE episode_index < 2 ORDER BY 1", "--csv")
    assert r.returncode == 0 and r.stdout.splitlines() == [
        "episode_index,tasks", f'0,"[""{meta.tasks[0]}""]"', f'1,"[""{meta.tasks[0]}""]"']
    r = _cli("query", root, "SELEC 1", "--json")
    assert r.returncode == 1 and "Parser Error" in r.stderr and r.stdout == ""
    assert _cli("query", root, "SELECT 1", "--json", "--csv").returncode == 2
