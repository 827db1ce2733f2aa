"""prf.ray on a real two-node Ray cluster started here: a head (``ray start --head``, 1 CPU) and a
second node joining it (``ray start --address=...``, 1 CPU, its own raylet and object store), both on
127.0.0.1. Read tasks run on both nodes and the rows still equal prf's samples; a streamed remote
source (HTTP range server on 127.0.0.1) is read by tasks on both nodes. (Separate machines, with a
local folder only at the same path on each, are not tested.)"""

from __future__ import annotations

import numpy as np
import pytest

import prf
from _ray_cluster import LocalCluster, ray_or_skip
from conftest import LEROBOT, dataset_path

ray = ray_or_skip()
import prf.ray  # noqa: E402


@pytest.fixture(scope="module")
def two_nodes():
    if ray.is_initialized():  # another module's shared cluster: this module uses its own
        ray.shutdown()
    cluster = LocalCluster(num_cpus=1)
    try:
        cluster.add_node(num_cpus=1)
        cluster.connect()
        cluster.wait_for_nodes(2)
        yield cluster
    finally:
        cluster.stop()


def _node_tagged(rds):
    """The rows with the id of the node whose task produced them (``node`` column)."""

    def tag(b):
        b["node"] = np.full(len(b["index"]), ray.get_runtime_context().get_node_id())
        return b

    parts: dict[str, list] = {}
    for b in rds.map_batches(tag, batch_format="numpy", batch_size=None).iter_batches(batch_format="numpy"):
        for k, v in b.items():
            parts.setdefault(k, []).append(v)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.argsort(out["index"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def _run_catching(fn, failed: list) -> None:
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - reported by the test
        failed.append(e)


def _assert_rows_equal(got, ds):
    want = ds.get_batch(np.arange(len(ds)))
    assert np.array_equal(got["index"], ds.column("index"))  # every row once
    for k, ref in want.items():
        if k == "task":
            assert [str(x) for x in got[k]] == list(ref)
        else:
            assert got[k].dtype == np.asarray(ref).dtype and np.array_equal(got[k], ref), k


def test_read_tasks_run_on_both_nodes(two_nodes):
    """One read task per episode group, spread by Ray over the two nodes' CPUs: rows from both nodes,
    each row equal to prf's sample at its index (cameras decoded on whichever node read them)."""
    root = dataset_path("pusht_sim_v30")
    dts = {"observation.image": [-0.1, 0.0], "action": [0.0, 0.1]}
    rds = prf.ray.read_dataset(root, delta_timestamps=dts, override_num_blocks=8)
    got = _node_tagged(rds)
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert set(got["node"]) == nodes and len(nodes) == 2, (set(got["node"]), nodes)
    _assert_rows_equal({k: v for k, v in got.items() if k != "node"}, prf.open_dataset(root, delta_timestamps=dts))


def test_streamed_source_read_on_both_nodes(two_nodes):
    """A dataset served over HTTP: tasks on each node stream their own episodes' byte ranges."""
    from _range_server import RangeServer

    with RangeServer(LEROBOT) as srv:
        rds = prf.ray.read_dataset(f"{srv.url}/so101_wrist_v30", streaming=True, override_num_blocks=6)
        got = _node_tagged(rds)
    assert len(set(got["node"])) == 2
    _assert_rows_equal({k: v for k, v in got.items() if k != "node"}, prf.open_dataset(dataset_path("so101_wrist_v30")))


def test_torch_trainer_two_workers_on_two_nodes(two_nodes, tmp_path):
    """Ray Train across the two nodes: a TorchTrainer with 2 workers placed one per node (SPREAD); each
    epoch the workers' shards (DataConfig's streaming_split of prf's dataset, equal=True) are disjoint,
    of equal length, and together hold every sample but the len % 2 Ray's equal split leaves out, each
    with prf's values."""
    pytest.importorskip("torch")
    import json
    from pathlib import Path

    import ray.train
    from ray.train.torch import TorchTrainer

    root = dataset_path("pusht_sim_v30")
    dts = {"action": [0.0, 0.1]}
    # each node has 1 CPU: half for its train worker, a quarter per read task (at 1 CPU, the default,
    # no read task could ever be placed beside the workers and the shards would wait forever)
    train = prf.ray.read_dataset(root, episodes=[0, 1, 2, 3], delta_timestamps=dts, cameras=[],
                                 columns=["index", "observation.state", "action"], ray_remote_args={"num_cpus": 0.25})
    ds = prf.open_dataset(root, episodes=[0, 1, 2, 3], delta_timestamps=dts, cameras=[])
    want = ds.get_batch(np.arange(len(ds)))

    def loop(config):
        import torch

        ctx = ray.train.get_context()
        shard = ray.train.get_dataset_shard("train")
        model = torch.nn.Linear(2, 4)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        for epoch in range(2):
            index, action = [], []
            for b in shard.iter_torch_batches(batch_size=16):
                loss = torch.nn.functional.mse_loss(model(b["observation.state"]), b["action"].reshape(-1, 4))
                opt.zero_grad()
                loss.backward()
                opt.step()
                index += b["index"].tolist()
                action += b["action"].tolist()
            rec = {"node": ray.get_runtime_context().get_node_id(), "index": index, "action": action}
            (Path(config["out"]) / f"e{epoch}_r{ctx.get_world_rank()}.json").write_text(json.dumps(rec))
            ray.train.report({"epoch": epoch})

    trainer = TorchTrainer(loop, datasets={"train": train}, train_loop_config={"out": str(tmp_path)},
                           scaling_config=ray.train.ScalingConfig(num_workers=2, use_gpu=False,
                                                                  placement_strategy="SPREAD",
                                                                  resources_per_worker={"CPU": 0.5}),
                           run_config=ray.train.RunConfig(storage_path=str(tmp_path / "train"), name="prf2"))
    import threading

    failed: list[BaseException] = []
    job = threading.Thread(target=lambda: _run_catching(trainer.fit, failed), daemon=True)
    job.start()
    job.join(300)  # a scheduling deadlock fails the test (the module's teardown stops the cluster)
    assert not job.is_alive(), "TorchTrainer.fit did not finish within 300 s"
    assert not failed, failed
    for epoch in range(2):
        recs = [json.loads((tmp_path / f"e{epoch}_r{r}.json").read_text()) for r in (0, 1)]
        assert recs[0]["node"] != recs[1]["node"]  # one worker per node
        assert recs[0]["index"] and recs[1]["index"] and not set(recs[0]["index"]) & set(recs[1]["index"])
        index = np.array(recs[0]["index"] + recs[1]["index"])
        # DataConfig splits with equal=True: shards of equal length, so Ray leaves out len % 2 rows
        assert len(recs[0]["index"]) == len(recs[1]["index"]) == len(ds) // 2
        assert len(set(index.tolist())) == len(index) and set(index.tolist()) <= set(ds.column("index").tolist())
        pos = np.searchsorted(ds.column("index"), index)  # each row's position in prf's dataset
        action = np.array(recs[0]["action"] + recs[1]["action"], np.float32)
        np.testing.assert_array_equal(action, want["action"][pos])
