"""The augmentation's randomness covers what it should.

* `random_crop_flip` reaches every offset 0 .. 2 pad on both axes, and both
  flips, about uniformly (test_pipeline.py checks only that each output is
  some crop in range: a crop that never reaches the last offset passes it).
* In one run of `make_pipeline`, the crops and flips differ between the
  batches of an epoch and between epochs (test_pipeline.py compares a
  straight run with a resumed one, which share a seed that ignores the batch
  or the epoch, and varies the seed only between runs).
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from control_opt import datasets

H, W, C = 8, 11, 1
IMAGE = np.arange(H * W * C, dtype=np.float32).reshape(H, W, C)  # every pixel distinct


def _crops(image, pad):
    """{(row offset, col offset, flipped): the output image} for every possible crop and flip."""
    padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)], mode="reflect")
    out = {}
    for r, c, flip in itertools.product(range(2 * pad + 1), range(2 * pad + 1), (False, True)):
        crop = padded[r:r + H, c:c + W]
        out[(r, c, flip)] = crop[:, ::-1] if flip else crop
    return out


def _which_crop(output, crops):
    found = [key for key, crop in crops.items() if np.array_equal(output, crop)]
    assert len(found) == 1, f"output is {len(found)} crops of the padded image"
    return found[0]


@pytest.mark.parametrize("pad", [1, 3])
def test_crops_reach_every_offset_and_both_flips_uniformly(pad):
    count = 600
    crops = _crops(IMAGE, pad)
    assert len({crop.tobytes() for crop in crops.values()}) == len(crops)  # crops identify their offsets
    images = tf.constant(np.repeat(IMAGE[None], count, axis=0))
    outputs = datasets.random_crop_flip(images, tf.constant([7, 11], tf.int32), pad=pad).numpy()
    keys = np.array([_which_crop(o, crops) for o in outputs], dtype=np.int64)
    for axis, name in ((0, "row"), (1, "column")):
        counts = np.bincount(keys[:, axis], minlength=2 * pad + 1)
        assert counts.size == 2 * pad + 1 and np.all(counts > 0), f"{name} offsets {counts}: 0 .. {2 * pad} not all reached"
        # Uniform over the 2 pad + 1 offsets (a crop of the wrong range or a biased one fails).
        assert stats.chisquare(counts).pvalue > 1e-4, (name, counts)
    flips = np.bincount(keys[:, 2], minlength=2)
    assert stats.chisquare(flips).pvalue > 1e-4, flips
    # Rows, columns and flips independent draws: every (row, column) pair occurs for pad = 1.
    if pad == 1:
        assert len({(r, c) for r, c, _ in keys}) == 9


def _augmented_batches(**kwargs):
    """The pipeline's batches of a data set of identical images: every difference between two
    batches (or two epochs) is the augmentation's."""
    n = 24
    x = np.repeat(IMAGE[None], n, axis=0)
    y = np.arange(n)
    dataset = datasets.make_pipeline(x, y, batch_size=8, seed=3, augment=True, pad=2, **kwargs)
    return [xb.numpy() for xb, _ in dataset]


@pytest.mark.parametrize("shuffle", [True, False])
def test_crops_differ_between_batches_and_between_epochs_of_one_run(shuffle):
    batches = _augmented_batches(epochs=3, shuffle=shuffle)
    assert len(batches) == 9  # 3 epochs of 3 batches
    for (i, a), (j, b) in itertools.combinations(enumerate(batches), 2):
        same = np.mean([np.array_equal(u, v) for u, v in zip(a, b)])
        # Independent draws: each image equal with probability 1/50 (5 x 5 offsets, 2 flips).
        assert same < 0.5, f"batch {i % 3} of epoch {i // 3} and batch {j % 3} of epoch {j // 3} share their crops"


def test_a_resumed_run_continues_the_varying_crops():
    straight = _augmented_batches(epochs=3)
    resumed = _augmented_batches(epochs=3, start_epoch=2)
    for a, b in zip(straight[6:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(straight[3], straight[6])  # epoch 1 and epoch 2, batch 0


@pytest.mark.parametrize("epochs, initial_epoch", [(3, 0), (3, 1)])
def test_the_runners_crops_differ_between_batches_and_epochs(epochs, initial_epoch):
    """The same for the runner's own input (`experiments.training.data.train_batches`, pad 4)."""
    from experiments.training import data

    n = 24
    x = np.repeat(IMAGE[None], n, axis=0)
    batches = [xb.numpy() for xb, _ in data.train_batches(x, np.arange(n), seed=3, batch_size=8,
                                                           initial_epoch=initial_epoch, epochs=epochs, augment=True)]
    assert len(batches) == 3 * (epochs - initial_epoch)
    for (i, a), (j, b) in itertools.combinations(enumerate(batches), 2):
        same = np.mean([np.array_equal(u, v) for u, v in zip(a, b)])
        assert same < 0.5, f"batches {i} and {j} (3 per epoch) share their crops"
