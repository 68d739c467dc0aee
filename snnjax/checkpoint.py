"""Checkpoints of a training run with orbax: train state and where the data stream stands.

A checkpoint is one directory per global step, ``<dir>/<step>/``, holding two items:
``state`` (the :class:`~snnjax.train.TrainState`: parameters, optimizer state, BatchNorm
statistics, step counter and PRNG key) and ``meta`` (JSON: data-iterator position
``epoch``/``batch``, the run's config and history so far).

Atomicity: orbax writes a checkpoint into ``<step>.orbax-checkpoint-tmp*`` and, once every
file is written, adds ``commit_success.txt`` and renames the directory to ``<step>`` (on
cloud stores without atomic rename the commit file alone marks completion). A write killed
midway therefore leaves only a tmp directory, which :func:`complete_steps` never lists; it
also skips any ``<step>`` directory without the commit file. A committed checkpoint can still
be damaged later (a truncated file, a lost object): :meth:`Checkpointer.restore` and
:meth:`Checkpointer.read_meta` then warn (one line, naming the step and the error) and fall
back to the next older checkpoint; once a restore succeeds, the unreadable newer ones are
renamed ``<step>.unreadable`` so that the resumed run can write those steps again.

orbax-checkpoint is an optional extra (``pip install 'snnjax[checkpoint]'``), imported only
when a :class:`Checkpointer` is made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
from typing import Any, Callable, TypeVar

import jax
import numpy as np

from snnjax.files import check_writable_folder
from snnjax.train import TrainState, all_finite

__all__ = [
    "Checkpointer",
    "MissingDependencyError",
    "complete_steps",
    "latest_complete_step",
    "read_checkpoint",
]

PyTree = Any
COMMIT_FILE = "commit_success.txt"  # orbax's commit marker (atomicity_types.COMMIT_SUCCESS_FILE)
_STEP_DIR = re.compile(r"^\d+$")
UNREADABLE_SUFFIX = ".unreadable"  # where a damaged checkpoint is set aside
log = logging.getLogger(__name__)
_T = TypeVar("_T")


class MissingDependencyError(ImportError, ValueError):
    """An optional dependency is missing (a ValueError too, so the CLI reports it plainly)."""


def _orbax():
    try:
        import orbax.checkpoint as ocp
    except ImportError as e:
        raise MissingDependencyError(
            "checkpointing needs orbax-checkpoint, which is not installed: "
            "pip install 'snnjax[checkpoint]'"
        ) from e
    return ocp


def _location(directory: str | os.PathLike) -> str:
    """An absolute local path, or a URL (``gs://...``) as given."""
    directory = os.fspath(directory)
    return directory if "://" in directory else os.path.abspath(directory)


def complete_steps(directory: str | os.PathLike) -> list[int]:
    """Steps of the finished checkpoints in ``directory``, ascending.

    A finished checkpoint is a directory named by its step (not an orbax tmp directory)
    that holds orbax's commit file. Local paths and, through orbax's ``etils.epath``,
    cloud URLs (``gs://...``) are both understood.
    """
    _orbax()
    from etils import epath  # installed with orbax

    root = epath.Path(_location(directory))
    if not root.is_dir():
        return []
    return sorted(
        int(p.name) for p in root.iterdir()
        if _STEP_DIR.match(p.name) and (p / COMMIT_FILE).exists()
    )


def latest_complete_step(directory: str | os.PathLike) -> int | None:
    """The newest finished checkpoint's step in ``directory``, or None."""
    steps = complete_steps(directory)
    return steps[-1] if steps else None


def read_checkpoint(directory: str | os.PathLike, step: int | None = None) -> tuple[dict, dict]:
    """``(arrays, meta)`` of a checkpoint, without a model: for inspection and tests.

    ``arrays`` is the saved dict (``params``, ``opt_state``, ``state``, ``step``, ``key`` as
    raw key data) as NumPy arrays, whatever device count or host count wrote it; ``step``
    None means the newest complete checkpoint.
    """
    ocp = _orbax()
    step = latest_complete_step(directory) if step is None else step
    if step is None:
        raise FileNotFoundError(f"no complete checkpoint in {directory}")
    one_device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    with _quiet_restore(), ocp.CheckpointManager(_location(directory)) as manager:
        out = manager.restore(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(fallback_sharding=one_device),
                meta=ocp.args.JsonRestore(),
            ),
        )
    # Where the saved devices exist orbax restores onto them; NumPy is the same everywhere.
    return jax.tree.map(np.asarray, dict(out.state)), dict(out.meta)


