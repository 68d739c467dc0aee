"""What a paper-table config is: runs (table cells) with their training configs and the
paper's number, plus the helpers the configs share.

A config module (``experiments/ottt.py``, ...) has ``get_config(preset) -> Experiment`` with
presets ``"paper"`` (the paper's hyperparameters, its datasets, a GPU), ``"small"`` (the
same comparison on the offline digit stand-ins, minutes on a CPU) and ``"smoke"`` (the small
preset shrunk to seconds, for tests).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from snnjax.experiment import TrainConfig

__all__ = [
    "PRESETS", "Run", "Experiment", "smoke", "check_preset", "for_preset", "rule_for",
    "dataset_table",
]

PRESETS = ("paper", "small", "smoke")


@dataclasses.dataclass(frozen=True)
class Run:
    """One cell of a paper table.

    Attributes:
      labels: what identifies the cell, in table order, e.g.
        ``{"dataset": "CIFAR-10", "method": "OTTT_A"}``.
      config: the training run.
      paper: the paper's accuracy for this cell as the headline numbers in ``docs/rules.md``
        quote it (e.g. ``"93.5–93.7"``), or None where it has none.
      cost: also count MACs and memory access of the training step (:func:`snnjax.cost.measure`).
    """

    labels: Mapping[str, Any]
    config: TrainConfig
    paper: str | None = None
    cost: bool = False

    @property
    def key(self) -> str:
        """A unique, file-name-safe id, e.g. ``CIFAR-10/OTTT_A``."""
        return "/".join(str(v) for v in self.labels.values())


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A paper table: its runs and how to lay them out.

    Attributes:
      name: the config module's name (``"ottt"``).
      title: the table's title.
      paper: the citation.
      preset: ``"paper"``, ``"small"`` or ``"smoke"``.
      runs: the cells.
      group: a label key that splits the table into one table per value (e.g. ``"dataset"``).
      grid: ``(row key, column key)`` to lay a group out as a matrix (the design-space sweep).
      baseline: label values of the run the others are compared to (``{"method": "BPTT"}``):
        the report adds relative columns against it, per group.
      paper_deltas: the paper's relative numbers against the baseline, by column name.
      notes: what the preset changes from the paper, and what the paper found.
    """

    name: str
    title: str
    paper: str
    preset: str
    runs: tuple[Run, ...]
    group: str | None = None
    grid: tuple[str, str] | None = None
    baseline: Mapping[str, Any] | None = None
    paper_deltas: Mapping[str, str] | None = None
    notes: str = ""

    def __post_init__(self):
        keys = [r.key for r in self.runs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.name}: two runs share labels: {keys}")

    def select(self, pattern: str | None) -> "Experiment":
        """Only the runs whose key contains ``pattern`` (case-insensitive)."""
        if not pattern:
            return self
        runs = tuple(r for r in self.runs if pattern.lower() in r.key.lower())
        if not runs:
            raise ValueError(f"{self.name}: no run matches {pattern!r}; runs: "
                             + ", ".join(r.key for r in self.runs))
        return dataclasses.replace(self, runs=runs)


def check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")


def for_preset(
    preset: str,
    *,
    paper: Callable[[], Experiment],
    small: Callable[[], Experiment],
    smoke_runs: int | Sequence[int] | None = None,
) -> Experiment:
    """The experiment of a preset: ``paper``, ``small``, or ``small`` shrunk by :func:`smoke`."""
    check_preset(preset)
    if preset == "paper":
        return paper()
    if preset == "small":
        return small()
    return smoke(small, runs=smoke_runs)


def rule_for(window: int | None, block_size: int | None) -> dict[str, Any]:
    """TrainConfig fields for Guo et al.'s TBPTT(k) × Local(m) cell.

    ``window=None`` is no truncation, ``block_size=None`` one global block: both None is BPTT.
    """
    if window is None and block_size is None:
        return {"rule": "bptt"}
    if block_size is None:
        return {"rule": "tbptt", "window": window}
    if window is None:
        return {"rule": "local", "block_size": block_size}
    return {"rule": "tbptt-local", "window": window, "block_size": block_size}


def dataset_table(
    name: str,
    title: str,
    paper: str,
    preset: str,
    base: TrainConfig,
    datasets: Sequence[tuple[str, Mapping[str, Any], str | None]],
    methods: Mapping[str, Mapping[str, Any]],
    *,
    paper_for: Callable[[str], bool] = lambda method: True,
    cost: bool = False,
    **fields: Any,
) -> Experiment:
    """A table with one run per (dataset, method), grouped by dataset.

    Each run is labelled ``{"dataset": label, "method": method}`` and configured as ``base``
    with the dataset's fields, then the method's (the method's win where both set one).

    Args:
      name, title, paper, preset: as :class:`Experiment`'s.
      datasets: ``(label, TrainConfig fields, the paper's accuracy or None)`` per dataset.
      methods: ``{method label: TrainConfig fields}``.
      paper_for: which methods' rows show the paper's accuracy (default all).
      cost: count MACs and memory access of every run (:attr:`Run.cost`).
      **fields: further :class:`Experiment` fields (``baseline``, ``notes``, ...).
    """
    runs = tuple(
        Run({"dataset": label, "method": method},
            dataclasses.replace(base, **{**dict(data), **dict(how)}),
            paper=acc if paper_for(method) else None, cost=cost)
        for label, data, acc in datasets
        for method, how in methods.items()
    )
    return Experiment(name, title, paper, preset, runs, group="dataset", **fields)


def _shrink(cfg: TrainConfig, T: int) -> TrainConfig:
    return dataclasses.replace(
        cfg,
        T=T,
        epochs=1,
        batch_size=256,
        width=min(cfg.width, 1 / 16),
        window=min(cfg.window, T),
        K=min(cfg.K, T),
    )


def smoke(
    small: Callable[[], Experiment], *, T: int = 2, runs: int | Sequence[int] | None = None
) -> Experiment:
    """The small preset shrunk to seconds: T=2, one epoch, batches of 256, width ≤ 1/16.

    Windows and K are clamped to T; ``runs`` keeps the first few cells (an int) or the cells
    at these indices.
    """
    exp = small()
    if runs is None:
        kept = exp.runs
    elif isinstance(runs, int):
        kept = exp.runs[:runs]
    else:
        kept = tuple(exp.runs[i] for i in runs)
    new = tuple(dataclasses.replace(r, config=_shrink(r.config, T)) for r in kept)
    # The small preset's title and notes describe its epochs and widths: not these.
    title = exp.title.replace("(small preset)", "").rstrip() + " (smoke preset)"
    notes = (f"Smoke preset: the small preset shrunk to seconds (T = {T}, one epoch, batches "
             "of 256, width ≤ 1/16, some of its runs): it checks that the pipeline runs; its "
             "accuracies say nothing about the rules.")
    return dataclasses.replace(exp, preset="smoke", runs=new, title=title, notes=notes)
