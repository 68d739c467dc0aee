"""In-memory datasets and the registry of dataset names."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from snnjax.data.augment import Augment

__all__ = ["ArrayDataset", "register", "load", "names"]


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """Samples held as NumPy arrays (or an array-like that decodes on indexing).

    Attributes:
      x: ``[N, H, W, C]`` static images, float32 in [0, 1] or uint8 in [0, 255] (the loader
        scales uint8 by 1/255); or ``[N, T, H, W, C]`` event frames (counts, any numeric
        dtype) when ``temporal`` is True. Anything with ``shape``, ``len`` and integer-array
        indexing works (ImageNet decodes lazily).
      y: ``[N]`` integer labels in ``[0, num_classes)``.
      num_classes: number of classes.
      name: the dataset's name.
      temporal: samples already have a time axis (event frames); else they are encoded.
      mean: per-channel mean of the images in [0, 1], for normalisation (None: none).
      std: per-channel standard deviation, with ``mean``.
      augment: the augmentation the loader applies per batch (set on training splits only).
    """

    x: Any
    y: np.ndarray
    num_classes: int
    name: str
    temporal: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: Augment | None = None

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise ValueError(f"{self.name}: {len(self.x)} samples but {len(self.y)} labels")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= self.num_classes):
            raise ValueError(
                f"{self.name}: labels must lie in [0, {self.num_classes}), got "
                f"[{self.y.min()}, {self.y.max()}]"
            )
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"{self.name}: give both mean and std, or neither")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one time step of one sample (without T)."""
        return tuple(self.x.shape[2:] if self.temporal else self.x.shape[1:])


_LOADERS: dict[str, Callable[..., ArrayDataset]] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    key = name.replace("-", "_").lower()
    return _ALIASES.get(key, key)


def register(name: str, loader: Callable[..., ArrayDataset], *, aliases=()) -> None:
    """Make ``loader(split=..., data_dir=..., **options)`` available as ``load(name, ...)``.

    A loader whose samples carry their own time axis takes a ``T`` keyword; ``load`` passes
    ``T`` only to loaders that accept it.
    """
    _LOADERS[name] = loader
    for alias in aliases:
        _ALIASES[_key(alias)] = name


def names() -> tuple[str, ...]:
    """The registered dataset names (aliases such as ``fashion-mnist`` also load)."""
    return tuple(_LOADERS)


def load(
    name: str, split: str = "train", *, data_dir: str | None = None, **options
) -> ArrayDataset:
    """Load a dataset split (``"train"`` or ``"test"``) by name.

    Args:
      name: a registered name (see :func:`names`); ``-`` and ``_`` are interchangeable.
      split: ``"train"`` or ``"test"``.
      data_dir: where the dataset's files are (each loader says what it expects there).
      **options: loader options, e.g. ``T`` (frames of event datasets; ignored by static
        image datasets, which the loader encodes over T), ``size``, ``cutout``,
        ``cache_dir`` (where converted data is cached; None is accepted by every dataset).

    Raises:
      ValueError: unknown name, split or option.
      DatasetNotFoundError: the files are missing (the message says what to get, and where).
    """
    key = _key(name)
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(_LOADERS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    loader = _LOADERS[key]
    accepted = inspect.signature(loader).parameters
    if "T" not in accepted:
        options.pop("T", None)  # static images get their time axis from the encoding
    if "cache_dir" not in accepted and options.get("cache_dir", 0) is None:
        del options["cache_dir"]  # "no cache dir chosen" suits datasets that keep no cache
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"dataset {key!r} takes no option(s) {', '.join(unknown)}")
    return loader(split=split, data_dir=data_dir, **options)
