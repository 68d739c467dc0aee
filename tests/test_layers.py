"""Layers: scaled weight standardisation, OTTT's traced synapse, pooling under traces."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import layers, models, rules
from snnjax.losses import per_step


def test_weight_standardisation_statistics(x64):
    kernel = jax.random.normal(jax.random.key(0), (3, 3, 5, 7), jnp.float64) * 3.0 + 1.5
    gain = jnp.linspace(0.5, 2.0, 7)
    w = np.asarray(layers.standardize_weight(kernel, gain))
    fan_in = 3 * 3 * 5
    flat_k = np.asarray(kernel).reshape(fan_in, 7)
    flat_w = w.reshape(fan_in, 7)
    np.testing.assert_allclose(flat_w.mean(axis=0), 0.0, atol=1e-12)
    # Var(Ŵ) (unbiased) = g² var / (var·fan_in + eps), var unbiased.
    var = flat_k.var(axis=0, ddof=1)
    want = np.asarray(gain) ** 2 * var / (var * fan_in + 1e-4)
    np.testing.assert_allclose(flat_w.var(axis=0, ddof=1), want, rtol=1e-10)
    np.testing.assert_allclose(flat_w.var(axis=0, ddof=1), np.asarray(gain) ** 2 / fan_in,
                               rtol=1e-3)


def test_dense_ws_has_gain_parameter():
    dense = layers.Dense(4, weight_standardization=True)
    params = dense.init(jax.random.key(0), jnp.ones((2, 6)))["params"]
    assert set(params) == {"kernel", "gain", "bias"}
    np.testing.assert_array_equal(params["gain"], np.ones(4))


@pytest.mark.parametrize("op_kind", ["dense", "conv"])
def test_traced_op_equals_replace_trick(op_kind, x64):
    k1, k2, k3, k4 = jax.random.split(jax.random.key(1), 4)
    if op_kind == "dense":
        x = (jax.random.uniform(k1, (3, 5)) > 0.5).astype(jnp.float64)
        kernel = jax.random.normal(k2, (5, 4), jnp.float64)
        op = lambda a, w: a @ w  # noqa: E731
    else:
        x = (jax.random.uniform(k1, (2, 6, 6, 3)) > 0.5).astype(jnp.float64)
        kernel = jax.random.normal(k2, (3, 3, 3, 4), jnp.float64)
        op = functools.partial(layers._conv_op, strides=(1, 1), padding="SAME")
    trace = jax.random.uniform(k3, x.shape, jnp.float64) * 2
    cot = jax.random.normal(k4, op(x, kernel).shape, jnp.float64)

    def vjp_of(f):
        y, vjp = jax.vjp(lambda a, w: f(op, a, trace, w), x, kernel)
        return y, vjp(cot)

    y1, (dx1, dw1) = vjp_of(layers.traced_op)
    y2, (dx2, dw2) = vjp_of(layers.trace_replace)
    np.testing.assert_allclose(y1, op(x, kernel), rtol=1e-12)  # forward uses spikes
    np.testing.assert_allclose(y1, y2, rtol=1e-12)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dw1, dw2, rtol=1e-10, atol=1e-12)
    # The weight gradient is the trace's, not the spikes'.
    _, vjp_trace = jax.vjp(lambda w: op(trace, w), kernel)
    np.testing.assert_allclose(dw1, vjp_trace(cot)[0], rtol=1e-10, atol=1e-12)


def test_max_pool_rejected_under_ottt():
    model = models.cnn(10, (4, 8), pool="max")
    xs = jnp.ones((3, 2, 8, 8, 1))
    rule = rules.ottt()
    params, state = rule.init(model, jax.random.key(0), xs[0])
    with pytest.raises(ValueError, match="max pooling"):
        rule.value_and_grad(model, params, state, xs, jnp.zeros(2, jnp.int32), loss=per_step())
    # ... while the same model trains under SLTT.
    loss, _, _ = rules.sltt().value_and_grad(
        model, params, state, xs, jnp.zeros(2, jnp.int32), loss=per_step()
    )
    assert np.isfinite(loss)


def test_first_synapse_untraced_readout_traced():
    model = models.mlp(3, (4, 4))
    xs = jnp.ones((2, 5, 6))
    fwd = rules.ottt().forward(model)
    params, state = rules.ottt().init(model, jax.random.key(0), xs[0])
    carry = fwd.init_carry(params, state, xs[0])
    traced = set(carry["trace"])
    assert traced == {"units_1", "readout"}  # not units_0 (the raw input)
    assert carry["trace"]["readout"]["Dense_0"]["a"].shape == (5, 4)


def test_unknown_pool():
    with pytest.raises(ValueError, match="pooling"):
        layers.pool_layer("median")


def test_lif_layer_state_collection():
    lif = layers.LIF()
    x = jnp.full((2, 3), 0.7)
    variables = lif.init(jax.random.key(0), x)
    s, new = lif.apply(variables, x, mutable=["neuron"])
    np.testing.assert_array_equal(s, 0.0)
    np.testing.assert_allclose(new["neuron"]["v"], 0.7)
    s, _ = lif.apply(new, x, mutable=["neuron"])  # 0.35 + 0.7 >= 1
    np.testing.assert_array_equal(s, 1.0)
    assert isinstance(lif, nn.Module)


def test_lif_layer_carries_the_pre_reset_potential_when_handed_u():
    lif = layers.LIF()
    x = jnp.full((2, 3), 0.7)
    state = {"neuron": {"u": jnp.zeros((2, 3))}}
    spikes, us = [], []
    for _ in range(3):
        s, state = lif.apply(state, x, mutable=["neuron"])
        assert set(state["neuron"]) == {"u"}
        spikes.append(float(s[0, 0]))
        us.append(float(state["neuron"]["u"][0, 0]))
    # u = .7; .35 + .7 = 1.05 (spike); reset to .05, then .025 + .7.
    np.testing.assert_allclose(us, [0.7, 1.05, 0.725], rtol=1e-6)
    assert spikes == [0.0, 1.0, 0.0]


def test_standardize_params_is_the_same_model(x64):
    model = models.vgg11_sws(10, cfg=(8, "A", 16))
    x = 2.0 * jax.random.uniform(jax.random.key(0), (2, 8, 8, 3), jnp.float64)
    params = model.init(jax.random.key(1), x)["params"]
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    prepared = layers.standardize_params(params)
    assert "kernel_ws" in prepared["units_0"]["Conv_0"]
    assert "gain" not in prepared["units_0"]["Conv_0"]
    assert "kernel" in prepared["readout"]["Dense_0"]  # no WS there: untouched

    def out(p):
        y, _ = model.apply({"params": p}, x, mutable=["neuron"])
        return y

    np.testing.assert_allclose(out(prepared), out(params), rtol=1e-12, atol=1e-14)

    def loss_prepared(p):
        return jnp.sum(jnp.sin(out(layers.standardize_params(p))))

    g_prepared = jax.grad(loss_prepared)(params)
    g_direct = jax.grad(lambda p: jnp.sum(jnp.sin(out(p))))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12),
                 g_prepared, g_direct)
    assert float(jnp.abs(g_direct["units_0"]["Conv_0"]["gain"]).max()) > 0

    bad = jax.tree.map(lambda a: a, prepared)
    bad["units_0"]["Conv_0"]["kernel_ws"] = jnp.zeros((3, 3, 3, 9))
    with pytest.raises(ValueError, match="kernel_ws"):
        model.apply({"params": bad}, x, mutable=["neuron"])
