"""A whole training run from one config: data, model, rule, optimizer, loop, results."""

from __future__ import annotations

import dataclasses
import inspect
import json
import statistics
import time
from typing import Any

import jax
import numpy as np
import optax

from snnjax import data as data_lib
from snnjax import distributed, losses, models, rules, surrogate
from snnjax.cost import compiled_memory
from snnjax.neuron import LIFParams
from snnjax.train import Trainer, check_finite

__all__ = ["TrainConfig", "make_optimizer", "make_rule", "make_model", "make_trainer",
           "step_memory", "train_and_evaluate"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rerun a training run (written to the results JSON)."""

    rule: str = "bptt"
    model: str = "mlp"
    dataset: str = "digits"
    data_dir: str | None = None
    cache_dir: str | None = None  # converted-data caches (default: under data_dir)
    T: int = 4
    epochs: int = 15
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (stepped per epoch) or "constant"
    seed: int = 0
    encoding: str = "direct"
    # neuron and loss
    tau: float = 2.0
    v_th: float = 1.0
    reset: str = "soft"
    detach_reset: bool = False
    surrogate: str = "sigmoid"
    surrogate_alpha: float | None = None
    mse: float = 0.0
    mse_target: str | float = "onehot"  # or a constant (SLTT's CIFAR runs use 1.0)
    # the rules' parameters
    window: int = 2
    block_size: int = 1
    K: int = 1
    online: bool = False
    chunk: int | None = None
    remat: bool = False
    feedback: str = "symmetric"  # e-prop's learning signal: "symmetric" or "random"
    bits: bool = False
    # model options
    hidden: tuple[int, ...] = (128,)
    width: float = 1.0
    norm: bool | None = None
    dropout: float = 0.0
    pool: str | None = None  # "avg"/"max" for the models that take it (None: their default)
    # scale-out and resilience (snnjax.distributed, snnjax.checkpoint)
    devices: int | None = None  # data parallel over this many devices; None: all of them
    distributed: bool = False  # multi-host: jax.distributed.initialize (or SNNJAX_DISTRIBUTED=1)
    checkpoint_dir: str | None = None  # checkpoint at every epoch end (and every N steps)
    checkpoint_every: int = 0  # also every N training steps (0: epoch ends only)
    keep_checkpoints: int = 3  # keep the newest K
    resume: bool = False  # continue from the newest complete checkpoint in checkpoint_dir

    def validate(self) -> None:
        if self.T < 1:
            raise ValueError(f"T (time steps) must be >= 1, got {self.T}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a rate in [0, 1), got {self.dropout}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.devices is not None and self.devices < 1:
            raise ValueError(f"devices must be >= 1, got {self.devices}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 steps, got {self.checkpoint_every}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if (self.resume or self.checkpoint_every) and not self.checkpoint_dir:
            raise ValueError("--resume and --checkpoint-every need --checkpoint-dir")


def make_rule(cfg: TrainConfig) -> rules.Rule:
    return rules.by_name(
        cfg.rule, window=cfg.window, block_size=cfg.block_size, K=cfg.K, online=cfg.online,
        chunk=cfg.chunk, remat=cfg.remat, bits=cfg.bits, feedback=cfg.feedback,
    )


def make_model(cfg: TrainConfig, num_classes: int):
    """The model named by ``cfg.model``, given the config's options that its factory takes."""
    neuron = LIFParams.from_tau(
        cfg.tau, v_th=cfg.v_th, reset=cfg.reset, detach_reset=cfg.detach_reset,
        surrogate=surrogate.get(cfg.surrogate, cfg.surrogate_alpha),
    )
    options: dict[str, Any] = {
        "neuron": neuron, "hidden": tuple(cfg.hidden), "width": cfg.width,
        "dropout": cfg.dropout, "norm": cfg.norm, "pool": cfg.pool,
    }
    accepted = inspect.signature(models.factory(cfg.model)).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    return models.get(cfg.model, num_classes, **kwargs)


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam/AdamW/SGD with a cosine schedule stepped per epoch (as the papers do)."""
    if cfg.schedule == "cosine":
        per_epoch = optax.cosine_decay_schedule(cfg.lr, cfg.epochs)
        # OTTT_O and online TBPTT update several times per batch: count epochs, not updates.
        updates_per_step = make_rule(cfg).updates_per_batch(cfg.T)
        per_update = steps_per_epoch * updates_per_step
        lr = lambda count: per_epoch(count // per_update)  # noqa: E731
    else:
        lr = cfg.lr
    name = cfg.optimizer.lower()
    if name == "adam":
        return optax.adam(lr) if cfg.weight_decay == 0 else optax.adamw(lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return optax.adamw(lr, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return optax.chain(
            optax.add_decayed_weights(cfg.weight_decay),
            optax.sgd(lr, momentum=cfg.momentum or None),
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adam, adamw or sgd")


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    # disable=None: no bar where stderr is not a terminal (a pipe or a log file would keep
    # every redraw of it).
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True,
                disable=None)


# Config fields that may differ between a run and its resumption (they do not change
# what is computed, except that another device count changes float rounding).
_RUN_ONLY_FIELDS = frozenset(
    {"devices", "distributed", "checkpoint_dir", "checkpoint_every", "keep_checkpoints",
     "resume", "data_dir", "cache_dir"}
)


def _check_dataset(ds) -> None:
    """NaN/Inf in a dataset's in-memory samples: a clear error before anything compiles."""
    x = ds.x  # lazily decoded datasets (not arrays) are checked per batch, in the step
    if not (isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)):
        return
    if not np.isfinite(x).all():
        bad = np.unique(np.nonzero(~np.isfinite(x.reshape(len(x), -1)))[0])
        raise ValueError(
            f"dataset {ds.name!r}: {len(bad)} sample(s) contain NaN or Inf (first: index {bad[0]})"
        )


