"""Leaky integrate-and-fire dynamics in discrete time (``docs/rules.md``), as pure functions.

    u[t] = λ·v[t-1] + I[t]                       charge (decay_input=False)
    s[t] = H(u[t] - V_th)                        fire, surrogate gradient in backward
    v[t] = u[t] - V_th·s[t]      (soft reset)    or    v[t] = u[t]·(1 - s[t])  (hard reset)

Two forms of the same step, with the same operations in the same order, and its replay:

- :func:`lif_step` carries the pre-reset potential: the state :class:`LIFState` ``u[t-1]``,
  from which a step applies the previous reset first (within a scan :class:`LIFCarry`
  ``(u, s)``, the spike carried along so that the reset is linear in the carry). Where the
  state entering a step is a constant (SLTT, OTTT), ``u`` is also the buffer the surrogate
  gradient reads: one buffer per layer serves as state and residual.
- :func:`lif_step_v` carries the post-reset potential ``v[t]`` alone: where the recursion is
  differentiated (BPTT, TBPTT), the carry crossing the seams between pieces of a window is
  then one buffer per layer, not two.
- :func:`lif_refire` fires again from a recorded ``u[t]`` with the gradient of a step whose
  entering state was a constant (SLTT-K's replay): with a fixed λ, ``∂u[t]/∂I[t] = 1`` is
  all of it, so the replay needs neither ``v[t-1]`` nor the current's value.

ALIF (Bellec et al. 2018, 2020) is the same step with an adaptive threshold, a second state
variable ``a`` that each spike raises and that decays with its own factor ρ:

    A[t] = V_th + β·a[t],   a[t] = ρ·a[t-1] + s[t-1]       (a[0] = 0)
    s[t] = H(u[t] - A[t])                                  reset as LIF's (by V_th)

(:func:`alif_step`, :func:`alif_step_v`; the indexing of Bellec et al. 2020, Methods:
``a^{t+1} = ρ·a^t + z^t``, ``A^t = v_th + β·a^t``, ``z^t = H(v^t - A^t)``).

The functions know nothing of training rules: a rule cuts the temporal route by handing in
the state as a constant (:mod:`snnjax.neurons` does that for SLTT and OTTT).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from snnjax import surrogate as surrogate_lib

__all__ = [
    "LIFParams", "LIFState", "LIFCarry", "lif_state", "lif_carry", "lif_step", "lif_step_v",
    "lif_run", "lif_refire",
    "potential", "POTENTIAL",
    "Adaptation", "ALIFState", "ALIFCarry", "ALIFKept", "alif_state", "alif_carry",
    "alif_kept", "alif_step", "alif_step_v",
]

#: The name (``jax.ad_checkpoint.checkpoint_name``) of the pre-reset potential ``u[t]`` in
#: :func:`lif_step_v`: what a recomputing schedule saves of a step (docs/schedules.md).
POTENTIAL = "snnjax.potential"


@dataclasses.dataclass(frozen=True)
class LIFParams:
    """Static parameters of a LIF neuron (hashable: usable as a flax field or jit static).

    Attributes:
      decay: λ in ``u = λ·v + I``; ``λ = 1 - 1/τ`` (see :meth:`from_tau`). In [0, 1].
      v_th: firing threshold V_th > 0.
      reset: ``"soft"`` (subtract V_th) or ``"hard"`` (to 0).
      detach_reset: stop the gradient through the spike in the reset term.
      surrogate: the spike function (a :class:`snnjax.surrogate.Surrogate`).
    """

    decay: float = 0.5
    v_th: float = 1.0
    reset: Literal["soft", "hard"] = "soft"
    detach_reset: bool = False
    surrogate: surrogate_lib.Surrogate = surrogate_lib.sigmoid(4.0)

    def __post_init__(self):
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"LIF decay λ must be in [0, 1], got {self.decay}")
        if not self.v_th > 0:
            raise ValueError(f"LIF threshold must be > 0, got {self.v_th}")
        if self.reset not in ("soft", "hard"):
            raise ValueError(f"LIF reset must be 'soft' or 'hard', got {self.reset!r}")
        if not isinstance(self.surrogate, surrogate_lib.Surrogate):
            object.__setattr__(self, "surrogate", surrogate_lib.get(self.surrogate))

    @classmethod
    def from_tau(cls, tau: float, **kwargs) -> "LIFParams":
        """λ = 1 - 1/τ (OTTT: τ = 2 → λ = 0.5; SLTT: τ = 1.1 → λ ≈ 0.0909)."""
        if not tau >= 1.0:
            raise ValueError(f"LIF time constant τ must be >= 1, got {tau}")
        return cls(decay=1.0 - 1.0 / tau, **kwargs)


class LIFState(NamedTuple):
    """A LIF layer's state between chunks: the pre-reset potential ``u[t-1]``, ``[B, ...]``."""

    u: jax.Array


