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
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from snnjax.neuron import (
    LIFParams, LIFState, lif_carry, lif_refire, lif_state, lif_step, lif_step_v, potential,
)

__all__ = ["Route", "KEEP", "CUT", "REPLAY", "SpikingNeuron", "LIF", "IF", "PLIF"]

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

    @nn.compact
    def __call__(self, currents: jax.Array, route: Route = KEEP) -> jax.Array:
        if currents.ndim < 2:
            raise ValueError(
                f"{type(self).__name__} expects currents [C, B, ...], got shape {currents.shape}"
            )
        sg = jax.lax.stop_gradient
        if route.kind == "keep":
            step, carry_of = self.kept()
            var = self.variable("neuron", "state",
                                lambda: carry_of(self.initial_state(currents[0])))

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
        var = self.variable("neuron", "state", self.initial_state, currents[0])
        if route.kind == "replay":
            return self.replay(sg(var.value), currents)
        step = self.dynamics()
        start = sg(self.carry_in(sg(var.value)))
        if currents.shape[0] == 1:
            # One step: no scan, no vmap (each would keep a copy of the state).
            s, after = step(start, currents[0])
            spikes, entering = s[None], jax.tree.map(lambda a: a[None], start)
            final = self.carry_out(jax.tree.map(sg, after))
        else:
            entering = sg(_scan_carries(step, start, sg(currents)))
            spikes, after = jax.vmap(step)(entering, currents)
            final = self.carry_out(jax.tree.map(lambda a: sg(a[-1]), after))
        if route.record:
            # The state leaving each step is the one entering the next (the last: final);
            # built so, the chunk holds no second [C, ...] copy of the states.
            entering = jax.vmap(self.carry_out)(sg(entering))
            leaving = jax.tree.map(lambda e, f: jnp.concatenate([e[1:], f[None]]),
                                   entering, final)
            self.put_variable("history", "state", jax.vmap(self.record)(entering, leaving))
        if not self.is_initializing():
            var.value = final
        return spikes


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
