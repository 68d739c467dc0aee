"""The papers' networks: structure, one training step under every rule, OTTT's pooling check.

Compiling a deep net's training step dominates these tests, so each (model, rule) pair is
compiled once at a low XLA optimisation level, at width 1/16, on 8×8×2 inputs with T = 2 and
B = 4. The fast set covers every engine path and every model family once; the full
model × rule matrix (ResNet-34 included) is marked slow.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnjax as sj
from snnjax import models, rules
from snnjax.experiment import TrainConfig, make_model
from snnjax.layers import TRACE_ERROR
from snnjax.models.base import ConvUnit
from snnjax.models.vgg import FeedbackSequential
from snnjax.rules.engine import Stage, init_carry

T, B, HW, C_IN, CLASSES = 2, 4, 8, 2, 5
W = 1 / 16
LOSS = sj.losses.per_step(mse=0.05)

FACTORIES = {
    "resnet18": lambda: models.resnet18(CLASSES, width=W, dropout=0.1),
    "resnet34": lambda: models.resnet34(CLASSES, width=W),
    "vgg11_bn": lambda: models.vgg11_bn(CLASSES, width=W, dropout=0.1),
    # sWS nets have no BatchNorm: at this width a lower threshold keeps every layer firing.
    "vgg11f_sws": lambda: models.vgg11f_sws(CLASSES, width=W, neuron=sj.LIFParams(v_th=0.5)),
    "alexnet": lambda: models.alexnet(CLASSES, width=W),
    "alexnet_avg": lambda: models.alexnet(CLASSES, width=W, pool="avg"),
}
MAX_POOLING = {"alexnet"}
ALL_RULES = ("bptt", "tbptt", "local", "tbptt-local", "sltt", "sltt-k", "ottt-a", "ottt-o")


def _batch(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    xs = jax.random.normal(k1, (T, B, HW, HW, C_IN))
    ys = jax.random.randint(k2, (B,), 0, CLASSES)
    return xs, ys


def _rule(name):
    return rules.by_name(name, window=1, block_size=3, K=1)


def _one_step(model, rule):
    """Init, then one compiled training step; returns (params before, params after, loss)."""
    xs, ys = _batch()
    opt = optax.sgd(0.1, momentum=0.9)
    params, state = jax.jit(lambda k, x: rule.init(model, k, x))(jax.random.key(0), xs[0])
    opt_state = opt.init(params)

    def step(params, opt_state, state, xs, ys, key):
        return rule.update(model, params, opt_state, state, xs, ys, loss=LOSS, key=key,
                           optimizer=opt)

    args = (params, opt_state, state, xs, ys, jax.random.key(1))
    # The default optimisation level costs ~2x the compile time and nothing here needs it.
    compiled = jax.jit(step).lower(*args).compile({"xla_backend_optimization_level": 0})
    new_params, _, new_state, loss, logits = compiled(*args)
    return params, new_params, state, new_state, loss, logits


def _check_trained(model_name, rule_name):
    model = FACTORIES[model_name]()
    rule = _rule(rule_name)
    if rule.plan(T).traces and model_name in MAX_POOLING:
        with pytest.raises(ValueError, match="max pooling"):
            _one_step(model, rule)
        return
    if rule.plan(T).K is not None and model_name == "vgg11f_sws":
        with pytest.raises(ValueError, match="SLTT-K replays .* 'feedback'"):
            _one_step(model, rule)  # VGG-F's feedback is state its replay cannot restore
        return
    if isinstance(rule, rules.Local) and model_name == "vgg11f_sws":
        with pytest.raises(ValueError, match="Local learning cannot split"):
            _one_step(model, rule)
        return
    params, new_params, state, new_state, loss, logits = _one_step(model, rule)
    assert np.isfinite(float(loss))
    assert logits.shape == (B, CLASSES)
    assert jax.tree.structure(new_params) == jax.tree.structure(params)
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(new_params))
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(params),
                                                    jax.tree.leaves(new_params))]
    assert sum(moved) > len(moved) // 2, f"{model_name}/{rule_name}: parameters did not train"
    if "batch_stats" in state:  # per-step BatchNorm statistics are threaded through the rule
        changed = [not np.allclose(a, b) for a, b in zip(
            jax.tree.leaves(state["batch_stats"]), jax.tree.leaves(new_state["batch_stats"]))]
        assert any(changed)


# Every engine path at least once (BPTT's full scan, windowed TBPTT with Local's cuts and
# heads, SLTT-K's skipped backward, OTTT's traces with in-loop updates), in few compilations
# (~5 s each); the full model × rule matrix is marked slow.
FAST = [
    ("resnet18", "ottt-a"), ("vgg11_bn", "sltt-k"), ("vgg11f_sws", "bptt"),
    ("alexnet", "tbptt-local"), ("alexnet", "ottt-a"), ("alexnet_avg", "ottt-o"),
]


@pytest.mark.parametrize("model_name, rule_name", FAST)
def test_trains_one_step(model_name, rule_name):
    _check_trained(model_name, rule_name)


@pytest.mark.slow
@pytest.mark.parametrize("rule_name", ALL_RULES)
@pytest.mark.parametrize("model_name", list(FACTORIES))
def test_trains_one_step_every_rule(model_name, rule_name):
    _check_trained(model_name, rule_name)


# ---------------------------------------------------------------------------- OTTT and pooling


@pytest.mark.parametrize("build", [
    lambda: models.alexnet(CLASSES, width=W),
    lambda: models.resnet18(CLASSES, width=W, pool="max"),
    lambda: models.vgg11_bn(CLASSES, width=W, pool="max"),
], ids=["alexnet", "resnet18-max", "vgg11_bn-max"])
@pytest.mark.parametrize("online", [False, True])
def test_ottt_rejects_max_pooling(build, online):
    model, rule = build(), rules.ottt(online=online)
    xs, ys = _batch()
    params, state = jax.eval_shape(lambda: rule.init(model, jax.random.key(0), xs[0]))
    with pytest.raises(ValueError) as err:  # raised while tracing, before any compile
        jax.eval_shape(
            lambda p, s: rule.value_and_grad(model, p, s, xs, ys, loss=LOSS,
                                             key=jax.random.key(0)), params, state)
    assert str(err.value).endswith(TRACE_ERROR)
    assert re.match(r"OTTT cannot train through '[^']+' \(MaxPool\): ", str(err.value))


def test_ottt_traces_every_synapse_but_the_stem():
    model = models.resnet18(CLASSES, width=W)
    xs, _ = _batch()
    rule = rules.ottt()
    params, state = jax.eval_shape(lambda: rule.init(model, jax.random.key(0), xs[0]))
    carry = jax.eval_shape(lambda p, s: init_carry(Stage(model), p, s, xs[:1], rule.plan(T)),
                           params, state)
    traced = set(carry["trace"])
    assert "units_0" not in traced  # the stem's input is the raw image
    assert {f"units_{i}" for i in range(1, 9)} <= traced and "readout" in traced
    # A downsampling unit traces its two convs and its 1×1 shortcut, all on spikes.
    assert set(carry["trace"]["units_3"]) == {"Conv_0", "Conv_1", "Conv_2"}


# ---------------------------------------------------------------------------- structure


def _logits(model, x, train=False):
    """Shapes only (traced, not run): ``(variables, logits)`` as ShapeDtypeStructs."""
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))

    def apply(v):
        return model.apply(v, x, train=train, mutable=["neuron", "batch_stats"],
                           rngs={"dropout": jax.random.key(1)})[0]

    return variables, jax.eval_shape(apply, variables)


@pytest.mark.parametrize("name, units", [
    ("resnet18", 10), ("resnet34", 18), ("vgg11_bn", 8), ("vgg11f_sws", 8), ("alexnet", 7),
])
def test_registered_and_shapes(name, units):
    assert name in models.names()
    model = models.get(name, CLASSES, width=W, neuron=sj.LIFParams(decay=0.3))
    assert model.input_ndim == 3 and model.num_units() == units
    x = jnp.ones((2, 3, 16, 16, 3))  # [C, B, H, W, C_in]
    _, out = _logits(model, x)
    assert out.shape == (2, 3, CLASSES)


def test_resnet_units_follow_preact_design():
    model = models.resnet18(CLASSES, width=0.25)
    variables, _ = _logits(model, jnp.ones((1, 2, 32, 32, 3)))
    p = variables["params"]
    assert set(p["units_0"]) == {"Conv_0"} and "bias" not in p["units_0"]["Conv_0"]
    convs = lambda unit: {k for k in p[unit] if k.startswith("Conv")}  # noqa: E731
    assert convs("units_1") == {"Conv_0", "Conv_1"}  # identity shortcut
    assert convs("units_3") == {"Conv_0", "Conv_1", "Conv_2"}  # 1×1 projection, stride 2
    assert p["units_3"]["Conv_2"]["kernel"].shape == (1, 1, 16, 32)
    assert set(variables["batch_stats"]["units_1"]) == {"BatchNorm_0", "BatchNorm_1"}
    # Channels 64-128-256-512 scaled by the width multiplier; the head is BN → LIF.
    assert p["readout"]["Dense_0"]["kernel"].shape == (128, CLASSES)
    assert set(variables["batch_stats"]["units_9"]) == {"BatchNorm_0"}


def test_width_and_pool_reach_the_factories_through_train_config():
    model = make_model(TrainConfig(model="alexnet", width=0.25, pool="avg", dropout=0.2), 7)
    assert [u.pool for u in model.units[:5]] == ["avg", "avg", None, None, "avg"]
    assert model.units[0].features == 24 and model.units[5].dropout == 0.2
    resnet = make_model(TrainConfig(model="resnet18", tau=1.1, width=0.5), 10)
    assert resnet.units[1].neuron.decay == pytest.approx(1 - 1 / 1.1)
    with pytest.raises(ValueError, match="pool"):
        models.alexnet(10, pool="median")
    with pytest.raises(ValueError, match="width"):
        models.vgg11_bn(10, width=0)


def test_pooling_keeps_a_one_pixel_map():
    unit = ConvUnit(4, pool="avg")
    for hw, out in [(1, 1), (4, 2)]:
        x = jnp.ones((1, 2, hw, hw, 3))
        variables = jax.eval_shape(unit.init, jax.random.key(0), x)
        y = jax.eval_shape(
            lambda v, x: unit.apply(v, x, mutable=["neuron", "batch_stats"])[0], variables, x)
        assert y.shape == (1, 2, out, out, 4)


def test_vgg_f_feeds_the_last_layer_back_to_the_first():
    """With memoryless neurons (λ = 0), step 2's output depends on step 1's input only
    through the feedback conv, which is zero at initialisation (the paper's init)."""
    model = models.vgg11f_sws(CLASSES, cfg=(8, 8, "A", 8),
                              neuron=sj.LIFParams(decay=0.0, v_th=0.5))
    assert isinstance(model, FeedbackSequential) and model.num_units() == 3
    x1a, x1b, x2 = (2 * jax.random.normal(k, (1, 2, 8, 8, 2)) for k in
                    jax.random.split(jax.random.key(3), 3))
    variables = jax.jit(model.init)(jax.random.key(0), x2)
    assert not np.any(variables["params"]["units_0"]["feedback_conv"]["kernel"])

    @jax.jit
    def second_step(params, x1):
        _, new = model.apply({"params": params}, x1, mutable=["neuron"])
        assert new["neuron"]["feedback"].shape == (1, 2, 4, 4, 8)  # the last unit's output
        out, _ = model.apply({"params": params, **new}, x2, mutable=["neuron"])
        return out, new["neuron"]["feedback"]

    p = variables["params"]
    (out_a, fb_a), (out_b, _) = second_step(p, x1a), second_step(p, x1b)
    assert np.any(fb_a)  # the last layer fires, so there is something to feed back
    np.testing.assert_allclose(out_a, out_b)
    fb = p["units_0"]["feedback_conv"]["kernel"]
    p = {**p, "units_0": {**p["units_0"], "feedback_conv": {
        **p["units_0"]["feedback_conv"], "kernel": jnp.full_like(fb, 0.2)}}}
    assert not np.allclose(second_step(p, x1a)[0], second_step(p, x1b)[0])


def test_vgg11_bn_matches_the_paper_layout():
    model = models.vgg11_bn(CLASSES)
    feats = [u.features for u in model.units]
    assert feats == [64, 128, 256, 256, 512, 512, 512, 512]
    assert [u.pool for u in model.units] == ["avg", "avg", None, "avg", None, "avg", None, "avg"]
    assert all(u.norm for u in model.units)
    variables, _ = _logits(model, jnp.ones((1, 2, 48, 48, 2)))
    assert variables["params"]["readout"]["Dense_0"]["kernel"].shape == (512, CLASSES)
    k = model.readout_init(jax.random.key(0), (512, 100))
    assert float(jnp.std(k)) == pytest.approx(0.01, rel=0.05)  # N(0, 0.01²) init
