"""A whole training run from one config: data, model, rule, optimizer, loop, results."""

from __future__ import annotations

import dataclasses
import inspect
import statistics
import time
from typing import Any

import jax
import numpy as np
import optax

from snnjax import data as data_lib
from snnjax import losses, models, rules, surrogate
from snnjax.cost import compiled_memory
from snnjax.neuron import LIFParams
from snnjax.train import Trainer

__all__ = ["TrainConfig", "make_optimizer", "make_rule", "make_model", "train_and_evaluate"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rerun a training run (written to the results JSON)."""

    rule: str = "bptt"
    model: str = "mlp"
    dataset: str = "digits"
    data_dir: str | None = None
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
    # the rules' parameters
    window: int = 2
    block_size: int = 1
    K: int = 1
    online: bool = False
    # model options
    hidden: tuple[int, ...] = (128,)
    width: float = 1.0
    norm: bool | None = None
    dropout: float = 0.0

    def validate(self) -> None:
        if self.T < 1:
            raise ValueError(f"T (time steps) must be >= 1, got {self.T}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")


def make_rule(cfg: TrainConfig) -> rules.Rule:
    return rules.by_name(
        cfg.rule, window=cfg.window, block_size=cfg.block_size, K=cfg.K, online=cfg.online
    )


def make_model(cfg: TrainConfig, num_classes: int):
    """The model named by ``cfg.model``, given the config's options that its factory takes."""
    neuron = LIFParams.from_tau(
        cfg.tau, v_th=cfg.v_th, reset=cfg.reset, detach_reset=cfg.detach_reset,
        surrogate=surrogate.get(cfg.surrogate, cfg.surrogate_alpha),
    )
    options: dict[str, Any] = {
        "neuron": neuron, "hidden": tuple(cfg.hidden), "width": cfg.width,
        "dropout": cfg.dropout, "norm": cfg.norm,
    }
    accepted = inspect.signature(models.factory(cfg.model)).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    return models.get(cfg.model, num_classes, **kwargs)


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam/AdamW/SGD with a cosine schedule stepped per epoch (as the papers do)."""
    if cfg.schedule == "cosine":
        per_epoch = optax.cosine_decay_schedule(cfg.lr, cfg.epochs)
        # OTTT_O and online TBPTT update several times per batch: count epochs, not updates.
        updates_per_step = cfg.T if cfg.rule == "ottt-o" else (
            -(-cfg.T // cfg.window) if cfg.online and "tbptt" in cfg.rule else 1
        )
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

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def train_and_evaluate(cfg: TrainConfig, *, progress: bool = True, log=None) -> dict:
    """Train ``cfg.model`` on ``cfg.dataset`` with ``cfg.rule``; return the results dict.

    Keys: ``config``, ``history`` (per epoch: ``loss``, ``train_accuracy``,
    ``test_accuracy``), ``final_test_accuracy`` (fraction), ``step_time_s`` (median seconds of
    a jitted training step, compile excluded), ``compiled_memory_bytes`` (temporaries +
    arguments + outputs of the compiled step) and ``compiled_memory`` (the breakdown).
    """
    cfg.validate()
    if log is None:
        from tqdm.auto import tqdm

        log = tqdm.write if progress else print
    train_set = data_lib.load(cfg.dataset, "train", data_dir=cfg.data_dir)
    test_set = data_lib.load(cfg.dataset, "test", data_dir=cfg.data_dir)
    train_loader = data_lib.Loader(
        train_set, cfg.batch_size, T=cfg.T, encoding=cfg.encoding, seed=cfg.seed
    )
    test_loader = data_lib.Loader(
        test_set, cfg.batch_size, T=cfg.T, encoding=cfg.encoding, shuffle=False,
        drop_last=False, seed=cfg.seed + 1,
    )
    model = make_model(cfg, train_set.num_classes)
    rule = make_rule(cfg)
    loss = losses.per_step(mse=cfg.mse)
    trainer = Trainer(model, rule, make_optimizer(cfg, len(train_loader)), loss)

    xs0, ys0 = next(train_loader.epoch(0))
    trainer.check(xs0, ys0)
    ts = trainer.init(jax.random.key(cfg.seed), xs0)
    memory = compiled_memory(trainer.lower(ts, xs0, ys0))

    history, step_times = [], []
    for epoch in range(cfg.epochs):
        losses_, accs = [], []
        batches = _progress(
            train_loader.epoch(epoch), len(train_loader), f"epoch {epoch + 1}/{cfg.epochs}",
            progress,
        )
        for xs, ys in batches:
            t0 = time.perf_counter()
            ts, metrics = trainer.step(ts, xs, ys, check=False)
            metrics = jax.device_get(metrics)  # waits for the step
            step_times.append(time.perf_counter() - t0)
            if not np.isfinite(metrics["loss"]):
                raise FloatingPointError(
                    f"loss is {metrics['loss']} at epoch {epoch + 1}: training diverged "
                    "(lower the learning rate?)"
                )
            losses_.append(float(metrics["loss"]))
            accs.append(float(metrics["accuracy"]))
        test_acc = trainer.evaluate(ts, test_loader.epoch(0))
        history.append({
            "epoch": epoch + 1,
            "loss": float(np.mean(losses_)),
            "train_accuracy": float(np.mean(accs)),
            "test_accuracy": test_acc,
        })
        log(
            f"epoch {epoch + 1:3d}  loss {history[-1]['loss']:.4f}  "
            f"train {100 * history[-1]['train_accuracy']:5.1f}%  test {100 * test_acc:5.1f}%"
        )
    # The first step of the run includes compilation: leave it out of the timing.
    timed = step_times[1:] or step_times
    return {
        "config": dataclasses.asdict(cfg),
        "rule": rule.name,
        "history": history,
        "final_test_accuracy": history[-1]["test_accuracy"],
        "step_time_s": statistics.median(timed),
        "compiled_memory_bytes": memory["memory_bytes"],
        "compiled_memory": memory,
        "backend": jax.default_backend(),
    }
