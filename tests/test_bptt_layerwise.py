"""rules.bptt(layerwise=...): "auto" takes the layer-wise path on dense nets only, same function."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from snnjax import fast, losses, models, rules
from snnjax.models import SpikingSequential
from snnjax.neuron import LIFParams

T, B = 5, 3
NEURON = LIFParams(decay=0.5, v_th=0.5)


@pytest.fixture
def calls(monkeypatch):
    """Counts the calls of fast.run_layerwise (the layer-wise path) while a test runs."""
    n = []
    real = fast.run_layerwise

    def counted(*args, **kwargs):
        n.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fast, "run_layerwise", counted)
    return n


def _grads(rule, model, xs, ys, loss):
    params, state = rule.init(model, jax.random.key(0), xs[0])
    run = jax.jit(lambda p, s, x, y: rule.value_and_grad(model, p, s, x, y, loss=loss))
    return run(params, state, xs, ys)


def _mlp_batch():
    xs = jax.random.uniform(jax.random.key(1), (T, B, 12), jnp.float64) * 2
    return models.mlp(4, hidden=(16, 8), neuron=NEURON), xs, jnp.array([0, 3, 1])


def _cnn_batch():
    model = models.cnn(3, (4, 6), neuron=NEURON, norm=False)
    xs = jax.random.uniform(jax.random.key(2), (T, B, 8, 8, 2), jnp.float64) * 2
    return model, xs, jnp.array([2, 0, 1])


@pytest.mark.parametrize("loss", [losses.per_step(mse=0.3), losses.rate()], ids=["step", "rate"])
def test_auto_on_a_dense_net_is_layerwise_and_equals_the_scan(x64, calls, loss):
    model, xs, ys = _mlp_batch()
    assert fast.uses_layerwise(model, rules.bptt())
    v1, a1, g1 = _grads(rules.bptt(), model, xs, ys, loss)
    assert calls, "bptt() did not run the layer-wise path on a dense net"
    n = len(calls)
    v0, a0, g0 = _grads(rules.bptt(layerwise=False), model, xs, ys, loss)
    assert len(calls) == n, "bptt(layerwise=False) ran the layer-wise path"
    assert a1.logits.dtype == a0.logits.dtype == jnp.float64
    np.testing.assert_allclose(v1, v0, rtol=1e-10)
    chex.assert_trees_all_close(a1.logits, a0.logits, rtol=1e-10, atol=1e-12)
    chex.assert_trees_all_equal_structs(a1.state, a0.state)
    chex.assert_trees_all_close(g1, g0, rtol=1e-10, atol=1e-12)
    # Not a trivially zero gradient: spikes reached every layer.
    for g in jax.tree.leaves(g0):
        assert float(jnp.abs(g).max()) > 1e-6


def test_auto_on_a_conv_net_uses_the_scan(x64, calls):
    model, xs, ys = _cnn_batch()
    assert not fast.uses_layerwise(model, rules.bptt())
    v0, a0, g0 = _grads(rules.bptt(), model, xs, ys, losses.per_step())
    assert not calls, "bptt() ran a conv net layer-wise"
    # The conv net qualifies, so layerwise=True does take the other path, to the same result.
    assert fast.uses_layerwise(model, rules.bptt(layerwise=True))
    v1, a1, g1 = _grads(rules.bptt(layerwise=True), model, xs, ys, losses.per_step())
    assert calls
    np.testing.assert_allclose(v1, v0, rtol=1e-10)
    chex.assert_trees_all_close(a1.logits, a0.logits, rtol=1e-10, atol=1e-12)
    chex.assert_trees_all_close(g1, g0, rtol=1e-9, atol=1e-12)


def test_auto_falls_back_to_the_scan_where_layerwise_is_not_allowed(calls):
    mlp = models.mlp(4, hidden=(8,))

    class Stepped(SpikingSequential):  # a subclass may change the step
        pass

    not_layerwise = [
        (models.mlp(4, hidden=(8,), norm=True), rules.bptt()),
        (models.mlp(4, hidden=(8,), dropout=0.1), rules.bptt()),
        (mlp, rules.local(rules.bptt(), block_size=1)),
        (mlp, rules.bptt()._replace(traced=True)),
        (Stepped(mlp.units, 4), rules.bptt()),
        (mlp, rules.bptt(layerwise=False)),
    ]
    for model, rule in not_layerwise:
        assert not fast.uses_layerwise(model, rule), (model, rule)
    # BatchNorm under auto: trains through the scan, BatchNorm statistics updated.
    model = models.mlp(4, hidden=(8,), norm=True)
    xs = jax.random.uniform(jax.random.key(3), (T, B, 6))
    params, state = rules.bptt().init(model, jax.random.key(0), xs[0])
    _, aux, _ = rules.bptt().value_and_grad(model, params, state, xs, jnp.zeros(B, jnp.int32),
                                            loss=losses.per_step())
    assert not calls
    assert not jax.tree.all(jax.tree.map(jnp.array_equal, aux.state, state))


def test_layerwise_true_on_a_model_that_does_not_qualify_raises():
    xs = jnp.zeros((T, B, 12))
    ys = jnp.zeros((B,), jnp.int32)
    with pytest.raises(ValueError, match="BatchNorm or dropout"):
        _grads(rules.bptt(layerwise=True), models.mlp(4, hidden=(8,), norm=True), xs, ys,
               losses.per_step())
    with pytest.raises(ValueError, match="BatchNorm or dropout"):
        fast.uses_layerwise(models.mlp(4, hidden=(8,), norm=True), rules.bptt(layerwise=True))
    with pytest.raises(ValueError, match="traces"):
        _grads(rules.bptt(layerwise=True)._replace(traced=True), models.mlp(4, hidden=(8,)),
               xs, ys, losses.per_step())


@pytest.mark.parametrize("bad", ["yes", "Auto", 1, 0, None])
def test_invalid_layerwise_raises(bad):
    with pytest.raises(ValueError, match="layerwise"):
        rules.bptt(layerwise=bad)


def test_uses_layerwise_needs_a_bptt_rule():
    with pytest.raises(ValueError, match="not bptt"):
        fast.uses_layerwise(models.mlp(4, hidden=(8,)), rules.sltt())


def test_every_mode_is_named_bptt_and_a_stable_static_value():
    for mode in ("auto", True, False):
        assert rules.bptt(layerwise=mode).name == "bptt"
        assert rules.bptt(layerwise=mode) == rules.bptt(layerwise=mode)
    assert rules.bptt() == rules.by_name("bptt")
    assert rules.bptt() != rules.bptt(layerwise=False)
    assert fast.bptt_layerwise().name == "bptt(layerwise)"
    assert fast.bptt_layerwise().grad_fn is rules.bptt(layerwise=True).grad_fn


def test_a_training_step_is_the_same_either_way(x64, calls):
    model, xs, ys = _mlp_batch()
    opt = optax.sgd(0.5)
    out = []
    for rule in (rules.bptt(), rules.bptt(layerwise=False)):
        params, state = rule.init(model, jax.random.key(0), xs[0])
        out.append(rule.update(model, params, opt.init(params), state, xs, ys,
                               loss=losses.per_step(), key=None, optimizer=opt))
    assert calls
    chex.assert_trees_all_close(out[0], out[1], rtol=1e-10, atol=1e-12)
