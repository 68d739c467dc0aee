"""Batch normalisation of each time step by its own batch statistics, with a backward that
keeps one input-sized residual.

Differentiated by ``jax.vjp``, ``(x - mean) * rsqrt(var + eps) * scale + bias`` keeps the
centred input, the normalised input and several products of them for its backward; XLA
materialises them, each the size of the layer's activation. In a spiking conv net the first
layers' activations are the largest arrays of a step, so BatchNorm's residuals set the peak
of a Local block (Guo et al.) and of every per-step rule. :func:`batch_norm` saves ``x`` and
the per-step, per-feature statistics; its backward (the textbook formula) never stores
``x̂``: its reductions read ``g`` and ``x``, its elementwise pass recomputes ``x̂``. Values
are identical; gradients equal autodiff's to rounding (tests/test_normalization.py,
float64).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["batch_norm", "batch_stats"]


def batch_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-step mean and (biased) variance of ``x [C, B, ..., F]`` over the batch and
    spatial axes: ``([C, F], [C, F])``; the variance as ``E[x²] - E[x]²``, clipped at 0."""
    mean, raw = _moments(x)
    return mean, jnp.maximum(raw, 0.0)


def batch_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """``(x - mean) / sqrt(var + eps) * scale + bias`` with the statistics of each step.

    Args:
      x: ``[C, B, ..., F]`` (statistics over ``B`` and the spatial axes, per step).
      scale: ``[F]``, in ``x``'s dtype.
      bias: ``[F]``, in ``x``'s dtype.
      eps: added to the variance.

    Returns:
      ``[C, B, ..., F]``. The backward keeps ``x`` and ``[C, F]`` statistics only.
    """
    if x.ndim < 3:
        raise ValueError(f"batch_norm expects a chunk [C, B, ..., F], got shape {x.shape}")
    return _batch_norm(x, scale, bias, eps)


def _axes(x):
    """The batch and spatial axes of ``x [C, B, ..., F]``: one set of statistics per step."""
    return tuple(range(1, x.ndim - 1))


def _moments(x):
    mean = x.mean(axis=_axes(x))
    return mean, (x * x).mean(axis=_axes(x)) - mean * mean


def _per_step(a, x):
    """``[C, F]`` broadcast against ``x [C, B, ..., F]``."""
    return a.reshape((a.shape[0],) + (1,) * (x.ndim - 2) + (a.shape[1],))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _batch_norm(x, scale, bias, eps):
    return _forward(x, scale, bias, eps)[0]


def _forward(x, scale, bias, eps):
    mean, raw = _moments(x)
    rstd = jax.lax.rsqrt(jnp.maximum(raw, 0.0) + eps)
    y = (x - _per_step(mean, x)) * _per_step(rstd, x) * scale + bias
    return y, (x, mean, raw, rstd, scale)


def _backward(eps, residuals, g):
    x, mean, raw, rstd, scale = residuals
    axes = _axes(x)
    n = x.size // (x.shape[0] * x.shape[-1])
    # Σ g·x̂ as (Σ g·x - mean·Σ g)·rstd: XLA makes Σ g·x a dot of g and x, both stored
    # anyway (x is the residual, g is formed once); a Σ g·x̂ would become a dot that stores
    # x̂ as well. (The same cancellation as the forward's E[x²] - E[x]²; float32 error
    # unchanged.) x̂ is recomputed inside the elementwise pass.
    sum_g = g.sum(axis=axes)
    sum_gx = ((g * x).sum(axis=axes) - mean * sum_g) * rstd
    xhat = (x - _per_step(mean, x)) * _per_step(rstd, x)
    # d var / d raw of the clip max(raw, 0): 1 above, 0 below, 1/2 at the tie (as autodiff).
    slope = jnp.where(raw > 0, 1.0, jnp.where(raw == 0, 0.5, 0.0)).astype(x.dtype)
    gx = _per_step(rstd * scale, x) * (
        g - _per_step(sum_g / n, x) - xhat * _per_step(slope * sum_gx / n, x))
    return gx, sum_gx.sum(axis=0), sum_g.sum(axis=0)


_batch_norm.defvjp(_forward, _backward)
