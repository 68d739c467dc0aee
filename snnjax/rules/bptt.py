"""Backpropagation through time: differentiate the whole sequence. Memory O(T), or O(√T)
with ``remat``."""

from __future__ import annotations

from snnjax.rules.base import Temporal

__all__ = ["bptt"]


def bptt(*, chunk: int | None = None, remat: bool = False, bits: bool = False) -> Temporal:
    """BPTT with surrogate gradients: ``jax.value_and_grad`` of the forward over all T.

    Every temporal route (``v[t-1] → u[t]``) is kept, so residuals of all T steps are stored:
    memory O(T). The baseline every other rule is compared to; the only rule that can use
    the rate loss.

    Args:
      chunk: steps per application of the model (docs/schedules.md: the same gradient for every
        chunk). None (default): pieces chosen from the model
        (:func:`~snnjax.rules.engine.piece_length`): each piece long enough that its largest
        synapse op has enough rows to be bound by arithmetic, not by reading its weights,
        i.e. one step on conv nets at usual batch sizes and ``⌈1024 / B⌉`` steps on dense
        ones. An integer fixes the piece length; ``chunk=T`` is one op over all ``T·B``
        samples per synapse. Pieces run as a ``lax.scan``: the same stored residuals, but
        the backward's temporaries are those of one piece.
      remat: recompute instead of store (docs/schedules.md): the forward keeps only the
        state entering each segment of ``⌈√T⌉`` steps, and the backward runs each segment's
        forward again before differentiating it. The same gradient; memory O(√T) of the
        neuron states instead of O(T) residuals, for one more forward pass.
      bits: keep the spikes that synapses read for their weight gradients as bits
        (docs/schedules.md, spikes as bits): the same gradient, less memory, the time to
        pack and unpack them. Not with ``remat``.
    """
    return Temporal(chunk=chunk, remat=remat, bits=bits)
