"""Command line: ``snnjax train | compare-grads``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

__all__ = ["main"]


def _int_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from snnjax import rules
    from snnjax.experiment import TrainConfig

    d = TrainConfig()
    p.add_argument("--rule", default=d.rule, help=f"one of {', '.join(rules.NAMES)}")
    p.add_argument("--model", default=d.model, help="mlp, cnn, vgg11_sws, ...")
    p.add_argument(
        "--dataset", default=d.dataset,
        help="digits (offline, default), mnist, fashion_mnist, cifar10, cifar100, imagenet2012, "
        "nmnist, dvs_gesture, cifar10_dvs",
    )
    p.add_argument(
        "--data-dir", default=d.data_dir,
        help="tfds directory prepared as array_record, or the folder holding tonic's dataset "
        "folders (NMNIST, DVSGesture, CIFAR10DVS)",
    )
    p.add_argument("--T", type=int, default=d.T, help="time steps")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--optimizer", default=d.optimizer, help="adam, adamw or sgd")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", default=d.schedule, choices=["cosine", "constant"])
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--encoding", default=d.encoding, choices=["direct", "poisson"])
    p.add_argument("--tau", type=float, default=d.tau, help="LIF time constant: λ = 1 - 1/τ")
    p.add_argument("--v-th", type=float, default=d.v_th)
    p.add_argument("--reset", default=d.reset, choices=["soft", "hard"])
    p.add_argument("--detach-reset", action="store_true")
    p.add_argument("--surrogate", default=d.surrogate)
    p.add_argument("--surrogate-alpha", type=float, default=None)
    p.add_argument("--mse", type=float, default=d.mse, help="λ_mse of the loss mix")
    p.add_argument("--window", type=int, default=d.window, help="TBPTT window k")
    p.add_argument("--block-size", type=int, default=d.block_size, help="Local: units per block")
    p.add_argument("--K", type=int, default=d.K, help="SLTT-K: steps with a backward pass")
    p.add_argument("--online", action="store_true", help="TBPTT: optimizer step per window")
    p.add_argument("--hidden", type=_int_tuple, default=d.hidden, help="MLP widths, e.g. 128,64")
    p.add_argument("--width", type=float, default=d.width, help="VGG channel multiplier")
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--pool", default=None, choices=["avg", "max"],
                   help="pooling of the conv models (default: the model's own)")
    p.add_argument("--devices", type=int, default=d.devices,
                   help="data parallel over this many devices (default: all)")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host: jax.distributed.initialize (env JAX_COORDINATOR_ADDRESS, "
                        "JAX_NUM_PROCESSES, JAX_PROCESS_ID, or auto-detected)")
    p.add_argument("--checkpoint-dir", default=d.checkpoint_dir,
                   help="write checkpoints here (each epoch end; needs snnjax[checkpoint])")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="also checkpoint every N steps")
    p.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints,
                   help="keep the newest K checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest complete checkpoint in --checkpoint-dir")


def _config(args) -> "TrainConfig":  # noqa: F821
    from snnjax.experiment import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def _cmd_train(args) -> int:
    from snnjax.experiment import train_and_evaluate

    result = train_and_evaluate(_config(args), progress=not args.no_progress)
    mem = result["compiled_memory"]
    print(
        f"rule {result['rule']}  final test accuracy {100 * result['final_test_accuracy']:.2f}%  "
        f"step {1e3 * result['step_time_s']:.2f} ms  compiled step memory "
        f"{mem['memory_bytes'] / 2**20:.2f} MiB (temp {mem['temp_bytes'] / 2**20:.2f} MiB)"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.out}")
    return 0


def _cmd_compare_grads(args) -> int:
    from snnjax.diagnostics import compare_gradients_cli

    rows = compare_gradients_cli(
        model=args.model, T=args.T, batch_size=args.batch_size, dataset=args.dataset,
        rules=args.rules.split(","), window=args.window, block_size=args.block_size, K=args.K,
        seed=args.seed,
    )
    width = max(len(r["param"]) for r in rows)
    for r in rows:
        print(f"{r['rule']:>14s}  {r['param']:<{width}s}  cos {r['cosine']:+.4f}  "
              f"norm ratio {r['norm_ratio']:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snnjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a spiking network with a training rule")
    _add_train_args(p)
    p.add_argument("--out", help="write results JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("compare-grads", help="each rule's gradient against BPTT's, per parameter")
    p.add_argument("--model", default="mlp")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rules", default="tbptt,local,tbptt-local,sltt,sltt-k,ottt-a,ottt-o")
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--block-size", type=int, default=1)
    p.add_argument("--K", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the rows as JSON here")
    p.set_defaults(func=_cmd_compare_grads)
    __import__("snnjax.bench", fromlist=["add_parser"]).add_parser(sub)  # snnjax bench ...
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"snnjax: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
