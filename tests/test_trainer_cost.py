"""`snnjax.cost.measure(trainer, ...)`: the trainer's own model, rule, optimizer and loss.

The cost module takes a trainer; the trainer module knows nothing of cost (no import circle).
"""

import ast
import inspect

import optax
import pytest

from snnjax import cost, losses, models, rules, train
from snnjax.train import Trainer

SHAPE = (12,)


def _trainer(rule=None, **kw):
    rule = rules.bptt() if rule is None else rule
    return Trainer(models.mlp(10, hidden=(16,)), rule, optax.adam(1e-3), **kw)


def test_measure_uses_the_trainers_step():
    trainer = _trainer()
    got = cost.measure(trainer, T=4, batch_size=3, input_shape=SHAPE, rates=False)
    # The compiled memory of the trainer's own step on that batch shape.
    xs, ys = cost.abstract_batch(4, 3, SHAPE)
    lowered = cost.lower_step(trainer, xs, ys)
    assert got["memory_bytes"] == cost.compiled_memory(lowered)["memory_bytes"]
    assert (got["rule"], got["T"], got["batch_size"], got["input_shape"]) == ("bptt", 4, 3, [12])
    assert got["firing_rate"] is None and got["step_time_s"] is None
    assert got["target"] == "cpu"
    # The optimizer is the trainer's (Adam keeps two moments, SGD with momentum one).
    sgd = Trainer(trainer.model, trainer.rule, cost.default_optimizer())
    default = cost.measure(sgd, T=4, batch_size=3, input_shape=SHAPE, rates=False)
    assert got["argument_bytes"] > default["argument_bytes"]


def test_measure_with_rates_and_timing():
    m = cost.measure(_trainer(rules.sltt()), T=2, batch_size=2, input_shape=SHAPE, time_steps=1)
    assert 0.0 <= m["firing_rate"] <= 1.0
    assert m["step_time_s"] > 0


def test_measure_rejects_impossible_settings():
    def measure(trainer):
        return cost.measure(trainer, T=4, batch_size=2, input_shape=SHAPE, rates=False)

    with pytest.raises(ValueError, match="K=5"):
        measure(_trainer(rules.sltt_k(5)))
    with pytest.raises(ValueError, match="window"):
        measure(_trainer(rules.tbptt(8)))
    with pytest.raises(ValueError, match="rate loss"):  # the trainer's loss is used
        measure(_trainer(rules.sltt(), loss=losses.rate()))
    assert measure(_trainer(loss=losses.rate()))["memory_bytes"] > 0


def test_train_does_not_import_cost():
    tree = ast.parse(inspect.getsource(train))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert not any(name.startswith("snnjax.cost") for name in imported), imported
    assert not hasattr(Trainer, "cost")
