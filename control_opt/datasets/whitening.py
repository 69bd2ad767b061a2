"""ZCA whitening, the Entropy-SGD paper's CIFAR preprocessing, cached by content.

The authors' `process_cifar.py` (github.com/ucla-vision/entropy-sgd, adapted from
Taco Cohen's gconv_experiments) first standardizes every image on its own (minus
its mean over pixels and channels, divided by its standard deviation with ddof=1;
a near-constant image keeps scale 1), then whitens with the training set's
statistics. With C = (X - m)^T (X - m) / (n - 1) = U diag(lambda) U^T the
covariance of the flattened training images,

    W = U diag(1 / (sqrt(lambda) + epsilon)) U^T,     x -> W (x - m),

applied to both splits. The regularizer epsilon = 1e-5 is added to the
*singular values* sqrt(lambda), as in that script (not to the eigenvalues, as
in some other ZCA code); the whitened training covariance is then
U diag(lambda / (sqrt(lambda) + epsilon)^2) U^T: the identity on every
direction whose standard deviation is well above epsilon.

The statistics (m, W: 3072 x 3072 for CIFAR; the eigendecomposition alone
took 29 s on two shared CPU cores) are computed once and kept in `cache_dir()`
(`zca-<hash>.npz`, about 75 MB in float64) under a name that hashes the training data and
the parameters, written atomically; applying them is one matrix product. The file also
holds a SHA-256 of its content (`checksum`, over `mean` and `matrix` as stored), checked
on every read: a truncated, bit-flipped or overwritten file (right shapes, wrong values)
is named on stdout and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import numpy as np

from control_opt._internal.atomic import atomic_write
from control_opt.datasets.registry import cache_dir

__all__ = ["ZCA_EPSILON", "per_image_standardize", "zca_fit", "zca_apply", "cached_zca"]

ZCA_EPSILON = 1e-5
_VERSION = 1  # bump when the computation changes: old cache files are then ignored
_CHUNK = 2048


def _standardize_rows(block):
    """Per-row standardization of a float64 block, in place: minus the mean, over the std (ddof=1)."""
    block -= block.mean(axis=1, keepdims=True)
    std = block.std(axis=1, ddof=1, keepdims=True) if block.shape[1] > 1 else np.ones((len(block), 1))
    std[std < 1e-8] = 1.0
    block /= std
    return block


def per_image_standardize(x):
    """Each example minus its own mean, over its own std (ddof=1); stds below 1e-8 become 1. float32."""
    x = np.asarray(x)
    flat = x.reshape(len(x), -1)
    out = np.empty(flat.shape, np.float32)
    for start in range(0, len(flat), _CHUNK):
        out[start:start + _CHUNK] = _standardize_rows(flat[start:start + _CHUNK].astype(np.float64))
    return out.reshape(x.shape)


def _blocks(flat, standardize):
    for start in range(0, len(flat), _CHUNK):
        block = flat[start:start + _CHUNK].astype(np.float64)
        yield start, (_standardize_rows(block) if standardize else block)


def zca_fit(x, epsilon=ZCA_EPSILON, *, standardize=False):
    """The mean `m` and ZCA matrix `W` (float64, D and D x D) of `x` (n, ...), flattened.

    With `standardize`, of the per-image standardized `x` (computed here, chunk by
    chunk in float64). With n > D the covariance is accumulated in float64, in
    chunks (n x D is never held in float64), and eigendecomposed. With n <= D
    (tiny data, tests) the same W comes from the thin SVD of the centered data:
    the covariance is zero outside the data's span, where W scales by 1 / epsilon.
    """
    flat = np.asarray(x).reshape(len(x), -1)
    n, d = flat.shape
    if n < 2:
        raise ValueError(f"ZCA whitening needs at least 2 training examples, got {n}")
    if n <= d:
        data = np.concatenate([block for _, block in _blocks(flat, standardize)])
        mean = data.mean(axis=0)
        _, singular_values, rows = np.linalg.svd((data - mean) / np.sqrt(n - 1), full_matrices=False)
        correction = 1.0 / (singular_values + epsilon) - 1.0 / epsilon
        return mean, np.eye(d) / epsilon + (rows.T * correction) @ rows
    mean = np.zeros(d)
    for _, block in _blocks(flat, standardize):
        mean += block.sum(axis=0)
    mean /= n
    cov = np.zeros((d, d))
    for _, block in _blocks(flat, standardize):
        block -= mean
        cov += block.T @ block
    cov /= n - 1
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    scale = 1.0 / (np.sqrt(np.clip(eigenvalues, 0.0, None)) + epsilon)
    return mean, (eigenvectors * scale) @ eigenvectors.T


def zca_apply(x, mean, matrix, *, standardize=False):
    """`W (x - m)` for every example of `x` (per-image standardized first with `standardize`), as float32.

    Computed in float64, chunk by chunk: W scales directions the training data
    does not span (e.g. the all-ones direction, which per-image standardization
    removes) by up to 1 / epsilon = 1e5, which would amplify float32 rounding.
    """
    x = np.asarray(x)
    flat = x.reshape(len(x), -1)
    out = np.empty(flat.shape, np.float32)
    for start, block in _blocks(flat, standardize):
        out[start:start + len(block)] = (block - mean) @ matrix
    return out.reshape(x.shape)


def _cache_path(raw_train, params):
    digest = hashlib.sha256()
    digest.update(json.dumps(dict(params, version=_VERSION, shape=list(raw_train.shape),
                                  dtype=str(raw_train.dtype)), sort_keys=True).encode())
    digest.update(np.ascontiguousarray(raw_train).data)
    return os.path.join(cache_dir(), f"zca-{digest.hexdigest()[:24]}.npz")


def _checksum(mean, matrix) -> str:
    digest = hashlib.sha256()
    for array in (mean, matrix):
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _read_cache(path, d):
    """(mean, matrix) of a verified cache file, or the reason it cannot be used."""
    try:
        with np.load(path, allow_pickle=False) as f:
            mean, matrix, checksum = f["mean"], f["matrix"], str(f["checksum"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        return None, f"unreadable ({type(e).__name__}: {e})"
    if mean.shape != (d,) or matrix.shape != (d, d):
        return None, f"shapes {mean.shape}, {matrix.shape}, expected ({d},), ({d}, {d})"
    if _checksum(mean, matrix) != checksum:
        return None, "its content does not match its checksum"
    return (mean, matrix), None


def cached_zca(raw_train, *, standardize=True, epsilon=ZCA_EPSILON, use_disk_cache=True):
    """`zca_fit(raw_train, epsilon, standardize=standardize)`, cached on disk.

    The cache file's name hashes the training data (as stored: the uint8 images)
    and the parameters; its content is verified by its checksum. A damaged
    cache (named on stdout) or an unwritable one only costs a recomputation.
    """
    path = _cache_path(raw_train, {"epsilon": float(epsilon), "per_image_standardize": bool(standardize)})
    d = int(np.prod(np.shape(raw_train)[1:]))
    if use_disk_cache and os.path.exists(path):
        found, why = _read_cache(path, d)
        if found is not None:
            return found
        print(f"ZCA cache {path} is damaged ({why}); recomputing it", flush=True)
    mean, matrix = zca_fit(raw_train, epsilon, standardize=standardize)
    if use_disk_cache:
        checksum = _checksum(mean, matrix)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, lambda f: np.savez(f, mean=mean, matrix=matrix, checksum=np.str_(checksum)), mode="wb")
        except OSError:
            pass  # the cache is an optimization only (e.g. read-only home)
    return mean, matrix
