"""e-prop (Bellec et al. 2020, SPEC §10) in float64, to 1e-10.

The oracle is e-prop written out by hand here, with SPEC §10's equations in a plain Python
loop over t (no code of snnjax.rules.eprop): LIF's ``ε_ji[t] = λ·ε_ji[t-1] + x_i[t]``
(times ``1 - s_j[t-1]`` under the hard reset), ALIF's ``ε^a_ji[t] = ψ_j[t-1]·ε^v_ji[t-1] +
(ρ - ψ_j[t-1]·β)·ε^a_ji[t-1]``, ``e = ψ·(ε^v - β·ε^a)``, the learning signal through the layers
above at the same t (or ``B·∂E/∂y``), ``∇W = Σ_t L·e``. Then SPEC's identities: one layer
without recurrence is BPTT; on LIF with a soft detached reset the hidden synapses' gradient
is OTTT_A's (the same trace); memory is flat in T.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnjax as sj
from snnjax import models, neurons, rules, surrogate
from snnjax.checkpoint import Checkpointer
from snnjax.losses import rate
from snnjax.neuron import Adaptation, LIFParams
from snnjax.recurrent import RecurrentConv, RecurrentDense
from snnjax.rules.base import RULE_STATE
from test_rules_identities import LOSS, TOL, to64

T, B, D, H1, H2, C = 5, 3, 6, 7, 4, 3  # T != B on purpose
LAM, V_TH = 0.5, 1.0
ADAPT = Adaptation(rho=0.8, beta=0.5)


@pytest.fixture(scope="module", autouse=True)
def module_x64():
    with jax.enable_x64(True):
        yield


def lif(reset="soft"):
    return LIFParams(decay=LAM, v_th=V_TH, reset=reset, detach_reset=True,
                     surrogate=surrogate.sigmoid(4.0))


def close(a, b):
    chex.assert_trees_all_close(a, b, **TOL)


def grads_of(rule, model, params, state, xs, ys):
    loss, aux, g = jax.jit(
        lambda p: rule.value_and_grad(model, p, state, xs, ys, loss=LOSS))(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(g, params)
    return loss, g


# ----------------------------------------------------------------- e-prop written by hand


def psi_of(p: LIFParams, z):
    """ψ = σ'(z): the surrogate's derivative."""
    return jax.jvp(p.surrogate, (z,), (jnp.ones_like(z),))[1]


def hand_eprop(params, xs, ys, p: LIFParams, adapt=None, feedback=None):
    """e-prop's gradient by SPEC §10's equations over ``units_0, units_1`` (each recurrent
    where it has ``recurrent_kernel``) and the readout; ``feedback``: ``{name: B [N, C]}``
    for random feedback, else symmetric."""
    names = [n for n in ("units_0", "units_1") if n in params]
    rho, beta = (adapt.rho, adapt.beta) if adapt else (0.0, 0.0)
    Wo, bo = params["readout"]["Dense_0"]["kernel"], params["readout"]["Dense_0"]["bias"]
    layer, st, grads = {}, {}, {}
    for n in names:
        W, b = params[n]["Dense_0"]["kernel"], params[n]["Dense_0"]["bias"]
        R = params[n].get("recurrent_kernel")
        layer[n] = (W, b, R)
        N = W.shape[1]
        z = jnp.zeros((B, N))
        ins = {"kernel": W.shape[0], "bias": None}
        if R is not None:
            ins["recurrent"] = N
        eps = {k: (jnp.zeros((B, m, N)) if m else z, jnp.zeros((B, m, N)) if m else z)
               for k, m in ins.items()}
        st[n] = dict(u=z, a=z, s=z, psi=z, eps=eps)
        grads[n] = {"Dense_0": {"kernel": jnp.zeros_like(W), "bias": jnp.zeros_like(b)}}
        if R is not None:
            grads[n]["recurrent_kernel"] = jnp.zeros_like(R)
    grads["readout"] = {"Dense_0": {"kernel": jnp.zeros_like(Wo), "bias": jnp.zeros_like(bo)}}
    for t in range(T):
        h, traces = xs[t], {}
        for n in names:
            W, b, R = layer[n]
            s_prev, psi_prev = st[n]["s"], st[n]["psi"]
            inputs = {"kernel": h, "bias": None, "recurrent": s_prev}
            current = h @ W + b + (s_prev @ R if R is not None else 0.0)
            kept = st[n]["u"] - V_TH * s_prev if p.reset == "soft" else st[n]["u"] * (1 - s_prev)
            u = LAM * kept + current
            a = rho * st[n]["a"] + s_prev
            psi = psi_of(p, u - (V_TH + beta * a))
            s = jnp.heaviside(u - (V_TH + beta * a), 0.0)
            dv = LAM * (1 - s_prev) if p.reset == "hard" else LAM * jnp.ones_like(s_prev)
            new_eps, e = {}, {}
            for k, (ev, ea) in st[n]["eps"].items():
                x = inputs[k]
                if x is None:  # the bias: x = 1
                    ev_new = dv * ev + 1.0
                    ea_new = psi_prev * ev + (rho - psi_prev * beta) * ea
                    e[k] = psi * (ev_new - beta * ea_new)
                else:
                    ev_new = dv[:, None, :] * ev + x[:, :, None]
                    ea_new = (psi_prev[:, None, :] * ev
                              + (rho - psi_prev * beta)[:, None, :] * ea)
                    e[k] = psi[:, None, :] * (ev_new - beta * ea_new)
                new_eps[k] = (ev_new, ea_new)
            st[n] = dict(u=u, a=a, s=s, psi=psi, eps=new_eps)
            traces[n] = e
            h = s
        y = h @ Wo + bo
        dy = jax.grad(lambda o: LOSS.step(o, ys))(y) / T
        grads["readout"]["Dense_0"]["kernel"] += h.T @ dy
        grads["readout"]["Dense_0"]["bias"] += dy.sum(0)
        signal = dy @ Wo.T  # the last hidden layer's L = Wᵀ_out·∂E/∂y
        for i in reversed(range(len(names))):
            n = names[i]
            L = signal if feedback is None else dy @ feedback[n].T
            e = traces[n]
            g = grads[n]
            g["Dense_0"]["kernel"] += jnp.einsum("bij,bj->ij", e["kernel"], L)
            g["Dense_0"]["bias"] += jnp.einsum("bj,bj->j", e["bias"], L)
            if "recurrent" in e:
                g["recurrent_kernel"] += jnp.einsum("bij,bj->ij", e["recurrent"], L)
            # The layer below: through this layer's synapse at the same t, L·ψ·Wᵀ.
            signal = (signal * st[n]["psi"]) @ layer[n][0].T
    return grads


# ----------------------------------------------------------------- the nets


def build(neuron, recurrent=(False, True), layers=2):
    units = []
    for i, (width, rec) in enumerate(zip((H1, H2)[:layers], recurrent)):
        kind = RecurrentDense if rec else models.DenseUnit
        units.append(kind(width, neuron=neuron, first=i == 0))
    return models.SpikingSequential(tuple(units), C, readout_decay=LAM)


def problem(model, scale=1.5, rule=None):
    xs = jax.random.uniform(jax.random.key(0), (T, B, D), jnp.float64, 0.0, 2.0)
    ys = jnp.asarray([0, 2, 1])
    params, state = (rule or rules.bptt()).init(model, jax.random.key(1), xs[0])
    params = jax.tree.map(lambda a: scale * a, to64(params))
    return params, to64(state), xs, ys


NEURONS = {
    "lif_soft": (lambda: lif("soft"), None),
    "lif_hard": (lambda: lif("hard"), None),
    "alif": (lambda: neurons.ALIF(lif("soft"), ADAPT), ADAPT),
}


def spiking_enough(model, params, state, xs):
    """Both hidden layers spike, but not always (else ψ or the resets test nothing)."""
    rates = []

    def probe(module, call, args, kwargs):
        out = call(*args, **kwargs)
        if isinstance(module, neurons.SpikingNeuron):
            rates.append(float(out.mean()))
        return out

    with sj.rules.walk.calls(probe):
        model.apply({"params": params, **state}, xs, mutable=["neuron"])
    return all(0.1 < r < 0.9 for r in rates)


@pytest.mark.parametrize("kind", sorted(NEURONS))
@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_eprop_equals_the_hand_written_loop(kind, feedback):
    make, adapt = NEURONS[kind]
    model = build(make())
    rule = rules.eprop(feedback=feedback)
    params, state, xs, ys = problem(model, rule=rule)
    assert spiking_enough(model, params, state, xs), "the test needs spiking layers"
    B_fb = None
    if feedback == "random":
        fb = state[RULE_STATE]["feedback"]
        B_fb = {n: next(iter(fb[n].values())) for n in ("units_0", "units_1")}
    _, g = grads_of(rule, model, params, state, xs, ys)
    p = make() if adapt is None else make().neuron
    want = jax.jit(hand_eprop, static_argnums=(3, 4))(params, xs, ys, p, adapt, B_fb)
    close(g, want)
    if feedback == "random":
        return
    # Not the gradient of another rule: BPTT's differs on these two-layer recurrent nets.
    _, bptt = grads_of(rules.bptt(), model, params, state, xs, ys)
    assert not np.allclose(g["units_0"]["Dense_0"]["kernel"],
                           bptt["units_0"]["Dense_0"]["kernel"], rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(NEURONS))
def test_one_layer_without_recurrence_is_bptt(kind):
    """SPEC §10's identity (Bellec et al., Eq. 1 exact when no route leaves the neuron)."""
    make, _ = NEURONS[kind]
    model = build(make(), recurrent=(False,), layers=1)
    params, state, xs, ys = problem(model)
    loss_e, g = grads_of(rules.eprop(), model, params, state, xs, ys)
    loss_b, want = grads_of(rules.bptt(), model, params, state, xs, ys)
    assert float(loss_e) == pytest.approx(float(loss_b), rel=1e-12)
    close(g, want)


