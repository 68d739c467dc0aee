"""VGG-11 with per-step BatchNorm (SLTT's DVS net) and VGG-F, OTTT's VGG-11 sWS with feedback.

VGG-11-BN (docs/models.md): ``[64, A, 128, A, 256, 256, A, 512, 512, A, 512, 512, A]``, each conv
3×3 → per-step BatchNorm → LIF → dropout, ``A`` = 2×2 average pooling, then global average
pooling and a Dense readout initialised N(0, 0.01²). (SLTT's code pools to 7×7 and flattens;
on its 1×1 final map that is the same linear function of the 512 features, with one weight
per feature shared by the 49 copies, so we use global average pooling.)

VGG-F (OTTT's feedback variant): the VGG-11 sWS net in which the last layer's spikes of step
``t-1``, upsampled to the first layer's resolution, reach the first layer's membrane through a
3×3 conv initialised to zero: ``I_1[t] = conv_1(x[t]) + conv_fb(up(s_L[t-1]))``. The fed-back
spikes are a constant (no gradient through the feedback in time, as in the paper), kept in the
``"neuron"`` collection so that every rule resets them with the neuron state.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from snnjax.layers import Conv, Dropout, Readout
from snnjax.models.base import ConvUnit, SpikingSequential, trace_decay_of
from snnjax.neurons import LIF
from snnjax.models.units import scaled
from snnjax.models.zoo import VGG11_CFG
from snnjax.neuron import LIFParams
from snnjax.surrogate import triangle

__all__ = [
    "VGG11_BN_CFG",
    "vgg11_bn",
    "FeedbackStem",
    "FeedbackSequential",
    "vgg11f_sws",
]

VGG11_BN_CFG = (64, "A", 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")
_SLTT_NEURON = LIFParams.from_tau(1.1, surrogate=triangle(1.0))


def _vgg_units(cfg, *, width, pool, **unit_kwargs) -> list[ConvUnit]:
    units: list[ConvUnit] = []
    for c in cfg:
        if c in ("A", "M"):
            if not units:
                raise ValueError("VGG cfg cannot start with pooling")
            units[-1] = units[-1].clone(pool=pool if c == "A" else "max")
            continue
        units.append(ConvUnit(scaled(c, width), first=not units, **unit_kwargs))
    return units


def vgg11_bn(
    num_classes: int = 10,
    *,
    neuron: LIFParams = _SLTT_NEURON,
    width: float = 1.0,
    dropout: float = 0.0,
    pool: str = "avg",
    cfg: Sequence[int | str] = VGG11_BN_CFG,
) -> SpikingSequential:
    """SLTT's VGG-11 with per-step BatchNorm (CIFAR10-DVS, DVS128 Gesture).

    Args:
      num_classes: outputs of the readout.
      neuron: LIF parameters (SLTT: τ = 1.1, triangle surrogate).
      width: channel multiplier (e.g. 0.125 for a CPU preset).
      dropout: rate after every neuron (SLTT: 0.3 on CIFAR10-DVS, 0.4 on Gesture).
      pool: what ``"A"`` in ``cfg`` is: ``"avg"`` (the paper's) or ``"max"``.
      cfg: channels and ``"A"`` (pool) entries.

    Returns:
      a :class:`SpikingSequential` of 8 conv units taking chunks ``[C, B, H, W, Ci]``.
    """
    units = _vgg_units(
        cfg, width=width, pool=pool, neuron=neuron, norm=True, dropout=dropout
    )
    return SpikingSequential(
        tuple(units),
        num_classes,
        readout_decay=trace_decay_of(neuron),
        readout_init=nn.initializers.normal(0.01),
        input_ndim=3,
    )


# ---------------------------------------------------------------------------- VGG-F


class FeedbackStem(nn.Module):
    """First layer of VGG-F, one step: ``LIF(conv(x) + conv_fb(up(feedback))) × scale``.

    ``x [1, B, H, W, C]``; ``feedback`` is the last layer's output at the previous step
    ``[1, B, h, w, C_L]`` (zeros at the first step), upsampled (nearest) to the input's
    resolution. (At the first step the paper skips the feedback conv; here its input is
    zero, so only its bias is added.)
    """

    features: int
    feedback_features: int
    neuron: LIFParams = LIFParams()
    scale: float = 2.74
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, feedback: jax.Array | None, train: bool = False):
        current = Conv(
            self.features, padding=1, weight_standardization=True, traced=False,
        )(x)
        c, b, h, w, _ = current.shape
        if feedback is None:  # initialising: no previous step, a zero map of the right shape
            up = jnp.zeros((c, b, h, w, self.feedback_features), current.dtype)
        else:
            fy, fx = h // feedback.shape[2], w // feedback.shape[3]
            up = jnp.repeat(jnp.repeat(feedback, fy, axis=2), fx, axis=3)
        current = current + Conv(
            self.features, padding=1, kernel_init=nn.initializers.zeros,
            trace_decay=self.neuron.decay, name="feedback_conv",
        )(up)
        s = LIF(self.neuron)(current) * self.scale
        if self.dropout > 0:
            s = Dropout(self.dropout, deterministic=not train)(s)
        return s


class FeedbackSequential(SpikingSequential):
    """A :class:`SpikingSequential` whose first unit also receives the last unit's output of
    the previous step (VGG-F). ``units[0]`` is a :class:`FeedbackStem`.

    The feedback couples the layers from step to step, so a chunk runs step by step through
    the whole network (unrolled over the chunk). The fed-back map is stored (without
    gradient) in the ``"neuron"`` collection as ``feedback``, so it starts at zero for every
    batch and is carried by every rule's time loop like a membrane potential. Local learning
    cannot split it (the feedback crosses every block).
    """

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits of every step of the chunk ``x [C, B, ...]``: ``[C, B, num_classes]``."""
        have = self.has_variable("neuron", "feedback")
        feedback = self.get_variable("neuron", "feedback") if have else None
        head = Readout(self.num_classes, trace_decay=self.readout_decay,
                       kernel_init=self.readout_init, name="readout")
        outs = []
        for c in range(x.shape[0]):
            h = x[c:c + 1]
            for i, unit in enumerate(self.units):
                h = unit(h, feedback, train=train) if i == 0 else unit(h, train=train)
            feedback = jax.lax.stop_gradient(h)
            outs.append(head(h))
        if not self.is_initializing() and self.is_mutable_collection("neuron"):
            self.put_variable("neuron", "feedback", feedback)
        return jnp.concatenate(outs, axis=0)

    @nn.nowrap
    def split(self, ranges):
        raise ValueError(
            "VGG-F's feedback connects the last block to the first: Local learning cannot "
            "split it into blocks"
        )


def vgg11f_sws(
    num_classes: int = 10,
    *,
    neuron: LIFParams = LIFParams(decay=0.5),
    width: float = 1.0,
    dropout: float = 0.0,
    cfg: Sequence[int | str] = VGG11_CFG,
    scale: float = 2.74,
) -> FeedbackSequential:
    """VGG-F: OTTT's VGG-11 sWS with a feedback connection from the last layer to the first.

    Args as :func:`snnjax.models.vgg11_sws` (``cfg`` channels and ``"A"`` average pools).

    Returns:
      a :class:`FeedbackSequential` taking chunks ``[C, B, H, W, Ci]``.
    """
    rest = _vgg_units(
        cfg, width=width, pool="avg", neuron=neuron, norm=False, weight_standardization=True,
        scale=scale, dropout=dropout,
    )
    first = rest[0]
    stem = FeedbackStem(
        first.features, rest[-1].features, neuron=neuron, scale=scale, dropout=dropout
    )
    # The stem takes the first conv; its pooling (if any) becomes a unit of its own.
    units: list[nn.Module] = [stem]
    if first.pool is not None:
        raise ValueError("VGG-F: the first layer cannot pool (the feedback enters there)")
    units += rest[1:]
    return FeedbackSequential(
        tuple(units),
        num_classes,
        readout_decay=trace_decay_of(neuron),
        readout_init=nn.initializers.normal(0.01),
        input_ndim=3,
    )