class LIFCarry(NamedTuple):
    """What a scan over steps carries: ``u[t-1]`` and the spike ``s[t-1] = H(u[t-1] - V_th)``
    (with its surrogate gradient), so each step's reset is linear in the carry."""

    u: jax.Array
    s: jax.Array


def lif_state(like: jax.Array) -> LIFState:
    """The resting state (``u = 0``, so no spike and ``v[-1] = 0``), shaped like ``like``."""
    return LIFState(jnp.zeros_like(like))


def lif_carry(p: LIFParams, state: LIFState) -> LIFCarry:
    """The scan carry of a state: its spike recomputed from ``u`` (surrogate gradient kept)."""
    return LIFCarry(state.u, p.surrogate(state.u - p.v_th))


def potential(p: LIFParams, carry: LIFCarry) -> jax.Array:
    """The post-reset membrane potential ``v`` of a carry: ``u - V_th·s`` or ``u·(1 - s)``."""
    if p.reset == "soft":
        return carry.u - p.v_th * carry.s
    return carry.u * (1.0 - carry.s)


def lif_step(
    p: LIFParams, carry: LIFCarry, current: jax.Array, decay: jax.Array | float | None = None
) -> tuple[jax.Array, LIFCarry]:
    """One time step: ``(s[t], LIFCarry(u[t], s[t]))`` from ``carry = (u[t-1], s[t-1])``.

    Args:
      p: neuron parameters.
      carry: the previous step's carry, ``[B, ...]`` each.
      current: input current ``I[t]``, ``[B, ...]``.
      decay: λ to use instead of ``p.decay`` (PLIF's learnable λ, a scalar array).
    """
    s_prev = jax.lax.stop_gradient(carry.s) if p.detach_reset else carry.s
    v = potential(p, LIFCarry(carry.u, s_prev))
    u = _charge(p, v, current, decay)
    s = p.surrogate(u - p.v_th)
    return s, LIFCarry(u, s)


def lif_step_v(
    p: LIFParams, v: jax.Array, current: jax.Array, decay: jax.Array | float | None = None
) -> tuple[jax.Array, jax.Array]:
    """:func:`lif_step` carrying the post-reset potential: ``(s[t], v[t])`` from ``v[t-1]``.

    The same operations in the same order (the reset applied at the end of the step instead
    of the start of the next), so the same spikes and gradients; the carry is one buffer.
    """
    # Named for recomputation (docs/schedules.md): everything else of the step's backward
    # is element-wise in u, or linear.
    u = checkpoint_name(_charge(p, v, current, decay), POTENTIAL)
    s = p.surrogate(u - p.v_th)
    s_reset = jax.lax.stop_gradient(s) if p.detach_reset else s
    return s, potential(p, LIFCarry(u, s_reset))


def lif_refire(p: LIFParams, u: jax.Array, current: jax.Array) -> jax.Array:
    """The spikes ``H(u - V_th)`` of a step that reached ``u`` (recorded, a constant), with
    the cut route's gradient w.r.t. its ``current``: ``∂u/∂I = 1`` (λ fixed, ``v[t-1]`` a
    constant). Equal to :func:`lif_step`'s spikes and gradient from a constant state that
    led to ``u``; the value of ``current`` is not read. ``u``, ``current``: ``[..., B, ...]``.
    """
    return p.surrogate(_value_of(jax.lax.stop_gradient(u), current) - p.v_th)


@jax.custom_jvp
def _value_of(value: jax.Array, x: jax.Array) -> jax.Array:
    """``value``, with the tangent of ``x`` (a custom JVP: XLA then keeps ``value`` alone
    for the backward, where ``value + (x - sg(x))`` would keep ``x`` too)."""
    return value


@_value_of.defjvp
def _value_of_jvp(primals, tangents):
    value, _ = primals
    _, dx = tangents
    return value, dx


def _charge(p: LIFParams, v, current, decay):
    """``u = λ·v + I``, with ``decay`` (e.g. PLIF's learnable λ) in the current's dtype."""
    lam = p.decay if decay is None else jnp.asarray(decay).astype(current.dtype)
    return lam * v + current


def lif_run(p: LIFParams, currents: jax.Array, state: LIFState | None = None):
    """``currents [T, B, ...] -> (spikes [T, B, ...], final LIFState)`` with ``lax.scan``."""
    state = lif_state(currents[0]) if state is None else state

    def body(carry, i_t):
        s, carry = lif_step(p, carry, i_t)
        return carry, s

    final, spikes = jax.lax.scan(body, lif_carry(p, state), currents)
    return spikes, LIFState(final.u)


