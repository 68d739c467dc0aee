"""Temporally truncated BPTT (Guo et al. 2023): BPTT inside windows of k steps."""

from __future__ import annotations

import functools

from snnjax.rules.base import Rule, windowed_grad

__all__ = ["tbptt"]


def _check_window(k: int, T: int) -> None:
    if k > T:
        raise ValueError(f"TBPTT window k={k} is longer than the sequence (T={T})")


def _grad(fwd, params, state, xs, ys, *, loss, key, k):
    value, aux, grads, _, _ = windowed_grad(
        fwd, params, state, xs, ys, loss=loss, key=key, window=k
    )
    return value, aux, grads


def _online(fwd, params, state, xs, ys, *, loss, key, optimizer, opt_state, k):
    return windowed_grad(
        fwd, params, state, xs, ys, loss=loss, key=key, window=k,
        optimizer=optimizer, opt_state=opt_state,
    )


def tbptt(k: int, *, online: bool = False) -> Rule:
    """TBPTT(k): split T into windows of ``k`` steps; BPTT inside, ``stop_gradient`` on all
    carried state at every boundary; gradients summed over windows.

    ``L = Σ_t L[t]`` with the per-step loss (each window's loss divided by the full T); the
    last window is shorter when k does not divide T. k = T is BPTT, k = 1 is SLTT.
    The gradient of one window is taken inside a scan over windows: memory O(k), not O(T).

    Args:
      k: window length, 1 <= k <= T.
      online: step the optimizer after every window (the mechanics of this option are ours).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"TBPTT window k must be an integer >= 1, got {k!r}")
    return Rule(
        name=f"tbptt(k={k})" + (",online" if online else ""),
        grad_fn=functools.partial(_grad, k=k),
        online_fn=functools.partial(_online, k=k) if online else None,
        check=functools.partial(_check_window, k),
        memory="O(k)",
        updates_per_batch=(lambda T: -(-T // k)) if online else (lambda T: 1),
    )
