"""Compile-only step memory of the issue-22 cells on GPU and TPU targets (snnjax.targets).

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/targets_memory.py h100 tpu-v5e
    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/targets_memory.py tpu-v5e --only vgg11_sws:sltt
    .venv/bin/python benchmarks/targets_memory.py --markdown    # BENCHMARKS.md's table, from the JSON

Needs the gpu-aot / tpu-aot extras. Appends one JSON row per (target, net, rule) to
``benchmarks/results/targets_memory.json`` (rows of the same cell are replaced). The figures
are deterministic (XLA's memory analysis, nothing runs); a TPU compile of VGG-11 takes about a
minute, an H100 compile a few seconds. SGD with momentum, batch 128, train state donated;
``total_bytes = memory_bytes - alias_bytes`` (donated buffers reused).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax

from snnjax import cost, models, rules
from snnjax.train import Trainer
from result_rows import memory_row, record

OUT = Path(__file__).resolve().parent / "results" / "targets_memory.json"


def cells():
    """``(net, model, input shape, T, rules)``: VGG-11 sWS on CIFAR, AlexNet (Guo preset)."""
    local = rules.local(rules.tbptt(1), block_size=1)
    yield ("vgg11_sws", models.vgg11_sws(10), (32, 32, 3), 6,
           [rules.bptt(), rules.sltt(), rules.ottt(), rules.sltt_k(1), local])
    yield ("alexnet", models.alexnet(10), (48, 48, 2), 10, [rules.bptt(), rules.tbptt(1), local])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("targets", nargs="*", help="e.g. h100 tpu-v5e")
    p.add_argument("--markdown", action="store_true",
                   help="print the committed JSON as BENCHMARKS.md's table; compile nothing")
    p.add_argument("--only", nargs="*", default=(), help="net:rule cells, e.g. vgg11_sws:sltt")
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args(argv)
    rows = json.loads(OUT.read_text()) if OUT.exists() else []
    if args.markdown:
        print(markdown(rows))
        return 0
    for target in args.targets:
        for net, model, shape, T, rule_list in cells():
            for rule in rule_list:
                if args.only and f"{net}:{rule.name}" not in args.only:
                    continue
                trainer = Trainer(model, rule, cost.default_optimizer())
                xs, ys = cost.abstract_batch(T, args.batch_size, shape)
                row = memory_row(trainer, xs, ys, target, net=net, rule=rule.name, T=T,
                                 batch_size=args.batch_size)
                rows = record(OUT, rows, row, ("target", "net", "rule", "T", "batch_size"))
                print(f"{row['target']:8s} {net:10s} {rule.name:20s} "
                      f"{row['total_bytes'] / 2**20:9.0f} MiB", flush=True)
                jax.clear_caches()
    return 0


def markdown(rows) -> str:
    """One row per (net, rule), one column per target, total MiB (temp + arguments +
    outputs - donated buffers)."""
    order = list(dict.fromkeys(r["target"] for r in rows))
    cells = {}
    for r in rows:
        cells.setdefault((r["net"], r["T"], r["batch_size"], r["rule"]), {})[r["target"]] = r
    lines = ["| net, T, batch | rule | " + " | ".join(f"{t} MiB" for t in order) + " |",
             "|---|---|" + "---:|" * len(order)]
    for (net, T, b, rule), by in cells.items():
        vals = [f"{by[t]['total_bytes'] / 2**20:,.1f}" if t in by else "not run" for t in order]
        lines.append(f"| {net}, T={T}, b{b} | `{rule}` | " + " | ".join(vals) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
