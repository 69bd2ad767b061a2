"""control_opt.models: the MNIST-1D authors' networks and the registry."""

import math

import numpy as np
import pytest

from control_opt import models


@pytest.mark.parametrize("name, params", [("mnist1d_cnn", 5210), ("mnist1d_mlp", 15210)])
def test_builds_uncompiled_logit_models(name, params):
    model = models.build(name)
    assert model.input_shape == (None, 40, 1) and model.output_shape == (None, 10)
    assert model.count_params() == params
    assert not model.compiled
    logits = np.asarray(model(np.random.default_rng(0).normal(size=(3, 40, 1)).astype(np.float32)))
    assert logits.shape == (3, 10) and np.isfinite(logits).all()
    assert not np.allclose(logits.sum(axis=1), 1.0)  # logits, not probabilities


def test_cnn_has_the_authors_geometry():
    model = models.build("mnist1d_cnn")
    lengths = [model.get_layer(f"conv{i}").output.shape[1:] for i in (1, 2, 3)]
    assert lengths == [(19, 25), (10, 25), (5, 25)]
    assert [model.get_layer(f"conv{i}").kernel_size for i in (1, 2, 3)] == [(5,), (3,), (3,)]
    assert all(model.get_layer(f"conv{i}").strides == (2,) for i in (1, 2, 3))


@pytest.mark.parametrize("name", ["mnist1d_cnn", "mnist1d_mlp"])
def test_initialization_is_pytorchs_default(name):
    model = models.build(name, seed=0)
    for layer in model.layers:
        if not layer.weights:
            continue
        kernel, bias = (np.asarray(w) for w in layer.weights)
        bound = 1 / math.sqrt(np.prod(kernel.shape[:-1]))  # fan_in
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
        assert np.abs(kernel).max() > 0.5 * bound


@pytest.mark.parametrize("name", ["mnist1d_cnn", "mnist1d_mlp"])
def test_seed_fixes_the_initial_weights(name):
    a, b, c = (models.build(name, seed=s) for s in (3, 3, 4))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_input_shape_and_num_classes_are_honoured():
    assert models.build("mnist1d_cnn", input_shape=(64, 2), num_classes=3).output_shape == (None, 3)
    assert models.build("mnist1d_mlp", input_shape=(8, 8, 1), num_classes=4).output_shape == (None, 4)
    with pytest.raises(ValueError, match="length, channels"):
        models.build("mnist1d_cnn", input_shape=(8, 8, 1))


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*mnist1d_cnn.*mnist1d_mlp"):
        models.build("resnet")
