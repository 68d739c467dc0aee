"""Backpropagation through time: differentiate the whole scan. Memory O(T).

BPTT cuts nothing, so a feed-forward network's synapses do not need the per-step loop: where
the model allows it, :func:`bptt` computes the same function layer by layer
(:func:`snnjax.fast.run_layerwise`: each synapse over all ``T·B`` samples in one op, only the
LIF recursion scanned). ``layerwise="auto"`` (the default) does so for dense-only networks,
where it measured 2-2.5× faster on a CPU; conv nets stay on the per-step scan, which measured
faster there (BENCHMARKS.md, side by side).
"""

from __future__ import annotations

import jax

from snnjax.layers import standardize_params
from snnjax.rules.base import Aux, Forward, Rule

__all__ = ["bptt", "uses_layerwise"]

def _check_mode(layerwise) -> None:
    # `is` for the booleans: 1 and 0 compare equal to True and False but are not a mode.
    if not ((isinstance(layerwise, str) and layerwise == "auto") or layerwise is True
            or layerwise is False):
        raise ValueError(f"bptt(): layerwise must be 'auto', True or False, got {layerwise!r}")


def _layerwise_ok(fwd: Forward) -> None:
    """Raise ValueError unless ``fwd`` can run layer-wise (the model, no blocks, no traces)."""
    from snnjax import fast  # fast imports snnjax.rules.base: import lazily

    fast.check_layerwise(fwd.model, fwd.blocks)
    if fwd.traced:
        raise ValueError("layer-wise BPTT does not keep OTTT's presynaptic traces (traced=True)")


def _use_layerwise(fwd: Forward, layerwise) -> bool:
    """Whether BPTT with this ``layerwise`` setting runs ``fwd`` layer by layer."""
    _check_mode(layerwise)
    if layerwise is False:
        return False
    if layerwise is True:
        _layerwise_ok(fwd)  # raises with the reason
        return True
    try:
        _layerwise_ok(fwd)
    except ValueError:
        return False
    from snnjax.models.base import DenseUnit

    # Measured: layer-wise wins on dense layers; on conv nets the per-step scan is faster.
    return all(type(unit) is DenseUnit for unit in fwd.model.units)


def uses_layerwise(model, rule: Rule) -> bool:
    """Whether ``rule`` (a :func:`bptt` rule) computes ``model``'s gradients layer by layer.

    Raises ValueError for a rule that is not BPTT, or for ``layerwise=True`` on a model that
    cannot run layer-wise (the reason in the message).
    """
    mode = _GRAD_MODES.get(rule.grad_fn)
    if mode is None:
        raise ValueError(f"uses_layerwise: rule {rule.name!r} is not bptt()")
    return _use_layerwise(rule.forward(model), mode)


def _scan_grad(fwd: Forward, params, state, xs, ys, *, loss, key):
    carry0 = fwd.init_carry(params, state, xs[0])

    def total_loss(p):
        # Scaled-WS kernels standardised once, outside the scan (so once in the backward too).
        carry, heads = fwd.run(standardize_params(p), carry0, xs, key)
        return sum(loss.sequence(o, ys) for o in heads), (heads[-1].sum(axis=0), carry)

    (value, (logits, carry)), grads = jax.value_and_grad(total_loss, has_aux=True)(params)
    return value, Aux(logits, {c: carry[c] for c in state}), grads


def _layerwise_grad(fwd: Forward, params, state, xs, ys, *, loss, key):
    from snnjax import fast

    _layerwise_ok(fwd)

    def total_loss(p):
        outs = fast.run_layerwise(fwd.model, p, xs)
        return loss.sequence(outs, ys), outs.sum(axis=0)

    (value, logits), grads = jax.value_and_grad(total_loss, has_aux=True)(params)
    # No BatchNorm: nothing in the persistent state changes.
    return value, Aux(logits, {c: state[c] for c in state}), grads


def _auto_grad(fwd: Forward, params, state, xs, ys, *, loss, key):
    grad = _layerwise_grad if _use_layerwise(fwd, "auto") else _scan_grad
    return grad(fwd, params, state, xs, ys, loss=loss, key=key)


# Module-level functions (not closures), so that bptt() == bptt() as a jit static argument.
_GRAD_FNS = {"auto": _auto_grad, True: _layerwise_grad, False: _scan_grad}
_GRAD_MODES = {fn: mode for mode, fn in _GRAD_FNS.items()}


def bptt(layerwise: str | bool = "auto") -> Rule:
    """BPTT with surrogate gradients: ``jax.value_and_grad`` of the whole forward over all T.

    Every temporal route (``v[t-1] → u[t]``) is kept, so residuals of all T steps are stored:
    memory O(T). The baseline every other rule is compared to; the only rule that can use
    the rate loss.

    Args:
      layerwise: how the forward pass is computed; the loss, logits and gradients are the
        same function either way (tested to 1e-10 in float64).

        - ``"auto"`` (default): layer by layer (:func:`snnjax.fast.run_layerwise`) when the
          model qualifies (:func:`snnjax.fast.check_layerwise`: a ``SpikingSequential`` of
          Dense/Conv units without BatchNorm or dropout, not under Local, no OTTT traces)
          *and* every unit is a ``DenseUnit``; otherwise a ``lax.scan`` over per-step
          applications of the model. :func:`uses_layerwise` tells which one runs.
        - ``True``: always layer by layer; a model that does not qualify raises ValueError
          when the gradient is taken.
        - ``False``: always the per-step ``lax.scan``.

    The rule is named ``"bptt"`` whichever path it takes (tables and the CLI say ``bptt``).
    """
    _check_mode(layerwise)
    return Rule(name="bptt", grad_fn=_GRAD_FNS[layerwise], rate_loss_ok=True, memory="O(T)")
