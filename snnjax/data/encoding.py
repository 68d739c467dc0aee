"""Encodings of static images over T time steps (time-major)."""

from __future__ import annotations

import numpy as np

__all__ = ["direct", "poisson", "ENCODINGS"]


def direct(x: np.ndarray, T: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """The image at every step: ``[B, ...] -> [T, B, ...]`` (a broadcast view, no copy)."""
    return np.broadcast_to(x, (T, *x.shape))


def poisson(x: np.ndarray, T: int, rng: np.random.Generator) -> np.ndarray:
    """Bernoulli spikes with probability ``clip(x, 0, 1)`` at each step: ``[T, B, ...]``."""
    p = np.clip(x, 0.0, 1.0)
    return (rng.random((T, *x.shape), dtype=np.float32) < p).astype(np.float32)


ENCODINGS = {"direct": direct, "poisson": poisson}