def test_recurrence_makes_it_an_approximation():
    model = build(lif(), recurrent=(True,), layers=1)
    params, state, xs, ys = problem(model)
    _, g = grads_of(rules.eprop(), model, params, state, xs, ys)
    _, want = grads_of(rules.bptt(), model, params, state, xs, ys)
    assert not np.allclose(g["units_0"]["recurrent_kernel"],
                           want["units_0"]["recurrent_kernel"], rtol=1e-6)
    close(g["readout"], want["readout"])  # the readout has no temporal route


def test_soft_detached_lif_hidden_synapses_are_ottt_a():
    """Both traces are ``λ·ε[t-1] + x[t]`` and both learning signals the spatial δ at t:
    equal on every synapse OTTT traces with the postsynaptic λ (here every one after the
    raw input, recurrent ones included); the raw-input synapse, the biases and the readout
    differ by construction (OTTT does not trace them)."""
    model = build(lif(), recurrent=(True, True))
    params, state, xs, ys = problem(model)
    _, g = grads_of(rules.eprop(), model, params, state, xs, ys)
    _, want = grads_of(rules.ottt(), model, params, state, xs, ys)
    close(g["units_1"]["Dense_0"]["kernel"], want["units_1"]["Dense_0"]["kernel"])
    close(g["units_0"]["recurrent_kernel"], want["units_0"]["recurrent_kernel"])
    close(g["units_1"]["recurrent_kernel"], want["units_1"]["recurrent_kernel"])
    assert not np.allclose(g["units_0"]["Dense_0"]["kernel"],
                           want["units_0"]["Dense_0"]["kernel"], rtol=1e-6)


