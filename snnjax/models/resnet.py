"""PreAct spiking ResNet-18/-34 with a CIFAR stem (SLTT's CIFAR networks, docs/models.md).

    stem:   conv3×3(64), no bias, on the raw input (not traced by OTTT)
    unit:   s = LIF(BN(x));  y = conv3×3(LIF(BN(conv3×3(s, stride))) → dropout);
            y + shortcut(s),  shortcut = conv1×1(stride) when the shape changes, else s
    head:   LIF(BN(x)) → [dropout] → global pooling → Dense readout

BatchNorm is per time step (statistics of that step's batch, running statistics updated at
every step; the rule threads ``batch_stats`` through its time loop). Every synapse after the
stem is traced for OTTT with ``trace_decay = neuron.decay``; its input is a spike train
(after a fixed-mask dropout at most), so the trace trick is exact. Each residual unit is one
``(x, train) -> x`` module, so Local learning cuts between residual units.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from snnjax.layers import BatchNorm, Conv, Dropout, MaxPool
from snnjax.models.base import SpikingSequential
from snnjax.neurons import LIF
from snnjax.models.units import scaled
from snnjax.neuron import LIFParams
from snnjax.surrogate import triangle

__all__ = ["PreActStem", "PreActUnit", "PreActHead", "preact_resnet", "resnet18", "resnet34"]

# SLTT's neuron: τ = 1.1 (λ ≈ 0.0909), triangle surrogate (α = 1), soft reset, V_th = 1.
_SLTT_NEURON = LIFParams.from_tau(1.1, surrogate=triangle(1.0))


class PreActStem(nn.Module):
    """The CIFAR stem: one 3×3 conv (no bias, untraced),
    ``[C, B, H, W, Ci] -> [C, B, H, W, features]``."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train
        return Conv(self.features, 3, padding=1, use_bias=False, traced=False)(x)


class PreActUnit(nn.Module):
    """One pre-activation residual unit (BN → LIF → conv, twice; the sum inside the unit).

    ``[C, B, H, W, Ci] -> [C, B, H/strides, W/strides, features]``; input and output are the
    residual stream (membrane currents, not spikes).
    """

    features: int
    strides: int = 1
    neuron: LIFParams = LIFParams()
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = lambda f, k, s, p: Conv(  # noqa: E731
            f, k, strides=s, padding=p, trace_decay=self.neuron.decay
        )
        s = LIF(self.neuron)(BatchNorm(train=train)(x))
        y = conv(self.features, 3, self.strides, 1)(s)
        y = LIF(self.neuron)(BatchNorm(train=train)(y))
        if self.dropout > 0:
            y = Dropout(self.dropout, deterministic=not train)(y)
        y = conv(self.features, 3, 1, 1)(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            shortcut = conv(self.features, 1, self.strides, 0)(s)
        else:
            shortcut = s
        return y + shortcut


class PreActHead(nn.Module):
    """The last pre-activation ``LIF(BN(x))``, [dropout], then the global pooling.

    ``pool="avg"`` leaves the global average pooling to the readout (the paper's
    ``AvgPool2d(4)`` on the 4×4 map); ``pool="max"`` takes a global max of the spikes, which
    OTTT refuses (its traces commute with averaging only).
    """

    neuron: LIFParams = LIFParams()
    dropout: float = 0.0
    pool: str = "avg"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        s = LIF(self.neuron)(BatchNorm(train=train)(x))
        if self.pool == "max":
            h, w = s.shape[2:4]
            if h != w:
                raise ValueError(f"global max pooling needs a square map, got {h}×{w}")
            s = MaxPool(h)(s)
        if self.dropout > 0:
            s = Dropout(self.dropout, deterministic=not train)(s)
        return s


def preact_resnet(
    stage_sizes: Sequence[int],
    num_classes: int = 10,
    *,
    neuron: LIFParams = _SLTT_NEURON,
    width: float = 1.0,
    dropout: float = 0.0,
    pool: str = "avg",
    channels: Sequence[int] = (64, 128, 256, 512),
) -> SpikingSequential:
    """A PreAct spiking ResNet with a CIFAR stem: units ``stem, residual units…, head``.

    Args:
      stage_sizes: residual units per stage (ResNet-18: ``(2, 2, 2, 2)``).
      num_classes: outputs of the readout.
      neuron: LIF parameters (SLTT: τ = 1.1, triangle surrogate).
      width: channel multiplier (e.g. 0.125 for a CPU preset).
      dropout: rate inside each unit and before the readout (fixed mask over time).
      pool: global pooling before the readout, ``"avg"`` (default) or ``"max"``.
      channels: widths of the stages (the first stage has stride 1, the others 2).

    Returns:
      a :class:`SpikingSequential` taking chunks ``[C, B, H, W, Ci]``, ``H, W`` ≥ 8.
    """
    if pool not in ("avg", "max"):
        raise ValueError(f"ResNet pool must be 'avg' or 'max', got {pool!r}")
    if len(stage_sizes) != len(channels):
        raise ValueError(f"{len(stage_sizes)} stage sizes for {len(channels)} stages")
    widths = [scaled(c, width) for c in channels]
    units: list[nn.Module] = [PreActStem(widths[0])]
    for stage, (n, c) in enumerate(zip(stage_sizes, widths)):
        for i in range(n):
            strides = 2 if (stage > 0 and i == 0) else 1
            units.append(PreActUnit(c, strides=strides, neuron=neuron, dropout=dropout))
    units.append(PreActHead(neuron=neuron, dropout=dropout, pool=pool))
    return SpikingSequential(tuple(units), num_classes, readout_decay=neuron.decay, input_ndim=3)


def _preset(name: str, stage_sizes: tuple[int, ...], doc: str):
    """``name(num_classes, *, neuron, width, dropout, pool)``: :func:`preact_resnet` with
    ``stage_sizes``."""

    def build(
        num_classes: int = 10,
        *,
        neuron: LIFParams = _SLTT_NEURON,
        width: float = 1.0,
        dropout: float = 0.0,
        pool: str = "avg",
    ) -> SpikingSequential:
        return preact_resnet(
            stage_sizes, num_classes, neuron=neuron, width=width, dropout=dropout, pool=pool
        )

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    return build


resnet18 = _preset(
    "resnet18", (2, 2, 2, 2),
    """PreAct spiking ResNet-18 (SLTT, CIFAR-10/100): :func:`preact_resnet` with 2-2-2-2.

    10 units (stem, 8 residual units, head); arguments as :func:`preact_resnet`.
    """,
)

resnet34 = _preset(
    "resnet34", (3, 4, 6, 3),
    """PreAct spiking ResNet-34 with a CIFAR stem: :func:`preact_resnet` with 3-4-6-3.

    18 units (stem, 16 residual units, head); arguments as :func:`preact_resnet`. (SLTT's
    ImageNet ResNet-34 is a normaliser-free net with an ImageNet stem; this is the CIFAR-sized
    PreAct variant.)
    """,
)
