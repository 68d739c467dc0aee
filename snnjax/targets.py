"""Compile targets: the devices a training step's memory can be measured for (``docs/cost.md``).

A :class:`Target` names a device and says how to get a *compile-only* handle on it: XLA
compiles for a GPU or a TPU on a machine that has neither (ahead-of-time, deviceless), and
the executable's ``memory_analysis()`` is then that compiler's own buffer assignment.

    from snnjax import targets
    targets.get_target("tpu-v5e").device()     # a compile-only "TPU v5 lite" device
    [t.name for t in targets.targets()]        # cpu, h100, a100, tpu-v5e, tpu-v6e, tpu-v5p

The GPU targets need the ``gpu-aot`` extra (the CUDA PJRT plugin, no CUDA libraries) and
``JAX_PLATFORMS=cpu`` on a machine without a GPU; the TPU targets need the ``tpu-aot`` extra
(libtpu). Nothing here touches jax's configuration: a target that cannot be reached raises a
one-line error that says what to install or set.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import importlib.metadata
import importlib.resources
import importlib.util
import re

import jax

__all__ = ["Target", "TargetUnavailableError", "targets", "get_target"]

_GIB = 2**30
_PLATFORMS = ("cpu", "cuda", "tpu")


class TargetUnavailableError(RuntimeError):
    """A known target that this process cannot compile for (its message says what to do)."""


@dataclasses.dataclass(frozen=True)
class Target:
    """A device a training step can be compiled for.

    Attributes:
      name: what users type, e.g. ``"h100"`` or ``"tpu-v5e"``.
      platform: ``"cpu"``, ``"cuda"`` or ``"tpu"``.
      description: the device, in words.
      memory_bytes: device memory of one device (one GPU, one TPU chip) from the published
        specs; the planner's default budget. None for the CPU (host memory varies).
      extra: the snnjax pip extra that provides the compiler (``"gpu-aot"``, ``"tpu-aot"``),
        None for the CPU.
      topology: the TPU topology whose first device is compiled for (libtpu refuses
        single-chip names, so a 2x2 slice's chip 0), else None.
      target_config: the GPU's ``GpuTargetConfigProto`` file in ``snnjax/target_configs``,
        else None.
    """

    name: str
    platform: str
    description: str
    memory_bytes: int | None = None
    extra: str | None = None
    topology: str | None = None
    target_config: str | None = None

    def __post_init__(self):
        if self.platform not in _PLATFORMS:
            raise ValueError(f"target platform must be one of {_PLATFORMS}, got {self.platform!r}")

    @property
    def compile_only(self) -> bool:
        """True for a device reached without the hardware (every target but the CPU)."""
        return self.platform != "cpu"

    def device(self) -> jax.Device:
        """The device to compile for (compile-only for GPUs and TPUs; cached per target).

        Raises:
          TargetUnavailableError: the extra is missing, its version differs from jax's, or (CUDA on
            a machine without a GPU) ``jax_platforms`` is not ``"cpu"``.
        """
        if self.platform == "cpu":
            return jax.devices("cpu")[0]
        _check_extra(self)
        return _compile_only_device(self)


_TARGETS = (
    Target("cpu", "cpu", "this machine's CPU (XLA:CPU)"),
    Target(
        "h100", "cuda", "NVIDIA H100 SXM 80 GB (HBM3)",
        memory_bytes=84_942_979_072, extra="gpu-aot", target_config="h100_sxm.txtpb",
    ),
    Target(
        "a100", "cuda", "NVIDIA A100 SXM4 80 GB",
        memory_bytes=85_100_068_864, extra="gpu-aot", target_config="a100_sxm_80.txtpb",
    ),
    # HBM per chip as Google publishes it ("16 GB", "32 GB", "95 GB": HBM stacks, read as GiB).
    Target("tpu-v5e", "tpu", "TPU v5e (v5 lite), one chip, 16 GiB HBM2",
           memory_bytes=16 * _GIB, extra="tpu-aot", topology="v5e:2x2"),
    Target("tpu-v6e", "tpu", "TPU v6e (Trillium), one chip, 32 GiB HBM",
           memory_bytes=32 * _GIB, extra="tpu-aot", topology="v6e:2x2"),
    Target("tpu-v5p", "tpu", "TPU v5p, one chip (megacore), 95 GiB HBM2e",
           memory_bytes=95 * _GIB, extra="tpu-aot", topology="v5p:2x2x1"),
)

# Known devices that are not offered, with the reason (checked with libtpu 0.0.42.1).
_REFUSED = {
    "tpu-v4": (
        "libtpu's compile-only v4 topology has one device per TensorCore, not one per "
        "megacore chip as JAX uses on a real v4, so its figures would not be a v4 chip's"
    ),
}


def targets() -> tuple[Target, ...]:
    """Every target offered, CPU first."""
    return _TARGETS


def get_target(target: str | Target) -> Target:
    """The :class:`Target` called ``target`` (case-insensitive); a Target is returned as is.

    Raises:
      ValueError: an unknown name (the message lists the known ones) or a refused one.
      TypeError: neither a name nor a Target.
    """
    if isinstance(target, Target):
        return target
    if not isinstance(target, str):
        raise TypeError(f"target must be a name or a Target, got {type(target).__name__}")
    name = target.strip().lower()
    for t in _TARGETS:
        if t.name == name:
            return t
    if name in _REFUSED:
        raise ValueError(f"target {name!r} is not offered: {_REFUSED[name]}")
    known = ", ".join(t.name for t in _TARGETS)
    raise ValueError(f"unknown target {target!r}; known targets: {known}")


# ---------------------------------------------------------------------------- the extras

# The module each extra installs, and the distribution whose version must match jax's.
_EXTRA_MODULES = {
    "gpu-aot": ("jax_plugins.xla_cuda12", "jax_cuda12_plugin"),
    "tpu-aot": ("libtpu",),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package
        return False


def _missing_extra(target: Target) -> str:
    extra = target.extra
    return f"target {target.name!r} needs the {extra} extra: pip install 'snnjax[{extra}]'"


def _check_extra(target: Target) -> None:
    if not all(_installed(m) for m in _EXTRA_MODULES[target.extra]):
        raise TargetUnavailableError(_missing_extra(target))
    mismatch = _version_mismatch(target.extra)
    if mismatch:
        raise TargetUnavailableError(
            f"target {target.name!r}: {mismatch} (reinstall with pip install "
            f"'snnjax[{target.extra}]', which pins them together)"
        )


def _version_mismatch(extra: str) -> str | None:
    """One line saying how the extra's compiler differs from the jax in use, or None."""
    try:
        if extra == "gpu-aot":
            for dist in ("jax-cuda12-plugin", "jax-cuda12-pjrt"):
                v = importlib.metadata.version(dist)
                if v != jax.__version__:
                    return f"{dist} {v} does not match jax {jax.__version__}"
            return None
        # jax names the libtpu it was built with in its own "tpu" extra, e.g. libtpu==0.0.42.*
        v = importlib.metadata.version("libtpu")
        for req in importlib.metadata.requires("jax") or ():
            m = re.match(r"libtpu\s*==\s*([^;\s]+)\s*;.*extra\s*==\s*\"tpu\"", req)
            if m and not fnmatch.fnmatch(v, m.group(1)):
                return f"libtpu {v} is not the {m.group(1)} that jax {jax.__version__} needs"
    except importlib.metadata.PackageNotFoundError as e:
        return f"{e.name} is not installed"
    return None


