"""The ZCA cache is verified by a checksum over its content: a truncated, a bit-flipped and a
right-shaped but wrong-valued cache file are each named on stdout and recomputed (the result equals
a fresh `zca_fit`), and the rewritten file is good again."""

import os

import numpy as np
import pytest

from control_opt.datasets import whitening

RAW = np.random.default_rng(0).integers(0, 256, (40, 2, 2, 3)).astype(np.uint8)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTROL_OPT_CACHE_DIR", str(tmp_path))
    expected = whitening.zca_fit(RAW, whitening.ZCA_EPSILON, standardize=True)
    whitening.cached_zca(RAW)
    (name,) = [n for n in os.listdir(tmp_path) if n.startswith("zca-")]
    return tmp_path / name, expected


def check_recomputed(path, expected, capsys):
    mean, matrix = whitening.cached_zca(RAW)
    assert f"ZCA cache {path} is damaged" in capsys.readouterr().out
    np.testing.assert_array_equal(mean, expected[0])
    np.testing.assert_array_equal(matrix, expected[1])
    whitening.cached_zca(RAW)  # rewritten: read back silently
    assert "damaged" not in capsys.readouterr().out


def test_a_good_cache_is_read_silently(cache, capsys):
    path, expected = cache
    np.testing.assert_array_equal(whitening.cached_zca(RAW)[1], expected[1])
    assert capsys.readouterr().out == ""


def test_a_truncated_cache_is_named_and_recomputed(cache, capsys):
    path, expected = cache
    path.write_bytes(path.read_bytes()[:200])
    check_recomputed(path, expected, capsys)


def test_a_bit_flipped_cache_is_named_and_recomputed(cache, capsys):
    path, expected = cache
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    check_recomputed(path, expected, capsys)


def test_a_cache_with_the_right_shapes_and_wrong_values_is_named_and_recomputed(cache, capsys):
    path, expected = cache
    with np.load(path) as f:
        checksum = f["checksum"]
    np.savez(path, mean=expected[0] + 1.0, matrix=expected[1], checksum=checksum)
    check_recomputed(path, expected, capsys)
