"""The engine's schedules (docs/schedules.md) change no gradient; any flax model trains under
every rule.

In float64, to 1e-10:
- time chunks C ∈ {1, 2, T} for SLTT, SLTT-K's forward and OTTT_A, against the hand-written
  oracles of test_rules_identities and against the Python loop over the model;
- Local's block-sequential order, against the hand-written two-block network;
- a user-written module (not from snnjax.models), with LIF, IF and PLIF neurons, against
  the Python loop oracle under every rule that accepts it, and OTTT's explicit trace sum;
- rules that cannot serve a module refuse it, naming the layer, before compiling.
"""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from snnjax import layers, models, neurons, rules, surrogate
from snnjax.neuron import LIFParams
from snnjax.rules import engine
from test_rules_identities import (
    LOSS, NEURON, T, B, D, C, H1, H2, TOL, hand_forward, hand_grad, hand_ottt, loop_loss, to64,
)

CHUNKS = (1, 2, T)


@pytest.fixture(scope="module", autouse=True)
def module_x64():
    with jax.enable_x64(True):
        yield


def grads(rule, model, params, state, xs, ys, key=None):
    loss, aux, g = jax.jit(
        lambda p: rule.value_and_grad(model, p, state, xs, ys, loss=LOSS, key=key)
    )(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(g, params)
    return loss, aux, g


def close(a, b):
    chex.assert_trees_all_close(a, b, **TOL)


@pytest.fixture(scope="module")
def mlp():
    model = models.mlp(C, (H1, H2), neuron=NEURON)
    xs = jax.random.uniform(jax.random.key(0), (T, B, D), jnp.float64, 0.0, 2.0)
    ys = jnp.asarray([0, 2, 1])
    params, state = rules.bptt().init(model, jax.random.key(1), xs[0])
    params = jax.tree.map(lambda p: 1.5 * p, to64(params))
    return model, params, state, xs, ys


@pytest.fixture(scope="module")
def cnn_bn():
    model = models.cnn(C, (4, 6), neuron=NEURON, norm=True, dropout=0.2)
    xs = jax.random.uniform(jax.random.key(3), (T, B, 8, 8, 2), jnp.float64, 0.0, 2.0)
    ys = jnp.asarray([2, 0, 1])
    params, state = rules.bptt().init(model, jax.random.key(4), xs[0])
    return model, to64(params), to64(state), xs, ys


# ---------------------------------------------------------------------------- time chunks


@pytest.mark.parametrize("chunk", CHUNKS)
def test_sltt_chunks_equal_the_hand_gradient(mlp, chunk):
    model, params, state, xs, ys = mlp
    _, _, g = grads(rules.sltt(chunk=chunk), *mlp)
    close(g, hand_grad(params, xs, ys, cut=lambda t: True))


@pytest.mark.parametrize("chunk", CHUNKS)
def test_ottt_chunks_equal_the_explicit_trace_sum(mlp, chunk):
    model, params, state, xs, ys = mlp
    _, _, g = grads(rules.ottt(chunk=chunk), *mlp)
    close(g, jax.jit(hand_ottt)(params, xs, ys)[0])


@pytest.mark.parametrize("chunk", CHUNKS)
def test_sltt_k_forward_chunks_change_nothing(mlp, chunk):
    # SLTT-K's gradient is the sum of SLTT's step gradients at its steps (hand oracle),
    # whatever the chunk of its forward pass and although it replays them as one batch.
    model, params, state, xs, ys = mlp
    steps = (0, 3, 4)
    _, _, g = grads(rules.sltt_k(3, steps=steps, chunk=chunk), *mlp)
    want = jax.grad(lambda p: sum(_hand_step_loss(p, xs, ys, s) for s in steps))(params)
    close(g, want)


def _hand_step_loss(params, xs, ys, step):
    """The hand MLP's loss at one step, every temporal route cut (SLTT's step gradient)."""
    outs = hand_forward(params, xs, cut=lambda t: True)[0]
    return LOSS.step(outs[step], ys) / T


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("make", [rules.sltt, rules.ottt],
                         ids=["sltt", "ottt"])
def test_chunks_on_a_conv_net_with_batchnorm_and_dropout(cnn_bn, chunk, make):
    # Per-step BatchNorm statistics, running statistics updated every step and a dropout
    # mask fixed over time: the same for every chunk length.
    model, params, state, xs, ys = cnn_bn
    key = jax.random.key(5)
    if make is rules.ottt:
        model = models.cnn(C, (4, 6), neuron=NEURON, norm=True, dropout=0.2, pool="avg")
    loss1, aux1, g1 = grads(make(chunk=1), model, params, state, xs, ys, key)
    loss_c, aux_c, g_c = grads(make(chunk=chunk), model, params, state, xs, ys, key)
    close(g_c, g1)
    close(aux_c.state, aux1.state)
    assert float(loss_c) == pytest.approx(float(loss1), rel=1e-12)
    if make is rules.sltt:  # and chunk 1 is the Python loop over the model with the cut
        model_rng = {"dropout": key}
        want = jax.grad(lambda p: _loop(model, p, state, xs, ys, model_rng))(params)
        close(g1, want)


@pytest.mark.parametrize("rule, whole", [
    (rules.bptt(chunk=1), rules.bptt(chunk=T)),
    (rules.bptt(chunk=2), rules.bptt(chunk=T)),
    (rules.bptt(), rules.bptt(chunk=T)),
    (rules.tbptt(3, chunk=1), rules.tbptt(3, chunk=3)),
    (rules.tbptt(3, chunk=2), rules.tbptt(3, chunk=3)),
], ids=["bptt-c1", "bptt-c2", "bptt-auto", "tbptt3-c1", "tbptt3-c2"])
def test_pieces_of_a_kept_window_on_a_conv_net_with_batchnorm_and_dropout(cnn_bn, rule, whole):
    # A differentiated window run as a scan over pieces: the same loss, gradient and
    # BatchNorm statistics as the window in one application.
    model, params, state, xs, ys = cnn_bn
    key = jax.random.key(5)
    loss_w, aux_w, g_w = grads(whole, model, params, state, xs, ys, key)
    loss_p, aux_p, g_p = grads(rule, model, params, state, xs, ys, key)
    close(g_p, g_w)
    close(aux_p.state, aux_w.state)
    assert float(loss_p) == pytest.approx(float(loss_w), rel=1e-12)


def test_default_pieces_give_each_synapse_op_enough_rows():
    # One step once a step's largest synapse op has PIECE_ROWS rows (a conv net); otherwise
    # the fewest steps that reach them, the window split into equal pieces (a dense net).
    assert engine.PIECE_ROWS == 1024
    assert engine.piece_length(8, 8 * 32 * 32) == 1
    assert engine.piece_length(8, 1024) == 1 and engine.piece_length(8, 1023) == 2
    assert engine.piece_length(100, 16) == 100  # 64 steps needed: one piece
    assert engine.piece_length(500, 16) == 72  # 7 pieces of >= 64 steps
    assert engine.piece_length(100, 128) == 9  # pieces of >= 8 steps
    assert engine.piece_length(6, 0) == 6  # no synapse
    plan = rules.bptt().plan(8)
    assert plan.apply is None and engine.resolve_pieces(plan, 4096).apply == 1
    # Read off a model: a conv net at 32×32 with batch 2 (2048 rows), a dense one (2 rows).
    cnn, mlp = models.cnn(C, (4,)), models.mlp(C, (8,))
    for model, shape, want in ((cnn, (32, 32, 1), 1), (mlp, (6,), 8)):
        xs = jnp.zeros((8, 2, *shape))
        params, state = rules.bptt().init(model, jax.random.key(0), xs[0])
        assert rules.bptt().plan_for(model, params, state, xs).apply == want
        assert rules.tbptt(4).plan_for(model, params, state, xs).apply == min(want, 4)
    assert rules.bptt(chunk=2).plan(8).apply == 2 and rules.sltt(chunk=2).plan(8).apply == 2
    with pytest.raises(ValueError, match="pieces are not chosen"):
        engine.run((), {}, {}, jnp.zeros((8, 2, 3)), jnp.zeros(2, int), loss=LOSS, key=None,
                   plan=plan)


def test_local_reports_the_readouts_loss_and_each_heads(mlp):
    # Local minimises the sum of its heads' losses; what a user compares with other rules is
    # the readout's: the trainer reports that as "loss"; value_and_grad gives each head's.
    from snnjax import train

    model, params, state, xs, ys = mlp
    rule = rules.local(rules.bptt(), block_size=1)
    lparams, _ = rule.init(model, jax.random.key(2), xs[0])
    lparams = {**params, "aux_head_0": to64(lparams["aux_head_0"])}
    loss, aux, _ = grads(rule, model, lparams, state, xs, ys)
    readout_loss, bptt_aux, _ = grads(rules.bptt(), model, params, state, xs, ys)
    assert bptt_aux.head_losses is None  # one piece: the loss is the readout's
    chex.assert_shape(aux.head_losses, (2,))
    assert float(aux.head_losses[-1]) == pytest.approx(float(readout_loss), rel=1e-12)
    assert float(aux.head_losses.sum()) == pytest.approx(float(loss), rel=1e-12)
    assert float(aux.head_losses[0]) > 0.5 * float(readout_loss)  # a head, not a zero

    opt = optax.sgd(0.0)
    ts = train.TrainState(lparams, opt.init(lparams), state, jnp.zeros((), jnp.int32),
                          jax.random.key(3))
    _, metrics = jax.jit(lambda ts: train._train_step(ts, xs, ys, model=model, rule=rule,
                                                      optimizer=opt, loss=LOSS))(ts)
    assert float(metrics["loss"]) == pytest.approx(float(readout_loss), rel=1e-12)


def _loop(model, params, state, xs, ys, rngs):
    """SLTT by a Python loop over the model, one step at a time, the state cut each step."""
    neuron = jax.tree.map(jnp.zeros_like, model.init(jax.random.key(0), xs[:1])["neuron"])
    total = 0.0
    for t in range(T):
        out, new = model.apply({"params": params, "neuron": jax.lax.stop_gradient(neuron),
                                **state}, xs[t:t + 1], train=True, rngs=rngs,
                               mutable=["neuron", *state])
        neuron, state = new["neuron"], {k: new[k] for k in state}
        total += LOSS.step(out[0], ys) / T
    return total


def test_local_runs_block_after_block_with_the_same_gradient(cnn_bn):
    # Block-sequential (docs/rules.md) against differentiating the sum of all heads' losses at
    # once with stop_gradient at the block inputs: one function, two schedules.
    model, params, state, xs, ys = cnn_bn
    rule = rules.local(rules.bptt(), block_size=1)
    lparams, _ = rule.init(model, jax.random.key(2), xs[0])
    params = {**params, "aux_head_0": to64(lparams["aux_head_0"])}
    key = jax.random.key(6)
    loss, aux, g = grads(rule, model, params, state, xs, ys, key)

    def all_at_once(p):
        stages = rule.stages(model)
        x, total, st = xs, 0.0, state
        for stage in stages:
            (x_next, logits), _ = stage.apply(
                {"params": stage.take(p), **{c: stage.take(st[c]) for c in st}},
                jax.lax.stop_gradient(x), train=True, key=key,
                mutable=["neuron", "batch_stats"], r=neurons.KEEP)
            total += jax.vmap(LOSS.step, in_axes=(0, None))(logits, ys).sum() / T
            x = x_next
        return total

    want_loss, want = jax.value_and_grad(all_at_once)(params)
    close(g, want)
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-12)


