"""Run a paper-table config and write its results as JSON.

    python -m experiments.run CONFIG [--preset small] [--out DIR] [--only TEXT] [--epochs N]

``CONFIG`` is a module of this package (``ottt``, ``sltt``, ``guo_sweep``, ``guo_alexnet``,
``recurrent``).
The results go to ``DIR/CONFIG-PRESET.json`` (rewritten after every run, so an interrupted
config keeps the runs it finished): the experiment's description and, per run, its labels,
the paper's number, the full result of :func:`snnjax.experiment.train_and_evaluate` and, for
runs that ask for it, the cost of one training step (:func:`snnjax.cost.measure`: MACs and
memory access) and, where the config names lengths ``memory_T``, the compiled memory of
its training step at each of them (:func:`run_memory_vs_T`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import sys
import time

import jax

from experiments.common import PRESETS, Experiment, Run

__all__ = ["CONFIGS", "load", "run_cost", "run_memory_vs_T", "run_experiment", "main"]

CONFIGS = ("ottt", "sltt", "guo_sweep", "guo_alexnet", "recurrent")


def load(name: str, preset: str = "small") -> Experiment:
    """``experiments.<name>.get_config(preset)``; ``name`` may also be a path to the module."""
    module = os.path.splitext(os.path.basename(name))[0].replace("-", "_")
    if module not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}")
    return importlib.import_module(f"experiments.{module}").get_config(preset)


def run_cost(cfg) -> dict:
    """MACs, memory access and compiled memory of one training step of ``cfg``'s setting."""
    from snnjax import cost, losses
    from snnjax import data as data_lib
    from snnjax.experiment import make_model, make_optimizer, make_rule
    from snnjax.train import Trainer

    train = data_lib.load(cfg.dataset, "train", data_dir=cfg.data_dir, T=cfg.T)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    trainer = Trainer(
        make_model(cfg, train.num_classes),
        make_rule(cfg),
        make_optimizer(cfg, steps_per_epoch),
        losses.per_step(mse=cfg.mse, target=cfg.mse_target),
    )
    out = cost.measure(
        trainer,
        T=cfg.T,
        batch_size=cfg.batch_size,
        input_shape=train.sample_shape,
        rates=False,  # the tables report MACs, not spike-driven ACs (which need a forward pass)
    )
    return {k: v for k, v in out.items() if k != "per_layer"}


def run_memory_vs_T(cfg, lengths) -> dict:
    """Compiled memory of ``cfg``'s training step at each T in ``lengths`` (compile only).

    Returns:
      ``{"T": [...], "compiled_memory": [the breakdown at each T], "input_bytes": [...]}``,
      ``input_bytes`` the float32 input batch ``[T, B, ...]`` among the step's arguments
      (it grows with T whatever the rule).
    """
    import math

    from snnjax import data as data_lib
    from snnjax.experiment import step_memory

    out = {"T": [], "compiled_memory": [], "input_bytes": []}
    for T in lengths:
        at = dataclasses.replace(cfg, T=T)
        sample = data_lib.load(at.dataset, "test", data_dir=at.data_dir, T=T).sample_shape
        out["T"].append(T)
        out["compiled_memory"].append(step_memory(at))
        out["input_bytes"].append(4 * T * at.batch_size * math.prod(sample))
    return out


def _write(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1, default=str)
    os.replace(tmp, path)


def _describe(exp: Experiment) -> dict:
    return {
        "name": exp.name, "title": exp.title, "paper": exp.paper, "preset": exp.preset,
        "group": exp.group, "grid": exp.grid, "baseline": exp.baseline,
        "paper_deltas": exp.paper_deltas, "notes": exp.notes, "memory_T": list(exp.memory_T),
    }


def run_experiment(
    exp: Experiment,
    out_dir: str | None = None,
    *,
    merge: bool = False,
    progress: bool = False,
    log=print,
) -> dict:
    """Train every run of ``exp``; return (and, with ``out_dir``, write) the results dict.

    With ``merge``, the runs already in the output file are kept and those re-run replaced
    (``--only`` reruns some cells of a finished config).
    """
    from snnjax.experiment import train_and_evaluate

    payload = {
        "experiment": _describe(exp),
        "host": {
            "backend": jax.default_backend(),
            "device": str(jax.devices()[0].device_kind),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "jax": jax.__version__,
        },
        "command": f"python -m experiments.run {exp.name} --preset {exp.preset}",
        "runs": [],
    }
    path = None
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{exp.name}-{exp.preset}.json")
        if merge and os.path.exists(path):
            with open(path) as f:
                payload["runs"] = json.load(f).get("runs", [])
    for i, run in enumerate(exp.runs):
        log(f"[{exp.name} {i + 1}/{len(exp.runs)}] {run.key}: {run.config.rule}")
        t0 = time.perf_counter()
        result = train_and_evaluate(run.config, progress=progress, log=log)
        entry = _entry(run, result)
        if run.cost:
            entry["cost"] = run_cost(run.config)
        if exp.memory_T:
            entry["memory_vs_T"] = run_memory_vs_T(run.config, exp.memory_T)
        entry["wall_time_s"] = time.perf_counter() - t0
        done = [j for j, e in enumerate(payload["runs"]) if e["key"] == run.key]
        if done:
            payload["runs"][done[0]] = entry
        else:
            payload["runs"].append(entry)
        # Every run's own time: with --only, the runs kept from an earlier invocation too.
        payload["wall_time_s"] = sum(e.get("wall_time_s", 0.0) for e in payload["runs"])
        log(f"    test accuracy {100 * result['final_test_accuracy']:.1f} %, "
            f"step memory {result['compiled_memory_bytes'] / 2**20:.2f} MiB, "
            f"{entry['wall_time_s']:.0f} s")
        if path:
            _write(path, payload)
    return payload


def _entry(run: Run, result: dict) -> dict:
    return {
        "key": run.key,
        "labels": dict(run.labels),
        "paper": run.paper,
        "config": dataclasses.asdict(run.config),
        "result": result,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help=f"one of {', '.join(CONFIGS)}")
    p.add_argument("--preset", default="small", choices=PRESETS)
    p.add_argument("--out", default="experiments/results", help="directory for the JSON")
    p.add_argument("--only", default=None, help="run only cells whose labels contain this")
    p.add_argument("--epochs", type=int, default=None, help="override every run's epochs")
    p.add_argument("--progress", action="store_true", help="progress bars")
    args = p.parse_args(argv)
    exp = load(args.config, args.preset).select(args.only)
    if args.epochs is not None:
        exp = dataclasses.replace(exp, runs=tuple(
            dataclasses.replace(r, config=dataclasses.replace(r.config, epochs=args.epochs))
            for r in exp.runs
        ))
    payload = run_experiment(exp, args.out, merge=bool(args.only), progress=args.progress)
    print(f"wrote {os.path.join(args.out, f'{exp.name}-{exp.preset}.json')} "
          f"({len(payload['runs'])} runs, {payload['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
