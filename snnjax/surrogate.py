"""Surrogate spike functions: Heaviside forward, smooth pseudo-derivative backward.

The spike ``s = H(x)`` with ``x = u - V_th`` and ``H(x) = 1[x >= 0]`` has zero derivative
almost everywhere; training replaces it in the backward pass by a surrogate ``σ'(x)``
(``docs/rules.md``, the neuron). Each surrogate is a small frozen (hashable) value, so it can
be a static field of a flax module or a jit argument, and it is applied element-wise through
one module-level ``jax.custom_jvp`` (which keeps both forward and reverse mode).

    >>> s = triangle(alpha=1.0)(x)        # forward: H(x); backward: max(0, 1 - |x|)
    >>> s = get("sigmoid")(x)             # selectable by name
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "Surrogate",
    "sigmoid",
    "triangle",
    "rectangle",
    "atan",
    "fast_sigmoid",
    "get",
    "NAMES",
]


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _heaviside(derivative: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    return (x >= 0).astype(x.dtype)


@_heaviside.defjvp
def _heaviside_jvp(derivative, primals, tangents):
    (x,), (dx,) = primals, tangents
    return _heaviside(derivative, x), derivative(x).astype(dx.dtype) * dx


@dataclasses.dataclass(frozen=True)
class Surrogate:
    """A spike function: ``H(x)`` forward, ``derivative(x)`` backward.

    Attributes:
      name: one of :data:`NAMES`.
      alpha: the width/sharpness parameter of that surrogate (see its factory).
    """

    name: str
    alpha: float

    def derivative(self, x: jax.Array) -> jax.Array:
        """The surrogate gradient ``σ'(x)``, same shape as ``x``."""
        return _DERIVATIVES[self.name](x, self.alpha)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Spikes ``H(x)`` (same shape and dtype as ``x``) with the surrogate backward."""
        return _heaviside(self.derivative, x)


def _sigmoid(x, alpha):
    sg = jax.nn.sigmoid(alpha * x)
    return alpha * sg * (1.0 - sg)


def _triangle(x, alpha):
    # Piecewise quadratic surrogate of SLTT (its primitive is quadratic on each side).
    return jnp.maximum(0.0, alpha - alpha * alpha * jnp.abs(x))


def _rectangle(x, alpha):
    return jnp.where(jnp.abs(x) <= alpha / 2.0, 1.0 / alpha, 0.0).astype(x.dtype)


def _atan(x, alpha):
    return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x) ** 2)


def _fast_sigmoid(x, alpha):
    return 1.0 / (alpha * jnp.abs(x) + 1.0) ** 2


_DERIVATIVES = {
    "sigmoid": _sigmoid,
    "triangle": _triangle,
    "rectangle": _rectangle,
    "atan": _atan,
    "fast_sigmoid": _fast_sigmoid,
}
NAMES = tuple(_DERIVATIVES)


def _make(name: str, alpha: float) -> Surrogate:
    if not alpha > 0:
        raise ValueError(f"surrogate {name!r}: width parameter must be > 0, got {alpha}")
    return Surrogate(name, float(alpha))


def sigmoid(alpha: float = 4.0) -> Surrogate:
    """``σ'(x) = α·sig(αx)·(1 - sig(αx))``; integrates to 1. OTTT's default (α = 4)."""
    return _make("sigmoid", alpha)


def triangle(alpha: float = 1.0) -> Surrogate:
    """``σ'(x) = max(0, α - α²|x|)``; integrates to 1. SLTT's default (α = 1)."""
    return _make("triangle", alpha)


def rectangle(alpha: float = 1.0) -> Surrogate:
    """``σ'(x) = 1/a`` on ``|x| <= a/2``, else 0 (``a = alpha``); integrates to 1."""
    return _make("rectangle", alpha)


def atan(alpha: float = 2.0) -> Surrogate:
    """``σ'(x) = (α/2) / (1 + (π/2·α·x)²)``; integrates to 1."""
    return _make("atan", alpha)


def fast_sigmoid(alpha: float = 25.0) -> Surrogate:
    """``σ'(x) = 1 / (k|x| + 1)²`` with ``k = alpha``; unnormalised (integrates to 2/k)."""
    return _make("fast_sigmoid", alpha)


_FACTORIES = {
    "sigmoid": sigmoid,
    "triangle": triangle,
    "rectangle": rectangle,
    "atan": atan,
    "fast_sigmoid": fast_sigmoid,
}


def get(surrogate: str | Surrogate, alpha: float | None = None) -> Surrogate:
    """A surrogate by name (``"fast-sigmoid"`` and ``"fast_sigmoid"`` both work) or as given.

    Args:
      surrogate: a name from :data:`NAMES` or a :class:`Surrogate`.
      alpha: the width parameter; the surrogate's default when None.
    """
    if isinstance(surrogate, Surrogate):
        return surrogate if alpha is None else _make(surrogate.name, alpha)
    key = str(surrogate).replace("-", "_").lower()
    if key not in _FACTORIES:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {', '.join(NAMES)}")
    return _FACTORIES[key]() if alpha is None else _FACTORIES[key](alpha)
