"""`snnjax bench`: cost table, grid and planner end to end on tiny settings."""

import json

import jax
import jax.numpy as jnp
import pytest

from snnjax import bench, cli, cost, models, rules
from snnjax.train import Trainer

TINY = ["--model", "mlp", "--hidden", "16", "--input-shape", "12", "--batch-size", "4"]


def test_parse_bytes():
    assert bench.parse_bytes("16GB") == 16 * 10**9
    assert bench.parse_bytes("16GiB") == bench.parse_bytes("16G") == 16 * 2**30
    assert bench.parse_bytes("512 MiB") == 512 * 2**20
    assert bench.parse_bytes("1.5e9") == 1_500_000_000
    for bad in ("lots", "16XB", "0GB"):
        with pytest.raises(ValueError):
            bench.parse_bytes(bad)


def test_largest_doubles_then_bisects():
    calls = []

    def fits(n):
        calls.append(n)
        return n <= 37

    assert bench.largest(fits) == (37, False)
    assert len(calls) <= 2 * 7 + 1  # doubling to 64, then bisection in (32, 64)
    assert bench.largest(lambda n: n <= 500, cap=100) == (100, True)
    assert bench.largest(lambda n: False) == (0, False)
    assert bench.largest(lambda n: n <= 9, lo=4) == (9, False)


def test_cost_cli_writes_json_and_png_consistent_with_memory_analysis(tmp_path, capsys):
    out, png = tmp_path / "cost.json", tmp_path / "cost.png"
    rc = cli.main(["bench", "cost", *TINY, "--rules", "bptt,sltt", "--T", "2,4",
                   "--steps", "1", "--json", str(out), "--plot", str(png)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "temp MiB" in text and "sltt" in text
    rows = json.loads(out.read_text())
    assert [(r["rule"], r["T"]) for r in rows] == [
        ("bptt", 2), ("bptt", 4), ("sltt", 2), ("sltt", 4)
    ]
    for key in ("rule", "T", "temp_bytes", "memory_bytes", "macs", "memory_access_bytes",
                "step_time_s"):
        assert all(r[key] is not None for r in rows), key
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The same step, compiled directly: the JSON's figures are its memory analysis.
    model = models.mlp(10, hidden=(16,))
    for r in rows[1::2]:  # T = 4 of each rule
        rule = rules.by_name(r["rule"])
        trainer = Trainer(model, rule, cost.default_optimizer())
        xs, ys = jnp.zeros((r["T"], 4, 12)), jnp.zeros((4,), jnp.int32)
        ts = trainer.init(jax.random.key(3), xs)
        m = jax.jit(trainer.train_step, donate_argnums=0).lower(ts, xs, ys).compile()
        m = m.memory_analysis()
        assert r["temp_bytes"] == m.temp_size_in_bytes
        assert r["memory_bytes"] == (
            m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
        )
    # BPTT's temporaries grow with T; SLTT's do not.
    by = {(r["rule"], r["T"]): r for r in rows}
    assert by["bptt", 4]["temp_bytes"] > by["bptt", 2]["temp_bytes"]
    assert by["sltt", 4]["temp_bytes"] == by["sltt", 2]["temp_bytes"]


def test_cost_cli_skips_a_window_longer_than_T(tmp_path, capsys):
    out = tmp_path / "c.json"
    rc = cli.main(["bench", "cost", *TINY, "--rules", "tbptt", "--window", "3",
                   "--T", "2,4", "--steps", "0", "--json", str(out)])
    assert rc == 0
    assert "skip tbptt at T=2" in capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert [r["T"] for r in rows] == [4] and rows[0]["step_time_s"] is None


def test_grid_cli_writes_heatmap(tmp_path):
    out, png = tmp_path / "grid.json", tmp_path / "grid.png"
    rc = cli.main(["bench", "grid", "--model", "mlp", "--hidden", "16,8", "--input-shape", "12",
                   "--batch-size", "4", "--T", "4", "--windows", "2", "--block-sizes", "1,2",
                   "--json", str(out), "--heatmap", str(png)])
    assert rc == 0
    cells = {(r["window"], r["block_size"]): r for r in json.loads(out.read_text())}
    assert set(cells) == {(2, 1), (2, 2)}
    assert cells[2, 2]["rule"] == "tbptt(k=2)"  # one block: plain TBPTT
    assert cells[2, 1]["rule"] == "local(tbptt(k=2))"
    # Local's cut spares the second block's input gradient but adds an aux head.
    assert cells[2, 1]["macs"] != cells[2, 2]["macs"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_plan_cli(tmp_path, capsys):
    out = tmp_path / "plan.json"
    # A budget between BPTT's memory at T=4 and at T=8 on this tiny net (~13.5 kB, ~17 kB).
    rc = cli.main(["bench", "plan", *TINY, "--rules", "bptt", "--budget", "15000",
                   "--max-T", "8", "--json", str(out)])
    assert rc == 0
    (row,) = json.loads(out.read_text())
    assert "max T" in capsys.readouterr().out
    assert 4 <= row["max_T"] < 8 and not row["max_T_capped"]
    assert row["memory_at_max_T"] <= 15000
    trainer = Trainer(models.mlp(10, hidden=(16,)), rules.bptt(), cost.default_optimizer())
    xs, ys = cost.abstract_batch(row["max_T"] + 1, 4, (12,))
    assert cost.step_memory(trainer, xs, ys)["memory_bytes"] > 15000  # one more step won't fit


@pytest.mark.slow
def test_plan_sltt_fits_longer_sequences_and_finds_a_batch(tmp_path):
    out = tmp_path / "plan.json"
    rc = cli.main(["bench", "plan", *TINY, "--rules", "bptt,sltt", "--budget", "15000",
                   "--T", "2", "--max-T", "8", "--max-batch", "4", "--json", str(out)])
    assert rc == 0
    rows = {r["rule"]: r for r in json.loads(out.read_text())}
    # SLTT's memory does not grow with T the way BPTT's does: it fits a longer sequence.
    assert rows["sltt"]["max_T"] > rows["bptt"]["max_T"]
    for r in rows.values():
        assert r["max_batch"] >= 1 and r["memory_at_max_batch"] <= r["budget_bytes"]


def test_plan_rejects_bad_budget(capsys):
    assert cli.main(["bench", "plan", *TINY, "--budget", "lots"]) == 2
    assert "cannot read a memory size" in capsys.readouterr().err
