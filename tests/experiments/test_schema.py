"""One schema: an optimizer's constructor is the only declaration of its hyper-parameters.

Every keyword argument of every registered optimizer's constructor (less the Keras base options
and the run's seed) is a command-line flag, lands in config.json's `hyperparameters` block, reads
back, passes the resume check, and a changed value is refused on resume by name; the optimizer the
runner builds holds it (`get_config`). An argument added to an optimizer class becomes a flag with
no edit under experiments/. And experiments/ has no import circle (read from the sources).
"""

import ast
import dataclasses
import inspect
import os
import re

import pytest
from absl import flags

from control_opt.optimizers import Parle
from experiments import train
from experiments.training import config as config_module
from experiments.training import registry
from experiments.training.hyperparameters import hyperparameters_of
from experiments.training.rundir import ConfigMismatchError, RunDir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(*argv):
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    flag_values(["train", *argv])
    return train.overrides(flag_values)


def candidates(hp, default):
    """Values other than `default` to try, of the argument's kind (the constructor is the judge)."""
    if hp.kind is bool:
        return [not default]
    if hp.kind is int:
        return [default + 1, default + 2]
    if hp.kind is str:  # the alternatives its docstring quotes
        return [w for w in re.findall(r'"([A-Za-z_]+)"', hp.help) if w != default]
    if default in (None, 0, 0.0):
        return [0.5, 0.25, 2.0]
    return [default * 0.5, default * 2.0, 0.5]


def flag_text(name, value):
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no{name}"
    return f"--{name}={value!r}" if isinstance(value, float) else f"--{name}={value}"


def accepted(spec, hyperparameters):
    try:
        spec.build(hyperparameters, 0.1, 0)
    except (ValueError, TypeError):
        return False
    return True


CASES = [(opt, name) for opt, spec in registry.OPTIMIZERS.items() for name in spec.hyperparameters]


