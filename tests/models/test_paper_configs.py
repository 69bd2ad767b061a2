"""experiments.paper_configs: the papers' runs as data, consistent with the registries."""

import inspect
import json

import pytest

from control_opt import datasets, models
from experiments import paper_configs
from experiments.training import paper_runs, registry
from experiments.training.schedules import parse_lr_schedule

# The optimizers' arguments a row sets but the runner's class does not take, because the row's value
# is the neutral one (paper_runs drops those): Entropy-Adam has no outer momentum, Adam no coupled l2.
NEUTRAL_EXTRAS = {"momentum", "nesterov", "l2"}


@pytest.mark.parametrize("name", paper_configs.names())
def test_every_row_names_what_exists(name):
    c = paper_configs.resolve(name)
    assert c.name == name
    assert c.model in models.names()
    assert set(c.model_kwargs) <= set(models.options(c.model)), (c.model_kwargs, models.options(c.model))
    assert c.dataset in datasets.names()
    loader = datasets.registry._LOADERS[c.dataset]  # pylint: disable=protected-access
    assert set(c.dataset_kwargs) <= set(inspect.signature(loader).parameters)
    assert c.optimizer in paper_configs.OPTIMIZERS
    assert paper_runs.runnable(c) == "yes"  # every method of the table is built (Elastic-SGD and Parle included)
    # Every key is an argument of the optimizer's constructor (the one declaration) or the run's replicas.
    takes = set(registry.OPTIMIZERS[c.optimizer].hyperparameters)
    assert set(c.hyperparameters) <= takes | {"replicas"} | NEUTRAL_EXTRAS
    assert "learning_rate" not in c.hyperparameters and "lr_schedule" not in c.hyperparameters
    pieces = parse_lr_schedule(c.lr_schedule)
    assert pieces[0][0] == 0 and all(e < c.epochs for e, _ in pieces)
    assert c.batch_size > 0 and c.epochs > 0 and c.reference
    assert c.reported_error is None or 0 < c.reported_error < 100
    json.dumps(c.to_dict())  # primitives only


def test_the_entropy_sgd_table_is_there():
    reported = {n: paper_configs.resolve(n).reported_error for n in
                ("esgd_mnistfc", "esgd_lenet", "esgd_allcnn", "adam_mnistfc", "sgd_lenet", "sgd_allcnn")}
    assert reported == dict(esgd_mnistfc=1.37, esgd_lenet=0.50, esgd_allcnn=7.81, adam_mnistfc=1.39,
                            sgd_lenet=0.51, sgd_allcnn=7.71)
    esgd = paper_configs.resolve("esgd_allcnn")
    assert esgd.hyperparameters["gamma"] == 0.03 and esgd.hyperparameters["langevin_steps"] == 20
    assert esgd.epochs == 200 and esgd.lr_schedule == "0:1,80:0.2,160:0.04"
    assert paper_configs.resolve("sgd_allcnn").lr_schedule == "0:0.1,60:0.02,120:0.004,180:0.0008"
    assert paper_configs.resolve("esgd_lenet").hyperparameters["gamma"] == 1e-4
    assert parse_lr_schedule(paper_configs.resolve("esgd_lenet").lr_schedule)[0] == (0, 1.0)


def test_every_method_and_network_has_rows():
    rows = [paper_configs.resolve(n) for n in paper_configs.names()]
    for optimizer in ("hopf_lax", "elastic_sgd"):
        assert {r.model for r in rows if r.optimizer == optimizer} == {"mnistfc", "lenet", "allcnn_bn"}
    parle = [r for r in rows if r.optimizer == "parle"]
    assert {r.dataset for r in parle} == {"cifar10", "cifar100"}
    assert all(paper_runs.runnable(r) == "yes" and r.model_kwargs == dict(depth=28, width=10) and r.augment for r in parle)


def test_resolve_and_table():
    with pytest.raises(ValueError, match=r"unknown paper config 'esgd_resnet'; known configs: esgd_mnistfc, "):
        paper_configs.resolve("esgd_resnet")
    text = paper_configs.table(available=lambda row: "yes")
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["name", "optimizer", "model", "dataset"]
    assert len(lines) == 2 + len(paper_configs.names())
    assert "parle_wrn28_10_cifar100" in text and "wide_resnet(depth=28,width=10)" in text
    assert all(line.endswith("yes") for line in lines[2:])


def test_a_schedule_without_its_initial_rate_is_refused(monkeypatch):
    row = paper_configs.resolve("sgd_lenet")
    monkeypatch.setitem(paper_configs.CONFIGS, "sgd_lenet", paper_configs.PaperConfig(
        **{**row.to_dict(), "lr_schedule": "2:0.1"}))
    with pytest.raises(ValueError, match="must start at epoch 0"):
        paper_runs.row_overrides("sgd_lenet")