# ---------------------------------------------------------------------------- a user's module


USER_NEURONS = {
    "lif": lambda name: neurons.LIF(NEURON, name=name),
    "if": lambda name: neurons.IF(LIFParams(surrogate=surrogate.sigmoid(4.0)), name=name),
    "plif": lambda name: neurons.PLIF(tau0=3.0, neuron=NEURON, name=name),
}


class UserNet(nn.Module):
    """A hand-written spiking MLP: snnjax synapses and neurons, no snnjax container."""

    kind: str = "lif"

    @nn.compact
    def __call__(self, xs, train: bool = False):
        decay = {"lif": NEURON.decay, "if": 1.0, "plif": 0.5}[self.kind]
        h = layers.Dense(H1, traced=False)(xs)  # the raw input: untraced
        s = USER_NEURONS[self.kind]("n1")(h)
        h = layers.Dense(H2, trace_decay=decay)(s)
        s = USER_NEURONS[self.kind]("n2")(h)
        return layers.Dense(C, trace_decay=decay)(s)


@pytest.fixture(scope="module", params=list(USER_NEURONS))
def user(request):
    model = UserNet(request.param)
    xs = jax.random.uniform(jax.random.key(7), (T, B, D), jnp.float64, 0.0, 1.5)
    ys = jnp.asarray([1, 0, 2])
    params, state = rules.bptt().init(model, jax.random.key(8), xs[0])
    params = jax.tree.map(lambda p: 1.3 * p, to64(params))
    return request.param, model, params, state, xs, ys


