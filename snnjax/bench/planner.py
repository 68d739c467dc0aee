"""The memory planner: the largest T (and batch) whose compiled step fits a memory budget,
and the schedule of a rule (:meth:`snnjax.rules.Rule.schedules`) that fits one.

The planner's "largest T" (or batch) is the largest v such that every value it tested up to
v fits the budget, with v + 1 tested and not fitting (see :func:`largest`): compiled memory
is not monotone in T or batch size, so it assumes nothing about values it did not test.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax

from snnjax.bench.rows import cannot_run
from snnjax.bench.text import format_size, plan_line

__all__ = ["Largest", "largest", "PLAN_NOTE", "plan_rows", "plan_budget", "schedule_rows"]


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
            return cannot_run(rule, t) is None and memory(t, batch_size) <= budget

        lo_T = next((t for t in range(1, max_T + 1) if cannot_run(rule, t) is None), max_T)
        where = jax.default_backend() if target is None else target.name
        row = {"rule": name, "target": where, "budget_bytes": budget, "batch_size": batch_size,
               **_plan_result("T", largest(t_fits, lo=lo_T, cap=max_T, scan=scan,
                                           rounds=rounds),
                              lambda t, memory=memory: memory(t, batch_size))}
        if T is not None:
            why = cannot_run(rule, T)
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
        log(plan_line(row))
    return rows


def schedule_rows(
    model,
    rule,
    *,
    T: int,
    batch_size: int,
    input_shape: Sequence[int],
    budget: int | None = None,
    target=None,
    memory_fn: Callable[[Any, int, int], int] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """The schedules of ``rule`` at T steps (:meth:`~snnjax.rules.Rule.schedules`: the same
    gradient, ordered from the least added work to the least memory), each with its compiled
    step memory; the first that fits ``budget`` is ``chosen``. Compile only, never run: the
    order is by the work a schedule adds (``recomputes``: one more forward pass), not by
    timing (docs/schedules.md has the measured trade).

    Args:
      budget: bytes the step may use; default the target's device memory.
      target: as :func:`plan_rows`.
      memory_fn: as :func:`plan_rows`.

    Returns:
      One dict per schedule: ``rule`` (the schedule's name), ``target``, ``budget_bytes``,
      ``T``, ``batch_size``, ``memory_bytes``, ``recomputes``, ``fits``, ``chosen`` (at most
      one row; none when nothing fits).

    Raises:
      ValueError: the rule cannot run with T steps.
    """
    from snnjax.targets import get_target

    why = cannot_run(rule, T)
    if why:
        raise ValueError(f"{rule.name} at T={T}: {why}")
    target = None if target is None else get_target(target)
    budget = plan_budget(budget, target)
    if memory_fn is None:
        memory_fn = _compiled_memory_fn(model, input_shape, target)
    where = jax.default_backend() if target is None else target.name
    rows, chosen = [], False
    for schedule in rule.schedules(T):
        memory = int(memory_fn(schedule, T, batch_size))
        fits = memory <= budget
        row = {"rule": schedule.name, "target": where, "budget_bytes": budget, "T": T,
               "batch_size": batch_size, "memory_bytes": memory,
               "recomputes": bool(schedule.temporal.remat), "fits": fits,
               "chosen": fits and not chosen}
        chosen = chosen or fits
        rows.append(row)
        log(f"{'→' if row['chosen'] else ' '} {row['rule']:<28s} {format_size(memory):>12s}"
            f"{'  fits' if fits else ''}{'  (one more forward pass)' if row['recomputes'] else ''}")
    if not chosen:
        log(f"no schedule of {rule.name} fits {format_size(budget)} at T={T}, batch {batch_size}")
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
