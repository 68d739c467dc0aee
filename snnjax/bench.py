"""``snnjax bench``: cost tables (rule × T), the Guo et al. design-space grid, a memory planner.

    snnjax bench cost --model mlp --rules bptt,sltt,ottt-a --T 4,8,16 --json c.json --plot c.png
    snnjax bench grid --model cnn --T 8 --windows 1,2,4,8 --block-sizes 1,2 --heatmap g.png
    snnjax bench plan --model vgg11_sws --budget 16GB --batch-size 32 --T 6
    snnjax bench plan --model vgg11_sws --target tpu-v5e --batch-size 32 --T 6

``--target NAME`` compiles for that device instead of this machine's (``h100``, ``a100``,
``tpu-v5e``, ``tpu-v6e``, ``tpu-v5p``: compile-only, no such hardware needed; see
:mod:`snnjax.targets`); its device memory is the planner's default budget.

The planner's "largest T" (or batch) is the largest v such that every value it tested up to
v fits the budget, with v + 1 tested and not fitting (see :func:`largest`): compiled memory
is not monotone in T or batch size, so it assumes nothing about values it did not test.

Memory comes from XLA's memory analysis of the compiled step (deterministic, never run), MACs
and memory access from :mod:`snnjax.cost`'s analytic counts, step time from real jitted steps
(the median of ``--steps`` of them; ``--steps 0`` skips timing).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import jax

__all__ = [
    "add_parser",
    "parse_bytes",
    "cost_rows",
    "grid_rows",
    "Largest",
    "largest",
    "plan_budget",
    "plan_rows",
    "plot_cost",
    "plot_grid",
    "format_table",
]

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}


def parse_bytes(text: str) -> int:
    """``"16GB"`` → 16·10⁹, ``"16GiB"`` (or ``"16G"``) → 16·2³⁰, ``"1.5e9"`` → 1.5·10⁹ bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read a memory size from {text!r} (e.g. 16GB, 512MiB, 2e9)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0:
        raise ValueError(f"memory budget must be > 0, got {text!r}")
    return int(value)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


# ---------------------------------------------------------------------------- building blocks


def _model(args):
    from snnjax.experiment import TrainConfig, make_model

    cfg = TrainConfig(model=args.model, width=args.width, hidden=tuple(args.hidden))
    return make_model(cfg, args.num_classes)


def _input_shape(args, model) -> tuple[int, ...]:
    if args.input_shape:
        return tuple(args.input_shape)
    return (32, 32, 3) if getattr(model, "input_ndim", None) == 3 else (64,)


def _rule(name: str, args):
    from snnjax import rules

    return rules.by_name(
        name, window=args.window, block_size=args.block_size, K=args.K, online=args.online
    )


def _fits(rule, T: int) -> str | None:
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
                why = _fits(rule, T)
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


class Largest(NamedTuple):
    """What :func:`largest` found.

    Attributes:
      value: the answer (see :func:`largest`); 0 when even ``lo`` does not fit.
      capped: ``value`` is the search cap and every tested value fits (the true limit may be
        higher).
      tested: every value the search tested, mapped to whether it fits.
    """

    value: int
    capped: bool
    tested: Mapping[int, bool]

    @property
    def fits_beyond(self) -> int | None:
        """The largest tested value above ``value`` that fits, or None.

        Not None only when the predicate is not monotone: something above a value that does
        not fit fits again (e.g. TBPTT's memory at a T that its window divides).
        """
        above = [n for n, ok in self.tested.items() if ok and n > self.value]
        return max(above) if above else None

    @property
    def dense_below(self) -> int:
        """How many consecutive values just below ``value`` were tested (all of them fit)."""
        n = 0
        while self.value - n - 1 in self.tested:
            n += 1
        return n


