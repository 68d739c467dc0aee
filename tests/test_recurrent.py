"""Recurrent spiking layers (snnjax.recurrent) under every rule, in float64, to 1e-10.

The oracle is the network written out by hand here (a plain Python loop over t, weights read
from the flax tree), differentiated with ``jax.grad``; a rule that cuts a temporal route is
compared with the same loop with ``stop_gradient`` on every carried state (``v[t-1]`` and the
recurrent ``s[t-1]``) where the rule cuts it. OTTT's gradient is the explicit sum
``Σ_t δ[t]·â[t]ᵀ`` with the recurrent synapse's trace ``â_rec[t] = λ·â_rec[t-1] + s[t-1]``.
A delayed temporal XOR shows what the recurrent route buys: a recurrent net learns it, a
feed-forward net of the same size without membrane memory (λ = 0) cannot pass 75 %.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnjax as sj
from snnjax import models, neurons, rules, surrogate
from snnjax.losses import per_step
from snnjax.neuron import Adaptation, LIFParams
from snnjax.recurrent import RecurrentConv, RecurrentDense
from test_rules_identities import LOSS, TOL, to64

T, B, D, H1, H2, C = 5, 3, 6, 7, 4, 3  # T != B on purpose
LAM, V_TH = 0.5, 1.0
NEURON = LIFParams(decay=LAM, surrogate=surrogate.sigmoid(4.0))
NO_CUT = lambda t: False  # noqa: E731
ALL_CUT = lambda t: True  # noqa: E731


@pytest.fixture(scope="module", autouse=True)
def module_x64():
    with jax.enable_x64(True):
        yield


def close(a, b):
    chex.assert_trees_all_close(a, b, **TOL)


def grads_of(rule, model, params, state, xs, ys, key=None):
    loss, _, g = jax.jit(
        lambda p: rule.value_and_grad(model, p, state, xs, ys, loss=LOSS, key=key))(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(g, params)
    return loss, g


# ----------------------------------------------------------------- the hand-written network


def unit(params, name):
    p = params[name]
    return p["Dense_0"]["kernel"], p["Dense_0"]["bias"], p.get("recurrent_kernel")


def hand_forward(params, xs, *, cut=NO_CUT, adaptation=None, local=False, probes=None):
    """Two spiking layers (each recurrent where its parameters hold ``recurrent_kernel``) and
    a readout, unrolled by hand: ``u[t] = λ·v[t-1] + x[t]·W + b + s[t-1]·R``, soft reset,
    and with ``adaptation`` ALIF's threshold ``V_th + β·a[t]``, ``a[t] = ρ·a[t-1] + s[t-1]``.

    ``cut(t)``: stop_gradient on every state entering step t. ``local``: the second layer
    reads its input through stop_gradient and the first has the head ``aux_head_0``.
    ``probes``: zeros added to each layer's current and to the output, ``[T, B, ...]`` each
    (their gradients are the δs). Returns (outputs, auxiliary outputs, spikes per layer).
    """
    names = ("units_0", "units_1")
    W3, b3 = params["readout"]["Dense_0"]["kernel"], params["readout"]["Dense_0"]["bias"]
    states = [None, None]
    outs, aux, spikes = [], [], ([], [])
    for t in range(T):
        sg = jax.lax.stop_gradient if cut(t) else (lambda a: a)
        h = xs[t]
        for i, name in enumerate(names):
            W, b, R = unit(params, name)
            if local and i == 1:
                h = jax.lax.stop_gradient(h)
            current = h @ W + b
            if states[i] is None:
                u_prev = a_prev = s_prev = jnp.zeros_like(current)
            else:
                u_prev, a_prev, s_prev = (sg(x) for x in states[i])
            if R is not None:
                current = current + s_prev @ R
            if probes is not None:
                current = current + probes[i][t]
            u = LAM * (u_prev - V_TH * s_prev) + current
            if adaptation is None:
                a = a_prev
                s = NEURON.surrogate(u - V_TH)
            else:
                a = adaptation.rho * a_prev + s_prev
                s = NEURON.surrogate(u - (V_TH + adaptation.beta * a))
            states[i] = (u, a, s)
            spikes[i].append(s)
            h = s
            if local and i == 0:
                Wa = params["aux_head_0"]["Dense_0"]
                aux.append(s @ Wa["kernel"] + Wa["bias"])
        o = h @ W3 + b3
        outs.append(o if probes is None else o + probes[2][t])
    return outs, aux, tuple(jnp.stack(s) for s in spikes)


def hand_loss(params, xs, ys, steps=range(T), **kw):
    outs, aux, _ = hand_forward(params, xs, **kw)
    return sum(LOSS.step(outs[t], ys) + (LOSS.step(aux[t], ys) if aux else 0.0)
               for t in steps) / T


_HAND = {}


def hand_grad(params, xs, ys, name=None, **kw):
    """``jax.grad`` of :func:`hand_loss`; cached under ``name`` when given."""
    if name is None or name not in _HAND:
        g = jax.jit(jax.grad(lambda p: hand_loss(p, xs, ys, **kw)))(params)
        if name is None:
            return g
        _HAND[name] = g
    return _HAND[name]


def hand_deltas(params, xs, ys):
    """Spikes and δ = ∂L/∂I of every layer and of the output, ``[T, B, ...]`` each, through
    spatial routes only (autodiff of the cut loop w.r.t. probes on the currents)."""
    _, _, (s1, s2) = hand_forward(params, xs, cut=ALL_CUT)
    probes = [jnp.zeros_like(s1), jnp.zeros_like(s2),
              jnp.zeros((T, B, C), jnp.float64)]
    d1, d2, d3 = jax.grad(lambda pr: hand_loss(params, xs, ys, cut=ALL_CUT, probes=pr))(probes)
    return s1, s2, d1, d2, d3


def previous(s):
    """``s[t-1]`` for every t of ``s [T, ...]``, with ``s[-1] = 0``."""
    return jnp.concatenate([jnp.zeros_like(s[:1]), s[:-1]])


def outer(a, d):
    """``Σ_t a[t]ᵀ·d[t]`` over time and batch."""
    return jnp.einsum("tbi,tbj->ij", a, d)


def hand_ottt(params, xs, ys):
    """OTTT's gradient: δ of every layer (:func:`hand_deltas`) times the presynaptic traces,
    summed over t."""
    s1, s2, d1, d2, d3 = hand_deltas(params, xs, ys)

    def trace(stream):  # â[t] = λ·â[t-1] + stream[t], â[-1] = 0
        out, a = [], jnp.zeros_like(stream[0])
        for t in range(T):
            a = LAM * a + stream[t]
            out.append(a)
        return jnp.stack(out)

    g = {
        "units_0": {"Dense_0": {"kernel": outer(xs, d1), "bias": d1.sum((0, 1))},  # raw input
                    "recurrent_kernel": outer(trace(previous(s1)), d1)},
        "units_1": {"Dense_0": {"kernel": outer(trace(s1), d2), "bias": d2.sum((0, 1))},
                    "recurrent_kernel": outer(trace(previous(s2)), d2)},
        "readout": {"Dense_0": {"kernel": outer(trace(s2), d3), "bias": d3.sum((0, 1))}},
    }
    return g


def spiking(params, xs, **kw):
    _, _, (s1, s2) = hand_forward(params, xs, **kw)
    return 0.1 < float(s1.mean()) < 0.9 and 0.1 < float(s2.mean()) < 0.9


@pytest.fixture(scope="module")
def rnn():
    model = models.SpikingSequential(
        (RecurrentDense(H1, neuron=NEURON, first=True), RecurrentDense(H2, neuron=NEURON)), C,
        readout_decay=LAM)
    xs = jax.random.uniform(jax.random.key(0), (T, B, D), jnp.float64, 0.0, 2.0)
    ys = jnp.asarray([0, 2, 1])
    params, state = rules.bptt().init(model, jax.random.key(1), xs[0])
    params = jax.tree.map(lambda p: 1.5 * p, to64(params))
    assert spiking(params, xs), "the test needs both layers to spike, but not always"
    return model, params, state, xs, ys


# ----------------------------------------------------------------- the rules


@pytest.mark.parametrize("chunk", [1, 2, T])
def test_bptt_is_the_full_gradient_through_the_recurrence(rnn, chunk):
    model, params, state, xs, ys = rnn
    loss, g = grads_of(rules.bptt(chunk=chunk), model, params, state, xs, ys)
    assert float(loss) == pytest.approx(float(hand_loss(params, xs, ys)), rel=1e-12)
    close(g, hand_grad(params, xs, ys, "bptt"))


def test_bptt_with_remat_is_exact(rnn):
    model, params, state, xs, ys = rnn
    close(grads_of(rules.bptt(remat=True, chunk=1), model, params, state, xs, ys)[1],
          hand_grad(params, xs, ys, "bptt"))


@pytest.mark.parametrize("k,chunk", [(1, None), (2, 1), (2, 2), (3, None)])
def test_tbptt_cuts_the_recurrence_at_window_borders(rnn, k, chunk):
    model, params, state, xs, ys = rnn
    _, g = grads_of(rules.tbptt(k, chunk=chunk), model, params, state, xs, ys)
    close(g, hand_grad(params, xs, ys, cut=lambda t: t % k == 0))


@pytest.mark.parametrize("chunk", [1, 2, T])
def test_sltt_cuts_the_recurrence_at_every_step(rnn, chunk):
    model, params, state, xs, ys = rnn
    _, g = grads_of(rules.sltt(chunk=chunk), model, params, state, xs, ys)
    close(g, hand_grad(params, xs, ys, "sltt", cut=ALL_CUT))
    # The recurrent weight's gradient is then the instantaneous Σ_t δ[t]·s[t-1]ᵀ, not BPTT's.
    s1, s2, d1, d2, _ = hand_deltas(params, xs, ys)
    close(g["units_0"]["recurrent_kernel"], outer(previous(s1), d1))
    close(g["units_1"]["recurrent_kernel"], outer(previous(s2), d2))
    g_bptt = hand_grad(params, xs, ys, "bptt")
    assert not np.allclose(g["units_1"]["recurrent_kernel"],
                           g_bptt["units_1"]["recurrent_kernel"])


@pytest.mark.parametrize("chunk", [1, 2])
def test_sltt_k_replays_the_recurrent_input_of_its_steps(rnn, chunk):
    model, params, state, xs, ys = rnn
    steps = (1, 4)
    _, g = grads_of(rules.sltt_k(2, steps=steps, chunk=chunk), model, params, state, xs, ys)
    close(g, hand_grad(params, xs, ys, "sltt_k", cut=ALL_CUT, steps=steps))


def test_local_keeps_the_recurrence_inside_each_block(rnn):
    model, params, state, xs, ys = rnn
    rule = rules.local(rules.bptt(), block_size=1)
    lparams, _ = rule.init(model, jax.random.key(2), xs[0])
    params = {**params, "aux_head_0": to64(lparams["aux_head_0"])}
    _, g = grads_of(rule, model, params, state, xs, ys)
    close(g, hand_grad(params, xs, ys, local=True))


@pytest.mark.parametrize("chunk", [1, 2])
def test_ottt_takes_the_recurrent_gradient_at_the_trace_of_the_layers_own_spikes(rnn, chunk):
    model, params, state, xs, ys = rnn
    _, g = grads_of(rules.ottt(chunk=chunk), model, params, state, xs, ys)
    close(g, hand_ottt(params, xs, ys))


# ----------------------------------------------------------------- a tiny recurrent conv net


def test_recurrent_conv_equals_the_hand_loop_under_bptt_and_sltt():
    t_, b, hw, ci, f = 4, 2, 5, 2, 3
    model = models.SpikingSequential(
        (RecurrentConv(f, neuron=NEURON, first=True, recurrent_size=3),), C, readout_decay=LAM)
    xs = jax.random.uniform(jax.random.key(3), (t_, b, hw, hw, ci), jnp.float64, 0.0, 1.0)
    ys = jnp.asarray([1, 2])
    params, state = rules.bptt().init(model, jax.random.key(4), xs[0])
    params = jax.tree.map(lambda p: 1.5 * p, to64(params))

    def conv(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def loss(p, cut):
        u = s = jnp.zeros((b, hw, hw, f))
        total = 0.0
        for t in range(t_):
            sg = jax.lax.stop_gradient if cut(t) else (lambda a: a)
            u, s = sg(u), sg(s)
            cur = (conv(xs[t], p["units_0"]["Conv_0"]["kernel"]) + p["units_0"]["Conv_0"]["bias"]
                   + conv(s, p["units_0"]["recurrent_kernel"]))
            u = LAM * (u - V_TH * s) + cur
            s = NEURON.surrogate(u - V_TH)
            o = s.mean((1, 2)) @ p["readout"]["Dense_0"]["kernel"] + p["readout"]["Dense_0"]["bias"]
            total += LOSS.step(o, ys) / t_
        return total

    for rule, cut in [(rules.bptt(), NO_CUT), (rules.sltt(chunk=2), ALL_CUT)]:
        _, g = grads_of(rule, model, params, state, xs, ys)
        close(g, jax.jit(jax.grad(loss), static_argnums=1)(params, cut))


# ----------------------------------------------------------------- a task that needs memory


def temporal_xor(key, n):
    """Bit a at step 0 (input channels 0, 1), bit b at step 2 (channels 2, 3), nothing at
    steps 1 and 3: the label a XOR b. ``xs [4, n, 4]``, ``ys [n]``."""
    ab = jax.random.bernoulli(key, 0.5, (n, 2)).astype(jnp.int32)
    xs = jnp.zeros((4, n, 4))
    xs = xs.at[0].set(jax.nn.one_hot(ab[:, 0], 4) * 2.0)
    xs = xs.at[2].set(jax.nn.one_hot(ab[:, 1] + 2, 4) * 2.0)
    return xs, ab[:, 0] ^ ab[:, 1]


def test_a_recurrent_net_learns_a_temporal_xor_that_a_feed_forward_one_cannot():
    # λ = 0: a neuron keeps nothing from one step to the next, so only the recurrent synapse
    # can carry bit a to step 2. A feed-forward net then sums per-step logits that depend on
    # a alone and on b alone: no such sum separates XOR (3 of the 4 patterns at best).
    neuron = LIFParams(decay=0.0, surrogate=surrogate.sigmoid(4.0))

    def accuracy(unit_cls):
        xs_test, ys_test = temporal_xor(jax.random.key(0), 64)
        model = models.SpikingSequential((unit_cls(16, neuron=neuron, first=True),), 2,
                                         readout_decay=0.0)

        trainer = sj.Trainer(model, rules.bptt(), optax.adam(2e-2), loss=per_step())
        ts = trainer.init(jax.random.key(1), xs_test)
        for i in range(150):
            xs, ys = temporal_xor(jax.random.key(100 + i), 32)
            ts, _ = trainer.step(ts, xs, ys)
        return float((trainer.predict(ts, xs_test).argmax(-1) == ys_test).mean())

    with jax.enable_x64(False):
        assert accuracy(RecurrentDense) == 1.0
        assert accuracy(models.DenseUnit) <= 0.8


# ----------------------------------------------------------------- state and refusals


def test_the_layer_state_is_typed_and_holds_the_previous_spikes(rnn):
    model, params, state, xs, ys = rnn
    _, new = model.apply({"params": params}, xs, mutable=["neuron"])
    st = new["neuron"]["units_1"]["LIF_0"]["state"]
    assert isinstance(st, neurons.RecurrentState)
    _, _, (_, s2) = hand_forward(params, xs)
    chex.assert_trees_all_close(st.s, s2[-1])


def test_ottt_refuses_a_recurrent_alif_layer_naming_it(rnn):
    _, _, state, xs, ys = rnn
    model = models.SpikingSequential(
        (RecurrentDense(H1, neuron=neurons.ALIF(NEURON, Adaptation(0.8, 0.5)), first=True),), C)
    params, state = rules.bptt().init(model, jax.random.key(1), xs[0])
    with pytest.raises(ValueError, match=r"OTTT cannot train neuron 'units_0/neuron' \(ALIF\)"):
        rules.ottt().value_and_grad(model, params, state, xs, ys, loss=LOSS)


# ----------------------------------------------------------------- memory (SPEC §4)


@pytest.mark.parametrize("rule", [rules.sltt(), rules.sltt_k(2), rules.ottt(), rules.tbptt(2)],
                         ids=lambda r: r.name)
def test_the_recurrence_keeps_the_cut_rules_flat_in_T(rule):
    from test_rules_memory import temp_bytes

    net = models.SpikingSequential((RecurrentDense(64, first=True), RecurrentDense(64)), 10)
    with jax.enable_x64(False):
        m4, m32 = temp_bytes(rule, 4, net), temp_bytes(rule, 32, net)
    assert abs(m32 - m4) <= 0.05 * m4, (m4, m32)


def test_a_recurrent_plif_layer_gives_every_schedule_of_the_cut_route_one_gradient(rnn):
    # PLIF declares λ's parameter in its step: the recurrent wrapper must make that step once
    # per call, on every route (the cut route over chunks of 1 and of T, SLTT-K's replay).
    _, _, _, xs, ys = rnn
    model = models.SpikingSequential(
        (RecurrentDense(H1, neuron=neurons.PLIF(tau0=2.0), first=True),), C)
    params, state = rules.bptt().init(model, jax.random.key(5), xs[0])
    params = jax.tree.map(lambda p: 1.5 * p, to64(params))
    g1 = grads_of(rules.sltt(), model, params, state, xs, ys)[1]
    assert float(jnp.abs(g1["units_0"]["neuron"]["w"])) > 0
    close(grads_of(rules.sltt(chunk=T), model, params, state, xs, ys)[1], g1)
    close(grads_of(rules.sltt_k(T, steps=range(T)), model, params, state, xs, ys)[1], g1)


def test_ottt_refuses_a_recurrent_plif_layer_naming_it(rnn):
    _, _, _, xs, ys = rnn
    model = models.SpikingSequential((RecurrentDense(H1, neuron=neurons.PLIF(), first=True),), C)
    params, state = rules.bptt().init(model, jax.random.key(1), xs[0])
    with pytest.raises(ValueError, match=r"OTTT cannot train neuron 'units_0/neuron' \(PLIF\)"):
        rules.ottt().value_and_grad(model, params, state, xs, ys, loss=LOSS)
