"""The compile-only memory scripts' JSON files: one row per measured cell, rewritten after
every cell so that an interrupted run keeps what it measured."""

from __future__ import annotations

import json
from pathlib import Path


def record(path: Path, rows: list[dict], row: dict, key: tuple[str, ...]) -> list[dict]:
    """``rows`` with ``row`` in place of any row that has its values of the fields ``key``
    (a cell measured again replaces the old figure), written to ``path``; the new rows."""
    cell = tuple(row[k] for k in key)
    rows = [r for r in rows if tuple(r.get(k) for k in key) != cell] + [row]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def memory_row(trainer, xs, ys, target, **fields) -> dict:
    """``fields`` and the compiled memory of ``trainer``'s step for ``target``
    (:func:`snnjax.cost.step_memory`), with ``total_bytes`` (donated buffers counted once)."""
    from snnjax import cost

    m = cost.step_memory(trainer, xs, ys, target=target)
    return {**fields, **m, "total_bytes": m["memory_bytes"] - m["alias_bytes"]}
