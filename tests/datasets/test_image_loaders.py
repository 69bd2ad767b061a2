"""control_opt.datasets: MNIST and CIFAR-10/100 from tiny files in each standard format,
the restricted unpickler, errors that name the files, and the cached ZCA whitening."""

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from control_opt import datasets
from control_opt.datasets import whitening

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets.registry, "_MEMORY_CACHE", {})
    monkeypatch.setenv("CONTROL_OPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CONTROL_OPT_DATA_DIR", raising=False)


# ----------------------------------------------------------------------------- MNIST

def idx_bytes(array):
    array = np.asarray(array, np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def write_mnist(folder, gz, n_train=12, n_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = dict(train_x=RNG.integers(0, 256, (n_train, 28, 28)), train_y=RNG.integers(0, 10, n_train),
                  test_x=RNG.integers(0, 256, (n_test, 28, 28)), test_y=RNG.integers(0, 10, n_test))
    names = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
    for key, name in names.items():
        raw = idx_bytes(arrays[key])
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_the_idx_files(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz)
    data = datasets.load("mnist", tmp_path)
    assert data.name == "mnist" and data.num_classes == 10 and data.input_shape == (28, 28, 1)
    assert data.x_train.shape == (12, 28, 28, 1) and data.x_test.shape == (5, 28, 28, 1)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    np.testing.assert_allclose(data.x_train[..., 0], arrays["train_x"] / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, arrays["test_y"])
    assert datasets.load("mnist", data_dir=tmp_path) is data  # cached in memory


def test_mnist_data_dir_from_the_environment(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mnist", gz=True)
    monkeypatch.setenv("CONTROL_OPT_DATA_DIR", str(tmp_path))
    assert datasets.load("mnist").x_train.shape == (12, 28, 28, 1)


def test_mnist_missing_file_names_it_and_the_expected_ones(tmp_path):
    write_mnist(tmp_path, gz=True)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(datasets.MissingDataError, match=r"t10k-labels-idx1-ubyte.*expects the four IDX files "
                                                        r"train-images-idx3-ubyte, train-labels-idx1-ubyte"):
        datasets.load("mnist", tmp_path)
    with pytest.raises(FileNotFoundError, match="no data_dir given.*CONTROL_OPT_DATA_DIR"):
        datasets.load("mnist")


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:-7], "truncated or malformed: the header announces shape \\(12, 28, 28\\)"),
    (lambda raw: b"\x00\x00\x09\x03" + raw[4:], "not an IDX file of unsigned bytes"),
    (lambda raw: gzip.compress(raw)[:-20], "truncated or corrupt gzip"),
    (lambda raw: b"", "not an IDX file"),
])
def test_mnist_damaged_file_is_named(tmp_path, damage, message):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(datasets.DataFileError, match=message) as error:
        datasets.load("mnist", tmp_path)
    assert str(path) in str(error.value) and "t10k-images-idx3-ubyte" in str(error.value)


def test_mnist_label_count_mismatch(tmp_path):
    write_mnist(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(11)))
    with pytest.raises(datasets.DataFileError, match="11 labels for the 12 images"):
        datasets.load("mnist", tmp_path)


# ----------------------------------------------------------------------------- CIFAR

def cifar_records(n, label_bytes):
    labels = RNG.integers(0, 10 if label_bytes == 1 else 20, (n, label_bytes)).astype(np.uint8)
    if label_bytes == 2:
        labels[:, 1] = RNG.integers(0, 100, n)
    pixels = RNG.integers(0, 256, (n, 3072)).astype(np.uint8)
    return labels, pixels, np.concatenate([labels, pixels], axis=1).tobytes()


CIFAR10_BIN = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin",
               "test_batch.bin"]


def write_cifar_binary(tmp_path, name, archive):
    """Tiny binary-version files (3 records per training file, 2 test), as a folder or a .tar.gz."""
    folder, files, label_bytes = (("cifar-10-batches-bin", CIFAR10_BIN, 1) if name == "cifar10"
                                  else ("cifar-100-binary", ["train.bin", "test.bin"], 2))
    contents, labels, pixels = {}, [], []
    for f in files:
        lab, pix, raw = cifar_records(2 if f.startswith("test") else 3 * (1 if name == "cifar10" else 5), label_bytes)
        contents[f] = raw
        if not f.startswith("test"):
            labels.append(lab)
            pixels.append(pix)
    write_tree(tmp_path, folder, contents, archive, "cifar-10-binary.tar.gz" if name == "cifar10"
               else "cifar-100-binary.tar.gz")
    return np.concatenate(labels), np.concatenate(pixels)


