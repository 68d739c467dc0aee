"""Guo et al. (2023), design space: truncation window k × local block size m.

Paper: Guo, Fouda, Eltawil, Salama, "Efficient training of spiking neural networks with
temporally-truncated local backpropagation through time", Front. Neurosci. 17:1047008
(2023), arXiv 2201.07210 — the design-space exploration of temporal truncation length and
local training block size, for a frame-based and an event-based dataset.

Expected (the paper's findings, from its abstract; ``docs/rules.md`` has no number for the grid):
truncation lowers accuracy on frame-based data but raises it on event-based data; local
training costs some accuracy but alleviates overfitting; combined, the accuracy drop slows
and can turn into a gain, while memory falls with both k and m.

Hyperparameters: the text available to us does not give the grid, the networks' layer lists
or the optimizer, so these are ours: the spiking AlexNet (:mod:`snnjax.models.alexnet`; 7
units, so m ∈ {1, 2, 4, global}), k ∈ {1, 2, 5, T}, T = 10 on both datasets; Adam, lr 1e-3
with cosine decay per epoch, 100 epochs, batch 64, LIF τ = 2, sigmoid surrogate, CE loss.
Frame-based: CIFAR-10 (direct encoding); event-based: CIFAR10-DVS (48×48, 2 polarities).
TBPTT's optimizer steps once per batch (the gradient accumulated over windows).

Commands:
    python -m experiments.run guo_sweep --preset paper --out results/   # GPU + datasets
    python -m experiments.run guo_sweep --preset small --out experiments/results

Runtime: ``paper`` was not run here (32 runs). ``small``: 18 runs (k ∈ {1, 2, T=4} ×
m ∈ {1, 3, global} on ``digits_std`` and ``digits_dvs``, AlexNet at 1/8 width, 5 epochs),
about 4 minutes on 2 CPU cores (measured: 3.4).
"""

from __future__ import annotations

import dataclasses

from experiments.common import Experiment, Run, for_preset, rule_for
from snnjax.experiment import TrainConfig

_PAPER = (
    "Guo et al., Efficient training of spiking neural networks with temporally-truncated "
    "local backpropagation through time, Front. Neurosci. 2023"
)

_BASE = TrainConfig(
    model="alexnet", tau=2.0, surrogate="sigmoid", optimizer="adam", lr=1e-3,
    schedule="cosine",
)

_FINDINGS = (
    "The paper's findings (abstract): truncation lowers accuracy on frame-based data and "
    "raises it on event-based data; local training alleviates overfitting; memory falls with "
    "shorter windows and smaller blocks."
)


def _grid(base, datasets, windows, blocks, T) -> tuple[Run, ...]:
    runs = []
    for label, name in datasets:
        for k in windows:
            for m in blocks:
                cfg = dataclasses.replace(
                    base, dataset=name, T=T, **rule_for(None if k == T else k, m)
                )
                runs.append(Run(
                    {"dataset": label, "window k": "T" if k == T else k,
                     "block m": "global" if m is None else m},
                    cfg,
                ))
    return tuple(runs)


def _paper() -> Experiment:
    base = dataclasses.replace(_BASE, epochs=100, batch_size=64)
    runs = _grid(
        base, [("CIFAR-10 (frames)", "cifar10"), ("CIFAR10-DVS (events)", "cifar10_dvs")],
        windows=(1, 2, 5, 10), blocks=(1, 2, 4, None), T=10,
    )
    return Experiment(
        "guo_sweep", "Guo et al.: window k × block size m, AlexNet", _PAPER, "paper", runs,
        group="dataset", grid=("window k", "block m"),
        baseline={"window k": "T", "block m": "global"}, notes=_FINDINGS,
    )


def _small() -> Experiment:
    base = dataclasses.replace(_BASE, width=0.125, epochs=5, batch_size=32)
    runs = _grid(
        base, [("digits (frames)", "digits_std"), ("digits-DVS (events)", "digits_dvs")],
        windows=(1, 2, 4), blocks=(1, 3, None), T=4,
    )
    return Experiment(
        "guo_sweep", "Guo et al.: window k × block size m, AlexNet (small preset)", _PAPER,
        "small", runs, group="dataset", grid=("window k", "block m"),
        baseline={"window k": "T", "block m": "global"},
        notes="Small preset: AlexNet at 1/8 width on 8×8 digits, T = 4, 5 epochs. " + _FINDINGS,
    )


def get_config(preset: str = "small") -> Experiment:
    """The design-space sweep: ``"paper"``, ``"small"`` (CPU, digits) or ``"smoke"`` (tests)."""
    # smoke: k=1, m=1 and the BPTT corner, frames
    return for_preset(preset, paper=_paper, small=_small, smoke_runs=(0, 8))
