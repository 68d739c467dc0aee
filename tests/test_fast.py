"""snnjax.fast: layer-wise BPTT equals the plain BPTT rule, loss and gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import fast, losses, models, rules
from snnjax.models import ConvUnit, SpikingSequential
from snnjax.neuron import LIFParams, lif_step

T, B = 5, 3  # T != B on purpose


def _grads(rule, model, xs, ys, loss):
    params, state = rules.bptt().init(model, jax.random.key(0), xs[0])
    run = jax.jit(lambda p, s, x, y: rule.value_and_grad(model, p, s, x, y, loss=loss))
    return run(params, state, xs, ys)


def _check_equal(model, xs, ys, loss=None):
    loss = losses.per_step(mse=0.3) if loss is None else loss
    v0, a0, g0 = _grads(rules.bptt(), model, xs, ys, loss)
    v1, a1, g1 = _grads(fast.bptt_layerwise(), model, xs, ys, loss)
    np.testing.assert_allclose(v1, v0, rtol=1e-10)
    chex.assert_trees_all_close(a1[0], a0[0], rtol=1e-10, atol=1e-12)
    chex.assert_trees_all_close(g1, g0, rtol=1e-9, atol=1e-12)
    # Not a trivially zero gradient: spikes flowed.
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g0)) > 1e-6


def test_dense_net_matches_bptt(x64):
    model = models.mlp(4, hidden=(16, 8), neuron=LIFParams(decay=0.5, v_th=0.5))
    xs = jax.random.uniform(jax.random.key(1), (T, B, 12), jnp.float64) * 2
    _check_equal(model, xs, jnp.array([0, 3, 1]))


def test_conv_net_with_scale_and_pools_matches_bptt(x64):
    neuron = LIFParams(decay=0.5, v_th=0.5)
    units = (
        ConvUnit(4, neuron=neuron, first=True, scale=2.74, pool="avg"),
        ConvUnit(6, neuron=neuron, weight_standardization=True, pool="max"),
        ConvUnit(5, neuron=neuron, pool="avg"),  # on a 2×2 map: pooled to 1×1
        ConvUnit(4, neuron=neuron, pool="avg"),  # on 1×1: pooling skipped
    )
    model = SpikingSequential(units, 3, input_ndim=3)
    xs = jax.random.uniform(jax.random.key(2), (T, B, 8, 8, 2), jnp.float64) * 2
    _check_equal(model, xs, jnp.array([2, 0, 1]), loss=losses.rate())


def test_dense_lif_matches_a_scanned_layer(x64):
    neuron = LIFParams(decay=0.5)
    kx, kw = jax.random.split(jax.random.key(3))
    xs = jax.random.uniform(kx, (T, B, 7), jnp.float64)
    w = jax.random.normal(kw, (7, 9), jnp.float64)

    def scanned(w):
        def body(v, x):
            s, v = lif_step(neuron, v, x @ w)
            return v, s

        return jax.lax.scan(body, jnp.zeros((B, 9), jnp.float64), xs)[1]

    np.testing.assert_array_equal(fast.dense_lif(neuron, w, None, xs), scanned(w))
    g0 = jax.grad(lambda w: scanned(w).sum())(w)
    g1 = jax.grad(lambda w: fast.dense_lif(neuron, w, None, xs).sum())(w)
    np.testing.assert_allclose(g1, g0, rtol=1e-10, atol=1e-12)


def test_unsupported_models_raise():
    xs = jnp.zeros((T, B, 12))
    for model in (models.mlp(4, hidden=(8,), norm=True), models.mlp(4, hidden=(8,), dropout=0.1)):
        with pytest.raises(ValueError, match="BatchNorm or dropout"):
            _grads(fast.bptt_layerwise(), model, xs, jnp.zeros((B,), jnp.int32), losses.per_step())
    local = fast.bptt_layerwise()._replace(blocks=rules.BlockSpec(block_size=1))
    with pytest.raises(ValueError, match="Local"):
        _grads(local, models.mlp(4, hidden=(8, 8)), xs, jnp.zeros((B,), jnp.int32),
               losses.per_step())
