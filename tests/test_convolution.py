"""snnjax.convolution.conv2d: lax.conv_general_dilated's values and gradients, CPU-fast layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.convolution import conv2d

DN = ("NHWC", "HWIO", "NHWC")
CASES = [
    ((8, 8), 3, (1, 1), "SAME"),
    ((9, 7), 3, (2, 2), "SAME"),
    ((8, 8), 3, (2, 2), ((1, 1), (1, 1))),
    ((9, 9), 1, (2, 2), "VALID"),
    ((7, 10), 5, (3, 2), ((2, 1), (0, 3))),
    ((6, 6), 4, (2, 2), "SAME"),
]


@pytest.mark.parametrize("hw,k,strides,padding", CASES)
def test_values_and_gradients_match_lax(x64, hw, k, strides, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, *hw, 3)))
    kernel = jnp.asarray(rng.normal(size=(k, k, 3, 4)))

    def ref(a, b):
        return jax.lax.conv_general_dilated(a, b, strides, padding, dimension_numbers=DN)

    y0, vjp0 = jax.vjp(ref, x, kernel)
    y1, vjp1 = jax.vjp(lambda a, b: conv2d(a, b, strides, padding), x, kernel)
    np.testing.assert_allclose(y1, y0, rtol=1e-12)
    g = jnp.asarray(rng.normal(size=y0.shape))
    for d1, d0 in zip(vjp1(g), vjp0(g)):
        assert d1.shape == d0.shape
        np.testing.assert_allclose(d1, d0, rtol=1e-10, atol=1e-12)


def test_gradients_in_a_scan_use_plain_layouts():
    # jax.vjp's own gradient convolutions read a transposed kernel ('01oi') or swap batch and
    # features; inside a while loop XLA:CPU runs those through a slow generic loop.
    xs = jnp.zeros((3, 2, 8, 8, 4))
    kernel = jnp.zeros((3, 3, 4, 5))

    def loss(conv, k):
        def body(c, x):
            return c + jnp.tanh(conv(x, k)).sum(), None
        return jax.lax.scan(body, 0.0, xs)[0]

    def labels(conv):
        hlo = jax.jit(jax.grad(lambda k: loss(conv, k))).lower(kernel).compile().as_text()
        return {ln.split("dim_labels=")[1].split(",")[0] for ln in hlo.splitlines()
                if " convolution(" in ln}

    lax_conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                                         dimension_numbers=DN)
    assert labels(lax_conv) != {"b01f_01io->b01f"}  # the problem this module works around
    assert labels(lambda x, k: conv2d(x, k)) == {"b01f_01io->b01f"}
