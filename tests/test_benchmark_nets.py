"""benchmarks/nets: the one copy of the comparison nets that benchmarks/accelerator.py and
benchmarks/peers.py both run. Its snnjax dense net computes the textbook LIF and the spike
count; both scripts' snnjax steps on it are the same computation; its synapse reads the raw
input, so it is not traced (SPEC §3) and OTTT's gradient on it is SLTT's."""

import json
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import peer_worker  # noqa: E402
from accel import workers  # noqa: E402
from nets import DECAY, V_TH  # noqa: E402
from nets import dense as dense_nets  # noqa: E402

T, B, N = 7, 3, 16  # T ≠ B ≠ N: a swapped axis cannot pass


def _lif_spike_count(w, b, x):
    """Σ_t Σ s[t] of u[t] = λ·v[t-1] + x[t]·W + b, s = H(u - V_th), v = u - V_th·s (SPEC §1)."""
    v = np.zeros((x.shape[1], w.shape[1]))
    total = 0.0
    for t in range(x.shape[0]):
        u = DECAY * v + x[t].astype(np.float64) @ w + b
        s = (u >= V_TH).astype(np.float64)
        v = u - V_TH * s
        total += s.sum()
    return total


def _grads(rule, data):
    model = dense_nets.snnjax_dense_model(N)
    params = dense_nets.snnjax_dense_params(data, jnp.float64)
    xs, ys = jnp.asarray(data[2], jnp.float64), jnp.zeros((B,), jnp.int32)
    value, _, grads = rule.value_and_grad(model, params, {}, xs, ys,
                                          loss=dense_nets.spike_count_loss(), key=None)
    return value, grads


def test_dense_loss_is_the_spike_count_per_step(x64):
    data = dense_nets.dense_data(T, B, N)
    from snnjax import rules

    value, _ = _grads(rules.bptt(), data)
    expected = _lif_spike_count(*data) / T
    assert expected > 0  # the net fires: the check is not 0 == 0
    np.testing.assert_allclose(float(value), expected, rtol=1e-12)


def test_ottt_on_the_dense_net_is_sltt(x64):
    """No traced synapse (the only one reads the raw input): OTTT's gradient equals SLTT's."""
    from snnjax import rules

    data = dense_nets.dense_data(T, B, N)
    _, sltt = _grads(rules.sltt(chunk=T), data)
    _, ottt = _grads(rules.ottt(chunk=T), data)
    _, bptt = _grads(rules.bptt(), data)
    chex.assert_trees_all_close(ottt, sltt, rtol=1e-12, atol=1e-12)
    # ... and the check can fail: BPTT's gradient on the same net differs.
    assert not np.allclose(bptt["fc"]["kernel"], sltt["fc"]["kernel"], rtol=1e-6)


def test_both_scripts_run_the_same_dense_step():
    """accelerator.py's dense OTTT row and peers.py's (peer_worker) compute the same loss and
    gradient from the same data: the same net, the same untraced synapse, the same loss."""
    rule_name, lib = "OTTT_A(chunk=T)", "snnjax-ottt-a"
    cfg = type("Cfg", (), {"T": T, "batch": B, "N": N, "lib": lib})()
    runner = peer_worker.snnjax_dense(cfg, lib)
    peer_value, peer_grads = runner._step(runner.params)

    data = dense_nets.dense_data(T, B, N)
    params = dense_nets.snnjax_dense_params(data)
    f = jax.jit(workers._dense_grad_fn(rule_name, T, N))
    value, grads = f(params, jnp.asarray(data[2]), jnp.zeros((B,), jnp.int32))
    np.testing.assert_allclose(float(peer_value), float(value), rtol=1e-6)
    chex.assert_trees_all_close(peer_grads, grads, rtol=1e-5, atol=1e-6)


def test_result_rows_replace_a_cell_measured_again(tmp_path):
    from result_rows import record

    path = tmp_path / "sub" / "rows.json"
    key = ("target", "T")
    rows = record(path, [], {"target": "h100", "T": 6, "bytes": 1}, key)
    rows = record(path, rows, {"target": "cpu", "T": 6, "bytes": 2}, key)
    rows = record(path, rows, {"target": "h100", "T": 6, "bytes": 3}, key)
    assert json.loads(path.read_text()) == rows == [
        {"target": "cpu", "T": 6, "bytes": 2}, {"target": "h100", "T": 6, "bytes": 3}]
