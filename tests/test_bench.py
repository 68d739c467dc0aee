"""`snnjax bench`: cost table, grid and planner end to end on tiny settings."""

import functools
import inspect
import json
import operator
import subprocess
import sys

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


def _check_definition(found, fits, *, lo=1, cap=1 << 16, scan=4):
    """The documented answer of bench.largest, checked against what it tested."""
    v, tested = found.value, found.tested
    assert all(tested[n] == fits(n) for n in tested)  # tested means: called fits
    if v == 0:
        assert not fits(lo) and not found.capped
        return
    assert lo <= v <= cap and tested[v]
    assert all(ok for n, ok in tested.items() if n <= v)  # every tested value <= v fits
    if found.capped:
        assert v == cap and all(tested.values())
    else:
        assert tested[v + 1] is False  # v + 1 was tested and does not fit
    assert found.dense_below >= min(scan, v - lo)
    beyond = [n for n, ok in tested.items() if ok and n > v]
    assert found.fits_beyond == (max(beyond) if beyond else None)


def test_largest_monotone_is_exact_and_cheap():
    calls = []

    def fits(n):
        calls.append(n)
        return n <= 37

    found = bench.largest(fits)
    assert (found.value, found.capped, found.fits_beyond) == (37, False, None)
    assert len(calls) == len(set(calls))  # each value tested once
    # doubling to 64, bisection in (32, 64), then the values 33..36 below the answer
    assert len(calls) <= 7 + 5 + 4
    _check_definition(found, lambda n: n <= 37)
    assert bench.largest(lambda n: n <= 9, lo=4).value == 9
    for t in (1, 2, 3, 100, 1000, 4095):
        fits = functools.partial(operator.ge, t)  # n <= t
        _check_definition(bench.largest(fits, cap=4096), fits, cap=4096)


def test_largest_cap_and_nothing_fits():
    capped = bench.largest(lambda n: n <= 500, cap=100)
    assert (capped.value, capped.capped) == (100, True)
    assert capped.dense_below == 4  # 96..99 were checked too
    assert bench.largest(lambda n: True, lo=5, cap=5)[:2] == (5, True)
    nothing = bench.largest(lambda n: False)
    assert (nothing.value, nothing.capped, nothing.fits_beyond) == (0, False, None)
    assert list(nothing.tested) == [1]  # one test only
    assert bench.largest(lambda n: n < 4, lo=4).value == 0
    # The cap fits but a value just below it does not: not capped, the bound drops below.
    found = bench.largest(lambda n: n != 98, cap=100)
    assert (found.value, found.capped, found.fits_beyond) == (97, False, 100)
    with pytest.raises(ValueError):
        bench.largest(lambda n: True, lo=5, cap=4)


def test_largest_non_monotone_satisfies_its_definition():
    # Fits up to 45 except at 43, and again from 50 to 58 (which the search never tests).
    def fits(n):
        return (n <= 45 and n != 43) or 50 <= n <= 58

    found = bench.largest(fits)
    # Plain doubling + bisection stops at 45 (tests 32, 64, 48, 40, 44, 46, 45) and never
    # sees 43; the scan below 45 does, and the answer drops to 42.
    assert found.value == 42 and found.tested[43] is False
    assert found.fits_beyond == 45
    _check_definition(found, fits)

    # A periodic failure like TBPTT's (its window not dividing T): 2 in 3 values fail above
    # 20. The first failure tested is 32; the scans below the bisection's answer find 22.
    def periodic(n):
        return n <= 20 or n % 3 == 0

    found = bench.largest(periodic, cap=4096)
    assert found.value == 21 and found.fits_beyond == 24
    _check_definition(found, periodic, cap=4096)

    # Every power of two fits here, up to the cap: each round of scans walks down only a few
    # values, so with the rounds spent the answer is still far above 20, but it keeps the
    # part of the definition that always holds (every tested value <= v fits, v + 1 not).
    def powers(n):
        return n <= 20 or n % 4 == 0

    found = bench.largest(powers, cap=4096, rounds=3)
    v = found.value
    assert 20 < v < 4096 and not found.capped and found.fits_beyond == 4096
    assert all(ok for n, ok in found.tested.items() if n <= v) and not found.tested[v + 1]
    assert len(found.tested) < 40


@pytest.mark.parametrize("seed", range(40))
def test_largest_random_non_monotone(seed):
    import random

    rnd = random.Random(seed)
    cap = rnd.choice([16, 100, 1000])
    lo = rnd.randint(1, 4)
    # mostly monotone with holes below the threshold and islands above it
    threshold = rnd.randint(0, cap + 10)
    holes = {rnd.randint(1, cap) for _ in range(rnd.randint(0, 6))}
    islands = {rnd.randint(1, cap) for _ in range(rnd.randint(0, 6))}

    def fits(n):
        return (n <= threshold and n not in holes) or n in islands

    for rounds in (0, 1, 3):
        found = bench.largest(fits, lo=lo, cap=cap, rounds=rounds)
        v, tested = found.value, found.tested
        # the part of the definition that holds whatever the rounds
        assert v == 0 or (tested[v] and all(ok for n, ok in tested.items() if n <= v))
        assert found.capped or v == 0 or tested[v + 1] is False
        if rounds == 3 and found.dense_below < min(4, v - lo):
            continue  # the rounds ran out (several holes in a row of scans)
        if rounds == 3:
            _check_definition(found, fits, lo=lo, cap=cap)