# ---------------------------------------------------------------------------- the devices


@functools.lru_cache(maxsize=None)
def _compile_only_device(target: Target) -> jax.Device:
    from jax.experimental import topologies

    if target.platform == "tpu":
        try:
            topo = topologies.get_topology_desc(topology_name=target.topology, platform="tpu")
        except RuntimeError as e:  # jax's runtime error
            if "lockfile" in str(e):
                raise TargetUnavailableError(
                    f"target {target.name!r}: another process holds libtpu; for compile-only "
                    "use on a machine without a TPU, set ALLOW_MULTIPLE_LIBTPU_LOAD=1 before "
                    "starting Python"
                ) from None
            raise
        return topo.devices[0]
    text = (importlib.resources.files("snnjax") / "target_configs" / target.target_config)
    try:
        topo = topologies.get_topology_desc(
            platform="cuda", topology="1x1x1", target_config=text.read_text()
        )
    except NotImplementedError:
        # The CUDA plugin registers only when CUDA loads, or when jax is told to run on the
        # CPU alone (then it skips the CUDA check and compiles without a device).
        raise TargetUnavailableError(
            f"target {target.name!r} compiles for CUDA without a GPU, which needs "
            "jax_platforms='cpu': set JAX_PLATFORMS=cpu before starting Python (or call "
            "jax.config.update('jax_platforms', 'cpu') right after importing jax)"
        ) from None
    return topo.devices[0]
