"""control_opt.datasets: the MNIST-1D loader and the registry."""

import os

import numpy as np
import pytest

from control_opt import datasets


@pytest.fixture(scope="module")
def mnist1d():
    return datasets.load("mnist1d")


def test_mnist1d_shapes_and_dtypes(mnist1d):
    assert mnist1d.name == "mnist1d"
    assert mnist1d.x_train.shape == (4000, 40, 1) and mnist1d.x_test.shape == (1000, 40, 1)
    assert mnist1d.y_train.shape == (4000,) and mnist1d.y_test.shape == (1000,)
    assert mnist1d.x_train.dtype == np.float32 and mnist1d.x_test.dtype == np.float32
    assert mnist1d.y_train.dtype == np.int64 and mnist1d.y_test.dtype == np.int64
    assert mnist1d.num_classes == 10 and mnist1d.input_shape == (40, 1)
    assert set(np.unique(mnist1d.y_train)) == set(range(10)) == set(np.unique(mnist1d.y_test))
    assert np.isfinite(mnist1d.x_train).all()
    # The generator standardizes the whole set.
    x_all = np.concatenate([mnist1d.x_train, mnist1d.x_test])
    assert abs(x_all.mean()) < 1e-3 and abs(x_all.std() - 1) < 1e-3


def test_mnist1d_is_cached_and_read_only(mnist1d):
    assert datasets.load("mnist1d") is mnist1d
    with pytest.raises(ValueError):
        mnist1d.x_train[0, 0, 0] = 1.0


def test_mnist1d_is_the_generators_default_and_leaves_global_rngs_alone(mnist1d, monkeypatch):
    from mnist1d.data import get_dataset_args, make_dataset

    monkeypatch.setattr(datasets.registry, "_MEMORY_CACHE", {})
    np.random.seed(123)
    expected_draw = np.random.rand()
    np.random.seed(123)
    fresh = datasets.load("mnist1d", use_disk_cache=False)
    assert np.random.rand() == expected_draw
    np.testing.assert_array_equal(fresh.x_train, mnist1d.x_train)
    np.testing.assert_array_equal(fresh.y_test, mnist1d.y_test)
    raw = make_dataset(get_dataset_args())
    np.testing.assert_array_equal(fresh.x_test[..., 0], raw["x_test"].astype(np.float32))
    np.testing.assert_array_equal(fresh.y_train, raw["y"])


def test_disk_cache_is_written_and_reread_and_survives_damage(mnist1d, monkeypatch, tmp_path):
    monkeypatch.setenv("CONTROL_OPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(datasets.registry, "_MEMORY_CACHE", {})
    datasets.load("mnist1d")
    (cached,) = [p for p in os.listdir(tmp_path)]
    assert cached.startswith("mnist1d-") and cached.endswith(".npz")
    monkeypatch.setattr(datasets.registry, "_MEMORY_CACHE", {})
    np.testing.assert_array_equal(datasets.load("mnist1d").x_train, mnist1d.x_train)
    (tmp_path / cached).write_bytes(b"not an npz file")
    monkeypatch.setattr(datasets.registry, "_MEMORY_CACHE", {})
    np.testing.assert_array_equal(datasets.load("mnist1d").x_test, mnist1d.x_test)


def test_seed_draws_another_mnist1d(mnist1d):
    other = datasets.load("mnist1d", seed=7, use_disk_cache=False)
    assert other.x_train.shape == mnist1d.x_train.shape
    assert not np.array_equal(other.x_train, mnist1d.x_train)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist2d'.*mnist1d"):
        datasets.load("mnist2d")


def test_registry_is_open_and_refuses_duplicates(monkeypatch):
    monkeypatch.setattr(datasets.registry._REGISTRY, "entries", dict(datasets.registry._REGISTRY.entries))

    @datasets.register("toy")
    def _toy(*, seed=None):
        x = np.zeros((4, 3, 1), np.float32)
        y = np.arange(4) % 2
        return datasets.Dataset(x, y, x, y, num_classes=2, input_shape=(3, 1), name="toy")

    assert "toy" in datasets.names()
    assert datasets.load("toy").num_classes == 2
    with pytest.raises(ValueError, match="already registered"):
        datasets.register("toy")(_toy)
