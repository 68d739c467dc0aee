"""Surrogate spike functions: forward is Heaviside, backward is the stated formula."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from snnjax import surrogate

X = np.linspace(-3, 3, 601)

FORMULAS = {
    "sigmoid": lambda x, a: a * (1 / (1 + np.exp(-a * x))) * (1 - 1 / (1 + np.exp(-a * x))),
    "triangle": lambda x, a: np.maximum(0, a - a * a * np.abs(x)),
    "rectangle": lambda x, a: np.where(np.abs(x) <= a / 2, 1 / a, 0.0),
    "atan": lambda x, a: (a / 2) / (1 + (math.pi / 2 * a * x) ** 2),
    "fast_sigmoid": lambda x, a: 1 / (a * np.abs(x) + 1) ** 2,
}
# Smooth primitives whose derivative is the surrogate, where one exists in closed form.
PRIMITIVES = {
    "sigmoid": lambda x, a: jax.nn.sigmoid(a * x),
    "atan": lambda x, a: jnp.arctan(math.pi / 2 * a * x) / math.pi,
    "fast_sigmoid": lambda x, a: x / (1 + a * jnp.abs(x)),
}


@pytest.mark.parametrize("name", surrogate.NAMES)
@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_backward_matches_formula(name, alpha, x64):
    sg = surrogate.get(name, alpha)
    grad = jax.vmap(jax.grad(sg))(jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(grad), FORMULAS[name](X, alpha), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", surrogate.NAMES)
def test_forward_is_heaviside(name):
    s = surrogate.get(name)(jnp.asarray([-1.0, -1e-6, 0.0, 1e-6, 2.0]))
    np.testing.assert_array_equal(np.asarray(s), [0, 0, 1, 1, 1])


@pytest.mark.parametrize("name", ["sigmoid", "triangle", "rectangle", "atan"])
def test_normalised_surrogates_integrate_to_one(name, x64):
    xs = np.linspace(-200, 200, 2_000_001)
    d = np.asarray(surrogate.get(name).derivative(jnp.asarray(xs)))
    assert np.trapezoid(d, xs) == pytest.approx(1.0, abs=2e-3)


def test_fast_sigmoid_integrates_to_two_over_k(x64):
    xs = np.linspace(-2000, 2000, 4_000_001)
    d = np.asarray(surrogate.fast_sigmoid(25.0).derivative(jnp.asarray(xs)))
    assert np.trapezoid(d, xs) == pytest.approx(2 / 25, rel=1e-3)


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_surrogate_is_derivative_of_smooth_primitive(name, x64):
    alpha = surrogate.get(name).alpha
    prim = lambda x: PRIMITIVES[name](x, alpha)  # noqa: E731
    x = jnp.asarray([-0.7, -0.1, 0.05, 0.3, 1.1])
    check_grads(prim, (x,), order=1, modes=("rev",))  # the primitive is right ...
    np.testing.assert_allclose(  # ... and our backward is its derivative
        jax.vmap(jax.grad(surrogate.get(name)))(x), jax.vmap(jax.grad(prim))(x), rtol=1e-12
    )


def test_forward_and_reverse_mode_agree():
    sg = surrogate.atan()
    x = jnp.asarray([-0.3, 0.2, 0.9])
    _, jvp = jax.jvp(sg, (x,), (jnp.ones_like(x),))
    _, vjp = jax.vjp(sg, x)
    np.testing.assert_allclose(jvp, vjp(jnp.ones_like(x))[0])


def test_selectable_by_name_and_object():
    assert surrogate.get("fast-sigmoid") == surrogate.fast_sigmoid()
    assert surrogate.get(surrogate.triangle(2.0)) == surrogate.triangle(2.0)
    assert surrogate.get("atan", 3.0).alpha == 3.0


def test_unknown_name_and_bad_width():
    with pytest.raises(ValueError, match="unknown surrogate"):
        surrogate.get("tanh")
    with pytest.raises(ValueError, match="> 0"):
        surrogate.sigmoid(0.0)
