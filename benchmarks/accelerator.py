"""Accelerator numbers in one command (issue 14): the Open Neuromorphic framework benchmark at
its published sizes, the papers' conv nets at CIFAR size, and the memory planner, on one GPU.

    python benchmarks/accelerator.py                 # full sizes: one H100/H200, <= 8 minutes
    python benchmarks/accelerator.py --tiny --out /tmp/acc   # the same code paths on CPU, seconds

Writes ``OUT/accelerator.json`` (every figure, the device described) and
``OUT/accelerator.md``, a Markdown section ready to paste into BENCHMARKS.md (OUT defaults to
benchmarks/results). On a lent GPU machine run ``bash benchmarks/accelerator_device.sh``
(see that script for the wheels and the device tool's exact ``run`` call).

Sections
--------
1. **Open Neuromorphic (ON) benchmark**: Linear(N→N) + LIF, no readout, T = 500, batch 16,
   N = 4096, 8192, 16384, float32 and bfloat16; one forward + backward (loss and weight
   gradients, no optimizer), the device synchronised before and after each timed call.
   snnjax ``rules.bptt()``, ``rules.sltt(chunk=T)``, ``rules.sltt()`` (chunk 1: memory O(1) in
   T) and ``rules.ottt(chunk=T)`` (OTTT_A) beside SpikingJelly 2.0 (its automatic CUDA
   selection, Triton on a machine without its source-built native ops, and its forced Torch
   implementation), SpikingJelly 0.0.0.0.14's CuPy backend (the release the published ON
   figures used; SpikingJelly 2.0 has no CuPy backend) and snnTorch. Same numpy weights and
   inputs for every library; same dynamics: λ = 0.5 (τ = 2, decay_input=False), V_th = 1,
   soft reset kept in the graph, sigmoid surrogate α = 4, state starting at 0. snnTorch's
   Leaky (``reset_delay=False``, its fixed behaviour) detaches the reset and, while its
   post-reset potential is still ≥ V_th, fires only at 2·V_th the next step: its spike count
   differs slightly.

   Loss: the network has no readout, so the loss is the spike count, written per step so
   that the per-step rules (SLTT, OTTT) can use it: ``L = Σ_t L[t]``,
   ``L[t] = Σ_{b,n} s[t,b,n] / T``; every library and rule minimises this same L (BPTT's
   gradient is the total one; SLTT/OTTT's their truncated ones). The loss value and the sum of
   the weight gradient are reported per row: equal losses across libraries check the dynamics.
   At the largest N, XLA's temporaries are also compiled at T/2: how each rule's memory
   grows with T.

   Roofline: ``max(FLOPs / peak, bytes / bandwidth)`` at the card's datasheet figures
   (``PEAKS`` below). FLOPs = 4·T·B·N² (forward GEMM and weight-gradient GEMM; the input
   is data, so no input gradient). Bytes = s·(2·N² + 4·T·B·N) with s the dtype's size: the
   weight read and its gradient written, the input read by both GEMMs, and one membrane
   residual [T, B, N] written forward and read backward -- the traffic no schedule avoids.
   float32 rows count TF32 tensor-core peak when TF32 matmuls are on (``--fp32-matmul``,
   default ``tf32`` for both JAX and torch) and the non-tensor fp32 peak otherwise.

2. **VGG-11 sWS and ResNet-18** at CIFAR size (32×32×3, 10 classes), batch 128, T = 6: a full
   training step (``Trainer.step``: SGD momentum 0.9) for BPTT, TBPTT(2), Local
   (``local(tbptt(2), block_size=2)``), SLTT, SLTT-K(1), OTTT_A and OTTT_O; step time, peak
   device memory (``memory_stats()["peak_bytes_in_use"]`` after one step, in a fresh process
   per row so the peak is that row's) and XLA's compiled figure
   (``snnjax.cost.compiled_memory``). These steps and the dense ones are compiled first in a
   few parallel processes into a persistent compilation cache (``--jobs``), so the measuring
   process loads them (``step_from_cache`` per row) and its peak holds no autotuning scratch.
   SpikingJelly's BPTT (multi-step), SLTT and OTTT (its single-step online loops:
   ``SLTTLIFNode``, ``OTTTLIFNode`` + ``OTTTSequential``) on the same networks where it has
   them (OTTTSequential is sequential only: no ResNet); torch's peak is
   ``max_memory_allocated()`` over one step after a warm-up.

3. **Memory planner**: the largest T at batch 128 whose compiled step (ResNet-18) fits the
   card's memory (JAX's ``bytes_limit`` at ``XLA_PYTHON_CLIENT_MEM_FRACTION=0.95``), for BPTT
   and SLTT: secant steps from two compiled probes bracket the answer, then
   ``snnjax.bench.largest`` settles it (compiled memory is not exactly linear in T, so the
   answer is tested, not extrapolated). The planner only compiles, without autotuning
   (``--xla_gpu_autotune_level=0``), beside the conv compiles.

``--tiny`` runs every section and row kind on CPU in well under a minute (CI,
tests/test_accelerator.py): N = 64, 128, T = 8, batch 4; VGG-11 sWS with a 2-conv cfg and a
one-unit PreAct ResNet at 8×8, T = 2, the ResNet with BPTT, SLTT and SLTT-K(1) only; the
planner on the small VGG against a 512 KiB budget; XLA:CPU compiling without its expensive
passes; peers that are not installed are reported as not run.

Everything runs inside a time budget (``--budget-s``, default 460 s): each section gets a
share of what is left, and rows that do not fit are reported as skipped. Rows run in worker
subprocesses (``--worker``) so that a crash, an out-of-memory or a timeout costs one row.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as _dt
import gc
import importlib.metadata as _md
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DECAY, V_TH, ALPHA = 0.5, 1.0, 4.0

# ---------------------------------------------------------------------------- card peaks

# Dense (no sparsity) peaks per second and memory bandwidth, from NVIDIA's datasheets:
# "NVIDIA H100 Tensor Core GPU" datasheet (SXM5 / PCIe / NVL columns), "NVIDIA H200 Tensor
# Core GPU" datasheet (SXM / NVL), "NVIDIA A100 Tensor Core GPU" datasheet (80 GB SXM).
# The datasheets print tensor-core figures with sparsity; those are halved here. fp32 is the
# non-tensor-core rate. Measured on the lent H100 (KINDS.md, 2026-11-13): bf16 8192³ GEMM
# 798 TFLOP/s, device copy ~3.0 TB/s; on the H200 769-798 TFLOP/s and ~4.3 TB/s.
PEAKS = {
    "H100 SXM": {"fp32": 67e12, "tf32": 494.5e12, "bf16": 989.5e12, "bandwidth": 3.35e12},
    "H100 PCIe": {"fp32": 51e12, "tf32": 378e12, "bf16": 756.5e12, "bandwidth": 2.0e12},
    "H100 NVL": {"fp32": 60e12, "tf32": 417.5e12, "bf16": 835.5e12, "bandwidth": 3.9e12},
    "H200 SXM": {"fp32": 67e12, "tf32": 494.5e12, "bf16": 989.5e12, "bandwidth": 4.8e12},
    "H200 NVL": {"fp32": 60e12, "tf32": 417.5e12, "bf16": 835.5e12, "bandwidth": 4.8e12},
    "A100 SXM": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "bandwidth": 2.039e12},
}
PEAKS_SOURCE = (
    "NVIDIA datasheets (H100 Tensor Core GPU, H200 Tensor Core GPU, A100): dense peaks "
    "(sparsity figures halved), fp32 = non-tensor-core rate"
)
# Matched in order against the lower-cased device name (nvidia-smi or jax's device_kind).
_CARD_PATTERNS = (
    ("h200 nvl", "H200 NVL"), ("h200", "H200 SXM"),
    ("h100 nvl", "H100 NVL"), ("h100 pcie", "H100 PCIe"), ("h100", "H100 SXM"),
    ("a100", "A100 SXM"),
)


def detect_card(name: str | None) -> str | None:
    """The ``PEAKS`` key of a device name (``"NVIDIA H100 80GB HBM3"`` → ``"H100 SXM"``)."""
    low = (name or "").lower()
    for pattern, key in _CARD_PATTERNS:
        if pattern in low:
            return key
    return None


def peak_flops(card: str | None, dtype: str, fp32_matmul: str) -> float | None:
    if card not in PEAKS:
        return None
    p = PEAKS[card]
    if dtype == "bfloat16":
        return p["bf16"]
    return p["tf32"] if fp32_matmul == "tf32" else p["fp32"]


def dense_work(N: int, T: int, B: int, dtype: str) -> tuple[float, float]:
    """``(FLOPs, bytes)`` of one forward + backward of Linear(N→N) + LIF (module docstring)."""
    s = 2 if dtype == "bfloat16" else 4
    return 4.0 * T * B * N * N, float(s * (2 * N * N + 4 * T * B * N))


def roofline(flops, nbytes, card, dtype, fp32_matmul) -> dict:
    """Roofline time (s) of ``flops`` and ``nbytes`` on ``card``, and its parts."""
    peak = peak_flops(card, dtype, fp32_matmul)
    if peak is None:
        return {"roofline_s": None, "compute_s": None, "memory_s": None, "peak_flops": None}
    compute, memory = flops / peak, nbytes / PEAKS[card]["bandwidth"]
    return {"roofline_s": max(compute, memory), "compute_s": compute, "memory_s": memory,
            "peak_flops": peak}


# ---------------------------------------------------------------------------- sizes


@dataclasses.dataclass(frozen=True)
class Sizes:
    dense_N: tuple[int, ...] = (4096, 8192, 16384)
    dense_T: int = 500
    dense_B: int = 16
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    conv_models: tuple[str, ...] = ("vgg11_sws", "resnet18")
    conv_T: int = 6
    conv_B: int = 128
    image: int = 32
    classes: int = 10
    plan_models: tuple[str, ...] = ("resnet18",)
    plan_B: int = 128
    plan_probes: tuple[int, int] = (8, 16)
    plan_max_T: int = 4096
    # Rules per conv model where not all of CONV_RULES run: ((model, (rule, ...)), ...).
    conv_only: tuple = ()
    tiny: bool = False


FULL = Sizes()
# Tiny: the same rows and code paths, shrunk to seconds on 2 CPU cores. The conv nets keep
# their factories (vgg11_sws with a 2-conv cfg, preact_resnet with one residual unit), and
# XLA:CPU compiles without its expensive passes (TINY_XLA_FLAGS): compiling dominates there.
TINY = Sizes(dense_N=(64, 128), dense_T=8, dense_B=4, conv_T=2, conv_B=4, image=8,
             plan_models=("vgg11_sws",), plan_B=4, plan_probes=(4, 8), plan_max_T=64,
             conv_only=(("resnet18", ("BPTT", "SLTT", "SLTT-K(1)")),), tiny=True)

TINY_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
TINY_VGG_CFG = (4, "A", 4)
MODEL_LABEL = {"vgg11_sws": "VGG-11 sWS", "resnet18": "ResNet-18"}
DENSE_RULES = ("BPTT", "SLTT(chunk=T)", "SLTT", "OTTT_A(chunk=T)")
CONV_RULES = ("BPTT", "TBPTT(2)", "Local", "SLTT", "SLTT-K(1)", "OTTT_A", "OTTT_O")
CONV_PRIORITY = ("BPTT", "SLTT", "SLTT-K(1)", "OTTT_A", "TBPTT(2)", "Local", "OTTT_O")
PLAN_RULES = ("BPTT", "SLTT")
# Peer libraries for the dense net: (name, needs, env, what it is).
DENSE_PEERS = ("spikingjelly", "spikingjelly-torch", "spikingjelly-cupy", "snntorch")
PEER_LABEL = {
    "spikingjelly": "SpikingJelly 2 (auto: Triton/native)",
    "spikingjelly-torch": "SpikingJelly 2 (torch)",
    "spikingjelly-cupy": "SpikingJelly 0.0.0.0.14 (CuPy)",
    "snntorch": "snnTorch",
}
# SpikingJelly's rules on the conv nets, by network (OTTTSequential is sequential only).
SJ_CONV_RULES = {"vgg11_sws": ("BPTT", "SLTT", "OTTT"), "resnet18": ("BPTT", "SLTT")}


def dense_rule(name: str, T: int):
    from snnjax import rules

    return {
        "BPTT": rules.bptt(),
        "SLTT(chunk=T)": rules.sltt(chunk=T),
        "SLTT": rules.sltt(),
        "OTTT_A(chunk=T)": rules.ottt(chunk=T),
    }[name]


def conv_rule(name: str):
    from snnjax import rules

    return {
        "BPTT": rules.bptt(),
        "TBPTT(2)": rules.tbptt(2),
        "Local": rules.local(rules.tbptt(2), block_size=2),
        "SLTT": rules.sltt(),
        "SLTT-K(1)": rules.sltt_k(1),
        "OTTT_A": rules.ottt(),
        "OTTT_O": rules.ottt(online=True),
    }[name]


def conv_model(name: str, sizes: Sizes):
    """The snnjax network: the papers' nets, or their tiny versions from the same factories."""
    from snnjax import models

    if name == "vgg11_sws":
        if sizes.tiny:
            return models.vgg11_sws(sizes.classes, cfg=TINY_VGG_CFG)
        return models.vgg11_sws(sizes.classes)
    if name == "resnet18":
        if sizes.tiny:
            return models.preact_resnet((1,), sizes.classes, channels=(4,))
        return models.resnet18(sizes.classes)
    raise ValueError(name)


