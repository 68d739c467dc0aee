"""ALIF (adaptive threshold, Bellec et al. 2018/2020) under every rule that can train it, in
float64 to 1e-10, against the hand-written loop of test_recurrent with ALIF's threshold
``V_th + β·a[t]``, ``a[t] = ρ·a[t-1] + s[t-1]``: one feed-forward ALIF layer and one
recurrent ALIF layer. The cut rules stop the gradient of both state variables (and of the
recurrent s[t-1]) where they cut; OTTT refuses ALIF, naming the layer.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import models, neurons, rules
from snnjax.neuron import ALIFKept, ALIFState, Adaptation
from snnjax.recurrent import RecurrentDense
from snnjax.rules import engine
from test_recurrent import (
    ALL_CUT, B, C, D, H1, H2, LOSS, NEURON, T, close, grads_of, hand_forward, hand_loss, to64,
)

ADAPT = Adaptation(rho=0.8, beta=0.5)
_HAND = {}


@pytest.fixture(scope="module", autouse=True)
def module_x64():
    with jax.enable_x64(True):
        yield


def hand_grad(params, xs, ys, name, **kw):
    """``jax.grad`` of the hand loop with ALIF's adaptation, cached under ``name``."""
    if name not in _HAND:
        _HAND[name] = jax.jit(jax.grad(
            lambda p: hand_loss(p, xs, ys, adaptation=ADAPT, **kw)))(params)
    return _HAND[name]


@pytest.fixture(scope="module")
def alif_net():
    alif = neurons.ALIF(NEURON, ADAPT)
    model = models.SpikingSequential(
        (models.DenseUnit(H1, neuron=alif, first=True), RecurrentDense(H2, neuron=alif)), C,
        readout_decay=NEURON.decay)
    xs = jax.random.uniform(jax.random.key(0), (T, B, D), jnp.float64, 0.0, 2.0)
    ys = jnp.asarray([0, 2, 1])
    params, state = jax.jit(lambda k, x: rules.bptt().init(model, k, x))(jax.random.key(1), xs[0])
    params = jax.tree.map(lambda p: 2.0 * p, to64(params))
    _, _, (s1, s2) = hand_forward(params, xs, adaptation=ADAPT)
    assert 0.1 < float(s1.mean()) < 0.9 and 0.1 < float(s2.mean()) < 0.9, "test needs spikes"
    return model, params, state, xs, ys


@pytest.mark.parametrize("rule", [rules.bptt(), rules.bptt(chunk=1), rules.tbptt(T, chunk=2),
                                  rules.bptt(remat=True, chunk=1)], ids=lambda r: r.name)
def test_bptt_is_the_gradient_through_both_state_variables(alif_net, rule):
    model, params, state, xs, ys = alif_net
    loss, g = grads_of(rule, model, params, state, xs, ys)
    want = hand_grad(params, xs, ys, "bptt")
    assert float(loss) == pytest.approx(float(hand_loss(params, xs, ys, adaptation=ADAPT)),
                                        rel=1e-12)
    close(g, want)
    if rule != rules.bptt():
        return
    # The adaptation matters: a LIF's gradient is another.
    lif = jax.jit(jax.grad(lambda p: hand_loss(p, xs, ys)))(params)
    assert not np.allclose(g["units_0"]["Dense_0"]["kernel"], lif["units_0"]["Dense_0"]["kernel"])


@pytest.mark.parametrize("k", [2, 3])
def test_tbptt_cuts_both_state_variables_at_window_borders(alif_net, k):
    model, params, state, xs, ys = alif_net
    _, g = grads_of(rules.tbptt(k), model, params, state, xs, ys)
    close(g, hand_grad(params, xs, ys, f"tbptt{k}", cut=lambda t: t % k == 0))


@pytest.mark.parametrize("rule", [rules.sltt(), rules.sltt(chunk=2), rules.tbptt(1),
                                  rules.sltt_k(T, steps=range(T))], ids=lambda r: r.name)
