"""Atomic writes: a failed write leaves the old file whole and no temporary file behind."""

import os

import pytest

from control_opt._internal.atomic import atomic_path, atomic_write


def test_atomic_write_replaces_and_keeps_usual_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    atomic_write(str(path), lambda f: f.write("new"))
    assert path.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")

    def broken(f):
        f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(str(path), broken)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_path_keeps_the_suffix_for_format_sniffing_writers(tmp_path):
    with atomic_path(str(tmp_path / "m.keras"), suffix=".keras") as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
        open(tmp, "w").write("x")
    assert (tmp_path / "m.keras").read_text() == "x"
