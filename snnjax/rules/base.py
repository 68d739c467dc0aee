"""What every rule shares: the public interface, and the temporal rules as data.

A rule is a frozen dataclass (like an optax ``GradientTransformation``, a value): built by a
factory (``bptt()``, ``tbptt(k=4)``, ``sltt(chunk=8)``, ``sltt_k(K=2)``, ``ottt()``,
``local(inner, block_size=2)``, ``online(inner)``), equal and hashed by value, so it can be
a jit static argument. What it *is* lives in its fields; the engine
(:mod:`snnjax.rules.engine`) and :mod:`snnjax.cost` read them through :meth:`Rule.plan`.
Every rule is used the same way:

    loss, aux, grads = rule.value_and_grad(model, params, state, xs, ys, loss=..., key=...)
    params, opt_state, state, loss, logits = rule.update(model, params, opt_state, state,
                                                         xs, ys, loss=..., key=...,
                                                         optimizer=...)

with ``xs [T, B, ...]`` (time-major) and ``ys [B]`` integer labels. ``state`` holds the
persistent collections (BatchNorm's ``batch_stats``); neuron states and traces start at 0
for every batch. The training step never branches on which rule it has.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import chex
import flax
import flax.linen as nn
import jax
import optax

from snnjax.layers import TRACE_ERROR, Conv, Dense, MaxPool
from snnjax.losses import Loss
from snnjax.neurons import SpikingNeuron
from snnjax.rules.engine import TRANSIENT, Aux, Plan, Stage, resolve_pieces, run

__all__ = ["Rule", "Temporal", "Aux", "TRANSIENT", "check_model"]

PyTree = Any


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return value


class Rule:
    """The interface shared by every rule. Subclasses are frozen dataclasses defining
    ``name``, ``memory``, :meth:`plan`, :meth:`stages` and :meth:`updates_per_batch`."""

    name: str
    memory: str

    # -- what the rule is, read by the engine and by cost --------------------------------

    def plan(self, T: int) -> Plan:
        """What the engine does for a batch of T steps."""
        raise NotImplementedError

    def stages(self, model: nn.Module) -> tuple[Stage, ...]:
        """The model as the pieces the engine runs in order (one unless Local)."""
        return (Stage(model),)

    def updates_per_batch(self, T: int) -> int:
        """Optimizer steps per batch of T steps (schedules stepped per epoch need it)."""
        return 1

    @property
    def rate_loss_ok(self) -> bool:
        """Whether the rule can take a loss coupling all steps (the rate loss)."""
        return False

    @property
    def temporal(self) -> "Temporal":
        """The temporal rule inside any wrappers (what is cut, traced, selected)."""
        raise NotImplementedError

    # -- the public interface -------------------------------------------------------------

    def init(self, model: nn.Module, key, x_t: jax.Array) -> tuple[PyTree, PyTree]:
        """Initialise ``(params, state)`` from one time step ``x_t [B, ...]``.

        Under Local the parameters include the auxiliary heads.
        """
        variables = model.init(key, x_t[None], train=False)
        params = variables["params"]
        skip = set(TRANSIENT) | {"params", "history"}
        state = {k: v for k, v in variables.items() if k not in skip}
        return params, state

    def validate(self, T: int, loss: Loss) -> None:
        """Raise ValueError before compiling when the rule cannot run with this T and loss."""
        if T < 1:
            raise ValueError(f"T (time steps) must be >= 1, got {T}")
        self.plan(T)  # each rule's own checks (window > T, K > T, ...)
        if loss.kind != "per_step" and not self.rate_loss_ok:
            raise ValueError(
                f"rule {self.name} needs the per-step loss (docs/rules.md); the rate loss "
                "couples all time steps and only BPTT can use it"
            )

    def plan_for(self, model: nn.Module, params, state, xs) -> Plan:
        """The plan the engine runs for ``model`` on batches shaped like ``xs [T, B, ...]``:
        :meth:`plan` with the pieces it leaves to the model chosen
        (:func:`~snnjax.rules.engine.piece_length`; docs/schedules.md). Checks the model
        first (:func:`check_model`)."""
        return self._plan_and_stages(model, params, state, xs)[0]

    def _plan_and_stages(self, model, params, state, xs):
        plan, stages = self.plan(xs.shape[0]), self.stages(model)
        rows = check_model(stages, params, state, xs, plan)
        return resolve_pieces(plan, rows), stages

    def _prepare(self, model, params, state, xs, ys, loss):
        """Every check before anything is compiled; ``(plan, stages)`` for the engine."""
        _check_batch(xs, ys)
        self.validate(xs.shape[0], loss)
        return self._plan_and_stages(model, params, state, xs)

    def value_and_grad(self, model, params, state, xs, ys, *, loss: Loss, key=None):
        """Loss, aux and gradients for one batch ``xs [T, B, ...]``, ``ys [B]``.

        ``loss`` is Σ over all T steps (and Local's heads); ``aux.logits`` the readout's
        logits summed over time ``[B, classes]``. For rules with in-loop updates (OTTT_O)
        this is the gradient summed over steps at fixed weights; the updates happen in
        :meth:`update`.
        """
        plan, stages = self._prepare(model, params, state, xs, ys, loss)
        plan = dataclasses.replace(plan, online=False)
        value, aux, grads, _, _ = run(stages, params, state, xs, ys, loss=loss, key=key,
                                      plan=plan)
        return value, aux, grads

    def update(self, model, params, opt_state, state, xs, ys, *, loss, key, optimizer):
        """One training step on a batch: ``(params, opt_state, state, loss, logits)``.

        ``loss`` is the value minimised (under Local, the sum of every head's loss); ``logits``
        are the readout's outputs summed over time, ``[B, classes]``.
        """
        params, opt_state, value, aux = self.update_with_aux(
            model, params, opt_state, state, xs, ys, loss=loss, key=key, optimizer=optimizer)
        return params, opt_state, aux.state, value, aux.logits

    def update_with_aux(self, model, params, opt_state, state, xs, ys, *, loss, key,
                        optimizer):
        """:meth:`update`, returning ``(params, opt_state, loss, aux)``: the
        :class:`~snnjax.rules.engine.Aux` holds the new state, the logits and, under Local,
        each head's loss."""
        if optimizer is None:
            raise ValueError(f"rule {self.name} needs an optax optimizer to update parameters")
        plan, stages = self._prepare(model, params, state, xs, ys, loss)
        value, aux, grads, new_params, new_opt_state = run(
            stages, params, state, xs, ys, loss=loss, key=key, plan=plan,
            optimizer=optimizer, opt_state=opt_state,
        )
        if not plan.online:
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
        return new_params, new_opt_state, value, aux


@dataclasses.dataclass(frozen=True)
class Temporal(Rule):
    """A rule defined by how gradients flow through time (docs/rules.md).

    Attributes:
      window: truncation window k (TBPTT); None for the whole sequence. All carried state is
        a constant at window boundaries.
      cut: cut every temporal route ``v[t-1] → u[t]`` (SLTT, OTTT).
      traces: presynaptic traces in the weight gradient (OTTT).
      K: backward only at K steps per batch (SLTT-K), or None.
      steps: SLTT-K's explicit steps instead of random ones, or None.
      chunk: steps per application of the model (the schedule, docs/schedules.md; the gradient
        is the same for every chunk). For the cut rules each chunk is also the unit of
        differentiation: memory O(chunk), speed grows with it; None is 1 (constant memory).
        For BPTT and TBPTT a window is differentiated as a whole and runs as a scan over
        chunks: 1 is the per-step scan (least memory for the backward's temporaries), the
        window's length one op per synapse over all its steps; None lets the engine choose
        from the model (:func:`snnjax.rules.engine.piece_length`: the fewest steps that
        give every synapse op enough rows to run at speed).
    """

    window: int | None = None
    cut: bool = False
    traces: bool = False
    K: int | None = None
    steps: tuple[int, ...] | None = None
    chunk: int | None = None

    def __post_init__(self):
        if self.window is not None:
            _positive_int(self.window, "TBPTT window k")
        if self.chunk is not None:
            _positive_int(self.chunk, "chunk")
        if (self.traces or self.K is not None) and not self.cut:
            raise ValueError("traces and selected steps need the cut temporal route")
        if self.window is not None and self.cut:
            raise ValueError("a window truncates the kept temporal route: not with cut=True")
        if self.K is not None:
            _positive_int(self.K, "SLTT-K: K")
        if self.steps is not None:
            steps = tuple(sorted(int(s) for s in self.steps))
            if self.K is None or len(set(steps)) != self.K or min(steps) < 0:
                raise ValueError(f"SLTT-K: steps must be {self.K} distinct indices >= 0, "
                                 f"got {steps}")
            object.__setattr__(self, "steps", steps)

    @property
    def name(self) -> str:
        if not self.cut:
            base = "bptt" if self.window is None else f"tbptt(k={self.window})"
            return base if self.chunk is None else f"{base}[chunk={self.chunk}]"
        args = []
        if self.K is not None:
            base = "sltt_k"
            args.append(f"K={self.K}")
            if self.steps is not None:
                args.append(f"steps={list(self.steps)}")
        else:
            base = "ottt_a" if self.traces else "sltt"
        if self.chunk is not None:
            args.append(f"chunk={self.chunk}")
        return f"{base}({','.join(args)})" if args else base

    @property
    def memory(self) -> str:
        if not self.cut:
            return "O(T)" if self.window is None else "O(k)"
        chunked = (self.chunk or 1) > 1
        if self.K is not None:  # the K selected steps' states, replayed as one batch
            return "O(K + chunk)" if chunked else "O(K)"
        return "O(chunk)" if chunked else "O(1)"

    @property
    def rate_loss_ok(self) -> bool:
        return not self.cut and self.window is None

    @property
    def temporal(self) -> "Temporal":
        return self

    def interval(self, T: int) -> int:
        """Steps between two in-loop updates (:func:`snnjax.rules.online`): the window, one
        step for the cut rules, T for BPTT."""
        if self.cut:
            return 1
        return T if self.window is None else self.window

    def plan(self, T: int) -> Plan:
        if self.window is not None and self.window > T:
            raise ValueError(f"TBPTT window k={self.window} is longer than the sequence (T={T})")
        if self.K is not None and self.K > T:
            raise ValueError(f"SLTT-K: K={self.K} is larger than the number of time steps T={T}")
        if self.steps is not None and max(self.steps) >= T:
            raise ValueError(f"SLTT-K: steps {self.steps} must lie in [0, T={T})")
        if self.cut:
            chunk = min(self.chunk or 1, T)
            apply = chunk
        else:
            chunk = T if self.window is None else self.window
            apply = None if self.chunk is None else min(self.chunk, chunk)
        return Plan(chunk=chunk, apply=apply, cut=self.cut, traces=self.traces, K=self.K,
                    steps=self.steps)


# ---------------------------------------------------------------------------- model checks


def _check_batch(xs, ys) -> None:
    """``xs [T, B, ...]`` time-major with integer labels ``ys [B]`` (at the public boundary;
    :func:`snnjax.train.validate_batch` gives the friendlier messages before this)."""
    try:
        chex.assert_rank(ys, 1)
        chex.assert_rank(xs, {3, 4, 5, 6})
        chex.assert_axis_dimension(xs, 1, ys.shape[0])
        chex.assert_type(ys, int)
    except AssertionError as err:
        raise ValueError(
            f"a rule takes xs [T, B, ...] (time-major) and integer labels ys [B]; got xs "
            f"{tuple(xs.shape)} and ys {tuple(ys.shape)} {ys.dtype}: {err}"
        ) from None


def _check_replayable(neuron_collection, calls) -> None:
    """SLTT-K replays its steps from the neurons' recorded states: refuse a model that keeps
    other state across steps in the ``"neuron"`` collection (e.g. VGG-F's feedback)."""
    neuron_paths = {tuple(m.path) for m in calls if isinstance(m, SpikingNeuron)}
    flat = flax.traverse_util.flatten_dict(dict(neuron_collection))
    for path in flat:
        if tuple(path[:-1]) not in neuron_paths:
            raise ValueError(
                f"SLTT-K replays its selected steps from the neurons' recorded states, but the "
                f"model keeps other state across steps: '{'/'.join(path)}' (docs/rules.md). "
                "Use sltt(), which carries it step by step"
            )


def _kernel_holder(module: nn.Module) -> bool:
    return any(module.has_variable("params", n) for n in ("kernel", "kernel_ws"))


def _layer(module: nn.Module) -> str:
    return f"'{'/'.join(module.path) or type(module).__name__}' ({type(module).__name__})"


def check_model(stages, params, state, xs, plan: Plan) -> int:
    """Raise ValueError, before compiling, when the model cannot serve the plan.

    Checks that the model maps a chunk ``[C, B, ...]`` to logits ``[C, B, classes]``, and
    under OTTT's traces that every synapse after a neuron is a traced snnjax synapse and
    that every neuron has a fixed decay (docs/rules.md), naming the layer.

    Returns:
      the most rows of one step's synapse op (its output's samples × positions, e.g.
      ``B·H·W`` for a convolution), from which the engine chooses its default pieces
      (:func:`~snnjax.rules.engine.resolve_pieces`).
    """
    calls, rows = [], 0

    def probe(next_fun, args, kwargs, context):
        nonlocal rows
        if context.method_name == "__call__" and plan.traces and isinstance(
                context.module, MaxPool):
            raise ValueError(f"OTTT cannot train through {_layer(context.module)}: "
                             + TRACE_ERROR)
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__":
            calls.append(context.module)
            if _kernel_holder(context.module) and hasattr(out, "shape"):
                rows = max(rows, math.prod(out.shape[:-1]))
        return out

    r = plan.route
    x = jax.ShapeDtypeStruct((1, *xs.shape[1:]), xs.dtype)
    for stage in stages:
        sp = stage.take(params)
        st = {c: stage.take(state[c]) for c in state}
        mutable = list(plan.transient) + list(st)

        def apply(x_in, stage=stage, sp=sp, st=st, mutable=mutable):
            with nn.intercept_methods(probe):
                return stage.apply({"params": sp, **st}, x_in, train=False, key=None,
                                   mutable=mutable, r=r)

        (x, logits), new = jax.eval_shape(apply, x)
        if logits.ndim != 3 or logits.shape[:2] != (1, xs.shape[1]):
            raise ValueError(
                f"the model must map a chunk xs [C, B, ...] to logits [C, B, classes] "
                f"(docs/models.md); for a chunk of shape {(1, *xs.shape[1:])} it returned "
                f"{tuple(logits.shape)}"
            )
        if plan.K is not None:
            _check_replayable(new.get("neuron", {}), calls)
    _warn_flax_batch_norm(calls)
    if plan.traces:
        _check_traced(calls)
    return rows


def _warn_flax_batch_norm(calls) -> None:
    """flax's ``nn.BatchNorm`` pools its statistics over every step of a chunk, so what it
    computes depends on the schedule (docs/models.md): say so, once per layer."""
    for module in calls:
        if isinstance(module, nn.BatchNorm):
            warnings.warn(
                f"{_layer(module)} is flax.linen.BatchNorm: in training it pools the "
                "statistics over all C steps of a chunk, so the result depends on the "
                "schedule (chunk, window, rule); use snnjax.layers.BatchNorm, which "
                "normalises each time step by its own batch (docs/models.md)",
                UserWarning, stacklevel=2,
            )


def _check_traced(calls) -> None:
    """OTTT's traces (docs/models.md): every neuron has a fixed decay; the first synapse, on
    the raw input, is not traced; every synapse after a neuron is traced, with the decay of
    the neuron called last before it.

    The order is the order of the calls: the neuron "before" a synapse is the last one
    that ran before it.
    """
    last_neuron = None
    first_synapse = True
    for module in calls:
        if isinstance(module, SpikingNeuron):
            if not module.fixed_decay:
                raise ValueError(
                    f"OTTT cannot train neuron {_layer(module)}: its decay is learnable, and "
                    "OTTT's presynaptic trace assumes a fixed λ (docs/rules.md)"
                )
            last_neuron = module
            continue
        if not _kernel_holder(module):
            continue
        traced = isinstance(module, (Dense, Conv)) and module.traced
        if first_synapse and last_neuron is None and traced:
            raise ValueError(
                f"OTTT cannot train synapse {_layer(module)}: it reads the raw input (no "
                "spiking neuron runs before it), whose factor in the weight gradient is the "
                "input x[t] itself, but it keeps a presynaptic trace. Build it with "
                "traced=False (docs/models.md)"
            )
        first_synapse = False
        if last_neuron is None:
            continue
        if not traced:
            raise ValueError(
                f"OTTT cannot train synapse {_layer(module)}: it sits after a spiking "
                "neuron but keeps no presynaptic trace, so its weight gradient would be "
                "SLTT's. Use snnjax.layers.Dense/Conv (traced=True) (docs/models.md)"
            )
        decay = last_neuron.trace_decay
        if not math.isclose(module.trace_decay, decay, rel_tol=1e-6, abs_tol=1e-12):
            raise ValueError(
                f"OTTT cannot train synapse {_layer(module)}: its trace decays with "
                f"trace_decay={module.trace_decay:g}, but the neuron before it, "
                f"{_layer(last_neuron)}, has λ = {decay:g}, so its weight gradient would use "
                f"the wrong trace. Build it with trace_decay={decay:g} (docs/models.md)"
            )
