"""Backpropagation through time: differentiate the whole sequence. Memory O(T)."""

from __future__ import annotations

from snnjax.rules.base import Temporal

__all__ = ["bptt"]


def bptt(*, chunk: int | None = None) -> Temporal:
    """BPTT with surrogate gradients: ``jax.value_and_grad`` of the forward over all T.

    Every temporal route (``v[t-1] → u[t]``) is kept, so residuals of all T steps are stored:
    memory O(T). The baseline every other rule is compared to; the only rule that can use
    the rate loss.

    Args:
      chunk: steps per application of the model (docs/schedules.md: the same gradient for every
        chunk). None (default): one chunk of T, each synapse one op over all ``T·B``
        samples and each neuron scanning its own recursion: the fastest. Smaller chunks
        run as a ``lax.scan`` over chunks: the same stored residuals, but the backward's
        temporaries are those of one chunk (``chunk=1``: the per-step scan, least memory).
    """
    return Temporal(chunk=chunk)
