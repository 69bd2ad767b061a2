"""control_opt.models: the Entropy-SGD paper's networks and Wide-ResNets, and build's keywords."""

import math

import keras
import numpy as np
import pytest

from control_opt import models

# (name, kwargs, trainable parameters measured, published count, relative tolerance, source)
PUBLISHED = [
    # LeCun's LeNet as the brief and the paper count it: exact.
    ("lenet", dict(batch_norm=False), 431_080, 431_080, 0.0),
    # The authors' code (3x3 first pooling): 20*25+20 + 50*20*25+50 + 200*500+500 + 500*10+10, exact.
    ("lenet", dict(batch_norm=False, authors_code=True), 131_080, 131_080, 0.0),
    # mnistfc: 784*1024+1024 + 1024*1024+1024 + 1024*10+10, exact (the architecture's count).
    ("mnistfc", dict(batch_norm=False, input_dropout=0.0), 1_863_690, 1_863_690, 0.0),
    # All-CNN-C with BN: "about 1.4M".
    ("allcnn_bn", dict(), 1_372_254, 1.4e6, 0.05),
    # The authors' All-CNN-BN: "1.67 million" (the paper's text as recalled).
    ("allcnn_bn", dict(authors_code=True), 1_667_166, 1.67e6, 0.005),
    # Zagoruyko and Komodakis, Table 1: WRN-16-4 2.7M ("about"; 2.75M in their code's count).
    ("wide_resnet", dict(depth=16, width=4), 2_748_890, 2.7e6, 0.03),
]


@pytest.mark.parametrize("name, kwargs, measured, published, rtol", PUBLISHED)
def test_parameter_counts_match_the_published_ones(name, kwargs, measured, published, rtol):
    model = models.build(name, seed=0, **kwargs)
    count = models.trainable_count(model)
    assert count == measured
    assert abs(count - published) <= rtol * published
    if kwargs.get("batch_norm") is False:
        assert model.count_params() == count  # no BN running statistics


def test_wrn_28_10_has_36_5_million_parameters():
    # Built once (the largest network, ~2 s): the published 36.5M.
    model = models.build("wide_resnet", depth=28, width=10, num_classes=10, seed=0)
    assert models.trainable_count(model) == 36_479_194
    assert abs(models.trainable_count(model) - 36.5e6) <= 0.005 * 36.5e6
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("name, kwargs, input_shape", [
    ("mnistfc", {}, (28, 28, 1)), ("lenet", {}, (28, 28, 1)), ("lenet", dict(authors_code=True), (28, 28, 1)),
    ("allcnn_bn", {}, (32, 32, 3)), ("allcnn_bn", dict(authors_code=True), (32, 32, 3)),
    ("wide_resnet", dict(depth=10, width=1, dropout=0.3), (32, 32, 3)),
])
def test_default_shapes_and_finite_logits(name, kwargs, input_shape):
    model = models.build(name, seed=1, **kwargs)
    assert model.input_shape == (None, *input_shape) and model.output_shape == (None, 10)
    assert not model.compiled
    x = np.random.default_rng(0).normal(size=(2, *input_shape)).astype(np.float32)
    for training in (False, True):
        logits = np.asarray(model(x, training=training))
        assert logits.shape == (2, 10) and np.isfinite(logits).all()


def test_num_classes_and_input_shape_keywords_still_work():
    assert models.build("wide_resnet", depth=10, width=1, num_classes=100).output_shape == (None, 100)
    assert models.build("lenet", input_shape=(28, 28, 1), num_classes=3, seed=0).output_shape == (None, 3)
    assert models.build("allcnn_bn", num_classes=100).output_shape == (None, 100)


def test_layers_follow_the_authors_code():
    lenet = models.build("lenet", seed=0)
    order = [type(layer).__name__ for layer in lenet.layers[1:7]]
    assert order == ["Conv2D", "ReLU", "MaxPooling2D", "BatchNormalization", "Dropout", "Conv2D"]
    assert [lenet.get_layer(f"pool{i}").pool_size for i in (1, 2)] == [(2, 2), (2, 2)]
    assert models.build("lenet", authors_code=True).get_layer("pool1").pool_size == (3, 3)
    rates = sorted(layer.rate for layer in models.build("allcnn_bn").layers if isinstance(layer, keras.layers.Dropout))
    assert rates == [0.2, 0.5, 0.5]
    rates = [layer.rate for layer in models.build("mnistfc").layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.2, 0.5, 0.5]
    for model in (lenet, models.build("wide_resnet", depth=10, width=1)):
        bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert bns and all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)  # Torch's BN
    wrn = models.build("wide_resnet", depth=16, width=2)
    convs = [layer for layer in wrn.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 2 * 6 + 3 and not any(c.use_bias for c in convs)  # 2n per group, 3 shortcuts


def test_initialization_is_torchs_default_for_the_entropy_sgd_nets():
    model = models.build("lenet", seed=0, batch_norm=False)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = np.asarray(layer.kernel)
            bound = 1 / math.sqrt(np.prod(kernel.shape[:-1]))
            assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound


@pytest.mark.parametrize("name, kwargs", [("lenet", {}), ("wide_resnet", dict(depth=10, width=1, dropout=0.3))])
def test_seed_fixes_weights_and_dropout(name, kwargs):
    a, b, c = (models.build(name, seed=s, **kwargs) for s in (3, 3, 4))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    dropouts = [layer.seed for layer in a.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts and dropouts == [layer.seed for layer in b.layers if isinstance(layer, keras.layers.Dropout)]


def test_unknown_keyword_is_named_and_options_listed():
    with pytest.raises(ValueError, match=r"'wide_resnet' got unknown keyword\(s\) 'depht'.*depth=28.*width=10"):
        models.build("wide_resnet", depht=16)
    with pytest.raises(ValueError, match=r"'mnist1d_cnn' got unknown keyword\(s\) 'width'"):
        models.build("mnist1d_cnn", width=2)
    assert models.options("wide_resnet") == dict(depth=28, width=10, dropout=0.0)
    assert models.options("mnist1d_mlp") == dict(hidden_size=100)


def test_bad_wide_resnet_geometry_is_refused():
    with pytest.raises(ValueError, match="6n \\+ 4"):
        models.build("wide_resnet", depth=27)
    with pytest.raises(ValueError, match="width"):
        models.build("wide_resnet", depth=16, width=0)


def test_every_paper_network_is_registered():
    assert {"mnistfc", "lenet", "allcnn_bn", "wide_resnet", "mnist1d_cnn", "mnist1d_mlp"} <= set(models.names())