def test_random_feedback_is_rule_state_drawn_from_the_key():
    model = build(lif())
    xs = jnp.zeros((T, B, D))
    rule = rules.eprop(feedback="random")
    _, s1 = rule.init(model, jax.random.key(1), xs[0])
    _, s2 = rule.init(model, jax.random.key(1), xs[0])
    _, s3 = rule.init(model, jax.random.key(2), xs[0])
    fb = s1[RULE_STATE]["feedback"]
    shapes = jax.tree.map(lambda a: a.shape, fb)
    assert shapes == {"units_0": {"LIF_0": (H1, C)}, "units_1": {"LIF_0": (H2, C)}}
    chex.assert_trees_all_equal(fb, s2[RULE_STATE]["feedback"])
    assert not np.allclose(fb["units_0"]["LIF_0"], s3[RULE_STATE]["feedback"]["units_0"]["LIF_0"])
    _, sym = rules.eprop().init(model, jax.random.key(1), xs[0])
    assert RULE_STATE not in sym


def test_rule_state_is_carried_by_the_step_and_checkpointed(tmp_path):
    model = build(lif())
    xs = np.random.default_rng(0).random((T, B, D), np.float32)
    ys = np.asarray([0, 2, 1], np.int32)
    trainer = sj.Trainer(model, rules.eprop(feedback="random"), optax.sgd(0.1))
    ts = trainer.init(jax.random.key(0), xs)
    fb = jax.tree.map(np.asarray, ts.state[RULE_STATE])  # the step donates ts
    ts, _ = trainer.step(ts, xs, ys)
    chex.assert_trees_all_equal(ts.state[RULE_STATE], fb)
    with Checkpointer(tmp_path, asynchronous=False) as ckpt:
        ckpt.save(1, ts, {})
    like = trainer.init(jax.random.key(7), xs)
    assert not np.allclose(like.state[RULE_STATE]["feedback"]["units_0"]["LIF_0"],
                           fb["feedback"]["units_0"]["LIF_0"])
    with Checkpointer(tmp_path) as ckpt:
        restored, _ = ckpt.restore(like)
    chex.assert_trees_all_equal(restored.state[RULE_STATE], fb)
    chex.assert_trees_all_equal(restored.params, ts.params)


