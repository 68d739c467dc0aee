"""benchmarks/gemm_reference.py: the GEMM peak that peers.py reports each dense step against
is measured in a child process without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, and says which
OpenBLAS kernel ran. Only the child's environment changes: this process's is left alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import gemm_reference  # noqa: E402
import peers  # noqa: E402

OVERRIDES = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "262144"}


def test_reference_env_drops_only_the_overrides():
    environ = {**OVERRIDES, "PATH": "/bin", "OMP_NUM_THREADS": "2"}
    env, removed = gemm_reference.reference_env(environ)
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "2"}
    assert removed == OVERRIDES
    assert environ == {**OVERRIDES, "PATH": "/bin", "OMP_NUM_THREADS": "2"}  # not mutated


def test_gemm_peak_runs_without_the_overrides_and_names_the_kernel():
    before = dict(os.environ)
    ref = gemm_reference.gemm_peak(16, 32, repeats=1, environ={**os.environ, **OVERRIDES})
    assert dict(os.environ) == before
    assert ref["env"] == {k: None for k in gemm_reference.OPENBLAS_OVERRIDES}  # the child's
    assert ref["unset"] == OVERRIDES
    assert isinstance(ref["kernel"], str) and ref["kernel"]  # threadpoolctl's architecture
    assert ref["gflops"] > 0 and (ref["rows"], ref["n"]) == (16, 32)


def test_the_child_would_run_the_override_kernel():
    """The override is what the reference escapes: kept, the child's kernel is the forced one."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gemm_reference.py"),
                          "--rows", "8", "--n", "16", "--repeats", "1"],
                         env={**os.environ, **OVERRIDES}, capture_output=True, text=True,
                         check=True)
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["kernel"] == "Haswell" and child["env"] == OVERRIDES


def test_peers_reports_the_share_of_the_peak():
    rows = [{"workload": "dense", "lib": "snnjax", "rule": "BPTT", "config": "--N 8",
             "versions": {}, "step_s": 0.01, "fwd_s": None, "bwd_s": None, "rounds": 3,
             "loss": 2.0, "peak_rss_bytes": None, "compiled_memory_bytes": None,
             "vs_snnjax": 1.0, "vs_other_path": None, "vs_same_rule": 1.0, "threads": None,
             "gemm_gflops": 50.0}]
    gemm = {"--N 8": {"gflops": 200.0, "kernel": "SkylakeX", "unset": OVERRIDES}}
    result = {"machine": {"cpu": "x", "logical_cores": 2, "memory_gib": 1, "os": "linux",
                          "python": "3", "threads": 0, "load_average": (0.0,) * 3,
                          "load_average_end": (0.0,) * 3},
              "rows": rows, "gemm": gemm, "definitions": peers.DEFINITIONS}
    md = peers.markdown(result)
    assert "the machine's float32 GEMM peak (numpy, OpenBLAS kernel SkylakeX" in md
    assert "`OPENBLAS_CORETYPE=Haswell`" in md and "200 GFLOP/s (snnjax 0.25 of it)" in md
    assert "| 50 | 0.25 |" in md  # the rate and its share of the peak, side by side
    # Older results measured numpy under the machine's settings: labelled as such.
    legacy = {**result, "gemm": {"--N 8": {"numpy_gflops": 100.0}}}
    legacy.pop("definitions")
    assert "not the machine's peak" in peers.markdown(legacy)


def test_a_failed_reference_is_recorded(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(peers, "gemm_peak", fail)
    logged = []
    ref = peers.gemm_reference(8, 16, log=logged.append)
    assert ref["gflops"] is None and "boom" in ref["error"] and logged
