"""Regenerate BENCHMARKS.md: cost of every rule, the design-space grid, the memory planner,
the papers' cost goals, and snnjax side by side with other SNN libraries.

    .venv/bin/python benchmarks/run_all.py                  # everything (about an hour here)
    .venv/bin/python benchmarks/run_all.py --only goals     # one section; the others are
                                                            # re-rendered from their JSON
    .venv/bin/python benchmarks/run_all.py --quick          # tiny settings: checks the script

Each section writes ``benchmarks/results/<section>.json`` (and PNGs); the Markdown is always
rendered from those files, so a section that is not rerun keeps its last measured numbers.
The side-by-side needs ``bash benchmarks/setup_peers.sh`` first (it is skipped otherwise).
Timings are medians; run on an idle machine (the load average is recorded).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from snnjax import bench, cost, models, rules  # noqa: E402  (after sys.path)
from snnjax.cost.timing import random_batch  # noqa: E402
from snnjax.train import Trainer  # noqa: E402

CIFAR = (32, 32, 3)
SECTIONS = ("cost", "grid", "plan", "goals", "local", "schedules", "events", "targets_memory",
            "spikes_memory", "peers")


def _log(msg):
    print(msg, flush=True)


def _save(name, data):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2))


def _load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _env():
    return {
        "date": datetime.date.today().isoformat(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------- sections


def run_cost(q):
    """Rule × T on VGG-11 sWS (quarter width): memory, MACs, memory access, time."""
    width, batch, Ts = (0.125, 2, (2, 4)) if q else (0.25, 8, (4, 8, 16, 32, 64))
    model = models.vgg11_sws(10, width=width)
    names = ("bptt", "tbptt", "local", "tbptt-local", "sltt", "sltt-k", "ottt-a", "ottt-o")
    rule_list = [(n, rules.by_name(n, window=4, block_size=2, K=1)) for n in names]
    rows = bench.cost_rows(model, rule_list, Ts, batch_size=batch, input_shape=CIFAR,
                           steps=2 if q else 3, log=_log)
    bench.plot_cost(rows, str(RESULTS / "cost.png"),
                    title=f"VGG-11 sWS ×{width}, CIFAR 32×32×3, batch {batch}")
    _save("cost", {"env": _env(), "width": width, "batch": batch, "rows": rows})


def run_grid(q):
    """Guo et al.'s design space on VGG-11 sWS (quarter width): window × block size."""
    width, batch, T = (0.125, 2, 4) if q else (0.25, 8, 8)
    windows, blocks = ((1, 4), (1, 8)) if q else ((1, 2, 4, 8), (1, 2, 4, 8))
    model = models.vgg11_sws(10, width=width)
    rows = bench.grid_rows(model, T=T, windows=windows, block_sizes=blocks, batch_size=batch,
                           input_shape=CIFAR, steps=0 if q else 2, log=_log)
    bench.plot_grid(rows, str(RESULTS / "grid.png"),
                    title=f"VGG-11 sWS ×{width}, T={T}, batch {batch}: TBPTT(k) in Local blocks")
    _save("grid", {"env": _env(), "width": width, "batch": batch, "T": T, "rows": rows})


def run_plan(q):
    """Largest T and batch under a 16 GB budget, VGG-11 sWS at full width (compile only)."""
    width, budget = (0.125, "64MB") if q else (1.0, "16GB")
    max_T, max_batch = (64, 64) if q else (512, 2048)
    model = models.vgg11_sws(10, width=width)
    names = ("bptt", "tbptt", "sltt", "ottt-a") if not q else ("bptt", "sltt")
    rule_list = [(n, rules.by_name(n, window=4, K=1)) for n in names]
    rows = bench.plan_rows(model, rule_list, budget=bench.parse_bytes(budget), batch_size=32,
                           input_shape=CIFAR, T=6, max_T=max_T, max_batch=max_batch, log=_log)
    _save("plan", {"env": _env(), "width": width, "budget": budget, "rows": rows})