def write_tree(tmp_path, folder, contents, archive, archive_name):
    if archive:
        with tarfile.open(tmp_path / archive_name, "w:gz") as tar:
            for f, raw in contents.items():
                info = tarfile.TarInfo(f"{folder}/{f}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    else:
        (tmp_path / folder).mkdir()
        for f, raw in contents.items():
            (tmp_path / folder / f).write_bytes(raw)


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_binary_folder_and_archive(tmp_path, archive):
    labels, pixels = write_cifar_binary(tmp_path, "cifar10", archive)
    data = datasets.load("cifar10", tmp_path, preprocess="none")
    assert data.x_train.shape == (15, 32, 32, 3) and data.x_test.shape == (2, 32, 32, 3)
    assert data.num_classes == 10 and data.input_shape == (32, 32, 3)
    np.testing.assert_array_equal(data.y_train, labels[:, 0])
    # Channels last: pixel (row r, column c, channel k) is byte k*1024 + r*32 + c of the record.
    i, r, c, k = 4, 5, 17, 2
    assert data.x_train[i, r, c, k] == np.float32(pixels[i, k * 1024 + r * 32 + c]) / np.float32(255)


@pytest.mark.parametrize("archive", [False, True])
def test_cifar100_binary_fine_and_coarse_labels(tmp_path, archive):
    labels, _ = write_cifar_binary(tmp_path, "cifar100", archive)
    fine = datasets.load("cifar100", tmp_path, preprocess="none")
    coarse = datasets.load("cifar100", tmp_path, preprocess="none", label_mode="coarse")
    assert fine.num_classes == 100 and coarse.num_classes == 20
    np.testing.assert_array_equal(fine.y_train, labels[:, 1])
    np.testing.assert_array_equal(coarse.y_train, labels[:, 0])
    np.testing.assert_array_equal(fine.x_train, coarse.x_train)


def test_data_dir_may_be_the_extracted_folder_itself(tmp_path):
    write_cifar_binary(tmp_path, "cifar10", archive=False)
    data = datasets.load("cifar10", tmp_path / "cifar-10-batches-bin", preprocess="none")
    assert data.x_train.shape == (15, 32, 32, 3)


class Python2Pickler(pickle._Pickler):  # pylint: disable=protected-access
    """Writes bytes as Python 2's str opcodes (BINSTRING), as the distributed CIFAR pickles do."""

    dispatch = pickle._Pickler.dispatch.copy()  # pylint: disable=protected-access

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def python2_pickle(obj):
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def cifar_python_batch(n, cifar100=False, dumps=python2_pickle):
    pixels = RNG.integers(0, 256, (n, 3072)).astype(np.uint8)
    batch = {b"batch_label": b"training batch 1 of 5", b"data": pixels,
             b"filenames": [b"img_%d.png" % i for i in range(n)]}
    if cifar100:
        batch[b"fine_labels"] = [int(v) for v in RNG.integers(0, 100, n)]
        batch[b"coarse_labels"] = [int(v) for v in RNG.integers(0, 20, n)]
    else:
        batch[b"labels"] = [int(v) for v in RNG.integers(0, 10, n)]
    return batch, dumps(batch)


@pytest.mark.parametrize("archive", [False, True])
@pytest.mark.parametrize("dumps", [python2_pickle, lambda b: pickle.dumps(b, protocol=2)],
                         ids=["python2", "python3-protocol2"])
def test_cifar10_python_version_through_the_restricted_unpickler(tmp_path, archive, dumps):
    batches = {f"data_batch_{i}": cifar_python_batch(2, dumps=dumps) for i in range(1, 6)}
    batches["test_batch"] = cifar_python_batch(3, dumps=dumps)
    write_tree(tmp_path, "cifar-10-batches-py", {k: v[1] for k, v in batches.items()}, archive,
               "cifar-10-python.tar.gz")
    data = datasets.load("cifar10", tmp_path, preprocess="none")
    assert data.x_train.shape == (10, 32, 32, 3) and data.x_test.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(data.y_test, batches["test_batch"][0][b"labels"])
    expected = batches["data_batch_2"][0][b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1) / np.float32(255)
    np.testing.assert_array_equal(data.x_train[2:4], expected.astype(np.float32))


def test_cifar100_python_version(tmp_path):
    train, train_raw = cifar_python_batch(4, cifar100=True)
    _, test_raw = cifar_python_batch(2, cifar100=True)
    write_tree(tmp_path, "cifar-100-python", {"train": train_raw, "test": test_raw}, True, "cifar-100-python.tar.gz")
    data = datasets.load("cifar100", tmp_path, preprocess="none", label_mode="coarse")
    np.testing.assert_array_equal(data.y_train, train[b"coarse_labels"])


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["os.system", "eval", "codecs"])
def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path, payload):
    marker = tmp_path / "ran"
    if payload == "os.system":
        evil = {"data": RunsCode(marker), "labels": [0]}
    elif payload == "eval":
        class Eval:
            def __reduce__(self):
                return (eval, (f"open({str(marker)!r}, 'w')",))
        evil = {"data": Eval(), "labels": [0]}
    else:
        class Codec:  # _codecs.encode is admitted for latin-1 only
            def __reduce__(self):
                import _codecs  # pylint: disable=import-outside-toplevel
                return (_codecs.encode, ("x", "rot13"))
        evil = {"data": Codec(), "labels": [0]}
    good = {f"data_batch_{i}": cifar_python_batch(2)[1] for i in range(1, 6)}
    good["data_batch_3"] = pickle.dumps(evil, protocol=2)
    good["test_batch"] = cifar_python_batch(2)[1]
    write_tree(tmp_path, "cifar-10-batches-py", good, False, "")
    with pytest.raises(datasets.DataFileError, match=r"data_batch_3: refused .*use the binary version") as error:
        datasets.load("cifar10", tmp_path, preprocess="none")
    assert "cifar-10-batches-bin" in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("damage, error, message", [
    ("truncate_record", datasets.DataFileError, r"data_batch_2.bin: truncated or malformed: 9218 bytes"),
    ("remove_file", datasets.MissingDataError, r"missing .*data_batch_4.bin; cifar10 expects"),
    ("truncate_archive", datasets.DataFileError, r"cifar-10-binary.tar.gz: truncated or corrupt .tar.gz archive"),
    ("bad_label", datasets.DataFileError, r"data_batch_1.bin: label 10 is outside 0..9"),
])
def test_cifar_damaged_files_are_named(tmp_path, damage, error, message):
    write_cifar_binary(tmp_path, "cifar10", archive=damage == "truncate_archive")
    folder = tmp_path / "cifar-10-batches-bin"
    if damage == "truncate_record":
        path = folder / "data_batch_2.bin"
        path.write_bytes(path.read_bytes()[:-1])
    elif damage == "remove_file":
        os.remove(folder / "data_batch_4.bin")
    elif damage == "truncate_archive":
        path = tmp_path / "cifar-10-binary.tar.gz"
        path.write_bytes(path.read_bytes()[:300])
    else:
        path = folder / "data_batch_1.bin"
        raw = bytearray(path.read_bytes())
        raw[0] = 10
        path.write_bytes(bytes(raw))
    with pytest.raises(error, match=message):
        datasets.load("cifar10", tmp_path, preprocess="none")


