"""SPEC §4's memory identities, from XLA's (deterministic) compiled memory analysis."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from snnjax import models, rules
from snnjax.cost import compiled_memory, tree_bytes
from snnjax.losses import per_step
from snnjax.train import Trainer

B = 8
LOSS = per_step()


def compiled(net, rule, T, batch, shape, figure="memory_bytes", optimizer=None):
    """One figure of the compiled training step's memory (compile only)."""
    return _compiled_memory(net, rule, T, batch, tuple(shape), optimizer)[figure]


@functools.cache  # several tests ask for the same step (modules and rules hash by value)
def _compiled_memory(net, rule, T, batch, shape, optimizer):
    xs = jax.ShapeDtypeStruct((T, batch, *shape), jnp.float32)
    ys = jax.ShapeDtypeStruct((batch,), jnp.int32)
    trainer = Trainer(net, rule, optimizer or optax.sgd(0.1, momentum=0.9))
    ts = jax.eval_shape(lambda: trainer.init(jax.random.key(0), jnp.zeros(xs.shape)))
    return compiled_memory(trainer.lower(ts, xs, ys))


def neuron_states(net, batch, shape):
    """The shapes of every neuron layer's state for one step of ``batch`` samples."""
    return jax.eval_shape(lambda: net.init(
        jax.random.key(0), jnp.zeros((1, batch, *shape)), train=False))["neuron"]


def temp_bytes(rule, T, model=None):
    model = model or models.mlp(10, (64, 64))
    return compiled(model, rule, T, B, (8, 8, 1), "temp_bytes", optax.sgd(0.1))


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


@pytest.mark.parametrize("chunk", [None, 1], ids=["one-chunk", "chunk1"])
def test_bptt_grows_linearly_with_T(chunk):
    m16, m32, m64 = (temp_bytes(rules.bptt(chunk=chunk), T) for T in (16, 32, 64))
    assert m32 > m16
    ratio = (m64 - m32) / (m32 - m16)
    assert ratio == pytest.approx(2.0, rel=0.10), (m16, m32, m64)


def test_bptt_default_pieces_follow_the_synapse_rows():
    # A conv net whose largest synapse op has >= PIECE_ROWS rows in one step (8·16·16 = 2048)
    # runs BPTT one step per piece: compiled exactly as bptt(chunk=1), below one piece of T.
    # A dense net (8 rows per step) runs the whole window as one piece.
    cnn = models.cnn(10, (4, 8))
    of = lambda rule: compiled(cnn, rule, 8, B, (16, 16, 1), "temp_bytes")
    assert of(rules.bptt()) == of(rules.bptt(chunk=1)) < of(rules.bptt(chunk=8))
    assert temp_bytes(rules.bptt(), 16) == temp_bytes(rules.bptt(chunk=16), 16)
    assert temp_bytes(rules.bptt(), 16) != temp_bytes(rules.bptt(chunk=1), 16)


def test_sltt_uses_less_than_bptt():
    assert temp_bytes(rules.sltt(), 32) < 0.5 * temp_bytes(rules.bptt(), 32)


@pytest.mark.parametrize("make", [rules.sltt, rules.ottt], ids=["sltt", "ottt"])
def test_a_chunk_of_C_steps_costs_O_C_not_O_T(make):
    # SPEC §9: a chunk trades memory for speed; with a fixed chunk memory stays flat in T.
    m_c4 = [temp_bytes(make(chunk=4), T) for T in (8, 32)]
    assert abs(m_c4[1] - m_c4[0]) <= 0.05 * m_c4[0], m_c4
    assert m_c4[0] > temp_bytes(make(), 8)  # four steps at once hold more than one


def assert_same_float64_results(net, rule, reference):
    """``rule`` and ``reference`` give the same loss, logits and gradients (float64)."""
    from snnjax.losses import per_step

    xs = 2.0 * jax.random.uniform(jax.random.key(1), (4, 3, 8, 8, 3), jnp.float64)
    ys = jnp.asarray([1, 4, 7])
    params, state = reference.init(net, jax.random.key(2), xs[0])
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    l1, a1, g1 = rule.value_and_grad(net, params, state, xs, ys, loss=per_step())
    l0, a0, g0 = reference.value_and_grad(net, params, state, xs, ys, loss=per_step())
    assert float(jnp.abs(a0.logits).max()) > 0
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g0)) > 0
    np.testing.assert_allclose(l1, l0, rtol=1e-12)
    np.testing.assert_allclose(a1.logits, a0.logits, rtol=1e-12, atol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), g1, g0)


