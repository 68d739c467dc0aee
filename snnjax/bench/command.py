"""``snnjax bench``: cost tables (rule × T), the Guo et al. design-space grid, a memory planner.

    snnjax bench cost --model mlp --rules bptt,sltt,ottt-a --T 4,8,16 --json c.json --plot c.png
    snnjax bench grid --model cnn --T 8 --windows 1,2,4,8 --block-sizes 1,2 --heatmap g.png
    snnjax bench plan --model vgg11_sws --budget 16GB --batch-size 32 --T 6
    snnjax bench plan --model vgg11_sws --target tpu-v5e --batch-size 32 --T 6
    snnjax bench plan --model vgg11_sws --target h100 --budget 2GiB --batch-size 128 --T 32 \\
        --rules bptt --schedules

``--target NAME`` compiles for that device instead of this machine's (``h100``, ``a100``,
``tpu-v5e``, ``tpu-v6e``, ``tpu-v5p``: compile-only, no such hardware needed; see
:mod:`snnjax.targets`); its device memory is the planner's default budget.

The planner's "largest T" (or batch) is the largest v such that every value it tested up to
v fits the budget, with v + 1 tested and not fitting (see :func:`largest`): compiled memory
is not monotone in T or batch size, so it assumes nothing about values it did not test.

Memory comes from XLA's memory analysis of the compiled step (deterministic, never run), MACs
and memory access from :mod:`snnjax.cost`'s analytic counts, step time from real jitted steps
(the median of ``--steps`` of them; ``--steps 0`` skips timing).
"""

from __future__ import annotations

import argparse
import json
import sys

import jax

from snnjax.bench.planner import PLAN_NOTE, plan_budget, plan_rows, schedule_rows
from snnjax.bench.plots import plot_cost, plot_grid
from snnjax.bench.rows import cost_rows, grid_rows
from snnjax.bench.text import format_size, parse_bytes

__all__ = ["add_parser", "main"]


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _model(args):
    from snnjax.experiment import TrainConfig, make_model

    cfg = TrainConfig(model=args.model, width=args.width, hidden=tuple(args.hidden))
    return make_model(cfg, args.num_classes)


def _input_shape(args, model) -> tuple[int, ...]:
    if args.input_shape:
        return tuple(args.input_shape)
    return (32, 32, 3) if getattr(model, "input_ndim", None) == 3 else (64,)


def _rule(name: str, args):
    from snnjax import rules

    return rules.by_name(
        name, window=args.window, block_size=args.block_size, K=args.K, online=args.online
    )


def _write_json(rows, path):
    with open(path, "w") as f:
        json.dump(rows, f, indent=2)
    print(f"wrote {path}")


# ---------------------------------------------------------------------------- commands


def _target(args):
    """``--target`` as a :class:`snnjax.targets.Target`, or None.

    CUDA targets compile without a GPU only when jax runs on the CPU alone: the command owns
    its process, so it asks for that before jax starts (a running jax is left as it is, and
    the target then says what to set).
    """
    from snnjax.targets import get_target

    if args.target is None:
        return None
    target = get_target(args.target)
    if target.platform == "cuda" and not jax.config.jax_platforms:
        try:
            jax.config.update("jax_platforms", "cpu")
        except RuntimeError:  # jax already runs on its backends
            pass
    return target


def _where(target) -> str:
    if target is None:
        return f"this machine's {jax.default_backend()}"
    return f"{target.name} ({target.description}, compile only)" if target.compile_only \
        else f"{target.name} ({target.description})"


def _steps(args, target) -> int:
    # Timing needs the device itself: a compile-only target times nothing unless asked.
    if args.steps is not None:
        return args.steps
    return 0 if target is not None and target.compile_only else args.default_steps


def _setup(args):
    """The model, one sample's shape and the ``--rules`` as ``(name, Rule)`` pairs."""
    model = _model(args)
    names = getattr(args, "rules", "")
    return model, _input_shape(args, model), [(n, _rule(n, args)) for n in names.split(",") if n]


def _output(args, rows, plot=None, path=None, title="") -> int:
    """Write ``--json`` and, when a path was given, ``plot(rows, path, title)``."""
    if args.json:
        _write_json(rows, args.json)
    if path:
        plot(rows, path, title=title)
        print(f"wrote {path}")
    return 0


def _cmd_cost(args) -> int:
    target = _target(args)
    model, shape, rule_list = _setup(args)
    print(f"model {args.model}, batch {args.batch_size}, input {shape}, on {_where(target)}")
    rows = cost_rows(model, rule_list, args.T, batch_size=args.batch_size, input_shape=shape,
                     steps=_steps(args, target), target=target)
    return _output(args, rows, plot_cost, args.plot, f"{args.model}, batch {args.batch_size}")


def _cmd_grid(args) -> int:
    target = _target(args)
    model, shape, _ = _setup(args)
    print(f"model {args.model}, T {args.T}, batch {args.batch_size}, input {shape}, "
          f"on {_where(target)}")
    rows = grid_rows(model, T=args.T, windows=args.windows, block_sizes=args.block_sizes,
                     batch_size=args.batch_size, input_shape=shape,
                     steps=_steps(args, target), target=target)
    return _output(args, rows, plot_grid, args.heatmap,
                   f"{args.model}, T={args.T}, batch {args.batch_size}")


