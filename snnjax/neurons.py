"""Spiking neuron layers over a chunk of time: IF, LIF and PLIF.

A neuron layer maps input currents ``[C, B, ...]`` to spikes ``[C, B, ...]`` and keeps its
typed state (a NamedTuple, e.g. :class:`~snnjax.neuron.LIFState`) as the variable
``"state"`` of the ``"neuron"`` collection: the carry from one chunk to the next. It scans
its own recursion over the chunk; everything else in a model folds time into the batch.

A neuron knows nothing of training rules. The rule's engine tells it how its temporal route
``v[t-1] → u[t]`` is treated, as the keyword ``route`` of its call (:class:`Route`):

- ``KEEP``: differentiate through the recursion (BPTT, TBPTT inside a window). The
  ``"state"`` variable then holds the scan's own carry (:meth:`SpikingNeuron.kept`), so that
  a window run in several pieces stores nothing extra at their seams.
- ``CUT``: the state entering each step is a constant (SLTT, OTTT). The recursion runs
  without differentiation and the step is then re-applied to all C steps at once from
  those constant states, so the backward pass is element-wise over the chunk.
- ``REPLAY``: the ``"state"`` variable holds what an earlier pass recorded of C independent
  steps (stacked, ``[C, B, ...]``); the steps are applied to them at once
  (:meth:`SpikingNeuron.replay`: SLTT-K's batched backward at its selected steps).

With ``record=True`` the cut route also writes, for each step of the chunk, what the
neuron's replay needs of it (:meth:`SpikingNeuron.record`) to the ``"history"`` collection
(SLTT-K's forward pass).

A new neuron subclasses :class:`SpikingNeuron` and defines :meth:`~SpikingNeuron.initial_state`
and :meth:`~SpikingNeuron.dynamics`; the engine and the rules need no change.

A recurrent layer (:mod:`snnjax.recurrent`) hands its neuron a :class:`Recurrence`: a synapse
from the layer's own spikes at t-1, whose product joins the current inside the neuron's
scan. The neuron's state is then a :class:`RecurrentState` ``(its own state, s[t-1])`` and
every route above treats the recurrent route as it treats the membrane's: kept, cut (the
product of a chunk then runs as one op, traced under OTTT with the neuron's own λ), or
replayed from the recorded ``s[t-1]``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from snnjax.layers import fold, presynaptic_trace, traced_op, unfold
from snnjax.neuron import (
    ALIFState, Adaptation, LIFParams, LIFState, alif_carry, alif_kept, alif_state, alif_step,
    alif_step_v, lif_carry, lif_refire, lif_state, lif_step, lif_step_v, potential,
)

__all__ = [
    "Route", "KEEP", "CUT", "REPLAY", "SpikingNeuron", "LIF", "IF", "PLIF", "ALIF",
    "Recurrence", "RecurrentState",
]

State = Any
Step = Callable[[State, jax.Array], tuple[jax.Array, State]]


@dataclasses.dataclass(frozen=True)
class Route:
    """How a rule treats the temporal route of every neuron (see the module docstring).

    Attributes:
      kind: ``"keep"``, ``"cut"`` or ``"replay"``.
      record: (cut route) write what the neuron's replay needs of each step
        (:meth:`SpikingNeuron.record`) to the ``"history"`` collection.
    """

    kind: Literal["keep", "cut", "replay"] = "keep"
    record: bool = False

    def __post_init__(self):
        if self.kind not in ("keep", "cut", "replay"):
            raise ValueError(f"route kind must be 'keep', 'cut' or 'replay', got {self.kind!r}")
        if self.record and self.kind != "cut":
            raise ValueError("only the cut route records its steps for a replay")


KEEP, CUT, REPLAY = Route("keep"), Route("cut"), Route("replay")


class Recurrence(NamedTuple):
    """A recurrent synapse on a neuron layer's own spikes: ``I[t] += op(s[t-1], kernel)``.

    Attributes:
      op: the synapse's linear op on one step's spikes ``[N, ...] -> [N, ...]`` (the
        currents' shape), N any batch (a chunk is folded into it).
      kernel: its weights, a parameter of the layer that builds the recurrence.
    """

    op: Callable[[jax.Array, jax.Array], jax.Array]
    kernel: jax.Array

    def product(self, spikes: jax.Array) -> jax.Array:
        """``op`` on every step of a chunk ``[C, B, ...]`` at once (time folded in)."""
        return unfold(self.op(fold(spikes), self.kernel), spikes.shape[0])


class RecurrentState(NamedTuple):
    """A recurrent neuron layer's state (and scan carry): the neuron's own state (or carry)
    and the layer's spikes of the previous step ``s[t-1]``, ``[B, ...]``."""

    neuron: Any
    s: jax.Array


def _scan_carries(step: Step, carry, currents: jax.Array):
    """The carries entering each step ``[C, ...]``, no differentiation."""

    def body(c, i_t):
        _, new = step(c, i_t)
        return new, c

    return jax.lax.scan(body, carry, currents)[1]


class SpikingNeuron(nn.Module):
    """Base of neuron layers: ``currents [C, B, ...] -> spikes [C, B, ...]``.

    Subclasses define :meth:`initial_state` and :meth:`dynamics` (and, when the scan carries
    more than the state, :meth:`carry_in` and :meth:`carry_out`); this class owns the state
    variable, the scan over the chunk and the rule's :class:`Route`.
    """

    #: Whether the leak λ is fixed (OTTT's traces need it, docs/rules.md).
    fixed_decay: ClassVar[bool] = True
    #: Whether every output is 0 or 1 (a spike): the synapses after the neuron then keep
    #: their input as bits (:mod:`snnjax.spikes`). A neuron with graded outputs sets False.
    binary_output: ClassVar[bool] = True
    #: Whether the neuron's memory decays with the one time constant λ (OTTT's traces need
    #: it; ALIF's adaptation has a second one, docs/rules.md).
    one_time_constant: ClassVar[bool] = True

    def initial_state(self, current: jax.Array) -> State:
        """The resting state for one step's currents ``[B, ...]``."""
        raise NotImplementedError

    def dynamics(self) -> Step:
        """The pure step ``(carry, current [B, ...]) -> (spikes [B, ...], carry)``.

        Called inside the layer's compact ``__call__``, so it may declare parameters.
        """
        raise NotImplementedError

    def carry_in(self, state: State):
        """The scan carry of a state (identity unless the scan carries more)."""
        return state

    def carry_out(self, carry) -> State:
        """The state of a scan carry (identity unless the scan carries more)."""
        return carry

    def kept(self) -> tuple[Step, Callable[[State], Any]]:
        """The kept route's scan: ``(step, carry_of_state)``.

        Under the kept route the ``"state"`` variable holds this scan's carry, from one chunk
        to the next: a neuron may carry there whatever stores least while the recursion is
        differentiated (LIF: the post-reset potential alone). Default: :meth:`dynamics`
        and :meth:`carry_in`.
        """
        return self.dynamics(), self.carry_in

    def record(self, entering: State, leaving: State) -> State:
        """What SLTT-K's forward pass keeps of a step for :meth:`replay`, from the states
        entering and leaving it (``[B, ...]`` each). Default: the entering state."""
        return entering

    def replay(self, recorded: State, currents: jax.Array) -> jax.Array:
        """Spikes ``[C, B, ...]`` of C independent steps from what :meth:`record` kept of
        each (stacked ``[C, B, ...]``, constants), with the cut route's gradient w.r.t.
        ``currents`` and the parameters. Default: :meth:`dynamics` from the entering states.
        """
        carries = jax.lax.stop_gradient(jax.vmap(self.carry_in)(recorded))
        return jax.vmap(self.dynamics())(carries, currents)[0]

    @property
    def trace_decay(self) -> float:
        """λ of the presynaptic trace of this neuron's spikes (OTTT)."""
        raise NotImplementedError

    def cut_steps(self, step: Step, entering, currents: jax.Array):
        """Spikes ``[C, B, ...]`` and leaving carries of C steps from their entering carries
        (constants, stacked ``[C, ...]``): the cut route's differentiated pass. ``step`` is
        :meth:`dynamics`'s (called once per call: it may declare parameters)."""
        return jax.vmap(step)(entering, currents)

    @nn.compact
    def __call__(self, currents: jax.Array, route: Route = KEEP,
                 recurrence: Recurrence | None = None) -> jax.Array:
        """Spikes ``[C, B, ...]`` of the currents ``[C, B, ...]`` (plus, with ``recurrence``,
        the recurrent synapse's product of the previous step's spikes, inside the scan)."""
        if currents.ndim < 2:
            raise ValueError(
                f"{type(self).__name__} expects currents [C, B, ...], got shape {currents.shape}"
            )
        # The neuron's own methods, or the same with the recurrent synapse around them.
        n = self if recurrence is None else _Recurrent(self, recurrence)
        sg = jax.lax.stop_gradient
        if route.kind == "keep":
            step, carry_of = n.kept()
            var = self.variable("neuron", "state",
                                lambda: carry_of(n.initial_state(currents[0])))

            def body(carry, i_t):
                s, carry = step(carry, i_t)
                return carry, s

            if currents.shape[0] == 1:
                # One step: no loop. (XLA does not reuse a loop's buffers across Local's
                # blocks, so a loop here would cost every block's residuals at once.)
                final, s = body(var.value, currents[0])
                spikes = s[None]
            else:
                final, spikes = jax.lax.scan(body, var.value, currents)
            if not self.is_initializing():
                var.value = final
            return spikes
        var = self.variable("neuron", "state", n.initial_state, currents[0])
        if route.kind == "replay":
            return n.replay(sg(var.value), currents)
        step = n.dynamics()
        start = sg(n.carry_in(sg(var.value)))
        if currents.shape[0] == 1 and recurrence is None:
            # One step: no scan, no vmap (each would keep a copy of the state).
            s, after = step(start, currents[0])
            spikes, entering = s[None], jax.tree.map(lambda a: a[None], start)
            final = n.carry_out(jax.tree.map(sg, after))
        else:
            if currents.shape[0] == 1:
                entering = jax.tree.map(lambda a: a[None], start)
            else:
                entering = sg(_scan_carries(step, start, sg(currents)))
            spikes, after = n.cut_steps(step, entering, currents)
            final = n.carry_out(jax.tree.map(lambda a: sg(a[-1]), after))
        if route.record:
            # The state leaving each step is the one entering the next (the last: final);
            # built so, the chunk holds no second [C, ...] copy of the states.
            entering = jax.vmap(n.carry_out)(sg(entering))
            leaving = jax.tree.map(lambda e, f: jnp.concatenate([e[1:], f[None]]),
                                   entering, final)
            self.put_variable("history", "state", jax.vmap(n.record)(entering, leaving))
        if not self.is_initializing():
            var.value = final
        return spikes


class _Recurrent:
    """A neuron's methods with a recurrent synapse around them (:class:`Recurrence`): its
    state and carries become :class:`RecurrentState` ``(neuron's, s[t-1])`` and each step's
    current gains ``op(s[t-1], kernel)``.

    Called within the neuron's compact ``__call__``, so the neuron's own methods may declare
    parameters (PLIF's λ) and the trace variable is the neuron's.
    """

    def __init__(self, neuron: SpikingNeuron, recurrence: Recurrence):
        self.neuron, self.rec = neuron, recurrence
        self._step = None

    def _inner(self) -> Step:
        """The neuron's own step, made once (its ``dynamics`` may declare parameters)."""
        if self._step is None:
            self._step = self.neuron.dynamics()
        return self._step

    def initial_state(self, current):
        # Spikes have the currents' shape and dtype; none before the first step.
        return RecurrentState(self.neuron.initial_state(current), jnp.zeros_like(current))

    def carry_in(self, state):
        return RecurrentState(self.neuron.carry_in(state.neuron), state.s)

    def carry_out(self, carry):
        return RecurrentState(self.neuron.carry_out(carry.neuron), carry.s)

    def _wrap(self, step: Step) -> Step:
        op, kernel = self.rec

        def recurrent_step(carry, i_t):
            s, inner = step(carry.neuron, i_t + op(carry.s, kernel))
            return s, RecurrentState(inner, s)

        return recurrent_step

    def dynamics(self) -> Step:
        return self._wrap(self._inner())

    def kept(self):
        step, carry_of = self.neuron.kept()
        return self._wrap(step), lambda state: RecurrentState(carry_of(state.neuron), state.s)

    def cut_steps(self, step, entering, currents):
        # Every s[t-1] of the chunk is known (a constant): the recurrent product runs as one
        # op over the chunk, like a feed-forward synapse, and under OTTT (the "trace"
        # collection mutable) its weight gradient takes the trace of the layer's own spikes,
        # with the layer's own λ.
        neuron = self.neuron
        # A neuron without one fixed λ has no trace: OTTT refuses it (model_checks), naming it.
        traceable = neuron.fixed_decay and neuron.one_time_constant
        if (traceable and neuron.is_mutable_collection("trace")
                and not neuron.is_initializing()):
            var = neuron.variable("trace", "recurrent", jnp.zeros_like, entering.s[0])
            traces = presynaptic_trace(neuron.trace_decay, var.value, entering.s)
            var.value = traces[-1]
            op, kernel = self.rec
            rec = unfold(traced_op(op, fold(entering.s), fold(traces), kernel),
                         currents.shape[0])
        else:
            rec = self.rec.product(entering.s)
        if currents.shape[0] == 1:
            first = lambda tree: jax.tree.map(lambda a: a[0], tree)  # noqa: E731
            s, inner = self._inner()(first(entering.neuron), currents[0] + rec[0])
            s, inner = s[None], jax.tree.map(lambda a: a[None], inner)
        else:
            s, inner = neuron.cut_steps(self._inner(), entering.neuron, currents + rec)
        return s, RecurrentState(inner, s)

    def record(self, entering, leaving):
        return RecurrentState(self.neuron.record(entering.neuron, leaving.neuron), entering.s)

    def replay(self, recorded, currents):
        return self.neuron.replay(recorded.neuron, currents + self.rec.product(recorded.s))


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire (docs/rules.md) with fixed λ; state
    :class:`~snnjax.neuron.LIFState` (the pre-reset potential), and under the kept route the
    post-reset potential ``v`` alone (:func:`~snnjax.neuron.lif_step_v`: the same spikes and
    gradients, one buffer per layer between pieces where ``(u, s)`` would be two).

    ``currents [C, B, ...] -> spikes [C, B, ...]``.
    """

    neuron: LIFParams = LIFParams()

    def leak(self):
        """λ: None for the parameters' own decay, or a value (may declare parameters)."""
        return None

    def initial_state(self, current):
        return lif_state(current)

    def carry_in(self, state):
        return lif_carry(self.neuron, state)

    def carry_out(self, carry):
        return LIFState(carry.u)

    def dynamics(self) -> Step:
        p, lam = self.neuron, self.leak()
        return lambda carry, i_t: lif_step(p, carry, i_t, decay=lam)

    def kept(self):
        p, lam = self.neuron, self.leak()
        return (lambda v, i_t: lif_step_v(p, v, i_t, decay=lam),
                lambda state: potential(p, lif_carry(p, state)))

    def record(self, entering, leaving):
        # With a fixed λ the potential the step reached is all its replay needs: the
        # recorded state is then the one the forward pass carries on (no second copy).
        return leaving if self.fixed_decay else entering

    def replay(self, recorded, currents):
        if not self.fixed_decay:
            return super().replay(recorded, currents)
        return lif_refire(self.neuron, recorded.u, currents)

    @property
    def trace_decay(self) -> float:
        return self.neuron.decay


class IF(LIF):
    """Integrate-and-fire: LIF without leak (λ = 1), other settings as ``neuron``."""

    def leak(self):
        return 1.0

    @property
    def trace_decay(self) -> float:
        return 1.0


class PLIF(LIF):
    """Parametric LIF (Fang et al. 2021): λ = sigmoid(w), w one learnable scalar per layer.

    Initialised at ``w = log(τ0 - 1)`` so that ``λ = 1 - 1/τ0``. The gradient of w flows
    through every ``λ·v[t-1]`` term the rule keeps. OTTT refuses it (its trace needs a fixed
    λ). ``currents [C, B, ...] -> spikes [C, B, ...]``.

    Attributes:
      tau0: initial time constant τ0 > 1.
      neuron: threshold, reset and surrogate (its ``decay`` is not used).
    """

    tau0: float = 2.0
    fixed_decay: ClassVar[bool] = False

    def __post_init__(self):
        if not self.tau0 > 1.0:
            raise ValueError(f"PLIF initial time constant tau0 must be > 1, got {self.tau0}")
        super().__post_init__()

    def leak(self):
        w0 = math.log(self.tau0 - 1.0)
        return jax.nn.sigmoid(self.param("w", lambda key: jnp.asarray(w0, jnp.float32)))

    @property
    def trace_decay(self) -> float:
        raise ValueError("PLIF has a learnable decay: no fixed trace decay (OTTT refuses it)")


class ALIF(SpikingNeuron):
    """Adaptive LIF (Bellec et al. 2018, 2020): LIF whose threshold rises with each spike,
    ``A[t] = V_th + β·a[t]``, ``a[t] = ρ·a[t-1] + s[t-1]`` (:func:`~snnjax.neuron.alif_step`).

    State :class:`~snnjax.neuron.ALIFState` ``(u, a)``; under the kept route ``(v, a)``
    (:func:`~snnjax.neuron.alif_step_v`). The rules that keep or cut temporal routes treat
    both state variables alike (docs/rules.md). OTTT refuses it: its trace assumes one time
    constant. ``currents [C, B, ...] -> spikes [C, B, ...]``.

    Attributes:
      neuron: λ, V_th (the base threshold, also the reset's), reset and surrogate.
      adaptation: ρ and β (:class:`~snnjax.neuron.Adaptation`).
    """

    neuron: LIFParams = LIFParams()
    adaptation: Adaptation = Adaptation()
    one_time_constant: ClassVar[bool] = False

    def initial_state(self, current):
        return alif_state(current)

    def carry_in(self, state):
        return alif_carry(self.neuron, self.adaptation, state)

    def carry_out(self, carry):
        return ALIFState(carry.u, carry.a)

    def dynamics(self) -> Step:
        p, q = self.neuron, self.adaptation
        return lambda carry, i_t: alif_step(p, q, carry, i_t)

    def kept(self):
        p, q = self.neuron, self.adaptation
        return (lambda carry, i_t: alif_step_v(p, q, carry, i_t),
                lambda state: alif_kept(p, q, state))

    @property
    def trace_decay(self) -> float:
        # The membrane's λ (what a synapse behind it is built with); OTTT refuses the neuron
        # before any trace would use it (one_time_constant is False).
        return self.neuron.decay
