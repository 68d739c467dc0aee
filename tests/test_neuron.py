"""LIF dynamics (SPEC §1) against trajectories computed by hand."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import surrogate
from snnjax.neuron import (
    LIFCarry, LIFParams, LIFState, lif_carry, lif_refire, lif_run, lif_state, lif_step,
    lif_step_v, potential,
)

CURRENTS = [0.6, 0.6, 0.6, 1.5, 0.0, 0.3]


def hand_trajectory(decay, reset, currents, v_th=1.0):
    """u = λ v + I; s = [u >= V_th]; soft: v = u - V_th s; hard: v = u (1 - s)."""
    v, spikes, vs = 0.0, [], []
    for i in currents:
        u = decay * v + i
        s = 1.0 if u >= v_th else 0.0
        v = u - v_th * s if reset == "soft" else u * (1.0 - s)
        spikes.append(s)
        vs.append(v)
    return spikes, vs


def test_hand_sequence_soft_lambda_half():
    # Worked out on paper: u = .6, .9, 1.05 (spike, v=.05), 1.525 (spike, v=.525),
    # .2625, .43125.
    p = LIFParams(decay=0.5, reset="soft")
    spikes, final = lif_run(p, jnp.asarray(CURRENTS, jnp.float32)[:, None])
    np.testing.assert_array_equal(np.asarray(spikes[:, 0]), [0, 0, 1, 1, 0, 0])
    np.testing.assert_allclose(float(potential(p, lif_carry(p, final))[0]), 0.43125, rtol=1e-6)


@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("decay", [0.5, 1.0 - 1.0 / 1.1])
def test_lif_matches_hand_trajectory(reset, decay):
    p = LIFParams(decay=decay, reset=reset)
    want_s, want_v = hand_trajectory(decay, reset, CURRENTS)
    state = lif_carry(p, lif_state(jnp.zeros((1,))))
    for t, i in enumerate(CURRENTS):
        s, state = lif_step(p, state, jnp.asarray([i]))
        assert float(s[0]) == want_s[t], (t, reset, decay)
        np.testing.assert_allclose(float(potential(p, state)[0]), want_v[t], rtol=1e-6,
                                   atol=1e-7)


@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("detach", [False, True])
def test_post_reset_form_is_the_same_step(x64, reset, detach):
    # lif_step_v (carry v) and lif_step (carry (u, s)): the same spikes bit for bit, the same
    # gradients w.r.t. currents and λ, on the hand sequence and on random currents.
    p = LIFParams(decay=0.5, reset=reset, detach_reset=detach)
    currents = jnp.concatenate([
        jnp.asarray(CURRENTS, jnp.float64)[:, None] * jnp.ones((1, 4)),
        jax.random.uniform(jax.random.key(0), (6, 4), jnp.float64, 0.0, 1.5)])

    def run(form, currents, lam):
        if form == "v":
            body = lambda v, i: lif_step_v(p, v, i, decay=lam)[::-1]
            carry = jnp.zeros(4, jnp.float64)
        else:
            body = lambda c, i: lif_step(p, c, i, decay=lam)[::-1]
            carry = lif_carry(p, lif_state(jnp.zeros(4, jnp.float64)))
        return jax.lax.scan(body, carry, currents)[1]

    want_s, _ = hand_trajectory(0.5, reset, CURRENTS)
    np.testing.assert_array_equal(run("v", currents, 0.5)[:6, 0], want_s)
    np.testing.assert_array_equal(run("v", currents, 0.5), run("u", currents, 0.5))
    weights = jax.random.normal(jax.random.key(1), currents.shape, jnp.float64)

    def loss(form):
        return lambda c, lam: jnp.sum(weights * run(form, c, lam))

    g_v = jax.grad(loss("v"), argnums=(0, 1))(currents, jnp.float64(0.5))
    g_u = jax.grad(loss("u"), argnums=(0, 1))(currents, jnp.float64(0.5))
    assert float(jnp.abs(g_v[0]).max()) > 0 and float(jnp.abs(g_v[1])) > 0
    np.testing.assert_allclose(g_v[0], g_u[0], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(g_v[1], g_u[1], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("surr", ["sigmoid", "triangle"])
def test_refire_from_the_recorded_potential_is_the_cut_step(x64, reset, surr):
    # SLTT-K's replay of a LIF step: firing again from the u[t] the forward pass reached
    # gives lif_step's spikes and current-gradient from the constant state that led there
    # (hand sequence: the state entering each step of CURRENTS, some spiking).
    p = LIFParams(decay=0.5, reset=reset, surrogate=surrogate.get(surr, 1.0))
    currents = jnp.asarray(CURRENTS, jnp.float64)[:, None] * jnp.asarray([1.0, 0.9, 1.2])
    entering = jax.lax.scan(lambda c, i: (lif_step(p, c, i)[1], c),
                            lif_carry(p, lif_state(currents[0])), currents)[1]

    def step(i):
        return jax.vmap(lambda c, i_t: lif_step(p, c, i_t)[0])(jax.lax.stop_gradient(entering), i)

    reached = jax.vmap(lambda c, i_t: lif_step(p, c, i_t)[1].u)(entering, currents)
    weights = jax.random.normal(jax.random.key(2), currents.shape, jnp.float64)
    want_s, want_g = step(currents), jax.grad(lambda i: jnp.sum(weights * step(i)))(currents)
    got_s = lif_refire(p, reached, currents)
    got_g = jax.grad(lambda i: jnp.sum(weights * lif_refire(p, reached, i)))(currents)
    want_hand, _ = hand_trajectory(0.5, reset, CURRENTS)
    np.testing.assert_array_equal(got_s[:, 0], want_hand)
    np.testing.assert_array_equal(got_s, want_s)
    assert float(jnp.abs(want_g).max()) > 0
    np.testing.assert_allclose(got_g, want_g, rtol=1e-14, atol=1e-15)
    # Its value is the recorded potential's: the current's value is not read.
    np.testing.assert_array_equal(lif_refire(p, reached, jnp.zeros_like(currents)), want_s)


def test_soft_and_hard_differ_after_spike():
    s_soft, v_soft = hand_trajectory(0.5, "soft", [1.5, 0.0])
    s_hard, v_hard = hand_trajectory(0.5, "hard", [1.5, 0.0])
    assert v_soft[0] == pytest.approx(0.5) and v_hard[0] == 0.0
    p_soft, p_hard = LIFParams(reset="soft"), LIFParams(reset="hard")
    rest = LIFCarry(jnp.zeros(1), jnp.zeros(1))
    _, ss = lif_step(p_soft, rest, jnp.asarray([1.5]))
    _, sh = lif_step(p_hard, rest, jnp.asarray([1.5]))
    assert float(potential(p_soft, ss)[0]) == pytest.approx(0.5)
    assert float(potential(p_hard, sh)[0]) == 0.0


def test_from_tau():
    assert LIFParams.from_tau(2.0).decay == pytest.approx(0.5)
    assert LIFParams.from_tau(1.1).decay == pytest.approx(0.0909, abs=1e-4)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dtypes_preserved(dtype):
    p = LIFParams()
    x = jnp.ones((3, 4), dtype)
    s, state = jax.jit(lambda st, x: lif_step(p, lif_carry(p, st), x))(
        lif_state(jnp.zeros((3, 4), dtype)), x)
    chex.assert_type([s, state.u, state.s], dtype)


def test_float64(x64):
    p = LIFParams()
    s, state = lif_step(p, lif_carry(p, lif_state(jnp.zeros(2, jnp.float64))),
                        jnp.asarray([0.3, 2.0]))
    chex.assert_type([s, state.u], jnp.float64)
    np.testing.assert_array_equal(np.asarray(s), [0.0, 1.0])


def test_vmap_and_grad_through_scan():
    p = LIFParams(decay=0.5, surrogate=surrogate.triangle())
    currents = jnp.linspace(0.2, 1.4, 12).reshape(3, 4)  # [T, B]

    def total_spikes(scale):
        spikes, _ = lif_run(p, scale * currents)
        return spikes.sum()

    g = jax.grad(total_spikes)(1.0)
    assert np.isfinite(g) and g > 0  # more input → more (surrogate) spikes
    per_neuron = jax.vmap(lambda c: lif_run(p, c[:, None])[0][:, 0], in_axes=1, out_axes=1)
    np.testing.assert_array_equal(per_neuron(currents), lif_run(p, currents)[0])


def test_detach_reset_changes_gradient_only():
    x = jnp.asarray([[1.2], [0.4]])

    def run(detach):
        p = LIFParams(detach_reset=detach, surrogate=surrogate.triangle())
        return lambda s: lif_run(p, s * x)[0].sum()

    np.testing.assert_array_equal(run(True)(1.0), run(False)(1.0))
    assert jax.grad(run(True))(1.0) != jax.grad(run(False))(1.0)


@pytest.mark.parametrize(
    "kwargs", [dict(decay=1.5), dict(v_th=0.0), dict(reset="none")]
)
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        LIFParams(**kwargs)


def v_carry_step(p, v, i_t):
    """SPEC §1 written with the post-reset potential v as the carry (the reference)."""
    u = p.decay * v + i_t
    s = p.surrogate(u - p.v_th)
    s_r = jax.lax.stop_gradient(s) if p.detach_reset else s
    v = u - p.v_th * s_r if p.reset == "soft" else u * (1.0 - s_r)
    return s, v


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_pre_reset_state_is_spec_v_carry(x64, reset, detach):
    # Carrying u[t] and applying the reset at the start of the next step is the same function
    # of the currents as SPEC's v-carry, gradients through every temporal route too, also
    # across chunks (the spike recomputed from u where a chunk starts).
    p = LIFParams(decay=0.7, reset=reset, detach_reset=detach, surrogate=surrogate.sigmoid(4.0))
    currents = jax.random.uniform(jax.random.key(3), (12, 5), jnp.float64, 0.0, 1.4)
    weights = jax.random.normal(jax.random.key(4), (12, 5), jnp.float64)

    def reference(cur):
        def body(v, i_t):
            s, v = v_carry_step(p, v, i_t)
            return v, s

        return jax.lax.scan(body, jnp.zeros(5, jnp.float64), cur)[1]

    def ours(cur):
        s1, state = lif_run(p, cur[:5])
        s2, _ = lif_run(p, cur[5:], state)
        return jnp.concatenate([s1, s2])

    s_ref, s_ours = reference(currents), ours(currents)
    assert 0 < float(s_ref.mean()) < 1  # spikes and silences: the reset matters
    np.testing.assert_array_equal(np.asarray(s_ours), np.asarray(s_ref))
    g_ref = jax.grad(lambda c: jnp.sum(weights * reference(c * 1.3)))(currents)
    g_ours = jax.grad(lambda c: jnp.sum(weights * ours(c * 1.3)))(currents)
    assert float(jnp.abs(g_ref).max()) > 0
    np.testing.assert_allclose(np.asarray(g_ours), np.asarray(g_ref), rtol=1e-12, atol=1e-12)
    assert isinstance(lif_run(p, currents)[1], LIFState)
