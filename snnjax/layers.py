"""Stateless layers over a chunk of time: synapses (dense, conv, scaled-WS), per-step
BatchNorm, dropout with a mask fixed over time, pooling and the readout.

Every layer maps ``[C, B, ...]`` to ``[C, B, ...]`` (time-major chunks, docs/models.md),
folding time into the batch: one op for all ``C·B`` samples. Neurons
(:mod:`snnjax.neurons`) scan their own recursion; nothing here depends on the step.

OTTT's presynaptic trace is a collection: when a rule applies the model with ``"trace"``
mutable, every synapse built with ``traced=True`` keeps ``â[t] = λ·â[t-1] + x[t]`` of its own
input and uses it for its weight gradient (:func:`traced_op`). Keeping the trace of the
synapse's input (after dropout, average pooling or scaling) equals passing the neuron's trace
through those ops, because they are linear and fixed in time; max pooling is not, so
:class:`MaxPool` refuses to run while traces are on.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from snnjax.convolution import conv2d
from snnjax.normalization import batch_norm, batch_stats
from snnjax.pooling import avg_pool, max_pool
from snnjax.spikes import PooledSpikes, check_storage, stored_op, stored_pooled_op

__all__ = [
    "Dense",
    "Conv",
    "AvgPool",
    "MaxPool",
    "BatchNorm",
    "Dropout",
    "Readout",
    "standardize_weight",
    "standardize_params",
    "traced_op",
    "fold",
    "unfold",
    "presynaptic_trace",
    "trace_replace",
    "TRACE_ERROR",
]

Initializer = Callable[..., jax.Array]
TRACE_ERROR = (
    "max pooling cannot sit between a neuron and a traced synapse under OTTT: the trace of a "
    "max-pooled spike train is not the max-pooled trace (docs/rules.md). Use average pooling "
    "(pool='avg') or a rule without traces."
)


# ---------------------------------------------------------------------------- OTTT's trace


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def traced_op(op: Callable, x: jax.Array, trace: jax.Array, kernel: jax.Array) -> jax.Array:
    """``op(x, kernel)`` forward; backward: ∂/∂kernel at the trace, ∂/∂x through ``op``.

    For a linear ``op`` (dense, conv) this is OTTT's synapse: the weight gradient is
    ``δ[t]·â[t]ᵀ`` while ``Wᵀδ`` reaches the spike path. Equal to :func:`trace_replace` but
    with one forward op instead of two.
    """
    return op(x, kernel)


def _traced_op_fwd(op, x, trace, kernel):
    return op(x, kernel), (trace, kernel)


def _traced_op_bwd(op, residuals, g):
    trace, kernel = residuals
    _, vjp = jax.vjp(op, trace, kernel)
    dx, dkernel = vjp(g)  # op is linear in x: its x-cotangent does not depend on the point
    return dx, jnp.zeros_like(trace), dkernel


traced_op.defvjp(_traced_op_fwd, _traced_op_bwd)


def _replace(x, x_r):
    """Value of ``x_r``, gradient of ``x``."""
    return x_r + (x - jax.lax.stop_gradient(x))


def trace_replace(op: Callable, x: jax.Array, trace: jax.Array, kernel: jax.Array) -> jax.Array:
    """docs/rules.md's formulation: ``replace(op(replace(x, sg(â)), W), sg(op(x, W)))``."""
    sg = jax.lax.stop_gradient
    return _replace(op(_replace(x, sg(trace)), kernel), sg(op(x, kernel)))


