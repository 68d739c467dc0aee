"""Layers: scaled weight standardisation, OTTT's traced synapse, pooling under traces."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import layers, models, neurons, rules
from snnjax.losses import per_step
from snnjax.neuron import LIFParams, LIFState
from snnjax.rules.engine import Plan, Stage, init_carry, route


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
    params, state = rules.ottt().init(model, jax.random.key(0), xs[0])
    carry = init_carry(Stage(model), params, state, xs[:1], Plan(chunk=1, cut=True, traces=True))
    traced = set(carry["trace"])
    assert traced == {"units_1", "readout"}  # not units_0 (the raw input)
    assert carry["trace"]["readout"]["Dense_0"]["a"].shape == (5, 4)


def test_unknown_pool():
    with pytest.raises(ValueError, match="pooling"):
        layers.pool_layer("median")


def test_lif_layer_state_collection():
    lif = neurons.LIF()
    x = jnp.full((1, 2, 3), 0.7)  # a chunk of one step
    variables = lif.init(jax.random.key(0), x)
    # The kept route carries the post-reset potential v alone.
    s, new = lif.apply(variables, x, mutable=["neuron"])
    np.testing.assert_array_equal(s, 0.0)
    np.testing.assert_allclose(new["neuron"]["state"], 0.7)
    s, _ = lif.apply(new, x, mutable=["neuron"])  # 0.35 + 0.7 >= 1
    np.testing.assert_array_equal(s, 1.0)
    # The cut route stores the pre-reset potential u.
    with route(neurons.CUT):
        s, cut = lif.apply({}, jnp.full((2, 2, 3), 0.7), mutable=["neuron"])
    np.testing.assert_array_equal(s, [[[0.0] * 3] * 2, [[1.0] * 3] * 2])
    assert isinstance(cut["neuron"]["state"], LIFState)
    np.testing.assert_allclose(cut["neuron"]["state"].u, 1.05)
    assert isinstance(lif, nn.Module)


def test_record_is_the_cut_routes_only():
    with pytest.raises(ValueError, match="only the cut route records"):
        neurons.Route("keep", record=True)


@pytest.mark.parametrize("neuron", [neurons.LIF(LIFParams(decay=0.5)), neurons.IF(),
                                    neurons.PLIF(tau0=3.0)], ids=["lif", "if", "plif"])
def test_neuron_routes_give_one_forward(x64, neuron):
    # Keep, cut and replay are the same forward pass; a chunk of C is C chunks of one.
    xs = jax.random.uniform(jax.random.key(0), (6, 2, 3), jnp.float64, 0.0, 1.2)
    variables = neuron.init(jax.random.key(1), xs[:1])
    params = {k: v for k, v in variables.items() if k == "params"}
    keep, new_keep = neuron.apply(params, xs, mutable=["neuron"])
    assert 0 < float(keep.mean()) < 1
    with route(neurons.Route("cut", record=True)):
        cut, new_cut = neuron.apply(params, xs, mutable=["neuron", "history"])
    np.testing.assert_array_equal(cut, keep)
    # The cut route stores u, the kept route v = u - V_th·s: the same potential.
    assert isinstance(new_cut["neuron"]["state"], LIFState)
    u = new_cut["neuron"]["state"].u
    np.testing.assert_allclose(u - (u >= 1.0), new_keep["neuron"]["state"], rtol=1e-12)
    steps, state = [], None
    for t in range(6):
        v = {**params, **({} if state is None else {"neuron": state})}
        s, new = neuron.apply(v, xs[t:t + 1], mutable=["neuron"])
        steps.append(s[0])
        state = new["neuron"]
    np.testing.assert_array_equal(jnp.stack(steps), keep)
    # Replaying from the recorded entering states gives the same spikes.
    with route(neurons.REPLAY):
        replay, _ = neuron.apply({**params, "neuron": new_cut["history"]}, xs,
                                 mutable=["neuron"])
    np.testing.assert_array_equal(replay, keep)


def test_plif_decay_is_learnable_and_initialised_from_tau0():
    plif = neurons.PLIF(tau0=4.0)
    xs = jnp.full((3, 2, 2), 0.6)
    variables = plif.init(jax.random.key(0), xs)
    np.testing.assert_allclose(jax.nn.sigmoid(variables["params"]["w"]), 0.75, rtol=1e-6)

    def total(params):
        return plif.apply({"params": params}, xs, mutable=["neuron"])[0].sum()

    assert float(jnp.abs(jax.grad(total)(variables["params"])["w"])) > 0


def test_standardize_params_is_the_same_model(x64):
    model = models.vgg11_sws(10, cfg=(8, "A", 16))
    x = 2.0 * jax.random.uniform(jax.random.key(0), (1, 2, 8, 8, 3), jnp.float64)
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
