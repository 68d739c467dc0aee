"""snnjax.cost: analytic MACs and memory access against hand counts, compiled memory."""

import inspect

import jax
import jax.numpy as jnp
import pytest

from snnjax import cost, models, rules
from snnjax.train import Trainer

B, D, H, C = 3, 12, 16, 10  # batch, input features, hidden, classes (all different on purpose)


def _x(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def test_dense_and_conv_macs_hand_count():
    assert cost.dense_macs(B, D, H) == 3 * 12 * 16
    # 2 images, 5×7 output, 3×3 kernel, 4 → 6 channels.
    assert cost.conv_macs(2, 5, 7, 3, 3, 4, 6) == 2 * 5 * 7 * 6 * 3 * 3 * 4


def test_traced_dense_layer_macs():
    model = models.mlp(C, hidden=(H,))
    syn = [lay for lay in cost.trace_layers(model, rules.bptt(), _x(B, D)) if lay.is_synapse]
    assert [lay.path for lay in syn] == ["units_0/Dense_0", "readout/Dense_0"]
    assert syn[0].macs == 3 * 12 * 16 and syn[0].kernel_shape == (12, 16)
    assert syn[1].macs == 3 * 16 * 10
    # The first synapse reads the raw input: no input gradient, not spike-driven.
    assert (syn[0].input_grad, syn[0].spiking_input) == (False, False)
    assert (syn[1].input_grad, syn[1].spiking_input) == (True, True)


def test_traced_conv_layer_macs():
    model = models.cnn(C, channels=(4,), norm=False)
    lays = cost.trace_layers(model, rules.bptt(), _x(2, 8, 8, 2))
    conv = [lay for lay in lays if lay.kind == "conv"]
    assert len(conv) == 1
    # 'SAME' padding: 8×8 output positions, each a 3×3×2 window, 4 output channels, 2 images.
    assert conv[0].macs == 2 * 8 * 8 * 4 * 3 * 3 * 2
    assert conv[0].out_shape == (2, 8, 8, 4)
    assert [lay.kind for lay in lays] == ["conv", "neuron", "pool", "dense"]


def test_two_layer_net_bptt_macs_total():
    T = 5
    model = models.mlp(C, hidden=(H,))
    layers = cost.trace_layers(model, rules.bptt(), _x(B, D))
    got = cost.count_macs(layers, cost.schedule(rules.bptt(), T))
    # Per step forward: 3·12·16 + 3·16·10 = 576 + 480 = 1056.
    # Per step backward: weight grad only on the input layer (576), weight and input
    # gradients on the readout (2·480 = 960): 1536.
    assert got["forward_macs"] == 5 * 1056
    assert got["backward_macs"] == 5 * 1536
    assert got["macs"] == 12960
    assert got["trace_ops"] == 0


def test_sltt_k_counts_backward_only_at_K_steps():
    T, K = 5, 2
    model = models.mlp(C, hidden=(H,))
    layers = cost.trace_layers(model, rules.sltt_k(K), _x(B, D))
    got = cost.count_macs(layers, cost.schedule(rules.sltt_k(K), T))
    assert got["macs"] == 5 * 1056 + 2 * 1536


def test_local_counts_aux_heads_and_no_backward_across_cuts():
    model = models.mlp(C, hidden=(H, 8))
    rule = rules.local(rules.bptt(), block_size=1)
    syn = [lay for lay in cost.trace_layers(model, rule, _x(B, D)) if lay.is_synapse]
    assert [lay.path for lay in syn] == [
        "units_0/Dense_0", "aux_head_0/Dense_0", "units_1/Dense_0", "readout/Dense_0"
    ]
    assert [lay.input_grad for lay in syn] == [False, True, False, True]
    assert [lay.spiking_input for lay in syn] == [False, True, True, True]
    got = cost.count_macs(syn, cost.schedule(rule, 1))
    fwd = 3 * 12 * 16 + 3 * 16 * 10 + 3 * 16 * 8 + 3 * 8 * 10  # 576 + 480 + 384 + 240
    bwd = 576 + 2 * 480 + 384 + 2 * 240
    assert (got["forward_macs"], got["backward_macs"]) == (fwd, bwd)


def test_ottt_trace_ops_are_separate_from_macs():
    T = 4
    model = models.mlp(C, hidden=(H,))
    a = cost.count_macs(cost.trace_layers(model, rules.ottt(), _x(B, D)),
                        cost.schedule(rules.ottt(), T))
    s = cost.count_macs(cost.trace_layers(model, rules.sltt(), _x(B, D)),
                        cost.schedule(rules.sltt(), T))
    assert a["macs"] == s["macs"]
    # Only the readout is traced (the input synapse is not): â = λ·â + s, 2 ops per element.
    assert a["trace_ops"] == 4 * 2 * (3 * 16)


def test_schedule_of_every_rule():
    T = 8
    assert cost.schedule(rules.bptt(), T) == cost.Schedule(8, 8, 7, 1)
    assert cost.schedule(rules.tbptt(3), T) == cost.Schedule(8, 8, 8 - 3, 1)
    assert cost.schedule(rules.tbptt(3, online=True), T).optimizer_updates == 3
    assert cost.schedule(rules.sltt(), T) == cost.Schedule(8, 8, 0, 1)
    assert cost.schedule(rules.sltt_k(2), T) == cost.Schedule(8, 2, 0, 1)
    assert cost.schedule(rules.ottt(online=True), T) == cost.Schedule(8, 8, 0, 8)
    assert cost.schedule(rules.local(rules.tbptt(4), block_size=1), T).temporal_steps == 6
    # The schedule is read from the rule's fields, never from its name: chunks of a cut
    # route carry nothing back in time; chunks of BPTT's kept route change nothing either.
    assert cost.schedule(rules.sltt(chunk=4), T) == cost.Schedule(8, 8, 0, 1)
    assert cost.schedule(rules.bptt(chunk=2), T) == cost.Schedule(8, 8, 7, 1)


def test_memory_access_hand_count():
    syn = cost.Layer("s", "dense", (2, 3), (2, 5), (3, 5), macs=30, input_grad=True,
                     param_elems=20, itemsize=4)
    neu = cost.Layer("n", "neuron", (2, 5), (2, 5), itemsize=4)
    sched = cost.Schedule(forward_steps=4, backward_steps=2, temporal_steps=3,
                          optimizer_updates=1)
    got = cost.count_memory_access([syn, neu], sched, param_bytes=80, opt_state_bytes=80)
    x, y, w, i = 6 * 4, 10 * 4, 20 * 4, 10 * 4
    assert got["weights"] == 4 * w + 2 * w
    assert got["activations"] == 4 * (x + y) + 2 * 2 * (x + y) + 4 * 2 * i + 2 * 3 * i
    assert got["states"] == 4 * 2 * i + 3 * 2 * i
    assert got["gradients"] == 2 * 2 * w
    assert got["optimizer"] == 3 * 80 + 2 * 80
    assert got["traces"] == 0
    parts = ("weights", "activations", "states", "traces", "gradients", "optimizer")
    assert got["memory_access_bytes"] == sum(got[k] for k in parts)


def test_measure_memory_equals_memory_analysis():
    T, model, rule = 3, models.mlp(C, hidden=(H,)), rules.sltt()
    trainer = Trainer(model, rule, cost.default_optimizer())
    got = cost.measure(trainer, T=T, batch_size=B, input_shape=(D,), rates=False)
    xs, ys = jnp.zeros((T, B, D)), jnp.zeros((B,), jnp.int32)
    ts = trainer.init(jax.random.key(1), xs)
    m = jax.jit(trainer.train_step, donate_argnums=0).lower(ts, xs, ys).compile()
    m = m.memory_analysis()
    assert got["temp_bytes"] == m.temp_size_in_bytes
    assert got["argument_bytes"] == m.argument_size_in_bytes
    assert got["output_bytes"] == m.output_size_in_bytes
    assert got["memory_bytes"] == (
        m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
    )
    assert got["device_peak_bytes"] is None and got["step_time_s"] is None
    assert got["macs"] == 3 * (1056 + 1536)


def test_measure_rates_and_timing():
    model = models.mlp(C, hidden=(H,))
    got = cost.measure(Trainer(model, rules.ottt(), cost.default_optimizer()), T=2,
                       batch_size=B, input_shape=(D,), time_steps=2)
    assert 0.0 <= got["firing_rate"] <= 1.0
    # The readout is the only synapse on spikes: at most its MACs become ACs.
    assert 0 <= got["forward_acs"] <= 2 * 3 * 16 * 10
    assert got["forward_nonspike_macs"] == 2 * 3 * 12 * 16
    assert got["step_time_s"] > 0
    assert got["trace_ops"] > 0 and got["memory_access"]["traces"] > 0


def test_measure_rejects_impossible_settings():
    model = models.mlp(C, hidden=(H,))
    with pytest.raises(ValueError, match="window"):
        cost.measure(Trainer(model, rules.tbptt(4), cost.default_optimizer()), T=2,
                     batch_size=B, input_shape=(D,), rates=False)
    with pytest.raises(ValueError, match="rank"):
        cost.measure(Trainer(models.cnn(C), rules.bptt(), cost.default_optimizer()), T=2,
                     batch_size=B, input_shape=(D,), rates=False)


def test_public_names_stay_importable_from_snnjax_cost():
    # The package's modules must not shadow a function of the same name (cost.measure).
    for name in cost.__all__:
        obj = getattr(cost, name)
        assert callable(obj) and not inspect.ismodule(obj), name
    assert cost.measure is cost.figures.measure and cost.step_memory is cost.memory.step_memory
