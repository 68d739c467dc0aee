"""Learning-rate schedules step per epoch, also for rules that update inside the time loop."""

import jax.numpy as jnp
import optax
import pytest

from snnjax.experiment import TrainConfig, make_optimizer


@pytest.mark.parametrize(
    "rule, kwargs, updates_per_batch",
    [("bptt", {}, 1), ("ottt-o", {}, 6), ("tbptt", {"window": 4, "online": True}, 2)],
)
def test_cosine_schedule_counts_epochs(rule, kwargs, updates_per_batch):
    cfg = TrainConfig(rule=rule, T=6, epochs=4, lr=1.0, optimizer="sgd", momentum=0.0,
                      **kwargs)
    steps_per_epoch = 5
    opt = make_optimizer(cfg, steps_per_epoch)
    params = {"w": jnp.zeros(())}
    state = opt.init(params)
    lrs = []
    for _ in range(steps_per_epoch * updates_per_batch * 2):
        updates, state = opt.update({"w": jnp.ones(())}, state, params)
        lrs.append(-float(updates["w"]))
    per_epoch = steps_per_epoch * updates_per_batch
    schedule = optax.cosine_decay_schedule(1.0, 4)
    assert lrs[:per_epoch] == pytest.approx([float(schedule(0))] * per_epoch)
    assert lrs[per_epoch:] == pytest.approx([float(schedule(1))] * per_epoch)
