"""bench/gpu_smoke.py keeps working without a GPU: its --tiny mode (the default on CPU) runs
All-CNN-BN with SGD and Entropy-SGD on 8x8x3 inputs and reports images/s and the step-time ratio."""

import json
import sys

import pytest

from bench import gpu_smoke

# Tiny fits stop before Entropy-SGD's first outer step (L = 20): expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*before the first outer step:UserWarning")


def test_tiny_mode_runs_both_optimizers_and_reports(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["gpu_smoke", "--tiny", "--steps=5"])
    gpu_smoke.main()
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-2])
    assert result["tiny"] and result["model"] == "allcnn_bn" and result["input_shape"] == [8, 8, 3]
    assert set(result["ms_per_step"]) == set(result["images_per_s"]) == {"sgd", "entropy_sgd"}
    assert all(v > 0 for v in result["images_per_s"].values()) and result["ratio"] > 0
    assert "Entropy-SGD / SGD step time" in lines[-1]


def test_write_refuses_tiny_results(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["gpu_smoke", "--tiny", "--write"])
    monkeypatch.setattr(gpu_smoke, "run", lambda *a, **k: dict(
        model="allcnn_bn", input_shape=[8, 8, 3], batch=8, device="CPU", ms_per_step=dict(sgd=1.0, entropy_sgd=2.0),
        images_per_s=dict(sgd=8e3, entropy_sgd=4e3), ratio=2.0))
    try:
        gpu_smoke.main()
    except SystemExit as e:
        assert "refuses tiny" in str(e)
    else:
        raise AssertionError("--write accepted a tiny result")