def largest(
    fits: Callable[[int], bool],
    *,
    lo: int = 1,
    cap: int = 1 << 16,
    scan: int = 4,
    rounds: int = 3,
) -> Largest:
    """The largest v in [lo, cap] such that **every tested value ≤ v fits**.

    ``fits`` need not be monotone (XLA's compiled memory is not, in T or in batch size), so
    the answer is defined by what was tested, and the search tests enough around it:

    - v fits, every value tested at or below v fits, and v + 1 was tested and does not fit
      (unless v = cap: then ``capped``, every tested value fits);
    - the ``scan`` values just below v are tested too: a failure there lowers the bound to
      it and the search repeats below (at most ``rounds`` times; :attr:`Largest.dense_below`
      says how many consecutive values below v were tested in the end).

    The search doubles from ``lo`` to the first value that does not fit (or ``cap``), then
    bisects. Each value is tested at most once. For a monotone ``fits`` the answer is its
    exact threshold, at the cost of up to ``scan`` tests more than plain bisection. A larger
    tested value that fits anyway is reported as :attr:`Largest.fits_beyond`.

    Returns:
      a :class:`Largest`; ``value`` = 0 when ``lo`` does not fit.
    """
    if lo > cap:
        raise ValueError(f"empty search range: lo={lo} > cap={cap}")
    tested: dict[int, bool] = {}

    def test(n: int) -> bool:
        if n not in tested:
            tested[n] = bool(fits(n))
        return tested[n]

    if not test(lo):
        return Largest(0, False, tested)
    # Invariant from here on: every tested value below ``bad`` (all of them while ``bad`` is
    # None) fits, ``good`` is the largest of them, and nothing in (good, bad) was tested.
    good, bad = lo, None
    while bad is None and good < cap:
        n = min(2 * good, cap)
        if test(n):
            good = n
        else:
            bad = n
    for round_ in range(rounds + 1):
        while bad is not None and bad - good > 1:
            mid = (good + bad) // 2
            if test(mid):
                good = mid
            else:
                bad = mid
        if round_ == rounds:
            break
        failed = [n for n in range(max(lo, good - scan), good) if not test(n)]
        if not failed:
            break
        bad = min(failed)
        good = max(n for n in tested if n < bad)
    return Largest(good, bad is None, tested)


def _compiled_memory_fn(
    model, input_shape: Sequence[int], target=None
) -> Callable[[Any, int, int], int]:
    """``memory(rule, T, batch_size)``: compiled step memory (bytes) of ``model`` under
    ``rule`` with :func:`snnjax.cost.default_optimizer` (compile only, never run), for
    ``target`` (None: this machine's default device)."""
    from snnjax import cost
    from snnjax.train import Trainer

    trainers: dict[int, tuple[Any, Trainer]] = {}  # by id(rule); the rule is kept alive

    def memory(rule, T: int, batch_size: int) -> int:
        if id(rule) not in trainers:
            trainers[id(rule)] = (rule, Trainer(model, rule, cost.default_optimizer()))
        trainer = trainers[id(rule)][1]
        xs, ys = cost.abstract_batch(T, batch_size, input_shape)
        out = cost.step_memory(trainer, xs, ys, target=target)["memory_bytes"]
        # A plan compiles ~30 large programs per rule; dropping JAX's caches between them
        # keeps XLA:CPU's JIT code memory from running out (seen at full-width VGG-11).
        jax.clear_caches()
        return out

    return memory


PLAN_NOTE = (
    "largest T / batch: the largest value v such that every value tested up to v fits the "
    "budget; v + 1 was tested and does not fit (unless v is the search cap, marked +), and "
    "the {scan} values below v were tested too. XLA's compiled memory need not be monotone "
    "in T or batch size, so nothing is assumed about untested values; '(x fits too)' marks "
    "a larger tested value that fits."
)


