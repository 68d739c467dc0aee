"""snnjax.pooling: max_pool is reduce_window's max pooling and gradient, bit for bit, with a
backward that stores one byte per output; avg_pool is flax's average pooling."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.pooling import avg_pool, max_pool


@pytest.mark.parametrize("shape,window", [((3, 8, 8, 5), 2), ((2, 9, 7, 3), 2),
                                          ((2, 9, 9, 2), 3), ((1, 4, 4, 1), 1)])
@pytest.mark.parametrize("data", ["spikes", "normal"])
def test_max_pool_is_reduce_windows_in_value_and_gradient(shape, window, data, x64):
    # Spike maps tie everywhere: the gradient must go to the first maximum of each window
    # (row-major), as reduce_window's >= selection (and PyTorch's MaxPool2d) picks.
    key = jax.random.key(sum(shape) + window)
    if data == "spikes":
        x = (jax.random.uniform(key, shape) > 0.5).astype(jnp.float64)
    else:
        x = jax.random.normal(key, shape, jnp.float64)
    ref, ref_vjp = jax.vjp(lambda x: nn.max_pool(x, (window, window), strides=(window,) * 2), x)
    out, vjp = jax.vjp(lambda x: max_pool(x, window), x)
    g = jax.random.normal(jax.random.key(7), ref.shape, jnp.float64)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(vjp(g)[0], ref_vjp(g)[0])
    if data == "spikes" and window > 1:
        assert (np.asarray(ref_vjp(g)[0]) != 0).sum() == np.prod(ref.shape)  # one per window


def test_max_pool_backward_memory_is_below_reduce_windows():
    x = jax.ShapeDtypeStruct((64, 32, 32, 16), jnp.float32)

    def temp(pool):
        f = jax.jit(jax.grad(lambda x: (pool(x) ** 2).sum()))
        return f.lower(x).compile().memory_analysis().temp_size_in_bytes

    ours = temp(lambda x: max_pool(x, 2))
    theirs = temp(lambda x: nn.max_pool(x, (2, 2), strides=(2, 2)))
    assert ours < 0.5 * theirs, (ours, theirs)


def test_max_pool_keeps_its_index_not_its_input_for_the_backward():
    # The pooled map's input is made inside the differentiated function: between forward
    # and backward only the uint8 index (a quarter of the output) must stay. When the index
    # was fused into the backward, XLA kept the input itself (about one more input-sized
    # array in total).
    a = jax.ShapeDtypeStruct((64, 32, 32, 16), jnp.float32)

    def loss(c, a):
        return jnp.cos(max_pool(a * c, 2)).sum()

    grad = jax.jit(jax.grad(loss)).lower(jax.ShapeDtypeStruct((), jnp.float32), a).compile()
    input_size = 64 * 32 * 32 * 16 * 4
    # What must exist: the backward's input-sized cotangent, plus small change.
    assert grad.memory_analysis().temp_size_in_bytes < 1.75 * input_size


def test_max_pool_refuses_a_window_it_cannot_index():
    with pytest.raises(ValueError, match="window"):
        max_pool(jnp.zeros((1, 34, 34, 1)), 17)


@pytest.mark.parametrize("shape,window", [((3, 8, 8, 5), 2), ((2, 9, 7, 3), 2),
                                          ((2, 9, 9, 2), 3), ((1, 4, 4, 1), 1)])
def test_avg_pool_is_flax_avg_pool_in_value_and_gradient(shape, window, x64):
    # The window's strided slices added in row-major order, as reduce_window adds them: on
    # spike maps the same values bit for bit (checked to rounding on real values); the
    # backward is reduce_window's transpose.
    key = jax.random.key(sum(shape) + window)
    spikes = (jax.random.uniform(key, shape) > 0.5).astype(jnp.float64)
    real = jax.random.normal(key, shape, jnp.float64)

    def ref(x):
        return nn.avg_pool(x, (window, window), strides=(window,) * 2)

    np.testing.assert_array_equal(avg_pool(spikes, window), ref(spikes))
    np.testing.assert_allclose(avg_pool(real, window), ref(real), rtol=1e-15, atol=1e-15)
    out, vjp = jax.vjp(lambda x: avg_pool(x, window), real)
    g = jax.random.normal(jax.random.key(7), out.shape, jnp.float64)
    np.testing.assert_array_equal(vjp(g)[0], jax.vjp(ref, real)[1](g)[0])


def test_avg_pool_refuses_a_window_below_one():
    with pytest.raises(ValueError, match="window"):
        avg_pool(jnp.ones((1, 4, 4, 1)), 0)
