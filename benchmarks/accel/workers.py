"""What each kind of worker measures; one function per kind, ``(spec, emit)``.

Each runs in its own process (:mod:`accel.protocol`): ``describe`` (the device and the
software), ``dense-snnjax`` and ``dense-peer`` (the Open Neuromorphic net, :mod:`nets.dense`),
``conv-snnjax`` and ``conv-peer`` (the papers' conv nets), ``plan`` (the largest T that fits)
and ``compile-target`` (the conv steps compiled for the card without it, through snnjax's
compile-only targets where this snnjax has them).
"""

from __future__ import annotations

import gc
import importlib.metadata as _md
import importlib.util
import inspect
import os
import platform
import re
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from accel import plan
from accel.config import Sizes, conv_batch, conv_model, conv_rule, dense_rule, sj_conv_net
from accel.protocol import expired, short_error
from nets import dense as dense_nets

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
        if expired(deadline):
            break
    return times, out


def time_fields(times) -> dict:
    return {"time_s": statistics.median(times), "min_s": min(times), "reps": len(times)}


def _rows(spec, emit, run_row, after=None):
    """``emit(run_row(row))`` for each row of the spec: past the deadline a row is skipped,
    an exception costs its row only."""
    for row in spec["rows"]:
        if expired(spec["deadline"]):
            emit({**row, "status": "skipped", "reason": "time budget"})
            continue
        try:
            emit(run_row(row))
        except Exception as e:  # noqa: BLE001
            emit({**row, "status": "error", "error": short_error(e)})
        gc.collect()
        if after is not None:
            after()


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


# ---------------------------------------------------------------------------- describe


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


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def worker_describe(spec, emit):
    from accel.cards import detect_card

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


# ---------------------------------------------------------------------------- dense, snnjax


def _dense_grad_fn(rule_name: str, T: int, N: int):
    """``f(params, xs, ys) -> (loss, grads)`` of one rule on the dense net, for jax.jit."""
    model = dense_nets.snnjax_dense_model(N)
    rule, loss = dense_rule(rule_name, T), dense_nets.spike_count_loss()

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
        params = dense_nets.snnjax_dense_params(data, dt)
        xs, ys = jnp.asarray(data[2], dt), jnp.zeros((B,), jnp.int32)
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
    compile_only = spec.get("compile_only", False)
    data = {}

    def run(row):
        if row["N"] not in data and not compile_only:
            data.clear()
            gc.collect()
            data[row["N"]] = dense_nets.dense_data(sizes.dense_T, sizes.dense_B, row["N"])
        return _dense_snnjax_row(row, data.get(row["N"]), sizes, spec["deadline"],
                                 compile_only=compile_only)

    _rows(spec, emit, run)


# ---------------------------------------------------------------------------- dense, torch peers


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


def _dense_peer_row(row, lib, torch, device, sync, T, data, deadline) -> dict:
    forward, params = dense_nets.torch_dense(lib, torch, data, T, device=device,
                                             dtype=row["dtype"])

    def step():
        for p in params:
            p.grad = None
        loss = forward()
        loss.backward()
        return loss

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

    def run(row):
        if row["N"] not in data:
            data.clear()
            gc.collect()
            data[row["N"]] = dense_nets.dense_data(sizes.dense_T, sizes.dense_B, row["N"])
        return _dense_peer_row(row, lib, torch, device, sync, sizes.dense_T, data[row["N"]],
                               spec["deadline"])

    def after():
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def emit_versioned(r):
        emit({**r, "version": version})

    _rows(spec, emit_versioned, run, after)


# ---------------------------------------------------------------------------- conv, snnjax


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
    _rows(spec, emit, lambda row: _conv_snnjax_row(row, sizes, xs, ys, spec.get("compile_only"),
                                                   spec["deadline"]))


def worker_compile_target(spec, emit):
    """The conv steps compiled for ``spec["target"]`` without the device (snnjax's compile-only
    targets, ``snnjax.cost.step_memory(..., target=...)``): the figure a user gets before
    renting the card, to set beside the peak measured on it."""
    import optax

    import snnjax
    from snnjax import cost

    sizes = Sizes(**spec["sizes"])
    if "target" not in inspect.signature(cost.step_memory).parameters:
        why = "this snnjax has no compile-only targets (snnjax.cost.step_memory(target=...))"
        for row in spec["rows"]:
            emit({**row, "status": "skipped", "reason": why})
        return

    def run(row):
        trainer = snnjax.Trainer(conv_model(row["model"], sizes), conv_rule(row["rule"]),
                                 optax.sgd(0.1, momentum=0.9))
        xs, ys = cost.abstract_batch(sizes.conv_T, sizes.conv_B,
                                     (sizes.image, sizes.image, 3))
        mem = cost.step_memory(trainer, xs, ys, target=spec["target"])
        return {**row, "status": "ok", "target": spec["target"],
                "memory_bytes": mem["memory_bytes"], "temp_bytes": mem["temp_bytes"]}

    _rows(spec, emit, run)


# ---------------------------------------------------------------------------- conv, SpikingJelly


def _conv_peer_row(row, torch, device, sync, sizes, x, y, deadline) -> dict:
    from spikingjelly.activation_based import functional

    T, rule = sizes.conv_T, row["rule"]
    ce = torch.nn.CrossEntropyLoss()
    net = sj_conv_net(torch, row["model"], rule, sizes).to(device)
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

    def after():
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def emit_lib(r):
        emit({"lib": "spikingjelly", **r})

    _rows(spec, emit_lib, lambda row: _conv_peer_row(row, torch, device, sync, sizes, x, y,
                                                     spec["deadline"]), after)


# ---------------------------------------------------------------------------- planner


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
        if expired(spec["deadline"]):
            emit({**row, "status": "skipped", "reason": "time budget"})
            continue
        seen: dict[str, int] = {}
        try:
            model = conv_model(row["model"], sizes)
            trainer = snnjax.Trainer(model, conv_rule(row["rule"]), cost.default_optimizer())

            def memory(T, trainer=trainer, seen=seen):
                if expired(spec["deadline"]):
                    raise TimeoutError("time budget ran out during the search")
                xs, ys = cost.abstract_batch(T, sizes.plan_B, shape)
                seen[str(T)] = cost.step_memory(trainer, xs, ys)["memory_bytes"]
                jax.clear_caches()
                return seen[str(T)]

            t0 = time.perf_counter()
            found = plan.largest_T(memory, budget, sizes.plan_probes, sizes.plan_max_T)
            emit({**row, "status": "ok", "batch": sizes.plan_B, "budget_bytes": budget,
                  "budget_source": source, "cap": sizes.plan_max_T,
                  "search_s": time.perf_counter() - t0, **found})
        except Exception as e:  # noqa: BLE001
            emit({**row, "status": "error", "error": short_error(e), "budget_bytes": budget,
                  "tested": seen})


WORKERS = {
    "describe": worker_describe,
    "dense-snnjax": worker_dense_snnjax,
    "dense-peer": worker_dense_peer,
    "conv-snnjax": worker_conv_snnjax,
    "conv-peer": worker_conv_peer,
    "compile-target": worker_compile_target,
    "plan": worker_plan,
}