def test_cifar_truncated_pickle_is_named(tmp_path):
    good = {f"data_batch_{i}": cifar_python_batch(2)[1] for i in range(1, 6)}
    good["test_batch"] = cifar_python_batch(2)[1][:1000]
    write_tree(tmp_path, "cifar-10-batches-py", good, False, "")
    with pytest.raises(datasets.DataFileError, match=r"test_batch: truncated or corrupt pickle"):
        datasets.load("cifar10", tmp_path, preprocess="none")


def test_cifar_nothing_there_lists_the_layouts(tmp_path):
    with pytest.raises(datasets.MissingDataError,
                       match=r"cifar100: found none of its files.*cifar-100-binary/ with train.bin, test.bin or "
                             r"cifar-100-binary.tar.gz; or cifar-100-python/ with train, test"):
        datasets.load("cifar100", tmp_path)


def test_loader_keywords_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"dataset 'mnist1d' got unknown keyword\(s\) 'data_dir'"):
        datasets.load("mnist1d", tmp_path)
    with pytest.raises(ValueError, match="preprocess must be one of zca, standardize, none"):
        datasets.load("cifar10", tmp_path, preprocess="pca")
    with pytest.raises(ValueError, match=r"dataset 'cifar10' got unknown keyword\(s\) 'label_mode'"):
        datasets.load("cifar10", tmp_path, label_mode="coarse")


# ----------------------------------------------------------------------------- whitening

