"""The networks: an MLP, a small CNN, and OTTT's VGG-11 with scaled weight standardisation."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from snnjax.models.base import ConvUnit, DenseUnit, SpikingSequential, trace_decay_of
from snnjax.neuron import LIFParams
from snnjax.neurons import SpikingNeuron

__all__ = ["mlp", "cnn", "vgg11_sws", "VGG11_CFG"]


def mlp(
    num_classes: int = 10,
    hidden: Sequence[int] = (128,),
    *,
    neuron: LIFParams | SpikingNeuron = LIFParams(),
    norm: bool = False,
    dropout: float = 0.0,
) -> SpikingSequential:
    """Fully connected spiking net: ``[Dense → (BN) → LIF] × len(hidden) → Dense readout``.

    Accepts inputs of any per-sample shape (flattened).
    """
    units = [
        DenseUnit(h, neuron=neuron, first=i == 0, norm=norm, dropout=dropout)
        for i, h in enumerate(hidden)
    ]
    return SpikingSequential(tuple(units), num_classes, readout_decay=trace_decay_of(neuron))


def cnn(
    num_classes: int = 10,
    channels: Sequence[int] = (32, 64),
    *,
    neuron: LIFParams | SpikingNeuron = LIFParams(),
    norm: bool = True,
    pool: str = "avg",
    dropout: float = 0.0,
) -> SpikingSequential:
    """Small conv net: ``[Conv3x3 → (BN) → LIF → pool 2×2] × len(channels)``, GAP, Dense.

    Input ``[B, H, W, C]`` per step (H, W divisible by ``2**len(channels)``).
    """
    units = [
        ConvUnit(c, neuron=neuron, first=i == 0, norm=norm, pool=pool, dropout=dropout)
        for i, c in enumerate(channels)
    ]
    return SpikingSequential(tuple(units), num_classes, readout_decay=trace_decay_of(neuron),
                             input_ndim=3)


VGG11_CFG = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512)


def vgg11_sws(
    num_classes: int = 10,
    *,
    neuron: LIFParams | SpikingNeuron = LIFParams(decay=0.5),
    cfg: Sequence[int | str] = VGG11_CFG,
    scale: float = 2.74,
    dropout: float = 0.0,
    width: float = 1.0,
) -> SpikingSequential:
    """OTTT's VGG-11 "sWS" (docs/models.md).

    Each conv is 3×3 with scaled weight standardisation (learnable gain, He-normal fan_out
    untruncated init), then the neuron, then ×``scale``; ``"A"`` is 2×2 average pooling;
    global average pooling and a Dense readout initialised N(0, 0.01²). No BatchNorm.
    ``width`` scales every channel count (e.g. 0.25 for a quick CPU run).
    """
    units: list[ConvUnit] = []
    for i, c in enumerate(cfg):
        if c == "A":
            if not units:
                raise ValueError("VGG cfg cannot start with pooling")
            units[-1] = units[-1].clone(pool="avg")
            continue
        units.append(
            ConvUnit(
                max(1, int(c * width)),
                neuron=neuron,
                first=not units,
                weight_standardization=True,
                scale=scale,
                dropout=dropout,
            )
        )
    return SpikingSequential(
        tuple(units),
        num_classes,
        readout_decay=trace_decay_of(neuron),
        readout_init=nn.initializers.normal(0.01),
        input_ndim=3,
    )
