"""The papers' SGD baseline with coupled L2, and old SGD workdirs still resuming after `l2` was added."""

import json

import keras
import numpy as np

from experiments.training import config as config_module
from experiments.training.baselines import CoupledL2SGD
from experiments.training.rundir import RunDir


def test_coupled_l2_sgd_is_nesterov_on_the_gradient_plus_l2_w():
    lr, m, wd = 0.1, 0.9, 1e-2
    w0, grads = np.array([1.0, -2.0]), [np.array([0.5, 0.1]), np.array([-0.2, 0.3]), np.array([0.0, 1.0])]
    variable = keras.Variable(w0)
    optimizer = CoupledL2SGD(learning_rate=lr, momentum=m, nesterov=True, l2=wd)
    w, v = w0.copy(), np.zeros(2)
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
        d = g + wd * w                       # coupled: the decay enters the momentum
        v = m * v - lr * d                   # Keras' (and Sutskever's) Nesterov form
        w = w + m * v - lr * d
    np.testing.assert_allclose(variable.numpy(), w, rtol=1e-6)
    # Not Keras' decoupled weight decay, which acts outside the momentum.
    decoupled = keras.Variable(w0)
    keras_sgd = keras.optimizers.SGD(learning_rate=lr, momentum=m, nesterov=True, weight_decay=wd)
    for g in grads:
        keras_sgd.apply_gradients([(keras.ops.convert_to_tensor(g), decoupled)])
    assert not np.allclose(decoupled.numpy(), w, rtol=1e-4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, CoupledL2SGD) and restored.l2 == wd


def test_an_sgd_workdir_written_before_sgd_took_l2_still_resumes(tmp_path):
    config = config_module.resolve_config({"optimizer": "sgd", "epochs": 2})
    assert config.l2 == 0.0
    stored = config_module.flat_config(config)  # config.json before the hyperparameters block: flat
    stored["l2"] = None  # what runs written before l2 applied to SGD hold
    rundir = RunDir(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(stored))
    assert rundir.config_differences(config) == []
    # A real difference is still one.
    assert rundir.config_differences(config_module.resolve_config({"optimizer": "sgd", "epochs": 2, "l2": 1e-3}))
