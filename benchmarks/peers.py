"""snnjax side by side with snnTorch, SpikingJelly, spyx and slax, on this machine, in one run.

    bash benchmarks/setup_peers.sh                     # once: the peers' own venv
    .venv/bin/python benchmarks/peers.py --json benchmarks/results/peers.json

Two workloads, every library with the same T, batch, weights, inputs, labels and LIF dynamics
(λ = 0.5, V_th = 1, soft reset, sigmoid surrogate α = 4), time-major:

- ``dense``: the Open Neuromorphic framework benchmark's network, one Linear(N→N) + LIF
  layer, loss = sum of the output spikes; published at T = 500, batch 16, N = 4096-16384 on
  a GPU, here scaled to this CPU: T = 100, batch 16, N = 512, 1024, 2048.
- ``conv``: a VGG-11-style net at a quarter of the channels (16…128), CIFAR-sized input
  (32×32×3), T = 6, batch 16, per-step cross-entropy; BPTT in every library, and SLTT and
  OTTT where a library ships them (SpikingJelly's ``SLTTLIFNode`` / ``OTTTLIFNode`` with its
  online per-step backward), against snnjax's ``sltt()``, ``sltt_k(1)`` and ``ottt()``.

Each library runs in its own worker process (:mod:`peer_worker`; the peers under
``benchmarks/.peers``), all started before timing, then timed in interleaved rounds (one
step per library per round, rotating the order), medians reported. A step is loss plus
gradients; for the other libraries forward and backward are also timed separately (see
:mod:`peer_worker`; snnjax's rules take their gradients inside their own time loop). Memory
is each process's peak resident-memory growth during one step, the same probe for every
library, plus XLA's compiled memory for the JAX libraries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gemm_reference import gemm_peak

HERE = Path(__file__).resolve().parent
WORKER = HERE / "peer_worker.py"
PEERS_PYTHON = HERE / ".peers" / "bin" / "python"

# "snnjax" is BPTT as rules.bptt() runs the net by default (pieces chosen from the model: the
# whole window on the dense net, one step on the conv net); the other snnjax rows are the same
# library's other schedules (docs/schedules.md) and memory-efficient rules, all through the
# public rule API (rule.value_and_grad).
DENSE_LIBS = ("snnjax", "snnjax-chunk1", "snnjax-sltt", "snnjax-ottt-a", "snnjax-retain",
              "snntorch",
              "spikingjelly", "spikingjelly-compile", "spyx", "slax")
CONV_LIBS = ("snnjax", "snnjax-chunkT", "snntorch", "spikingjelly", "spyx",
             "snnjax-sltt", "snnjax-sltt-c1", "snnjax-sltt-k", "snnjax-ottt-a",
             "snnjax-ottt-a-c1", "spikingjelly-sltt", "spikingjelly-ottt")
# The snnjax row each peer row is compared with (same rule).
SAME_RULE = {"spikingjelly-sltt": "snnjax-sltt", "spikingjelly-ottt": "snnjax-ottt-a"}
RULE = {"snnjax": "BPTT: `bptt()`", "snnjax-chunk1": "BPTT: `bptt(chunk=1)`",
        "snnjax-chunkT": "BPTT: `bptt(chunk=T)`",
        "snnjax-sltt": "SLTT: `sltt(chunk=T)`", "snnjax-sltt-c1": "SLTT: `sltt()`",
        "snnjax-sltt-k": "SLTT-K: `sltt_k(1)`", "snnjax-ottt-a": "OTTT_A: `ottt(chunk=T)`",
        "snnjax-ottt-a-c1": "OTTT_A: `ottt()`",
        "spikingjelly-sltt": "SLTT", "spikingjelly-ottt": "OTTT_A",
        "spikingjelly-compile": "BPTT (torch.compile)",
        "snnjax-retain": "BPTT: `bptt()`, `retain_freed_memory()`"}
# The reference row: BPTT with the schedule the default did not choose.
OTHER_PATH = ("snnjax-chunk1", "snnjax-chunkT")


def _rule(lib: str, info: dict) -> str:
    return RULE.get(lib, "BPTT")


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
        with open("/proc/meminfo") as f:
            mem_kib = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        mem_kib = 0
    return {
        "cpu": cpu, "logical_cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
        "os": platform.platform(), "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


class Worker:
    """One library's worker process, ready to run steps on request."""

    def __init__(self, lib: str, workload: str, args: list[str], python: str, threads: int):
        self.lib = lib
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("XLA_FLAGS", None)  # one CPU device, as a user would have
        # OpenMP threads that spin while waiting made torch 100-200x slower here whenever
        # another process wanted the same cores; passive waiting keeps it sane.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        cmd = [python, str(WORKER), "--lib", lib, "--workload", workload,
               "--threads", str(threads), *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            raise RuntimeError(f"{self.lib} worker failed:\n{err[-3000:]}")
        return json.loads(line)

    def run(self, k: int = 1) -> dict:
        self.proc.stdin.write(f"run {k}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def probe_memory(lib, workload, args, python) -> int | None:
    """Peak resident-memory growth of one warm step, in a fresh process of its own.

    glibc keeps freed memory for reuse once its dynamic mmap threshold has grown, so in the
    timing processes a warm step shows little growth whatever it allocates; here the threshold
    is fixed (``MALLOC_MMAP_THRESHOLD_``), large blocks go back to the OS when freed, and the
    growth during the step is its peak. The same probe for every library.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1", MALLOC_MMAP_THRESHOLD_="65536",
               OMP_WAIT_POLICY="PASSIVE")
    env.pop("XLA_FLAGS", None)
    cmd = [python, str(WORKER), "--lib", lib, "--workload", workload, "--probe-memory", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_bytes"]
    except (IndexError, ValueError, KeyError):
        return None


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def bench_config(workload, libs, args, *, rounds, threads, log=print) -> list[dict]:
    """Start a worker per library, time them in interleaved rounds, return one row each."""
    workers = []
    for lib in libs:
        python = sys.executable if lib.startswith("snnjax") else str(PEERS_PYTHON)
        if not lib.startswith("snnjax") and not PEERS_PYTHON.exists():
            log(f"  {lib}: skipped (run benchmarks/setup_peers.sh first)")
            continue
        t0 = time.perf_counter()
        try:
            workers.append(Worker(lib, workload, args, python, threads))
        except RuntimeError as e:
            log(f"  {lib}: skipped, {str(e).splitlines()[-1]}")
            continue
        log(f"  {lib}: ready in {time.perf_counter() - t0:.1f} s")
    times = {w.lib: {"step": [], "fwd": [], "bwd": []} for w in workers}
    for r in range(rounds):
        order = workers[r % len(workers):] + workers[: r % len(workers)] if workers else []
        for w in order:
            time.sleep(0.2)  # let the previous process's thread pool go idle
            out = w.run(1)
            for k in ("step", "fwd", "bwd"):
                times[w.lib][k] += out[k]
    rows = []
    for w in workers:
        w.close()
    for w in workers:
        info = w.info
        python = sys.executable if w.lib.startswith("snnjax") else str(PEERS_PYTHON)
        # torch.compile's setup takes minutes: its memory is plain SpikingJelly's.
        peak = None if w.lib.endswith("compile") else probe_memory(w.lib, workload, args, python)
        rows.append({
            "workload": workload, "lib": w.lib, "rule": _rule(w.lib, info),
            "config": " ".join(args), "versions": info["versions"],
            "step_s": _median(times[w.lib]["step"]), "fwd_s": _median(times[w.lib]["fwd"]),
            "bwd_s": _median(times[w.lib]["bwd"]), "rounds": rounds,
            "loss": info["loss"], "peak_rss_bytes": peak,
            "compiled_memory_bytes": info["compiled_memory_bytes"], "setup_s": info["setup_s"],
            "threads": info.get("threads"), "path": info.get("path"),
        })
    by = {r["lib"]: r for r in rows}
    other = next((lib for lib in OTHER_PATH if lib in by), None)
    for r in rows:
        r["other_path"] = other
        for key, ref in (("vs_snnjax", "snnjax"), ("vs_other_path", other),
                         ("vs_same_rule", SAME_RULE.get(r["lib"], "snnjax"))):
            base = by.get(ref, {}).get("step_s")
            r[key] = r["step_s"] / base if base and r["step_s"] else None
    return rows


def run(*, workloads=("dense", "conv"), Ns=(512, 1024, 2048), T_dense=100, T_conv=6,
        batch=16, width=0.25, rounds=7, threads=None, libs=None, log=print) -> dict:
    """All configurations; returns ``{"machine", "rows"}``."""
    threads = threads or 0  # 0: each torch worker picks the faster of 1 and all cores
    rows, gemm = [], {}
    start = machine()
    if "dense" in workloads:
        for N in Ns:
            log(f"dense: Linear({N}→{N}) + LIF, T={T_dense}, batch {batch}")
            use = [lib for lib in DENSE_LIBS if libs is None or lib in libs]
            args = ["--T", str(T_dense), "--batch", str(batch), "--N", str(N)]
            new = bench_config("dense", use, args, rounds=rounds, threads=threads, log=log)
            flops = 4 * T_dense * batch * N * N
            ref = gemm_reference(T_dense * batch, N, log=log)
            for r in new:
                r["gemm_gflops"] = flops / r["step_s"] / 1e9 if r["step_s"] else None
                peak = ref.get("gflops")
                r["gemm_share"] = (r["gemm_gflops"] / peak
                                   if (r["gemm_gflops"] and peak) else None)
            gemm[" ".join(args)] = ref
            rows += new
    if "conv" in workloads:
        log(f"conv: VGG-11-style ×{width}, 32×32×3, T={T_conv}, batch {batch}")
        use = [lib for lib in CONV_LIBS if libs is None or lib in libs]
        rows += bench_config("conv", use, ["--T", str(T_conv), "--batch", str(batch),
                                           "--width", str(width)], rounds=rounds,
                             threads=threads, log=log)
    end = machine()
    start["load_average_end"] = end["load_average"]
    start["threads"] = threads
    return {"machine": start, "rows": rows, "gemm": gemm, "definitions": DEFINITIONS}


# What the figures mean, stored with them (a JSON without it predates benchmarks/nets).
DEFINITIONS = {
    "dense_loss": "L = Σ_t Σ_{b,n} s[t,b,n] / T (the spike count per step, nets.dense)",
    "gemm_reference": "numpy's float32 rate for the step's two products in a process without "
                      "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (OpenBLAS's own kernel choice: "
                      "the machine's peak)",
}


def gemm_reference(rows: int, n: int, log=print) -> dict:
    """The machine's GEMM peak for the step's products (:func:`gemm_reference.gemm_peak`),
    logged with the OpenBLAS kernel that ran; an error is recorded, not raised."""
    try:
        ref = gemm_peak(rows, n)
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
        log(f"  GEMM reference failed: {e}")
        return {"gflops": None, "error": str(e)}
    unset = ", ".join(f"{k}={v}" for k, v in ref["unset"].items()) or "nothing to unset"
    log(f"  GEMM reference: {ref['gflops']:.0f} GFLOP/s, OpenBLAS kernel {ref['kernel']} "
        f"({ref['threads']} threads; unset for it: {unset})")
    return ref


NOTES = (
    "Notes: every snnjax row is the library's public API, `rule.value_and_grad(model, ...)`"
    " jitted: `snnjax` is `rules.bptt()` as a user gets it, its pieces chosen from the model"
    " (docs/schedules.md): on the dense net one chunk of T steps (each synapse one op over all"
    " T·B samples, each neuron scanning its own recursion), on the conv net one step per piece"
    " (a 32×32 map already gives the synapse enough rows); `snnjax-chunk1` and `snnjax-chunkT`"
    " are the same gradient with the other schedule (`bptt(chunk=1)`, `bptt(chunk=T)`), for"
    " reference; the SLTT and"
    " OTTT_A rows show a chunk of T (fast) and of 1 (constant memory). Every library's"
    " network and data come from `benchmarks/nets` (the same as benchmarks/accelerator.py's)."
    " The dense network has no readout: for snnjax it is a user's flax module"
    " (`snnjax.layers.Dense` + `snnjax.neurons.LIF`) whose spikes are its outputs, and every"
    " library minimises the spike count per step, L = Σ_t Σ_{b,n} s[t,b,n] / T. Its synapse"
    " reads the raw input, so it is not traced (SPEC §3): OTTT's gradient on it is SLTT's."
    " Dynamics: "
    "SpikingJelly and slax compute exactly our LIF (same loss at init); snnTorch's `Leaky` "
    "(with `reset_delay=False`) subtracts the threshold a second time when the membrane is"
    " still above it after a reset, and spyx's `LIF` fires on the previous step's membrane"
    " (a one-step delay), so their spike counts differ; the work per step is the same. "
    "SpikingJelly's SLTT/OTTT run its single-step nodes with a backward pass at every step"
    " (its online loop). GEMM rate (dense): the step's 4·T·B·N² multiply-add flops (forward"
    " x·W and the weight gradient xᵀ·δ) over its time; its share of the machine's GEMM peak:"
    " numpy's float32 rate for the same two products in a process without"
    " `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE`, so that OpenBLAS runs the CPU's own kernel"
    " (`benchmarks/gemm_reference.py`; the kernel is named above each table)."
    " `snnjax-retain` is the `snnjax` step in a process that called"
    " `snnjax.allocator.retain_freed_memory()` first: XLA:CPU allocates the step's"
    " temporaries afresh at each call, above glibc's mmap threshold, so without it every page"
    " faults in again (docs/schedules.md); its peak RSS is measured without the call, which"
    " keeps every page resident once touched. Peak RSS: growth of the process's resident"
    " memory during one step (after warm-up)."
)


def _gemm_peak(g: dict | None) -> tuple[float | None, str]:
    """The reference rate of one configuration and how to describe it."""
    if not g:
        return None, ""
    if "numpy_gflops" in g:  # older results: numpy under the machine's OpenBLAS settings
        return g["numpy_gflops"], ("numpy's float32 GEMM rate under this machine's OpenBLAS "
                                   "settings (kernel not recorded; not the machine's peak)")
    if g.get("gflops") is None:
        return None, f"GEMM reference failed: {g.get('error')}"
    unset = ", ".join(f"`{k}={v}`" for k, v in g.get("unset", {}).items())
    how = f"OpenBLAS kernel {g.get('kernel')}" + (f", {unset} unset" if unset else "")
    return g["gflops"], f"the machine's float32 GEMM peak (numpy, {how})"


def _gemm_text(g: dict | None, rows: list[dict]) -> str:
    peak, what = _gemm_peak(g)
    if peak is None:
        return f"; {what}" if what else ""
    shares = [f"{r['lib']} {r['gemm_gflops'] / peak:.2f} of it" for r in rows
              if r["lib"] in ("snnjax", "snnjax-retain") and r.get("gemm_gflops")]
    return (f"; {what} for the step's products {peak:.0f} GFLOP/s"
            + (f" ({', '.join(shares)})" if shares else ""))


def _fmt(v, scale=1e3, digits=1):
    return "-" if v is None else f"{v * scale:.{digits}f}"


def markdown(result: dict) -> str:
    """The rows as Markdown tables, one per configuration."""
    lines = []
    m = result["machine"]
    lines.append(
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['memory_gib']} GiB, "
        f"{m['os']}, Python {m['python']}; torch threads: "
        f"{m['threads'] or 'per library, the faster of 1 and all cores'}; JAX: XLA's defaults; "
        "load average "
        f"{m['load_average'][0]:.1f} at start, {m['load_average_end'][0]:.1f} at end."
    )
    versions = {}
    for r in result["rows"]:
        versions.update(r["versions"])
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".")
    configs = list(dict.fromkeys((r["workload"], r["config"]) for r in result["rows"]))
    for workload, config in configs:
        rows = [r for r in result["rows"] if (r["workload"], r["config"]) == (workload, config)]
        about = "; `snnjax` is `rules.bptt()`"
        if workload == "dense" and result.get("gemm"):
            about += _gemm_text(result["gemm"].get(config), rows)
        if workload == "dense":
            about += "; loss: " + result.get("definitions", {}).get(
                "dense_loss", "the spike count Σ_t Σ_{b,n} s[t,b,n] (figures measured before "
                "benchmarks/nets: snnjax on the per-step MSE to 0, reported ×T·B·N)")
        lines += ["", f"**{workload}** `{config}` — medians of {rows[0]['rounds']} interleaved "
                  "rounds; ratio = step time ÷ snnjax's (> 1: snnjax is faster)" + about, ""]
        lines.append("| library | rule | step ms | forward ms | backward ms | ÷ snnjax "
                     "| ÷ snnjax, other path | ÷ snnjax, same rule | GEMM GFLOP/s "
                     "| share of GEMM peak | peak RSS MiB | XLA memory MiB | loss at init "
                     "| threads |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        g = result.get("gemm", {}).get(config) if workload == "dense" else None
        # Older results' numpy rate ran under the machine's OpenBLAS settings: not a peak.
        peak = None if (not g or "numpy_gflops" in g) else g.get("gflops")
        for r in rows:
            same = r["vs_same_rule"] if r["lib"] in SAME_RULE else None
            share = r["gemm_gflops"] / peak if (peak and r.get("gemm_gflops")) else None
            lines.append(
                f"| {r['lib']} | {r['rule']} | {_fmt(r['step_s'])} | {_fmt(r['fwd_s'])} | "
                f"{_fmt(r['bwd_s'])} | {_fmt(r['vs_snnjax'], 1, 2)} | "
                f"{_fmt(r.get('vs_other_path'), 1, 2)} | {_fmt(same, 1, 2)} | "
                f"{_fmt(r.get('gemm_gflops'), 1, 0)} | {_fmt(share, 1, 2)} | "
                f"{_fmt(r['peak_rss_bytes'], 2**-20)} | "
                f"{_fmt(r['compiled_memory_bytes'], 2**-20)} | {r['loss']:.4g} | "
                f"{r.get('threads') or '-'} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="dense,conv")
    ap.add_argument("--N", default="512,1024,2048", help="dense layer widths")
    ap.add_argument("--T-dense", type=int, default=100)
    ap.add_argument("--T-conv", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=float, default=0.25, help="conv channel multiplier")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the faster of 1 and all cores, per library)")
    ap.add_argument("--libs", default=None, help="comma-separated subset")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args(argv)
    result = run(workloads=tuple(a.workloads.split(",")),
                 Ns=tuple(int(n) for n in a.N.split(",")), T_dense=a.T_dense, T_conv=a.T_conv,
                 batch=a.batch, width=a.width, rounds=a.rounds, threads=a.threads,
                 libs=None if a.libs is None else set(a.libs.split(",")))
    print(markdown(result))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
