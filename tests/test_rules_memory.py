"""SPEC §4's memory identities, from XLA's (deterministic) compiled memory analysis."""

import jax
import jax.numpy as jnp
import optax
import pytest

from snnjax import models, rules
from snnjax.cost import compiled_memory
from snnjax.train import Trainer

B = 8


def temp_bytes(rule, T, model=None):
    model = model or models.mlp(10, (64, 64))
    xs = jax.ShapeDtypeStruct((T, B, 8, 8, 1), jnp.float32)
    ys = jax.ShapeDtypeStruct((B,), jnp.int32)
    trainer = Trainer(model, rule, optax.sgd(0.1))
    ts = jax.eval_shape(lambda: trainer.init(jax.random.key(0), jnp.zeros(xs.shape)))
    return compiled_memory(trainer.lower(ts, xs, ys))["temp_bytes"]


@pytest.mark.parametrize(
    "rule", [rules.sltt(), rules.sltt_k(2), rules.ottt(), rules.ottt(online=True)],
    ids=lambda r: r.name,
)
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_constant_memory_rules_do_not_grow_with_T(rule, model):
    net = models.mlp(10, (64, 64)) if model == "mlp" else models.cnn(10, (4, 8))
    m4, m64 = temp_bytes(rule, 4, net), temp_bytes(rule, 64, net)
    assert abs(m64 - m4) <= 0.05 * m4, (m4, m64)


def test_tbptt_grows_with_k_not_T():
    m8, m64 = temp_bytes(rules.tbptt(4), 8), temp_bytes(rules.tbptt(4), 64)
    assert abs(m64 - m8) <= 0.05 * m8, (m8, m64)
    assert temp_bytes(rules.tbptt(8), 64) > 1.2 * m64  # a longer window costs more


# On this MLP bptt() runs layer-wise by default ("auto"); the per-step scan is checked too.
@pytest.mark.parametrize("layerwise", ["auto", False], ids=["auto", "scan"])
def test_bptt_grows_linearly_with_T(layerwise):
    m16, m32, m64 = (temp_bytes(rules.bptt(layerwise=layerwise), T) for T in (16, 32, 64))
    assert m32 > m16
    ratio = (m64 - m32) / (m32 - m16)
    assert ratio == pytest.approx(2.0, rel=0.10), (m16, m32, m64)


def test_sltt_uses_less_than_bptt():
    assert temp_bytes(rules.sltt(), 32) < 0.5 * temp_bytes(rules.bptt(), 32)
