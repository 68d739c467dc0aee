"""The temporal order task (snnjax.data.temporal_order): the generator's shapes, determinism,
balance and the property that makes it temporal, and what it is for: a small recurrent net
learns it while a feed-forward net of the same width stays at chance."""

import jax
import numpy as np
import optax
import pytest

import snnjax as sj
from snnjax import data, models, rules
from snnjax.data.temporal_order import cue_windows, temporal_order
from snnjax.losses import per_step

T, N = 11, 6  # T != N on purpose


def test_shapes_dtypes_time_major():
    xs, ys = temporal_order(N, T, channels=3, noise_channels=2)
    assert xs.shape == (T, N, 2 * 3 + 2) and xs.dtype == np.float32
    assert ys.shape == (N,) and ys.dtype == np.int32
    assert set(np.unique(xs)) <= {0.0, 1.0} and set(np.unique(ys)) <= {0, 1}


def test_registered_dataset_and_its_batches():
    train = data.load("temporal_order", "train", T=T)
    test = data.load("temporal_order", "test", T=T)
    assert train.temporal and train.num_classes == 2
    assert train.x.shape == (2048, T, 12) and test.x.shape == (512, T, 12)
    assert train.sample_shape == (12,)
    xs, ys = next(iter(data.Loader(train, 32, T=T, prefetch=0)))
    assert xs.shape == (T, 32, 12) and ys.shape == (32,)
    assert data.load("temporal_order", "train").x.shape[1] == 24  # the default T
    with pytest.raises(ValueError, match="at least 2·cue_steps = 4"):
        data.load("temporal_order", "train", T=3)


def test_deterministic_and_seeded():
    a = temporal_order(N, T, seed=3)
    b = temporal_order(N, T, seed=3)
    c = temporal_order(N, T, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    train = data.load("temporal_order", "train", T=T)
    np.testing.assert_array_equal(train.x, data.load("temporal_order", "train", T=T).x)
    assert not np.array_equal(train.x[:512], data.load("temporal_order", "test", T=T).x)


def test_classes_exactly_balanced():
    for n in (2, 10, 512):
        _, ys = temporal_order(n, T, seed=n)
        assert ys.sum() == n // 2
    assert data.load("temporal_order", "train").y.mean() == 0.5
    with pytest.raises(ValueError, match="even"):
        temporal_order(5, T)


def test_the_label_is_the_order_of_the_cues():
    c = 3
    xs, ys = temporal_order(64, T, channels=c, noise_channels=0, cue_rate=1.0)
    first, second = cue_windows(T, 2)
    g = (T - 4) // 3
    assert (first, second) == (range(g, g + 2), range(2 * g + 2, 2 * g + 4))
    group = lambda k: xs[:, :, k * c:(k + 1) * c]  # noqa: E731
    for t in range(T):
        if t in first:  # X (group 0) first: label 0
            np.testing.assert_array_equal(group(0)[t], np.repeat(1 - ys[:, None], c, 1))
            np.testing.assert_array_equal(group(1)[t], np.repeat(ys[:, None], c, 1))
        elif t in second:
            np.testing.assert_array_equal(group(0)[t], np.repeat(ys[:, None], c, 1))
        else:  # the lead-in, the delay and the tail: nothing
            assert not xs[t].any()
    # What makes it temporal: summed over time every sample shows the same input; the
    # classes differ only in the order of the steps.
    assert (xs.sum(0) == 2).all()


def test_noise_and_cue_rates():
    xs, ys = temporal_order(4000, 40, channels=4, noise_channels=5, cue_rate=0.8,
                            noise_rate=0.1, seed=1)
    assert abs(xs[:, :, 8:].mean() - 0.1) < 0.005
    first, _ = cue_windows(40, 2)
    shown = xs[first.start, np.arange(4000)[:, None], ys[:, None] * 4 + np.arange(4)]
    assert abs(shown.mean() - 0.8) < 0.01
    for bad in (dict(cue_rate=0.0), dict(cue_rate=1.5), dict(noise_rate=-0.1)):
        with pytest.raises(ValueError):
            temporal_order(N, T, **bad)
    with pytest.raises(ValueError, match="cue_steps"):
        temporal_order(N, T, cue_steps=0)


def test_a_recurrent_net_learns_it_and_a_feed_forward_net_stays_at_chance():
    # T = 24: the lead-in, the delay and the tail are 6 steps or more, where a membrane at
    # λ = 0.5 keeps 1.6 % of an input (the module's docstring).
    T = 24
    xs_test, ys_test = temporal_order(256, T, seed=(9, 1))

    def accuracy(name):
        trainer = sj.Trainer(models.get(name, 2, hidden=(32,)), rules.bptt(),
                             optax.adam(1e-2), loss=per_step())
        ts = trainer.init(jax.random.key(0), xs_test[:, :32])
        for i in range(200):
            ts, _ = trainer.step(ts, *temporal_order(32, T, seed=(9, 0, i)))
        return float((trainer.predict(ts, xs_test).argmax(-1) == ys_test).mean())

    assert accuracy("rsnn") >= 0.95
    assert abs(accuracy("mlp") - 0.5) < 0.1
