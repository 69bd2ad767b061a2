"""Parle against the authors' code, and Keras' options on the replica-local optimizers, on 2 replicas.

`options_script.py` runs every check on 2 logical CPU devices (they must be
set before TensorFlow starts; it runs in the one process of
`replica_checks.py`, the session fixture `replica_checks` of conftest.py) and
writes what it measured to JSON; each test below asserts one property of it.
"""

import pytest


@pytest.fixture(scope="module")
def measured(replica_checks):
    return replica_checks["options"]


@pytest.mark.parametrize("scoping", ["0.0", "0.2"])
def test_authors_code_is_the_authors_step(measured, scoping):
    # Float64, 2 replicas, L = 3, 5 outer steps; scoping 0.2 reaches gamma's cap within the run.
    run = measured["parle_code"][f"authors_code=True,scoping={scoping}"]
    assert run["diff"] < 1e-12
    assert run["replicas_differ"] > 1e-2 and run["moved"] > 1e-1  # the check is not vacuous


@pytest.mark.parametrize("scoping", ["0.0", "0.2"])
def test_default_is_the_code_with_its_five_declared_departures(measured, scoping):
    run = measured["parle_code"][f"authors_code=False,scoping={scoping}"]
    assert run["diff"] < 1e-12
    assert run["replicas_differ"] > 1e-2


@pytest.mark.parametrize("option", ["clipnorm", "clipvalue", "global_clipnorm", "weight_decay"])
def test_keras_option_acts_per_replica_as_in_keras_sgd_on_the_shard(measured, option):
    # ElasticSGD(rho=0) on 2 replicas: replica a is Keras' SGD with the same option on its own shard.
    run = measured["options"][option]
    assert run["diff"] < 1e-7
    # Controls: twice the threshold (what the 1/n loss scaling used to make of it), and the option off
    # (weight decay used to be overwritten by the outer step).
    assert run["diff_doubled"] > 1e-2 and run["diff_off"] > 1e-2


def test_optimizer_made_outside_the_strategy_names_the_fix(measured):
    message = measured["errors"]["optimizer_outside"]
    assert message.startswith("ValueError") and "replica_local(strategy)" in message


def test_loading_a_replica_local_model_without_a_strategy_names_the_fix(measured):
    message = measured["errors"]["load_without_strategy"]
    assert "compile=False" in message and "replica_local(strategy)" in message
    assert measured["errors"]["compile_false_is_the_center"] == 0.0


@pytest.mark.parametrize("optimizer", ["elastic_sgd", "elastic_sgd_moving_center", "parle"])
def test_batch_norm_statistics_are_the_replicas_mean(measured, optimizer):
    # Replica 1's shard is shifted by 2: on their own, the replicas' moving means differ by ~0.2.
    run = measured["batch_norm"][optimizer]
    assert run["after_sync"] < 1e-6  # averaged at the communication (Parle L = 2: the second step)
    assert run["after_fit"] < 1e-6  # and when the center is put in the model
    assert run["predict_by_replica"] < 1e-6  # the same rows on replica 0 or 1
    assert run["saved_predict"] < 1e-6 and run["evaluate_vs_saved"] < 1e-5


@pytest.mark.parametrize("optimizer", ["elastic_sgd", "parle"])
def test_overflow_on_one_replica_skips_the_step_on_all(measured, optimizer):
    # mixed_float16, only replica 1's float16 gradients overflow; Keras' wrapper looks at replica 0.
    run = measured["overflow"][optimizer]
    assert not run["nan"] and run["moved"] == 0.0
    assert run["scale"] == [run["initial_scale"] / 2] * 2  # halved on every replica, as Keras does
    assert run["counter"] == [0, 0] and run["iterations"] == 0


@pytest.mark.parametrize("name", ["entropy_sgd", "entropy_adam", "hopf_lax", "elastic_sgd", "parle",
                                  "parle_authors_code"])
def test_option_table_on_two_replicas(measured, name):
    # clipnorm, weight decay (not HopfLaxSGD: refused), a schedule, a frozen layer and batch norm at once.
    row = measured["table"][name]
    assert row["finite"] and row["frozen_moved"] == 0.0
    # save, load under the strategy, continue = uninterrupted (weights and optimizer state, every replica)
    assert row["continued_vs_loaded"] < 1e-6
    assert row["clones_same_config"]  # pickle and deepcopy of the trained optimizer
    if name in ("elastic_sgd", "parle", "parle_authors_code"):
        assert row["statistics_differ"] < 1e-6  # one set of batch-norm statistics after fit


def test_data_parallel_batch_norm_statistics_are_keras_own(measured):
    # Under data parallelism (mirrored weights) Keras 3 lets each replica write its own batch-norm
    # statistics, with its own SGD too: the data-parallel optimizers leave them as Keras does.
    table = measured["table"]
    assert table["keras_sgd"]["statistics_differ"] > 1e-3
    assert table["keras_sgd"]["continued_vs_loaded"] < 1e-6


@pytest.mark.parametrize("policy", ["float64", "mixed_float16"])
@pytest.mark.parametrize("name", ["entropy_sgd", "entropy_adam", "hopf_lax", "elastic_sgd", "parle"])
def test_precision_and_sparse_gradients_on_two_replicas(measured, name, policy):
    # An Embedding first (its gradient is IndexedSlices), the whole run in float64 or mixed_float16; equal
    # to the one-device runs it reduces to: the same global batches (data parallel), or each replica's
    # own shard with the same optimizer (Elastic-SGD and Parle, rho = 0, no noise).
    row = measured["precision"][f"{name},{policy}"]
    assert "error" not in row, row.get("error")
    assert row["sparse"] and row["finite"] and row["moved"] > 1e-3
    if policy == "float64":
        assert row["variable_dtypes"] == ["float64"] and row["slot_dtypes"] == ["float64"]
        assert row["diff"] < 1e-12
    else:  # float32 variables and slots, float16 arithmetic
        assert row["variable_dtypes"] == ["float32"] and row["slot_dtypes"] == ["float32"]
        assert row["diff"] < 1e-5
