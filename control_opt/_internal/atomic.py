"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Everything the library and its experiments write (checkpoints, metrics, configs,
figures, caches, benchmark tables) goes through here, so that an interrupted run
loses nothing already written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["atomic_path", "atomic_write"]


def _file_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yields a temporary path in the directory of `path` (ending in `suffix`, for
    writers that infer the format from it); when the block ends without error the
    file is given the usual permissions (mkstemp makes it 0600) and renamed onto
    `path`, otherwise it is removed and `path` is left as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write(path, write, mode="w"):
    """Calls `write(file)` on a temporary file beside `path`, then renames it onto `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            write(f)
