"""The ``snnjax`` command: train spiking networks, compare gradients, benchmark rules.

    snnjax train --rule sltt-k --K 2 --model cnn --T 6 --out run.json
    snnjax compare-grads --model mlp --T 8 --rules sltt,tbptt --out grads.json
    snnjax bench cost --model mlp --rules bptt,sltt,ottt-a --T 4,8,16 --plot cost.png

``snnjax COMMAND --help`` lists a command's options with their defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import shlex
import sys
import textwrap
from typing import Any, Iterator

from snnjax.files import check_writable_folder

__all__ = ["main", "build_parser", "walk"]

log = logging.getLogger("snnjax.cli")

# The rule parameters each rule reads (rules.by_name takes all of them and ignores the rest).
RULE_PARAMS: dict[str, frozenset[str]] = {
    "bptt": frozenset({"chunk", "remat", "bits"}),
    "tbptt": frozenset({"window", "online", "remat", "bits"}),
    "local": frozenset({"block_size", "remat", "bits"}),
    "tbptt-local": frozenset({"window", "block_size", "online", "remat", "bits"}),
    "sltt": frozenset({"chunk", "bits"}),
    "sltt-k": frozenset({"K", "chunk", "bits"}),
    "ottt-a": frozenset({"chunk", "bits"}),
    "ottt-o": frozenset({"bits"}),
    "eprop": frozenset({"feedback"}),
    "ostl": frozenset(),
}
_ALL_RULE_PARAMS = frozenset().union(*RULE_PARAMS.values())
_FLAG = {"window": "--window", "block_size": "--block-size", "K": "--K", "online": "--online",
         "chunk": "--chunk", "remat": "--remat", "bits": "--bits", "feedback": "--feedback"}
# The model options of `train`, checked against the model factory's signature.
_MODEL_OPTIONS = {"hidden": "--hidden", "width": "--width", "dropout": "--dropout",
                  "pool": "--pool"}
# Shipped with the install or generated: no --data-dir.
_BUILT_IN_DATASETS = frozenset({"digits", "temporal_order"})


def _rule_key(name: str) -> str:
    return name.replace("_", "-").lower()


def _rule_params(name: str) -> frozenset[str]:
    """The rule parameters rule ``name`` uses (all of them for a name this table lacks)."""
    return RULE_PARAMS.get(_rule_key(name), _ALL_RULE_PARAMS)


# ---------------------------------------------------------------------------- help text


def _plain(text: str) -> str:
    """Docstring reST as plain text: a role such as :func:`f` becomes f (:class:`~a.B`, B)
    and a literal ``x`` becomes x."""

    def role(m: re.Match) -> str:
        target = m.group(1)
        return target[1:].rsplit(".", 1)[-1] if target.startswith("~") else target

    text = re.sub(r":[a-z]+:`([^`]+)`", role, text)
    return re.sub(r"``([^`]+)``", r"\1", text)


class _HelpFormatter(argparse.HelpFormatter):
    """Plain-text docstrings, each option's default, INT/FLOAT metavars, no split-off words.

    Descriptions are docstrings: paragraphs are refilled to the terminal, indented blocks
    (examples) kept as they are.
    """

    def _fill_text(self, text, width, indent):
        out = []
        for para in re.split(r"\n\s*\n", textwrap.dedent(_plain(text)).strip("\n")):
            if para[:1].isspace():
                out.append(textwrap.indent(para, indent))
            else:
                out.append(textwrap.fill(" ".join(para.split()), width, initial_indent=indent,
                                         subsequent_indent=indent, break_on_hyphens=False))
        return "\n\n".join(out)

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action):
        text = _plain(action.help or "")
        default = action.default
        if (not action.option_strings or default is None or default is False
                or default is argparse.SUPPRESS or "(default" in text):
            return text
        if isinstance(default, (tuple, list)):
            default = ",".join(map(str, default))
        return f"{text} (default: {str(default).replace('%', '%%')})"

    def _get_default_metavar_for_optional(self, action):
        return {int: "INT", float: "FLOAT"}.get(action.type) or action.dest.upper()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser`` by name (empty if it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def walk(parser: argparse.ArgumentParser, path=()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(command path, parser)`` of ``parser`` and every subcommand below it."""
    yield path, parser
    for name, sub in subcommands(parser).items():
        yield from walk(sub, (*path, name))


