"""SPEC §4: the identities every rule must satisfy, in float64, to 1e-10.

Oracles, from the most independent to the least:
- a 2-hidden-layer spiking MLP written out by hand here (weights read from the flax tree),
  differentiated with ``jax.grad`` of a plain Python loop;
- OTTT's weight gradient as the explicit sum Σ_t δ_l[t]·â_{l-1}[t]ᵀ with δ computed by hand;
- a Python loop over the flax model (any model, incl. per-step BatchNorm);
- equalities between rules (TBPTT(k=T) == BPTT, ...).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from snnjax import models, rules, surrogate
from snnjax.losses import per_step
from snnjax.neuron import LIFParams

T, B, D, H1, H2, C = 5, 3, 6, 7, 4, 3  # T != B on purpose
LAM = 0.5
NEURON = LIFParams(decay=LAM, surrogate=surrogate.sigmoid(4.0))
LOSS = per_step(mse=0.1)
TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module", autouse=True)
def module_x64():
    with jax.enable_x64(True):
        yield


def to64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


@pytest.fixture(scope="module")
def mlp_problem():
    model = models.mlp(C, (H1, H2), neuron=NEURON)
    xs = jax.random.uniform(jax.random.key(0), (T, B, D), jnp.float64, 0.0, 2.0)
    ys = jnp.asarray([0, 2, 1])
    params, state = rules.bptt().init(model, jax.random.key(1), xs[0])
    params = to64(params)
    # Bigger weights than init so that both hidden layers spike, but not always.
    params = jax.tree.map(lambda p: 1.5 * p, params)
    s1, s2 = hand_forward(params, xs)[1:3]
    assert 0.1 < float(s1.mean()) < 0.9 and 0.1 < float(s2.mean()) < 0.9, "test needs spikes"
    return model, params, state, xs, ys


def weights(params):
    d = lambda name: (params[name]["Dense_0"]["kernel"], params[name]["Dense_0"]["bias"])  # noqa
    return d("units_0"), d("units_1"), d("readout")


def hand_forward(params, xs, cut=lambda t: False):
    """The network of `models.mlp(C, (H1, H2))`, unrolled by hand. Returns per-step
    (outputs, s1, s2, u1, u2); `cut(t)` stops the gradient of v[t-1]."""
    (W1, b1), (W2, b2), (W3, b3) = weights(params)
    spike = NEURON.surrogate
    v1, v2 = jnp.zeros((B, H1)), jnp.zeros((B, H2))
    outs, S1, S2, U1, U2 = [], [], [], [], []
    for t in range(T):
        sg = jax.lax.stop_gradient if cut(t) else (lambda a: a)
        u1 = LAM * sg(v1) + xs[t] @ W1 + b1
        s1 = spike(u1 - 1.0)
        v1 = u1 - s1
        u2 = LAM * sg(v2) + s1 @ W2 + b2
        s2 = spike(u2 - 1.0)
        v2 = u2 - s2
        outs.append(s2 @ W3 + b3)
        S1.append(s1), S2.append(s2), U1.append(u1), U2.append(u2)
    return tuple(jnp.stack(a) for a in (outs, S1, S2, U1, U2))


def hand_loss(params, xs, ys, cut=lambda t: False):
    outs = hand_forward(params, xs, cut)[0]
    return sum(LOSS.step(outs[t], ys) for t in range(T)) / T


def hand_grad(params, xs, ys, cut=lambda t: False):
    return jax.jit(jax.value_and_grad(lambda p: hand_loss(p, xs, ys, cut)))(params)[1]


_CACHE = {}


def rule_grads(rule, model, params, state, xs, ys, key=None):
    """(loss, grads) of a rule, jitted, cached per (rule, problem) across tests."""
    cache_key = (rule, id(model), id(params), None if key is None else
                 tuple(np.asarray(jax.random.key_data(key)).ravel()))
    if cache_key not in _CACHE:
        loss, _, grads = jax.jit(
            lambda p, s, x, y, k: rule.value_and_grad(model, p, s, x, y, loss=LOSS, key=k)
        )(params, state, xs, ys, key)
        chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)
        _CACHE[cache_key] = (loss, grads)
    return _CACHE[cache_key]


def assert_close(a, b):
    chex.assert_trees_all_close(a, b, **TOL)


# ----------------------------------------------------------------- against the hand MLP


def test_bptt_equals_grad_of_hand_unrolled(mlp_problem):
    model, params, state, xs, ys = mlp_problem
    loss, g = rule_grads(rules.bptt(), model, params, state, xs, ys)
    want_loss, want = jax.jit(jax.value_and_grad(hand_loss))(params, xs, ys)
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-12)
    assert_close(g, want)


def test_sltt_equals_grad_with_stop_gradient_on_v(mlp_problem):
    model, params, state, xs, ys = mlp_problem
    _, g = rule_grads(rules.sltt(), model, params, state, xs, ys)
    want = hand_grad(params, xs, ys, cut=lambda t: True)
    assert_close(g, want)
    # ... and it really differs from BPTT here (the temporal route matters).
    g_bptt = rule_grads(rules.bptt(), model, params, state, xs, ys)[1]
    assert not np.allclose(g["units_0"]["Dense_0"]["kernel"], g_bptt["units_0"]["Dense_0"]["kernel"])


@pytest.mark.parametrize("k", [2, 3])
def test_tbptt_equals_grad_cut_at_window_starts(mlp_problem, k):
    # T=5: windows of 2,2,1 (k=2) and 3,2 (k=3): the last window is shorter.
    model, params, state, xs, ys = mlp_problem
    _, g = rule_grads(rules.tbptt(k), model, params, state, xs, ys)
    want = hand_grad(params, xs, ys, cut=lambda t: t % k == 0)
    assert_close(g, want)


def test_local_two_blocks_equals_hand(mlp_problem):
    model, params, state, xs, ys = mlp_problem
    rule = rules.local(rules.bptt(), block_size=1)
    lparams, _ = rule.init(model, jax.random.key(2), xs[0])
    params = {**params, "aux_head_0": to64(lparams["aux_head_0"])}
    _, g = rule_grads(rule, model, params, state, xs, ys)

    def local_loss(p):
        # Block 0: unit 0 + its auxiliary head; block 1: unit 1 on the cut spikes + readout.
        (W1, b1), (W2, b2), (W3, b3) = weights(p)
        Wa, ba = p["aux_head_0"]["Dense_0"]["kernel"], p["aux_head_0"]["Dense_0"]["bias"]
        v1, v2, total = jnp.zeros((B, H1)), jnp.zeros((B, H2)), 0.0
        for t in range(T):
            u1 = LAM * v1 + xs[t] @ W1 + b1
            s1 = NEURON.surrogate(u1 - 1.0)
            v1 = u1 - s1
            u2 = LAM * v2 + jax.lax.stop_gradient(s1) @ W2 + b2
            s2 = NEURON.surrogate(u2 - 1.0)
            v2 = u2 - s2
            total += (LOSS.step(s1 @ Wa + ba, ys) + LOSS.step(s2 @ W3 + b3, ys)) / T
        return total

    assert_close(g, jax.jit(jax.grad(local_loss))(params))


def hand_ottt(params, xs, ys, lr=None):
    """OTTT's gradient Σ_t δ_l[t]·â_{l-1}[t]ᵀ with δ by hand (SLTT's spatial δ).

    With `lr`, OTTT_O: plain SGD after every step, the next step using the new weights.
    Returns (gradient sum, final params)."""
    p = params
    (W1, b1), (W2, b2), (W3, b3) = weights(p)
    dsig = NEURON.surrogate.derivative
    v1, v2 = jnp.zeros((B, H1)), jnp.zeros((B, H2))
    a1, a2 = jnp.zeros((B, H1)), jnp.zeros((B, H2))
    gsum = jax.tree.map(jnp.zeros_like, params)
    onehot = jax.nn.one_hot(ys, C)
    for t in range(T):
        u1 = LAM * v1 + xs[t] @ W1 + b1
        s1 = (u1 >= 1.0).astype(u1.dtype)
        v1 = u1 - s1
        u2 = LAM * v2 + s1 @ W2 + b2
        s2 = (u2 >= 1.0).astype(u2.dtype)
        v2 = u2 - s2
        o = s2 @ W3 + b3
        a1 = LAM * a1 + s1
        a2 = LAM * a2 + s2
        # dL[t]/do for (1-m)·CE (batch mean) + m·MSE (mean over B·C), all / T.
        m = LOSS.mse
        d3 = ((1 - m) * (jax.nn.softmax(o) - onehot) / B + m * 2 * (o - onehot) / (B * C)) / T
        d2 = (d3 @ W3.T) * dsig(u2 - 1.0)
        d1 = (d2 @ W2.T) * dsig(u1 - 1.0)
        g = {
            "units_0": {"Dense_0": {"kernel": xs[t].T @ d1, "bias": d1.sum(0)}},  # raw input
            "units_1": {"Dense_0": {"kernel": a1.T @ d2, "bias": d2.sum(0)}},
            "readout": {"Dense_0": {"kernel": a2.T @ d3, "bias": d3.sum(0)}},
        }
        gsum = jax.tree.map(jnp.add, gsum, g)
        if lr is not None:
            p = jax.tree.map(lambda w, gw: w - lr * gw, p, g)
            (W1, b1), (W2, b2), (W3, b3) = weights(p)
    return gsum, p


def test_ottt_equals_explicit_trace_sum(mlp_problem):
    model, params, state, xs, ys = mlp_problem
    _, g = rule_grads(rules.ottt(), model, params, state, xs, ys)
    want, _ = jax.jit(hand_ottt)(params, xs, ys)
    assert_close(g, want)
    # The trace really changes the gradient: SLTT (spikes as the factor) differs.
    _, g_sltt = rule_grads(rules.sltt(), model, params, state, xs, ys)
    assert not np.allclose(g["units_1"]["Dense_0"]["kernel"], g_sltt["units_1"]["Dense_0"]["kernel"])
    chex.assert_trees_all_close(g["units_0"], g_sltt["units_0"], **TOL)  # ... except layer 1


def test_ottt_o_updates_every_step(mlp_problem):
    model, params, state, xs, ys = mlp_problem
    lr = 0.5
    opt = optax.sgd(lr)
    new_params, _, _, loss, _ = rules.ottt(online=True).update(
        model, params, opt.init(params), state, xs, ys, loss=LOSS, key=None, optimizer=opt
    )
    _, want = jax.jit(hand_ottt, static_argnames="lr")(params, xs, ys, lr=lr)
    assert_close(new_params, want)
    # T updates differ from one update with the accumulated gradient (OTTT_A).
    gsum, _ = jax.jit(hand_ottt)(params, xs, ys)
    once = jax.tree.map(lambda w, g: w - lr * g, params, gsum)
    assert not np.allclose(once["units_0"]["Dense_0"]["kernel"], want["units_0"]["Dense_0"]["kernel"])


def test_ottt_o_without_optimizer_is_an_error(mlp_problem):
    model, params, state, xs, ys = mlp_problem
    with pytest.raises(ValueError, match="optimizer"):
        rules.ottt(online=True).update(
            model, params, None, state, xs, ys, loss=LOSS, key=None, optimizer=None
        )


# ----------------------------------------------------------------- rule equalities, MLP and CNN+BN


@pytest.fixture(scope="module", params=["mlp", "cnn_bn"])
def problem(request):
    if request.param == "mlp":
        model = models.mlp(C, (H1, H2), neuron=NEURON)
        xs = jax.random.uniform(jax.random.key(3), (T, B, D), jnp.float64, 0.0, 2.0)
    else:
        model = models.cnn(C, (4, 6), neuron=NEURON, norm=True)
        xs = jax.random.uniform(jax.random.key(3), (T, B, 8, 8, 2), jnp.float64, 0.0, 2.0)
    ys = jnp.asarray([2, 0, 1])
    params, state = rules.bptt().init(model, jax.random.key(4), xs[0])
    return model, to64(params), to64(state), xs, ys


def loop_loss(model, params, state, xs, ys, cut):
    """A Python loop over the flax model (no scan, no per-step grad); `cut(t)` stops the
    gradient of the neuron state entering step t."""
    zeros = jax.tree.map(jnp.zeros_like, model.init(jax.random.key(0), xs[:1])["neuron"])
    neuron, total = zeros, 0.0
    for t in range(T):
        neuron = jax.lax.stop_gradient(neuron) if cut(t) else neuron
        out, new = model.apply(
            {"params": params, "neuron": neuron, **state}, xs[t:t + 1], train=True,
            mutable=["neuron", *state],
        )
        neuron, state = new["neuron"], {k: new[k] for k in state}
        total += LOSS.step(out[0], ys) / T
    return total, state


def grad_loop(problem, cut):
    model, params, state, xs, ys = problem
    return jax.jit(jax.grad(lambda p: loop_loss(model, p, state, xs, ys, cut)[0]))(params)


def test_bptt_equals_python_loop(problem):
    model, params, state, xs, ys = problem
    (loss, aux, g) = jax.jit(
        lambda p: rules.bptt().value_and_grad(model, p, state, xs, ys, loss=LOSS)
    )(params)
    assert_close(g, grad_loop(problem, cut=lambda t: False))
    # BatchNorm's running statistics were updated at every step, as in the loop.
    _, want_state = jax.jit(lambda p: loop_loss(model, p, state, xs, ys, cut=lambda t: False))(
        params
    )
    assert_close(aux.state, want_state)


def test_sltt_equals_python_loop_with_cut(problem):
    model, params, state, xs, ys = problem
    _, g = rule_grads(rules.sltt(), *problem)
    assert_close(g, grad_loop(problem, cut=lambda t: True))


def test_tbptt_k_equals_T_is_bptt(problem):
    assert_close(rule_grads(rules.tbptt(T), *problem)[1], rule_grads(rules.bptt(), *problem)[1])


def test_tbptt_k_1_is_sltt(problem):
    assert_close(rule_grads(rules.tbptt(1), *problem)[1], rule_grads(rules.sltt(), *problem)[1])


def test_sltt_k_with_K_equals_T_is_sltt(problem):
    key = jax.random.key(7)
    loss_k, g_k = rule_grads(rules.sltt_k(T), *problem, key=key)
    loss, g = rule_grads(rules.sltt(), *problem)
    assert_close(g_k, g)
    assert float(loss_k) == pytest.approx(float(loss), rel=1e-12)


def test_local_with_one_block_is_bptt(problem):
    model = problem[0]
    one_block = rules.local(rules.bptt(), block_size=len(model.units))
    assert_close(rule_grads(one_block, *problem)[1], rule_grads(rules.bptt(), *problem)[1])


def test_local_inner_tbptt_one_block_is_tbptt(problem):
    model = problem[0]
    rule = rules.local(rules.tbptt(2), block_size=len(model.units))
    assert_close(rule_grads(rule, *problem)[1], rule_grads(rules.tbptt(2), *problem)[1])


def test_sltt_k_is_the_sum_of_its_selected_steps(problem):
    steps = (1, 3)
    loss_k, g_k = rule_grads(rules.sltt_k(2, steps=steps), *problem)
    parts = [rule_grads(rules.sltt_k(1, steps=(s,)), *problem)[1] for s in steps]
    assert_close(g_k, jax.tree.map(jnp.add, *parts))
    # The reported loss is the full sum over all T steps (same as SLTT's).
    assert float(loss_k) == pytest.approx(float(rule_grads(rules.sltt(), *problem)[0]), rel=1e-12)


def test_sltt_k_random_steps_come_from_the_key(problem):
    key = jax.random.key(11)
    _, g = rule_grads(rules.sltt_k(2), *problem, key=key)
    _, select_key = jax.random.split(key)
    steps = tuple(int(i) for i in np.flatnonzero(rules.select_steps(select_key, T, 2)))
    assert len(steps) == 2
    assert_close(g, rule_grads(rules.sltt_k(2, steps=steps), *problem)[1])
