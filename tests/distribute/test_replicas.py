"""ElasticSGD and Parle on 2 (and 4) logical CPU devices under MirroredStrategy.

The checks run in one fresh process for all of tests/distribute (logical
devices must be set before TensorFlow initializes; `replica_checks.py`, the
session fixture `replica_checks` of conftest.py): `replicas_script.py` writes
what it measured to JSON, and each test below asserts one property of it.
"""

import pytest

pytestmark = pytest.mark.slow  # multi-process end to end: CI runs it (pyproject.toml)

N_PARAMS = 74  # Dense(6 -> 8) + Dense(8 -> 2)


@pytest.fixture(scope="module")
def two(replica_checks):
    return replica_checks["replicas2"]


@pytest.fixture(scope="module")
def four(replica_checks):
    return replica_checks["replicas4"]


def test_replicas_differ_and_the_coupling_pulls_them_together(two):
    spread = {float(k): v for k, v in two["spread"].items()}
    assert spread[0.0] > 1e-2  # own weights, own data: the replicas drift apart
    assert spread[0.0] > spread[1.0] > spread[10.0] > 0.0
    # rho * eta = 1: each replica sits one local step from the common center.
    assert spread[10.0] < 0.5 * spread[0.0]


def test_rho_zero_is_keras_sgd_on_each_replicas_shard(two):
    # No gradient all-reduce, and Keras' 1/n on each replica's loss undone.
    assert two["rho0_is_sgd_per_shard"] < 1e-5


@pytest.mark.parametrize("key", ["parle_L1_is_elastic", "alpha_1_over_n_is_mean"])
def test_reductions_on_two_replicas(two, key):
    assert two[key] < 1e-5
    assert two["parle_L1_spread"] > 1e-3  # and the replicas did differ


def test_center_is_the_mean_of_the_replicas_at_each_sync(two):
    parle = two["comm_parle"]
    # L = 3: syncs at steps 2 and 5, where xbar = mean_a x_a (reference="weights").
    assert parle["syncs"] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert parle["center_minus_mean_before"][2] < 1e-6 and parle["center_minus_mean_before"][5] < 1e-6
    elastic = two["comm_elastic_tau2"]
    assert elastic["syncs"] == [1, 1, 2, 2, 3, 3, 4, 4]
    for step in (0, 2, 4, 6):
        assert elastic["center_minus_mean_before"][step] < 1e-6
    assert max(elastic["center_minus_mean_before"][1::2]) > 1e-4  # between syncs the center waits


def test_one_batched_all_reduce_per_outer_step_and_none_of_gradients(two):
    param_bytes = 4 * N_PARAMS
    parle = [tuple(d) for d in two["comm_parle"]["deltas"]]
    assert parle == [(s, 1, param_bytes) if s % 3 == 2 else (s, 0, 0) for s in range(8)]
    elastic = [tuple(d) for d in two["comm_elastic_tau2"]["deltas"]]
    assert elastic == [(s, 1, param_bytes) if s % 2 == 0 else (s, 0, 0) for s in range(8)]
    # Every traced reduction of the replica-local optimizers is one flat vector of all parameters.
    assert all(sizes == [N_PARAMS] for sizes in two["comm_parle"]["traced_in_train_step"])
    # The baseline under the same strategy: all 4 gradients, every step.
    assert [tuple(d) for d in two["comm_sgd"]["deltas"]] == [(s, 4, param_bytes) for s in range(8)]


def test_get_weights_during_fit_is_the_mean_of_the_replicas(two):
    assert two["comm_parle"]["get_weights_minus_mean"] < 1e-6


def test_each_replica_draws_its_own_noise(two):
    assert two["no_noise_spread"] == 0.0
    assert two["noise_spread"] > 1e-4


def test_data_parallel_entropy_sgd_draws_the_same_noise_on_every_replica(two):
    # Mirrored weights, noise on: the copies never drift apart, and the run is the one-device run
    # (up to the order of the gradient all-reduce's sum).
    assert two["data_parallel_copies_differ"] == 0.0
    assert two["data_parallel_minus_one_device"] < 1e-5
    # A layer frozen and the model recompiled with the built optimizer: the frozen weights never move
    # and every copy of every weight and optimizer variable stays equal.
    assert two["data_parallel_frozen_moved"] == 0.0
    assert two["data_parallel_copies_differ_after_freezing"] == 0.0


def test_save_mid_outer_loop_load_and_continue_equals_uninterrupted(two):
    assert two["saved_inner_step"] != 0 and two["loaded_type"] == "Parle"
    assert two["resume_weights"] == 0.0 and two["resume_state"] == 0.0
    assert two["evaluate_is_center"] < 1e-5
    # Saved inside fit without AnchorSwap: the replicas' probes travel in the optimizer's state.
    assert two["resume_mid_epoch_state"] == 0.0


def test_clear_errors_under_a_strategy(two):
    assert "saved state holds 2 replicas" in two["other_replicas_error"]
    assert "replica_local" in two["mirrored_model_error"]


def test_four_replicas(four):
    assert four["rho0_is_sgd_per_shard"] < 1e-5
    assert four["parle_L1_is_elastic"] < 1e-5
    param_bytes = 4 * N_PARAMS
    assert [tuple(d) for d in four["comm_parle"]["deltas"]] == [
        (s, 1, param_bytes) if s % 3 == 2 else (s, 0, 0) for s in range(8)]
