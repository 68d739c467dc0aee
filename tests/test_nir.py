"""NIR export/import: round trips on the zoo's models and the `nir` package's own checks.

A round trip (export → write → read → import) must give a model whose spikes, layer by
layer, are those of the original and whose logits agree to float32 rounding, on random
input with T ≠ B. The graph must pass `nir`'s type inference and check and survive its
HDF5 writer and reader. What NIR cannot express is refused with a message naming the layer.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import models, neurons, rules
from snnjax.layers import standardize_params, standardize_weight
from snnjax.neuron import LIFParams
from snnjax.neurons import SpikingNeuron

nir = pytest.importorskip("nir")  # the optional extra snnjax[nir]
snn_nir = pytest.importorskip("snnjax.nir")

T, B = 5, 3
SHAPE = (8, 8, 1)
HARD = LIFParams(decay=0.6, v_th=1.0, reset="hard")

NEURONS = {
    "lif": lambda p: p,
    "if": lambda p: neurons.IF(p),
    "plif": lambda p: neurons.PLIF(tau0=3.0, neuron=p),
}
MODELS = {
    "mlp": lambda: models.mlp(10, (16, 12)),
    "cnn": lambda: models.cnn(10, (4, 8)),  # BatchNorm: folded into the conv
    "cnn_max": lambda: models.cnn(10, (4, 8), norm=False, pool="max"),
    "vgg_sws": lambda: models.vgg11_sws(10, cfg=(8, "A", 16)),
}


def build(name: str, neuron: str, params: LIFParams = HARD):
    """A zoo model with every unit's neuron replaced (the factories take LIFParams only)."""
    model = MODELS[name]()
    make = NEURONS[neuron]
    return model.clone(units=tuple(u.clone(neuron=make(params)) for u in model.units))


def init(model, seed=0, rule=None):
    """Params and state, perturbed so that the round trip has something to carry: PLIF's
    w away from its initial value, BatchNorm's statistics and affine away from identity."""
    rule = rules.bptt() if rule is None else rule
    # Jitted, with the rbg PRNG: XLA:CPU compiles threefry's sampling slowly, op by op.
    key = jax.random.key(seed, impl="rbg")
    params, state = jax.jit(lambda k, x: rule.init(model, k, x))(key, jnp.zeros((B, *SHAPE)))
    rng = np.random.default_rng(seed)
    for i in range(len(model.units)):
        unit = params[f"units_{i}"]
        if "neuron" in unit:
            unit["neuron"] = {"w": unit["neuron"]["w"] + 0.3 * (i + 1)}
        if "BatchNorm_0" in unit:
            f = unit["BatchNorm_0"]["scale"].shape
            unit["BatchNorm_0"] = {
                "scale": jnp.asarray(1.0 + 0.3 * rng.uniform(size=f), jnp.float32),
                "bias": jnp.asarray(0.5 + 0.3 * rng.normal(size=f), jnp.float32),
            }
            state["batch_stats"][f"units_{i}"]["BatchNorm_0"] = {
                "mean": jnp.asarray(0.2 * rng.normal(size=f), jnp.float32),
                "var": jnp.asarray(0.5 + rng.uniform(size=f), jnp.float32),
            }
    return params, state


def spikes_and_logits(model, variables, xs):
    """Each neuron layer's spikes ``[T, B, ...]`` (in unit order) and the logits."""
    def run(v, x):
        return model.apply(
            v, x, train=False, mutable=["neuron", "intermediates"],
            capture_intermediates=lambda m, method: method == "__call__"
            and isinstance(m, SpikingNeuron),
        )

    logits, out = jax.jit(run)(variables, xs)
    found = out["intermediates"]
    spikes = []
    for i in range(len(model.units)):
        (entry,) = found[f"units_{i}"].values()
        spikes.append(np.asarray(entry["__call__"][0]))
    return spikes, np.asarray(logits)


def assert_same_function(model, variables, imported, imported_params, xs):
    s0, y0 = spikes_and_logits(model, variables, xs)
    s1, y1 = spikes_and_logits(imported, {"params": imported_params}, xs)
    assert len(s0) == len(s1)
    for i, (a, b) in enumerate(zip(s0, s1)):
        assert a.shape == b.shape, f"units_{i}"
        assert 0.0 < a.mean() < 1.0, f"units_{i}: the input should make some neurons fire"
        np.testing.assert_array_equal(a, b, err_msg=f"spikes of units_{i}")
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-6)


