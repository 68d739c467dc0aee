"""The CLI as a user runs it: a subprocess per command."""

import argparse
import json
import os
import subprocess
import sys

import pytest
from xla_flags import COMPILE_FAST

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
ENV["XLA_FLAGS"] = COMPILE_FAST  # one device, as on a user's laptop


def snnjax(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "snnjax.cli", *args], capture_output=True, text=True,
        env=ENV, timeout=timeout,
    )


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run.json"
    proc = snnjax("train", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(out.read_text())


def test_default_train_reaches_stated_accuracy(default_run):
    # README: the default run reaches >= 90 % test accuracy on the 8x8 digits.
    proc, result = default_run
    assert result["final_test_accuracy"] >= 0.90
    assert "final test accuracy" in proc.stdout


def test_piped_output_keeps_no_progress_bar(default_run):
    # Run with its output piped (as into a log file): one line per epoch, no bar's redraws.
    proc, result = default_run
    epochs = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == result["config"]["epochs"], proc.stdout
    assert "it/s" not in proc.stderr and "\r" not in proc.stderr + proc.stdout, proc.stderr
    assert not any(f"epoch {e}/" in proc.stderr for e in (1, result["config"]["epochs"]))


def test_results_json_keys(default_run):
    _, result = default_run
    assert result["config"]["rule"] == "bptt" and result["config"]["dataset"] == "digits"
    assert len(result["history"]) == result["config"]["epochs"]
    for row in result["history"]:
        assert {"loss", "train_accuracy", "test_accuracy"} <= set(row)
        assert 0.0 <= row["test_accuracy"] <= 1.0
    assert 0.0 <= result["final_test_accuracy"] <= 1.0
    assert result["step_time_s"] > 0
    mem = result["compiled_memory"]
    assert result["compiled_memory_bytes"] == (
        mem["temp_bytes"] + mem["argument_bytes"] + mem["output_bytes"]
    )


def test_rsnn_on_the_temporal_order_task_offline(tmp_path):
    out = tmp_path / "r.json"
    proc = snnjax("train", "--model", "rsnn", "--hidden", "16", "--dataset", "temporal_order",
                  "--T", "8", "--epochs", "1", "--batch-size", "256", "--no-progress",
                  "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert (result["config"]["model"], result["config"]["dataset"]) == ("rsnn", "temporal_order")
    assert result["config"]["hidden"] == [16] and len(result["history"]) == 1
    proc = snnjax("train", "--dataset", "temporal_order", "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and "ships with snnjax" in proc.stderr


RULE_ARGS = {
    "tbptt": ["--window", "2"],
    "local": ["--block-size", "1"],
    "tbptt-local": ["--window", "2", "--block-size", "1"],
    "sltt": [],
    "sltt-k": ["--K", "2"],
    "ottt-a": [],
    "ottt-o": [],
    "eprop": [],
    "eprop-random": ["--feedback", "random"],
    "ostl": [],
}


@pytest.fixture(scope="module")
def bptt_two_layer(tmp_path_factory):
    out = tmp_path_factory.mktemp("bptt") / "r.json"
    proc = snnjax("train", "--hidden", "128,64", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())["final_test_accuracy"]


# Under -m slow only: OSTL (on this MLP, without a recurrent layer, it is e-prop) and e-prop's
# random feedback (its gradient is checked in float64 by tests/test_eprop.py): each of the
# two runs as long as three runs of the other rules.
_SLOW_RUNS = {"ostl", "eprop-random"}


@pytest.mark.parametrize("rule", [
    pytest.param(r, marks=[pytest.mark.slow] if r in _SLOW_RUNS else [])
    for r in sorted(RULE_ARGS)])
def test_every_rule_trains_within_5_points_of_bptt(rule, bptt_two_layer, tmp_path):
    # Two hidden layers, so that Local (block size 1) really has two blocks.
    out = tmp_path / "r.json"
    proc = snnjax("train", "--rule", rule.removesuffix("-random"), *RULE_ARGS[rule],
                  "--hidden", "128,64",
                  "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    acc = json.loads(out.read_text())["final_test_accuracy"]
    assert acc >= bptt_two_layer - 0.05, (rule, acc, bptt_two_layer)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--T", "0"], "T (time steps) must be >= 1"),
        (["--rule", "rtrl"], "unknown rule"),
        (["--model", "transformer"], "unknown model"),
        (["--surrogate", "tanh"], "unknown surrogate"),
        (["--dataset", "imagenet22k"], "unknown dataset"),
        (["--rule", "sltt-k", "--K", "9", "--T", "4"], "K=9 is larger"),
        (["--rule", "tbptt", "--window", "6", "--T", "4"], "longer than the sequence"),
        (["--rule", "ottt-a", "--model", "cnn", "--pool", "max"], "max pooling"),
        (["--rule", "eprop", "--model", "cnn"], "e-prop cannot train 'units_0/Conv_0' (Conv)"),
        (["--rule", "sltt", "--feedback", "random"], "does not use --feedback"),
    ],
)
def test_bad_settings_give_a_clear_error(args, message):
    proc = snnjax("train", "--epochs", "1", "--no-progress", *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_compare_grads_header_table_and_json(tmp_path):
    out = tmp_path / "grads.json"
    proc = snnjax("compare-grads", "--model", "mlp", "--T", "4", "--rules", "sltt,tbptt,ottt-a",
                  "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    head, rules_line, columns, _dashes, *table = proc.stdout.splitlines()[:-1]
    assert head == "model mlp on digits, T 4, batch 32, seed 0, --window 2"
    assert rules_line == "rules sltt, tbptt, ottt-a, each against bptt"
    assert columns.split() == ["rule", "parameter", "cosine", "norm", "ratio"]
    assert len(table) == 12 and all(len(line) == len(columns) for line in table)
    for line in table:  # numbers right-aligned under their headers
        assert line[columns.index("cosine") - 2:columns.index("cosine") + 6].strip()[0] in "+-"
    result = json.loads(out.read_text())
    # Only the parameters of the rules compared: tbptt's window, no K or block size.
    assert result["config"] == {"model": "mlp", "dataset": "digits", "T": 4, "batch_size": 32,
                                "seed": 0, "reference": "bptt",
                                "rules": ["sltt", "tbptt", "ottt-a"], "window": 2}
    rows = result["rows"]
    assert {r["rule"] for r in rows} == {"sltt", "tbptt(k=2)", "ottt_a"}
    for r in rows:
        assert set(r) == {"rule", "param", "cosine", "norm_ratio"}
        assert -1.0 - 1e-9 <= r["cosine"] <= 1.0 + 1e-9
    # The readout's gradient is exact under SLTT (no temporal route reaches it).
    readout = [r for r in rows if r["rule"] == "sltt" and r["param"] == "readout/Dense_0/kernel"]
    assert readout and readout[0]["cosine"] == pytest.approx(1.0, abs=1e-6)


def test_json_config_records_only_what_the_rule_uses(default_run, tmp_path):
    from snnjax import cli

    _, result = default_run  # bptt: none of the rule parameters
    assert not {"window", "block_size", "K", "online"} & set(result["config"])
    out = tmp_path / "r.json"
    assert cli.main(["train", "--rule", "sltt-k", "--K", "2", "--epochs", "1", "--hidden", "8",
                     "--T", "2", "--no-progress", "--out", str(out)]) == 0
    config = json.loads(out.read_text())["config"]
    assert config["K"] == 2 and not {"window", "block_size", "online"} & set(config)


# -- help ------------------------------------------------------------------------------


def _commands():
    from snnjax import cli

    return [path for path, _ in cli.walk(cli.build_parser())]


def _parser(path):
    from snnjax import cli

    return dict(cli.walk(cli.build_parser()))[path]


def _options(parser):
    return [a for a in parser._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction)]


def test_the_top_level_lists_every_command():
    from snnjax import cli

    text = cli.build_parser().format_help()
    for name in ("train", "compare-grads", "bench"):
        assert f"\n    {name}" in text, text
    assert all(name in _parser(("bench",)).format_help() for name in ("cost", "grid", "plan"))


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(("snnjax", *p)))
def test_help_is_plain_text_with_defaults_and_type_names(path):
    parser = _parser(path)
    text = parser.format_help()
    for markup in (":func:", ":class:", ":mod:", ":meth:", ":data:", ":attr:", "``"):
        assert markup not in text, (markup, text)
    assert "<class" not in text and "<function" not in text
    for action in _options(parser):
        if action.type in (int, float) and action.metavar is None:
            assert f"{action.option_strings[-1]} {action.type.__name__.upper()}" in text
    if path == ("train",):  # an option with a default shows it
        assert "--T INT               time steps per sample (default: 4)" in text


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(("snnjax", *p)))
def test_every_option_is_described(path):
    undescribed = [a.option_strings[0] for a in _options(_parser(path))
                   if not (a.help and a.help.strip())]
    assert not undescribed, f"snnjax {' '.join(path)}: no help for {undescribed}"


def test_cli_bits_reaches_the_rule(monkeypatch, capsys):
    # --bits (docs/schedules.md, spikes as bits) is the rules' bits=True, as --remat is
    # remat=True; without it the rule keeps floats; with --remat it is refused.
    from snnjax import cli, experiment, rules

    seen = []
    monkeypatch.setattr(experiment, "train_and_evaluate",
                        lambda cfg, progress: seen.append(experiment.make_rule(cfg))
                        or (_ for _ in ()).throw(SystemExit(0)))
    for argv, want in [(["--rule", "bptt", "--bits"], rules.bptt(bits=True)),
                       (["--rule", "sltt", "--chunk", "4", "--bits"],
                        rules.sltt(chunk=4, bits=True)),
                       (["--rule", "tbptt-local", "--window", "3", "--bits"],
                        rules.local(rules.tbptt(3, bits=True), block_size=1)),
                       (["--rule", "bptt"], rules.bptt())]:
        with pytest.raises(SystemExit):
            cli.main(["train", *argv, "--no-progress"])
        assert seen.pop() == want
    assert cli.main(["train", "--rule", "bptt", "--bits", "--remat", "--no-progress"]) == 2
    assert "bits and remat" in capsys.readouterr().err and not seen