# ---------------------------------------------------------------------------- data


def dense_data(T, B, N, seed=0):
    """W [N, N] (in × out), b [N], x [T, B, N] in [0, 1) -- benchmarks/peer_worker.py's."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, math.sqrt(2.0 / N), (N, N)).astype(np.float32)
    return w, np.zeros(N, np.float32), rng.uniform(0, 1, (T, B, N)).astype(np.float32)


def conv_batch(sizes: Sizes, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (sizes.conv_T, sizes.conv_B, sizes.image, sizes.image, 3))
    y = rng.integers(0, sizes.classes, sizes.conv_B)
    return x.astype(np.float32), y.astype(np.int32)


# ---------------------------------------------------------------------------- timing


def timed(fn, sync, *, warmup=1, min_reps=3, max_reps=20, target_s=0.5, deadline=None):
    """Times of ``fn()`` calls, each with ``sync`` (a device synchronisation) before the clock
    starts and before it stops; ``warmup`` untimed calls first. Stops after ``min_reps``
    calls once ``target_s`` seconds were timed (or at ``max_reps``, or past ``deadline``
    with at least one call)."""
    out = None
    for _ in range(warmup):
        out = fn()
        sync(out)
    times = []
    while len(times) < max_reps:
        sync(None)
        t0 = time.perf_counter()
        out = fn()
        sync(out)
        times.append(time.perf_counter() - t0)
        if len(times) >= min_reps and sum(times) >= target_s:
            break
        if deadline is not None and time.time() > deadline:
            break
    return times, out


def time_fields(times) -> dict:
    return {"time_s": statistics.median(times), "min_s": min(times), "reps": len(times)}


# ---------------------------------------------------------------------------- JAX setup


CACHE_HITS = [0]  # persistent compilation cache hits in this worker


def _count_cache_hits(event, **kwargs):
    del kwargs
    if event == "/jax/compilation_cache/cache_hits":
        CACHE_HITS[0] += 1


def setup_jax(spec: dict):
    """Configure JAX for a worker: float32 matmul precision and the compilation cache."""
    import jax

    jax.monitoring.register_event_listener(_count_cache_hits)

    jax.config.update("jax_default_matmul_precision",
                      "tensorfloat32" if spec["fp32_matmul"] == "tf32" else "float32")
    if spec.get("cache_dir"):
        jax.config.update("jax_compilation_cache_dir", spec["cache_dir"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return jax


def jax_sync(out):
    import jax

    if out is not None:
        jax.block_until_ready(out)


# ---------------------------------------------------------------------------- workers: describe


def _version(name):
    try:
        return _md.version(name)
    except _md.PackageNotFoundError:
        return None


def _run_text(cmd, timeout=20):
    try:
        r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
        return r.stdout if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def nvidia_smi() -> dict | None:
    fields = "name,memory.total,driver_version,clocks.max.sm,power.limit"
    q = _run_text(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"])
    if not q:
        return None
    first = q.strip().splitlines()[0]
    name, mem, driver, clock, power = (p.strip() for p in first.split(",")[:5])
    out = {"name": name, "memory_total": mem, "driver": driver, "max_sm_clock": clock,
           "power_limit": power}
    full = _run_text(["nvidia-smi"]) or ""
    m = re.search(r"CUDA Version:\s*([\d.]+)", full)
    out["cuda_driver_version"] = m.group(1) if m else None
    return out


def worker_describe(spec, emit):
    jax = setup_jax(spec)
    devices = jax.devices()
    d = devices[0]
    stats = d.memory_stats() if hasattr(d, "memory_stats") else None
    versions = {n: _version(n) for n in (
        "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "jax-cuda13-pjrt",
        "jax-cuda12-pjrt", "flax", "optax", "numpy", "torch", "triton", "cupy-cuda13x",
        "cupy-cuda12x", "spikingjelly", "snntorch", "loguru", "nvidia-cudnn-cu13",
        "nvidia-cudnn-cu12")}
    versions = {k: v for k, v in versions.items() if v is not None}
    torch_info = None
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            torch_info = {"version": torch.__version__, "cuda": torch.version.cuda,
                          "cudnn": torch.backends.cudnn.version(),
                          "cuda_available": torch.cuda.is_available()}
        except Exception as e:  # noqa: BLE001
            torch_info = {"error": repr(e)}
    smi = nvidia_smi()
    emit({
        "backend": jax.default_backend(),
        "devices": [str(x) for x in devices],
        "device_kind": d.device_kind,
        "platform_version": getattr(d.client, "platform_version", None),
        "memory_stats": None if not stats else {
            k: int(stats[k]) for k in ("bytes_limit", "bytes_in_use") if k in stats},
        "nvidia_smi": smi,
        "versions": versions,
        "torch": torch_info,
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "card": detect_card((smi or {}).get("name") or d.device_kind),
    })


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# ---------------------------------------------------------------------------- workers: dense


def _spike_loss():
    """The spike-count loss as a snnjax per-step loss: ℓ(o[t]) = Σ_{b,n} s[t,b,n] (the engine
    divides by T)."""
    import jax.numpy as jnp

    from snnjax.losses import Loss

    @dataclasses.dataclass(frozen=True)
    class SpikeCount(Loss):
        def step(self, o, y):
            del y
            return o.astype(jnp.float32).sum()

    return SpikeCount()


def _dense_model(N):
    import flax.linen as nn

    from snnjax.layers import Dense
    from snnjax.neuron import LIFParams
    from snnjax.neurons import LIF

    class DenseLIF(nn.Module):
        """Linear(N→N) + LIF, spikes out ``[C, B, N]`` (the "logits" of the spike loss).

        The synapse reads the raw input, so it keeps no OTTT trace (its factor is x[t]; OTTT
        refuses a traced synapse there), as in ``peer_worker.py``'s copy of this net."""

        features: int

        @nn.compact
        def __call__(self, x, train=False):
            del train
            current = Dense(self.features, traced=False, name="fc")(x)
            return LIF(LIFParams(decay=DECAY, v_th=V_TH), name="lif")(current)

    return DenseLIF(N)


