"""Compile-only step memory of each rule with spikes kept as bits (``bits=True``, a
schedule: docs/schedules.md) against the same rule without them (float32 residuals, the
default), issue 23.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/spikes_memory.py cpu h100 tpu-v5e
    .venv/bin/python benchmarks/spikes_memory.py --markdown   # BENCHMARKS.md's table, from the JSON

VGG-11 sWS at full width, CIFAR 32×32×3, batch 128, T = 6; the trainer's step (SGD with
momentum, train state donated), ``total_bytes = memory_bytes - alias_bytes``. Three ways
to run the same model, the same gradient: ``float`` (the rule as it is, without bits: every
synapse input kept as float32), ``bits, pooled float`` (the rule with ``bits=True`` on the
model whose synapses after an average pool keep the pooled float32 values) and ``bits``
(the rule with ``bits=True``: those synapses keep the spikes before the pool as bits).
Appends one JSON row per (target, rule, storage) to ``benchmarks/results/spikes_memory.json``
(rows of the same cell are replaced). Deterministic (XLA's memory analysis; nothing runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
from pathlib import Path

import jax

from snnjax import cost, models, rules
from snnjax.train import Trainer
from result_rows import memory_row, record

OUT = Path(__file__).resolve().parent / "results" / "spikes_memory.json"
STORAGES = ("float", "bits, pooled float", "bits")
#: The rules without bits, by the name the command takes; the T = 6 chunk of sltt is T.
RULES = {"bptt": rules.bptt(), "sltt-chunkT": rules.sltt(chunk=6), "sltt": rules.sltt()}


INTRO = (
    "VGG-11 sWS at 1.0× width, CIFAR 32×32×3, batch 128, T = 6: the trainer's step (SGD with "
    "momentum, train state donated) compiled without running it, total = temporaries + "
    "arguments + outputs − donated buffers, MiB; XLA:CPU, and an H100 compile-only "
    "(`snnjax.targets`). Each rule without and with the `bits` schedule (docs/schedules.md, "
    "spikes as bits; the same gradient): `float` (the rule as it is, the default: every "
    "synapse input kept as float32), `bits, pooled float` (`bits=True`, but the three "
    "synapses after an average pool keep the pooled float32 values) and `bits` (`bits=True`: "
    "those three keep the spikes before the pool, four bits per pooled value). Regenerate "
    "with `JAX_PLATFORMS=cpu .venv/bin/python benchmarks/spikes_memory.py cpu h100`."
)

NOTES = (
    "What BPTT stores per step (the optimized HLO's loop buffers): each neuron's pre-reset "
    "potential `u` in float32 (the surrogate's input: 409,600 per sample, 200 MiB per step, "
    "1,200 MiB at T = 6), which bits cannot replace exactly; the spike trains as bits "
    "(about 6 MiB per step); the raw input. The pooled synapses' float32 inputs (28 MiB "
    "per step, 168 MiB at T = 6) are gone from the loop's buffers with `bits`, but the "
    "compiled peak drops by less: the rest of the peak is the backward pass's temporaries "
    "at full resolution and the weight-sized buffers (standardised kernels, gradients, "
    "momentum), which the residual storage does not touch. Under `sltt(chunk=6)` one "
    "application of the model covers the chunk's six steps, so reading the spikes before "
    "each average pool at full resolution (a float32 transient, 16 bytes per pooled value "
    "and step, docs/schedules.md) outweighs what keeping them as bits saves (3.5 bytes per "
    "pooled value and stored step): with `bits` the step is larger than without on both "
    "targets, while the pooled synapses kept as floats (`bits, pooled float`) give 1.00× "
    "on XLA:CPU and 0.94× on the H100; the engine does not choose that per synapse yet. "
    "`sltt()` differentiates one "
    "step at a time: its residuals live for that step's backward alone, so under `bits` "
    "the engine keeps floats there (the same step; packing would only add temporaries, "
    "578.4 MiB on XLA:CPU and 511.9 MiB on the H100 at commit 5fcf481). `bptt(remat=True)` "
    "takes no bits: a recomputed segment stores only the potentials (docs/schedules.md). "
    "The time the packing costs is in docs/schedules.md."
)


def with_bits(rule):
    """``rule`` with ``bits=True``."""
    return dataclasses.replace(rule, bits=True)


def model_with(storage: str):
    """VGG-11 sWS (10 classes), its synapses after an average pool kept as floats for
    ``"bits, pooled float"``."""
    model = models.vgg11_sws(10)
    if storage == "bits, pooled float":
        units = tuple(u.clone(input_storage="float") if u.input_storage == "bits_before_pool"
                      else u for u in model.units)
        return model.clone(units=units)
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("targets", nargs="*", help="e.g. cpu h100 tpu-v5e")
    p.add_argument("--rules", nargs="*", default=tuple(RULES), choices=tuple(RULES))
    p.add_argument("--markdown", action="store_true",
                   help="print the committed JSON as BENCHMARKS.md's table; compile nothing")
    p.add_argument("--T", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args(argv)
    rows = json.loads(OUT.read_text()) if OUT.exists() else []
    if args.markdown:
        print(markdown(rows))
        return 0
    for target in args.targets:
        for rule_name in args.rules:
            rule = RULES[rule_name]
            for storage in STORAGES:
                run = rule if storage == "float" else with_bits(rule)
                trainer = Trainer(model_with(storage), run, cost.default_optimizer())
                xs, ys = cost.abstract_batch(args.T, args.batch_size, (32, 32, 3))
                row = memory_row(trainer, xs, ys, target, net="vgg11_sws", rule=rule.name,
                                 storage=storage, schedule=run.name, T=args.T,
                                 batch_size=args.batch_size, jax=jax.__version__,
                                 date=datetime.date.today().isoformat())
                rows = record(OUT, rows, row, ("target", "rule", "storage", "T", "batch_size"))
                print(f"{row['target']:8s} {run.name:16s} {storage:20s} "
                      f"{row['total_bytes'] / 2**20:9.1f} MiB", flush=True)
                jax.clear_caches()
    return 0


def footer(rows) -> str:
    """When the rows were compiled."""
    dates = sorted({r.get("date", "?") for r in rows})
    jaxes = sorted({r.get("jax", "?") for r in rows})
    return (f"_Compiled {', '.join(dates)}, jax {', '.join(jaxes)} with its compile-only "
            "plugins; no device._")


def markdown(rows) -> str:
    """One row per (target, rule): total MiB without bits and with them, and bits ÷ float."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["target"], r["rule"], r["T"], r["batch_size"]), {})[r["storage"]] = r
    lines = ["| target | rule, T, batch | " + " | ".join(f"{s} MiB" for s in STORAGES)
             + " | bits ÷ float |", "|---|---|" + "---:|" * (len(STORAGES) + 1)]
    for (target, rule, T, b), by in sorted(cells.items(), key=lambda kv: kv[0]):
        vals = [f"{by[s]['total_bytes'] / 2**20:,.1f}" if s in by else "not run"
                for s in STORAGES]
        ratio = (f"{by['bits']['total_bytes'] / by['float']['total_bytes']:.2f}"
                 if "bits" in by and "float" in by else "")
        lines.append(f"| {target} | `{rule}`, T={T}, b{b} | " + " | ".join(vals)
                     + f" | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