def through_file(graph, path):
    """The graph after `nir`'s own checks, written and read back with `nir`."""
    graph.infer_types()
    assert graph.check_types()
    nir.write(path, graph)
    return nir.read(path)


def random_input(seed=3):
    """``[T, B, 8, 8, 1]`` currents, from numpy (no PRNG to compile)."""
    return jnp.asarray(2.0 * np.random.default_rng(seed).normal(size=(T, B, *SHAPE)),
                       jnp.float32)


@pytest.mark.parametrize("neuron", list(NEURONS))
@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip(name, neuron, tmp_path):
    model = build(name, neuron)
    params, state = init(model)
    graph = snn_nir.export(model, params, input_shape=SHAPE,
                           batch_stats=state.get("batch_stats"))
    assert isinstance(graph, nir.NIRGraph)
    read = through_file(graph, tmp_path / "net.nir")
    assert set(read.nodes) == set(graph.nodes)
    imported, imported_params = snn_nir.import_(read)
    assert imported.input_ndim == len(SHAPE)
    fresh = jax.eval_shape(lambda: imported.init(jax.random.key(0), random_input()[:1]))
    assert jax.tree.map(jnp.shape, imported_params) == jax.tree.map(jnp.shape, fresh["params"])
    assert_same_function(model, {"params": params, **state}, imported, imported_params,
                         random_input())


def test_nodes_and_discretisation_of_vgg():
    """The chain and the neuron mapping τ = dt/(1-λ), R = τ/dt, v_leak = v_reset = 0."""
    model = build("vgg_sws", "lif")
    params, _ = init(model)
    graph = snn_nir.export(model, params, input_shape=SHAPE)
    kinds = [type(graph.nodes[a]).__name__ for a, _ in graph.edges] + ["Output"]
    assert kinds == ["Input", "Conv2d", "LIF", "Scale", "AvgPool2d", "Conv2d", "LIF", "Scale",
                     "AvgPool2d", "Flatten", "Affine", "Output"]
    lif = graph.nodes["units_0.neuron"]
    assert lif.tau.shape == (8, 8, 8)  # NIR is channels-first: (C, H, W)
    np.testing.assert_allclose(lif.tau, 2.5)
    np.testing.assert_allclose(lif.r, 2.5)
    np.testing.assert_array_equal(lif.v_leak, 0.0)
    np.testing.assert_array_equal(lif.v_reset, 0.0)
    np.testing.assert_array_equal(lif.v_threshold, 1.0)
    np.testing.assert_allclose(graph.nodes["units_0.scale"].scale, 2.74)
    conv = graph.nodes["units_0.conv"]
    assert conv.weight.shape == (8, 1, 3, 3)
    np.testing.assert_array_equal(conv.padding, (1, 1))
    # The exported kernel is the standardised one.
    p = params["units_0"]["Conv_0"]
    want = np.asarray(standardize_weight(p["kernel"], p["gain"])).transpose(3, 2, 0, 1)
    np.testing.assert_allclose(conv.weight, want, rtol=1e-6, atol=1e-7)
    assert graph.output_type["output"].tolist() == [10]


def test_if_and_plif_nodes():
    model = build("mlp", "if")
    graph = snn_nir.export(model, init(model)[0], input_shape=SHAPE)
    node = graph.nodes["units_0.neuron"]
    assert isinstance(node, nir.IF)
    np.testing.assert_array_equal(node.r, 1.0)

    model = build("mlp", "plif")
    params, _ = init(model)
    graph = snn_nir.export(model, params, input_shape=SHAPE)
    node = graph.nodes["units_1.neuron"]
    assert isinstance(node, nir.LIF)
    lam = jax.nn.sigmoid(params["units_1"]["neuron"]["w"])
    np.testing.assert_allclose(1.0 - 1.0 / node.tau, lam, rtol=1e-6)
    _, imported = snn_nir.import_(graph)
    np.testing.assert_array_equal(imported["units_1"]["neuron"]["w"],
                                  params["units_1"]["neuron"]["w"])


def test_dt_is_recorded_and_read_back(tmp_path):
    """snnTorch writes dt = 1e-4: τ then is in those units, and import_ reads dt back."""
    model = build("mlp", "lif")
    params, state = init(model)
    graph = snn_nir.export(model, params, input_shape=SHAPE, dt=1e-4)
    np.testing.assert_allclose(graph.nodes["units_0.neuron"].tau, 1e-4 / (1 - 0.6))
    np.testing.assert_allclose(graph.nodes["units_0.neuron"].r, 1.0 / (1 - 0.6))
    read = through_file(graph, tmp_path / "net.nir")
    imported, imported_params = snn_nir.import_(read)
    assert_same_function(model, {"params": params, **state}, imported, imported_params,
                         random_input())
    with pytest.raises(ValueError, match=r"tau = .* < dt = 1.0"):
        snn_nir.import_(read, dt=1.0)


