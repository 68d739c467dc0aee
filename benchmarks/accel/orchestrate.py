"""The run: each section's rows in workers, each section a share of the time budget."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as _dt
import importlib.util
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from accel.cards import COMPILE_TARGETS, PEAKS, PEAKS_SOURCE, annotate_dense
from accel.config import (
    CONV_PRIORITY, CONV_RULES, DENSE_PEERS, DENSE_RULES, FULL, PEER_LABEL, PLAN_RULES,
    SJ_CONV_RULES, TINY, TINY_XLA_FLAGS,
)
from accel.protocol import run_worker, skipped

# Shares of the time left when each section starts (what one leaves goes to the next).
WEIGHTS = {"precompile": 2.5, "dense-snnjax": 1.5, "conv-snnjax": 3.0, "dense-peers": 2.0,
           "conv-peers": 1.2}
DESCRIBE_TIMEOUT_S = 120.0  # the device's description is needed by every section


class Clock:
    """The run's time budget (None: no budget), shared out between sections by weight."""

    def __init__(self, budget_s: float | None):
        self.start = time.time()
        self.end = math.inf if budget_s is None else self.start + budget_s

    def elapsed(self):
        return time.time() - self.start

    def left(self):
        return max(0.0, self.end - time.time())

    def share(self, weight: float, remaining_weight: float) -> float:
        """Seconds for a section of ``weight`` when ``remaining_weight`` is still to run
        (``math.inf`` without a budget)."""
        return self.left() * weight / max(weight, remaining_weight)


def log(clock: Clock, text: str):
    print(f"[{clock.elapsed():6.1f} s] {text}", file=sys.stderr, flush=True)


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


def _ratio(a, b):
    return a / b if (a and b) else None


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
    pending = set(WEIGHTS)

    def share(name):
        remaining = sum(w for k, w in WEIGHTS.items() if k in pending)
        pending.discard(name)
        return clock.share(WEIGHTS[name], remaining)

    # 1. The device.
    log(clock, "describing the device")
    desc = run_worker("describe", base, [{}], timeout=DESCRIBE_TIMEOUT_S, env_extra=jax_env)[0]
    result["device"] = desc
    backend = desc.get("backend", "unknown")
    card = desc.get("card")
    result["card"] = {"key": card, "peaks": PEAKS.get(card), "source": PEAKS_SOURCE,
                      "compile_target": COMPILE_TARGETS.get(card)}
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

    # 2. Compile the steps in parallel into the cache; beside them the planner and the conv
    # steps compiled for the card's compile-only target (on the CPU, without the device).
    precompiled, dense_precompiled, plan_results, target_results = [], [], [], []
    target = COMPILE_TARGETS.get(card)
    if sections & {"conv", "plan", "dense"} and (args.jobs > 0 or "plan" in sections):
        allowance = share("precompile")
        log(clock, f"compiling the steps ({args.jobs} processes) beside the planner "
                   f"({allowance:.0f} s)")
        plan_jobs = len(plan_rows) if "plan" in sections else 0
        target_jobs = 1 if ("conv" in sections and target) else 0
        workers = max(1, args.jobs + plan_jobs + target_jobs)
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
            if target_jobs:  # deviceless: XLA compiles for the card on the host's CPU
                futures.append(("target", pool.submit(
                    run_worker, "compile-target", {**base, "cache_dir": None,
                                                   "target": target}, conv_rows,
                    timeout=allowance, env_extra={**jax_env, "JAX_PLATFORMS": "cpu"})))
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
                            timeout=end - time.time(), env_extra=jax_env)]
                return out

            for i in range(args.jobs):
                futures.append(("compile", pool.submit(compile_group, i)))
            for what, f in futures:
                if what == "plan":
                    plan_results.extend(f.result())
                elif what == "target":
                    target_results.extend(f.result())
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
        targets = {(r["model"], r["rule"]): r for r in target_results}
        batches = [[r] for r in conv_rows] if fresh_per_row else [conv_rows]
        for batch in batches:
            for r in run_worker("conv-snnjax", base, batch, timeout=end - time.time(),
                                env_extra=jax_env):
                pre = compile_info.get((r["model"], r["rule"]), {})
                r["precompile_s"] = pre.get("compile_s")
                r["precompiled"] = pre.get("status") == "ok" and bool(r.get("step_from_cache"))
                r["fresh_process"] = fresh_per_row
                # Beside the measured peak: XLA's figure for the step that ran, and the
                # compile-only target's (the same step compiled without the device).
                r["peak_over_xla"] = _ratio(r.get("peak_bytes"), r.get("xla_memory_bytes"))
                t = targets.get((r["model"], r["rule"]), {})
                r["compile_only_target"] = target
                r["compile_only_bytes"] = t.get("memory_bytes")
                r["compile_only_note"] = (
                    "no compile-only target for this device" if not target
                    else None if t.get("status") == "ok"
                    else t.get("reason") or t.get("error") or "not run")
                r["peak_over_compile_only"] = _ratio(r.get("peak_bytes"),
                                                     r["compile_only_bytes"])
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
                dense += [{**r, "label": PEER_LABEL[lib]} for r in skipped(peer_rows[lib], why)]
                log(clock, f"dense {lib}: skipped ({why})")
                continue
            runnable.append(lib)
            for skip_lib, dt, why in _PEER_DTYPE_SKIPS:
                if skip_lib == lib:
                    dense += [{**r, "label": PEER_LABEL[lib]} for r in skipped(
                        [r for r in peer_rows[lib] if r["dtype"] == dt], why)]
                    peer_rows[lib] = [r for r in peer_rows[lib] if r["dtype"] != dt]
        for i, lib in enumerate(runnable):
            slot = (end - time.time()) / (len(runnable) - i)
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
            if why:
                res = skipped([row], why)
            else:
                res = run_worker("conv-peer", base, [row], timeout=end - time.time())
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


def _mib(b):
    if b is None:
        return "–"
    m = b / 2**20
    return f"{m:,.0f}" if m >= 10 else f"{m:.2f}"


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
