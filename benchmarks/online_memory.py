"""Compiled memory of the online rules (e-prop, OSTL) against T, beside BPTT and OTTT.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/online_memory.py --T 8 64

Two ``RecurrentDense(64)`` layers and a readout (LIF, or ALIF with ``--alif``; λ = 0.5, soft
reset, ``detach_reset``), and the feed-forward ``mlp(10, (64, 64))``; 8×8 inputs, batch 8,
SGD: temp bytes of one compiled training step (XLA's memory analysis on the CPU, compile
only; nothing runs, no time is measured). OSTL's recurrent layers carry every parameter's
effect on every neuron (RTRL), so its memory is flat in T but large in N.
Appends one JSON row per cell to ``benchmarks/results/online_memory.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from snnjax import models, neurons, rules
from snnjax.cost import step_memory
from snnjax.neuron import Adaptation, LIFParams
from snnjax.recurrent import RecurrentDense
from snnjax.train import Trainer

OUT = Path(__file__).resolve().parent / "results" / "online_memory.json"
RULES = {"eprop": rules.eprop(), "eprop_random": rules.eprop(feedback="random"),
         "ostl": rules.ostl(), "ottt_a": rules.ottt(), "bptt": rules.bptt()}


def nets(alif: bool):
    lif = LIFParams(decay=0.5, detach_reset=True)
    neuron = neurons.ALIF(lif, Adaptation()) if alif else lif
    recurrent = models.SpikingSequential(
        (RecurrentDense(64, neuron=neuron, first=True), RecurrentDense(64, neuron=neuron)), 10)
    return {"recurrent": recurrent, "feed-forward": models.mlp(10, (64, 64), neuron=neuron)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--alif", action="store_true")
    args = ap.parse_args()
    rows = []
    for net_name, model in nets(args.alif).items():
        for name, rule in RULES.items():
            if name == "ottt_a" and args.alif:
                continue  # OTTT refuses ALIF
            trainer = Trainer(model, rule, optax.sgd(0.1))
            for T in args.T:
                xs = jax.ShapeDtypeStruct((T, 8, 8, 8, 1), jnp.float32)
                ys = jax.ShapeDtypeStruct((8,), jnp.int32)
                mem = step_memory(trainer, xs, ys, target="cpu")
                row = {"net": net_name, "neuron": "alif" if args.alif else "lif",
                       "rule": rule.name, "T": T, "temp_bytes": mem["temp_bytes"]}
                print(row, flush=True)
                rows.append(row)
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