# ---------------------------------------------------------------------------- arguments


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, e.g. 128,64; got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _add_rule_args(p: argparse.ArgumentParser, d) -> None:
    """--window, --block-size, --K, --online: None unless given (to refuse unused ones)."""
    g = p.add_argument_group("rule parameters (refused by a rule that does not use them)")
    g.add_argument("--window", type=int, default=None,
                   help=f"TBPTT truncation window k in time steps; tbptt, tbptt-local "
                        f"(default: {d.window})")
    g.add_argument("--block-size", type=int, default=None,
                   help=f"Local learning: model units per block; local, tbptt-local "
                        f"(default: {d.block_size})")
    g.add_argument("--K", type=int, default=None,
                   help=f"SLTT-K: time steps that get a backward pass; sltt-k (default: {d.K})")
    g.add_argument("--chunk", type=int, default=None,
                   help="time steps per application of the model (docs/schedules.md: the same "
                        "gradient, memory against speed); bptt (default: T), sltt, sltt-k, "
                        "ottt-a (default: 1)")
    g.add_argument("--online", action="store_true", default=None,
                   help="TBPTT: an optimizer step after every window instead of one per "
                        "batch; tbptt, tbptt-local")
    g.add_argument("--remat", action="store_true", default=None,
                   help="recompute the forward during the backward (docs/schedules.md: the "
                        "same gradient, memory O(√T) of the neuron states instead of O(T) "
                        "residuals, one more forward pass); bptt, tbptt, local, tbptt-local")
    g.add_argument("--bits", action="store_true", default=None,
                   help="keep the spikes that synapses read for their weight gradients as "
                        "bits (docs/schedules.md: the same gradient, less memory, the time "
                        "to pack them; not with --remat); every rule but eprop and ostl")
    g.add_argument("--feedback", choices=("symmetric", "random"), default=None,
                   help="e-prop's learning signal: the output error through the readout's "
                        "transposed weights (symmetric) or fixed random matrices (random); "
                        f"eprop (default: {d.feedback})")


