"""The runner's `--strategy=multi_worker` path, for test_multi_worker_runner.py.

    python multi_worker_runner_script.py worker INDEX PORT0,PORT1 WORKDIR [STALL_EPOCH]
        one of 2 workers (TF_CONFIG on 127.0.0.1); with STALL_EPOCH it sleeps after writing
        that epoch's checkpoint (so that the test can kill it there)
    python multi_worker_runner_script.py fit WORKDIR        Keras fit, --strategy=mirrored --replicas=2
"""

import json
import os
import sys
import time

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
MODE = sys.argv[1]
if MODE == "worker":
    INDEX, PORTS, WORKDIR = int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
    STALL = int(sys.argv[5]) if len(sys.argv) > 5 else None
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in PORTS]},
                                          "task": {"type": "worker", "index": INDEX}})
else:
    WORKDIR = sys.argv[2]

from experiments import train  # noqa: E402
from experiments.training import distributed_loop  # noqa: E402

# 400 examples in global batches of 50 (25 per replica): 8 steps per effective epoch; L = 3.
CONFIG = dict(epochs=3, batch_size=50, max_train_examples=400, max_test_examples=200, verbose=0, replicas=2,
              optimizer="parle", langevin_steps=3, noise=1e-3, checkpoint_every=1)

if MODE == "worker":
    if STALL is not None:
        save = distributed_loop._save_local

        def stalling_save(path, epoch, worker, variables):
            save(path, epoch, worker, variables)
            if epoch == STALL:
                print(f"STALLED {epoch}", flush=True)
                time.sleep(120)
        distributed_loop._save_local = stalling_save
    summary = train.train_and_evaluate(train.config_from_dict({**CONFIG, "strategy": "multi_worker"}), WORKDIR)
else:
    summary = train.train_and_evaluate(train.config_from_dict({**CONFIG, "strategy": "mirrored"}), WORKDIR)
print("SUMMARY " + json.dumps(summary), flush=True)
print("RUNNER_OK", flush=True)
