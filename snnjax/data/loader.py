"""One batch iterator for every dataset: ``(xs [T, B, ...] float32, ys [B] int32)``."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator

import numpy as np

from snnjax.data.augment import normalize
from snnjax.data.dataset import ArrayDataset
from snnjax.data.encoding import ENCODINGS

__all__ = ["Loader", "Prefetch"]


@dataclasses.dataclass
class Loader:
    """Batches of a dataset, time-major, shuffled by seed, prefetched in a background thread.

    Static images go through, per batch: scaling to [0, 1] (uint8 / 255), the dataset's
    augmentation (crop, flip; training splits only, ``augment=True``), per-channel
    normalisation with the dataset's ``mean``/``std`` (direct encoding only: Poisson needs
    intensities in [0, 1]), Cutout, then the encoding over ``T`` steps (``"direct"`` repeats
    the image, ``"poisson"`` draws Bernoulli spikes). Event frames must already have ``T``
    steps and are passed through as float32.

    ``epoch(e)`` gives the batches of epoch ``e``: the order, the augmentation and the Poisson
    draws depend only on ``(seed, e, batch index)``, so a resumed run sees the same batches.
    ``start`` skips batches.
    """

    dataset: ArrayDataset
    batch_size: int
    T: int
    encoding: str = "direct"
    shuffle: bool = True
    seed: int = 0
    drop_last: bool = True
    prefetch: int = 2
    augment: bool = True
    normalize: bool = True

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

    def _images(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[B, H, W, C]`` stored images -> ``[T, B, H, W, C]`` network input."""
        ds = self.dataset
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        aug = ds.augment if self.augment else None
        if aug is not None:
            x = aug.geometric(x, rng)
        if self.normalize and self.encoding == "direct" and ds.mean is not None:
            x = normalize(x, ds.mean, ds.std)
        if aug is not None:
            x = aug.erase(x, rng)
        return ENCODINGS[self.encoding](x, self.T, rng)

    def _batch(self, idx: np.ndarray, rng: np.random.Generator):
        x = self.dataset.x[idx]
        xs = np.swapaxes(x, 0, 1) if self.dataset.temporal else self._images(x, rng)
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
        """The batches of one epoch, from batch index ``start``.

        With ``prefetch > 0`` this is a :class:`Prefetch`; abandoning it midway (``close()``,
        or dropping the last reference) stops its thread.
        """
        batches = self._batches(epoch, start)
        return batches if self.prefetch <= 0 else Prefetch(batches, self.prefetch)

    def __iter__(self):
        return self.epoch(0)


class _Raised:
    """An exception from the producer, carried to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def _produce(it: Iterator, q: queue.Queue, stop: threading.Event) -> None:
    """Put ``it``'s items on ``q`` until exhausted or ``stop`` is set (never blocks forever)."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in it:
            if not put(item):
                return
    except BaseException as e:  # re-raised in the consumer
        put(_Raised(e))
        return
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    put(_DONE)


class Prefetch:
    """Iterate ``it`` in a daemon thread, up to ``size`` items ahead of the consumer.

    The thread starts at once, so the first batch is being assembled while the caller
    compiles its step. NumPy releases the GIL in the copies that dominate batch assembly.
    ``close()`` (also called on exhaustion, on error, by ``with`` and when the iterator is
    garbage collected) sets a stop event; the producer only ever blocks for 50 ms at a time,
    so the thread ends promptly even when the epoch is abandoned midway.
    """

    def __init__(self, it: Iterator, size: int):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        # The thread holds no reference to self, so dropping the iterator reaches __del__.
        self.thread = threading.Thread(
            target=_produce, args=(it, self._queue, self._stop), name="snnjax-prefetch",
            daemon=True,
        )
        self.thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        if self._stop.is_set():
            raise StopIteration
        item = self._queue.get()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, _Raised):
            self.close()
            raise item.error
        return item

    def close(self, timeout: float | None = 1.0) -> None:
        """Stop the producer thread and wait up to ``timeout`` seconds for it to end."""
        self._stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self._stop.set()  # no join here: finalizers must not block
