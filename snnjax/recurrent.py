"""Recurrent spiking layers: a synapse from the layer's own spikes at the previous step.

    I[t] = W_ff·x[t] + b + W_rec·s[t-1]            (conv: W_rec a same-padding conv)

The feed-forward part runs on the whole chunk at once, as every synapse does; only the
recurrent product sits inside the neuron's scan (:class:`~snnjax.neurons.Recurrence`), and the
layer's state is :class:`~snnjax.neurons.RecurrentState` ``(the neuron's state, s[t-1])``
in the ``"neuron"`` collection. The recurrent route ``s[t-1] → I[t]`` is a temporal route:
each rule treats it as it treats the membrane's ``v[t-1] → u[t]`` (docs/rules.md): BPTT keeps
it, TBPTT cuts it at window borders, SLTT and SLTT-K cut it at every step (``W_rec``'s
gradient is then ``Σ_t δ[t]·s[t-1]ᵀ``), OTTT takes ``W_rec``'s gradient at the trace of the
layer's own spikes (with its neuron's λ), and under Local it stays inside its block.

Both layers are units of :class:`~snnjax.models.SpikingSequential` (``(x, train) -> x``).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from snnjax.convolution import conv2d
from snnjax.layers import BatchNorm, Conv, Dense, Dropout, Initializer
from snnjax.models.base import neuron_layer, own_neuron, trace_decay_of
from snnjax.neuron import LIFParams
from snnjax.neurons import Recurrence, SpikingNeuron

__all__ = ["RecurrentDense", "RecurrentConv"]


def _dense(s, kernel):
    return s @ kernel


def _same_conv(s, kernel):
    return conv2d(s, kernel, (1, 1), "SAME")


def _recurrent_neuron(unit: nn.Module, current, op, kernel_shape, train: bool):
    """[BatchNorm] → the unit's neuron with ``W_rec`` (``recurrent_kernel``) → [dropout]:
    what both layers do after their feed-forward synapse (call from their compact
    ``__call__``)."""
    if unit.norm:
        current = BatchNorm(train=train)(current)
    kernel = unit.param("recurrent_kernel", unit.recurrent_init, kernel_shape)
    s = neuron_layer(unit.neuron)(current, recurrence=Recurrence(op, kernel))
    if unit.dropout > 0:
        s = Dropout(unit.dropout, deterministic=not train)(s)
    return s


class RecurrentDense(nn.Module):
    """Flatten → Dense → [BatchNorm] → neuron with a recurrent synapse → [dropout]:
    ``[C, B, ...] -> [C, B, features]``, ``I[t] = W_ff·x[t] + b + W_rec·s[t-1]``.

    Attributes:
      features: neurons in the layer.
      neuron: LIF parameters, or a neuron module (IF, PLIF, ALIF, ...).
      first: the synapse reads the raw input (OTTT does not trace it).
      norm: per-step BatchNorm on the feed-forward current (no bias then).
      dropout: rate of a dropout mask fixed over time, on the layer's output (the recurrent
        synapse reads the neuron's spikes before it).
      recurrent_init: initializer of ``W_rec`` ``[features, features]`` (``recurrent_kernel``).
    """

    features: int
    neuron: LIFParams | SpikingNeuron = LIFParams()
    first: bool = False
    norm: bool = False
    dropout: float = 0.0
    recurrent_init: Initializer = nn.initializers.lecun_normal()

    def __post_init__(self):
        own_neuron(self)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = x.reshape(*x.shape[:2], -1)
        current = Dense(self.features, use_bias=not self.norm, traced=not self.first,
                        trace_decay=trace_decay_of(self.neuron))(x)
        return _recurrent_neuron(self, current, _dense, (self.features, self.features), train)


class RecurrentConv(nn.Module):
    """Conv → [BatchNorm] → neuron with a recurrent same-padding conv on its own spike map →
    [dropout]: ``[C, B, H, W, Ci] -> [C, B, H', W', features]``.

    Attributes:
      features: output channels.
      neuron: LIF parameters, or a neuron module.
      first: the synapse reads the raw input (OTTT does not trace it).
      kernel_size: of the feed-forward conv (padding ``"SAME"``).
      strides: of the feed-forward conv.
      recurrent_size: of the recurrent conv ``[k, k, features, features]``
        (``recurrent_kernel``), stride 1, same padding.
      norm: per-step BatchNorm on the feed-forward current (no bias then).
      dropout: as :class:`RecurrentDense`.
      recurrent_init: initializer of ``W_rec``.
    """

    features: int
    neuron: LIFParams | SpikingNeuron = LIFParams()
    first: bool = False
    kernel_size: int = 3
    strides: int = 1
    recurrent_size: int = 3
    norm: bool = False
    dropout: float = 0.0
    recurrent_init: Initializer = nn.initializers.lecun_normal()

    def __post_init__(self):
        own_neuron(self)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        current = Conv(self.features, kernel_size=self.kernel_size, strides=self.strides,
                       use_bias=not self.norm, traced=not self.first,
                       trace_decay=trace_decay_of(self.neuron))(x)
        k = self.recurrent_size
        return _recurrent_neuron(self, current, _same_conv, (k, k, self.features, self.features),
                                 train)
