"""Smoke test of `python -m experiments.hj_smoothing` (small grids)."""

import os
import sys

from absl import flags
import matplotlib.image
import numpy as np
import pytest

from experiments import hj_smoothing
from tests.support import processes

SMALL = hj_smoothing.SmoothingConfig(times=(0.1, 0.5), time_2d=0.3, beta=5.0, num_points=121,
                                     num_points_2d=31)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def assert_nontrivial_png(path):
    assert os.path.getsize(path) > 10_000
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert np.std(image[..., :3]) > 0.05   # not a blank canvas


def test_make_figures_writes_the_pngs(tmp_path):
    workdir = tmp_path / "figures"
    paths = hj_smoothing.make_figures(SMALL, str(workdir))
    assert [os.path.basename(p) for p in paths] == ["hj_smoothing_1d.png", "hj_smoothing_2d.png"]
    for path in paths:
        assert_nontrivial_png(path)
    assert sorted(os.listdir(workdir)) == ["hj_smoothing_1d.png", "hj_smoothing_2d.png"]   # no temp files


@pytest.mark.parametrize("change,match", [
    (dict(times=(0.1, 0.0)), r"`times` must be finite numbers > 0"),
    (dict(times=()), r"`times` must hold at least one time"),
    (dict(time_2d=-1.0), r"`time_2d`"),
    (dict(beta=0.0), r"`beta`"),
    (dict(num_points=2), r"`num_points` must be an integer >= 3"),
    (dict(margin=0.5), r"`margin`"),
])
def test_bad_config_is_a_clear_error(tmp_path, change, match):
    config = hj_smoothing.SmoothingConfig(**{**SMALL.__dict__, **change})
    with pytest.raises(ValueError, match=match):
        hj_smoothing.make_figures(config, str(tmp_path))
    assert not os.listdir(tmp_path)


def parse(*argv):
    flag_values = flags.FlagValues()
    hj_smoothing.define_flags(flag_values)
    flag_values(["hj_smoothing", *argv])
    return flag_values


def test_flags_make_the_config():
    config = hj_smoothing.config_from_flags(parse("--times=0.1,0.4", "--beta=3", "--num_points=51"))
    assert config.times == (0.1, 0.4) and config.beta == 3.0 and config.num_points == 51
    assert parse().workdir == "./runs/hj_smoothing"


@pytest.mark.parametrize("argv,match", [
    (["--times=0.1,-1"], r"--times must be a comma list of finite numbers > 0"),
    (["--times=0.1,abc"], r"--times must be a comma list"),
    (["--beta=0"], r"--beta must be a finite number > 0"),
    (["--time_2d=-0.5"], r"--time_2d must be a finite number > 0"),
    (["--num_points=2"], r"num_points"),
])
def test_bad_flag_is_a_clear_error(argv, match):
    with pytest.raises(flags.IllegalFlagValueError, match=match):
        parse(*argv)


def test_main_prints_where_the_figures_went(tmp_path, monkeypatch, capsys):
    flag_values = parse(f"--workdir={tmp_path}", "--times=0.1", "--num_points=61", "--num_points_2d=21")
    monkeypatch.setattr(hj_smoothing, "FLAGS", flag_values)
    hj_smoothing.main(["hj_smoothing"])
    out = capsys.readouterr().out
    assert f"Wrote {tmp_path / 'hj_smoothing_1d.png'}" in out
    assert f"Wrote {tmp_path / 'hj_smoothing_2d.png'}" in out


def test_python_dash_m_entry_point(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "experiments.hj_smoothing", f"--workdir={tmp_path}",
               "--times=0.1,0.5", "--num_points=121", "--num_points_2d=31"]
    done = processes.run(command, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Wrote {tmp_path / 'hj_smoothing_1d.png'}" in done.stdout
    assert_nontrivial_png(tmp_path / "hj_smoothing_2d.png")
