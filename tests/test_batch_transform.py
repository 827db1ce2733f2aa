"""Issue #10 item 7: one BatchTransform (image transforms, then normalization) that the Loader and
map-style access (``ds.with_transforms(...)``: ``get_batch``, ``ds[i]``) apply the same way, with
reproducible randomness; ``prf.Normalizer`` returns the input's array type."""

from __future__ import annotations

import numpy as np
import pytest

import prf
from prf import transforms as T
from prf.loading import BatchTransform

from conftest import dataset_path

AUG = T.Compose([T.RandomCrop(84, padding=4), T.RandomHorizontalFlip(), T.ColorJitter(0.2, 0.2, 0.2, 0.02)])
NORM = {"observation.state": "mean_std", "action": "min_max", "observation.image": "mean_std"}


@pytest.fixture(scope="module")
def pusht():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0, 1],
                            delta_timestamps={"observation.image": [-0.1, 0.0], "action": [0.0, 0.1]})


def test_map_style_view_is_deterministic_per_sample(pusht):
    view = pusht.with_transforms(transform=AUG, normalize=NORM, seed=5)
    idx = np.array([3, 40, 17, 3])
    batch = view.get_batch(idx)
    assert batch["observation.image"].shape == (4, 2, 84, 84, 3)
    assert batch["observation.image"].dtype == np.float32 and batch["action"].dtype == np.float32
    again = view.get_batch(idx)
    np.testing.assert_array_equal(batch["observation.image"], again["observation.image"])
    # sample i is the same augmented sample alone or in any batch (keyed by its index, not its row)
    np.testing.assert_array_equal(batch["observation.image"][0], batch["observation.image"][3])
    np.testing.assert_array_equal(view[40]["observation.image"], batch["observation.image"][1])
    assert view[40]["task"] == pusht[40]["task"]
    # other epochs and seeds: other augmentations of the same frames; normalization unchanged
    view.set_epoch(1)
    e1 = view.get_batch(idx)
    assert not np.array_equal(e1["observation.image"], batch["observation.image"])
    np.testing.assert_array_equal(e1["observation.state"], batch["observation.state"])
    other = pusht.with_transforms(transform=AUG, normalize=NORM, seed=6).get_batch(idx)
    assert not np.array_equal(other["observation.image"], batch["observation.image"])


def test_view_equals_transform_then_normalize_by_hand(pusht):
    stats = pusht.stats()
    view = pusht.with_transforms(transform=T.CenterCrop(80), normalize=NORM)
    idx = np.arange(6)
    got = view.get_batch(idx)
    raw = pusht.get_batch(idx)
    n = prf.Normalizer(NORM, stats, cameras=pusht.cameras)
    np.testing.assert_allclose(got["observation.image"], n.normalize("observation.image", raw["observation.image"][:, :, 8:88, 8:88]))
    np.testing.assert_allclose(got["action"], n.normalize("action", raw["action"]))
    np.testing.assert_array_equal(got["action_is_pad"], raw["action_is_pad"])
    np.testing.assert_array_equal(got["index"], raw["index"])


def test_view_loader_applies_the_loaders_per_batch_randomness(pusht):
    view = pusht.with_transforms(transform=AUG, normalize=NORM)
    a = list(view.loader(16, shuffle=True, seed=2, num_workers=2))
    b = list(pusht.loader(16, shuffle=True, seed=2, transform=AUG, normalize=NORM))
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["observation.image"], y["observation.image"])
        np.testing.assert_array_equal(x["action"], y["action"])
    # the loader given the view itself uses the view's transforms
    c = list(prf.Loader(view, 16, shuffle=True, seed=2))
    np.testing.assert_array_equal(c[0]["observation.image"], b[0]["observation.image"])


def test_batch_transform_needs_a_key_for_randomness_and_stats_for_normalize(pusht):
    bt = BatchTransform.for_dataset(pusht, transform=AUG)
    with pytest.raises(prf.errors.OptionsError, match="key= .* or indices="):
        bt(pusht.get_batch(np.arange(2)))
    with pytest.raises(prf.errors.OptionsError, match="needs stats="):
        BatchTransform(normalize={"action": "mean_std"})
    fresh = BatchTransform.for_dataset(pusht, transform=AUG, seed=None)  # OS entropy: not reproducible
    x = pusht.get_batch(np.arange(8))
    assert not np.array_equal(fresh(x, indices=np.arange(8))["observation.image"],
                              fresh(x, indices=np.arange(8))["observation.image"])


def test_normalizer_returns_the_input_array_type():
    torch = pytest.importorskip("torch")
    stats = {"a": {"mean": [1.0, 2.0], "std": [2.0, 4.0]}, "cam": {"mean": [[[0.5]]] * 3, "std": [[[0.25]]] * 3}}
    n = prf.Normalizer({"a": "mean_std", "cam": "mean_std"}, stats, cameras=["cam"])
    x = np.array([[1.0, 2.0], [5.0, 10.0]], np.float32)
    img = np.full((2, 4, 4, 3), 255, np.uint8)
    out = n({"a": torch.from_numpy(x), "cam": torch.from_numpy(img)})
    assert isinstance(out["a"], torch.Tensor) and out["a"].dtype == torch.float32
    np.testing.assert_allclose(out["a"].numpy(), n.normalize("a", x), rtol=1e-6)
    assert isinstance(out["cam"], torch.Tensor)
    np.testing.assert_allclose(out["cam"].numpy(), 2.0, rtol=1e-6)
    back = n.unnormalize("a", out["a"])
    assert isinstance(back, torch.Tensor)
    np.testing.assert_allclose(back.numpy(), x, rtol=1e-6)
    # image transforms on a torch batch come back as torch too
    bt = BatchTransform(transform=T.RandomHorizontalFlip(1.0), cameras=["cam"])
    img2 = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    flipped = bt({"cam": torch.from_numpy(img2)}, indices=[0, 1])["cam"]
    assert isinstance(flipped, torch.Tensor)
    np.testing.assert_array_equal(flipped.numpy(), img2[:, :, ::-1])