def plan_rows(
    model,
    rule_list: Sequence[tuple[str, Any]],
    *,
    budget: int | None = None,
    batch_size: int,
    input_shape: Sequence[int],
    target=None,
    T: int | None = None,
    max_T: int = 4096,
    max_batch: int = 1 << 16,
    scan: int = 4,
    rounds: int = 3,
    memory_fn: Callable[[Any, int, int], int] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """For each rule, the largest T that fits ``budget`` at ``batch_size``, and (with ``T``)
    the largest batch at T, from the compiled memory (``memory_bytes``: temporaries +
    arguments + outputs of the step compiled for this backend; compile only, never run).

    "Largest" is :func:`largest`'s: the largest v such that every tested value ≤ v fits,
    with v + 1 tested and not fitting and the ``scan`` values below v tested as well;
    compiled memory is not monotone in T (e.g. TBPTT when its window does not divide T) nor
    exactly in batch size, so nothing is assumed about untested values.

    Args:
      budget: bytes the step may use; default the target's device memory.
      target: the device compiled for (:mod:`snnjax.targets`: a name or a Target; None:
        this machine's default device, and then ``budget`` is needed).
      memory_fn: ``memory_fn(rule, T, batch_size) -> bytes``; default the compiled memory of
        ``model``'s step on ``input_shape`` for ``target`` (tests inject their own). The
        default clears JAX's in-process caches after each compile (``jax.clear_caches()``),
        so functions jitted before the plan compile again on their next call.

    Returns:
      One dict per rule: ``rule``, ``target`` (its name, or this machine's platform),
      ``budget_bytes``, ``batch_size``, ``max_T`` (0: nothing fits), ``max_T_capped``
      (``max_T`` is the cap and fits), ``max_T_fits_beyond`` (a larger tested T that fits,
      or None), ``memory_at_max_T``; with ``T`` also ``T``,
      ``max_batch``, ``max_batch_capped``, ``max_batch_fits_beyond``,
      ``memory_at_max_batch``; and ``compiles``, the number of memory evaluations.
    """
    from snnjax.targets import get_target

    target = None if target is None else get_target(target)
    budget = plan_budget(budget, target)
    if memory_fn is None:
        memory_fn = _compiled_memory_fn(model, input_shape, target)
    rows = []
    for name, rule in rule_list:
        cache: dict[tuple[int, int], int] = {}

        def memory(t: int, b: int, cache=cache, rule=rule) -> int:
            if (t, b) not in cache:
                cache[(t, b)] = int(memory_fn(rule, t, b))
            return cache[(t, b)]

        def t_fits(t: int, rule=rule, memory=memory) -> bool:
            return _fits(rule, t) is None and memory(t, batch_size) <= budget

        lo_T = next((t for t in range(1, max_T + 1) if _fits(rule, t) is None), max_T)
        row = {"rule": name, "target": _backend() if target is None else target.name,
               "budget_bytes": budget, "batch_size": batch_size,
               **_plan_result("T", largest(t_fits, lo=lo_T, cap=max_T, scan=scan,
                                           rounds=rounds),
                              lambda t, memory=memory: memory(t, batch_size))}
        if T is not None:
            why = _fits(rule, T)
            if why:
                log(f"{name}: no batch search at T={T}: {why}")
                row.update(T=T, max_batch=None, max_batch_capped=False,
                           max_batch_fits_beyond=None, memory_at_max_batch=None)
            else:
                found = largest(lambda b, memory=memory: memory(T, b) <= budget, cap=max_batch,
                                scan=scan, rounds=rounds)
                row.update(T=T, **_plan_result("batch", found,
                                               lambda b, memory=memory: memory(T, b)))
        row["compiles"] = len(cache)
        rows.append(row)
        log(_plan_line(row))
    return rows


def plan_budget(budget: int | None, target) -> int:
    """The planner's budget in bytes: ``budget`` when given, else the target's device memory.

    Raises:
      ValueError: neither a budget nor a target with a known device memory.
    """
    if budget is not None:
        if budget <= 0:
            raise ValueError(f"memory budget must be > 0, got {budget}")
        return int(budget)
    if target is None or target.memory_bytes is None:
        where = "" if target is None else f" (target {target.name!r} has no fixed device memory)"
        raise ValueError(f"the planner needs a memory budget or a GPU/TPU target{where}")
    return target.memory_bytes


def _plan_result(what: str, found: Largest, memory: Callable[[int], int]) -> dict:
    return {
        f"max_{what}": found.value,
        f"max_{what}_capped": found.capped,
        f"max_{what}_fits_beyond": found.fits_beyond,
        f"memory_at_max_{what}": memory(found.value) if found.value else None,
    }


# ---------------------------------------------------------------------------- output


def _mib(n):
    return "-" if n is None else f"{n / 2**20:.2f}"


def _size(n: float) -> str:
    """Bytes in the binary unit that reads best: ``"512 B"``, ``"3.81 MiB"``, ``"40.00 GiB"``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def format_table(rows: Sequence[dict], header: bool = True) -> str:
    """Rows as fixed-width text: rule, T, memory (MiB), GMACs, memory access (MiB), time (ms)."""
    lines = []
    if header:
        lines.append(
            f"{'rule':<22s} {'T':>4s} {'temp MiB':>9s} {'memory MiB':>11s} {'GMACs':>9s} "
            f"{'access MiB':>11s} {'step ms':>9s}"
        )
    for r in rows:
        t = r.get("step_time_s")
        lines.append(
            f"{r.get('name', r['rule']):<22s} {r['T']:>4d} {_mib(r['temp_bytes']):>9s} "
            f"{_mib(r['memory_bytes']):>11s} {r['macs'] / 1e9:>9.3f} "
            f"{_mib(r['memory_access_bytes']):>11s} "
            f"{'-' if t is None else f'{1e3 * t:.2f}':>9s}"
        )
    return "\n".join(lines)


def _plan_line(r: dict) -> str:
    def value(what):
        v = r.get(f"max_{what}")
        if v is None:
            return "-"
        text = f"{v}{'+' if r.get(f'max_{what}_capped') else ''}"
        used = r.get(f"memory_at_max_{what}")
        if used is not None:
            text += f" ({_size(used)})"
        beyond = r.get(f"max_{what}_fits_beyond")
        return text + (f" ({beyond} fits too)" if beyond is not None else "")

    text = f"{r['rule']:<14s} max T {value('T')} at batch {r['batch_size']}"
    if r.get("T") is not None:
        text += f";  max batch {value('batch')} at T={r['T']}"
    return text


def require_matplotlib() -> None:
    """Raise a one-line error naming the extra when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        from snnjax.checkpoint import MissingDependencyError

        raise MissingDependencyError(
            "plots need matplotlib, which is not installed: pip install 'snnjax[plot]'"
        ) from e


def _pyplot():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _t_axis(ax, Ts: Sequence[int]) -> None:
    """T on x: log2 only over more than two octaves; a few T values are the ticks themselves."""
    from matplotlib import ticker

    Ts = sorted(set(Ts))
    if Ts[-1] > 4 * Ts[0]:
        ax.set_xscale("log", base=2)
    if len(Ts) <= 8:
        ax.set_xticks(Ts, [str(t) for t in Ts])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
    else:
        ax.xaxis.set_major_locator(
            ticker.LogLocator(base=2) if Ts[-1] > 4 * Ts[0] else ticker.MaxNLocator(integer=True)
        )
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("T (time steps)")


def _value_axis(ax, values: Sequence[float]) -> None:
    """Log y only when the values span more than a decade; else linear from zero."""
    import math

    finite = [v for v in values if math.isfinite(v) and v > 0]
    if finite and max(finite) > 10 * min(finite):
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)


