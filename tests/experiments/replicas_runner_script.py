"""The runner with --replicas=2 in a fresh process (logical CPU devices need one):
`python replicas_runner_script.py OUT_DIR`; writes OUT_DIR/results.json."""

import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["CUDA_VISIBLE_DEVICES"] = ""

from experiments import train  # noqa: E402
from experiments.training import ConfigMismatchError  # noqa: E402

out = sys.argv[1]
# 200 examples in global batches of 50 (25 per replica): 4 steps per effective epoch; L = 3.
TINY = dict(epochs=2, batch_size=50, max_train_examples=200, max_test_examples=100, steps_per_execution=4,
            verbose=0, strategy="mirrored", replicas=2)
results = {}


def config(**overrides):
    return train.config_from_dict({**TINY, **overrides})


def rows(workdir):
    with open(os.path.join(workdir, "metrics.csv")) as f:
        return f.read().splitlines()


parle = dict(optimizer="parle", langevin_steps=3, noise=1e-3)
results["parle"] = train.train_and_evaluate(config(**parle), os.path.join(out, "straight"))
train.train_and_evaluate(config(**parle, epochs=1), os.path.join(out, "resumed"))
train.train_and_evaluate(config(**parle), os.path.join(out, "resumed"))
straight, resumed = rows(os.path.join(out, "straight")), rows(os.path.join(out, "resumed"))
header = straight[0].split(",")
keep = [header.index(k) for k in ("epoch", "test_loss", "test_accuracy", "train_loss")]
results["resume_equal"] = [[r.split(",")[i] for i in keep] for r in straight[1:]] == \
    [[r.split(",")[i] for i in keep] for r in resumed[1:]]
results["metrics_header"] = header
results["metrics_rows"] = [[float(v) for v in r.split(",")] for r in straight[1:]]
results["resumed_rows"] = [[float(v) for v in r.split(",")] for r in resumed[1:]]
results["curves"] = os.path.getsize(os.path.join(out, "straight", "curves.png"))
from experiments.training.callbacks import read_scalar_events  # noqa: E402
events = read_scalar_events(os.path.join(out, "straight", "tensorboard"))["train"]
results["train_scalars"] = [[tag, step, value] for tag, step, value in events]
results["elastic_sgd"] = train.train_and_evaluate(config(optimizer="elastic_sgd", epochs=1), os.path.join(out, "e"))
for name, overrides, workdir in [("other_replicas", dict(replicas=1, strategy="default"), "straight"),
                                 ("too_many", dict(replicas=5), "fresh")]:
    try:
        train.train_and_evaluate(config(**parle, **overrides), os.path.join(out, workdir))
        results[name] = None
    except (ValueError, ConfigMismatchError) as error:
        results[name] = f"{type(error).__name__}: {error}"
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f)
print("RUNNER_OK")
