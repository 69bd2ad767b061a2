"""bench/gpu_distributed.py keeps working without a GPU: --tiny (the default on CPU) runs data-parallel
SGD, Parle and Elastic-SGD on 2 logical CPUs and reports images/s. A fresh process: the logical devices
must be configured before TensorFlow starts."""

import json
import os
import sys

import pytest

from tests.support import processes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_tiny_mode_reports_images_per_second_of_each_optimizer():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = processes.run([sys.executable, "-m", "bench.gpu_distributed", "--tiny"], cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-2])
    assert result["tiny"] and result["replicas"] == 2 and result["model"] == "mnistfc"
    assert set(result["images_per_s"]) == {"sgd", "parle", "elastic_sgd"}
    assert all(v > 0 for v in result["images_per_s"].values()) and result["parle_over_sgd"] > 0
    assert "Parle / SGD" in lines[-1]


def test_write_refuses_tiny_results(monkeypatch):
    # In-process (main() parses its flags and checks --write before touching a device): no second
    # TensorFlow start-up for a refusal.
    from bench import gpu_distributed
    monkeypatch.setattr(sys, "argv", ["gpu_distributed", "--tiny", "--write"])
    monkeypatch.setattr(gpu_distributed, "run", lambda *a, **k: dict(
        model="mnistfc", input_shape=[8, 8, 1], batch_per_replica=4, replicas=2, device="cpu",
        images_per_s=dict(sgd=1.0, parle=1.0, elastic_sgd=1.0), parle_over_sgd=1.0, elastic_sgd_over_sgd=1.0))
    monkeypatch.setattr(gpu_distributed, "write", lambda *a, **k: pytest.fail("--write wrote a tiny result"))
    with pytest.raises(SystemExit, match="refuses tiny"):
        gpu_distributed.main()