def test_rules_are_values():
    assert rules.eprop() == rules.eprop(feedback="symmetric")
    assert hash(rules.eprop(feedback="random")) == hash(rules.EProp("random"))
    assert rules.eprop() != rules.eprop(feedback="random")
    assert rules.eprop().memory == "O(1)"
    with pytest.raises(ValueError, match="feedback"):
        rules.eprop(feedback="sideways")
    # Its own loop: no wrapper may run it as the engine's.
    with pytest.raises(ValueError, match="runs its own loop"):
        rules.online(rules.eprop())
    with pytest.raises(ValueError, match="temporal rule"):
        rules.local(rules.eprop(), block_size=1)


@pytest.mark.parametrize("model, where", [
    (models.SpikingSequential((models.ConvUnit(4, neuron=lif(), first=True),), C),
     "'units_0/Conv_0' (Conv)"),
    (models.SpikingSequential((RecurrentConv(4, neuron=lif(), first=True),), C),
     "'units_0/Conv_0' (Conv)"),
    (models.SpikingSequential((models.DenseUnit(H1, neuron=lif(), norm=True, first=True),), C),
     "'units_0/BatchNorm_0' (BatchNorm)"),
    (models.SpikingSequential((models.DenseUnit(H1, neuron=neurons.PLIF(neuron=lif()),
                                                first=True),), C),
     "'units_0/neuron' (PLIF)"),
], ids=["conv", "recurrent_conv", "batch_norm", "plif"])
def test_refusals_name_the_layer(model, where):
    shape = (T, B, 6, 6, 2) if "Conv" in where else (T, B, D)
    xs = jnp.ones(shape)
    ys = jnp.zeros((B,), jnp.int32)
    params, state = rules.bptt().init(model, jax.random.key(0), xs[0])
    with pytest.raises(ValueError, match="e-prop cannot train") as err:
        rules.eprop().value_and_grad(model, params, state, xs, ys, loss=LOSS)
    assert where in str(err.value)


