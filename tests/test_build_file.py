"""Bazel cannot fetch its rules offline here, so this test keeps BUILD honest:
every module, test and entry point has a target, and every target's sources exist;
every py_test runs its own test file through the shared tests/pytest_main.py,
which really runs pytest. It also checks that .ci/run runs the README's test
command as written."""

import ast
import os
import re
import subprocess
import sys

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


SHARED_MAIN = "tests/pytest_main.py"


def build_calls(rule):
    """Every `rule(...)` call of BUILD, as a dict of its literal keyword arguments."""
    tree = ast.parse(open(os.path.join(ROOT, "BUILD")).read(), filename="BUILD")
    return [{k.arg: ast.literal_eval(k.value) for k in node.keywords}
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == rule]


def py_test_snippet(test_file):
    """The BUILD target a new test file needs (see the comment above the tests in BUILD)."""
    parts = os.path.splitext(test_file)[0].split("/")[1:]
    return (f'py_test(\n    name = "{"_".join(parts)}",\n    srcs = ["{test_file}", "{SHARED_MAIN}"],\n'
            f'    main = "{SHARED_MAIN}",\n    args = ["$(rootpath {test_file})"],\n    size = "medium",\n'
            f'    deps = [":control_opt", ":test_support"],\n)')


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


def test_every_test_file_has_a_py_test():
    tested = {call["srcs"][0] for call in build_calls("py_test") if call.get("srcs")}
    test_files = sorted(f for f in python_files()
                        if f.startswith("tests/") and os.path.basename(f).startswith("test_"))
    missing = [f for f in test_files if f not in tested]
    assert not missing, "no py_test runs " + ", ".join(missing) + "; add to BUILD:\n\n" + "\n\n".join(
        py_test_snippet(f) for f in missing)


def test_the_proposed_snippet_is_a_valid_target():
    tree = ast.parse(py_test_snippet("tests/mcmc/test_new.py"))
    (call,) = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert kwargs["name"] == "mcmc_test_new"
    check_py_test_form(kwargs, check_exists=False)


def test_every_py_test_runs_its_own_file_through_the_shared_main():
    # A py_test whose main is the test file itself runs nothing: the files have no __main__.
    calls = build_calls("py_test")
    assert calls
    for call in calls:
        check_py_test_form(call)


def check_py_test_form(call, check_exists=True):
    """The one form of a py_test (the comment above the tests in BUILD)."""
    name, srcs = call["name"], call.get("srcs", [])
    assert len(srcs) == 2 and srcs[1] == SHARED_MAIN, (
        f"py_test {name}: srcs must be [<its test file>, {SHARED_MAIN!r}], got {srcs}")
    test_file = srcs[0]
    assert test_file.startswith("tests/") and os.path.basename(test_file).startswith("test_"), (
        f"py_test {name}: the first of srcs must be a tests/**/test_*.py file, got {test_file}")
    assert call.get("main") == SHARED_MAIN, f"py_test {name}: main must be {SHARED_MAIN!r}"
    assert call.get("args") == [f"$(rootpath {test_file})"], (
        f"py_test {name}: args must be ['$(rootpath {test_file})'], got {call.get('args')}")
    assert not check_exists or os.path.exists(os.path.join(ROOT, test_file)), (
        f"py_test {name}: {test_file} does not exist")


def run_shared_main(directory, *args, env=None):
    """Runs tests/pytest_main.py as Bazel would: from the directory holding the files."""
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "XML_OUTPUT_FILE")}
    environment.update(env or {})
    return subprocess.run([sys.executable, os.path.join(ROOT, SHARED_MAIN), *args], cwd=directory,
                          env=environment, capture_output=True, text=True, timeout=120)


def test_shared_main_runs_pytest_on_the_given_file(tmp_path):
    (tmp_path / "test_passes.py").write_text(
        "import pathlib\n\n"
        "def test_passes():\n"
        "    pathlib.Path('ran').write_text('yes')\n"
        "    assert 1 + 1 == 2\n")
    (tmp_path / "test_fails.py").write_text(
        "def test_passes():\n    assert True\n\n"
        "def test_fails():\n    assert 1 + 1 == 3\n")
    (tmp_path / "test_empty.py").write_text("VALUE = 1\n")
    passed = run_shared_main(tmp_path, "test_passes.py", env={"XML_OUTPUT_FILE": str(tmp_path / "report.xml")})
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert (tmp_path / "ran").read_text() == "yes"           # the test body ran, not only its import
    assert "1 passed" in passed.stdout
    assert 'tests="1"' in (tmp_path / "report.xml").read_text()   # the JUnit report Bazel asks for
    failed = run_shared_main(tmp_path, "test_fails.py")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "1 failed, 1 passed" in failed.stdout
    empty = run_shared_main(tmp_path, "test_empty.py")        # collecting nothing is not a pass
    assert empty.returncode == 5, empty.stdout + empty.stderr
    usage = run_shared_main(tmp_path)
    assert usage.returncode != 0 and "no test file given" in usage.stderr
    assert not (tmp_path / ".pytest_cache").exists()


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
