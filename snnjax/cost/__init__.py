"""Cost of a training step: compiled memory, analytic MACs and memory access (``docs/cost.md``).

Three figures, each for a model, a rule, a batch shape and T, without running training:

- **memory**: XLA's memory analysis of the compiled training step (arguments, outputs,
  temporaries), built from ``jax.ShapeDtypeStruct``s so nothing big is allocated
  (:func:`step_memory`), for the device jax runs on or for a compile target (an H100, a TPU
  v5e, ... without the hardware: :mod:`snnjax.targets`); on a GPU also the device's peak
  bytes in use after a real step.
- **MACs**: multiply-accumulates of one training step, forward and backward, counted per
  layer and per time step from the model's synapses (:func:`trace_layers`, :func:`count_macs`),
  plus a spike-driven accumulate (AC) count from measured firing rates. XLA's
  ``cost_analysis()`` cannot be used: it counts a ``lax.scan`` body once, whatever T is.
- **memory access**: bytes read and written by one training step, counted analytically
  (:func:`count_memory_access`; the counting rules are in its docstring).

:func:`measure` gives all of them for a :class:`snnjax.Trainer` as one flat dict (used by
``snnjax bench`` and experiments). This package takes a trainer; the trainer knows nothing of
it.

Its modules, one role each: :mod:`snnjax.cost.figures` (:func:`measure`),
:mod:`snnjax.cost.memory` (compiled memory, for this device or a target),
:mod:`snnjax.cost.ops` (the step's ops and firing rates, read off the model),
:mod:`snnjax.cost.counts` (MACs and memory access) and :mod:`snnjax.cost.timing` (real
steps timed).
"""

from snnjax.cost.counts import Schedule as Schedule
from snnjax.cost.counts import count_macs as count_macs
from snnjax.cost.counts import count_memory_access as count_memory_access
from snnjax.cost.counts import schedule as schedule
from snnjax.cost.figures import default_optimizer as default_optimizer
from snnjax.cost.figures import measure as measure
from snnjax.cost.memory import abstract_batch as abstract_batch
from snnjax.cost.memory import compiled_memory as compiled_memory
from snnjax.cost.memory import device_peak_bytes as device_peak_bytes
from snnjax.cost.memory import lower_step as lower_step
from snnjax.cost.memory import step_memory as step_memory
from snnjax.cost.memory import tree_bytes as tree_bytes
from snnjax.cost.ops import Layer as Layer
from snnjax.cost.ops import conv_macs as conv_macs
from snnjax.cost.ops import dense_macs as dense_macs
from snnjax.cost.ops import firing_rates as firing_rates
from snnjax.cost.ops import trace_layers as trace_layers
from snnjax.cost.timing import time_step as time_step

__all__ = [
    "compiled_memory",
    "tree_bytes",
    "default_optimizer",
    "Layer",
    "Schedule",
    "dense_macs",
    "conv_macs",
    "trace_layers",
    "schedule",
    "count_macs",
    "count_memory_access",
    "firing_rates",
    "abstract_batch",
    "lower_step",
    "step_memory",
    "device_peak_bytes",
    "time_step",
    "measure",
]