def test_soft_reset_is_refused_unless_allowed(tmp_path):
    soft = LIFParams(decay=0.6, reset="soft")
    model = build("cnn_max", "lif", soft)
    params, state = init(model)
    with pytest.raises(ValueError, match=r"units_0 \(ConvUnit\): LIF with a soft "
                                         r"\(subtractive\) reset has no exact NIR"):
        snn_nir.export(model, params, input_shape=SHAPE)
    graph = snn_nir.export(model, params, input_shape=SHAPE, allow_soft_reset=True)
    node = graph.nodes["units_0.neuron"]
    np.testing.assert_array_equal(node.v_reset, 0.0)
    assert node.metadata["reset"] == "soft"
    read = through_file(graph, tmp_path / "net.nir")
    imported, imported_params = snn_nir.import_(read)
    assert imported.units[0].neuron.reset == "soft"
    assert_same_function(model, {"params": params, **state}, imported, imported_params,
                         random_input())


def test_a_foreign_graph_resets_hard_and_scales_its_threshold():
    """A graph without snnjax's metadata: hard reset; an input gain g = dt·R/τ ≠ 1 is taken
    into the threshold (V_th = v_threshold/g), as snnTorch's import does."""
    w = np.array([[0.5, 1.0], [2.0, -1.0], [1.0, 1.0]], np.float32)  # [out=3, in=2]
    graph = nir.NIRGraph.from_list(
        nir.Input(np.array([2])),
        nir.Affine(weight=w, bias=np.zeros(3, np.float32)),
        nir.LIF(tau=np.full(3, 4.0), r=np.full(3, 8.0), v_leak=np.zeros(3),
                v_threshold=np.full(3, 3.0)),
        nir.Affine(weight=np.eye(3, dtype=np.float32), bias=np.zeros(3, np.float32)),
        nir.Output(np.array([3])),
    )
    model, params = snn_nir.import_(graph)
    p = model.units[0].neuron
    assert (p.decay, p.v_th, p.reset) == (0.75, 1.5, "hard")
    np.testing.assert_array_equal(params["units_0"]["Dense_0"]["kernel"], w.T)


# ---------------------------------------------------------------------------- refusals


def test_refuses_batchnorm_without_running_statistics():
    model = build("cnn", "lif")
    params, _ = init(model)
    with pytest.raises(ValueError, match=r"units_0 \(ConvUnit\): BatchNorm needs its "
                                         r"running statistics"):
        snn_nir.export(model, params, input_shape=SHAPE)


def test_refuses_local_aux_heads():
    model = build("mlp", "lif")
    params, _ = init(model, rule=rules.local(rules.bptt(), block_size=1))
    assert "aux_head_0" in params
    with pytest.raises(ValueError, match=r"aux_head_0: parameters the model does not use "
                                         r"\(Local's auxiliary heads"):
        snn_nir.export(model, params, input_shape=SHAPE)


def test_refuses_units_and_containers_without_nir_form():
    model = models.resnet18(10, width=0.125)
    with pytest.raises(ValueError, match=r"units_0 \(PreActStem\): NIR export supports "
                                         r"DenseUnit and ConvUnit only"):
        snn_nir.export(model, {}, input_shape=SHAPE)
    model = models.vgg11f_sws(10, cfg=(8, 16))
    with pytest.raises(ValueError, match=r"got FeedbackSequential"):
        snn_nir.export(model, {}, input_shape=SHAPE)


def test_refuses_unknown_neuron():
    class Custom(neurons.LIF):
        pass

    model = build("mlp", "lif")
    model = model.clone(units=tuple(u.clone(neuron=Custom(HARD)) for u in model.units))
    params, _ = init(model)
    with pytest.raises(ValueError, match=r"units_0 \(DenseUnit\): neuron Custom has no NIR"):
        snn_nir.export(model, params, input_shape=SHAPE)


