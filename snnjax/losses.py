"""Losses over the readout's outputs (``docs/rules.md``, the loss).

Per-step ("instantaneous") loss, used by every memory-efficient rule:

    L[t] = [(1-λ_mse)·CE(o[t], y) + λ_mse·MSE(o[t], target)] / T,   L = Σ_t L[t]

and the rate loss ``ℓ(mean_t o[t], y)`` (BPTT only: it couples all steps).
A loss is a frozen value with ``step(o, y)`` (one step's ℓ, *without* the 1/T) and
``sequence(outs, y)`` (the whole-sequence loss), so rules share one definition.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import optax

__all__ = ["Loss", "per_step", "rate"]


@dataclasses.dataclass(frozen=True)
class Loss:
    """CE/MSE mix.

    Attributes:
      mse: λ_mse in [0, 1].
      target: ``"onehot"`` for one-hot(y), or a float constant target for the MSE term.
      kind: ``"per_step"`` (Σ_t ℓ(o[t]) / T) or ``"rate"`` (ℓ(mean_t o[t])).
    """

    mse: float = 0.0
    target: str | float = "onehot"
    kind: Literal["per_step", "rate"] = "per_step"

    def __post_init__(self):
        if not 0.0 <= self.mse <= 1.0:
            raise ValueError(f"loss mix λ_mse must be in [0, 1], got {self.mse}")
        if self.kind not in ("per_step", "rate"):
            raise ValueError(f"loss kind must be 'per_step' or 'rate', got {self.kind!r}")
        if self.target != "onehot" and not isinstance(self.target, (int, float)):
            raise ValueError(f"loss target must be 'onehot' or a number, got {self.target!r}")

    def step(self, o: jax.Array, y: jax.Array) -> jax.Array:
        """ℓ(o, y) for logits ``o [B, C]`` and integer labels ``y [B]`` (no 1/T)."""
        num_classes = o.shape[-1]
        onehot = jax.nn.one_hot(y, num_classes, dtype=o.dtype)
        total = jnp.zeros((), o.dtype)
        if self.mse < 1.0:
            ce = optax.softmax_cross_entropy(o, onehot).mean()
            total = total + (1.0 - self.mse) * ce
        if self.mse > 0.0:
            target = onehot if self.target == "onehot" else jnp.full_like(o, self.target)
            total = total + self.mse * jnp.mean((o - target) ** 2)
        return total

    def sequence(self, outs: jax.Array, y: jax.Array) -> jax.Array:
        """The loss of a whole sequence ``outs [T, B, C]``."""
        if self.kind == "rate":
            return self.step(outs.mean(axis=0), y)
        return jax.vmap(self.step, in_axes=(0, None))(outs, y).sum() / outs.shape[0]


def per_step(mse: float = 0.0, target: str | float = "onehot") -> Loss:
    """The per-step loss (``docs/rules.md``): mean over t of
    ``(1-mse)·CE + mse·MSE(o[t], target)``."""
    return Loss(mse=mse, target=target, kind="per_step")


def rate(mse: float = 0.0, target: str | float = "onehot") -> Loss:
    """The rate loss: ``(1-mse)·CE + mse·MSE`` of the time-averaged output (BPTT only)."""
    return Loss(mse=mse, target=target, kind="rate")
