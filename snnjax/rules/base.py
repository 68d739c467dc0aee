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
from typing import Any, ClassVar

import flax.linen as nn
import jax
import optax

from snnjax.losses import Loss
from snnjax.rules.engine import TRANSIENT, Aux, Plan, Stage, resolve_pieces, run
from snnjax.rules.model_checks import check_batch, check_model

__all__ = ["Rule", "Temporal", "Aux", "TRANSIENT", "RULE_STATE"]

PyTree = Any

#: The collection of ``state`` holding a rule's own persistent values, not trained by the
#: optimizer (e-prop's random feedback matrices): initialised by :meth:`Rule.init_state`,
#: carried through the training step and checkpointed with the rest of ``state``.
RULE_STATE = "rule"


def _init(model: nn.Module, key, x: jax.Array):
    return model.init(key, x, train=False)


_init_jitted = jax.jit(_init, static_argnums=0)


def _init_variables(model: nn.Module, key, x: jax.Array):
    # One compiled program instead of the model's ops dispatched one by one (a conv net's
    # eager init compiles each op on its own); a module with unhashable fields runs eagerly.
    try:
        hash(model)
    except TypeError:
        return _init(model, key, x)
    return _init_jitted(model, key, x)


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return value


class Rule:
    """The interface shared by every rule. Subclasses are frozen dataclasses defining
    ``name``, ``memory``, :meth:`plan`, :meth:`stages` and :meth:`updates_per_batch`; a rule
    with its own loop overrides :meth:`loop` (e-prop), one with persistent values of its own
    :meth:`init_state` (the rule state, ``state[RULE_STATE]``)."""

    name: str
    memory: str
    #: Whether the rule runs its own loop over a batch (:meth:`loop` overridden: e-prop,
    #: OSTL) instead of the engine's, which :func:`snnjax.rules.online` wraps.
    own_loop: ClassVar[bool] = False

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

    def schedules(self, T: int) -> tuple["Rule", ...]:
        """This rule under each schedule the engine offers at T steps: the same gradient,
        other memory and time (SPEC §9, docs/schedules.md), ordered from the least added work
        to the least memory, ``self`` first. The planner
        (:func:`snnjax.bench.planner.schedule_rows`) takes the first whose compiled step fits
        a budget, as SpikingJelly's ``memopt`` levels but decided from compiled memory."""
        return (self,)

    @property
    def temporal(self) -> "Temporal":
        """The temporal rule inside any wrappers (what is cut, traced, selected)."""
        raise NotImplementedError

    # -- the public interface -------------------------------------------------------------

    def init(self, model: nn.Module, key, x_t: jax.Array) -> tuple[PyTree, PyTree]:
        """Initialise ``(params, state)`` from one time step ``x_t [B, ...]``.

        Under Local the parameters include the auxiliary heads.
        """
        variables = _init_variables(model, key, x_t[None])
        params = variables["params"]
        skip = set(TRANSIENT) | {"params", "history"}
        state = {k: v for k, v in variables.items() if k not in skip}
        rule_state = self.init_state(model, params, key, x_t)
        if rule_state:
            state = {**state, RULE_STATE: rule_state}
        return params, state

    def init_state(self, model: nn.Module, params: PyTree, key, x_t: jax.Array) -> dict:
        """The rule's own persistent values (``state[RULE_STATE]``), drawn from ``key``;
        ``{}`` (no rule state) unless a rule has some (e-prop's random feedback)."""
        return {}

    def loop(self, stages: tuple[Stage, ...], params, state, xs, ys, *, loss: Loss, key,
             plan: Plan, optimizer=None, opt_state=None):
        """The loop this rule runs over one batch: ``(loss, Aux, grads, params, opt_state)``
        as :func:`~snnjax.rules.engine.run`, which it is for the rules of the engine
        (temporal, local, online); a rule with another loop (e-prop) overrides it, composing
        the engine's pieces. ``state`` may hold the rule state (:data:`RULE_STATE`), which
        this loop hands back unchanged in ``Aux.state``."""
        model_state = {k: v for k, v in state.items() if k != RULE_STATE}
        value, aux, grads, new_params, new_opt_state = run(
            stages, params, model_state, xs, ys, loss=loss, key=key, plan=plan,
            optimizer=optimizer, opt_state=opt_state)
        if RULE_STATE in state:
            aux = Aux(aux.logits, {**aux.state, RULE_STATE: state[RULE_STATE]},
                      aux.head_losses)
        return value, aux, grads, new_params, new_opt_state

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
        model_state = {k: v for k, v in state.items() if k != RULE_STATE}
        rows = check_model(stages, params, model_state, xs, plan)
        return resolve_pieces(plan, rows), stages

    def _prepare(self, model, params, state, xs, ys, loss):
        """Every check before anything is compiled; ``(plan, stages)`` for the engine."""
        check_batch(xs, ys)
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
        value, aux, grads, _, _ = self.loop(stages, params, state, xs, ys, loss=loss,
                                            key=key, plan=plan)
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
        value, aux, grads, new_params, new_opt_state = self.loop(
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
      remat: (BPTT, TBPTT) recompute the forward during the backward: a window stores only
        the neuron states (and other carried state) entering each segment of ``⌈√window⌉``
        steps (:func:`snnjax.rules.engine.remat_segment`), and each segment's forward is run
        again, once, when its backward needs it. The same gradient; memory O(√window)
        instead of O(window), for one more forward pass (docs/schedules.md).
      bits: keep the spike trains that synapses read for their weight gradients as bits
        (:mod:`snnjax.spikes`; where the model says an input is one, its ``input_storage``)
        instead of floats: the same gradient, less memory where several steps' residuals
        are stored, and the time to pack and unpack them (docs/schedules.md, spikes as
        bits). Where bits save nothing the engine keeps floats: a one-step chunk of the
        cut route, OTTT's traces. Not with ``remat``, whose recomputed steps store no
        spikes.
    """

    window: int | None = None
    cut: bool = False
    traces: bool = False
    K: int | None = None
    steps: tuple[int, ...] | None = None
    chunk: int | None = None
    remat: bool = False
    bits: bool = False

    def __post_init__(self):
        if self.window is not None:
            _positive_int(self.window, "TBPTT window k")
        if self.chunk is not None:
            _positive_int(self.chunk, "chunk")
        if not isinstance(self.remat, bool):
            raise ValueError(f"remat must be True or False, got {self.remat!r}")
        if not isinstance(self.bits, bool):
            raise ValueError(f"bits must be True or False, got {self.bits!r}")
        if self.bits and self.remat:
            raise ValueError(
                "bits and remat: a recomputed window stores no spikes (only the neurons' "
                "potentials), so there are no bits to keep: choose one (docs/schedules.md)"
            )
        if self.remat and self.cut:
            raise ValueError(
                "remat recomputes the steps of a differentiated window (bptt, tbptt); "
                f"{self._cut_name()} differentiates one chunk at a time and keeps nothing "
                "across chunks: lower its chunk= for less memory (docs/schedules.md)"
            )
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

    def _cut_name(self) -> str:
        if self.K is not None:
            return "sltt_k"
        return "ottt" if self.traces else "sltt"

    @property
    def name(self) -> str:
        if not self.cut:
            base = "bptt" if self.window is None else f"tbptt(k={self.window})"
            schedule = ([] if self.chunk is None else [f"chunk={self.chunk}"]) + (
                ["bits"] if self.bits else []) + (["remat"] if self.remat else [])
            return f"{base}[{','.join(schedule)}]" if schedule else base
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
        if self.bits:
            args.append("bits")
        return f"{base}({','.join(args)})" if args else base

    @property
    def memory(self) -> str:
        if not self.cut:
            window = "T" if self.window is None else "k"
            return f"O(√{window})" if self.remat else f"O({window})"
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

    def schedules(self, T: int) -> tuple[Rule, ...]:
        """:meth:`Rule.schedules`. For the cut rules: the chunk halved down to 1 step, each a
        smaller unit of differentiation (memory O(chunk)), the same work; a chunk of more
        than one step followed by itself with ``bits`` (its residuals packed, at the chunk's
        speed). For BPTT and TBPTT: the window as per-step pieces (least temporaries, the
        same work), then both with ``bits`` (packing the spikes), then ``remat`` (one more
        forward pass, O(√window) states), then remat in per-step pieces. ``bits`` only
        where they change memory: not at one-step chunks, not under OTTT's traces (which
        are graded), not under remat."""
        if self.cut:
            chunks, c = [], min(self.chunk or 1, T)
            while True:
                chunks.append(c)
                if c == 1:
                    break
                c = max(1, c // 2)
            def packs_at(c: int) -> bool:
                # SLTT-K's replay differentiates its K steps at once, whatever the chunk.
                return not self.traces and (c > 1 or self.K is not None)

            found = [self if self.chunk in (None, chunks[0]) else
                     dataclasses.replace(self, chunk=chunks[0])]
            for i, c in enumerate(chunks):
                at = dataclasses.replace(self, chunk=c, bits=self.bits and packs_at(c))
                if i:
                    found.append(at)
                if packs_at(c) and not self.bits:
                    found.append(dataclasses.replace(at, bits=True))
        else:
            found = [self, dataclasses.replace(self, chunk=1)]
            window = T if self.window is None else min(self.window, T)
            if not self.bits and not self.remat and window > 1:
                found += [dataclasses.replace(s, bits=True) for s in found]
            if not self.remat:
                plain = dataclasses.replace(self, bits=False)
                found += [dataclasses.replace(plain, remat=True),
                          dataclasses.replace(plain, remat=True, chunk=1)]
        return tuple(dict.fromkeys(found))

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
                    steps=self.steps, remat=self.remat, bits=self.bits)
