"""Online training through time (Xiao et al. 2022): OTTT_A and OTTT_O."""

from __future__ import annotations

from snnjax.rules.base import Rule, Temporal

__all__ = ["ottt", "ottt_a", "ottt_o"]


def ottt(*, online: bool = False, chunk: int | None = None, remat: bool = False,
         bits: bool = False) -> Rule:
    """OTTT: SLTT's per-step gradient with presynaptic traces in the weight gradient.

    Every traced synapse keeps ``â[t] = λ·â[t-1] + s[t]`` of its input (no gradient) and
    uses ``∇W_l = Σ_t δ_l[t]·â_{l-1}[t]ᵀ``, while ``Wᵀδ`` still reaches the spike path
    (:func:`snnjax.layers.traced_op`). The first synapse (raw input) is not traced; the
    readout is. Only average pooling, scaling and fixed dropout may sit between a neuron and
    a traced synapse. A model is refused, with the layer named, before compiling when it has
    a traced synapse on the raw input, an untraced synapse after a neuron, a synapse whose
    ``trace_decay`` is not the λ of the neuron before it (e.g. 0.5 behind an ``IF``), a
    learnable decay (PLIF) or max pooling. Memory O(1) in T.

    Args:
      online: False is OTTT_A (accumulate over T, one optimizer step per batch); True is
        OTTT_O (optimizer step at every time step, T updates per batch; the step t+1 forward
        uses the updated weights, state and traces carry over): always one step per chunk.
      chunk: OTTT_A's steps per chunk (as :func:`snnjax.rules.sltt`); not with online.
      remat: refused (ValueError), as for :func:`snnjax.rules.sltt`.
      bits: as for :func:`snnjax.rules.sltt`, taken for every rule alike; but every
        synapse after a neuron keeps its presynaptic trace, which is graded, so under
        OTTT the bits change nothing.
    """
    rule = Temporal(cut=True, traces=True, chunk=chunk, remat=remat, bits=bits)
    if online:
        from snnjax.rules.online import online as online_

        return online_(rule)
    return rule


def ottt_a(*, chunk: int | None = None) -> Temporal:
    """OTTT_A: ``ottt(online=False)``."""
    return ottt(online=False, chunk=chunk)


def ottt_o() -> Rule:
    """OTTT_O: ``ottt(online=True)``."""
    return ottt(online=True)
