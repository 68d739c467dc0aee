"""Recomputation (``remat``) is a schedule (docs/schedules.md): the same loss, gradients and
BatchNorm statistics in float64, less memory.

- BPTT and TBPTT with ``remat=True``, chunks C ∈ {1, 2, T}, against the hand-written
  unrolled MLP of test_rules_identities (T = 5: one segment of 3 steps and a shorter one);
- a conv net with per-step BatchNorm and dropout, under BPTT and under Local around it;
- a longer sequence (several segments in the scan over segments) against BPTT without remat;
- compiled memory grows with T by at most the neuron states stored per step;
- rules without a differentiated window refuse it, and the CLI's ``--remat`` reaches the rule.
"""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from snnjax import models, rules
from snnjax.rules import engine
from test_engine import cnn_bn, close, grads, mlp  # noqa: F401 (fixtures)
from test_rules_identities import LOSS, T, hand_grad
from test_rules_memory import compiled, neuron_states

from snnjax.cost import tree_bytes

CHUNKS = (1, 2, T)


@pytest.fixture(scope="module", autouse=True)
def module_x64():
    with jax.enable_x64(True):
        yield


def test_segments_are_the_ceiling_of_the_square_root():
    assert [engine.remat_segment(w) for w in (1, 2, 4, 5, 9, 10, 32, 100)] == [
        1, 2, 2, 3, 3, 4, 6, 10]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("rule, cut", [
    (lambda c: rules.bptt(chunk=c, remat=True), lambda t: False),
    (lambda c: rules.tbptt(3, chunk=c, remat=True), lambda t: t % 3 == 0),
    (lambda c: rules.tbptt(3, chunk=c, remat=True, online=True), lambda t: t % 3 == 0),
], ids=["bptt", "tbptt3", "tbptt3-online"])
def test_remat_equals_the_hand_gradient(mlp, rule, cut, chunk):  # noqa: F811
    model, params, state, xs, ys = mlp
    r = rule(chunk)
    assert r.plan(T).remat
    _, _, g = grads(r, *mlp)
    close(g, hand_grad(params, xs, ys, cut=cut))


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("local", [False, True], ids=["bptt", "local-bptt"])
def test_remat_on_a_conv_net_with_batchnorm_and_dropout(cnn_bn, chunk, local):  # noqa: F811
    model, params, state, xs, ys = cnn_bn
    key = jax.random.key(5)
    plain, remat = rules.bptt(chunk=chunk), rules.bptt(chunk=chunk, remat=True)
    if local:
        plain, remat = (rules.local(r, block_size=1) for r in (plain, remat))
        lparams, _ = plain.init(model, jax.random.key(2), xs[0])
        params = {**params, "aux_head_0": jax.tree.map(lambda a: a.astype(jnp.float64),
                                                       lparams["aux_head_0"])}
    loss0, aux0, g0 = grads(plain, model, params, state, xs, ys, key)
    loss1, aux1, g1 = grads(remat, model, params, state, xs, ys, key)
    close(g1, g0)
    close(aux1.state, aux0.state)
    close(aux1.logits, aux0.logits)
    assert float(loss1) == pytest.approx(float(loss0), rel=1e-12)


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_remat_over_several_segments(chunk):
    # T = 11: segments of 4 steps, two of them in the scan over segments and a last of 3;
    # pieces of 3 steps do not divide a segment.
    model = models.cnn(3, (4, 6), norm=True)
    xs = jax.random.uniform(jax.random.key(0), (11, 2, 8, 8, 1), jnp.float64, 0.0, 2.0)
    ys = jnp.asarray([2, 0])
    params, state = rules.bptt().init(model, jax.random.key(1), xs[0])
    params = jax.tree.map(lambda a: 1.5 * a.astype(jnp.float64), params)
    assert engine.remat_segment(11) == 4
    loss0, aux0, g0 = grads(rules.bptt(chunk=chunk), model, params, state, xs, ys)
    loss1, aux1, g1 = grads(rules.bptt(chunk=chunk, remat=True), model, params, state, xs, ys)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g0)) > 0
    close(g1, g0)
    close(aux1.state, aux0.state)
    assert float(loss1) == pytest.approx(float(loss0), rel=1e-12)


def test_remat_recomputes_the_forward():
    # The backward runs each segment's forward again: the compiled step has more
    # convolutions than without remat (one more forward pass), not fewer.
    model = models.cnn(3, (4,))
    xs = jnp.ones((9, 2, 8, 8, 1))
    params, state = rules.bptt().init(model, jax.random.key(0), xs[0])

    def convs(rule):
        f = jax.jit(lambda p: rule.value_and_grad(model, p, state, xs, jnp.zeros(2, int),
                                                  loss=LOSS)[2])
        return f.lower(params).as_text().count("convolution(")

    assert convs(rules.bptt(chunk=1, remat=True)) > convs(rules.bptt(chunk=1))