def test_cifar_zca_whitening_is_the_authors_and_is_cached(tmp_path, monkeypatch):
    write_cifar_binary(tmp_path, "cifar10", archive=False)
    raw = datasets.load("cifar10", tmp_path, preprocess="none")
    data = datasets.load("cifar10", tmp_path)  # preprocess="zca", the default
    # numpy reference: per-image standardization (ddof=1), then W (x - m) with the training statistics.
    def standardize(x):
        flat = x.reshape(len(x), -1).astype(np.float64) * 255
        flat = flat - flat.mean(axis=1, keepdims=True)
        return flat / flat.std(axis=1, ddof=1, keepdims=True)
    train, test = standardize(raw.x_train), standardize(raw.x_test)
    mean = train.mean(axis=0)
    _, s, vt = np.linalg.svd((train - mean) / np.sqrt(len(train) - 1), full_matrices=False)
    # Within the span of the training data W is V diag(1/(s + eps)) V^T, so the whitened training
    # data has covariance V diag(s^2/(s + eps)^2) V^T: the identity up to the regularizer.
    whitened = data.x_train.reshape(len(train), -1).astype(np.float64)
    cov = np.cov(whitened, rowvar=False, ddof=1)
    np.testing.assert_allclose(vt @ cov @ vt.T, np.diag(s**2 / (s + whitening.ZCA_EPSILON) ** 2), atol=1e-4)
    # (the last singular value is 0: centering n examples leaves n - 1 directions)
    np.testing.assert_allclose(np.diag(vt @ cov @ vt.T)[:-1], 1.0, atol=2e-4)
    # The test split goes through the same transform.
    matrix = np.eye(train.shape[1]) / whitening.ZCA_EPSILON + (vt.T * (1 / (s + whitening.ZCA_EPSILON)
                                                                       - 1 / whitening.ZCA_EPSILON)) @ vt
    expected = (test - mean) @ matrix
    np.testing.assert_allclose(data.x_test.reshape(len(test), -1), expected, rtol=1e-3,
                               atol=1e-3 * np.abs(expected).max())
    # Cached under a content hash: a second load reads the file instead of recomputing.
    (cached,) = os.listdir(tmp_path / "cache")
    assert cached.startswith("zca-") and cached.endswith(".npz")
    monkeypatch.setattr(datasets.registry, "_MEMORY_CACHE", {})
    monkeypatch.setattr(whitening, "zca_fit", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    np.testing.assert_array_equal(datasets.load("cifar10", tmp_path).x_test, data.x_test)


def test_zca_fit_whitens_to_identity_up_to_the_regularizer():
    # More examples than dimensions: the eigendecomposition path.
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(6, 6)) * np.array([3.0, 1.0, 0.5, 0.2, 0.1, 0.05])
    x = rng.normal(size=(4000, 6)) @ mixing.T + 5.0
    for epsilon, near_identity in ((whitening.ZCA_EPSILON, True), (0.3, False)):
        mean, matrix = whitening.zca_fit(x, epsilon)
        np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
        white = whitening.zca_apply(x, mean, matrix).astype(np.float64)
        cov = np.cov(white, rowvar=False)
        lam, u = np.linalg.eigh(np.cov(x, rowvar=False))
        np.testing.assert_allclose(cov, (u * (lam / (np.sqrt(lam) + epsilon) ** 2)) @ u.T, atol=1e-4)
        if near_identity:  # each eigenvalue is 1 - 2 eps / sqrt(lambda) + O(eps^2)
            np.testing.assert_allclose(cov, np.eye(6), atol=2.5 * epsilon / np.sqrt(lam.min()))
    # Fewer examples than dimensions: the SVD path gives the same matrix as the eigendecomposition.
    small = rng.normal(size=(5, 8))
    _, via_svd = whitening.zca_fit(small, 0.1)
    lam, u = np.linalg.eigh(np.cov(small, rowvar=False))
    # (eigh returns the 3 zero eigenvalues as +-1e-16, whose square roots move 1/(0 + eps) by ~1e-6)
    np.testing.assert_allclose(via_svd, (u / (np.sqrt(np.clip(lam, 0, None)) + 0.1)) @ u.T, atol=1e-5)


def test_standardize_preprocessing(tmp_path):
    write_cifar_binary(tmp_path, "cifar10", archive=False)
    data = datasets.load("cifar10", tmp_path, preprocess="standardize")
    np.testing.assert_allclose(data.x_train.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=(0, 1, 2)), 1, atol=1e-4)
