"""The per-step model container and its building units.

A model is a :class:`SpikingSequential`: a list of *units* (each ``(x_t, train) -> x_t``,
typically synapse → [BatchNorm] → LIF → [scale] → [pool] → [dropout]) and a readout.
Applied to one time step it returns the readout's logits ``[B, C]``. Local learning
(Guo et al.) asks it for block outputs by passing ``blocks``: each block's input is cut with
``stop_gradient`` and each block ends in its own head (the last block's head is the readout).
The model knows nothing else of rules.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax


from snnjax.layers import LIF, Conv, Dense, Readout, pool_layer
from snnjax.neuron import LIFParams

__all__ = ["SpikingSequential", "DenseUnit", "ConvUnit", "Blocks"]

Blocks = tuple[tuple[int, int], ...]


def _batch_norm(train: bool) -> nn.Module:
    # Per-time-step BatchNorm (SPEC §5): statistics of this step's batch, running stats
    # updated at every step (PyTorch momentum 0.1 == flax momentum 0.9).
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)


class DenseUnit(nn.Module):
    """Flatten → Dense → [BatchNorm] → LIF → [dropout]: ``[B, ...] -> spikes [B, features]``.

    ``first=True`` marks the synapse on the raw input, which OTTT does not trace.
    """

    features: int
    neuron: LIFParams = LIFParams()
    first: bool = False
    norm: bool = False
    weight_standardization: bool = False
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        x = Dense(
            self.features,
            use_bias=not self.norm,
            weight_standardization=self.weight_standardization,
            traced=not self.first,
            trace_decay=self.neuron.decay,
        )(x)
        if self.norm:
            x = _batch_norm(train)(x)
        s = LIF(self.neuron)(x)
        if self.dropout > 0:
            s = nn.Dropout(self.dropout, deterministic=not train)(s)
        return s


class ConvUnit(nn.Module):
    """Conv → [BatchNorm] → LIF → [×scale] → [dropout] → [pool] on ``[B, H, W, C]``.

    Dropout comes before pooling, as in SLTT's VGG; a pooling that would shrink a map below
    1×1 is skipped (as PyTorch's adaptive pooling keeps 1×1).
    """

    features: int
    neuron: LIFParams = LIFParams()
    first: bool = False
    kernel_size: int = 3
    strides: int = 1
    norm: bool = False
    weight_standardization: bool = False
    scale: float = 1.0
    pool: str | None = None
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = Conv(
            self.features,
            kernel_size=self.kernel_size,
            strides=self.strides,
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


class SpikingSequential(nn.Module):
    """A spiking network as a per-step function ``x_t [B, ...] -> logits [B, C]``.

    Attributes:
      units: the layers, each ``(x, train) -> x``; Local's blocks are ranges of these.
      num_classes: outputs of the readout.
      readout_decay: λ of the last neuron (the readout's OTTT trace decays with it).
      readout_init: initializer of the readout's kernel.
      input_ndim: rank of one sample (without batch) the model accepts; None for any.
    """

    units: Sequence[nn.Module]
    num_classes: int
    readout_decay: float = 0.5
    readout_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    input_ndim: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, blocks: Blocks | None = None):
        """One time step.

        Args:
          x: the input at this step, ``[B, ...]``.
          train: BatchNorm uses batch statistics and dropout is on.
          blocks: ``((start, end), ...)`` unit ranges for Local learning, or None.

        Returns:
          logits ``[B, C]``; with ``blocks``, a tuple of one ``[B, C]`` per block.
        """
        ranges = ((0, len(self.units)),) if blocks is None else blocks
        outs = []
        for b, (start, end) in enumerate(ranges):
            if b > 0:
                x = jax.lax.stop_gradient(x)
            for unit in self.units[start:end]:
                x = unit(x, train=train)
            last = b == len(ranges) - 1
            head = Readout(
                self.num_classes,
                trace_decay=self.readout_decay,
                kernel_init=self.readout_init,
                name="readout" if last else f"aux_head_{b}",
            )
            outs.append(head(x))
        return outs[0] if blocks is None else tuple(outs)

    def num_units(self) -> int:
        return len(self.units)


