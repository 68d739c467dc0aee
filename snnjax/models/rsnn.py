"""A recurrent spiking network: input → recurrent spiking layer(s) → readout."""

from __future__ import annotations

from typing import Sequence

from snnjax.models.base import SpikingSequential, trace_decay_of
from snnjax.neuron import Adaptation, LIFParams
from snnjax.neurons import ALIF
# The module, not the class: snnjax.recurrent imports snnjax.models.base, so it may still
# be initialising when this module loads.
from snnjax import recurrent

__all__ = ["rsnn", "rsnn_alif"]


def rsnn(
    num_classes: int = 10,
    hidden: Sequence[int] = (128,),
    *,
    neuron: LIFParams = LIFParams(),
    adaptation: Adaptation | None = None,
    norm: bool = False,
    dropout: float = 0.0,
) -> SpikingSequential:
    """Recurrent spiking net: ``[Dense + W_rec·s[t-1] → (BN) → LIF or ALIF] × len(hidden)
    → Dense readout``.

    Each hidden layer is a :class:`~snnjax.recurrent.RecurrentDense`:
    ``I[t] = W·x[t] + b + W_rec·s[t-1]``. Accepts inputs of any per-sample shape (flattened),
    ``xs [T, B, ...] -> logits [T, B, num_classes]``.

    Args:
      num_classes: outputs of the readout.
      hidden: neurons of each recurrent layer.
      neuron: the LIF parameters (λ, threshold, reset, surrogate); with ``adaptation``, the
        membrane of an ALIF.
      adaptation: ALIF's threshold adaptation (Bellec et al. 2018, 2020); None for LIF.
        OTTT refuses ALIF (its trace assumes one time constant).
      norm: per-step BatchNorm on each layer's feed-forward current.
      dropout: rate of a dropout mask fixed over time on each layer's output.
    """
    if not hidden:
        raise ValueError("rsnn needs at least one hidden layer: hidden is empty")
    units = []
    for i, h in enumerate(hidden):
        layer_neuron = neuron if adaptation is None else ALIF(neuron, adaptation)
        units.append(recurrent.RecurrentDense(h, neuron=layer_neuron, first=i == 0, norm=norm,
                                    dropout=dropout))
    return SpikingSequential(tuple(units), num_classes, readout_decay=trace_decay_of(neuron))


def rsnn_alif(
    num_classes: int = 10,
    hidden: Sequence[int] = (128,),
    *,
    neuron: LIFParams = LIFParams(),
    adaptation: Adaptation = Adaptation(),
    norm: bool = False,
    dropout: float = 0.0,
) -> SpikingSequential:
    """:func:`rsnn` with ALIF neurons (``adaptation``, default ρ = 0.9, β = 1): the CLI's
    ``--model rsnn_alif``."""
    return rsnn(num_classes, hidden, neuron=neuron, adaptation=adaptation, norm=norm,
                dropout=dropout)
