"""snnjax.normalization: per-step batch normalisation equal to the textbook formula (flax's
BatchNorm on each step) in value and gradient, with a backward that keeps one input-sized
array."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import layers
from snnjax.normalization import batch_norm, batch_stats


def _reference(x, scale, bias, eps):
    """Each step through flax's BatchNorm (batch statistics), stacked: ``[C, B, ..., F]``."""
    def one(x_t):
        bn = nn.BatchNorm(use_running_average=False, epsilon=eps)
        variables = {"params": {"scale": scale, "bias": bias},
                     "batch_stats": {"mean": jnp.zeros_like(scale),
                                     "var": jnp.ones_like(scale)}}
        return bn.apply(variables, x_t, mutable=["batch_stats"])[0]

    return jnp.stack([one(x[c]) for c in range(x.shape[0])])


def _textbook(x, scale, bias, eps=1e-5):
    """The formula under plain autodiff, statistics per step over the batch and space."""
    axes = tuple(range(1, x.ndim - 1))
    m = x.mean(axis=axes, keepdims=True)
    v = jnp.maximum((x * x).mean(axis=axes, keepdims=True) - m * m, 0.0)
    return (x - m) * jax.lax.rsqrt(v + eps) * scale + bias


@pytest.mark.parametrize("shape", [(3, 5, 4), (2, 4, 3, 3, 6), (1, 2, 5)])
def test_batch_norm_is_flax_per_step_in_value_and_gradient(shape, x64):
    kx, ks, kb, kg = jax.random.split(jax.random.key(sum(shape)), 4)
    x = jax.random.normal(kx, shape, jnp.float64) * 2.0 + 0.7
    # One constant feature: its variance is 0 up to rounding, where the clip acts.
    x = x.at[..., 0].set(1.25)
    f = shape[-1]
    scale = jax.random.normal(ks, (f,), jnp.float64)
    bias = jax.random.normal(kb, (f,), jnp.float64)
    eps = 1e-5
    want, want_vjp = jax.vjp(lambda *a: _reference(*a, eps), x, scale, bias)
    got, got_vjp = jax.vjp(lambda *a: batch_norm(*a, eps), x, scale, bias)
    g = jax.random.normal(kg, shape, jnp.float64)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    for a, b in zip(got_vjp(g), want_vjp(g)):
        # The constant feature's scale gradient is 0 up to rounding (~1e-12 here, whose
        # size depends on the summation order XLA compiles): the suite's 1e-10.
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-10)


def test_batch_norm_on_constant_features_where_the_variance_clips(x64):
    # E[x²] - E[x]² is exactly 0 (a constant feature), below 0 (a feature one ulp apart,
    # by rounding) and above 0: value and gradient finite and equal to autodiff's.
    b = 0.3 * (1 + 3e-16)
    near = [b, b, np.nextafter(b, 1), b, np.nextafter(np.nextafter(b, 1), 1)]
    x = jnp.array([[[1.0, v, w] for v, w in zip(near, [0.5, -1.0, 2.0, 0.0, 1.5])]])
    raw = (x * x).mean(axis=1) - x.mean(axis=1) ** 2
    assert float(raw[0, 0]) == 0.0 and float(raw[0, 1]) < 0.0 < float(raw[0, 2])
    scale, bias = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 0.5, -1.0])

    g = jax.random.normal(jax.random.key(1), x.shape, jnp.float64)
    want, want_vjp = jax.vjp(_textbook, x, scale, bias)
    got, got_vjp = jax.vjp(lambda *a: batch_norm(*a, 1e-5), x, scale, bias)
    np.testing.assert_array_equal(got, want)
    for a, w in zip(got_vjp(g), want_vjp(g)):
        assert np.isfinite(np.asarray(a)).all()
        # Σ g·x̂ is formed as (Σ g·x - mean·Σ g)·rstd: rounding of order eps·rstd where x̂
        # is exactly 0 (rstd = 1/sqrt(eps_bn) ≈ 316 here).
        np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(batch_stats(x)[1], jnp.maximum(raw, 0.0))


def test_batch_norm_layer_updates_running_statistics_every_step(x64):
    x = jax.random.normal(jax.random.key(3), (4, 6, 5), jnp.float64) * 1.5 + 0.5
    bn = layers.BatchNorm(train=True)
    variables = bn.init(jax.random.key(0), x[:1])
    _, new = bn.apply(variables, x, mutable=["batch_stats"])
    mean, var = np.zeros(5), np.ones(5)
    for c in range(4):
        xc = np.asarray(x[c])
        mean = 0.9 * mean + 0.1 * xc.mean(axis=0)
        var = 0.9 * var + 0.1 * xc.var(axis=0)
    np.testing.assert_allclose(new["batch_stats"]["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(new["batch_stats"]["var"], var, rtol=1e-6)


def test_batch_norm_backward_keeps_one_input_sized_array():
    # The textbook formula under autodiff keeps about four (centred and normalised input,
    # their products); ours keeps the input and the statistics.
    x = jax.ShapeDtypeStruct((1, 64, 16, 16, 32), jnp.float32)
    f = jax.ShapeDtypeStruct((32,), jnp.float32)
    size = 64 * 16 * 16 * 32 * 4

    def temp(norm):
        loss = lambda x, s, b: jnp.sin(norm(x, s, b)).sum()  # noqa: E731
        grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
        return grad.lower(x, f, f).compile().memory_analysis().temp_size_in_bytes

    ours = temp(lambda x, s, b: batch_norm(x, s, b, 1e-5))
    assert ours < 1.5 * size, ours / size
    assert temp(_textbook) > 2.5 * size  # the comparison this test guards


def test_batch_norm_refuses_an_input_without_batch_axis():
    with pytest.raises(ValueError, match=r"chunk \[C, B, \.\.\., F\]"):
        batch_norm(jnp.zeros((3, 4)), jnp.ones(4), jnp.zeros(4), 1e-5)