def _dense_grad_fn(rule_name: str, T: int, N: int):
    """``f(params, xs, ys) -> (loss, grads)`` of one rule on the dense net, for jax.jit."""
    model, rule, loss = _dense_model(N), dense_rule(rule_name, T), _spike_loss()

    def f(params, xs, ys):
        value, _, grads = rule.value_and_grad(model, params, {}, xs, ys, loss=loss, key=None)
        return value, grads

    return f


def _dense_snnjax_row(row, data, sizes, deadline, compile_only=False) -> dict:
    """One rule at one N and dtype: compiled (into the cache only, with ``compile_only``),
    then timed."""
    import jax
    import jax.numpy as jnp

    from snnjax.cost import compiled_memory

    T, B, N = sizes.dense_T, sizes.dense_B, row["N"]
    dt = jnp.dtype(row["dtype"])
    if compile_only:  # shapes only: nothing big is allocated
        params = {"fc": {"kernel": jax.ShapeDtypeStruct((N, N), dt),
                         "bias": jax.ShapeDtypeStruct((N,), dt)}}
        xs = jax.ShapeDtypeStruct((T, B, N), dt)
        ys = jax.ShapeDtypeStruct((B,), jnp.int32)
    else:
        w, b, x = data
        params = {"fc": {"kernel": jnp.asarray(w, dt), "bias": jnp.asarray(b, dt)}}
        xs, ys = jnp.asarray(x, dt), jnp.zeros((B,), jnp.int32)
    t0 = time.perf_counter()
    hits = CACHE_HITS[0]
    compiled = jax.jit(_dense_grad_fn(row["rule"], T, N)).lower(params, xs, ys).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled_memory(compiled)
    out = {**row, "status": "ok", "lib": "snnjax", "compile_s": compile_s,
           "step_from_cache": CACHE_HITS[0] > hits,
           "xla_temp_bytes": mem["temp_bytes"], "xla_memory_bytes": mem["memory_bytes"]}
    if not compile_only:
        times, (value, grads) = timed(lambda: compiled(params, xs, ys), jax_sync,
                                      deadline=deadline)
        out.update(time_fields(times), loss=float(value),
                   grad_sum=float(jnp.sum(grads["fc"]["kernel"].astype(jnp.float32))))
    if row.get("memory_at_half_T"):
        # XLA's temporaries at T/2 too (compile only): how the memory grows with T.
        half = max(1, T // 2)
        xs_half = jax.ShapeDtypeStruct((half, B, N), dt)
        lowered = jax.jit(_dense_grad_fn(row["rule"], half, N)).lower(params, xs_half, ys)
        out["xla_temp_bytes_half_T"] = compiled_memory(lowered.compile())["temp_bytes"]
    return out


def worker_dense_snnjax(spec, emit):
    setup_jax(spec)
    sizes = Sizes(**spec["sizes"])
    data = {}
    for row in spec["rows"]:
        if time.time() > spec["deadline"]:
            emit({**row, "status": "skipped", "reason": "time budget"})
            continue
        try:
            if row["N"] not in data and not spec.get("compile_only"):
                data.clear()
                gc.collect()
                data[row["N"]] = dense_data(sizes.dense_T, sizes.dense_B, row["N"])
            emit(_dense_snnjax_row(row, data.get(row["N"]), sizes, spec["deadline"],
                                   compile_only=spec.get("compile_only", False)))
        except Exception as e:  # noqa: BLE001
            emit({**row, "status": "error", "error": _short_error(e)})
        gc.collect()


def _short_error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) < 600 else text[:600] + " …"


# ---------------------------------------------------------------------------- workers: torch peers


def _torch_setup(spec):
    import torch

    tf32 = spec["fp32_matmul"] == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def sync(_=None):
        if device.type == "cuda":
            torch.cuda.synchronize()

    return torch, device, sync


def _sj_version():
    import spikingjelly

    v = getattr(spikingjelly, "__version__", None)
    if v:
        return v
    # The legacy release has no __version__; tell it by where it was imported from.
    path = Path(spikingjelly.__file__).resolve()
    for dist in path.parent.parent.glob("spikingjelly-*.dist-info"):
        return dist.name.removeprefix("spikingjelly-").removesuffix(".dist-info")
    return _version("spikingjelly")


def _sj_implementation():
    """Which CUDA implementation SpikingJelly 2's LIF selected ('triton', 'cuda', 'torch'),
    read after a run; None on CPU or when it fell back to its Torch reference."""
    try:
        import torch
        from spikingjelly._ops.lif import _selection

        if not torch.cuda.is_available():
            return "cpu"
        names = {getattr(v, "name", None) for v in _selection._selections.values()}
        names.discard(None)
        return ",".join(sorted(names)) or "torch-reference"
    except Exception:  # noqa: BLE001
        return None


def _dense_peer_runner(lib, torch, device, T, N, dtype, data):
    """``(step, params)`` for one peer library: step() runs forward + backward -> loss."""
    w, b, x = data
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    x = torch.from_numpy(x).to(device=device, dtype=tdtype)
    with torch.device(device):  # initialise on the device (N = 16384 is slow on the host)
        fc = torch.nn.Linear(N, N)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(w).to(device).T)
        fc.bias.copy_(torch.from_numpy(b).to(device))
    if lib == "snntorch":
        import snntorch as snn
        from snntorch import surrogate

        fc = fc.to(device=device, dtype=tdtype)
        # reset_delay=False: the reset is applied in the step that spikes, as in snnjax.
        lif = snn.Leaky(beta=DECAY, threshold=V_TH, spike_grad=surrogate.sigmoid(slope=ALPHA),
                        reset_mechanism="subtract", reset_delay=False)

        def forward():
            mem = lif.init_leaky()
            total = 0.0
            for t in range(T):
                spk, mem = lif(fc(x[t]), mem)
                total = total + spk.float().sum()
            return total / T

        params = list(fc.parameters())
    else:
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        kw = {"tau": 1.0 / (1.0 - DECAY), "decay_input": False, "v_threshold": V_TH,
              "v_reset": None, "surrogate_function": surrogate.Sigmoid(alpha=ALPHA),
              "detach_reset": False, "step_mode": "m"}
        if lib == "spikingjelly-cupy":
            if device.type != "cuda":
                raise RuntimeError("SpikingJelly's CuPy backend needs CUDA")
            kw["backend"] = "cupy"
        with torch.device(device):
            linear = layer.Linear(N, N, step_mode="m")
        linear.load_state_dict(fc.state_dict())
        del fc
        net = torch.nn.Sequential(linear, neuron.LIFNode(**kw)).to(device=device, dtype=tdtype)

        def forward():
            functional.reset_net(net)
            return net(x).float().sum() / T

        params = list(net.parameters())

    def step():
        for p in params:
            p.grad = None
        loss = forward()
        loss.backward()
        return loss

    return step, params


def _dense_peer_row(row, lib, torch, device, sync, T, data, deadline) -> dict:
    step, params = _dense_peer_runner(lib, torch, device, T, row["N"], row["dtype"], data)
    t0 = time.perf_counter()
    step()
    sync()
    first_s = time.perf_counter() - t0
    times, loss = timed(step, sync, warmup=1, deadline=deadline)
    grad = params[0].grad
    out = {**row, "status": "ok", **time_fields(times), "compile_s": first_s,
           "loss": float(loss.detach()),
           "grad_sum": float(grad.float().sum()) if grad is not None else None}
    if lib.startswith("spikingjelly") and lib != "spikingjelly-cupy":
        out["implementation"] = _sj_implementation()
    return out


def worker_dense_peer(spec, emit):
    torch, device, sync = _torch_setup(spec)
    sizes = Sizes(**spec["sizes"])
    lib = spec["lib"]
    version = _version("snntorch") if lib == "snntorch" else _sj_version()
    data = {}
    for row in spec["rows"]:
        if time.time() > spec["deadline"]:
            emit({**row, "status": "skipped", "reason": "time budget"})
            continue
        try:
            if row["N"] not in data:
                data.clear()
                gc.collect()
                data[row["N"]] = dense_data(sizes.dense_T, sizes.dense_B, row["N"])
            emit({**_dense_peer_row(row, lib, torch, device, sync, sizes.dense_T,
                                    data[row["N"]], spec["deadline"]), "version": version})
        except Exception as e:  # noqa: BLE001
            emit({**row, "status": "error", "version": version, "error": _short_error(e)})
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- workers: conv nets