def _memory(model, rule, T, batch):
    trainer = Trainer(model, rule, cost.default_optimizer())
    xs, ys = cost.abstract_batch(T, batch, CIFAR)
    return cost.step_memory(trainer, xs, ys)


def interleaved_times(model, rule_list, *, T, batch, rounds):
    """Median step time of each rule, timed in interleaved rounds (one step each per round)."""
    xs, ys = random_batch(0, T, batch, CIFAR, model.num_classes, jnp.float32)
    runs = []
    for name, rule in rule_list:
        trainer = Trainer(model, rule, cost.default_optimizer())
        ts = trainer.init(jax.random.key(0), xs)
        trainer.check(xs, ys)
        step = cost.lower_step(trainer, xs, ys).compile()
        ts, m = step(ts, xs, ys)  # warm up
        jax.block_until_ready(m)
        runs.append([name, step, ts, []])
    for r in range(rounds):
        for run in runs[r % len(runs):] + runs[: r % len(runs)]:
            name, step, ts, times = run
            t0 = time.perf_counter()
            ts, m = step(ts, xs, ys)
            jax.block_until_ready((ts, m))
            times.append(time.perf_counter() - t0)
            run[2] = ts
    return {name: statistics.median(times) for name, _, _, times in runs}


def run_goals(q):
    """The papers' cost claims, measured: memory flat in T, memory vs BPTT, time vs BPTT."""
    width, batches, rounds = (0.125, (2,), 2) if q else (1.0, (16, 128), 5)
    model = models.vgg11_sws(10, width=width)
    out = {"env": _env(), "width": width}
    flat = []
    for name in ("bptt", "sltt", "sltt-k", "ottt-a", "ottt-o"):
        rule = rules.by_name(name, K=1)
        m4, m64 = _memory(model, rule, 4, 16), _memory(model, rule, 64, 16)
        for m, T in ((m4, 4), (m64, 64)):
            m["input_bytes"] = T * 16 * 32 * 32 * 3 * 4  # the batch xs [T, 16, 32, 32, 3]
        flat.append({"rule": name, "T4": m4, "T64": m64})
        _log(f"flat {name}: temp {m4['temp_bytes']} -> {m64['temp_bytes']}, "
             f"memory {m4['memory_bytes']} -> {m64['memory_bytes']}")
    out["flat"] = flat
    vs = []
    for batch in batches:
        for name in ("bptt", "tbptt", "sltt", "sltt-k", "ottt-a", "ottt-o"):
            m = _memory(model, rules.by_name(name, window=2, K=1), 6, batch)
            vs.append({"rule": name, "batch": batch, **m})
            _log(f"T=6 batch {batch} {name}: memory {m['memory_bytes']}")
    out["vs_bptt"] = vs
    timed = [(n, rules.by_name(n, K=1)) for n in ("bptt", "sltt", "sltt-k", "ottt-a")]
    out["time_batch"] = 2 if q else 16
    out["time"] = interleaved_times(model, timed, T=6, batch=out["time_batch"], rounds=rounds)
    _log(f"T=6 step times: {out['time']}")
    _save("goals", out)


def _memory_shape(model, rule, T, batch, shape):
    trainer = Trainer(model, rule, cost.default_optimizer())
    xs, ys = cost.abstract_batch(T, batch, shape)
    return cost.step_memory(trainer, xs, ys)


LOCAL_NETS = {  # name: (factory, input shape, T): Guo et al.'s goal settings
    "VGG-11 sWS ×0.25, CIFAR 32×32×3": (lambda q: models.vgg11_sws(10, width=0.125 if q else 0.25),
                                        CIFAR, 8),
    "AlexNet (Guo preset), CIFAR10-DVS 48×48×2": (
        lambda q: models.alexnet(10, width=0.125 if q else 1.0), (48, 48, 2), 10),
}


