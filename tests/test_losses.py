"""Per-step loss (SPEC §2) against a hand-written formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import losses


def hand_loss(outs, y, mse, target):
    T, B, C = outs.shape
    total = 0.0
    for t in range(T):
        o = outs[t]
        logp = o - np.log(np.exp(o).sum(-1, keepdims=True))
        ce = -np.mean(logp[np.arange(B), y])
        tgt = np.eye(C)[y] if target == "onehot" else np.full((B, C), target)
        total += ((1 - mse) * ce + mse * np.mean((o - tgt) ** 2)) / T
    return total


@pytest.mark.parametrize("mse,target", [(0.0, "onehot"), (0.05, "onehot"), (0.5, 1.0), (1.0, 1.0)])
def test_per_step_matches_hand(mse, target, x64):
    outs = np.asarray(jax.random.normal(jax.random.key(0), (5, 4, 3), jnp.float64))
    y = np.asarray([0, 2, 1, 2])
    got = losses.per_step(mse=mse, target=target).sequence(jnp.asarray(outs), jnp.asarray(y))
    assert float(got) == pytest.approx(hand_loss(outs, y, mse, target), rel=1e-12)


def test_rate_loss_uses_mean_output(x64):
    outs = jax.random.normal(jax.random.key(1), (4, 2, 3), jnp.float64)
    y = jnp.asarray([1, 0])
    got = losses.rate().sequence(outs, y)
    want = hand_loss(np.asarray(outs.mean(0))[None], np.asarray(y), 0.0, "onehot")
    assert float(got) == pytest.approx(want, rel=1e-12)


def test_bad_mix():
    with pytest.raises(ValueError):
        losses.per_step(mse=1.5)
    with pytest.raises(ValueError):
        losses.Loss(kind="sum")
