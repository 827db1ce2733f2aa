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
