"""rules.walk: every module call seen by one visitor; a stage run with its part of the model."""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from snnjax import models, neurons, rules
from snnjax.rules import walk

B, D, H, C = 3, 12, 16, 10  # batch, input features, hidden, classes (all different on purpose)


class _TwoDense(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3, name="b")(self.squash(nn.Dense(5, name="a")(x)))

    def squash(self, x):
        return jnp.tanh(x)


def test_calls_sees_every_call_in_order_and_no_other_method():
    model, x = _TwoDense(), jnp.ones((B, D))
    variables = model.init(jax.random.key(0), x)
    seen = []

    def visit(module, call, args, kwargs):
        seen.append(tuple(module.path))
        return call(*args, **kwargs)

    with walk.calls(visit):
        out = model.apply(variables, x)
    assert seen == [(), ("a",), ("b",)]  # `squash`, a method but not `__call__`, unseen
    np.testing.assert_array_equal(out, model.apply(variables, x))


def test_calls_returns_what_the_visitor_returns():
    model, x = _TwoDense(), jnp.ones((B, D))
    variables = model.init(jax.random.key(0), x)

    def zero_a(module, call, args, kwargs):
        out = call(*args, **kwargs)
        return jnp.zeros_like(out) if tuple(module.path) == ("a",) else out

    with walk.calls(zero_a):
        out = model.apply(variables, x)
    bias_b = variables["params"]["b"]["bias"]
    np.testing.assert_array_equal(out, jnp.broadcast_to(bias_b, (B, 3)))


def test_apply_stage_runs_each_local_block_with_its_own_parameters():
    model = models.mlp(C, hidden=(H, H))
    rule = rules.local(rules.bptt(), block_size=1)
    x = jnp.linspace(0.0, 1.0, B * D).reshape(1, B, D)
    params, state = rule.init(model, jax.random.key(0), x[0])
    stages = rule.stages(model)
    assert len(stages) == 2  # the last block ends with the readout, its own head
    seen = {}

    for stage in stages:
        def visit(module, call, args, kwargs, stage=stage):
            if module.has_variable("params", "kernel"):
                path = tuple(module.path)
                if stage.names is not None:
                    path = (stage.names[path[0]], *path[1:])
                seen[path] = module.get_variable("params", "kernel")
            return call(*args, **kwargs)

        (x, logits), _ = walk.apply_stage(stage, params, state, x, visit, r=neurons.KEEP,
                                          mutable=["neuron"])
        assert logits.shape == (1, B, C)
    kernels = {path[:-1]: v for path, v in flax.traverse_util.flatten_dict(params).items()
               if path[-1] == "kernel"}
    # Every synapse of the model and of Local's heads, once, with the model's own kernel.
    assert set(seen) == set(kernels) and len(kernels) == 4  # 2 units, 1 head, readout
    for path, kernel in kernels.items():
        np.testing.assert_array_equal(seen[path], kernel)
