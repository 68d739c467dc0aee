"""Backpropagation through time: differentiate the whole scan. Memory O(T)."""

from __future__ import annotations

import jax

from snnjax.rules.base import Aux, Forward, Rule

__all__ = ["bptt"]


def _bptt_grad(fwd: Forward, params, state, xs, ys, *, loss, key):
    carry0 = fwd.init_carry(params, state, xs[0])

    def total_loss(p):
        carry, heads = fwd.run(p, carry0, xs, key)
        return sum(loss.sequence(o, ys) for o in heads), (heads[-1].sum(axis=0), carry)

    (value, (logits, carry)), grads = jax.value_and_grad(total_loss, has_aux=True)(params)
    return value, Aux(logits, {c: carry[c] for c in state}), grads


def bptt() -> Rule:
    """BPTT with surrogate gradients: ``jax.value_and_grad`` of a ``lax.scan`` over all T.

    Every temporal route (``v[t-1] → u[t]``) is kept, so residuals of all T steps are stored:
    memory O(T). The baseline every other rule is compared to; the only rule that can use
    the rate loss.
    """
    return Rule(name="bptt", grad_fn=_bptt_grad, rate_loss_ok=True, memory="O(T)")
