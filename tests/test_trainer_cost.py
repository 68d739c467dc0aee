"""`Trainer.cost`: snnjax.cost.measure with the trainer's own model, rule, optimizer, loss."""

import optax
import pytest

from snnjax import cost, losses, models, rules
from snnjax.train import Trainer

SHAPE = (12,)


def _trainer(rule=None, **kw):
    rule = rules.bptt() if rule is None else rule
    return Trainer(models.mlp(10, hidden=(16,)), rule, optax.adam(1e-3), **kw)


def test_cost_is_measure_with_the_trainers_pieces():
    trainer = _trainer()
    got = trainer.cost(4, 3, SHAPE, rates=False)
    want = cost.measure(trainer.model, trainer.rule, T=4, batch_size=3, input_shape=SHAPE,
                        loss=trainer.loss, optimizer=trainer.optimizer, rates=False)
    assert got["memory_bytes"] == want["memory_bytes"]
    assert {k: v for k, v in got.items() if k != "memory_access"} == {
        k: v for k, v in want.items() if k != "memory_access"
    }
    # ... and the compiled memory of the trainer's own step on that batch shape.
    xs, ys = cost.abstract_batch(4, 3, SHAPE)
    lowered = cost.lower_step(trainer, xs, ys)
    assert got["memory_bytes"] == cost.compiled_memory(lowered)["memory_bytes"]
    assert (got["rule"], got["T"], got["batch_size"], got["input_shape"]) == ("bptt", 4, 3, [12])
    assert got["firing_rate"] is None and got["step_time_s"] is None
    # The optimizer is the trainer's (Adam keeps two moments, the default SGD one).
    default = cost.measure(trainer.model, trainer.rule, T=4, batch_size=3, input_shape=SHAPE,
                           rates=False)
    assert got["argument_bytes"] > default["argument_bytes"]


def test_cost_with_rates_and_timing():
    m = _trainer(rules.sltt()).cost(2, 2, SHAPE, time_steps=1)
    assert 0.0 <= m["firing_rate"] <= 1.0
    assert m["step_time_s"] > 0


def test_cost_rejects_impossible_settings():
    with pytest.raises(ValueError, match="K=5"):
        _trainer(rules.sltt_k(5)).cost(4, 2, SHAPE)
    with pytest.raises(ValueError, match="window"):
        _trainer(rules.tbptt(8)).cost(4, 2, SHAPE)
    with pytest.raises(ValueError, match="rate loss"):  # the trainer's loss is used
        _trainer(rules.sltt(), loss=losses.rate()).cost(4, 2, SHAPE)
    assert _trainer(loss=losses.rate()).cost(4, 2, SHAPE, rates=False)["memory_bytes"] > 0
