"""scikit-learn's 8×8 digits: 1,797 real handwritten digits shipped inside the wheel.

The default dataset: available offline on any machine where snnjax is installed.
Split: a fixed seeded permutation, 80 % train (1,437) / 20 % test (360).
"""

from __future__ import annotations

import numpy as np

from snnjax.data.dataset import ArrayDataset, register

__all__ = ["load_digits"]


def load_digits(split: str = "train", data_dir: str | None = None) -> ArrayDataset:
    """Images ``[N, 8, 8, 1]`` float32 in [0, 1], labels ``[N]`` int32."""
    from sklearn.datasets import load_digits as _sk_load_digits

    raw = _sk_load_digits()
    x = (raw.images / 16.0).astype(np.float32)[..., None]
    y = raw.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(y))
    n_train = int(round(0.8 * len(y)))
    idx = order[:n_train] if split == "train" else order[n_train:]
    return ArrayDataset(x[idx], y[idx], 10, "digits")


register("digits", load_digits)
