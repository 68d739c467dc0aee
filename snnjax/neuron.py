"""Leaky integrate-and-fire neuron in discrete time (SPEC §1), as pure functions.

    u[t] = λ·v[t-1] + I[t]                       charge (decay_input=False)
    s[t] = H(u[t] - V_th)                        fire, surrogate gradient in backward
    v[t] = u[t] - V_th·s[t]      (soft reset)    or    v[t] = u[t]·(1 - s[t])  (hard reset)

The neuron knows nothing of training rules: a rule cuts the temporal route by handing in
``v[t-1]`` as a constant (SLTT, OTTT) or by differentiating through it (BPTT).

The state carried from step to step can be either of two equivalent values: the post-reset
``v[t]`` (:func:`lif_step`) or the pre-reset ``u[t]`` (:func:`lif_step_pre_reset`, which
applies the reset of step t-1 at the start of step t). Spikes and gradients are the same;
what differs is memory. Under BPTT carrying ``v`` stores less per step. Under the per-step
rules, carrying ``u`` lets one buffer be both the carried state and the residual the
surrogate gradient needs (``u - V_th``), where carrying ``v`` keeps both alive in every step.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from snnjax import surrogate as surrogate_lib

__all__ = ["LIFParams", "lif_init", "lif_step", "lif_step_pre_reset", "lif_run"]


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


def lif_init(shape, dtype=jnp.float32) -> jax.Array:
    """The resting membrane potential v[-1] = 0, shape ``[B, ...]``."""
    return jnp.zeros(shape, dtype)


def lif_step(p: LIFParams, v: jax.Array, current: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One time step.

    Args:
      p: neuron parameters.
      v: membrane potential after the previous reset, ``v[t-1]``, shape ``[B, ...]``.
      current: input current ``I[t]``, same shape.

    Returns:
      ``(s[t], v[t])``: spikes (0/1 in the input's dtype) and the post-reset potential.
    """
    u = p.decay * v + current
    s = p.surrogate(u - p.v_th)
    return s, _reset(p, u, s)


def _reset(p: LIFParams, u: jax.Array, s: jax.Array) -> jax.Array:
    s = jax.lax.stop_gradient(s) if p.detach_reset else s
    if p.reset == "soft":
        return u - p.v_th * s
    return u * (1.0 - s)


def lif_step_pre_reset(
    p: LIFParams, u: jax.Array, current: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One time step carrying the pre-reset potential: ``(s[t], u[t])`` from ``u[t-1]``.

    Applies the reset of step t-1 first (its spike recomputed from ``u[t-1]``, with the same
    surrogate gradient), then charges and fires as :func:`lif_step`. From ``u[-1] = 0``
    (no spike, since V_th > 0) it gives the same spikes and gradients as :func:`lif_step`.

    Args:
      p: neuron parameters.
      u: membrane potential before the previous step's reset, ``u[t-1]``, ``[B, ...]``.
      current: input current ``I[t]``, same shape.
    """
    v = _reset(p, u, p.surrogate(u - p.v_th))
    u_new = p.decay * v + current
    return p.surrogate(u_new - p.v_th), u_new


def lif_run(p: LIFParams, currents: jax.Array, v0: jax.Array | None = None):
    """Run over time with ``lax.scan``: ``currents [T, B, ...] -> (spikes [T, B, ...], v[T-1])``."""
    v0 = jnp.zeros_like(currents[0]) if v0 is None else v0

    def body(v, i_t):
        s, v = lif_step(p, v, i_t)
        return v, s

    v_last, spikes = jax.lax.scan(body, v0, currents)
    return spikes, v_last
