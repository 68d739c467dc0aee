"""The thin training loop shared by every rule: one jitted step, one evaluation."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from snnjax.losses import Loss, per_step
from snnjax.rules.base import Forward, Rule

__all__ = ["TrainState", "Trainer", "validate_batch", "predict"]

PyTree = Any


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree; checkpointable)."""

    params: PyTree
    opt_state: PyTree
    state: PyTree  # persistent collections, e.g. {"batch_stats": ...}
    step: jax.Array
    key: jax.Array


def validate_batch(model: nn.Module, xs, ys, num_classes: int | None = None) -> None:
    """Check a batch at the public boundary, with errors that name the problem.

    ``xs`` must be time-major ``[T, B, ...]`` with the model's per-sample rank, ``ys`` integer
    labels ``[B]`` in ``[0, num_classes)``; concrete (host or device) arrays are also checked
    for NaN/Inf. Runs before anything is traced or compiled.
    """
    num_classes = model.num_classes if num_classes is None else num_classes
    xs_shape, ys_shape = tuple(np.shape(xs)), tuple(np.shape(ys))
    if len(xs_shape) < 3:
        raise ValueError(
            f"inputs must be time-major [T, B, ...] with at least one feature axis, got shape "
            f"{xs_shape}"
        )
    want = getattr(model, "input_ndim", None)
    if want is not None and len(xs_shape) != 2 + want:
        raise ValueError(
            f"{type(model).__name__} expects inputs of rank {2 + want} ([T, B] + {want} sample "
            f"axes, e.g. [T, B, H, W, C]), got shape {xs_shape}"
        )
    if xs_shape[0] < 1:
        raise ValueError(f"T (time steps) must be >= 1, got {xs_shape[0]}")
    if ys_shape != (xs_shape[1],):
        raise ValueError(f"labels must have shape [B]=({xs_shape[1]},), got {ys_shape}")
    if not jnp.issubdtype(jnp.result_type(ys), jnp.integer):
        raise ValueError(f"labels must be integers, got dtype {jnp.result_type(ys)}")
    if not jnp.issubdtype(jnp.result_type(xs), jnp.floating):
        raise ValueError(f"inputs must be floating point, got dtype {jnp.result_type(xs)}")
    if isinstance(ys, jax.core.Tracer) or isinstance(xs, jax.core.Tracer):
        return
    y = np.asarray(ys)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    if not np.isfinite(np.asarray(xs)).all():
        raise ValueError("inputs contain NaN or Inf")


@functools.partial(jax.jit, static_argnums=0)
def predict(model: nn.Module, params: PyTree, state: PyTree, xs: jax.Array) -> jax.Array:
    """Evaluation: logits summed over time, ``[B, C]`` (argmax is the prediction).

    Uses the readout only (Local's auxiliary heads are for training), BatchNorm's running
    statistics and no dropout.
    """
    fwd = Forward(model, train=False)
    carry = fwd.init_carry(params, state, xs[0])
    _, (outputs,) = fwd.run(params, carry, xs, None)
    return outputs.sum(axis=0)


def _train_step(ts: TrainState, xs, ys, *, model, rule, optimizer, loss):
    key, step_key = jax.random.split(ts.key)
    params, opt_state, state, value, outputs = rule.update(
        model, ts.params, ts.opt_state, ts.state, xs, ys,
        loss=loss, key=step_key, optimizer=optimizer,
    )
    accuracy = jnp.mean(jnp.argmax(outputs.sum(axis=0), axis=-1) == ys)
    new = TrainState(params, opt_state, state, ts.step + 1, key)
    return new, {"loss": value, "accuracy": accuracy}


@dataclasses.dataclass
class Trainer:
    """A model, a rule, an optimizer and a loss, with one jitted training step.

        trainer = Trainer(sj.models.mlp(10), sj.rules.sltt(), optax.adam(1e-3))
        ts = trainer.init(jax.random.key(0), xs)
        ts, metrics = trainer.step(ts, xs, ys)        # xs [T, B, ...], ys [B]
    """

    model: nn.Module
    rule: Rule
    optimizer: optax.GradientTransformation
    loss: Loss = dataclasses.field(default_factory=per_step)

    def __post_init__(self):
        self.train_step = functools.partial(
            _train_step, model=self.model, rule=self.rule, optimizer=self.optimizer,
            loss=self.loss,
        )
        self._step = jax.jit(self.train_step, donate_argnums=0)

    def init(self, key, xs) -> TrainState:
        """Parameters (with Local's auxiliary heads if the rule has them) and optimizer state."""
        init_key, key = jax.random.split(key)
        params, state = self.rule.init(self.model, init_key, jnp.asarray(xs[0]))
        return TrainState(params, self.optimizer.init(params), state, jnp.zeros((), jnp.int32), key)

    def check(self, xs, ys) -> None:
        """Validate a batch and the rule's settings for it (raises ValueError)."""
        validate_batch(self.model, xs, ys)
        self.rule.validate(np.shape(xs)[0], self.loss)

    def step(self, ts: TrainState, xs, ys, *, check: bool = True):
        """One jitted training step: ``(new TrainState, {"loss", "accuracy"})``.

        ``ts`` is donated: do not use it afterwards.
        """
        if check:
            self.check(xs, ys)
        return self._step(ts, xs, ys)

    def predict(self, ts: TrainState, xs) -> jax.Array:
        """Summed logits ``[B, C]`` of the readout."""
        return predict(self.model, ts.params, ts.state, jnp.asarray(xs))

    def evaluate(self, ts: TrainState, batches) -> float:
        """Accuracy (fraction) over an iterable of ``(xs, ys)`` batches."""
        correct = total = 0
        for xs, ys in batches:
            pred = np.asarray(jnp.argmax(self.predict(ts, xs), axis=-1))
            correct += int((pred == np.asarray(ys)).sum())
            total += len(ys)
        return correct / max(total, 1)

    def lower(self, ts: TrainState, xs, ys):
        """The lowered (not yet compiled) training step, for cost analysis."""
        return jax.jit(self.train_step, donate_argnums=0).lower(ts, xs, ys)
