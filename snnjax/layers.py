"""Flax per-time-step modules: LIF layer, synapses (dense, conv, scaled-WS), pooling, readout.

Every module maps one time step ``x_t [B, ...]`` to ``y_t``; neuron state lives in the
``"neuron"`` collection, BatchNorm statistics in ``"batch_stats"``. Running over time is the
rule's job (ARCHITECTURE principle 2).

OTTT's presynaptic trace is a collection too: when a rule applies the model with ``"trace"``
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
from snnjax.neuron import LIFParams, lif_step, lif_step_pre_reset

__all__ = [
    "LIF",
    "Dense",
    "Conv",
    "AvgPool",
    "MaxPool",
    "Readout",
    "standardize_weight",
    "standardize_params",
    "traced_op",
    "trace_replace",
    "TRACE_ERROR",
]

Initializer = Callable[..., jax.Array]
TRACE_ERROR = (
    "max pooling cannot sit between a neuron and a traced synapse under OTTT: the trace of a "
    "max-pooled spike train is not the max-pooled trace (SPEC §3). Use average pooling "
    "(pool='avg') or a rule without traces."
)


class LIF(nn.Module):
    """LIF neuron layer: input current ``[B, ...] -> spikes [B, ...]``, state in ``"neuron"``.

    The state is the post-reset potential ``"v"`` (:func:`~snnjax.neuron.lif_step`), or the
    pre-reset ``"u"`` (:func:`~snnjax.neuron.lif_step_pre_reset`) when the collection handed
    in holds ``"u"``: the per-step rules do that to save memory (``Forward.pre_reset``).
    Same spikes and gradients either way. Handed ``"u_replay"`` (this step's ``u``), it
    replays the step for SLTT's gradient without recomputing the state.
    """

    neuron: LIFParams = LIFParams()

    @nn.compact
    def __call__(self, current: jax.Array) -> jax.Array:
        if self.has_variable("neuron", "u_replay"):
            # Replaying a step whose potential u[t] is known (SLTT-K's backward, see
            # rules.base.windowed_grad): the value is u[t], the gradient reaches the current
            # as in the step itself under SLTT (∂u/∂I = 1, the previous state a constant),
            # and the current's value is not kept for the backward.
            u = self.get_variable("neuron", "u_replay")
            return self.neuron.surrogate(_pinned(u, current) - self.neuron.v_th)
        if self.has_variable("neuron", "u"):
            name, step = "u", lif_step_pre_reset
        else:
            name, step = "v", lif_step
        state = self.variable("neuron", name, jnp.zeros_like, current)
        spikes, new = step(self.neuron, state.value, current)
        if not self.is_initializing():
            state.value = new
        return spikes


@jax.custom_jvp
def _pinned(value: jax.Array, source: jax.Array) -> jax.Array:
    """``value``, with the tangent of ``source`` (whose value is never used)."""
    return value


@_pinned.defjvp
def _pinned_jvp(primals, tangents):
    return primals[0], tangents[1]


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
    """SPEC §3's formulation: ``replace(op(replace(x, sg(â)), W), sg(op(x, W)))``."""
    sg = jax.lax.stop_gradient
    return _replace(op(_replace(x, sg(trace)), kernel), sg(op(x, kernel)))


def _synapse(module: nn.Module, op: Callable, x: jax.Array, kernel: jax.Array) -> jax.Array:
    if module.traced and module.is_mutable_collection("trace") and not module.is_initializing():
        trace = module.variable("trace", "a", jnp.zeros_like, x)
        trace.value = module.trace_decay * trace.value + jax.lax.stop_gradient(x)
        return traced_op(op, x, trace.value, kernel)
    return op(x, kernel)


# ---------------------------------------------------------------------------- synapses


def standardize_weight(kernel: jax.Array, gain: jax.Array, eps: float = 1e-4) -> jax.Array:
    """Scaled weight standardisation (SPEC §5), per output channel (the last axis).

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
    """Dense synapse ``[B, D] -> [B, features]``, optionally scaled-WS, optionally traced."""

    features: int
    use_bias: bool = True
    weight_standardization: bool = False
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros
    traced: bool = True
    trace_decay: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = _kernel(self, (x.shape[-1], self.features))
        y = _synapse(self, _dense_op, x, kernel)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


def _conv_op(x, kernel, *, strides, padding):
    # NHWC/HWIO; conv2d's gradients stay fast inside lax.scan on CPU (snnjax.convolution).
    return conv2d(x, kernel, strides, padding)


class Conv(nn.Module):
    """2-D conv synapse ``[B, H, W, C] -> [B, H', W', features]`` (NHWC, HWIO kernel)."""

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

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"Conv expects [B, H, W, C] per step, got shape {x.shape}")
        k = self.kernel_size
        kernel = _kernel(self, (k, k, x.shape[-1], self.features))
        pad = self.padding
        if isinstance(pad, int):
            pad = ((pad, pad), (pad, pad))
        op = functools.partial(_conv_op, strides=(self.strides, self.strides), padding=pad)
        y = _synapse(self, op, x, kernel)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


# ---------------------------------------------------------------------------- pooling, readout


class AvgPool(nn.Module):
    """Average pooling ``window × window`` with stride ``window`` (linear: OTTT-safe)."""

    window: int = 2

    def __call__(self, x: jax.Array) -> jax.Array:
        w = (self.window, self.window)
        return nn.avg_pool(x, w, strides=w)


class MaxPool(nn.Module):
    """Max pooling ``window × window``; refuses to run under OTTT's traces."""

    window: int = 2

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.is_mutable_collection("trace") and not self.is_initializing():
            raise ValueError(TRACE_ERROR)
        w = (self.window, self.window)
        return nn.max_pool(x, w, strides=w)


class Readout(nn.Module):
    """Classifier head, no neuron: global average pool (if spatial) then a traced Dense.

    Used both as the network's readout and as Local's auxiliary heads (SPEC §3).
    """

    num_classes: int
    trace_decay: float = 0.5
    kernel_init: Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim > 2:
            x = x.mean(axis=tuple(range(1, x.ndim - 1)))
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


