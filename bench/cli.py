"""A flag's value read from `sys.argv` before argparse runs: device setup must happen before
TensorFlow starts, earlier than a benchmark parses its arguments. Imports nothing heavy."""

import sys

__all__ = ["argv_value"]


def argv_value(name, default=None):
    """The value of `--name VALUE` or `--name=VALUE` on the command line, else `default`."""
    for i, arg in enumerate(sys.argv):
        if arg == f"--{name}" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default
