"""experiments.config_flags, and the flags of every entry point: derived, documented, never on import."""

import dataclasses
import os
import re
import sys

from absl import flags
import pytest

from experiments import config_flags
from tests.support import processes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class Example:
    """A config with one field of every kind.

    Attributes:
      steps: An int.
      rate: A float,
        continued on a second line.
      flag: A bool.
      name: A str.
      kind: An enum.
      limit: An optional int; None = no limit.
      scale: An optional float.
      dims: A list of ints.
    """

    steps: int = dataclasses.field(default=3, metadata=dict(lower_bound=1))
    rate: float = dataclasses.field(default=0.5, metadata=dict(check=(lambda v: v > 0, "--rate must be > 0")))
    flag: bool = False
    name: str = "a"
    kind: str = dataclasses.field(default="x", metadata=dict(choices=("x", "y")))
    limit: int | None = None
    scale: float | None = dataclasses.field(default=None, metadata=dict(help="Given by metadata."))
    dims: tuple[int, ...] = dataclasses.field(default=(1, 2), metadata=dict(choices=(1, 2, 3)))


def parse(*argv, cls=Example, **kwargs):
    flag_values = flags.FlagValues()
    names = config_flags.define_config_flags(cls, flag_values, **kwargs)
    flag_values(["prog", *argv])
    return flag_values, names


def test_every_field_becomes_a_flag_of_its_type_with_its_default():
    flag_values, names = parse()
    assert names == [f.name for f in dataclasses.fields(Example)]
    assert config_flags.config_from_flags(Example, flag_values) == Example()
    assert config_flags.overrides_from_flags(Example, flag_values, present_only=True) == {}


def test_values_are_converted_to_the_fields_types():
    flag_values, _ = parse("--steps=7", "--rate=2", "--flag", "--name=b", "--kind=y", "--limit=4", "--scale=0.25",
                           "--dims=3,1")
    config = config_flags.config_from_flags(Example, flag_values)
    assert config == Example(steps=7, rate=2.0, flag=True, name="b", kind="y", limit=4, scale=0.25, dims=(3, 1))
    assert isinstance(config.rate, float) and isinstance(config.dims[0], int)
    assert config_flags.overrides_from_flags(Example, flag_values, present_only=True)["dims"] == (3, 1)
    flag_values, _ = parse("--noflag", "--steps=2")
    assert config_flags.overrides_from_flags(Example, flag_values, present_only=True) == dict(flag=False, steps=2)


@pytest.mark.parametrize("argv, match", [
    (["--steps=0"], "steps"),
    (["--steps=1.5"], "steps"),
    (["--rate=-1"], "--rate must be > 0"),
    (["--kind=z"], "kind"),
    (["--dims=1,4"], "--dims must be a comma list of int values from 1, 2, 3"),
    (["--dims=1,a"], "--dims must be a comma list"),
    (["--limit=x"], "limit"),
    (["--stpes=3"], "stpes"),
])
def test_bad_values_fail_when_parsed_naming_the_flag(argv, match):
    with pytest.raises(flags.Error, match=match):
        parse(*argv)


def test_help_comes_from_the_docstring_or_metadata_plus_extra_help():
    flag_values, _ = parse(extra_help={"steps": "default per optimizer (a: 1)"})
    assert flag_values["rate"].help == "A float, continued on a second line."
    assert flag_values["scale"].help == "Given by metadata."
    assert flag_values["steps"].help == "An int; default per optimizer (a: 1)."
    assert "Each one of: 1, 2, 3" in flag_values["dims"].help


def test_a_field_without_help_or_of_an_unsupported_type_is_refused():
    @dataclasses.dataclass(frozen=True)
    class NoHelp:
        """No attributes section."""

        x: int = 1

    @dataclasses.dataclass(frozen=True)
    class Unsupported:
        """Bad.

        Attributes:
          x: A dict.
        """

        x: dict = dataclasses.field(default_factory=dict)

    with pytest.raises(ValueError, match=r"NoHelp.x has no help text"):
        parse(cls=NoHelp)
    with pytest.raises(TypeError, match=r"Unsupported.x: no flag for type"):
        parse(cls=Unsupported)


# ------------------------------------------------------------------ the entry points


