"""Non-overlapping pooling: max pooling whose backward keeps one byte per output, and
average pooling (:func:`avg_pool`) as a sum of strided slices.

``lax.reduce_window``'s gradient on XLA:CPU materialises several int32 and float buffers the
size of the *input* for its select-and-scatter; a spiking net's first pooled map is its
largest activation, so that backward alone set the peak of a local block's memory. Here the
forward records which window position held the maximum (the first one in row-major order,
as ``reduce_window``'s ``>=`` selection and PyTorch's ``MaxPool2d`` pick among ties, which
binary spike maps have everywhere) as a ``uint8`` per output, and the backward routes each
output's cotangent to that position: the same gradient, bit for bit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["avg_pool", "max_pool"]


def max_pool(x: jax.Array, window: int) -> jax.Array:
    """``window × window`` max pooling, stride ``window``, VALID padding.

    Args:
      x: ``[N, H, W, F]``.
      window: the window's side (at most 16).

    Returns:
      ``[N, H // window, W // window, F]``; gradient to the first maximum of each window.
    """
    if not 1 <= window <= 16:
        raise ValueError(f"max_pool window must be in [1, 16], got {window}")
    return _max_pool(x, window)


def avg_pool(x: jax.Array, window: int) -> jax.Array:
    """``window × window`` average pooling, stride ``window``, VALID padding, as
    ``flax.linen.avg_pool`` computes it: the window's ``window²`` strided slices added in
    row-major order, divided by ``window²``.

    The forward is written as slices rather than ``reduce_window`` (flax) or a sum over
    reshaped axes: with either, XLA:CPU materialised output-sized arrays (the divisor, or
    the gradient several times over) that a rule's time loop then kept (README, design
    notes). The backward is ``reduce_window``'s.

    Args:
      x: ``[N, H, W, F]``.
      window: the window's side.

    Returns:
      ``[N, H // window, W // window, F]``.
    """
    if window < 1:
        raise ValueError(f"avg_pool window must be >= 1, got {window}")
    return _avg_pool(x, window)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _avg_pool(x, w):
    xw = _windows(x, w)
    slices = [xw[:, :, i, :, j] for i in range(w) for j in range(w)]
    return sum(slices[1:], slices[0]) / (w * w)


def _avg_pool_fwd(x, w):
    return _avg_pool(x, w), x.shape


def _avg_pool_bwd(w, shape, g):
    # The transpose of reduce_window's window sum, applied to g / w² (a scaling of the
    # pooled size): flax's gradient, without the slices' transposes (slower here).
    window = (1, w, w, 1)

    def window_sum(a):
        return jax.lax.reduce_window(a, 0.0, jax.lax.add, window, window, "VALID")

    return jax.linear_transpose(window_sum, jax.ShapeDtypeStruct(shape, g.dtype))(g / (w * w))


_avg_pool.defvjp(_avg_pool_fwd, _avg_pool_bwd)


def _windows(x, w):
    """``x [N, H, W, F]`` cropped to whole windows, as ``[N, Ho, w, Wo, w, F]``."""
    n, h, wd, f = x.shape
    ho, wo = h // w, wd // w
    return x[:, :ho * w, :wo * w].reshape(n, ho, w, wo, w, f)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool(x, w):
    return _windows(x, w).max(axis=(2, 4))


def _max_pool_fwd(x, w):
    xw = _windows(x, w)
    return xw.max(axis=(2, 4)), (_first_argmax(xw), x.shape)


def _first_argmax(xw):
    """The first position (row-major in the window) of each window's maximum, ``uint8``.

    One variadic reduction over (value, position), so that XLA materialises the index: as
    compares against the maximum it would be fused into the backward, which would then keep
    the input-sized windows (and the pooled map) alive from the forward pass.
    """
    n, ho, w, wo, _, f = xw.shape
    values = xw.transpose(0, 1, 3, 5, 2, 4).reshape(n, ho, wo, f, w * w)
    positions = jax.lax.broadcasted_iota(jnp.uint8, values.shape, 4)

    def first_max(a, b):
        take_a = (a[0] > b[0]) | ((a[0] == b[0]) & (a[1] < b[1]))
        return jnp.where(take_a, a[0], b[0]), jnp.where(take_a, a[1], b[1])

    # Only a differentiated (floating) input reaches this forward: -inf starts the max.
    init = (jnp.array(-jnp.inf, xw.dtype), jnp.array(255, jnp.uint8))
    return jax.lax.reduce((values, positions), init, first_max, (4,))[1]


def _max_pool_bwd(w, residuals, g):
    index, shape = residuals
    n, h, wd, f = shape
    ho, wo = g.shape[1], g.shape[2]
    zero = jnp.zeros((), g.dtype)
    rows = [jnp.stack([jnp.where(index == dy * w + dx, g, zero) for dx in range(w)], axis=3)
            for dy in range(w)]  # each [N, Ho, Wo, w, F]
    dx = jnp.stack(rows, axis=2).reshape(n, ho * w, wo * w, f)
    if (ho * w, wo * w) != (h, wd):
        dx = jnp.pad(dx, ((0, 0), (0, h - ho * w), (0, wd - wo * w), (0, 0)))
    return (dx,)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
