"""Committed results match the code: every run in ``experiments/results/*.json`` (what
RESULTS.md is rendered from) has its training step recompiled, compile only, and its
compiled memory compared with the committed figures (runs repeating a configuration on
another dataset only under ``-m slow``). XLA's memory analysis is deterministic
for a given jax, so any change to the engine, a layer or a model that moves a committed
number fails here until the results are regenerated (RESULTS.md says how)."""

import json
import sys
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # experiments/ is the repository's package, not snnjax's

import experiments  # noqa: E402, F401  (registers the digit stand-ins)
from snnjax.experiment import TrainConfig, step_memory  # noqa: E402

FILES = sorted((ROOT / "experiments" / "results").glob("*.json"))


def _runs():
    """Every committed run; one whose configuration an earlier run already has on another
    dataset (only the input differs) is marked ``slow``: the default suite checks every
    rule, model and schedule once, ``-m slow`` every run."""
    seen, runs = set(), []
    for path in FILES:
        d = json.loads(path.read_text())
        for run in d["runs"]:
            same = json.dumps({k: v for k, v in run["config"].items() if k != "dataset"},
                              sort_keys=True)
            marks = [pytest.mark.slow] if same in seen else []
            seen.add(same)
            runs.append(pytest.param(d["host"], run, id=f"{path.stem}:{run['key']}",
                                     marks=marks))
    return runs


RUNS = _runs()


def test_there_are_committed_results():
    assert len(FILES) >= 4 and len(RUNS) >= 30, [p.name for p in FILES]


@pytest.mark.parametrize("host,run", RUNS)
def test_committed_step_memory_is_the_codes(host, run):
    if host["jax"] != jax.__version__ or host["backend"] != jax.default_backend():
        pytest.skip(f"results made with jax {host['jax']} on {host['backend']}; this is jax "
                    f"{jax.__version__} on {jax.default_backend()}: regenerate them")
    if run["result"].get("devices", 1) != 1:
        pytest.skip("data-parallel run: step_memory compiles for one device")
    got = step_memory(TrainConfig(**run["config"]))
    assert got == run["result"]["compiled_memory"], (
        f"{run['key']}: the committed compiled memory no longer matches the code; "
        "regenerate with `python -m experiments.run CONFIG --preset small` and "
        "`python -m experiments.report experiments/results --out RESULTS.md`"
    )
