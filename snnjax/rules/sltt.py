"""Spatial learning through time (Meng et al. 2023): SLTT and SLTT-K."""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.rules.base import Rule, windowed_grad

__all__ = ["sltt", "sltt_k", "select_steps"]


def _sltt_grad(fwd, params, state, xs, ys, *, loss, key):
    value, aux, grads, _, _ = windowed_grad(
        fwd, params, state, xs, ys, loss=loss, key=key, window=1
    )
    return value, aux, grads


def sltt() -> Rule:
    """SLTT: drop every temporal route of backprop, ``u[t] = λ·sg(v[t-1]) + I[t]``.

    At each step, ``value_and_grad`` of that step's loss ``L[t]`` with the incoming state as
    a constant, accumulated inside the ``lax.scan`` over time; one optimizer step per batch.
    ``∇W_l = Σ_t δ_l[t]·s_{l-1}[t]ᵀ`` with δ purely spatial. Memory O(1) in T.
    """
    return Rule(name="sltt", grad_fn=_sltt_grad, memory="O(1)")


def select_steps(key, T: int, K: int) -> jax.Array:
    """A bool mask ``[T]`` with K distinct steps drawn uniformly without replacement."""
    idx = jax.random.choice(key, T, (K,), replace=False)
    return jnp.zeros((T,), bool).at[idx].set(True)


def _check_K(K: int, steps, T: int) -> None:
    if K > T:
        raise ValueError(f"SLTT-K: K={K} is larger than the number of time steps T={T}")
    if steps is not None and max(steps) >= T:
        raise ValueError(f"SLTT-K: steps {tuple(steps)} must lie in [0, T={T})")


def _sltt_k_grad(fwd, params, state, xs, ys, *, loss, key, K, steps):
    T = xs.shape[0]
    if steps is not None:
        selected = jnp.asarray(np.isin(np.arange(T), steps))
    else:
        if key is None:
            raise ValueError("SLTT-K draws its K steps from a PRNG key: pass key=")
        key, select_key = jax.random.split(key)
        selected = select_steps(select_key, T, K)
    value, aux, grads, _, _ = windowed_grad(
        fwd, params, state, xs, ys, loss=loss, key=key, window=1, selected=selected
    )
    return value, aux, grads


def sltt_k(K: int, *, steps: Sequence[int] | None = None) -> Rule:
    """SLTT-K: as SLTT, but backward only at K steps drawn per batch (the same for the batch).

    Other steps run forward only (they advance neuron state and BatchNorm statistics); a
    ``lax.cond`` skips their backward, so the work really is saved. The loss stays divided by
    T; the reported loss is the sum over all T steps. Memory O(1) in T.

    Args:
      K: number of steps with a backward pass, 1 <= K <= T.
      steps: explicit step indices instead of random ones (reproducibility, tests);
        ``len(steps)`` must equal K.
    """
    if not isinstance(K, int) or K < 1:
        raise ValueError(f"SLTT-K: K must be an integer >= 1, got {K!r}")
    if steps is not None:
        steps = tuple(sorted(int(s) for s in steps))
        if len(set(steps)) != K or min(steps) < 0:
            raise ValueError(f"SLTT-K: steps must be {K} distinct indices >= 0, got {steps}")
    return Rule(
        name=f"sltt_k(K={K})" if steps is None else f"sltt_k(K={K},steps={list(steps)})",
        grad_fn=functools.partial(_sltt_k_grad, K=K, steps=steps),
        check=functools.partial(_check_K, K, steps),
        memory="O(1)",
    )
