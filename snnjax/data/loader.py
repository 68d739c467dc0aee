"""One batch iterator for every dataset: ``(xs [T, B, ...] float32, ys [B] int32)``."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from snnjax.data.augment import normalize
from snnjax.data.dataset import ArrayDataset
from snnjax.data.encoding import ENCODINGS, poisson

if TYPE_CHECKING:
    from snnjax.distributed import DataParallel

__all__ = ["Loader", "Prefetch", "process_shard"]


def process_shard() -> dict[str, int]:
    """``{"shard_index": jax.process_index(), "shard_count": jax.process_count()}``.

    For ``Loader(..., **process_shard())``: each host of a multi-host run reads its block of
    rows of every global batch (process ``i`` of ``n`` holds rows ``[i·B/n, (i+1)·B/n)``).
    """
    import jax

    return {"shard_index": jax.process_index(), "shard_count": jax.process_count()}


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
    draws depend only on ``(seed, e, batch index, row in the batch)``, so a resumed run sees
    the same batches. ``start`` skips batches.

    Per-host loading (multi-host data parallelism): with ``shard_count = n`` hosts, host
    ``shard_index = i`` yields only rows ``[i·B/n, (i+1)·B/n)`` of every global batch of
    ``batch_size = B`` (the global batch is the same as with one host; a partial last batch,
    with ``drop_last=False``, is split as ``np.array_split`` splits it). Only those rows are
    indexed from ``dataset.x`` (a lazily decoded dataset decodes only them) and augmented or
    encoded; augmentation parameters are drawn for the whole global batch (a few numbers per
    image) and Poisson spikes from one generator per row, so the rows are identical to the
    single-host ones. With ``data_parallel`` (a multi-host
    :class:`~snnjax.distributed.DataParallel`), the shard is the rows this host's devices own
    and batches come out as global ``jax.Array`` values
    (:meth:`~snnjax.distributed.DataParallel.from_local`), ready for ``Trainer.step``.
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
    shard_index: int = 0
    shard_count: int = 1
    data_parallel: DataParallel | None = None

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
        if self.data_parallel is not None:
            if not self.drop_last:
                raise ValueError("a loader that assembles global arrays needs drop_last=True")
            rows = self.data_parallel.local_rows(self.batch_size)
            b = rows.stop - rows.start
            if self.batch_size % b or rows.start % b:
                raise ValueError(
                    f"this host's rows {rows.start}:{rows.stop} of the global batch of "
                    f"{self.batch_size} are not one of equal blocks"
                )
            self.shard_index, self.shard_count = rows.start // b, self.batch_size // b
        if not 0 <= self.shard_index < self.shard_count:
            raise ValueError(
                f"shard_index must lie in [0, shard_count={self.shard_count}), got "
                f"{self.shard_index}"
            )
        if self.batch_size % self.shard_count:
            raise ValueError(
                f"batch size {self.batch_size} does not split evenly over {self.shard_count} "
                "hosts: use a multiple of the host count"
            )

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _rows(self, n: int) -> slice:
        """This shard's rows of a global batch of ``n`` rows (``n = B`` but for a last one)."""
        k, i = self.shard_count, self.shard_index
        # np.array_split's blocks: the first n % k blocks get one row more.
        size, extra = divmod(n, k)
        start = i * size + min(i, extra)
        return slice(start, start + size + (i < extra))

    def _images(self, x: np.ndarray, rng: np.random.Generator, rows: slice, n: int,
                keys: list) -> np.ndarray:
        """``[b, H, W, C]`` stored images (rows ``rows`` of a batch of ``n``) -> ``[T, b, ...]``."""
        ds = self.dataset
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        aug = ds.augment if self.augment else None
        if aug is not None:
            draws = aug.draw(rng, n, x.shape[1:3]).take(rows)
            x = aug.geometric(x, draws)
        if self.normalize and self.encoding == "direct" and ds.mean is not None:
            x = normalize(x, ds.mean, ds.std)
        if aug is not None:
            x = aug.erase(x, draws)
        if self.encoding == "poisson":
            # One generator per row: a row's spikes do not depend on the rows beside it.
            out = np.empty((self.T, *x.shape), np.float32)
            for j, key in enumerate(keys):
                out[:, j] = poisson(x[j], self.T, np.random.default_rng(key))
            return out
        return ENCODINGS[self.encoding](x, self.T, rng)

    def _batch(self, idx: np.ndarray, epoch: int, b: int):
        """The shard's part of global batch ``b`` (dataset indices ``idx``)."""
        rows = self._rows(len(idx))
        local = idx[rows]
        x = self.dataset.x[local]
        if self.dataset.temporal:
            xs = np.swapaxes(x, 0, 1)
        else:
            keys = [(self.seed, epoch, b, r) for r in range(rows.start, rows.stop)]
            rng = np.random.default_rng((self.seed, epoch, b))
            xs = self._images(x, rng, rows, len(idx), keys)
        return np.ascontiguousarray(xs, dtype=np.float32), self.dataset.y[local].astype(np.int32)

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[Any, Any]]:
        n = len(self.dataset)
        order = (
            np.random.default_rng((self.seed, epoch)).permutation(n)
            if self.shuffle else np.arange(n)
        )
        for b in range(start, len(self)):
            xs, ys = self._batch(order[b * self.batch_size : (b + 1) * self.batch_size], epoch, b)
            if self.data_parallel is not None:
                xs, ys = self.data_parallel.from_local(xs, ys, self.batch_size)
            yield xs, ys

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Any, Any]]:
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
