"""Timing real training steps on the device jax runs on: the median of synchronised calls."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["time_step", "random_batch"]


def random_batch(seed: int, T: int, batch_size: int, input_shape, num_classes: int, dtype):
    """A batch of uniform random inputs ``xs [T, B, *input_shape]`` and labels ``ys [B]``
    (int32 in ``[0, num_classes)``), reproducible from ``seed``."""
    # numpy, not jax.random: eager jax ops would compile for every new shape.
    rng = np.random.default_rng(seed)
    xs = rng.uniform(size=(T, batch_size, *input_shape)).astype(jnp.dtype(dtype))
    ys = rng.integers(0, num_classes, size=(batch_size,)).astype(np.int32)
    return jnp.asarray(xs), jnp.asarray(ys)


def time_step(step: Callable, ts, xs, ys, *, steps: int = 5) -> tuple[float, Any]:
    """Median wall time of ``steps`` calls of ``step(ts, xs, ys) -> (ts, metrics)``.

    One untimed call first (compiling, warming caches); every timed call is synchronised
    (``block_until_ready``) before the clock stops. ``ts`` may be donated by ``step``.

    Returns:
      ``(median seconds, the final train state)``.
    """
    ts, metrics = step(ts, xs, ys)
    jax.block_until_ready((ts, metrics))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        ts, metrics = step(ts, xs, ys)
        jax.block_until_ready((ts, metrics))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), ts
