"""Spatial learning through time (Meng et al. 2023): SLTT and SLTT-K."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from snnjax.rules.base import Temporal

__all__ = ["sltt", "sltt_k", "select_steps"]


def sltt(*, chunk: int | None = None, remat: bool = False, bits: bool = False) -> Temporal:
    """SLTT: drop every temporal route of backprop, ``u[t] = λ·sg(v[t-1]) + I[t]``.

    ``∇W_l = Σ_t δ_l[t]·s_{l-1}[t]ᵀ`` with δ purely spatial; one optimizer step per batch.
    The gradient of each chunk of steps is taken inside the scan over chunks, with the
    state entering the chunk a constant.

    Args:
      chunk: steps per chunk (docs/schedules.md: the same gradient for every chunk). None or 1:
        memory O(1) in T, one step at a time. Larger chunks fold time into the batch of
        every synapse (faster, memory O(chunk)); ``chunk >= T`` runs the batch as one chunk.
      remat: refused (ValueError): each chunk is differentiated on its own and nothing is
        kept across chunks, so there is nothing to recompute; a smaller chunk is the way
        to less memory.
      bits: keep the spikes that synapses read for their weight gradients as bits
        (docs/schedules.md, spikes as bits) in chunks of more than one step: the same
        gradient, less memory, the time to pack and unpack them. A one-step chunk keeps
        floats (its residuals live for one step's backward).
    """
    return Temporal(cut=True, chunk=chunk, remat=remat, bits=bits)


def select_steps(key, T: int, K: int) -> jax.Array:
    """A bool mask ``[T]`` with K distinct steps drawn uniformly without replacement."""
    idx = jax.random.choice(key, T, (K,), replace=False)
    return jnp.zeros((T,), bool).at[idx].set(True)


def sltt_k(K: int, *, steps: Sequence[int] | None = None, chunk: int | None = None,
           remat: bool = False, bits: bool = False) -> Temporal:
    """SLTT-K: as SLTT, but backward only at K steps drawn per batch (the same for the batch).

    A forward pass over all T steps (no differentiation; it advances neuron state and
    BatchNorm statistics) records what the neurons need of the selected steps; their forward
    and backward then run as one batched chunk of K independent steps (docs/schedules.md): the
    backward's time ∝ K. The loss stays divided by T; the reported loss is the sum over all T steps.
    Memory O(K): flat in T, growing with K (the K steps' recorded states and their batched
    backward); ``rule.memory`` says ``"O(K)"``.

    Args:
      K: number of steps with a backward pass, 1 <= K <= T.
      steps: explicit step indices instead of random ones (reproducibility, tests);
        ``len(steps)`` must equal K. Random steps come from the ``key`` passed to the rule
        (split once, its second half selecting the steps; dropout uses the key itself).
      chunk: steps per chunk of the forward pass (memory O(chunk), faster when larger).
      remat: refused (ValueError), as for :func:`sltt`.
      bits: keep the spikes that the replay's synapses read for their weight gradients as
        bits (docs/schedules.md, spikes as bits): the same gradient, less memory for the K
        replayed steps.
    """
    return Temporal(cut=True, K=K, steps=None if steps is None else tuple(steps), chunk=chunk,
                    remat=remat, bits=bits)
