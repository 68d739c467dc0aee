"""The schedules a rule offers (``Rule.schedules``): each the rule's own gradient (SPEC §9),
and the planner takes the first whose compiled step fits a budget (docs/schedules.md)."""

import json

import chex
import jax
import jax.numpy as jnp
import pytest

from snnjax import bench, cli, cost, models, rules
from snnjax.train import Trainer
from test_rules_identities import LOSS, NEURON, T, B, D, C, H1, H2, TOL, to64

# One rule of each kind of schedule (the kept route: pieces, bits and remat; the cut route:
# chunks and bits); tests/test_engine.py, tests/test_remat.py and tests/test_spikes.py check
# each schedule on every rule.
RULES = {
    "tbptt": rules.tbptt(3),
    "sltt": rules.sltt(chunk=T),
    "sltt_k": rules.sltt_k(2, steps=(1, 3), chunk=T),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_schedule_has_the_rules_gradient(name):
    rule = RULES[name]
    schedules = rule.schedules(T)
    assert schedules[0] == rule and len(set(schedules)) == len(schedules) > 1
    assert any(s.temporal.bits for s in schedules)
    with jax.enable_x64(True):
        model = models.mlp(C, (H1, H2), neuron=NEURON)
        xs = jax.random.uniform(jax.random.key(0), (T, B, D), jnp.float64, 0.0, 2.0)
        ys = jnp.asarray([0, 2, 1])
        params, state = rule.init(model, jax.random.key(1), xs[0])
        params = jax.tree.map(lambda p: 1.5 * p, to64(params))
        got = [jax.jit(lambda p, s=s: s.value_and_grad(model, p, state, xs, ys, loss=LOSS))(params)
               for s in schedules]
    for schedule, (loss, _, g) in zip(schedules[1:], got[1:]):
        assert schedule.temporal.cut == rule.temporal.cut and schedule.name != rule.name
        chex.assert_trees_all_close(g, got[0][2], **TOL)
        assert float(loss) == pytest.approx(float(got[0][0]), rel=1e-12)


def test_schedules_go_from_least_work_to_least_memory():
    # The cut rules: the chunk halved down to one step. BPTT/TBPTT: recomputing ones last.
    chunks = [s.temporal.chunk for s in rules.sltt(chunk=12).schedules(12)]
    assert chunks == sorted(chunks, reverse=True) and chunks[-1] == 1 and len(chunks) > 2
    assert rules.sltt().schedules(12) == (rules.sltt(),)  # one step already
    remat = [s.temporal.remat for s in rules.bptt().schedules(12)]
    assert remat == sorted(remat) and remat[0] is False and remat[-1] is True
    local = rules.local(rules.bptt(), block_size=2)
    assert [s.inner for s in local.schedules(12)] == list(rules.bptt().schedules(12))
    assert all(s.block_size == 2 for s in local.schedules(12))


def test_bits_come_before_remat_and_only_where_they_change_memory():
    # Kept route: the per-step pieces (same work), then both with bits (packing), then
    # remat (a second forward pass), which stores no spikes: no remat with bits.
    bptt = rules.bptt
    assert rules.bptt().schedules(12) == (
        bptt(), bptt(chunk=1), bptt(bits=True), bptt(chunk=1, bits=True),
        bptt(remat=True), bptt(chunk=1, remat=True))
    assert rules.bptt(bits=True).schedules(12) == (
        bptt(bits=True), bptt(chunk=1, bits=True), bptt(remat=True), bptt(chunk=1, remat=True))
    assert not any(s.temporal.bits for s in rules.tbptt(1).schedules(12))  # one-step windows
    # Cut route: each chunk of more than one step, then itself with bits; one-step chunks
    # keep floats. SLTT-K's replay differentiates its K steps whatever the chunk.
    sltt = rules.sltt
    assert rules.sltt(chunk=4).schedules(12) == (
        sltt(chunk=4), sltt(chunk=4, bits=True), sltt(chunk=2), sltt(chunk=2, bits=True),
        sltt(chunk=1))
    assert rules.sltt(chunk=4, bits=True).schedules(12) == (
        sltt(chunk=4, bits=True), sltt(chunk=2, bits=True), sltt(chunk=1))
    assert [s.temporal.bits for s in rules.sltt_k(2, chunk=2).schedules(12)] == [
        False, True, False, True]
    # OTTT keeps graded traces, not spikes: bits change nothing there.
    assert not any(s.temporal.bits for s in rules.ottt(chunk=4).schedules(12))


def test_schedule_rows_choose_the_first_that_fits():
    memory = {"bptt": 900, "bptt[chunk=1]": 700, "bptt[bits]": 600, "bptt[chunk=1,bits]": 550,
              "bptt[remat]": 400, "bptt[chunk=1,remat]": 300}
    fn = lambda rule, t, b: memory[rule.name]  # noqa: E731
    kw = dict(T=8, batch_size=4, input_shape=(6,), memory_fn=fn, log=lambda s: None)
    rows = bench.schedule_rows(None, rules.bptt(), budget=500, **kw)
    assert [r["rule"] for r in rows] == list(memory)
    assert [r["chosen"] for r in rows] == [False] * 4 + [True, False]
    assert [r["fits"] for r in rows] == [False] * 4 + [True, True]
    assert [r["recomputes"] for r in rows] == [False] * 4 + [True, True]
    assert not any(r["chosen"] for r in bench.schedule_rows(None, rules.bptt(), budget=10, **kw))
    with pytest.raises(ValueError, match="longer than the sequence"):
        bench.schedule_rows(None, rules.tbptt(9), budget=500, **kw)


def test_plan_schedules_cli_compiles_each_schedule(tmp_path, capsys):
    model, shape, Tn, batch = models.mlp(10, hidden=(16,)), (12,), 16, 4
    xs, ys = cost.abstract_batch(Tn, batch, shape)

    def memory(rule):
        return cost.step_memory(Trainer(model, rule, cost.default_optimizer()), xs, ys)[
            "memory_bytes"]

    full, remat = memory(rules.bptt()), memory(rules.bptt(remat=True))
    assert remat < full
    budget = (full + remat) // 2
    out = tmp_path / "s.json"
    rc = cli.main(["bench", "plan", "--model", "mlp", "--hidden", "16", "--input-shape", "12",
                   "--batch-size", str(batch), "--rules", "bptt", "--T", str(Tn), "--schedules",
                   "--budget", str(budget), "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert rows[0]["memory_bytes"] == full and not rows[0]["fits"]
    (chosen,) = [r for r in rows if r["chosen"]]
    assert chosen == next(r for r in rows if r["memory_bytes"] <= budget)
    by_name = {s.name: s for s in rules.bptt().schedules(Tn)}
    assert chosen["memory_bytes"] == memory(by_name[chosen["rule"]])
    assert f"→ {chosen['rule']}" in capsys.readouterr().out
