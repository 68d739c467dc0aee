"""Recomputation's trade (docs/schedules.md): compiled memory of ``bptt()`` against
``bptt(remat=True)``, with the MACs each recomputes, compile-only on a target.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/remat_memory.py h100 --T 6 32
    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/remat_memory.py h100 --T 32 --segments 4 8

VGG-11 sWS full width, CIFAR 32×32×3, batch 128, SGD with momentum, train state donated;
``total_bytes = memory_bytes - alias_bytes``. Nothing runs, so no time is measured: the cost
of recomputing is counted instead, as MACs (``snnjax.cost.count_macs``): remat runs every
step's forward once more, so it adds the forward MACs to the step's forward + backward.
``--segments`` overrides the segment length (:func:`snnjax.rules.engine.remat_segment`) to
explore the split; the default is ``⌈√T⌉``, and ``T`` itself is no segment: only the
neurons' potentials are kept, the element-wise rest redone, no synapse runs twice.
Appends one JSON row per cell to ``benchmarks/results/remat_memory.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax

from snnjax import cost, models, rules
from snnjax.rules import engine
from snnjax.train import Trainer
from result_rows import record

OUT = Path(__file__).resolve().parent / "results" / "remat_memory.json"


def macs(model, rule, T, batch):
    """Forward, backward and recomputed MACs of one step (analytic, per layer and step)."""
    x_t = jax.ShapeDtypeStruct((batch, 32, 32, 3), "float32")
    counted = cost.count_macs(cost.trace_layers(model, rule, x_t), cost.schedule(rule, T))
    # Segments shorter than the window run their synapses again; one segment of the whole
    # window redoes only element-wise ops (no MACs).
    segmented = rule.plan(T).remat and engine.remat_segment(T) < T
    recomputed = counted["forward_macs"] if segmented else 0
    return counted["forward_macs"], counted["backward_macs"], recomputed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("target", help="e.g. h100, tpu-v5e, cpu")
    p.add_argument("--T", type=int, nargs="+", default=[6, 32])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--segments", type=int, nargs="*", default=(),
                   help="segment lengths to try instead of ⌈√T⌉ (exploration)")
    p.add_argument("--no-baseline", action="store_true", help="skip bptt() without remat")
    args = p.parse_args(argv)
    rows = json.loads(OUT.read_text()) if OUT.exists() else []
    model = models.vgg11_sws(10)
    default_segment = engine.remat_segment
    for T in args.T:
        cells = [] if args.no_baseline else [(rules.bptt(), None)]
        cells += [(rules.bptt(remat=True), s) for s in (args.segments or [None])]
        for rule, segment in cells:
            engine.remat_segment = default_segment if segment is None else (lambda w, s=segment: s)
            trainer = Trainer(model, rule, cost.default_optimizer())
            xs, ys = cost.abstract_batch(T, args.batch_size, (32, 32, 3))
            m = cost.step_memory(trainer, xs, ys, target=None if args.target == "cpu"
                                 else args.target)
            fwd, bwd, rec = macs(model, rule, T, args.batch_size)
            row = {"rule": rule.name, "T": T, "batch_size": args.batch_size,
                   "segment": (engine.remat_segment(T) if rule.plan(T).remat else None),
                   **m, "total_bytes": m["memory_bytes"] - m["alias_bytes"],
                   "forward_macs": fwd, "backward_macs": bwd, "recomputed_macs": rec}
            rows = record(OUT, rows, row, ("target", "rule", "T", "batch_size", "segment"))
            print(f"{row['target']:8s} T={T:3d} {rule.name:14s} segment {row['segment']} "
                  f"{row['total_bytes'] / 2**20:9.1f} MiB  MACs ×"
                  f"{(fwd + bwd + rec) / (fwd + bwd):.3f}", flush=True)
            jax.clear_caches()
    engine.remat_segment = default_segment
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
