"""What ``snnjax bench`` reads and prints: memory sizes with units, cost tables, plan lines."""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["parse_bytes", "format_size", "format_table", "plan_line"]


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


def _mib(n):
    return "-" if n is None else f"{n / 2**20:.2f}"


def format_size(n: float) -> str:
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


def plan_line(r: dict) -> str:
    """One planner row as a line: the largest T (and batch) with the memory they use."""
    def value(what):
        v = r.get(f"max_{what}")
        if v is None:
            return "-"
        text = f"{v}{'+' if r.get(f'max_{what}_capped') else ''}"
        used = r.get(f"memory_at_max_{what}")
        if used is not None:
            text += f" ({format_size(used)})"
        beyond = r.get(f"max_{what}_fits_beyond")
        return text + (f" ({beyond} fits too)" if beyond is not None else "")

    text = f"{r['rule']:<14s} max T {value('T')} at batch {r['batch_size']}"
    if r.get("T") is not None:
        text += f";  max batch {value('batch')} at T={r['T']}"
    return text
