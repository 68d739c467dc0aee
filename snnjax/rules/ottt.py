"""Online training through time (Xiao et al. 2022): OTTT_A and OTTT_O."""

from __future__ import annotations

from snnjax.rules.base import Rule, windowed_grad

__all__ = ["ottt", "ottt_a", "ottt_o"]


def _ottt_grad(fwd, params, state, xs, ys, *, loss, key):
    value, aux, grads, _, _ = windowed_grad(
        fwd, params, state, xs, ys, loss=loss, key=key, window=1
    )
    return value, aux, grads


def _ottt_online(fwd, params, state, xs, ys, *, loss, key, optimizer, opt_state):
    return windowed_grad(
        fwd, params, state, xs, ys, loss=loss, key=key, window=1,
        optimizer=optimizer, opt_state=opt_state,
    )


def ottt(*, online: bool = False) -> Rule:
    """OTTT: SLTT's per-step gradient with presynaptic traces in the weight gradient.

    Every traced synapse keeps ``â[t] = λ·â[t-1] + s[t]`` of its input (no gradient) and
    uses ``∇W_l[t] = δ_l[t]·â_{l-1}[t]ᵀ``, while ``Wᵀδ`` still reaches the spike path
    (:func:`snnjax.layers.traced_op`). The first synapse (raw input) is not traced; the
    readout is. Only average pooling, scaling and fixed dropout may sit between a neuron and
    a traced synapse: max pooling raises. Memory O(1) in T.

    Args:
      online: False is OTTT_A (accumulate over T, one optimizer step per batch); True is
        OTTT_O (optimizer step at every time step, T updates per batch; the step t+1 forward
        uses the updated weights, state and traces carry over).
    """
    return Rule(
        name="ottt_o" if online else "ottt_a",
        grad_fn=_ottt_grad,
        online_fn=_ottt_online if online else None,
        traced=True,
        memory="O(1)",
        updates_per_batch=(lambda T: T) if online else (lambda T: 1),
    )


def ottt_a() -> Rule:
    """OTTT_A: ``ottt(online=False)``."""
    return ottt(online=False)


def ottt_o() -> Rule:
    """OTTT_O: ``ottt(online=True)``."""
    return ottt(online=True)
