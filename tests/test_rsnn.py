"""The rsnn model (recurrent spiking layers and a readout) and the analytic cost of its
recurrent synapse ``W_rec·s[t-1]`` against hand counts."""

import chex
import jax
import jax.numpy as jnp
import pytest

from snnjax import cost, models, rules
from snnjax.losses import per_step
from snnjax.neuron import Adaptation, LIFParams
from snnjax.neurons import ALIF
from snnjax.recurrent import RecurrentDense

B, D, H, C = 3, 12, 16, 10  # batch, input features, hidden, classes (all different on purpose)


def _x(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


# ----------------------------------------------------------------------------- the model


def test_rsnn_is_recurrent_layers_then_a_readout():
    model = models.get("rsnn", C, hidden=(H, 8))
    assert [type(u) for u in model.units] == [RecurrentDense, RecurrentDense]
    assert [u.features for u in model.units] == [H, 8]
    assert [u.first for u in model.units] == [True, False]
    xs = jnp.ones((5, B, 4, 3))  # any per-sample shape: flattened; T=5 != B=3
    params, state = rules.bptt().init(model, jax.random.key(0), xs[0])
    assert params["units_0"]["recurrent_kernel"].shape == (H, H)
    assert params["units_1"]["recurrent_kernel"].shape == (8, 8)
    assert params["units_0"]["Dense_0"]["kernel"].shape == (12, H)
    logits, _ = model.apply({"params": params, **state}, xs, mutable=["neuron"])
    chex.assert_shape(logits, (5, B, C))


def test_rsnn_alif_and_its_options():
    lif = LIFParams(decay=0.8)
    model = models.get("rsnn_alif", 2, hidden=(H,), neuron=lif,
                       adaptation=Adaptation(rho=0.95, beta=1.8))
    neuron = model.units[0].neuron
    assert isinstance(neuron, ALIF) and neuron.neuron == lif
    assert neuron.adaptation == Adaptation(rho=0.95, beta=1.8)
    assert model.readout_decay == 0.8
    plain = models.rsnn(2, hidden=(H,), neuron=lif)
    assert plain.units[0].neuron == lif  # LIF parameters: a LIF layer
    with pytest.raises(ValueError, match="hidden is empty"):
        models.rsnn(2, hidden=())


def test_ottt_refuses_rsnn_alif_and_trains_rsnn():
    xs, ys = jnp.ones((4, B, D)), jnp.arange(B) % C
    for model in (models.rsnn(C, hidden=(H,)), models.rsnn_alif(C, hidden=(H,))):
        params, state = rules.ottt().init(model, jax.random.key(0), xs[0])
        run = lambda: rules.ottt().value_and_grad(  # noqa: E731
            model, params, state, xs, ys, loss=per_step())
        if model.units[0].neuron == LIFParams():
            _, _, grads = run()
            chex.assert_trees_all_equal_shapes(grads, params)
        else:
            with pytest.raises(ValueError, match=r"OTTT cannot train neuron 'units_0/neuron' "
                                                 r"\(ALIF\)"):
                run()


# ----------------------------------------------------------------------------- cost


def _synapses(model, rule):
    return [lay for lay in cost.trace_layers(model, rule, _x(B, D)) if lay.is_synapse]


def test_the_recurrent_synapse_is_counted():
    syn = _synapses(models.rsnn(C, hidden=(H,)), rules.bptt())
    assert [lay.path for lay in syn] == [
        "units_0/Dense_0", "units_0/recurrent_kernel", "readout/Dense_0"]
    rec = syn[1]
    assert (rec.kind, rec.kernel_shape, rec.in_shape, rec.out_shape) == (
        "dense", (H, H), (B, H), (B, H))
    assert rec.macs == 3 * 16 * 16 and rec.param_elems == 16 * 16
    assert rec.recurrent and rec.input_grad and rec.spiking_input
    assert not syn[0].recurrent and not syn[2].recurrent


def test_recurrent_macs_hand_count():
    T = 5
    model = models.rsnn(C, hidden=(H,))
    ff, rec, out = 3 * 12 * 16, 3 * 16 * 16, 3 * 16 * 10  # 576, 768, 480 per step
    for rule, back_in_time in [(rules.bptt(), T - 1), (rules.tbptt(2), T - 3),
                               (rules.sltt(), 0), (rules.ottt(), 0)]:
        got = cost.count_macs(cost.trace_layers(model, rule, _x(B, D)), cost.schedule(rule, T))
        assert got["forward_macs"] == T * (ff + rec + out), rule
        # Every step: the input synapse's weight gradient, the recurrent one's, and the
        # readout's weight and input gradients; W_recᵀδ[t] -> s[t-1] only at the steps
        # whose gradient flows back in time (BPTT T-1, TBPTT(2) T - ⌈T/2⌉, cut rules none).
        assert got["backward_macs"] == T * (ff + rec + 2 * out) + back_in_time * rec, rule
    # SLTT-K: both the weight gradients and nothing back in time, at K steps.
    got = cost.count_macs(cost.trace_layers(model, rules.sltt_k(2), _x(B, D)),
                          cost.schedule(rules.sltt_k(2), T))
    assert got["backward_macs"] == 2 * (ff + rec + 2 * out)


def test_recurrent_conv_macs_hand_count():
    from snnjax.models import SpikingSequential
    from snnjax.recurrent import RecurrentConv

    model = SpikingSequential((RecurrentConv(4, first=True, recurrent_size=3),), C,
                              input_ndim=3)
    syn = [lay for lay in cost.trace_layers(model, rules.bptt(), _x(2, 6, 5, 3))
           if lay.is_synapse]
    rec = syn[1]
    assert rec.path == "units_0/recurrent_kernel" and rec.kind == "conv"
    # Same padding, stride 1: every one of the 6×5 positions, a 3×3×4 kernel, 4 outputs.
    assert rec.macs == 2 * 6 * 5 * 4 * 3 * 3 * 4 and rec.kernel_shape == (3, 3, 4, 4)


def test_ottt_traces_the_recurrent_synapse():
    T = 4
    model = models.rsnn(C, hidden=(H,))
    syn = _synapses(model, rules.ottt())
    assert [lay.traced for lay in syn] == [False, True, True]
    got = cost.count_macs(syn, cost.schedule(rules.ottt(), T))
    # â = λ·â + s on the recurrent synapse's and the readout's inputs, [B, H] each.
    assert got["trace_ops"] == T * 2 * (2 * 3 * 16)


def test_recurrent_memory_access_hand_count():
    """An rsnn's memory access is an MLP's of the same sizes plus the recurrent synapse's:
    forward ``F·(w + x + y)``, weight gradient ``Bk·(x + y + 2w)``, the gradient back in
    time ``Tm·(w + x + y)``, and the optimizer's share of its ``H²`` weights."""
    T = 6
    x = y = B * H * 4
    w = H * H * 4
    for rule, Tm in [(rules.bptt(), T - 1), (rules.sltt(), 0)]:
        sched = cost.schedule(rule, T)
        counts = {}
        for name in ("mlp", "rsnn"):
            model = models.get(name, C, hidden=(H,))
            params = jax.eval_shape(lambda: rule.init(model, jax.random.key(0),
                                                      jnp.zeros((B, D)))[0])
            pb = cost.tree_bytes(params)
            counts[name] = cost.count_memory_access(
                cost.trace_layers(model, rule, _x(B, D)), sched,
                param_bytes=pb, opt_state_bytes=2 * pb)
        assert counts["rsnn"]["weights"] - counts["mlp"]["weights"] == T * w + Tm * w
        assert counts["rsnn"]["activations"] - counts["mlp"]["activations"] == (
            T * (x + y) + T * (x + y) + Tm * (x + y))
        assert counts["rsnn"]["gradients"] - counts["mlp"]["gradients"] == T * 2 * w
        assert counts["rsnn"]["optimizer"] - counts["mlp"]["optimizer"] == 3 * w + 2 * 2 * w
        assert counts["rsnn"]["states"] == counts["mlp"]["states"]


def test_firing_rate_of_the_recurrent_synapse_is_the_layers_own():
    model = models.rsnn(C, hidden=(H,))
    rule = rules.bptt()
    xs = jax.random.bernoulli(jax.random.key(1), 0.5, (4, B, D)).astype(jnp.float32) * 3.0
    params, state = rule.init(model, jax.random.key(0), xs[0])
    rates = cost.firing_rates(model, rule, params, state, xs)
    assert set(rates) == {"units_0/Dense_0", "units_0/recurrent_kernel", "readout/Dense_0"}
    # The recurrent synapse reads the layer's spikes, as the readout does.
    assert rates["units_0/recurrent_kernel"] == pytest.approx(rates["readout/Dense_0"])
    assert 0.0 < rates["readout/Dense_0"] < 1.0