def _conv_snnjax_row(row, sizes, xs, ys, compile_only, deadline) -> dict:
    import jax
    import optax

    import snnjax
    from snnjax import cost

    model = conv_model(row["model"], sizes)
    trainer = snnjax.Trainer(model, conv_rule(row["rule"]), optax.sgd(0.1, momentum=0.9))
    trainer.check(xs, ys)
    t0 = time.perf_counter()
    ts = trainer.init(jax.random.key(0), xs)
    hits = CACHE_HITS[0]
    compiled = trainer.lower(ts, xs, ys).compile()
    compile_s = time.perf_counter() - t0
    mem = cost.compiled_memory(compiled)
    out = {**row, "status": "ok", "lib": "snnjax", "rule_name": trainer.rule.name,
           "compile_s": compile_s, "step_from_cache": CACHE_HITS[0] > hits,
           "xla_temp_bytes": mem["temp_bytes"], "xla_memory_bytes": mem["memory_bytes"]}
    if compile_only:
        return out
    ts, metrics = compiled(ts, xs, ys)
    jax.block_until_ready((ts, metrics))
    out["peak_bytes"] = cost.device_peak_bytes()
    out["loss"] = float(metrics["loss"])
    state = {"ts": ts}
    del ts

    def step():
        state["ts"], m = compiled(state["ts"], xs, ys)  # the train state is donated
        return state["ts"], m

    times, _ = timed(step, jax_sync, warmup=1, deadline=deadline)
    out.update(time_fields(times))
    return out


def worker_conv_snnjax(spec, emit):
    """Conv rows; with ``compile_only`` just compile (init and step) into the cache."""
    setup_jax(spec)
    import jax.numpy as jnp

    sizes = Sizes(**spec["sizes"])
    x, y = conv_batch(sizes)
    xs, ys = jnp.asarray(x), jnp.asarray(y)
    for row in spec["rows"]:
        if time.time() > spec["deadline"]:
            emit({**row, "status": "skipped", "reason": "time budget"})
            continue
        try:
            emit(_conv_snnjax_row(row, sizes, xs, ys, spec.get("compile_only"),
                                  spec["deadline"]))
        except Exception as e:  # noqa: BLE001
            emit({**row, "status": "error", "error": _short_error(e)})
        gc.collect()


def _sj_conv_net(torch, name, rule, sizes):
    """SpikingJelly's version of the snnjax network ``name`` for ``rule`` (BPTT: multi-step
    modules; SLTT/OTTT: single-step modules and SpikingJelly's online nodes)."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    nn = torch.nn
    multi = rule == "BPTT"
    mode = "m" if multi else "s"

    class Scale(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return x * self.scale

    if name == "vgg11_sws":
        tau, sg = 1.0 / (1.0 - DECAY), surrogate.Sigmoid(alpha=ALPHA)
    else:  # SLTT's ResNet neuron: τ = 1.1, triangle surrogate (PiecewiseQuadratic, α = 1)
        tau, sg = 1.1, surrogate.PiecewiseQuadratic(alpha=1.0)
    node_cls = {"BPTT": neuron.LIFNode, "SLTT": neuron.SLTTLIFNode,
                "OTTT": neuron.OTTTLIFNode}[rule]

    def lif():
        return node_cls(tau=tau, decay_input=False, v_threshold=V_TH, v_reset=None,
                        surrogate_function=sg, detach_reset=False, step_mode=mode)

    def conv(cin, cout, k, stride=1, padding=0, bias=True, ws=False):
        if ws:
            return layer.WSConv2d(cin, cout, k, stride=stride, padding=padding, bias=bias,
                                  step_mode=mode, gain=True, eps=1e-4)
        if multi:
            return layer.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=bias,
                                step_mode="m")
        return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=bias)

    def bn(c):
        return layer.BatchNorm2d(c, step_mode="m") if multi else nn.BatchNorm2d(c)

    def head(c):
        if multi:
            return [layer.AdaptiveAvgPool2d(1, step_mode="m"), layer.Flatten(step_mode="m"),
                    layer.Linear(c, sizes.classes, step_mode="m")]
        return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, sizes.classes)]

    if name == "vgg11_sws":
        from snnjax.models import VGG11_CFG

        cfg = TINY_VGG_CFG if sizes.tiny else VGG11_CFG
        mods, cin = [], 3
        for c in cfg:
            if c == "A":
                mods.append(layer.AvgPool2d(2, step_mode="m") if multi else nn.AvgPool2d(2))
                continue
            mods += [conv(cin, c, 3, padding=1, ws=True), lif(), Scale(2.74)]
            cin = c
        mods += head(cin)
        return (layer.OTTTSequential if rule == "OTTT" else nn.Sequential)(*mods)

    # PreAct ResNet (snnjax.models.resnet): stem conv (no bias), units, head.
    class Unit(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1, self.lif1 = bn(cin), lif()
            self.conv1 = conv(cin, cout, 3, stride, 1)
            self.bn2, self.lif2 = bn(cout), lif()
            self.conv2 = conv(cout, cout, 3, 1, 1)
            self.short = conv(cin, cout, 1, stride, 0) if (stride != 1 or cin != cout) else None

        def forward(self, x):
            s = self.lif1(self.bn1(x))
            y = self.conv2(self.lif2(self.bn2(self.conv1(s))))
            return y + (self.short(s) if self.short is not None else s)

    stages, widths = ((1,), (4,)) if sizes.tiny else ((2, 2, 2, 2), (64, 128, 256, 512))
    mods = [conv(3, widths[0], 3, 1, 1, bias=False)]
    cin = widths[0]
    for i, (n, c) in enumerate(zip(stages, widths)):
        for j in range(n):
            mods.append(Unit(cin, c, 2 if (i > 0 and j == 0) else 1))
            cin = c
    mods += [bn(cin), lif(), *head(cin)]
    return nn.Sequential(*mods)


def _conv_peer_row(row, torch, device, sync, sizes, x, y, deadline) -> dict:
    from spikingjelly.activation_based import functional

    T, rule = sizes.conv_T, row["rule"]
    ce = torch.nn.CrossEntropyLoss()
    net = _sj_conv_net(torch, row["model"], rule, sizes).to(device)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

    def bptt_step():
        opt.zero_grad(set_to_none=True)
        functional.reset_net(net)
        out = net(x)  # [T, B, classes]
        loss = ce(out.flatten(0, 1), y.repeat(T))  # = Σ_t CE_t / T
        loss.backward()
        opt.step()
        return loss

    def online_step():  # SpikingJelly's online loop: a backward at every step, one update
        opt.zero_grad(set_to_none=True)
        functional.reset_net(net)
        total = 0.0
        for t in range(T):
            loss = ce(net(x[t]), y) / T
            loss.backward()
            total = total + loss.detach()
        opt.step()
        return total

    step = bptt_step if rule == "BPTT" else online_step
    t0 = time.perf_counter()
    step()
    sync()
    first_s = time.perf_counter() - t0
    peak = None
    if device.type == "cuda":
        opt.zero_grad(set_to_none=True)
        sync()
        torch.cuda.reset_peak_memory_stats()
        step()
        sync()
        peak = int(torch.cuda.max_memory_allocated())
    times, loss = timed(step, sync, warmup=0, deadline=deadline)
    return {**row, "status": "ok", "lib": "spikingjelly", "version": _sj_version(),
            **time_fields(times), "compile_s": first_s, "peak_bytes": peak,
            "loss": float(loss)}


def worker_conv_peer(spec, emit):
    torch, device, sync = _torch_setup(spec)
    sizes = Sizes(**spec["sizes"])
    x, y = conv_batch(sizes)
    x = torch.from_numpy(x.transpose(0, 1, 4, 2, 3).copy()).to(device)  # [T, B, C, H, W]
    y = torch.from_numpy(y.astype(np.int64)).to(device)
    for row in spec["rows"]:
        if time.time() > spec["deadline"]:
            emit({**row, "status": "skipped", "reason": "time budget"})
            continue
        try:
            emit(_conv_peer_row(row, torch, device, sync, sizes, x, y, spec["deadline"]))
        except Exception as e:  # noqa: BLE001
            emit({**row, "status": "error", "lib": "spikingjelly", "error": _short_error(e)})
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- workers: planner


def plan_largest_T(memory, budget: int, probes: tuple[int, int], cap: int) -> dict:
    """The largest T in [1, cap] whose compiled memory fits ``budget``.

    Compiled memory is close to linear in T, so the crossing is first bracketed by secant
    steps from two probes (each step compiles one T), then :func:`snnjax.bench.largest`
    settles it inside the bracket: every tested T up to the answer fits, answer + 1 was
    tested and does not fit (or the answer is ``cap``), and the T just below was tested too.
    """
    from snnjax.bench import largest

    tested: dict[int, int] = {}

    def mem(t):
        if t not in tested:
            tested[t] = int(memory(t))
        return tested[t]

    def fits(t):
        return mem(t) <= budget

    for t in probes:
        mem(min(t, cap))
    for _ in range(6):
        good = [t for t in tested if tested[t] <= budget]
        bad = [t for t in tested if tested[t] > budget]
        a = max(good) if good else None
        b = min(bad) if bad else None
        if a is None or (b is not None and b - a <= 1) or (b is None and a >= cap):
            break
        if b is None:  # extrapolate from the two largest fitting points
            t0 = max([t for t in good if t < a], default=None)
            slope = (tested[a] - tested[t0]) / (a - t0) if t0 is not None else 0
            pred = cap if slope <= 0 else a + int((budget - tested[a]) / slope)
            pred = min(cap, max(a + 1, pred))
        else:  # interpolate inside the bracket
            slope = (tested[b] - tested[a]) / (b - a)
            pred = a + int((budget - tested[a]) / slope) if slope > 0 else (a + b) // 2
            pred = min(b - 1, max(a + 1, pred))
        mem(pred)
    good = [t for t in tested if tested[t] <= budget]
    bad = [t for t in tested if tested[t] > budget]
    hi = (min(bad) - 1) if bad else cap
    # Every tested T up to lo fits (lo is below every failure): largest() keeps its contract.
    lo = max([t for t in good if t <= hi], default=1)
    found = largest(fits, lo=lo, cap=max(lo, hi), scan=1, rounds=1)
    capped = found.capped and not bad and found.value == cap
    return {"max_T": found.value, "capped": capped,
            "memory_at_max_T": tested.get(found.value), "compiles": len(tested),
            "tested": {str(k): v for k, v in sorted(tested.items())}}


def worker_plan(spec, emit):
    jax = setup_jax(spec)
    import snnjax
    from snnjax import bench, cost

    sizes = Sizes(**spec["sizes"])
    d = jax.devices()[0]
    stats = d.memory_stats() if hasattr(d, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        budget, source = int(stats["bytes_limit"]), "bytes_limit"
    else:
        budget, source = bench.parse_bytes(spec["plan_budget"]), "--plan-budget"
    shape = (sizes.image, sizes.image, 3)
    for row in spec["rows"]:
        if time.time() > spec["deadline"]:
            emit({**row, "status": "skipped", "reason": "time budget"})
            continue
        seen: dict[str, int] = {}
        try:
            model = conv_model(row["model"], sizes)
            trainer = snnjax.Trainer(model, conv_rule(row["rule"]), cost.default_optimizer())

            def memory(T, trainer=trainer, seen=seen):
                if time.time() > spec["deadline"]:
                    raise TimeoutError("time budget ran out during the search")
                xs, ys = cost.abstract_batch(T, sizes.plan_B, shape)
                seen[str(T)] = cost.step_memory(trainer, xs, ys)["memory_bytes"]
                jax.clear_caches()
                return seen[str(T)]

            t0 = time.perf_counter()
            found = plan_largest_T(memory, budget, sizes.plan_probes, sizes.plan_max_T)
            emit({**row, "status": "ok", "batch": sizes.plan_B, "budget_bytes": budget,
                  "budget_source": source, "cap": sizes.plan_max_T,
                  "search_s": time.perf_counter() - t0, **found})
        except Exception as e:  # noqa: BLE001
            emit({**row, "status": "error", "error": _short_error(e), "budget_bytes": budget,
                  "tested": seen})


WORKERS = {
    "describe": worker_describe,
    "dense-snnjax": worker_dense_snnjax,
    "dense-peer": worker_dense_peer,
    "conv-snnjax": worker_conv_snnjax,
    "conv-peer": worker_conv_peer,
    "plan": worker_plan,
}


def worker_main(kind: str, spec_json: str) -> int:
    spec = json.loads(spec_json)
    sys.path.insert(0, str(ROOT))

    def emit(obj):
        print("@@ROW " + json.dumps(obj), flush=True)

    try:
        WORKERS[kind](spec, emit)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        print("@@FATAL " + json.dumps({"error": _short_error(e)}), flush=True)
        return 1
    return 0


# ---------------------------------------------------------------------------- orchestrator


class Clock:
    """The run's time budget, shared out between sections by weight."""

    def __init__(self, budget_s: float):
        self.start = time.time()
        self.end = self.start + budget_s

    def elapsed(self):
        return time.time() - self.start

    def left(self):
        return max(0.0, self.end - time.time())

    def share(self, weight: float, remaining_weight: float) -> float:
        """Seconds for a section of ``weight`` when ``remaining_weight`` is still to run."""
        return self.left() * weight / max(weight, remaining_weight)