def test_per_step_rules_on_a_conv_net_take_well_under_half_of_bptt():
    # The paper-scale figure (VGG-11 sWS, batch 128, T=6) is a benchmark; this guards the
    # same effect on a small VGG, total compiled memory, T=6.
    net = models.vgg11_sws(10, width=0.125)
    bptt = compiled(net, rules.bptt(chunk=1), 6, 64, (16, 16, 3))
    for rule in (rules.sltt(), rules.sltt_k(1), rules.ottt(), rules.ottt(online=True)):
        assert compiled(net, rule, 6, 64, (16, 16, 3)) < 0.4 * bptt, rule.name


def test_sltt_k_with_all_steps_selected_is_sltt(x64):
    # SLTT-K replays its selected steps as one batch from the recorded entering states:
    # K = T must give SLTT's gradients, scaled WS standardised once included.
    assert_same_float64_results(
        models.vgg11_sws(10, cfg=(8, 8, "A", 16)), rules.sltt_k(4, steps=(0, 1, 2, 3)),
        rules.sltt()
    )


def test_sltt_k_refuses_state_kept_outside_neurons():
    # VGG-F feeds the last layer back to the first: state its replay cannot restore.
    net = models.vgg11f_sws(10, cfg=(8, 8, "A", 16))
    xs = jnp.ones((4, 3, 8, 8, 3))
    params, state = rules.sltt().init(net, jax.random.key(0), xs[0])
    with pytest.raises(ValueError, match="SLTT-K.*'feedback'"):
        rules.sltt_k(1).value_and_grad(net, params, state, xs, jnp.zeros(3, jnp.int32),
                                       loss=LOSS, key=jax.random.key(1))


def test_sltt_k_replay_keeps_one_set_of_states_beyond_sltt():
    # SLTT-K keeps, for its batched replay, what each LIF layer reached at the K selected
    # steps (and the model's input there): at K = 1 at most one more set of neuron states
    # than SLTT, on a small VGG; growing with K, not T.
    net = models.vgg11_sws(10, width=0.125)
    batch, shape = 64, (16, 16, 3)
    states = neuron_states(net, batch, shape)
    sltt = compiled(net, rules.sltt(), 6, batch, shape)
    k1 = compiled(net, rules.sltt_k(1), 6, batch, shape)
    assert k1 - sltt <= tree_bytes(states), (sltt, k1, tree_bytes(states))
    assert compiled(net, rules.sltt_k(3), 6, 64, (16, 16, 3)) > k1


def _block_alone(net, start, end, in_shape, inner, batch, T):
    """Compiled temp memory of training units [start, end) of ``net`` alone (their own
    readout), with ``inner``, on inputs shaped like the block's: the block's own cost."""
    block = models.SpikingSequential(tuple(net.units[start:end]), net.num_classes)
    return compiled(block, inner, T, batch, in_shape, "temp_bytes", optax.sgd(0.1))


def test_local_memory_is_that_of_its_largest_block():
    # docs/schedules.md: each block's forward, head loss and backward finish before the next block
    # starts, so Local's temporaries are those of its largest block, plus what every rule
    # with a window keeps between windows (the other blocks' neuron states) and the
    # gradient sum: far below the whole network's under the same window.
    net = models.vgg11_sws(10, width=0.125, cfg=(16, 16, 16, 16))  # four equal blocks
    batch, T, inner, shape = 32, 4, rules.tbptt(1), (16, 16, 3)
    local_rule = rules.local(inner, block_size=1)
    blocks = [_block_alone(net, i, i + 1, (16, 16, 3 if i == 0 else 2), inner, batch, T)
              for i in range(4)]
    variables = jax.eval_shape(lambda: local_rule.init(
        net, jax.random.key(0), jnp.zeros((batch, *shape))))
    states = neuron_states(net, batch, shape)
    others = sum(tree_bytes(states[f"units_{i}"]) for i in (1, 2, 3))  # block 0 is the largest
    grad_sum = tree_bytes(variables[0])
    local = compiled(net, local_rule, T, batch, shape, "temp_bytes", optax.sgd(0.1))
    whole = compiled(net, inner, T, batch, shape, "temp_bytes", optax.sgd(0.1))
    assert local <= 1.05 * (max(blocks) + others + grad_sum), (local, blocks, others, grad_sum)
    assert local < 0.8 * whole, (local, whole)