def memory_of(rule, T, batch):
    """Fake bytes of (rule, T, batch): TBPTT-like ragged windows in T, a sawtooth in batch
    (every 7th batch size costs 30% more)."""
    per_sample = 100 * (T if rule.name == "bptt" else 3 + 2 * (T % 3 != 0))
    bump = 1.3 if batch % 7 == 0 else 1.0
    return int(1000 + per_sample * batch * bump)


def _fake_memory(calls):
    def memory(rule, T, batch):
        calls.append((rule.name, T, batch))
        return memory_of(rule, T, batch)

    return memory


def test_plan_rows_with_injected_non_monotone_memory():
    calls = []
    memory = _fake_memory(calls)
    rule_list = [("bptt", rules.bptt()), ("tbptt", rules.tbptt(3))]
    budget = 1000 + 100 * 5 * 8  # tbptt at a ragged T fits batch 8, at T = 3j batch 13
    rows = bench.plan_rows(None, rule_list, budget=budget, batch_size=8, input_shape=None,
                           T=4, max_T=64, max_batch=1024, memory_fn=memory, log=lambda s: None)
    by = {r["rule"]: r for r in rows}
    for name, rule in rule_list:
        r = by[name]
        mine = [(t, b, memory_of(rule, t, b) <= budget) for n, t, b in calls if n == rule.name]
        tested_T = {t: ok for t, b, ok in mine if b == 8}
        tested_b = {b: ok for t, b, ok in mine if t == 4}
        for what, tested in (("T", tested_T), ("batch", tested_b)):
            v = r[f"max_{what}"]
            assert tested[v] and all(ok for n, ok in tested.items() if n <= v), (name, what)
            assert r[f"max_{what}_capped"] or tested[v + 1] is False
            assert r[f"memory_at_max_{what}"] <= budget
        assert r["compiles"] == len({(t, b) for n, t, b in calls if n == rule.name})
    # BPTT at batch 8: 1000 + 800 T <= 5000 -> T <= 5.
    assert by["bptt"]["max_T"] == 5 and by["bptt"]["max_T_fits_beyond"] is None
    # TBPTT(3) starts at T = 3 and fits every T at batch 8 (ragged ones exactly at budget) ...
    assert by["tbptt"]["max_T"] == 64 and by["tbptt"]["max_T_capped"]
    # ... but at T = 4 (ragged) batch 7 costs 30% more: the bound stops at 6, below it.
    assert by["tbptt"]["max_batch"] == 6 and by["tbptt"]["max_batch_fits_beyond"] == 8
    # BPTT at T = 4: 400 per sample -> batch 10, with 7 (1.3 × 7 × 400 = 3640) fitting.
    assert by["bptt"]["max_batch"] == 10


def test_sizes_read_in_a_sensible_binary_unit():
    assert bench.text.format_size(512) == "512 B"
    assert bench.text.format_size(4e6) == "3.81 MiB"  # --budget 4MB
    assert bench.text.format_size(15000) == "14.65 KiB"
    assert bench.text.format_size(40 * 2**30) == "40.00 GiB"


def test_plan_rows_cap_and_nothing_fits():
    memory = _fake_memory([])
    rule_list = [("tbptt", rules.tbptt(3))]
    none = bench.plan_rows(None, rule_list, budget=500, batch_size=1, input_shape=None, T=2,
                           max_T=16, memory_fn=memory, log=lambda s: None)[0]
    assert none["max_T"] == 0 and none["memory_at_max_T"] is None
    assert none["max_batch"] is None  # T = 2 is shorter than the window: no batch search
    rows = bench.plan_rows(None, rule_list, budget=10**9, batch_size=1, input_shape=None, T=3,
                           max_T=16, max_batch=32, memory_fn=memory, log=lambda s: None)
    (r,) = rows
    assert (r["max_T"], r["max_T_capped"]) == (16, True)
    assert (r["max_batch"], r["max_batch_capped"]) == (32, True)
    line = bench.text.plan_line(r)
    assert "max T 16+" in line and "max batch 32+" in line
    assert "fits too" in bench.text.plan_line({**r, "max_T_capped": False, "max_T_fits_beyond": 20})


def test_cost_cli_writes_json_and_png_consistent_with_memory_analysis(tmp_path, capsys):
    out, png = tmp_path / "cost.json", tmp_path / "cost.png"
    rc = cli.main(["bench", "cost", *TINY, "--rules", "bptt,sltt", "--T", "2,4",
                   "--steps", "1", "--json", str(out), "--plot", str(png)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "temp MiB" in text and "sltt" in text
    # One unit family: binary MiB for every byte column, never decimal MB beside them.
    header = text.splitlines()[1]
    assert "access MiB" in header and " MB" not in text, text
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
    text = capsys.readouterr().out
    assert "max T" in text and "every value tested up to v fits" in text
    assert "budget 15,000 bytes (14.65 KiB)" in text, text  # not "(0.00 GiB)"
    assert f"max T {row['max_T']} ({bench.text.format_size(row['memory_at_max_T'])})" in text, text
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


def test_public_names_and_python_m_snnjax_bench():
    for name in bench.__all__:
        obj = getattr(bench, name)
        assert callable(obj) and not inspect.ismodule(obj), name
    out = subprocess.run([sys.executable, "-m", "snnjax.bench", "plan", "--help"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "--budget" in out.stdout
