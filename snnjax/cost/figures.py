"""Every cost figure of one training step of a trainer, as one flat dict (:func:`measure`).

It puts together the compiled memory (:mod:`snnjax.cost.memory`), the analytic counts
(:mod:`snnjax.cost.ops`, :mod:`snnjax.cost.counts`) and, when asked, the time of real steps
(:mod:`snnjax.cost.timing`); ``snnjax bench`` and the experiments read it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from snnjax.cost.counts import count_macs, count_memory_access, schedule
from snnjax.cost.memory import (
    abstract_batch,
    compiled_memory,
    device_memory_of,
    device_peak_bytes,
    lower_step,
    tree_bytes,
)
from snnjax.cost.ops import firing_rates, trace_layers
from snnjax.cost.timing import random_batch, time_step
from snnjax.targets import Target, get_target
from snnjax.train import Trainer, num_classes_of

__all__ = ["default_optimizer", "measure"]


def default_optimizer() -> optax.GradientTransformation:
    """The optimizer cost figures assume unless told otherwise: SGD, momentum 0.9 (OTTT/SLTT)."""
    return optax.sgd(0.1, momentum=0.9)


def _check_inputs(model, rule, loss, T, input_shape):
    want = getattr(model, "input_ndim", None)
    if want is not None and len(tuple(input_shape)) != want:
        raise ValueError(
            f"{type(model).__name__} expects samples of rank {want}, got input shape "
            f"{tuple(input_shape)}"
        )
    rule.validate(T, loss)


def measure(
    trainer: Trainer,
    *,
    T: int,
    batch_size: int,
    input_shape: Sequence[int],
    dtype=jnp.float32,
    time_steps: int = 0,
    rates: bool | Mapping[str, float] = True,
    rate_batch: int = 8,
    seed: int = 0,
    target: str | Target | None = None,
) -> dict[str, Any]:
    """All cost figures of one training step of ``trainer`` (its model, rule, optimizer, loss).

    Memory, MACs and memory access are computed without running training; firing rates
    (for the AC count) come from one forward pass at initial parameters on uniform random
    input (``rate_batch`` samples), and ``time_steps > 0`` times that many real steps. The
    figures are those of one device: a data-parallel trainer's mesh is not used.

        trainer = snnjax.Trainer(model, rule, snnjax.cost.default_optimizer())
        measure(trainer, T=6, batch_size=128, input_shape=(32, 32, 3), target="h100")

    Args:
      trainer: a :class:`snnjax.Trainer` (e.g. with :func:`default_optimizer`).
      T: time steps.
      batch_size: samples per batch.
      input_shape: one sample's shape (without T and B).
      dtype: input dtype.
      time_steps: number of timed real steps (median reported); 0 to skip. Refused for a
        compile-only target (a GPU or TPU this machine does not have).
      rates: True to measure firing rates, False to skip the AC count, or a mapping
        ``{synapse path: rate}`` to use.
      rate_batch: samples in the firing-rate forward pass.
      seed: for the random inputs and parameters.
      target: where the memory is compiled for, as for :func:`lower_step` (None: the
        device jax runs on). MACs and memory access do not depend on it.

    Returns:
      A flat dict: ``rule``, ``T``, ``batch_size``, ``input_shape``, ``target``,
      ``device_memory_bytes``, the compiled memory (``temp_bytes``, ``argument_bytes``,
      ``output_bytes``, ``alias_bytes``, ``memory_bytes``), ``device_peak_bytes`` (None on
      CPU or untimed), ``macs``, ``forward_macs``, ``backward_macs``, ``trace_ops``,
      ``forward_acs``, ``forward_nonspike_macs``, ``firing_rate`` (None without rates),
      ``memory_access_bytes`` and its breakdown under ``memory_access``, ``step_time_s``
      (None untimed), and ``per_layer`` MACs.

    Raises:
      ValueError: for a setting the rule or model cannot run (window > T, wrong rank, ...),
        or timing asked of a compile-only target.
    """
    model, rule = trainer.model, trainer.rule
    target = None if target is None else get_target(target)
    if time_steps > 0 and target is not None and target.compile_only:
        raise ValueError(
            f"target {target.name!r} is compile-only: it gives memory, not time; "
            "use time_steps=0, or time on the device itself (target=None)"
        )
    input_shape = tuple(int(d) for d in input_shape)
    _check_inputs(model, rule, trainer.loss, T, input_shape)
    if trainer.mesh is not None:  # one device's figures
        trainer = Trainer(model, rule, trainer.optimizer, trainer.loss)
    xs, ys = abstract_batch(T, batch_size, input_shape, dtype)
    key = jax.random.key(seed)
    compiled = lower_step(trainer, xs, ys, key=key, target=target).compile()
    mem = compiled_memory(compiled)
    target_name, device_memory = device_memory_of(target)

    x_t = jax.ShapeDtypeStruct((batch_size, *input_shape), jnp.dtype(dtype))
    lays = trace_layers(model, rule, x_t)
    sched = schedule(rule, T)
    ts_shape = jax.eval_shape(trainer.init, key, xs)
    rate_map = None
    if isinstance(rates, Mapping):
        rate_map = dict(rates)
    elif rates:
        n = max(1, min(rate_batch, batch_size))
        classes = num_classes_of(model, abstract_batch(T, 1, input_shape, dtype)[0])
        sample, _ = random_batch(seed, T, n, input_shape, classes, dtype)
        params, state = rule.init(model, key, sample[0])
        rate_map = firing_rates(model, rule, params, state, sample)
    macs = count_macs(lays, sched, rate_map)
    access = count_memory_access(
        lays, sched,
        param_bytes=tree_bytes(ts_shape.params),
        opt_state_bytes=tree_bytes(ts_shape.opt_state),
    )

    step_time, peak = None, None
    if time_steps > 0:
        classes = num_classes_of(model, xs)
        real_xs, real_ys = random_batch(seed, T, batch_size, input_shape, classes, dtype)
        ts = trainer.init(key, real_xs)
        trainer.check(real_xs, real_ys)
        step_time, _ = time_step(compiled, ts, real_xs, real_ys, steps=time_steps)
        peak = device_peak_bytes()

    return {
        "rule": rule.name,
        "T": T,
        "batch_size": batch_size,
        "input_shape": list(input_shape),
        "target": target_name,
        "device_memory_bytes": device_memory,
        **mem,
        "device_peak_bytes": peak,
        "macs": macs["macs"],
        "forward_macs": macs["forward_macs"],
        "backward_macs": macs["backward_macs"],
        "trace_ops": macs["trace_ops"],
        "forward_acs": macs.get("forward_acs"),
        "forward_nonspike_macs": macs.get("forward_nonspike_macs"),
        "firing_rate": macs.get("firing_rate"),
        "memory_access_bytes": access["memory_access_bytes"],
        "memory_access": access,
        "step_time_s": step_time,
        "per_layer": [list(p) for p in macs["per_layer"]],
    }
