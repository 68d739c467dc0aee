"""The paper-table configs: they load, build, run end to end, and report.

Loading and building every run of every preset is cheap (no compilation). One config's smoke
preset runs end to end here (training, cost counts, JSON, Markdown, plots); the other configs'
smoke runs and the small presets are marked slow.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os

import sys

import numpy as np
import pytest

# experiments/ is a top-level package of the repository, not of the installed snnjax: make it
# importable however pytest was started (``pytest`` does not put the root on sys.path).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import experiments  # noqa: E402, F401  (registers the digit stand-ins)
from experiments import common, report  # noqa: E402
from experiments import run as run_lib  # noqa: E402
from snnjax import data  # noqa: E402
from snnjax.experiment import TrainConfig, make_model, make_rule  # noqa: E402

PAPER_DATASETS = {"cifar10", "cifar100", "cifar10_dvs", "dvs_gesture"}


@pytest.mark.parametrize("name", run_lib.CONFIGS)
def test_docstring_names_paper_expectation_command_runtime(name):
    doc = importlib.import_module(f"experiments.{name}").__doc__
    for needle in ("Paper:", "Expected", "python -m experiments.run", "Runtime", "small"):
        assert needle in doc, f"{name}'s docstring lacks {needle!r}"


@pytest.mark.parametrize("preset", common.PRESETS)
@pytest.mark.parametrize("name", run_lib.CONFIGS)
def test_every_run_builds(name, preset):
    exp = run_lib.load(name, preset)
    assert exp.name == name and exp.preset == preset and exp.runs
    for run in exp.runs:
        cfg = run.config
        cfg.validate()
        datasets = {"digits_std", "digits_dvs"} if preset != "paper" else PAPER_DATASETS
        assert cfg.dataset in datasets
        if exp.group:
            assert exp.group in run.labels
        rule = make_rule(cfg)
        rule.plan(cfg.T)  # window <= T, K <= T
        model = make_model(cfg, 10)
        assert model.input_ndim == 3
        if exp.grid:
            assert set(exp.grid) <= set(run.labels)
    if exp.baseline:  # every group has its baseline cell
        groups = {run.labels.get(exp.group) for run in exp.runs}
        for g in groups:
            assert any(
                run.labels.get(exp.group) == g
                and all(str(run.labels[k]) == str(v) for k, v in exp.baseline.items())
                for run in exp.runs
            ), f"{name}/{preset}: group {g} has no baseline"


def test_paper_hyperparameters():
    ottt = {r.key: r.config for r in run_lib.load("ottt", "paper").runs}
    c10 = ottt["CIFAR-10/OTTT_A"]
    assert (c10.model, c10.T, c10.tau, c10.optimizer, c10.lr, c10.epochs, c10.batch_size,
            c10.mse) == ("vgg11_sws", 6, 2.0, "sgd", 0.1, 300, 128, 0.05)
    assert ottt["CIFAR-10/OTTT_O"].rule == "ottt-o"
    assert ottt["CIFAR10-DVS/OTTT_A"].T == 10 and ottt["CIFAR10-DVS/OTTT_A"].dropout == 0.1
    gesture = ottt["DVS128 Gesture/OTTT_A"]
    assert (gesture.T, gesture.optimizer, gesture.batch_size) == (20, "adam", 16)

    sltt = {r.key: r.config for r in run_lib.load("sltt", "paper").runs}
    c10 = sltt["CIFAR-10/ResNet-18/SLTT"]
    assert (c10.model, c10.T, c10.tau, c10.surrogate, c10.weight_decay, c10.epochs,
            c10.mse_target) == ("resnet18", 6, 1.1, "triangle", 5e-5, 200, 1.0)
    assert sltt["CIFAR-100/ResNet-18/SLTT"].weight_decay == 5e-4
    dvs = sltt["CIFAR10-DVS/VGG-11 (BN)/SLTT-2"]
    assert (dvs.model, dvs.rule, dvs.K, dvs.T, dvs.dropout, dvs.lr) == (
        "vgg11_bn", "sltt-k", 2, 10, 0.3, 0.05)
    assert sltt["DVS128 Gesture/VGG-11 (BN)/SLTT-4"].K == 4
    assert sltt["DVS128 Gesture/VGG-11 (BN)/BPTT"].rule == "bptt"

    sweep = run_lib.load("guo_sweep", "paper")
    rules = {(r.labels["window k"], r.labels["block m"]): r.config.rule for r in sweep.runs}
    assert rules[("T", "global")] == "bptt" and rules[(2, "global")] == "tbptt"
    assert rules[("T", 2)] == "local" and rules[(2, 2)] == "tbptt-local"
    alex = run_lib.load("guo_alexnet", "paper")
    assert all(r.cost and r.config.model == "alexnet" for r in alex.runs)
    assert alex.paper_deltas["MACs"] == "−99.64 %"


def test_paper_numbers_beside_the_cells():
    paper = {r.key: r.paper for r in run_lib.load("ottt", "paper").runs}
    assert paper["CIFAR-100/OTTT_O"] == "71.1" and paper["DVS128 Gesture/OTTT_A"] == "96.9"
    paper = {r.key: r.paper for r in run_lib.load("sltt", "paper").runs}
    assert paper["CIFAR-10/ResNet-18/SLTT"] == "94.4"
    assert paper["CIFAR-10/ResNet-18/BPTT"] is None


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown config"):
        run_lib.load("nope")
    with pytest.raises(ValueError, match="unknown preset"):
        run_lib.load("ottt", "huge")
    with pytest.raises(ValueError, match="no run matches"):
        run_lib.load("ottt", "small").select("ImageNet")
    run = common.Run({"a": 1}, TrainConfig())
    with pytest.raises(ValueError, match="share labels"):
        common.Experiment("x", "x", "x", "small", (run, run))


@pytest.mark.parametrize("name", ["ottt", "guo_sweep"])
def test_smoke_preset_does_not_describe_itself_as_the_small_one(name):
    exp = run_lib.load(name, "smoke")
    assert exp.title.endswith("(smoke preset)") and "small preset" not in exp.title
    assert exp.notes.startswith("Smoke preset: ") and "8 epochs" not in exp.notes
    payload = {"experiment": run_lib._describe(exp), "runs": []}
    text = report.section(payload, [], ".")
    assert "Small preset:" not in text and "(small preset)" not in text, text
    assert "8 epochs" not in text and "one epoch" in text, text


def test_smoke_shrinks_but_keeps_the_comparison():
    small = run_lib.load("guo_sweep", "small")
    smoke = run_lib.load("guo_sweep", "smoke")
    assert len(smoke.runs) <= len(small.runs)
    for run in smoke.runs:
        assert run.config.epochs == 1 and run.config.T == 2 and run.config.window <= 2


# ---------------------------------------------------------------------------- the stand-ins


def test_digit_stand_ins():
    std = data.load("digits_std", "train")
    assert std.x.shape[1:] == (8, 8, 1) and not std.temporal
    x = (std.x - std.mean[0]) / std.std[0]
    assert abs(float(x.mean())) < 1e-4 and float(x.std()) == pytest.approx(1.0, rel=1e-3)

    dvs = data.load("digits_dvs", "train", T=5)
    test = data.load("digits_dvs", "test", T=5)
    assert dvs.temporal and dvs.x.shape[1:] == (5, 8, 8, 2) and test.x.shape[1:] == (5, 8, 8, 2)
    assert (dvs.x >= 0).all() and float(dvs.x.std()) == pytest.approx(1.0, rel=1e-3)
    assert len(dvs) == len(std) and (dvs.y == std.y).all()
    # Events are brightness changes: consecutive frames differ, and both polarities occur.
    assert not np.allclose(dvs.x[:, 0], dvs.x[:, 1])
    assert dvs.x[..., 0].sum() > 0 and dvs.x[..., 1].sum() > 0
    with pytest.raises(ValueError, match="T"):
        data.load("digits_dvs", "train", T=0)


def test_saccade_events_are_signed_differences():
    from experiments.datasets import saccade_events

    img = np.zeros((1, 4, 4), np.float32)
    img[0, 1, 1] = 1.0
    ev = saccade_events(img, 4, np.random.default_rng(0))
    # Total ON equals total OFF for a pixel that moves inside the frame: what appears somewhere
    # disappears elsewhere.
    assert ev[..., 0].sum() == pytest.approx(ev[..., 1].sum())
    assert set(np.unique(ev)) <= {0.0, 1.0}


# ---------------------------------------------------------------------------- end to end


def _run_and_report(exp, tmp_path):
    out = tmp_path / "results"
    payload = run_lib.run_experiment(exp, str(out), log=lambda *a, **k: None)
    path = out / f"{exp.name}-{exp.preset}.json"
    assert json.loads(path.read_text())["runs"] == json.loads(json.dumps(payload["runs"],
                                                                         default=str))
    for entry, run in zip(payload["runs"], exp.runs):
        res = entry["result"]
        assert entry["key"] == run.key and 0.0 <= res["final_test_accuracy"] <= 1.0
        assert res["compiled_memory_bytes"] > 0 and len(res["history"]) == run.config.epochs
    md = tmp_path / "RESULTS.md"
    text = report.build(str(out), str(md))
    assert exp.title in text and "| " in text
    for entry in payload["runs"]:
        assert str(list(entry["labels"].values())[-1]) in text
    pngs = list((out / "plots").glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    return payload, text


def test_guo_alexnet_smoke_end_to_end(tmp_path):
    """One cell trained for real: train, count MACs and memory access, write JSON, build the
    table (the comparison columns are checked on hand-made results below)."""
    exp = run_lib.load("guo_alexnet", "smoke").select("TBPTT + Local")
    payload, text = _run_and_report(exp, tmp_path)
    cost = payload["runs"][0]["cost"]
    assert cost["macs"] > cost["backward_macs"] > 0 and cost["memory_access_bytes"] > 0
    assert "MACs (M)" in text and "−89.94 %" in text


def test_report_compares_with_the_baseline(tmp_path):
    exp = run_lib.load("guo_alexnet", "small")
    runs = []
    for i, run in enumerate(exp.runs):
        runs.append({
            "key": run.key, "labels": dict(run.labels), "paper": run.paper,
            "config": dataclasses.asdict(run.config),
            "result": {"final_test_accuracy": 0.5 + i / 10,
                       "compiled_memory_bytes": 2**20 // (i + 1), "step_time_s": 0.01,
                       "history": [{"epoch": 1, "test_accuracy": 0.5}]},
            "cost": {"macs": 1e6 * (4 - i), "memory_access_bytes": 1e6, "backward_macs": 1},
        })
    payload = {"experiment": run_lib._describe(exp), "runs": runs, "command": "x"}
    os.makedirs(tmp_path / "r")
    (tmp_path / "r" / "guo_alexnet-small.json").write_text(json.dumps(payload))
    text = report.build(str(tmp_path / "r"), str(tmp_path / "R.md"))
    # TBPTT + Local (i = 3) against BPTT (i = 0): +30 points, a quarter of the memory and MACs.
    row = next(line for line in text.splitlines() if line.startswith("| TBPTT + Local"))
    assert "| +30.0 | -75.0 % | +0.0 % | +0.0 % | -75.0 % |" in row
    assert "Paper, best truncated local setting against BPTT" in text


def _fake_train(cfg, **kwargs):
    return {"final_test_accuracy": 0.5, "compiled_memory_bytes": 2**20, "step_time_s": 0.01,
            "history": [{"epoch": 1, "test_accuracy": 0.5}], "rule": cfg.rule}


def test_cli_only_reruns_cells_and_merges(tmp_path, monkeypatch):
    """``--only`` runs the matching cells and merges them into the config's results file
    (training replaced by a stub: this checks the bookkeeping, not the training)."""
    monkeypatch.setattr("snnjax.experiment.train_and_evaluate", _fake_train)
    monkeypatch.setattr(run_lib, "run_cost", lambda cfg: {"macs": 1, "memory_access_bytes": 1})
    out = tmp_path / "o"
    assert run_lib.main(["guo_alexnet", "--only", "/BPTT", "--out", str(out)]) == 0
    path = out / "guo_alexnet-small.json"
    assert [e["key"] for e in json.loads(path.read_text())["runs"]] == [
        "digits-DVS (events)/BPTT"]
    assert run_lib.main(["guo_alexnet", "--only", "Local (m", "--epochs", "3",
                         "--out", str(out)]) == 0
    runs = json.loads(path.read_text())["runs"]
    assert [e["key"] for e in runs] == ["digits-DVS (events)/BPTT",
                                       "digits-DVS (events)/Local (m=2)"]
    assert runs[1]["config"]["epochs"] == 3
    assert report.main([str(out), "--out", str(tmp_path / "R.md")]) == 0
    assert "Local (m=2)" in (tmp_path / "R.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ottt", "sltt", "guo_sweep"])
def test_smoke_end_to_end(name, tmp_path):
    _run_and_report(run_lib.load(name, "smoke"), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", run_lib.CONFIGS)
def test_small_preset_end_to_end(name, tmp_path):
    exp = run_lib.load(name, "small")
    payload, _ = _run_and_report(exp, tmp_path)
    # The comparison the preset exists for: every run learned something.
    for entry in payload["runs"]:
        assert entry["result"]["final_test_accuracy"] > 0.2, entry["key"]
