"""Compiled memory on accelerators, compiled only (no device needed): what the engine's
schedules save on XLA:CPU must hold on XLA:GPU and XLA:TPU, whose compilers schedule and
assign buffers their own way (docs/schedules.md).

The targets need the compile-only plugins (``jax-cuda12-plugin``/``jax-cuda12-pjrt`` for the
GPU, ``jax[tpu]``'s libtpu for the TPU); without them each test is skipped with the reason.
CI installs them and runs ``pytest -m accelerator_aot``.
"""

import importlib.util

import jax
import jax.numpy as jnp
import optax
import pytest

from snnjax import models, rules, targets
from snnjax.cost import abstract_batch, step_memory, tree_bytes
from snnjax.train import Trainer

pytestmark = pytest.mark.accelerator_aot

def target_device(name: str):
    """The target's compile-only device, or skip naming the missing extra."""
    target = targets.get_target(name)
    modules = targets._EXTRA_MODULES[target.extra]
    if any(importlib.util.find_spec(m.split(".")[0]) is None for m in modules):
        pytest.skip(f"compile-only target {name} needs the {target.extra} extra (not installed)")
    return name


def step_bytes(target, net, rule, T, batch, shape) -> int:
    """Memory of the compiled training step (SGD with momentum, state donated) for
    ``target``: temporaries + arguments + outputs - donated buffers reused."""
    trainer = Trainer(net, rule, optax.sgd(0.1, momentum=0.9))
    m = step_memory(trainer, *abstract_batch(T, batch, shape), target=target)
    return m["memory_bytes"] - m["alias_bytes"]


def neuron_state_bytes(net, batch, shape) -> int:
    return tree_bytes(jax.eval_shape(lambda: net.init(
        jax.random.key(0), jnp.zeros((1, batch, *shape)), train=False))["neuron"])


_OPEN = pytest.mark.xfail(
    strict=True, reason="open (issue 22): SLTT-K(1) keeps its selected step's record, one "
    "set of neuron states, through the pass for the replay after it")


@pytest.mark.parametrize("target", [pytest.param("h100", marks=_OPEN),
                                    pytest.param("tpu-v5e", marks=_OPEN)])
def test_sltt_k_keeps_no_neuron_states_beyond_sltt(target):
    # SLTT-K(1) needs no neuron state beyond SLTT's: its one selected step can be replayed
    # from the state the forward pass carries on (docs/schedules.md), so its memory should
    # be SLTT's up to the compiler's packing (a tenth of one set here).
    device = target_device(target)
    net = models.vgg11_sws(10, width=0.125)
    T, batch, shape = 6, 32, (16, 16, 3)
    sltt = step_bytes(device, net, rules.sltt(), T, batch, shape)
    k1 = step_bytes(device, net, rules.sltt_k(1), T, batch, shape)
    states = neuron_state_bytes(net, batch, shape)
    assert k1 <= sltt + 0.1 * states, (target, sltt, k1, states)
