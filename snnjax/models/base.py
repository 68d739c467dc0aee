"""The model container and its building units, all over chunks of time.

A model is any flax module ``(xs [C, B, ...], train) -> logits [C, B, classes]`` built from
snnjax neurons and synapses and flax's stateless layers (``docs/models.md``).
:class:`SpikingSequential` is ours: a list of *units* (each ``(x, train) -> x`` on chunks,
typically synapse → [BatchNorm] → neuron → [scale] → [dropout] → [pool]) and a readout.
Local learning (Guo et al.) needs to know where blocks can start: a model says so with a
:meth:`SpikingSequential.split` method, which :func:`snnjax.rules.local` calls. The model
knows nothing else of rules.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import flax.linen as nn
import jax

from snnjax.layers import AvgPool, BatchNorm, Conv, Dense, Dropout, Readout, pool_layer
from snnjax.neuron import LIFParams
from snnjax.neurons import LIF, SpikingNeuron
from snnjax.spikes import PooledSpikes
from snnjax.surrogate import Surrogate

__all__ = ["SpikingSequential", "Block", "DenseUnit", "ConvUnit", "neuron_layer", "run_units",
           "spike_inputs"]


def neuron_layer(neuron: LIFParams | SpikingNeuron) -> SpikingNeuron:
    """A neuron layer from LIF parameters, or the given neuron module (IF, PLIF, ...), which
    flax has already bound as the unit's child ``neuron``."""
    if isinstance(neuron, LIFParams):
        return LIF(neuron)
    if isinstance(neuron, SpikingNeuron):
        return neuron
    raise ValueError(f"neuron must be LIFParams or a SpikingNeuron module, got {neuron!r}")


def own_neuron(unit: nn.Module) -> None:
    """Give ``unit`` its own copy of a neuron module passed in as its ``neuron`` field (call
    from the unit's ``__post_init__``): flax shares the variables of one module instance
    passed to several parents, and each layer's neuron state (and PLIF's λ) is its own."""
    if isinstance(unit.neuron, SpikingNeuron) and unit.neuron.parent is None:
        object.__setattr__(unit, "neuron", unit.neuron.clone())


def trace_decay_of(neuron: LIFParams | SpikingNeuron) -> float:
    """λ of the presynaptic trace behind ``neuron`` (0.5 when it has no fixed λ: OTTT
    refuses such neurons before this value could matter)."""
    if isinstance(neuron, LIFParams):
        return neuron.decay
    return neuron.trace_decay if neuron.fixed_decay else 0.5


def call_unit(unit: nn.Module, x: jax.Array, train: bool) -> jax.Array:
    """``unit(x, train=train)``, or ``unit(x)`` for a layer without a ``train`` argument
    (flax's stateless layers)."""
    if "train" in inspect.signature(type(unit).__call__).parameters:
        return unit(x, train=train)
    return unit(x)


def _takes_pooled_spikes(unit: nn.Module | None) -> bool:
    return (isinstance(unit, (DenseUnit, ConvUnit))
            and unit.input_storage == "bits_before_pool")


def run_units(units: Sequence[nn.Module], x: jax.Array, train: bool) -> jax.Array:
    """The units in order on the chunk ``x``. In training, a :class:`ConvUnit` followed by a
    unit that stores ``"bits_before_pool"`` also gives that unit the spikes before its
    average pool (:class:`~snnjax.spikes.PooledSpikes`): the same outputs, the same
    gradients, the synapse's residual 1 bit per spike where it would be a float per pooled
    value. At the start of ``units`` (a Local block's first unit) there are none to give."""
    before = None
    for i, unit in enumerate(units):
        give = (train and isinstance(unit, ConvUnit) and i + 1 < len(units)
                and _takes_pooled_spikes(units[i + 1]))
        kwargs = {} if before is None else {"before_pool": before}
        if give:
            x, before = unit(x, train=train, pooled_spikes=True, **kwargs)
        else:
            x = unit(x, train=train, **kwargs) if kwargs else call_unit(unit, x, train)
            before = None
    return x


