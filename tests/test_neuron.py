"""LIF dynamics (SPEC §1) against trajectories computed by hand."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import surrogate
from snnjax.neuron import LIFParams, lif_run, lif_step, lif_step_pre_reset

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
    spikes, v = lif_run(p, jnp.asarray(CURRENTS, jnp.float32)[:, None])
    np.testing.assert_array_equal(np.asarray(spikes[:, 0]), [0, 0, 1, 1, 0, 0])
    np.testing.assert_allclose(float(v[0]), 0.43125, rtol=1e-6)


@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("decay", [0.5, 1.0 - 1.0 / 1.1])
def test_lif_matches_hand_trajectory(reset, decay):
    p = LIFParams(decay=decay, reset=reset)
    want_s, want_v = hand_trajectory(decay, reset, CURRENTS)
    v = jnp.zeros((1,))
    for t, i in enumerate(CURRENTS):
        s, v = lif_step(p, v, jnp.asarray([i]))
        assert float(s[0]) == want_s[t], (t, reset, decay)
        np.testing.assert_allclose(float(v[0]), want_v[t], rtol=1e-6, atol=1e-7)


def test_soft_and_hard_differ_after_spike():
    s_soft, v_soft = hand_trajectory(0.5, "soft", [1.5, 0.0])
    s_hard, v_hard = hand_trajectory(0.5, "hard", [1.5, 0.0])
    assert v_soft[0] == pytest.approx(0.5) and v_hard[0] == 0.0
    p_soft, p_hard = LIFParams(reset="soft"), LIFParams(reset="hard")
    _, vs = lif_step(p_soft, jnp.zeros(1), jnp.asarray([1.5]))
    _, vh = lif_step(p_hard, jnp.zeros(1), jnp.asarray([1.5]))
    assert float(vs[0]) == pytest.approx(0.5) and float(vh[0]) == 0.0


def test_from_tau():
    assert LIFParams.from_tau(2.0).decay == pytest.approx(0.5)
    assert LIFParams.from_tau(1.1).decay == pytest.approx(0.0909, abs=1e-4)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dtypes_preserved(dtype):
    p = LIFParams()
    x = jnp.ones((3, 4), dtype)
    s, v = jax.jit(lambda v, x: lif_step(p, v, x))(jnp.zeros((3, 4), dtype), x)
    chex.assert_type([s, v], dtype)


def test_float64(x64):
    s, v = lif_step(LIFParams(), jnp.zeros(2, jnp.float64), jnp.asarray([0.3, 2.0]))
    chex.assert_type([s, v], jnp.float64)
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


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_pre_reset_state_gives_the_same_spikes_and_gradients(x64, reset, detach):
    # Carrying u[t] (reset applied at the start of the next step) is the same function of
    # the currents as carrying v[t], gradients through every temporal route included.
    p = LIFParams(decay=0.7, reset=reset, detach_reset=detach, surrogate=surrogate.sigmoid(4.0))
    currents = jax.random.uniform(jax.random.key(3), (12, 5), jnp.float64, 0.0, 1.4)
    weights = jax.random.normal(jax.random.key(4), (12, 5), jnp.float64)

    def run(step, cur):
        def body(state, i_t):
            s, state = step(p, state, i_t)
            return state, s

        return jax.lax.scan(body, jnp.zeros(5, jnp.float64), cur)[1]

    def objective(step):
        return lambda cur: jnp.sum(weights * run(step, cur * 1.3))

    s_v, s_u = run(lif_step, currents), run(lif_step_pre_reset, currents)
    assert 0 < float(s_v.mean()) < 1  # spikes and silences: the reset matters
    np.testing.assert_array_equal(np.asarray(s_u), np.asarray(s_v))
    g_v = jax.grad(objective(lif_step))(currents)
    g_u = jax.grad(objective(lif_step_pre_reset))(currents)
    assert float(jnp.abs(g_v).max()) > 0
    np.testing.assert_allclose(np.asarray(g_u), np.asarray(g_v), rtol=1e-12, atol=1e-12)