def plot_cost(rows: Sequence[dict], path: str, title: str = "") -> None:
    """Memory and step time against T, one line per rule (log axes only over wide ranges)."""
    plt = _pyplot()
    names = list(dict.fromkeys(r.get("name", r["rule"]) for r in rows))
    timed = any(r.get("step_time_s") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(11 if timed else 5.5, 4))
    axes = list(axes) if timed else [axes]
    memory, times = [], []
    for name in names:
        sel = sorted((r for r in rows if r.get("name", r["rule"]) == name), key=lambda r: r["T"])
        Ts = [r["T"] for r in sel]
        mib = [r["memory_bytes"] / 2**20 for r in sel]
        axes[0].plot(Ts, mib, marker="o", label=name)
        memory += mib
        if timed:
            ms = [1e3 * (r["step_time_s"] or float("nan")) for r in sel]
            axes[1].plot(Ts, ms, marker="o", label=name)
            times += ms
    axes[0].set_ylabel("compiled step memory (MiB)")
    _value_axis(axes[0], memory)
    if timed:
        axes[1].set_ylabel("step time (ms, median)")
        _value_axis(axes[1], times)
    for ax in axes:
        _t_axis(ax, [r["T"] for r in rows])
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_grid(rows: Sequence[dict], path: str, title: str = "") -> None:
    """Heat maps over (window, block size): memory, MACs, memory access and (if timed) time."""
    import numpy as np

    plt = _pyplot()
    ks = sorted({r["window"] for r in rows})
    ms = sorted({r["block_size"] for r in rows})
    panels = [
        ("memory MiB", lambda r: r["memory_bytes"] / 2**20),
        ("GMACs", lambda r: r["macs"] / 1e9),
        ("memory access MB", lambda r: r["memory_access_bytes"] / 1e6),
    ]
    if any(r.get("step_time_s") is not None for r in rows):
        panels.append(("step ms", lambda r: 1e3 * (r["step_time_s"] or float("nan"))))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    for ax, (label, get) in zip(np.atleast_1d(axes), panels):
        grid = np.full((len(ks), len(ms)), np.nan)
        for r in rows:
            grid[ks.index(r["window"]), ms.index(r["block_size"])] = get(r)
        im = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
        for i in range(len(ks)):
            for j in range(len(ms)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=7,
                            color="w")
        ax.set_xticks(range(len(ms)), [str(m) for m in ms])
        ax.set_yticks(range(len(ks)), [str(k) for k in ks])
        ax.set_xlabel("block size (units)")
        ax.set_ylabel("truncation window k")
        ax.set_title(label)
        fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_json(rows, path):
    with open(path, "w") as f:
        json.dump(rows, f, indent=2)
    print(f"wrote {path}")


