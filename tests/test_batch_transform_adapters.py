"""Issue #10 item 7: the adapters apply a dataset view's batch transform exactly as the core does.

``ds.with_transforms(...)`` given to ``prf.torch.Dataset`` (with a ``DataLoader``), ``prf.jax.DataSource``
and ``prf.keras.PyDataset`` delivers the very values of ``view.get_batch`` / the view's loader, so no
adapter re-implements normalization or image transforms (and none drops them)."""

from __future__ import annotations

import numpy as np
import pytest

import prf
from prf import transforms as T

from conftest import dataset_path

NORM = {"observation.state": "mean_std", "action": "min_max", "observation.image": "mean_std"}
AUG = T.Compose([T.RandomCrop(88, padding=4), T.ColorJitter(0.2, 0.2, 0.2)])


@pytest.fixture(scope="module")
def view():
    ds = prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0, 1],
                          delta_timestamps={"action": [0.0, 0.1, 0.2]})
    return ds.with_transforms(transform=AUG, normalize=NORM, seed=3)


def test_view_is_transformed(view):
    raw = view.dataset.get_batch(np.array([4, 9]))
    got = view.get_batch(np.array([4, 9]))
    assert got["observation.image"].dtype == np.float32 and got["observation.image"].shape[-3:] == (88, 88, 3)
    assert not np.allclose(got["action"], raw["action"])  # normalized: the test can fail


def _as_list(samples):
    return samples


def test_torch_dataset_and_dataloader_keep_the_transforms(view):
    torch = pytest.importorskip("torch")
    import prf.torch

    tds = prf.torch.Dataset(view)
    idx = [4, 9, 30]
    want = view.get_batch(np.array(idx))
    for j, i in enumerate(idx):
        item = tds[i]
        assert isinstance(item["action"], torch.Tensor)
        np.testing.assert_array_equal(item["action"].numpy(), want["action"][j])
        np.testing.assert_array_equal(item["observation.image"].numpy(), want["observation.image"][j])
    dl = torch.utils.data.DataLoader(tds, batch_size=3, sampler=idx, num_workers=2, collate_fn=_as_list)
    (samples,) = list(dl)
    for j, s in enumerate(samples):
        np.testing.assert_array_equal(s["observation.state"].numpy(), want["observation.state"][j])
        np.testing.assert_array_equal(s["observation.image"].numpy(), want["observation.image"][j])


def test_jax_data_source_keeps_the_transforms(view):
    pytest.importorskip("grain")
    import prf.jax

    src = prf.jax.DataSource(view)
    want = view.get_batch(np.array([7]))
    got = src[7]
    np.testing.assert_array_equal(np.asarray(got["action"]), want["action"][0])
    np.testing.assert_array_equal(np.asarray(got["observation.image"]), want["observation.image"][0])


def test_keras_pydataset_equals_the_views_loader(view):
    pytest.importorskip("keras")
    import prf.keras

    seq = prf.keras.PyDataset(view, 8, shuffle=True, seed=1)
    want = next(iter(view.loader(8, shuffle=True, seed=1)))
    got = seq[0]
    batch = got if isinstance(got, dict) else got[0]
    np.testing.assert_array_equal(np.asarray(batch["action"]), want["action"])
    np.testing.assert_array_equal(np.asarray(batch["observation.image"]), want["observation.image"])
