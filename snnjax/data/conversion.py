"""Recordings to frames in worker processes, in file order, with a progress bar.

The work per recording (decode, bin, resize) is independent, so it is spread over processes,
started with ``spawn``: forking a process in which JAX has started its threads can deadlock.
BLAS runs one thread per converting process (the resize's matrix products are small), so the
processes do not oversubscribe the cores. Results come back in file order with a bounded
number in flight, so an unreadable file fails the conversion as soon as the files before it
are done.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

import numpy as np

from snnjax.data.errors import CorruptFileError
from snnjax.data.frames import resize_frames, to_frames

if TYPE_CHECKING:
    from snnjax.data.events import EventSpec

__all__ = ["convert"]

# Below this much recording data, starting worker processes costs more than it saves.
_PARALLEL_MIN_BYTES = 256 * 2**20


def _frames_of(spec: EventSpec, path: str, T: int, size: tuple[int, int], split_by: str):
    """``(frames [T, H, W, 2], events in the recording)`` of one file, as stored in the cache.

    Raises:
      CorruptFileError: unreadable, or events that do not fit the sensor (names the file).
    """
    events = spec.read(path)
    try:
        counts = to_frames(events, sensor_size=spec.sensor_size, T=T, split_by=split_by)
    except ValueError as e:
        raise CorruptFileError(path, f"bad events for {spec.title} ({e})") from e
    w, h = spec.sensor_size
    if size != (h, w):
        return resize_frames(counts, size), len(events)
    if counts.max(initial=0) > np.iinfo(np.int16).max:
        raise CorruptFileError(path, "more than 32767 events at one pixel in one frame")
    return counts.astype(np.int16), len(events)


def _convert_one(job):
    """Worker entry point: ``(spec, path, T, size, split_by) -> (frames, n, error or None)``."""
    spec, path, T, size, split_by = job
    try:
        frames, n = _frames_of(spec, path, T, size, split_by)
    except CorruptFileError as e:  # returned, not raised: fail in file order in the parent
        return None, 0, e
    return frames, n, None


def _one_blas_thread():
    """Limit BLAS to one thread (undone on exit when used as a context manager): the resize's
    matrix products are small, and threads cost more than they save, the more so when the
    conversion already runs one process per core."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _init_worker() -> None:
    _one_blas_thread()


def _in_order(pool, fn, jobs: list, window: int):
    """``fn(job)`` for each job on ``pool``, yielded in order, at most ``window`` in flight
    (finished frames do not pile up in memory ahead of a slow one)."""
    pending: collections.deque = collections.deque()
    it = iter(jobs)
    for job in itertools.islice(it, window):
        pending.append(pool.submit(fn, job))
    while pending:
        result = pending.popleft().result()
        for job in itertools.islice(it, 1):
            pending.append(pool.submit(fn, job))
        yield result


def _workers(workers: int | None, files: list[tuple[str, int]]) -> int:
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        return int(workers)
    total = sum(os.path.getsize(p) for p, _ in files)
    if total < _PARALLEL_MIN_BYTES:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, len(files)))


def convert(
    spec: EventSpec,
    files: list[tuple[str, int]],
    *,
    T: int,
    size: tuple[int, int],
    split_by: str = "number",
    workers: int | None = None,
    desc: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames of many recordings, by ``workers`` processes, with a progress bar on a terminal.

    Args:
      spec: the dataset (its reader, sensor size and title).
      files: ``[(path, label)]``.
      T, size, split_by: as for :func:`~snnjax.data.events.load_events`.
      workers: processes (default: all cores; 1 under 256 MiB of recordings, where
        starting the processes would cost about what they save).
      desc: the progress bar's label.

    Returns:
      ``(x [N, T, H, W, 2], events per recording [N] int64)``; ``x`` int16 counts at the
      sensor's size, else float32.

    Raises:
      CorruptFileError: the first unreadable recording, in file order.
      RuntimeError: the worker processes could not run (says why it may be and what to do).
    """
    from tqdm.auto import tqdm

    w, h = spec.sensor_size
    dtype = np.int16 if size == (h, w) else np.float32
    x = np.zeros((len(files), T, *size, 2), dtype=dtype)
    n_events = np.zeros(len(files), dtype=np.int64)
    jobs = [(spec, path, T, size, split_by) for path, _ in files]
    n_workers = min(_workers(workers, files), max(1, len(files)))
    bar = tqdm(total=len(files), desc=desc, unit="rec", disable=None, leave=False)
    pool = None
    try:
        if n_workers > 1:
            # spawn: forking a process that has started JAX's threads can deadlock.
            pool = concurrent.futures.ProcessPoolExecutor(
                n_workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
            )
            results = _in_order(pool, _convert_one, jobs, window=4 * n_workers)
        else:
            results = map(_convert_one, jobs)
        with _one_blas_thread() if pool is None else contextlib.nullcontext():
            for i, (frames, n, error) in enumerate(results):
                if error is not None:
                    raise error
                x[i], n_events[i] = frames, n
                bar.update()
    except BrokenProcessPool as e:
        raise RuntimeError(
            f"the {n_workers} conversion processes died ({e}): a script that loads data at "
            "import time needs `if __name__ == '__main__':`; workers=1 converts in this process"
        ) from e
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return x, n_events
