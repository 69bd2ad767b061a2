"""The benchmark harness refuses the figures that would lie."""

import itertools

import pytest

from bench import timing


def test_interleave_rotates_the_order_and_keeps_every_sample():
    calls = []
    clock = itertools.count(1)

    def contender(name):
        def run():
            calls.append(name)
            return float(next(clock))
        return run

    spreads = timing.interleave({name: contender(name) for name in "abc"}, repeats=4)
    assert calls == list("abc" "bca" "cab" "abc")
    assert spreads["a"].samples == (1.0, 6.0, 8.0, 10.0)
    assert (spreads["a"].min, spreads["a"].median, spreads["a"].max, spreads["a"].n) == (1.0, 7.0, 10.0, 4)
    assert spreads["a"].text(digits=1) == "7.0 [1.0 - 10.0]"


def test_paired_ratio_divides_within_rounds():
    a, base = timing.Spread((2.0, 3.0, 10.0)), timing.Spread((1.0, 3.0, 5.0))
    ratio = timing.paired_ratio(a, base)
    assert (ratio.median, ratio.min, ratio.max, ratio.n) == (2.0, 1.0, 2.0, 3)
    many = timing.paired_ratio(timing.Spread(tuple(range(1, 10))), timing.Spread((1.0,) * 9))
    assert (many.q1, many.median, many.q3) == (2.5, 5.0, 7.5)
    assert many.quartiles_text(1) == "5.0 [2.5 - 7.5]"


def test_paired_ratio_refuses_a_single_run_and_unpaired_samples():
    with pytest.raises(ValueError, match="refusing a ratio from 1 run"):
        timing.paired_ratio(timing.Spread((2.0,)), timing.Spread((1.0,)))
    with pytest.raises(ValueError, match="same rounds"):
        timing.paired_ratio(timing.Spread((2.0, 1.0)), timing.Spread((1.0, 1.0, 1.0)))


def test_a_table_needs_nine_repeats():
    with pytest.raises(SystemExit, match="at least 9"):
        timing.require_repeats(8, writing=True)
    timing.require_repeats(8, writing=False)
    timing.require_repeats(9, writing=True)



def test_timed_steps_runs_the_train_function_the_given_number_of_times():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = timing.synthetic_batches((3,), 2, batch=4, num_batches=3)
    timed = timing.timed_steps(model, data, steps=7, warmup=2)
    assert int(model.optimizer.iterations) == 2 + 2  # the building fit, then the warm-up
    seconds = timed()
    assert seconds > 0 and int(model.optimizer.iterations) == 4 + 7
