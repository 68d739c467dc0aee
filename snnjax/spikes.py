"""Spike trains stored for the backward pass at the least that is exact: 1 bit per spike.

A synapse's weight gradient reads its input (``∂(x·W)/∂W = xᵀ·g``); every other part of its
backward does not. When that input is a spike train, possibly scaled by a constant (VGG-11
sWS's ×2.74 after the neuron) or masked by dropout (``1/(1-p)`` on the kept spikes), each
of its values is 0 or one number ``c``: :func:`stored_op` then keeps ``x != 0`` packed 8 to a
byte (``"bits"``) or one per byte (``"bytes"``) and the scalar ``c`` (its one nonzero
value), and rebuilds ``where(bit, c, 0)`` in the backward: the same array, so the same
gradient, bit for bit.

Whether a synapse's input is a spike train is static: the model says so
(:class:`~snnjax.layers.Dense` and :class:`~snnjax.layers.Conv`'s ``input_storage``; our
units set ``"bits"`` on every synapse fed by a neuron through scaling, dropout or max
pooling, and ``"float"`` on the raw input and after average pooling, whose values are
graded). Values the model declared binary are still checked, in the forward pass that
packs them (one compare and one reduction, fused with the packing): if any value is
neither 0 nor ``c`` (a user's graded "spikes", a surrogate whose forward is not a step),
the weight gradient of that synapse is NaN, never a truncated number.
:func:`float_residuals` turns the bits off for a whole model (the same gradient, more
memory).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["Storage", "STORAGES", "stored_op", "encode", "decode", "float_residuals"]

Storage = Literal["float", "bits", "bytes"]
STORAGES = ("float", "bits", "bytes")


def check_storage(storage: str, layer: str) -> None:
    """Raise ValueError naming ``layer`` unless ``storage`` is one of :data:`STORAGES`."""
    if storage not in STORAGES:
        raise ValueError(
            f"{layer}: input_storage must be one of {', '.join(STORAGES)}, got {storage!r}")


def encode(x: jax.Array, storage: Storage):
    """``x``'s spikes as ``(code, c, ok)``: the nonzero pattern packed (``"bits"``: along the
    flattened array, ``ceil(x.size / 8)`` bytes) or as ``bool`` (``"bytes"``), the value
    ``c`` of the spikes (``max(x)``, or ``min(x)`` when that is the nonzero one), and whether
    every value of ``x`` is 0 or ``c``."""
    if x.size:
        hi, lo = jnp.max(x), jnp.min(x)
        c = jnp.where(hi != 0, hi, lo)  # the spike's value, also when it is negative
    else:
        c = jnp.zeros((), x.dtype)
    spike = x != 0
    ok = jnp.all(~spike | (x == c))
    if storage == "bits":
        return _pack(spike.reshape(-1)), c, ok
    return spike, c, ok


def _pack(flat: jax.Array) -> jax.Array:
    """Bits ``[n]`` as ``uint8 [ceil(n / 8)]``: byte ``i`` holds bits ``i, i + m, ...,
    i + 7m`` (``m = ceil(n / 8)``). Eight strided slices combined element-wise: one fused
    loop over the input, where packing neighbours (``jnp.packbits``) is a reduction over an
    axis of 8 that XLA may materialise as bytes first."""
    m = -(-flat.size // 8)
    planes = jnp.pad(flat, (0, 8 * m - flat.size)).reshape(8, m).astype(jnp.uint8)
    return functools.reduce(jnp.bitwise_or, [planes[j] << j for j in range(8)])


def _unpack(code: jax.Array, n: int) -> jax.Array:
    """The inverse of :func:`_pack`: ``bool [n]``."""
    planes = jnp.stack([(code >> j) & 1 for j in range(8)])
    return planes.reshape(-1)[:n].astype(bool)


def decode(code, c, shape, dtype, storage: Storage) -> jax.Array:
    """The array :func:`encode` stored: ``c`` where a spike was, 0 elsewhere."""
    if storage == "bits":
        n = 1
        for d in shape:
            n *= d
        spike = _unpack(code, n).reshape(shape)
    else:
        spike = code
    return jnp.where(spike, c, jnp.zeros((), dtype)).astype(dtype)


def stored_op(op: Callable, storage: Storage, x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``op(x, kernel)`` for an op linear in each argument (dense, conv), keeping ``x`` for
    the backward pass as ``storage`` says (:func:`encode`; ``"float"``: as is).

    Args:
      op: ``(x, kernel) -> y``, linear in ``x`` and in ``kernel``.
      storage: ``"float"``, ``"bits"`` or ``"bytes"``.
      x: the input, any shape ``op`` takes.
      kernel: the weights.

    Returns:
      ``op(x, kernel)``; the input's cotangent is formed at the rebuilt ``x`` (``op`` is
      linear in ``x``: it does not depend on the point).
    """
    return _stored_op(op, storage, tuple(x.shape), x, kernel)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _stored_op(op, storage, shape, x, kernel):
    return op(x, kernel)


def _stored_op_fwd(op, storage, shape, x, kernel):
    y = op(x, kernel)
    if storage == "float":
        return y, (x, None, None, kernel)
    code, c, ok = encode(x, storage)
    return y, (code, c, ok, kernel)


def _stored_op_bwd(op, storage, shape, residuals, g):
    code, c, ok, kernel = residuals
    x = code if storage == "float" else decode(code, c, shape, c.dtype, storage)
    _, vjp = jax.vjp(op, x, kernel)
    dx, dkernel = vjp(g)
    if storage != "float":
        # Values that were not spikes could not be rebuilt: no gradient rather than a wrong one.
        dkernel = jnp.where(ok, dkernel, jnp.full_like(dkernel, jnp.nan))
    return dx, dkernel


_stored_op.defvjp(_stored_op_fwd, _stored_op_bwd)


def float_residuals(model: nn.Module) -> nn.Module:
    """``model`` with every synapse's ``input_storage`` set to ``"float"``: the same
    function and gradient, with spikes kept as floats for the backward (a reference for
    tests and measurements). Walks the module's fields (submodules, tuples of them)."""

    def walk(value):
        if isinstance(value, nn.Module):
            changes = {}
            for f in dataclasses.fields(value):
                if f.name in ("parent", "name") or not f.init:
                    continue
                old = getattr(value, f.name)
                new = walk(old)
                if new is not old:
                    changes[f.name] = new
            if any(f.name == "input_storage" for f in dataclasses.fields(value)):
                if value.input_storage != "float":
                    changes["input_storage"] = "float"
            return value.clone(**changes) if changes else value
        if isinstance(value, (tuple, list)):
            new = type(value)(walk(v) for v in value)
            return new if any(a is not b for a, b in zip(new, value)) else value
        return value

    return walk(model)