def fold(x: jax.Array) -> jax.Array:
    """``[C, B, ...] -> [C·B, ...]``: time folded into the batch."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def unfold(y: jax.Array, chunk: int) -> jax.Array:
    """``[C·B, ...] -> [C, B, ...]``, the inverse of :func:`fold`."""
    return y.reshape(chunk, y.shape[0] // chunk, *y.shape[1:])


def presynaptic_trace(decay: float, trace: jax.Array, xs: jax.Array) -> jax.Array:
    """OTTT's traces ``â[t] = λ·â[t-1] + x[t]`` over a chunk ``xs [C, B, ...]`` from ``trace``
    (``â`` before the chunk), as constants: ``[C, B, ...]``."""
    def body(a, x_t):
        a = decay * a + x_t
        return a, a

    _, traces = jax.lax.scan(body, trace, jax.lax.stop_gradient(xs))
    return jax.lax.stop_gradient(traces)


def _synapse(module: nn.Module, op: Callable, xs: jax.Array, kernel: jax.Array,
             fold_time: bool, before_pool: PooledSpikes | None = None) -> jax.Array:
    """``op`` on every step of the chunk ``xs [C, B, ...]`` at once, traced under OTTT, its
    input otherwise stored as ``module.input_storage`` says (:mod:`snnjax.spikes`).

    ``fold_time``: ``op`` needs time folded into the batch (conv); a dense op takes any
    leading axes as they are. ``before_pool``: the spikes ``xs`` was average-pooled from,
    which ``"bits_before_pool"`` stores (without them, ``xs`` is stored as it is).
    """
    traced = (module.traced and module.is_mutable_collection("trace")
              and not module.is_initializing())
    storage = module.input_storage
    check_storage(storage, f"synapse '{'/'.join(module.path)}'")
    pooled = not traced and storage == "bits_before_pool" and before_pool is not None
    if pooled:
        op = functools.partial(_pooled_op, op, before_pool)
    elif not traced and storage in ("bits", "bytes"):
        op = functools.partial(stored_op, op, storage)
    if traced:
        if xs.ndim < 3:
            raise ValueError(f"a traced synapse expects a chunk [C, B, ...], got {xs.shape}")
        var = module.variable("trace", "a", jnp.zeros_like, xs[0])
        traces = presynaptic_trace(module.trace_decay, var.value, xs)
        var.value = traces[-1]
    if not fold_time:
        return traced_op(op, xs, traces, kernel) if traced else op(xs, kernel)
    chunk = xs.shape[0]
    if traced:
        return unfold(traced_op(op, fold(xs), fold(traces), kernel), chunk)
    return unfold(op(fold(xs), kernel), chunk)


def _pooled_op(op, before_pool, x, kernel):
    return stored_pooled_op(op, x, before_pool, kernel)


# ---------------------------------------------------------------------------- synapses


def standardize_weight(kernel: jax.Array, gain: jax.Array, eps: float = 1e-4) -> jax.Array:
    """Scaled weight standardisation (docs/models.md), per output channel (the last axis).

    ``Ŵ = g·(W - mean) / sqrt(var·fan_in + eps)`` with the unbiased variance over the other
    axes and ``fan_in`` their size, so that ``Var(Ŵ) ≈ g²/fan_in``.
    """
    axes = tuple(range(kernel.ndim - 1))
    fan_in = math.prod(kernel.shape[:-1])
    mean = kernel.mean(axis=axes, keepdims=True)
    var = kernel.var(axis=axes, keepdims=True, ddof=1)
    return gain * (kernel - mean) * jax.lax.rsqrt(var * fan_in + eps)


def standardize_params(params: Mapping) -> dict:
    """``params`` with each scaled-WS synapse's ``kernel`` and ``gain`` replaced by its
    standardised kernel ``kernel_ws`` (:func:`standardize_weight`), which the synapse then
    uses as given.

    Rules call this once per batch, outside the time loop: the standardisation depends on the
    weights only, so its forward and backward need not run (and keep residuals) at every
    step. Gradients w.r.t. ``kernel_ws`` map back to ``kernel`` and ``gain`` through its VJP.
    """

    def walk(node):
        if not isinstance(node, Mapping):
            return node
        if "kernel" in node and "gain" in node:
            rest = {k: v for k, v in node.items() if k not in ("kernel", "gain")}
            return {**rest, "kernel_ws": standardize_weight(node["kernel"], node["gain"])}
        return {k: walk(v) for k, v in node.items()}

    return walk(params)


def _kernel(module: nn.Module, shape: tuple[int, ...]) -> jax.Array:
    """The synapse's kernel: ``kernel`` (scaled-WS with ``gain`` if asked), or ``kernel_ws``
    when the parameters were standardised beforehand (:func:`standardize_params`)."""
    if module.weight_standardization and module.has_variable("params", "kernel_ws"):
        kernel = module.get_variable("params", "kernel_ws")
        if kernel.shape != shape:
            raise ValueError(f"kernel_ws has shape {kernel.shape}, expected {shape}")
        return kernel
    kernel = module.param("kernel", module.kernel_init, shape)
    if module.weight_standardization:
        gain = module.param("gain", nn.initializers.ones, (shape[-1],))
        kernel = standardize_weight(kernel, gain)
    return kernel


def _dense_op(x, kernel):
    return x @ kernel


class Dense(nn.Module):
    """Dense synapse ``[..., D] -> [..., features]`` (a chunk ``[C, B, D]`` in a model),
    optionally scaled-WS and traced.

    ``input_storage``: how the input is kept for the weight gradient, ``"float"`` or, for
    an input that is a spike train (each value 0 or one number), ``"bits"`` / ``"bytes"``
    (:mod:`snnjax.spikes`; a value that is not a spike makes the weight gradient NaN), or
    for an input that is the average pool of a spike train, ``"bits_before_pool"``: the
    spikes given as ``before_pool`` are kept as bits (without them, the input as it is).
    The rules' engine honours it under a rule with ``bits=True`` and otherwise runs the
    model with ``"float"`` everywhere (docs/schedules.md, spikes as bits).
    """

    features: int
    use_bias: bool = True
    weight_standardization: bool = False
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros
    traced: bool = True
    trace_decay: float = 0.5
    input_storage: str = "float"

    @nn.compact
    def __call__(self, x: jax.Array, before_pool: PooledSpikes | None = None) -> jax.Array:
        kernel = _kernel(self, (x.shape[-1], self.features))
        y = _synapse(self, _dense_op, x, kernel, fold_time=False, before_pool=before_pool)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


def _conv_op(x, kernel, *, strides, padding):
    # NHWC/HWIO; conv2d's gradients stay fast inside lax.scan on CPU (snnjax.convolution).
    return conv2d(x, kernel, strides, padding)


class Conv(nn.Module):
    """2-D conv synapse ``[C, B, H, W, Ci] -> [C, B, H', W', features]`` (HWIO kernel);
    ``input_storage`` as :class:`Dense`'s."""

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: str | int = "SAME"
    use_bias: bool = True
    weight_standardization: bool = False
    kernel_init: Initializer = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
    bias_init: Initializer = nn.initializers.zeros
    traced: bool = True
    trace_decay: float = 0.5
    input_storage: str = "float"

    @nn.compact
    def __call__(self, x: jax.Array, before_pool: PooledSpikes | None = None) -> jax.Array:
        if x.ndim != 5:
            raise ValueError(f"Conv expects a chunk [C, B, H, W, Ci], got shape {x.shape}")
        k = self.kernel_size
        kernel = _kernel(self, (k, k, x.shape[-1], self.features))
        pad = self.padding
        if isinstance(pad, int):
            pad = ((pad, pad), (pad, pad))
        op = functools.partial(_conv_op, strides=(self.strides, self.strides), padding=pad)
        y = _synapse(self, op, x, kernel, fold_time=True, before_pool=before_pool)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