def _add_data_args(g, d) -> None:
    from snnjax import data

    g.add_argument("--dataset", default=d.dataset,
                   help=f"one of {', '.join(data.names())}; digits ships with the install and "
                        "temporal_order (a recurrent task) is generated, the others are read "
                        "from --data-dir")
    g.add_argument("--data-dir", default=None, metavar="DIR",
                   help="tfds directory prepared as array_record, or the folder holding "
                        "tonic's dataset folders (NMNIST, DVSGesture, CIFAR10DVS)")
    g.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="where converted frames are cached (default: DATA_DIR/snnjax_cache), "
                        "e.g. when --data-dir is read-only")
    g.add_argument("--T", type=int, default=d.T, help="time steps per sample")
    g.add_argument("--encoding", default=d.encoding, choices=["direct", "poisson"],
                   help="how a static image becomes T inputs: the image at every step "
                        "(direct) or Bernoulli spikes (poisson)")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from snnjax import models, rules, surrogate
    from snnjax.experiment import TrainConfig

    d = TrainConfig()
    p.add_argument("--rule", default=d.rule, help=f"training rule: {', '.join(rules.NAMES)}")
    _add_rule_args(p, d)

    g = p.add_argument_group("model and neuron")
    g.add_argument("--model", default=d.model, help=f"network: {', '.join(models.names())}")
    g.add_argument("--hidden", type=_int_tuple, default=None, metavar="INT,...",
                   help=f"hidden widths, e.g. 128,64; mlp, rsnn, rsnn_alif (default: "
                        f"{','.join(map(str, d.hidden))})")
    g.add_argument("--width", type=float, default=None, metavar="FLOAT",
                   help=f"channel-width multiplier of the conv models that take one "
                        f"(default: {d.width})")
    g.add_argument("--dropout", type=float, default=None, metavar="FLOAT",
                   help=f"dropout rate in [0, 1) (default: {d.dropout})")
    g.add_argument("--pool", default=None, choices=["avg", "max"],
                   help="pooling of the conv models (default: the model's own)")
    g.add_argument("--tau", type=float, default=d.tau,
                   help="LIF membrane time constant τ; the decay is λ = 1 - 1/τ")
    g.add_argument("--v-th", type=float, default=d.v_th, help="firing threshold")
    g.add_argument("--reset", default=d.reset, choices=["soft", "hard"],
                   help="after a spike, subtract the threshold (soft) or set to zero (hard)")
    g.add_argument("--detach-reset", action="store_true",
                   help="no gradient through the reset")
    g.add_argument("--surrogate", default=d.surrogate,
                   help=f"surrogate spike derivative: {', '.join(surrogate.NAMES)}")
    g.add_argument("--surrogate-alpha", type=float, default=None,
                   help="sharpness of the surrogate (default: the surrogate's own)")
    g.add_argument("--mse", type=float, default=d.mse,
                   help="λ_mse of the per-step loss (1 - λ_mse)·CE + λ_mse·MSE")

    g = p.add_argument_group("data")
    _add_data_args(g, d)

    g = p.add_argument_group("optimization")
    g.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training set")
    g.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="samples per batch (split over the devices when data parallel)")
    g.add_argument("--optimizer", default=d.optimizer, help="adam, adamw or sgd")
    g.add_argument("--lr", type=float, default=d.lr, help="(peak) learning rate")
    g.add_argument("--schedule", default=d.schedule, choices=["cosine", "constant"],
                   help="learning rate: cosine decay stepped per epoch, or constant")
    g.add_argument("--momentum", type=float, default=None, metavar="FLOAT",
                   help=f"SGD momentum; sgd only (default: {d.momentum})")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="weight decay (adam with a nonzero decay is adamw)")
    g.add_argument("--seed", type=int, default=d.seed,
                   help="seed of initialisation, shuffling, dropout and Poisson encoding")

    g = p.add_argument_group("scale-out and checkpoints")
    g.add_argument("--devices", type=int, default=d.devices,
                   help="data parallel over this many devices (default: all)")
    g.add_argument("--distributed", action="store_true",
                   help="multi-host: jax.distributed.initialize (env JAX_COORDINATOR_ADDRESS, "
                        "JAX_NUM_PROCESSES, JAX_PROCESS_ID, or auto-detected)")
    g.add_argument("--checkpoint-dir", default=d.checkpoint_dir, metavar="DIR",
                   help="write checkpoints here at every epoch end (needs snnjax[checkpoint])")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="also checkpoint every N training steps (0: epoch ends only)")
    g.add_argument("--keep-checkpoints", type=int, default=None, metavar="INT",
                   help=f"keep the newest N checkpoints (default: {d.keep_checkpoints})")
    g.add_argument("--resume", action="store_true",
                   help="continue from the newest readable checkpoint in --checkpoint-dir "
                        "(a finished run is reported, not retrained)")

    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="FILE",
                   help="write the results here as JSON: config, per-epoch history, final "
                        "accuracy, step time, compiled memory")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


# ---------------------------------------------------------------------------- checks


def _refuse_unused_rule_params(rule_names, given: set[str]) -> None:
    """A rule parameter given on the command line that none of ``rule_names`` uses."""
    used = frozenset().union(*(_rule_params(r) for r in rule_names))
    unused = [k for k in _FLAG if k in given and k not in used]
    if unused:
        flags = " and ".join(_FLAG[k] for k in unused)
        users = sorted({r for r, ps in RULE_PARAMS.items() if set(unused) & ps})
        which = "rule" if len(rule_names) == 1 else "rules"
        raise ValueError(
            f"{which} {', '.join(rule_names)} {'do' if len(rule_names) > 1 else 'does'} not use "
            f"{flags} (only {', '.join(users)} {'do' if len(users) > 1 else 'does'}): drop "
            f"{'them' if len(unused) > 1 else 'it'}"
        )