def log(clock: Clock, text: str):
    print(f"[{clock.elapsed():6.1f} s] {text}", file=sys.stderr, flush=True)


def run_worker(kind: str, spec: dict, rows: list[dict], *, timeout: float, env_extra=None,
               pythonpath_prefix: str | None = None) -> list[dict]:
    """Run a worker over ``rows``: one result per row, errors and rows never reached
    included. A worker that dies (not one that runs out of time) costs the row it was on:
    a fresh one takes the rows after it while time is left (unless it died on its first)."""
    end = time.time() + timeout
    results = []
    while len(results) < len(rows):
        left = end - time.time()
        if left < 5 and results:
            results += [{**r, "status": "skipped", "reason": "time budget"}
                        for r in rows[len(results):]]
            break
        got, died = _run_worker_once(kind, spec, rows[len(results):], timeout=left,
                                     env_extra=env_extra, pythonpath_prefix=pythonpath_prefix)
        results += got
        if died and len(got) == 1:  # died before finishing any row: do not start again
            results += [{**r, "status": "skipped", "reason": "the worker failed on the first row"}
                        for r in rows[len(results):]]
        if not died or len(got) == 1:
            break
    return results


def _run_worker_once(kind, spec, rows, *, timeout, env_extra, pythonpath_prefix):
    """One worker process over ``rows``: ``(results so far, whether it died on a row)``;
    after a death the results end at the row it died on."""
    spec = {**spec, "rows": rows, "deadline": time.time() + max(1.0, timeout - 5.0)}
    env = dict(os.environ)
    env.update(env_extra or {})
    # A prefix (SpikingJelly 0.0.0.0.14's site) must win over the same package further on.
    path = ([pythonpath_prefix] if pythonpath_prefix else []) + [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(path + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind,
           "--spec", json.dumps(spec)]
    error = None
    try:
        r = subprocess.run(cmd, check=False, capture_output=True, text=True,
                           timeout=max(1.0, timeout), env=env, cwd=str(ROOT))
        stdout, stderr, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        rc, error = None, f"worker timed out after {timeout:.0f} s"
    results = []
    for line in stdout.splitlines():
        if line.startswith("@@ROW "):
            results.append(json.loads(line[6:]))
        elif line.startswith("@@FATAL "):
            error = json.loads(line[8:])["error"]
    if rc not in (0, None) and error is None:
        tail = stderr.strip().splitlines()[-3:]
        error = f"worker exited with {rc}: " + " | ".join(tail)
    rest = rows[len(results):]
    if not rest:
        return results, False
    if error is None:
        return results + [{**r, "status": "skipped", "reason": "not reached"} for r in rest], False
    results.append({**rest[0], "status": "error", "error": error})
    if rc is None:  # out of time: the rows after it are not run
        return results + [{**r, "status": "skipped", "reason": "time budget"}
                          for r in rest[1:]], False
    return results, True


def _peer_available(lib: str, legacy_site: str | None, backend: str) -> str | None:
    """None if the peer can run here, else why not."""
    if importlib.util.find_spec("torch") is None:
        return "torch not installed"
    if lib == "spikingjelly-cupy":
        if backend != "gpu":
            return "CuPy backend needs CUDA"
        if not legacy_site or not (Path(legacy_site) / "spikingjelly").is_dir():
            return "SpikingJelly 0.0.0.0.14 not installed (--sj-legacy-site)"
        if importlib.util.find_spec("cupy") is None:
            return "CuPy not installed"
        return None
    module = "snntorch" if lib == "snntorch" else "spikingjelly"
    if importlib.util.find_spec(module) is None:
        return f"{module} not installed"
    if lib == "spikingjelly-torch" and backend != "gpu":
        return "same as 'spikingjelly' on CPU (its implementation choice is CUDA's)"
    return None


# Peer rows that cannot run as asked, and why.
_PEER_DTYPE_SKIPS = (
    ("spikingjelly-torch", "bfloat16",
     ("SpikingJelly 2 runs bfloat16 LIF through its Torch reference in every mode; a forced "
      "implementation refuses it (see the auto row)")),
    ("spikingjelly-cupy", "bfloat16", "the CuPy backend supports float32 and float16 only"),
)


def _peer_env(lib: str, legacy_site: str | None):
    if lib == "spikingjelly-torch":
        return {"SJ_LIF_CUDA_IMPLEMENTATION": "torch"}, None
    if lib == "spikingjelly-cupy":
        return {}, legacy_site
    return {}, None


def annotate_dense(rows, card, fp32_matmul):
    for r in rows:
        flops, nbytes = dense_work(r["N"], r["T"], r["B"], r["dtype"])
        r["flops"], r["bytes"] = flops, nbytes
        r.update(roofline(flops, nbytes, card, r["dtype"], fp32_matmul))
        t = r.get("time_s")
        r["x_roofline"] = (t / r["roofline_s"]) if (t and r["roofline_s"]) else None
        r["tflops"] = flops / t / 1e12 if t else None


def orchestrate(args) -> dict:
    sizes = TINY if args.tiny else FULL
    if args.N:
        sizes = dataclasses.replace(sizes, dense_N=tuple(args.N))
    clock = Clock(args.budget_s)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="snnjax-accel-cache-")
    sections = set(args.sections.split(","))
    base = {"fp32_matmul": args.fp32_matmul, "sizes": dataclasses.asdict(sizes),
            "cache_dir": cache_dir, "plan_budget": args.plan_budget}
    # JAX processes must share the GPU (parallel compiles): no preallocation.
    jax_env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false",
               "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.95",
               "TF_CPP_MIN_LOG_LEVEL": "2"}
    if sizes.tiny:
        jax_env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TINY_XLA_FLAGS).strip()
    result = {
        "meta": {"tiny": sizes.tiny, "argv": sys.argv[1:],
                 "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "budget_s": args.budget_s, "fp32_matmul": args.fp32_matmul,
                 "jobs": args.jobs, "sizes": dataclasses.asdict(sizes),
                 "xla_flags": jax_env.get("XLA_FLAGS")},
        "notes": [],
    }
    # Shares of the time left when each section starts (what one leaves goes to the next).
    weights = {"describe": 0.3, "precompile": 2.5, "dense-snnjax": 1.5, "conv-snnjax": 3.0,
               "dense-peers": 2.0, "conv-peers": 1.2}

    def share(name):
        remaining = sum(w for k, w in weights.items() if k in pending)
        pending.discard(name)
        return clock.share(weights[name], remaining)

    pending = set(weights)

    # 1. The device.
    log(clock, "describing the device")
    desc = run_worker("describe", base, [{}], timeout=max(30.0, share("describe")),
                      env_extra=jax_env)[0]
    result["device"] = desc
    backend = desc.get("backend", "unknown")
    card = desc.get("card")
    result["card"] = {"key": card, "peaks": PEAKS.get(card), "source": PEAKS_SOURCE}
    # A peak to measure (GPU, TPU): one process per conv row, so the peak is that row's.
    fresh_per_row = {"yes": True, "no": False}.get(args.fresh_process,
                                                   bool(desc.get("memory_stats")))
    log(clock, f"backend {backend}, devices {desc.get('devices')}, card {card}")

    # Largest N first (the goals read N = 16384, float32): a run short of time loses the small.
    dense_rows = [{"N": N, "T": sizes.dense_T, "B": sizes.dense_B, "dtype": dt, "rule": r,
                   "memory_at_half_T": N == max(sizes.dense_N)}
                  for N in sorted(sizes.dense_N, reverse=True) for dt in sizes.dtypes
                  for r in DENSE_RULES]
    # Run order: the rows the goals read first (ResNet-18, BPTT, SLTT, SLTT-K), so
    # that a run short of time loses the others.
    only = dict(sizes.conv_only)
    conv_rows = [{"model": m, "rule": r} for r in CONV_PRIORITY
                 for m in sorted(sizes.conv_models, key=lambda m: m != "resnet18")
                 if r in only.get(m, CONV_RULES)]
    plan_rows = [{"model": m, "rule": r} for m in sizes.plan_models for r in PLAN_RULES]

    # 2. Compile the conv steps in parallel into the cache; the planner beside them.
    precompiled, dense_precompiled, plan_results = [], [], []
    if sections & {"conv", "plan", "dense"} and (args.jobs > 0 or "plan" in sections):
        allowance = share("precompile")
        log(clock, f"compiling the steps ({args.jobs} processes) beside the planner "
                   f"({allowance:.0f} s)")
        plan_jobs = len(plan_rows) if "plan" in sections else 0
        workers = max(1, args.jobs + plan_jobs)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = []
            if plan_jobs:
                plan_env = {**jax_env}
                if backend == "gpu":  # compile only, never run: no autotuning on the GPU
                    plan_env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                             " --xla_gpu_autotune_level=0").strip()
                for row in plan_rows:  # one process per rule: BPTT's search is the longest
                    futures.append(("plan", pool.submit(
                        run_worker, "plan", {**base, "cache_dir": None}, [row],
                        timeout=allowance, env_extra=plan_env)))
            end = time.time() + allowance

            def compile_group(i):
                """Job i's share: its dense steps, then its conv steps, into the cache."""
                out = []
                for kind, rows, what in (("dense-snnjax", dense_rows, "dense"),
                                         ("conv-snnjax", conv_rows, "conv")):
                    mine = rows[i::args.jobs] if what in sections else []
                    if mine:
                        out += [(what, r) for r in run_worker(
                            kind, {**base, "compile_only": True}, mine,
                            timeout=max(1.0, end - time.time()), env_extra=jax_env)]
                return out

            for i in range(args.jobs):
                futures.append(("compile", pool.submit(compile_group, i)))
            for what, f in futures:
                if what == "plan":
                    plan_results.extend(f.result())
                else:
                    for kind, r in f.result():
                        (precompiled if kind == "conv" else dense_precompiled).append(r)
        for r in precompiled + dense_precompiled:
            name = f"{r['model']} {r['rule']}" if "model" in r else (
                f"N={r['N']} {r['dtype']} {r['rule']}")
            log(clock, f"  compiled {name}: {r['status']} {_fmt_s(r.get('compile_s'))}")
    else:
        pending.discard("precompile")
    result["plan"] = {"config": {"models": list(sizes.plan_models), "batch": sizes.plan_B,
                                 "cap": sizes.plan_max_T}, "rows": plan_results}
    for r in plan_results:
        log(clock, f"  plan {r['model']} {r['rule']}: {r['status']} max T {r.get('max_T')}")

    # 3. The ON benchmark, snnjax.
    dense = []
    if "dense" in sections:
        allowance = share("dense-snnjax")
        log(clock, f"dense snnjax: {len(dense_rows)} rows ({allowance:.0f} s)")
        pre = {(r["N"], r["dtype"], r["rule"]): r for r in dense_precompiled}
        for r in run_worker("dense-snnjax", base, dense_rows, timeout=allowance,
                            env_extra=jax_env):
            p = pre.get((r["N"], r["dtype"], r["rule"]), {})
            r["precompile_s"] = p.get("compile_s")
            r["precompiled"] = p.get("status") == "ok" and bool(r.get("step_from_cache"))
            dense.append({**r, "lib": "snnjax", "label": f"snnjax {r['rule']}"})
            log(clock, f"  N={r['N']} {r['dtype']} {r['rule']}: {r['status']} "
                       f"{_fmt_ms(r.get('time_s'))}")
    else:
        pending.discard("dense-snnjax")

    # 4. The conv nets, snnjax: a fresh process per row where there is a peak to measure.
    conv = []
    if "conv" in sections:
        allowance = share("conv-snnjax")
        end = time.time() + allowance
        log(clock, f"conv snnjax: {len(conv_rows)} rows ({allowance:.0f} s)")
        compile_info = {(r["model"], r["rule"]): r for r in precompiled}
        batches = [[r] for r in conv_rows] if fresh_per_row else [conv_rows]
        for batch in batches:
            left = end - time.time()
            if left < 5:
                res = [{**r, "status": "skipped", "reason": "time budget"} for r in batch]
            else:
                res = run_worker("conv-snnjax", base, batch, timeout=left, env_extra=jax_env)
            for r in res:
                pre = compile_info.get((r["model"], r["rule"]), {})
                r["precompile_s"] = pre.get("compile_s")
                r["precompiled"] = pre.get("status") == "ok" and bool(r.get("step_from_cache"))
                r["fresh_process"] = fresh_per_row
                conv.append({**r, "lib": "snnjax"})
                log(clock, f"  {r['model']} {r['rule']}: {r['status']} "
                           f"{_fmt_ms(r.get('time_s'))} peak {_fmt_mib(r.get('peak_bytes'))}")
    else:
        pending.discard("conv-snnjax")

    # 5. The ON benchmark, peers.
    if "dense" in sections and not args.no_peers:
        allowance = share("dense-peers")
        end = time.time() + allowance
        peer_rows = {lib: [{"N": N, "T": sizes.dense_T, "B": sizes.dense_B, "dtype": dt,
                            "lib": lib, "rule": "BPTT"}
                           for N in sorted(sizes.dense_N, reverse=True) for dt in sizes.dtypes]
                     for lib in DENSE_PEERS}
        runnable = []
        for lib in DENSE_PEERS:
            why = _peer_available(lib, args.sj_legacy_site, backend)
            if why:
                dense += [{**r, "label": PEER_LABEL[lib], "status": "skipped", "reason": why}
                          for r in peer_rows[lib]]
                log(clock, f"dense {lib}: skipped ({why})")
                continue
            runnable.append(lib)
            for skip_lib, dt, why in _PEER_DTYPE_SKIPS:
                if skip_lib == lib:
                    dense += [{**r, "label": PEER_LABEL[lib], "status": "skipped",
                               "reason": why} for r in peer_rows[lib] if r["dtype"] == dt]
                    peer_rows[lib] = [r for r in peer_rows[lib] if r["dtype"] != dt]
        for i, lib in enumerate(runnable):
            left = end - time.time()
            slot = left / (len(runnable) - i)
            env, prefix = _peer_env(lib, args.sj_legacy_site)
            log(clock, f"dense {lib} ({slot:.0f} s)")
            for r in run_worker("dense-peer", {**base, "lib": lib}, peer_rows[lib],
                                timeout=slot, env_extra=env, pythonpath_prefix=prefix):
                dense.append({**r, "label": PEER_LABEL[lib]})
                log(clock, f"  N={r['N']} {r['dtype']}: {r['status']} "
                           f"{_fmt_ms(r.get('time_s'))} {r.get('error', '')[:120]}")
    pending.discard("dense-peers")
    annotate_dense(dense, card, args.fp32_matmul)
    result["dense"] = {"config": {"N": list(sizes.dense_N), "T": sizes.dense_T,
                                  "B": sizes.dense_B, "dtypes": list(sizes.dtypes)},
                       "rows": dense}

    # 6. The conv nets, SpikingJelly.
    if "conv" in sections and not args.no_peers:
        allowance = share("conv-peers")
        end = time.time() + allowance
        why = _peer_available("spikingjelly", None, backend)
        rows = [{"model": m, "rule": r} for m in sizes.conv_models for r in SJ_CONV_RULES[m]]
        for row in rows:
            left = end - time.time()
            if why:
                res = [{**row, "status": "skipped", "reason": why}]
            elif left < 5:
                res = [{**row, "status": "skipped", "reason": "time budget"}]
            else:
                res = run_worker("conv-peer", base, [row], timeout=left)
            for r in res:
                conv.append({**r, "lib": "spikingjelly"})
                log(clock, f"  SpikingJelly {r['model']} {r['rule']}: {r['status']} "
                           f"{_fmt_ms(r.get('time_s'))} {r.get('error', r.get('reason', ''))}")
    pending.discard("conv-peers")
    result["conv"] = {"config": {"models": list(sizes.conv_models), "T": sizes.conv_T,
                                 "B": sizes.conv_B, "image": sizes.image,
                                 "optimizer": "SGD(0.1, momentum 0.9)"}, "rows": conv}
    result["goals"] = goals(result)
    result["meta"]["elapsed_s"] = clock.elapsed()
    if not args.cache_dir:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return result


