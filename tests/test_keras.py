"""prf.keras: tf.data's exact element_spec, (inputs, targets) selection, Keras's own PyDataset reader
with threads, and PyDataset training on the JAX and PyTorch backends (TensorFlow's is in test_examples)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
import prf  # noqa: E402
import prf.keras  # noqa: E402

from conftest import dataset_path  # noqa: E402
from test_examples import run_example  # noqa: E402

DT = {"observation.state": [-0.1, 0.0], "action": [0.0, 0.1, 0.2]}


@pytest.fixture(scope="module")
def pusht():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), delta_timestamps={**DT, "observation.image": [-0.1, 0.0]})


def test_element_spec_is_the_exact_output_signature(pusht):
    # 3850 samples: batches of 7 are all full, of 8 the last is not (unless drop_last)
    for bs, drop_last, b in [(7, False, 7), (8, False, None), (8, True, 8)]:
        tfds = prf.keras.to_tf_dataset(pusht, bs, drop_last=drop_last)
        sig = prf.keras.output_signature(pusht, bs, drop_last=drop_last)
        assert tfds.element_spec == sig
        assert sig["observation.image"] == tf.TensorSpec((b, 2, 96, 96, 3), tf.uint8)
        assert sig["action"] == tf.TensorSpec((b, 3, 2), tf.float32)
        assert sig["action_is_pad"] == tf.TensorSpec((b, 3), tf.bool)
        assert sig["index"] == tf.TensorSpec((b,), tf.int64)
        assert sig["task"] == tf.TensorSpec((b,), tf.string)
    sel = dict(inputs={"image": "observation.image", "state": "observation.state"}, targets="action")
    tfds = prf.keras.to_tf_dataset(pusht, 7, **sel)
    assert tfds.element_spec == prf.keras.output_signature(pusht, 7, **sel)
    x, y = tfds.element_spec
    assert set(x) == {"image", "state"} and y == tf.TensorSpec((7, 3, 2), tf.float32)
    bx, by = next(iter(tfds))
    ref = pusht.get_batch(np.arange(7))
    assert np.array_equal(bx["image"].numpy(), ref["observation.image"]) and np.array_equal(by.numpy(), ref["action"])


def test_selection(pusht):
    py = prf.keras.PyDataset(pusht, 4, targets=["action"])
    x, y = py[0]
    assert set(y) == {"action"} and "task" not in x and "action" not in x and "observation.image" in x
    assert len(prf.keras.PyDataset(pusht, 4, inputs="observation.state")[0]) == 1  # (inputs,)
    with pytest.raises(KeyError, match="observation.nope"):
        prf.keras.PyDataset(pusht, 4, inputs=["observation.nope"], targets="action")
    with pytest.raises(IndexError):
        py[len(py)]


def test_pydataset_read_by_keras_with_threads(pusht):
    """Keras's own PyDataset reader (2 worker threads, as model.fit uses it with shuffle=False) keeps
    prf's order, and on_epoch_end moves to the next epoch's order."""
    from keras.src.trainers.data_adapters import get_data_adapter

    small = prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0, 1], delta_timestamps=DT)
    py = prf.keras.PyDataset(small, 16, shuffle=True, seed=2, workers=2)
    adapter = get_data_adapter(py, shuffle=False)
    assert adapter.enqueuer is not None  # Keras reads with its worker threads
    loader = small.loader(16, shuffle=True, seed=2)
    for epoch in range(2):
        adapter.on_epoch_begin()
        got = [b["index"] for b in adapter.get_numpy_iterator()]
        want = [small.column("index")[i] for i in loader.batch_indices(epoch)]
        assert len(got) == len(want) == len(py)
        assert all(np.array_equal(a, b) for a, b in zip(got, want)), epoch
        adapter.on_epoch_end()


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_pydataset_trains_on_backend(backend):
    if importlib.util.find_spec(backend) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{backend} is not installed in CI")
        pytest.skip(f"{backend} not installed")
    losses = run_example("keras_train.py", ["--data", "pydataset", "--steps", "10", "--steps-per-epoch", "5"],
                         # one intra-op thread: on 2 shared cores, torch's OpenMP spin-waits were seen to
                         # stretch this 15 s run past 4 minutes when other processes competed
                         env={"KERAS_BACKEND": backend, "OMP_NUM_THREADS": "1"})
    assert len(losses) == 2 and losses[-1] < 0.5 * losses[0], losses