def user_loop_grad(model, params, state, xs, ys, cut):
    return jax.jit(jax.grad(lambda p: loop_loss(model, p, state, xs, ys, cut)[0]))(params)


@pytest.mark.parametrize("rule, cut", [
    (rules.bptt(), lambda t: False),
    (rules.bptt(chunk=1), lambda t: False),
    (rules.bptt(chunk=2), lambda t: False),
    (rules.tbptt(2), lambda t: t % 2 == 0),
    (rules.tbptt(3, chunk=2), lambda t: t % 3 == 0),
    (rules.sltt(), lambda t: True),
    (rules.sltt(chunk=2), lambda t: True),
    (rules.sltt(chunk=T), lambda t: True),
], ids=["bptt", "bptt-c1", "bptt-c2", "tbptt2", "tbptt3-c2", "sltt", "sltt-c2", "sltt-cT"])
def test_user_module_matches_the_loop_oracle(user, rule, cut):
    name, model, params, state, xs, ys = user
    _, _, g = grads(rule, model, params, state, xs, ys)
    close(g, user_loop_grad(model, params, state, xs, ys, cut))
    if name == "plif":  # the learnable decay gets a gradient
        assert float(jnp.abs(g["n1"]["w"])) > 0


def test_user_module_sltt_k_is_its_selected_steps(user):
    name, model, params, state, xs, ys = user
    _, _, g_all = grads(rules.sltt_k(T), *user[1:], key=jax.random.key(0))
    close(g_all, grads(rules.sltt(), *user[1:])[2])


