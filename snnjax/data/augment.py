"""Per-batch image augmentation and per-channel normalisation (NumPy, NHWC float32).

The papers train CIFAR with a random 32×32 crop of the image zero-padded by 4 pixels and a
random horizontal flip (optionally Cutout: a square set to zero after normalisation). The
random parameters are drawn per image, for a whole batch at once (:meth:`Augment.draw`), and
then applied: the loader draws for the *global* batch from its per-batch generator, seeded by
``(seed, epoch, batch)``, and applies to the rows it holds, so an augmented batch is
reproducible (a resumed epoch sees the same images) and does not depend on how many hosts
share it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "Augment", "AugmentDraws", "random_crop", "random_flip", "cutout", "shift", "erase_squares",
    "normalize",
]


def shift(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """``out[i, r, c] = x[i, r + dy[i], c + dx[i]]`` where that lies inside the image, else 0.

    Args:
      x: ``[B, H, W, C]`` images.
      dy, dx: ``[B]`` integer offsets.
    """
    _, h, w, _ = x.shape
    # One slice copy per image, much cheaper than padding the batch and gathering.
    out = np.zeros_like(x)
    for i, (sy, sx) in enumerate(zip(dy, dx)):
        out[i, max(0, -sy):h - max(0, sy), max(0, -sx):w - max(0, sx)] = (
            x[i, max(0, sy):h + min(0, sy), max(0, sx):w + min(0, sx)]
        )
    return out


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
    b = len(x)
    dy = rng.integers(0, 2 * padding + 1, size=b) - padding
    dx = rng.integers(0, 2 * padding + 1, size=b) - padding
    return shift(x, dy, dx)


def random_flip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip each ``[B, H, W, C]`` image left-right with probability 1/2."""
    flip = rng.random(len(x)) < 0.5
    out = x.copy()
    out[flip] = x[flip, :, ::-1]
    return out


def erase_squares(x: np.ndarray, size: int, cy: np.ndarray, cx: np.ndarray) -> np.ndarray:
    """Zero a ``size``×``size`` square centred at ``(cy[i], cx[i])`` (clipped) in image ``i``."""
    _, h, w, _ = x.shape
    cy, cx = np.asarray(cy)[:, None], np.asarray(cx)[:, None]
    lo, hi = size // 2, size - size // 2
    in_rows = (np.arange(h) >= cy - lo) & (np.arange(h) < cy + hi)  # [B, H]
    in_cols = (np.arange(w) >= cx - lo) & (np.arange(w) < cx + hi)  # [B, W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[..., None].astype(x.dtype)


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
    return erase_squares(x, size, rng.integers(0, h, size=b), rng.integers(0, w, size=b))


def normalize(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(x - mean) / std`` per channel (the last axis) of float images."""
    # Tiled over W·C: a broadcast over a last axis of 3 channels runs NumPy's inner loop 3
    # elements at a time, ~10× slower than rows of W·C.
    w = x.shape[-2] if x.ndim >= 2 else 1
    mean = np.tile(np.asarray(mean, dtype=np.float32), w)
    scale = np.tile(1.0 / np.asarray(std, dtype=np.float32), w)
    out = x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1]) - mean
    out *= scale
    return out.reshape(x.shape)


class AugmentDraws(NamedTuple):
    """The random parameters of one batch's augmentation, one entry per image ``[B]``."""

    dy: np.ndarray
    dx: np.ndarray
    flip: np.ndarray
    cy: np.ndarray
    cx: np.ndarray

    def take(self, rows) -> AugmentDraws:
        """The draws of ``rows`` (a slice or index array) of the batch."""
        return AugmentDraws(*(a[rows] for a in self))


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

    def draw(self, rng: np.random.Generator, n: int, image_size: tuple[int, int]) -> AugmentDraws:
        """Draw the parameters for ``n`` images of ``image_size = (H, W)``.

        Always the same five draws in the same order, so the draws of a batch do not depend
        on which augmentations are on.
        """
        p = self.crop_padding
        h, w = image_size
        return AugmentDraws(
            dy=rng.integers(0, 2 * p + 1, size=n) - p,
            dx=rng.integers(0, 2 * p + 1, size=n) - p,
            flip=rng.random(n) < 0.5,
            cy=rng.integers(0, h, size=n),
            cx=rng.integers(0, w, size=n),
        )

    def geometric(self, x: np.ndarray, draws: AugmentDraws) -> np.ndarray:
        """Crop and flip ``[B, H, W, C]`` images in [0, 1] (before normalisation)."""
        if self.crop_padding > 0:
            x = shift(x, draws.dy, draws.dx)
        if self.flip:
            x = x.copy()
            x[draws.flip] = x[draws.flip, :, ::-1]
        return x

    def erase(self, x: np.ndarray, draws: AugmentDraws) -> np.ndarray:
        """Cutout on normalised ``[B, H, W, C]`` images."""
        if self.cutout <= 0:
            return x
        return erase_squares(x, self.cutout, draws.cy, draws.cx)
