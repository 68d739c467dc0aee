"""benchmarks/accelerator.py (issue 14): its --tiny run on CPU writes every section of the JSON
and renders the Markdown, on any machine speed (no time budget unless asked; a tiny budget
skips rows, never fails them); the roofline, the card table and the planner's search by hand."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "accelerator.py"
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
ENV.pop("XLA_FLAGS", None)  # one device, as on a user's machine

sys.path.insert(0, str(ROOT / "benchmarks"))
from accel import cards, config, plan, protocol, report, workers  # noqa: E402


def _run_tiny(out, *args):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out), *args], check=False,
        capture_output=True, text=True, env=ENV, cwd=str(ROOT), timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((out / "accelerator.json").read_text())
    return result, (out / "accelerator.md").read_text(), proc.stderr


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _run_tiny(tmp_path_factory.mktemp("accelerator"))


def test_tiny_json_has_every_section(tiny):
    result, _, log = tiny
    assert {"meta", "device", "card", "dense", "conv", "plan", "goals"} <= set(result)
    assert result["meta"]["tiny"] is True
    assert result["meta"]["budget_s"] is None  # nothing below depends on the machine's speed
    assert result["device"]["backend"] == "cpu"
    assert result["device"]["versions"]["jax"]
    sizes = config.TINY

    dense = result["dense"]["rows"]
    ours = {(r["N"], r["dtype"], r["rule"]): r for r in dense if r["lib"] == "snnjax"}
    assert set(ours) == {(N, dt, rule) for N in sizes.dense_N for dt in sizes.dtypes
                         for rule in config.DENSE_RULES}, log
    for r in ours.values():
        assert r["status"] == "ok", r
        assert r["time_s"] > 0 and r["xla_temp_bytes"] > 0 and r["flops"] > 0
        assert r["precompiled"], r  # compiled by the parallel pass, loaded from the cache
        # Every rule runs the same forward pass: the same spike count.
        assert r["loss"] == pytest.approx(ours[(r["N"], r["dtype"], "BPTT")]["loss"], rel=1e-3)
    assert "xla_temp_bytes_half_T" in ours[(max(sizes.dense_N), "float32", "SLTT")]
    # Every peer has its rows, run or skipped with a reason.
    for lib in config.DENSE_PEERS:
        rows = [r for r in dense if r.get("lib") == lib]
        assert len(rows) == len(sizes.dense_N) * len(sizes.dtypes), lib
        assert all(r["status"] == "ok" or r.get("reason") or r.get("error") for r in rows)

    conv = result["conv"]["rows"]
    only = dict(sizes.conv_only)
    want = {(m, r) for m in sizes.conv_models for r in config.CONV_RULES
            if r in only.get(m, config.CONV_RULES)}
    got = {(r["model"], r["rule"]): r for r in conv if r["lib"] == "snnjax"}
    assert set(got) == want
    for r in got.values():
        assert r["status"] == "ok", r
        assert r["time_s"] > 0 and r["xla_memory_bytes"] > 0
        assert r["precompiled"], r  # compiled by the parallel pass, loaded from the cache
        # The CPU has no peak to measure and no compile-only target: said, not left blank.
        assert r["peak_bytes"] is None and r["peak_over_xla"] is None
        assert r["compile_only_bytes"] is None and r["compile_only_note"]
    sj = [r for r in conv if r["lib"] == "spikingjelly"]
    assert {(r["model"], r["rule"]) for r in sj} == {
        (m, rule) for m in sizes.conv_models for rule in config.SJ_CONV_RULES[m]}

    plan = {r["rule"]: r for r in result["plan"]["rows"]}
    assert set(plan) == set(config.PLAN_RULES)
    for r in plan.values():
        assert r["status"] == "ok", r
        tested = {int(t): m for t, m in r["tested"].items()}
        assert all(m <= r["budget_bytes"] for t, m in tested.items() if t <= r["max_T"])
    # Tiny budget: BPTT's answer lies inside the search (its T + 1 tested, not fitting);
    # SLTT's memory barely grows with T, so it reaches the cap.
    bptt = plan["BPTT"]
    assert 1 <= bptt["max_T"] < sizes.plan_max_T and not bptt["capped"]
    assert bptt["tested"][str(bptt["max_T"] + 1)] > bptt["budget_bytes"]
    assert plan["SLTT"]["max_T"] >= bptt["max_T"]

    assert all({"goal", "met", "value"} <= set(g) for g in result["goals"])


def test_tiny_markdown_renders(tiny):
    result, md, _ = tiny
    assert md.startswith("## Accelerator: ")
    for heading in ("### Open Neuromorphic benchmark", "### VGG-11 sWS and ResNet-18",
                    "### Memory planner", "### Goals of issue 14"):
        assert heading in md
    assert "--tiny" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    n_snnjax = sum(r["lib"] == "snnjax" for r in result["dense"]["rows"])
    assert len(table_rows) >= n_snnjax + len(result["plan"]["rows"])
    assert report.render_markdown(result) == md


def test_card_detection_and_roofline():
    assert cards.detect_card("NVIDIA H100 80GB HBM3") == "H100 SXM"
    assert cards.detect_card("NVIDIA H100 PCIe") == "H100 PCIe"
    assert cards.detect_card("NVIDIA H200") == "H200 SXM"
    assert cards.detect_card("NVIDIA H200 NVL") == "H200 NVL"
    assert cards.detect_card("cpu") is None
    flops, nbytes = cards.dense_work(16384, 500, 16, "float32")
    assert flops == 4 * 500 * 16 * 16384**2
    assert nbytes == 4 * (2 * 16384**2 + 4 * 500 * 16 * 16384)
    tf32 = cards.roofline(flops, nbytes, "H100 SXM", "float32", "tf32")
    assert tf32["roofline_s"] == pytest.approx(flops / 494.5e12)  # compute-bound
    fp32 = cards.roofline(flops, nbytes, "H100 SXM", "float32", "highest")
    assert fp32["roofline_s"] == pytest.approx(flops / 67e12)
    bf16 = cards.roofline(*cards.dense_work(4096, 500, 16, "bfloat16"), "H200 SXM", "bfloat16",
                        "tf32")
    assert bf16["roofline_s"] == max(bf16["compute_s"], bf16["memory_s"])
    assert cards.roofline(flops, nbytes, None, "float32", "tf32")["roofline_s"] is None

    rows = [{"N": 16384, "T": 500, "B": 16, "dtype": "float32", "time_s": 0.02}]
    cards.annotate_dense(rows, "H100 SXM", "tf32")
    assert rows[0]["x_roofline"] == pytest.approx(0.02 / tf32["roofline_s"])


@pytest.mark.parametrize("slope,budget,cap", [(1000, 50_000, 4096), (3, 50_000, 64),
                                               (1000, 500, 4096), (0, 50_000, 64)])
def test_plan_search_keeps_largest_contract(slope, budget, cap):
    def memory(t):
        return 2_000 + slope * t + (37 * t) % 50  # nearly linear, not monotone in the noise

    found = plan.largest_T(memory, budget, (8, 16), cap)
    tested = {int(t): m for t, m in found["tested"].items()}
    v = found["max_T"]
    assert all(m <= budget for t, m in tested.items() if t <= v)
    if 0 < v < cap:
        assert tested[v + 1] > budget and not found["capped"]
    if v == cap:
        assert found["capped"]
    assert found["compiles"] <= 12


def test_tiny_budget_skips_rows_on_any_machine(tmp_path):
    """Under a budget too small for any worker, every measured row is reported skipped for the
    time budget (none errors, none half-run), the run exits 0 and the Markdown says why."""
    result, md, log = _run_tiny(tmp_path, "--budget-s", "1")
    assert result["meta"]["budget_s"] == 1.0
    sizes = config.TINY
    ours = [r for r in result["dense"]["rows"] + result["conv"]["rows"]
            if r["lib"] == "snnjax"]
    n_dense = len(sizes.dense_N) * len(sizes.dtypes) * len(config.DENSE_RULES)
    n_conv = sum(len(dict(sizes.conv_only).get(m, config.CONV_RULES))
                 for m in sizes.conv_models)
    assert len(ours) == n_dense + n_conv  # every row reported
    assert len(result["plan"]["rows"]) == len(sizes.plan_models) * len(config.PLAN_RULES)
    for r in ours + result["plan"]["rows"]:
        assert r["status"] == "skipped" and r["reason"] == protocol.TIME_BUDGET, r
    assert not any(r.get("precompiled") for r in ours)
    assert all(g["met"] is None for g in result["goals"])
    assert "skipped: time budget" in md and "budget 1 s" in md
    assert report.render_markdown(result) == md


def test_a_worker_without_time_is_not_started(monkeypatch):
    def no_process(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(protocol.subprocess, "run", no_process)
    rows = [{"N": 64}, {"N": 128}]
    got = protocol.run_worker("dense-snnjax", {}, rows, timeout=protocol.MIN_WORKER_S - 0.5)
    assert got == [{**r, "status": "skipped", "reason": protocol.TIME_BUDGET} for r in rows]


def test_compile_target_worker_matches_a_plain_compile():
    """The compile-only figure beside a measured peak: snnjax's compile target of the conv
    step (the CPU target here) equals a plain compile of the same step; where this snnjax has
    no compile targets, the rows say so."""
    import inspect

    import optax

    import snnjax
    from snnjax import cost

    sizes = config.TINY
    rows = [{"model": "vgg11_sws", "rule": "SLTT"}]
    got = []
    spec = {"sizes": dataclasses.asdict(sizes), "rows": rows, "deadline": None, "target": "cpu"}
    workers.worker_compile_target(spec, got.append)
    assert len(got) == 1
    if "target" not in inspect.signature(cost.step_memory).parameters:
        assert got[0]["status"] == "skipped" and "compile-only targets" in got[0]["reason"]
        return
    trainer = snnjax.Trainer(config.conv_model("vgg11_sws", sizes), config.conv_rule("SLTT"),
                             optax.sgd(0.1, momentum=0.9))
    xs, ys = cost.abstract_batch(sizes.conv_T, sizes.conv_B, (sizes.image, sizes.image, 3))
    plain = cost.compiled_memory(cost.lower_step(trainer, xs, ys).compile())
    assert got[0]["status"] == "ok", got[0]
    assert got[0]["memory_bytes"] == plain["memory_bytes"]
