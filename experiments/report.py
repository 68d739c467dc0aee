"""Paper-shaped Markdown tables and PNG plots from the JSON that ``experiments.run`` writes.

    python -m experiments.report DIR [--out RESULTS.md] [--plots DIR/plots]

One section per results file, in the order of :data:`experiments.run.CONFIGS`: a table per
group (dataset) with our test accuracy beside the paper's (the headline numbers in
``docs/rules.md``), the compiled memory and time of one training step, MACs and memory access
where measured, and changes against the
baseline (BPTT) where the config names one; the design-space sweep as matrices (window ×
block size) of accuracy and memory, with heat maps; where a config compiles its runs at
several T (``memory_T``), a cost table of memory against T and a plot of accuracy against
rule beside memory against T.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any

from experiments.run import CONFIGS

__all__ = ["load_results", "section", "plot", "build", "main"]

_MIB = 2**20


def load_results(directory: str) -> list[dict]:
    """Every ``*.json`` results file in ``directory``, ordered by config then preset."""
    payloads = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path) as f:
            data = json.load(f)
        if "experiment" in data and "runs" in data:
            data["_path"] = path
            payloads.append(data)
    order = {name: i for i, name in enumerate(CONFIGS)}
    presets = {"paper": 0, "small": 1, "smoke": 2}
    payloads.sort(key=lambda d: (order.get(d["experiment"]["name"], 99),
                                 presets.get(d["experiment"]["preset"], 9)))
    return payloads


# ---------------------------------------------------------------------------- numbers


def _acc(run: dict) -> float:
    return 100 * run["result"]["final_test_accuracy"]


def _mem(run: dict) -> float:
    return run["result"]["compiled_memory_bytes"] / _MIB


def _ms(run: dict) -> float:
    return 1e3 * run["result"]["step_time_s"]


def _groups(payload: dict) -> dict[str, list[dict]]:
    key = payload["experiment"]["group"]
    groups: dict[str, list[dict]] = {}
    for run in payload["runs"]:
        groups.setdefault(str(run["labels"].get(key, "")) if key else "", []).append(run)
    return groups


def _baseline(payload: dict, runs: list[dict]) -> dict | None:
    want = payload["experiment"].get("baseline")
    if not want:
        return None
    for run in runs:
        if all(str(run["labels"].get(k)) == str(v) for k, v in want.items()):
            return run
    return None


def _pct(new: float, old: float) -> str:
    if not old:
        return "—"
    return f"{100 * (new - old) / old:+.1f} %"


def _fmt(x: Any, spec: str = ".1f") -> str:
    return "—" if x is None else format(x, spec)


# ---------------------------------------------------------------------------- markdown


def _row_table(payload: dict, runs: list[dict]) -> list[str]:
    exp = payload["experiment"]
    label_keys = [k for k in runs[0]["labels"] if k != exp["group"]]
    has_cost = any("cost" in r for r in runs)
    base = _baseline(payload, runs)
    head = [*label_keys, "test acc. (%)", "paper (%)", "step memory (MiB)", "step time (ms)"]
    if has_cost:
        head += ["MACs (M)", "memory access (MB)"]
    if base is not None:
        base_name = " ".join(str(v) for k, v in base["labels"].items() if k != exp["group"])
        head += [f"Δ acc. vs {base_name} (pts)", "Δ memory", "Δ time"]
        if has_cost:
            head += ["Δ memory access", "Δ MACs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        cells = [str(run["labels"][k]) for k in label_keys]
        cells += [f"{_acc(run):.1f}", run.get("paper") or "—", f"{_mem(run):.2f}",
                  f"{_ms(run):.1f}"]
        cost = run.get("cost")
        if has_cost:
            cells += [_fmt(cost and cost["macs"] / 1e6),
                      _fmt(cost and cost["memory_access_bytes"] / 1e6)]
        if base is not None:
            if run is base:
                cells += ["—"] * (5 if has_cost else 3)
            else:
                cells += [f"{_acc(run) - _acc(base):+.1f}", _pct(_mem(run), _mem(base)),
                          _pct(_ms(run), _ms(base))]
                if has_cost:
                    bc = base.get("cost") or {}
                    cells += [
                        _pct(cost["memory_access_bytes"], bc.get("memory_access_bytes"))
                        if cost else "—",
                        _pct(cost["macs"], bc.get("macs")) if cost else "—",
                    ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _grid_table(payload: dict, runs: list[dict], metric: str) -> list[str]:
    row_key, col_key = payload["experiment"]["grid"]
    rows = list(dict.fromkeys(str(r["labels"][row_key]) for r in runs))
    cols = list(dict.fromkeys(str(r["labels"][col_key]) for r in runs))
    cell = {(str(r["labels"][row_key]), str(r["labels"][col_key])): r for r in runs}
    value = {"accuracy": lambda r: f"{_acc(r):.1f}", "memory": lambda r: f"{_mem(r):.2f}"}[metric]
    unit = "test accuracy (%)" if metric == "accuracy" else "step memory (MiB)"
    lines = [f"{unit}, rows: {row_key}, columns: {col_key}", "",
             "| " + " | ".join([f"{row_key} \\ {col_key}", *cols]) + " |",
             "|" + "---|" * (len(cols) + 1)]
    for r in rows:
        lines.append("| " + " | ".join(
            [r, *(value(cell[(r, c)]) if (r, c) in cell else "—" for c in cols)]) + " |")
    return lines


def _label(payload: dict, run: dict) -> str:
    group = payload["experiment"]["group"]
    return " ".join(str(v) for k, v in run["labels"].items() if k != group)


def _net_mib(sweep: dict) -> list[float]:
    """Step memory less the input batch at each T of a run's ``memory_vs_T``, MiB."""
    return [(m["memory_bytes"] - i) / _MIB
            for m, i in zip(sweep["compiled_memory"], sweep["input_bytes"])]