def run_local(q):
    """Local learning's memory (compile only): BPTT, TBPTT(1), Local(TBPTT(1), blocks of 1)."""
    batch = 4 if q else 128
    rows, neuron_bytes, largest_bytes, param_bytes = [], {}, {}, {}
    for net, (make, shape, T) in LOCAL_NETS.items():
        model = make(q)
        for rule in (rules.bptt(), rules.bptt(chunk=T), rules.tbptt(1),
                     rules.local(rules.tbptt(1), block_size=1),
                     rules.local(rules.tbptt(1), block_size=2)):
            m = _memory_shape(model, rule, T, batch, shape)
            rows.append({"net": net, "T": T, "batch": batch, "rule": rule.name,
                         "block_size": getattr(rule, "block_size", None), **m})
            _log(f"local {net} {rule.name}: {m['memory_bytes']}")
        variables = jax.eval_shape(lambda: model.init(  # noqa: B023
            jax.random.key(0), jnp.zeros((1, batch, *shape)), train=False))
        states = variables["neuron"]
        neuron_bytes[net] = cost.tree_bytes(states)
        largest_bytes[net] = max(cost.tree_bytes(leaf) for leaf in jax.tree.leaves(states))
        param_bytes[net] = cost.tree_bytes(variables["params"])
    _save("local", {"env": _env(), "rows": rows, "neuron_bytes": neuron_bytes,
                    "largest_neuron_bytes": largest_bytes, "param_bytes": param_bytes})


def run_schedules(q):
    """Time chunks (docs/schedules.md): memory (compile only) of each rule's chunk sizes."""
    width, batch, T = (0.125, 4, 8) if q else (0.25, 16, 32)
    model = models.vgg11_sws(10, width=width)
    rows = []
    for make, chunks in ((rules.bptt, (None, T, 8, 1)), (rules.sltt, (1, 8, T)),
                         (rules.ottt, (1, 8, T)), (lambda chunk: rules.sltt_k(1, chunk=chunk),
                                                  (1, 8, T))):
        for chunk in chunks:
            rule = make(chunk=chunk)
            m = _memory_shape(model, rule, T, batch, CIFAR)
            rows.append({"rule": rule.name, "chunk": chunk, **m})
            _log(f"schedules {rule.name}: {m['memory_bytes']}")
    _save("schedules", {"env": _env(), "width": width, "batch": batch, "T": T, "rows": rows})


def run_events(q):
    """Events -> cached frames, ours beside tonic's ToFrame (benchmarks/event_conversion.py)."""
    import subprocess

    args = ["--recordings", "20", "--events", "5000", "--repeat", "1"] if q else []
    out = subprocess.run([sys.executable, str(HERE / "event_conversion.py"), *args],
                         check=True, capture_output=True, text=True).stdout
    _save("events", {"env": _env(), "markdown": out.strip()})


def run_peers(q):
    import peers

    if not peers.PEERS_PYTHON.exists():
        _log("peers: benchmarks/.peers missing (bash benchmarks/setup_peers.sh); skipped")
        return
    if q:
        result = peers.run(Ns=(64,), T_dense=10, T_conv=2, batch=4, width=0.125, rounds=2,
                           libs={"snnjax", "snnjax-chunk1", "snnjax-chunkT", "snntorch",
                                 "spikingjelly", "spyx", "snnjax-sltt", "spikingjelly-sltt"},
                           log=_log)
    else:
        result = peers.run(rounds=11, log=_log)
    _save("peers", result)


# ---------------------------------------------------------------------------- rendering


def _mib(n):
    return "-" if n is None else f"{n / 2**20:.1f}"


def _pct(a, b):
    return f"{100 * (a - b) / b:+.1f} %"