def test_the_cases_cover_every_argument_of_the_new_optimizers():
    names = {(o, n) for o, n in CASES}
    assert {("parle", "gamma_max"), ("parle", "rho_max"), ("parle", "reference"),
            ("elastic_sgd", "center_moving_rate"), ("entropy_sgd", "langevin_steps"), ("adam", "amsgrad")} <= names
    for opt, spec in registry.OPTIMIZERS.items():  # every constructor argument, less Keras' and the seed
        own = [p for p in inspect.signature(spec.cls.__init__).parameters.values()
               if p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in ("self", "seed", "learning_rate", "name")
               and p.name not in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
                                  "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                                  "gradient_accumulation_steps")]
        assert [p.name for p in own] == list(spec.hyperparameters), opt


@pytest.mark.parametrize("optimizer, name", CASES)
def test_every_constructor_argument_is_set_from_the_command_line_and_round_trips(optimizer, name, tmp_path):
    spec = registry.OPTIMIZERS[optimizer]
    hp = spec.hyperparameters[name]
    defaults = spec.resolved(optimizer, {})
    # A value the constructor accepts alone, or with one other argument changed too (e.g. Nesterov
    # needs a momentum): the constructor is the judge of what is valid.
    choices = [{name: v} for v in candidates(hp, defaults[name])]
    choices += [{name: v, other: w} for v in candidates(hp, defaults[name])
                for other, other_hp in spec.hyperparameters.items() if other != name
                for w in candidates(other_hp, defaults[other])]
    change = next((c for c in choices if accepted(spec, {**defaults, **c})), None)
    assert change is not None, f"no value accepted for {optimizer}.{name}"
    value = change[name]

    argv = [f"--optimizer={optimizer}", *(flag_text(k, v) for k, v in change.items())]
    overrides = parse(*argv)
    assert overrides[name] == value
    resolved = config_module.resolve_config(train.config_from_dict(overrides))
    assert resolved.hyperparameters[name] == value and getattr(resolved, name) == value
    assert resolved.hyperparameters == {**defaults, **change}

    run = RunDir(str(tmp_path / "wd"))
    run.write_config(resolved)
    assert run.read_config() == resolved  # config.json round trip
    run.check_config(resolved)  # resume with the same command: accepted
    run.check_config(config_module.resolve_config(train.config_from_dict(parse(*argv))))
    with pytest.raises(ConfigMismatchError, match=rf"{name}: workdir has {re.escape(repr(value))}, requested"):
        run.check_config(config_module.resolve_config(train.config_from_dict(dict(optimizer=optimizer))))

    built = spec.build(resolved.hyperparameters, 0.1, 0)
    config = built.get_config()
    if name in config:
        assert config[name] == value


def test_an_argument_added_to_an_optimizer_class_is_a_flag_with_no_edit_in_experiments(monkeypatch, tmp_path):
    class KnobParle(Parle):
        """Parle with one more argument.

        Args:
          knob: a new hyper-parameter of the optimizer.
        """

        def __init__(self, *args, knob=0.25, **kwargs):
            super().__init__(*args, **kwargs)
            self.knob = knob

        def get_config(self):
            return {**super().get_config(), "knob": self.knob}

    # Built as the registry would see the class itself changed: the signature is Parle's plus knob.
    KnobParle.__init__.__signature__ = inspect.signature(Parle.__init__).replace(parameters=[
        *[p for p in inspect.signature(Parle.__init__).parameters.values() if p.kind is not p.VAR_KEYWORD],
        inspect.Parameter("knob", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=0.25),
        inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
    monkeypatch.setitem(registry.OPTIMIZERS, "parle", registry.OptimizerSpec(
        cls=KnobParle, defaults=registry.OPTIMIZERS["parle"].defaults, replica_local=True))
    assert "knob" in hyperparameters_of(KnobParle) and "knob" in registry.hyperparameter_names()
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    assert "a new hyper-parameter of the optimizer" in flag_values["knob"].help
    flag_values(["train", "--optimizer=parle", "--knob=0.75"])
    resolved = config_module.resolve_config(train.config_from_dict(train.overrides(flag_values)))
    assert resolved.hyperparameters["knob"] == 0.75
    run = RunDir(str(tmp_path / "wd"))
    run.write_config(resolved)
    assert run.read_config().hyperparameters["knob"] == 0.75
    assert registry.OPTIMIZERS["parle"].build(resolved.hyperparameters, 0.1, 0).knob == 0.75
    # A workdir written before the argument existed resumes: the missing key counts as its default.
    old = dict(resolved.hyperparameters)
    del old["knob"]
    run.write_config(dataclasses.replace(resolved, hyperparameters=old))
    run.check_config(config_module.resolve_config(train.config_from_dict(dict(optimizer="parle"))))


def test_an_unknown_flag_or_key_fails_loudly_and_names_the_arguments():
    with pytest.raises(ValueError, match=r"unknown config key\(s\): gama.*arguments: .*gamma"):
        train.config_from_dict(dict(gama=0.1))
    with pytest.raises(ValueError, match=r"rho does not apply to optimizer 'sgd', which takes: momentum, nesterov"):
        config_module.resolve_config(dict(optimizer="sgd", rho=0.1))
    with pytest.raises(ValueError, match=r"langevin_steps of optimizer 'entropy_sgd' must be of type int"):
        config_module.resolve_config(dict(langevin_steps=2.5))
    with pytest.raises(flags.IllegalFlagValueError):
        parse("--langevin_steps=2.5")


def test_a_flat_config_json_of_before_the_block_still_resumes(tmp_path):
    resolved = config_module.resolve_config(dict(optimizer="sgd"))
    flat = {**config_module.flat_config(resolved), "rho": None, "langevin_steps": None}
    flat.pop("l2")  # older still: sgd did not take l2 then
    run = RunDir(str(tmp_path))
    import json
    with open(run.config, "w") as f:
        json.dump(flat, f)
    run.check_config(resolved)
    assert run.read_config().hyperparameters == {"momentum": 0.9, "nesterov": True}


# ------------------------------------------------------------------ no import circles


def _modules():
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "experiments")):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[name.removesuffix(".__init__")] = path
    return found


def import_graph():
    """{module: {experiments modules it imports}} from the sources (module- and function-level imports).
    `from P import N` is an edge to P.N when that is a module, else to P; a package's own
    `__init__` importing its children is not an edge (Python runs it first, whoever asks)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        edges = set()
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            for target in targets:
                if target in modules and target != name and not target.startswith(name + "."):
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph):
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                found.append(stack[stack.index(child):] + [child])
            elif child not in state:
                visit(child, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_experiments_has_no_import_circles():
    graph = import_graph()
    assert "experiments.training.session" in graph["experiments.training.distributed_loop"]
    assert cycles(graph) == []
    # The control: the circle this issue removed (run <-> distributed_loop) is found when put back.
    broken = {**graph, "experiments.training.distributed_loop":
              graph["experiments.training.distributed_loop"] | {"experiments.training.run"}}
    assert cycles(broken)


def test_the_multi_worker_strategy_is_registered_explicitly_in_the_registry():
    source = inspect.getsource(registry)
    assert 'register_strategy("multi_worker")' in source and "multi_worker" in registry.STRATEGIES
    assert "register_strategy" not in inspect.getsource(__import__("experiments.training.distributed_loop",
                                                                   fromlist=["x"]))


def test_train_py_is_a_page_of_flags():
    with open(os.path.join(ROOT, "experiments", "train.py")) as f:
        lines = f.read().splitlines()
    assert len(lines) <= 130