def _memory_vs_T_table(payload: dict, runs: list[dict]) -> list[str]:
    """Rows: runs; columns: T; cells: step memory less the input batch (MiB); last column:
    the longest T against the shortest."""
    runs = [r for r in runs if r.get("memory_vs_T")]
    if not runs:
        return []
    lengths = runs[0]["memory_vs_T"]["T"]
    head = ["rule", *(f"T={T}" for T in lengths), f"T={lengths[-1]} vs T={lengths[0]}"]
    lines = ["compiled step memory less the input batch (MiB), against T", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        mib = _net_mib(run["memory_vs_T"])
        lines.append("| " + " | ".join(
            [_label(payload, run), *(f"{m:.2f}" for m in mib), _pct(mib[-1], mib[0])]) + " |")
    return lines


def section(payload: dict, plot_paths: list[str], rel_to: str) -> str:
    """The Markdown section of one results file."""
    exp = payload["experiment"]
    host = payload.get("host", {})
    wall = payload.get("wall_time_s")
    out = [f"## {exp['title']}", ""]
    out.append(f"Paper: {exp['paper']}. Preset `{exp['preset']}`; "
               f"`{payload.get('command', '')}`"
               + (f"; {len(payload['runs'])} runs in {wall / 60:.1f} min" if wall else "")
               + f" on {host.get('cpus', '?')} {host.get('backend', '?')} cores "
                 f"(jax {host.get('jax', '?')}).")
    out.append("")
    if exp.get("notes"):
        out += [exp["notes"], ""]
    for name, runs in _groups(payload).items():
        if name:
            out += [f"**{name}**", ""]
        if exp.get("grid"):
            out += _grid_table(payload, runs, "accuracy") + [""]
            out += _grid_table(payload, runs, "memory") + [""]
        else:
            out += _row_table(payload, runs) + [""]
        table = _memory_vs_T_table(payload, runs)
        if table:
            out += table + [""]
    if exp.get("paper_deltas"):
        deltas = ", ".join(f"{k} {v}" for k, v in exp["paper_deltas"].items())
        out += [f"Paper, best truncated local setting against BPTT (docs/rules.md): {deltas}.",
                ""]
    for path in plot_paths:
        out += [f"![{os.path.basename(path)}]({os.path.relpath(path, rel_to)})", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- plots


def plot(payload: dict, directory: str) -> list[str]:
    """PNG figures of one results file in ``directory``; returns their paths."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(
            "the report's plots need matplotlib, which is not installed: "
            "pip install 'snnjax[plot]'"
        ) from e

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    exp = payload["experiment"]
    os.makedirs(directory, exist_ok=True)
    stem = f"{exp['name']}-{exp['preset']}"
    groups = _groups(payload)
    if exp.get("grid"):
        row_key, col_key = exp["grid"]
        fig, axes = plt.subplots(len(groups), 2, figsize=(9, 3.6 * len(groups)), squeeze=False)
        for g, (name, runs) in enumerate(groups.items()):
            rows = list(dict.fromkeys(str(r["labels"][row_key]) for r in runs))
            cols = list(dict.fromkeys(str(r["labels"][col_key]) for r in runs))
            cell = {(str(r["labels"][row_key]), str(r["labels"][col_key])): r for r in runs}
            for ax, (title, fn, cmap) in zip(axes[g], [
                ("test accuracy (%)", _acc, "viridis"), ("step memory (MiB)", _mem, "magma"),
            ]):
                grid = [[fn(cell[(r, c)]) if (r, c) in cell else float("nan") for c in cols]
                        for r in rows]
                im = ax.imshow(grid, cmap=cmap, aspect="auto")
                for i in range(len(rows)):
                    for j in range(len(cols)):
                        bright = im.norm(grid[i][j]) > 0.6  # dark text on light cells
                        ax.text(j, i, f"{grid[i][j]:.1f}", ha="center", va="center",
                                color="k" if bright else "w", fontsize=9)
                ax.set_xticks(range(len(cols)), cols)
                ax.set_yticks(range(len(rows)), rows)
                ax.set_xlabel(col_key)
                ax.set_ylabel(row_key)
                ax.set_title(f"{name}: {title}", fontsize=9)
                fig.colorbar(im, ax=ax)
        fig.tight_layout()
        path = os.path.join(directory, f"{stem}-grid.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return [path]

    fig, axes = plt.subplots(len(groups), 3, figsize=(13, 3.4 * len(groups)), squeeze=False)
    for g, (name, runs) in enumerate(groups.items()):
        labels = [" ".join(str(v) for k, v in r["labels"].items() if k != exp["group"])
                  for r in runs]
        ax = axes[g][0]
        for label, run in zip(labels, runs):
            hist = run["result"]["history"]
            ax.plot([h["epoch"] for h in hist], [100 * h["test_accuracy"] for h in hist],
                    marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # 1, 2, 3: never 1.5
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
        for ax, fn, ylabel in [(axes[g][1], _mem, "step memory (MiB)"),
                               (axes[g][2], _ms, "step time (ms)")]:
            ax.bar(range(len(runs)), [fn(r) for r in runs], color="tab:blue")
            ax.set_xticks(range(len(runs)), labels, rotation=20, ha="right", fontsize=7)
            ax.set_ylabel(ylabel)
    fig.tight_layout()
    path = os.path.join(directory, f"{stem}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths = [path]
    if any(r.get("memory_vs_T") for r in payload["runs"]):
        paths.append(_plot_rules(payload, groups, os.path.join(directory, f"{stem}-rules.png")))
    return paths


def _plot_rules(payload: dict, groups: dict[str, list[dict]], path: str) -> str:
    """Per group: final test accuracy against rule (bars) and step memory less the input
    batch against T (one line per rule, log-2 T axis)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.4 * len(groups)), squeeze=False)
    for g, (name, runs) in enumerate(groups.items()):
        labels = [_label(payload, r) for r in runs]
        ax = axes[g][0]
        ax.bar(range(len(runs)), [_acc(r) for r in runs], color="tab:green")
        ax.set_xticks(range(len(runs)), labels, rotation=20, ha="right", fontsize=7)
        ax.set_ylabel("final test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{name}: accuracy against rule" if name else "accuracy against rule",
                     fontsize=9)
        ax = axes[g][1]
        for label, run in zip(labels, runs):
            sweep = run.get("memory_vs_T")
            if sweep:
                ax.plot(sweep["T"], _net_mib(sweep), marker="o", ms=3, label=label)
        ax.set_xscale("log", base=2)
        lengths = next(r["memory_vs_T"]["T"] for r in runs if r.get("memory_vs_T"))
        ax.set_xticks(lengths, [str(T) for T in lengths])
        ax.minorticks_off()
        ax.set_xlabel("T")
        ax.set_ylabel("step memory less the input (MiB)")
        ax.set_title(f"{name}: compiled memory against T" if name else "memory against T",
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path



# ---------------------------------------------------------------------------- document

_HEADER = """# Results

Generated by `python -m experiments.report {src} --out {out}` from the JSON that
`python -m experiments.run CONFIG --preset PRESET` writes (configs in `experiments/`, one per
paper table; each config's docstring gives the paper, the table cell, the expected number and
the command). The *paper* columns quote the headline numbers in `docs/rules.md`. Step memory
is XLA's memory analysis of the compiled training step (temporaries + arguments + outputs);
step time is the median wall time of a training step (compile excluded); MACs and memory
access are counted analytically (`snnjax.cost`, `docs/cost.md`).

The `small` presets run the papers' networks at reduced width on offline stand-ins made from
scikit-learn's 8×8 digits (`experiments/datasets.py`): `digits_std` (frames, for CIFAR) and
`digits_dvs` (ON/OFF event frames of a saccading digit, for CIFAR10-DVS). Their accuracies are
not comparable with the papers' numbers, which are shown for orientation; what they show is
the comparison between rules at small scale. The `recurrent` config trains a recurrent net on
`temporal_order`, a task snnjax generates (which of two spike cues far apart in time came
first; `docs/data.md`), and compiles each run's step at several T for a table of memory
against T (compile only; the input batch left out). Step times were measured on a shared
2-core CPU while other jobs ran, so they are noisy; memory, MACs and memory access are
deterministic, and `tests/test_results.py` recompiles every run's training step (compile
only) and fails when a committed step-memory figure no longer matches the code. BPTT and
TBPTT run as `bptt()` and `tbptt(k)` do by default, their pieces of time chosen from the model
(`docs/schedules.md`): one step per piece for these conv nets.
"""


def build(directory: str, out: str, plots: str | None = None) -> str:
    """Write the Markdown report of every results file in ``directory`` to ``out``."""
    payloads = load_results(directory)
    if not payloads:
        raise ValueError(f"no results JSON in {directory}: run `python -m experiments.run` first")
    plots = plots or os.path.join(directory, "plots")
    rel_to = os.path.dirname(os.path.abspath(out))
    parts = [_HEADER.format(src=directory, out=out)]
    for payload in payloads:
        parts.append(section(payload, plot(payload, plots), rel_to))
    text = "\n".join(parts).rstrip() + "\n"
    with open(out, "w") as f:
        f.write(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", help="where experiments.run wrote its JSON")
    p.add_argument("--out", default="RESULTS.md")
    p.add_argument("--plots", default=None, help="where to write PNGs (default DIR/plots)")
    args = p.parse_args(argv)
    build(args.directory, args.out, args.plots)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
