"""Units shared by the papers' networks (VGG-11-BN, AlexNet): conv/dense with pooling last.

:class:`snnjax.models.base.ConvUnit` pools *before* dropout and always pools; the papers' VGG-11
with BatchNorm (SLTT) puts dropout right after the neuron and pools afterwards, and the small
CPU presets feed 8×8 digits to networks built for 32×32 or 48×48 inputs. :class:`PooledConvUnit`
does both: ``conv → [BN] → LIF → [×scale] → [dropout] → [pool]``, where a pooling that would
shrink a map below 1×1 is skipped (as PyTorch's adaptive pooling would keep 1×1).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from snnjax.layers import LIF, Conv, pool_layer
from snnjax.models.base import _batch_norm
from snnjax.neuron import LIFParams

__all__ = ["PooledConvUnit", "scaled"]


def scaled(channels: int, width: float) -> int:
    """``channels × width``, at least 1 (the ``width`` multiplier of every factory)."""
    if not width > 0:
        raise ValueError(f"width multiplier must be > 0, got {width}")
    return max(1, int(round(channels * width)))


class PooledConvUnit(nn.Module):
    """``conv → [BN] → LIF → [×scale] → [dropout] → [pool]`` on ``[B, H, W, C]`` per step.

    Attributes:
      features: output channels.
      neuron: the LIF parameters (the synapse's OTTT trace decays with ``neuron.decay``).
      first: the synapse on the raw input (OTTT does not trace it).
      kernel_size, strides, padding: of the conv (``padding`` an int is symmetric).
      norm: per-step BatchNorm after the conv (then the conv has no bias).
      weight_standardization: scaled WS on the conv kernel (OTTT's sWS nets).
      scale: multiply the spikes (OTTT's sWS nets use 2.74).
      dropout: rate of the dropout on the spikes (one mask for all steps of a batch).
      pool: ``"avg"``, ``"max"`` (OTTT refuses it) or None; 2×2, stride 2.
    """

    features: int
    neuron: LIFParams = LIFParams()
    first: bool = False
    kernel_size: int = 3
    strides: int = 1
    padding: int | str = 1
    norm: bool = True
    weight_standardization: bool = False
    scale: float = 1.0
    dropout: float = 0.0
    pool: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = Conv(
            self.features,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=not self.norm,
            weight_standardization=self.weight_standardization,
            traced=not self.first,
            trace_decay=self.neuron.decay,
        )(x)
        if self.norm:
            x = _batch_norm(train)(x)
        s = LIF(self.neuron)(x)
        if self.scale != 1.0:
            s = s * self.scale
        if self.dropout > 0:
            s = nn.Dropout(self.dropout, deterministic=not train)(s)
        pool = pool_layer(self.pool)
        # Small inputs (8×8 digits in the CPU presets) run out of resolution before a deep
        # net's last pooling: keep a 1×1 map rather than pooling it away.
        if pool is not None and min(s.shape[1:3]) >= 2:
            s = pool(s)
        return s