# ---------------------------------------------------------------------------- commands


def _target(args):
    """``--target`` as a :class:`snnjax.targets.Target`, or None.

    CUDA targets compile without a GPU only when jax runs on the CPU alone: the command owns
    its process, so it asks for that before jax starts (a running jax is left as it is, and
    the target then says what to set).
    """
    from snnjax.targets import get_target

    if args.target is None:
        return None
    target = get_target(args.target)
    if target.platform == "cuda" and not jax.config.jax_platforms:
        try:
            jax.config.update("jax_platforms", "cpu")
        except RuntimeError:  # jax already runs on its backends
            pass
    return target


def _where(target) -> str:
    if target is None:
        return f"this machine's {_backend()}"
    return f"{target.name} ({target.description}, compile only)" if target.compile_only \
        else f"{target.name} ({target.description})"


def _steps(args, target) -> int:
    # Timing needs the device itself: a compile-only target times nothing unless asked.
    if args.steps is not None:
        return args.steps
    return 0 if target is not None and target.compile_only else args.default_steps


def _setup(args):
    """The model, one sample's shape and the ``--rules`` as ``(name, Rule)`` pairs."""
    model = _model(args)
    names = getattr(args, "rules", "")
    return model, _input_shape(args, model), [(n, _rule(n, args)) for n in names.split(",") if n]


def _output(args, rows, plot=None, path=None, title="") -> int:
    """Write ``--json`` and, when a path was given, ``plot(rows, path, title)``."""
    if args.json:
        _write_json(rows, args.json)
    if path:
        plot(rows, path, title=title)
        print(f"wrote {path}")
    return 0


def _cmd_cost(args) -> int:
    target = _target(args)
    model, shape, rule_list = _setup(args)
    print(f"model {args.model}, batch {args.batch_size}, input {shape}, on {_where(target)}")
    rows = cost_rows(model, rule_list, args.T, batch_size=args.batch_size, input_shape=shape,
                     steps=_steps(args, target), target=target)
    return _output(args, rows, plot_cost, args.plot, f"{args.model}, batch {args.batch_size}")


def _cmd_grid(args) -> int:
    target = _target(args)
    model, shape, _ = _setup(args)
    print(f"model {args.model}, T {args.T}, batch {args.batch_size}, input {shape}, "
          f"on {_where(target)}")
    rows = grid_rows(model, T=args.T, windows=args.windows, block_sizes=args.block_sizes,
                     batch_size=args.batch_size, input_shape=shape,
                     steps=_steps(args, target), target=target)
    return _output(args, rows, plot_grid, args.heatmap,
                   f"{args.model}, T={args.T}, batch {args.batch_size}")


def _cmd_plan(args) -> int:
    target = _target(args)
    budget = plan_budget(None if args.budget is None else parse_bytes(args.budget), target)
    model, shape, rule_list = _setup(args)
    source = "" if args.budget is not None else f", one {target.name}'s device memory"
    print(f"model {args.model}, input {shape}, budget {budget:,} bytes "
          f"({_size(budget)}{source}) of compiled step memory on {_where(target)}")
    print(PLAN_NOTE.format(scan=args.scan))
    rows = plan_rows(model, rule_list, budget=budget, batch_size=args.batch_size,
                     input_shape=shape, target=target, T=args.T_plan, max_T=args.max_T,
                     max_batch=args.max_batch, scan=args.scan)
    return _output(args, rows)