def _fmt_ms(s):
    return "-" if s is None else f"{1e3 * s:.2f} ms"


def _fmt_s(s):
    return "-" if s is None else f"{s:.1f} s"


def _fmt_mib(b):
    return "-" if b is None else f"{b / 2**20:.0f} MiB"


# ---------------------------------------------------------------------------- goals


def _find(rows, **kw):
    for r in rows:
        if r.get("status") == "ok" and all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def goals(result) -> list[dict]:
    """The issue's goals, read against this run's numbers (None: not measured)."""
    out = []
    dense = result.get("dense", {}).get("rows", [])
    conv = result.get("conv", {}).get("rows", [])
    N = max(result["dense"]["config"]["N"]) if dense else None
    bptt = _find(dense, lib="snnjax", rule="BPTT", N=N, dtype="float32")

    def goal(text, ok, value):
        out.append({"goal": text, "met": ok, "value": value})

    x = bptt.get("x_roofline") if bptt else None
    goal(f"ON N={N} float32: snnjax BPTT within 1.5x of the roofline",
         None if x is None else x <= 1.5, None if x is None else f"{x:.2f}x")
    peers = [r for r in dense if r.get("lib") != "snnjax" and r.get("N") == N
             and r.get("dtype") == "float32" and r.get("status") == "ok"]
    if bptt and peers:
        fastest = min(peers, key=lambda r: r["time_s"])
        goal(f"ON N={N} float32: snnjax BPTT faster than every peer measured",
             bptt["time_s"] < fastest["time_s"],
             f"{1e3 * bptt['time_s']:.1f} ms vs {fastest['label']} "
             f"{1e3 * fastest['time_s']:.1f} ms")
    else:
        goal(f"ON N={N} float32: snnjax BPTT faster than every peer measured", None,
             "no peer measured")
    for rule in ("SLTT", "SLTT(chunk=T)", "OTTT_A(chunk=T)"):
        r = _find(dense, lib="snnjax", rule=rule, N=N, dtype="float32")
        ratio = r["time_s"] / bptt["time_s"] if (r and bptt) else None
        mem = ""
        if r and r.get("xla_temp_bytes_half_T") is not None:
            mem = (f"; XLA temporaries {_mib(r['xla_temp_bytes'])} MiB at T, "
                   f"{_mib(r['xla_temp_bytes_half_T'])} MiB at T/2")
        goal(f"ON N={N} float32: {rule} at most 1.3x BPTT's time",
             None if ratio is None else ratio <= 1.3,
             None if ratio is None else f"{ratio:.2f}x{mem}")
    rb = _find(conv, lib="snnjax", model="resnet18", rule="BPTT")
    rs = _find(conv, lib="snnjax", model="resnet18", rule="SLTT")
    rk = _find(conv, lib="snnjax", model="resnet18", rule="SLTT-K(1)")
    cc = result.get("conv", {}).get("config", {})
    at = f"ResNet-18 batch {cc.get('B')} T={cc.get('T')}"
    pb, ps = (rb or {}).get("peak_bytes"), (rs or {}).get("peak_bytes")
    ratio = ps / pb if (pb and ps) else None
    goal(f"{at}: SLTT's peak memory at most 0.3x BPTT's",
         None if ratio is None else ratio <= 0.3,
         None if ratio is None else f"{ratio:.2f}x ({_mib(ps)} vs {_mib(pb)} MiB)")
    ratio = rk["time_s"] / rb["time_s"] if (rk and rb) else None
    goal(f"{at}: SLTT-K(1)'s step time at most 0.5x BPTT's",
         None if ratio is None else ratio <= 0.5, None if ratio is None else f"{ratio:.2f}x")
    return out