def _cmd_plan(args) -> int:
    target = _target(args)
    budget = plan_budget(None if args.budget is None else parse_bytes(args.budget), target)
    model, shape, rule_list = _setup(args)
    source = "" if args.budget is not None else f", one {target.name}'s device memory"
    print(f"model {args.model}, input {shape}, budget {budget:,} bytes "
          f"({format_size(budget)}{source}) of compiled step memory on {_where(target)}")
    if args.schedules:
        if args.T_plan is None:
            raise SystemExit("snnjax bench plan --schedules: give --T, the steps to plan for")
        rows = []
        for name, rule in rule_list:
            print(f"{name} at T={args.T_plan}, batch {args.batch_size}: schedules, first that "
                  "fits marked →")
            rows += schedule_rows(model, rule, T=args.T_plan, batch_size=args.batch_size,
                                  input_shape=shape, budget=budget, target=target)
        return _output(args, rows)
    print(PLAN_NOTE.format(scan=args.scan))
    rows = plan_rows(model, rule_list, budget=budget, batch_size=args.batch_size,
                     input_shape=shape, target=target, T=args.T_plan, max_T=args.max_T,
                     max_batch=args.max_batch, scan=args.scan)
    return _output(args, rows)


def _add_model_args(p: argparse.ArgumentParser, *, batch_size: int = 32) -> None:
    p.add_argument("--model", default="mlp", help="mlp, cnn, vgg11_sws, ...")
    p.add_argument("--num-classes", type=int, default=10, help="classes of the readout")
    p.add_argument("--input-shape", type=_ints, default=None,
                   help="one sample's shape, e.g. 32,32,3 (default: 32,32,3 for conv nets, 64)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="samples per batch")
    p.add_argument("--width", type=float, default=1.0, help="VGG channel multiplier")
    p.add_argument("--hidden", type=_ints, default=(128,), help="MLP widths, e.g. 128,64")
    p.add_argument("--window", type=int, default=2, help="TBPTT window k")
    p.add_argument("--block-size", type=int, default=1, help="Local: units per block")
    p.add_argument("--K", type=int, default=1, help="SLTT-K: steps with a backward pass")
    p.add_argument("--online", action="store_true", help="TBPTT: optimizer step per window")
    p.add_argument("--target", default=None,
                   help="compile for this device: cpu, h100, a100, tpu-v5e, tpu-v6e, tpu-v5p "
                        "(GPUs/TPUs compile-only; default this machine's)")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``snnjax bench {cost,grid,plan}`` on the CLI's subparsers."""
    p = sub.add_parser("bench", help="cost tables, design-space grid and memory planner",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bsub = p.add_subparsers(dest="bench_command", required=True)

    c = bsub.add_parser("cost", help="memory, MACs, memory access and time: rule × T")
    _add_model_args(c)
    c.add_argument("--rules", default="bptt,tbptt,sltt,sltt-k,ottt-a",
                   help="rules to measure, separated by commas")
    c.add_argument("--T", type=_ints, default=(4, 8, 16, 32, 64), help="e.g. 4,8,16")
    c.add_argument("--steps", type=int, default=None,
                   help="timed steps per row (0: no timing; default 3, 0 on a GPU/TPU target)")
    c.set_defaults(default_steps=3)
    c.add_argument("--json", help="write the rows here")
    c.add_argument("--plot", help="write memory and time against T here (PNG)")
    c.set_defaults(func=_cmd_cost)

    g = bsub.add_parser("grid", help="Guo et al.'s design space: window × block size")
    _add_model_args(g)
    g.add_argument("--T", type=int, default=8, help="time steps")
    g.add_argument("--windows", type=_ints, default=(1, 2, 4, 8),
                   help="TBPTT windows k of the grid's rows, e.g. 1,2,4")
    g.add_argument("--block-sizes", type=_ints, default=(1, 2, 4),
                   help="Local block sizes (units) of the grid's columns, e.g. 1,2")
    g.add_argument("--steps", type=int, default=None,
                   help="timed steps per cell (default 0: no timing)")
    g.set_defaults(default_steps=0)
    g.add_argument("--json", help="write the rows here")
    g.add_argument("--heatmap", help="write the heat maps here (PNG)")
    g.set_defaults(func=_cmd_grid)

    q = bsub.add_parser("plan", help="largest T (and batch) that fits a memory budget")
    _add_model_args(q)
    q.add_argument("--budget", default=None,
                   help="e.g. 16GB, 40GiB, 512MB (default with --target: its device memory)")
    q.add_argument("--rules", default="bptt,tbptt,sltt,sltt-k,ottt-a",
                   help="rules to plan for, separated by commas")
    q.add_argument("--T", dest="T_plan", type=int, default=None,
                   help="also find the largest batch at this T")
    q.add_argument("--max-T", type=int, default=4096, help="search T up to this")
    q.add_argument("--max-batch", type=int, default=1 << 16, help="search batch up to this")
    q.add_argument("--scan", type=int, default=4,
                   help="also test this many values below each answer (memory is not monotone)")
    q.add_argument("--schedules", action="store_true",
                   help="with --T: each rule's schedules (same gradient) and the first that "
                        "fits, instead of the largest T and batch")
    q.add_argument("--json", help="write the rows here")
    q.set_defaults(func=_cmd_plan)
    return p


def main(argv=None) -> int:
    """``python -m snnjax.bench cost ...`` (the same as ``snnjax bench cost ...``)."""
    parser = argparse.ArgumentParser(prog="snnjax")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