def _check_train_args(args) -> None:
    """Flags the chosen rule, model or dataset would ignore; the output path."""
    from snnjax import models

    given = {k for k in (*_FLAG, *_MODEL_OPTIONS, "momentum", "keep_checkpoints", "data_dir")
             if getattr(args, k, None) is not None}
    if _rule_key(args.rule) in RULE_PARAMS:
        _refuse_unused_rule_params([args.rule], given)
    if args.dataset.replace("-", "_").lower() in _BUILT_IN_DATASETS and "data_dir" in given:
        raise ValueError(f"dataset {args.dataset!r} ships with snnjax: it takes no --data-dir")
    if "momentum" in given and args.optimizer.lower() != "sgd":
        raise ValueError(f"--momentum is used by --optimizer sgd only, not {args.optimizer!r}")
    if "keep_checkpoints" in given and not args.checkpoint_dir:
        raise ValueError("--keep-checkpoints needs --checkpoint-dir")
    if args.model.replace("-", "_").lower() in models.names():
        import inspect

        accepted = inspect.signature(models.factory(args.model)).parameters
        for k, flag in _MODEL_OPTIONS.items():
            if k in given and k not in accepted:
                raise ValueError(f"model {args.model!r} takes no {flag}: drop it")
    if args.out:
        _check_writable(args.out)
    if args.checkpoint_dir and "://" not in args.checkpoint_dir:  # URLs: checked by orbax
        check_writable_folder(args.checkpoint_dir, what="checkpoints", create=True)


def _check_writable(path: str) -> None:
    """Refuse an output file whose directory is missing or unwritable, or that is a
    directory, before hours of work."""
    if os.path.isdir(path):
        raise ValueError(f"cannot write {path}: it is a directory")
    check_writable_folder(os.path.dirname(os.path.abspath(path)), what=path)


# ---------------------------------------------------------------------------- output


def _finite(obj):
    """``obj`` with every NaN or infinite float as None (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _write_json(obj, path: str) -> None:
    with open(path, "w") as f:
        json.dump(_finite(obj), f, indent=2, allow_nan=False)
        f.write("\n")
    print(f"wrote {path}")


def _recorded_config(config: dict) -> dict:
    """The run's config without the rule parameters its rule does not use."""
    unused = _ALL_RULE_PARAMS - _rule_params(config["rule"])
    return {k: v for k, v in config.items() if k not in unused}


# ---------------------------------------------------------------------------- commands


def _config(args) -> "TrainConfig":  # noqa: F821
    """The TrainConfig of ``args``; an option left at None takes TrainConfig's default."""
    from snnjax.experiment import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None})


def _cmd_train(args) -> int:
    from snnjax.experiment import train_and_evaluate

    _check_train_args(args)
    cfg = _config(args)
    cfg.validate()
    # (Local on a model its blocks do not split warns when the trainer initialises.)
    result = train_and_evaluate(cfg, progress=not args.no_progress)
    result["config"] = _recorded_config(result["config"])
    mem = result["compiled_memory"]
    step = result["step_time_s"]
    timing = f"step {1e3 * step:.2f} ms  " if math.isfinite(step) else ""
    print(
        f"rule {result['rule']}  final test accuracy {100 * result['final_test_accuracy']:.2f}%  "
        f"{timing}compiled step memory {mem['memory_bytes'] / 2**20:.2f} MiB "
        f"(temp {mem['temp_bytes'] / 2**20:.2f} MiB)"
    )
    if args.out:
        _write_json(result, args.out)
    return 0


_GRADS_DEFAULTS = {"window": 2, "block_size": 1, "K": 1}  # window and K: at most T