class DenseUnit(nn.Module):
    """Flatten → Dense → [BatchNorm] → neuron → [dropout]: ``[C, B, ...] -> [C, B, features]``.

    ``first=True`` marks the synapse on the raw input, which OTTT does not trace.
    ``input_storage``: how the synapse keeps its input for the backward
    (:class:`~snnjax.layers.Dense`); None: ``"float"``, unless a :class:`SpikingSequential`
    finds the input to be the spikes of the unit before, or their average pool
    (:func:`spike_inputs`). ``before_pool``: the spikes the input was average-pooled from,
    for ``"bits_before_pool"`` (given by :func:`run_units`).
    """

    features: int
    neuron: LIFParams | SpikingNeuron = LIFParams()
    first: bool = False
    norm: bool = False
    weight_standardization: bool = False
    dropout: float = 0.0
    input_storage: str | None = None

    def __post_init__(self):
        own_neuron(self)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False,
                 before_pool: PooledSpikes | None = None) -> jax.Array:
        x = x.reshape(*x.shape[:2], -1)
        x = Dense(
            self.features,
            use_bias=not self.norm,
            weight_standardization=self.weight_standardization,
            traced=not self.first,
            trace_decay=trace_decay_of(self.neuron),
            input_storage=self.input_storage or "float",
        )(x, before_pool=before_pool)
        if self.norm:
            x = BatchNorm(train=train)(x)
        s = neuron_layer(self.neuron)(x)
        if self.dropout > 0:
            s = Dropout(self.dropout, deterministic=not train)(s)
        return s


class ConvUnit(nn.Module):
    """Conv → [BatchNorm] → neuron → [×scale] → [dropout] → [pool] on ``[C, B, H, W, Ci]``.

    Dropout comes before pooling, as in SLTT's VGG; a pooling that would shrink a map below
    1×1 is skipped (as PyTorch's adaptive pooling keeps 1×1). ``input_storage`` and
    ``before_pool`` as :class:`DenseUnit`'s. ``pooled_spikes=True`` (:func:`run_units`)
    returns ``(output, PooledSpikes)`` after an average pool: the output and the values
    it pooled (or None in their place when the unit did not average-pool).
    """

    features: int
    neuron: LIFParams | SpikingNeuron = LIFParams()
    first: bool = False
    kernel_size: int = 3
    strides: int = 1
    norm: bool = False
    weight_standardization: bool = False
    scale: float = 1.0
    pool: str | None = None
    dropout: float = 0.0
    input_storage: str | None = None

    def __post_init__(self):
        own_neuron(self)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False,
                 before_pool: PooledSpikes | None = None, pooled_spikes: bool = False):
        x = Conv(
            self.features,
            kernel_size=self.kernel_size,
            strides=self.strides,
            use_bias=not self.norm,
            weight_standardization=self.weight_standardization,
            traced=not self.first,
            trace_decay=trace_decay_of(self.neuron),
            input_storage=self.input_storage or "float",
        )(x, before_pool=before_pool)
        if self.norm:
            x = BatchNorm(train=train)(x)
        s = neuron_layer(self.neuron)(x)
        if self.scale != 1.0:
            s = s * self.scale
        if self.dropout > 0:
            s = Dropout(self.dropout, deterministic=not train)(s)
        pool = pool_layer(self.pool)
        before = None
        # Small inputs (8×8 digits in the CPU presets) run out of resolution before a deep
        # net's last pooling: keep a 1×1 map rather than pooling it away.
        if pool is not None and min(s.shape[2:4]) >= 2:
            if isinstance(pool, AvgPool):
                before = PooledSpikes(s, pool.window)
            s = pool(s)
        return (s, before) if pooled_spikes else s


def _step_forward(neuron: LIFParams | SpikingNeuron) -> bool:
    """Whether the neuron's spike function is ours, whose forward is the step ``H(x)``: a
    :class:`~snnjax.surrogate.Surrogate` subclass that redefines ``__call__`` may emit
    anything."""
    params = neuron if isinstance(neuron, LIFParams) else getattr(neuron, "neuron", None)
    surrogate = getattr(params, "surrogate", None)
    return surrogate is None or type(surrogate).__call__ is Surrogate.__call__


def _spiking_unit(unit: nn.Module) -> bool:
    """Whether ``unit``'s neuron outputs spikes (before any pooling): a unit of ours whose
    neuron says its outputs are binary and whose spike function's forward is a step. A
    constant scale and dropout (one mask, kept spikes ×``1/(1-p)``) keep them 0 or one
    number."""
    if not isinstance(unit, (DenseUnit, ConvUnit)):
        return False
    neuron = unit.neuron
    if isinstance(neuron, SpikingNeuron) and not neuron.binary_output:
        return False
    return _step_forward(neuron)


