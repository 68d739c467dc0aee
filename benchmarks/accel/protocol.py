"""Rows in worker subprocesses: a crash, an out-of-memory or a timeout costs one row.

A worker is ``accelerator.py --worker KIND --spec JSON``; the spec holds its rows and its
deadline (None: no time budget). It prints one ``@@ROW {json}`` line per row, in order, and
``@@FATAL {json}`` if it fails outside a row. Every row comes back with a ``status``: ``ok``,
``error`` (with ``error``) or ``skipped`` (with ``reason``).

Time: a run has a budget (``--budget-s``) or none (``--tiny``'s default). With a budget, a
worker whose allowance is under :data:`MIN_WORKER_S` is never started: its rows are reported
skipped for the time budget, so a run short of time reports the same rows on any machine.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "accelerator.py"
# A worker with less time than this is not started (importing jax alone takes seconds).
MIN_WORKER_S = 5.0
TIME_BUDGET = "time budget"


def expired(deadline: float | None) -> bool:
    """Whether a worker's deadline (seconds since the epoch; None: none) has passed."""
    return deadline is not None and time.time() > deadline


def skipped(rows, reason=TIME_BUDGET) -> list[dict]:
    return [{**r, "status": "skipped", "reason": reason} for r in rows]


def short_error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) < 600 else text[:600] + " …"


def worker_main(workers: dict, kind: str, spec_json: str) -> int:
    """Run ``workers[kind]`` on the spec, printing its rows (the worker side)."""
    spec = json.loads(spec_json)
    sys.path.insert(0, str(ROOT))

    def emit(obj):
        print("@@ROW " + json.dumps(obj), flush=True)

    try:
        workers[kind](spec, emit)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        print("@@FATAL " + json.dumps({"error": short_error(e)}), flush=True)
        return 1
    return 0


def run_worker(kind: str, spec: dict, rows: list[dict], *, timeout: float = math.inf,
               env_extra=None, pythonpath_prefix: str | None = None) -> list[dict]:
    """Run a worker over ``rows`` within ``timeout`` seconds (``math.inf``: no limit): one
    result per row, errors and rows never reached included. A worker that dies (not one
    that runs out of time) costs the row it was on: a fresh one takes the rows after it
    while time is left (unless it died on its first)."""
    end = time.time() + timeout
    results = []
    while len(results) < len(rows):
        left = end - time.time()
        if left < MIN_WORKER_S:
            results += skipped(rows[len(results):])
            break
        got, died = _run_worker_once(kind, spec, rows[len(results):], timeout=left,
                                     env_extra=env_extra, pythonpath_prefix=pythonpath_prefix)
        results += got
        if died and len(got) == 1:  # died before finishing any row: do not start again
            results += skipped(rows[len(results):], "the worker failed on the first row")
        if not died or len(got) == 1:
            break
    return results


def _run_worker_once(kind, spec, rows, *, timeout, env_extra, pythonpath_prefix):
    """One worker process over ``rows``: ``(results so far, whether it died on a row)``;
    after a death the results end at the row it died on."""
    limited = not math.isinf(timeout)
    deadline = time.time() + max(1.0, timeout - 5.0) if limited else None
    spec = {**spec, "rows": rows, "deadline": deadline}
    env = dict(os.environ)
    env.update(env_extra or {})
    # A prefix (SpikingJelly 0.0.0.0.14's site) must win over the same package further on.
    path = ([pythonpath_prefix] if pythonpath_prefix else []) + [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(path + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [sys.executable, str(SCRIPT), "--worker", kind, "--spec", json.dumps(spec)]
    error = None
    try:
        r = subprocess.run(cmd, check=False, capture_output=True, text=True,
                           timeout=max(1.0, timeout) if limited else None, env=env,
                           cwd=str(ROOT))
        stdout, stderr, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        rc, error = None, f"worker timed out after {timeout:.0f} s"
    results = []
    for line in stdout.splitlines():
        if line.startswith("@@ROW "):
            results.append(json.loads(line[6:]))
        elif line.startswith("@@FATAL "):
            error = json.loads(line[8:])["error"]
    if rc not in (0, None) and error is None:
        tail = stderr.strip().splitlines()[-3:]
        error = f"worker exited with {rc}: " + " | ".join(tail)
    rest = rows[len(results):]
    if not rest:
        return results, False
    if error is None:
        return results + skipped(rest, "not reached"), False
    results.append({**rest[0], "status": "error", "error": error})
    if rc is None:  # out of time: the rows after it are not run
        return results + skipped(rest[1:]), False
    return results, True