def _backend() -> str:
    import jax

    return jax.default_backend()


def _add_model_args(p: argparse.ArgumentParser, *, batch_size: int = 32) -> None:
    p.add_argument("--model", default="mlp", help="mlp, cnn, vgg11_sws, ...")
    p.add_argument("--num-classes", type=int, default=10, help="classes of the readout")
    p.add_argument("--input-shape", type=_ints, default=None,
                   help="one sample's shape, e.g. 32,32,3 (default: 32,32,3 for conv nets, 64)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="samples per batch")
    p.add_argument("--width", type=float, default=1.0, help="VGG channel multiplier")
    p.add_argument("--hidden", type=_ints, default=(128,), help="MLP widths, e.g. 128,64")
    p.add_argument("--window", type=int, default=2, help="TBPTT window k")
    p.add_argument("--block-size", type=int, default=1, help="Local: units per block")
    p.add_argument("--K", type=int, default=1, help="SLTT-K: steps with a backward pass")
    p.add_argument("--online", action="store_true", help="TBPTT: optimizer step per window")
    p.add_argument("--target", default=None,
                   help="compile for this device: cpu, h100, a100, tpu-v5e, tpu-v6e, tpu-v5p "
                        "(GPUs/TPUs compile-only; default this machine's)")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``snnjax bench {cost,grid,plan}`` on the CLI's subparsers."""
    p = sub.add_parser("bench", help="cost tables, design-space grid and memory planner",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bsub = p.add_subparsers(dest="bench_command", required=True)

    c = bsub.add_parser("cost", help="memory, MACs, memory access and time: rule × T")
    _add_model_args(c)
    c.add_argument("--rules", default="bptt,tbptt,sltt,sltt-k,ottt-a",
                   help="rules to measure, separated by commas")
    c.add_argument("--T", type=_ints, default=(4, 8, 16, 32, 64), help="e.g. 4,8,16")
    c.add_argument("--steps", type=int, default=None,
                   help="timed steps per row (0: no timing; default 3, 0 on a GPU/TPU target)")
    c.set_defaults(default_steps=3)
    c.add_argument("--json", help="write the rows here")
    c.add_argument("--plot", help="write memory and time against T here (PNG)")
    c.set_defaults(func=_cmd_cost)

    g = bsub.add_parser("grid", help="Guo et al.'s design space: window × block size")
    _add_model_args(g)
    g.add_argument("--T", type=int, default=8, help="time steps")
    g.add_argument("--windows", type=_ints, default=(1, 2, 4, 8),
                   help="TBPTT windows k of the grid's rows, e.g. 1,2,4")
    g.add_argument("--block-sizes", type=_ints, default=(1, 2, 4),
                   help="Local block sizes (units) of the grid's columns, e.g. 1,2")
    g.add_argument("--steps", type=int, default=None,
                   help="timed steps per cell (default 0: no timing)")
    g.set_defaults(default_steps=0)
    g.add_argument("--json", help="write the rows here")
    g.add_argument("--heatmap", help="write the heat maps here (PNG)")
    g.set_defaults(func=_cmd_grid)

    q = bsub.add_parser("plan", help="largest T (and batch) that fits a memory budget")
    _add_model_args(q)
    q.add_argument("--budget", default=None,
                   help="e.g. 16GB, 40GiB, 512MB (default with --target: its device memory)")
    q.add_argument("--rules", default="bptt,tbptt,sltt,sltt-k,ottt-a",
                   help="rules to plan for, separated by commas")
    q.add_argument("--T", dest="T_plan", type=int, default=None,
                   help="also find the largest batch at this T")
    q.add_argument("--max-T", type=int, default=4096, help="search T up to this")
    q.add_argument("--max-batch", type=int, default=1 << 16, help="search batch up to this")
    q.add_argument("--scan", type=int, default=4,
                   help="also test this many values below each answer (memory is not monotone)")
    q.add_argument("--json", help="write the rows here")
    q.set_defaults(func=_cmd_plan)
    return p


def main(argv=None) -> int:
    """``python -m snnjax.bench cost ...`` (the same as ``snnjax bench cost ...``)."""
    parser = argparse.ArgumentParser(prog="snnjax")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