def _binary_output(unit: nn.Module) -> bool:
    """Whether every value ``unit`` outputs is 0 or one number: its spikes, scaled, dropped
    out, max-pooled. An average pool mixes them into graded values."""
    return _spiking_unit(unit) and not (isinstance(unit, ConvUnit)
                                        and unit.pool not in (None, "max"))


def _pools_spikes(unit: nn.Module) -> bool:
    """Whether ``unit``'s output is the average pool of a spike train."""
    return _spiking_unit(unit) and isinstance(unit, ConvUnit) and unit.pool == "avg"


def spike_inputs(units: Sequence[nn.Module]) -> tuple[nn.Module, ...]:
    """``units`` with the ``input_storage`` left open (None) of each :class:`DenseUnit` and
    :class:`ConvUnit` decided from the unit before it: ``"bits"`` where that unit's output
    is a spike train, ``"bits_before_pool"`` where it is a spike train's average pool (the
    spikes before the pool are stored, :func:`run_units`), ``"float"`` otherwise (the raw
    input, graded values, a unit of another kind). :mod:`snnjax.spikes`."""
    out = []
    for i, unit in enumerate(units):
        if isinstance(unit, (DenseUnit, ConvUnit)) and unit.input_storage is None:
            storage = "float"
            if i > 0 and not unit.first:
                if _binary_output(units[i - 1]):
                    storage = "bits"
                elif _pools_spikes(units[i - 1]):
                    storage = "bits_before_pool"
            unit = unit.clone(input_storage=storage)
        out.append(unit)
    return tuple(out)


class Block(nn.Module):
    """Units ``[start, end)`` of a :class:`SpikingSequential` and a head: one block of Local
    learning. ``xs [C, B, ...] -> (features [C, B, ...], logits [C, B, classes])``.

    Its variables are those of the units (as ``units_0, ...`` counted from the block's
    start) and of the head (``head``); :func:`snnjax.rules.local` maps them to and from the
    whole model's tree.
    """

    units: Sequence[nn.Module]
    num_classes: int
    readout_decay: float = 0.5
    readout_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False):
        x = run_units(self.units, x, train)
        head = Readout(self.num_classes, trace_decay=self.readout_decay,
                       kernel_init=self.readout_init, name="head")
        return x, head(x)


class SpikingSequential(nn.Module):
    """A spiking network over chunks of time: ``xs [C, B, ...] -> logits [C, B, classes]``.

    Attributes:
      units: the layers, each ``(x, train) -> x`` on chunks; Local's blocks are ranges of
        these.
      num_classes: outputs of the readout.
      readout_decay: λ of the last neuron (the readout's OTTT trace decays with it).
      readout_init: initializer of the readout's kernel.
      input_ndim: rank of one sample (without T and B) the model accepts; None for any.
    """

    units: Sequence[nn.Module]
    num_classes: int
    readout_decay: float = 0.5
    readout_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    input_ndim: int | None = None

    def __post_init__(self):
        # The model's structure says which synapses take spikes: they keep them as bits.
        object.__setattr__(self, "units", spike_inputs(self.units))
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits of every step of the chunk ``x [C, B, ...]``: ``[C, B, num_classes]``."""
        x = run_units(self.units, x, train)
        head = Readout(self.num_classes, trace_decay=self.readout_decay,
                       kernel_init=self.readout_init, name="readout")
        return head(x)

    @nn.nowrap
    def split(self, ranges: Sequence[tuple[int, int]]) -> tuple[tuple[Block, dict], ...]:
        """Local learning's blocks: for each unit range, a :class:`Block` and the map from
        its top-level variable names to the whole model's (``{"units_0": "units_2", ...,
        "head": "aux_head_0" | "readout"}``)."""
        out = []
        for b, (start, end) in enumerate(ranges):
            last = b == len(ranges) - 1
            block = Block(tuple(u.clone(parent=None) for u in self.units[start:end]),
                          self.num_classes, self.readout_decay, self.readout_init)
            names = {f"units_{i - start}": f"units_{i}" for i in range(start, end)}
            names["head"] = "readout" if last else f"aux_head_{b}"
            out.append((block, names))
        return tuple(out)

    @nn.nowrap
    def num_units(self) -> int:
        return len(self.units)
