"""One suite every rule passes: jits, gradient tree matches parameters, finite, no retracing,
float32 and bfloat16, clear errors for impossible settings."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from snnjax import models, rules
from snnjax.losses import per_step, rate
from snnjax.train import Trainer

T, B = 4, 3
ALL_RULES = {
    "bptt": rules.bptt(),
    "tbptt": rules.tbptt(2),
    "tbptt_online": rules.tbptt(2, online=True),
    "local": rules.local(rules.bptt(), block_size=1),
    "tbptt_local": rules.local(rules.tbptt(2), block_size=1),
    "local_sltt": rules.local(rules.sltt(), boundaries=(1,)),
    "sltt": rules.sltt(),
    "sltt_k": rules.sltt_k(2),
    "ottt_a": rules.ottt(),
    "ottt_o": rules.ottt(online=True),
    "local_ottt": rules.local(rules.ottt(), block_size=1),
}


@pytest.fixture(scope="module")
def batch():
    xs = jax.random.uniform(jax.random.key(0), (T, B, 8, 8, 1), minval=0, maxval=2)
    return xs, jnp.asarray([1, 0, 2])


@pytest.mark.parametrize("name", sorted(ALL_RULES))
def test_rule_conformance(name, batch):
    rule = ALL_RULES[name]
    model = models.cnn(3, (4, 6), norm=True)
    xs, ys = batch
    trainer = Trainer(model, rule, optax.adam(1e-2))
    ts = trainer.init(jax.random.key(1), xs)
    params0 = ts.params

    loss, aux, grads = jax.jit(
        lambda p, s: rule.value_and_grad(model, p, s, xs, ys, loss=per_step(), key=jax.random.key(2))
    )(ts.params, ts.state)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, ts.params)
    chex.assert_tree_all_finite((loss, grads))
    chex.assert_shape(aux.logits, (B, 3))
    assert any(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))

    def train_step(ts, xs, ys):
        return trainer.train_step(ts, xs, ys)

    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(train_step, n=1))
    for _ in range(3):  # no retracing across steps
        ts, metrics = step(ts, xs, ys)
    chex.assert_tree_all_finite(ts.params)
    assert int(ts.step) == 3
    assert not np.allclose(ts.params["readout"]["Dense_0"]["kernel"],
                           params0["readout"]["Dense_0"]["kernel"])
    # BatchNorm running statistics moved.
    bs = ts.state["batch_stats"]["units_0"]["BatchNorm_0"]["mean"]
    assert float(jnp.abs(bs).sum()) > 0


@pytest.mark.parametrize("name", ["bptt", "tbptt", "sltt", "sltt_k", "ottt_a", "ottt_o"])
def test_bfloat16(name):
    rule = ALL_RULES[name]
    model = models.mlp(3, (8,))
    xs = jax.random.uniform(jax.random.key(0), (T, B, 6), minval=0, maxval=2).astype(jnp.bfloat16)
    ys = jnp.asarray([1, 0, 2])
    params, state = rule.init(model, jax.random.key(1), xs[0])
    params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    loss, _, grads = jax.jit(
        lambda p: rule.value_and_grad(model, p, state, xs, ys, loss=per_step(), key=jax.random.key(2))
    )(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)
    chex.assert_tree_all_finite(grads)


def test_every_rule_is_a_value_with_one_signature():
    for rule in ALL_RULES.values():
        assert isinstance(rule, rules.Rule)
        assert callable(rule.value_and_grad) and callable(rule.update)
    assert rules.by_name("tbptt-local", window=3, block_size=2).name == "local(tbptt(k=3))"


# ----------------------------------------------------------------- impossible settings


def _vg(rule, T_=T, model=None, loss=per_step()):
    model = model or models.mlp(3, (4, 4))
    xs = jnp.ones((T_, B, 5))
    params, state = rules.bptt().init(model, jax.random.key(0), xs[0])
    return rule.value_and_grad(model, params, state, xs, jnp.zeros(B, jnp.int32), loss=loss,
                               key=jax.random.key(0))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: rules.tbptt(0), "window"),
        (lambda: rules.sltt_k(0), "K"),
        (lambda: rules.sltt_k(2, steps=(1, 1)), "distinct"),
        (lambda: rules.local(rules.bptt()), "exactly one"),
        (lambda: rules.local(rules.bptt(), block_size=0), "block_size"),
        (lambda: rules.local(rules.local(rules.bptt(), block_size=1), block_size=1), "already"),
        (lambda: rules.by_name("rtrl"), "unknown rule"),
    ],
)
def test_bad_rule_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "rule, match",
    [
        (rules.tbptt(5), "longer than the sequence"),
        (rules.sltt_k(5), "larger than the number of time steps"),
        (rules.sltt_k(1, steps=(7,)), r"\[0, T"),
        (rules.local(rules.bptt(), boundaries=(2,)), "inside"),
        (rules.local(rules.bptt(), boundaries=(0,)), "inside"),
    ],
)
def test_impossible_settings_fail_before_compiling(rule, match):
    with pytest.raises(ValueError, match=match):
        _vg(rule)


def test_rate_loss_only_with_bptt():
    assert np.isfinite(_vg(rules.bptt(), loss=rate())[0])
    with pytest.raises(ValueError, match="per-step loss"):
        _vg(rules.sltt(), loss=rate())


def test_T_must_be_positive():
    with pytest.raises(ValueError, match="T"):
        rules.sltt().validate(0, per_step())


def test_sltt_k_selects_each_step_with_frequency_K_over_T():
    # N draws of K=3 among T=8 steps: each step's count is Binomial(N, 3/8); we allow
    # 5 standard deviations (a false failure has probability < 1e-5 per step).
    T_, K, N = 8, 3, 4000
    keys = jax.random.split(jax.random.key(123), N)
    masks = np.asarray(jax.vmap(lambda k: rules.select_steps(k, T_, K))(keys))
    assert (masks.sum(axis=1) == K).all()  # exactly K distinct steps each time
    p = K / T_
    freq = masks.mean(axis=0)
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / N)), freq
    # Different batches get different selections.
    assert len({tuple(m) for m in masks[:50]}) > 10
