"""The planner's search: the largest T whose compiled step fits a memory budget."""

from __future__ import annotations


def largest_T(memory, budget: int, probes: tuple[int, int], cap: int) -> dict:
    """The largest T in [1, cap] whose compiled memory ``memory(T)`` fits ``budget``.

    Compiled memory is close to linear in T, so the crossing is first bracketed by secant
    steps from two probes (each step compiles one T), then :func:`snnjax.bench.largest`
    settles it inside the bracket: every tested T up to the answer fits, answer + 1 was
    tested and does not fit (or the answer is ``cap``), and the T just below was tested too.
    """
    from snnjax.bench import largest

    tested: dict[int, int] = {}

    def mem(t):
        if t not in tested:
            tested[t] = int(memory(t))
        return tested[t]

    def fits(t):
        return mem(t) <= budget

    for t in probes:
        mem(min(t, cap))
    for _ in range(6):
        good = [t for t in tested if tested[t] <= budget]
        bad = [t for t in tested if tested[t] > budget]
        a = max(good) if good else None
        b = min(bad) if bad else None
        if a is None or (b is not None and b - a <= 1) or (b is None and a >= cap):
            break
        if b is None:  # extrapolate from the two largest fitting points
            t0 = max([t for t in good if t < a], default=None)
            slope = (tested[a] - tested[t0]) / (a - t0) if t0 is not None else 0
            pred = cap if slope <= 0 else a + int((budget - tested[a]) / slope)
            pred = min(cap, max(a + 1, pred))
        else:  # interpolate inside the bracket
            slope = (tested[b] - tested[a]) / (b - a)
            pred = a + int((budget - tested[a]) / slope) if slope > 0 else (a + b) // 2
            pred = min(b - 1, max(a + 1, pred))
        mem(pred)
    good = [t for t in tested if tested[t] <= budget]
    bad = [t for t in tested if tested[t] > budget]
    hi = (min(bad) - 1) if bad else cap
    # Every tested T up to lo fits (lo is below every failure): largest() keeps its contract.
    lo = max([t for t in good if t <= hi], default=1)
    found = largest(fits, lo=lo, cap=max(lo, hi), scan=1, rounds=1)
    capped = found.capped and not bad and found.value == cap
    return {"max_T": found.value, "capped": capped,
            "memory_at_max_T": tested.get(found.value), "compiles": len(tested),
            "tested": {str(k): v for k, v in sorted(tested.items())}}
