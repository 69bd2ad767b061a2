"""End-to-end smoke test of `python -m experiments.sde_landscape` (tiny settings)."""

import json
import os

from absl import flags
import matplotlib.image
import numpy as np
import pytest

from experiments import sde_landscape

TINY = sde_landscape.LandscapeConfig(num_paths=16, t_final=0.4, dt=0.04, inner_steps=2,
                                     hopf_lax_max_iterations=5, num_plot_paths=3)


def test_run_experiment_writes_json_table_and_png(tmp_path):
    workdir = str(tmp_path / "run")
    results = sde_landscape.run_experiment(TINY, workdir)
    assert sorted(os.listdir(workdir)) == ["results.json", "sde_landscape.png"]  # no temp files left
    with open(os.path.join(workdir, "results.json")) as f:
        saved = json.load(f)
    assert saved["config"]["num_paths"] == 16
    for name, controls in (("1d", 4), ("2d", 3)):
        summary = saved["landscapes"][name]
        assert len(summary["controls"]) == controls
        for entry in summary["controls"].values():
            total = entry["fraction_narrow"] + entry["fraction_wide"] + entry["fraction_other"]
            assert total == pytest.approx(1.0)
            assert np.isfinite(entry["cost_mean"]) and entry["cost_stderr"] >= 0
        # The narrow valley is the deeper one: that is the point of the experiment.
        assert summary["valleys"]["narrow"]["f"] < summary["valleys"]["wide"]["f"]
    assert "local entropy (SGLD)" in results["table"] and "Hopf-Lax" in results["table"]
    image = matplotlib.image.imread(os.path.join(workdir, "sde_landscape.png"))
    assert image.shape[0] > 300 and image.shape[1] > 1000 and np.std(image[..., :3]) > 0.05


@pytest.mark.parametrize("change, match", [
    (dict(num_paths=1), "`num_paths`"),
    (dict(dt=0.0), "`dt`"),
    (dict(gamma=-1.0), "`gamma`"),
    (dict(hopf_lax_damping=1.0), "`hopf_lax_damping`"),
    (dict(dims=(3,)), "`dims`"),
])
def test_bad_config_is_a_clear_error(tmp_path, change, match):
    config = sde_landscape.LandscapeConfig(**{**TINY.__dict__, **change})
    with pytest.raises(ValueError, match=match):
        sde_landscape.run_experiment(config, str(tmp_path))
    assert not os.listdir(tmp_path)


def test_flags_make_the_config():
    flag_values = flags.FlagValues()
    sde_landscape.define_flags(flag_values)
    flag_values(["sde_landscape", "--num_paths=7", "--gamma=0.5", "--dims=2"])
    config = sde_landscape.config_from_flags(flag_values)
    assert config.num_paths == 7 and config.gamma == 0.5 and config.dims == (2,)
    assert flag_values.workdir == "./runs/sde_landscape"
    with pytest.raises(flags.Error):
        flag_values(["sde_landscape", "--num_pahts=7"])  # a misspelt override fails loudly
