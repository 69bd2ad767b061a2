"""control_opt.datasets.make_pipeline / random_crop_flip: reproducible by seed, resumable,
and the augmentation is a reflect-padded random crop with a random horizontal flip."""

import numpy as np
import pytest
import tensorflow as tf

from control_opt import datasets

N, H, W, C = 10, 8, 8, 3
X = np.arange(N * H * W * C, dtype=np.float32).reshape(N, H, W, C)
Y = np.arange(N, dtype=np.int64)


def batches(**kwargs):
    kwargs = dict(dict(batch_size=4, seed=0), **kwargs)
    return [(xb.numpy(), yb.numpy()) for xb, yb in datasets.make_pipeline(X, Y, **kwargs)]


def test_one_epoch_visits_every_example_once_in_a_seeded_order():
    out = batches()
    assert [len(yb) for _, yb in out] == [4, 4, 2]
    labels = np.concatenate([yb for _, yb in out])
    assert sorted(labels) == list(range(N)) and list(labels) != list(range(N))
    for xb, yb in out:
        np.testing.assert_array_equal(xb, X[yb])  # images stay with their labels
    assert [len(yb) for _, yb in batches(drop_remainder=True)] == [4, 4]
    unshuffled = np.concatenate([yb for _, yb in batches(shuffle=False)])
    np.testing.assert_array_equal(unshuffled, Y)


def test_same_seed_same_stream_other_seed_other_stream_and_resume_matches():
    a, b, c = batches(epochs=3), batches(epochs=3), batches(epochs=3, seed=1)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(ya, yc) for (_, ya), (_, yc) in zip(a, c))
    epochs = [np.concatenate([yb for _, yb in a[3 * e:3 * e + 3]]) for e in range(3)]
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh permutation per epoch
    resumed = batches(epochs=3, start_epoch=2)
    for (xa, ya), (xr, yr) in zip(a[6:], resumed):
        np.testing.assert_array_equal(ya, yr)
        np.testing.assert_array_equal(xa, xr)


def _is_crop_of_padded(image, original, pad):
    padded = np.pad(original, [(pad, pad), (pad, pad), (0, 0)], mode="reflect")
    for candidate in (image, image[:, ::-1]):
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if np.array_equal(candidate, padded[dy:dy + H, dx:dx + W]):
                    return True
    return False


def test_augmentation_keeps_shapes_and_is_a_reflect_padded_crop_with_flips():
    out = batches(augment=True, pad=2, epochs=2)
    assert all(xb.shape[1:] == (H, W, C) and xb.dtype == np.float32 for xb, _ in out)
    for xb, yb in out:
        for image, label in zip(xb, yb):
            assert _is_crop_of_padded(image, X[label], pad=2)
    augmented = np.concatenate([xb for xb, _ in out])
    labels = np.concatenate([yb for _, yb in out])
    assert sum(not np.array_equal(a, X[y]) for a, y in zip(augmented, labels)) > N  # most are moved/flipped


def test_augmentation_is_reproducible_by_seed_and_differs_across_seeds():
    a, b, c = (np.concatenate([xb for xb, _ in batches(augment=True, shuffle=False, seed=s)]) for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    seed = tf.constant([1, 2], tf.int32)
    images = tf.constant(np.repeat(X[:1], 64, axis=0))
    first, again = datasets.random_crop_flip(images, seed), datasets.random_crop_flip(images, seed)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert first.shape == images.shape
    assert len({img.tobytes() for img in first.numpy()}) > 20  # per-image crops and flips, not one per batch
    other = datasets.random_crop_flip(images, tf.constant([1, 3], tf.int32)).numpy()
    assert not np.array_equal(first.numpy(), other)


def test_standard_cifar_augmentation_shape():
    images = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    out = datasets.random_crop_flip(images, tf.constant([0, 0], tf.int32))
    assert out.shape == (3, 32, 32, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="same length"):
        datasets.make_pipeline(X, Y[:3], batch_size=2)
    with pytest.raises(ValueError, match="augment needs images"):
        datasets.make_pipeline(X.reshape(N, -1), Y, batch_size=2, augment=True)