def _to_hand(params):
    """The user net's parameters in the hand MLP's tree (same weights)."""
    d = lambda n: {"Dense_0": {"kernel": params[n]["kernel"], "bias": params[n]["bias"]}}  # noqa
    return {"units_0": d("Dense_0"), "units_1": d("Dense_1"), "readout": d("Dense_2")}


@pytest.mark.parametrize("chunk", CHUNKS)
def test_user_module_ottt_is_the_explicit_trace_sum(chunk):
    model = UserNet("lif")  # the hand oracle's λ
    xs = jax.random.uniform(jax.random.key(7), (T, B, D), jnp.float64, 0.0, 1.5)
    ys = jnp.asarray([1, 0, 2])
    params, state = rules.bptt().init(model, jax.random.key(8), xs[0])
    params = jax.tree.map(lambda p: 1.3 * p, to64(params))
    _, _, g = grads(rules.ottt(chunk=chunk), model, params, state, xs, ys)
    want, _ = jax.jit(hand_ottt)(_to_hand(params), xs, ys)
    close(_to_hand(g), want)


def test_plif_under_ottt_is_refused_naming_the_layer():
    model = UserNet("plif")
    xs = jnp.ones((T, B, D))
    params, state = rules.bptt().init(model, jax.random.key(0), xs[0])
    with pytest.raises(ValueError, match=r"OTTT cannot train neuron 'n1' \(PLIF\).*learnable"):
        jax.eval_shape(lambda p: rules.ottt().value_and_grad(
            model, p, state, xs, jnp.zeros(B, jnp.int32), loss=LOSS), params)


