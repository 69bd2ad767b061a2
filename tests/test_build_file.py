"""Bazel cannot fetch its rules offline here, so this test keeps BUILD honest:
every module, test and entry point has a target, and every target's sources exist.
It also checks that .ci/run runs the README's test command as written."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_targets():
    tree = ast.parse(open(os.path.join(ROOT, "BUILD")).read(), filename="BUILD")
    targets = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            kwargs = {k.arg: k.value for k in node.keywords}
            if "name" not in kwargs:  # load(), package()
                continue
            name = ast.literal_eval(kwargs["name"])
            srcs = ast.literal_eval(kwargs["srcs"]) if "srcs" in kwargs else []
            deps = ast.literal_eval(kwargs["deps"]) if "deps" in kwargs else []
            assert name not in targets, f"duplicate target {name}"
            targets[name] = (node.func.id, srcs, deps)
    return targets


def python_files():
    found = set()
    for top in ("control_opt", "experiments", "tests", "bench"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            if "__pycache__" in dirpath:
                continue
            found.update(os.path.relpath(os.path.join(dirpath, f), ROOT) for f in files if f.endswith(".py"))
    return found


def test_every_python_file_has_a_target_and_every_source_exists():
    targets = build_targets()
    covered = {src for _, srcs, _ in targets.values() for src in srcs}
    missing = sorted(python_files() - covered)
    assert not missing, f"BUILD has no target for: {missing}"
    for name, (_, srcs, _) in targets.items():
        for src in srcs:
            assert os.path.exists(os.path.join(ROOT, src)), f"target {name}: {src} does not exist"


def test_tests_are_py_test_and_experiments_are_py_binary():
    targets = build_targets()
    for name, (rule, srcs, _) in targets.items():
        for src in srcs:
            base = os.path.basename(src)
            if src.startswith("tests/") and base.startswith("test_"):
                assert rule == "py_test", f"{src} should be a py_test, is {rule} ({name})"
            if src.startswith("experiments/") and base != "__init__.py":
                assert rule in ("py_binary", "py_library"), (name, rule)
    binaries = {srcs[0] for rule, srcs, _ in targets.values() if rule == "py_binary"}
    for entry in ("experiments/train.py",):
        assert entry in binaries


def test_deps_name_existing_targets():
    targets = build_targets()
    for name, (_, _, deps) in targets.items():
        for dep in deps:
            if dep.startswith(":"):
                assert dep[1:] in targets, f"{name} depends on unknown {dep}"


def test_ci_runs_the_readme_test_command():
    readme = open(os.path.join(ROOT, "README.md")).read()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```(?:bash|sh)?\n(.*?)```", quick, re.S)
    commands = [c.strip() for c in commands]
    assert len(commands) == 2, commands
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert commands[1] in ci, (commands[1], ci)
