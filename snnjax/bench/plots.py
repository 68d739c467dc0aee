"""Plots of cost rows: memory and time against T, heat maps over Guo et al.'s grid.

matplotlib is an extra (``snnjax[plot]``): :func:`require_matplotlib` says so in one line.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["require_matplotlib", "plot_cost", "plot_grid"]


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