class RawTracedNet(nn.Module):
    """The first synapse, on the raw input, left at traced=True (Dense's default)."""

    @nn.compact
    def __call__(self, xs, train: bool = False):
        s = neurons.LIF(NEURON)(layers.Dense(H1, name="input_dense")(xs))
        return layers.Dense(C, trace_decay=NEURON.decay)(s)


@pytest.mark.parametrize("online", [False, True])
def test_traced_synapse_on_the_raw_input_under_ottt_is_refused_naming_it(online):
    # SPEC §3: the first layer's factor is x[t] itself; a trace of x would change its
    # gradient silently.
    model, rule = RawTracedNet(), rules.ottt(online=online)
    xs = jnp.ones((T, B, D))
    params, state = rule.init(model, jax.random.key(0), xs[0])
    with pytest.raises(ValueError, match=r"OTTT cannot train synapse 'input_dense' \(Dense\): "
                                         r"it reads the raw input.*traced=False"):
        jax.eval_shape(lambda p: rule.value_and_grad(
            model, p, state, xs, jnp.zeros(B, jnp.int32), loss=LOSS), params)


IF_NEURON = LIFParams(surrogate=surrogate.sigmoid(4.0))


class IFNet(nn.Module):
    """Dense on the raw input → IF (λ = 1) → readout Dense with the given trace decay."""

    trace_decay: float = 0.5  # layers.Dense's default

    @nn.compact
    def __call__(self, xs, train: bool = False):
        s = neurons.IF(IF_NEURON, name="if")(layers.Dense(H1, traced=False, name="hidden")(xs))
        return layers.Dense(C, trace_decay=self.trace_decay, name="readout")(s)


def _if_problem(model):
    xs = jax.random.uniform(jax.random.key(11), (T, B, D), jnp.float64, 0.0, 1.0)
    ys = jnp.asarray([2, 0, 1])
    params, state = rules.bptt().init(model, jax.random.key(12), xs[0])
    return jax.tree.map(lambda p: 1.3 * p, to64(params)), state, xs, ys


def test_ottt_refuses_a_trace_decay_other_than_the_neurons_before_it():
    model = IFNet()  # the readout keeps Dense's default 0.5 behind an IF neuron
    params, state, xs, ys = _if_problem(model)
    with pytest.raises(ValueError, match=r"synapse 'readout' \(Dense\): its trace decays with "
                                         r"trace_decay=0.5, but the neuron before it, 'if' "
                                         r"\(IF\), has λ = 1.*trace_decay=1"):
        grads(rules.ottt(), model, params, state, xs, ys)


def test_ottt_behind_an_if_neuron_is_the_explicit_trace_sum_with_lambda_one():
    model = IFNet(trace_decay=1.0)
    params, state, xs, ys = _if_problem(model)
    _, _, g = grads(rules.ottt(), model, params, state, xs, ys)
    W1, b1 = params["hidden"]["kernel"], params["hidden"]["bias"]
    W2, b2 = params["readout"]["kernel"], params["readout"]["bias"]
    dsig, onehot, m = IF_NEURON.surrogate.derivative, jax.nn.one_hot(ys, C), LOSS.mse
    v, a = jnp.zeros((B, H1)), jnp.zeros((B, H1))
    gw1, gw2 = jnp.zeros_like(W1), jnp.zeros_like(W2)
    for t in range(T):
        u = v + xs[t] @ W1 + b1  # IF: no leak
        s = (u >= 1.0).astype(u.dtype)
        v = u - s
        a = 1.0 * a + s  # â[t] with λ = 1
        o = s @ W2 + b2
        d2 = ((1 - m) * (jax.nn.softmax(o) - onehot) / B + m * 2 * (o - onehot) / (B * C)) / T
        d1 = (d2 @ W2.T) * dsig(u - 1.0)
        gw2, gw1 = gw2 + a.T @ d2, gw1 + xs[t].T @ d1
    assert float(jnp.abs(a).max()) > 1.0  # spikes accumulated: λ matters
    close(g["readout"]["kernel"], gw2)
    close(g["hidden"]["kernel"], gw1)