# ---------------------------------------------------------------------------- per-step ops


class BatchNorm(nn.Module):
    """BatchNorm per time step (docs/models.md) on a chunk ``[C, B, ..., F] -> [C, B, ..., F]``.

    In training, each step is normalised by the statistics of its own batch (over B and the
    spatial axes) and the running statistics are updated once per step, in order, exactly
    as applying flax's ``BatchNorm`` to every step in turn (PyTorch momentum 0.1 == 0.9
    here). In evaluation the running statistics are used.
    """

    momentum: float = 0.9
    epsilon: float = 1e-5
    train: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        scale, bias = scale.astype(x.dtype), bias.astype(x.dtype)
        if self.train:
            if not self.is_initializing():
                mean, var = batch_stats(jax.lax.stop_gradient(x))
                m = self.momentum

                def update(carry, stats):
                    mu, v = carry
                    mu = m * mu + (1 - m) * stats[0].astype(mu.dtype)
                    v = m * v + (1 - m) * stats[1].astype(v.dtype)
                    return (mu, v), None

                (ra_mean.value, ra_var.value), _ = jax.lax.scan(
                    update, (ra_mean.value, ra_var.value), (mean, var))
            return batch_norm(x, scale, bias, self.epsilon)
        mean = ra_mean.value.astype(x.dtype)
        var = ra_var.value.astype(x.dtype)
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class Dropout(nn.Module):
    """Dropout with one mask for the whole sequence (fixed over time, docs/models.md):
    ``[C, B, ...] -> [C, B, ...]``, drawn from the ``"dropout"`` PRNG stream, which every
    chunk of a sequence receives unchanged."""

    rate: float
    deterministic: bool = True

    def __post_init__(self):
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {self.rate}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dropout(self.rate, broadcast_dims=(0,), deterministic=self.deterministic)(x)


# ---------------------------------------------------------------------------- pooling, readout


class AvgPool(nn.Module):
    """Average pooling ``window × window``, stride ``window``, on ``[C, B, H, W, F]``
    (linear: OTTT-safe)."""

    window: int = 2

    def __call__(self, x: jax.Array) -> jax.Array:
        return unfold(avg_pool(fold(x), self.window), x.shape[0])


class MaxPool(nn.Module):
    """Max pooling ``window × window`` on ``[C, B, H, W, F]``; refuses OTTT's traces."""

    window: int = 2

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.is_mutable_collection("trace") and not self.is_initializing():
            raise ValueError(TRACE_ERROR)
        return unfold(max_pool(fold(x), self.window), x.shape[0])


class Readout(nn.Module):
    """Classifier head, no neuron: global average pool (if spatial) then a traced Dense,
    ``[C, B, ...] -> [C, B, num_classes]``.

    Used both as the network's readout and as Local's auxiliary heads (docs/rules.md).
    """

    num_classes: int
    trace_decay: float = 0.5
    kernel_init: Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim > 3:
            x = x.mean(axis=tuple(range(2, x.ndim - 1)))
        return Dense(
            self.num_classes, kernel_init=self.kernel_init, trace_decay=self.trace_decay
        )(x)


def pool_layer(kind: str | None, window: int = 2) -> nn.Module | None:
    """``"avg"`` → :class:`AvgPool`, ``"max"`` → :class:`MaxPool`, None → no pooling."""
    if kind is None:
        return None
    if kind == "avg":
        return AvgPool(window)
    if kind == "max":
        return MaxPool(window)
    raise ValueError(f"unknown pooling {kind!r}: use 'avg', 'max' or None")
