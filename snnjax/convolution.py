"""2-D convolution (NHWC, HWIO) whose gradients stay fast inside ``lax.scan`` on CPU.

``jax.vjp`` of ``lax.conv_general_dilated`` expresses both gradients as convolutions over
transposed operands (the input gradient reads the kernel as ``01oi``, the kernel gradient
swaps batch and feature axes). XLA folds those transposes into the convolution's dimension
labels, and XLA:CPU runs convolutions with such labels through a slow generic loop once they
sit inside a while loop, as every per-step rule's ``lax.scan`` body does: measured here
(2 cores) 50-100× slower than the same convolutions on plainly laid-out operands.
:func:`conv2d`'s custom VJP writes both gradients as ordinary NHWC/HWIO convolutions on
operands transposed behind ``lax.optimization_barrier`` (so the transposes are materialised,
not folded). Values are identical; gradients equal ``jax.vjp``'s to rounding.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

__all__ = ["conv2d", "pads"]

_DN = ("NHWC", "HWIO", "NHWC")


def pads(
    in_hw: Sequence[int], kernel_hw: Sequence[int], strides: Sequence[int], padding
) -> tuple[tuple[int, int], ...]:
    """Explicit ``((lo, hi), (lo, hi))`` padding for ``"SAME"``, ``"VALID"`` or explicit pads."""
    if isinstance(padding, str):
        return tuple(jax.lax.padtype_to_pads(tuple(in_hw), tuple(kernel_hw), tuple(strides),
                                             padding))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _plain(x):
    # Materialise a transposed operand: stop XLA from folding the transpose into the conv.
    return jax.lax.optimization_barrier(x)


def conv2d(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1),
           padding="SAME") -> jax.Array:
    """``lax.conv_general_dilated(x, kernel, strides, padding)`` with NHWC/HWIO layouts.

    Args:
      x: ``[B, H, W, C]``.
      kernel: ``[kh, kw, C, F]``.
      strides: ``(sh, sw)``.
      padding: ``"SAME"``, ``"VALID"`` or ``((lo, hi), (lo, hi))``.

    Returns:
      ``[B, H', W', F]``.
    """
    if not isinstance(padding, str):
        padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _conv2d(x, kernel, tuple(int(s) for s in strides), padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv2d(x, kernel, strides, padding):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DN)


def _fwd(x, kernel, strides, padding):
    return _conv2d(x, kernel, strides, padding), (x, kernel)


def _bwd(strides, padding, residuals, g):
    x, kernel = residuals
    kh, kw = kernel.shape[:2]
    (pl_h, ph_h), (pl_w, ph_w) = pads(x.shape[1:3], (kh, kw), strides, padding)
    sh, sw = strides

    # Input gradient: g (dilated by the strides) convolved with the flipped kernel whose
    # in/out axes are swapped, [kh, kw, F, C]. The high pads take back the rows a stride
    # skipped at the end.
    r_h = (x.shape[1] + pl_h + ph_h - kh) % sh
    r_w = (x.shape[2] + pl_w + ph_w - kw) % sw
    # Tied to g, the transposed kernel is made here, in the backward of this step, rather
    # than hoisted out of a time loop by XLA and kept (weight-sized) through all of it.
    kernel, g = jax.lax.optimization_barrier((kernel, g))
    k_t = _plain(jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
    dx_pads = ((kh - 1 - pl_h, kh - 1 - ph_h + r_h), (kw - 1 - pl_w, kw - 1 - ph_w + r_w))
    dx = jax.lax.conv_general_dilated(
        g, k_t, (1, 1), dx_pads, lhs_dilation=(sh, sw), dimension_numbers=_DN
    )

    # Kernel gradient: a convolution over the spatial axes with the batch as the contracted
    # "feature" axis: x as [C, H, W, B] against g as a [H', W', B, F] kernel (dilated by the
    # strides), giving [C, kh', kw', F]; rows past the kernel (stride remainders) are dropped.
    x_t = _plain(x.transpose(3, 1, 2, 0))
    g_t = _plain(g.transpose(1, 2, 0, 3))
    dk = jax.lax.conv_general_dilated(
        x_t, g_t, (1, 1), ((pl_h, ph_h), (pl_w, ph_w)), rhs_dilation=(sh, sw),
        dimension_numbers=_DN,
    )
    dk = dk[:, :kh, :kw, :].transpose(1, 2, 0, 3)
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


_conv2d.defvjp(_fwd, _bwd)