def test_the_rate_loss_is_refused():
    model = build(lif(), layers=1, recurrent=(False,))
    params, state, xs, ys = problem(model)
    with pytest.raises(ValueError, match="per-step loss"):
        rules.eprop().value_and_grad(model, params, state, xs, ys, loss=rate())


@pytest.mark.parametrize("neuron", [lif(), neurons.ALIF(lif(), ADAPT)], ids=["lif", "alif"])
def test_compiled_memory_is_flat_in_T(neuron):
    """The gradient's compiled temporaries at T=8 and T=64 are equal: one scan over time
    carries states, eligibility vectors and the summed gradient."""
    model = build(neuron, recurrent=(True, True))
    rule = rules.eprop()
    params, state = rule.init(model, jax.random.key(0), jnp.zeros((B, D), jnp.float32))
    ys = jax.ShapeDtypeStruct((B,), jnp.int32)
    temps = []
    for steps in (8, 64):
        xs = jax.ShapeDtypeStruct((steps, B, D), jnp.float32)
        step = jax.jit(lambda p, xs, ys: rule.value_and_grad(model, p, state, xs, ys,
                                                             loss=LOSS))
        temps.append(step.lower(params, xs, ys).compile().memory_analysis().temp_size_in_bytes)
    assert temps[0] == temps[1], temps


@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_conformance_jits_once_and_moves_every_parameter(feedback):
    """The conformance suite's checks (its CNN has BatchNorm, which e-prop refuses): on a
    recurrent ALIF net with dropout, the step compiles once, stays finite and moves every
    parameter; the rule state rides along unchanged."""
    model = models.SpikingSequential(
        (models.DenseUnit(H1, neuron=lif(), first=True, dropout=0.2),
         RecurrentDense(H2, neuron=neurons.ALIF(lif(), ADAPT))), C)
    xs = jax.random.uniform(jax.random.key(0), (T, B, D), jnp.float32, 0.0, 2.0)
    ys = jnp.asarray([0, 2, 1], jnp.int32)
    trainer = sj.Trainer(model, rules.eprop(feedback=feedback), optax.adam(1e-2))
    ts = trainer.init(jax.random.key(1), xs)
    params0 = jax.tree.map(np.asarray, ts.params)
    chex.clear_trace_counter()
    def train_step(ts, xs, ys):
        return trainer.train_step(ts, xs, ys)

    step = jax.jit(chex.assert_max_traces(train_step, n=1))
    for _ in range(3):
        ts, metrics = step(ts, xs, ys)
    chex.assert_tree_all_finite((ts.params, metrics["loss"]))
    chex.assert_trees_all_equal_shapes_and_dtypes(ts.params, params0)
    moved = jax.tree.map(lambda a, b: not np.allclose(a, b), ts.params, params0)
    assert all(jax.tree.leaves(moved)), moved


def test_bfloat16():
    model = build(neurons.ALIF(lif(), ADAPT))
    xs = jax.random.uniform(jax.random.key(0), (T, B, D), minval=0, maxval=2).astype(
        jnp.bfloat16)
    ys = jnp.asarray([1, 0, 2])
    params, state = rules.eprop().init(model, jax.random.key(1), xs[0])
    params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    _, _, grads = jax.jit(
        lambda p: rules.eprop().value_and_grad(model, p, state, xs, ys, loss=LOSS))(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)
    chex.assert_tree_all_finite(grads)