class FlaxBatchNormNet(nn.Module):
    @nn.compact
    def __call__(self, xs, train: bool = False):
        h = nn.BatchNorm(use_running_average=not train, name="flax_bn")(
            layers.Dense(H1, traced=False)(xs))
        return layers.Dense(C, trace_decay=NEURON.decay)(neurons.LIF(NEURON)(h))


def test_flax_batch_norm_is_warned_about():
    # docs/models.md: flax's BatchNorm pools the statistics over a chunk's steps.
    model = FlaxBatchNormNet()
    xs = jnp.ones((T, B, D))
    params, state = rules.sltt().init(model, jax.random.key(0), xs[0])
    with pytest.warns(UserWarning, match=r"'flax_bn' \(BatchNorm\) is flax.linen.BatchNorm.*"
                                         r"snnjax.layers.BatchNorm"):
        jax.eval_shape(lambda p: rules.sltt().value_and_grad(
            model, p, state, xs, jnp.zeros(B, jnp.int32), loss=LOSS), params)


class UntracedNet(nn.Module):
    @nn.compact
    def __call__(self, xs, train: bool = False):
        s = neurons.LIF(NEURON)(layers.Dense(H1, traced=False)(xs))
        return nn.Dense(C, name="plain_dense")(s)  # flax's Dense after a neuron


@pytest.mark.parametrize("online", [False, True])
def test_untraced_synapse_under_ottt_is_refused_naming_the_layer(online):
    model = UntracedNet()
    xs = jnp.ones((T, B, D))
    rule = rules.ottt(online=online)
    params, state = rule.init(model, jax.random.key(0), xs[0])
    with pytest.raises(ValueError, match=r"OTTT cannot train synapse 'plain_dense' \(Dense\)"):
        jax.eval_shape(lambda p: rule.value_and_grad(
            model, p, state, xs, jnp.zeros(B, jnp.int32), loss=LOSS), params)
    # ... while SLTT trains it.
    loss, _, _ = rules.sltt().value_and_grad(model, params, state, xs,
                                             jnp.zeros(B, jnp.int32), loss=LOSS)
    assert np.isfinite(float(loss))


def test_local_needs_block_boundaries():
    model = UserNet("lif")
    xs = jnp.ones((T, B, D))
    with pytest.raises(ValueError, match="Local learning needs block boundaries: UserNet"):
        rules.local(rules.bptt(), block_size=1).init(model, jax.random.key(0), xs[0])


