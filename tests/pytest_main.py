"""The shared `main` of every `py_test` in BUILD: runs pytest on the given test file(s).

    python tests/pytest_main.py tests/pde/test_viscous.py [more pytest arguments]

The test files hold pytest functions and no `__main__` of their own, so a Bazel
`py_test` whose `main` were the test file would import it, define the tests and
exit 0 without running any. Instead every `py_test` has

    srcs = ["tests/<dir>/test_x.py", "tests/pytest_main.py"],
    main = "tests/pytest_main.py",
    args = ["$(rootpath tests/<dir>/test_x.py)"],

and this script hands its arguments to `pytest.main` and exits with pytest's
status: 0 when every test passed, non-zero when one failed, errored, or when
no test was collected (status 5), so that an empty target cannot pass.

Under Bazel (`bazel test` sets `XML_OUTPUT_FILE` and runs in the read-only
runfiles tree) it also writes the JUnit report Bazel asks for and turns off
pytest's cache, which would write next to the sources.
"""

from __future__ import annotations

import os
import sys

import pytest


def pytest_arguments(argv, environ):
    """The arguments for `pytest.main`: `argv` (the test file(s) first), plus
    `-p no:cacheprovider` and, when Bazel asks for one, the JUnit XML report."""
    if not argv:
        raise SystemExit("usage: pytest_main.py TEST_FILE [pytest arguments...]: no test file given.")
    arguments = list(argv) + ["-p", "no:cacheprovider"]
    xml = environ.get("XML_OUTPUT_FILE")
    if xml:
        arguments.append(f"--junitxml={xml}")
    return arguments


def main(argv=None, environ=None):
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    return int(pytest.main(pytest_arguments(argv, environ)))


if __name__ == "__main__":
    sys.exit(main())