def _cmd_compare_grads(args) -> int:
    from snnjax.diagnostics import compare_gradients_cli, format_rows

    names = [r for r in args.rules.split(",") if r]
    if not names:
        raise ValueError("--rules is empty: give rule names separated by commas")
    _refuse_unused_rule_params(names, {k for k in _GRADS_DEFAULTS if getattr(args, k) is not None})
    if args.out:
        _check_writable(args.out)
    params = {
        k: (min(d, args.T) if k in ("window", "K") else d) if getattr(args, k) is None
        else getattr(args, k)
        for k, d in _GRADS_DEFAULTS.items()
    }
    used = frozenset().union(*(_rule_params(r) for r in names))
    config = {
        "model": args.model, "dataset": args.dataset, "T": args.T,
        "batch_size": args.batch_size, "seed": args.seed, "reference": "bptt", "rules": names,
        **{k: v for k, v in params.items() if k in used},
    }
    print(f"model {args.model} on {args.dataset}, T {args.T}, batch {args.batch_size}, seed "
          f"{args.seed}" + "".join(f", {_FLAG[k]} {v}" for k, v in params.items() if k in used))
    print(f"rules {', '.join(names)}, each against bptt")
    rows = compare_gradients_cli(
        model=args.model, T=args.T, batch_size=args.batch_size, dataset=args.dataset,
        rules=names, seed=args.seed, **params,
    )
    print(format_rows(rows))
    if args.out:
        _write_json({"config": config, "rows": rows}, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snnjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, title="commands",
                                metavar="COMMAND")

    p = sub.add_parser(
        "train", help="train a spiking network with a training rule",
        description="Train a spiking network with a training rule; report the test accuracy, "
                    "step time and compiled step memory.",
    )
    _add_train_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "compare-grads", help="each rule's gradient against BPTT's, per parameter",
        description="Cosine similarity and norm ratio of each rule's gradient to BPTT's, per "
                    "parameter, on one batch through a freshly initialised model.",
    )
    p.add_argument("--model", default="mlp", help="network (see snnjax train --help)")
    p.add_argument("--dataset", default="digits", help="dataset of the batch")
    p.add_argument("--T", type=int, default=4, help="time steps")
    p.add_argument("--batch-size", type=int, default=32, help="samples in the batch")
    p.add_argument("--rules", default="tbptt,local,tbptt-local,sltt,sltt-k,ottt-a,ottt-o",
                   help="rules to compare with BPTT, separated by commas")
    p.add_argument("--window", type=int, default=None,
                   help="TBPTT window k; tbptt, tbptt-local (default: 2, at most T)")
    p.add_argument("--block-size", type=int, default=None,
                   help="Local: model units per block; local, tbptt-local (default: 1)")
    p.add_argument("--K", type=int, default=None,
                   help="SLTT-K: steps with a backward pass; sltt-k (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch and the parameters")
    p.add_argument("--out", "--json", dest="out", metavar="FILE",
                   help="write the config and the rows as JSON here")
    p.set_defaults(func=_cmd_compare_grads)

    from snnjax import bench

    bench.add_parser(sub)
    for _, each in walk(parser):
        each.formatter_class = _HelpFormatter
    return parser


class _StderrHandler(logging.Handler):
    """``snnjax: warning: ...``, one line on stderr (looked up at each record)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"snnjax: {record.levelname.lower()}: {self.format(record)}", file=sys.stderr)


def _require_extras(args) -> None:
    """Before any work: the optional packages this command will need."""
    if getattr(args, "plot", None) or getattr(args, "heatmap", None):
        from snnjax.bench import require_matplotlib

        require_matplotlib()


def _interrupted(args, argv: list[str]) -> str:
    """What Ctrl-C left behind: the last checkpoint and the command that resumes from it
    (the run's pending checkpoint writes have committed by the time this is asked)."""
    if args.command != "train":
        return "snnjax: interrupted"
    if not args.checkpoint_dir:
        return ("snnjax: interrupted; no checkpoint was written (a run can be resumed only "
                "with --checkpoint-dir DIR)")
    from snnjax.checkpoint import latest_complete_step

    again = shlex.join(["snnjax", *argv, *([] if args.resume else ["--resume"])])
    try:
        step = latest_complete_step(args.checkpoint_dir)
    except (ImportError, OSError):  # no orbax, or the folder is gone: nothing to resume
        step = None
    if step is None:
        return (f"snnjax: interrupted before the first checkpoint in {args.checkpoint_dir}; "
                f"start again with: {again}")
    return (f"snnjax: interrupted; the last checkpoint is step {step} in "
            f"{args.checkpoint_dir}; resume with: {again}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    logger = logging.getLogger("snnjax")
    handler, saved = _StderrHandler(), (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    from snnjax.targets import TargetUnavailableError

    try:
        _require_extras(args)
        return args.func(args)
    except (ValueError, FileNotFoundError, FloatingPointError, TargetUnavailableError) as e:
        print(f"snnjax: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _exit_interrupted(args, argv)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _exit_interrupted(args, argv: list[str]) -> int:
    """Say what Ctrl-C left behind, then exit with 130 (128 + SIGINT) at once: the
    interpreter's teardown would stop the data loader's and XLA's threads mid-work, which
    can abort the process with a C++ error instead of the exit code."""
    print(_interrupted(args, argv), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
