"""A recurrent task (issue 25): the rules on a recurrent spiking net that must remember.

Paper: the task is Hochreiter & Schmidhuber's temporal order problem (Neural Computation 9,
1997, experiment 6a) reduced to spikes (``snnjax.data.temporal_order``: two cues X and Y far
apart in time, the label is which came first); the network is a recurrent spiking net of LIF
or ALIF neurons as in Bellec et al., "A solution to the learning dilemma for recurrent
networks of spiking neurons", Nat. Commun. 11:3625 (2020), whose e-prop (symmetric and
random feedback) is among the rules compared here. No paper reports this table: the *paper* column stays empty.

Expected: BPTT learns the task, far above the 50 % chance level at which a feed-forward net
of the same width stays (``tests/test_temporal_order.py``). The rules that cut every
temporal route (SLTT, OTTT) and TBPTT with a window that does not hold both cues carry no
gradient from the second cue back to the first; they can still learn, one step at a time:
the first cue alone decides the label, so the per-step loss rewards spikes that hold it from
the first cue on, and ``W_rec``'s one-step gradient ``δ[t]·s[t-1]ᵀ`` (``â[t-1]`` under OTTT)
teaches the layer to keep what its spikes of the step before held. Whether that takes hold
varies from run to run (one seed per cell here). Compiled memory against T (the cost table):
BPTT grows linearly with T, TBPTT(k) stops growing at T = k, SLTT and OTTT stay flat.

Hyperparameters (ours): one recurrent layer of 64 neurons (``rsnn``; ``rsnn_alif``:
ALIF with ρ = 0.9, β = 1), LIF τ = 2, soft reset, sigmoid surrogate α = 4; per-step CE; Adam,
lr 0.01, cosine decay per epoch; batch 32. TBPTT's window k = 8 splits the two cues into
different windows at T = 24 (cues at steps 6-7 and 14-15). OTTT refuses ALIF (its trace
assumes one time constant): the rules are compared on LIF, and on ALIF where they apply.

Adding a rule is one line in ``_RULES`` (e.g. ``"OSTL": {"rule": "ostl"}``), plus its
label in ``_LIF_ONLY`` if it refuses ALIF.

Commands:
    python -m experiments.run recurrent --preset small --out experiments/results
    python -m experiments.run recurrent --preset paper --out results/   # longer, GPU

Runtime: ``small``: 11 runs at T = 24, 12 epochs each, and the memory of every run's step
compiled at T = 8, 16, 32, 64, about 8 minutes on 2 CPU cores (measured: 5.6 for the seven
runs before e-prop, on a shared machine, and 1.9 for the four e-prop runs).
``paper`` (not run here): the same table at T = 48 (a delay of 14 steps), 256 neurons,
50 epochs.
"""

from __future__ import annotations

import dataclasses

from experiments.common import Experiment, Run, check_preset, smoke
from snnjax.experiment import TrainConfig

_PAPER = (
    "Hochreiter & Schmidhuber, Long Short-Term Memory, Neural Computation 1997 (the temporal "
    "order problem); Bellec et al., A solution to the learning dilemma for recurrent "
    "networks of spiking neurons, Nat. Commun. 2020 (recurrent LIF/ALIF nets, e-prop)"
)

# The rules compared, by label: TrainConfig fields. One line per rule.
_RULES = {
    "BPTT": {"rule": "bptt"},
    "TBPTT (k=8)": {"rule": "tbptt", "window": 8},
    "SLTT": {"rule": "sltt"},
    "OTTT_A": {"rule": "ottt-a"},
    "e-prop": {"rule": "eprop"},
    "e-prop (random B)": {"rule": "eprop", "feedback": "random"},
}
# Rules that refuse ALIF (a second state variable: OTTT's trace assumes one time constant).
_LIF_ONLY = frozenset({"OTTT_A"})

_NEURONS = {"LIF": "rsnn", "ALIF": "rsnn_alif"}

_BASE = TrainConfig(
    model="rsnn", dataset="temporal_order", hidden=(64,), tau=2.0, reset="soft",
    surrogate="sigmoid", surrogate_alpha=4.0, optimizer="adam", lr=1e-2, schedule="cosine",
    batch_size=32,
)

#: T at which every run's training step is compiled for the cost table (memory against T).
MEMORY_T = (8, 16, 32, 64)


def _runs(base: TrainConfig) -> tuple[Run, ...]:
    return tuple(
        Run({"neuron": neuron, "rule": label},
            dataclasses.replace(base, model=model, **fields))
        for neuron, model in _NEURONS.items()
        for label, fields in _RULES.items()
        if neuron == "LIF" or label not in _LIF_ONLY
    )


def _experiment(preset: str, base: TrainConfig, title: str, notes: str) -> Experiment:
    return Experiment(
        "recurrent", title, _PAPER, preset, _runs(base), group="neuron",
        baseline={"rule": "BPTT"}, memory_T=MEMORY_T, notes=notes,
    )


def _small() -> Experiment:
    return _experiment(
        "small", dataclasses.replace(_BASE, T=24, epochs=12),
        "Recurrent task: temporal order, rules on a recurrent SNN (small preset)",
        "Small preset: temporal order at T = 24 (cues at steps 6-7 and 14-15, chance 50 %), "
        "one recurrent layer of 64 neurons, 12 epochs of 2,048 samples, batch 32, one seed "
        "per cell. The cut rules (SLTT, OTTT) and TBPTT with a window that splits the cues "
        "get no gradient from the second cue back to the first; they can still learn step by "
        "step, as the first cue alone decides the label and the per-step loss rewards "
        "holding it, but whether that takes hold varies between runs: read their cells as "
        "one draw. The cost table compiles every run's training step at T = 8 … 64 (compile "
        "only; the input batch, which grows with T for every rule, is left out).",
    )


def _paper() -> Experiment:
    return _experiment(
        "paper", dataclasses.replace(_BASE, T=48, hidden=(256,), epochs=50, batch_size=64),
        "Recurrent task: temporal order, rules on a recurrent SNN",
        "Temporal order at T = 48 (a delay of 14 steps), one recurrent layer of 256 neurons, "
        "50 epochs, batch 64.",
    )


def get_config(preset: str = "small") -> Experiment:
    """The recurrent-task table: ``"paper"`` (longer), ``"small"`` (CPU) or ``"smoke"``."""
    check_preset(preset)
    if preset == "paper":
        return _paper()
    if preset == "small":
        return _small()
    # T = 8: the task needs T >= 4 (two cues of two steps); cost table at two lengths.
    return dataclasses.replace(smoke(_small, T=8, runs=(0, 2, 3)), memory_T=(8, 16))