def test_the_cut_rules_cut_the_membrane_and_the_adaptation_at_every_step(alif_net, rule):
    model, params, state, xs, ys = alif_net
    _, g = grads_of(rule, model, params, state, xs, ys)
    close(g, hand_grad(params, xs, ys, "sltt", cut=ALL_CUT))


def test_sltt_k_replays_alif_exactly_at_its_steps(alif_net):
    model, params, state, xs, ys = alif_net
    steps = (0, 3)
    _, g = grads_of(rules.sltt_k(2, steps=steps, chunk=2), model, params, state, xs, ys)
    close(g, hand_grad(params, xs, ys, "sltt_k", cut=ALL_CUT, steps=steps))


def test_local_is_exact_through_both_state_variables(alif_net):
    model, params, state, xs, ys = alif_net
    rule = rules.local(rules.bptt(), block_size=1)
    lparams, _ = rule.init(model, jax.random.key(2), xs[0])
    params = {**params, "aux_head_0": to64(lparams["aux_head_0"])}
    _, g = grads_of(rule, model, params, state, xs, ys)
    close(g, jax.jit(jax.grad(
        lambda p: hand_loss(p, xs, ys, adaptation=ADAPT, local=True)))(params))


@pytest.mark.parametrize("online", [False, True])
def test_ottt_refuses_alif_naming_the_layer(alif_net, online):
    model, params, state, xs, ys = alif_net
    with pytest.raises(ValueError, match=r"OTTT cannot train neuron 'units_0/neuron' \(ALIF\): "
                                         r"it has a second state variable"):
        rules.ottt(online=online).value_and_grad(model, params, state, xs, ys, loss=LOSS)


def test_alif_state_is_typed_and_follows_bellec_indexing(alif_net):
    # The threshold of step t counts the spikes before t only: a[t] = Σ_{τ<t} ρ^{t-1-τ}·s[τ].
    # Between chunks the cut route keeps ALIFState (u[T-1], a[T-1]); the kept route the
    # post-reset (v[T-1], a[T]) it carries on.
    model, params, state, xs, ys = alif_net
    _, _, (s1, _) = hand_forward(params, xs, adaptation=ADAPT)

    def a(t):
        return sum(ADAPT.rho ** (t - 1 - tau) * s1[tau] for tau in range(t))

    with engine.route(neurons.CUT):
        _, new = model.apply({"params": params}, xs, mutable=["neuron"])
    cut = new["neuron"]["units_0"]["neuron"]["state"]
    assert isinstance(cut, ALIFState)
    close(cut.a, a(T - 1))
    _, new = model.apply({"params": params}, xs, mutable=["neuron"])
    kept = new["neuron"]["units_0"]["neuron"]["state"]
    assert isinstance(kept, ALIFKept)
    close(kept.a, a(T))


@pytest.mark.parametrize("bad", [dict(rho=1.5), dict(rho=-0.1), dict(beta=-1.0)])
def test_adaptation_parameters_are_validated(bad):
    with pytest.raises(ValueError, match="ALIF adaptation"):
        Adaptation(**bad)


def test_one_neuron_module_passed_to_several_units_gives_each_its_own_state():
    # flax shares the variables of one module instance adopted by several parents: a shared
    # neuron would read another layer's state (here of another width) and share PLIF's λ.
    xs = jnp.ones((2, B, D))
    for neuron in (neurons.ALIF(NEURON, ADAPT), neurons.PLIF()):
        model = models.mlp(C, (H1, H2), neuron=neuron)
        variables = model.init(jax.random.key(0), xs)
        _, new = model.apply(variables, xs, mutable=["neuron"])
        shapes = {k: jax.tree.leaves(v)[0].shape for k, v in new["neuron"].items()}
        assert shapes == {"units_0": (B, H1), "units_1": (B, H2)}