# ---------------------------------------------------------------------------- memory


def test_bptt_remat_grows_with_T_by_at_most_the_states_per_step():
    # BPTT stores every step's residuals; with remat the forward keeps the neuron states
    # entering each segment, and the backward one segment's residuals (O(√T) of each). From
    # T = 16 to 64 its memory grows by less than a set of neuron states per added step,
    # while BPTT's grows by more than that (so the bound can fail).
    net, batch, shape = models.cnn(10, (8, 16)), 8, (16, 16, 1)
    states = tree_bytes(neuron_states(net, batch, shape))

    def temp(rule, T):
        return compiled(net, rule, T, batch, shape, "temp_bytes", optax.sgd(0.1))

    with jax.enable_x64(False):  # float32 as in training (the module runs in float64)
        remat = [temp(rules.bptt(remat=True), T) for T in (16, 64)]
        plain = [temp(rules.bptt(), T) for T in (16, 64)]
    assert remat[1] - remat[0] <= (64 - 16) * states, (remat, states)
    assert plain[1] - plain[0] > (64 - 16) * states, (plain, states)
    assert remat[1] < 0.5 * plain[1], (remat, plain)


# ---------------------------------------------------------------------------- what takes it


@pytest.mark.parametrize("make", [
    lambda: rules.sltt(remat=True), lambda: rules.sltt(chunk=4, remat=True),
    lambda: rules.ottt(remat=True), lambda: rules.ottt(online=True, remat=True),
    lambda: rules.sltt_k(2, remat=True),
], ids=["sltt", "sltt-c4", "ottt", "ottt-o", "sltt-k"])
def test_rules_without_a_window_refuse_remat(make):
    with pytest.raises(ValueError, match=r"^remat recomputes the steps of a differentiated "
                                         r"window .*lower its chunk=") as err:
        make()
    assert "\n" not in str(err.value)


def test_remat_is_data_in_the_rule():
    assert rules.bptt(remat=True) == rules.bptt(remat=True) != rules.bptt()
    assert hash(rules.tbptt(4, remat=True)) == hash(rules.tbptt(4, remat=True))
    assert rules.bptt(remat=True).name == "bptt[remat]"
    assert rules.bptt(chunk=2, remat=True).name == "bptt[chunk=2,remat]"
    assert rules.bptt(remat=True).memory == "O(√T)"
    assert rules.tbptt(4, remat=True).memory == "O(√k)"
    local = rules.local(rules.tbptt(4, remat=True), block_size=2)
    assert local.plan(8).remat and local.memory == "O(√k) per block"
    assert not rules.bptt().plan(8).remat
    with pytest.raises(ValueError, match="remat must be True or False"):
        rules.bptt(remat=1)


@pytest.mark.parametrize("name, wrapped", [
    ("bptt", lambda r: r), ("tbptt", lambda r: r),
    ("local", lambda r: r.inner), ("tbptt-local", lambda r: r.inner),
])
def test_by_name_passes_remat(name, wrapped):
    assert wrapped(rules.by_name(name, remat=True)).remat
    assert not wrapped(rules.by_name(name)).remat


def test_by_name_refuses_remat_where_it_does_not_apply():
    with pytest.raises(ValueError, match="rule sltt takes no remat"):
        rules.by_name("sltt", remat=True)


def test_cli_remat_reaches_the_rule(monkeypatch, capsys):
    from snnjax import cli, experiment

    seen = []
    monkeypatch.setattr(experiment, "train_and_evaluate",
                        lambda cfg, progress: seen.append(experiment.make_rule(cfg))
                        or (_ for _ in ()).throw(SystemExit(0)))
    for argv, want in [(["--rule", "bptt", "--remat"], rules.bptt(remat=True)),
                       (["--rule", "tbptt", "--window", "3", "--remat"],
                        rules.tbptt(3, remat=True)),
                       (["--rule", "bptt"], rules.bptt())]:
        with pytest.raises(SystemExit):
            cli.main(["train", *argv, "--no-progress"])
        assert seen.pop() == want
    assert cli.main(["train", "--rule", "sltt", "--remat", "--no-progress"]) == 2
    assert "does not use --remat" in capsys.readouterr().err and not seen


def test_remat_gradient_is_finite_in_float32():
    chex.assert_tree_all_finite(
        grads(rules.bptt(remat=True), *_f32_problem())[2])


def _f32_problem():
    model = models.mlp(3, (8,))
    xs = jax.random.uniform(jax.random.key(0), (6, 2, 5), jnp.float32)
    params, state = rules.bptt().init(model, jax.random.key(1), xs[0])
    return model, params, state, xs, jnp.asarray([0, 2])
