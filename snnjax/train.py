"""The thin training loop shared by every rule: one jitted step, one evaluation.

Data parallel when given a mesh (:mod:`snnjax.distributed`): the same step under ``jax.jit``
with the batch split along B and everything else replicated.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from snnjax.distributed import DataParallel
from snnjax.losses import Loss, per_step
from snnjax.rules.base import Rule
from snnjax.spikes import check_spike_inputs

__all__ = ["TrainState", "Trainer", "validate_batch", "predict", "all_finite", "check_finite"]

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
        if ys_shape == (xs_shape[0],):
            raise ValueError(
                f"xs must be time-major [T, B, ...]: xs {xs_shape} has the labels' batch size "
                f"{xs_shape[0]} on its first axis, as a batch-major [B, T, ...] array would "
                "(swap the axes: xs.transpose(1, 0, ...))"
            )
        raise ValueError(
            f"xs must be time-major [T, B, ...] with labels [B]: xs {xs_shape} has B = "
            f"{xs_shape[1]}, the labels have shape {ys_shape}"
        )
    if not jnp.issubdtype(jnp.result_type(ys), jnp.integer):
        raise ValueError(f"labels must be integers, got dtype {jnp.result_type(ys)}")
    if not jnp.issubdtype(jnp.result_type(xs), jnp.floating):
        raise ValueError(f"inputs must be floating point, got dtype {jnp.result_type(xs)}")
    if isinstance(ys, jax.core.Tracer) or isinstance(xs, jax.core.Tracer):
        return
    if not all(getattr(a, "is_fully_addressable", True) for a in (xs, ys)):
        return  # a multi-host global array: the step's own checks (check_finite) cover it
    num_classes = num_classes_of(model, xs) if num_classes is None else num_classes
    y = np.asarray(ys)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    if not np.isfinite(np.asarray(xs)).all():
        raise ValueError("inputs contain NaN or Inf")


def num_classes_of(model: nn.Module, xs) -> int:
    """The number of classes ``model`` predicts: its ``num_classes`` attribute, or the last
    axis of its logits on a one-step chunk of ``xs [T, B, ...]`` (traced, not run)."""
    n = getattr(model, "num_classes", None)
    if n is not None:
        return int(n)
    x1 = jax.ShapeDtypeStruct((1, *np.shape(xs)[1:]), jnp.result_type(xs))
    out = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x)[0], x1)
    return int(out.shape[-1])


@functools.partial(jax.jit, static_argnums=0)
def predict(model: nn.Module, params: PyTree, state: PyTree, xs: jax.Array) -> jax.Array:
    """Evaluation: logits summed over time, ``[B, C]`` (argmax is the prediction).

    ``xs [T, B, ...]`` runs as one chunk of T steps from resting neurons; uses the readout
    only (Local's auxiliary heads are for training), BatchNorm's running statistics and no
    dropout.
    """
    outputs, _ = model.apply({"params": params, **state}, xs, train=False, mutable=["neuron"])
    return outputs.sum(axis=0)


def all_finite(tree: PyTree) -> jax.Array:
    """True (a bool scalar) if no floating-point leaf of ``tree`` holds a NaN or an Inf."""
    # max|a| is NaN or Inf exactly when some element is, and is one fused reduction: an
    # element-wise isfinite(a) gets materialised on CPU, an O(T) temporary for the inputs.
    leaves = [
        jnp.isfinite(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(a), jnp.inexact) and jnp.size(a) > 0
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def check_finite(metrics: dict, *, where: str = "") -> None:
    """Raise FloatingPointError naming the problem if a training step went non-finite.

    ``metrics`` is a step's (fetched) metrics. Checks, in this order: the batch's inputs,
    the loss, and the updated parameters, optimizer state and BatchNorm statistics — a
    NaN/Inf gradient shows there, since every optax update passes it into the parameters
    or the optimizer's moments.
    """
    at = f" at {where}" if where else ""
    if not bool(metrics.get("inputs_finite", True)):
        raise FloatingPointError(f"the input batch{at} contains NaN or Inf")
    loss = np.asarray(metrics["loss"])
    if not np.isfinite(loss).all():
        raise FloatingPointError(
            f"loss is {loss}{at}: training diverged (lower the learning rate?)"
        )
    if not bool(metrics.get("update_finite", True)):
        raise FloatingPointError(
            f"the gradient is NaN or Inf{at} (the loss {float(loss):.4g} is finite, but the "
            "updated parameters or optimizer state are not): training diverged"
        )


def _train_step(ts: TrainState, xs, ys, *, model, rule, optimizer, loss):
    key, step_key = jax.random.split(ts.key)
    params, opt_state, value, aux = rule.update_with_aux(
        model, ts.params, ts.opt_state, ts.state, xs, ys,
        loss=loss, key=step_key, optimizer=optimizer,
    )
    accuracy = jnp.mean(jnp.argmax(aux.logits, axis=-1) == ys)
    new = TrainState(params, opt_state, aux.state, ts.step + 1, key)
    # Under Local the value minimised sums every block's head's loss; "loss" is the
    # readout's, comparable with other rules' (each head's: rule.value_and_grad's aux).
    heads = aux.head_losses
    # Health flags for check_finite: cheap reductions, fetched with the loss.
    return new, {
        "loss": value if heads is None else heads[-1],
        "accuracy": accuracy,
        "inputs_finite": all_finite(xs),
        "update_finite": all_finite((params, opt_state, aux.state)),
    }


@functools.partial(jax.jit, static_argnums=0)
def _count_correct(model, params, state, xs, ys):
    """Number of correct predictions, a scalar (padding rows carry the label -1)."""
    pred = jnp.argmax(predict(model, params, state, xs), axis=-1)
    return jnp.sum(pred == ys)


def _pad_rows(xs, ys, multiple: int):
    """Pad a batch along B to a multiple of ``multiple`` with zero inputs and label -1."""
    xs, ys = np.asarray(xs), np.asarray(ys)
    pad = -ys.shape[0] % multiple
    if pad:
        xs = np.concatenate([xs, np.zeros((xs.shape[0], pad, *xs.shape[2:]), xs.dtype)], axis=1)
        ys = np.concatenate([ys, np.full((pad,), -1, ys.dtype)])
    return xs, ys


@dataclasses.dataclass
class Trainer:
    """A model, a rule, an optimizer and a loss, with one jitted training step.

        trainer = Trainer(sj.models.mlp(10), sj.rules.sltt(), optax.adam(1e-3))
        ts = trainer.init(jax.random.key(0), xs)
        ts, metrics = trainer.step(ts, xs, ys)        # xs [T, B, ...], ys [B]

    Data parallel: ``Trainer(..., mesh=snnjax.distributed.data_parallel().mesh)`` (a mesh
    with one axis ``"data"``). The train state is replicated on the mesh's devices and each
    batch is split along B; the step is the same function under ``jax.jit``, so XLA inserts
    the gradient all-reduce (inside the time loop for rules that update there, OTTT_O), and
    BatchNorm's statistics are those of the global batch, exactly as on one device. B must
    be divisible by the number of devices. Multi-host: pass the same global batch on every
    process (each keeps its own rows), or global arrays built with
    :meth:`snnjax.distributed.DataParallel.from_local`.

    Attributes:
      mesh: a :class:`jax.sharding.Mesh` with the single axis ``"data"``, or None for one
        device (no sharding at all).
    """

    model: nn.Module
    rule: Rule
    optimizer: optax.GradientTransformation
    loss: Loss = dataclasses.field(default_factory=per_step)
    mesh: Mesh | None = None

    def __post_init__(self):
        self.train_step = functools.partial(
            _train_step, model=self.model, rule=self.rule, optimizer=self.optimizer,
            loss=self.loss,
        )
        self.data_parallel = None if self.mesh is None else DataParallel(self.mesh)
        self._num_classes = None
        self._spikes_checked = False
        self._step = self._jit_step()
        # Initialise under one jit (one compilation rather than one per op); data parallel,
        # straight into replicated arrays on the mesh.
        shardings = {} if self.data_parallel is None else {
            "out_shardings": self.data_parallel.replicated
        }
        self._init = jax.jit(self._init_state, **shardings)

    def _jit_step(self):
        dp = self.data_parallel
        if dp is None:
            return jax.jit(self.train_step, donate_argnums=0)
        return jax.jit(
            self.train_step,
            donate_argnums=0,
            in_shardings=(dp.replicated, dp.xs_sharding, dp.ys_sharding),
            out_shardings=(dp.replicated, dp.replicated),
        )

    def _init_state(self, key, x0) -> TrainState:
        init_key, key = jax.random.split(key)
        params, state = self.rule.init(self.model, init_key, x0)
        return TrainState(params, self.optimizer.init(params), state, jnp.zeros((), jnp.int32), key)

    def init(self, key, xs) -> TrainState:
        """Parameters (with Local's auxiliary heads if the rule has them) and optimizer state.

        Args:
          key: a PRNG key (the run's seed).
          xs: a batch ``[T, B, ...]`` (only ``xs[0]``'s shape is used).
        """
        return self._init(key, xs[0])

    def check(self, xs, ys) -> None:
        """Validate a batch and the rule's settings for it (raises ValueError).

        Checks rank, shapes, dtypes, label range, NaN/Inf, the rule's T constraints and,
        data parallel, that B splits evenly over the devices.
        """
        if self._num_classes is None:
            self._num_classes = num_classes_of(self.model, xs)
        validate_batch(self.model, xs, ys, self._num_classes)
        self.rule.validate(np.shape(xs)[0], self.loss)
        if self.data_parallel is not None:
            self.data_parallel.check_batch_size(np.shape(xs)[1])

    def _shard(self, xs, ys):
        if self.data_parallel is None:
            return xs, ys
        return self.data_parallel.shard_batch(xs, ys)

    def step(self, ts: TrainState, xs, ys, *, check: bool = True):
        """One jitted training step on ``xs [T, B, ...]``, ``ys [B]``.

        Returns ``(new TrainState, metrics)``; metrics hold ``loss`` (the readout's loss,
        Σ over T: under Local not the value minimised, which sums every block's head's
        loss, but the one comparable with other rules; each head's is in
        ``rule.value_and_grad``'s ``aux.head_losses``) and ``accuracy`` of the batch, and
        the health flags ``inputs_finite`` and ``update_finite`` (give them to
        :func:`check_finite`). ``ts`` is donated: do not use it afterwards.

        Under a rule that keeps spikes as bits (``bits=True``: ``rule.plan(T).stores_bits``),
        the first checked step also runs the forward pass once to refuse a value that is not
        a spike where the model declares spikes, naming the synapse
        (:func:`snnjax.spikes.check_spike_inputs`); other rules keep floats and take any
        values.
        """
        if check:
            self.check(xs, ys)
        elif self.data_parallel is not None:
            self.data_parallel.check_batch_size(np.shape(ys)[0])
        xs, ys = self._shard(xs, ys)
        if check and not self._spikes_checked:
            # Once: synapses that store their input as bits get spikes (snnjax.spikes).
            if self.rule.plan(np.shape(xs)[0]).stores_bits:
                check_spike_inputs(self.model, {"params": ts.params, **ts.state}, xs)
            self._spikes_checked = True
        return self._step(ts, xs, ys)

    def predict(self, ts: TrainState, xs) -> jax.Array:
        """Summed logits ``[B, C]`` of the readout (on every process, data parallel)."""
        dp = self.data_parallel
        if dp is None:
            return predict(self.model, ts.params, ts.state, jnp.asarray(xs))
        B = np.shape(xs)[1]
        xs_p, ys_p = _pad_rows(xs, np.zeros((B,), np.int32), dp.num_devices)
        xs_p, _ = dp.shard_batch(xs_p, ys_p)
        logits = predict(self.model, ts.params, ts.state, xs_p)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            logits = jnp.asarray(multihost_utils.process_allgather(logits, tiled=True))
        return logits[:B]

    def evaluate(self, ts: TrainState, batches) -> float:
        """Accuracy (fraction) over an iterable of ``(xs, ys)`` batches (any batch size)."""
        dp = self.data_parallel
        correct = total = 0
        for xs, ys in batches:
            if dp is None:
                pred = np.asarray(jnp.argmax(self.predict(ts, xs), axis=-1))
                correct += int((pred == np.asarray(ys)).sum())
            else:
                xs_p, ys_p = dp.shard_batch(*_pad_rows(xs, ys, dp.num_devices))
                correct += int(_count_correct(self.model, ts.params, ts.state, xs_p, ys_p))
            total += len(ys)
        return correct / max(total, 1)

    def lower(self, ts: TrainState, xs, ys):
        """The lowered (not yet compiled) training step, for cost analysis (:mod:`snnjax.cost`)."""
        dp = self.data_parallel
        if dp is not None:  # only shapes matter; numpy inputs cannot carry a sharding
            xs = jax.ShapeDtypeStruct(np.shape(xs), jnp.result_type(xs), sharding=dp.xs_sharding)
            ys = jax.ShapeDtypeStruct(np.shape(ys), jnp.result_type(ys), sharding=dp.ys_sharding)
        # The step's own jit: compiling this lowering also serves the step's first call.
        return self._step.lower(ts, xs, ys)