# ---------------------------------------------------------------------------- ALIF


@dataclasses.dataclass(frozen=True)
class Adaptation:
    """ALIF's threshold adaptation (hashable: a flax field or jit static).

    Attributes:
      rho: ρ in ``a[t] = ρ·a[t-1] + s[t-1]``, in [0, 1] (Bellec et al.: ``ρ = exp(-1/τ_a)``).
      beta: β in ``A[t] = V_th + β·a[t]``, >= 0 (β = 0 is LIF).
    """

    rho: float = 0.9
    beta: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"ALIF adaptation decay ρ must be in [0, 1], got {self.rho}")
        if not self.beta >= 0.0:
            raise ValueError(f"ALIF adaptation strength β must be >= 0, got {self.beta}")


class ALIFState(NamedTuple):
    """An ALIF layer's state between chunks, ``[B, ...]`` each: the pre-reset potential
    ``u[t-1]`` and the adaptation ``a[t-1]`` of the step that produced it."""

    u: jax.Array
    a: jax.Array


class ALIFCarry(NamedTuple):
    """A scan's carry: ``u[t-1]``, ``a[t-1]`` and the spike ``s[t-1]`` (with its surrogate
    gradient), so that the next step's reset and adaptation are linear in the carry."""

    u: jax.Array
    a: jax.Array
    s: jax.Array


class ALIFKept(NamedTuple):
    """The kept route's carry (:func:`alif_step_v`): the post-reset potential ``v[t-1]`` and
    the adaptation ``a[t]`` the next step fires against."""

    v: jax.Array
    a: jax.Array


def alif_state(like: jax.Array) -> ALIFState:
    """The resting state (``u = a = 0``: no spike), shaped like ``like``."""
    zeros = jnp.zeros_like(like)
    return ALIFState(zeros, zeros)


def _fire(p: LIFParams, q: Adaptation, u, a):
    return p.surrogate(u - (p.v_th + q.beta * a))


def alif_carry(p: LIFParams, q: Adaptation, state: ALIFState) -> ALIFCarry:
    """The scan carry of a state: its spike recomputed from ``(u, a)`` (surrogate kept)."""
    return ALIFCarry(state.u, state.a, _fire(p, q, state.u, state.a))


def alif_kept(p: LIFParams, q: Adaptation, state: ALIFState) -> ALIFKept:
    """The kept route's carry of a state: ``v[t-1]`` after its reset and ``a[t]``."""
    carry = alif_carry(p, q, state)
    s_reset = jax.lax.stop_gradient(carry.s) if p.detach_reset else carry.s
    return ALIFKept(potential(p, LIFCarry(carry.u, s_reset)), q.rho * carry.a + carry.s)


def alif_step(
    p: LIFParams, q: Adaptation, carry: ALIFCarry, current: jax.Array
) -> tuple[jax.Array, ALIFCarry]:
    """One ALIF step: ``(s[t], ALIFCarry(u[t], a[t], s[t]))`` from ``(u, a, s)[t-1]``.

    ``u[t] = λ·v[t-1] + I[t]`` (``v[t-1]`` reset by V_th as LIF's), ``a[t] = ρ·a[t-1] +
    s[t-1]``, ``s[t] = H(u[t] - V_th - β·a[t])``. ``current``: ``I[t]``, ``[B, ...]``.
    """
    s_reset = jax.lax.stop_gradient(carry.s) if p.detach_reset else carry.s
    v = potential(p, LIFCarry(carry.u, s_reset))
    a = q.rho * carry.a + carry.s
    u = _charge(p, v, current, None)
    s = _fire(p, q, u, a)
    return s, ALIFCarry(u, a, s)


def alif_step_v(
    p: LIFParams, q: Adaptation, carry: ALIFKept, current: jax.Array
) -> tuple[jax.Array, ALIFKept]:
    """:func:`alif_step` carrying ``(v[t-1], a[t])``: ``(s[t], ALIFKept(v[t], a[t+1]))``.

    The same operations in the same order (the reset and the adaptation applied at the end of
    the step instead of the start of the next), so the same spikes and gradients.
    """
    u = checkpoint_name(_charge(p, carry.v, current, None), POTENTIAL)
    s = _fire(p, q, u, carry.a)
    s_reset = jax.lax.stop_gradient(s) if p.detach_reset else s
    return s, ALIFKept(potential(p, LIFCarry(u, s_reset)), q.rho * carry.a + s)