class _DamagedMetadataFilter(logging.Filter):
    """Drops orbax's error about an unreadable ``_CHECKPOINT_METADATA`` (a damaged file):
    orbax goes on without it and the checkpoint still restores, so to a user the error
    line (``ERROR:absl:Failed to json parse Metadata file ...``) is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (record.levelno >= logging.ERROR and "Metadata file" in text
                    and text.startswith(("Failed to json parse", "Failed to read")))


@contextlib.contextmanager
def _quiet_damaged_metadata():
    """Within this context, orbax's log records about a damaged checkpoint metadata file
    are dropped (orbax logs through absl, i.e. Python's ``absl`` logger)."""
    logger, quiet = logging.getLogger("absl"), _DamagedMetadataFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@contextlib.contextmanager
def _ctrl_c_after_orbax():
    """Within this context, Ctrl-C waits: a SIGINT is raised as KeyboardInterrupt when the
    context ends. orbax logs a KeyboardInterrupt that lands in its save or wait as a failed
    save, with a traceback, although the interrupted write is finished or discarded cleanly;
    deferred, the interrupt reaches the caller with nothing half-done. A no-op off the main
    thread (where Python delivers no signals) or under a handler other than Python's."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _reads_finish_before_their_loop_closes():
    """Within this context, a failed orbax restore waits for its other reads to finish.

    orbax runs a restore's reads as tasks of a fresh event loop and closes the loop as soon
    as the first failure reaches it (``asyncio_utils._run_sync_via_new_loop``), with the
    other reads still pending. Those then report themselves at random moments: TensorStore's
    threads find the loop closed ("RuntimeError: Event loop is closed"), and each abandoned
    coroutine, garbage-collected, turns the GeneratorExit of its closing into an Exception
    ("Exception ignored in: <coroutine object _read_array_index_and_device_put>" and the
    TensorStore spec). The same loop, but with every task it made awaited before it
    closes, leaves nothing behind. A no-op where orbax's internals differ.
    """
    try:
        from orbax.checkpoint._src import asyncio_utils
    except ImportError:
        asyncio_utils = None
    original = getattr(asyncio_utils, "_run_sync_via_new_loop", None)
    if original is None:
        yield
        return

    def run(coro):
        import asyncio

        loop, tasks = asyncio.new_event_loop(), []

        def factory(loop, coro, **kwargs):
            task = asyncio.Task(coro, loop=loop, **kwargs)
            tasks.append(task)
            return task

        loop.set_task_factory(factory)
        try:
            asyncio.set_event_loop(loop)
            return loop.run_until_complete(coro)
        except Exception:
            pending = [t for t in tasks if not t.done()]
            if pending:  # their results or errors are retrieved here, and dropped
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            raise
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    asyncio_utils._run_sync_via_new_loop = run
    try:
        yield
    finally:
        asyncio_utils._run_sync_via_new_loop = original


@contextlib.contextmanager
def _quiet_restore():
    """Within this context, a restore says nothing but its result or its exception
    (:func:`_quiet_damaged_metadata`, :func:`_reads_finish_before_their_loop_closes`)."""
    with _quiet_damaged_metadata(), _reads_finish_before_their_loop_closes():
        yield


def _one_line(e: BaseException) -> str:
    """``Type: message`` of the innermost cause of ``e``, on one line and at most 300 chars."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = " ".join(str(e).split())
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _to_tree(ts: TrainState) -> dict:
    # Typed PRNG keys are stored as their raw uint32 data.
    return {
        "params": ts.params,
        "opt_state": ts.opt_state,
        "state": ts.state,
        "step": ts.step,
        "key": jax.random.key_data(ts.key),
    }


def _from_tree(tree: dict, like: TrainState) -> TrainState:
    # orbax returns containers as dicts/tuples: rebuild the target's pytree structure
    # (optax's NamedTuple states) from the leaves, which come in the same order.
    target = _to_tree(like)
    leaves, want = jax.tree.leaves(tree), jax.tree.leaves(target)
    if len(leaves) != len(want) or any(
        np.shape(a) != np.shape(b) for a, b in zip(leaves, want)
    ):
        raise ValueError(
            "the checkpoint does not match this run's model/optimizer (different parameter "
            "tree or shapes)"
        )
    restored = jax.tree.unflatten(jax.tree.structure(target), leaves)
    key = jax.random.wrap_key_data(restored["key"], impl=jax.random.key_impl(like.key))
    return TrainState(
        restored["params"], restored["opt_state"], restored["state"], restored["step"], key
    )


class Checkpointer:
    """Save and restore a training run in ``directory``, keeping the newest ``keep``.

        ckpt = Checkpointer("runs/a", keep=3)
        ckpt.save(step, ts, {"epoch": 0, "batch": 17})
        ts, meta = ckpt.restore(like=ts)          # newest complete checkpoint
        ckpt.close()

    Saving is asynchronous (orbax copies the arrays off the devices, then writes in a
    background thread), so it overlaps the next training steps; :meth:`close` (or
    :meth:`wait`) blocks until every write is committed. Multi-host: every process calls
    :meth:`save` and :meth:`restore` (orbax coordinates them).

    Raises ValueError, before anything is written, when a local ``directory`` cannot be
    created or written to (read-only, a file in the way).

    Args:
      directory: where checkpoints go (created if missing).
      keep: how many of the newest checkpoints to keep (older ones are deleted).
      asynchronous: write in a background thread.
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, asynchronous: bool = True):
        if keep < 1:
            raise ValueError(f"keep must be >= 1 checkpoint, got {keep}")
        ocp = _orbax()
        self.directory = _location(directory)
        if "://" not in self.directory:  # before orbax, whose failure comes mid-training
            check_writable_folder(self.directory, what="checkpoints", create=True)
        self._ocp = ocp
        with _quiet_damaged_metadata():
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=keep, create=True, enable_async_checkpointing=asynchronous,
                ),
            )
        self._unreadable: dict[int, str] = {}  # step -> why it failed to read

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints, ascending."""
        return complete_steps(self.directory)

    def latest_step(self) -> int | None:
        """Step of the newest complete checkpoint, or None."""
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, ts: TrainState, meta: dict) -> None:
        """Write ``ts`` and the JSON-able ``meta`` as checkpoint ``step``.

        Raises FloatingPointError (and writes nothing) if ``ts`` holds a NaN or Inf, so the
        newest checkpoint is always a good one.
        """
        if not bool(all_finite((ts.params, ts.opt_state, ts.state))):
            raise FloatingPointError(
                f"refusing to checkpoint step {step}: the train state holds NaN or Inf"
            )
        ocp = self._ocp
        with _ctrl_c_after_orbax():
            saved = self._manager.save(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(_to_tree(ts)), meta=ocp.args.JsonSave(meta)
                ),
            )
        if not saved:  # orbax skips (silently) a step at or below its newest
            raise ValueError(
                f"checkpoint step {step} was not written: {self.directory} already holds step "
                f"{self._manager.latest_step()}"
            )

    def read_meta(self, step: int | None = None) -> dict:
        """The ``meta`` dict of checkpoint ``step``.

        ``step`` None: the newest complete checkpoint whose ``meta`` reads; an unreadable one
        is skipped with a warning (and remembered, so :meth:`restore` skips it too).
        """
        ocp = self._ocp
        args = ocp.args.Composite(meta=ocp.args.JsonRestore())
        _, out = self._newest_readable(step, lambda s: self._manager.restore(s, args=args))
        return dict(out.meta)

    def restore(self, like: TrainState, step: int | None = None) -> tuple[TrainState, dict]:
        """``(TrainState, meta)`` of checkpoint ``step`` (None: the newest readable one).

        ``like`` is a train state of the same run (e.g. fresh from ``Trainer.init``): it
        gives the pytree structure and where the arrays go (its shardings, so a
        data-parallel run restores replicated arrays).

        With ``step=None`` a checkpoint that fails to read (a truncated or missing file) is
        skipped with a one-line warning for the next older one; once one reads, the skipped
        newer ones are renamed ``<step>.unreadable``, so the run that resumes can save those
        steps again (orbax refuses to write a step at or below its newest). An explicit
        ``step`` that fails to read raises.

        Raises:
          FileNotFoundError: no complete checkpoint, or none that reads (the message gives
            each one's error).
        """
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=a.sharding),
            _to_tree(like),
        )
        ocp = self._ocp
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
        )
        s, out = self._newest_readable(step, lambda s: self._manager.restore(s, args=args))
        restored = _from_tree(out.state, like), dict(out.meta)
        self._set_aside(newer_than=s)
        return restored

    def _newest_readable(self, step: int | None, read: Callable[[int], _T]) -> tuple[int, _T]:
        """``(step, read(step))``; with ``step`` None, of the newest step that reads."""
        if step is not None:
            with _quiet_restore():
                return int(step), read(int(step))
        steps = [s for s in self.steps() if s not in self._unreadable]
        if not steps and not self._unreadable:
            raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
        for s in reversed(steps):
            try:
                with _quiet_restore():
                    return s, read(s)
            except Exception as e:  # orbax and tensorstore raise all kinds, plain Exception too
                self._unreadable[s] = _one_line(e)
                log.warning("checkpoint %d in %s is unreadable (%s): trying an older one",
                            s, self.directory, self._unreadable[s])
        raise FileNotFoundError(
            f"no readable checkpoint in {self.directory}: "
            + "; ".join(f"step {s}: {why}" for s, why in sorted(self._unreadable.items()))
        )

    def _set_aside(self, newer_than: int) -> None:
        """Rename the unreadable checkpoints after step ``newer_than`` to ``<step>.unreadable``."""
        bad = sorted(s for s in self._unreadable if s > newer_than)
        if not bad:
            return
        from etils import epath

        root = epath.Path(self.directory)
        if jax.process_index() == 0:
            for s in bad:
                target = root / f"{s}{UNREADABLE_SUFFIX}"
                n = 1
                while target.exists():  # an earlier one set aside under the same step
                    target, n = root / f"{s}{UNREADABLE_SUFFIX}.{n}", n + 1
                (root / str(s)).rename(target)
                log.warning("moved unreadable checkpoint %d to %s", s, target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("snnjax.checkpoint.set_aside")
        for s in bad:
            del self._unreadable[s]
        with _quiet_damaged_metadata():
            self._manager.reload()  # orbax caches the step list

    def wait(self) -> None:
        """Block until every pending write is committed."""
        with _ctrl_c_after_orbax():
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending writes and release orbax's resources."""
        with _ctrl_c_after_orbax():
            self._manager.wait_until_finished()
            self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
