"""Temporally truncated BPTT (Guo et al. 2023): BPTT inside windows of k steps."""

from __future__ import annotations

from snnjax.rules.base import Rule, Temporal

__all__ = ["tbptt"]


def tbptt(k: int, *, online: bool = False, chunk: int | None = None,
          remat: bool = False, bits: bool = False) -> Rule:
    """TBPTT(k): split T into windows of ``k`` steps; BPTT inside, ``stop_gradient`` on all
    carried state at every boundary; gradients summed over windows.

    ``L = Σ_t L[t]`` with the per-step loss (each window's loss divided by the full T); the
    last window is shorter when k does not divide T. k = T is BPTT, k = 1 is SLTT.
    Each window's gradient is taken inside a scan over windows: memory O(k), not O(T).

    Args:
      k: window length, 1 <= k <= T.
      online: step the optimizer after every window (:func:`snnjax.rules.online`; the
        mechanics of this option are ours).
      chunk: steps per application of the model within a window (as :func:`bptt`);
        None: pieces chosen from the model, at most the window.
      remat: recompute each window's forward in segments of ``⌈√k⌉`` steps during its
        backward (as :func:`bptt`): memory O(√k) of the neuron states, the same gradient.
      bits: keep the spikes that synapses read for their weight gradients as bits (as
        :func:`bptt`); nothing to keep at k = 1. Not with ``remat``.
    """
    rule = Temporal(window=k, chunk=chunk, remat=remat, bits=bits)
    if online:
        from snnjax.rules.online import online as online_

        return online_(rule)
    return rule
