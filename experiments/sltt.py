"""SLTT (Meng et al., ICCV 2023): SLTT and SLTT-K against BPTT.

Paper: Meng, Xiao, Yan, Wang, Lin, Luo, "Towards Memory- and Time-Efficient Backpropagation
for Training Spiking Neural Networks", ICCV 2023, arXiv 2302.14311 — the comparison with
BPTT (accuracy, memory, time) and the main results table: PreAct ResNet-18 on CIFAR-10/100
(T = 6), VGG-11 with BatchNorm on CIFAR10-DVS (T = 10, SLTT-K with K = 2) and DVS128 Gesture
(T = 20, K = 4).

Expected (the headline numbers in ``docs/rules.md``): SLTT CIFAR-10 ResNet-18 94.4 %,
CIFAR-100 74.4 %, CIFAR10-DVS VGG-11 82.2 %; with memory and time well below BPTT's (−70 % /
−50 % on ImageNet).

Hyperparameters (the authors' README commands and script defaults): LIF τ = 1.1, V_th = 1,
soft reset, triangle surrogate; SGD momentum 0.9, lr 0.1 with cosine annealing stepped per
epoch, batch 128; CIFAR: 200 epochs, weight decay 5e-5 (CIFAR-10) / 5e-4 (CIFAR-100), loss
0.95·CE + 0.05·MSE against the constant 1.0; CIFAR10-DVS: 300 epochs, lr 0.05, weight decay
5e-4, dropout 0.3, MSE against one-hot; DVS128 Gesture: 300 epochs, batch 16, dropout 0.4,
weight decay 5e-4, MSE against 1.0. BPTT uses the same settings.

Commands:
    python -m experiments.run sltt --preset paper --out results/   # GPU + datasets
    python -m experiments.run sltt --preset small --out experiments/results

Runtime: ``paper`` was not run here (10 runs of 200–300 epochs; needs a GPU and the
datasets). ``small``: 5 runs on the digit stand-ins, about 2 minutes on 2 CPU cores
(measured: 1.5).

The small preset: ResNet-18 at 1/8 width on ``digits_std`` (T = 6; BPTT, SLTT) and VGG-11-BN
at 1/8 width on ``digits_dvs`` (T = 10; BPTT, SLTT, SLTT-K with K = 2), 8 epochs, batch 32,
no dropout (1/8 of the channels leaves too few for dropout 0.3 to help in 8 epochs).
"""

from __future__ import annotations

import dataclasses

from experiments.common import Experiment, Run, for_preset
from snnjax.experiment import TrainConfig

_PAPER = (
    "Meng et al., Towards Memory- and Time-Efficient Backpropagation for Training Spiking "
    "Neural Networks, ICCV 2023"
)

_BASE = TrainConfig(
    tau=1.1, v_th=1.0, reset="soft", surrogate="triangle", surrogate_alpha=1.0,
    optimizer="sgd", lr=0.1, momentum=0.9, schedule="cosine", batch_size=128, mse=0.05,
)


def _paper() -> Experiment:
    resnet = dataclasses.replace(_BASE, model="resnet18", T=6, epochs=200, mse_target=1.0)
    vgg = dataclasses.replace(_BASE, model="vgg11_bn", epochs=300, weight_decay=5e-4)
    cells = [
        # (dataset label, config, {method: (rule, K)}, paper accuracy of SLTT)
        ("CIFAR-10", dataclasses.replace(resnet, dataset="cifar10", weight_decay=5e-5),
         {"BPTT": ("bptt", 1), "SLTT": ("sltt", 1)}, "94.4"),
        ("CIFAR-100", dataclasses.replace(resnet, dataset="cifar100", weight_decay=5e-4),
         {"BPTT": ("bptt", 1), "SLTT": ("sltt", 1)}, "74.4"),
        ("CIFAR10-DVS", dataclasses.replace(
            vgg, dataset="cifar10_dvs", T=10, lr=0.05, dropout=0.3, mse_target="onehot"),
         {"BPTT": ("bptt", 1), "SLTT": ("sltt", 1), "SLTT-2": ("sltt-k", 2)}, "82.2"),
        ("DVS128 Gesture", dataclasses.replace(
            vgg, dataset="dvs_gesture", T=20, batch_size=16, dropout=0.4, mse_target=1.0),
         {"BPTT": ("bptt", 1), "SLTT": ("sltt", 1), "SLTT-4": ("sltt-k", 4)}, None),
    ]
    runs = _runs(cells, suffix="")
    return Experiment(
        "sltt", "SLTT: SLTT and SLTT-K vs BPTT", _PAPER, "paper", tuple(runs),
        group="dataset", baseline={"method": "BPTT"},
    )


def _runs(cells, *, suffix: str) -> list[Run]:
    """One run per (cell, method); the paper's number sits beside SLTT's row."""
    runs = []
    for label, cfg, methods, acc in cells:
        net = ("ResNet-18" if cfg.model == "resnet18" else "VGG-11 (BN)") + suffix
        for method, (rule, K) in methods.items():
            runs.append(Run(
                {"dataset": label, "network": net, "method": method},
                dataclasses.replace(cfg, rule=rule, K=K),
                paper=acc if method == "SLTT" else None,
            ))
    return runs


def _small() -> Experiment:
    small = dataclasses.replace(_BASE, width=0.125, epochs=8, batch_size=32)
    cells = [
        ("digits (frames, for CIFAR-10)", dataclasses.replace(
            small, model="resnet18", dataset="digits_std", T=6, weight_decay=5e-5,
            mse_target=1.0),
         {"BPTT": ("bptt", 1), "SLTT": ("sltt", 1)}, "94.4"),
        ("digits-DVS (events, for CIFAR10-DVS)", dataclasses.replace(
            small, model="vgg11_bn", dataset="digits_dvs", T=10, weight_decay=5e-4),
         {"BPTT": ("bptt", 1), "SLTT": ("sltt", 1), "SLTT-2": ("sltt-k", 2)}, "82.2"),
    ]
    runs = _runs(cells, suffix=" ×1/8")
    return Experiment(
        "sltt", "SLTT: SLTT and SLTT-K vs BPTT (small preset)", _PAPER, "small", tuple(runs),
        group="dataset", baseline={"method": "BPTT"},
        notes=(
            "Small preset: networks at 1/8 width on 8×8 digits, 8 epochs, batch 32, no "
            "dropout; the paper's numbers are for the full datasets and are shown for "
            "orientation only. SLTT's claim to check at this scale: accuracy close to BPTT "
            "with less memory and time per step (SLTT-K: less again)."
        ),
    )


def get_config(preset: str = "small") -> Experiment:
    """The SLTT table: ``"paper"``, ``"small"`` (CPU, digits) or ``"smoke"`` (tests)."""
    return for_preset(preset, paper=_paper, small=_small, smoke_runs=2)
