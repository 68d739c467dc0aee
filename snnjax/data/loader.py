"""One batch iterator for every dataset: ``(xs [T, B, ...] float32, ys [B] int32)``."""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Iterator

import numpy as np

from snnjax.data.dataset import ArrayDataset
from snnjax.data.encoding import ENCODINGS

__all__ = ["Loader"]


@dataclasses.dataclass
class Loader:
    """Batches of a dataset, time-major, shuffled by seed, prefetched in a background thread.

    Static images are encoded over ``T`` steps (``"direct"`` repeats the image, ``"poisson"``
    draws Bernoulli spikes); event frames must already have ``T`` steps.

    ``epoch(e)`` gives the batches of epoch ``e``: the order and the Poisson draws depend only
    on ``(seed, e)``, so a resumed run sees the same batches. ``start`` skips batches.
    """

    dataset: ArrayDataset
    batch_size: int
    T: int
    encoding: str = "direct"
    shuffle: bool = True
    seed: int = 0
    drop_last: bool = True
    prefetch: int = 2

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.T < 1:
            raise ValueError(f"T (time steps) must be >= 1, got {self.T}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {self.encoding!r}; use {', '.join(ENCODINGS)}")
        if self.dataset.temporal and self.dataset.x.shape[1] != self.T:
            raise ValueError(
                f"{self.dataset.name} has {self.dataset.x.shape[1]} frames per sample, T={self.T}"
            )
        if self.drop_last and len(self.dataset) < self.batch_size:
            raise ValueError(
                f"{self.dataset.name}: batch size {self.batch_size} exceeds the "
                f"{len(self.dataset)} samples with drop_last"
            )

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batch(self, idx: np.ndarray, rng: np.random.Generator):
        x = self.dataset.x[idx]
        if self.dataset.temporal:
            xs = np.swapaxes(x, 0, 1)
        else:
            xs = ENCODINGS[self.encoding](x, self.T, rng)
        return np.ascontiguousarray(xs, dtype=np.float32), self.dataset.y[idx].astype(np.int32)

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(self.dataset)
        order = (
            np.random.default_rng((self.seed, epoch)).permutation(n)
            if self.shuffle else np.arange(n)
        )
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self._batch(idx, np.random.default_rng((self.seed, epoch, b)))

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of one epoch, from batch index ``start``."""
        batches = self._batches(epoch, start)
        return batches if self.prefetch <= 0 else _prefetch(batches, self.prefetch)

    def __iter__(self):
        return self.epoch(0)


def _prefetch(it: Iterator, size: int) -> Iterator:
    """Run ``it`` in a daemon thread, ``size`` items ahead (NumPy releases the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()

    def worker():
        try:
            for item in it:
                q.put(item)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)
        q.put(done)

    threading.Thread(target=worker, daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
