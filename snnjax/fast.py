"""Layer-wise BPTT: synaptic ops over all T steps at once, only the membrane recursion scanned.

A feed-forward synapse does not depend on the membrane state, so under BPTT (nothing cut) a
layer's currents for every step can be one big op: ``[T·B, D] @ [D, F]`` instead of T ops on
``[B, D]``, and its weight gradient one ``[D, T·B] @ [T·B, F]`` instead of T rank-B updates.
Only the neuron's recursion ``u[t] = λ·v[t-1] + I[t]`` stays in a ``lax.scan``. This is the
same function as the per-step scan on the same parameters (tested to 1e-10 in float64).

:func:`snnjax.rules.bptt` uses it by itself: with ``layerwise="auto"`` (the default) for
dense-only models, where it measured 2-2.5× faster on a CPU (wide layers, long T); conv nets
stay on the per-step scan, which measured faster there (BENCHMARKS.md, side by side).
``bptt(layerwise=True)`` forces it, ``bptt(layerwise=False)`` forbids it;
:func:`bptt_layerwise` is ``bptt(layerwise=True)`` under its own name, and
:func:`uses_layerwise` tells which way a BPTT rule runs a model.

It applies to :class:`~snnjax.models.SpikingSequential` models (not subclasses, whose step
may differ) built of :class:`~snnjax.models.DenseUnit` / :class:`~snnjax.models.ConvUnit`
without BatchNorm or dropout (per-step BatchNorm statistics and per-step dropout masks do not
fold over time), and not under Local learning or OTTT's traces. The memory-efficient rules
(SLTT, OTTT, TBPTT) need the per-step loop and do not use it.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from snnjax.layers import Conv, Dense, Readout
from snnjax.models.base import ConvUnit, DenseUnit, SpikingSequential
from snnjax.neuron import LIFParams, lif_run
from snnjax.rules.base import Rule
from snnjax.rules.bptt import bptt, uses_layerwise

__all__ = [
    "dense_lif", "check_layerwise", "run_layerwise", "bptt_layerwise", "uses_layerwise"
]


def dense_lif(
    neuron: LIFParams, kernel: jax.Array, bias: jax.Array | None, xs: jax.Array
) -> jax.Array:
    """One Linear + LIF layer over time: ``xs [T, B, D] -> spikes [T, B, F]``.

    The currents of all steps are one ``[T·B, D] @ [D, F]`` GEMM; then the LIF recursion is
    scanned (:func:`snnjax.neuron.lif_run`). State starts at 0.
    """
    currents = xs @ kernel
    if bias is not None:
        currents = currents + bias
    spikes, _ = lif_run(neuron, currents)
    return spikes


def check_layerwise(model: nn.Module, blocks=None) -> None:
    """Raise ValueError unless ``model`` can run layer-wise (see the module docstring)."""
    if type(model) is not SpikingSequential:
        # run_layerwise re-implements SpikingSequential's step; a subclass may change it.
        raise ValueError(f"layer-wise BPTT needs a SpikingSequential, got {type(model).__name__}")
    if blocks is not None:
        raise ValueError("layer-wise BPTT does not run under Local learning (blocks)")
    for i, unit in enumerate(model.units):
        if type(unit) not in (DenseUnit, ConvUnit):
            raise ValueError(
                f"layer-wise BPTT supports DenseUnit and ConvUnit, unit {i} is "
                f"{type(unit).__name__}"
            )
        if unit.norm or unit.dropout > 0:
            raise ValueError(
                f"layer-wise BPTT cannot fold BatchNorm or dropout over time (unit {i})"
            )


def _fold(h: jax.Array) -> jax.Array:
    return h.reshape(h.shape[0] * h.shape[1], *h.shape[2:])


def run_layerwise(model: SpikingSequential, params, xs: jax.Array) -> jax.Array:
    """The readout's logits at every step, ``xs [T, B, ...] -> [T, B, C]``, layer by layer.

    Equal to scanning ``model`` over time (fresh neuron state), with each unit's synapse,
    scaling and pooling applied to all ``T·B`` samples at once.
    """
    check_layerwise(model)
    T, B = xs.shape[:2]
    h = xs
    for i, unit in enumerate(model.units):
        p = params[f"units_{i}"]
        x = _fold(h)
        if isinstance(unit, DenseUnit):
            syn = Dense(unit.features, use_bias=True,
                        weight_standardization=unit.weight_standardization, traced=False)
            current = syn.apply({"params": p["Dense_0"]}, x.reshape(T * B, -1))
        else:
            pad = unit.padding if hasattr(unit, "padding") else "SAME"
            syn = Conv(unit.features, kernel_size=unit.kernel_size, strides=unit.strides,
                       padding=pad, use_bias=True,
                       weight_standardization=unit.weight_standardization, traced=False)
            current = syn.apply({"params": p["Conv_0"]}, x)
        spikes, _ = lif_run(unit.neuron, current.reshape(T, B, *current.shape[1:]))
        s = _fold(spikes)
        if isinstance(unit, ConvUnit):
            if unit.scale != 1.0:
                s = s * unit.scale
            # As ConvUnit: a pooling that would shrink a map below 1×1 is skipped.
            if unit.pool is not None and min(s.shape[1:3]) >= 2:
                if unit.pool == "avg":
                    s = nn.avg_pool(s, (2, 2), strides=(2, 2))
                elif unit.pool == "max":
                    s = nn.max_pool(s, (2, 2), strides=(2, 2))
                else:
                    raise ValueError(f"unknown pooling {unit.pool!r} in unit {i}")
        h = s.reshape(T, B, *s.shape[1:])
    head = Readout(model.num_classes, trace_decay=model.readout_decay)
    logits = head.apply({"params": params["readout"]}, _fold(h))
    return logits.reshape(T, B, -1)


def bptt_layerwise() -> Rule:
    """BPTT computed layer by layer (:func:`run_layerwise`), whatever the model:
    ``bptt(layerwise=True)`` named ``"bptt(layerwise)"``. The same loss and gradients as
    :func:`snnjax.rules.bptt`; raises ValueError for a model that does not qualify.

    Memory O(T), like BPTT. Takes the rate loss too.
    """
    return bptt(layerwise=True)._replace(name="bptt(layerwise)")