# ---------------------------------------------------------------------------- Markdown


def _ms(s, digits=1):
    return "–" if s is None else f"{1e3 * s:.{digits}f}"


def _mib(b):
    if b is None:
        return "–"
    m = b / 2**20
    return f"{m:,.0f}" if m >= 10 else f"{m:.2f}"


def _num(x):
    return "–" if x is None else f"{x:.1f}"


def _status_note(r):
    if r.get("status") == "ok":
        return ""
    why = r.get("reason") or r.get("error") or ""
    return f"{r.get('status')}: {why}".replace("|", "/").replace("\n", " ")[:160]


def _split_absent(rows):
    """Rows to show, and the rows of peer libraries none of whose rows ran (not installed,
    not on this device): those are summed up in one line."""
    def name(r):
        return r.get("label") or r.get("lib")

    ran = {name(r) for r in rows if r.get("status") != "skipped"
           or r.get("reason") == "time budget"}
    absent = [r for r in rows if r.get("lib") != "snnjax" and name(r) not in ran]
    return [r for r in rows if r.get("lib") == "snnjax" or name(r) in ran], absent


def _absent_lines(absent):
    seen = {}
    for r in absent:
        name = r.get("label") or PEER_LABEL.get(r.get("lib"), r.get("lib"))
        if name == "spikingjelly":
            name = "SpikingJelly"
        seen.setdefault(name, r.get("reason"))
    if not seen:
        return []
    return ["", "Not run: " + "; ".join(f"{k} ({v})" for k, v in seen.items()) + "."]


