"""The temporal order task: a synthetic recurrent task that ships with the package.

Two cues, X and Y, arrive one after the other, far apart; the label is which came first
(Hochreiter & Schmidhuber's temporal order problem, 1997, reduced to spikes):

- input: ``2·channels + noise_channels`` spike channels (0/1): group X (channels
  ``[0, c)``), group Y (``[c, 2c)``) and background noise. With ``w = cue_steps`` and
  ``g = ⌊(T - 2w)/3⌋``, the first cue is shown at steps ``[g, g + w)`` and the second at
  ``[2g + w, 2g + 2w)``; while a cue is shown, each channel of its group fires with
  probability ``cue_rate`` at each step. Noise channels fire with probability ``noise_rate``
  at every step. The lead-in before the first cue, the delay between the cues and the tail
  after the second (``g`` steps or more each) carry only noise; all three grow with T.
- label: 0 when X came first, 1 when Y did; classes exactly balanced.

Why a feed-forward net cannot solve it: both classes show the same cues, X once and Y once,
with the same statistics; only their order differs. A spiking net without recurrence predicts
``argmax Σ_t o[t]`` where ``o[t]`` depends on the input of step t and, through its neurons'
membranes, on what is left of earlier inputs, a fraction ``λ^d`` of the input ``d`` steps
back. With no membrane memory (λ = 0) the sum does not depend on the order of the steps at
all: exactly chance. With λ > 0, telling the orders apart needs something of one cue to
reach the other across the delay, or the sequence's start or end to mark a cue's time
through the lead-in or the tail: each ``g`` steps or more, where a membrane keeps ``λ^g``
(1.6 % at λ = 0.5, the default τ = 2, and T = 24: ``g = 6``; 0.02 % at T = 40). A recurrent
synapse can carry the first cue across the delay. Bellec et al. (Nat. Commun. 2020) probe
e-prop with memory tasks of this kind.

Deterministic: a split's samples depend only on ``(seed, split, T, the task's options)``.
"""

from __future__ import annotations

import numpy as np

from snnjax.data.dataset import ArrayDataset, register

__all__ = ["temporal_order", "load_temporal_order", "cue_windows", "SPLIT_SIZES"]

#: Samples per split of the registered dataset.
SPLIT_SIZES = {"train": 2048, "test": 512}
_SPLIT_STREAM = {"train": 0, "test": 1}


def cue_windows(T: int, cue_steps: int) -> tuple[range, range]:
    """The steps of the first and the second cue for ``T`` steps."""
    if cue_steps < 1:
        raise ValueError(f"cue_steps must be >= 1, got {cue_steps}")
    if T < 2 * cue_steps:
        raise ValueError(f"T must be at least 2·cue_steps = {2 * cue_steps} (both cues), got {T}")
    gap = (T - 2 * cue_steps) // 3
    start = gap + cue_steps + gap
    return range(gap, gap + cue_steps), range(start, start + cue_steps)


def temporal_order(
    n: int,
    T: int,
    *,
    seed: int | tuple[int, ...] = 0,
    cue_steps: int = 2,
    channels: int = 4,
    noise_channels: int = 4,
    cue_rate: float = 0.8,
    noise_rate: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples of the temporal order task, time-major.

    Args:
      n: samples, even (``n/2`` per class).
      T: time steps, at least ``2·cue_steps``.
      seed: the generator's seed (an int or a tuple of ints, as ``np.random.default_rng``).
      cue_steps: steps each cue is shown.
      channels: spike channels per cue (X and Y).
      noise_channels: channels of background noise (no information).
      cue_rate: firing probability of a shown cue's channels at each of its steps.
      noise_rate: firing probability of a noise channel at each step.

    Returns:
      ``xs [T, n, 2·channels + noise_channels]`` float32 spikes and ``ys [n]`` int32 labels
      (0: X first, 1: Y first).
    """
    if n < 2 or n % 2:
        raise ValueError(f"n must be a positive even number (balanced classes), got {n}")
    first, second = cue_windows(T, cue_steps)
    if channels < 1 or noise_channels < 0:
        raise ValueError(f"need channels >= 1 and noise_channels >= 0, got {channels} and "
                         f"{noise_channels}")
    for name, p in (("cue_rate", cue_rate), ("noise_rate", noise_rate)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    if cue_rate == 0.0:
        raise ValueError("cue_rate 0 shows no cue: the order could not be told")
    rng = np.random.default_rng(seed)
    ys = rng.permutation(np.repeat(np.arange(2, dtype=np.int32), n // 2))
    c = channels
    xs = np.zeros((T, n, 2 * c + noise_channels), np.float32)
    rows = np.arange(n)[:, None]
    groups = {first: ys, second: 1 - ys}  # group 0 is X, 1 is Y
    for steps, group in groups.items():
        cols = group[:, None] * c + np.arange(c)
        for t in steps:
            xs[t, rows, cols] = rng.random((n, c)) < cue_rate
    if noise_channels:
        xs[:, :, 2 * c:] = rng.random((T, n, noise_channels)) < noise_rate
    return xs, ys


def load_temporal_order(
    split: str = "train",
    data_dir: str | None = None,
    *,
    T: int = 24,
    seed: int = 0,
    cue_steps: int = 2,
) -> ArrayDataset:
    """The temporal order task as a dataset: ``x [N, T, 12]`` spikes, ``temporal=True``,
    2 classes; 2,048 training and 512 test samples from independent streams of ``seed``.

    Any ``T >= 2·cue_steps`` (the CLI's ``--T``); the default 24 has a lead-in, a delay and a
    tail of 6 steps or more each (``g = 6``).
    """
    del data_dir  # generated: nothing to read
    xs, ys = temporal_order(SPLIT_SIZES[split], T, seed=(seed, _SPLIT_STREAM[split]),
                            cue_steps=cue_steps)
    return ArrayDataset(np.ascontiguousarray(xs.swapaxes(0, 1)), ys, 2, "temporal_order",
                        temporal=True)


register("temporal_order", load_temporal_order)
