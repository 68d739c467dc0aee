"""Compiled memory of a training step: XLA's memory analysis, for this device or a target.

The step is lowered from shapes alone (``jax.ShapeDtypeStruct``s: nothing big is allocated)
and compiled, never run: for the device jax runs on, or compile-only for a GPU or TPU this
machine does not have (:mod:`snnjax.targets`). The analysis is deterministic.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from snnjax.targets import Target, get_target
from snnjax.train import Trainer

__all__ = [
    "compiled_memory",
    "tree_bytes",
    "abstract_batch",
    "lower_step",
    "step_memory",
    "device_memory_of",
    "device_peak_bytes",
]


def compiled_memory(lowered_or_compiled: Any) -> dict[str, int]:
    """Memory of a compiled XLA computation, from its (deterministic) memory analysis.

    Args:
      lowered_or_compiled: ``jax.jit(f).lower(...)`` or its ``.compile()``.

    Returns:
      ``{"temp_bytes", "argument_bytes", "output_bytes", "alias_bytes", "memory_bytes"}``
      where ``memory_bytes = temp + argument + output`` (``alias_bytes``, the donated
      buffers that outputs reuse, is reported separately and not subtracted).
    """
    compiled = lowered_or_compiled
    if hasattr(compiled, "compile"):
        compiled = compiled.compile()
    m = compiled.memory_analysis()
    out = {
        "temp_bytes": int(m.temp_size_in_bytes),
        "argument_bytes": int(m.argument_size_in_bytes),
        "output_bytes": int(m.output_size_in_bytes),
        "alias_bytes": int(m.alias_size_in_bytes),
    }
    out["memory_bytes"] = out["temp_bytes"] + out["argument_bytes"] + out["output_bytes"]
    return out


def abstract_batch(T: int, batch_size: int, input_shape: Sequence[int], dtype=jnp.float32):
    """``(xs, ys)`` as ``jax.ShapeDtypeStruct`` s: ``[T, B, *input_shape]`` and int32 ``[B]``."""
    if T < 1 or batch_size < 1:
        raise ValueError(f"T and batch size must be >= 1, got T={T}, batch size={batch_size}")
    xs = jax.ShapeDtypeStruct((T, batch_size, *tuple(input_shape)), jnp.dtype(dtype))
    ys = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    return xs, ys


def _on_device(tree, device):
    """Every leaf of ``tree`` as a ``jax.ShapeDtypeStruct`` placed on ``device``."""
    sharding = jax.sharding.SingleDeviceSharding(device)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def lower_step(trainer: Trainer, xs, ys, *, key=None, target: str | Target | None = None):
    """``trainer``'s jitted step lowered on a batch shaped like ``(xs, ys)``, from shapes only.

    The train state comes from ``jax.eval_shape(trainer.init, …)``; nothing is allocated.

    Args:
      trainer: the trainer whose step is lowered.
      xs: inputs ``[T, B, ...]`` (an array or ``jax.ShapeDtypeStruct``; only the shape and
        dtype are used).
      ys: labels ``[B]`` (likewise).
      key: the PRNG key the train state is initialised from (default ``key(0)``).
      target: None for the device jax runs on (the trainer's own jitted step, its mesh
        included); else a :class:`snnjax.targets.Target` or its name (``"h100"``,
        ``"tpu-v5e"``, ...): the same step for one device of that kind, train state and
        batch placed on it, compile-only for a GPU or TPU.
    """
    key = jax.random.key(0) if key is None else key
    xs = jax.ShapeDtypeStruct(tuple(xs.shape), xs.dtype)
    ys = jax.ShapeDtypeStruct(tuple(ys.shape), ys.dtype)
    ts = jax.eval_shape(trainer.init, key, xs)
    if target is None:
        return trainer.lower(ts, xs, ys)
    device = get_target(target).device()
    step = jax.jit(trainer.train_step, donate_argnums=0)  # one device: no mesh
    return step.lower(*_on_device((ts, xs, ys), device))


def device_memory_of(target: Target | None) -> tuple[str, int | None]:
    """The target's name and one device's memory (for None: jax's default device's limit)."""
    if target is not None:
        return target.name, target.memory_bytes
    device = jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    limit = (stats or {}).get("bytes_limit")
    return device.platform, None if limit is None else int(limit)


def step_memory(
    trainer: Trainer, xs, ys, *, key=None, target: str | Target | None = None
) -> dict[str, Any]:
    """Compiled memory of ``trainer``'s jitted step on a batch shaped like ``(xs, ys)``.

    Only shapes are used (:func:`lower_step`); the step is compiled, never run.

        step_memory(trainer, *abstract_batch(6, 128, (32, 32, 3)), target="tpu-v5e")

    Args:
      trainer: the trainer whose step is measured.
      xs: inputs ``[T, B, ...]`` (shape and dtype only).
      ys: labels ``[B]`` (shape and dtype only).
      key: the PRNG key the train state is initialised from.
      target: as for :func:`lower_step` (None: the device jax runs on).

    Returns:
      :func:`compiled_memory`'s dict, plus ``target`` (its name; for None the default
      platform, e.g. ``"cpu"``) and ``device_memory_bytes`` (one device's memory from the
      target's published specs; for None the device's own limit where it reports one).
    """
    target = None if target is None else get_target(target)
    mem = compiled_memory(lower_step(trainer, xs, ys, key=key, target=target))
    name, device_memory = device_memory_of(target)
    return {**mem, "target": name, "device_memory_bytes": device_memory}


def device_peak_bytes(device=None) -> int | None:
    """The device's peak bytes in use (``memory_stats()["peak_bytes_in_use"]``), or None.

    Available on GPUs and TPUs; the CPU backend keeps no such statistics.
    """
    device = jax.devices()[0] if device is None else device
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return int(stats["peak_bytes_in_use"])


def tree_bytes(tree) -> int:
    """Bytes of every array (or ``ShapeDtypeStruct``) leaf of ``tree``."""
    return int(sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))