def render_markdown(result) -> str:
    meta, dev = result["meta"], result.get("device", {})
    smi = dev.get("nvidia_smi") or {}
    name = smi.get("name") or dev.get("device_kind") or dev.get("backend", "?")
    v = dev.get("versions", {})
    torch_info = dev.get("torch") or {}
    tiny = meta["tiny"]
    lines = [f"## Accelerator: {name}" + (" (--tiny: CPU smoke run, not real figures)"
                                          if tiny else ""), ""]
    lines.append(
        f"Generated by `python benchmarks/accelerator.py{' --tiny' if tiny else ''}` on "
        f"{meta['started'][:10]} in {meta.get('elapsed_s', 0):.0f} s (budget "
        f"{meta['budget_s']:.0f} s; do not edit by hand). Raw figures: "
        "`benchmarks/results/accelerator.json`.")
    lines.append("")
    dev_bits = [f"JAX devices: {', '.join(dev.get('devices', [])) or '?'}"]
    if smi:
        dev_bits.append(f"nvidia-smi: {smi.get('name')}, {smi.get('memory_total')}, driver "
                        f"{smi.get('driver')}, CUDA {smi.get('cuda_driver_version')}")
    if (dev.get("memory_stats") or {}).get("bytes_limit"):
        dev_bits.append(f"JAX memory limit {dev['memory_stats']['bytes_limit'] / 2**30:.1f} GiB")
    sw = [f"jax {v.get('jax')}"]
    for k in ("jax-cuda13-plugin", "jax-cuda12-plugin"):
        if v.get(k):
            sw.append(f"{k} {v[k]}")
    sw += [f"flax {v.get('flax')}", f"optax {v.get('optax')}"]
    if torch_info.get("version"):
        sw.append(f"torch {torch_info['version']} (CUDA {torch_info.get('cuda')}, cuDNN "
                  f"{torch_info.get('cudnn')})")
    for k in ("triton", "cupy-cuda13x", "cupy-cuda12x", "spikingjelly", "snntorch"):
        if v.get(k):
            sw.append(f"{k} {v[k]}")
    dev_bits.append("software: " + ", ".join(sw))
    dev_bits.append(f"host: {dev.get('cpu')} ({dev.get('cpu_count')} cores), Python "
                    f"{dev.get('python')}")
    for b in dev_bits:
        lines.append(f"- {b}")
    card = result.get("card", {})
    if card.get("peaks"):
        p = card["peaks"]
        lines.append(
            f"- roofline card: {card['key']}: fp32 {p['fp32'] / 1e12:.0f}, TF32 "
            f"{p['tf32'] / 1e12:.0f}, bf16 {p['bf16'] / 1e12:.0f} TFLOP/s dense, "
            f"{p['bandwidth'] / 1e12:.2f} TB/s ({card['source']})")
    else:
        lines.append("- roofline: no datasheet peaks for this device (columns left empty)")
    lines.append(f"- float32 matmuls and convolutions on the GPU: "
                 f"{'TF32 (JAX and torch)' if meta['fp32_matmul'] == 'tf32' else 'full fp32'}")
    lines.append("")

    d = result.get("dense", {})
    if d.get("rows"):
        c = d["config"]
        title = (f"### Open Neuromorphic benchmark: Linear(N→N) + LIF, T = {c['T']}, "
                 f"batch {c['B']}")
        lines += [title, ""]
        lines.append(
            "One forward + backward (loss and weight gradient, no optimizer), the device "
            "synchronised before and after each timed call; median of the timed calls after "
            "a warm-up. Same weights, inputs and LIF dynamics in every library (λ = 0.5, "
            "V_th = 1, soft reset, sigmoid surrogate α = 4). Loss: the spike count per step, "
            "L = Σ_t Σ_{b,n} s[t,b,n] / T (no readout), the same for every rule and library; "
            "the loss column checks the dynamics agree. Roofline: max(FLOPs/peak, bytes/"
            "bandwidth) with FLOPs = 4·T·B·N² and bytes = s·(2N² + 4·T·B·N) (see the "
            "script's docstring). `SLTT` is `rules.sltt()` (one step per chunk: memory O(1) "
            "in T); the `chunk=T` rows fold time into the batch. snnTorch's loss differs by "
            "design: with `reset_delay=False` its Leaky neuron, while its post-reset "
            "potential is still ≥ V_th, fires only at 2·V_th the next step (and detaches the "
            "reset); SpikingJelly and snnjax fire at V_th.")
        lines.append("")
        lines.append("| N | dtype | library / rule | ms | roofline ms | × roofline | TFLOP/s "
                     "| XLA temp MiB | loss | note |")
        lines.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---|")
        shown, absent = _split_absent(d["rows"])
        order = {dt: i for i, dt in enumerate(c["dtypes"])}
        shown.sort(key=lambda r: (r["N"], order.get(r["dtype"], 9), r.get("lib") != "snnjax"))
        for r in shown:
            note = _status_note(r)
            if r.get("implementation"):
                note = (note + f" impl: {r['implementation']}").strip()
            x = r.get("x_roofline")
            tf = r.get("tflops")
            lines.append(
                f"| {r['N']} | {r['dtype']} | {r.get('label', r.get('lib'))} | "
                f"{_ms(r.get('time_s'), 2)} | {_ms(r.get('roofline_s'), 2)} | "
                f"{'–' if x is None else f'{x:.2f}'} | "
                f"{'–' if tf is None else f'{tf:.1f}'} | {_mib(r.get('xla_temp_bytes'))} | "
                f"{_num(r.get('loss'))} | {note} |")
        lines += _absent_lines(absent)
        lines.append("")

    cv = result.get("conv", {})
    if cv.get("rows"):
        c = cv["config"]
        title = (f"### VGG-11 sWS and ResNet-18, {c['image']}×{c['image']}×3, "
                 f"batch {c['B']}, T = {c['T']}")
        lines += [title, ""]
        lines.append(
            f"A full training step ({c['optimizer']}). Peak: the device's peak bytes in use "
            "after one step (JAX `memory_stats()`, a fresh process per row, the step loaded "
            "from a compilation cache; torch `max_memory_allocated()` over one step after a "
            "warm-up); XLA: the compiled step's temporaries + arguments + outputs. Local is "
            "`local(tbptt(2), block_size=2)`. SpikingJelly's SLTT/OTTT are its single-step "
            "online loops (a backward per step); its BPTT is multi-step (BatchNorm statistics "
            "over T·B rather than per step).")
        lines.append("")
        lines.append("| model | library / rule | step ms | peak MiB | XLA MiB | note |")
        lines.append("|---|---|---:|---:|---:|---|")
        shown, absent = _split_absent(cv["rows"])
        order = {rule: i for i, rule in enumerate(CONV_RULES)}
        shown.sort(key=lambda r: (r.get("lib") != "snnjax", order.get(r["rule"], 99)))
        for model in c["models"]:
            for r in [r for r in shown if r["model"] == model]:
                lib = "snnjax" if r.get("lib") == "snnjax" else "SpikingJelly"
                note = _status_note(r)
                if (r.get("lib") == "snnjax" and r.get("status") == "ok"
                        and r.get("peak_bytes") is not None and not r.get("precompiled")):
                    note = "compiled in the measuring process: the peak may hold autotuning"
                lines.append(
                    f"| {MODEL_LABEL.get(model, model)} | {lib} {r['rule']} | "
                    f"{_ms(r.get('time_s'))} | {_mib(r.get('peak_bytes'))} | "
                    f"{_mib(r.get('xla_memory_bytes'))} | {note} |")
        lines += _absent_lines(absent)
        lines.append("")

    pl = result.get("plan", {})
    if pl.get("rows"):
        lines += ["### Memory planner", ""]
        lines.append(
            "The largest T at batch "
            f"{pl['config']['batch']} whose compiled training step fits the card (JAX's "
            "memory limit at `XLA_PYTHON_CLIENT_MEM_FRACTION=0.95`): every tested T up to "
            "the answer fits, the answer + 1 was tested and does not (`snnjax.bench.largest`"
            f"); searched up to T = {pl['config']['cap']} (+: the cap fits).")
        lines.append("")
        lines.append("| model | rule | largest T | memory at T (MiB) | budget (MiB) | "
                     "compiles | note |")
        lines.append("|---|---|---:|---:|---:|---:|---|")
        for r in pl["rows"]:
            t = r.get("max_T")
            lines.append(
                f"| {MODEL_LABEL.get(r['model'], r['model'])} | {r['rule']} | "
                f"{'–' if t is None else str(t) + ('+' if r.get('capped') else '')} | "
                f"{_mib(r.get('memory_at_max_T'))} | {_mib(r.get('budget_bytes'))} | "
                f"{r.get('compiles', '–')} | {_status_note(r)} |")
        lines.append("")

    if result.get("goals"):
        lines += ["### Goals of issue 14, read against this run", ""]
        if tiny:
            lines += ["(tiny run: the sizes are not the issue's, so these say nothing)", ""]
        for g in result["goals"]:
            mark = {True: "met", False: "not met", None: "not measured"}[g["met"]]
            lines.append(f"- {g['goal']}: **{mark}**" +
                         (f" ({g['value']})" if g.get("value") else ""))
        lines.append("")
        lines.append("Published ON figures for comparison (unsynchronised, another card): "
                     "spyx 76 ms fp32, Norse 110 ms, SpikingJelly CuPy 118 ms at N = 16384.")
        lines.append("")
    for n in result.get("notes", []):
        lines.append(f"Note: {n}")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true",
                    help="tiny sizes: the same code paths on CPU in seconds (CI)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                    help="directory for accelerator.json and accelerator.md")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="time budget for the whole run (default 460 s, tiny 240 s)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="parallel compile processes for the conv steps (default 4, tiny 1)")
    ap.add_argument("--sections", default="dense,conv,plan",
                    help="comma-separated subset of dense,conv,plan")
    ap.add_argument("--N", type=int, nargs="+", help="override the dense N values")
    ap.add_argument("--fp32-matmul", choices=["tf32", "highest"], default="tf32",
                    help="float32 matmul/conv precision in JAX and torch (default tf32)")
    ap.add_argument("--no-peers", action="store_true", help="snnjax only")
    ap.add_argument("--sj-legacy-site", default=None,
                    help="a site dir holding SpikingJelly 0.0.0.0.14 (its CuPy backend)")
    ap.add_argument("--plan-budget", default=None,
                    help="planner budget where the device reports no memory limit (CPU; "
                         "default 16GiB, tiny 512KiB)")
    ap.add_argument("--cache-dir", default=None,
                    help="JAX compilation cache directory (default: a fresh temporary one)")
    ap.add_argument("--fresh-process", choices=["auto", "yes", "no"], default="auto",
                    help="one process per snnjax conv row (auto: where the device reports "
                         "peak memory)")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = 240.0 if args.tiny else 460.0
    if args.jobs is None:
        args.jobs = 1 if args.tiny else 4
    if args.plan_budget is None:
        args.plan_budget = "512KiB" if args.tiny else "16GiB"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.spec)
    result = orchestrate(args)
    out = Path(args.out)
    (out / "accelerator.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "accelerator.md").write_text(render_markdown(result))
    print(f"wrote {out / 'accelerator.json'} and {out / 'accelerator.md'} "
          f"({result['meta']['elapsed_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