class StepModel(nn.Module):
    """A per-step module (``[B, D] -> [B, C]``): not the chunk contract."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(C)(x.reshape(x.shape[-2], -1))


def test_a_per_step_module_is_refused_with_the_contract():
    xs = jnp.ones((T, B, D))
    with pytest.raises(ValueError, match=r"logits \[C, B, classes\]"):
        params = StepModel().init(jax.random.key(0), xs[:1])["params"]
        rules.bptt().value_and_grad(StepModel(), params, {}, xs, jnp.zeros(B, jnp.int32),
                                    loss=LOSS)


# ---------------------------------------------------------------------------- rules as values


def test_rules_compare_and_hash_by_value():
    pairs = [
        (rules.tbptt(2), rules.tbptt(2)), (rules.sltt(chunk=4), rules.sltt(chunk=4)),
        (rules.sltt_k(2, steps=[3, 1]), rules.sltt_k(2, steps=(1, 3))),
        (rules.local(rules.tbptt(2), block_size=2), rules.local(rules.tbptt(2), block_size=2)),
        (rules.ottt(online=True), rules.ottt_o()), (rules.ottt(), rules.ottt_a()),
    ]
    for a, b in pairs:
        assert a == b and hash(a) == hash(b) and a.name == b.name
    assert rules.tbptt(2) != rules.tbptt(3)
    assert rules.sltt() != rules.sltt(chunk=2)
    assert rules.sltt() != rules.tbptt(1)  # the same gradient, a different rule
    assert rules.local(rules.bptt(), block_size=1) != rules.local(rules.bptt(), block_size=2)


def test_a_rule_as_static_argument_compiles_once(mlp):
    model, params, state, xs, ys = mlp

    @chex.assert_max_traces(n=1)
    def loss_of(rule, p):
        return rule.value_and_grad(model, p, state, xs, ys, loss=LOSS)[0]

    f = jax.jit(loss_of, static_argnums=0)
    a = f(rules.tbptt(2), params)
    b = f(rules.tbptt(2), params)  # an equal rule built again: no retrace
    assert float(a) == float(b)


def test_online_updates_use_their_interval(mlp):
    model, params, state, xs, ys = mlp
    opt = optax.sgd(0.3)
    rule = rules.tbptt(2, online=True)
    assert rule.plan(T).chunk == 2 and rule.updates_per_batch(T) == 3
    assert rules.ottt(online=True).plan(T).chunk == 1
    new, _, _, _, _ = rule.update(model, params, opt.init(params), state, xs, ys, loss=LOSS,
                                  key=None, optimizer=opt)
    # By hand: three windows (2, 2, 1), SGD after each, the next window on new weights;
    # the state entering a window was computed with the weights of its own time.
    windows, used, p = ((0, 2), (2, 4), (4, 5)), [], params
    for start, stop in windows:
        used.append(p)
        g = jax.grad(lambda q, start=start, stop=stop: _window_loss(
            model, q, used, windows, state, xs, ys, start, stop))(p)
        p = jax.tree.map(lambda w, d: w - 0.3 * d, p, g)
    close(new, p)


def _window_loss(model, q, used, windows, state, xs, ys, start, stop):
    """Loss of steps [start, stop) at parameters q, the steps before run with ``used``."""
    neuron = jax.tree.map(jnp.zeros_like, model.init(jax.random.key(0), xs[:1])["neuron"])
    total = 0.0
    for t in range(stop):
        w = next(i for i, (a, b) in enumerate(windows) if a <= t < b)
        p = q if t >= start else used[w]
        neuron = jax.lax.stop_gradient(neuron) if t <= start else neuron
        out, new = model.apply({"params": p, "neuron": neuron}, xs[t:t + 1], train=True,
                               mutable=["neuron"])
        neuron = new["neuron"]
        if t >= start:
            total += LOSS.step(out[0], ys) / T
    return total


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        rules.sltt(chunk=0)
    with pytest.raises(ValueError, match="chunk to 1"):
        rules.online(rules.ottt(chunk=4))


def test_chunk_longer_than_T_is_one_chunk(mlp):
    assert rules.sltt(chunk=64).plan(T).chunk == T
    close(grads(rules.sltt(chunk=64), *mlp)[2], grads(rules.sltt(), *mlp)[2])


def test_memory_class_is_data():
    assert rules.bptt().memory == "O(T)" and rules.tbptt(3).memory == "O(k)"
    assert rules.sltt().memory == "O(1)" and rules.sltt(chunk=8).memory == "O(chunk)"
    # SLTT-K keeps its K steps' states for the batched replay: flat in T, growing with K.
    assert rules.sltt_k(2).memory == "O(K)" and rules.sltt_k(2, chunk=4).memory == "O(K + chunk)"
    assert rules.local(rules.tbptt(2), block_size=1).memory == "O(k) per block"


class WithAndWithoutJit(chex.TestCase):
    """SPEC's identities hold whether the rule is jitted or run op by op (chex.variants)."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_sltt_chunk_and_tbptt_1_agree(self):
        with jax.enable_x64(True):
            model = models.mlp(C, (H1,), neuron=NEURON)
            xs = jax.random.uniform(jax.random.key(0), (T, B, D), jnp.float64, 0.0, 2.0)
            ys = jnp.asarray([0, 2, 1])
            params, state = rules.bptt().init(model, jax.random.key(1), xs[0])
            params = jax.tree.map(lambda p: 1.5 * p, to64(params))

            def of(rule):
                return self.variant(
                    lambda p: rule.value_and_grad(model, p, state, xs, ys, loss=LOSS)[2]
                )(params)

            close(of(rules.sltt(chunk=2)), of(rules.tbptt(1)))