def render_cost(d):
    lines = [
        f"VGG-11 sWS at {d['width']}× width, CIFAR-sized input, batch {d['batch']}; "
        "TBPTT window 4, Local blocks of 2 units, SLTT-K with K = 1. Memory: XLA's analysis "
        "of the compiled step (temporaries; total = temporaries + arguments + outputs). "
        "MACs: forward + backward, analytic; ACs: spike-driven forward accumulates at "
        "initial firing rates. Time: median of 3 jitted steps "
        f"(load average {d['env']['load_average'][0]:.1f}).", "",
        "| rule | T | temp MiB | total MiB | GMACs | fwd GACs | trace Mops | access MB | step ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in d["rows"]:
        t = r["step_time_s"]
        acs = r["forward_acs"]
        lines.append(
            f"| {r['rule']} | {r['T']} | {_mib(r['temp_bytes'])} | {_mib(r['memory_bytes'])} | "
            f"{r['macs'] / 1e9:.2f} | {'-' if acs is None else f'{acs / 1e9:.2f}'} | "
            f"{r['trace_ops'] / 1e6:.1f} | {r['memory_access_bytes'] / 1e6:.0f} | "
            f"{'-' if t is None else f'{1e3 * t:.0f}'} |"
        )
    lines += ["", "![memory and time against T](benchmarks/results/cost.png)"]
    return "\n".join(lines)


def render_grid(d):
    lines = [
        f"VGG-11 sWS at {d['width']}× width, T = {d['T']}, batch {d['batch']}: TBPTT(k) inside "
        "Local blocks of m units (m = 8: one block, plain TBPTT; k = T: BPTT inside blocks).",
        "", "| window k | block size m | rule | temp MiB | GMACs | access MB | step ms |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in d["rows"]:
        t = r["step_time_s"]
        lines.append(
            f"| {r['window']} | {r['block_size']} | {r['rule']} | {_mib(r['temp_bytes'])} | "
            f"{r['macs'] / 1e9:.2f} | {r['memory_access_bytes'] / 1e6:.0f} | "
            f"{'-' if t is None else f'{1e3 * t:.0f}'} |"
        )
    ref = next((r for r in d["rows"] if r["window"] == d["T"] and r["block_size"] >= 8), None)
    best = min(d["rows"], key=lambda r: r["memory_bytes"])
    if ref:
        lines += ["", f"Smallest memory: window {best['window']}, block size "
                  f"{best['block_size']}: {_pct(best['memory_bytes'], ref['memory_bytes'])} "
                  f"memory, {_pct(best['memory_access_bytes'], ref['memory_access_bytes'])} "
                  f"memory access, {_pct(best['macs'], ref['macs'])} MACs against BPTT "
                  "(window T, one block)."]
    lines += ["", "![design-space heat maps](benchmarks/results/grid.png)"]
    return "\n".join(lines)


def render_plan(d):
    lines = [
        f"VGG-11 sWS at {d['width']}× width, CIFAR-sized input, budget {d['budget']} of "
        f"compiled step memory on {d['env']['backend']} (XLA's analysis: temporaries + "
        "arguments + outputs; compile only). `+`: the search cap fits too.", "",
        "| rule | largest T at batch 32 | memory there MiB | largest batch at T = 6 "
        "| memory there MiB |", "|---|---:|---:|---:|---:|",
    ]
    for r in d["rows"]:
        lines.append(
            f"| {r['rule']} | {r['max_T']}{'+' if r['max_T_capped'] else ''} | "
            f"{_mib(r['memory_at_max_T'])} | {r.get('max_batch')}"
            f"{'+' if r.get('max_batch_capped') else ''} | "
            f"{_mib(r.get('memory_at_max_batch'))} |"
        )
    return "\n".join(lines)


def render_goals(d):
    lines = [f"VGG-11 sWS at {d['width']}× width (OTTT's network), CIFAR-sized input.", "",
             "**Memory flat in T** (batch 16): compiled memory at T = 64 against T = 4 "
             "(goal: within 5 % for SLTT, SLTT-K, OTTT). The total (temporaries + arguments "
             "+ outputs) includes the input batch `xs [T, B, 32, 32, 3]`, an argument that "
             "grows with T whatever the rule; the last columns leave it out.", "",
             "| rule | temp T=4 MiB | temp T=64 MiB | change | total T=4 MiB | total T=64 MiB "
             "| change | within 5 % | total less input, change | within 5 % |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in d["flat"]:
        a, b = r["T4"], r["T64"]
        a_x, b_x = (m["memory_bytes"] - m.get("input_bytes", 0) for m in (a, b))

        def ok(new, old, rule=r["rule"]):
            return "" if rule == "bptt" else ("yes" if new <= 1.05 * old else "no")

        lines.append(
            f"| {r['rule']} | {_mib(a['temp_bytes'])} | {_mib(b['temp_bytes'])} | "
            f"{_pct(b['temp_bytes'], a['temp_bytes'])} | {_mib(a['memory_bytes'])} | "
            f"{_mib(b['memory_bytes'])} | {_pct(b['memory_bytes'], a['memory_bytes'])} | "
            f"{ok(b['memory_bytes'], a['memory_bytes'])} | {_pct(b_x, a_x)} | {ok(b_x, a_x)} |")
    lines += ["", "**Memory against BPTT at T = 6** (goal: at least 70 % below for SLTT, "
              "SLTT-K, OTTT).", "",
              "| batch | rule | temp MiB | vs BPTT | total MiB | vs BPTT | goal met (total) |",
              "|---:|---|---:|---:|---:|---:|---|"]
    for batch in sorted({r["batch"] for r in d["vs_bptt"]}):
        sel = [r for r in d["vs_bptt"] if r["batch"] == batch]
        base = next(r for r in sel if r["rule"] == "bptt")
        for r in sel:
            ok = "" if r["rule"] in ("bptt", "tbptt") else (
                "yes" if r["memory_bytes"] <= 0.3 * base["memory_bytes"] else "no")
            lines.append(
                f"| {batch} | {r['rule']} | {_mib(r['temp_bytes'])} | "
                f"{_pct(r['temp_bytes'], base['temp_bytes'])} | {_mib(r['memory_bytes'])} | "
                f"{_pct(r['memory_bytes'], base['memory_bytes'])} | {ok} |")
    lines += ["", "TBPTT here is window 2. At batch 16 the buffers the size of the parameters "
              "dominate every rule: parameters and momentum (arguments), their updated copies "
              "(outputs: donated, so aliased, but counted in the total), the gradient sum and "
              "the standardised kernels, against about 25 MiB of one step's activations; at "
              "the papers' batch size (128) activations dominate. SLTT-K sits above SLTT at "
              "batch 128: it keeps the selected step's neuron potentials and inputs for its "
              "batched replay (docs/schedules.md). BPTT is `bptt()` as a user gets it: "
              "its pieces chosen from the model, one step on this conv net (docs/schedules.md; "
              "Time chunks, below)."]
    t = d["time"]
    lines += ["", f"**Step time at T = 6** (batch {d['time_batch']}, medians of interleaved "
              f"runs; load average {d['env']['load_average'][0]:.1f}; goals: SLTT-K(K=1) ≤ 0.5× "
              "BPTT, SLTT ≤ 1× BPTT).", "", "| rule | step ms | ÷ BPTT | goal met |",
              "|---|---:|---:|---|"]
    goals = {"sltt-k": 0.5, "sltt": 1.0}
    for name, secs in t.items():
        ratio = secs / t["bptt"]
        ok = ("yes" if ratio <= goals[name] else "no") if name in goals else ""
        lines.append(f"| {name} | {1e3 * secs:.0f} | {ratio:.2f} | {ok} |")
    return "\n".join(lines)


def render_local(d):
    lines = ["Compiled step memory (XLA's analysis, total = temporaries + arguments + outputs; "
             "compile only), SGD with momentum. Guo et al.'s goal: Local (block size 1) well "
             "below the same window without Local, and far below BPTT (`bptt()`, its pieces "
             "chosen from the model: one step on these conv nets; `bptt[chunk=T]` runs the "
             "window as one piece). Local runs its blocks "
             "one after the other (docs/schedules.md): its temporaries are its largest block's "
             "plus what every windowed rule carries from one window to the next, the neuron "
             "state of every layer (given under each table).", ""]
    for net in dict.fromkeys(r["net"] for r in d["rows"]):
        rows = [r for r in d["rows"] if r["net"] == net]
        bptt = next(r for r in rows if r["rule"] == "bptt")["memory_bytes"]
        tb = next(r for r in rows if r["rule"] == "tbptt(k=1)")["memory_bytes"]
        lines += [f"**{net}**, T = {rows[0]['T']}, batch {rows[0]['batch']}", "",
                  "| rule | block size | temp MiB | total MiB | vs BPTT | vs TBPTT(1) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['rule']} | {r['block_size'] or '-'} | {_mib(r['temp_bytes'])} "
                         f"| {_mib(r['memory_bytes'])} | {_pct(r['memory_bytes'], bptt)} | "
                         f"{r['memory_bytes'] / tb:.2f}× |")
        if net in d.get("neuron_bytes", {}):
            lines += ["", f"Neuron state of every layer, carried between windows: "
                          f"{_mib(d['neuron_bytes'][net])} MiB."]
        if net in d.get("largest_neuron_bytes", {}):
            lines[-1] += (f" The largest layer's: {_mib(d['largest_neuron_bytes'][net])} MiB; "
                          "its block's backward holds a few arrays of that size (the state, "
                          "which is also the surrogate's residual, the gradient in and out, "
                          "and with BatchNorm the synapse's output).")
        if net in d.get("param_bytes", {}):
            local = next(r for r in rows if r["block_size"] == 1)
            floor = (local["memory_bytes"] - local["temp_bytes"] + d["neuron_bytes"][net]
                     + d["param_bytes"][net] + d["largest_neuron_bytes"][net])
            lines[-1] += (
                f" A floor for any order of this window's work: the step's arguments and "
                f"outputs, every layer's state, the gradient sums (the parameters' size) and one "
                f"more array of the largest layer's size (the gradient at its synapse's output, "
                f"an operand of the kernel gradient, which XLA materialises) make "
                f"{_mib(floor)} MiB, {floor / tb:.2f}× TBPTT(1) and {_pct(floor, bptt)} "
                f"against BPTT.")
        lines.append("")
    return "\n".join(lines).rstrip()


def render_schedules(d):
    lines = [f"VGG-11 sWS at {d['width']}× width, T = {d['T']}, batch {d['batch']}: the same "
             "gradient (tested in float64) at every chunk length; compiled memory (compile "
             "only). BPTT's default (`chunk=None`, shown as auto) chooses its pieces from the "
             "model: one step on this conv net (docs/schedules.md).", "",
             "| rule | chunk | temp MiB | total MiB |", "|---|---:|---:|---:|"]
    for r in d["rows"]:
        lines.append(f"| {r['rule']} | {r['chunk'] if r['chunk'] is not None else 'auto'} | "
                     f"{_mib(r['temp_bytes'])} | {_mib(r['memory_bytes'])} |")
    return "\n".join(lines)


def render_events(d):
    return d["markdown"]


def run_targets_memory(quick):
    """Compile-only memory on an H100 and a TPU v5e (needs the gpu-aot / tpu-aot extras);
    writes results/targets_memory.json itself."""
    import targets_memory

    targets_memory.main(["h100"] if quick else ["h100", "tpu-v5e"])


def render_targets_memory(rows):
    import targets_memory

    return "\n".join([
        "The training step (SGD with momentum, train state donated) compiled for a device this "
        "machine does not have (`snnjax.targets`; `cost.step_memory(..., target=...)`, "
        "`snnjax bench plan --target ...`): the accelerator compiler's own buffer assignment, "
        "total = temporaries + arguments + outputs − donated buffers, MiB. How it differs from "
        "a peak measured on the device (allocator pools, library workspaces, autotuning) and "
        "how to check it there: docs/cost.md, \"Memory on GPUs and TPUs without one\". "
        "Regenerate with `JAX_PLATFORMS=cpu .venv/bin/python benchmarks/targets_memory.py h100 "
        "tpu-v5e`.",
        "",
        targets_memory.markdown(rows),
        "",
        "SLTT-K(1) keeps its selected step's record, one set of neuron states, through the "
        "pass for the replay after it: on the H100 that costs 1.5× SLTT's memory (open; "
        "docs/schedules.md). A target with no figure was not compiled in this run (a "
        "full-size VGG-11 compile for the TPU takes minutes here); the compile-only tests "
        "(`tests/test_targets.py`, `-m accelerator_aot`) check the rules' memory relations on "
        "both targets with a small net.",
        "",
        "_Compiled 2026-12-07, jax 0.10.2 with its compile-only plugins; no device._",
    ])


def run_spikes_memory(quick):
    """Each rule with spikes as bits (``bits=True``) against itself without, compile-only on
    XLA:CPU and an H100 (needs the gpu-aot extra); writes results/spikes_memory.json
    itself."""
    import spikes_memory

    spikes_memory.main(["cpu"] if quick else ["cpu", "h100"])


def render_spikes_memory(rows):
    import spikes_memory

    return "\n".join([spikes_memory.INTRO, "", spikes_memory.markdown(rows), "",
                      spikes_memory.NOTES, "", spikes_memory.footer(rows)])


def render_peers(d):
    import peers

    return peers.markdown(d) + "\n\n" + peers.NOTES


RENDER = {"cost": ("Cost of every rule against T", render_cost),
          "grid": ("Design space: truncation window × block size (Guo et al.)", render_grid),
          "plan": ("Memory planner (`snnjax bench plan`)", render_plan),
          "goals": ("The papers' cost goals", render_goals),
          "local": ("Local learning's memory (Guo et al.)", render_local),
          "schedules": ("Time chunks: memory against chunk length", render_schedules),
          "events": ("Event conversion: events to cached frames", render_events),
          "targets_memory": ("Memory on GPUs and TPUs, compiled without them",
                             render_targets_memory),
          "spikes_memory": ("Spikes kept as bits (issue 23)", render_spikes_memory),
          "peers": ("Side by side with other SNN libraries", render_peers)}


def render() -> str:
    parts = [
        "# snnjax benchmarks",
        "",
        "Generated by `benchmarks/run_all.py` (do not edit by hand). Regenerate with "
        "`.venv/bin/python benchmarks/run_all.py` (the side-by-side needs "
        "`bash benchmarks/setup_peers.sh` once). Counting rules: `snnjax/cost/counts.py`.",
    ]
    for name in SECTIONS:
        d = _load(name)
        title, fn = RENDER[name]
        parts += ["", f"## {title}", ""]
        if d is None:
            parts.append("_Not measured yet._")
            continue
        env = (d.get("env") or d.get("machine") or {}) if isinstance(d, dict) else {}
        when = env.get("date")
        parts.append(fn(d))
        if when:
            parts += ["", f"_Measured {when} on {env.get('cores')} CPU cores, jax "
                      f"{env.get('jax')}, backend {env.get('backend')}._"]
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"subset of {SECTIONS}")
    ap.add_argument("--quick", action="store_true", help="tiny settings (checks the script)")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    a = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in a.only.split(","):
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; choose from {SECTIONS}")
        t0 = time.perf_counter()
        _log(f"== {name}")
        globals()[f"run_{name}"](a.quick)
        _log(f"== {name}: {time.perf_counter() - t0:.0f} s")
    Path(a.out).write_text(render())
    _log(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
