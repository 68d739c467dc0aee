"""Walking a model: every module call of a run seen by one visitor, stage by stage.

The engine routes its neurons this way (:func:`snnjax.rules.engine.route`), the model checks
probe a model with it (:func:`snnjax.rules.model_checks.check_model`), and :mod:`snnjax.cost`
records the ops of a step and the firing rates of its synapses with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

import flax.linen as nn

if TYPE_CHECKING:
    from snnjax.neurons import Route
    from snnjax.rules.engine import Stage

__all__ = ["Visit", "calls", "take_state", "apply_stage"]

PyTree = Any

#: ``visit(module, call, args, kwargs) -> output``: sees one module's ``__call__``;
#: ``call(*args, **kwargs)`` runs it (with arguments the visitor may change).
Visit = Callable[[nn.Module, Callable[..., Any], tuple, dict], Any]


def calls(visit: Visit):
    """Within this context, every flax module's ``__call__`` runs as
    ``visit(module, call, args, kwargs)``, whose result is the call's output (flax's method
    interception: the model's own code is unchanged). Other methods run as they are."""

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        return visit(context.module, next_fun, args, kwargs)

    return nn.intercept_methods(interceptor)


def take_state(stage: "Stage", state: Mapping) -> dict:
    """The stage's part of every collection of ``state`` (the whole model's collections)."""
    return {c: stage.take(state[c]) for c in state}


def apply_stage(stage: "Stage", params: PyTree, state: Mapping, x, visit: Visit, *,
                r: "Route", mutable):
    """``stage`` applied in evaluation mode to ``x`` with its part of ``params`` and
    ``state`` (the whole model's), every module call going through ``visit``.

    Returns:
      :meth:`snnjax.rules.engine.Stage.apply`'s ``((features, logits), new collections)``.
    """
    variables = {"params": stage.take(params), **take_state(stage, state)}
    with calls(visit):
        return stage.apply(variables, x, train=False, key=None, mutable=mutable, r=r)