def test_import_refuses_what_snnjax_has_not():
    graph = nir.NIRGraph.from_list(
        nir.Input(np.array([2])),
        nir.Affine(weight=np.ones((3, 2), np.float32), bias=np.zeros(3, np.float32)),
        nir.CubaLIF(tau_syn=np.full(3, 2.0), tau_mem=np.full(3, 2.0), r=np.full(3, 2.0),
                    v_leak=np.zeros(3), v_threshold=np.ones(3)),
        nir.Affine(weight=np.ones((4, 3), np.float32), bias=np.zeros(4, np.float32)),
        nir.Output(np.array([4])),
    )
    with pytest.raises(ValueError, match=r"cubalif \(CubaLIF\): CubaLIF is not a neuron"):
        snn_nir.import_(graph)
    graph = nir.NIRGraph.from_list(
        nir.Input(np.array([3])),
        nir.Affine(weight=np.ones((3, 3), np.float32), bias=np.zeros(3, np.float32)),
        nir.LIF(tau=np.array([2.0, 2.0, 3.0]), r=np.full(3, 2.0), v_leak=np.zeros(3),
                v_threshold=np.ones(3)),
        nir.Affine(weight=np.ones((4, 3), np.float32), bias=np.zeros(4, np.float32)),
        nir.Output(np.array([4])),
    )
    with pytest.raises(ValueError, match=r"lif \(LIF\): tau differs between neurons"):
        snn_nir.import_(graph)


def test_a_user_built_model():
    """A dense unit on a conv map (NIR flattens C, H, W; snnjax H, W, C), max pooling after a
    scale, IF neurons, a readout on a vector; params given as a variables dict."""
    units = (
        models.ConvUnit(4, neuron=neurons.IF(LIFParams(v_th=0.5, reset="hard")), first=True,
                        scale=1.5, pool="max"),
        models.DenseUnit(6, neuron=LIFParams(decay=0.3, reset="hard")),
    )
    model = models.SpikingSequential(units, 5, readout_init=nn.initializers.normal(1.0))
    params, state = init(model)
    graph = snn_nir.export(model, {"params": params, **state}, input_shape=SHAPE)
    kinds = [type(graph.nodes[a]).__name__ for a, _ in graph.edges]
    assert kinds[:8] == ["Input", "Conv2d", "IF", "SumPool2d", "Threshold", "Scale", "Flatten",
                         "Affine"]
    # NIR's Affine on NIR's flattening of the (C, H, W) map = snnjax's Dense on its own.
    fmap = np.random.default_rng(0).normal(size=(4, 4, 4))  # (H, W, C), after the pool
    kernel = np.asarray(params["units_1"]["Dense_0"]["kernel"], np.float64)
    weight = graph.nodes["units_1.affine"].weight
    np.testing.assert_allclose(weight @ fmap.transpose(2, 0, 1).ravel(), fmap.ravel() @ kernel,
                               rtol=1e-5, atol=1e-5)
    imported, imported_params = snn_nir.import_(graph)
    assert imported.units[0].pool == "max" and imported.units[0].scale == 1.5
    assert_same_function(model, {"params": params, **state}, imported, imported_params,
                         random_input())


def test_a_map_pooled_to_one_pixel():
    """8×8 pooled four times: ConvUnit skips the last pooling (the map is 1×1), and the
    readout needs no global pooling."""
    # A low threshold keeps the deepest layers firing on average-pooled spikes.
    model = models.cnn(10, (4, 4, 4, 4), norm=False,
                       neuron=LIFParams(decay=0.6, v_th=0.1, reset="hard"))
    params, state = init(model)
    graph = snn_nir.export(model, params, input_shape=SHAPE)
    assert [n for n in graph.nodes if n.endswith("avgpool")] == [
        "units_0.avgpool", "units_1.avgpool", "units_2.avgpool"]
    imported, imported_params = snn_nir.import_(graph)
    assert_same_function(model, {"params": params, **state}, imported, imported_params,
                         random_input())


def test_standardised_params_export_alike():
    model = build("vgg_sws", "lif")
    params, _ = init(model)
    a = snn_nir.export(model, params, input_shape=SHAPE)
    b = snn_nir.export(model, standardize_params(params), input_shape=SHAPE)
    for name in ("units_0.conv", "units_1.conv"):
        np.testing.assert_allclose(a.nodes[name].weight, b.nodes[name].weight, rtol=1e-6,
                                   atol=1e-7)


def test_refuses_asymmetric_same_padding():
    model = models.SpikingSequential(
        (models.ConvUnit(4, neuron=HARD, first=True, strides=2),), 3, input_ndim=3)
    params, _ = init(model)
    with pytest.raises(ValueError, match=r"units_0 \(ConvUnit\): SAME padding of a 3×3 kernel "
                                         r"with stride 2 on a 8×8 map pads"):
        snn_nir.export(model, params, input_shape=SHAPE)
