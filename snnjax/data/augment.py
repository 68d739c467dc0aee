"""Per-batch image augmentation and per-channel normalisation (NumPy, NHWC float32).

The papers train CIFAR with a random 32×32 crop of the image zero-padded by 4 pixels and a
random horizontal flip (optionally Cutout: a square set to zero after normalisation). Each
function draws from the ``rng`` it is given, so the loader's per-batch generator, seeded by
``(seed, epoch, batch)``, makes every augmented batch reproducible (a resumed epoch sees the
same images).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = ["Augment", "random_crop", "random_flip", "cutout", "normalize"]


def random_crop(x: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad each image by ``padding`` and crop back to its size at a random offset.

    Args:
      x: ``[B, H, W, C]`` images.
      padding: pixels of zeros added on every side (0 returns ``x``).
      rng: draws one ``(dy, dx)`` offset in ``[0, 2·padding]²`` per image.

    Returns:
      ``[B, H, W, C]``, same dtype.
    """
    if padding <= 0:
        return x
    b, h, w, _ = x.shape
    dy = rng.integers(0, 2 * padding + 1, size=b) - padding
    dx = rng.integers(0, 2 * padding + 1, size=b) - padding
    # out[r, c] = x[r + dy, c + dx] where that lies inside the image, else 0: one slice copy
    # per image, much cheaper than padding the batch and gathering.
    out = np.zeros_like(x)
    for i, (sy, sx) in enumerate(zip(dy, dx)):
        out[i, max(0, -sy):h - max(0, sy), max(0, -sx):w - max(0, sx)] = (
            x[i, max(0, sy):h + min(0, sy), max(0, sx):w + min(0, sx)]
        )
    return out


def random_flip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip each ``[B, H, W, C]`` image left-right with probability 1/2."""
    flip = rng.random(len(x)) < 0.5
    out = x.copy()
    out[flip] = x[flip, :, ::-1]
    return out


def cutout(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Set a ``size``×``size`` square (clipped at the border) of each image to zero.

    The square's centre is uniform over the image, as in DeVries & Taylor (2017), so squares
    near an edge are partly outside it. Apply after normalisation (zero = the mean colour).

    Args:
      x: ``[B, H, W, C]`` images.
      size: side of the square (0 returns ``x``).
      rng: draws one centre per image.
    """
    if size <= 0:
        return x
    b, h, w, _ = x.shape
    cy = rng.integers(0, h, size=b)[:, None]
    cx = rng.integers(0, w, size=b)[:, None]
    lo, hi = size // 2, size - size // 2
    in_rows = (np.arange(h) >= cy - lo) & (np.arange(h) < cy + hi)  # [B, H]
    in_cols = (np.arange(w) >= cx - lo) & (np.arange(w) < cx + hi)  # [B, W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[..., None].astype(x.dtype)


def normalize(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(x - mean) / std`` per channel (the last axis) of float images."""
    # Tiled over W·C: a broadcast over a last axis of 3 channels runs NumPy's inner loop 3
    # elements at a time, ~10× slower than rows of W·C.
    w = x.shape[-2] if x.ndim >= 2 else 1
    mean = np.tile(np.asarray(mean, dtype=np.float32), w)
    scale = np.tile(1.0 / np.asarray(std, dtype=np.float32), w)
    out = x.reshape(*x.shape[:-2], -1) - mean
    out *= scale
    return out.reshape(x.shape)


@dataclasses.dataclass(frozen=True)
class Augment:
    """The training-split augmentation a dataset asks its loader for.

    Attributes:
      crop_padding: random crop after zero padding by this many pixels (0: none).
      flip: random horizontal flip.
      cutout: side of the Cutout square, applied after normalisation (0: none).
    """

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0

    def __post_init__(self):
        if self.crop_padding < 0 or self.cutout < 0:
            raise ValueError(f"crop_padding and cutout must be >= 0, got {self}")

    def geometric(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Crop and flip ``[B, H, W, C]`` images in [0, 1] (before normalisation)."""
        x = random_crop(x, self.crop_padding, rng)
        return random_flip(x, rng) if self.flip else x

    def erase(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Cutout on normalised ``[B, H, W, C]`` images."""
        return cutout(x, self.cutout, rng)
