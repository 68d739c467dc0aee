"""Plots: a missing matplotlib is one line before any work; axes that suit short sweeps."""

from __future__ import annotations

import os
import sys

import pytest

from snnjax import bench, cli
from snnjax.bench import command

# experiments/ is a top-level package of the repository, not of the installed snnjax.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY = ["--model", "mlp", "--hidden", "8", "--input-shape", "12", "--batch-size", "4"]


@pytest.mark.parametrize(
    "args",
    [["cost", *TINY, "--rules", "bptt", "--T", "2", "--steps", "0", "--plot", "c.png"],
     ["grid", *TINY, "--T", "2", "--windows", "1", "--block-sizes", "1", "--heatmap", "g.png"]],
    ids=["cost --plot", "grid --heatmap"],
)
def test_plot_without_matplotlib_is_one_line_before_any_work(args, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now fails

    def never(*a, **k):
        raise AssertionError("measured although the plot cannot be drawn")

    monkeypatch.setattr(command, "cost_rows", never)
    monkeypatch.setattr(command, "grid_rows", never)
    assert cli.main(["bench", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "snnjax: error: plots need matplotlib, which is not installed: "
        "pip install 'snnjax[plot]'\n"
    )
    assert captured.out == ""


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions draw, kept open instead of closed."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    drawn, close = [], plt.close
    monkeypatch.setattr(plt, "close", drawn.append)
    yield drawn
    for fig in drawn:
        close(fig)


def _cost_rows(Ts, memory, times=None):
    rows = []
    for i, (T, mem) in enumerate(zip(Ts, memory, strict=True)):
        rows.append({"rule": "bptt", "T": T, "memory_bytes": mem * 2**20,
                     "step_time_s": None if times is None else times[i]})
    return rows


def test_a_short_sweep_has_its_Ts_as_ticks_and_linear_axes(figures, tmp_path):
    bench.plot_cost(_cost_rows([2, 4, 6], [1.0, 1.5, 2.0], [0.010, 0.012, 0.015]),
                    str(tmp_path / "c.png"))
    (fig,) = figures
    for ax in fig.axes:
        assert ax.get_xscale() == "linear"  # 2..6 is less than two octaves
        assert list(ax.get_xticks()) == [2, 4, 6]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "6"]
        assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0  # within one decade


def test_a_wide_sweep_has_log_axes(figures, tmp_path):
    Ts = [4, 8, 16, 32, 64]
    bench.plot_cost(_cost_rows(Ts, [1.0, 4.0, 16.0, 64.0, 256.0]), str(tmp_path / "c.png"))
    (fig,) = figures
    (ax,) = fig.axes  # not timed: the memory panel only
    assert ax.get_xscale() == "log" and list(ax.get_xticks()) == Ts
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "8", "16", "32", "64"]
    assert ax.get_yscale() == "log"  # memory over more than a decade


def test_report_epochs_are_whole_numbers(figures, tmp_path):
    from experiments import report

    history = [{"epoch": e, "test_accuracy": 0.5 + 0.1 * e} for e in (1, 2)]
    run = {"labels": {"rule": "bptt"},
           "result": {"history": history, "compiled_memory_bytes": 2**20, "step_time_s": 0.01}}
    payload = {"experiment": {"name": "x", "preset": "smoke", "group": None},
               "runs": [run, {**run, "labels": {"rule": "sltt"}}]}
    report.plot(payload, str(tmp_path))
    (fig,) = figures
    ax = fig.axes[0]
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)
