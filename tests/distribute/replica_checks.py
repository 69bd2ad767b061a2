"""Every 2- and 4-replica check of tests/distribute in one process: `python replica_checks.py OUT_DIR`.

Logical CPU devices must be configured before TensorFlow starts, and each
start of TensorFlow costs seconds of CPU; so one process configures 4 logical
CPUs and runs, in turn, `replicas_script.py` on 2 replicas and on 4 (`quick`) and
`options_script.py` on 2, each on the first n devices and writing its JSON
into OUT_DIR (`replicas2.json`, `replicas4.json`, `options/options.json`).
The `MirroredStrategy` reference of `multi_worker_script.py` stays in its own
process: run after the others here, its collectives failed ("Collective
instance ... expected data_type 2 but got 1": instance keys already used by
the float64 runs). The tests read them through the session fixture
`replica_checks` of tests/distribute/conftest.py.
"""

import os
import runpy
import sys
import time

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 4)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
OUT = os.path.abspath(sys.argv[1])

RUNS = [("replicas_script.py", ["2", "replicas2.json", "replicas2"]),
        ("replicas_script.py", ["4", "replicas4.json", "quick"]),
        ("options_script.py", [os.path.join("options", "options.json")])]

for script, args in RUNS:
    args = [a if a in ("2", "4", "quick", "mirrored") else os.path.join(OUT, a) for a in args]
    for path in args:
        if path.startswith(OUT):
            os.makedirs(os.path.dirname(path) if path.endswith(".json") else path, exist_ok=True)
    sys.argv = [os.path.join(HERE, script)] + args
    cpu = time.process_time()
    runpy.run_path(sys.argv[0], run_name="__main__")
    print(f"ran {script} {' '.join(args)}: {time.process_time() - cpu:.1f} s of CPU", flush=True)
print("REPLICA_CHECKS_OK")
