"""Reading the standard files of the image data sets, defensively and without downloading.

  IDX         MNIST's format (LeCun): `read_idx`, gzipped or not
  folders and .tar.gz archives: `read_members` reads named files from either
  pickles     `restricted_unpickle`: the CIFAR "python version" without the
              plain unpickler

Every failure raises `DataFileError` (a `ValueError`) or `MissingDataError` (a
`FileNotFoundError`) whose message names the file and says which files are
expected.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
import tarfile
import zlib

import numpy as np

__all__ = ["DataFileError", "MissingDataError", "read_idx", "read_members", "restricted_unpickle"]


class DataFileError(ValueError):
    """A data file exists but is truncated or malformed."""


class MissingDataError(FileNotFoundError):
    """The files a loader needs are not there."""


_GZIP_MAGIC = b"\x1f\x8b"
_DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)


def _maybe_gunzip(raw: bytes, where: str, expected: str) -> bytes:
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except _DECOMPRESS_ERRORS as e:
        raise DataFileError(f"{where}: truncated or corrupt gzip data ({e}); {expected}") from None


def read_idx(path: str, *, ndim: int, expected: str) -> np.ndarray:
    """A uint8 IDX array (magic 0x0000 0x08 ndim, then ndim big-endian uint32 sizes, then the bytes).

    Gzipped files are recognized by their content, not their name.

    Raises:
      DataFileError: bad magic, type or rank, or a size that disagrees with the header.
    """
    with open(path, "rb") as f:
        raw = _maybe_gunzip(f.read(), path, expected)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != ndim:
        found = raw[:4].hex() if len(raw) >= 4 else f"{len(raw)} bytes"
        raise DataFileError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) "
                            f"(expected magic 000008{ndim:02x}, found {found}); {expected}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path}: truncated IDX header ({len(raw)} bytes); {expected}")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    size = math.prod(dims)
    if len(raw) - header != size:
        raise DataFileError(f"{path}: truncated or malformed: the header announces shape {dims} ({size} bytes) "
                            f"but {len(raw) - header} bytes follow; {expected}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def read_members(source: str, names: list[str], *, prefix: str = "", expected: str) -> dict[str, bytes]:
    """The bytes of `names` from a folder or from the `prefix/`-folder of a .tar.gz archive.

    Archives are read in memory, member by member; nothing is extracted to disk.

    Raises:
      MissingDataError: a file (or archive member) is missing.
      DataFileError: the archive is truncated or corrupt.
    """
    if os.path.isdir(source):
        out = {}
        for name in names:
            path = os.path.join(source, name)
            if not os.path.isfile(path):
                raise MissingDataError(f"missing {path}; {expected}")
            with open(path, "rb") as f:
                out[name] = f.read()
        return out
    wanted = {f"{prefix}/{n}" if prefix else n: n for n in names}
    out = {}
    try:
        with tarfile.open(source, "r:gz") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    out[wanted[member.name]] = archive.extractfile(member).read()
    except (tarfile.TarError, *_DECOMPRESS_ERRORS) as e:
        raise DataFileError(f"{source}: truncated or corrupt .tar.gz archive ({e}); {expected}") from None
    missing = [m for m, n in wanted.items() if n not in out]
    if missing:
        raise MissingDataError(f"{source}: the archive has no member {missing[0]}; {expected}")
    return out


def _ndarray_reconstructor():
    # numpy's own `_reconstruct` (numpy.core.multiarray in numpy 1, numpy._core in 2),
    # found without importing the deprecated module path.
    return np.ndarray.__reduce__(np.zeros(1, np.uint8))[0]


class _RefusedGlobal(pickle.UnpicklingError):
    pass


def _latin1_encode(text, encoding="utf-8"):
    # How Python 3 pickles bytes at protocol 2: _codecs.encode(text, "latin1").
    if encoding not in ("latin1", "latin-1"):
        raise _RefusedGlobal(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# The globals a CIFAR "python version" pickle references: the batches are dicts of
# lists, strings and numpy uint8 arrays, pickled by Python 2 (protocol 2). An array
# unpickles through numpy.core.multiarray._reconstruct(numpy.ndarray, shape, dtype)
# followed by ndarray.__setstate__, and its dtype through numpy.dtype. A batch
# re-pickled by Python 3 at protocol 2 also stores bytes as
# _codecs.encode(text, "latin1"), admitted for latin-1 only. Nothing else (in
# particular no callable that could run code) is admitted.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _ndarray_reconstructor,
    ("numpy._core.multiarray", "_reconstruct"): _ndarray_reconstructor,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        factory = _ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            raise _RefusedGlobal(f"refused to load the global {module}.{name}")
        return factory()


def restricted_unpickle(raw: bytes, where: str, expected: str):
    """Unpickles a CIFAR python-version batch admitting only numpy arrays, lists, dicts and strings.

    Python 2's strings are decoded as latin-1 (numpy's own advice for its arrays).

    Raises:
      DataFileError: the pickle references anything else (a pickle can run code;
        the message says to use the binary version), or is truncated or corrupt.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _RefusedGlobal as e:
        raise DataFileError(f"{where}: {e}: this is not a plain CIFAR batch, and a pickle can run code, so it "
                            f"is not loaded; use the binary version of the data set instead; {expected}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error) as e:
        raise DataFileError(f"{where}: truncated or corrupt pickle ({type(e).__name__}: {e}); {expected}") from None
