"""Spike trains stored for the backward pass at the least that is exact: 1 bit per spike.

A synapse's weight gradient reads its input (``∂(x·W)/∂W = xᵀ·g``); every other part of its
backward does not. When that input is a spike train, possibly scaled by a constant (VGG-11
sWS's ×2.74 after the neuron) or masked by dropout (``1/(1-p)`` on the kept spikes), each
of its values is 0 or one number ``c``: :func:`stored_op` then keeps ``x != 0`` packed 8 to a
byte (``"bits"``) or one per byte (``"bytes"``) and the scalar ``c`` (its one nonzero
value), and rebuilds ``where(bit, c, 0)`` in the backward: the same array, so the same
gradient, bit for bit.

An average pool mixes spikes into graded values, but it is linear and cheap: a synapse whose
input is the average pool of a spike train (``"bits_before_pool"``) keeps the spikes
*before* the pool as bits, given to it as :class:`PooledSpikes` by the unit that pooled
them, and redoes the pooling in its backward (:func:`stored_pooled_op`).

Whether a synapse's input is a spike train is static: the model says so
(:class:`~snnjax.layers.Dense` and :class:`~snnjax.layers.Conv`'s ``input_storage``; our
units decide it from the model's structure, :func:`snnjax.models.base.spike_inputs`).
Whether the bits are used is the rule's schedule: ``bits=True`` (``bptt(bits=True)``,
docs/schedules.md); without it the engine runs the model as :func:`float_residuals`
(the same gradient, more memory, no packing).
Under ``bits``, what the model declared binary is checked twice. Once, at the public
boundary: :func:`check_spike_inputs` runs the forward pass on a batch and refuses, naming
the synapse, any value that is neither 0 nor ``c`` (:class:`snnjax.Trainer` does it on its
first batch). And in every step, in the forward pass that packs the spikes (one compare
and one reduction, fused with the packing): a value that is not a spike makes that
synapse's weight gradient NaN, never a truncated number.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from snnjax.pooling import avg_pool

__all__ = [
    "Storage",
    "STORAGES",
    "PooledSpikes",
    "stored_op",
    "stored_pooled_op",
    "encode",
    "decode",
    "float_residuals",
    "check_spike_inputs",
]

Storage = Literal["float", "bits", "bytes", "bits_before_pool"]
STORAGES = ("float", "bits", "bytes", "bits_before_pool")


class PooledSpikes(NamedTuple):
    """The spike train a synapse's input was average-pooled from.

    Attributes:
      spikes: ``[C, B, H, W, F]``, each value 0 or one number.
      window: the pool's side: the input is ``avg_pool(spikes, window)`` (stride
        ``window``, :func:`snnjax.pooling.avg_pool`), reshaped to the input's shape.
    """

    spikes: jax.Array
    window: int


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


def _pool_as(spikes: jax.Array, window: int, shape: tuple[int, ...]) -> jax.Array:
    """``avg_pool(spikes, window)`` over the last three axes ``[..., H, W, F]``, reshaped to
    ``shape`` (the synapse's input: time folded into the batch, or flattened features)."""
    pooled = avg_pool(spikes.reshape(-1, *spikes.shape[-3:]), window)
    if pooled.size != math.prod(shape):
        raise ValueError(f"spikes {spikes.shape} average-pooled by {window} give "
                         f"{pooled.shape}, not the synapse's input {shape}")
    return pooled.reshape(shape)


def stored_pooled_op(op: Callable, x: jax.Array, before: PooledSpikes,
                     kernel: jax.Array) -> jax.Array:
    """``op(x, kernel)`` where ``x`` is the average pool of ``before.spikes``: the spikes are
    kept as bits for the backward pass, which redoes the pooling for the weight gradient
    (the same op on the same values: the same ``x``).

    Args:
      op: ``(x, kernel) -> y``, linear in ``x`` and in ``kernel``.
      x: the input, ``avg_pool(before.spikes, before.window)`` in the shape ``op`` takes.
      before: the spikes ``x`` was pooled from, and the window.
      kernel: the weights.

    Returns:
      ``op(x, kernel)``. The cotangent reaches ``x`` (and through the pool, the spikes);
      ``before.spikes`` itself gets none from here.
    """
    jax.eval_shape(lambda s: _pool_as(s, before.window, tuple(x.shape)), before.spikes)
    return _stored_pooled_op(op, before.window, tuple(before.spikes.shape), tuple(x.shape),
                             x, before.spikes, kernel)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _stored_pooled_op(op, window, spikes_shape, x_shape, x, spikes, kernel):
    return op(x, kernel)


def _window_planes(spikes: jax.Array, window: int) -> list[jax.Array]:
    """The ``window²`` strided slices of ``spikes [..., H, W, F]`` that an average pool adds,
    in its (row-major) order, each ``[N, H // window, W // window, F]``."""
    n, h, w, f = spikes.reshape(-1, *spikes.shape[-3:]).shape
    ho, wo = h // window, w // window
    xw = spikes.reshape(n, h, w, f)[:, :ho * window, :wo * window].reshape(
        n, ho, window, wo, window, f)
    return [xw[:, :, i, :, j] for i in range(window) for j in range(window)]


def _encode_windows(spikes: jax.Array, window: int):
    """The spikes of each pooling window, ``window²`` bits, packed ``8 // window²`` windows
    to a byte (strided, as :func:`_pack`): ``(code, c, ok)`` as :func:`encode`'s. Decoded
    next to the pooling (:func:`_pool_windows`), so that the rebuilt input is formed
    element-wise from the bytes, without the spikes at full resolution."""
    _, c, ok = encode(spikes, "bytes")
    planes = [p != 0 for p in _window_planes(spikes, window)]
    word = functools.reduce(jnp.bitwise_or,
                            [p.astype(jnp.uint8) << b for b, p in enumerate(planes)])
    per_byte = 8 // (window * window)
    flat = word.reshape(-1)
    m = -(-flat.size // per_byte)
    parts = jnp.pad(flat, (0, per_byte * m - flat.size)).reshape(per_byte, m)
    width = window * window
    return functools.reduce(jnp.bitwise_or, [parts[k] << (k * width)
                                             for k in range(per_byte)]), c, ok


def _pool_windows(code, c, window: int, pooled_shape, dtype) -> jax.Array:
    """``avg_pool`` of the spikes :func:`_encode_windows` stored, ``pooled_shape
    [N, Ho, Wo, F]``: the same slices added in the same order, divided by ``window²``."""
    width = window * window
    per_byte = 8 // width
    n = math.prod(pooled_shape)
    mask = (1 << width) - 1
    word = jnp.stack([(code >> (k * width)) & mask for k in range(per_byte)])
    word = word.reshape(-1)[:n].reshape(pooled_shape)
    zero = jnp.zeros((), dtype)
    slices = [jnp.where((word >> b) & 1 == 1, c.astype(dtype), zero) for b in range(width)]
    return sum(slices[1:], slices[0]) / (window * window)


def _stored_pooled_op_fwd(op, window, spikes_shape, x_shape, x, spikes, kernel):
    if window * window <= 8:
        return op(x, kernel), (_encode_windows(spikes, window), kernel)
    return op(x, kernel), (encode(spikes, "bits"), kernel)


def _stored_pooled_op_bwd(op, window, spikes_shape, x_shape, residuals, g):
    (code, c, ok), kernel = residuals
    if window * window <= 8:
        *lead, h, w, f = spikes_shape
        pooled_shape = (math.prod(lead), h // window, w // window, f)
        x = _pool_windows(code, c, window, pooled_shape, c.dtype).reshape(x_shape)
    else:
        x = _pool_as(decode(code, c, spikes_shape, c.dtype, "bits"), window, x_shape)
    _, vjp = jax.vjp(op, x, kernel)
    dx, dkernel = vjp(g)
    dkernel = jnp.where(ok, dkernel, jnp.full_like(dkernel, jnp.nan))
    return dx, None, dkernel


_stored_pooled_op.defvjp(_stored_pooled_op_fwd, _stored_pooled_op_bwd)


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


def _first_non_spike(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(ok, value)``: whether every value of ``x`` is 0 or one number (:func:`encode`'s
    test), and the first value that is not (0 when all are)."""
    _, c, _ = encode(x, "bytes")
    bad = ((x != 0) & (x != c)).reshape(-1)
    if not bad.size:
        return jnp.asarray(True), jnp.zeros((), x.dtype)
    return ~jnp.any(bad), x.reshape(-1)[jnp.argmax(bad)]


def check_spike_inputs(model: nn.Module, variables, xs, *, key=None) -> None:
    """Refuse, naming the synapse, a value that is not a spike where the model stores spikes
    as bits: run the forward pass once on ``xs`` and check the input of every synapse whose
    ``input_storage`` is not ``"float"`` (for ``"bits_before_pool"``, the spikes before the
    pool it was given).

    Run once (a forward pass, as the training step's own), not per step; the step's own
    check, the NaN weight gradient, stays as the backstop for later batches.

    Args:
      model: a flax module ``(xs [C, B, ...], train) -> logits``.
      variables: its variables, ``{"params": ..., **state}`` (extra entries, such as Local's
        auxiliary heads, are ignored).
      xs: a batch ``[T, B, ...]``, run as one chunk in training mode, as the rules run it.
      key: the dropout key (dropout keeps spikes spikes: any key will do); default key 0.

    Raises:
      ValueError: naming the first synapse (in call order) whose input, declared a spike
        train, holds a value that is neither 0 nor its one nonzero value.
    """
    from snnjax.layers import Conv, Dense  # here: snnjax.layers imports this module
    from snnjax.rules.walk import calls

    key = jax.random.key(0) if key is None else key
    mutable = sorted({c for c in variables if c != "params"} | {"neuron"})
    found: list[tuple[str, str]] = []

    def probe(module, call, args, kwargs):
        storage = module.input_storage if isinstance(module, (Dense, Conv)) else "float"
        if storage != "float" and args:
            x = args[0]
            if storage == "bits_before_pool":
                before = kwargs.get("before_pool")
                x = None if before is None else before.spikes
            if x is not None:
                found.append(("/".join(module.path), storage))
                checks.append(_first_non_spike(x))
        return call(*args, **kwargs)

    def run(variables, xs):
        checks.clear()
        found.clear()
        with calls(probe):
            model.apply(variables, xs, train=True, rngs={"dropout": key}, mutable=mutable)
        return list(checks)

    checks: list = []
    results = jax.device_get(jax.jit(run)(dict(variables), xs))
    for (path, storage), (ok, value) in zip(found, results):
        if not ok:
            raise ValueError(
                f"synapse '{path}' stores its input for the backward pass as {storage} (a "
                f"spike train: each value 0 or one number), but it received {float(value):g}: "
                f"build it with input_storage='float', give the neuron before it "
                f"binary_output = False, or train with a rule without bits=True (snnjax.spikes)"
            )
