"""A spiking AlexNet (the deep network of Guo et al. 2023's CIFAR10-DVS comparison).

Guo et al. do not give the layer list in the text we have, so the design is ours, AlexNet's
shape scaled to 32×32 / 48×48 inputs (docs/models.md says "AlexNet-style"):

    conv3×3(96) → pool → conv3×3(256) → pool → conv3×3(384) → conv3×3(384) → conv3×3(256)
    → pool → flatten → FC(1024) → FC(1024) → Dense readout

every conv and FC followed by per-step BatchNorm and a LIF neuron; 2×2 max pooling as in
AlexNet by default (OTTT then refuses the net with a clear error, since a max-pooled spike
train's trace is not the max-pooled trace), ``pool="avg"`` for an OTTT-compatible variant;
dropout on the FC layers' spikes. On 48×48×2 CIFAR10-DVS frames the flattened map is
6×6×256; on 8×8 digits it is 1×1×256.
"""

from __future__ import annotations

from typing import Sequence

from snnjax.models.base import ConvUnit, DenseUnit, SpikingSequential, trace_decay_of
from snnjax.models.units import scaled
from snnjax.neuron import LIFParams

__all__ = ["ALEXNET_CFG", "alexnet"]

ALEXNET_CFG = (96, "P", 256, "P", 384, 384, 256, "P")


def alexnet(
    num_classes: int = 10,
    *,
    neuron: LIFParams = LIFParams(),
    width: float = 1.0,
    dropout: float = 0.5,
    pool: str = "max",
    norm: bool = True,
    cfg: Sequence[int | str] = ALEXNET_CFG,
    fc: Sequence[int] = (1024, 1024),
) -> SpikingSequential:
    """Spiking AlexNet: 5 conv units, 2 FC units, Dense readout (7 units for Local).

    Args:
      num_classes: outputs of the readout.
      neuron: LIF parameters.
      width: multiplier of every channel and FC width (e.g. 0.125 for a CPU preset).
      dropout: rate on the FC layers' spikes (one mask for all steps of a batch).
      pool: ``"max"`` (AlexNet's; refused by OTTT) or ``"avg"``; 2×2, stride 2.
      norm: per-step BatchNorm after every conv and FC.
      cfg: conv channels and ``"P"`` (pool) entries.
      fc: widths of the hidden FC layers.

    Returns:
      a :class:`SpikingSequential` taking chunks ``[C, B, H, W, Ci]``.
    """
    if pool not in ("avg", "max"):
        raise ValueError(f"AlexNet pool must be 'max' or 'avg', got {pool!r}")
    units: list = []
    for c in cfg:
        if c == "P":
            if not units:
                raise ValueError("AlexNet cfg cannot start with pooling")
            units[-1] = units[-1].clone(pool=pool)
            continue
        units.append(ConvUnit(scaled(c, width), neuron=neuron, first=not units, norm=norm))
    for f in fc:
        units.append(DenseUnit(scaled(f, width), neuron=neuron, norm=norm, dropout=dropout))
    return SpikingSequential(tuple(units), num_classes, readout_decay=trace_decay_of(neuron),
                             input_ndim=3)