@dataclasses.dataclass
class _Position:
    """Where a run stands: next (epoch, batch), steps done, history, this epoch's metrics."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    losses: list = dataclasses.field(default_factory=list)
    accs: list = dataclasses.field(default_factory=list)

    def meta(self, cfg: TrainConfig) -> dict:
        # asdict copies the lists: an asynchronous checkpoint write sees this snapshot.
        return {**dataclasses.asdict(self), "config": dataclasses.asdict(cfg)}

    @classmethod
    def from_meta(cls, meta: dict) -> "_Position":
        return cls(**{f.name: meta[f.name] for f in dataclasses.fields(cls)})


def _open_checkpoints(cfg: TrainConfig, log):
    """``(Checkpointer or None, whether to resume from it)``.

    Runs before the training step compiles: refuses a used directory without ``resume``
    and a resumption whose config differs from the saved run's (read from the newest
    checkpoint whose metadata reads).
    """
    if not cfg.checkpoint_dir:
        return None, False
    from snnjax.checkpoint import Checkpointer

    ckpt = Checkpointer(cfg.checkpoint_dir, keep=cfg.keep_checkpoints)
    latest = ckpt.latest_step()
    if latest is None:
        if cfg.resume:
            log(f"no checkpoint in {ckpt.directory}: starting from scratch")
        return ckpt, False
    try:
        if not cfg.resume:
            raise ValueError(
                f"checkpoint directory {ckpt.directory} already holds a run (newest step "
                f"{latest}): pass --resume to continue it, or choose another --checkpoint-dir"
            )
        _check_same_run(cfg, ckpt.read_meta(), ckpt.directory)
    except (ValueError, FileNotFoundError):
        ckpt.close()
        raise
    return ckpt, True


def _check_same_run(cfg: TrainConfig, meta: dict, directory: str) -> None:
    """Refuse to resume a checkpoint whose saved config differs in what is computed."""
    saved, now = meta.get("config", {}), json.loads(json.dumps(dataclasses.asdict(cfg)))
    differ = sorted(k for k in now.keys() - _RUN_ONLY_FIELDS if saved.get(k, now[k]) != now[k])
    if differ:
        raise ValueError(
            f"cannot resume from {directory}: the config differs in "
            + ", ".join(f"{k} ({saved[k]!r} there, {now[k]!r} now)" for k in differ)
        )


def _resume(cfg, ckpt, resume, ts, log):
    """``(TrainState, _Position)`` of the newest readable checkpoint (or a fresh start)."""
    if not resume:
        return ts, _Position()
    ts, meta = ckpt.restore(like=ts)  # skips damaged checkpoints, with a warning each
    _check_same_run(cfg, meta, ckpt.directory)  # an older one than read_meta's, perhaps
    pos = _Position.from_meta(meta)
    if pos.epoch >= cfg.epochs:
        log(f"the run in {ckpt.directory} already finished ({cfg.epochs} epochs, step "
            f"{pos.step}): nothing left to train")
    else:
        log(f"resumed from step {pos.step} (epoch {pos.epoch + 1}, batch {pos.batch}) "
            f"in {ckpt.directory}")
    return ts, pos


def make_trainer(cfg: TrainConfig, num_classes: int, steps_per_epoch: int, *,
                 mesh=None) -> Trainer:
    """The :class:`~snnjax.train.Trainer` of ``cfg``: its model, rule, optimizer and loss."""
    return Trainer(
        make_model(cfg, num_classes), make_rule(cfg), make_optimizer(cfg, steps_per_epoch),
        losses.per_step(mse=cfg.mse, target=cfg.mse_target), mesh=mesh,
    )


def step_memory(cfg: TrainConfig) -> dict:
    """XLA's memory analysis of ``cfg``'s training step on one device, compile only (nothing
    is trained): the ``compiled_memory`` that :func:`train_and_evaluate` reports (bytes:
    ``temp_bytes``, ``argument_bytes``, ``output_bytes``, ``alias_bytes``, ``memory_bytes``).
    Deterministic for a given jax version, so committed results can be checked against it.
    """
    cfg.validate()
    train_set = data_lib.load(cfg.dataset, "train", data_dir=cfg.data_dir, T=cfg.T,
                              cache_dir=cfg.cache_dir)
    loader = data_lib.Loader(train_set, cfg.batch_size, T=cfg.T, encoding=cfg.encoding,
                             seed=cfg.seed)
    trainer = make_trainer(cfg, train_set.num_classes, len(loader))
    xs, ys = next(loader.epoch(0))
    trainer.check(xs, ys)
    ts = jax.eval_shape(lambda: trainer.init(jax.random.key(cfg.seed), xs))
    return compiled_memory(trainer.lower(ts, xs, ys))


def train_and_evaluate(cfg: TrainConfig, *, progress: bool = True, log=None) -> dict:
    """Train ``cfg.model`` on ``cfg.dataset`` with ``cfg.rule``; return the results dict.

    Keys: ``config``, ``history`` (per epoch: ``loss``, the readout's also under Local,
    ``train_accuracy``, ``test_accuracy``), ``final_test_accuracy`` (fraction),
    ``step_time_s`` (median seconds of a jitted training step, compile excluded),
    ``compiled_memory_bytes`` (temporaries + arguments + outputs of the compiled step),
    ``compiled_memory`` (the breakdown) and ``devices`` (data-parallel device count).

    Data parallel over ``cfg.devices`` devices (all by default; multi-host with
    ``cfg.distributed``). With ``cfg.checkpoint_dir``, a checkpoint at the end of every epoch
    and every ``cfg.checkpoint_every`` steps, keeping ``cfg.keep_checkpoints``;
    ``cfg.resume`` continues from the newest readable one (a damaged newer one is skipped
    with a warning), bit-identically to an uninterrupted run on the same machine and device
    count (checked on CPU; on GPUs XLA may pick non-deterministic reductions unless
    ``XLA_FLAGS=--xla_gpu_deterministic_ops=true``); resuming a finished run trains nothing
    and returns its results (``step_time_s`` NaN: no step was timed).
    A NaN/Inf input, loss or gradient raises FloatingPointError before anything non-finite
    is saved.
    """
    cfg.validate()
    if distributed.wants_distributed(cfg.distributed):
        distributed.initialize()
    dp = distributed.data_parallel(cfg.devices)
    if dp is not None:
        dp.check_batch_size(cfg.batch_size)  # before loading or compiling anything
    if log is None:
        from tqdm.auto import tqdm

        log = tqdm.write if progress else print
    if jax.process_index() != 0:
        log, progress = (lambda *a, **k: None), False
    # T reaches only event datasets (their frames); static images are encoded over T.
    train_set = data_lib.load(cfg.dataset, "train", data_dir=cfg.data_dir, T=cfg.T,
                              cache_dir=cfg.cache_dir)
    test_set = data_lib.load(cfg.dataset, "test", data_dir=cfg.data_dir, T=cfg.T,
                             cache_dir=cfg.cache_dir)
    _check_dataset(train_set)
    _check_dataset(test_set)
    train_loader = data_lib.Loader(  # multi-host: each host loads only its rows
        train_set, cfg.batch_size, T=cfg.T, encoding=cfg.encoding, seed=cfg.seed,
        data_parallel=dp if jax.process_count() > 1 else None,
    )
    test_loader = data_lib.Loader(
        test_set, cfg.batch_size, T=cfg.T, encoding=cfg.encoding, shuffle=False,
        drop_last=False, seed=cfg.seed + 1,
    )
    trainer = make_trainer(cfg, train_set.num_classes, len(train_loader),
                           mesh=None if dp is None else dp.mesh)

    xs0, ys0 = next(train_loader.epoch(0))
    trainer.check(xs0, ys0)
    ckpt, resume = _open_checkpoints(cfg, log)
    try:
        ts, pos = _resume(cfg, ckpt, resume, trainer.init(jax.random.key(cfg.seed), xs0), log)
        memory = compiled_memory(trainer.lower(ts, xs0, ys0))
        ts, step_times = _train_loop(
            cfg, trainer, ts, pos, train_loader, test_loader, ckpt, progress, log
        )
    finally:
        if ckpt is not None:
            ckpt.close()  # commits pending writes, also when training diverged
    history = pos.history
    # The first step of the run includes compilation: leave it out of the timing.
    timed = step_times[1:] or step_times
    return {
        "config": dataclasses.asdict(cfg),
        "rule": trainer.rule.name,
        "history": history,
        "final_test_accuracy": history[-1]["test_accuracy"],
        "step_time_s": statistics.median(timed) if timed else float("nan"),
        "compiled_memory_bytes": memory["memory_bytes"],
        "compiled_memory": memory,
        "backend": jax.default_backend(),
        "devices": 1 if dp is None else dp.num_devices,
    }


def _train_loop(cfg, trainer, ts, pos, train_loader, test_loader, ckpt, progress, log):
    """Epochs from ``pos`` on; updates ``pos`` in place; returns ``(ts, step times)``."""
    n_batches = len(train_loader)
    step_times: list[float] = []
    for epoch in range(pos.epoch, cfg.epochs):
        batches = _progress(
            train_loader.epoch(epoch, start=pos.batch), n_batches - pos.batch,
            f"epoch {epoch + 1}/{cfg.epochs}", progress,
        )
        for b, (xs, ys) in enumerate(batches, start=pos.batch):
            t0 = time.perf_counter()
            ts, metrics = trainer.step(ts, xs, ys, check=False)
            metrics = jax.device_get(metrics)  # waits for the step
            step_times.append(time.perf_counter() - t0)
            try:
                check_finite(metrics, where=f"epoch {epoch + 1}, batch {b + 1}")
            except FloatingPointError as e:
                if ckpt is not None:
                    ckpt.wait()  # commit pending writes: they hold good states
                last = None if ckpt is None else ckpt.latest_step()
                hint = "" if last is None else (
                    f"; the last good checkpoint (step {last}) is in {ckpt.directory}"
                )
                raise FloatingPointError(f"{e}{hint}") from None
            pos.step += 1
            pos.losses.append(float(metrics["loss"]))
            pos.accs.append(float(metrics["accuracy"]))
            pos.epoch, pos.batch = epoch, b + 1
            if (ckpt is not None and cfg.checkpoint_every and pos.step % cfg.checkpoint_every == 0
                    and b + 1 < n_batches):  # the epoch-end checkpoint covers the last batch
                ckpt.save(pos.step, ts, pos.meta(cfg))
        test_acc = trainer.evaluate(ts, test_loader.epoch(0))
        pos.history.append({
            "epoch": epoch + 1,
            "loss": float(np.mean(pos.losses)),
            "train_accuracy": float(np.mean(pos.accs)),
            "test_accuracy": test_acc,
        })
        pos.epoch, pos.batch, pos.losses, pos.accs = epoch + 1, 0, [], []
        if ckpt is not None:
            ckpt.save(pos.step, ts, pos.meta(cfg))
        h = pos.history[-1]
        log(
            f"epoch {epoch + 1:3d}  loss {h['loss']:.4f}  "
            f"train {100 * h['train_accuracy']:5.1f}%  test {100 * test_acc:5.1f}%"
        )
    return ts, step_times
