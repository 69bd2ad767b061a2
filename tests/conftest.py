import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Under `pytest -n 2 --dist loadfile` each worker takes the next file in collection order when it is
# free, so a long file collected late becomes the run's tail on one core. The longest files go first,
# the shared replica process's (about 230 s of CPU, in a child) at the very front so that it overlaps
# everything else, and test_replicas.py, which waits for that process, last. Names, not timings: a
# renamed file only loses its place; the order changes nothing but the schedule.
FIRST = ("tests/distribute/test_replica_options.py", "tests/experiments/test_paper_runs.py",
         "tests/experiments/test_multi_worker_runner.py", "tests/mcmc/test_estimators.py",
         "tests/experiments/test_multi_worker_files.py", "tests/test_train_experiment.py",
         "tests/distribute/test_one_replica.py", "tests/optimizers/test_option_table.py",
         "tests/optimizers/test_keras_semantics.py")
LAST = ("tests/distribute/test_replicas.py",)


def pytest_collection_modifyitems(session, config, items):  # pylint: disable=unused-argument
    rank = {name: i for i, name in enumerate(FIRST)}
    rank.update({name: len(FIRST) + 2 + i for i, name in enumerate(LAST)})
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(FIRST) + 1))  # stable: the rest keep their order
