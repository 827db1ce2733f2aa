"""prf.ray.read_dataset on a real local Ray cluster (``ray start --head`` on 127.0.0.1, 2 CPUs): rows equal
prf's own samples (``ds.get_batch``) and LeRobot's oracle samples on the shared datasets (v2.1 and
v3.0, windows and ``*_is_pad``), read tasks aligned to the video files with every frame decoded once,
a streamed remote source (HTTP range server on 127.0.0.1), ``iter_torch_batches`` and the
``streaming_split`` sharding Ray Train's DataConfig uses."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

import prf
from _ray_cluster import ray_or_skip, shared_cluster
from conftest import LEROBOT, ORACLE_DATASETS, dataset_path  # noqa: I001

ray = ray_or_skip()
import prf.ray  # noqa: E402
from prf.ray._source import _units, read_group  # noqa: E402


@pytest.fixture(scope="module")
def cluster(request):
    yield from shared_cluster(request.config)


def _oracle(name):
    root = dataset_path(name)
    oj = json.loads((root / "oracle.json").read_text())
    return root, oj, np.load(root / "oracle.npz")


def _collect(rds) -> dict[str, np.ndarray]:
    """All rows of a Ray dataset as ``{key: array}`` sorted by ``index`` (Ray may reorder blocks)."""
    parts: dict[str, list] = {}
    for b in rds.iter_batches(batch_size=None, batch_format="numpy"):
        for k, v in b.items():
            parts.setdefault(k, []).append(v)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.argsort(out["index"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def _assert_equal_to_prf(got, want, cameras, positions=None):
    for k, ref in want.items():
        g = got[k] if positions is None else got[k][positions]
        if k == "task":
            assert [str(x) for x in g] == list(ref), k
            continue
        ref = np.asarray(ref)
        assert g.dtype == ref.dtype and g.shape == ref.shape, (k, g.dtype, ref.dtype, g.shape, ref.shape)
        assert np.array_equal(g, ref), k


@pytest.mark.parametrize("name", [d for d in ORACLE_DATASETS if d != "pusht_sim_v21"])  # v2.1: g1
def test_rows_equal_prf_and_lerobot(cluster, name):
    """Every row equals prf's sample at the same position (the non-camera arrays of every row; the
    frames of the oracle's rows, kept by a map_batches fused into the read tasks, which decode every
    frame) and LeRobot's oracle sample (frames within the README tolerance, the largest difference
    printed)."""
    root, oj, o = _oracle(name)
    opts = dict(delta_timestamps=oj["delta_timestamps"], episodes=oj.get("episodes_filter"))
    ds = prf.open_dataset(root, **opts)
    no_cam = prf.open_dataset(root, cameras=[], **opts)
    got = _collect(prf.ray.read_dataset(root, cameras=[], **opts))
    assert len(got["index"]) == len(ds)
    _assert_equal_to_prf(got, no_cam.get_batch(np.arange(len(ds))), [])  # row i (by index) is ds[i]
    idx = o["indices"]
    keep = ds.column("index")[idx]
    rds = prf.ray.read_dataset(root, **opts).map_batches(
        lambda b: {k: v[np.isin(b["index"], keep)] for k, v in b.items()}, batch_format="numpy", batch_size=None)
    got = _collect(rds)
    assert set(got) == set(ds[0]) and np.array_equal(got["index"], np.sort(keep))
    order = np.searchsorted(got["index"], keep)  # the oracle's order (its indices may repeat)
    got = {k: v[order] for k, v in got.items()}
    want = ds.get_batch(idx)
    _assert_equal_to_prf(got, want, ds.cameras)
    checked = 0
    for key in o.files:
        if key in ("indices", "dataset_position") or "@" in key or key.startswith("lerobot0"):
            continue
        g = got[key]
        if key == "task":
            assert [str(x) for x in g] == o[key].tolist()
        elif key in ds.cameras:
            diff = np.abs(g.transpose(0, 1, 4, 2, 3).astype(np.int16) - o[key].astype(np.int16))
            print(f"{name} {key}: max |diff| vs LeRobot {int(diff.max())}")
            assert diff.max() <= 8 and diff.reshape(-1, diff[0, 0].size).mean(1).max() <= 0.5
        else:
            assert g.dtype == o[key].dtype and np.array_equal(g, o[key]), key
        checked += 1
    assert checked >= 10


def test_tasks_aligned_to_video_files(monkeypatch):
    """A unit boundary is a video boundary of every camera: its file changes or the episode starts on a
    keyframe (LeRobot's shards: every episode); without keyframe starts, units are the episodes
    sharing files; v2.1: one episode per unit. Read tasks pack whole units."""
    import prf.ray._source as src

    ds = prf.open_dataset(dataset_path("aloha_multicam_v30"))
    table = ds.meta.episode_table
    units = _units(ds)
    assert [u for u, _ in units] == [[e] for e in ds.episodes]  # every episode starts on a keyframe here
    monkeypatch.setattr(src, "_starts_on_keyframe", lambda *a: False)
    both = prf.open_dataset(dataset_path("aloha_multicam_v30"), cameras=["observation.images.top",
                                                                         "observation.images.angle"])
    assert len(_units(both)) == 1  # their 3 and 2 files never change at the same episode
    ds = prf.open_dataset(dataset_path("aloha_multicam_v30"), cameras=["observation.images.top"])
    units = _units(ds)
    assert sum(n for _, n in units) == len(ds) and [e for u, _ in units for e in u] == ds.episodes
    for (a, _), (b, _) in zip(units, units[1:]):  # every camera changes file between units
        for cam in ds.video_cameras:
            fa, fb = table.video_file[cam][table.ordinals([a[-1], b[0]])].tolist()
            assert fa != fb, (a, b, cam)
    assert 1 < len(units) < len(ds.episodes)
    v21 = prf.open_dataset(dataset_path("pusht_sim_v21"))
    assert [u for u, _ in _units(v21)] == [[e] for e in v21.episodes]
    packed = src._pack(units, 2)
    assert len(packed) == 2 and [e for g, _ in packed for e in g] == ds.episodes


def test_read_task_decodes_each_frame_once():
    """A read task with a backward-and-forward window decodes every frame it needs exactly once
    (blocks of 7 rows: windows cross block boundaries) and its rows equal prf's get_batch."""
    root, oj, _ = _oracle("pusht_sim_v30")
    dts = {"observation.image": [-0.3, -0.1, 0.0, 0.2], "action": [0.0, 0.1]}
    ds = prf.open_dataset(root, delta_timestamps=dts, episodes=[3, 4])
    stats = {}
    blocks = list(read_group(str(root), [3, 4], {"delta_timestamps": dts}, 7, stats))
    from ray.data.block import BlockAccessor

    rows = {}
    for b in blocks:
        for k, v in BlockAccessor.for_block(b).to_batch_format("numpy").items():
            rows.setdefault(k, []).append(v)
    rows = {k: np.concatenate(v) for k, v in rows.items()}
    want = ds.get_batch(np.arange(len(ds)))
    _assert_equal_to_prf(rows, want, ds.cameras)
    plan = ds.plan(np.arange(len(ds)))
    needed = {p: np.unique(f).size for p, f in plan.requests()}
    assert stats["decoded"] == needed and stats["rows"] == len(ds)


def test_iter_torch_batches(cluster):
    torch = pytest.importorskip("torch")
    root = dataset_path("aloha_multicam_v30")
    dts = {"observation.images.top": [-1 / 30, 0.0], "action": [0.0, 1 / 30, 2 / 30]}
    rds = prf.ray.read_dataset(root, episodes=[0, 5], delta_timestamps=dts, cameras=["observation.images.top"],
                               columns=["index", "observation.images.top", "action", "action_is_pad"])
    ds = prf.open_dataset(root, episodes=[0, 5], delta_timestamps=dts, cameras=["observation.images.top"])
    seen = 0
    for b in rds.iter_torch_batches(batch_size=32):
        cam = b["observation.images.top"]
        assert cam.dtype == torch.uint8 and tuple(cam.shape[1:]) == (2, 240, 320, 3)
        assert b["action"].dtype == torch.float32 and tuple(b["action"].shape[1:]) == (3, 14)
        assert b["action_is_pad"].dtype == torch.bool
        pos = b["index"].numpy()  # episodes 0 and 5: positions found from the global index
        ref = ds.get_batch(np.searchsorted(ds.column("index"), pos))
        assert np.array_equal(cam.numpy(), ref["observation.images.top"])
        assert np.array_equal(b["action"].numpy(), ref["action"])
        seen += len(pos)
    assert seen == len(ds)


def test_streaming_split_shards(cluster):
    """``streaming_split`` (what Ray Train's DataConfig gives each worker): the shards are disjoint and
    together hold every row once."""
    root = dataset_path("pusht_sim_v30")
    rds = prf.ray.read_dataset(root, cameras=[], episodes=range(8))
    shards = rds.streaming_split(2, equal=False)
    got: list[list[int]] = [[], []]

    def consume(k):
        for b in shards[k].iter_batches(batch_size=64, batch_format="numpy"):
            got[k] += b["index"].tolist()

    threads = [threading.Thread(target=consume, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ds = prf.open_dataset(root, cameras=[], episodes=range(8))
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == ds.column("index").tolist()


def test_preserve_order_gives_dataset_order(cluster):
    from ray.data import DataContext

    ctx = DataContext.get_current()
    old = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        root = dataset_path("pusht_sim_v30")
        rds = prf.ray.read_dataset(root, cameras=[], rows_per_block=50, override_num_blocks=6)
        got = [i for b in rds.iter_batches(batch_size=None, batch_format="numpy") for i in b["index"].tolist()]
    finally:
        ctx.execution_options.preserve_order = old
    assert got == prf.open_dataset(root, cameras=[]).column("index").tolist()


def test_read_worker_killed_mid_task_is_retried(cluster, tmp_path):
    """Every read task's worker is SIGKILLed once after its first block: Ray reruns the task and the
    dataset's rows are still each sample once, equal to prf's."""
    import ray.cloudpickle

    import _ray_faults

    markers = tmp_path / "markers"
    markers.mkdir()
    root = dataset_path("pusht_sim_v30")
    dts = {"observation.image": [-0.1, 0.0]}
    ray.cloudpickle.register_pickle_by_value(_ray_faults)
    ray.shutdown()
    cluster.connect(runtime_env={"worker_process_setup_hook": _ray_faults.kill_read_once_hook(str(markers))})
    try:
        got = _collect(prf.ray.read_dataset(root, episodes=[0, 1, 2], delta_timestamps=dts, rows_per_block=40))
    finally:
        ray.shutdown()
        cluster.connect()
    assert len(list(markers.iterdir())) == 3  # every task (one per episode) was killed once
    ds = prf.open_dataset(root, episodes=[0, 1, 2], delta_timestamps=dts)
    assert np.array_equal(got["index"], ds.column("index"))  # each row once
    _assert_equal_to_prf(got, ds.get_batch(np.arange(len(ds))), ds.cameras)


@pytest.mark.parametrize("name", ["pusht_sim_v30", "pusht_sim_v21"])
def test_streamed_remote_source(cluster, name):
    """A dataset on an HTTP server (byte ranges, 127.0.0.1): each task streams its own episodes."""
    from _range_server import RangeServer

    root, oj, o = _oracle(name)
    with RangeServer(LEROBOT) as srv:
        rds = prf.ray.read_dataset(f"{srv.url}/{name}", streaming=True, delta_timestamps=oj["delta_timestamps"],
                                   episodes=[0, 1, 2])
        got = _collect(rds)
    ds = prf.open_dataset(root, delta_timestamps=oj["delta_timestamps"], episodes=[0, 1, 2])
    _assert_equal_to_prf(got, ds.get_batch(np.arange(len(ds))), ds.cameras)


def test_concurrent_streamed_opens(tmp_path):
    """Processes opening the same streamed URL at once (read tasks on one node) share one meta/ mirror:
    each refreshes it under a lock, so none reads another's half-fetched files."""
    import subprocess
    import sys

    from _range_server import RangeServer

    code = ("import sys, prf\n"
            "for _ in range(6): assert len(prf.open_dataset(sys.argv[1], streaming=True, cameras=[])) == 3850\n")
    with RangeServer(LEROBOT) as srv:
        env = dict(__import__("os").environ, PRF_CACHE=str(tmp_path / "cache"))
        procs = [subprocess.Popen([sys.executable, "-c", code, f"{srv.url}/pusht_sim_v30"], env=env,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e[-800:] for e in errors]


def test_import_needs_no_ray():
    """``import prf`` and ``import prf.ray`` (and building the CLI parser with its --ray flags) import no Ray."""
    import subprocess
    import sys

    code = ("import sys, prf, prf.ray, prf.cli; prf.cli.build_parser(); "
            "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray'))")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_open_dataset_as_source(cluster):
    """An open prf.Dataset: its episodes, windows and cameras are used; other options are refused."""
    root = dataset_path("pusht_sim_v30")
    ds = prf.open_dataset(root, episodes=[2, 5], delta_timestamps={"action": [0.0, 0.1]}, cameras=[])
    got = _collect(prf.ray.read_dataset(ds))
    _assert_equal_to_prf(got, ds.get_batch(np.arange(len(ds))), [])
    with pytest.raises(TypeError):
        prf.ray.read_dataset(ds, episodes=[1])
    with pytest.raises(KeyError, match="nope"):
        prf.ray.read_dataset(root, columns=["index", "nope"])


def test_bad_source_fails_on_the_driver(cluster, tmp_path):
    with pytest.raises(prf.errors.MetadataError):
        prf.ray.read_dataset(tmp_path / "nope")
    with pytest.raises(prf.errors.DeltaTimestampsError):
        prf.ray.read_dataset(dataset_path("pusht_sim_v30"), delta_timestamps={"action": [0.05]})


def test_ray_train_torch_trainer(cluster, tmp_path):
    """The README recipe: a TorchTrainer gets the dataset through ``datasets={"train": ...}`` and each
    epoch's shard holds every sample once (one worker), with prf's values; a tiny model trains on it."""
    pytest.importorskip("torch")
    import ray.train
    from ray.train.torch import TorchTrainer

    root = dataset_path("pusht_sim_v30")
    dts = {"observation.image": [-0.1, 0.0], "action": [0.0, 0.1, 0.2]}
    cols = ["index", "observation.image", "observation.state", "action", "action_is_pad"]
    train = prf.ray.read_dataset(root, episodes=[0, 1], delta_timestamps=dts, columns=cols)
    ds = prf.open_dataset(root, episodes=[0, 1], delta_timestamps=dts, cameras=[])
    want_action_sum = float(ds.get_batch(np.arange(len(ds)))["action"].astype(np.float64).sum())

    def loop(config):
        import torch

        shard = ray.train.get_dataset_shard("train")
        model = torch.nn.Linear(2, 6)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        for epoch in range(2):
            rows, index_sum, action_sum = 0, 0, 0.0
            for b in shard.iter_torch_batches(batch_size=32):
                assert b["observation.image"].dtype == torch.uint8 and b["observation.image"].shape[1:] == (2, 96, 96, 3)
                loss = torch.nn.functional.mse_loss(model(b["observation.state"]), b["action"].reshape(-1, 6))
                opt.zero_grad()
                loss.backward()
                opt.step()
                rows += len(b["index"])
                index_sum += int(b["index"].sum())
                action_sum += float(b["action"].double().sum())
            metrics = {"epoch": epoch, "rows": rows, "index_sum": index_sum, "action_sum": action_sum}
            (Path(config["out"]) / f"epoch{epoch}.json").write_text(json.dumps(metrics))  # the same machine
            ray.train.report(metrics)

    TorchTrainer(loop, datasets={"train": train}, train_loop_config={"out": str(tmp_path)},
                 scaling_config=ray.train.ScalingConfig(num_workers=1, use_gpu=False),
                 run_config=ray.train.RunConfig(storage_path=str(tmp_path / "train"), name="prf")).fit()
    for epoch in range(2):
        m = json.loads((tmp_path / f"epoch{epoch}.json").read_text())
        assert m["rows"] == len(ds) and m["index_sum"] == int(ds.column("index").sum())
        assert abs(m["action_sum"] - want_action_sum) < 1e-3 * max(1.0, abs(want_action_sum))
