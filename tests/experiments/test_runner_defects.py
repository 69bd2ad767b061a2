"""The runner's defects of issue 19, each tried as a new user would; every one failed on 4d1e4e3.

* a value the optimizer's constructor refuses (--rho=-1) wrote config.json first, so the
  corrected command was then refused as a config mismatch;
* --dataset_kwargs=preprocess=none reached the loader as None;
* --replicas=2 without --strategy was an error;
* --config=elastic_lenet --replicas=N kept the row's global batch (per-replica batch 192/384/96);
* Parle's divergence message named only the outer learning rate;
* a malformed TF_CONFIG gave a JSON error that did not name TF_CONFIG.
"""

import os

import numpy as np
import pytest

from experiments import train
from experiments.training import config as config_module
from experiments.training import inputs
from experiments.training.options import parse_options

TINY = dict(epochs=1, batch_size=50, max_train_examples=200, max_test_examples=100, verbose=0,
            steps_per_execution=1)


def test_a_value_the_optimizer_refuses_writes_nothing_and_the_corrected_command_runs(tmp_path):
    workdir = str(tmp_path / "wd")
    with pytest.raises(ValueError, match="rho"):
        train.train_and_evaluate(dict(TINY, optimizer="elastic_sgd", rho=-1.0), workdir)
    assert not os.path.exists(workdir)  # validate, then write
    summary = train.train_and_evaluate(dict(TINY, optimizer="elastic_sgd", rho=0.1), workdir)
    assert summary["epochs"] == 1


def test_preprocess_none_reaches_the_loader_as_the_string_none(tmp_path):
    assert parse_options("preprocess=none") == {"preprocess": "none"}
    assert parse_options("x=None") == {"x": None}
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = np.concatenate([rng.integers(0, 10, (4, 1)), rng.integers(0, 256, (4, 3072))], axis=1)
        (folder / name).write_bytes(records.astype(np.uint8).tobytes())
    config = config_module.resolve_config(dict(dataset="cifar10", model="allcnn_bn", data_dir=str(tmp_path),
                                               dataset_kwargs="preprocess=none"))
    assert config.dataset_kwargs == "preprocess=none"
    data = inputs.load_data(config)
    assert data.x_train.shape == (20, 32, 32, 3)


def test_several_replicas_select_the_mirrored_strategy():
    assert config_module.resolve_config(dict(replicas=2)).strategy == "mirrored"
    assert config_module.resolve_config(dict(replicas=1)).strategy == "default"
    with pytest.raises(ValueError, match="leave --strategy out"):
        config_module.resolve_config(dict(replicas=2, strategy="default"))


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 5])
def test_a_replica_local_rows_batch_is_per_replica_whatever_the_replicas(replicas):
    config = config_module.resolve_config(train.config_from_dict(dict(config="elastic_lenet", replicas=replicas)))
    assert config.batch_size == 128 * replicas and config.batch_size // config.replicas == 128
    assert config_module.resolve_config(train.config_from_dict(dict(config="elastic_lenet"))).batch_size == 384
    # A data-parallel row's batch is the global batch; an explicit --batch_size wins.
    assert train.config_from_dict(dict(config="sgd_lenet", replicas=2)).batch_size == 128
    assert train.config_from_dict(dict(config="elastic_lenet", replicas=2, batch_size=64)).batch_size == 64


def test_parles_divergence_names_the_langevin_rate_that_caused_it(tmp_path):
    with pytest.raises(train.TrainingDiverged) as raised:
        train.train_and_evaluate(dict(TINY, optimizer="parle", langevin_steps=2, langevin_learning_rate=1e9,
                                      learning_rate=0.01, lr_schedule=""), str(tmp_path / "wd"))
    message = str(raised.value)
    assert "Langevin learning rate 1e+09" in message and "--langevin_learning_rate" in message
    assert "outer learning rate 0.01" in message


def test_a_diverging_sgd_run_still_blames_the_learning_rate(tmp_path):
    with pytest.raises(train.TrainingDiverged, match=r"outer learning rate 1e\+12\).*smaller learning rate"):
        train.train_and_evaluate(dict(TINY, optimizer="sgd", learning_rate=1e12, lr_schedule=""),
                                 str(tmp_path / "wd"))


@pytest.mark.parametrize("text, message", [
    ("{bad", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {}}', "TF_CONFIG needs cluster.worker"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "TF_CONFIG needs task"),
])
def test_a_malformed_tf_config_is_named_and_nothing_is_written(text, message, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ValueError, match=message):
        train.train_and_evaluate(dict(TINY, strategy="multi_worker"), str(tmp_path / "wd"))
    assert not os.path.exists(tmp_path / "wd")
