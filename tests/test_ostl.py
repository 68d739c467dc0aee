"""OSTL (Bohnstingl et al. 2022, SPEC §10) in float64, to 1e-10: exact RTRL within each
layer, spatial gradients between layers.

Oracles: for one hidden layer, recurrent or not, OSTL is BPTT's gradient (SPEC's identity).
For two layers the oracle is a plain loop written here: each layer's parameters get
``jax.grad`` of the loss with the carried state of every *other* hidden layer behind
``stop_gradient`` at every step (its own recursion kept, everything else spatial at t).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import neurons, rules
from test_eprop import (
    ADAPT, B, LAM, LOSS, T, V_TH, build, close, grads_of, lif, problem,
)

NEURONS = {
    "lif_soft": lambda: lif("soft"),
    "lif_hard": lambda: lif("hard"),
    "lif_attached_reset": lambda: lif("soft").__class__(decay=LAM, detach_reset=False),
    "alif": lambda: neurons.ALIF(lif("soft"), ADAPT),
}


@pytest.fixture(scope="module", autouse=True)
def module_x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("recurrent", [False, True], ids=["feed_forward", "recurrent"])
@pytest.mark.parametrize("kind", sorted(NEURONS))
def test_one_layer_is_bptt(kind, recurrent):
    model = build(NEURONS[kind](), recurrent=(recurrent,), layers=1)
    params, state, xs, ys = problem(model)
    loss_o, g = grads_of(rules.ostl(), model, params, state, xs, ys)
    loss_b, want = grads_of(rules.bptt(), model, params, state, xs, ys)
    assert float(loss_o) == pytest.approx(float(loss_b), rel=1e-12)
    close(g, want)
    if recurrent:  # e-prop drops the recurrent routes between neurons: another gradient
        _, e = grads_of(rules.eprop(), model, params, state, xs, ys)
        assert not np.allclose(e["units_0"]["recurrent_kernel"],
                               g["units_0"]["recurrent_kernel"], rtol=1e-6)


def hand_loss(params, xs, ys, p, adapt=None, frozen=()):
    """Two hidden layers (recurrent where the parameters hold ``recurrent_kernel``) and the
    readout, unrolled by hand; the layers named in ``frozen`` carry their state into each
    step behind ``stop_gradient``."""
    rho, beta = (adapt.rho, adapt.beta) if adapt else (0.0, 0.0)
    names = ("units_0", "units_1")
    Wo, bo = params["readout"]["Dense_0"]["kernel"], params["readout"]["Dense_0"]["bias"]
    st = {n: None for n in names}
    total = 0.0
    for t in range(T):
        h = xs[t]
        for n in names:
            W, b = params[n]["Dense_0"]["kernel"], params[n]["Dense_0"]["bias"]
            R = params[n].get("recurrent_kernel")
            current = h @ W + b
            if st[n] is None:
                u = a = s = jnp.zeros_like(current)
            else:
                u, a, s = (jax.lax.stop_gradient(v) if n in frozen else v for v in st[n])
            if R is not None:
                current = current + s @ R
            s_r = jax.lax.stop_gradient(s) if p.detach_reset else s
            kept = u - V_TH * s_r if p.reset == "soft" else u * (1 - s_r)
            u = LAM * kept + current
            a = rho * a + s
            s = p.surrogate(u - (V_TH + beta * a))
            st[n] = (u, a, s)
            h = s
        total = total + LOSS.step(h @ Wo + bo, ys)
    return total / T


@pytest.mark.parametrize("kind", ["lif_attached_reset", "alif"])
def test_two_layers_are_exact_within_each_layer(kind):
    neuron = NEURONS[kind]()
    model = build(neuron, recurrent=(True, True))
    params, state, xs, ys = problem(model)
    _, g = grads_of(rules.ostl(), model, params, state, xs, ys)
    p = neuron.neuron if isinstance(neuron, neurons.ALIF) else neuron
    adapt = ADAPT if isinstance(neuron, neurons.ALIF) else None
    first = jax.jit(jax.grad(
        lambda q: hand_loss(q, xs, ys, p, adapt, frozen=("units_1",))))(params)
    second = jax.jit(jax.grad(
        lambda q: hand_loss(q, xs, ys, p, adapt, frozen=("units_0",))))(params)
    want = {"units_0": first["units_0"], "units_1": second["units_1"],
            "readout": first["readout"]}
    close(g, want)
    # Not BPTT: the first layer's routes through the second layer's future are dropped.
    bptt = jax.jit(jax.grad(lambda q: hand_loss(q, xs, ys, p, adapt)))(params)
    close(bptt["units_1"], want["units_1"])
    assert not np.allclose(bptt["units_0"]["recurrent_kernel"],
                           g["units_0"]["recurrent_kernel"], rtol=1e-6)


def test_ostl_is_a_value_and_refuses_random_feedback():
    assert rules.ostl() == rules.ostl() and hash(rules.ostl()) == hash(rules.OSTL())
    assert rules.ostl() != rules.eprop()
    assert rules.by_name("ostl") == rules.ostl() and rules.ostl().name == "ostl"
    with pytest.raises(ValueError, match="random feedback"):
        rules.OSTL(feedback="random")


def test_compiled_memory_is_flat_in_T():
    model = build(neurons.ALIF(lif(), ADAPT), recurrent=(True, True))
    rule = rules.ostl()
    params, state = rule.init(model, jax.random.key(0), jnp.zeros((B, 6), jnp.float32))
    ys = jax.ShapeDtypeStruct((B,), jnp.int32)
    temps = []
    for steps in (8, 64):
        xs = jax.ShapeDtypeStruct((steps, B, 6), jnp.float32)
        step = jax.jit(lambda p, xs, ys: rule.value_and_grad(model, p, state, xs, ys,
                                                             loss=LOSS))
        temps.append(step.lower(params, xs, ys).compile().memory_analysis().temp_size_in_bytes)
    assert temps[0] == temps[1], temps
    chex.assert_equal(rule.memory, "O(1)")
