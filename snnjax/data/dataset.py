"""In-memory datasets and the registry of dataset names."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

__all__ = ["ArrayDataset", "register", "load", "names"]


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """Samples held as NumPy arrays.

    Attributes:
      x: ``[N, H, W, C]`` static images (float32, normalised), or ``[N, T, H, W, C]`` event
        frames when ``temporal`` is True.
      y: ``[N]`` integer labels in ``[0, num_classes)``.
      num_classes: number of classes.
      name: the dataset's name.
      temporal: samples already have a time axis (event frames); else they are encoded.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    name: str
    temporal: bool = False

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise ValueError(f"{self.name}: {len(self.x)} samples but {len(self.y)} labels")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= self.num_classes):
            raise ValueError(
                f"{self.name}: labels must lie in [0, {self.num_classes}), got "
                f"[{self.y.min()}, {self.y.max()}]"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one time step of one sample (without T)."""
        return tuple(self.x.shape[2:] if self.temporal else self.x.shape[1:])


_LOADERS: dict[str, Callable[..., ArrayDataset]] = {}


def register(name: str, loader: Callable[..., ArrayDataset]) -> None:
    """Make ``loader(split=..., data_dir=...)`` available as ``load(name, ...)``."""
    _LOADERS[name] = loader


def names() -> tuple[str, ...]:
    return tuple(_LOADERS)


def load(name: str, split: str = "train", *, data_dir: str | None = None) -> ArrayDataset:
    """Load a dataset split (``"train"`` or ``"test"``) by name."""
    key = name.replace("-", "_").lower()
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(_LOADERS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _LOADERS[key](split=split, data_dir=data_dir)