def run_python(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return processes.run([sys.executable, *args], cwd=ROOT, env=env)


def test_importing_the_experiments_defines_no_flags():
    from experiments import hj_smoothing, sde_landscape
    from experiments.training import TrainConfig

    ours = ({"workdir"} | {f.name for f in dataclasses.fields(TrainConfig)}
            | {f.name for f in dataclasses.fields(hj_smoothing.SmoothingConfig)}
            | {f.name for f in dataclasses.fields(sde_landscape.LandscapeConfig)})
    code = ("import experiments.train, experiments.hj_smoothing, experiments.sde_landscape, experiments.landscapes, "
            "experiments.figures, experiments.config_flags, experiments.training.config, "
            "experiments.training.schedules, experiments.training.registry, experiments.training.data, "
            "experiments.training.rundir, experiments.training.callbacks, experiments.training.run, "
            "bench.bench_default_run\n"
            "from absl import flags\n"
            "print(sorted(flags.FLAGS))\n"
            "print([m for m in flags.FLAGS.flags_by_module_dict() if 'experiments' in m or 'bench' in m])\n")
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    defined, modules = result.stdout.strip().splitlines()[-2:]
    assert not ours & set(eval(defined)), "flags defined at import"  # pylint: disable=eval-used
    assert modules == "[]"


def helpfull_section(module):
    """{flag: help} of the flags `python -m module --helpfull` lists under the module itself."""
    result = run_python("-m", module, "--helpfull")
    text = result.stdout + result.stderr
    path = os.path.join(ROOT, *module.split(".")) + ".py:"
    assert path in text, text[-3000:]
    section = text.split(path + "\n", 1)[1]
    section = re.split(r"\n\S", section, maxsplit=1)[0]  # up to the next module's heading
    return {name: " ".join(body.split()) for name, body in
            re.findall(r"^  --(?:\[no\])?(\w+): (.*?)(?=^  --|\Z)", section, re.M | re.S)}


@pytest.mark.parametrize("module, config", [
    ("experiments.train", "experiments.training:TrainConfig"),
    ("experiments.hj_smoothing", "experiments.hj_smoothing:SmoothingConfig"),
    ("experiments.sde_landscape", "experiments.sde_landscape:LandscapeConfig"),
])
def test_helpfull_lists_every_config_field_with_its_help(module, config):
    import importlib

    module_name, cls_name = config.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    listed = helpfull_section(module)
    fields = {f.name for f in dataclasses.fields(cls)}
    if module == "experiments.train":  # the optimizers' constructor arguments instead of their block
        from experiments.training import registry
        fields = fields - {"hyperparameters"} | set(registry.hyperparameter_names())
    assert set(listed) == {"workdir"} | fields
    for name, text in listed.items():
        assert len(text.split("(default: ")[0].strip()) > 5, f"--{name} has no help: {text!r}"


def test_train_flags_are_the_ones_before_the_restructure_plus_strategy():
    # The flag names of experiments/train.py before it became experiments/training/ (git HEAD~).
    before = {"optimizer", "model", "dataset", "workdir", "epochs", "batch_size", "seed", "learning_rate",
              "lr_schedule", "momentum", "nesterov", "beta_1", "beta_2", "epsilon", "inner_steps",
              "langevin_steps", "langevin_learning_rate", "langevin_momentum", "langevin_nesterov", "gamma",
              "scoping", "noise", "mean_decay", "l2", "jit_compile", "steps_per_execution", "verbose",
              "max_train_examples", "max_test_examples"}
    flag_values = flags.FlagValues()
    from experiments import train

    paper_runs = {"config", "data_dir", "model_kwargs", "dataset_kwargs", "augment"}  # issue 10: --config=NAME
    replicas = {"replicas", "rho", "communication_period"}  # issue 9: --replicas=N, elastic_sgd, parle
    analysis = {"snapshot_every"}  # issue 11: weight snapshots for experiments.analyze
    runner_cost = {"checkpoint_every"}  # issue 12: a checkpoint every K effective epochs
    # issue 19: every constructor argument of every optimizer is a flag (Elastic-SGD's center_moving_rate,
    # Parle's gamma_max, rho_max, reference, Adam's amsgrad), and the multi-worker startup bound.
    schema = {"center_moving_rate", "gamma_max", "rho_max", "reference", "amsgrad", "startup_timeout_s"}
    authors = {"authors_code"}  # issue 17: Parle(authors_code=True), a flag with no edit in experiments/
    assert set(train.define_flags(flag_values)) == (before | {"strategy"} | paper_runs | replicas | analysis
                                                    | runner_cost | schema | authors)
    assert "default per optimizer (sgd: 0.1, adam: 0.01" in flag_values["learning_rate"].help
    assert "sgd, adam, entropy_sgd, entropy_adam, hopf_lax" in flag_values["optimizer"].help
