"""The checks a model (and a batch) must pass before a rule compiles its step.

Each refuses in one line, naming the layer where there is one, what a rule cannot serve: a
batch that is not time-major, a model that does not map a chunk ``[C, B, ...]`` to logits
``[C, B, classes]``, OTTT without traced synapses (or with a learnable decay, a second
time constant such as ALIF's, or max pooling), SLTT-K on a model that keeps other state
across steps; flax's own ``BatchNorm`` gets a warning (docs/models.md).
:meth:`snnjax.rules.Rule.plan_for` runs the model checks.
"""

from __future__ import annotations

import math
import warnings

import chex
import flax
import flax.linen as nn
import jax

from snnjax.layers import TRACE_ERROR, Conv, Dense, MaxPool
from snnjax.neurons import SpikingNeuron
from snnjax.rules.engine import Plan
from snnjax.rules.walk import apply_stage

__all__ = ["check_batch", "check_model"]


def check_batch(xs, ys) -> None:
    """``xs [T, B, ...]`` time-major with integer labels ``ys [B]`` (at the public boundary;
    :func:`snnjax.train.validate_batch` gives the friendlier messages before this)."""
    try:
        chex.assert_rank(ys, 1)
        chex.assert_rank(xs, {3, 4, 5, 6})
        chex.assert_axis_dimension(xs, 1, ys.shape[0])
        chex.assert_type(ys, int)
    except AssertionError as err:
        raise ValueError(
            f"a rule takes xs [T, B, ...] (time-major) and integer labels ys [B]; got xs "
            f"{tuple(xs.shape)} and ys {tuple(ys.shape)} {ys.dtype}: {err}"
        ) from None


def _check_replayable(neuron_collection, calls) -> None:
    """SLTT-K replays its steps from the neurons' recorded states: refuse a model that keeps
    other state across steps in the ``"neuron"`` collection (e.g. VGG-F's feedback)."""
    neuron_paths = {tuple(m.path) for m in calls if isinstance(m, SpikingNeuron)}
    flat = flax.traverse_util.flatten_dict(dict(neuron_collection))
    for path in flat:
        if tuple(path[:-1]) not in neuron_paths:
            raise ValueError(
                f"SLTT-K replays its selected steps from the neurons' recorded states, but the "
                f"model keeps other state across steps: '{'/'.join(path)}' (docs/rules.md). "
                "Use sltt(), which carries it step by step"
            )


def _kernel_holder(module: nn.Module) -> bool:
    return any(module.has_variable("params", n) for n in ("kernel", "kernel_ws"))


def _layer(module: nn.Module) -> str:
    return f"'{'/'.join(module.path) or type(module).__name__}' ({type(module).__name__})"


def check_model(stages, params, state, xs, plan: Plan) -> int:
    """Raise ValueError, before compiling, when the model cannot serve the plan.

    Checks that the model maps a chunk ``[C, B, ...]`` to logits ``[C, B, classes]``, and
    under OTTT's traces that every synapse after a neuron is a traced snnjax synapse and
    that every neuron has one fixed decay (docs/rules.md), naming the layer.

    Returns:
      the most rows of one step's synapse op (its output's samples × positions, e.g.
      ``B·H·W`` for a convolution), from which the engine chooses its default pieces
      (:func:`~snnjax.rules.engine.resolve_pieces`).
    """
    calls, rows = [], 0

    def probe(module, call, args, kwargs):
        nonlocal rows
        if plan.traces and isinstance(module, MaxPool):
            raise ValueError(f"OTTT cannot train through {_layer(module)}: " + TRACE_ERROR)
        out = call(*args, **kwargs)
        calls.append(module)
        if _kernel_holder(module) and hasattr(out, "shape"):
            rows = max(rows, math.prod(out.shape[:-1]))
        return out

    mutable = list(plan.transient) + list(state)
    x = jax.ShapeDtypeStruct((1, *xs.shape[1:]), xs.dtype)
    for stage in stages:
        (x, logits), new = jax.eval_shape(
            lambda x_in, stage=stage: apply_stage(stage, params, state, x_in, probe,
                                                  r=plan.route, mutable=mutable), x)
        if logits.ndim != 3 or logits.shape[:2] != (1, xs.shape[1]):
            raise ValueError(
                f"the model must map a chunk xs [C, B, ...] to logits [C, B, classes] "
                f"(docs/models.md); for a chunk of shape {(1, *xs.shape[1:])} it returned "
                f"{tuple(logits.shape)}"
            )
        if plan.K is not None:
            _check_replayable(new.get("neuron", {}), calls)
    _warn_flax_batch_norm(calls)
    if plan.traces:
        _check_traced(calls)
    return rows


def _warn_flax_batch_norm(calls) -> None:
    """flax's ``nn.BatchNorm`` pools its statistics over every step of a chunk, so what it
    computes depends on the schedule (docs/models.md): say so, once per layer."""
    for module in calls:
        if isinstance(module, nn.BatchNorm):
            warnings.warn(
                f"{_layer(module)} is flax.linen.BatchNorm: in training it pools the "
                "statistics over all C steps of a chunk, so the result depends on the "
                "schedule (chunk, window, rule); use snnjax.layers.BatchNorm, which "
                "normalises each time step by its own batch (docs/models.md)",
                UserWarning, stacklevel=2,
            )


def _check_traced(calls) -> None:
    """OTTT's traces (docs/models.md): every neuron has a fixed decay; the first synapse, on
    the raw input, is not traced; every synapse after a neuron is traced, with the decay of
    the neuron called last before it.

    The order is the order of the calls: the neuron "before" a synapse is the last one
    that ran before it.
    """
    last_neuron = None
    first_synapse = True
    for module in calls:
        if isinstance(module, SpikingNeuron):
            if not module.fixed_decay:
                raise ValueError(
                    f"OTTT cannot train neuron {_layer(module)}: its decay is learnable, and "
                    "OTTT's presynaptic trace assumes a fixed λ (docs/rules.md)"
                )
            if not module.one_time_constant:
                raise ValueError(
                    f"OTTT cannot train neuron {_layer(module)}: it has a second state "
                    "variable with its own time constant (ALIF's adaptation), and OTTT's "
                    "presynaptic trace assumes one time constant λ (docs/rules.md)"
                )
            last_neuron = module
            continue
        if not _kernel_holder(module):
            continue
        traced = isinstance(module, (Dense, Conv)) and module.traced
        if first_synapse and last_neuron is None and traced:
            raise ValueError(
                f"OTTT cannot train synapse {_layer(module)}: it reads the raw input (no "
                "spiking neuron runs before it), whose factor in the weight gradient is the "
                "input x[t] itself, but it keeps a presynaptic trace. Build it with "
                "traced=False (docs/models.md)"
            )
        first_synapse = False
        if last_neuron is None:
            continue
        if not traced:
            raise ValueError(
                f"OTTT cannot train synapse {_layer(module)}: it sits after a spiking "
                "neuron but keeps no presynaptic trace, so its weight gradient would be "
                "SLTT's. Use snnjax.layers.Dense/Conv (traced=True) (docs/models.md)"
            )
        decay = last_neuron.trace_decay
        if not math.isclose(module.trace_decay, decay, rel_tol=1e-6, abs_tol=1e-12):
            raise ValueError(
                f"OTTT cannot train synapse {_layer(module)}: its trace decays with "
                f"trace_decay={module.trace_decay:g}, but the neuron before it, "
                f"{_layer(last_neuron)}, has λ = {decay:g}, so its weight gradient would use "
                f"the wrong trace. Build it with trace_decay={decay:g} (docs/models.md)"
            )
