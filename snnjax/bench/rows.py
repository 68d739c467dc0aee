"""Measured cost rows: one per (rule, T), and Guo et al.'s window × block-size grid.

Each row is :func:`snnjax.cost.measure`'s figures for one cell, logged as a table line as it
comes.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from snnjax.bench.text import format_table

__all__ = ["cannot_run", "cost_rows", "grid_rows"]


def cannot_run(rule, T: int) -> str | None:
    """None if ``rule`` can run with T steps, else why not."""
    try:
        rule.plan(T)
    except ValueError as e:
        return str(e)
    return None


_ROW_KEYS = (
    "rule", "T", "batch_size", "temp_bytes", "argument_bytes", "output_bytes", "alias_bytes",
    "memory_bytes", "device_peak_bytes", "macs", "forward_macs", "backward_macs", "trace_ops",
    "forward_acs", "forward_nonspike_macs", "firing_rate", "memory_access_bytes",
    "memory_access", "step_time_s",
)


def _row(measured: dict, **extra) -> dict:
    return {**extra, **{k: measured[k] for k in _ROW_KEYS}}


def _measure_rows(
    model,
    cells: Iterable[str | tuple[Any, int, dict]],
    *,
    batch_size: int,
    input_shape: Sequence[int],
    steps: int,
    rates: bool,
    log: Callable[[str], None],
    target=None,
) -> list[dict]:
    """One row of :func:`snnjax.cost.measure` per cell ``(rule, T, extra fields)``, logged as
    a table line as it comes (the header before the first); a cell that is a string is a
    note on a skipped cell, logged in its place."""
    from snnjax import cost
    from snnjax.train import Trainer

    rows: list[dict] = []
    for cell in cells:
        if isinstance(cell, str):
            log(cell)
            continue
        rule, T, extra = cell
        trainer = Trainer(model, rule, cost.default_optimizer())
        m = cost.measure(trainer, T=T, batch_size=batch_size, input_shape=input_shape,
                         time_steps=steps, rates=rates, target=target)
        rows.append(_row(m, target=m["target"], **extra))
        log(format_table([rows[-1]], header=len(rows) == 1))
    return rows


def cost_rows(
    model,
    rule_list: Sequence[tuple[str, Any]],
    Ts: Sequence[int],
    *,
    batch_size: int,
    input_shape: Sequence[int],
    steps: int = 3,
    log: Callable[[str], None] = print,
    target=None,
) -> list[dict]:
    """One row of :func:`snnjax.cost.measure` per (rule, T); a rule that cannot run at a T
    (window or K > T) is skipped with a note.

    Args:
      rule_list: ``(cli name, Rule)`` pairs.
      target: the device the memory is compiled for (:mod:`snnjax.targets`; None: this
        machine's default device).
    """

    def cells():
        for name, rule in rule_list:
            for T in Ts:
                why = cannot_run(rule, T)
                yield f"skip {name} at T={T}: {why}" if why else (rule, T, {"name": name})

    return _measure_rows(model, cells(), batch_size=batch_size, input_shape=input_shape,
                         steps=steps, rates=True, log=log, target=target)


def grid_rows(
    model,
    *,
    T: int,
    windows: Sequence[int],
    block_sizes: Sequence[int],
    batch_size: int,
    input_shape: Sequence[int],
    steps: int = 0,
    log: Callable[[str], None] = print,
    target=None,
) -> list[dict]:
    """Guo et al.'s design space: TBPTT(window) inside Local blocks of ``block_size`` units.

    A block size covering all units is plain TBPTT; a window of T is BPTT inside the blocks.
    ``target`` as for :func:`cost_rows`.
    """
    from snnjax import rules

    n_units = len(model.units)

    def cells():
        for k in windows:
            if k > T:
                yield f"skip window {k}: longer than T={T}"
                continue
            for m in block_sizes:
                inner = rules.tbptt(k)
                rule = inner if m >= n_units else rules.local(inner, block_size=m)
                yield rule, T, {"name": rule.name, "window": k, "block_size": min(m, n_units)}

    # The grid shows no AC figures: no firing rates.
    return _measure_rows(model, cells(), batch_size=batch_size, input_shape=input_shape,
                         steps=steps, rates=False, log=log, target=target)
