"""Offline stand-ins for the papers' datasets, made from scikit-learn's 8×8 digits.

The ``small`` presets must run on any CPU without downloads, so they use the 1,797 real
digits that ship inside scikit-learn, in the two forms the papers' tables compare:

- ``digits_std`` (frame-based, stands in for CIFAR-10/100): the 8×8 image fed at every step
  (direct encoding), normalised per channel with the training split's mean and std, as the
  papers normalise CIFAR (raw [0, 1] pixels barely reach a threshold of 1 through a scaled-WS
  conv, so an un-normalised sWS net starts silent).
- ``digits_dvs`` (event-based, stands in for CIFAR10-DVS / DVS128 Gesture / N-MNIST): the
  digit moves by one pixel per step along a small square "saccade" (as N-MNIST was recorded),
  and each frame holds the brightness changes of that step in two polarity channels,
  ``ON = max(ΔI, 0)``, ``OFF = max(-ΔI, 0)``: ``[N, T, 8, 8, 2]``, scaled to unit standard
  deviation. Each sample starts at a random phase of the saccade (seeded), so the frames differ
  between samples of the same digit and over time.

Importing this module registers both names in :mod:`snnjax.data`; the split is the digits'
(80 % / 20 %, fixed seed).
"""

from __future__ import annotations

import numpy as np

from snnjax.data import ArrayDataset, register
from snnjax.data.digits import load_digits

__all__ = ["digits_std", "digits_dvs", "saccade_events"]

# One pixel per step around a square: the displacement (dy, dx) at each phase.
_SACCADE = ((0, 0), (0, 1), (1, 1), (1, 0))


def digits_std(split: str = "train", data_dir: str | None = None) -> ArrayDataset:
    """Digits ``[N, 8, 8, 1]`` in [0, 1] with the training split's per-channel mean/std."""
    del data_dir
    train = load_digits("train")
    ds = load_digits(split)
    mean = (float(train.x.mean()),)
    std = (float(train.x.std()),)
    return ArrayDataset(ds.x, ds.y, ds.num_classes, "digits_std", mean=mean, std=std)


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift ``[H, W]`` down/right by ``(dy, dx)`` pixels, filling with zeros."""
    out = np.zeros_like(x)
    h, w = x.shape
    out[dy:, dx:] = x[: h - dy, : w - dx]
    return out


def saccade_events(images: np.ndarray, T: int, rng: np.random.Generator) -> np.ndarray:
    """Event frames of images moving along the saccade: ``[N, H, W] -> [N, T, H, W, 2]``.

    Frame ``t`` holds the ON/OFF brightness changes between positions ``t-1`` and ``t``
    (float32, not yet scaled); each sample starts at a random phase.
    """
    n = len(images)
    phase0 = rng.integers(0, len(_SACCADE), size=n)
    out = np.zeros((n, T, *images.shape[1:], 2), np.float32)
    for i, img in enumerate(images):
        prev = _shift(img, *_SACCADE[(phase0[i] - 1) % len(_SACCADE)])
        for t in range(T):
            cur = _shift(img, *_SACCADE[(phase0[i] + t) % len(_SACCADE)])
            d = cur - prev
            out[i, t, ..., 0] = np.maximum(d, 0)
            out[i, t, ..., 1] = np.maximum(-d, 0)
            prev = cur
    return out


def digits_dvs(split: str = "train", data_dir: str | None = None, *, T: int = 10) -> ArrayDataset:
    """Event-style digits: ``[N, T, 8, 8, 2]`` ON/OFF frames of a saccading digit."""
    del data_dir
    if T < 1:
        raise ValueError(f"T (frames) must be >= 1, got {T}")
    ds = load_digits(split)
    seed = 0 if split == "train" else 1
    frames = saccade_events(ds.x[..., 0], T, np.random.default_rng(seed))
    # Scale by the training split's spread so that both splits share one scale.
    train = ds if split == "train" else load_digits("train")
    ref = frames if split == "train" else saccade_events(
        train.x[..., 0], T, np.random.default_rng(0)
    )
    frames /= max(float(ref.std()), 1e-6)
    return ArrayDataset(frames, ds.y, ds.num_classes, "digits_dvs", temporal=True)


register("digits_std", digits_std)
register("digits_dvs", digits_dvs)
