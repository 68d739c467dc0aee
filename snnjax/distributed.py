"""Data parallelism through ``jax.sharding``: one mesh axis, batches split along B.

The parameters, optimizer state and BatchNorm statistics are replicated on every device of
a :class:`jax.sharding.Mesh` with one axis, ``"data"``; a batch ``xs [T, B, ...]``, ``ys
[B]`` is split along B. The training step is the single-device one under ``jax.jit`` with
these shardings: XLA partitions it and inserts the all-reduces itself — the gradient's
(inside the time loop for OTTT_O and online TBPTT, whose optimizer steps there), the loss's
mean and BatchNorm's batch statistics, which are therefore those of the *global* batch, as on
one device (no home-made collective code, no ``pmap``).

Multi-host: every process runs the same program (``jax.distributed.initialize`` first). Each
process holds the rows of the global batch that its own devices own
(:meth:`DataParallel.local_rows`) and the global array is assembled from the processes'
parts with ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "DATA_AXIS",
    "DataParallel",
    "data_parallel",
    "initialize",
    "wants_distributed",
]

DATA_AXIS = "data"
PyTree = Any

# Environment read by :func:`initialize` (jax itself reads only JAX_COORDINATOR_ADDRESS).
ENV_FLAG = "SNNJAX_DISTRIBUTED"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def wants_distributed(flag: bool = False, environ=None) -> bool:
    """True if multi-host JAX was asked for by ``flag`` or ``SNNJAX_DISTRIBUTED=1``."""
    environ = os.environ if environ is None else environ
    return bool(flag) or environ.get(ENV_FLAG, "").lower() in ("1", "true", "yes")


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Start multi-host JAX with ``jax.distributed.initialize`` (once; call before any JAX work).

    Arguments left None come from the environment (``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), and where those are unset JAX detects the
    cluster itself (Cloud TPU pods, Slurm, Open MPI).
    """
    if jax.distributed.is_initialized():
        return
    env = os.environ
    if num_processes is None and env.get(ENV_NUM_PROCESSES):
        num_processes = int(env[ENV_NUM_PROCESSES])
    if process_id is None and env.get(ENV_PROCESS_ID):
        process_id = int(env[ENV_PROCESS_ID])
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    except RuntimeError as e:
        raise ValueError(f"multi-host initialisation failed: {e}") from e


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Shardings of data-parallel training over ``mesh`` (one axis, :data:`DATA_AXIS`)."""

    mesh: Mesh

    def __post_init__(self):
        if tuple(self.mesh.axis_names) != (DATA_AXIS,):
            raise ValueError(
                f"data-parallel mesh must have the single axis {DATA_AXIS!r}, got "
                f"{tuple(self.mesh.axis_names)}"
            )

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    @property
    def replicated(self) -> NamedSharding:
        """Every device holds the whole array (parameters, optimizer state, statistics)."""
        return NamedSharding(self.mesh, PartitionSpec())

    def batch_sharding(self, axis: int) -> NamedSharding:
        """Split along ``axis`` (1 for time-major inputs ``[T, B, ...]``, 0 for labels ``[B]``)."""
        return NamedSharding(self.mesh, PartitionSpec(*([None] * axis), DATA_AXIS))

    @property
    def xs_sharding(self) -> NamedSharding:
        return self.batch_sharding(1)

    @property
    def ys_sharding(self) -> NamedSharding:
        return self.batch_sharding(0)

    def check_batch_size(self, batch_size: int) -> None:
        """Raise ValueError unless ``batch_size`` splits evenly over the devices."""
        if batch_size % self.num_devices:
            raise ValueError(
                f"batch size {batch_size} is not divisible by the {self.num_devices} devices of "
                f"the data-parallel mesh: use a multiple of {self.num_devices} (or --devices to "
                "use fewer devices)"
            )

    def local_rows(self, batch_size: int) -> slice:
        """The rows of a global batch of ``batch_size`` that this process's devices hold."""
        self.check_batch_size(batch_size)
        index = self.ys_sharding.addressable_devices_indices_map((batch_size,))
        starts = [idx[0].start or 0 for idx in index.values()]
        stops = [batch_size if idx[0].stop is None else idx[0].stop for idx in index.values()]
        return slice(min(starts), max(stops))

    def shard_batch(self, xs, ys) -> tuple[jax.Array, jax.Array]:
        """A *global* batch (the same on every process) as arrays split along B.

        Each process keeps only its own rows, so nothing crosses hosts. Arrays that are
        already global ``jax.Array`` values are passed through.
        """
        if (
            isinstance(xs, jax.Array) and isinstance(ys, jax.Array)
            and xs.sharding.is_equivalent_to(self.xs_sharding, xs.ndim)
            and ys.sharding.is_equivalent_to(self.ys_sharding, ys.ndim)
        ):
            return xs, ys
        B = np.shape(ys)[0]
        rows = self.local_rows(B)
        xs_local = np.asarray(xs)[:, rows]
        ys_local = np.asarray(ys)[rows]
        return self.from_local(xs_local, ys_local, B)

    def from_local(self, xs_local, ys_local, batch_size: int | None = None):
        """Assemble global arrays from this process's rows ``xs_local [T, b, ...]``, ``[b]``.

        For per-host input pipelines: every process passes its own ``b`` rows
        (``b = batch_size / process_count``).
        """
        b = np.shape(ys_local)[0]
        B = b * jax.process_count() if batch_size is None else batch_size
        self.check_batch_size(B)
        xs_shape = (np.shape(xs_local)[0], B, *np.shape(xs_local)[2:])
        xs = jax.make_array_from_process_local_data(self.xs_sharding, xs_local, xs_shape)
        ys = jax.make_array_from_process_local_data(self.ys_sharding, ys_local, (B,))
        return xs, ys

    def replicate(self, tree: PyTree) -> PyTree:
        """Put a pytree (the same on every process) on every device."""
        # An identity under jit rather than device_put: device_put refuses typed PRNG keys
        # for shardings that span processes.
        return jax.jit(lambda t: t, out_shardings=self.replicated)(tree)


def data_parallel(devices: int | None = None) -> DataParallel | None:
    """Data parallelism over ``devices`` devices (None: all); None when that is one device.

    With one process, the first ``devices`` local devices; with several (multi-host), all
    devices of all processes (``devices`` must then be None or the global count). One device
    gives None: the plain single-device step, with no mesh overhead.
    """
    available = jax.devices()
    if devices is None:
        n = len(available)
    else:
        if not isinstance(devices, int) or devices < 1:
            raise ValueError(f"devices must be a positive integer, got {devices!r}")
        if devices > len(available):
            raise ValueError(
                f"asked for {devices} devices but only {len(available)} "
                f"{jax.default_backend()} device(s) are available"
            )
        if jax.process_count() > 1 and devices != len(available):
            raise ValueError(
                f"multi-host training uses all {len(available)} devices of the "
                f"{jax.process_count()} processes; --devices {devices} cannot restrict it"
            )
        n = devices
    if n == 1:
        return None
    return DataParallel(Mesh(np.asarray(available[:n]), (DATA_AXIS,)))
